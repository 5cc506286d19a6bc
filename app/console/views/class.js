// One class: its students as cards (rename, delete), how far recognition is, the term report,
// deleting the class.

import { api } from "../api.js";
import { apiImage, confirmDialog, h } from "../dom.js";
import { plural, say, showError } from "../widgets/messages.js";
import { classTabs, setClassCrumbs } from "../widgets/nav.js";
import { classPath, studentPath } from "../widgets/paths.js";
import { recognitionLine } from "../widgets/recognition.js";
import { deleteStudent, renameStudent } from "../widgets/student-actions.js";
import { termReportPanel } from "../widgets/term-report.js";

function studentCard(cid, student, onDeleted) {
  const nameLink = h("a", { href: `#/c/${cid}/student/${student.id}`, class: "card-title" });
  const photos = h("span", { class: "muted" });
  const render = () => {
    nameLink.textContent = student.name;
    photos.textContent = `${student.id} · ${plural(student.photo_count, "photo")}`;
    renameButton.setAttribute("aria-label", `Rename ${student.name}`);
    deleteButton.setAttribute("aria-label", `Delete ${student.name}`);
    thumbnail.alt = `Registration photo of ${student.name}`;
  };
  const thumbnail = apiImage(`${studentPath(cid, student.id)}/thumbnail.jpg`, {
    className: "thumb",
  });
  const renameButton = h("button", { type: "button" }, "Rename");
  const deleteButton = h("button", { type: "button", class: "danger" }, "Delete");
  const card = h(
    "li",
    { class: "card student", dataset: { studentId: student.id } },
    thumbnail,
    h("div", { class: "card-body" }, nameLink, photos),
    h("div", { class: "card-actions" }, renameButton, deleteButton),
  );
  renameButton.addEventListener("click", () => renameStudent(cid, student, render));
  deleteButton.addEventListener("click", async () => {
    if (await deleteStudent(cid, student)) {
      card.remove();
      onDeleted();
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
        "Every student's registration photos and face embeddings are erased, with every " +
        "session and its photos. This cannot be undone.",
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
  let remaining = students.length;
  const showCount = () => {
    count.textContent = `${plural(remaining, "student")} enrolled.`;
  };
  showCount();
  const onDeleted = () => {
    remaining -= 1;
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
    h("div", { class: "footer-actions" }, deleteClassButton(cid, klass)),
  ];
}
