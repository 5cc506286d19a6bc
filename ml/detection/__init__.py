"""Face detectors: MTCNN (default, facenet-pytorch's weights exported to ONNX) and YOLO face models.

Use :func:`create_detector`; ``ml.factory`` calls it with the service settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ml.detection.geometry import LandmarkGeometry, box_iou, box_overlaps, landmarks_plausible
from ml.detection.mtcnn import DEFAULT_MIN_SCORE as MTCNN_DEFAULT_MIN_SCORE
from ml.detection.mtcnn import MTCNNFaceDetector
from ml.detection.yolo import DEFAULT_SCORE_THRESHOLD as YOLO_DEFAULT_SCORE_THRESHOLD
from ml.detection.yolo import (
    UltralyticsMissingError,
    YoloFaceOnnxDetector,
    YoloUltralyticsDetector,
    build_yolo_detector,
)
from ml.protocols import FaceDetector

DetectorKind = Literal["mtcnn", "yolo"]

__all__ = [
    "DetectorKind",
    "LandmarkGeometry",
    "MTCNNFaceDetector",
    "UltralyticsMissingError",
    "YoloFaceOnnxDetector",
    "YoloUltralyticsDetector",
    "box_iou",
    "box_overlaps",
    "build_yolo_detector",
    "create_detector",
    "landmarks_plausible",
]


def create_detector(
    kind: DetectorKind,
    *,
    yolo_weights: Path | None = None,
    min_face_size: int = 20,
    min_score: float | None = None,
    device: str = "cpu",
    yolo_tiling: bool = True,
    model_cache_dir: Path | None = None,
    intra_op_threads: int | None = None,
) -> FaceDetector:
    """The configured face detector.

    Args:
        kind: ``"mtcnn"`` (default backend, no extra files) or ``"yolo"`` (needs ``yolo_weights``).
        yolo_weights: YOLO face weights (``.onnx`` or ultralytics ``.pt``); required for ``"yolo"``.
        min_face_size: smallest face (pixels of the original photo) to find; on photos larger than
            2000 px both backends raise it to 1 % of the long side (see ``min_face_fraction``).
        min_score: final score threshold; ``None`` keeps the backend's default.
        device: torch device for ultralytics (MTCNN and YOLO ONNX run on onnxruntime's CPU provider).
        yolo_tiling: let the YOLO ONNX backend add tiled passes on photos so big that faces of
            ``min_face_size`` would be under ~10 px in its 640 px input.
        model_cache_dir: where MTCNN's ONNX files are (``None``: ``ml.weights.cache.default_cache_dir``).
        intra_op_threads: onnxruntime threads per inference (``None``: onnxruntime's default).

    Raises:
        ValueError: unknown ``kind``, or ``"yolo"`` without weights.
        FileNotFoundError: ``yolo_weights`` does not exist.
        UltralyticsMissingError: ``yolo_weights`` is an ultralytics model (not a YOLOv8-face
            raw-head ONNX export) and the optional ``yolo-pt`` dependency group is not installed.
    """
    if kind == "mtcnn":
        return MTCNNFaceDetector(
            min_face_size=min_face_size,
            min_score=MTCNN_DEFAULT_MIN_SCORE if min_score is None else min_score,
            model_cache_dir=model_cache_dir,
            intra_op_threads=intra_op_threads,
        )
    if kind == "yolo":
        if yolo_weights is None:
            raise ValueError(
                "detector 'yolo' needs a weights file (yolo_weights): a YOLOv8-face ONNX export "
                "or an ultralytics face checkpoint; use detector 'mtcnn' to run without one"
            )
        return build_yolo_detector(
            Path(yolo_weights),
            score_threshold=YOLO_DEFAULT_SCORE_THRESHOLD if min_score is None else min_score,
            min_face_size=min_face_size if yolo_tiling else None,
            device=device,
            num_threads=intra_op_threads,
        )
    raise ValueError(f"unknown detector kind {kind!r}; expected 'mtcnn' or 'yolo'")
