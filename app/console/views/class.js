// One class: its students as cards (rename, delete), how far recognition is, the term report,
// the faces marked "not in this class", deleting the class.

import { api } from "../api.js";
import { apiImage, confirmDialog, h } from "../dom.js";
import { plural, say, showError } from "../widgets/messages.js";
import { classTabs, setClassCrumbs } from "../widgets/nav.js";
import { classPath, studentPath } from "../widgets/paths.js";
import { recognitionLine } from "../widgets/recognition.js";
import { strangersPanel } from "../widgets/strangers.js";
import { deleteStudent, renameStudent } from "../widgets/student-actions.js";
import { termReportPanel } from "../widgets/term-report.js";

/** A student without a registration photo (imported from the school's list) shows this instead. */
function needsPhotoPlaceholder() {
  return h(
    "div",
    { class: "thumb needs-photo-thumb", "aria-hidden": "true" },
    h("span", {}, "No photo"),
  );
}

function studentCard(cid, student, onDeleted) {
  const href = `#/c/${cid}/student/${student.id}`;
  const nameLink = h("a", { href, class: "card-title" });
  const needsPhoto = student.photo_count === 0;
  const photos = needsPhoto
    ? h("a", { href, class: "needs-photo-tag" }, "Needs a photo")
    : h("span", { class: "muted" });
  const thumbnail = needsPhoto
    ? needsPhotoPlaceholder()
    : apiImage(`${studentPath(cid, student.id)}/thumbnail.jpg`, { className: "thumb" });
  const render = () => {
    nameLink.textContent = student.name;
    if (!needsPhoto) {
      photos.textContent = plural(student.photo_count, "photo");
      thumbnail.alt = `Registration photo of ${student.name}`;
    } else {
      photos.setAttribute("aria-label", `${student.name} needs a photo: add one`);
    }
    renameButton.setAttribute("aria-label", `Rename ${student.name}`);
    deleteButton.setAttribute("aria-label", `Delete ${student.name}`);
  };
  const renameButton = h("button", { type: "button" }, "Rename");
  const deleteButton = h("button", { type: "button", class: "danger" }, "Delete");
  const card = h(
    "li",
    {
      class: needsPhoto ? "card student needs-photo" : "card student",
      dataset: { studentId: student.id },
    },
    thumbnail,
    h("div", { class: "card-body" }, nameLink, photos),
    h("div", { class: "card-actions" }, renameButton, deleteButton),
  );
  renameButton.addEventListener("click", () => renameStudent(cid, student, render));
  deleteButton.addEventListener("click", async () => {
    if (await deleteStudent(cid, student)) {
      card.remove();
      onDeleted(student);
    }
  });
  render();
  return card;
}

function deleteClassButton(cid, klass) {
  const button = h("button", { type: "button", class: "danger subtle" }, "Delete this class");
  button.addEventListener("click", async () => {
    const confirmed = await confirmDialog({
      title: `Delete the class ${klass.name}?`,
      text:
        "Every student's registration photos and everything recognition learnt from them are " +
        "erased, with every session, its photos and its attendance. This cannot be undone.",
      action: "Delete the class",
    });
    if (!confirmed) return;
    try {
      await api(classPath(cid), { method: "DELETE", label: "Deleting the class…" });
      say(`Class ${klass.name} deleted.`);
      location.hash = "#/";
    } catch (error) {
      showError(error);
    }
  });
  return button;
}

export async function classView(view, cid) {
  const [klass, students] = await Promise.all([
    api(classPath(cid), { label: "Loading the class…" }),
    api(`${classPath(cid)}/students`),
  ]);
  setClassCrumbs(cid, klass);
  const recognition = recognitionLine(view, cid, klass.head);
  const count = h("p", { class: "muted", id: "student-count" });
  const remaining = new Map(students.map((s) => [s.id, s]));
  const showCount = () => {
    const waiting = [...remaining.values()].filter((s) => s.photo_count === 0).length;
    count.textContent =
      `${plural(remaining.size, "student")} enrolled.` +
      (waiting ? ` ${waiting} ${waiting === 1 ? "needs a photo" : "need a photo"}.` : "");
  };
  showCount();
  const onDeleted = (student) => {
    remaining.delete(student.id);
    showCount();
    recognition.refresh().catch(() => {});
  };
  const grid = students.length
    ? h(
        "ul",
        { class: "cards students", "aria-label": "Students" },
        students.map((s) => studentCard(cid, s, onDeleted)),
      )
    : h(
        "p",
        { class: "empty" },
        "No student yet. ",
        h("a", { href: `#/c/${cid}/register` }, "Register the first one"),
        ".",
      );
  return [
    h("h1", {}, klass.name),
    classTabs(cid, "students"),
    recognition.line,
    count,
    grid,
    termReportPanel(cid),
    strangersPanel(cid),
    h("div", { class: "footer-actions" }, deleteClassButton(cid, klass)),
  ];
}
