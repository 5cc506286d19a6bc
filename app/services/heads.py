"""Per-class projection heads: versioned storage and a debounced background trainer.

A head is written as a new versioned object first, then ``current.json`` is pointed at it, so a reader
sees either the old head or the new one, never half of one. Older versions are deleted after the
switch: they may hold the influence of a student who has since been deleted.

The matcher only gets a head whose students are all still enrolled (a deleted student's influence
must be gone at once); a head that lacks newly enrolled students is still used, because the matcher
scores students the head does not know by raw cosine alone (:mod:`ml.matching`).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from app.services import layout
from app.services.background import ClassJobQueue
from app.services.gallery import ClassGallery, GalleryCache
from app.services.ids import utc_now
from app.services.records import Classes
from app.storage import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    StorageUnavailableError,
)
from ml.head import ProjectionHead
from ml.pipeline import FacePipeline

logger = logging.getLogger(__name__)

HeadState = Literal["none", "training", "ready", "stale", "failed"]


@dataclass(frozen=True)
class HeadStatus:
    state: HeadState
    version: int | None = None
    trained_at: str | None = None
    student_count: int | None = None
    error: str | None = None


class HeadStore:
    """Reads and writes one class's heads; caches the loaded head per class and version."""

    def __init__(self, store: ObjectStore):
        self._store = store
        self._lock = threading.Lock()
        self._loaded: dict[str, ProjectionHead] = {}

    def pointer(self, class_id: str) -> layout.HeadPointerDoc | None:
        try:
            data = self._store.get(layout.head_pointer_key(class_id))
        except ObjectNotFoundError:
            return None
        try:
            return layout.HeadPointerDoc.model_validate_json(data)
        except ValidationError:
            logger.exception("ignoring unreadable head pointer of class %s", class_id)
            return None

    def failure(self, class_id: str) -> layout.HeadFailureDoc | None:
        try:
            data = self._store.get(layout.head_failure_key(class_id))
            return layout.HeadFailureDoc.model_validate_json(data)
        except (ObjectNotFoundError, ValidationError):
            return None

    def current(self, class_id: str) -> tuple[layout.HeadPointerDoc, ProjectionHead] | None:
        """The head ``current.json`` points at, loaded once per version."""
        pointer = self.pointer(class_id)
        if pointer is None:
            return None
        with self._lock:
            cached = self._loaded.get(class_id)
        if cached is not None and cached.version == pointer.version:
            return pointer, cached
        try:
            head = ProjectionHead.from_bytes(self._store.get(pointer.key))
        except ObjectNotFoundError:
            # Replaced (and the old version deleted) between reading the pointer and the head.
            return None
        except (ValueError, KeyError, json.JSONDecodeError):
            logger.exception("ignoring unreadable head %s", pointer.key)
            return None
        head = _with_version(head, pointer.version)
        with self._lock:
            self._loaded[class_id] = head
        return pointer, head

    def versions(self, class_id: str) -> list[int]:
        """Stored head versions, ascending."""
        found = []
        for key in self._store.list(layout.head_prefix(class_id)):
            version = layout.parse_head_key(class_id, key)
            if version is not None:
                found.append(version)
        return sorted(found)

    def save(self, class_id: str, head: ProjectionHead, gallery_signature: str) -> int:
        """Store ``head`` as a new version, then point ``current.json`` at it. Returns the version.

        Versions are claimed with ``if_absent``, so two workers saving at once never overwrite each
        other; the pointer only ever moves to a higher version than the one it names.
        """
        pointed = self.pointer(class_id)
        # The pointer may name a version whose object is gone (erased): never reuse its number.
        version = max([*self.versions(class_id), pointed.version if pointed else 0]) + 1
        while True:
            stored = _with_version(head, version)
            try:
                self._store.put(
                    layout.head_key(class_id, version),
                    stored.to_bytes(),
                    content_type="application/octet-stream",
                    if_absent=True,
                )
                break
            except ObjectExistsError:
                # Another worker trained this class at the same moment; take the next number.
                version += 1
        current = self.pointer(class_id)
        if current is not None and current.version > version:
            logger.info("class %s: head v%d superseded by v%d", class_id, version, current.version)
            self._store.delete(layout.head_key(class_id, version))
            return version
        pointer = layout.HeadPointerDoc(
            version=version,
            key=layout.head_key(class_id, version),
            student_ids=list(stored.student_ids),
            gallery_signature=gallery_signature,
            trained_at=utc_now(),
        )
        self._store.put(
            layout.head_pointer_key(class_id),
            pointer.to_json_bytes(),
            content_type="application/json",
        )
        with self._lock:
            self._loaded[class_id] = stored
        self._store.delete(layout.head_failure_key(class_id))
        return version

    def prune(self, class_id: str, enrolled: set[str], *, keep: int | None = None) -> None:
        """Delete every version trained with a student who is no longer enrolled (erasure), and,
        given the version just saved (``keep``), every version older than the one before it.

        The version just before ``keep`` survives unless erasure requires otherwise: a second worker
        may be pointing ``current.json`` at it at this very moment.
        """
        for version in self.versions(class_id):
            key = layout.head_key(class_id, version)
            if version == keep:
                continue
            if keep is not None and version < keep - 1:
                self._delete_version(class_id, version)
                continue
            try:
                trained_on = set(ProjectionHead.from_bytes(self._store.get(key)).student_ids)
            except ObjectNotFoundError:
                continue
            except (ValueError, KeyError, json.JSONDecodeError):
                logger.exception("deleting unreadable head %s", key)
                trained_on = {""}  # never a subset of real students: delete below
            if not trained_on <= enrolled:
                self._delete_version(class_id, version)

    def _delete_version(self, class_id: str, version: int) -> None:
        self._store.delete(layout.head_key(class_id, version))
        with self._lock:
            loaded = self._loaded.get(class_id)
            if loaded is not None and loaded.version == version:
                del self._loaded[class_id]

    def clear(self, class_id: str) -> None:
        """Remove every head of the class (fewer than two students left, or heads disabled)."""
        self._store.delete(layout.head_pointer_key(class_id))
        with self._lock:
            self._loaded.pop(class_id, None)
        for version in self.versions(class_id):
            self._store.delete(layout.head_key(class_id, version))

    def record_failure(self, class_id: str, gallery_signature: str, error: str) -> None:
        doc = layout.HeadFailureDoc(
            gallery_signature=gallery_signature, error=error[:500], failed_at=utc_now()
        )
        self._store.put(
            layout.head_failure_key(class_id), doc.to_json_bytes(), content_type="application/json"
        )

    def delete_all(self, class_id: str) -> None:
        """Remove every object of the class's heads (the class was deleted meanwhile)."""
        self._store.delete_prefix(layout.head_prefix(class_id))
        self.forget(class_id)

    def forget(self, class_id: str) -> None:
        with self._lock:
            self._loaded.pop(class_id, None)


def _with_version(head: ProjectionHead, version: int) -> ProjectionHead:
    """The same weights under the storage version (the trainer restarts at 1 without a warm start)."""
    if head.version == version:
        return head
    return ProjectionHead(
        head.weights,
        version=version,
        student_ids=head.student_ids,
        steps=head.steps,
        final_loss=head.final_loss,
    )


def usable_head(head: ProjectionHead | None, gallery: ClassGallery) -> ProjectionHead | None:
    """``head`` if every student it was trained on is still enrolled, else ``None``."""
    if head is None or not set(head.student_ids) <= set(gallery.student_ids):
        return None
    return head


class HeadTrainer(ClassJobQueue):
    """Retrains heads in the background, one training at a time, debounced per class.

    ``request(cid)`` during a training of ``cid`` marks it dirty; the running job trains again when it
    finishes, so a burst of registrations costs at most two trainings.
    """

    def __init__(
        self,
        pipeline: FacePipeline,
        galleries: GalleryCache,
        heads: HeadStore,
        store: ObjectStore,
    ):
        super().__init__("head-trainer")
        self._pipeline = pipeline
        self._galleries = galleries
        self._heads = heads
        self._classes = Classes(store)
        self._dirty: set[str] = set()

    def _should_queue(self, class_id: str) -> bool:
        if class_id in self._scheduled:
            self._dirty.add(class_id)
            return False
        return True

    def _finished(self, class_id: str) -> None:
        self._dirty.discard(class_id)

    def _job(self, class_id: str) -> None:
        while True:
            with self._lock:
                self._dirty.discard(class_id)
            try:
                if self.train_now(class_id):
                    with self._lock:
                        self._dirty.add(class_id)
            except StorageUnavailableError as error:
                # Not the head's fault; retrained on the next enrolment, or on the next photo
                # when the head is in use (see app.services.attendance).
                logger.warning(
                    "class %s: head not trained, storage unavailable: %s", class_id, error
                )
            except Exception:
                logger.exception("class %s: head training failed", class_id)
            with self._lock:
                if class_id not in self._dirty or self._closed:
                    return

    def train_now(self, class_id: str) -> bool:
        """Bring the head of ``class_id`` up to date, synchronously.

        Returns True when the students changed while it trained (another training is due: the
        change may have come from another worker, which this process was not told about).
        """
        if not self._classes.exists(class_id):
            return False
        snapshot = self._galleries.get(class_id)
        # Erasure first, whatever happens next: no stored head may know a deleted student.
        self._heads.prune(class_id, set(snapshot.student_ids))
        if len(snapshot.student_ids) < 2:
            self._heads.clear(class_id)
            return False
        current = self._heads.current(class_id)
        if current is not None and current[0].gallery_signature == snapshot.signature:
            return False
        # Warm-start only from a head whose students are all still enrolled: starting from a head
        # that knew a deleted student would carry that student's influence into the new one.
        previous = usable_head(current[1] if current else None, snapshot)
        try:
            head = self._pipeline.train_head(snapshot.gallery, previous=previous)
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            self._heads.record_failure(class_id, snapshot.signature, message)
            raise
        if head is None:
            self._heads.clear(class_id)
            return False
        version = self._heads.save(class_id, head, snapshot.signature)
        if not self._classes.exists(class_id):
            # The class was deleted while we trained: do not leave a head behind.
            self._heads.delete_all(class_id)
            return False
        latest = self._galleries.get(class_id)
        self._heads.prune(class_id, set(latest.student_ids), keep=version)
        logger.info(
            "class %s: head v%d ready (%d students)", class_id, version, len(head.student_ids)
        )
        return latest.signature != snapshot.signature

    def status(self, class_id: str, snapshot: ClassGallery) -> HeadStatus:
        pointer = self._heads.pointer(class_id)
        count = len(pointer.student_ids) if pointer else None
        version = pointer.version if pointer else None
        trained_at = pointer.trained_at.isoformat() if pointer else None
        if self.is_busy(class_id):
            return HeadStatus("training", version, trained_at, count)
        failure = self._heads.failure(class_id)
        if failure is not None and failure.gallery_signature == snapshot.signature:
            return HeadStatus("failed", version, trained_at, count, failure.error)
        if pointer is None:
            return HeadStatus("none")
        if pointer.gallery_signature == snapshot.signature:
            return HeadStatus("ready", version, trained_at, count)
        return HeadStatus("stale", version, trained_at, count)
