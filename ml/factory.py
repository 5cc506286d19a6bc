"""The one place where settings choose concrete model classes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ml.config import PipelineConfig
from ml.detection import create_detector
from ml.embedder import FaceNetEmbedder
from ml.pipeline import FacePipeline, SecondaryModel
from ml.segmentation import GrabCutHeadSegmenter
from ml.weights.cache import default_cache_dir
from ml.weights.onnx_models import (
    DLIB_ONNX_FILENAME,
    MTCNN_FILENAMES,
    facenet_onnx_filename,
    load_onnx_model,
    prepare_models,
)

logger = logging.getLogger(__name__)


def build_pipeline(config: PipelineConfig | None = None) -> FacePipeline:
    """Load every model once. Raises if a model cannot be loaded (the service then fails fast).

    Models missing from the cache (a first start) are exported first, all in one child process.
    """
    cfg = config or PipelineConfig()
    started = time.perf_counter()
    cache_dir = cfg.model_cache_dir or default_cache_dir()
    prepare_models(cache_dir, exported_models(cfg), embedder_weights=cfg.embedder_weights)
    detector = create_detector(
        cfg.detector,
        yolo_weights=cfg.yolo_weights,
        min_face_size=cfg.min_face_size,
        device=cfg.device,
        model_cache_dir=cache_dir,
        intra_op_threads=cfg.intra_op_threads,
    )
    embedder = FaceNetEmbedder(
        cfg.embedder_weights,
        cache_dir=cache_dir,
        batch_size=cfg.batch_size,
        intra_op_threads=cfg.intra_op_threads,
    )
    segmenter = GrabCutHeadSegmenter() if cfg.segmentation else None
    secondary = [
        build_secondary(name, cache_dir, cfg.intra_op_threads) for name in cfg.embedders[1:]
    ]
    logger.info(
        "face pipeline ready in %.1fs: detector=%s embedders=%s (%s) alignment=%s segmentation=%s head=%s",
        time.perf_counter() - started,
        cfg.detector,
        "+".join(cfg.embedders),
        cfg.embedder_weights.name if cfg.embedder_weights else "CASIA-WebFace",
        cfg.alignment,
        cfg.segmentation,
        cfg.use_head,
    )
    return FacePipeline(cfg, detector, embedder, segmenter, secondary)


def exported_models(config: PipelineConfig) -> list[str]:
    """The model cache files ``config`` runs (an ``.onnx`` FaceNet or YOLO file is used as given)."""
    names = list(MTCNN_FILENAMES) if config.detector == "mtcnn" else []
    weights = config.embedder_weights
    if weights is None or weights.suffix != ".onnx":
        names.append(facenet_onnx_filename(weights))
    if "dlib" in config.embedders[1:]:
        names.append(DLIB_ONNX_FILENAME)
    return names


def build_secondary(
    name: str, cache_dir: Path, intra_op_threads: int | None = None
) -> SecondaryModel:
    """A secondary embedder fused with FaceNet, by name (``ml.config.EmbedderName``).

    dlib's ResNet runs exported to ONNX: the same descriptors as dlib's own runtime (unit
    descriptors within 2.2e-7, ``tests/ml/test_dlib_onnx.py``) at a fraction of its time (4.6-9.8x
    faster a face at batch 1 and 8.4-10.3x at batch 8, measured 2026-11-29 on 2 loaded cores);
    dlib itself still finds the 5 landmarks and cuts the chip.
    """
    if name == "dlib":
        from ml.dlib_embedder import DlibChipCropper, DlibResNetOnnxEmbedder

        embedder = DlibResNetOnnxEmbedder(
            load_onnx_model(cache_dir, DLIB_ONNX_FILENAME), num_threads=intra_op_threads
        )
        return SecondaryModel("dlib", DlibChipCropper(), embedder)
    raise ValueError(f"unknown secondary embedder {name!r}")
