"""YOLO face detectors: the YOLOv8-face raw-head ONNX export (onnxruntime) and ultralytics models.

:func:`build_yolo_detector` picks the backend from what the weights contain, not from the file name:

* an ONNX graph with three 4-D outputs ``(1, 64 + 1 + 15, H, W)`` at strides 8/16/32 is the
  widely shared YOLOv8-face export (derronqi/yolov8-face recipe, 5 landmarks): it runs on
  onnxruntime and is decoded here with numpy (:class:`YoloFaceOnnxDetector`);
* anything else (``.pt`` checkpoints, ONNX exported by ultralytics with one ``(1, C, N)`` output)
  goes through ``ultralytics.YOLO`` (:class:`YoloUltralyticsDetector`), with ultralytics kept
  offline (no downloads, no telemetry, no pip installs). ultralytics is not part of the service's
  runtime (AGPL-3.0): it is the optional ``yolo-pt`` dependency group, and loading such a model
  without it raises :class:`UltralyticsMissingError` saying so.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from ml.detection.geometry import LandmarkGeometry, nms, to_faces
from ml.onnx_session import create_session
from ml.types import DetectedFace, RGBImage, check_rgb_image

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

DFL_BINS = 16
"""YOLOv8 regresses each box side as a distribution over 16 bins (distribution focal loss)."""
RAW_HEAD_CHANNELS = 4 * DFL_BINS + 1 + 5 * 3
"""Channels of one raw YOLOv8-face head: box bins, face logit, 5 x (x, y, visibility)."""
LETTERBOX_FILL = 114
"""Grey used by ultralytics for letterbox padding; the model was trained with it."""

# Landmark template for detectors that give boxes only, as fractions of the box width/height
# measured from (x1, y1): the median positions of the five YOLOv8-face landmarks relative to its
# own boxes over the 127 faces >= 30 px it finds in shared/faces/groups, made left/right
# symmetric. Good enough for a similarity alignment of a frontal face (per-point spread:
# ~0.03 of the height, 0.10-0.16 of the width because of head yaw); real landmarks are used
# whenever the model has them.
BOX_LANDMARK_TEMPLATE = np.array(
    [[0.27, 0.40], [0.73, 0.40], [0.50, 0.59], [0.31, 0.74], [0.69, 0.74]], dtype=np.float32
)


def landmarks_from_box(box: tuple[float, float, float, float]) -> FloatArray:
    """Five landmarks (5, 2) placed on ``box`` with :data:`BOX_LANDMARK_TEMPLATE`."""
    x1, y1, x2, y2 = box
    scale = np.array([x2 - x1, y2 - y1], dtype=np.float32)
    return (BOX_LANDMARK_TEMPLATE * scale + np.array([x1, y1], dtype=np.float32)).astype(np.float32)


def _sigmoid(values: npt.NDArray[np.floating]) -> FloatArray:
    # exp of a large negative logit overflows float32; the clip changes nothing visible.
    clipped = np.clip(values.astype(np.float32), -50.0, 50.0)
    return (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)


DEFAULT_SCORE_THRESHOLD = 0.5
"""Face score a YOLO detection must reach by default."""


@dataclass(frozen=True)
class Letterbox:
    """How an image was scaled and padded into the square network input."""

    scale: float
    pad_x: float
    pad_y: float

    def to_image(self, points: npt.NDArray[np.floating]) -> FloatArray:
        """Map ``(..., 2)`` network-input coordinates back to the original image."""
        offset = np.array([self.pad_x, self.pad_y], dtype=np.float32)
        return ((points - offset) / self.scale).astype(np.float32)


def letterbox(
    image: RGBImage, size: int, max_upscale: float | None = None
) -> tuple[npt.NDArray[np.uint8], Letterbox]:
    """Resize ``image`` to fit ``size`` x ``size`` keeping its aspect ratio, centred on grey.

    ``max_upscale`` caps the enlargement of small images (``None``: fill the square).
    """
    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    if max_upscale is not None:
        scale = min(scale, max_upscale)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = np.asarray(cv2.resize(image, (new_w, new_h), interpolation=interpolation), np.uint8)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((size, size, 3), LETTERBOX_FILL, dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, Letterbox(scale=scale, pad_x=float(pad_x), pad_y=float(pad_y))


def decode_raw_heads(
    outputs: list[npt.NDArray[np.float32]], input_size: int, score_threshold: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Decode YOLOv8-face raw heads into network-input coordinates.

    Each output is ``(1, 80, H, W)`` with stride ``input_size / H``. A cell's anchor is its centre;
    box sides are the softmax expectation of 16 DFL bins (in stride units), the face score is a
    logit, and landmark ``(x, y)`` is ``(2 * offset + cell index) * stride`` (ultralytics'
    ``kpts_decode``: ``(2 * offset + anchor - 0.5) * stride`` with anchors at cell centres).

    Returns boxes (N, 4), scores (N,), landmarks (N, 5, 2) of the cells above ``score_threshold``.
    """
    all_boxes, all_scores, all_points = [], [], []
    bins = np.arange(DFL_BINS, dtype=np.float32)
    for output in outputs:
        _, channels, rows, cols = output.shape
        if channels != RAW_HEAD_CHANNELS:
            raise ValueError(f"expected {RAW_HEAD_CHANNELS} channels per head, got {channels}")
        stride = input_size / rows
        cells = output[0].reshape(channels, rows * cols)
        scores = _sigmoid(cells[4 * DFL_BINS])
        picked = np.nonzero(scores >= score_threshold)[0]
        if picked.size == 0:
            continue
        grid_y, grid_x = np.divmod(picked, cols)
        logits = cells[: 4 * DFL_BINS, picked].T.reshape(-1, 4, DFL_BINS)
        weights = np.exp(logits - logits.max(axis=2, keepdims=True))
        distances = (weights / weights.sum(axis=2, keepdims=True)) @ bins
        anchor_x, anchor_y = grid_x + 0.5, grid_y + 0.5
        boxes = np.stack(
            [
                anchor_x - distances[:, 0],
                anchor_y - distances[:, 1],
                anchor_x + distances[:, 2],
                anchor_y + distances[:, 3],
            ],
            axis=1,
        )
        keypoints = cells[4 * DFL_BINS + 1 :, picked].T.reshape(-1, 5, 3)
        points = np.stack(
            [
                keypoints[:, :, 0] * 2.0 + grid_x[:, None],
                keypoints[:, :, 1] * 2.0 + grid_y[:, None],
            ],
            axis=2,
        )
        all_boxes.append((boxes * stride).astype(np.float32))
        all_scores.append(scores[picked])
        all_points.append((points * stride).astype(np.float32))
    if not all_boxes:
        return (
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 5, 2), np.float32),
        )
    return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_points)


def _is_raw_face_head_model(outputs: list[Any]) -> bool:
    """True for the three-output YOLOv8-face raw-head layout."""
    if len(outputs) != 3:
        return False
    for output in outputs:
        shape = output.shape
        if len(shape) != 4 or shape[1] != RAW_HEAD_CHANNELS:
            return False
    return True


def _onnx_session(weights: Path, num_threads: int | None) -> Any:
    return create_session(weights, intra_op_threads=num_threads)


def onnx_is_raw_face_heads(weights: Path) -> bool:
    """Whether ``weights`` is an ONNX graph with the YOLOv8-face raw-head outputs.

    Decided from the graph's outputs, whatever the file is called; a file onnxruntime cannot
    open (a ``.pt`` checkpoint, say) is simply not one.
    """
    try:
        session = _onnx_session(weights, 1)
    except Exception as error:  # onnxruntime raises its own untyped errors on non-ONNX files
        logger.debug("%s is not an ONNX graph onnxruntime can open: %s", weights, error)
        return False
    return _is_raw_face_head_model(session.get_outputs())


class YoloFaceOnnxDetector:
    """YOLOv8-face (5 landmarks) raw-head ONNX export on onnxruntime, decoded with numpy.

    The photo is letterboxed into the square input once. When the smallest face worth finding
    (``min_face_size``, at least ``min_face_fraction`` of the long side, as for MTCNN) would
    shrink under ``min_input_face`` pixels in that pass, the photo is also cut into overlapping
    tiles that each run at a higher scale; tile detections touching an inner tile border are
    dropped (such a face lies wholly in a neighbouring tile or is big enough for the full pass)
    and everything is merged by NMS. Tiles are skipped when the full pass found only large faces.
    Measured on retinaface__img3 upscaled to 5334 px (crowd faces 35-60 px): 42 faces in one
    pass, ~130-165 with tiles at ~4x the time (~135 -> ~500 ms CPU); on the 2280 px
    deepface__couple (two 600 px faces) no tiles run. ``min_face_size=None`` disables tiling.
    """

    def __init__(
        self,
        weights: Path,
        *,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        iou_threshold: float = 0.45,
        geometry: LandmarkGeometry | None = None,
        min_face_size: int | None = 20,
        min_face_fraction: float = 0.01,
        min_input_face: float = 10.0,
        max_upscale: float | None = 2.0,
        tile_trigger_face: float | None = 24.0,
        num_threads: int | None = None,
    ) -> None:
        """
        Args:
            weights: the ONNX file.
            score_threshold: minimum face probability (after the sigmoid).
            iou_threshold: NMS overlap above which the lower-scored box is dropped.
            geometry: landmark plausibility filter (``None``: keep every box).
            min_face_size: smallest face (original pixels) tiling must make findable; ``None``
                disables tiling.
            min_face_fraction: the smallest face is at least this fraction of the long side.
            min_input_face: face size (network-input pixels) below which the model misses faces
                (the lite-t model still finds ~10 px faces at 640); decides when and how
                finely to tile.
            max_upscale: largest enlargement of a small photo into the input (a 150 px face crop
                blown up to 640 px makes the model see face parts as extra faces).
            tile_trigger_face: tile only when the full pass finds no face, or one smaller than
                this many input pixels (a photo whose faces are all large gains nothing from
                tiles); ``None``: always tile when the size rule asks for it.
            num_threads: onnxruntime intra-op threads (``None``: onnxruntime's default).
        """
        self.weights = Path(weights)
        self._session = _onnx_session(self.weights, num_threads)
        outputs = self._session.get_outputs()
        if not _is_raw_face_head_model(outputs):
            shapes = [output.shape for output in outputs]
            raise ValueError(
                f"{self.weights} is not a YOLOv8-face raw-head export (outputs {shapes})"
            )
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        side = model_input.shape[2]
        self.input_size = int(side) if isinstance(side, int) else 640
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.geometry = geometry
        self.min_face_size = min_face_size
        self.min_face_fraction = float(min_face_fraction)
        self.min_input_face = float(min_input_face)
        self.max_upscale = max_upscale
        self.tile_trigger_face = tile_trigger_face
        # onnxruntime sessions may be run concurrently, but one at a time keeps the CPU threads
        # of a small server from oversubscribing; the lock makes that explicit.
        self._lock = threading.Lock()

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        image = np.ascontiguousarray(check_rgb_image(image))
        height, width = image.shape[:2]
        with self._lock:
            boxes, scores, points = self._run(image)
            tiles = self.tiles(height, width)
            if tiles and self.tile_trigger_face is not None:
                found = boxes[nms(boxes, scores, self.iou_threshold)]
                sides = np.minimum(found[:, 2] - found[:, 0], found[:, 3] - found[:, 1])
                input_scale = min(self.input_size / height, self.input_size / width)
                if len(sides) and sides.min() * input_scale >= self.tile_trigger_face:
                    tiles = []  # only large faces here: a finer search would find nothing new
            for tile_box in tiles:
                left, top, right, bottom = tile_box
                tile = np.ascontiguousarray(image[top:bottom, left:right])
                t_boxes, t_scores, t_points = self._run(tile)
                keep = _away_from_inner_edges(t_boxes, tile_box, width, height)
                offset = np.array([left, top], dtype=np.float32)
                boxes = np.concatenate([boxes, t_boxes[keep] + np.tile(offset, 2)])
                scores = np.concatenate([scores, t_scores[keep]])
                points = np.concatenate([points, t_points[keep] + offset])
        picked = nms(boxes, scores, self.iou_threshold)
        return to_faces(
            boxes[picked],
            scores[picked],
            points[picked],
            width=width,
            height=height,
            min_score=self.score_threshold,
            geometry=self.geometry,
        )

    def tiles(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """Extra tiles ``(left, top, right, bottom)`` for a photo of this size (may be empty)."""
        if self.min_face_size is None:
            return []
        smallest_face = max(float(self.min_face_size), self.min_face_fraction * max(height, width))
        full_scale = self.input_size / max(height, width)
        if smallest_face * full_scale >= self.min_input_face:
            return []
        # Tile side such that the smallest face reaches min_input_face pixels in the input.
        tile_side = int(self.input_size * smallest_face / self.min_input_face)
        # Faces the full pass can miss are smaller than min_input_face / full_scale; an overlap
        # of that size puts each of them wholly inside some tile.
        overlap = math.ceil(self.min_input_face / full_scale)
        tile_side = max(tile_side, 2 * overlap)
        return [
            (left, top, min(left + tile_side, width), min(top + tile_side, height))
            for top in _tile_starts(height, tile_side, overlap)
            for left in _tile_starts(width, tile_side, overlap)
        ]

    def _run(self, image: RGBImage) -> tuple[FloatArray, FloatArray, FloatArray]:
        """One letterboxed pass; boxes/scores/landmarks in ``image`` coordinates, pre-NMS."""
        canvas, placement = letterbox(image, self.input_size, self.max_upscale)
        blob = np.ascontiguousarray(
            (canvas.astype(np.float32) * (1.0 / 255.0)).transpose(2, 0, 1)[None]
        )
        outputs = self._session.run(None, {self._input_name: blob})
        boxes, scores, points = decode_raw_heads(outputs, self.input_size, self.score_threshold)
        boxes = placement.to_image(boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return boxes, scores, placement.to_image(points)


def _tile_starts(length: int, tile_side: int, overlap: int) -> list[int]:
    if length <= tile_side:
        return [0]
    step = tile_side - overlap
    count = math.ceil((length - tile_side) / step) + 1
    # Spread the tiles evenly so the last one ends at the border.
    return [round(i * (length - tile_side) / (count - 1)) for i in range(count)]


def _away_from_inner_edges(
    boxes: FloatArray, tile: tuple[int, int, int, int], width: int, height: int, margin: float = 2.0
) -> npt.NDArray[np.bool_]:
    """Mask of tile-local boxes that do not touch a tile border lying inside the photo."""
    left, top, right, bottom = tile
    keep = np.ones(len(boxes), dtype=bool)
    if left > 0:
        keep &= boxes[:, 0] > margin
    if top > 0:
        keep &= boxes[:, 1] > margin
    if right < width:
        keep &= boxes[:, 2] < right - left - margin
    if bottom < height:
        keep &= boxes[:, 3] < bottom - top - margin
    return keep


# -- ultralytics ----------------------------------------------------------------------------------


ULTRALYTICS_MISSING = (
    "{weights} is not a YOLOv8-face raw-head ONNX export, so it needs ultralytics, which is not "
    "installed: it is an optional dependency group (AGPL-3.0) outside the service's runtime. "
    "Install it with `uv sync --group yolo-pt`, or export the model to a YOLOv8-face raw-head "
    "ONNX file, which runs on onnxruntime alone."
)


class UltralyticsMissingError(ImportError):
    """An ultralytics checkpoint is configured but the ``yolo-pt`` dependency group is not installed."""


def _ultralytics_offline(weights: Path | None = None) -> Any:
    """Import ultralytics with every network feature off; returns the ``YOLO`` class.

    Called when an ultralytics model is loaded, never at import. ``YOLO_OFFLINE`` makes
    ``is_online()`` false (no telemetry, no hub, no asset downloads), ``YOLO_AUTOINSTALL=false``
    stops ``check_requirements`` from pip-installing, and the ``sync`` setting (anonymous usage
    events) is switched off in ultralytics' settings file. The variables only take effect if set
    before ultralytics is first imported, so this is the single place that imports it.

    Raises:
        UltralyticsMissingError: ultralytics is not installed (the ``yolo-pt`` group).
    """
    if importlib.util.find_spec("ultralytics") is None:
        raise UltralyticsMissingError(ULTRALYTICS_MISSING.format(weights=weights or "the model"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync", False):
        SETTINGS.update({"sync": False})  # type: ignore[no-untyped-call]
    return YOLO


class YoloUltralyticsDetector:
    """Any ultralytics face model (``.pt`` or ultralytics-exported ONNX) through ``ultralytics.YOLO``.

    Pose models with five keypoints give the landmarks directly (same order as YOLOv8-face:
    eyes, nose, mouth corners). Detection-only models give boxes only; their landmarks are then
    placed on the box with :data:`BOX_LANDMARK_TEMPLATE` so alignment still works (frontal faces).
    Only the class named ``face`` is kept when the model has one; a one-class model is assumed
    to be a face model; otherwise every class is kept (with a warning at load time).
    """

    def __init__(
        self,
        weights: Path,
        *,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        iou_threshold: float = 0.45,
        image_size: int = 640,
        device: str = "cpu",
        geometry: LandmarkGeometry | None = None,
    ) -> None:
        self.weights = Path(weights)
        if not self.weights.is_file():
            # ultralytics would treat an unknown name as an asset to download.
            raise FileNotFoundError(f"YOLO weights not found: {self.weights}")
        yolo_class = _ultralytics_offline(self.weights)
        self._model = yolo_class(str(self.weights))
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.image_size = int(image_size)
        self.device = device
        self.geometry = geometry
        names: dict[int, str] = dict(self._model.names or {})
        face_ids = [index for index, name in names.items() if str(name).lower() == "face"]
        if face_ids:
            self.classes: list[int] | None = face_ids
        else:
            self.classes = None
            if len(names) > 1:
                logger.warning(
                    "%s has %d classes and none is named 'face'; every class is kept",
                    self.weights,
                    len(names),
                )
        self._lock = threading.Lock()

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        image = np.ascontiguousarray(check_rgb_image(image))
        height, width = image.shape[:2]
        # ultralytics treats numpy input as OpenCV BGR.
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        with self._lock:
            results = self._model.predict(
                bgr,
                conf=self.score_threshold,
                iou=self.iou_threshold,
                imgsz=self.image_size,
                device=self.device,
                classes=self.classes,
                verbose=False,
            )
        result = results[0]
        boxes = result.boxes.xyxy.cpu().numpy().astype(np.float32).reshape(-1, 4)
        scores = result.boxes.conf.cpu().numpy().astype(np.float32).reshape(-1)
        keypoints = result.keypoints
        if keypoints is not None and keypoints.xy.shape[1:] == (5, 2):
            points = keypoints.xy.cpu().numpy().astype(np.float32).reshape(-1, 5, 2)
        else:
            points = (
                np.stack([landmarks_from_box((b[0], b[1], b[2], b[3])) for b in boxes.tolist()])
                if len(boxes)
                else np.zeros((0, 5, 2), np.float32)
            )
        return to_faces(
            boxes,
            scores,
            points,
            width=width,
            height=height,
            min_score=self.score_threshold,
            geometry=self.geometry,
        )


def build_yolo_detector(
    weights: Path,
    *,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    iou_threshold: float = 0.45,
    min_face_size: int | None = 20,
    device: str = "cpu",
    num_threads: int | None = None,
) -> YoloFaceOnnxDetector | YoloUltralyticsDetector:
    """A YOLO face detector for ``weights``; the backend is chosen from the file's content.

    ONNX files whose outputs are the three YOLOv8-face raw heads run on onnxruntime with the
    numpy decoder; every other file (``.pt``, ultralytics-exported ONNX with a single output,
    other formats ultralytics reads) is loaded by ultralytics, offline. ``min_face_size`` sets
    the ONNX backend's tiling (``None``: one letterboxed pass only); ultralytics models always
    run one pass at ``image_size``.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"YOLO weights not found: {weights}")
    if onnx_is_raw_face_heads(weights):
        logger.info("YOLO: %s is a YOLOv8-face raw-head ONNX export (onnxruntime)", weights)
        return YoloFaceOnnxDetector(
            weights,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
            min_face_size=min_face_size,
            num_threads=num_threads,
        )
    logger.info("YOLO: loading %s with ultralytics", weights)
    return YoloUltralyticsDetector(
        weights,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        device=device,
    )
