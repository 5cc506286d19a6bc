// Registering students one after another: name, photo checked by the server, save.

import { api } from "../api.js";
import { h } from "../dom.js";
import { SLUG_PATTERN, slugify } from "../widgets/ids.js";
import { clearError, say, showError } from "../widgets/messages.js";
import { classTabs, setClassCrumbs } from "../widgets/nav.js";
import { classPath } from "../widgets/paths.js";
import { photoCheck } from "../widgets/photo-check.js";

/** The student id field, filled in from the name until the teacher types an id. */
function studentIdField(nameInput) {
  const input = h("input", {
    id: "student-id",
    name: "student_id",
    required: true,
    pattern: SLUG_PATTERN,
    autocapitalize: "off",
    spellcheck: "false",
  });
  let edited = false;
  nameInput.addEventListener("input", () => {
    if (!edited) input.value = slugify(nameInput.value);
  });
  input.addEventListener("input", () => {
    edited = input.value !== "";
  });
  return {
    input,
    reset() {
      edited = false;
    },
  };
}

/** One line of "Registered just now". */
function registeredItem(cid, result) {
  const student = result.student;
  return h(
    "li",
    {},
    h("a", { href: `#/c/${cid}/student/${student.id}` }, student.name),
    result.warnings.length ? ` (${result.warnings.join("; ")})` : "",
  );
}

export async function registerView(view, cid) {
  const klass = await api(classPath(cid), { label: "Loading the class…" });
  setClassCrumbs(cid, klass, ["Register a student", `#/c/${cid}/register`]);
  const nameInput = h("input", {
    id: "student-name",
    name: "name",
    required: true,
    maxlength: 200,
    autocomplete: "off",
  });
  const studentId = studentIdField(nameInput);
  const saveButton = h(
    "button",
    { type: "submit", class: "primary", disabled: true },
    "Save student",
  );
  const photo = photoCheck(cid, (usable) => {
    saveButton.disabled = !usable;
  });
  const registered = h("ul", { class: "registered", "aria-labelledby": "registered-title" });
  const registeredTitle = h("h3", { id: "registered-title", hidden: true }, "Registered just now");

  const form = h(
    "form",
    { class: "panel", id: "register-form" },
    h("label", { for: "student-name" }, "Name"),
    nameInput,
    h("label", { for: "student-id" }, "Student id"),
    studentId.input,
    h("p", { class: "hint" }, "Filled in from the name; lower-case letters, digits, - and _."),
    photo.fieldset,
    photo.report,
    h("div", { class: "actions" }, photo.retakeButton, saveButton),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = photo.photo();
    if (!file) return;
    clearError();
    const body = new FormData();
    body.append("student_id", studentId.input.value);
    body.append("name", nameInput.value);
    body.append("photos", file, file.name || "photo.jpg");
    saveButton.disabled = true;
    try {
      const result = await api(`${classPath(cid)}/students`, {
        method: "POST",
        form: body,
        label: `Saving ${nameInput.value}…`,
      });
      say(`${result.student.name} registered.`);
      registeredTitle.hidden = false;
      registered.append(registeredItem(cid, result));
      form.reset();
      studentId.reset();
      photo.reset();
      nameInput.focus();
    } catch (error) {
      saveButton.disabled = false;
      showError(error);
    }
  });
  return [
    h("h1", {}, klass.name),
    classTabs(cid, "register"),
    h("h2", {}, "Register a student"),
    form,
    registeredTitle,
    registered,
  ];
}
