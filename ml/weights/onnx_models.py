"""The ONNX models the service runs: their names in the model cache, checked on load (torch-free).

``python -m ml.weights`` exports them (:mod:`ml.weights.onnx_export`). A model missing from the cache, damaged, or
exported by another version of the exporter is exported again on first use when torch is installed (the
development environment); otherwise loading fails with the command that fixes it.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from ml.weights.cache import WeightsChecksumError, check_file, file_sha256

logger = logging.getLogger(__name__)

EXPORT_VERSION = "1"
"""Bump when the export changes, so caches written by an older exporter are redone."""

PNET_FILENAME = "mtcnn-pnet.onnx"
RNET_FILENAME = "mtcnn-rnet.onnx"
ONET_FILENAME = "mtcnn-onet.onnx"
MTCNN_FILENAMES = (PNET_FILENAME, RNET_FILENAME, ONET_FILENAME)
CASIA_ONNX_FILENAME = "facenet-casia-webface.onnx"
DLIB_ONNX_FILENAME = "dlib-face-recognition-resnet-v1.onnx"
"""dlib's ResNet (``ml.weights.dlib_resnet``): (N, 150, 150, 3) uint8 chips in, (N, 128) raw descriptors out."""

FACENET_INPUT = "faces"
"""FaceNet input: (N, 3, 160, 160) float32 standardised RGB (``ml.embedder.standardise``)."""
FACENET_OUTPUT = "embeddings"
"""FaceNet output: (N, 512) float32, L2-normalised rows."""
MTCNN_INPUT = "images"
"""MTCNN input: (N, 3, H, W) float32 RGB scaled to [-1, 1]; P-Net takes any H, W >= 12, R-Net 24, O-Net 48."""
MTCNN_OUTPUTS = {
    PNET_FILENAME: ("regression", "probabilities"),
    RNET_FILENAME: ("regression", "probabilities"),
    ONET_FILENAME: ("regression", "landmarks", "probabilities"),
}


class ModelNotExportedError(RuntimeError):
    """An ONNX model is not (validly) in the cache and cannot be exported here (torch is not installed)."""


def torch_available() -> bool:
    """Whether the export dependencies are installed (looked up without importing them)."""
    try:
        return (
            importlib.util.find_spec("torch") is not None
            and importlib.util.find_spec("facenet_pytorch") is not None
        )
    except (ImportError, ValueError):
        return False


def exporter_available(filename: str) -> bool:
    """Whether ``filename`` can be exported here: dlib's ResNet needs the ``onnx`` package only,
    the others torch."""
    if filename == DLIB_ONNX_FILENAME:
        try:
            return importlib.util.find_spec("onnx") is not None
        except (ImportError, ValueError):
            return False
    return torch_available()


def facenet_onnx_filename(weights: Path | None) -> str:
    """Cache file name of FaceNet exported from ``weights`` (``None``: the CASIA-WebFace conversion).

    Other weights (a facenet-pytorch ``.pt`` or converted ``.safetensors``) are named after their content, so
    replacing the file at the same path gives a new export instead of a stale one.
    """
    if weights is None:
        return CASIA_ONNX_FILENAME
    return f"facenet-{weights.stem}-{file_sha256(weights)[:12]}.onnx"


def load_onnx_model(
    cache_dir: Path, filename: str, *, embedder_weights: Path | None = None
) -> Path:
    """``cache_dir / filename``, checked, exporting it first if needed and possible.

    ``embedder_weights`` is the source of a FaceNet model named by :func:`facenet_onnx_filename`.

    Raises:
        ModelNotExportedError: missing or invalid, and torch is not installed to export it.
    """
    path = cache_dir / filename
    try:
        return check_file(path, version=EXPORT_VERSION)
    except (FileNotFoundError, WeightsChecksumError) as error:
        problem = error
    if not exporter_available(filename):
        source = f" --embedder-weights {embedder_weights}" if embedder_weights is not None else ""
        raise ModelNotExportedError(
            f"ONNX model {path} is not usable ({problem}). Export the models with the full "
            f"(development) environment: python -m ml.weights --cache-dir {cache_dir}{source}"
        ) from problem
    logger.warning("exporting %s to ONNX (%s)", filename, problem)
    # Export code, imported only here and only where torch is installed; the service image has
    # the files baked in by `python -m ml.weights`.
    if filename == DLIB_ONNX_FILENAME:
        from ml.weights.dlib_resnet import export_dlib_to_cache

        export_dlib_to_cache(cache_dir)
    else:
        from ml.weights.onnx_export import export_model

        export_model(filename, cache_dir, embedder_weights=embedder_weights)
    return check_file(path, version=EXPORT_VERSION)


def load_facenet_onnx(cache_dir: Path, weights: Path | None = None) -> Path:
    """FaceNet's ONNX model: ``weights`` itself if it is an ``.onnx`` file, else its export in ``cache_dir``."""
    if weights is not None and weights.suffix == ".onnx":
        return weights
    return load_onnx_model(cache_dir, facenet_onnx_filename(weights), embedder_weights=weights)
