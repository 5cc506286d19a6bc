// The term report on the class page: every student's status in every session of a date range,
// with their attendance rate; downloaded as CSV, or shown as a table.

import { api } from "../api.js";
import { attachmentName, h, listTable, saveBlob } from "../dom.js";
import { clearError, say, showError } from "./messages.js";
import { classPath } from "./paths.js";

function rateText(rate) {
  return rate === null ? "–" : `${Math.round(100 * rate)}%`;
}

function reportTable(report) {
  return listTable({
    id: "term-table",
    caption: `Attendance of ${report.class_name}`,
    headers: [
      "Student",
      ...report.sessions.map((s) => `${s.date} ${s.label}`),
      "Attended",
      "Rate",
    ],
    rows: report.students.map((row) => ({
      attributes: { dataset: { studentId: row.student_id } },
      cells: [
        row.name,
        ...row.statuses.map((status) => status ?? "–"),
        `${row.attended} of ${row.counted}`,
        rateText(row.rate),
      ],
    })),
    empty: "No student yet.",
  });
}

export function termReportPanel(cid) {
  const from = h("input", { id: "term-from", type: "date" });
  const to = h("input", { id: "term-to", type: "date" });
  const show = h("button", { type: "button", id: "term-show" }, "Show the report");
  const download = h(
    "button",
    { type: "button", class: "primary", id: "term-download" },
    "Download the term report (CSV)",
  );
  const output = h("div", { class: "term-output", "aria-live": "polite" });

  const query = () => {
    const params = new URLSearchParams();
    if (from.value) params.set("from", from.value);
    if (to.value) params.set("to", to.value);
    const text = params.toString();
    return text ? `?${text}` : "";
  };

  download.addEventListener("click", async () => {
    clearError();
    try {
      const response = await api(`${classPath(cid)}/attendance.csv${query()}`, {
        as: "response",
        label: "Preparing the term report…",
      });
      const blob = await response.blob();
      saveBlob(blob, attachmentName(response, `${cid}-attendance.csv`));
      say("Term report downloaded.");
    } catch (error) {
      showError(error);
    }
  });
  show.addEventListener("click", async () => {
    clearError();
    try {
      const report = await api(`${classPath(cid)}/attendance${query()}`, {
        label: "Preparing the term report…",
      });
      output.replaceChildren(
        report.sessions.length
          ? reportTable(report)
          : h("p", { class: "empty" }, "No session between these dates."),
      );
    } catch (error) {
      showError(error);
    }
  });

  return h(
    "section",
    { class: "panel term-report", "aria-labelledby": "term-title" },
    h("h2", { id: "term-title" }, "Term report"),
    h(
      "p",
      { class: "hint" },
      "Every student's attendance in every session, and how often they came (late counts as " +
        "came; excused sessions do not count). Leave a date empty for no limit.",
    ),
    h(
      "div",
      { class: "term-dates" },
      h("div", {}, h("label", { for: "term-from" }, "From"), from),
      h("div", {}, h("label", { for: "term-to" }, "To"), to),
    ),
    h("div", { class: "actions left" }, download, show),
    output,
  );
}
