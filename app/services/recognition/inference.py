"""The face pipeline behind a concurrency limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ml.head import ProjectionHead
from ml.matching import Cohort, Gallery, KnownStrangers
from ml.pipeline import FaceChoice, FaceEnrolment, FacePipeline, Recognition
from ml.types import DetectedFace, Embeddings, RGBImage

BACKGROUND_SLICE_S = 0.25
"""At a checkpoint, background work steps aside for a waiting request once it has run this long
since it last took the models: a class photo waits at most this plus one step, and an import
still progresses while class photos keep coming. Measured with ``python -m bench.roster_import``
(docs/importing.md): yielding at every checkpoint starved a 1,000-student import under a client
calling back to back (not done after 18 minutes); yielding only between photos let a request wait
for a whole registration (p95 2.1-2.8x); this slice: 755 s on disk and 869 s on S3, p95 1.65x and
2.26x."""


class Inference:
    """The pipeline behind a semaphore: a few concurrent requests must not oversubscribe the CPU.

    Background work (a roster import's photos) yields to requests: it runs one photo at a time,
    only while no request is waiting for the models or using them, and steps aside at each of the
    pipeline's checkpoints when one is waiting and it has run :data:`BACKGROUND_SLICE_S`, so a
    teacher's class photo waits a fraction of a registration, not all of it."""

    def __init__(self, pipeline: FacePipeline, concurrency: int, max_faces: int | None = None):
        self.pipeline = pipeline
        self._slots = threading.BoundedSemaphore(concurrency)
        self.max_faces = max_faces
        self._requests = 0
        self._quiet = threading.Condition()
        self._background = threading.Lock()
        self._background_since = 0.0

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
                    self._background_since = time.monotonic()
                    return
            self._slots.release()  # a request came in meanwhile: it goes first

    def _let_requests_pass(self) -> None:
        """A background enrolment's checkpoint: once it has held its slot for
        :data:`BACKGROUND_SLICE_S`, the slot goes to the requests waiting, if any, and is taken
        again once they are done."""
        if time.monotonic() - self._background_since < BACKGROUND_SLICE_S:
            return
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
