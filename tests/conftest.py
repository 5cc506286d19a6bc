"""Fixtures shared by every test package."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from ml.config import PipelineConfig
from ml.pipeline import FacePipeline

SHARED_DIR_ENV = "ROLLCALL_SHARED_DIR"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only real data folder: ``$ROLLCALL_SHARED_DIR``, else ``../shared`` beside the repository root."""
    configured = os.environ.get(SHARED_DIR_ENV)
    path = Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared"
    if not path.is_dir():
        pytest.skip(f"../shared not found: {path} (set {SHARED_DIR_ENV} to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def face_pipeline() -> FacePipeline:
    """The default pipeline with real weights, built once per test session (it takes seconds)."""
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
