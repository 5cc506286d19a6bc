// One session: add class photos (files or camera), each shown with its faces (the teacher can
// name or correct any of them), the roster present and absent (each status can be set by hand),
// and the CSV.

import { api } from "../api.js";
import { cameraAvailable, takePhoto } from "../camera.js";
import {
  apiImage,
  attachmentName,
  confirmDialog,
  formatDateTime,
  formatTime,
  h,
  saveBlob,
} from "../dom.js";
import { pickStudent } from "../widgets/face-picker.js";
import { clearError, plural, say, showError } from "../widgets/messages.js";
import { setClassCrumbs } from "../widgets/nav.js";
import { classPath, enc, sessionPath } from "../widgets/paths.js";
import { chooseStatus } from "../widgets/status-dialog.js";

/** Who corrected something: the API key's label, or "teacher" for the console without a key. */
function who(correctedBy) {
  return !correctedBy || correctedBy === "console" ? "teacher" : correctedBy;
}

/** What a face of a photo is now, in words: its name, or why it has none. */
function faceWords(face) {
  if (face.not_in_class) return "not in this class";
  if (face.known) return face.name;
  if (face.too_small) return "too small to recognise";
  return "unknown";
}

function faceKind(face) {
  if (face.not_in_class) return "not-in-class";
  if (face.known) return face.source === "teacher" ? "named" : "known";
  return face.too_small ? "too-small" : "unknown";
}

/** One face as a button: its crop, who it is, and whether the teacher named it. */
function faceButton(detail, face, i, onChoose) {
  const words = faceWords(face);
  const byTeacher = face.source === "teacher";
  const button = h(
    "button",
    {
      type: "button",
      class: `face-button ${faceKind(face)}`,
      dataset: { faceIndex: i, studentId: face.student_id || "" },
      "aria-label":
        `Face ${i + 1}: ${words}${byTeacher ? ", named by teacher" : ""}. ` +
        "Change who this is",
    },
    apiImage(detail.face_urls[i], { alt: "", className: "crop" }),
    h("span", { class: "face-number" }, `Face ${i + 1}`),
    h("span", { class: "face-name" }, face.known ? face.name : words),
    byTeacher ? h("span", { class: "face-source" }, "named by teacher") : null,
  );
  button.addEventListener("click", () => onChoose(i));
  return button;
}

function photoResult(detail, onChooseFace) {
  const named = detail.faces.filter((f) => f.known).map((f) => f.name);
  const unknown = detail.faces.filter((f) => !f.known && !f.too_small && !f.not_in_class);
  // Faces too small to recognise (grey boxes): counted, not listed as unknown people.
  const tooSmall = detail.faces.filter((f) => f.too_small && !f.known).length;
  const caption = detail.faces.length
    ? `${plural(detail.faces.length, "face")}: ` +
      (named.length ? named.join(", ") : "nobody recognised") +
      (unknown.length ? `; ${unknown.length} unknown` : "") +
      (tooSmall ? `; ${tooSmall} too small to recognise (take the photo closer)` : "")
    : "No face found in this photo.";
  return h(
    "article",
    { class: "photo-result", dataset: { photoId: detail.photo_id } },
    h(
      "figure",
      {},
      apiImage(detail.annotated_url, {
        alt: `Class photo with names on the faces: ${named.join(", ") || "none recognised"}`,
        className: "annotated",
      }),
      h("figcaption", {}, caption),
    ),
    detail.faces.length
      ? h(
          "div",
          { class: "faces" },
          h("h4", {}, "Faces"),
          h("p", { class: "hint" }, "Choose a face to say who it is, or to correct its name."),
          h(
            "ul",
            { class: "crops face-list" },
            detail.faces.map((face, i) =>
              h("li", {}, faceButton(detail, face, i, (index) => onChooseFace(detail, index))),
            ),
          ),
        )
      : null,
  );
}

/** How the entry's status was decided, in words ("" when recognition decided it). */
function correctionWords(entry) {
  if (entry.source !== "teacher") return "";
  const when = entry.corrected_at ? ` · ${formatDateTime(entry.corrected_at)}` : "";
  // A note (even empty) comes only with a status set by hand; otherwise a face was named.
  const manual = entry.note !== null && entry.note !== undefined;
  return manual
    ? `set by ${who(entry.corrected_by)}${when}`
    : `named in a photo by ${who(entry.corrected_by)}${when}`;
}

function hasManualStatus(entry) {
  return entry.source === "teacher" && entry.note !== null && entry.note !== undefined;
}

function rosterRow(entry, actions, needsPhoto) {
  const setButton = h(
    "button",
    { type: "button", class: "small", "aria-label": `Set the status of ${entry.name}` },
    "Set status",
  );
  setButton.addEventListener("click", () => actions.setStatus(entry));
  let undoButton = null;
  if (hasManualStatus(entry)) {
    undoButton = h(
      "button",
      {
        type: "button",
        class: "small",
        "aria-label": `Use recognition again for ${entry.name}`,
      },
      "Use recognition again",
    );
    undoButton.addEventListener("click", () => actions.clearStatus(entry));
  }
  const seen = entry.recorded_at ? `seen ${formatTime(entry.recorded_at)}` : "";
  const corrected = correctionWords(entry);
  const showStatus = entry.status === "late" || entry.status === "excused" || corrected;
  return h(
    "li",
    {
      dataset: { studentId: entry.student_id, status: entry.status, source: entry.source || "" },
      class: corrected ? "corrected" : null,
    },
    h(
      "div",
      { class: "roster-line" },
      h("span", { class: "student-name" }, entry.name),
      showStatus ? h("span", { class: `status-tag ${entry.status}` }, entry.status) : null,
      seen ? h("span", { class: "muted" }, ` ${seen}`) : null,
      needsPhoto.has(entry.student_id)
        ? h("span", { class: "needs-photo-tag" }, "needs a photo")
        : null,
    ),
    corrected ? h("p", { class: "correction" }, corrected) : null,
    entry.note ? h("p", { class: "note" }, `Note: ${entry.note}`) : null,
    h("div", { class: "row-actions" }, setButton, undoButton),
    entry.similarity !== null && entry.similarity !== undefined
      ? h(
          "details",
          { class: "row-details" },
          h("summary", {}, "Details"),
          h(
            "p",
            { class: "muted" },
            `Recognised: similarity ${entry.similarity.toFixed(2)}` +
              (entry.score !== null && entry.score !== undefined
                ? `, score ${entry.score.toFixed(2)}`
                : "") +
              (entry.face_index !== null ? `, face ${entry.face_index + 1}` : ""),
          ),
        )
      : null,
  );
}

/** ``needsPhoto``: the ids of students without a registration photo (recognition cannot see
 * them: their status is set by hand). */
function rosterLists(session, actions, needsPhoto) {
  // Late counts as attending, excused as not (as in the term report).
  const present = session.roster.filter((e) => e.present);
  const absent = session.roster.filter((e) => !e.present);
  return h(
    "div",
    { class: "roster" },
    h(
      "div",
      {},
      h("h3", {}, `Present (${present.length})`),
      h(
        "ul",
        { id: "present-list", class: "names" },
        present.map((e) => rosterRow(e, actions, needsPhoto)),
      ),
    ),
    h(
      "div",
      {},
      h("h3", {}, `Absent (${absent.length})`),
      h(
        "ul",
        { id: "absent-list", class: "names" },
        absent.map((e) => rosterRow(e, actions, needsPhoto)),
      ),
    ),
  );
}

/** The upload panel: photos go up one by one, then the page is drawn again. */
function uploadPanel(view, cid, sid) {
  const path = sessionPath(cid, sid);
  const fileInput = h("input", {
    id: "session-photos",
    type: "file",
    accept: "image/*",
    multiple: true,
  });
  const cameraButton = h("button", { type: "button" }, "Take a photo");
  cameraButton.hidden = !cameraAvailable();
  const download = h("button", { type: "button", id: "download-csv" }, "Download CSV");

  async function upload(files) {
    clearError();
    const failures = [];
    for (const [i, file] of files.entries()) {
      const form = new FormData();
      form.append("photo", file, file.name || "photo.jpg");
      const which = files.length > 1 ? ` ${i + 1} of ${files.length}` : "";
      try {
        const result = await api(`${path}/photos`, {
          method: "POST",
          form,
          label: `Recognising faces in photo${which}…`,
        });
        say(
          result.recorded.length
            ? `${plural(result.recorded.length, "student")} recorded present.`
            : result.message || "Nobody new recognised in this photo.",
        );
      } catch (error) {
        failures.push(`${file.name || "photo"}: ${error.message}`);
      }
    }
    if (view.alive()) await view.redraw();
    if (failures.length) showError(failures.join(" "));
  }
  fileInput.addEventListener("change", () => {
    const files = [...fileInput.files];
    fileInput.value = "";
    if (files.length) upload(files);
  });
  cameraButton.addEventListener("click", async () => {
    const shot = await takePhoto({ facing: "environment" });
    if (shot) upload([shot]);
  });
  download.addEventListener("click", async () => {
    clearError();
    try {
      const response = await api(`${path}/attendance.csv`, {
        as: "response",
        label: "Preparing the CSV…",
      });
      // The server names the file for people (class, session, date): keep its name.
      saveBlob(await response.blob(), attachmentName(response, "attendance.csv"));
    } catch (error) {
      showError(error);
    }
  });
  return h(
    "div",
    { class: "panel upload" },
    h("label", { for: "session-photos", class: "file-label" }, "Add class photos"),
    fileInput,
    cameraButton,
    download,
  );
}

export async function sessionView(view, cid, sid) {
  const path = sessionPath(cid, sid);
  const [klass, session, students] = await Promise.all([
    api(classPath(cid), { label: "Loading the session…" }),
    api(path),
    api(`${classPath(cid)}/students`),
  ]);
  const photos = await Promise.all(
    session.photo_ids.map((pid) => api(`${path}/photos/${enc(pid)}`)),
  );
  setClassCrumbs(
    cid,
    klass,
    ["Sessions", `#/c/${cid}/sessions`],
    [session.label, `#/c/${cid}/s/${sid}`],
  );

  const counts = h("p", { class: "session-meta", id: "session-counts" });
  const roster = h("div", { id: "roster" });
  const rosterActions = {
    setStatus: async (entry) => {
      const chosen = await chooseStatus(entry);
      if (chosen === null) return;
      await correct(
        () =>
          api(`${path}/records/${enc(entry.student_id)}`, {
            method: "PUT",
            json: chosen,
            label: `Saving ${entry.name}'s status…`,
          }),
        `${entry.name}: ${chosen.status}, set by you.`,
      );
    },
    clearStatus: async (entry) => {
      await correct(
        () =>
          api(`${path}/records/${enc(entry.student_id)}`, {
            method: "DELETE",
            label: `Removing ${entry.name}'s status…`,
          }),
        `${entry.name}: the photos decide again.`,
      );
    },
  };
  const needsPhoto = new Set(students.filter((s) => s.photo_count === 0).map((s) => s.id));
  const showRoster = (current) => {
    counts.textContent =
      `${current.date} · ${current.present_count} present, ` + `${current.absent_count} absent`;
    roster.replaceChildren(rosterLists(current, rosterActions, needsPhoto));
  };
  async function refreshRoster() {
    const current = await api(path);
    if (view.alive()) showRoster(current);
  }
  async function correct(call, done) {
    clearError();
    try {
      await call();
      say(done);
      await refreshRoster();
    } catch (error) {
      showError(error);
    }
  }

  /** Asks before a name moves from another face of the photo; true when it may go ahead. */
  function confirmMove(student, from, to, byTeacher) {
    return confirmDialog({
      title: `Move ${student.name}'s name?`,
      text: byTeacher
        ? `${student.name} is on face ${from + 1} (you named it). Move the name to face ` +
          `${to + 1}? Face ${from + 1} goes back to what recognition found; you can name it ` +
          "again afterwards."
        : `${student.name} is on face ${from + 1}. Move the name to face ${to + 1}? ` +
          `Face ${from + 1} becomes unknown.`,
      action: "Move the name",
      danger: false,
    });
  }

  async function nameFace(detail, index) {
    const face = detail.faces[index];
    const article = document.querySelector(`.photo-result[data-photo-id="${detail.photo_id}"]`);
    const placedOn = new Map(
      detail.faces
        .map((f, i) => [f.student_id, i])
        .filter(([studentId, i]) => studentId && i !== index)
        .map(([studentId, i]) => [studentId, `face ${i + 1}`]),
    );
    const choice = await pickStudent({
      students,
      currentId: face.student_id,
      cropUrl: detail.face_urls[index],
      faceLabel: `face ${index + 1}`,
      placedOn,
    });
    if (choice === null || !view.alive()) return;
    const student = students.find((s) => s.id === choice.studentId);
    // A student is on one face of a photo at most: naming them here takes their name from the
    // face that has it now. Recognition's name moves in one call (that face becomes unknown);
    // a name the teacher gave is first taken back from that face (DELETE .../assign: it gets
    // recognition's answer again, less this student).
    const from = student
      ? detail.faces.findIndex((f, i) => i !== index && f.student_id === student.id)
      : -1;
    const byTeacher = from >= 0 && detail.faces[from].source === "teacher";
    if (from >= 0 && !(await confirmMove(student, from, index, byTeacher))) return;
    if (!view.alive()) return;
    clearError();
    const assign = (faceIndex, studentId, label) =>
      api(`${path}/photos/${enc(detail.photo_id)}/faces/${faceIndex}/assign`, {
        method: "POST",
        json: { student_id: studentId },
        label,
      });
    let updated;
    try {
      if (byTeacher)
        await api(`${path}/photos/${enc(detail.photo_id)}/faces/${from}/assign`, {
          method: "DELETE",
          label: `Taking ${student.name}'s name off face ${from + 1}…`,
        });
      updated = await assign(index, choice.studentId, "Saving who this is…");
    } catch (error) {
      if (error.status === 409 && student) {
        showError(
          `${student.name} has just been named on another face of this photo (by someone ` +
            "else, or in another tab). The page is shown again as it is now.",
        );
        if (view.alive()) await view.redraw();
      } else showError(error);
      return;
    }
    if (!view.alive()) return;
    const redrawn = photoResult(updated, nameFace);
    if (article) article.replaceWith(redrawn);
    redrawn.querySelector(`.face-button[data-face-index="${index}"]`)?.focus();
    const named = student
      ? `Face ${index + 1} is ${student.name}: present.`
      : `Face ${index + 1}: not in this class.`;
    say(from >= 0 ? `${named} Face ${from + 1} is now ${faceWords(updated.faces[from])}.` : named);
    try {
      await refreshRoster();
    } catch (error) {
      showError(error);
    }
  }

  showRoster(session);
  // The roster comes first: on a phone (one column) it is what the teacher looks for, not
  // below every photo; on a wide screen the photos take the left column (style.css).
  return [
    h("h1", {}, `${session.label}`),
    counts,
    uploadPanel(view, cid, sid),
    h(
      "div",
      { class: "session-body" },
      h(
        "section",
        { class: "roster-column", "aria-labelledby": "roster-title" },
        h("h2", { id: "roster-title" }, "Roster"),
        roster,
      ),
      h(
        "section",
        { class: "photos", "aria-labelledby": "photos-title" },
        h("h2", { id: "photos-title" }, "Photos"),
        photos.length
          ? photos.map((detail) => photoResult(detail, nameFace))
          : h("p", { class: "empty" }, "No photo yet: add one or more photos of the class."),
      ),
    ),
  ];
}
