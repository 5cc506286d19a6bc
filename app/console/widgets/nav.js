// The breadcrumbs in the top bar and the tabs of one class.

import { h } from "../dom.js";

/** ``items`` are ``[text, href]`` pairs, outermost first; the last one is the current page. */
export function setCrumbs(items) {
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

/** The crumbs of a page inside a class: Classes › the class › ``more``. */
export function setClassCrumbs(cid, klass, ...more) {
  setCrumbs([["Classes", "#/"], [klass.name, `#/c/${cid}`], ...more]);
}

export function classTabs(cid, active) {
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
