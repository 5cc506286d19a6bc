"""What the data-protection services return."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pydantic import Field

from app.core.results import Result


class ErasureReport(Result):
    """What erasing a student removed, by kind, and how many stored class photos were
    relabelled (the face stays, unnamed)."""

    student_id: str
    removed: dict[str, int] = Field(
        description="Objects removed, by kind: record, registration_photo, photo_report, "
        "face_template, sample, attendance_record, status_correction, face_assignment; and "
        "class_photo_relabelled (stored class photos whose face of the student is now unnamed)."
    )


@dataclass(frozen=True)
class ClassPurge:
    """What one run of the retention purge removed from a class."""

    class_id: str
    session_photo_days: int
    """The retention that applied (0: class photos kept forever)."""
    student_inactive_days: int
    """0: inactive students are never erased."""
    photos_purged: int
    """Session photos whose original and annotated copy were removed by this run."""
    students_erased: list[str]
    """Ids of the students erased by this run (never their names: the report is logged)."""
    students_skipped: int = 0
    """Inactive students left for the next run: something was being written to them."""
    known_strangers_purged: int = 0
    """Known strangers taken from class photos older than the photos' retention."""


@dataclass(frozen=True)
class PurgeReport:
    """One run of the retention purge over every class."""

    now: dt.datetime
    classes: list[ClassPurge]
    imports_purged: int = 0
    """Reports of roster imports removed (kept 30 days)."""

    @property
    def photos_purged(self) -> int:
        return sum(c.photos_purged for c in self.classes)

    @property
    def students_erased(self) -> int:
        return sum(len(c.students_erased) for c in self.classes)
