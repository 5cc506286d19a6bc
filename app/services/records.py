"""One repository per stored thing: the only code that reads, writes and deletes objects by key.

Keys are built and parsed in :mod:`app.services.layout`; the documents are defined there too. Each
repository here knows its thing's rules: what is created only if absent, what is written last
(and so makes a set of objects count), in which order its objects are deleted. Services call these
and never ``ctx.store`` with a key. Writes that must land together go through
:class:`app.services.staged.StagedWrites`.

To add a stored record: its key functions (and their parse) and its document in ``layout``, a
repository class here, an attribute of :class:`Repositories`; see ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TypeVar

from pydantic import ValidationError

from app.services import layout
from app.services.cleanup import PendingCleanup
from app.services.staged import StagedWrites, remove_in_order
from app.storage import ObjectExistsError, ObjectNotFoundError, ObjectStore, StorageUnavailableError
from ml.fusion import FACENET
from ml.types import Embeddings

logger = logging.getLogger(__name__)

DocT = TypeVar("DocT", bound=layout.Document)

JSON = "application/json"
JPEG = "image/jpeg"
NPY = "application/octet-stream"


class _Repository:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def _read(self, key: str, model: type[DocT]) -> DocT | None:
        """The document at ``key``; ``None`` if absent or unreadable (treated as not there)."""
        try:
            return model.model_validate_json(self._store.get(key))
        except ObjectNotFoundError:
            return None
        except ValidationError:
            return None

    def _write(self, key: str, doc: layout.Document, *, if_absent: bool = False) -> None:
        self._store.put(key, doc.to_json_bytes(), content_type=JSON, if_absent=if_absent)

    def _create(self, key: str, doc: layout.Document) -> bool:
        """Write ``doc`` only if ``key`` is free; False when it is taken."""
        try:
            self._write(key, doc, if_absent=True)
        except ObjectExistsError:
            return False
        return True


# --- classes ---------------------------------------------------------------------------------


class Classes(_Repository):
    """``class.json``: created if absent; deleted first, then everything under the class."""

    def get(self, class_id: str) -> layout.ClassDoc | None:
        return self._read(layout.class_key(class_id), layout.ClassDoc)

    def exists(self, class_id: str) -> bool:
        return self._store.exists(layout.class_key(class_id))

    def create(self, doc: layout.ClassDoc) -> bool:
        """False when the id is taken."""
        return self._create(layout.class_key(doc.id), doc)

    def save(self, doc: layout.ClassDoc) -> None:
        """Rewrite ``class.json`` (a rename, the retention overrides); the last writer wins."""
        self._write(layout.class_key(doc.id), doc)

    def ids(self) -> list[str]:
        """Every class folder (a class being created or deleted included)."""
        return self._store.list_children("classes/")

    def delete(self, class_id: str) -> None:
        # class.json first: from then on every request sees the class as gone.
        self._store.delete(layout.class_key(class_id))
        self._store.delete_prefix(layout.class_prefix(class_id))


# --- students, their photos and embeddings ----------------------------------------------------


@dataclass(frozen=True)
class StudentKeys:
    """A class's listing, parsed: who is enrolled and which embedding objects count."""

    documented: set[str]
    """Students with ``student.json``."""
    embeddings: list[str]
    """FaceNet embedding keys of documented students (each one a registration photo that counts)."""
    secondary: list[str]
    """Secondary models' embedding keys of those same photos."""
    samples: list[str] = field(default_factory=list)
    """Confirmed faces (``samples/{id}.json``) of documented students."""

    def photo_counts(self, class_id: str) -> dict[str, int]:
        """Photos that count, per documented student who has any."""
        counts: dict[str, int] = {}
        for key in self.embeddings:
            ref = layout.parse_embedding_key(class_id, key)
            if ref is not None:
                counts[ref.student_id] = counts.get(ref.student_id, 0) + 1
        return counts


def parse_listing(class_id: str, keys: Iterable[str]) -> StudentKeys:
    """A student without ``student.json`` is being created or deleted right now: not enrolled. A
    secondary embedding counts only beside FaceNet's embedding of the same photo (written last)."""
    documented: set[str] = set()
    refs: list[tuple[layout.EmbeddingRef, str]] = []
    samples: list[tuple[layout.SampleRef, str]] = []
    for key in keys:
        student_id = layout.parse_student_key(class_id, key)
        if student_id is not None:
            documented.add(student_id)
            continue
        sample = layout.parse_sample_key(class_id, key)
        if sample is not None:
            samples.append((sample, key))
            continue
        ref = layout.parse_embedding_key(class_id, key)
        if ref is not None:
            refs.append((ref, key))
    primary = {(r.student_id, r.photo_id) for r, _ in refs if r.model == FACENET}
    embeddings = sorted(k for r, k in refs if r.model == FACENET and r.student_id in documented)
    secondary = sorted(
        k
        for r, k in refs
        if r.model != FACENET
        and r.student_id in documented
        and (r.student_id, r.photo_id) in primary
    )
    counted_samples = sorted(k for r, k in samples if r.student_id in documented)
    return StudentKeys(documented, embeddings, secondary, counted_samples)


def parse_student_keys(class_id: str, keys: list[str]) -> tuple[set[str], list[str]]:
    """From a listing of a class's students: ids that have ``student.json``, and their FaceNet
    embedding keys."""
    parsed = parse_listing(class_id, keys)
    return parsed.documented, parsed.embeddings


def _removal_rank(class_id: str, key: str) -> int:
    """FaceNet's embeddings first (they make a photo count), then the other models', then the
    rest: a photo never counts without its other objects."""
    ref = layout.parse_embedding_key(class_id, key)
    if ref is None:
        return 2
    return 0 if ref.model == FACENET else 1


class Students(_Repository):
    """``student.json``: the claim marker of a student. Created if absent (after removing the
    leftovers of an interrupted deletion); deleted first on erasure, then the student's folder."""

    def __init__(self, store: ObjectStore, cleanup: PendingCleanup) -> None:
        super().__init__(store)
        self._cleanup = cleanup

    def get(self, class_id: str, student_id: str) -> layout.StudentDoc | None:
        return self._read(layout.student_key(class_id, student_id), layout.StudentDoc)

    def exists(self, class_id: str, student_id: str) -> bool:
        return self._store.exists(layout.student_key(class_id, student_id))

    def save(self, class_id: str, doc: layout.StudentDoc) -> None:
        self._write(layout.student_key(class_id, doc.id), doc)

    def documented(self, class_id: str) -> list[layout.StudentDoc]:
        """Every ``student.json`` of the class (registrations in flight included), by id."""
        listing = parse_listing(class_id, self._store.list(layout.students_prefix(class_id)))
        docs = (self.get(class_id, sid) for sid in listing.documented)
        return sorted((doc for doc in docs if doc is not None), key=lambda doc: doc.id)

    def has_objects(self, class_id: str, student_id: str) -> bool:
        """``student.json`` or anything under the student's folder (an erasure cut off half-way)."""
        return self.exists(class_id, student_id) or bool(
            self._store.list(layout.student_prefix(class_id, student_id))
        )

    def has_embeddings(self, class_id: str, student_id: str) -> bool:
        """Any embedding object, of any model (a photo stored, or being stored)."""
        keys = self._store.list(layout.student_prefix(class_id, student_id))
        return any(layout.parse_embedding_key(class_id, key) is not None for key in keys)

    def claim(self, class_id: str, doc: layout.StudentDoc) -> bool:
        """Create ``student.json`` atomically; False when someone else just created it.

        Objects without ``student.json`` are an interrupted deletion: they must not join the new
        student, so they are removed first. Only the keys listed here go: a concurrent creator's
        new objects are not in this listing, so they can never be removed by it.
        """
        prefix = layout.student_prefix(class_id, doc.id)
        key = layout.student_key(class_id, doc.id)
        leftovers = self._store.list(prefix)
        if leftovers and key not in leftovers:
            logger.warning("removing %d leftover objects under %s", len(leftovers), prefix)
            ordered = sorted(leftovers, key=lambda k: _removal_rank(class_id, k))
            remove_in_order(self._store, self._cleanup, ordered, "an aborted write")
        return self._create(key, doc)

    def abandon(self, class_id: str, student_id: str) -> None:
        """Undo a claim whose photos could not be stored (they were already rolled back).

        ``student.json`` stays if a concurrent registration of the same name has meanwhile added
        its own photos to this student: removing it would lose them.
        """
        prefix = layout.student_prefix(class_id, student_id)

        def undo() -> None:
            if not self.has_embeddings(class_id, student_id):
                self._store.delete(layout.student_key(class_id, student_id))

        try:
            undo()
        except StorageUnavailableError:
            self._cleanup.defer(f"undo the creation of {prefix}", undo)
        except Exception:
            logger.exception("could not undo the creation of %s", prefix)

    def delete_doc(self, class_id: str, student_id: str) -> None:
        """Remove ``student.json``: from then on the student is out of every gallery and listing."""
        self._store.delete(layout.student_key(class_id, student_id))

    def delete_objects(self, class_id: str, student_id: str) -> list[str]:
        """Remove everything under the student's folder (after :meth:`delete_doc`); returns the
        keys that were there."""
        prefix = layout.student_prefix(class_id, student_id)
        keys = self._store.list(prefix)
        self._store.delete_prefix(prefix)
        return keys

    def keys_by_student(self, class_id: str) -> dict[str, frozenset[str]]:
        """Every key under each student's folder: one listing of the class's students (two of
        them, some time apart, tell whether anything was written to a student meanwhile)."""
        found: dict[str, set[str]] = {}
        for key in self._store.list(layout.students_prefix(class_id)):
            student_id = layout.parse_student_of(class_id, key)
            if student_id is not None:
                found.setdefault(student_id, set()).add(key)
        return {student_id: frozenset(keys) for student_id, keys in found.items()}


class StudentPhotos(_Repository):
    """A registration photo (the oriented JPEG) and its quality report. They count only once
    FaceNet's embedding of the photo is stored (:class:`Embeddings`)."""

    def stage(
        self,
        staged: StagedWrites,
        class_id: str,
        student_id: str,
        info: layout.StudentPhotoDoc,
        jpeg: bytes,
    ) -> None:
        staged.put(layout.student_photo_key(class_id, student_id, info.id), jpeg, content_type=JPEG)
        staged.put(
            layout.student_photo_info_key(class_id, student_id, info.id),
            info.to_json_bytes(),
            content_type=JSON,
        )

    def info(self, class_id: str, student_id: str, photo_id: str) -> layout.StudentPhotoDoc:
        """The quality report; :class:`ObjectNotFoundError` or ``ValueError`` when unusable."""
        data = self._store.get(layout.student_photo_info_key(class_id, student_id, photo_id))
        return layout.StudentPhotoDoc.model_validate_json(data)

    def jpeg(self, class_id: str, student_id: str, photo_id: str) -> bytes:
        """The stored photo; :class:`ObjectNotFoundError` if it is gone."""
        return self._store.get(layout.student_photo_key(class_id, student_id, photo_id))

    def infos(
        self, class_id: str, student_id: str, keys: Iterable[str]
    ) -> list[layout.StudentPhotoDoc]:
        """The readable quality reports among ``keys`` (a listing of the student's folder),
        counted or not (a photo being stored right now included)."""
        found = []
        for key in keys:
            if layout.parse_student_photo_info_key(class_id, student_id, key) is not None:
                info = self._read(key, layout.StudentPhotoDoc)
                if info is not None:
                    found.append(info)
        return found

    def counted(self, class_id: str, student_id: str) -> list[layout.StudentPhotoDoc]:
        """The student's photos that count (FaceNet's embedding is stored), oldest first."""
        keys = self._store.list(layout.student_prefix(class_id, student_id))
        refs = (layout.parse_embedding_key(class_id, k) for k in keys)
        embedded = {ref.photo_id for ref in refs if ref is not None and ref.model == FACENET}
        photos = []
        for key in keys:
            if layout.parse_student_photo_info_key(class_id, student_id, key) is None:
                continue
            info = self._read(key, layout.StudentPhotoDoc)
            if info is not None and info.id in embedded:
                photos.append(info)
        photos.sort(key=lambda info: (info.created_at, info.id))
        return photos


class StudentEmbeddings(_Repository):
    """One embedding object per registration photo and face model. The secondary models' are
    written first; FaceNet's, written last, makes the photo count. Stored arrays never change (a
    new photo gets a new id), so they are cached by key (:mod:`app.services.gallery`)."""

    def stage(
        self,
        staged: StagedWrites,
        class_id: str,
        student_id: str,
        photo_id: str,
        facenet: Embeddings,
        secondary: dict[str, Embeddings],
    ) -> None:
        for model, views in secondary.items():
            staged.put(
                layout.embedding_key(class_id, student_id, photo_id, model),
                layout.embeddings_to_bytes(views),
                content_type=NPY,
            )
        staged.put(
            layout.embedding_key(class_id, student_id, photo_id),
            layout.embeddings_to_bytes(facenet),
            content_type=NPY,
        )

    def listing(self, class_id: str) -> StudentKeys:
        """One listing of the class's students, parsed."""
        return parse_listing(class_id, self._store.list(layout.students_prefix(class_id)))

    def load(self, key: str) -> Embeddings:
        """The array of a listed embedding key (:class:`StudentKeys`); :class:`ObjectNotFoundError`
        if deleted since, ``ValueError`` if unreadable."""
        return layout.embeddings_from_bytes(self._store.get(key))

    def of_student(self, class_id: str, student_id: str) -> list[tuple[str, layout.EmbeddingRef]]:
        """Every embedding object of the student, any model: ``(key, what it is)``."""
        prefix = layout.student_prefix(class_id, student_id) + "embeddings/"
        found = []
        for key in self._store.list(prefix):
            ref = layout.parse_embedding_key(class_id, key)
            if ref is not None and ref.student_id == student_id:
                found.append((key, ref))
        return found

    def raw(self, key: str) -> bytes:
        """The stored ``.npy`` bytes of a listed key; :class:`ObjectNotFoundError` if gone."""
        return self._store.get(key)

    def count(self, class_id: str, student_id: str) -> int:
        """The student's photos that count (FaceNet's embeddings)."""
        prefix = layout.student_prefix(class_id, student_id) + "embeddings/"
        refs = (layout.parse_embedding_key(class_id, key) for key in self._store.list(prefix))
        return sum(1 for ref in refs if ref is not None and ref.model == FACENET)

    def create(
        self, class_id: str, student_id: str, photo_id: str, model: str, views: Embeddings
    ) -> bool:
        """Store a secondary model's embedding only if absent (a back-fill); False if taken.
        Removed again when the photo's FaceNet embedding is gone meanwhile (erased): no orphan."""
        key = layout.embedding_key(class_id, student_id, photo_id, model)
        try:
            self._store.put(
                key, layout.embeddings_to_bytes(views), content_type=NPY, if_absent=True
            )
        except ObjectExistsError:
            return False
        if not self._store.exists(layout.embedding_key(class_id, student_id, photo_id)):
            self._store.delete(key)
            return False
        return True


# --- sessions, their photos and attendance records --------------------------------------------


class Sessions(_Repository):
    """``session.json``: created if absent; deleted first, then the session's folder."""

    def get(self, class_id: str, session_id: str) -> layout.SessionDoc | None:
        return self._read(layout.session_key(class_id, session_id), layout.SessionDoc)

    def create(self, class_id: str, doc: layout.SessionDoc) -> bool:
        """False when the id is taken."""
        return self._create(layout.session_key(class_id, doc.id), doc)

    def ids(self, class_id: str) -> list[str]:
        """Every session folder of the class."""
        return self._store.list_children(layout.sessions_prefix(class_id))

    def listing(self, class_id: str, session_id: str) -> list[str]:
        """Every key of the session (photos, records, corrections, assignments): one request."""
        return self._store.list(layout.session_prefix(class_id, session_id))

    def delete(self, class_id: str, session_id: str) -> None:
        self._store.delete(layout.session_key(class_id, session_id))
        self._store.delete_prefix(layout.session_prefix(class_id, session_id))


class SessionPhotos(_Repository):
    """A session photo: the original, the annotated copy, and ``result.json`` (its faces), written
    in that order; ``result.json`` makes it complete. Erasure rewrites the annotated copy first,
    then ``result.json``. The retention purge writes ``purged.json`` (if absent), then removes the
    two images; ``result.json`` stays."""

    def stage(
        self,
        staged: StagedWrites,
        class_id: str,
        session_id: str,
        doc: layout.SessionPhotoDoc,
        original: bytes,
        annotated: bytes,
    ) -> None:
        for name, data, content_type in (
            (layout.ORIGINAL, original, JPEG),
            (layout.ANNOTATED, annotated, JPEG),
            (layout.RESULT, doc.to_json_bytes(), JSON),
        ):
            key = layout.session_photo_key(class_id, session_id, doc.id, name)
            staged.put(key, data, content_type=content_type)

    def complete_ids(
        self, class_id: str, session_id: str, keys: Iterable[str] | None = None
    ) -> list[str]:
        """Ids of the session's complete photos: an upload cut off before ``result.json`` (process
        killed, store down) is left out. From ``keys`` (a listing of the session) or a new one."""
        if keys is None:
            keys = self._store.list(layout.session_photos_prefix(class_id, session_id))
        found = []
        for key in keys:
            parsed = layout.parse_session_photo_key(class_id, session_id, key)
            if parsed is not None and parsed[1] == layout.RESULT:
                found.append(parsed[0])
        return sorted(found)

    def with_images(self, class_id: str, session_id: str, keys: Iterable[str]) -> list[str]:
        """Ids of the complete photos among ``keys`` (a listing of the session) that still have
        an image (the original or the annotated copy)."""
        names: dict[str, set[str]] = {}
        for key in keys:
            parsed = layout.parse_session_photo_key(class_id, session_id, key)
            if parsed is not None:
                names.setdefault(parsed[0], set()).add(parsed[1])
        return sorted(
            photo_id
            for photo_id, present in names.items()
            if layout.RESULT in present and present.intersection(layout.IMAGES)
        )

    def purge(self, class_id: str, session_id: str, doc: layout.PhotoPurgedDoc) -> None:
        """Remove the photo's images, keeping ``result.json``. ``purged.json`` first (kept if a
        concurrent purge wrote it): from then on the images answer "removed by the retention
        policy". Every step may run again (another replica, a purge cut off half-way)."""
        self._create(
            layout.session_photo_key(class_id, session_id, doc.photo_id, layout.PURGED), doc
        )
        for name in (layout.ANNOTATED, layout.ORIGINAL):
            self._store.delete(layout.session_photo_key(class_id, session_id, doc.photo_id, name))

    def purged(self, class_id: str, session_id: str, photo_id: str) -> layout.PhotoPurgedDoc | None:
        """The purge's note, if the retention purge removed the photo's images."""
        key = layout.session_photo_key(class_id, session_id, photo_id, layout.PURGED)
        return self._read(key, layout.PhotoPurgedDoc)

    def rewrite_result(
        self, class_id: str, session_id: str, photo_id: str, doc: layout.SessionPhotoDoc
    ) -> None:
        """Replace the faces of a photo whose images were purged (erasure)."""
        self._write(layout.session_photo_key(class_id, session_id, photo_id, layout.RESULT), doc)

    def result(
        self, class_id: str, session_id: str, photo_id: str
    ) -> layout.SessionPhotoDoc | None:
        key = layout.session_photo_key(class_id, session_id, photo_id, layout.RESULT)
        return self._read(key, layout.SessionPhotoDoc)

    def image(self, class_id: str, session_id: str, photo_id: str, name: str) -> bytes:
        """:data:`layout.ORIGINAL` or :data:`layout.ANNOTATED`; :class:`ObjectNotFoundError` if
        gone."""
        return self._store.get(layout.session_photo_key(class_id, session_id, photo_id, name))

    def rewrite(
        self,
        class_id: str,
        session_id: str,
        photo_id: str,
        doc: layout.SessionPhotoDoc,
        annotated: bytes,
    ) -> None:
        """Replace the faces and the annotated copy; the annotated copy first, so that an
        interrupted rewrite is found again from ``result.json``."""
        key = layout.session_photo_key(class_id, session_id, photo_id, layout.ANNOTATED)
        self._store.put(key, annotated, content_type=JPEG)
        self._write(layout.session_photo_key(class_id, session_id, photo_id, layout.RESULT), doc)


class AttendanceRecords(_Repository):
    """One record per present student and session, created if absent: the first photo that
    recognises a student records them, and concurrent uploads never lose a record."""

    def stage(
        self, staged: StagedWrites, class_id: str, session_id: str, record: layout.RecordDoc
    ) -> bool:
        """Record ``record`` unless the student is recorded already (False). Others act on a
        record as soon as it exists ("already present"), so it is written ``shared``."""
        key = layout.record_key(class_id, session_id, record.student_id)
        try:
            staged.put(key, record.to_json_bytes(), content_type=JSON, if_absent=True, shared=True)
        except ObjectExistsError:
            return False
        return True

    def get(self, class_id: str, session_id: str, student_id: str) -> layout.RecordDoc | None:
        return self._read(layout.record_key(class_id, session_id, student_id), layout.RecordDoc)

    def of_session(self, class_id: str, session_id: str) -> dict[str, layout.RecordDoc]:
        """``student_id -> record`` for every readable record of the session."""
        records: dict[str, layout.RecordDoc] = {}
        for key in self._store.list(layout.records_prefix(class_id, session_id)):
            record = self._read(key, layout.RecordDoc)
            if record is not None:
                records[record.student_id] = record
        return records

    def delete(self, class_id: str, session_id: str, student_id: str) -> bool:
        """False when there was no record."""
        key = layout.record_key(class_id, session_id, student_id)
        if not self._store.exists(key):
            return False
        self._store.delete(key)
        return True


class Samples(_Repository):
    """Confirmed faces of a student (``samples/{id}.json``), one object each, written once and
    never changed (so cached by key, like embeddings); deleted when dropped by the bound, by a
    teacher, when the face is named again, or with the student's folder."""

    def create(self, class_id: str, doc: layout.SampleDoc) -> bool:
        return self._create(layout.sample_key(class_id, doc.student_id, doc.id), doc)

    def stage(self, staged: StagedWrites, class_id: str, doc: layout.SampleDoc) -> None:
        """Write with a set of writes (a session photo's upload): gone again if it fails."""
        staged.put(
            layout.sample_key(class_id, doc.student_id, doc.id),
            doc.to_json_bytes(),
            content_type=JSON,
            if_absent=True,
        )

    def get(self, class_id: str, student_id: str, sample_id: str) -> layout.SampleDoc | None:
        return self._read(layout.sample_key(class_id, student_id, sample_id), layout.SampleDoc)

    def load(self, key: str) -> layout.SampleDoc:
        """The sample at a listed key (:attr:`StudentKeys.samples`); :class:`ObjectNotFoundError`
        if deleted since, ``ValueError`` if unreadable."""
        try:
            return layout.SampleDoc.model_validate_json(self._store.get(key))
        except ValidationError as error:
            raise ValueError(f"unreadable sample {key}") from error

    def count(self, class_id: str, student_id: str) -> int:
        """The student's samples, from one listing (nothing read)."""
        keys = self._store.list(layout.samples_prefix(class_id, student_id))
        return sum(1 for key in keys if layout.parse_sample_key(class_id, key) is not None)

    def of_student(self, class_id: str, student_id: str) -> list[layout.SampleDoc]:
        """Every readable sample of the student, oldest first."""
        found = []
        for key in self._store.list(layout.samples_prefix(class_id, student_id)):
            if layout.parse_sample_key(class_id, key) is None:
                continue
            doc = self._read(key, layout.SampleDoc)
            if doc is not None:
                found.append(doc)
        found.sort(key=lambda doc: (doc.taken_at, doc.id))
        return found

    def delete(self, class_id: str, student_id: str, sample_id: str) -> None:
        self._store.delete(layout.sample_key(class_id, student_id, sample_id))


def _newest_readable(repository: _Repository, keys: list[str], model: type[DocT]) -> DocT | None:
    """The newest readable document of ``keys`` (their names are time-sorted ids)."""
    for key in sorted(keys, reverse=True):
        doc = repository._read(key, model)
        if doc is not None:
            return doc
    return None


class StatusCorrections(_Repository):
    """A teacher's statuses: one object per correction, never rewritten; a student's newest one
    applies. Concurrent corrections and uploads therefore never lose each other."""

    def add(self, class_id: str, session_id: str, doc: layout.StatusCorrectionDoc) -> None:
        key = layout.correction_key(class_id, session_id, doc.student_id, doc.id)
        if not self._create(key, doc):  # pragma: no cover - ids are random
            raise ObjectExistsError(key)

    def latest(self, class_id: str, session_id: str) -> dict[str, layout.StatusCorrectionDoc]:
        """``student_id -> newest correction`` (a removal, ``status`` ``None``, included)."""
        return self.latest_from(
            class_id, session_id, self._store.list(layout.corrections_prefix(class_id, session_id))
        )

    def latest_from(
        self, class_id: str, session_id: str, keys: Iterable[str]
    ) -> dict[str, layout.StatusCorrectionDoc]:
        """:meth:`latest` from a listing already made (of the session's folder)."""
        by_student: dict[str, list[str]] = {}
        for key in keys:
            student_id = layout.parse_correction_key(class_id, session_id, key)
            if student_id is not None:
                by_student.setdefault(student_id, []).append(key)
        latest = {}
        for student_id, student_keys in by_student.items():
            doc = _newest_readable(self, student_keys, layout.StatusCorrectionDoc)
            if doc is not None:
                latest[student_id] = doc
        return latest

    def latest_of(
        self, class_id: str, session_id: str, student_id: str
    ) -> layout.StatusCorrectionDoc | None:
        keys = self._store.list(layout.corrections_prefix(class_id, session_id, student_id))
        return _newest_readable(self, keys, layout.StatusCorrectionDoc)

    def delete_student(self, class_id: str, session_id: str, student_id: str) -> int:
        """Every correction of the student in the session (erasure); returns how many."""
        return self._store.delete_prefix(
            layout.corrections_prefix(class_id, session_id, student_id)
        )


class FaceAssignments(_Repository):
    """A teacher naming faces: one object per assignment, never rewritten; a face's newest one
    applies."""

    def add(self, class_id: str, session_id: str, doc: layout.FaceAssignmentDoc) -> None:
        key = layout.assignment_key(class_id, session_id, doc.photo_id, doc.face_index, doc.id)
        if not self._create(key, doc):  # pragma: no cover - ids are random
            raise ObjectExistsError(key)

    def keys_by_face(
        self, class_id: str, session_id: str, keys: Iterable[str] | None = None
    ) -> dict[tuple[str, int], list[str]]:
        """``(photo id, face index) -> assignment keys``, from ``keys`` (a listing of the session's
        folder) or a new listing."""
        if keys is None:
            keys = self._store.list(layout.assignments_prefix(class_id, session_id))
        by_face: dict[tuple[str, int], list[str]] = {}
        for key in keys:
            face = layout.parse_assignment_key(class_id, session_id, key)
            if face is not None:
                by_face.setdefault(face, []).append(key)
        return by_face

    def latest(
        self, class_id: str, session_id: str, keys: Iterable[str] | None = None
    ) -> dict[tuple[str, int], layout.FaceAssignmentDoc]:
        """``(photo id, face index) -> newest assignment``."""
        latest = {}
        for face, face_keys in self.keys_by_face(class_id, session_id, keys).items():
            doc = _newest_readable(self, face_keys, layout.FaceAssignmentDoc)
            if doc is not None:
                latest[face] = doc
        return latest

    def of_photo(
        self, class_id: str, session_id: str, photo_id: str
    ) -> dict[int, layout.FaceAssignmentDoc]:
        """``face index -> newest assignment`` of one photo (one listing of that photo's)."""
        keys = self._store.list(layout.photo_assignments_prefix(class_id, session_id, photo_id))
        return {
            face: doc
            for (pid, face), doc in self.latest(class_id, session_id, keys).items()
            if pid == photo_id
        }

    def naming(
        self, class_id: str, session_id: str, student_id: str
    ) -> list[tuple[str, layout.FaceAssignmentDoc]]:
        """``(key, assignment)`` of every assignment of the session that names the student."""
        found = []
        for face_keys in self.keys_by_face(class_id, session_id).values():
            for key in face_keys:
                doc = self._read(key, layout.FaceAssignmentDoc)
                if doc is not None and doc.student_id == student_id:
                    found.append((key, doc))
        return found

    def delete_key(self, key: str) -> None:
        self._store.delete(key)


# --- the audit log -----------------------------------------------------------------------------


class AuditEvents(_Repository):
    """One object per event, at the bucket's root (outside ``classes/``: deleting a class or a
    student keeps it), created if absent and never rewritten or deleted by the service."""

    def add(self, doc: layout.AuditEventDoc) -> bool:
        """Write the event; False when it is there already (a retry of a write that landed)."""
        return self._create(layout.audit_key(doc.at.date(), doc.id, doc.class_id), doc)

    def keys(self, first: date, last: date) -> list[tuple[str, layout.AuditRef]]:
        """``(key, what it names)`` of every event from ``first`` to ``last`` (UTC days,
        inclusive), oldest first. A month is listed whole when more than
        :data:`DAYS_LISTED_ONE_BY_ONE` of its days are wanted, else day by day."""
        found: list[tuple[str, layout.AuditRef]] = []
        for prefix in _audit_prefixes(first, last):
            for key in self._store.list(prefix):
                ref = layout.parse_audit_key(key)
                if ref is not None and first <= ref.day <= last:
                    found.append((key, ref))
        found.sort(key=lambda item: (item[1].day, item[1].event_id))
        return found

    def get(self, key: str) -> layout.AuditEventDoc | None:
        return self._read(key, layout.AuditEventDoc)


DAYS_LISTED_ONE_BY_ONE = 7
"""Up to a week of a month is listed day by day (a request each); more, the month at once (one
request per 1000 events, and the other days' keys are dropped)."""


def _audit_prefixes(first: date, last: date) -> list[str]:
    by_month: dict[tuple[int, int], list[date]] = {}
    for offset in range((last - first).days + 1):  # never past ``last``: 9999-12-31 is valid
        day = first + timedelta(days=offset)
        by_month.setdefault((day.year, day.month), []).append(day)
    prefixes = []
    for (year, month), days in by_month.items():
        if len(days) > DAYS_LISTED_ONE_BY_ONE:
            prefixes.append(layout.audit_month_prefix(year, month))
        else:
            prefixes.extend(layout.audit_day_prefix(d) for d in days)
    return prefixes


class Repositories:
    """Every repository over one store (``ctx.records``)."""

    def __init__(self, store: ObjectStore, cleanup: PendingCleanup) -> None:
        self._store = store
        self._cleanup = cleanup
        self.classes = Classes(store)
        self.students = Students(store, cleanup)
        self.student_photos = StudentPhotos(store)
        self.embeddings = StudentEmbeddings(store)
        self.sessions = Sessions(store)
        self.session_photos = SessionPhotos(store)
        self.attendance = AttendanceRecords(store)
        self.samples = Samples(store)
        self.corrections = StatusCorrections(store)
        self.assignments = FaceAssignments(store)
        self.audit = AuditEvents(store)

    def staged(self, what: str) -> StagedWrites:
        """A new set of writes that land together or not at all (:mod:`app.services.staged`)."""
        return StagedWrites(self._store, self._cleanup, what)
