"""Where everything lives in the object store, and the JSON documents stored there.

One object per fact, never a shared dictionary: a student is ``student.json`` plus one photo and one
embedding object per registration photo; an attendance record is one object per present student. So
concurrent writers (threads or worker processes on one bucket) never overwrite each other, and every
derived artefact (the in-memory gallery, the trained head) can be rebuilt from these objects.

::

    classes/{cid}/class.json
    classes/{cid}/students/{sid}/student.json
    classes/{cid}/students/{sid}/photos/{pid}.jpg            registration photo (oriented, re-encoded)
    classes/{cid}/students/{sid}/photos/{pid}.json           its quality report
    classes/{cid}/students/{sid}/embeddings/{model}/{pid}.npy  float32 (n, D) of a secondary model
                                                             (dlib), written before FaceNet's
    classes/{cid}/students/{sid}/embeddings/{pid}.npy        FaceNet float32 (n_views, 512), written
                                                             last: it makes the photo count
    classes/{cid}/students/{sid}/samples/{sample_id}.json    a confirmed face from a class photo
                                                             (provenance, embeddings, crop)
    classes/{cid}/head/{version:08d}.safetensors             trained projection heads
    classes/{cid}/head/current.json                          pointer to the head in use
    classes/{cid}/head/failure.json                          last failed training (removed on success)
    classes/{cid}/sessions/{sess}/session.json
    classes/{cid}/sessions/{sess}/photos/{pid}/original.jpg
    classes/{cid}/sessions/{sess}/photos/{pid}/annotated.jpg
    classes/{cid}/sessions/{sess}/photos/{pid}/result.json
    classes/{cid}/sessions/{sess}/photos/{pid}/purged.json   the images were removed (retention)
    classes/{cid}/sessions/{sess}/records/{sid}.json         one per student recognised (first photo)
    classes/{cid}/sessions/{sess}/corrections/{sid}/{id}.json  a teacher's status for a student
    classes/{cid}/sessions/{sess}/assignments/{pid}/{face}/{id}.json  a teacher naming a face

    audit/{yyyy}/{mm}/{dd}/{id}.{cid}.json                   one audit event of class cid (UTC day)
    audit/{yyyy}/{mm}/{dd}/{id}.json                         one audit event of no class

Corrections and assignments are never rewritten: each one is a new object, and the newest of a
student (of a face) applies. Their ids sort by time (``ids.new_id``).

The audit log is at the bucket's root, outside ``classes/``, so that deleting a class or erasing
a student keeps the trail (it holds ids, never names or images). One object per event, written
once if absent and never rewritten, so concurrent requests and processes cannot lose each other's
events. A folder per UTC day (inside one per month) makes a date range a few listings: the days of
a short range, the months of a long one; the event id sorts by time and the class id is in the
name, so listing, ordering and filtering by class need no read of any body.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from ml.fusion import FACENET
from ml.types import Embeddings

Box = tuple[float, float, float, float]
"""A face box ``(x1, y1, x2, y2)`` in the stored photo's pixels."""

# --- keys ------------------------------------------------------------------------------------


def class_prefix(class_id: str) -> str:
    return f"classes/{class_id}/"


def class_key(class_id: str) -> str:
    return f"classes/{class_id}/class.json"


def students_prefix(class_id: str) -> str:
    return f"classes/{class_id}/students/"


def student_prefix(class_id: str, student_id: str) -> str:
    return f"classes/{class_id}/students/{student_id}/"


def student_key(class_id: str, student_id: str) -> str:
    return f"{student_prefix(class_id, student_id)}student.json"


def student_photo_key(class_id: str, student_id: str, photo_id: str) -> str:
    return f"{student_prefix(class_id, student_id)}photos/{photo_id}.jpg"


def student_photo_info_key(class_id: str, student_id: str, photo_id: str) -> str:
    return f"{student_prefix(class_id, student_id)}photos/{photo_id}.json"


def embedding_key(class_id: str, student_id: str, photo_id: str, model: str = FACENET) -> str:
    """FaceNet's embeddings of a registration photo, or ``model``'s (a folder per secondary model,
    which readers older than the fusion ignore)."""
    folder = "embeddings/" if model == FACENET else f"embeddings/{model}/"
    return f"{student_prefix(class_id, student_id)}{folder}{photo_id}.npy"


@dataclass(frozen=True)
class EmbeddingRef:
    """What an embedding key names."""

    student_id: str
    photo_id: str
    model: str


def parse_embedding_key(class_id: str, key: str) -> EmbeddingRef | None:
    """The inverse of :func:`embedding_key`; ``None`` for any other key."""
    prefix = students_prefix(class_id)
    if not key.startswith(prefix) or not key.endswith(".npy"):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) == 3 and parts[1] == "embeddings":
        return EmbeddingRef(parts[0], parts[2][: -len(".npy")], FACENET)
    if len(parts) == 4 and parts[1] == "embeddings" and parts[2] != FACENET:
        return EmbeddingRef(parts[0], parts[3][: -len(".npy")], parts[2])
    return None


def parse_student_key(class_id: str, key: str) -> str | None:
    """The student id of a ``student.json`` key (the inverse of :func:`student_key`)."""
    parts = _relative_parts(students_prefix(class_id), key)
    return (
        parts[0] if parts is not None and len(parts) == 2 and parts[1] == "student.json" else None
    )


def parse_student_of(class_id: str, key: str) -> str | None:
    """The student id of any key under a student's folder."""
    parts = _relative_parts(students_prefix(class_id), key)
    return parts[0] if parts is not None and len(parts) >= 2 else None


def parse_student_photo_info_key(class_id: str, student_id: str, key: str) -> str | None:
    """The photo id of a registration photo's quality report (:func:`student_photo_info_key`)."""
    parts = _relative_parts(student_prefix(class_id, student_id) + "photos/", key)
    if parts is None or len(parts) != 1 or not parts[0].endswith(".json"):
        return None
    return parts[0][: -len(".json")]


def student_object_kind(class_id: str, key: str) -> str | None:
    """What an object of a student's folder is, for an erasure's report: ``record``,
    ``registration_photo``, ``photo_report``, ``face_template`` (an embedding, any model),
    ``sample``, or ``other``; ``None`` for a key outside the class's students."""
    if parse_student_of(class_id, key) is None:
        return None
    if parse_student_key(class_id, key) is not None:
        return "record"
    if parse_embedding_key(class_id, key) is not None:
        return "face_template"
    if parse_sample_key(class_id, key) is not None:
        return "sample"
    parts = _relative_parts(students_prefix(class_id), key)
    if parts is not None and len(parts) == 3 and parts[1] == "photos":
        return "registration_photo" if parts[2].endswith(".jpg") else "photo_report"
    return "other"


def _relative_parts(prefix: str, key: str) -> list[str] | None:
    return key[len(prefix) :].split("/") if key.startswith(prefix) else None


def head_prefix(class_id: str) -> str:
    return f"classes/{class_id}/head/"


def head_key(class_id: str, version: int) -> str:
    return f"{head_prefix(class_id)}{version:08d}.safetensors"


def head_pointer_key(class_id: str) -> str:
    return f"{head_prefix(class_id)}current.json"


def head_failure_key(class_id: str) -> str:
    return f"{head_prefix(class_id)}failure.json"


def parse_head_key(class_id: str, key: str) -> int | None:
    """The version of a stored head (the inverse of :func:`head_key`)."""
    parts = _relative_parts(head_prefix(class_id), key)
    if parts is None or len(parts) != 1 or not parts[0].endswith(".safetensors"):
        return None
    name = parts[0][: -len(".safetensors")]
    return int(name) if name.isdigit() else None


def sessions_prefix(class_id: str) -> str:
    return f"classes/{class_id}/sessions/"


def session_prefix(class_id: str, session_id: str) -> str:
    return f"{sessions_prefix(class_id)}{session_id}/"


def session_key(class_id: str, session_id: str) -> str:
    return f"{session_prefix(class_id, session_id)}session.json"


def session_photos_prefix(class_id: str, session_id: str) -> str:
    return f"{session_prefix(class_id, session_id)}photos/"


def session_photo_prefix(class_id: str, session_id: str, photo_id: str) -> str:
    return f"{session_photos_prefix(class_id, session_id)}{photo_id}/"


ORIGINAL = "original.jpg"
ANNOTATED = "annotated.jpg"
RESULT = "result.json"
"""The objects of a session photo; ``result.json`` is written last and makes the photo complete."""
PURGED = "purged.json"
"""Written (if absent) before the retention purge removes the photo's images; ``result.json``,
the face-free facts, stays."""
IMAGES = (ORIGINAL, ANNOTATED)
"""The objects of a session photo that show faces (removed by the retention purge)."""


def session_photo_key(class_id: str, session_id: str, photo_id: str, name: str) -> str:
    """``name`` is :data:`ORIGINAL`, :data:`ANNOTATED`, :data:`RESULT` or :data:`PURGED`."""
    return f"{session_photo_prefix(class_id, session_id, photo_id)}{name}"


def parse_session_photo_key(class_id: str, session_id: str, key: str) -> tuple[str, str] | None:
    """``(photo id, object name)`` of a key under a session's ``photos/``."""
    parts = _relative_parts(session_photos_prefix(class_id, session_id), key)
    return (parts[0], parts[1]) if parts is not None and len(parts) == 2 else None


def records_prefix(class_id: str, session_id: str) -> str:
    return f"{session_prefix(class_id, session_id)}records/"


def record_key(class_id: str, session_id: str, student_id: str) -> str:
    return f"{records_prefix(class_id, session_id)}{student_id}.json"


def parse_record_key(class_id: str, session_id: str, key: str) -> str | None:
    """The student id of an attendance record (the inverse of :func:`record_key`)."""
    parts = _relative_parts(records_prefix(class_id, session_id), key)
    if parts is None or len(parts) != 1 or not parts[0].endswith(".json"):
        return None
    return parts[0][: -len(".json")]


def samples_prefix(class_id: str, student_id: str) -> str:
    return f"{student_prefix(class_id, student_id)}samples/"


def sample_key(class_id: str, student_id: str, sample_id: str) -> str:
    return f"{samples_prefix(class_id, student_id)}{sample_id}.json"


@dataclass(frozen=True)
class SampleRef:
    """What a sample key names."""

    student_id: str
    sample_id: str


def parse_sample_key(class_id: str, key: str) -> SampleRef | None:
    """The inverse of :func:`sample_key`; ``None`` for any other key."""
    parts = _relative_parts(students_prefix(class_id), key)
    if parts is None or len(parts) != 3 or parts[1] != "samples" or not parts[2].endswith(".json"):
        return None
    return SampleRef(parts[0], parts[2][: -len(".json")])


def corrections_prefix(class_id: str, session_id: str, student_id: str | None = None) -> str:
    """All status corrections of a session, or those of one student."""
    base = f"{session_prefix(class_id, session_id)}corrections/"
    return f"{base}{student_id}/" if student_id is not None else base


def correction_key(class_id: str, session_id: str, student_id: str, correction_id: str) -> str:
    return f"{corrections_prefix(class_id, session_id, student_id)}{correction_id}.json"


def parse_correction_key(class_id: str, session_id: str, key: str) -> str | None:
    """The student id of a status correction (the inverse of :func:`correction_key`)."""
    parts = _relative_parts(corrections_prefix(class_id, session_id), key)
    if parts is None or len(parts) != 2 or not parts[1].endswith(".json"):
        return None
    return parts[0]


def assignments_prefix(class_id: str, session_id: str) -> str:
    return f"{session_prefix(class_id, session_id)}assignments/"


def photo_assignments_prefix(class_id: str, session_id: str, photo_id: str) -> str:
    return f"{assignments_prefix(class_id, session_id)}{photo_id}/"


def assignment_key(
    class_id: str, session_id: str, photo_id: str, face_index: int, assignment_id: str
) -> str:
    return f"{photo_assignments_prefix(class_id, session_id, photo_id)}{face_index}/{assignment_id}.json"


def parse_assignment_key(class_id: str, session_id: str, key: str) -> tuple[str, int] | None:
    """``(photo id, face index)`` of a face assignment (the inverse of :func:`assignment_key`)."""
    parts = _relative_parts(assignments_prefix(class_id, session_id), key)
    if parts is None or len(parts) != 3 or not parts[1].isdigit() or not parts[2].endswith(".json"):
        return None
    return parts[0], int(parts[1])


AUDIT_PREFIX = "audit/"


def audit_month_prefix(year: int, month: int) -> str:
    return f"{AUDIT_PREFIX}{year:04d}/{month:02d}/"


def audit_day_prefix(day: date) -> str:
    return f"{audit_month_prefix(day.year, day.month)}{day.day:02d}/"


def audit_key(day: date, event_id: str, class_id: str | None) -> str:
    """``day``: the event's UTC date; ``event_id``: a time-sorted id (``ids.new_id``)."""
    name = f"{event_id}.{class_id}" if class_id is not None else event_id
    return f"{audit_day_prefix(day)}{name}.json"


@dataclass(frozen=True)
class AuditRef:
    """What an audit key names."""

    day: date
    event_id: str
    class_id: str | None


def parse_audit_key(key: str) -> AuditRef | None:
    """The inverse of :func:`audit_key`; ``None`` for any other key."""
    parts = _relative_parts(AUDIT_PREFIX, key)
    if parts is None or len(parts) != 4 or not parts[3].endswith(".json"):
        return None
    year, month, day, name = parts
    if not (year.isdigit() and month.isdigit() and day.isdigit()):
        return None
    try:
        when = date(int(year), int(month), int(day))
    except ValueError:
        return None
    event_id, dot, class_id = name[: -len(".json")].partition(".")
    if not event_id or (dot and not class_id):
        return None
    return AuditRef(when, event_id, class_id if dot else None)


def last_segment(key: str, suffix: str) -> str:
    """``".../photos/abc.jpg"`` with suffix ``".jpg"`` -> ``"abc"``."""
    name = key.rsplit("/", 1)[-1]
    return name[: -len(suffix)] if suffix and name.endswith(suffix) else name


# --- the original server's layout (read by the importer, never written) -----------------------
#
#     {prefix}registration/{name}/{name}_initial.jpg                 the head crop it cut
#     {prefix}registration/{name}/{name}_embedding/{name}.npy        its embedding (other weights)
#     {prefix}embedding_dictionary/student_embeddings_dict.npz       every embedding (other weights)
#     {prefix}model/model.pth                                        its model (a pickle: never read)

ORIGINAL_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def original_prefix(prefix: str) -> str:
    """``"old"`` or ``"old/"`` -> ``"old/"``; ``""`` stays ``""``."""
    return f"{prefix.strip('/')}/" if prefix.strip("/") else ""


def original_registration_prefix(prefix: str) -> str:
    return f"{original_prefix(prefix)}registration/"


def original_initial_photo_key(prefix: str, name: str) -> str:
    return f"{original_registration_prefix(prefix)}{name}/{name}_initial.jpg"


def original_embedding_key(prefix: str, name: str) -> str:
    return f"{original_registration_prefix(prefix)}{name}/{name}_embedding/{name}.npy"


def original_dictionary_key(prefix: str) -> str:
    return f"{original_prefix(prefix)}embedding_dictionary/student_embeddings_dict.npz"


def original_model_key(prefix: str) -> str:
    return f"{original_prefix(prefix)}model/model.pth"


def parse_original_registration_key(prefix: str, key: str) -> tuple[str, str] | None:
    """``(student folder name, path inside it)`` for a key under ``registration/``, else ``None``."""
    base = original_registration_prefix(prefix)
    if not key.startswith(base):
        return None
    name, _, rest = key[len(base) :].partition("/")
    return (name, rest) if name and rest else None


def is_original_photo(rest: str) -> bool:
    """A photo directly in a student's folder (``{name}_initial.jpg``), not in a subfolder."""
    return "/" not in rest and rest.lower().endswith(ORIGINAL_PHOTO_SUFFIXES)


# --- documents -------------------------------------------------------------------------------


class Document(BaseModel):
    """A JSON object in the store. Unknown fields are kept so older code never drops newer data."""

    model_config = ConfigDict(extra="allow")

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class ClassDoc(Document):
    id: str
    name: str
    created_at: datetime
    session_photo_retention_days: int | None = None
    """Days the class photos are kept (0: forever); ``None``: the deployment's default."""
    student_inactive_retention_days: int | None = None
    """Days without attending before a student is erased (0: never); ``None``: the default."""


class StudentDoc(Document):
    id: str
    name: str
    created_at: datetime


class StudentPhotoDoc(Document):
    id: str
    created_at: datetime
    filename: str | None = None
    box: tuple[float, float, float, float]
    quality: dict[str, object]


class SessionDoc(Document):
    id: str
    label: str
    date: date
    created_at: datetime


class FaceDoc(Document):
    box: tuple[float, float, float, float]
    detection_score: float
    student_id: str | None
    similarity: float
    score: float | None = None
    """The stage-1 score compared with the threshold (absent in photos stored before it existed)."""
    similarities: dict[str, float] = {}
    head_similarity: float | None = None
    candidate_id: str | None = None
    too_small: bool = False
    """Too small to recognise (absent, i.e. false, in photos stored before it existed)."""
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
    class)."""

    id: str
    photo_id: str
    face_index: int
    student_id: str | None
    assigned_at: datetime
    assigned_by: str


class SampleDoc(Document):
    """A confirmed face of a student from a class photo: an extra gallery sample."""

    id: str
    student_id: str
    session_id: str
    photo_id: str
    face_index: int
    confirmed_by: Literal["teacher", "recognition"]
    confirmed_label: str
    """Who: the API key's label or ``console`` for a teacher, ``recognition`` otherwise."""
    confirmed_at: datetime
    taken_at: datetime
    """When the class photo was uploaded."""
    box: tuple[float, float, float, float]
    embeddings: dict[str, str]
    """``model -> base64 of float32 (D,)``, every model's embedding of the face."""
    crop_jpeg: str
    """Base64 of a small JPEG of the face (the teacher checks samples by sight, also after the
    class photo is deleted)."""


class AuditEventDoc(Document):
    """One audit event: who did what to which ids, when. Ids only: never a name, a note, an image
    or an embedding (an erased student's id stays here; their name is nowhere)."""

    id: str
    at: datetime
    actor: str
    """The API key's label (``key 2``, never the key), ``console``, ``mobile app`` or
    ``system``."""
    action: str
    """``student.enrol``, ``photo.read``... (:class:`app.services.audit.Action`)."""
    outcome: Literal["ok", "denied"]
    class_id: str | None = None
    student_id: str | None = None
    session_id: str | None = None
    photo_id: str | None = None
    photo_ids: list[str] = []
    face_index: int | None = None
    sample_id: str | None = None
    request: str | None = None
    """``METHOD /route/{template}`` of a refused request (the template: never a value)."""


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


def vector_to_text(vector: npt.NDArray[np.float32]) -> str:
    """A float32 vector as base64 (exact, unlike decimal JSON numbers)."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def vector_from_text(text: str) -> npt.NDArray[np.float32]:
    """The inverse of :func:`vector_to_text`; ``ValueError`` if it is not one."""
    data = base64.b64decode(text, validate=True)
    if not data or len(data) % 4:
        raise ValueError("not a float32 vector")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def embeddings_from_bytes(data: bytes) -> Embeddings:
    array: Embeddings = np.load(io.BytesIO(data), allow_pickle=False)
    if array.ndim != 2 or array.shape[0] == 0 or array.dtype != np.float32:
        raise ValueError(f"unexpected embedding array {array.dtype} {array.shape}")
    return array
