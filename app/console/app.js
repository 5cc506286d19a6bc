// The Rollcall console: one page, hash routes, plain DOM. Every piece of data comes from /v1.
// Each page is a module in views/; what several pages share is in widgets/.

import { changeKey, currentKey } from "./api.js";
import { clearError } from "./widgets/messages.js";
import { router } from "./router.js";
import { classView } from "./views/class.js";
import { classesView } from "./views/classes.js";
import { importJobView, importView } from "./views/imports.js";
import { registerView } from "./views/register.js";
import { sessionView } from "./views/session.js";
import { sessionsView } from "./views/sessions.js";
import { studentView } from "./views/student.js";

const render = router([
  [/^#?\/?$/, classesView],
  [/^#\/import$/, importView],
  [/^#\/import\/([^/]+)$/, importJobView],
  [/^#\/c\/([^/]+)$/, classView],
  [/^#\/c\/([^/]+)\/register$/, registerView],
  [/^#\/c\/([^/]+)\/sessions$/, sessionsView],
  [/^#\/c\/([^/]+)\/s\/([^/]+)$/, sessionView],
  [/^#\/c\/([^/]+)\/student\/([^/]+)$/, studentView],
]);

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
