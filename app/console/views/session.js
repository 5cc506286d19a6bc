// One session: add class photos (files or camera), each shown with its names and unknown faces,
// the roster present and absent, and the CSV.

import { api } from "../api.js";
import { cameraAvailable, takePhoto } from "../camera.js";
import { apiImage, formatTime, h, saveBlob } from "../dom.js";
import { clearError, plural, say, showError } from "../widgets/messages.js";
import { setClassCrumbs } from "../widgets/nav.js";
import { classPath, enc, sessionPath } from "../widgets/paths.js";

function photoResult(detail) {
  const named = detail.faces.filter((f) => f.known).map((f) => f.name);
  const unknown = detail.faces.map((f, i) => [f, i]).filter(([f]) => !f.known && !f.too_small);
  // Faces too small to recognise (grey boxes): counted, not listed as unknown people.
  const tooSmall = detail.faces.filter((f) => f.too_small).length;
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
    unknown.length
      ? h(
          "div",
          { class: "unknown-faces" },
          h("h4", {}, "Unknown faces"),
          h(
            "ul",
            { class: "crops" },
            unknown.map(([face, i]) =>
              h(
                "li",
                {},
                apiImage(detail.face_urls[i], { alt: `Unknown face ${i + 1}`, className: "crop" }),
              ),
            ),
          ),
        )
      : null,
  );
}

function rosterLists(session) {
  const present = session.roster.filter((e) => e.present);
  const absent = session.roster.filter((e) => !e.present);
  return h(
    "section",
    { class: "roster", "aria-label": "Roster" },
    h(
      "div",
      {},
      h("h3", {}, `Present (${present.length})`),
      h(
        "ul",
        { id: "present-list", class: "names" },
        present.map((e) =>
          h(
            "li",
            { dataset: { studentId: e.student_id } },
            h("span", { class: "student-name" }, e.name),
            h(
              "span",
              { class: "muted" },
              ` seen ${formatTime(e.recorded_at)} · match ${e.similarity.toFixed(2)}`,
            ),
          ),
        ),
      ),
    ),
    h(
      "div",
      {},
      h("h3", {}, `Absent (${absent.length})`),
      h(
        "ul",
        { id: "absent-list", class: "names" },
        absent.map((e) =>
          h(
            "li",
            { dataset: { studentId: e.student_id } },
            h("span", { class: "student-name" }, e.name),
          ),
        ),
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
            ? `Recorded present: ${result.recorded.length} student(s).`
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
      const blob = await api(`${path}/attendance.csv`, {
        as: "blob",
        label: "Preparing the CSV…",
      });
      saveBlob(blob, `${cid}-${sid}.csv`);
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
  const [klass, session] = await Promise.all([
    api(classPath(cid), { label: "Loading the session…" }),
    api(path),
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
  return [
    h("h1", {}, `${session.label}`),
    h(
      "p",
      { class: "session-meta", id: "session-counts" },
      `${session.date} · ${session.present_count} present, ${session.absent_count} absent`,
    ),
    uploadPanel(view, cid, sid),
    h(
      "div",
      { class: "session-body" },
      h(
        "section",
        { class: "photos", "aria-label": "Photos" },
        h("h2", {}, "Photos"),
        photos.length
          ? photos.map(photoResult)
          : h("p", { class: "empty" }, "No photo yet: add one or more photos of the class."),
      ),
      h("div", {}, h("h2", {}, "Roster"), rosterLists(session)),
    ),
  ];
}
