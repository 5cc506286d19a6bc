"""One exporter per model file name of :mod:`ml.weights.onnx_models`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ml.export.dlib_resnet import export_dlib_to_cache
from ml.export.facenet import export_facenet
from ml.export.mtcnn import export_mtcnn
from ml.weights.cache import WeightsChecksumError, check_file
from ml.weights.onnx_models import (
    CASIA_ONNX_FILENAME,
    DLIB_ONNX_FILENAME,
    EXPORT_VERSION,
    MTCNN_FILENAMES,
    facenet_onnx_filename,
)

logger = logging.getLogger(__name__)


def export_model(filename: str, cache_dir: Path, *, embedder_weights: Path | None = None) -> Path:
    """Export the model named ``filename`` into ``cache_dir`` (``embedder_weights``: the source of a
    FaceNet named by :func:`ml.weights.onnx_models.facenet_onnx_filename`)."""
    if filename in MTCNN_FILENAMES:
        return export_mtcnn(cache_dir, filename)
    if filename == CASIA_ONNX_FILENAME:
        return export_facenet(cache_dir, None)
    if filename == DLIB_ONNX_FILENAME:
        return export_dlib_to_cache(cache_dir)
    if embedder_weights is not None and filename == facenet_onnx_filename(embedder_weights):
        return export_facenet(cache_dir, embedder_weights)
    raise ValueError(f"no exporter for {filename!r}")


def export_models(
    cache_dir: Path, filenames: Sequence[str], *, embedder_weights: Path | None = None
) -> list[Path]:
    """Each of ``filenames`` in ``cache_dir``, exported unless an intact file of this exporter
    version is already there; the paths, in that order."""
    paths = []
    for filename in filenames:
        path = cache_dir / filename
        if _up_to_date(path):
            logger.info("%s is up to date", path)
        else:
            path = export_model(filename, cache_dir, embedder_weights=embedder_weights)
        paths.append(path)
    return paths


def _up_to_date(path: Path) -> bool:
    try:
        check_file(path, version=EXPORT_VERSION)
    except (FileNotFoundError, WeightsChecksumError):
        return False
    return True
