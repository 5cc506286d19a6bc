"""Draws recognition results on a photo: a green box for a known student, red for unknown, grey
for a face too small to recognise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ml.types import RGBImage

if TYPE_CHECKING:
    from ml.pipeline import FaceMatch

KNOWN_COLOUR = (40, 180, 60)
UNKNOWN_COLOUR = (220, 40, 40)
TOO_SMALL_COLOUR = (150, 150, 150)


def annotate(
    image: RGBImage,
    faces: Sequence[FaceMatch],
    labels: Sequence[str],
    *,
    max_side: int | None = None,
) -> RGBImage:
    """A copy of ``image`` with a box and a label on every face (labels align with ``faces``),
    shrunk first so that its longer side is at most ``max_side`` pixels (drawing on the smaller
    copy is cheaper than drawing on the original and shrinking it)."""
    if len(labels) != len(faces):
        raise ValueError("one label per face")
    if max_side is not None and max_side < 1:
        raise ValueError("max_side must be positive")
    height, width = image.shape[:2]
    scale = 1.0
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        canvas = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.uint8, copy=False)
    else:
        canvas = np.ascontiguousarray(image.copy())
    height, width = canvas.shape[:2]
    # Scale strokes and text with the photo so labels stay legible on a 5000 px class photo.
    thickness = max(2, round(max(height, width) / 500))
    font_scale = max(0.5, max(height, width) / 1600)
    for match, label in zip(faces, labels, strict=True):
        colour = (
            KNOWN_COLOUR
            if match.student_id is not None
            else TOO_SMALL_COLOUR
            if match.too_small
            else UNKNOWN_COLOUR
        )
        x1, y1, x2, y2 = (round(v * scale) for v in match.face.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        if not label:
            continue
        (text_w, text_h), baseline = cv2.getTextSize(
            label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
        )
        top = y1 - text_h - baseline - 4
        if top < 0:  # no room above the box: put the label inside it
            top = y1
        cv2.rectangle(canvas, (x1, top), (x1 + text_w + 4, top + text_h + baseline + 4), colour, -1)
        cv2.putText(
            canvas,
            label,
            (x1 + 2, top + text_h + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 255),
            max(1, thickness // 2),
            cv2.LINE_AA,
        )
    return canvas
