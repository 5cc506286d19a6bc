"""The face pipeline behind a concurrency limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
