// The status line and the error box under the top bar, shared by every view.

export function say(text) {
  document.getElementById("status").textContent = text;
}

export function showError(error) {
  const box = document.getElementById("error");
  const text = error instanceof Error ? error.message : String(error);
  box.textContent = text;
  box.hidden = !text;
}

export function clearError() {
  showError("");
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}
