"""Small JPEGs cut around a face: registration-photo thumbnails and face crops of session photos.

They are made on request from the stored photo (no extra object to keep in step with deletions).
Stored photos are JPEGs the service wrote itself (oriented, re-encoded), so the box of the face
is in their pixels; JPEG draft mode decodes them at a reduced scale when the crop is shrunk a lot,
which keeps a thumbnail of a 12-megapixel phone photo cheap.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image

from app.core.errors import NotFoundError
from ml.types import RGBImage

THUMBNAIL_PX = 160
"""Longest side of a registration-photo thumbnail."""
FACE_CROP_PX = 160
"""Longest side of a face crop of a session photo."""
THUMBNAIL_CONTEXT = 1.8
"""Side of the square cut, in face-box sides: the head with some hair and chin."""
FACE_CROP_CONTEXT = 1.4
THUMBNAIL_JPEG_QUALITY = 85

Box = tuple[float, float, float, float]


def face_square(box: Box, context: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A square of ``context`` face-box sides around the face, clipped to the photo."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1, 1.0) * context
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = max(0, math.floor(cx - side / 2))
    top = max(0, math.floor(cy - side / 2))
    right = min(width, math.ceil(cx + side / 2))
    bottom = min(height, math.ceil(cy + side / 2))
    if right <= left or bottom <= top:  # a box outside the photo: show the whole photo
        return 0, 0, width, height
    return left, top, right, bottom


def face_crop_jpeg(data: bytes, box: Box | None, *, context: float, max_side: int) -> bytes:
    """JPEG of the square around ``box`` (the whole photo when ``None``), at most ``max_side`` px."""
    try:
        with warnings.catch_warnings():
            # Stored photos passed the service's own pixel limit when they were uploaded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                full_width, full_height = image.size
                region = (
                    face_square(box, context, full_width, full_height)
                    if box is not None
                    else (0, 0, full_width, full_height)
                )
                region_side = max(region[2] - region[0], region[3] - region[1])
                shrink = max_side / region_side
                if image.format == "JPEG" and shrink < 0.5:
                    # Decode at 1/2, 1/4 or 1/8 scale, never below the size we need.
                    image.draft(
                        "RGB",
                        (math.ceil(full_width * shrink), math.ceil(full_height * shrink)),
                    )
                scale_x = image.size[0] / full_width
                scale_y = image.size[1] / full_height
                left, top, right, bottom = region
                crop = image.convert("RGB").crop(
                    (
                        math.floor(left * scale_x),
                        math.floor(top * scale_y),
                        max(math.floor(left * scale_x) + 1, math.ceil(right * scale_x)),
                        max(math.floor(top * scale_y) + 1, math.ceil(bottom * scale_y)),
                    )
                )
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        # Only a damaged object in the store gets here; the client can do nothing about it.
        raise NotFoundError(f"the stored photo is unreadable ({error})") from error
    crop.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=THUMBNAIL_JPEG_QUALITY)
    return buffer.getvalue()


def session_face_jpeg(data: bytes, box: Box) -> bytes:
    """The crop of one face of a stored session photo (served, and put in a student's export)."""
    return face_crop_jpeg(data, box, context=FACE_CROP_CONTEXT, max_side=FACE_CROP_PX)


def face_crop_of_image(image: RGBImage, box: Box, *, context: float, max_side: int) -> bytes:
    """:func:`face_crop_jpeg` of a decoded photo (a face of a photo being stored)."""
    height, width = image.shape[:2]
    left, top, right, bottom = face_square(box, context, width, height)
    crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    crop.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=THUMBNAIL_JPEG_QUALITY)
    return buffer.getvalue()
