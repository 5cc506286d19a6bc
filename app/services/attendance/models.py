"""What the attendance services return (the API's recognition, session and report resources)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from app.core.results import Result
from app.records.documents import FaceScores, Status

Source = Literal["recognised", "teacher"]
"""Who decided: recognition, or a teacher (a status set by hand, a face named)."""


class Face(Result, FaceScores):
    """One face of a photo, with the student it was matched to (if any)."""

    known: bool
    name: str | None
    source: Source | None = Field(
        default=None,
        description="Who named the face (stored photos only): `recognised`, `teacher` (assigned "
        "by hand, or said to be nobody of the class), or null for an unknown face.",
    )
    not_in_class: bool = Field(
        default=False, description="A teacher said this face is nobody of the class."
    )


class KnownStranger(Result):
    """A face a teacher said is nobody of the class, kept so that faces like it are not named."""

    stranger_id: str
    session_id: str
    photo_id: str
    face_index: int
    marked_by: str = Field(description="Who said so: the API key's label, or `console`.")
    marked_at: dt.datetime
    taken_at: dt.datetime = Field(description="When the class photo was uploaded.")


class Recognised(Result):
    """A photo recognised without recording anything."""

    faces: list[Face]
    names: list[str] = Field(description="Names of the recognised students, in face order.")
    unknown_threshold: float = Field(description="What each face's `score` is compared with.")
    message: str | None = None
    annotated_jpeg: bytes | None = Field(default=None, exclude=True)
    """The photo with a box and label on every face, when asked for (the routers send it as
    base64)."""


class Session(Result):
    id: str
    label: str
    date: dt.date
    created_at: dt.datetime


class SessionSummary(Session):
    present_count: int = Field(description="Students present or late.")
    photo_count: int


class SessionPhotoAdded(Result):
    """A session photo stored, and who it recorded present."""

    session_id: str
    photo_id: str
    faces: list[Face]
    names: list[str]
    recorded: list[str] = Field(description="Students recorded present by this photo.")
    already_present: list[str] = Field(
        description="Recognised students an earlier photo had already recorded (kept as they were)."
    )
    unknown_threshold: float
    message: str | None = None


class AttendanceStatus(Result):
    """A student's attendance in one session, and how it was decided."""

    present: bool = Field(description="Attended: `status` is present or late.")
    status: Status
    source: Source | None = Field(
        default=None,
        description="How the status was decided: `recognised` (see `photo_id`, `score`), "
        "`teacher` (set by hand, or a face the teacher named: see `corrected_at`, "
        "`corrected_by`), or null for an absence nobody decided.",
    )
    recorded_at: dt.datetime | None = Field(
        default=None, description="When the first photo showing the student was uploaded."
    )
    similarity: float | None = None
    photo_id: str | None = Field(default=None, description="The first photo showing them.")
    note: str | None = None


class RosterEntry(AttendanceStatus):
    student_id: str
    name: str
    score: float | None = Field(
        default=None, description="The recognition score of the face (recognised only)."
    )
    face_index: int | None = Field(default=None, description="Their face in that photo.")
    corrected_at: dt.datetime | None = None
    corrected_by: str | None = Field(
        default=None, description="The API key's label, or `console` (no key)."
    )


class SessionDetail(Session):
    photo_ids: list[str]
    present_count: int
    absent_count: int
    roster: list[RosterEntry]


class SessionPhotoDetail(Result):
    """A stored session photo: its faces as recognised when it was uploaded, with the teacher's
    assignments applied (names as of now; a face of a student deleted since is unknown)."""

    session_id: str
    photo_id: str
    created_at: dt.datetime
    filename: str | None
    width: int
    height: int
    faces: list[Face]
    unknown_threshold: float


class AttendanceEntry(AttendanceStatus):
    session_id: str
    label: str
    date: dt.date


class StudentAttendance(Result):
    student_id: str
    name: str
    present_count: int
    session_count: int
    sessions: list[AttendanceEntry] = Field(
        description="Every session of the class whose roster has the student, by date."
    )


class TermSession(Result):
    id: str
    label: str
    date: dt.date


class TermRow(Result):
    student_id: str
    name: str
    statuses: list[Status | None] = Field(
        description="One per session of `sessions`, in order; null: not on that session's "
        "roster (enrolled later)."
    )
    attended: int = Field(description="Sessions present or late.")
    counted: int = Field(description="Sessions on the roster, less those excused.")
    rate: float | None = Field(description="`attended / counted` (0-1); null when 0 counted.")


class TermReport(Result):
    class_id: str
    class_name: str
    date_from: dt.date | None
    date_to: dt.date | None
    sessions: list[TermSession] = Field(description="By date.")
    students: list[TermRow] = Field(description="By name.")


@dataclass(frozen=True)
class CsvFile:
    """A CSV download: its text and a readable file name without extension."""

    text: str
    filename: str
