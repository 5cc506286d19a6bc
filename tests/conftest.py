"""Fixtures shared by every test package."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ml.eval.shared_data import SHARED_DIR_ENV
from ml.eval.shared_data import shared_dir as find_shared_dir

if TYPE_CHECKING:
    # The models are imported by the fixtures that build them, so that collecting (and running
    # the tests that need no model) stays fast.
    from ml.pipeline import FacePipeline


def running_in_ci() -> bool:
    """CI runners set ``CI=true`` (.ci/run runs there)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


CLOCK_OFFSET_ENV = "ROLLCALL_TEST_CLOCK_OFFSET_DAYS"
"""Days to move the wall clock (``datetime.now``, ``time.time``) ahead for the whole run, the
monotonic clock untouched: ``.ci/run`` runs the fast set a year ahead, so that a test which
depends on today's date fails on the day it is written, not a day later."""


def pytest_configure(config: pytest.Config) -> None:
    """In CI the real data must be there: without it every real-data test would skip and the run
    would pass having tested nothing, so the run stops here with an error instead."""
    offset = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if offset:
        import datetime as dt

        import time_machine

        moved = dt.datetime.now(dt.UTC) + dt.timedelta(days=int(offset))
        time_machine.travel(moved, tick=True).start()
    path = find_shared_dir()
    if running_in_ci() and not path.is_dir():
        raise pytest.UsageError(
            f"CI=true and the shared data folder is missing: {path} (the real photos the tests "
            f"need; put them at ../shared beside the repository or set {SHARED_DIR_ENV})"
        )


MODEL_FIXTURES = frozenset(
    {
        "face_pipeline",
        "cast_pipeline",
        "fast_face_pipeline",
        "fast_cast_pipeline",
        "casia_graph_weights",
        "exported_facenet",
        "exported_cache",
        "torch_module",
        "exported_onnx",
        "onnx_embedder",
        "real_chips",
    }
)
"""Fixtures that load the real face models or torch: a test using one is marked ``models``."""


S3_FIXTURES = frozenset({"s3_server", "s3_admin_client", "s3_store_factory", "new_s3_bucket"})
"""Fixtures that start or use the SeaweedFS S3 server."""


def _uses_real_s3(item: pytest.Item) -> bool:
    """A test of the S3 server: through a fixture, or run once per backend with ``"s3"``."""
    if S3_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "s3" in {str(value) for value in callspec.params.values()}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that loads the real models (through a model fixture) ``models``, so that
    ``pytest -m "not slow and not models"`` is the fast set (docs/development.md), and every
    test of the real S3 server ``s3`` (a clock moved by ``faketime`` cannot sign its requests:
    ``.ci/run`` runs the fast set a year ahead without them)."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.models)
        if _uses_real_s3(item):
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only real data folder (``ml.eval.shared_data``); outside CI a missing folder skips
    the tests that need it, with the reason."""
    path = find_shared_dir()
    if not path.is_dir():
        pytest.skip(f"../shared not found: {path} (set {SHARED_DIR_ENV} to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def face_pipeline() -> FacePipeline:
    """The default pipeline with real weights, built once per test session (it takes seconds)."""
    from ml.config import PipelineConfig
    from ml.factory import build_pipeline

    return build_pipeline(PipelineConfig())


CAST_UNKNOWN_THRESHOLD = 0.30
"""Operating point for a class registered from poor photos, as the face-api.js cast is (150 px
grayscale crops, cut tight), that an operator sets with ``ROLLCALL_UNKNOWN_THRESHOLD``. With FaceNet
fused with dlib the calibrated default already names all five of bbt3 (their lowest score is Raj's,
0.42; ``tests/ml/test_pipeline.py``); the service tests keep this lower point because their fast
pipeline registers one view per photo instead of 15. The stranger of bbt2 scores 0.19."""


@pytest.fixture(scope="session")
def cast_pipeline(face_pipeline: FacePipeline) -> FacePipeline:
    """The same models with the operator threshold for the face-api.js cast."""
    config = dataclasses.replace(face_pipeline.config, unknown_threshold=CAST_UNKNOWN_THRESHOLD)
    return face_pipeline.with_config(config)
