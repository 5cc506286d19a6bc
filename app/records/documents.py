"""The JSON documents stored at the keys of :mod:`app.records.keys`, and the encodings of face
embeddings.

Where the API reports the same facts (a face of a photo, an audit event), its models derive from
the field groups defined here (:class:`FaceScores`, :class:`AuditSubject`), so a field is
written, described and validated in one place.
"""

from __future__ import annotations

import base64
import io
from datetime import date, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from ml.types import Embeddings

Box = tuple[float, float, float, float]
"""A face box ``(x1, y1, x2, y2)`` in the stored photo's pixels."""


def rounded_box(box: Box) -> Box:
    """A face box as reported and stored: tenths of a pixel."""
    x1, y1, x2, y2 = box
    return (round(float(x1), 1), round(float(y1), 1), round(float(x2), 1), round(float(y2), 1))


class Document(BaseModel):
    """A JSON object in the store. Unknown fields are kept so older code never drops newer data."""

    model_config = ConfigDict(extra="allow")

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class ClassDoc(Document):
    id: str
    name: str
    created_at: datetime
    source_id: str | None = None
    """The ``sourcedId`` of the class in the school's roster it was imported from."""
    class_code: str | None = None
    session_photo_retention_days: int | None = None
    """Days the class photos are kept (0: forever); ``None``: the deployment's default."""
    student_inactive_retention_days: int | None = None
    """Days without attending before a student is erased (0: never); ``None``: the default."""


class StudentDoc(Document):
    id: str
    name: str
    created_at: datetime
    source_id: str | None = None
    """The ``sourcedId`` (or student number) of the student in the school's roster they were
    imported from. An imported student is enrolled even before a photo of theirs is stored
    (the console shows them as needing one)."""


class StudentPhotoDoc(Document):
    id: str
    created_at: datetime
    filename: str | None = None
    box: Box
    quality: dict[str, object]
    content_sha256: str | None = None
    """Of the file as uploaded: an import finds the photos it stored before by it."""


class SessionDoc(Document):
    id: str
    label: str
    date: date
    created_at: datetime


class FaceScores(BaseModel):
    """What recognition found for one face of a photo: stored in ``result.json`` and reported
    by the API (:class:`app.services.attendance.models.Face` derives from it)."""

    box: Box
    detection_score: float
    student_id: str | None
    similarity: float = Field(
        description="Similarity with the chosen (or best rejected) student: the face models' "
        "cosines fused on FaceNet's cosine scale (FaceNet's raw cosine when it is used alone)."
    )
    score: float | None = Field(
        default=None,
        description="The score the decision is made on, for the chosen (or best rejected) "
        "student: the face is named when it reaches `unknown_threshold` (the similarity "
        "minus half the best similarity with any other student of the class).",
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
    closer_to: Literal["another_class", "known_stranger"] | None = Field(
        default=None,
        description="Why a face that looked like a student was not named: a student of another "
        "class (`another_class`) or one of the class's known strangers (`known_stranger`, a "
        "face a teacher said is nobody of the class) matches it at least as well.",
    )


class FaceDoc(Document, FaceScores):
    landmarks: list[tuple[float, float]] | None = None
    """The detector's five landmarks, to embed the face again when a teacher names it (absent in
    photos stored before corrections existed: the face is then found again on the photo)."""
    label: str | None = None
    """The label drawn on the stored annotated copy (to tell when it must be drawn again: a
    correction or a rename; absent in photos stored before it existed)."""


class SessionPhotoDoc(Document):
    id: str
    created_at: datetime
    filename: str | None = None
    width: int
    height: int
    unknown_threshold: float
    faces: list[FaceDoc]


class PhotoPurgedDoc(Document):
    """A session photo whose images the retention purge removed (``purged.json``)."""

    photo_id: str
    purged_at: datetime
    retention_days: int
    """The retention that applied."""


class RecordDoc(Document):
    student_id: str
    photo_id: str
    recorded_at: datetime
    similarity: float


Status = Literal["present", "absent", "late", "excused"]
"""A student's attendance in a session; present and late count as attended."""


class StatusCorrectionDoc(Document):
    """A teacher setting a student's status in a session by hand (``status`` ``None``: the manual
    entry was removed, recognition applies again)."""

    id: str
    student_id: str
    status: Status | None
    note: str = ""
    corrected_at: datetime
    corrected_by: str
    """The API key's label, or ``console``."""


class FaceAssignmentDoc(Document):
    """A teacher naming a face of a session photo (``student_id`` ``None``: not a student of this
    class), or taking their naming back (``withdrawn``: recognition's name applies again)."""

    id: str
    photo_id: str
    face_index: int
    student_id: str | None
    assigned_at: datetime
    assigned_by: str
    withdrawn: bool = False


class SessionFaceFields(BaseModel):
    """One face of a session photo kept beyond the photo: where it came from, every model's
    embedding, a small crop (shared by a student's sample and a class's known stranger)."""

    session_id: str
    photo_id: str
    face_index: int
    taken_at: datetime
    """When the class photo was uploaded."""
    box: Box
    embeddings: dict[str, str]
    """``model -> base64 of float32 (D,)``, every model's embedding of the face."""
    crop_jpeg: str
    """Base64 of a small JPEG of the face (the teacher checks it by sight, also after the class
    photo is deleted)."""


class SampleDoc(Document, SessionFaceFields):
    """A confirmed face of a student from a class photo: an extra gallery sample."""

    id: str
    student_id: str
    confirmed_by: Literal["teacher", "recognition"]
    confirmed_label: str
    """Who: the API key's label or ``console`` for a teacher, ``recognition`` otherwise."""
    confirmed_at: datetime


class KnownStrangerDoc(Document, SessionFaceFields):
    """A face of a class photo that a teacher said is nobody of the class: a later face close to
    it is not named on a score it would not have earned against this person
    (``ml.matching.KnownStrangers``)."""

    id: str
    marked_by: str
    """The API key's label, or ``console``."""
    marked_at: datetime


class AuditSubject(BaseModel):
    """The ids an audit event concerns: ids only, never a name, a note, an image or an embedding
    (an erased student's id stays in the log; their name is nowhere)."""

    class_id: str | None = None
    student_id: str | None = None
    session_id: str | None = None
    photo_id: str | None = None
    photo_ids: list[str] = Field(
        default_factory=list, description="The photos an enrolment stored."
    )
    face_index: int | None = None
    sample_id: str | None = None
    stranger_id: str | None = None
    request: str | None = Field(
        default=None,
        description="`METHOD /route/{template}` of a refused request (no values).",
        examples=["GET /v1/classes/{class_id}/students"],
    )


AuditOutcome = Literal["ok", "denied"]


class AuditEventDoc(Document, AuditSubject):
    """One audit event: who did what to which ids, when."""

    id: str = Field(description="Sorts by time.")
    at: datetime
    actor: str = Field(
        description="The API key's label (`key 2`, never the key), `console` (no key: the "
        "service runs open), `mobile app` (the mobile client's calls without a key) or `system` "
        "(background jobs).",
        examples=["key 2"],
    )
    action: str = Field(examples=["student.enrol", "session.photo_read", "access.denied"])
    outcome: AuditOutcome


ImportState = Literal["queued", "running", "done", "failed"]


class ImportJobDoc(Document):
    """A roster import as asked for (``imports/{id}/job.json``, written once)."""

    id: str
    kind: str
    """``OneRoster 1.2``, ``OneRoster 1.1`` or ``CSV``."""
    created_at: datetime
    requested_by: str
    photo_key: str
    dry_run: bool
    erase_removed: bool
    total: int
    """Students to go through."""


class ImportRefusal(BaseModel):
    source_id: str
    name: str
    reason: str
    class_source_id: str | None = None
    student_id: str | None = None
    """The student's Rollcall id, where they are enrolled."""
    class_ids: list[str] = Field(default_factory=list)
    """The Rollcall classes the student is enrolled in that this concerns."""


class ImportStateDoc(Document):
    """Where an import is (``imports/{id}/state.json``): rewritten by the one process running
    it, every few students, and at its end."""

    state: ImportState
    updated_at: datetime
    """When the running process last wrote it (an import whose process died stops updating)."""
    done: int = 0
    classes: dict[str, int] = Field(default_factory=dict)
    """``created``, ``updated``, ``unchanged``."""
    students: dict[str, int] = Field(default_factory=dict)
    """``created``, ``updated``, ``unchanged``."""
    photos_added: int = 0
    class_ids: list[str] = Field(default_factory=list)
    """The Rollcall classes of the roster this import went through (created or not)."""
    refusals: list[ImportRefusal] = Field(default_factory=list)
    removed: list[ImportRefusal] = Field(default_factory=list)
    """Students the export says are gone; ``reason`` says whether they were erased."""
    error: str | None = None
    finished_at: datetime | None = None


class HeadPointerDoc(Document):
    version: int
    key: str
    student_ids: list[str]
    gallery_signature: str
    trained_at: datetime


class HeadFailureDoc(Document):
    gallery_signature: str
    error: str
    failed_at: datetime


# --- embeddings ------------------------------------------------------------------------------


def embeddings_to_bytes(views: Embeddings) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(views, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def embeddings_from_bytes(data: bytes) -> Embeddings:
    array: Embeddings = np.load(io.BytesIO(data), allow_pickle=False)
    if array.ndim != 2 or array.shape[0] == 0 or array.dtype != np.float32:
        raise ValueError(f"unexpected embedding array {array.dtype} {array.shape}")
    return array


def vector_to_text(vector: npt.NDArray[np.float32]) -> str:
    """A float32 vector as base64 (exact, unlike decimal JSON numbers)."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def vector_from_text(text: str) -> npt.NDArray[np.float32]:
    """The inverse of :func:`vector_to_text`; ``ValueError`` if it is not one."""
    data = base64.b64decode(text, validate=True)
    if not data or len(data) % 4:
        raise ValueError("not a float32 vector")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)
