// Hash routes: each one a view function ``(view, ...params) -> [elements]``, drawn into <main>.

import { ApiError } from "./api.js";
import { h, revokeObjectUrls } from "./dom.js";

let renderToken = 0;
let currentView = null;

/** What a view may use while it is on screen; ``alive()`` turns false once the route changes. */
class ViewContext {
  constructor(token, redraw) {
    this.token = token;
    this.timers = [];
    this.redraw = redraw;
  }
  alive() {
    return this.token === renderToken;
  }
  every(ms, callback) {
    this.timers.push(setInterval(callback, ms));
  }
  close() {
    for (const timer of this.timers) clearInterval(timer);
  }
}

function showFailure(main, error) {
  main.replaceChildren(
    h(
      "h1",
      {},
      error instanceof ApiError && error.status === 404 ? "Not found" : "Something went wrong",
    ),
    h("p", {}, error.message),
    h("p", {}, h("a", { href: "#/" }, "Back to the classes")),
  );
  main.dataset.view = "error";
}

/**
 * A ``render()`` for ``routes``, ``[pattern, view]`` pairs: draws the view of the current hash
 * (an unknown hash goes home). ``view.redraw()`` draws the current route again.
 */
export function router(routes) {
  async function render() {
    renderToken += 1;
    const view = new ViewContext(renderToken, render);
    if (currentView) currentView.close();
    currentView = view;
    const main = document.getElementById("view");
    const hash = location.hash || "#/";
    const route = routes.find(([pattern]) => pattern.test(hash));
    if (!route) {
      location.hash = "#/";
      return;
    }
    const [pattern, draw] = route;
    const params = pattern.exec(hash).slice(1).map(decodeURIComponent);
    try {
      const content = await draw(view, ...params);
      if (!view.alive()) return;
      revokeObjectUrls();
      // A view leaves out what does not apply (null, false) rather than build two lists.
      main.replaceChildren(...content.flat().filter((part) => part !== null && part !== false));
      main.dataset.view = draw.name;
    } catch (error) {
      if (!view.alive()) return;
      showFailure(main, error);
    }
  }
  return render;
}
