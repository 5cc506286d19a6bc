"""The face pipeline behind a concurrency limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ml.head import ProjectionHead
from ml.matching import Cohort, Gallery, KnownStrangers
from ml.pipeline import FaceChoice, FaceEnrolment, FacePipeline, Recognition
from ml.types import DetectedFace, Embeddings, RGBImage


class Inference:
    """The pipeline behind a semaphore: a few concurrent requests must not oversubscribe the CPU.

    Background work (a roster import's photos) yields to requests: it runs one photo at a time,
    only while no request is waiting for the models or using them, so a teacher's class photo
    waits at most for the one photo in progress."""

    def __init__(self, pipeline: FacePipeline, concurrency: int, max_faces: int | None = None):
        self.pipeline = pipeline
        self._slots = threading.BoundedSemaphore(concurrency)
        self.max_faces = max_faces
        self._requests = 0
        self._quiet = threading.Condition()
        self._background = threading.Lock()

    @contextmanager
    def _slot(self, *, background: bool = False) -> Iterator[None]:
        if background:
            with self._background:
                with self._quiet:
                    self._quiet.wait_for(lambda: self._requests == 0)
                with self._slots:
                    yield
            return
        with self._quiet:
            self._requests += 1
        try:
            with self._slots:
                yield
        finally:
            with self._quiet:
                self._requests -= 1
                self._quiet.notify_all()

    def enrol(
        self, image: RGBImage, face: FaceChoice | None = None, *, background: bool = False
    ) -> FaceEnrolment:
        with self._slot(background=background):
            return self.pipeline.enrol(image, face)

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        with self._slot():
            return self.pipeline.detect(image)

    def embed_face(self, image: RGBImage, face: DetectedFace) -> dict[str, Embeddings]:
        with self._slot():
            return self.pipeline.embed_face(image, face)

    def recognise(
        self,
        image: RGBImage,
        gallery: Gallery,
        head: ProjectionHead | None,
        *,
        cohort: Cohort | None = None,
        strangers: KnownStrangers | None = None,
    ) -> Recognition:
        with self._slot():
            return self.pipeline.recognise(
                image,
                gallery,
                head,
                cohort=cohort,
                strangers=strangers,
                max_faces=self.max_faces,
            )
