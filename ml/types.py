"""Value types shared by every stage of the face pipeline.

Images are numpy RGB ``uint8`` arrays of shape ``(H, W, 3)``. Results are frozen dataclasses so a
stage can never mutate what an earlier stage produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

RGBImage = npt.NDArray[np.uint8]
"""An RGB image, ``uint8`` of shape ``(H, W, 3)``."""

Embeddings = npt.NDArray[np.float32]
"""Row-wise L2-normalised embeddings, ``float32`` of shape ``(N, D)``."""

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Order of the five landmarks. Left/right are as seen in the image (left_eye has the smaller x)."""


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face found in an image, in that image's pixel coordinates."""

    box: tuple[float, float, float, float]
    """``(x1, y1, x2, y2)``."""
    score: float
    landmarks: npt.NDArray[np.float32] = field(repr=False)
    """``float32`` array ``(5, 2)`` of ``(x, y)`` in ``LANDMARK_NAMES`` order."""

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """Face size in pixels: the shorter side of the box."""
        return min(self.width, self.height)


def check_rgb_image(image: object) -> RGBImage:
    """Return ``image`` if it is an RGB uint8 ``(H, W, 3)`` array, else raise ``ValueError``."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError("empty image")
    return image
