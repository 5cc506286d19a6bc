// Registering students one after another: name, photo checked by the server, save.

import { api } from "../api.js";
import { h } from "../dom.js";
import { SLUG_PATTERN, studentIdPreview } from "../widgets/ids.js";
import { clearError, say, showError } from "../widgets/messages.js";
import { classTabs, setClassCrumbs } from "../widgets/nav.js";
import { classPath } from "../widgets/paths.js";
import { photoCheck } from "../widgets/photo-check.js";

/**
 * The student id field: the id the server will make from the name, shown as the teacher types
 * (empty, with a placeholder, when only the server can tell). Unless the teacher types an id,
 * none is sent and the server makes it. ``chosen()`` is the typed id, or null.
 */
function studentIdField(nameInput) {
  const input = h("input", {
    id: "student-id",
    name: "student_id",
    pattern: SLUG_PATTERN,
    placeholder: "made from the name when you save",
    autocapitalize: "off",
    spellcheck: "false",
  });
  let edited = false;
  nameInput.addEventListener("input", () => {
    if (!edited) input.value = studentIdPreview(nameInput.value) ?? "";
  });
  input.addEventListener("input", () => {
    edited = input.value !== "";
  });
  return {
    input,
    chosen: () => (edited ? input.value : null),
    reset() {
      edited = false;
    },
  };
}

/** One line of "Registered just now": the student (their page a click away). */
function registeredItem(cid, result) {
  const student = result.student;
  const lookAlikes = result.similar_students.map((s) => s.name);
  return h(
    "li",
    { dataset: { studentId: student.id } },
    h("a", { href: `#/c/${cid}/student/${student.id}` }, student.name),
    lookAlikes.length ? ` (looks very much like ${lookAlikes.join(", ")})` : "",
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
    h(
      "p",
      { class: "hint" },
      "Made from the name when you save; type one only to choose it yourself " +
        "(lower-case letters, digits, - and _).",
    ),
    photo.fieldset,
    photo.report,
    h("div", { class: "actions" }, photo.retakeButton, saveButton),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!photo.photo()) return;
    clearError();
    const body = new FormData();
    // Without an id the server makes one from the name (transliterated, unique in the class)
    // and refuses a name that is already registered.
    const chosenId = studentId.chosen();
    if (chosenId !== null) body.append("student_id", chosenId);
    body.append("name", nameInput.value);
    photo.appendTo(body);
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
