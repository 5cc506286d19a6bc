// Calls to the Rollcall API (same origin): the API key, errors, and the progress indicator.

const KEY_STORAGE = "rollcall.apiKey";
const BUSY_DELAY_MS = 250; // a call that answers faster than this shows no progress bar

export class ApiError extends Error {
  /** ``body`` is the error's JSON body, when it had one (a refused photo lists its faces). */
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// --- progress ---------------------------------------------------------------------------------

let busyCount = 0;
let busyTimer = null;
let busyShown = false; // the delay has passed: the bar and the label are on screen
let shownLabel = null; // the label this module last put in the status line
const busyLabels = [];

function busyElements() {
  return {
    bar: document.getElementById("busy"),
    status: document.getElementById("status"),
    view: document.getElementById("view"),
  };
}

function refreshBusy() {
  const { bar, status, view } = busyElements();
  const visible = busyCount > 0 && busyShown;
  bar.hidden = !visible;
  view.setAttribute("aria-busy", visible ? "true" : "false");
  const label = visible ? busyLabels[busyLabels.length - 1] : undefined;
  if (label) {
    status.textContent = label;
    shownLabel = label;
  } else if (shownLabel !== null) {
    // The labelled call has ended (others may still run): its line goes, unless a message has
    // replaced it meanwhile.
    if (status.textContent === shownLabel) status.textContent = "";
    shownLabel = null;
  }
}

/** Runs ``work`` with the progress bar shown (after a short delay) and ``label`` announced. */
export async function withBusy(label, work) {
  busyCount += 1;
  if (label) busyLabels.push(label);
  if (busyTimer === null && !busyShown) {
    busyTimer = setTimeout(() => {
      busyTimer = null;
      busyShown = true;
      refreshBusy();
    }, BUSY_DELAY_MS);
  } else if (busyShown) {
    refreshBusy();
  }
  try {
    return await work();
  } finally {
    busyCount -= 1;
    if (label) busyLabels.splice(busyLabels.lastIndexOf(label), 1);
    if (busyCount === 0) {
      clearTimeout(busyTimer);
      busyTimer = null;
      busyShown = false;
    }
    refreshBusy();
  }
}

// --- the API key ------------------------------------------------------------------------------

export function currentKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

let pendingKeyPrompt = null;

/** Asks for a key once, however many calls were refused at the same moment. */
function askForKey(message) {
  if (pendingKeyPrompt === null) {
    pendingKeyPrompt = promptForKey(message).finally(() => {
      pendingKeyPrompt = null;
    });
  }
  return pendingKeyPrompt;
}

function promptForKey(message) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-text").textContent = message;
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const key = input.value.trim();
        resolve(dialog.returnValue === "ok" && key ? key : null);
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}

/** Lets the teacher type a key before any call needs one (the header's "API key" button). */
export async function changeKey() {
  const key = await askForKey("Type the API key for this server.");
  if (key !== null) sessionStorage.setItem(KEY_STORAGE, key);
  return key;
}

// --- calls ------------------------------------------------------------------------------------

/** The refusal in words, and its JSON body (null when it had none). */
async function refusal(response) {
  let detail = `${response.status} ${response.statusText}`;
  let body = null;
  try {
    body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail)) {
      // FastAPI's request validation: a list of {loc, msg}.
      detail = body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    }
  } catch {
    // not JSON: keep the status line
  }
  let message = detail;
  if (response.status === 403) message = `This API key has no access here (${detail}).`;
  if (response.status === 503) {
    message = `The server's storage is unavailable; try again (${detail}).`;
  }
  return new ApiError(response.status, message, body);
}

/**
 * One call to the API. ``json`` or ``form`` is the body; ``as`` is "json", "blob" or "response";
 * ``label`` is announced while it runs. A 401 asks for the API key and tries again.
 */
export async function api(path, { method = "GET", json, form, as = "json", label } = {}) {
  for (;;) {
    const headers = {};
    const key = currentKey();
    if (key) headers["X-API-Key"] = key;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form;
    }
    let response;
    try {
      response = await withBusy(label, () => fetch(path, { method, headers, body }));
    } catch (error) {
      throw new ApiError(0, `The server cannot be reached (${error.message}).`);
    }
    if (response.status === 401) {
      if (currentKey() !== key) continue; // another call has just been given a new key
      // The server wants keys: from now on the header offers to change the key.
      document.getElementById("key-button").hidden = false;
      const typed = await askForKey(
        key ? "That API key was refused. Type the right one." : "This server needs an API key.",
      );
      if (typed === null) throw new ApiError(401, "The server needs an API key.");
      sessionStorage.setItem(KEY_STORAGE, typed);
      continue;
    }
    if (!response.ok) throw await refusal(response);
    if (as === "response") return response;
    if (as === "blob") return response.blob();
    if (response.status === 204) return null;
    return response.json();
  }
}
