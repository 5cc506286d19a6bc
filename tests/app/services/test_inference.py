"""Background work yields to requests (``app.services.recognition.inference``): a registration
of a roster import gives the models to a class photo at its next checkpoint, not at its end.
The pipeline is a stand-in that records the order of its steps; ``tests/ml/test_pipeline.py``
checks that the real pipeline embeds the same views with checkpoints as without."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

import numpy as np
import pytest

from app.services.recognition import inference as inference_module
from app.services.recognition.inference import Inference
from ml.pipeline import FacePipeline
from ml.types import DetectedFace, RGBImage

STEPS = 6


class _Steps:
    """A pipeline whose enrolment takes :data:`STEPS` steps, with a checkpoint before each."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.started = threading.Event()
        self.go_on = threading.Event()

    def enrol(self, image: RGBImage, face: object = None, *, checkpoint: Callable[[], None]) -> str:
        for step in range(STEPS):
            checkpoint()
            self.events.append(f"step {step}")
            if step == 1:
                self.started.set()
                self.go_on.wait(10)  # a request arrives while this step runs
        return "enrolled"

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        self.events.append("request")
        return []


def test_a_request_goes_at_the_next_checkpoint_of_a_background_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inference_module, "BACKGROUND_SLICE_S", 0.0)
    steps = _Steps()
    inference = Inference(cast(FacePipeline, steps), concurrency=1)
    image = np.zeros((8, 8, 3), np.uint8)
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(inference.enrol(image, background=True)))
    worker.start()
    assert steps.started.wait(10)
    request = threading.Thread(target=inference.detect, args=(image,))
    request.start()
    while inference._requests == 0:  # the request is waiting for the slot
        threading.Event().wait(0.001)
    steps.go_on.set()
    request.join(10)
    worker.join(10)
    assert result == ["enrolled"]
    # The request ran right after the step in progress, before the rest of the registration.
    assert steps.events == ["step 0", "step 1", "request", "step 2", "step 3", "step 4", "step 5"]


def test_within_its_slice_background_work_keeps_the_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inference_module, "BACKGROUND_SLICE_S", 60.0)
    steps = _Steps()
    inference = Inference(cast(FacePipeline, steps), concurrency=1)
    image = np.zeros((8, 8, 3), np.uint8)
    worker = threading.Thread(target=inference.enrol, args=(image,), kwargs={"background": True})
    worker.start()
    assert steps.started.wait(10)
    request = threading.Thread(target=inference.detect, args=(image,))
    request.start()
    while inference._requests == 0:
        threading.Event().wait(0.001)
    steps.go_on.set()
    worker.join(10)
    request.join(10)
    assert steps.events == [*(f"step {n}" for n in range(STEPS)), "request"]


def test_background_work_waits_for_requests_in_progress() -> None:
    steps = _Steps()
    steps.go_on.set()
    inference = Inference(cast(FacePipeline, steps), concurrency=1)
    image = np.zeros((8, 8, 3), np.uint8)
    release = threading.Event()

    def long_request() -> None:
        with inference._slot():
            steps.events.append("request")
            release.wait(10)

    request = threading.Thread(target=long_request)
    request.start()
    while not steps.events:
        threading.Event().wait(0.001)
    worker = threading.Thread(target=inference.enrol, args=(image,), kwargs={"background": True})
    worker.start()
    worker.join(0.2)
    assert worker.is_alive() and steps.events == ["request"]
    release.set()
    worker.join(10)
    assert steps.events == ["request", *(f"step {n}" for n in range(STEPS))]
