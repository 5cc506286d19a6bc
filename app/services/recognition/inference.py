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
    only while no request is waiting for the models or using them, and steps aside at each of the
    pipeline's checkpoints when one arrives, so a teacher's class photo waits at most one step of
    a registration (a few views, about 100 ms)."""

    def __init__(self, pipeline: FacePipeline, concurrency: int, max_faces: int | None = None):
        self.pipeline = pipeline
        self._slots = threading.BoundedSemaphore(concurrency)
        self.max_faces = max_faces
        self._requests = 0
        self._quiet = threading.Condition()
        self._background = threading.Lock()

    @contextmanager
    def _slot(self) -> Iterator[None]:
        with self._quiet:
            self._requests += 1
        try:
            with self._slots:
                yield
        finally:
            with self._quiet:
                self._requests -= 1
                self._quiet.notify_all()

    def _take_quiet_slot(self) -> None:
        """A slot for background work, taken when no request waits or runs."""
        while True:
            with self._quiet:
                self._quiet.wait_for(lambda: self._requests == 0)
            self._slots.acquire()
            with self._quiet:
                if self._requests == 0:
                    return
            self._slots.release()  # a request came in meanwhile: it goes first

    def _let_requests_pass(self) -> None:
        """A background enrolment's checkpoint: its slot goes to the requests waiting, if any,
        and is taken again once they are done."""
        with self._quiet:
            waiting = self._requests > 0
        if waiting:
            self._slots.release()
            self._take_quiet_slot()

    def enrol(
        self, image: RGBImage, face: FaceChoice | None = None, *, background: bool = False
    ) -> FaceEnrolment:
        if not background:
            with self._slot():
                return self.pipeline.enrol(image, face)
        with self._background:
            self._take_quiet_slot()
            try:
                return self.pipeline.enrol(image, face, checkpoint=self._let_requests_pass)
            finally:
                self._slots.release()

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
