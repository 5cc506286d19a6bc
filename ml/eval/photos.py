"""Reading evaluation photos from disk (the evaluations are the only part of ``ml`` that reads files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ml.types import RGBImage


def load_rgb(path: Path) -> RGBImage:
    """A photo as RGB uint8, EXIF orientation applied, grayscale expanded to three channels."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
        return np.asarray(image, dtype=np.uint8).copy()
