"""What every domain service shares: the repositories over the store, the pipeline (behind a
concurrency limit), the caches and the background workers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from app.services import layout
from app.services.audit import AuditLog
from app.services.backfill import EmbeddingBackfill
from app.services.cleanup import PendingCleanup
from app.services.drawing import AnnotatedCache
from app.services.errors import NotFoundError
from app.services.gallery import ClassGallery, GalleryCache
from app.services.heads import HeadStore, HeadTrainer
from app.services.records import Repositories
from app.settings import Settings
from app.storage import ObjectStore
from ml.head import ProjectionHead
from ml.matching import Gallery
from ml.pipeline import FaceEnrolment, FacePipeline, Recognition
from ml.types import DetectedFace, Embeddings, RGBImage


class Inference:
    """The pipeline behind a semaphore: a few concurrent requests must not oversubscribe the CPU."""

    def __init__(self, pipeline: FacePipeline, concurrency: int, max_faces: int | None = None):
        self.pipeline = pipeline
        self._slots = threading.BoundedSemaphore(concurrency)
        self.max_faces = max_faces

    @contextmanager
    def _slot(self) -> Iterator[None]:
        with self._slots:
            yield

    def enrol(self, image: RGBImage) -> FaceEnrolment:
        with self._slot():
            return self.pipeline.enrol(image)

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        with self._slot():
            return self.pipeline.detect(image)

    def embed_face(self, image: RGBImage, face: DetectedFace) -> dict[str, Embeddings]:
        with self._slot():
            return self.pipeline.embed_face(image, face)

    def recognise(
        self, image: RGBImage, gallery: Gallery, head: ProjectionHead | None
    ) -> Recognition:
        with self._slot():
            return self.pipeline.recognise(image, gallery, head, max_faces=self.max_faces)


@dataclass
class Context:
    settings: Settings
    store: ObjectStore
    inference: Inference
    galleries: GalleryCache
    heads: HeadStore
    trainer: HeadTrainer
    backfill: EmbeddingBackfill
    cleanup: PendingCleanup = field(default_factory=PendingCleanup)
    """Rollbacks that failed because the store was down, retried until it is back."""
    annotated: AnnotatedCache = field(default_factory=AnnotatedCache)
    """Annotated copies drawn again after corrections or renames."""
    records: Repositories = field(init=False)
    """The stored things (:mod:`app.services.records`); services read and write through these."""
    audit: AuditLog = field(init=False)
    """The audit log (:mod:`app.services.audit`); the routers record, ``GET /v1/audit`` reads."""

    def __post_init__(self) -> None:
        self.records = Repositories(self.store, self.cleanup)
        self.audit = AuditLog(self.records.audit, self.cleanup)

    @classmethod
    def build(cls, settings: Settings, store: ObjectStore, pipeline: FacePipeline) -> Context:
        galleries = GalleryCache(store)
        heads = HeadStore(store)
        return cls(
            settings=settings,
            store=store,
            inference=Inference(
                pipeline, settings.inference_concurrency, settings.max_faces_per_photo
            ),
            galleries=galleries,
            heads=heads,
            trainer=HeadTrainer(pipeline, galleries, heads, store),
            backfill=EmbeddingBackfill(pipeline, store, settings.max_image_pixels),
        )

    def backfill_if_needed(self, class_id: str, snapshot: ClassGallery) -> None:
        """Queue the back-fill of any model some of the class's photos lack (cheap when none)."""
        for model in self.backfill.models:
            done, total = snapshot.model_progress(model)
            if done < total:
                self.backfill.request(class_id)
                return

    def require_class(self, class_id: str) -> layout.ClassDoc:
        doc = self.records.classes.get(class_id)
        if doc is None:
            raise NotFoundError(f"class {class_id!r} not found")
        return doc

    def student_names(self, class_id: str, student_ids: set[str]) -> dict[str, str]:
        """Display names of a few students (a missing ``student.json`` falls back to the id)."""
        names: dict[str, str] = {}
        for student_id in sorted(student_ids):
            doc = self.records.students.get(class_id, student_id)
            names[student_id] = doc.name if doc else student_id
        return names
