// Naming a face of a class photo: the face, a list of the class's students filtered as the
// teacher types, and "Not in this class". The dialog itself is in index.html (#face-dialog).

import { apiImage, h } from "../dom.js";

const STUDENT_VALUE = "student:"; // a button's value: "student:<id>" (ids never hold a colon)

/** Lower case without accents, so "zoe" finds "Zoë". */
function folded(text) {
  return text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase();
}

/**
 * Asks who a face is. ``students`` are the class's students ``{id, name}``; ``currentId`` the
 * student the face names now (or null); ``cropUrl`` the face's picture; ``placedOn`` the
 * students named on another face of the photo, with that face (``id -> "face 2"``), said beside
 * their name. Resolves to ``{studentId}`` (``studentId`` null: nobody of this class), or null
 * when cancelled.
 */
export function pickStudent({ students, currentId, cropUrl, faceLabel, placedOn = new Map() }) {
  const dialog = document.getElementById("face-dialog");
  const search = document.getElementById("face-search");
  const list = document.getElementById("face-choices");
  const noMatch = document.getElementById("face-no-match");
  document.getElementById("face-title").textContent = `Who is ${faceLabel}?`;
  const crop = apiImage(cropUrl, { alt: `The face to name (${faceLabel})`, className: "crop" });
  document.getElementById("face-crop").replaceChildren(crop);

  const sorted = [...students].sort((a, b) => a.name.localeCompare(b.name));
  const items = sorted.map((student) => {
    const isCurrent = student.id === currentId;
    return h(
      "li",
      { dataset: { search: folded(`${student.name} ${student.id}`) } },
      h(
        "button",
        {
          type: "submit",
          value: `${STUDENT_VALUE}${student.id}`,
          class: isCurrent ? "choice current" : "choice",
          "aria-current": isCurrent ? "true" : null,
        },
        student.name,
        placedOn.has(student.id)
          ? h("span", { class: "choice-where" }, ` (on ${placedOn.get(student.id)})`)
          : null,
      ),
    );
  });
  list.replaceChildren(...items);

  const filter = () => {
    const query = folded(search.value.trim());
    let shown = 0;
    for (const item of items) {
      item.hidden = Boolean(query) && !item.dataset.search.includes(query);
      if (!item.hidden) shown += 1;
    }
    noMatch.hidden = shown > 0;
  };
  // Enter in the search box picks the first student still listed (not "Cancel").
  const onKey = (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    const first = items.find((item) => !item.hidden);
    if (first) dialog.close(first.querySelector("button").value);
  };
  search.value = "";
  filter();
  search.addEventListener("input", filter);
  search.addEventListener("keydown", onKey);

  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        search.removeEventListener("input", filter);
        search.removeEventListener("keydown", onKey);
        const value = dialog.returnValue;
        if (value === "nobody") resolve({ studentId: null });
        else if (value.startsWith(STUDENT_VALUE)) {
          resolve({ studentId: value.slice(STUDENT_VALUE.length) });
        } else resolve(null);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    search.focus();
  });
}
