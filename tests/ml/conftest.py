"""Fixtures and helpers shared by the ml tests."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from ml.export.facenet import FaceNetWeights, casia_weights_from_graph

TORCH_MISSING = "torch, the reference here, is not installed: uv sync --group torch"
"""Why a test comparing with PyTorch skips (``pytest.importorskip("torch", reason=TORCH_MISSING)``)."""


@pytest.fixture(scope="session")
def torch_module() -> ModuleType:
    """torch, the reference of the parity tests; skips, naming the command that installs it, where
    the ``torch`` group is not installed. Tests using it are marked ``models`` (tests/conftest.py)."""
    torch: ModuleType = pytest.importorskip("torch", reason=TORCH_MISSING)
    return torch


@pytest.fixture(scope="session")
def casia_graph_weights() -> FaceNetWeights:
    """The CASIA-WebFace graph mapped onto facenet-pytorch's state-dict keys (about 1 s)."""
    return casia_weights_from_graph()


def lfw_centre_crop(path: Path, region: int = 150) -> npt.NDArray[np.uint8]:
    """LFW images are 250x250 with the face centred: the central ``region`` square resized to 160x160 RGB."""
    image = cv2.imread(str(path))
    assert image is not None, path
    top = (image.shape[0] - region) // 2
    left = (image.shape[1] - region) // 2
    square = image[top : top + region, left : left + region]
    resized = cv2.resize(square, (160, 160), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB))
