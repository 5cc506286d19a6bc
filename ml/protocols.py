"""One small Protocol per pipeline role; concrete classes are chosen in :mod:`ml.factory`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ml.types import DetectedFace, Embeddings, RGBImage


class FaceDetector(Protocol):
    """Finds every face in an image."""

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        """Faces sorted by descending score, boxes and landmarks in ``image`` coordinates."""
        ...


class HeadSegmenter(Protocol):
    """Separates a head (face and hair) from the background."""

    def segment(self, image: RGBImage, face: DetectedFace) -> npt.NDArray[np.bool_]:
        """Boolean mask ``(H, W)`` of ``image``: True on the head of ``face``."""
        ...


class FaceEmbedder(Protocol):
    """Maps aligned face crops to unit-norm identity embeddings."""

    @property
    def dim(self) -> int: ...

    @property
    def input_size(self) -> int:
        """Side of the square RGB crop the embedder expects."""
        ...

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        """``(N, dim)`` float32, each row L2-normalised; ``crops`` are ``input_size`` squares."""
        ...


class FaceCropper(Protocol):
    """Cuts the input crop of one embedder out of an image, around one detected face."""

    @property
    def input_size(self) -> int: ...

    def crop(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        """An ``input_size`` square RGB crop."""
        ...
