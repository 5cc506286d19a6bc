// Small DOM helpers. Text always goes in as text nodes (names come from users: never innerHTML).

import { api } from "./api.js";

/** ``h("a", {href: "#/"}, "Home")``; attributes starting with "on" are event listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

/**
 * A list table: ``headers`` are the column titles, ``rows`` one ``{attributes, cells}`` per row;
 * ``empty`` is shown instead when there is no row.
 */
export function listTable({ id, caption, headers, rows, empty }) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    { class: "list", id },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      rows.map(({ attributes, cells }) => h("tr", attributes, cells.map((c) => h("td", {}, c)))),
    ),
  );
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Object URLs made for the current view; revoked when the view changes. */
const objectUrls = [];

export function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  objectUrls.push(url);
  return url;
}

export function revokeObjectUrls() {
  for (const url of objectUrls.splice(0)) URL.revokeObjectURL(url);
}

/**
 * An <img> filled from an API path. The image is fetched with ``fetch`` (not ``src``) so that the
 * API key header goes with it; a failure leaves a placeholder with the reason as its title.
 */
export function apiImage(path, { alt, className } = {}) {
  const image = h("img", { alt, class: className, decoding: "async" });
  image.classList.add("loading");
  api(path, { as: "blob" })
    .then((blob) => {
      image.src = objectUrl(blob);
      image.classList.remove("loading");
    })
    .catch((error) => {
      image.classList.remove("loading");
      image.classList.add("broken");
      image.title = error.message;
    });
  return image;
}

/** Saves a blob as a file through a temporary link (what a "download" button does). */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The file name the server gives (RFC 6266: the UTF-8 ``filename*`` first), else ``fallback``. */
export function attachmentName(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const utf8 = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (utf8) {
    try {
      return decodeURIComponent(utf8[1]);
    } catch {
      // a malformed name: try the plain one
    }
  }
  const plain = /filename="([^"]+)"/i.exec(header);
  return plain ? plain[1] : fallback;
}

export function formatTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function formatDateTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

export function todayIso() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/**
 * Shows a confirmation dialog; resolves true when the teacher confirms. ``danger``: the action
 * destroys something (its button is red); otherwise it is the dialog's plain main action.
 */
export function confirmDialog({ title, text, action = "Delete", danger = true }) {
  const dialog = document.getElementById("confirm-dialog");
  const ok = document.getElementById("confirm-ok");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  ok.textContent = action;
  ok.classList.toggle("danger", danger);
  ok.classList.toggle("primary", !danger);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

/** Asks for a new name; resolves to it, or null when cancelled. */
export function renameDialog(currentName) {
  const dialog = document.getElementById("rename-dialog");
  const input = document.getElementById("rename-input");
  input.value = currentName;
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const name = input.value.trim();
        resolve(dialog.returnValue === "ok" && name && name !== currentName ? name : null);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    input.select();
  });
}
