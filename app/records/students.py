"""Students: ``student.json``, registration photos with their quality reports, every face model's
embeddings of them, and confirmed faces (samples)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.records import keys
from app.records.base import JPEG, JSON, NPY, Repository
from app.records.cache import DocumentCache
from app.records.cleanup import PendingCleanup
from app.records.documents import (
    SampleDoc,
    StudentDoc,
    StudentPhotoDoc,
    embeddings_from_bytes,
    embeddings_to_bytes,
)
from app.records.staged import StagedWrites, remove_in_order
from app.storage import ObjectExistsError, ObjectStore
from ml.fusion import FACENET
from ml.types import Embeddings

logger = logging.getLogger(__name__)


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
            ref = keys.parse_embedding_key(class_id, key)
            if ref is not None:
                counts[ref.student_id] = counts.get(ref.student_id, 0) + 1
        return counts


def parse_listing(class_id: str, listed: Iterable[str]) -> StudentKeys:
    """A student without ``student.json`` is being created or deleted right now: not enrolled. A
    secondary embedding counts only beside FaceNet's embedding of the same photo (written last)."""
    documented: set[str] = set()
    refs: list[tuple[keys.EmbeddingRef, str]] = []
    samples: list[tuple[keys.SampleRef, str]] = []
    for key in listed:
        student = keys.STUDENT.parse(key)
        if student is not None and student.class_id == class_id:
            documented.add(student.student_id)
            continue
        sample = keys.SAMPLE.parse(key)
        if sample is not None and sample.class_id == class_id:
            samples.append((sample, key))
            continue
        ref = keys.parse_embedding_key(class_id, key)
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


def parse_student_keys(class_id: str, listed: list[str]) -> tuple[set[str], list[str]]:
    """From a listing of a class's students: ids that have ``student.json``, and their FaceNet
    embedding keys."""
    parsed = parse_listing(class_id, listed)
    return parsed.documented, parsed.embeddings


def is_enrolled(doc: StudentDoc, photo_count: int) -> bool:
    """A student is enrolled once a photo of theirs counts, or when imported from a roster
    (created without a photo on purpose); else their registration is in flight."""
    return photo_count > 0 or doc.source_id is not None


def _removal_rank(class_id: str, key: str) -> int:
    """FaceNet's embeddings first (they make a photo count), then the other models', then the
    rest: a photo never counts without its other objects."""
    ref = keys.parse_embedding_key(class_id, key)
    if ref is None:
        return 2
    return 0 if ref.model == FACENET else 1


class Students(Repository):
    """``student.json``: the claim marker of a student. Created if absent (after removing the
    leftovers of an interrupted deletion); deleted first on erasure, then the student's folder."""

    def __init__(
        self, store: ObjectStore, cleanup: PendingCleanup, cache: DocumentCache | None = None
    ) -> None:
        super().__init__(store, cache)
        self._cleanup = cleanup

    def _key(self, class_id: str, student_id: str) -> str:
        return keys.STUDENT.key(class_id=class_id, student_id=student_id)

    def get(self, class_id: str, student_id: str) -> StudentDoc | None:
        return self._read(self._key(class_id, student_id), StudentDoc)

    def exists(self, class_id: str, student_id: str) -> bool:
        return self._store.exists(self._key(class_id, student_id))

    def save(self, class_id: str, doc: StudentDoc) -> None:
        self._write(self._key(class_id, doc.id), doc)

    def documented(self, class_id: str) -> list[StudentDoc]:
        """Every ``student.json`` of the class (registrations in flight included), by id."""
        return [doc for doc, _ in self._listed(class_id)]

    def enrolled(self, class_id: str) -> list[tuple[StudentDoc, int]]:
        """The class's enrolled students, by id, with how many photos of theirs count: one listing
        of the class's students, then each ``student.json`` (from the cache when unchanged).

        A student without any stored embedding is a registration in flight, or one that was cut
        off (process killed, store down) before its first photo was stored: not enrolled, unless
        imported from a roster (they await a photo)."""
        return [(doc, count) for doc, count in self._listed(class_id) if is_enrolled(doc, count)]

    def _listed(self, class_id: str) -> list[tuple[StudentDoc, int]]:
        listed = self._store.list_versions(keys.STUDENT.prefix(class_id=class_id))
        counts = parse_listing(class_id, listed).photo_counts(class_id)
        found = []
        for key, tag in listed.items():
            ref = keys.STUDENT.parse(key)
            if ref is not None and ref.class_id == class_id:
                doc = self._read_version(key, tag, StudentDoc)
                if doc is not None:
                    found.append((doc, counts.get(ref.student_id, 0)))
        found.sort(key=lambda item: item[0].id)
        return found

    def objects(self, class_id: str, student_id: str) -> list[str]:
        """Every key under the student's folder."""
        return self._store.list(keys.STUDENT.prefix(class_id=class_id, student_id=student_id))

    def has_objects(self, class_id: str, student_id: str) -> bool:
        """``student.json`` or anything under the student's folder (an erasure cut off half-way)."""
        return self.exists(class_id, student_id) or bool(self.objects(class_id, student_id))

    def has_embeddings(self, class_id: str, student_id: str) -> bool:
        """Any embedding object, of any model (a photo stored, or being stored)."""
        found = self.objects(class_id, student_id)
        return any(keys.parse_embedding_key(class_id, key) is not None for key in found)

    def claim(self, class_id: str, doc: StudentDoc) -> bool:
        """Create ``student.json`` atomically; False when someone else just created it.

        Objects without ``student.json`` are an interrupted deletion: they must not join the new
        student, so they are removed first. Only the keys listed here go: a concurrent creator's
        new objects are not in this listing, so they can never be removed by it.
        """
        key = self._key(class_id, doc.id)
        leftovers = self.objects(class_id, doc.id)
        if leftovers and key not in leftovers:
            prefix = keys.STUDENT.prefix(class_id=class_id, student_id=doc.id)
            logger.warning("removing %d leftover objects under %s", len(leftovers), prefix)
            ordered = sorted(leftovers, key=lambda k: _removal_rank(class_id, k))
            remove_in_order(self._store, self._cleanup, ordered, "an aborted write")
        return self._create(key, doc)

    def abandon(self, class_id: str, student_id: str) -> None:
        """Undo a claim whose photos could not be stored (they were already rolled back).

        ``student.json`` stays if a concurrent registration of the same name has meanwhile added
        its own photos to this student: removing it would lose them.
        """

        def undo() -> None:
            if not self.has_embeddings(class_id, student_id):
                self._store.delete(self._key(class_id, student_id))

        prefix = keys.STUDENT.prefix(class_id=class_id, student_id=student_id)
        self._cleanup.attempt(f"undo the creation of {prefix}", undo)

    def delete_doc(self, class_id: str, student_id: str) -> None:
        """Remove ``student.json``: from then on the student is out of every gallery and listing."""
        self._store.delete(self._key(class_id, student_id))

    def delete_objects(self, class_id: str, student_id: str) -> list[str]:
        """Remove everything under the student's folder (after :meth:`delete_doc`); returns the
        keys that were there."""
        found = self.objects(class_id, student_id)
        self._store.delete_prefix(keys.STUDENT.prefix(class_id=class_id, student_id=student_id))
        return found

    def keys_by_student(self, class_id: str) -> dict[str, frozenset[str]]:
        """Every key under each student's folder: one listing of the class's students (two of
        them, some time apart, tell whether anything was written to a student meanwhile)."""
        found: dict[str, set[str]] = {}
        for key in self._store.list(keys.STUDENT.prefix(class_id=class_id)):
            owner = keys.STUDENT_OBJECT.parse(key)
            if owner is not None and owner.class_id == class_id:
                found.setdefault(owner.student_id, set()).add(key)
        return {student_id: frozenset(owned) for student_id, owned in found.items()}


class StudentPhotos(Repository):
    """A registration photo (the oriented JPEG) and its quality report. They count only once
    FaceNet's embedding of the photo is stored (:class:`StudentEmbeddings`)."""

    def stage(
        self,
        staged: StagedWrites,
        class_id: str,
        student_id: str,
        info: StudentPhotoDoc,
        jpeg: bytes,
    ) -> None:
        photo = {"class_id": class_id, "student_id": student_id, "photo_id": info.id}
        staged.put(keys.STUDENT_PHOTO.key(**photo), jpeg, content_type=JPEG)
        staged.put(keys.STUDENT_PHOTO_INFO.key(**photo), info.to_json_bytes(), content_type=JSON)

    def info(self, class_id: str, student_id: str, photo_id: str) -> StudentPhotoDoc:
        """The quality report; :class:`ObjectNotFoundError` or ``ValueError`` when unusable."""
        key = keys.STUDENT_PHOTO_INFO.key(
            class_id=class_id, student_id=student_id, photo_id=photo_id
        )
        return StudentPhotoDoc.model_validate_json(self._store.get(key))

    def jpeg(self, class_id: str, student_id: str, photo_id: str) -> bytes:
        """The stored photo; :class:`ObjectNotFoundError` if it is gone."""
        key = keys.STUDENT_PHOTO.key(class_id=class_id, student_id=student_id, photo_id=photo_id)
        return self._store.get(key)

    def infos(self, listed: Iterable[str]) -> list[StudentPhotoDoc]:
        """The readable quality reports among ``listed`` (a listing of a student's folder),
        counted or not (a photo being stored right now included)."""
        found = []
        for key in listed:
            if keys.STUDENT_PHOTO_INFO.parse(key) is not None:
                info = self._read(key, StudentPhotoDoc)
                if info is not None:
                    found.append(info)
        return found

    def counted(self, class_id: str, student_id: str) -> list[StudentPhotoDoc]:
        """The student's photos that count (FaceNet's embedding is stored), oldest first."""
        listed = self._store.list(keys.STUDENT.prefix(class_id=class_id, student_id=student_id))
        refs = (keys.parse_embedding_key(class_id, key) for key in listed)
        embedded = {ref.photo_id for ref in refs if ref is not None and ref.model == FACENET}
        photos = [info for info in self.infos(listed) if info.id in embedded]
        photos.sort(key=lambda info: (info.created_at, info.id))
        return photos


class StudentEmbeddings(Repository):
    """One embedding object per registration photo and face model. The secondary models' are
    written first; FaceNet's, written last, makes the photo count. Stored arrays never change (a
    new photo gets a new id), so they are cached by key (:mod:`app.services.recognition.gallery`)."""

    def stage(
        self,
        staged: StagedWrites,
        class_id: str,
        student_id: str,
        photo_id: str,
        facenet: Embeddings,
        secondary: dict[str, Embeddings],
    ) -> None:
        for model, views in (*secondary.items(), (FACENET, facenet)):
            staged.put(
                keys.embedding_key(class_id, student_id, photo_id, model),
                embeddings_to_bytes(views),
                content_type=NPY,
            )

    def listing(self, class_id: str) -> StudentKeys:
        """One listing of the class's students, parsed."""
        return parse_listing(class_id, self._store.list(keys.STUDENT.prefix(class_id=class_id)))

    def load(self, key: str) -> Embeddings:
        """The array of a listed embedding key (:class:`StudentKeys`); :class:`ObjectNotFoundError`
        if deleted since, ``ValueError`` if unreadable."""
        return embeddings_from_bytes(self._store.get(key))

    def of_student(self, class_id: str, student_id: str) -> list[tuple[str, keys.EmbeddingRef]]:
        """Every embedding object of the student, any model: ``(key, what it is)``."""
        found = []
        for key in self._store.list(
            keys.FACENET_EMBEDDING.prefix(class_id=class_id, student_id=student_id)
        ):
            ref = keys.parse_embedding_key(class_id, key)
            if ref is not None and ref.student_id == student_id:
                found.append((key, ref))
        return found

    def raw(self, key: str) -> bytes:
        """The stored ``.npy`` bytes of a listed key; :class:`ObjectNotFoundError` if gone."""
        return self._store.get(key)

    def count(self, class_id: str, student_id: str) -> int:
        """The student's photos that count (FaceNet's embeddings)."""
        return sum(1 for _, ref in self.of_student(class_id, student_id) if ref.model == FACENET)

    def create(
        self, class_id: str, student_id: str, photo_id: str, model: str, views: Embeddings
    ) -> bool:
        """Store a secondary model's embedding only if absent (a back-fill); False if taken.
        Removed again when the photo's FaceNet embedding is gone meanwhile (erased): no orphan."""
        key = keys.embedding_key(class_id, student_id, photo_id, model)
        try:
            self._store.put(key, embeddings_to_bytes(views), content_type=NPY, if_absent=True)
        except ObjectExistsError:
            return False
        if not self._store.exists(keys.embedding_key(class_id, student_id, photo_id)):
            self._store.delete(key)
            return False
        return True


class Samples(Repository):
    """Confirmed faces of a student (``samples/{id}.json``), one object each, written once and
    never changed (so cached by key, like embeddings); deleted when dropped by the bound, by a
    teacher, when the face is named again, or with the student's folder."""

    def _key(self, class_id: str, student_id: str, sample_id: str) -> str:
        return keys.SAMPLE.key(class_id=class_id, student_id=student_id, sample_id=sample_id)

    def create(self, class_id: str, doc: SampleDoc) -> bool:
        return self._create(self._key(class_id, doc.student_id, doc.id), doc)

    def stage(self, staged: StagedWrites, class_id: str, doc: SampleDoc) -> None:
        """Write with a set of writes (a session photo's upload): gone again if it fails."""
        staged.put(
            self._key(class_id, doc.student_id, doc.id),
            doc.to_json_bytes(),
            content_type=JSON,
            if_absent=True,
        )

    def get(self, class_id: str, student_id: str, sample_id: str) -> SampleDoc | None:
        return self._read(self._key(class_id, student_id, sample_id), SampleDoc)

    def load(self, key: str) -> SampleDoc:
        """The sample at a listed key (:attr:`StudentKeys.samples`); :class:`ObjectNotFoundError`
        if deleted since, ``ValueError`` if unreadable."""
        return self._load(key, SampleDoc, "sample")

    def _listed(self, class_id: str, student_id: str) -> list[str]:
        prefix = keys.SAMPLE.prefix(class_id=class_id, student_id=student_id)
        return [key for key in self._store.list(prefix) if keys.SAMPLE.parse(key) is not None]

    def count(self, class_id: str, student_id: str) -> int:
        """The student's samples, from one listing (nothing read)."""
        return len(self._listed(class_id, student_id))

    def of_student(self, class_id: str, student_id: str) -> list[SampleDoc]:
        """Every readable sample of the student, oldest first."""
        docs = (self._read(key, SampleDoc) for key in self._listed(class_id, student_id))
        found = [doc for doc in docs if doc is not None]
        found.sort(key=lambda doc: (doc.taken_at, doc.id))
        return found

    def delete(self, class_id: str, student_id: str, sample_id: str) -> None:
        self._store.delete(self._key(class_id, student_id, sample_id))
