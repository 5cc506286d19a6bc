"""Importing the students of the original server, from its bucket (:class:`OriginalLayout`).

Each student is re-enrolled from the photo(s) stored in their ``registration/{name}/`` folder,
through the normal enrolment path (:func:`app.services.enrolment.enrol_by_name`: the same name is
the same student). The original's embeddings come from other weights and cannot be reused, so they
are never read, nor is ``model.pth`` (a pickle). The source is only listed and read: nothing of the
original is ever deleted or changed. A student whose name is already enrolled (a second run, or the
mobile app registered them meanwhile) is reported as present and left alone.

A stored crop on which no face is found is refused with the reason, and nothing of that student
is stored: enrolling it without a detected face would store an embedding of whatever the crop
shows, a wrong identity, and recognition would never match it. The operator registers that student
again from a new photo. (Retrying with a margin of edge pixels around the crop was tried: it found
a face on none of 20 crops of ``faces/people`` cut too tight to show one; one-off check,
2026-11-29. So it is not done.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from app.core.errors import ServiceError
from app.core.ids import clean_name, new_id
from app.core.images import ImageError, ImageTooLargeError, decode_image
from app.records.templates import KeyTemplate
from app.services.classes import ensure_default_class
from app.services.context import Context
from app.services.enrolment import PreparedPhoto, enrol_by_name, students_named
from app.storage import ObjectNotFoundError
from ml.pipeline import MultipleFacesError, NoFaceError

logger = logging.getLogger(__name__)

ORIGINAL_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class OriginalObjectRef:
    folder: str
    """The student's folder: their name as the original server stored it."""
    rest: str
    """The path inside it."""

    @property
    def is_photo(self) -> bool:
        """A photo directly in the student's folder (``{name}_initial.jpg``), not in a
        subfolder."""
        return "/" not in self.rest and self.rest.lower().endswith(ORIGINAL_PHOTO_SUFFIXES)


class OriginalLayout:
    """The original server's bucket under ``prefix`` (read by the importer, never written)::

    {prefix}registration/{name}/{name}_initial.jpg                 the head crop it cut
    {prefix}registration/{name}/{name}_embedding/{name}.npy        its embedding (other weights)
    {prefix}embedding_dictionary/student_embeddings_dict.npz       every embedding (other weights)
    {prefix}model/model.pth                                        its model (a pickle: never read)
    """

    def __init__(self, prefix: str) -> None:
        stripped = prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""
        """``"old"`` or ``"old/"`` -> ``"old/"``; ``""`` stays ``""``."""
        escaped = self.prefix.replace("{", "{{").replace("}", "}}")
        self.registration = KeyTemplate(
            OriginalObjectRef,
            escaped + "registration/{folder}/{rest}",
            patterns={"folder": "[^/]+", "rest": ".+"},
        )


class OriginalSource(Protocol):
    """Read-only access to the original bucket, whose keys follow no Rollcall rule (names with
    spaces, capitals, any script): :class:`app.storage.S3ObjectStore` provides it."""

    @property
    def description(self) -> str: ...

    def list_foreign(self, prefix: str) -> list[str]: ...

    def get_foreign(self, key: str) -> bytes: ...


class Outcome(Enum):
    IMPORTED = "imported"
    WOULD_IMPORT = "would import"  # --dry-run
    PRESENT = "already present"
    REFUSED = "refused"


@dataclass(frozen=True)
class OriginalStudent:
    """One ``registration/{folder}/`` of the original bucket."""

    folder: str
    photo_keys: tuple[str, ...]
    other_keys: tuple[str, ...] = ()
    """Its other objects (the embedding from other weights): listed, never read."""


@dataclass(frozen=True)
class OriginalBucket:
    students: list[OriginalStudent]
    ignored_keys: list[str]
    """Everything else under the prefix (the embedding dictionary, ``model.pth``): never read."""


@dataclass
class StudentReport:
    folder: str
    outcome: Outcome
    student_id: str | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        target = f" -> {self.student_id}" if self.student_id else ""
        extra = "; ".join(filter(None, [self.detail, *self.notes]))
        return f"{self.outcome.value:<15} {self.folder}{target}" + (f": {extra}" if extra else "")


def scan(source: OriginalSource, prefix: str) -> OriginalBucket:
    """The original's students, from one listing of the prefix (nothing is read)."""
    folders: dict[str, tuple[list[str], list[str]]] = {}
    ignored: list[str] = []
    layout = OriginalLayout(prefix)
    for key in source.list_foreign(layout.prefix):
        found = layout.registration.parse(key)
        if found is None:
            ignored.append(key)
            continue
        photos, others = folders.setdefault(found.folder, ([], []))
        (photos if found.is_photo else others).append(key)
    students = [
        OriginalStudent(folder, tuple(sorted(photos)), tuple(sorted(others)))
        for folder, (photos, others) in sorted(folders.items())
    ]
    return OriginalBucket(students, sorted(ignored))


def import_student(
    ctx: Context,
    source: OriginalSource,
    student: OriginalStudent,
    class_id: str,
    *,
    dry_run: bool = False,
) -> StudentReport:
    """Re-enrol one student of the original server in ``class_id`` (see the module docstring)."""
    try:
        name = clean_name(student.folder, what="the folder name")
    except ValueError as error:
        return StudentReport(student.folder, Outcome.REFUSED, detail=str(error))
    enrolled = [
        doc for doc in students_named(ctx, class_id, name) if _has_photos(ctx, class_id, doc.id)
    ]
    if enrolled:
        return StudentReport(student.folder, Outcome.PRESENT, enrolled[0].id)
    if not student.photo_keys:
        return StudentReport(
            student.folder,
            Outcome.REFUSED,
            detail="no photo in its folder (its stored embedding comes from other weights and "
            "cannot be used); register the student again",
        )
    report = StudentReport(student.folder, Outcome.REFUSED)
    prepared: list[PreparedPhoto] = []
    refusals: list[str] = []
    for key in student.photo_keys:
        photo, note = _prepare(ctx, source, key)
        if photo is None:
            refusals.append(note)
        else:
            prepared.append(photo)
            if note:
                report.notes.append(note)
    if not prepared:
        report.detail = "; ".join(refusals) + "; nothing stored, register the student again"
        return report
    report.notes += [f"skipped {note}" for note in refusals]
    if dry_run:
        report.outcome = Outcome.WOULD_IMPORT
        report.detail = f"{len(prepared)} photo(s)"
        return report
    ensure_default_class(ctx, class_id)
    try:
        result = enrol_by_name(ctx, class_id, name, prepared, add=True)
    except ServiceError as error:
        report.detail = error.message
        return report
    report.outcome = Outcome.IMPORTED
    report.student_id = result.student.id
    report.detail = f"{len(prepared)} photo(s)"
    report.notes += result.warnings
    return report


def _has_photos(ctx: Context, class_id: str, student_id: str) -> bool:
    return ctx.records.students.has_embeddings(class_id, student_id)


def _prepare(ctx: Context, source: OriginalSource, key: str) -> tuple[PreparedPhoto | None, str]:
    """The photo ready to store, or ``None`` and why not; plus a note on what was done."""
    filename = key.rsplit("/", 1)[-1]
    try:
        data = source.get_foreign(key)
        image = decode_image(data, max_pixels=ctx.settings.max_image_pixels, name=filename)
    except ObjectNotFoundError:
        return None, f"{filename}: deleted during the import"
    except (ImageError, ImageTooLargeError) as error:
        return None, str(error)
    try:
        return PreparedPhoto(new_id(), filename, image, ctx.inference.enrol(image)), ""
    except MultipleFacesError as error:
        return None, f"{filename}: {error}"
    except NoFaceError:
        return None, f"{filename}: no face found on the stored crop"


def summary(reports: Sequence[StudentReport]) -> dict[Outcome, int]:
    return {outcome: sum(r.outcome is outcome for r in reports) for outcome in Outcome}
