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
    classes/{cid}/head/{version:08d}.safetensors             trained projection heads
    classes/{cid}/head/current.json                          pointer to the head in use
    classes/{cid}/head/failure.json                          last failed training (removed on success)
    classes/{cid}/sessions/{sess}/session.json
    classes/{cid}/sessions/{sess}/photos/{pid}/original.jpg
    classes/{cid}/sessions/{sess}/photos/{pid}/annotated.jpg
    classes/{cid}/sessions/{sess}/photos/{pid}/result.json
    classes/{cid}/sessions/{sess}/records/{sid}.json         one per present student
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from pydantic import BaseModel, ConfigDict

from ml.fusion import FACENET
from ml.types import Embeddings

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


def session_photo_key(class_id: str, session_id: str, photo_id: str, name: str) -> str:
    """``name`` is :data:`ORIGINAL`, :data:`ANNOTATED` or :data:`RESULT`."""
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


class SessionPhotoDoc(Document):
    id: str
    created_at: datetime
    filename: str | None = None
    width: int
    height: int
    unknown_threshold: float
    faces: list[FaceDoc]


class RecordDoc(Document):
    student_id: str
    photo_id: str
    recorded_at: datetime
    similarity: float


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
