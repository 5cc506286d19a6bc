// A class's sessions: start a new one, and the past ones with their counts.

import { api } from "../api.js";
import { h, listTable, todayIso } from "../dom.js";
import { clearError, showError } from "../widgets/messages.js";
import { classTabs, setClassCrumbs } from "../widgets/nav.js";
import { classPath } from "../widgets/paths.js";

function newSessionForm(cid) {
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
  return form;
}

export async function sessionsView(view, cid) {
  const [klass, sessions] = await Promise.all([
    api(classPath(cid), { label: "Loading sessions…" }),
    api(`${classPath(cid)}/sessions`),
  ]);
  setClassCrumbs(cid, klass, ["Sessions", `#/c/${cid}/sessions`]);
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
  return [h("h1", {}, klass.name), classTabs(cid, "sessions"), newSessionForm(cid), table];
}
