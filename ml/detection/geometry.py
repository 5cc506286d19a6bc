"""Box and landmark helpers shared by the detector backends (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ml.types import DetectedFace

FloatArray = npt.NDArray[np.float32]
Box = tuple[float, float, float, float]


def box_overlaps(
    first: npt.ArrayLike, second: npt.ArrayLike, *, mode: str = "union"
) -> npt.NDArray[np.floating]:
    """``(N, M)`` overlap of every box of ``first`` ``(N, 4)`` with every box of ``second``
    ``(M, 4)``, boxes ``x1, y1, x2, y2``: intersection over union (``mode="union"``, IoU) or over
    the smaller box (``mode="min"``, which is 1 for a small box lying inside a big one).

    Computed in the inputs' float type (float32 boxes give float32 arithmetic, as MTCNN's
    torchvision-compatible NMS needs); a pair whose union (or smaller box) is empty overlaps 0.
    """
    if mode not in ("union", "min"):
        raise ValueError(f"unknown overlap mode {mode!r}")
    a = np.atleast_2d(np.asarray(first))
    b = np.atleast_2d(np.asarray(second))
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    a, b = a.astype(dtype, copy=False)[:, None, :4], b.astype(dtype, copy=False)[None, :, :4]
    zero = dtype.type(0.0)
    inter_w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), zero)
    inter_h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), zero)
    inter = inter_w * inter_h
    area_a = np.maximum(a[..., 2] - a[..., 0], zero) * np.maximum(a[..., 3] - a[..., 1], zero)
    area_b = np.maximum(b[..., 2] - b[..., 0], zero) * np.maximum(b[..., 3] - b[..., 1], zero)
    denominator = np.minimum(area_a, area_b) if mode == "min" else area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = inter / denominator
    result: npt.NDArray[np.floating] = np.where(denominator > 0, overlap, zero)
    return result


def box_iou(first: Sequence[float], second: Sequence[float]) -> float:
    """Intersection over union of two boxes ``x1, y1, x2, y2`` (0 when both are empty)."""
    return float(box_overlaps(np.asarray(first, np.float64), np.asarray(second, np.float64))[0, 0])


def nms(
    boxes: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    threshold: float,
    *,
    mode: str = "union",
) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first.

    ``mode="union"`` is the usual IoU; ``mode="min"`` divides the overlap by the smaller box, which
    also removes a small box lying inside a bigger one (MTCNN's last stage uses it). A box is
    suppressed when its overlap with a kept box is above ``threshold``.
    """
    if mode not in ("union", "min"):
        raise ValueError(f"unknown NMS mode {mode!r}")
    if len(boxes) == 0:
        return np.empty(0, dtype=np.intp)
    corners = np.asarray(boxes, dtype=np.float64)[:, :4]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        overlap = box_overlaps(corners[best], corners[rest], mode=mode)[0]
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.intp)


@dataclass(frozen=True)
class LandmarkGeometry:
    """Plausibility limits for five face landmarks relative to their box.

    Real faces from MTCNN/YOLO have the eye midpoint above the nose and the nose above the mouth
    midpoint (in image coordinates: faces in class photos are upright, and neither detector is
    trained for heads rolled past ~60 degrees). The distance between the eyes is about 0.3-0.5 of
    the box side for frontal faces and drops towards ~0.1 for strong profiles; false boxes on
    hands, bags and textures tend to put the points in a heap or in the wrong order.
    """

    min_eye_distance: float = 0.12
    """Smallest eye distance as a fraction of the box side (``sqrt(w*h)``)."""
    max_eye_distance: float = 0.75
    """Largest eye distance as a fraction of the box side."""
    inside_margin: float = 0.1
    """Landmarks may lie this fraction of the box side outside the box."""


DEFAULT_GEOMETRY = LandmarkGeometry()


def landmarks_plausible(
    box: tuple[float, float, float, float],
    landmarks: npt.NDArray[np.floating],
    geometry: LandmarkGeometry = DEFAULT_GEOMETRY,
) -> bool:
    """True when ``landmarks`` (5, 2) look like a face inside ``box`` (see :class:`LandmarkGeometry`)."""
    x1, y1, x2, y2 = box
    side = float(np.sqrt(max(x2 - x1, 0.0) * max(y2 - y1, 0.0)))
    if side <= 0 or landmarks.shape != (5, 2) or not np.all(np.isfinite(landmarks)):
        return False
    margin = geometry.inside_margin * side
    xs, ys = landmarks[:, 0], landmarks[:, 1]
    if xs.min() < x1 - margin or xs.max() > x2 + margin:
        return False
    if ys.min() < y1 - margin or ys.max() > y2 + margin:
        return False
    left_eye, right_eye, nose, mouth_left, mouth_right = landmarks.astype(np.float64)
    eye_mid_y = (left_eye[1] + right_eye[1]) / 2
    mouth_mid_y = (mouth_left[1] + mouth_right[1]) / 2
    if not eye_mid_y < nose[1] < mouth_mid_y:
        return False
    eye_distance = float(np.hypot(*(right_eye - left_eye))) / side
    return geometry.min_eye_distance <= eye_distance <= geometry.max_eye_distance


def clip_box(
    box: npt.NDArray[np.floating], width: int, height: int
) -> tuple[float, float, float, float]:
    """``box`` (x1, y1, x2, y2) clipped to the image, as Python floats."""
    return (
        float(np.clip(box[0], 0, width)),
        float(np.clip(box[1], 0, height)),
        float(np.clip(box[2], 0, width)),
        float(np.clip(box[3], 0, height)),
    )


def to_faces(
    boxes: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    landmarks: npt.NDArray[np.floating],
    *,
    width: int,
    height: int,
    min_score: float,
    geometry: LandmarkGeometry | None,
) -> list[DetectedFace]:
    """Filter raw detections by score and landmark geometry; faces sorted by descending score.

    ``geometry=None`` keeps every box above ``min_score``. Geometry is checked on the unclipped box
    so a face cut by the image border keeps its landmarks "inside".
    """
    faces: list[DetectedFace] = []
    for box, score, points in zip(boxes, scores, landmarks, strict=True):
        if float(score) < min_score:
            continue
        raw_box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        if geometry is not None and not landmarks_plausible(raw_box, points, geometry):
            continue
        clipped = clip_box(box, width, height)
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            continue
        faces.append(
            DetectedFace(
                box=clipped,
                score=float(score),
                landmarks=np.ascontiguousarray(points, dtype=np.float32).reshape(5, 2),
            )
        )
    faces.sort(key=lambda face: face.score, reverse=True)
    return faces
