// Importing the school's roster: the form that sends the roster (a OneRoster export or a plain
// CSV) with a zip of ID photos, the recent imports, and one import followed as it runs: how far
// it is, what it created, the students who still need a photo (with the reason) and those the
// roster no longer has.

import { api } from "../api.js";
import { confirmDialog, formatDateTime, h, listTable } from "../dom.js";
import { clearError, plural, showError } from "../widgets/messages.js";
import { setCrumbs } from "../widgets/nav.js";
import { classPath, enc } from "../widgets/paths.js";

const POLL_MS = 1000;
const RUNNING = ["queued", "running"];

const KINDS = {
  oneroster: {
    label: "OneRoster export (a zip of CSV files)",
    file: "The OneRoster zip",
    accept: ".zip,application/zip",
  },
  csv: {
    label: "A list saved as CSV: class, student name, photo file, student number (optional)",
    file: "The CSV file",
    accept: ".csv,text/csv",
  },
};

const PHOTO_KEYS = [
  ["sourcedId", "the student's roster id (sourcedId)"],
  ["identifier", "the student number (identifier)"],
  ["username", "the student's username"],
];

/** Why an import was refused, in a teacher's words (nothing was stored in any case). */
function refusedWords(error) {
  switch (error.status) {
    case 403:
      return (
        "Only an API key for the whole school can import a roster; this key is limited to " +
        "some classes. Nothing was imported."
      );
    case 413:
      return (
        `The files are too large for this server (${error.message}). Nothing was imported; ` +
        "ask the person who runs Rollcall to raise the limit."
      );
    case 422:
      return `The files could not be imported: ${error.message}. Nothing was stored.`;
    default:
      return error.message;
  }
}

function stateWords(job) {
  switch (job.state) {
    case "queued":
      return "Waiting to start…";
    case "running":
      return job.dry_run ? "Checking…" : "Importing…";
    case "done":
      return job.dry_run ? "Check finished: nothing was stored." : "Finished.";
    default:
      return `Stopped: ${job.error || "the import did not finish"}.`;
  }
}

function countWords(counts, dryRun) {
  const [created, updated] = dryRun ? ["to create", "to update"] : ["new", "updated"];
  return (
    `${counts.created} ${created}, ${counts.updated} ${updated}, ` +
    `${counts.unchanged} already up to date`
  );
}

// --- the form ---------------------------------------------------------------------------------

function choiceLabel(input, text) {
  return h("label", { class: "choice-label" }, input, ` ${text}`);
}

function importForm() {
  const kindInputs = Object.entries(KINDS).map(([value, kind], i) => [
    h("input", { type: "radio", name: "kind", value, checked: i === 0, required: true }),
    kind.label,
  ]);
  const rosterLabel = h("label", { for: "import-roster" });
  const roster = h("input", { id: "import-roster", type: "file", required: true });
  const photos = h("input", { id: "import-photos", type: "file", accept: ".zip,application/zip" });
  const photosHint = h("p", { class: "hint", id: "import-photos-hint" });
  const photoKey = h(
    "select",
    { id: "import-photo-key" },
    PHOTO_KEYS.map(([value, text]) => h("option", { value }, text)),
  );
  const photoKeyField = h(
    "div",
    {},
    h("label", { for: "import-photo-key" }, "The photos are named by"),
    photoKey,
  );
  const dryRun = h("input", { id: "import-dry-run", type: "checkbox" });
  const erase = h("input", { id: "import-erase", type: "checkbox" });
  const eraseWarning = h(
    "p",
    { class: "warn-box", id: "erase-warning", hidden: true },
    "Students imported before who are not in this roster any more (or that it marks to be " +
      "deleted) will be erased, with their photos and their attendance. This cannot be undone.",
  );
  const start = h("button", { type: "submit", class: "primary", id: "import-start" });

  const kind = () => kindInputs.find(([input]) => input.checked)[0].value;
  const refresh = () => {
    const chosen = KINDS[kind()];
    rosterLabel.textContent = chosen.file;
    roster.accept = chosen.accept;
    photoKeyField.hidden = kind() !== "oneroster";
    photosHint.textContent =
      kind() === "oneroster"
        ? "One photo per student, named by what you choose below (for example 1234.jpg)."
        : "One photo per student, named as in the list's “photo file” column.";
    eraseWarning.hidden = !erase.checked;
    start.textContent = dryRun.checked ? "Check the files" : "Start the import";
  };
  for (const [input] of kindInputs) input.addEventListener("change", refresh);
  erase.addEventListener("change", refresh);
  dryRun.addEventListener("change", refresh);
  refresh();

  const form = h(
    "form",
    { class: "panel import-form", id: "import-form" },
    h("h2", {}, "Import the school roster"),
    h(
      "p",
      { class: "hint" },
      "Classes and students are created or updated from the roster, each student with their ID " +
        "photo. Importing the same roster again changes nothing.",
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "What the school's system gives you"),
      kindInputs.map(([input, text]) => choiceLabel(input, text)),
    ),
    rosterLabel,
    roster,
    h("label", { for: "import-photos" }, "The photos (a zip, optional)"),
    photos,
    photosHint,
    photoKeyField,
    h(
      "fieldset",
      {},
      h("legend", {}, "Options"),
      choiceLabel(dryRun, "Check only: go through everything, faces included, and store nothing"),
      choiceLabel(erase, "Erase students the roster no longer has"),
      eraseWarning,
    ),
    h("div", { class: "actions" }, start),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const rosterFile = roster.files[0];
    if (!rosterFile) return;
    if (erase.checked && !dryRun.checked) {
      const confirmed = await confirmDialog({
        title: "Erase the students who left?",
        text: eraseWarning.textContent,
        action: "Import and erase",
      });
      if (!confirmed) return;
    }
    const body = new FormData();
    body.append("roster", rosterFile, rosterFile.name);
    if (photos.files[0]) body.append("photos", photos.files[0], photos.files[0].name);
    if (kind() === "oneroster") body.append("photo_key", photoKey.value);
    body.append("dry_run", dryRun.checked ? "true" : "false");
    body.append("erase_removed", erase.checked ? "true" : "false");
    start.disabled = true;
    try {
      const job = await api(`/v1/imports/${kind()}`, {
        method: "POST",
        form: body,
        label: "Sending the files…",
      });
      location.hash = `#/import/${enc(job.id)}`;
    } catch (error) {
      start.disabled = false;
      showError(refusedWords(error));
    }
  });
  return form;
}

function recentImports(jobs) {
  return listTable({
    id: "imports-table",
    caption: "Recent imports",
    headers: ["Started", "Roster", "Result", "Students", "Need a photo"],
    rows: jobs.map((job) => ({
      attributes: { dataset: { importId: job.id } },
      cells: [
        h("a", { href: `#/import/${enc(job.id)}` }, formatDateTime(job.created_at)),
        job.dry_run ? `${job.kind} (check only)` : job.kind,
        stateWords(job),
        `${job.done} of ${job.total}`,
        String(job.refusals.length),
      ],
    })),
    empty: "No import yet.",
  });
}

export async function importView() {
  setCrumbs([
    ["Classes", "#/"],
    ["Import", "#/import"],
  ]);
  let recent;
  try {
    recent = recentImports(await api("/v1/imports", { label: "Loading the imports…" }));
  } catch (error) {
    if (error.status !== 403) throw error;
    return [
      h("h1", {}, "Import the school roster"),
      h("p", { class: "error" }, refusedWords(error)),
    ];
  }
  return [h("h1", {}, "Import the school roster"), importForm(), recent];
}

// --- one import, followed -----------------------------------------------------------------------

/**
 * Where the import's classes and students are now, to link them: the classes it went through
 * (``job.class_ids``) and each refusal's or removal's classes (``issue.class_ids``), by id.
 */
async function importedPlaces(job) {
  const classes = await api("/v1/classes");
  const byId = new Map(classes.map((c) => [c.id, c]));
  const bySource = new Map(classes.filter((c) => c.source_id).map((c) => [c.source_id, c]));
  const inImport = job.dry_run ? [] : job.class_ids.map((id) => byId.get(id)).filter(Boolean);
  return { inImport, byId, bySource };
}

function issueList(id, issues, places) {
  return h(
    "ul",
    { class: "issues", id },
    issues.map((issue) => {
      const homes = places ? issue.class_ids.map((cid) => places.byId.get(cid)).filter(Boolean) : [];
      const klass = homes[0] ?? places?.bySource.get(issue.class_source_id);
      const name =
        issue.student_id && homes.length
          ? h(
              "a",
              { href: `#/c/${enc(homes[0].id)}/student/${enc(issue.student_id)}` },
              issue.name,
            )
          : h("span", { class: "issue-name" }, issue.name);
      const classNames = homes.length ? homes.map((home) => home.name) : [klass?.name];
      return h(
        "li",
        { dataset: { sourceId: issue.source_id } },
        name,
        classNames[0] ? h("span", { class: "muted" }, ` (${classNames.join(", ")})`) : null,
        h("span", { class: "issue-reason" }, `: ${issue.reason}`),
      );
    }),
  );
}

function jobResults(job, places) {
  const parts = [
    h(
      "dl",
      { class: "import-counts", id: "import-counts" },
      h("dt", {}, "Classes"),
      h("dd", {}, countWords(job.classes, job.dry_run)),
      h("dt", {}, "Students"),
      h("dd", {}, countWords(job.students, job.dry_run)),
      h("dt", {}, job.dry_run ? "Photos to add" : "Photos added"),
      h("dd", {}, String(job.photos_added)),
    ),
  ];
  if (places?.inImport.length) {
    parts.push(
      h("h2", {}, "Classes"),
      h(
        "ul",
        { class: "new-classes", id: "new-classes" },
        places.inImport.map((c) =>
          h(
            "li",
            {},
            h("a", { href: `#/c/${enc(c.id)}` }, c.name),
            h("span", { class: "muted" }, ` (${plural(c.student_count, "student")})`),
          ),
        ),
      ),
    );
  }
  if (job.refusals.length) {
    parts.push(
      h("h2", {}, `Students who need a photo (${job.refusals.length})`),
      h(
        "p",
        { class: "hint" },
        job.dry_run
          ? "These students would be imported without a photo, or not at all, for the reason given."
          : "They are enrolled but recognition cannot find them until they have a photo: open " +
              "their page to add one. Each line says why the import could not use theirs.",
      ),
      issueList("import-refusals", job.refusals, places),
    );
  }
  if (job.removed.length) {
    parts.push(
      h("h2", {}, `No longer in the roster (${job.removed.length})`),
      issueList("import-removed", job.removed, places),
    );
  }
  return parts;
}

export async function importJobView(view, importId) {
  let job = await api(`/v1/imports/${enc(importId)}`, { label: "Loading the import…" });
  const title = job.dry_run ? "Check of the school roster" : "Import of the school roster";
  setCrumbs([
    ["Classes", "#/"],
    ["Import", "#/import"],
    [formatDateTime(job.created_at), `#/import/${enc(importId)}`],
  ]);
  const stateLine = h("p", { class: "import-state", id: "import-state", role: "status" });
  const bar = h("progress", { id: "import-progress", "aria-labelledby": "import-progress-text" });
  const barText = h("span", { id: "import-progress-text" });
  const results = h("div", { id: "import-results" });

  const draw = (places) => {
    stateLine.textContent = stateWords(job);
    stateLine.dataset.state = job.state;
    bar.max = Math.max(job.total, 1);
    bar.value = job.total ? job.done : job.state === "done" ? 1 : 0;
    barText.textContent = `${job.done} of ${plural(job.total, "student")}`;
    results.replaceChildren(...jobResults(job, places));
  };
  const finish = async () => {
    draw(null);
    try {
      draw(await importedPlaces(job));
    } catch {
      // the links are a help: without them the counts and reasons are all there
    }
  };

  let polling = false;
  if (RUNNING.includes(job.state)) {
    draw(null);
    view.every(POLL_MS, async () => {
      if (polling || !view.alive() || !RUNNING.includes(job.state)) return;
      polling = true;
      try {
        job = await api(`/v1/imports/${enc(importId)}`);
        if (!view.alive()) return;
        if (RUNNING.includes(job.state)) draw(null);
        else await finish();
      } catch (error) {
        if (view.alive()) showError(error);
      } finally {
        polling = false;
      }
    });
  } else {
    await finish();
  }
  return [
    h("h1", {}, title),
    h(
      "p",
      { class: "muted" },
      `${job.kind} · started ${formatDateTime(job.created_at)}` +
        (job.dry_run ? " · check only: nothing is stored" : "") +
        (job.erase_removed
          ? job.dry_run
            ? " · would erase the students who left"
            : " · erases the students who left"
          : ""),
    ),
    stateLine,
    h("div", { class: "import-bar" }, bar, barText),
    results,
    h(
      "p",
      { class: "footer-actions" },
      h("a", { href: "#/" }, "Back to the classes"),
      " · ",
      h("a", { href: "#/import" }, "Another import"),
    ),
  ];
}
