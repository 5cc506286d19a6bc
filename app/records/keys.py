"""Where everything lives in the object store: one key template per stored thing
(:mod:`app.records.templates`); the documents stored there are in :mod:`app.records.documents`.

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
    classes/{cid}/strangers/{xid}.json                       a face a teacher said is nobody of the
                                                             class (provenance, embeddings, crop)
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

    imports/{id}/job.json                                    a roster import as asked for
    imports/{id}/state.json                                  where it is (rewritten as it runs)

Corrections and assignments are never rewritten: each one is a new object, and the newest of a
student (of a face) applies. Their ids sort by time (``ids.new_id``; ``ids.new_id_after`` for a
face's assignment that replaces another within the same millisecond).

The audit log is at the bucket's root, outside ``classes/``, so that deleting a class or erasing
a student keeps the trail (it holds ids, never names or images). One object per event, written
once if absent and never rewritten, so concurrent requests and processes cannot lose each other's
events. A folder per UTC day (inside one per month) makes a date range a few listings: the days of
a short range, the months of a long one; the event id sorts by time and the class id is in the
name, so listing, ordering and filtering by class need no read of any body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from app.records.templates import KeyTemplate
from ml.fusion import FACENET

# --- what a key names -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassRef:
    class_id: str


@dataclass(frozen=True)
class StudentRef:
    class_id: str
    student_id: str


@dataclass(frozen=True)
class StudentObjectRef:
    """Any object under a student's folder."""

    class_id: str
    student_id: str
    rest: str


@dataclass(frozen=True)
class StudentPhotoRef:
    class_id: str
    student_id: str
    photo_id: str


@dataclass(frozen=True)
class ModelEmbeddingRef:
    class_id: str
    student_id: str
    model: str
    photo_id: str


@dataclass(frozen=True)
class EmbeddingRef:
    """What an embedding key names, whichever model's."""

    student_id: str
    photo_id: str
    model: str


@dataclass(frozen=True)
class SampleRef:
    class_id: str
    student_id: str
    sample_id: str


@dataclass(frozen=True)
class KnownStrangerRef:
    class_id: str
    stranger_id: str


@dataclass(frozen=True)
class HeadRef:
    class_id: str
    version: int


@dataclass(frozen=True)
class SessionRef:
    class_id: str
    session_id: str


@dataclass(frozen=True)
class SessionObjectRef:
    """Any object under a session's folder."""

    class_id: str
    session_id: str
    rest: str


@dataclass(frozen=True)
class SessionPhotoRef:
    class_id: str
    session_id: str
    photo_id: str
    name: str
    """:data:`ORIGINAL`, :data:`ANNOTATED`, :data:`RESULT` or :data:`PURGED`."""


@dataclass(frozen=True)
class RecordRef:
    class_id: str
    session_id: str
    student_id: str


@dataclass(frozen=True)
class CorrectionRef:
    class_id: str
    session_id: str
    student_id: str
    correction_id: str


@dataclass(frozen=True)
class AssignmentRef:
    class_id: str
    session_id: str
    photo_id: str
    face_index: int
    assignment_id: str


@dataclass(frozen=True)
class AuditDayRef:
    year: int
    month: int
    day: int


@dataclass(frozen=True)
class AuditClassEventRef:
    year: int
    month: int
    day: int
    event_id: str
    class_id: str


@dataclass(frozen=True)
class AuditEventRef:
    year: int
    month: int
    day: int
    event_id: str


@dataclass(frozen=True)
class ImportRef:
    import_id: str


@dataclass(frozen=True)
class AuditRef:
    """What an audit key names."""

    day: date
    event_id: str
    class_id: str | None


# --- the templates: one per stored thing ------------------------------------------------------

ANY = {"rest": ".+"}

CLASS = KeyTemplate(ClassRef, "classes/{class_id}/class.json")
STUDENT = KeyTemplate(StudentRef, "classes/{class_id}/students/{student_id}/student.json")
STUDENT_OBJECT = KeyTemplate(
    StudentObjectRef, "classes/{class_id}/students/{student_id}/{rest}", patterns=ANY
)
STUDENT_PHOTO = KeyTemplate(
    StudentPhotoRef, "classes/{class_id}/students/{student_id}/photos/{photo_id}.jpg"
)
STUDENT_PHOTO_INFO = KeyTemplate(
    StudentPhotoRef, "classes/{class_id}/students/{student_id}/photos/{photo_id}.json"
)
FACENET_EMBEDDING = KeyTemplate(
    StudentPhotoRef, "classes/{class_id}/students/{student_id}/embeddings/{photo_id}.npy"
)
"""FaceNet's embeddings of a registration photo (the layout of readers older than the fusion)."""
MODEL_EMBEDDING = KeyTemplate(
    ModelEmbeddingRef,
    "classes/{class_id}/students/{student_id}/embeddings/{model}/{photo_id}.npy",
)
"""A secondary model's embeddings (a folder per model, which older readers ignore)."""
SAMPLE = KeyTemplate(SampleRef, "classes/{class_id}/students/{student_id}/samples/{sample_id}.json")
KNOWN_STRANGER = KeyTemplate(KnownStrangerRef, "classes/{class_id}/strangers/{stranger_id}.json")
"""A face a teacher said is nobody of the class (negative evidence for its matching)."""
HEAD = KeyTemplate(HeadRef, "classes/{class_id}/head/{version:08d}.safetensors")
HEAD_POINTER = KeyTemplate(ClassRef, "classes/{class_id}/head/current.json")
HEAD_FAILURE = KeyTemplate(ClassRef, "classes/{class_id}/head/failure.json")
SESSION = KeyTemplate(SessionRef, "classes/{class_id}/sessions/{session_id}/session.json")
SESSION_OBJECT = KeyTemplate(
    SessionObjectRef, "classes/{class_id}/sessions/{session_id}/{rest}", patterns=ANY
)
SESSION_PHOTO = KeyTemplate(
    SessionPhotoRef, "classes/{class_id}/sessions/{session_id}/photos/{photo_id}/{name}"
)
RECORD = KeyTemplate(
    RecordRef, "classes/{class_id}/sessions/{session_id}/records/{student_id}.json"
)
CORRECTION = KeyTemplate(
    CorrectionRef,
    "classes/{class_id}/sessions/{session_id}/corrections/{student_id}/{correction_id}.json",
)
ASSIGNMENT = KeyTemplate(
    AssignmentRef,
    "classes/{class_id}/sessions/{session_id}/assignments/{photo_id}/{face_index:d}/"
    "{assignment_id}.json",
)
AUDIT_DAY = KeyTemplate(AuditDayRef, "audit/{year:04d}/{month:02d}/{day:02d}/")
AUDIT_CLASS_EVENT = KeyTemplate(
    AuditClassEventRef, "audit/{year:04d}/{month:02d}/{day:02d}/{event_id}.{class_id}.json"
)
AUDIT_EVENT = KeyTemplate(AuditEventRef, "audit/{year:04d}/{month:02d}/{day:02d}/{event_id}.json")
AUDIT_PREFIX = "audit/"
IMPORT_JOB = KeyTemplate(ImportRef, "imports/{import_id}/job.json")
IMPORT_STATE = KeyTemplate(ImportRef, "imports/{import_id}/state.json")

ORIGINAL = "original.jpg"
ANNOTATED = "annotated.jpg"
RESULT = "result.json"
"""The objects of a session photo; ``result.json`` is written last and makes the photo complete."""
PURGED = "purged.json"
"""Written (if absent) before the retention purge removes the photo's images; ``result.json``,
the face-free facts, stays."""
IMAGES = (ORIGINAL, ANNOTATED)
"""The objects of a session photo that show faces (removed by the retention purge)."""

# --- things stored under more than one template -----------------------------------------------


def embedding_key(class_id: str, student_id: str, photo_id: str, model: str = FACENET) -> str:
    """``model``'s embeddings of a registration photo (FaceNet's at the older readers' place)."""
    if model == FACENET:
        return FACENET_EMBEDDING.key(class_id=class_id, student_id=student_id, photo_id=photo_id)
    return MODEL_EMBEDDING.key(
        class_id=class_id, student_id=student_id, model=model, photo_id=photo_id
    )


def parse_embedding_key(class_id: str, key: str) -> EmbeddingRef | None:
    """The inverse of :func:`embedding_key` for a key of ``class_id``; ``None`` for any other."""
    facenet = FACENET_EMBEDDING.parse(key)
    if facenet is not None and facenet.class_id == class_id:
        return EmbeddingRef(facenet.student_id, facenet.photo_id, FACENET)
    other = MODEL_EMBEDDING.parse(key)
    if other is not None and other.class_id == class_id and other.model != FACENET:
        return EmbeddingRef(other.student_id, other.photo_id, other.model)
    return None


def audit_key(day: date, event_id: str, class_id: str | None) -> str:
    """``day``: the event's UTC date; ``event_id``: a time-sorted id (``ids.new_id``)."""
    when = {"year": day.year, "month": day.month, "day": day.day}
    if class_id is None:
        return AUDIT_EVENT.key(**when, event_id=event_id)
    return AUDIT_CLASS_EVENT.key(**when, event_id=event_id, class_id=class_id)


def parse_audit_key(key: str) -> AuditRef | None:
    """The inverse of :func:`audit_key`; ``None`` for any other key."""
    found: AuditClassEventRef | AuditEventRef | None = AUDIT_CLASS_EVENT.parse(key)
    if found is None:
        found = AUDIT_EVENT.parse(key)
    if found is None or "." in found.event_id:
        return None
    try:
        when = date(found.year, found.month, found.day)
    except ValueError:
        return None
    class_id = found.class_id if isinstance(found, AuditClassEventRef) else None
    return AuditRef(when, found.event_id, class_id)


def audit_day_prefix(day: date) -> str:
    return AUDIT_DAY.key(year=day.year, month=day.month, day=day.day)


def audit_month_prefix(year: int, month: int) -> str:
    return AUDIT_DAY.prefix(year=year, month=month)


def student_object_kind(class_id: str, key: str) -> str | None:
    """What an object of a student's folder is, for an erasure's report: ``record``,
    ``registration_photo``, ``photo_report``, ``face_template`` (an embedding, any model),
    ``sample``, or ``other``; ``None`` for a key outside the class's students."""
    owner = STUDENT_OBJECT.parse(key)
    if owner is None or owner.class_id != class_id:
        return None
    kinds: tuple[tuple[str, KeyTemplate[object]], ...] = (
        ("record", STUDENT),
        ("sample", SAMPLE),
        ("registration_photo", STUDENT_PHOTO),
        ("photo_report", STUDENT_PHOTO_INFO),
    )
    if parse_embedding_key(class_id, key) is not None:
        return "face_template"
    return next((kind for kind, template in kinds if template.parse(key) is not None), "other")
