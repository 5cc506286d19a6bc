"""Draws recognition results on a photo: a green box for a known student, red for unknown, grey
for a face too small to recognise, and each face's label where it stays inside the photo and
clear of the other labels (:func:`label_rectangles`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ml.types import RGBImage

if TYPE_CHECKING:
    from ml.pipeline import FaceMatch

KNOWN_COLOUR = (40, 180, 60)
UNKNOWN_COLOUR = (220, 40, 40)
TOO_SMALL_COLOUR = (150, 150, 150)

FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_PADDING = 3
"""Pixels between a label's text and the edge of its coloured background."""
ELLIPSIS = ".."
"""Marks a label cut to fit a photo narrower than it (Hershey fonts have no ellipsis glyph)."""


@dataclass(frozen=True)
class Rect:
    """A rectangle of pixels: ``x1 <= x < x2``, ``y1 <= y < y2``."""

    x1: int
    y1: int
    x2: int
    y2: int

    def overlaps(self, other: Rect) -> bool:
        return (
            self.x1 < other.x2 and other.x1 < self.x2 and self.y1 < other.y2 and other.y1 < self.y2
        )

    def inside(self, width: int, height: int) -> bool:
        return 0 <= self.x1 <= self.x2 <= width and 0 <= self.y1 <= self.y2 <= height


def label_rectangles(
    boxes: Sequence[tuple[float, float, float, float]],
    sizes: Sequence[tuple[int, int] | None],
    width: int,
    height: int,
) -> list[Rect | None]:
    """Where each face's label goes on a ``width`` x ``height`` image: ``boxes`` are the faces
    (``x1, y1, x2, y2``), ``sizes`` each label's ``(w, h)`` (``None``: no label).

    A label goes above its face where it fits, else below, else inside the top of the box, moved
    sideways to stay inside the image. Labels are placed top to bottom; one that would cover a
    label already placed moves to the nearest free height (or, failing that, sideways), preferring
    not to cover other faces. Every rectangle is inside the image; two overlap only where the
    image has no room left for one of them. A label wider or taller than the image is cut to it
    (the caller makes its text fit: :func:`annotate` shortens it).
    """
    if len(sizes) != len(boxes):
        raise ValueError("one size per box")
    faces = np.array([[round(v) for v in box] for box in boxes], dtype=np.int64).reshape(-1, 4)
    placed = np.empty((0, 4), dtype=np.int64)
    result: list[Rect | None] = [None] * len(boxes)
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    for i in order:
        size = sizes[i]
        if size is None:
            continue
        w, h = min(max(size[0], 1), width), min(max(size[1], 1), height)
        others = np.delete(faces, i, axis=0)
        x1, y1, _, y2 = (int(v) for v in faces[i])
        x = _clamp(x1, 0, width - w)
        anchors = _anchors(y1, y2, h, height)
        spot = _nearest_free(x, w, h, anchors, placed, others, height)
        if spot is None:  # no free height in this column: try beside the labels in the way
            spot, x = _beside(x, w, h, anchors, placed, others, width, height)
        y = spot[1] if spot is not None else anchors[0][0]  # the image is full: keep the place
        rect = Rect(x, y, x + w, y + h)
        result[i] = rect
        placed = np.vstack([placed, [[rect.x1, rect.y1, rect.x2, rect.y2]]])
    return result


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def _beside(
    x: int,
    w: int,
    h: int,
    anchors: list[tuple[int, int]],
    placed: np.ndarray,
    faces: np.ndarray,
    width: int,
    height: int,
) -> tuple[tuple[int, int] | None, int]:
    """The best free place in a column just beside a label already placed (the cost counts the
    sideways move too), and its column; ``(None, x)`` when there is none."""
    best: tuple[int, int] | None = None
    best_x = x
    columns = {_clamp(int(v), 0, width - w) for p in placed for v in (p[2], p[0] - w)}
    for column in sorted(columns):
        found = _nearest_free(column, w, h, anchors, placed, faces, height)
        if found is None:
            continue
        cost = found[0] + abs(column - x)
        if best is None or cost < best[0]:
            best, best_x = (cost, found[1]), column
    return best, best_x


def _anchors(y1: int, y2: int, h: int, height: int) -> list[tuple[int, int]]:
    """The label's preferred tops, best first, each with its penalty: above the box where it
    fits, below it where it fits, inside its top."""
    anchors = []
    if y1 - h >= 0:
        anchors.append(y1 - h)
    if y2 + h <= height:
        anchors.append(y2)
    anchors.append(_clamp(y1, 0, height - h))
    return [(y, rank * h) for rank, y in enumerate(anchors)]


def _overlapping(candidates: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """For each candidate ``(m, 4)``, how many of ``rects`` ``(k, 4)`` it overlaps."""
    if not len(rects):
        return np.zeros(len(candidates), dtype=np.int64)
    c, r = candidates[:, None, :], rects[None, :, :]
    hits = (
        (c[..., 0] < r[..., 2])
        & (r[..., 0] < c[..., 2])
        & (c[..., 1] < r[..., 3])
        & (r[..., 1] < c[..., 3])
    )
    return np.asarray(hits.sum(axis=1))


def _nearest_free(
    x: int,
    w: int,
    h: int,
    anchors: list[tuple[int, int]],
    placed: np.ndarray,
    faces: np.ndarray,
    height: int,
) -> tuple[int, int] | None:
    """``(cost, top)`` of the best free place for a ``w`` x ``h`` label at column ``x``: an
    anchor, or just above or below a label in the way; ``None`` when every one is taken."""
    tops = {y for y, _ in anchors}
    for p in placed:
        if p[0] < x + w and x < p[2]:
            tops.update((_clamp(int(p[3]), 0, height - h), _clamp(int(p[1]) - h, 0, height - h)))
    ys = np.array(sorted(tops), dtype=np.int64)
    candidates = np.stack([np.full_like(ys, x), ys, np.full_like(ys, x + w), ys + h], axis=1)
    free = _overlapping(candidates, placed) == 0
    if not free.any():
        return None
    # Moving away from a preferred place costs its distance; covering another face costs more
    # than moving a label's height.
    distance = np.min(
        np.stack([np.abs(ys - y) + penalty for y, penalty in anchors]), axis=0
    ) + 2 * h * _overlapping(candidates, faces)
    cost = np.where(free, distance, np.iinfo(np.int64).max)
    best = int(np.argmin(cost))
    return int(cost[best]), int(ys[best])


def _fitted(label: str, max_width: int, font_scale: float, thickness: int) -> str:
    """``label``, shortened with :data:`ELLIPSIS` where it is wider than ``max_width``."""

    def text_width(text: str) -> int:
        return int(cv2.getTextSize(text, FONT, font_scale, thickness)[0][0])

    if text_width(label) <= max_width:
        return label
    for end in range(len(label) - 1, 0, -1):
        text = label[:end].rstrip() + ELLIPSIS
        if text_width(text) <= max_width:
            return text
    return label[:1]


@dataclass(frozen=True)
class Label:
    """A face's label as drawn: its text (shortened to fit the photo) and where it goes."""

    text: str
    rect: Rect
    text_height: int
    """From the text's baseline up (where :func:`annotate` puts the baseline)."""


def layout_labels(
    boxes: Sequence[tuple[float, float, float, float]],
    labels: Sequence[str],
    width: int,
    height: int,
) -> list[Label | None]:
    """Every face's label on a ``width`` x ``height`` photo (``None`` for an empty label), in the
    font :func:`annotate` uses for a photo of that size, placed by :func:`label_rectangles`."""
    font_scale, text_thickness = _font(width, height)
    texts = [
        _fitted(label, width - 2 * LABEL_PADDING, font_scale, text_thickness) if label else ""
        for label in labels
    ]
    metrics = [
        cv2.getTextSize(text, FONT, font_scale, text_thickness) if text else None for text in texts
    ]
    sizes = [
        (m[0][0] + 2 * LABEL_PADDING, m[0][1] + m[1] + 2 * LABEL_PADDING) if m else None
        for m in metrics
    ]
    rects = label_rectangles(boxes, sizes, width, height)
    return [
        Label(text, rect, int(metric[0][1])) if rect is not None and metric is not None else None
        for text, metric, rect in zip(texts, metrics, rects, strict=True)
    ]


def _stroke(width: int, height: int) -> int:
    return max(2, round(max(height, width) / 500))


def _font(width: int, height: int) -> tuple[float, int]:
    """The label font's scale and stroke: scaled with the photo so labels stay legible on a
    5000 px class photo, never under half the font's size."""
    return max(0.5, max(height, width) / 1600), max(1, _stroke(width, height) // 2)


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
    thickness = _stroke(width, height)
    font_scale, text_thickness = _font(width, height)
    boxes = [
        (x1 * scale, y1 * scale, x2 * scale, y2 * scale)
        for x1, y1, x2, y2 in (match.face.box for match in faces)
    ]
    colours = [
        KNOWN_COLOUR
        if match.student_id is not None
        else TOO_SMALL_COLOUR
        if match.too_small
        else UNKNOWN_COLOUR
        for match in faces
    ]
    for box, colour in zip(boxes, colours, strict=True):
        x1, y1, x2, y2 = (round(v) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
    # Labels after every box: no box line crosses a label.
    for label, colour in zip(layout_labels(boxes, labels, width, height), colours, strict=True):
        if label is None:
            continue
        rect = label.rect
        cv2.rectangle(canvas, (rect.x1, rect.y1), (rect.x2 - 1, rect.y2 - 1), colour, -1)
        cv2.putText(
            canvas,
            label.text,
            (rect.x1 + LABEL_PADDING, rect.y1 + LABEL_PADDING + label.text_height),
            FONT,
            font_scale,
            (255, 255, 255),
            text_thickness,
            cv2.LINE_AA,
        )
    return canvas
