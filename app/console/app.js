// The Rollcall console: one page, hash routes, plain DOM. Every piece of data comes from /v1.

import { api, ApiError, changeKey, currentKey } from "./api.js";
import { cameraAvailable, takePhoto } from "./camera.js";
import {
  apiImage,
  confirmDialog,
  formatDateTime,
  formatTime,
  h,
  listTable,
  objectUrl,
  renameDialog,
  revokeObjectUrls,
  saveBlob,
  SLUG_PATTERN,
  slugify,
  todayIso,
} from "./dom.js";

const HEAD_POLL_MS = 2000;
const enc = encodeURIComponent;
const classPath = (cid) => `/v1/classes/${enc(cid)}`;

// --- messages ---------------------------------------------------------------------------------

function say(text) {
  document.getElementById("status").textContent = text;
}

function showError(error) {
  const box = document.getElementById("error");
  const text = error instanceof Error ? error.message : String(error);
  box.textContent = text;
  box.hidden = !text;
}

function clearError() {
  showError("");
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// --- views ------------------------------------------------------------------------------------

/** What a view may use while it is on screen; ``alive()`` turns false once the route changes. */
class ViewContext {
  constructor(token) {
    this.token = token;
    this.timers = [];
  }
  alive() {
    return this.token === renderToken;
  }
  every(ms, callback) {
    this.timers.push(setInterval(callback, ms));
  }
  close() {
    for (const timer of this.timers) clearInterval(timer);
  }
}

let renderToken = 0;
let currentView = null;

function setCrumbs(items) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(
    ...items.map(([text, href], i) =>
      i === items.length - 1
        ? h("span", { "aria-current": "page" }, text)
        : h("a", { href }, text),
    ),
  );
  document.title = items.length ? `${items[items.length - 1][0]} · Rollcall` : "Rollcall";
}

function classTabs(cid, active) {
  const tab = (key, href, text) =>
    h("a", { href, class: "tab", "aria-current": key === active ? "page" : null }, text);
  return h(
    "nav",
    { class: "tabs", "aria-label": "Class" },
    tab("students", `#/c/${cid}`, "Students"),
    tab("register", `#/c/${cid}/register`, "Register a student"),
    tab("sessions", `#/c/${cid}/sessions`, "Sessions"),
  );
}

// --- classes ----------------------------------------------------------------------------------

async function classesView(view) {
  const classes = await api("/v1/classes", { label: "Loading classes…" });
  setCrumbs([["Classes", "#/"]]);
  const nameInput = h("input", { id: "class-name", name: "name", required: true, maxlength: 200 });
  const idInput = h("input", {
    id: "class-id",
    name: "id",
    required: true,
    pattern: SLUG_PATTERN,
    autocapitalize: "off",
    spellcheck: "false",
  });
  let idEdited = false;
  nameInput.addEventListener("input", () => {
    if (!idEdited) idInput.value = slugify(nameInput.value);
  });
  idInput.addEventListener("input", () => {
    idEdited = true;
  });
  const form = h(
    "form",
    { class: "panel", id: "new-class" },
    h("h2", {}, "New class"),
    h("label", { for: "class-name" }, "Name"),
    nameInput,
    h("label", { for: "class-id" }, "Id"),
    idInput,
    h("p", { class: "hint" }, "Lower-case letters, digits, - and _; used in links and CSV names."),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Create class"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      const created = await api("/v1/classes", {
        method: "POST",
        json: { id: idInput.value, name: nameInput.value },
        label: "Creating the class…",
      });
      say(`Class ${created.name} created.`);
      location.hash = `#/c/${created.id}`;
    } catch (error) {
      showError(error);
    }
  });
  const list = classes.length
    ? h(
        "ul",
        { class: "cards classes", "aria-label": "Classes" },
        classes.map((c) =>
          h(
            "li",
            { class: "card" },
            h("a", { href: `#/c/${c.id}`, class: "card-title" }, c.name),
            h("span", { class: "muted" }, `${c.id} · ${plural(c.student_count, "student")}`),
          ),
        ),
      )
    : h("p", { class: "empty" }, "No class yet: create one.");
  return [h("h1", {}, "Classes"), list, form];
}

// --- one class: students ----------------------------------------------------------------------

function headText(head) {
  if (!head) return "";
  const version = head.version ? `version ${head.version}` : "";
  switch (head.state) {
    case "training":
      return version ? `Retraining (${version} in use)…` : "Training the first head…";
    case "ready":
      return `${version}, up to date with every photo`;
    case "stale":
      return `${version}, retraining due (photos changed)`;
    case "failed":
      return `training failed: ${head.error || "unknown error"}`;
    default:
      return "none yet (trained once the class has two students)";
  }
}

function headLine(view, cid, head) {
  const text = h("span", { id: "head-state", dataset: { state: head.state } }, headText(head));
  const line = h("p", { class: "head-line" }, "Recognition head: ", text);
  const spinner = h("span", { class: "spinner", "aria-hidden": "true" });
  const update = (next) => {
    text.textContent = headText(next);
    text.dataset.state = next.state;
    spinner.hidden = next.state !== "training";
  };
  line.prepend(spinner);
  update(head);
  view.every(HEAD_POLL_MS, async () => {
    // Only while a training is running or due; a settled head needs no polling.
    if (!["training", "stale"].includes(text.dataset.state) || !view.alive()) return;
    try {
      update((await api(classPath(cid))).head);
    } catch {
      // a failed poll changes nothing; the next one tries again
    }
  });
  return { line, refresh: async () => update((await api(classPath(cid))).head) };
}

async function renameStudent(cid, student, onRenamed) {
  const name = await renameDialog(student.name);
  if (name === null) return;
  clearError();
  try {
    const renamed = await api(`${classPath(cid)}/students/${enc(student.id)}`, {
      method: "PATCH",
      json: { name },
      label: "Renaming…",
    });
    say(`${student.name} is now called ${renamed.name}.`);
    student.name = renamed.name;
    onRenamed(renamed);
  } catch (error) {
    showError(error);
  }
}

async function deleteStudent(cid, student) {
  const confirmed = await confirmDialog({
    title: `Delete ${student.name}?`,
    text:
      `${student.name}'s registration photos and face embeddings are erased, with their ` +
      "attendance records in every session. This cannot be undone.",
    action: `Delete ${student.name}`,
  });
  if (!confirmed) return false;
  clearError();
  try {
    await api(`${classPath(cid)}/students/${enc(student.id)}`, {
      method: "DELETE",
      label: `Deleting ${student.name}…`,
    });
    say(`${student.name} deleted: photos and embeddings erased.`);
    return true;
  } catch (error) {
    showError(error);
    return false;
  }
}

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
  const thumbnail = apiImage(`${classPath(cid)}/students/${enc(student.id)}/thumbnail.jpg`, {
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

async function classView(view, cid) {
  const [klass, students] = await Promise.all([
    api(classPath(cid), { label: "Loading the class…" }),
    api(`${classPath(cid)}/students`),
  ]);
  setCrumbs([
    ["Classes", "#/"],
    [klass.name, `#/c/${cid}`],
  ]);
  const head = headLine(view, cid, klass.head);
  const count = h("p", { class: "muted", id: "student-count" });
  let remaining = students.length;
  const showCount = () => {
    count.textContent = `${plural(remaining, "student")} enrolled.`;
  };
  showCount();
  const onDeleted = () => {
    remaining -= 1;
    showCount();
    head.refresh().catch(() => {});
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
  const deleteClass = h("button", { type: "button", class: "danger subtle" }, "Delete this class");
  deleteClass.addEventListener("click", async () => {
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
  return [
    h("h1", {}, klass.name),
    classTabs(cid, "students"),
    head.line,
    count,
    grid,
    h("div", { class: "footer-actions" }, deleteClass),
  ];
}

// --- registering a student ----------------------------------------------------------------------

function qualityTable(quality) {
  const row = (label, value) => h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, value));
  return h(
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

async function registerView(view, cid) {
  const klass = await api(classPath(cid), { label: "Loading the class…" });
  setCrumbs([
    ["Classes", "#/"],
    [klass.name, `#/c/${cid}`],
    ["Register a student", `#/c/${cid}/register`],
  ]);
  const nameInput = h("input", {
    id: "student-name",
    name: "name",
    required: true,
    maxlength: 200,
    autocomplete: "off",
  });
  const idInput = h("input", {
    id: "student-id",
    name: "student_id",
    required: true,
    pattern: SLUG_PATTERN,
    autocapitalize: "off",
    spellcheck: "false",
  });
  let idEdited = false;
  nameInput.addEventListener("input", () => {
    if (!idEdited) idInput.value = slugify(nameInput.value);
  });
  idInput.addEventListener("input", () => {
    idEdited = idInput.value !== "";
  });
  const fileInput = h("input", { id: "photo-file", type: "file", accept: "image/*" });
  const cameraButton = h("button", { type: "button", id: "photo-camera" }, "Use the camera");
  cameraButton.hidden = !cameraAvailable();
  const report = h("section", { id: "check-report", class: "report", "aria-live": "polite" });
  const saveButton = h(
    "button",
    { type: "submit", class: "primary", disabled: true },
    "Save student",
  );
  const retakeButton = h("button", { type: "button", hidden: true }, "Retake");
  const registered = h("ul", { class: "registered", "aria-labelledby": "registered-title" });
  const registeredTitle = h("h3", { id: "registered-title", hidden: true }, "Registered just now");

  let photo = null;
  let lastSource = "file";

  async function check(file) {
    photo = file;
    saveButton.disabled = true;
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
    const verdict = result.warnings.length
      ? h(
          "div",
          { class: "verdict warn", id: "check-verdict" },
          h("p", {}, "Usable, but check this first:"),
          h(
            "ul",
            { class: "warnings" },
            result.warnings.map((w) => h("li", {}, w)),
          ),
        )
      : h("p", { class: "verdict good", id: "check-verdict" }, "Good photo: one clear face.");
    report.replaceChildren(previewFigure(file, result), verdict, qualityTable(result.quality));
    saveButton.disabled = false;
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

  const form = h(
    "form",
    { class: "panel", id: "register-form" },
    h("label", { for: "student-name" }, "Name"),
    nameInput,
    h("label", { for: "student-id" }, "Student id"),
    idInput,
    h("p", { class: "hint" }, "Filled in from the name; lower-case letters, digits, - and _."),
    h(
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
    ),
    report,
    h("div", { class: "actions" }, retakeButton, saveButton),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!photo) return;
    clearError();
    const body = new FormData();
    body.append("student_id", idInput.value);
    body.append("name", nameInput.value);
    body.append("photos", photo, photo.name || "photo.jpg");
    saveButton.disabled = true;
    try {
      const result = await api(`${classPath(cid)}/students`, {
        method: "POST",
        form: body,
        label: `Saving ${nameInput.value}…`,
      });
      const student = result.student;
      say(`${student.name} registered.`);
      registeredTitle.hidden = false;
      registered.append(
        h(
          "li",
          {},
          h("a", { href: `#/c/${cid}/student/${student.id}` }, student.name),
          result.warnings.length ? ` (${result.warnings.join("; ")})` : "",
        ),
      );
      form.reset();
      idEdited = false;
      photo = null;
      report.replaceChildren();
      retakeButton.hidden = true;
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

// --- sessions -----------------------------------------------------------------------------------

async function sessionsView(view, cid) {
  const [klass, sessions] = await Promise.all([
    api(classPath(cid), { label: "Loading sessions…" }),
    api(`${classPath(cid)}/sessions`),
  ]);
  setCrumbs([
    ["Classes", "#/"],
    [klass.name, `#/c/${cid}`],
    ["Sessions", `#/c/${cid}/sessions`],
  ]);
  const label = h("input", {
    id: "session-label",
    required: true,
    maxlength: 200,
    value: "Lesson",
  });
  const date = h("input", { id: "session-date", type: "date", required: true, value: todayIso() });
  const form = h(
    "form",
    { class: "panel inline-form", id: "new-session" },
    h("h2", {}, "Start a session"),
    h("label", { for: "session-label" }, "Label"),
    label,
    h("label", { for: "session-date" }, "Date"),
    date,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Start session"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      const session = await api(`${classPath(cid)}/sessions`, {
        method: "POST",
        json: { label: label.value, date: date.value },
        label: "Starting the session…",
      });
      location.hash = `#/c/${cid}/s/${session.id}`;
    } catch (error) {
      showError(error);
    }
  });
  const newestFirst = [...sessions].reverse();
  const table = listTable({
    id: "sessions-table",
    caption: "Past sessions",
    headers: ["Date", "Session", "Present", "Photos"],
    rows: newestFirst.map((s) => ({
      attributes: { dataset: { sessionId: s.id } },
      cells: [
        s.date,
        h("a", { href: `#/c/${cid}/s/${s.id}` }, s.label),
        `${s.present_count} of ${klass.student_count}`,
        String(s.photo_count),
      ],
    })),
    empty: "No session yet.",
  });
  return [h("h1", {}, klass.name), classTabs(cid, "sessions"), form, table];
}

function photoResult(detail) {
  const named = detail.faces.filter((f) => f.known).map((f) => f.name);
  const unknown = detail.faces.map((f, i) => [f, i]).filter(([f]) => !f.known);
  const caption = detail.faces.length
    ? `${plural(detail.faces.length, "face")}: ` +
      (named.length ? named.join(", ") : "nobody recognised") +
      (unknown.length ? `; ${unknown.length} unknown` : "")
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

async function sessionView(view, cid, sid) {
  const sessionPath = `${classPath(cid)}/sessions/${enc(sid)}`;
  const [klass, session] = await Promise.all([
    api(classPath(cid), { label: "Loading the session…" }),
    api(sessionPath),
  ]);
  const photos = await Promise.all(
    session.photo_ids.map((pid) => api(`${sessionPath}/photos/${enc(pid)}`)),
  );
  setCrumbs([
    ["Classes", "#/"],
    [klass.name, `#/c/${cid}`],
    ["Sessions", `#/c/${cid}/sessions`],
    [session.label, `#/c/${cid}/s/${sid}`],
  ]);
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
        const result = await api(`${sessionPath}/photos`, {
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
    if (view.alive()) await render();
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
      const blob = await api(`${sessionPath}/attendance.csv`, {
        as: "blob",
        label: "Preparing the CSV…",
      });
      saveBlob(blob, `${cid}-${sid}.csv`);
    } catch (error) {
      showError(error);
    }
  });

  return [
    h("h1", {}, `${session.label}`),
    h(
      "p",
      { class: "session-meta", id: "session-counts" },
      `${session.date} · ${session.present_count} present, ${session.absent_count} absent`,
    ),
    h(
      "div",
      { class: "panel upload" },
      h("label", { for: "session-photos", class: "file-label" }, "Add class photos"),
      fileInput,
      cameraButton,
      download,
    ),
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

// --- one student --------------------------------------------------------------------------------

async function studentView(view, cid, studentId) {
  const studentPath = `${classPath(cid)}/students/${enc(studentId)}`;
  const [klass, student, history] = await Promise.all([
    api(classPath(cid), { label: "Loading the student…" }),
    api(studentPath),
    api(`${studentPath}/attendance`),
  ]);
  setCrumbs([
    ["Classes", "#/"],
    [klass.name, `#/c/${cid}`],
    [student.name, `#/c/${cid}/student/${studentId}`],
  ]);
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
  const photos = h(
    "ul",
    { class: "cards photos-list", "aria-label": "Registration photos" },
    student.photos.map((p) =>
      h(
        "li",
        { class: "card" },
        apiImage(`${studentPath}/photos/${enc(p.photo_id)}/thumbnail.jpg`, {
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
  const table = listTable({
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
  return [
    title,
    h("p", { class: "muted" }, `${student.id} · ${plural(student.photo_count, "photo")}`),
    h("div", { class: "actions left" }, rename, remove),
    h("h2", {}, "Registration photos"),
    photos,
    h("h2", {}, "Attendance"),
    h(
      "p",
      { id: "history-summary" },
      `Present at ${history.present_count} of ${plural(history.session_count, "session")}.`,
    ),
    table,
  ];
}

// --- routing ------------------------------------------------------------------------------------

const ROUTES = [
  [/^#?\/?$/, classesView],
  [/^#\/c\/([^/]+)$/, classView],
  [/^#\/c\/([^/]+)\/register$/, registerView],
  [/^#\/c\/([^/]+)\/sessions$/, sessionsView],
  [/^#\/c\/([^/]+)\/s\/([^/]+)$/, sessionView],
  [/^#\/c\/([^/]+)\/student\/([^/]+)$/, studentView],
];

async function render() {
  renderToken += 1;
  const view = new ViewContext(renderToken);
  if (currentView) currentView.close();
  currentView = view;
  const main = document.getElementById("view");
  const hash = location.hash || "#/";
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) {
    location.hash = "#/";
    return;
  }
  const params = route[0].exec(hash).slice(1).map(decodeURIComponent);
  try {
    const content = await route[1](view, ...params);
    if (!view.alive()) return;
    revokeObjectUrls();
    main.replaceChildren(...content);
    main.dataset.view = route[1].name;
  } catch (error) {
    if (!view.alive()) return;
    main.replaceChildren(
      h(
        "h1",
        {},
        error instanceof ApiError && error.status === 404 ? "Not found" : "Something went wrong",
      ),
      h("p", {}, error.message),
      h("p", {}, h("a", { href: "#/" }, "Back to the classes")),
    );
    main.dataset.view = "error";
  }
}

function start() {
  window.addEventListener("hashchange", () => {
    clearError();
    render().then(() => document.getElementById("view").focus({ preventScroll: true }));
  });
  const keyButton = document.getElementById("key-button");
  keyButton.hidden = !currentKey();
  keyButton.addEventListener("click", async () => {
    if ((await changeKey()) !== null) render();
  });
  render();
}

start();
