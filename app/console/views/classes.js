// The home page: every class, and the form that creates one.

import { api } from "../api.js";
import { h } from "../dom.js";
import { SLUG_PATTERN, slugify } from "../widgets/ids.js";
import { clearError, plural, say, showError } from "../widgets/messages.js";
import { setCrumbs } from "../widgets/nav.js";

function newClassForm() {
  const nameInput = h("input", { id: "class-name", name: "name", required: true, maxlength: 200 });
  const idInput = h("input", {
    id: "class-id",
    name: "id",
    required: true,
    pattern: SLUG_PATTERN,
    autocapitalize: "off",
    spellcheck: "false",
  });
  let idEdited = false;
  nameInput.addEventListener("input", () => {
    if (!idEdited) idInput.value = slugify(nameInput.value);
  });
  idInput.addEventListener("input", () => {
    idEdited = true;
  });
  const form = h(
    "form",
    { class: "panel", id: "new-class" },
    h("h2", {}, "New class"),
    h("label", { for: "class-name" }, "Name"),
    nameInput,
    h("label", { for: "class-id" }, "Id"),
    idInput,
    h("p", { class: "hint" }, "Lower-case letters, digits, - and _; used in links and CSV names."),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Create class"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      const created = await api("/v1/classes", {
        method: "POST",
        json: { id: idInput.value, name: nameInput.value },
        label: "Creating the class…",
      });
      say(`Class ${created.name} created.`);
      location.hash = `#/c/${created.id}`;
    } catch (error) {
      showError(error);
    }
  });
  return form;
}

export async function classesView(view) {
  const classes = await api("/v1/classes", { label: "Loading classes…" });
  setCrumbs([["Classes", "#/"]]);
  const list = classes.length
    ? h(
        "ul",
        { class: "cards classes", "aria-label": "Classes" },
        classes.map((c) =>
          h(
            "li",
            { class: "card" },
            h("a", { href: `#/c/${c.id}`, class: "card-title" }, c.name),
            h("span", { class: "muted" }, plural(c.student_count, "student")),
          ),
        ),
      )
    : h("p", { class: "empty" }, "No class yet: create one.");
  const importLink = h(
    "p",
    { class: "import-link" },
    "Classes and students from the school's system (with their ID photos): ",
    h("a", { href: "#/import", id: "import-link" }, "import the school roster"),
    ".",
  );
  return [h("h1", {}, "Classes"), list, importLink, newClassForm()];
}
