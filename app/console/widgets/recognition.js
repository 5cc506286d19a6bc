// How far the class's recognition is with its photos: a line in teacher's words, with the
// technical state of the recognition head behind a disclosure. Polled while a training runs.

import { api } from "../api.js";
import { h } from "../dom.js";
import { classPath } from "./paths.js";

const HEAD_POLL_MS = 2000;

function summaryText(head) {
  switch (head?.state) {
    case "training":
      return "Learning the latest photos…";
    case "ready":
      return "Recognition is up to date with every photo.";
    case "stale":
      return "Photos changed: recognition will learn them shortly.";
    case "failed":
      return "Recognition could not learn the latest photos.";
    default:
      return "Recognition uses the registration photos.";
  }
}

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

/** The line for the class page; ``refresh()`` reads the state again (after a deletion). */
export function recognitionLine(view, cid, head) {
  const summary = h("span", { id: "recognition-summary" });
  const text = h("span", { id: "head-state" });
  const spinner = h("span", { class: "spinner", "aria-hidden": "true" });
  const line = h(
    "details",
    { class: "head-line" },
    h("summary", {}, spinner, summary),
    h("p", { class: "muted" }, "Recognition head: ", text),
  );
  const update = (next) => {
    summary.textContent = summaryText(next);
    text.textContent = headText(next);
    text.dataset.state = next.state;
    spinner.hidden = next.state !== "training";
  };
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
