// Renaming and deleting a student, from the class page and from the student's page.

import { api } from "../api.js";
import { confirmDialog, renameDialog } from "../dom.js";
import { clearError, say, showError } from "./messages.js";
import { studentPath } from "./paths.js";

/** Asks for a new name and saves it; ``onRenamed`` gets the renamed student. */
export async function renameStudent(cid, student, onRenamed) {
  const name = await renameDialog(student.name);
  if (name === null) return;
  clearError();
  try {
    const renamed = await api(studentPath(cid, student.id), {
      method: "PATCH",
      json: { name },
      label: "Renaming…",
    });
    say(`${student.name} is now called ${renamed.name}.`);
    student.name = renamed.name;
    onRenamed(renamed);
  } catch (error) {
    showError(error);
  }
}

/** Deletes the student once the teacher confirms; true when deleted. */
export async function deleteStudent(cid, student) {
  const confirmed = await confirmDialog({
    title: `Delete ${student.name}?`,
    text:
      `${student.name}'s registration photos, everything recognition learnt from them and ` +
      "their attendance in every session are erased. This cannot be undone.",
    action: `Delete ${student.name}`,
  });
  if (!confirmed) return false;
  clearError();
  try {
    await api(studentPath(cid, student.id), {
      method: "DELETE",
      label: `Deleting ${student.name}…`,
    });
    say(`${student.name} deleted, with their photos and attendance.`);
    return true;
  } catch (error) {
    showError(error);
    return false;
  }
}
