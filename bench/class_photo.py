"""A 5,334 x 2,767 px class photo for the speed benchmark, tiled from the shared group photos.

``../shared`` holds no photo of that size, and a phone's main camera takes class photos of about
that size (12-16 MP). Twelve of the sharpest group photos (73 faces by ``groups.tsv``) are scaled
up with bicubic interpolation to fill a 4 x 3 grid of equal cells (each kept whole, centred on
white), so its faces span the sizes of a real class photo (about 40 to 330 px measured by MTCNN)
and the file is an ordinary JPEG of the size the app uploads. Deterministic: the same file every
run, so timings of different runs compare.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ml.eval.photos import load_rgb
from ml.types import RGBImage

CLASS_PHOTO_SIZE = (5334, 2767)
"""Width and height: the class photo the issue measured (a 14.8 MP phone photo)."""
CLASS_PHOTO_GRID = (4, 3)
CLASS_PHOTO_TILES = (
    "compreface__016_8.jpg",
    "compreface__015_6.jpg",
    "compreface__014_5.jpg",
    "compreface__000_5.jpg",
    "insightface__t1.jpg",
    "facenet_pytorch__multiface.jpg",
    "dlib__2008_004176.jpg",
    "dlib__2008_007676.jpg",
    "dlib__2007_007763.jpg",
    "deepface__selfie-many-people.jpg",
    "face_api_js__bbt3.jpg",
    "compreface__012_4.jpg",
)
JPEG_QUALITY = 92
"""What phone cameras write by default (about 90-95)."""


def tiled_class_photo(groups_dir: Path) -> RGBImage:
    """The photo as RGB pixels."""
    width, height = CLASS_PHOTO_SIZE
    columns, rows = CLASS_PHOTO_GRID
    canvas = np.full((height, width, 3), 255, np.uint8)
    cell_w, cell_h = width // columns, height // rows
    for index, name in enumerate(CLASS_PHOTO_TILES):
        tile = load_rgb(groups_dir / name)
        scale = min(cell_w / tile.shape[1], cell_h / tile.shape[0])
        size = (round(tile.shape[1] * scale), round(tile.shape[0] * scale))
        tile = cv2.resize(tile, size, interpolation=cv2.INTER_CUBIC).astype(np.uint8, copy=False)
        row, column = divmod(index, columns)
        top = row * cell_h + (cell_h - tile.shape[0]) // 2
        left = column * cell_w + (cell_w - tile.shape[1]) // 2
        canvas[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return canvas


def tiled_class_photo_file(groups_dir: Path, cache_dir: Path | None) -> Path:
    """The photo as a JPEG file, written once into ``cache_dir`` (a temporary folder's path when
    there is no cache)."""
    folder = (
        cache_dir
        if cache_dir is not None
        else Path(tempfile.mkdtemp(prefix="rollcall-class-photo-"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    width, height = CLASS_PHOTO_SIZE
    path = folder / f"class-photo-{width}x{height}.jpg"
    if not path.is_file():
        buffer = io.BytesIO()
        Image.fromarray(tiled_class_photo(groups_dir)).save(
            buffer, format="JPEG", quality=JPEG_QUALITY
        )
        path.write_bytes(buffer.getvalue())
    return path
