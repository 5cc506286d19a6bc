// Setting a student's status in a session by hand: present, absent, late or excused, with an
// optional note. The dialog itself is in index.html (#status-dialog).

/** Asks for ``entry``'s status; resolves to ``{status, note}``, or null when cancelled. */
export function chooseStatus(entry) {
  const dialog = document.getElementById("status-dialog");
  const form = dialog.querySelector("form");
  const note = document.getElementById("status-note");
  document.getElementById("status-title").textContent = `${entry.name}'s status`;
  for (const radio of form.elements.status) radio.checked = radio.value === entry.status;
  note.value = entry.note || "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const status = form.elements.status.value;
        resolve(dialog.returnValue === "ok" && status ? { status, note: note.value.trim() } : null);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    form.querySelector("input[name=status]:checked")?.focus();
  });
}
