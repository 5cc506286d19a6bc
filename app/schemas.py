"""Request and response models of the HTTP API (they are what OpenAPI documents)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.services.ids import MAX_NAME_LENGTH, SLUG_PATTERN, clean_name
from app.services.policy import MAX_RETENTION_DAYS

Slug = Annotated[
    str,
    StringConstraints(pattern=SLUG_PATTERN),
    Field(description="URL-safe id: `[a-z0-9][a-z0-9_-]{0,63}`", examples=["physics-7b"]),
]
# Every display name (class, session label, student) passes the same check as a registered
# student's name: no control or bidirectional-override characters (spoofing), blanks collapsed.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(clean_name),
]
Box = tuple[float, float, float, float]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- classes ----------------------------------------------------------------------------------


class ClassCreate(Model):
    id: Slug
    name: Name


RetentionDays = Annotated[int, Field(ge=0, le=MAX_RETENTION_DAYS)]


class ClassUpdate(Model):
    """Only the fields given change; ``null`` for a retention field means the deployment's
    default (``ROLLCALL_SESSION_PHOTO_RETENTION_DAYS``, ``ROLLCALL_STUDENT_INACTIVE_RETENTION_DAYS``)."""

    name: Name | None = Field(default=None, description="A new name (null is refused).")
    session_photo_retention_days: RetentionDays | None = Field(
        default=None,
        description="Days the class photos and their annotated copies are kept (the attendance "
        "facts stay); 0 = forever; null = the deployment's default.",
    )
    student_inactive_retention_days: RetentionDays | None = Field(
        default=None,
        description="Erase a student enrolled this many days ago who attended no session dated "
        "within as many days; 0 = never; null = the deployment's default.",
    )

    @model_validator(mode="after")
    def _name_not_null(self) -> ClassUpdate:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null; leave it out to keep the name")
        return self


class RetentionOut(Model):
    session_photo_retention_days: int | None = Field(
        description="The class's override (null: the deployment's default)."
    )
    student_inactive_retention_days: int | None = Field(
        description="The class's override (null: the deployment's default)."
    )
    effective_session_photo_retention_days: int = Field(
        description="What applies: days class photos are kept (0 = forever)."
    )
    effective_student_inactive_retention_days: int = Field(
        description="What applies: days of inactivity before a student is erased (0 = never)."
    )


class HeadInfo(Model):
    state: Literal["none", "training", "ready", "stale", "failed"] = Field(
        description=(
            "none: no head (fewer than 2 students, or heads disabled); training: a training is "
            "running or queued; ready: trained on exactly the current photos; stale: students or "
            "photos changed since (it is still used for the students it knows); failed: the last "
            "training for the current photos failed (see error)."
        )
    )
    version: int | None = None
    trained_at: str | None = None
    student_count: int | None = Field(default=None, description="Students the head was trained on.")
    error: str | None = None


class ModelProgress(Model):
    """How many registration photos a secondary face model has embedded: photos registered before
    it was added are embedded in the background; until then they are matched on FaceNet alone."""

    model: str
    photos_done: int
    photos_total: int
    state: Literal["ready", "filling"]


class ClassOut(Model):
    id: str
    name: str
    created_at: dt.datetime
    student_count: int
    head: HeadInfo | None = Field(default=None, description="Only in GET /v1/classes/{class_id}.")
    models: list[ModelProgress] | None = Field(
        default=None,
        description="Only in GET /v1/classes/{class_id}: the secondary face models' back-fill.",
    )
    retention: RetentionOut | None = Field(
        default=None, description="Only in GET and PATCH /v1/classes/{class_id}."
    )


# --- students ---------------------------------------------------------------------------------


class Quality(Model):
    face_size: float = Field(description="Shorter side of the face box, pixels.")
    sharpness: float = Field(description="Variance of the Laplacian of the aligned crop.")
    yaw: float
    pitch: float
    roll: float
    detection_score: float
    grayscale: bool = Field(default=False, description="The photo is black and white.")
    cut_by_border: bool = Field(default=False, description="The face touches the photo's edge.")
    ignored_faces: int = Field(
        default=0, description="Smaller background faces that were not registered."
    )
    warnings: list[str]


class PhotoReport(Model):
    photo_id: str
    filename: str | None
    box: Box
    quality: Quality


class SimilarStudent(Model):
    student_id: str
    name: str
    similarity: float = Field(
        description="Similarity of the new face with that student (fused over the face models, "
        "on FaceNet's cosine scale)."
    )
    filename: str | None = Field(default=None, description="The uploaded photo it concerns.")


class StudentOut(Model):
    id: str
    name: str
    created_at: dt.datetime
    photo_count: int


class StudentPhotoOut(Model):
    photo_id: str
    created_at: dt.datetime
    filename: str | None
    box: Box
    quality: Quality


class SampleOut(Model):
    """A face from a class photo confirmed as this student: matched like a registration photo."""

    sample_id: str
    session_id: str
    photo_id: str
    face_index: int
    confirmed_by: Literal["teacher", "recognition"] = Field(
        description="`teacher`: a teacher named the face; `recognition`: recognised so surely "
        "(`ROLLCALL_AUTO_CONFIRM_MARGIN`, `ROLLCALL_AUTO_CONFIRM_GAP`) that no teacher was needed."
    )
    confirmed_label: str = Field(
        description="Who: the API key's label or `console`, or `recognition`."
    )
    confirmed_at: dt.datetime
    taken_at: dt.datetime = Field(description="When the class photo was uploaded.")
    crop_url: str = Field(description="A small JPEG of the face.")


class StudentDetail(StudentOut):
    photos: list[StudentPhotoOut]
    samples: list[SampleOut] = Field(
        default_factory=list,
        description="Confirmed faces from class photos, newest first (at most "
        "`ROLLCALL_MAX_SAMPLES_PER_STUDENT`).",
    )


class EnrolmentOut(Model):
    student: StudentOut
    photos: list[PhotoReport] = Field(description="Quality report of every photo just added.")
    warnings: list[str] = Field(description="Every quality warning, plus look-alike warnings.")
    similar_students: list[SimilarStudent] = Field(
        description="Other students this face is very similar to (possible duplicate enrolment)."
    )


class ErasureReportOut(Model):
    student_id: str
    removed: dict[str, int] = Field(
        description="Objects removed, by kind: record, registration_photo, photo_report, "
        "face_template, sample, attendance_record, status_correction, face_assignment; and "
        "class_photo_relabelled (stored class photos whose face of the student is now unnamed)."
    )


class StudentRename(Model):
    name: Name


class PhotoCheckOut(Model):
    """A registration photo checked without storing anything (the console's preview)."""

    filename: str | None
    width: int = Field(description="Width of the (EXIF-oriented) photo, pixels.")
    height: int
    box: Box = Field(description="The face, in the oriented photo's pixels.")
    quality: Quality
    warnings: list[str] = Field(description="Quality warnings plus look-alike warnings.")
    similar_students: list[SimilarStudent]


# --- recognition and attendance --------------------------------------------------------------


class FaceOut(Model):
    box: Box
    detection_score: float
    known: bool
    student_id: str | None
    name: str | None
    score: float | None = Field(
        default=None,
        description="The score the decision is made on, for the chosen (or best rejected) "
        "student: the face is named when it reaches `unknown_threshold` (the similarity "
        "minus half the best similarity with any other student of the class).",
    )
    similarity: float = Field(
        description="Similarity with the chosen (or best rejected) student: the face models' "
        "cosines fused on FaceNet's cosine scale (FaceNet's raw cosine when it is used alone)."
    )
    similarities: dict[str, float] = Field(
        default_factory=dict,
        description="Details: each face model's raw cosine with that student (e.g. facenet, dlib).",
    )
    head_similarity: float | None = None
    candidate_id: str | None = Field(
        default=None, description="Most similar student even when the face was rejected."
    )
    too_small: bool = Field(
        default=False,
        description="The face is smaller than `ROLLCALL_MIN_RECOGNISABLE_FACE` pixels: it is "
        "shown (grey box) but not compared with anyone, so `score` is null.",
    )
    source: Literal["recognised", "teacher"] | None = Field(
        default=None,
        description="Who named the face (stored photos only): `recognised`, `teacher` (assigned "
        "by hand, or said to be nobody of the class), or null for an unknown face.",
    )
    not_in_class: bool = Field(
        default=False, description="A teacher said this face is nobody of the class."
    )


class RecognitionOut(Model):
    faces: list[FaceOut]
    names: list[str] = Field(description="Names of the recognised students, in face order.")
    unknown_threshold: float = Field(description="What each face's `score` is compared with.")
    message: str | None = None
    image: str | None = Field(
        default=None, description="Annotated photo, base64 JPEG (only when `annotate=true`)."
    )


class SessionCreate(Model):
    id: Slug | None = Field(default=None, description="Generated when omitted.")
    label: Name
    date: dt.date | None = Field(default=None, description="Today (UTC) when omitted.")


class SessionOut(Model):
    id: str
    label: str
    date: dt.date
    created_at: dt.datetime


class SessionSummary(SessionOut):
    present_count: int = Field(description="Students present or late.")
    photo_count: int


class SessionPhotoOut(Model):
    session_id: str
    photo_id: str
    faces: list[FaceOut]
    names: list[str]
    recorded: list[str] = Field(description="Students recorded present by this photo.")
    already_present: list[str] = Field(
        description="Recognised students an earlier photo had already recorded (kept as they were)."
    )
    unknown_threshold: float
    message: str | None = None
    annotated_url: str
    face_urls: list[str] = Field(description="A crop of each face (JPEG), in face order.")


Status = Literal["present", "absent", "late", "excused"]


class RosterEntry(Model):
    student_id: str
    name: str
    present: bool = Field(description="Attended: `status` is present or late.")
    status: Status
    source: Literal["recognised", "teacher"] | None = Field(
        description="How the status was decided: `recognised` (see `photo_id`, `score`), "
        "`teacher` (set by hand, or a face the teacher named: see `corrected_at`, "
        "`corrected_by`), or null for an absence nobody decided."
    )
    recorded_at: dt.datetime | None = Field(
        default=None, description="When the first photo showing the student was uploaded."
    )
    similarity: float | None = None
    score: float | None = Field(
        default=None, description="The recognition score of the face (recognised only)."
    )
    photo_id: str | None = Field(default=None, description="The first photo showing them.")
    face_index: int | None = Field(default=None, description="Their face in that photo.")
    note: str | None = None
    corrected_at: dt.datetime | None = None
    corrected_by: str | None = Field(
        default=None, description="The API key's label, or `console` (no key)."
    )


class StatusIn(Model):
    status: Status
    note: str = Field(default="", max_length=500, description="Shown to teachers; optional.")


class FaceAssignIn(Model):
    student_id: Slug | None = Field(
        description="The student this face is, or null: nobody of this class."
    )


class SessionDetail(SessionOut):
    photo_ids: list[str]
    present_count: int
    absent_count: int
    roster: list[RosterEntry]


class SessionPhotoDetail(Model):
    """A stored session photo: its faces as recognised when it was uploaded, with the teacher's
    assignments applied (names as of now; a face of a student deleted since is unknown)."""

    session_id: str
    photo_id: str
    created_at: dt.datetime
    filename: str | None
    width: int
    height: int
    faces: list[FaceOut]
    unknown_threshold: float
    annotated_url: str
    face_urls: list[str] = Field(description="A crop of each face (JPEG), in face order.")


class AttendanceEntry(Model):
    session_id: str
    label: str
    date: dt.date
    present: bool
    status: Status
    source: Literal["recognised", "teacher"] | None = None
    recorded_at: dt.datetime | None = None
    similarity: float | None = None
    photo_id: str | None = None
    note: str | None = None


class StudentAttendance(Model):
    student_id: str
    name: str
    present_count: int
    session_count: int
    sessions: list[AttendanceEntry] = Field(
        description="Every session of the class whose roster has the student, by date."
    )


class TermSessionOut(Model):
    id: str
    label: str
    date: dt.date


class TermRowOut(Model):
    student_id: str
    name: str
    statuses: list[Status | None] = Field(
        description="One per session of `sessions`, in order; null: not on that session's "
        "roster (enrolled later)."
    )
    attended: int = Field(description="Sessions present or late.")
    counted: int = Field(description="Sessions on the roster, less those excused.")
    rate: float | None = Field(description="`attended / counted` (0-1); null when 0 counted.")


class TermReportOut(Model):
    class_id: str
    class_name: str
    date_from: dt.date | None
    date_to: dt.date | None
    sessions: list[TermSessionOut] = Field(description="By date.")
    students: list[TermRowOut] = Field(description="By name.")


# --- the mobile client's calls ----------------------------------------------------------------


class LegacyRegisterOut(BaseModel):
    message: str
    student_id: str
    name: str
    photos_added: int
    quality: list[PhotoReport]
    warnings: list[str]


class LegacyDetectOut(BaseModel):
    names: list[str]
    image: str = Field(description="The photo with a box and label on every face, base64 JPEG.")
    message: str | None = None
    faces: list[FaceOut]


# --- health -----------------------------------------------------------------------------------


class HealthOut(Model):
    status: Literal["ok"]


class ReadyOut(Model):
    status: Literal["ready", "not ready"]
    models: bool
    storage: str
    detail: str | None = None


class AuditEventOut(Model):
    """One event of the audit log: ids only, never a name or an image."""

    id: str = Field(description="Sorts by time.")
    at: dt.datetime
    actor: str = Field(
        description="The API key's label (`key 2`, never the key), `console` (no key: the "
        "service runs open), `mobile app` (the mobile client's calls without a key) or `system` "
        "(background jobs).",
        examples=["key 2"],
    )
    action: str = Field(examples=["student.enrol", "session.photo_read", "access.denied"])
    outcome: Literal["ok", "denied"]
    class_id: str | None
    student_id: str | None
    session_id: str | None
    photo_id: str | None
    photo_ids: list[str] = Field(description="The photos an enrolment stored.")
    face_index: int | None
    sample_id: str | None
    request: str | None = Field(
        description="`METHOD /route/{template}` of a refused request (no values).",
        examples=["GET /v1/classes/{class_id}/students"],
    )
