// The class's known strangers on the class page: faces a teacher said are "not in this class",
// which recognition keeps from being given a student's name. Shown only when there are some;
// each can be removed (a face marked by mistake).

import { api } from "../api.js";
import { apiImage, confirmDialog, formatDateTime, h } from "../dom.js";
import { clearError, say, showError } from "./messages.js";
import { classPath, enc } from "./paths.js";

/** The panel (hidden while there is nothing to show); filled once the list arrives. */
export function strangersPanel(cid) {
  const list = h("ul", { class: "cards strangers-list", "aria-label": "Not in this class" });
  const panel = h(
    "section",
    { class: "panel strangers", id: "strangers", "aria-labelledby": "strangers-title", hidden: true },
    h("h2", { id: "strangers-title" }, "Not in this class"),
    h(
      "p",
      { class: "hint" },
      "Faces you marked “not in this class” on class photos. Recognition will not give " +
        "these people a student's name. Remove one marked by mistake.",
    ),
    list,
  );
  const path = `${classPath(cid)}/strangers`;
  const card = (stranger) => {
    const when = formatDateTime(stranger.taken_at);
    const remove = h(
      "button",
      { type: "button", class: "danger", "aria-label": `Remove this face (photo of ${when})` },
      "Remove",
    );
    const item = h(
      "li",
      { class: "card stranger", dataset: { strangerId: stranger.stranger_id } },
      apiImage(stranger.crop_url, { alt: `A face from the photo of ${when}`, className: "thumb" }),
      h(
        "div",
        { class: "card-body" },
        h("a", { href: `#/c/${cid}/s/${enc(stranger.session_id)}` }, `Photo of ${when}`),
      ),
      h("div", { class: "card-actions" }, remove),
    );
    remove.addEventListener("click", async () => {
      const confirmed = await confirmDialog({
        title: "Remove this face?",
        text:
          "Recognition may give this person a student's name again. The attendance already " +
          "taken stays as it is.",
        action: "Remove the face",
      });
      if (!confirmed) return;
      clearError();
      try {
        await api(`${path}/${enc(stranger.stranger_id)}`, {
          method: "DELETE",
          label: "Removing the face…",
        });
        item.remove();
        panel.hidden = list.children.length === 0;
        say("The face is removed.");
      } catch (error) {
        showError(error);
      }
    });
    return item;
  };
  api(path)
    .then((strangers) => {
      list.replaceChildren(...strangers.map(card));
      panel.hidden = strangers.length === 0;
    })
    .catch(showError);
  return panel;
}
