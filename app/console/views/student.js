// One student: rename or delete, registration photos, attendance history.

import { api } from "../api.js";
import { apiImage, formatDateTime, formatTime, h, listTable } from "../dom.js";
import { plural } from "../widgets/messages.js";
import { setClassCrumbs } from "../widgets/nav.js";
import { classPath, enc, studentPath } from "../widgets/paths.js";
import { deleteStudent, renameStudent } from "../widgets/student-actions.js";

function photoCards(path, student) {
  return h(
    "ul",
    { class: "cards photos-list", "aria-label": "Registration photos" },
    student.photos.map((p) =>
      h(
        "li",
        { class: "card" },
        apiImage(`${path}/photos/${enc(p.photo_id)}/thumbnail.jpg`, {
          alt: `Registration photo ${p.filename || ""}`.trim(),
          className: "thumb",
        }),
        h(
          "div",
          { class: "card-body" },
          h("span", {}, p.filename || "photo"),
          h(
            "span",
            { class: "muted" },
            `face ${Math.round(p.quality.face_size)} px · ${formatDateTime(p.created_at)}`,
          ),
          p.quality.warnings.length
            ? h("span", { class: "warn-text" }, p.quality.warnings.join("; "))
            : null,
        ),
      ),
    ),
  );
}

function historyTable(cid, history) {
  return listTable({
    id: "history-table",
    caption: "Attendance history",
    headers: ["Date", "Session", "Status", "Seen at"],
    rows: [...history.sessions].reverse().map((e) => ({
      attributes: { class: e.present ? "present" : "absent" },
      cells: [
        e.date,
        h("a", { href: `#/c/${cid}/s/${e.session_id}` }, e.label),
        e.present ? "present" : "absent",
        formatTime(e.recorded_at),
      ],
    })),
    empty: "No session yet.",
  });
}

export async function studentView(view, cid, studentId) {
  const path = studentPath(cid, studentId);
  const [klass, student, history] = await Promise.all([
    api(classPath(cid), { label: "Loading the student…" }),
    api(path),
    api(`${path}/attendance`),
  ]);
  setClassCrumbs(cid, klass, [student.name, `#/c/${cid}/student/${studentId}`]);
  const title = h("h1", {}, student.name);
  const rename = h("button", { type: "button" }, "Rename");
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  rename.addEventListener("click", () =>
    renameStudent(cid, student, (renamed) => {
      title.textContent = renamed.name;
    }),
  );
  remove.addEventListener("click", async () => {
    if (await deleteStudent(cid, student)) location.hash = `#/c/${cid}`;
  });
  return [
    title,
    h("p", { class: "muted" }, `${student.id} · ${plural(student.photo_count, "photo")}`),
    h("div", { class: "actions left" }, rename, remove),
    h("h2", {}, "Registration photos"),
    photoCards(path, student),
    h("h2", {}, "Attendance"),
    h(
      "p",
      { id: "history-summary" },
      `Present at ${history.present_count} of ${plural(history.session_count, "session")}.`,
    ),
    historyTable(cid, history),
  ];
}
