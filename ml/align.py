"""Face crops for the embedder: 5-point similarity alignment and the MTCNN-style margin crop.

Pure functions, no state. Both produce a ``size x size`` RGB crop from an image and a detected face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import cv2
import numpy as np
import numpy.typing as npt

from ml.types import DetectedFace, RGBImage, check_rgb_image

Alignment = Literal["similarity", "margin"]
"""How a face is cut out: ``similarity`` warps the 5 landmarks onto a template, ``margin`` crops the box."""

ALIGNMENTS: tuple[Alignment, ...] = get_args(Alignment)

ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
"""The standard ArcFace 5-point template for a 112x112 crop (insightface), in ``LANDMARK_NAMES`` order."""

# The FaceNet CASIA-WebFace weights were trained on MTCNN crops: the detector's box plus a margin,
# resized to a square *without* keeping the aspect ratio. MTCNN boxes are ~1.33x taller than wide,
# so every training face is stretched horizontally, and the loose margin leaves forehead, hair and
# chin in view. The template therefore (1) fits rotation + uniform scale + translation to the
# ArcFace layout (a least-squares similarity, so the face is never sheared), then (2) stretches the
# result horizontally by a fixed factor, reproducing the training crops' geometry with the
# rotation and scale noise of box-based crops removed. The three scalars were chosen by a grid
# search on LFW View-2 folds 1-2 (facenet-pytorch MTCNN landmarks, crop only, cosine, threshold
# cross-validated between the two folds; no LFW data ships with them):
# - TEMPLATE_SCALE: side of the ArcFace layout as a fraction of the crop (1.0 = as in ArcFace 112);
#   without stretch 0.75 / 0.85 / 0.95 / 1.05 gave 97.6 / 98.5 / 97.8 / 98.3 %;
# - TEMPLATE_SHIFT_Y: downward shift of the layout, as a fraction of the crop side (negative: up,
#   more chin and neck in view; -0.035 to -0.075 are equivalent, -0.11 to -0.03 within 0.4 points);
# - TEMPLATE_STRETCH_X: horizontal stretch after the similarity: 1.0 / 1.15 / 1.2 / 1.25 / 1.33
#   gave d' 4.72 / 5.04 / 5.12 / 5.15 / 5.12 between same and different pairs (1.44: 4.89).
# On all 10 folds (crop + mirror averaged) this reaches 98.78 % with those landmarks, the same as the
# margin-32 crop (98.75 %); see the LFW numbers in docs/accuracy.md for the project's detector.
TEMPLATE_SCALE = 0.85
TEMPLATE_SHIFT_Y = -0.05
TEMPLATE_STRETCH_X = 1.25


@dataclass(frozen=True)
class FaceTemplate:
    """Where the 5 landmarks go in the crop: the ArcFace layout scaled, shifted and stretched."""

    scale: float = TEMPLATE_SCALE
    shift_y: float = TEMPLATE_SHIFT_Y
    stretch_x: float = TEMPLATE_STRETCH_X

    def __post_init__(self) -> None:
        if self.scale <= 0 or self.stretch_x <= 0:
            raise ValueError("template scale and stretch must be positive")

    def canonical_points(self, size: int = 160) -> npt.NDArray[np.float64]:
        """Target of the similarity fit ``(5, 2)``: the ArcFace layout before the stretch."""
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        relative = (ARCFACE_TEMPLATE_112 - 56.0) / 112.0 * self.scale
        relative = relative + np.array([0.5, 0.5 + self.shift_y])
        return np.asarray(relative * size, dtype=np.float64)

    def points(self, size: int = 160) -> npt.NDArray[np.float64]:
        """Where the landmarks of an ideal face land in the ``size`` crop ``(5, 2)``."""
        points = self.canonical_points(size)
        points[:, 0] = (points[:, 0] - size / 2) * self.stretch_x + size / 2
        return points

    def transform(self, landmarks: npt.ArrayLike, size: int = 160) -> npt.NDArray[np.float64]:
        """``2x3`` map from image to crop: similarity fit, then the horizontal stretch."""
        matrix = umeyama_similarity(landmarks, self.canonical_points(size))
        stretch = np.array(
            [[self.stretch_x, 0.0, (1.0 - self.stretch_x) * size / 2], [0.0, 1.0, 0.0]]
        )
        return np.asarray(stretch[:, :2] @ matrix + np.hstack([np.zeros((2, 2)), stretch[:, 2:]]))


DEFAULT_TEMPLATE = FaceTemplate()


def umeyama_similarity(source: npt.ArrayLike, target: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Least-squares similarity transform (rotation, uniform scale, translation) ``source -> target``.

    Closed form of Umeyama (1991); returns the ``2x3`` matrix ``M`` with ``target ~ M @ [x, y, 1]``.
    A reflection is never returned, even when it would fit better.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(
            f"expected two (N, 2) point sets with N >= 2, got {src.shape} and {dst.shape}"
        )
    src_mean = src.mean(axis=0)
    dst_mean = dst.mean(axis=0)
    src_centred = src - src_mean
    dst_centred = dst - dst_mean
    src_variance = float((src_centred**2).sum() / len(src))
    if not math.isfinite(src_variance) or src_variance <= 1e-12:
        raise ValueError("source points are degenerate (all equal or not finite)")
    covariance = dst_centred.T @ src_centred / len(src)
    u, singular_values, vt = np.linalg.svd(covariance)
    reflection_fix = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflection_fix[1] = -1.0
    rotation = u @ np.diag(reflection_fix) @ vt
    scale = float((singular_values * reflection_fix).sum() / src_variance)
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def warp_to_square(
    image: RGBImage,
    matrix: npt.NDArray[np.float64],
    size: int,
    border: int = cv2.BORDER_REPLICATE,
) -> RGBImage:
    """``cv2.warpAffine`` of ``image`` by the ``2x3`` affine ``matrix`` into a ``size`` square.

    Only the part of ``image`` that maps into the output is touched; when the transform shrinks it
    (a large face), that part is first reduced with area averaging, since bilinear warping alone
    would alias.
    """
    linear = matrix[:, :2]
    # The least-shrunk direction decides whether (and how much) to pre-reduce.
    scale = float(np.linalg.svd(linear, compute_uv=False).max())
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
    source_corners = corners @ inverse.T
    height, width = image.shape[:2]
    # Two pixels of slack so bilinear sampling at the crop's edge still reads real neighbours.
    x0 = int(np.clip(math.floor(source_corners[:, 0].min()) - 2, 0, width))
    y0 = int(np.clip(math.floor(source_corners[:, 1].min()) - 2, 0, height))
    x1 = int(np.clip(math.ceil(source_corners[:, 0].max()) + 2, 0, width))
    y1 = int(np.clip(math.ceil(source_corners[:, 1].max()) + 2, 0, height))
    if x1 - x0 < 1 or y1 - y0 < 1:
        # The face lies entirely outside the image: nothing to sample, keep the full image.
        x0, y0, x1, y1 = 0, 0, width, height
    region = image[y0:y1, x0:x1]
    # Translate so that region pixel (0, 0) is image pixel (x0, y0).
    region_matrix = matrix.copy()
    region_matrix[:, 2] = matrix[:, 2] + linear @ np.array([x0, y0], dtype=np.float64)
    if scale < 0.8:
        new_width = max(1, round(region.shape[1] * scale))
        new_height = max(1, round(region.shape[0] * scale))
        factor_x = new_width / region.shape[1]
        factor_y = new_height / region.shape[0]
        region = np.asarray(
            cv2.resize(region, (new_width, new_height), interpolation=cv2.INTER_AREA),
            dtype=np.uint8,
        )
        region_matrix[:, 0] /= factor_x
        region_matrix[:, 1] /= factor_y
    warped = cv2.warpAffine(
        np.ascontiguousarray(region),
        region_matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=border,
        borderValue=(0, 0, 0),
    )
    return np.asarray(warped, dtype=np.uint8)


def align_face(
    image: RGBImage,
    landmarks: npt.ArrayLike,
    size: int = 160,
    template: FaceTemplate | npt.ArrayLike = DEFAULT_TEMPLATE,
    border: int = cv2.BORDER_REPLICATE,
) -> RGBImage:
    """Warp ``image`` so the 5 ``landmarks`` ``(5, 2)`` land on ``template`` in a ``size`` square.

    ``template`` is a :class:`FaceTemplate` (similarity fit plus its stretch) or explicit target
    points ``(5, 2)`` in crop pixels (plain least-squares similarity, e.g. the ArcFace template).
    """
    check_rgb_image(image)
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected landmarks (5, 2), got {points.shape}")
    if isinstance(template, FaceTemplate):
        matrix = template.transform(points, size)
    else:
        target = np.asarray(template, dtype=np.float64)
        if target.shape != (5, 2):
            raise ValueError(f"expected template (5, 2), got {target.shape}")
        matrix = umeyama_similarity(points, target)
    return warp_to_square(image, matrix, size, border)


def margin_bounds(
    box: tuple[float, float, float, float], size: int = 160, margin: int = 32
) -> tuple[int, int, int, int]:
    """Integer ``(x1, y1, x2, y2)`` of ``box`` plus ``margin``, *not* clipped to any image.

    As in facenet-pytorch ``extract_face``: ``margin`` is in output pixels, so in the image the box
    grows by ``margin * box_side / (size - margin)`` in total on each axis, half on each side.
    """
    if not 0 <= margin < size:
        raise ValueError(f"margin must be in [0, size), got {margin}")
    x1, y1, x2, y2 = (float(v) for v in box)
    margin_x = margin * (x2 - x1) / (size - margin)
    margin_y = margin * (y2 - y1) / (size - margin)
    left = math.floor(x1 - margin_x / 2)
    top = math.floor(y1 - margin_y / 2)
    right = max(math.floor(x2 + margin_x / 2), left + 1)
    bottom = max(math.floor(y2 + margin_y / 2), top + 1)
    return left, top, right, bottom


def margin_box(
    box: tuple[float, float, float, float],
    image_shape: tuple[int, ...],
    size: int = 160,
    margin: int = 32,
) -> tuple[int, int, int, int]:
    """:func:`margin_bounds` clipped to the image, exactly as facenet-pytorch ``extract_face`` crops."""
    left, top, right, bottom = margin_bounds(box, size, margin)
    height, width = image_shape[:2]
    # A box outside the image or thinner than a pixel still yields a (degenerate) valid crop.
    left = min(max(left, 0), width - 1)
    top = min(max(top, 0), height - 1)
    right = max(min(right, width), left + 1)
    bottom = max(min(bottom, height), top + 1)
    return left, top, right, bottom


def margin_crop(
    image: RGBImage,
    box: tuple[float, float, float, float],
    size: int = 160,
    margin: int = 32,
) -> RGBImage:
    """facenet-pytorch / MTCNN-style crop: ``box`` plus ``margin`` (output pixels), resized to ``size``.

    The crop is resized to a square without keeping the aspect ratio, like the crops the FaceNet
    weights were trained on; parts of it outside the image repeat the image's edge pixels.
    """
    check_rgb_image(image)
    # Where the margin reaches past the photo (a tight registration crop, a face at the edge of a
    # group photo), pad with the edge pixels instead of clipping: clipping enlarges the face in the
    # crop, away from the scale the weights were trained on. Measured on the face-api.js cast
    # (150 px crops registered, bbt3 recognised): +0.05 to +0.15 raw cosine for every student.
    # Only the crop itself is padded, never the whole photo (a 20 MP copy per face).
    left, top, right, bottom = margin_bounds(box, size, margin)
    height, width = image.shape[:2]
    inner_left, inner_right = max(left, 0), min(right, width)
    inner_top, inner_bottom = max(top, 0), min(bottom, height)
    if inner_left >= inner_right or inner_top >= inner_bottom:
        # The box lies entirely outside the photo: the nearest edge pixel is all there is.
        inner_left = min(max(left, 0), width - 1)
        inner_top = min(max(top, 0), height - 1)
        inner_right, inner_bottom = inner_left + 1, inner_top + 1
        region = image[inner_top:inner_bottom, inner_left:inner_right]
    else:
        region = np.asarray(
            cv2.copyMakeBorder(
                image[inner_top:inner_bottom, inner_left:inner_right],
                inner_top - top,
                bottom - inner_bottom,
                inner_left - left,
                right - inner_right,
                cv2.BORDER_REPLICATE,
            ),
            dtype=np.uint8,
        )
    resized = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(resized, dtype=np.uint8)


def crop_face(
    image: RGBImage, face: DetectedFace, method: Alignment = "similarity", size: int = 160
) -> RGBImage:
    """Cut ``face`` out of ``image`` as a ``size x size`` RGB crop with ``method``."""
    if method == "similarity":
        return align_face(image, face.landmarks, size)
    if method == "margin":
        return margin_crop(image, face.box, size)
    raise ValueError(f"unknown alignment {method!r}, expected one of {ALIGNMENTS}")


def centre_crop(image: RGBImage, size: int = 160, fraction: float = 0.6) -> RGBImage:
    """The central square covering ``fraction`` of the shorter side, resized to ``size``.

    Fallback for images with no detection whose face is known to be centred (LFW).
    """
    check_rgb_image(image)
    height, width = image.shape[:2]
    side = max(1, round(min(height, width) * fraction))
    top = (height - side) // 2
    left = (width - side) // 2
    region = image[top : top + side, left : left + side]
    return np.asarray(
        cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
