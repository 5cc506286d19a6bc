// One student: rename or delete, registration photos, faces confirmed in class photos (each can be
// removed), attendance history.

import { api } from "../api.js";
import {
  apiImage,
  attachmentName,
  confirmDialog,
  formatDateTime,
  formatTime,
  h,
  listTable,
  saveBlob,
} from "../dom.js";
import { clearError, plural, say, showError } from "../widgets/messages.js";
import { setClassCrumbs } from "../widgets/nav.js";
import { classPath, enc, studentPath } from "../widgets/paths.js";
import { photoCheck } from "../widgets/photo-check.js";
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
          alt: `Registration photo of ${student.name}`,
          className: "thumb",
        }),
        h(
          "div",
          { class: "card-body" },
          h("span", {}, `Added ${formatDateTime(p.created_at)}`),
          p.quality.warnings.length
            ? h("span", { class: "warn-text" }, p.quality.warnings.join(" "))
            : null,
          h(
            "details",
            { class: "row-details" },
            h("summary", {}, "Details"),
            h(
              "p",
              { class: "muted" },
              `${p.filename || "photo"} · face ${Math.round(p.quality.face_size)} px · ` +
                `sharpness ${Math.round(p.quality.sharpness)}`,
            ),
          ),
        ),
      ),
    ),
  );
}

/** What a student without a registration photo (imported from the school's list) looks like. */
function needsPhotoNotice(student) {
  return h(
    "div",
    { class: "needs-photo-notice", id: "needs-photo", role: "note" },
    h("p", { class: "needs-photo-title" }, "Needs a photo"),
    h(
      "p",
      {},
      `${student.name} has no registration photo yet, so recognition cannot find them in class ` +
        "photos. Add one below; until then, set their status by hand in each session.",
    ),
  );
}

/**
 * "Add a photo": the photo is checked (and on a photo of several people, the student's face
 * chosen) before it is saved; then the page is drawn again with the new photo.
 */
function addPhotoPanel(view, cid, student) {
  const save = h(
    "button",
    { type: "submit", class: "primary", id: "save-photo", disabled: true },
    "Save the photo",
  );
  const photo = photoCheck(
    cid,
    (usable) => {
      save.disabled = !usable;
    },
    { studentId: student.id },
  );
  const form = h(
    "form",
    { id: "add-photo-form" },
    photo.fieldset,
    photo.report,
    h("div", { class: "actions" }, photo.retakeButton, save),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!photo.photo()) return;
    clearError();
    const body = new FormData();
    photo.appendTo(body);
    save.disabled = true;
    try {
      const result = await api(`${studentPath(cid, student.id)}/photos`, {
        method: "POST",
        form: body,
        label: `Saving the photo of ${student.name}…`,
      });
      say(
        `Photo saved: ${result.student.name} has ${plural(result.student.photo_count, "photo")}.`,
      );
      if (view.alive()) await view.redraw();
    } catch (error) {
      save.disabled = false;
      showError(error);
    }
  });
  const needsPhoto = student.photo_count === 0;
  return h(
    "details",
    { class: "panel add-photo", id: "add-photo", open: needsPhoto },
    h("summary", {}, needsPhoto ? "Add their photo" : "Add a photo"),
    h(
      "p",
      { class: "hint" },
      "The photo is checked before you save it. More photos (other days, other light) help " +
        "recognition.",
    ),
    form,
  );
}

/** Faces from class photos confirmed as this student, which recognition uses like photos. */
function sampleCards(cid, path, student, sessions) {
  const list = h("ul", { class: "cards samples-list", "aria-label": "Faces from class photos" });
  const empty = h(
    "p",
    { class: "empty", id: "samples-empty" },
    "None yet: faces you name in a session's photos, and faces recognised with certainty, are " +
      "kept here.",
  );
  const showEmpty = () => {
    empty.hidden = list.children.length > 0;
    list.hidden = !empty.hidden;
  };
  for (const sample of student.samples) {
    const session = sessions.get(sample.session_id);
    const where = session ? `${session.label}, ${session.date}` : "a deleted session";
    const how =
      sample.confirmed_by === "teacher" ? "named by a teacher" : "recognised with certainty";
    const remove = h(
      "button",
      { type: "button", class: "danger", "aria-label": `Remove this face (${where})` },
      "Remove",
    );
    const card = h(
      "li",
      { class: "card sample", dataset: { sampleId: sample.sample_id } },
      apiImage(sample.crop_url, { alt: `${student.name} in ${where}`, className: "thumb" }),
      h(
        "div",
        { class: "card-body" },
        session
          ? h("a", { href: `#/c/${cid}/s/${enc(sample.session_id)}` }, where)
          : h("span", {}, where),
        h(
          "span",
          { class: "muted sample-how" },
          `${how} · ${formatDateTime(sample.confirmed_at)}`,
        ),
      ),
      h("div", { class: "card-actions" }, remove),
    );
    remove.addEventListener("click", async () => {
      const confirmed = await confirmDialog({
        title: `Remove this face of ${student.name}?`,
        text:
          `Recognition stops using this face from ${where} to know ${student.name}. ` +
          "The attendance already taken stays as it is.",
        action: "Remove the face",
      });
      if (!confirmed) return;
      clearError();
      try {
        await api(`${path}/samples/${enc(sample.sample_id)}`, {
          method: "DELETE",
          label: "Removing the face…",
        });
        card.remove();
        showEmpty();
        say(`The face from ${where} is no longer used to recognise ${student.name}.`);
      } catch (error) {
        showError(error);
      }
    });
    list.append(card);
  }
  showEmpty();
  return [list, empty];
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
        e.source === "teacher" && e.note !== null ? `${e.status} (set by teacher)` : e.status,
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
  // A data-protection request: everything held about the student, as a zip.
  const download = h("button", { type: "button", id: "student-export" }, "Download their data");
  download.addEventListener("click", async () => {
    clearError();
    try {
      const response = await api(`${path}/export`, {
        as: "response",
        label: "Collecting everything held about the student…",
      });
      saveBlob(await response.blob(), attachmentName(response, "student-data.zip"));
      say(`Everything held about ${student.name} was downloaded (a zip with a README).`);
    } catch (error) {
      showError(error);
    }
  });
  const needsPhoto = student.photo_count === 0;
  return [
    title,
    h(
      "p",
      { class: "muted", id: "student-photo-count" },
      needsPhoto ? "No photo yet" : plural(student.photo_count, "registration photo"),
    ),
    needsPhoto ? needsPhotoNotice(student) : null,
    h("div", { class: "actions left" }, rename, download, remove),
    addPhotoPanel(view, cid, student),
    h("h2", {}, "Registration photos"),
    needsPhoto ? h("p", { class: "empty" }, "None yet.") : photoCards(path, student),
    h("h2", {}, "Faces from class photos"),
    h(
      "p",
      { class: "hint" },
      "Recognition also uses these to know the student. Remove any that is not them.",
    ),
    ...sampleCards(cid, path, student, new Map(history.sessions.map((e) => [e.session_id, e]))),
    h("h2", {}, "Attendance"),
    h(
      "p",
      { id: "history-summary" },
      `Present at ${history.present_count} of ${plural(history.session_count, "session")}.`,
    ),
    historyTable(cid, history),
  ];
}
