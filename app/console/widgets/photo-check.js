// Choosing a registration photo (file or camera) and checking it with the server before it can
// be saved: the photo with the student's face outlined, the verdict in a teacher's words, the
// measurements behind "Details". On a photo of several people every face is outlined and the
// teacher taps the student's: the server checks that face, and it is the one saved.

import { api } from "../api.js";
import { cameraAvailable, takePhoto } from "../camera.js";
import { h, objectUrl } from "../dom.js";
import { clearError } from "./messages.js";
import { classPath } from "./paths.js";

// The server's line saying the other faces were ignored: with the faces outlined (the one
// registered in green) this page shows it instead.
const IGNORED_FACES_WARNING = /were ignored|was ignored/;

function detailsReport(result) {
  const row = (label, value) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, value));
  const quality = result.quality;
  return h(
    "details",
    { class: "quality-report" },
    h("summary", {}, "Details"),
    h(
      "table",
      { class: "quality" },
      h("caption", {}, "Measurements of the face"),
      h(
        "tbody",
        {},
        row("Face size", `${Math.round(quality.face_size)} px`),
        row("Sharpness", `${Math.round(quality.sharpness)}`),
        row("Head turn", `yaw ${Math.round(quality.yaw)}°, pitch ${Math.round(quality.pitch)}°`),
        row("Detection score", quality.detection_score.toFixed(2)),
        result.similar_students.map((s) =>
          row(`Similarity with ${s.name}`, s.similarity.toFixed(2)),
        ),
      ),
    ),
  );
}

/** What the teacher should know about a usable photo, in their words. */
function advice(result) {
  const quality = result.quality.warnings.filter(
    (w) => !(result.quality.ignored_faces && IGNORED_FACES_WARNING.test(w)),
  );
  const lookAlikes = result.similar_students.map(
    (s) =>
      `This face looks very much like ${s.name}, another student of this class: check that ` +
      "it is the right person.",
  );
  return [...lookAlikes, ...quality];
}

function verdict(result) {
  const warnings = advice(result);
  if (!warnings.length) {
    return h("p", { class: "verdict good", id: "check-verdict" }, "Good photo: a clear face.");
  }
  return h(
    "div",
    { class: "verdict warn", id: "check-verdict" },
    h("p", {}, "Usable, but check this first:"),
    h(
      "ul",
      { class: "warnings" },
      warnings.map((w) => h("li", {}, w)),
    ),
  );
}

/** Puts ``element`` over ``box`` (in the photo's pixels), in percent so it scales with it. */
function placeOver(element, [x1, y1, x2, y2], width, height) {
  element.style.left = `${(100 * x1) / width}%`;
  element.style.top = `${(100 * y1) / height}%`;
  element.style.width = `${(100 * (x2 - x1)) / width}%`;
  element.style.height = `${(100 * (y2 - y1)) / height}%`;
}

/**
 * The photo with its faces outlined. ``faces`` are the faces found (``{index, box}``);
 * ``chosen`` the index of the one registered (null: none yet). With several faces each is a
 * button (``onChoose(index)``); ``size`` is the photo's ``{width, height}`` if the server gave it
 * (else the image's own, once loaded).
 */
function previewFigure(url, { faces = [], chosen = null, size = null, onChoose = null } = {}) {
  const image = h("img", { src: url, alt: "The photo to register" });
  const figure = h("figure", { class: "preview" }, image);
  const marks = [];
  if (faces.length > 1) {
    figure.classList.add("choosing");
    for (const face of faces) {
      const isChosen = face.index === chosen;
      const button = h(
        "button",
        {
          type: "button",
          class: isChosen ? "face-choice chosen" : "face-choice",
          "aria-pressed": isChosen ? "true" : "false",
          "aria-label": `Face ${face.index + 1} of ${faces.length}` + (isChosen ? ", chosen" : ""),
          dataset: { faceIndex: face.index },
        },
        h("span", { class: "face-number", "aria-hidden": "true" }, String(face.index + 1)),
      );
      if (onChoose) button.addEventListener("click", () => onChoose(face.index));
      marks.push([button, face.box]);
    }
  } else if (faces.length === 1) {
    marks.push([h("div", { class: "face-box", "aria-hidden": "true" }), faces[0].box]);
  }
  const placeAll = (width, height) => {
    for (const [mark, box] of marks) placeOver(mark, box, width, height);
  };
  if (size) placeAll(size.width, size.height);
  else image.addEventListener("load", () => placeAll(image.naturalWidth, image.naturalHeight));
  figure.append(...marks.map(([mark]) => mark));
  return figure;
}

/** The faces of a check, whichever way it answered (older servers give only ``box``). */
function facesOf(result) {
  return result.faces && result.faces.length ? result.faces : [{ index: 0, box: result.box }];
}

function manyFacesHint(count, chosen) {
  return h(
    "p",
    { class: "hint", id: "face-choice-hint" },
    chosen === null
      ? `This photo shows ${count} faces and none is clearly the student's. Tap the student's ` +
          "face on the photo."
      : `This photo shows ${count} faces; the one outlined in green is saved. If it is not the ` +
          "student, tap their face.",
  );
}

/**
 * The photo part of a form that saves a registration photo. ``onUsable(usable)`` is called
 * whenever the photo changes: false while it is being checked or when it was refused, true once
 * it may be saved. ``studentId``: the photo is for this enrolled student (their own photos are no
 * look-alike). ``photo()`` is the chosen photo; ``appendTo(body)`` adds it to a form with the face
 * the teacher tapped (the photo's only or dominant face without one); ``reset()`` forgets the
 * photo after saving.
 */
export function photoCheck(cid, onUsable, { studentId = null } = {}) {
  const fileInput = h("input", { id: "photo-file", type: "file", accept: "image/*" });
  const cameraButton = h("button", { type: "button", id: "photo-camera" }, "Use the camera");
  cameraButton.hidden = !cameraAvailable();
  const report = h("section", { id: "check-report", class: "report", "aria-live": "polite" });
  const retakeButton = h("button", { type: "button", hidden: true }, "Retake");

  let photo = null;
  let photoUrl = null;
  let chosenBox = null; // the face the teacher tapped, or null: the server's choice
  let lastSource = "file";

  async function check(file, faceIndex = null) {
    if (file !== photo) photoUrl = objectUrl(file);
    photo = file;
    chosenBox = null;
    onUsable(false);
    retakeButton.hidden = false;
    clearError();
    report.replaceChildren(previewFigure(photoUrl), h("p", {}, "Checking the photo…"));
    const form = new FormData();
    form.append("photo", file, file.name || "photo.jpg");
    if (studentId !== null) form.append("student_id", studentId);
    if (faceIndex !== null) form.append("face", String(faceIndex));
    let result;
    try {
      result = await api(`${classPath(cid)}/students/check`, {
        method: "POST",
        form,
        label: "Checking the photo…",
      });
    } catch (error) {
      if (photo !== file) return;
      const faces = error.body?.faces;
      if (error.status === 422 && Array.isArray(faces) && faces.length > 1) {
        report.replaceChildren(
          previewFigure(photoUrl, { faces, onChoose: (i) => check(file, i) }),
          h(
            "p",
            { class: "verdict bad", id: "check-verdict" },
            "Several faces: choose the student's.",
          ),
          manyFacesHint(faces.length, null),
        );
        report.querySelector(".face-choice")?.focus();
        return;
      }
      report.replaceChildren(
        previewFigure(photoUrl),
        h("p", { class: "verdict bad", id: "check-verdict" }, `Not usable: ${error.message}`),
        h("p", {}, "Retake the photo, or choose another: it must show the student's face."),
      );
      return;
    }
    if (photo !== file) return; // another photo was chosen meanwhile
    const faces = facesOf(result);
    const chosen = result.face ?? 0;
    if (faceIndex !== null) chosenBox = faces.find((f) => f.index === chosen)?.box ?? null;
    report.replaceChildren(
      previewFigure(photoUrl, {
        faces,
        chosen,
        size: result,
        onChoose: (i) => {
          if (i !== chosen) check(file, i);
        },
      }),
      verdict(result),
      ...(faces.length > 1 ? [manyFacesHint(faces.length, chosen)] : []),
      detailsReport(result),
    );
    if (faceIndex !== null) report.querySelector(".face-choice.chosen")?.focus();
    onUsable(true);
  }

  fileInput.addEventListener("change", () => {
    if (fileInput.files.length) {
      lastSource = "file";
      check(fileInput.files[0]);
    }
  });
  async function fromCamera() {
    const shot = await takePhoto({ facing: "user" });
    if (shot) {
      lastSource = "camera";
      fileInput.value = "";
      check(shot);
    }
  }
  cameraButton.addEventListener("click", fromCamera);
  retakeButton.addEventListener("click", () => {
    if (lastSource === "camera") fromCamera();
    else fileInput.click();
  });

  const fieldset = h(
    "fieldset",
    {},
    h("legend", {}, "Photo (the student's face, close and sharp)"),
    h("label", { for: "photo-file", class: "file-label" }, "Choose a photo file"),
    fileInput,
    cameraButton,
    cameraAvailable()
      ? null
      : h(
          "p",
          { class: "hint" },
          "The camera needs https: here; on a phone the file picker can take a photo.",
        ),
  );
  return {
    fieldset,
    report,
    retakeButton,
    photo: () => photo,
    // The form fields of the checked photo: the file, and the face the teacher tapped on a
    // photo of several people (none: the only or dominant one).
    appendTo(body) {
      body.append("photos", photo, photo.name || "photo.jpg");
      if (chosenBox) body.append("face", chosenBox.join(","));
    },
    reset() {
      photo = null;
      photoUrl = null;
      chosenBox = null;
      report.replaceChildren();
      retakeButton.hidden = true;
    },
  };
}
