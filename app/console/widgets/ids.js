// Ids typed in forms: class ids are made here from the name; student ids are made by the server
// (app/services/ids.py, which transliterates with anyascii), and this only previews them.

/** What the API accepts as an id: ``[a-z0-9][a-z0-9_-]{0,63}``. */
export const SLUG_PATTERN = "[a-z0-9][a-z0-9_\\-]{0,63}";

const SLUG_LENGTH = 64;
/** The server's ``SLUG_BASE_LENGTH``: the readable part of a student id made from a name. */
const STUDENT_SLUG_LENGTH = 48;

// Latin letters that Unicode does not decompose into a base letter and an accent, spelt as
// anyascii spells them. Lower case: they are looked up after toLowerCase().
const LATIN_LETTERS = {
  ł: "l",
  ø: "o",
  đ: "d",
  ð: "d",
  ß: "ss",
  æ: "ae",
  œ: "oe",
  þ: "th",
  ı: "i",
  ħ: "h",
  ŧ: "t",
  ĸ: "q",
  ŋ: "ng",
  ſ: "s",
  ǝ: "e",
  ə: "e",
};
// Non-ASCII punctuation common in names; anyascii spells each as punctuation, so it separates.
const SEPARATORS = /[\u2018\u2019\u201c\u201d\u2010\u2011\u2013\u2014]/g;
// Accents on a Latin letter (not U+0345 or the combining letters U+0363-036F, which anyascii
// spells as letters).
const ACCENTS_ON_LATIN = /([a-z])[\u0300-\u0344\u0346-\u0362]+/gi;

function toSlug(text, length) {
  return text
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, length)
    .replace(/-+$/g, "");
}

/** ``"Zoë O'Neil"`` -> ``"zoe-o-neil"``: a class id made from its name (accents dropped). */
export function slugify(name) {
  return toSlug(
    name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase(),
    SLUG_LENGTH,
  );
}

/**
 * The id the server will make from a new student's name, when this page can tell: Latin letters
 * with or without accents (``"Zoë Ødegård"`` -> ``"zoe-odegard"``, ``"Łukasz"`` -> ``"lukasz"``).
 * Any other letter (``"Дмитрий"``, ``"李雷"``) gives null: only the server knows. Unless the
 * teacher types an id, the server makes it on saving, with a suffix when another name already
 * has this one. tests/app/test_console_browser.py checks this against the server, letter by letter.
 */
export function studentIdPreview(name) {
  const latin = name
    .normalize("NFKD")
    .replace(ACCENTS_ON_LATIN, "$1")
    .toLowerCase()
    .replace(/[^\x00-\x7f]/g, (letter) => LATIN_LETTERS[letter] ?? letter)
    .replace(SEPARATORS, " ");
  if (/[^\x00-\x7f]/.test(latin)) return null;
  return toSlug(latin, STUDENT_SLUG_LENGTH) || "student";
}
