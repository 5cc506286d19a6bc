// Ids typed in forms, made from names.

/** What the API accepts as an id: ``[a-z0-9][a-z0-9_-]{0,63}``. */
export const SLUG_PATTERN = "[a-z0-9][a-z0-9_\\-]{0,63}";

/** ``"Zoë O'Neil"`` -> ``"zoe-o-neil"``: an id matching the API's ``[a-z0-9][a-z0-9_-]{0,63}``. */
export function slugify(name) {
  return name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64)
    .replace(/-+$/g, "");
}
