"""What the roster import returns (``/v1/imports``)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from app.core.results import Result


class Counts(Result):
    created: int = 0
    updated: int = 0
    """Renamed (or, for a student, given their roster id)."""
    unchanged: int = 0


class ImportIssue(Result):
    """A student the import could not complete, or that the roster says is gone."""

    source_id: str = Field(description="The student's `sourcedId` (or student number).")
    name: str
    reason: str = Field(description="In a teacher's words.")
    class_source_id: str | None = Field(
        default=None, description="The class concerned, when it is one class's enrolment."
    )
    student_id: str | None = Field(
        default=None,
        description="The student's Rollcall id where they are enrolled (their page is "
        "`/v1/classes/{class_id}/students/{student_id}`); null when they could not be.",
    )
    class_ids: list[str] = Field(
        default_factory=list,
        description="The Rollcall classes concerned, where the student is enrolled.",
    )


class ImportJob(Result):
    id: str
    kind: str = Field(description="`OneRoster 1.2`, `OneRoster 1.1` or `CSV`.")
    state: Literal["queued", "running", "done", "failed"]
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    dry_run: bool = Field(description="Everything checked, faces included; nothing stored.")
    erase_removed: bool
    photo_key: str = Field(description="What the photos are named by.")
    done: int = Field(description="Students gone through.")
    total: int = Field(description="Students to go through.")
    classes: Counts
    students: Counts
    photos_added: int
    class_ids: list[str] = Field(
        default_factory=list,
        description="The Rollcall ids of the roster's classes this import went through "
        "(created, updated or unchanged); empty until it has read them.",
    )
    refusals: list[ImportIssue] = Field(
        description="Students who could not be given a photo (they are enrolled, and need one), "
        "or not imported at all, with the reason."
    )
    removed: list[ImportIssue] = Field(
        description="Students the roster no longer holds (or marks to be deleted): left alone, "
        "or erased when the import was asked to (`erase_removed`)."
    )
    error: str | None = Field(default=None, description="Why a failed import stopped.")
