// Choosing a registration photo (file or camera) and checking it with the server before it can
// be saved: the photo with its face outlined, the verdict, and the quality figures.

import { api } from "../api.js";
import { cameraAvailable, takePhoto } from "../camera.js";
import { h, objectUrl } from "../dom.js";
import { clearError } from "./messages.js";
import { classPath } from "./paths.js";

function qualityReport(quality) {
  const row = (label, value) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, value));
  return h(
    "details",
    { class: "quality-report" },
    h("summary", {}, "Quality report"),
    h(
      "table",
      { class: "quality" },
      h("caption", {}, "Quality report"),
      h(
        "tbody",
        {},
        row("Face size", `${Math.round(quality.face_size)} px`),
        row("Sharpness", `${Math.round(quality.sharpness)}`),
        row("Head turn", `yaw ${Math.round(quality.yaw)}°, pitch ${Math.round(quality.pitch)}°`),
        row("Detection score", quality.detection_score.toFixed(2)),
      ),
    ),
  );
}

/** The photo with the detected face outlined (the box in percent, so it scales with the image). */
function previewFigure(file, check) {
  const image = h("img", { src: objectUrl(file), alt: "The photo to register" });
  const figure = h("figure", { class: "preview" }, image);
  if (check) {
    const [x1, y1, x2, y2] = check.box;
    const box = h("div", { class: "face-box", "aria-hidden": "true" });
    box.style.left = `${(100 * x1) / check.width}%`;
    box.style.top = `${(100 * y1) / check.height}%`;
    box.style.width = `${(100 * (x2 - x1)) / check.width}%`;
    box.style.height = `${(100 * (y2 - y1)) / check.height}%`;
    figure.append(box);
  }
  return figure;
}

function verdict(result) {
  if (!result.warnings.length) {
    return h("p", { class: "verdict good", id: "check-verdict" }, "Good photo: one clear face.");
  }
  return h(
    "div",
    { class: "verdict warn", id: "check-verdict" },
    h("p", {}, "Usable, but check this first:"),
    h(
      "ul",
      { class: "warnings" },
      result.warnings.map((w) => h("li", {}, w)),
    ),
  );
}

/**
 * The photo part of the registration form. ``onUsable(usable)`` is called whenever the photo
 * changes: false while it is being checked or when it was refused, true once it may be saved.
 * ``photo()`` is the chosen photo; ``reset()`` forgets it after saving.
 */
export function photoCheck(cid, onUsable) {
  const fileInput = h("input", { id: "photo-file", type: "file", accept: "image/*" });
  const cameraButton = h("button", { type: "button", id: "photo-camera" }, "Use the camera");
  cameraButton.hidden = !cameraAvailable();
  const report = h("section", { id: "check-report", class: "report", "aria-live": "polite" });
  const retakeButton = h("button", { type: "button", hidden: true }, "Retake");

  let photo = null;
  let lastSource = "file";

  async function check(file) {
    photo = file;
    onUsable(false);
    retakeButton.hidden = false;
    clearError();
    report.replaceChildren(previewFigure(file, null), h("p", {}, "Checking the photo…"));
    const form = new FormData();
    form.append("photo", file, file.name || "photo.jpg");
    let result;
    try {
      result = await api(`${classPath(cid)}/students/check`, {
        method: "POST",
        form,
        label: "Checking the photo…",
      });
    } catch (error) {
      if (photo !== file) return;
      report.replaceChildren(
        previewFigure(file, null),
        h("p", { class: "verdict bad", id: "check-verdict" }, `Not usable: ${error.message}`),
        h("p", {}, "Retake the photo, or choose another: it must show exactly one face."),
      );
      return;
    }
    if (photo !== file) return; // another photo was chosen meanwhile
    report.replaceChildren(
      previewFigure(file, result),
      verdict(result),
      qualityReport(result.quality),
    );
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
    h("legend", {}, "Photo (one face, close and sharp)"),
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
    reset() {
      photo = null;
      report.replaceChildren();
      retakeButton.hidden = true;
    },
  };
}
