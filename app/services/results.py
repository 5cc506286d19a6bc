"""What the services return: frozen dataclasses, free of HTTP.

The routers turn them into the wire models of :mod:`app.schemas` (whose fields have the same names,
so most are mapped with ``model_validate(result, from_attributes=True)``) and add what only HTTP
knows (links to other resources, base64 of images).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from app.services.heads import HeadStatus

Box = tuple[float, float, float, float]


def rounded_box(box: Box) -> Box:
    """A face box as reported and stored: tenths of a pixel."""
    x1, y1, x2, y2 = box
    return (round(float(x1), 1), round(float(y1), 1), round(float(x2), 1), round(float(y2), 1))


# --- classes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelProgress:
    """A secondary face model's back-fill over the class's registration photos."""

    model: str
    photos_done: int
    photos_total: int
    state: str
    """``ready`` or ``filling``."""


@dataclass(frozen=True)
class ClassRetention:
    """A class's retention: its overrides (``None``: the deployment's default) and what applies
    (days; 0: class photos kept forever, inactive students never erased)."""

    session_photo_retention_days: int | None
    student_inactive_retention_days: int | None
    effective_session_photo_retention_days: int
    effective_student_inactive_retention_days: int


@dataclass(frozen=True)
class ClassInfo:
    id: str
    name: str
    created_at: dt.datetime
    student_count: int
    head: HeadStatus | None = None
    """Only when one class is shown."""
    models: list[ModelProgress] | None = None
    """Only when one class is shown."""
    retention: ClassRetention | None = None
    """Only when one class is shown."""


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


@dataclass(frozen=True)
class PurgeReport:
    """One run of the retention purge over every class."""

    now: dt.datetime
    classes: list[ClassPurge]

    @property
    def photos_purged(self) -> int:
        return sum(c.photos_purged for c in self.classes)

    @property
    def students_erased(self) -> int:
        return sum(len(c.students_erased) for c in self.classes)


# --- students ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Student:
    id: str
    name: str
    created_at: dt.datetime
    photo_count: int


@dataclass(frozen=True)
class PhotoReport:
    """A registration photo just checked or stored: where the face is and how good it is."""

    photo_id: str
    filename: str | None
    box: Box
    quality: Mapping[str, object]
    """``ml.pipeline.FaceQuality.to_dict()``."""

    @property
    def warnings(self) -> list[str]:
        warnings = self.quality.get("warnings", [])
        return [str(w) for w in warnings] if isinstance(warnings, list) else []


@dataclass(frozen=True)
class SimilarStudent:
    """Another student a new photo looks very much like (a likely duplicate enrolment)."""

    student_id: str
    name: str
    similarity: float
    filename: str | None


@dataclass(frozen=True)
class Enrolment:
    student: Student
    photos: list[PhotoReport]
    warnings: list[str]
    similar_students: list[SimilarStudent]


@dataclass(frozen=True)
class StudentPhoto:
    photo_id: str
    created_at: dt.datetime
    filename: str | None
    box: Box
    quality: Mapping[str, object]


@dataclass(frozen=True)
class Sample:
    """A confirmed face of the student from a class photo (an extra gallery sample)."""

    sample_id: str
    session_id: str
    photo_id: str
    face_index: int
    confirmed_by: str
    """``teacher`` (named the face) or ``recognition`` (recognised with a high margin)."""
    confirmed_label: str
    confirmed_at: dt.datetime
    taken_at: dt.datetime


@dataclass(frozen=True)
class StudentDetail:
    id: str
    name: str
    created_at: dt.datetime
    photo_count: int
    photos: list[StudentPhoto]
    samples: list[Sample]


@dataclass(frozen=True)
class ErasureReport:
    """What erasing a student removed, by kind (``record``, ``registration_photo``,
    ``photo_report``, ``face_template``, ``sample``, ``attendance_record``,
    ``status_correction``, ``face_assignment``) and how many stored class photos were relabelled
    (``class_photo_relabelled``: the face stays, unnamed)."""

    student_id: str
    removed: Mapping[str, int]


@dataclass(frozen=True)
class PhotoCheck:
    filename: str | None
    width: int
    height: int
    box: Box
    quality: Mapping[str, object]
    warnings: list[str]
    similar_students: list[SimilarStudent]


# --- recognition and attendance --------------------------------------------------------------


UNKNOWN_LABEL = "unknown"


def face_label(student_id: str | None, names: Mapping[str, str], too_small: bool = False) -> str:
    """The label drawn on a face in an annotated photo: the student's name, ``unknown``, or none
    for a face too small to recognise (its grey box says enough)."""
    if too_small:
        return ""
    if student_id is None:
        return UNKNOWN_LABEL
    return names.get(student_id, student_id)


@dataclass(frozen=True)
class Face:
    """One face of a photo, with the student it was matched to (if any)."""

    box: Box
    detection_score: float
    known: bool
    student_id: str | None
    name: str | None
    score: float | None
    similarity: float
    similarities: Mapping[str, float]
    head_similarity: float | None
    candidate_id: str | None
    too_small: bool = False
    """Smaller than ``min_recognisable_face``: not compared with anyone (``score`` is ``None``)."""
    source: str | None = None
    """Who named the face: ``recognised``, ``teacher``, or ``None`` (unknown)."""
    not_in_class: bool = False
    """The teacher said this face is nobody of the class."""


@dataclass(frozen=True)
class Recognised:
    """A photo recognised without recording anything."""

    faces: list[Face]
    names: list[str]
    """Names of the recognised students, in face order."""
    unknown_threshold: float
    message: str | None
    annotated_jpeg: bytes | None
    """The photo with a box and label on every face, when asked for."""


@dataclass(frozen=True)
class Session:
    id: str
    label: str
    date: dt.date
    created_at: dt.datetime


@dataclass(frozen=True)
class SessionSummary(Session):
    present_count: int
    photo_count: int


@dataclass(frozen=True)
class SessionPhotoAdded:
    """A session photo stored, and who it recorded present."""

    session_id: str
    photo_id: str
    faces: list[Face]
    names: list[str]
    recorded: list[str]
    already_present: list[str]
    """Recognised students an earlier photo had already recorded (kept as they were)."""
    unknown_threshold: float
    message: str | None


@dataclass(frozen=True)
class RosterEntry:
    student_id: str
    name: str
    present: bool
    """Attended: status present or late."""
    status: str
    """present, absent, late or excused."""
    source: str | None
    """``recognised``, ``teacher`` (a status set by hand, or a face the teacher named), or
    ``None`` for an absence nobody decided."""
    recorded_at: dt.datetime | None
    """When the photo that first shows the student was taken (uploaded)."""
    similarity: float | None
    score: float | None
    photo_id: str | None
    face_index: int | None
    note: str | None
    corrected_at: dt.datetime | None
    corrected_by: str | None
    """The API key's label, or ``console``."""


@dataclass(frozen=True)
class SessionDetail(Session):
    photo_ids: list[str]
    present_count: int
    absent_count: int
    roster: list[RosterEntry]


@dataclass(frozen=True)
class SessionCsv:
    text: str
    filename: str
    """A readable file name without extension (class, date, label), for the download."""


@dataclass(frozen=True)
class SessionPhotoDetail:
    session_id: str
    photo_id: str
    created_at: dt.datetime
    filename: str | None
    width: int
    height: int
    faces: list[Face]
    unknown_threshold: float


@dataclass(frozen=True)
class AttendanceEntry:
    session_id: str
    label: str
    date: dt.date
    present: bool
    status: str
    source: str | None
    recorded_at: dt.datetime | None
    similarity: float | None
    photo_id: str | None
    note: str | None


@dataclass(frozen=True)
class StudentAttendance:
    student_id: str
    name: str
    present_count: int
    session_count: int
    sessions: list[AttendanceEntry]


@dataclass(frozen=True)
class TermSession:
    id: str
    label: str
    date: dt.date


@dataclass(frozen=True)
class TermRow:
    student_id: str
    name: str
    statuses: list[str | None]
    """One per session of the report, in its order; ``None``: not on that session's roster."""
    attended: int
    """Sessions present or late."""
    counted: int
    """Sessions on the student's roster, less those excused: what the rate divides by."""
    rate: float | None
    """``attended / counted``, ``None`` when nothing counts."""


@dataclass(frozen=True)
class TermReport:
    class_id: str
    class_name: str
    date_from: dt.date | None
    date_to: dt.date | None
    sessions: list[TermSession]
    students: list[TermRow]


# --- audit log --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """One event of the audit log (ids only)."""

    id: str
    at: dt.datetime
    actor: str
    action: str
    outcome: str
    class_id: str | None
    student_id: str | None
    session_id: str | None
    photo_id: str | None
    photo_ids: list[str]
    face_index: int | None
    sample_id: str | None
    request: str | None
