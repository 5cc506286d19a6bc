// The state of the class's recognition head, polled while a training runs.

import { api } from "../api.js";
import { h } from "../dom.js";
import { classPath } from "./paths.js";

const HEAD_POLL_MS = 2000;

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
