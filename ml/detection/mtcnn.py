"""MTCNN face detector: facenet-pytorch's P/R/O-Nets on ONNX Runtime, with a cheaper pyramid for big photos.

facenet-pytorch's ``detect_face`` resamples the whole float image with ``interpolate(mode="area")``
for every pyramid level and crops/resizes every candidate box with a separate torch call; on a
multi-megapixel photo those dominate the run time. This module keeps the three networks and the
stage logic (thresholds, NMS, box regression) but

* sizes the pyramid from the smallest face worth finding in *original* pixels, which may grow with
  the photo (``min_face_fraction`` of the long side): a 5000 px class photo whose faces are >= 50 px
  starts P-Net at 12/50 of full resolution instead of 12/20, i.e. ~6x fewer pixels;
* resizes pyramid levels and R/O-Net crops with OpenCV on ``uint8`` (crops always come from the
  full-resolution image, so small faces keep their detail for R/O-Net) and runs the networks on
  onnxruntime (exported by ``python -m ml.export``; facenet-pytorch's code is never imported);
* pads crops that leave the image with zeros (as the original MTCNN does) instead of stretching the
  clamped part, and searches the smallest pyramid levels with a black border so that a face
  filling a tight crop (150 px registration photos) is found;
* drops boxes below ``min_score``, boxes whose landmarks do not look like a face, and boxes that
  O-Net no longer believes in when shown the final box (``verify_score``): that removes the boxes
  on hands, bags and fabric that stock MTCNN reports, at the price of very blurred faces under
  ~15 px of real detail.

Measured on shared/faces/groups (``python -m ml.eval detection``): precision 1.00 / recall 1.00 on
the 80 hand-annotated faces, exact count on the 7 exactly counted photos, ~2x less CPU than stock
facenet-pytorch on 1000 px photos and ~4x less on a 5334 px photo (measured 2026-11-22 with the since-deleted ``bench/bench_detection.py``; ``python -m bench``'s detection and speed sections measure it now).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from ml.detection.geometry import DEFAULT_GEOMETRY, LandmarkGeometry, box_overlaps, nms, to_faces
from ml.onnx_session import create_session
from ml.types import DetectedFace, RGBImage, check_rgb_image
from ml.weights.cache import default_cache_dir
from ml.weights.onnx_models import (
    MTCNN_INPUT,
    MTCNN_OUTPUTS,
    ONET_FILENAME,
    PNET_FILENAME,
    RNET_FILENAME,
    load_onnx_model,
)

logger = logging.getLogger(__name__)

PNET_CELL = 12
"""P-Net sees 12x12 windows: a face of ``s`` pixels is found at pyramid scale ``12 / s``."""
PNET_STRIDE = 2
STOCK_SCALE_FACTOR = 0.709
"""facenet-pytorch's pyramid step (each level has half the pixels of the previous one)."""
BORDER_LEVEL_SIDE = 4 * PNET_CELL
"""Pyramid levels whose short side is below this get a black border before P-Net."""
BORDER_FRACTION = 0.25
"""Border width on each side, as a fraction of the level's short side."""
MAX_OUTSIDE_TO_VERIFY = 0.15
"""Final boxes with more of their area outside the image than this skip the O-Net re-check."""
DEFAULT_MIN_SCORE = 0.8
"""Final O-Net score a face must reach by default (removes blurred and background boxes)."""
CROP_BATCH = 1024
"""R/O-Net inputs per forward call: bounds memory on photos with thousands of P-Net candidates."""

FloatArray = npt.NDArray[np.float32]


class MtcnnNets(Protocol):
    """MTCNN's three networks on float32 NCHW batches in [-1, 1] (see ``_normalise``), numpy in and out."""

    def pnet(self, images: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(1, 3, H, W) -> box regression (1, 4, h, w), face probabilities (1, 2, h, w)."""
        ...

    def rnet(self, crops: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(N, 3, 24, 24) -> box regression (N, 4), probabilities (N, 2)."""
        ...

    def onet(self, crops: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(N, 3, 48, 48) -> box regression (N, 4), landmarks (N, 10: x1..x5, y1..y5), probabilities (N, 2)."""
        ...


class OnnxMtcnnNets:
    """The three networks exported to ONNX (``python -m ml.export``), one onnxruntime session each."""

    def __init__(
        self, cache_dir: Path | None = None, *, intra_op_threads: int | None = None
    ) -> None:
        directory = cache_dir if cache_dir is not None else default_cache_dir()
        self._sessions = {
            filename: create_session(
                load_onnx_model(directory, filename), intra_op_threads=intra_op_threads
            )
            for filename in (PNET_FILENAME, RNET_FILENAME, ONET_FILENAME)
        }

    def _run(self, filename: str, batch: FloatArray) -> list[FloatArray]:
        outputs: list[FloatArray] = self._sessions[filename].run(
            list(MTCNN_OUTPUTS[filename]), {MTCNN_INPUT: batch}
        )
        return outputs

    def pnet(self, images: FloatArray) -> tuple[FloatArray, FloatArray]:
        regression, probabilities = self._run(PNET_FILENAME, images)
        return regression, probabilities

    def rnet(self, crops: FloatArray) -> tuple[FloatArray, FloatArray]:
        regression, probabilities = self._run(RNET_FILENAME, crops)
        return regression, probabilities

    def onet(self, crops: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        regression, landmarks, probabilities = self._run(ONET_FILENAME, crops)
        return regression, landmarks, probabilities


class MTCNNFaceDetector:
    """Multi-task cascaded CNN face detector (Zhang et al. 2016), facenet-pytorch weights on onnxruntime.

    Thread-safe: ``detect`` serialises model use with a lock (the service calls it from a pool).
    """

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        min_score: float = DEFAULT_MIN_SCORE,
        *,
        nets: MtcnnNets | None = None,
        model_cache_dir: Path | None = None,
        intra_op_threads: int | None = None,
        min_face_fraction: float = 0.01,
        scale_factor: float = STOCK_SCALE_FACTOR,
        geometry: LandmarkGeometry | None = DEFAULT_GEOMETRY,
        verify_score: float | None = 0.9,
        halved_crops: bool = True,
    ) -> None:
        """
        Args:
            min_face_size: smallest face (box side, original pixels) searched for in any photo.
            thresholds: P-, R- and O-Net score thresholds (the MTCNN defaults).
            min_score: final O-Net score a face must reach; removes blurred/background boxes.
            nets: the three networks; ``None``: :class:`OnnxMtcnnNets` from ``model_cache_dir``
                with ``intra_op_threads``.
            min_face_fraction: the smallest face searched for is at least this fraction of the
                photo's long side (0 disables it); only matters above ``min_face_size / fraction``
                pixels, i.e. 2000 px with the defaults.
            scale_factor: ratio between pyramid levels (larger means more levels, slower).
            geometry: landmark plausibility limits, ``None`` to keep every box.
            verify_score: O-Net must score the final box again at least this high (see
                :meth:`_verify`); ``None`` skips the check.
            halved_crops: cut R- and O-Net's crops of big boxes from halved copies of the photo
                (:class:`HalvedCopies`); ``False`` cuts every crop from the photo itself.
        """
        if min_face_size < 1:
            raise ValueError("min_face_size must be >= 1")
        if len(thresholds) != 3:
            raise ValueError("thresholds must have three values (P-, R-, O-Net)")
        if not 0.1 <= scale_factor < 1.0:
            raise ValueError("scale_factor must be in [0.1, 1)")
        self.min_face_size = int(min_face_size)
        self.thresholds = (float(thresholds[0]), float(thresholds[1]), float(thresholds[2]))
        self.min_score = float(min_score)
        self.min_face_fraction = float(min_face_fraction)
        self.scale_factor = float(scale_factor)
        self.geometry = geometry
        self.verify_score = verify_score
        self.halved_crops = halved_crops
        self._nets = (
            nets
            if nets is not None
            else OnnxMtcnnNets(model_cache_dir, intra_op_threads=intra_op_threads)
        )
        self._lock = threading.Lock()

    def smallest_face(self, height: int, width: int) -> float:
        """Smallest face side (pixels) searched for in a ``height`` x ``width`` photo."""
        return max(float(self.min_face_size), self.min_face_fraction * max(height, width))

    def pyramid_scales(self, height: int, width: int) -> list[float]:
        """P-Net scales: from ``12 / smallest_face`` down to faces ~1.5x the photo's short side.

        The last levels are so small that they are searched with a black border (see
        :data:`BORDER_FRACTION`), which lets P-Net see a face that fills or overflows the frame
        (tight registration crops), something the stock pyramid never finds.
        """
        scale = PNET_CELL / self.smallest_face(height, width)
        scales: list[float] = []
        while min(height, width) * scale * (1 + 2 * BORDER_FRACTION) >= PNET_CELL:
            scales.append(scale)
            scale *= self.scale_factor
        return scales

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        """Faces sorted by descending score; boxes clipped to the image, landmarks as predicted."""
        image = np.ascontiguousarray(check_rgb_image(image))
        height, width = image.shape[:2]
        copies = HalvedCopies(image) if self.halved_crops else None
        with self._lock:
            boxes, scores, landmarks = self._detect_raw(image, copies)
            keep = scores >= self.min_score
            boxes, scores, landmarks = boxes[keep], scores[keep], landmarks[keep]
            if self.verify_score is not None and len(boxes):
                keep = self._verify(image, boxes, copies) >= self.verify_score
                boxes, scores, landmarks = boxes[keep], scores[keep], landmarks[keep]
        return to_faces(
            boxes,
            scores,
            landmarks,
            width=width,
            height=height,
            min_score=self.min_score,
            geometry=self.geometry,
        )

    # -- stages -----------------------------------------------------------------------------------

    def _detect_raw(
        self, image: RGBImage, copies: HalvedCopies | None = None
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """All three stages; boxes (N, 4) in pixel-edge coordinates, scores (N,), landmarks (N, 5, 2)."""
        empty = (
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 5, 2), np.float32),
        )
        boxes = self._proposals(image)
        if len(boxes) == 0:
            return empty
        boxes = self._refine(image, boxes, copies)
        if len(boxes) == 0:
            return empty
        return self._output(image, boxes, copies)

    @staticmethod
    def _in_chunks(
        net: Callable[[FloatArray], tuple[FloatArray, ...]], batch: FloatArray
    ) -> tuple[FloatArray, ...]:
        outputs = [
            net(batch[start : start + CROP_BATCH]) for start in range(0, len(batch), CROP_BATCH)
        ]
        return tuple(np.concatenate(parts, axis=0) for parts in zip(*outputs, strict=True))

    def _proposals(self, image: RGBImage) -> FloatArray:
        """P-Net over the pyramid: square candidate boxes (N, 5) ``x1, y1, x2, y2, score``."""
        height, width = image.shape[:2]
        per_scale: list[FloatArray] = []
        levels: list[RGBImage] = []
        for scale in self.pyramid_scales(height, width):
            # Same level size as facenet-pytorch (int(h * scale + 1)) so the box maths matches.
            level_h, level_w = int(height * scale + 1), int(width * scale + 1)
            # Resample from the smallest earlier level at least twice as large: on a big photo
            # only the first levels read the full-resolution image, and a >= 2x area average
            # keeps the levels as sharp as resizing the original (a chain of 1.41x steps blurs
            # them and measurably changes what P-Net finds).
            source = image
            for earlier in levels:
                if earlier.shape[1] >= 2 * level_w:
                    source = earlier
            interpolation = cv2.INTER_AREA if level_w < source.shape[1] else cv2.INTER_LINEAR
            level = np.asarray(
                cv2.resize(source, (level_w, level_h), interpolation=interpolation), np.uint8
            )
            levels.append(level)
            border = 0
            if min(level_h, level_w) < BORDER_LEVEL_SIDE:
                # Black, like the zero padding of R/O-Net crops that leave the image.
                border = max(1, round(BORDER_FRACTION * min(level_h, level_w)))
                level = np.asarray(
                    cv2.copyMakeBorder(
                        level, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0)
                    ),
                    np.uint8,
                )
            regression, probabilities = self._nets.pnet(_normalise(level[None]))
            candidates = _pnet_boxes(
                probabilities[0, 1],
                regression[0],
                scale,
                self.thresholds[0],
                border,
            )
            if len(candidates):
                candidates = candidates[_fast_nms(candidates, 0.5)]
                per_scale.append(candidates)
        if not per_scale:
            return np.zeros((0, 5), np.float32)
        candidates = np.concatenate(per_scale)
        candidates = candidates[_fast_nms(candidates, 0.7)]
        side_w = candidates[:, 2] - candidates[:, 0]
        side_h = candidates[:, 3] - candidates[:, 1]
        regressed = candidates[:, :4] + candidates[:, 5:9] * np.stack(
            [side_w, side_h, side_w, side_h], axis=1
        )
        return np.concatenate([_square(regressed), candidates[:, 4:5]], axis=1).astype(np.float32)

    def _refine(
        self, image: RGBImage, boxes: FloatArray, copies: HalvedCopies | None = None
    ) -> FloatArray:
        """R-Net: rescore and regress the P-Net candidates; square boxes (N, 5)."""
        logger.debug("MTCNN: %d P-Net candidates", len(boxes))
        regression, probabilities = self._in_chunks(
            self._nets.rnet, _crops(image, boxes, 24, copies)
        )
        scores = probabilities[:, 1]
        keep = scores > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], scores[keep, None]], axis=1)
        offsets = regression[keep]
        picked = _fast_nms(boxes, 0.7)
        boxes, offsets = boxes[picked], offsets[picked]
        return np.concatenate([_square(_regress(boxes, offsets)), boxes[:, 4:5]], axis=1).astype(
            np.float32
        )

    def _verify(
        self, image: RGBImage, boxes: FloatArray, copies: HalvedCopies | None = None
    ) -> FloatArray:
        """O-Net's face probability for the final (regressed) boxes, squared as in the cascade.

        The cascade scores the box *before* O-Net's own regression; scoring the result again is
        a cheap second opinion (a handful of 48 px crops). On the group photos every annotated
        face scored >= 0.96 again while boxes on hands, fabric, zips and foliage that had passed
        with 0.8-0.98 dropped to 0.1-0.85.
        """
        one_based = boxes.copy()
        one_based[:, :2] += 1
        squares = _square(one_based)
        _, _, probabilities = self._in_chunks(self._nets.onet, _crops(image, squares, 48, copies))
        scores: FloatArray = probabilities[:, 1].copy()
        # A face filling a tight crop (registration photos) regresses to a box well outside the
        # image; its square crop is then largely black and O-Net doubts it. Such boxes are kept
        # on the cascade's word.
        height, width = image.shape[:2]
        side = np.maximum(squares[:, 2] - squares[:, 0], 1.0)
        inside_w = np.clip(np.minimum(squares[:, 2], width) - np.maximum(squares[:, 0], 0), 0, None)
        inside_h = np.clip(
            np.minimum(squares[:, 3], height) - np.maximum(squares[:, 1], 0), 0, None
        )
        outside = 1.0 - inside_w * inside_h / (side * side)
        scores[outside > MAX_OUTSIDE_TO_VERIFY] = 1.0
        return scores

    def _output(
        self, image: RGBImage, boxes: FloatArray, copies: HalvedCopies | None = None
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """O-Net: final boxes, scores and landmarks."""
        logger.debug("MTCNN: %d R-Net candidates", len(boxes))
        regression, points, probabilities = self._in_chunks(
            self._nets.onet, _crops(image, boxes, 48, copies)
        )
        scores = probabilities[:, 1]
        keep = scores > self.thresholds[2]
        boxes, scores = boxes[keep, :4], scores[keep]
        offsets, points_np = regression[keep], points[keep]
        # Boxes are in MTCNN's 1-based inclusive pixel coordinates, landmarks relative to them.
        box_w = boxes[:, 2] - boxes[:, 0] + 1
        box_h = boxes[:, 3] - boxes[:, 1] + 1
        landmark_x = box_w[:, None] * points_np[:, :5] + boxes[:, 0:1] - 1
        landmark_y = box_h[:, None] * points_np[:, 5:] + boxes[:, 1:2] - 1
        landmarks = np.stack([landmark_x, landmark_y], axis=2)
        boxes = _regress(boxes, offsets)
        picked = nms(boxes, scores, 0.7, mode="min")
        boxes, scores, landmarks = boxes[picked], scores[picked], landmarks[picked]
        # 1-based inclusive [a, b] is [a - 1, b] in pixel-edge coordinates.
        edges = boxes.copy()
        edges[:, :2] -= 1
        return edges.astype(np.float32), scores.astype(np.float32), landmarks.astype(np.float32)


NMS_BLOCK = 64
"""Boxes whose overlaps :func:`_fast_nms` computes in one vectorised step. Smaller blocks skip more
boxes already suppressed: 64 took 21 ms, 256 27 ms, 2048 65 ms on 1,301 random boxes (loaded 2 cores)."""


def _fast_nms(candidates: FloatArray, threshold: float) -> npt.NDArray[np.intp]:
    """IoU NMS of rows ``x1, y1, x2, y2, score, ...``: indices kept, best score first.

    The same decisions as torchvision's ``nms`` kernel, which this replaced: float32 arithmetic,
    areas without the +1 of MTCNN's inclusive boxes, a stable descending sort of the scores, and a
    box suppressed when its IoU with a kept box is strictly above ``threshold``. P-Net yields
    thousands of boxes on a crowded photo, often most of them kept, so the overlaps of a block of
    :data:`NMS_BLOCK` boxes with every box still in play are computed at once, and the greedy scan
    only marks booleans (a loop over kept boxes, each with a pass over all boxes, took ~190 ms for
    the 1,301 boxes of retinaface__img3 on loaded cores; this ~20-50 ms, torchvision's 7-16 ms).
    """
    if len(candidates) == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.argsort(-candidates[:, 4].astype(np.float32), kind="stable")
    boxes = np.ascontiguousarray(candidates[order, :4], dtype=np.float32)
    limit = np.float32(threshold)
    count = len(boxes)
    suppressed = np.zeros(count, dtype=bool)
    keep: list[int] = []
    for start in range(0, count, NMS_BLOCK):
        stop = min(start + NMS_BLOCK, count)
        rows = start + np.flatnonzero(~suppressed[start:stop])
        if rows.size == 0:
            continue
        # Later boxes not yet suppressed (earlier ones are decided already).
        columns = start + np.flatnonzero(~suppressed[start:])
        # float32, as torchvision; a degenerate (zero-area) pair overlaps 0 and suppresses nothing.
        overlaps = box_overlaps(boxes[rows], boxes[columns]) > limit
        for row, index in enumerate(rows):
            if suppressed[index]:
                continue
            keep.append(int(index))
            suppressed[columns[overlaps[row]]] = True
    return np.asarray(order[keep], dtype=np.intp)


def _normalise(pixels: npt.NDArray[np.uint8]) -> FloatArray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in MTCNN's [-1, 1] range."""
    scaled = (pixels.astype(np.float32) - 127.5) * 0.0078125
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


def _pnet_boxes(
    probabilities: FloatArray,
    regression: FloatArray,
    scale: float,
    threshold: float,
    border: int = 0,
) -> FloatArray:
    """Cells of one P-Net map above ``threshold`` as (N, 9) ``x1, y1, x2, y2, score, dx1..dy2``.

    ``border`` is the padding (level pixels) added around the level before P-Net ran.
    """
    rows, cols = np.nonzero(probabilities >= threshold)
    if rows.size == 0:
        return np.zeros((0, 9), np.float32)
    x1 = np.floor((PNET_STRIDE * cols + 1 - border) / scale)
    y1 = np.floor((PNET_STRIDE * rows + 1 - border) / scale)
    x2 = np.floor((PNET_STRIDE * cols + PNET_CELL - border) / scale)
    y2 = np.floor((PNET_STRIDE * rows + PNET_CELL - border) / scale)
    offsets = regression[:, rows, cols].T
    columns = [x1, y1, x2, y2, probabilities[rows, cols], offsets]
    return np.asarray(np.column_stack(columns), dtype=np.float32)


def _regress(boxes: npt.NDArray[np.floating], offsets: npt.NDArray[np.floating]) -> FloatArray:
    """Apply R/O-Net box offsets (fractions of the 1-based inclusive box size)."""
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    scale = np.stack([width, height, width, height], axis=1)
    return np.asarray(boxes[:, :4] + offsets[:, :4] * scale, dtype=np.float32)


def _square(boxes: npt.NDArray[np.floating]) -> FloatArray:
    """Grow each box to a square around its centre (MTCNN's ``rerec``)."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    x1 = boxes[:, 0] + width * 0.5 - side * 0.5
    y1 = boxes[:, 1] + height * 0.5 - side * 0.5
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1).astype(np.float32)


class HalvedCopies:
    """The image and copies of it halved again and again (area-averaged), made when first asked
    for: network crops are cut from the smallest copy in which the box still has at least
    :data:`CROP_DETAIL` times the network's input side, so resizing a candidate costs about the
    same whatever its size (a box of 2,000 px no longer averages 4 million pixels into 24x24)."""

    def __init__(self, image: RGBImage) -> None:
        self._copies: list[RGBImage] = [image]

    def for_box(self, side: float, size: int) -> tuple[RGBImage, float]:
        """The copy to cut a box of ``side`` original pixels from for a ``size`` input, and its
        scale (1, 1/2, 1/4, ...)."""
        level = 0
        while side / 2 ** (level + 1) >= CROP_DETAIL * size:
            level += 1
        while len(self._copies) <= level:
            previous = self._copies[-1]
            height, width = previous.shape[:2]
            if min(height, width) < 2:
                break
            half = cv2.resize(
                previous, ((width + 1) // 2, (height + 1) // 2), interpolation=cv2.INTER_AREA
            )
            self._copies.append(np.asarray(half, np.uint8))
        level = min(level, len(self._copies) - 1)
        return self._copies[level], 0.5**level


CROP_DETAIL = 8
"""A crop is cut from a halved copy only if the box keeps at least this many times the network's
input side there (R-Net: boxes of 384 px and more, O-Net: 768 px and more), so that faces of the
usual sizes are cut as before. Measured 2026-12-06 on the 29 group photos, the 5,334 x 2,767 px
class photo (``bench.class_photo``) and 26 LFW photos, against cutting every crop from the photo:
with 8, one group photo's boxes moved (by 4.2 px at most) and the class photo's detection took
1.30 s instead of 1.59 s (median of 3, interleaved, load average 2.4); with 4, four photos changed
(7.6 px at most) and the class photo lost one of its 72 faces; with 2, the boxes of 16 of the 29
group photos moved (by up to 27 px) and the class photo lost a face."""


def _crops(
    image: RGBImage, boxes: FloatArray, size: int, copies: HalvedCopies | None = None
) -> FloatArray:
    """Network inputs (N, 3, size, size): each box cut from ``image`` (or the fitting halved copy
    of it, see :class:`HalvedCopies`), zero outside it."""
    patches = np.zeros((len(boxes), size, size, 3), np.uint8)
    for index, box in enumerate(boxes):
        source, scale = (
            copies.for_box(float(max(box[2] - box[0], box[3] - box[1])), size)
            if copies is not None
            else (image, 1.0)
        )
        height, width = source.shape[:2]
        # MTCNN boxes are 1-based inclusive; truncation as in facenet-pytorch's ``pad``.
        left, top = math.trunc(float(box[0]) * scale) - 1, math.trunc(float(box[1]) * scale) - 1
        right, bottom = math.trunc(float(box[2]) * scale), math.trunc(float(box[3]) * scale)
        if right <= left or bottom <= top:
            continue
        src_left, src_top = max(left, 0), max(top, 0)
        src_right, src_bottom = min(right, width), min(bottom, height)
        if src_right <= src_left or src_bottom <= src_top:
            continue
        region = source[src_top:src_bottom, src_left:src_right]
        if (src_left, src_top, src_right, src_bottom) != (left, top, right, bottom):
            padded = np.zeros((bottom - top, right - left, 3), np.uint8)
            padded[src_top - top : src_bottom - top, src_left - left : src_right - left] = region
            region = padded
        interpolation = cv2.INTER_AREA if region.shape[0] > size else cv2.INTER_LINEAR
        patches[index] = cv2.resize(region, (size, size), interpolation=interpolation)
    return _normalise(patches)
