// How far the class's recognition is with its photos, in a teacher's words. Only a service that
// learns each class's faces (ROLLCALL_USE_HEAD) has anything to say here; by default recognition
// uses the photos as they are, and the line stays hidden. Polled while the learning runs.

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
      return "Recognition could not learn the latest photos; it still knows every student.";
    default:
      return "";
  }
}

/** The line for the class page; ``refresh()`` reads the state again (after a deletion). */
export function recognitionLine(view, cid, head) {
  const summary = h("span", { id: "recognition-summary" });
  const spinner = h("span", { class: "spinner", "aria-hidden": "true" });
  const line = h("p", { class: "head-line muted", "aria-live": "polite" }, spinner, summary);
  let state = head?.state ?? "none";
  const update = (next) => {
    state = next?.state ?? "none";
    summary.textContent = summaryText(next);
    line.hidden = !summary.textContent;
    spinner.hidden = state !== "training";
  };
  update(head);
  view.every(HEAD_POLL_MS, async () => {
    // Only while a learning is running or due; a settled state needs no polling.
    if (!["training", "stale"].includes(state) || !view.alive()) return;
    try {
      update((await api(classPath(cid))).head);
    } catch {
      // a failed poll changes nothing; the next one tries again
    }
  });
  return { line, refresh: async () => update((await api(classPath(cid))).head) };
}
