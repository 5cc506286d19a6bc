"""The projection head's training: a debounced background job per class, run only where the
pipeline uses the head (``ROLLCALL_USE_HEAD``; off by default, measured to change no decision).

The matcher only gets a head whose students are all still enrolled (a deleted student's influence
must be gone at once); a head that lacks newly enrolled students is still used, because the matcher
scores students the head does not know by raw cosine alone (:mod:`ml.matching`).
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from app.core.results import Result
from app.records.classes import Classes
from app.records.heads import HeadStore
from app.services.recognition.gallery import ClassGallery, GalleryCache
from app.services.recognition.jobs import ClassJobQueue
from app.storage import ObjectStore, StorageUnavailableError
from ml.head import ProjectionHead
from ml.pipeline import FacePipeline

logger = logging.getLogger(__name__)

HeadState = Literal["none", "training", "ready", "stale", "failed"]


class HeadStatus(Result):
    state: HeadState = Field(
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
                # when the head is in use (see app.services.attendance.recognise).
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
            return HeadStatus(
                state="training", version=version, trained_at=trained_at, student_count=count
            )
        failure = self._heads.failure(class_id)
        if failure is not None and failure.gallery_signature == snapshot.signature:
            return HeadStatus(
                state="failed",
                version=version,
                trained_at=trained_at,
                student_count=count,
                error=failure.error,
            )
        if pointer is None:
            return HeadStatus(state="none")
        if pointer.gallery_signature == snapshot.signature:
            return HeadStatus(
                state="ready", version=version, trained_at=trained_at, student_count=count
            )
        return HeadStatus(
            state="stale", version=version, trained_at=trained_at, student_count=count
        )
