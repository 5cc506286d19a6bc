"""Back-fill of a secondary face model's embeddings for students registered before it was added.

Every registration stores one embedding object per photo and model. When the pipeline gains a
model (dlib's ResNet fused with FaceNet), the students enrolled before have FaceNet's embeddings
only: they are matched on FaceNet alone until this worker has computed the new model's embeddings
from their stored registration photo and face box. It runs in the background, one class at a time,
is idempotent (it only fills what is missing), and is safe beside other processes on one bucket:
a write is create-if-absent, and an embedding whose photo was deleted meanwhile is removed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from app.core.images import ImageError, decode_image
from app.records import keys
from app.records.students import StudentEmbeddings, StudentPhotos
from app.services.recognition.jobs import ClassJobQueue
from app.storage import ObjectNotFoundError, ObjectStore, StorageUnavailableError
from ml.fusion import FACENET
from ml.pipeline import FacePipeline
from ml.types import DetectedFace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackfillReport:
    """What one pass over a class did."""

    written: int
    failed: int


class EmbeddingBackfill(ClassJobQueue):
    """Fills in missing secondary-model embeddings, one class at a time, in a background thread."""

    def __init__(self, pipeline: FacePipeline, store: ObjectStore, max_pixels: int):
        super().__init__("embedding-backfill")
        self._pipeline = pipeline
        self._photos = StudentPhotos(store)
        self._embeddings = StudentEmbeddings(store)
        self._max_pixels = max_pixels

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(model.name for model in self._pipeline.secondary)

    def request(self, class_id: str) -> None:
        """Make sure the class's students get every model's embeddings soon (no-op when queued)."""
        if self.models:
            super().request(class_id)

    def _job(self, class_id: str) -> None:
        try:
            report = self.fill_class(class_id)
            if report.written or report.failed:
                logger.info(
                    "class %s: back-filled %d embeddings (%d photos could not be used)",
                    class_id,
                    report.written,
                    report.failed,
                )
        except StorageUnavailableError as error:
            logger.warning("class %s: back-fill stopped, storage unavailable: %s", class_id, error)
        except Exception:
            logger.exception("class %s: back-fill failed", class_id)

    def fill_class(self, class_id: str) -> BackfillReport:
        """Compute every missing secondary embedding of the class, synchronously."""
        parsed = self._embeddings.listing(class_id)
        have = set(parsed.secondary)
        written = failed = 0
        for key in parsed.embeddings:
            if self.closed:
                break
            ref = keys.parse_embedding_key(class_id, key)
            if ref is None or ref.model != FACENET:  # pragma: no cover - parsed above
                continue
            missing = [
                model
                for model in self.models
                if keys.embedding_key(class_id, ref.student_id, ref.photo_id, model) not in have
            ]
            if not missing:
                continue
            try:
                done = self._fill_photo(class_id, ref.student_id, ref.photo_id, missing)
            except (ObjectNotFoundError, ImageError, ValueError) as error:
                # The photo went away (erasure) or cannot be read: it keeps FaceNet alone.
                logger.warning(
                    "class %s: no back-fill for photo %s of %s: %s",
                    class_id,
                    ref.photo_id,
                    ref.student_id,
                    error,
                )
                failed += 1
                continue
            written += done
        return BackfillReport(written, failed)

    def _fill_photo(self, class_id: str, student_id: str, photo_id: str, models: list[str]) -> int:
        info = self._photos.info(class_id, student_id, photo_id)
        data = self._photos.jpeg(class_id, student_id, photo_id)
        image = decode_image(data, max_pixels=self._max_pixels, name=f"photo {photo_id}")
        # The stored photo is the oriented, re-encoded registration photo and the box was found
        # on it: the secondary models need only that box (dlib places its own landmarks).
        face = DetectedFace(
            box=info.box,
            score=float(info.quality.get("detection_score", 1.0)),  # type: ignore[arg-type]
            landmarks=np.zeros((5, 2), np.float32),
        )
        views = self._pipeline.secondary_views(image, face)
        # Create-if-absent (another process may fill it meanwhile), and removed again when the
        # photo was erased while we computed: no orphan behind the erasure.
        return sum(
            self._embeddings.create(class_id, student_id, photo_id, model, views[model])
            for model in models
        )
