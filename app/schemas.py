"""Request and response models of the HTTP API (they are what OpenAPI documents)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.services.ids import MAX_NAME_LENGTH, SLUG_PATTERN, clean_name

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


class StudentDetail(StudentOut):
    photos: list[StudentPhotoOut]


class EnrolmentOut(Model):
    student: StudentOut
    photos: list[PhotoReport] = Field(description="Quality report of every photo just added.")
    warnings: list[str] = Field(description="Every quality warning, plus look-alike warnings.")
    similar_students: list[SimilarStudent] = Field(
        description="Other students this face is very similar to (possible duplicate enrolment)."
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
    present_count: int = Field(description="Students recorded present.")
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


class RosterEntry(Model):
    student_id: str
    name: str
    present: bool
    recorded_at: dt.datetime | None = None
    similarity: float | None = None
    photo_id: str | None = None


class SessionDetail(SessionOut):
    photo_ids: list[str]
    present_count: int
    absent_count: int
    roster: list[RosterEntry]


class SessionPhotoDetail(Model):
    """A stored session photo: its faces as recognised when it was uploaded (names as of now;
    a face of a student deleted since is reported unknown)."""

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
    recorded_at: dt.datetime | None = None
    similarity: float | None = None
    photo_id: str | None = None


class StudentAttendance(Model):
    student_id: str
    name: str
    present_count: int
    session_count: int
    sessions: list[AttendanceEntry] = Field(description="Every session of the class, by date.")


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
