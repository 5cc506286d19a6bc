"""Fixtures and helpers shared by the ml tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from ml.weights.facenet_casia import converted_casia_weights


@pytest.fixture(scope="session")
def casia_weights() -> Path:
    """Converted once into the default cache dir, so later runs only verify the checksum."""
    return converted_casia_weights()


def lfw_centre_crop(path: Path, region: int = 150) -> npt.NDArray[np.uint8]:
    """LFW images are 250x250 with the face centred: the central ``region`` square resized to 160x160 RGB."""
    image = cv2.imread(str(path))
    assert image is not None, path
    top = (image.shape[0] - region) // 2
    left = (image.shape[1] - region) // 2
    square = image[top : top + region, left : left + region]
    resized = cv2.resize(square, (160, 160), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB))
