"""``python -m ml.weights``: prepare every model the service runs in the model cache (build time; needs torch)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ml.weights.cache import CACHE_DIR_ENV, default_cache_dir
from ml.weights.facenet_casia import converted_casia_weights
from ml.weights.onnx_models import (
    DLIB_ONNX_FILENAME,
    MTCNN_FILENAMES,
    facenet_onnx_filename,
    load_onnx_model,
)


def prepare_models(cache_dir: Path, embedder_weights: Path | None = None) -> list[Path]:
    """Convert the CASIA-WebFace graph and export the ONNX models into ``cache_dir``; the files, in that order.

    Files already in the cache are only verified (checksum and exporter version); damaged or outdated ones are
    converted or exported again.
    """
    written = [converted_casia_weights(cache_dir)]
    sources: list[tuple[str, Path | None]] = [(name, None) for name in MTCNN_FILENAMES]
    sources.append((facenet_onnx_filename(None), None))
    sources.append((DLIB_ONNX_FILENAME, None))
    if embedder_weights is not None:
        sources.append((facenet_onnx_filename(embedder_weights), embedder_weights))
    for filename, weights in sources:
        load_onnx_model(cache_dir, filename, embedder_weights=weights)
        written.append(cache_dir / filename)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml.weights",
        description=(
            "Convert the CASIA-WebFace FaceNet graph to safetensors and export MTCNN, FaceNet and dlib's ResNet to ONNX, "
            "with checksums, into the model cache. Prints the files, one per line."
        ),
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"default: ${CACHE_DIR_ENV} or ~/.cache/rollcall",
    )
    parser.add_argument(
        "--embedder-weights",
        type=Path,
        default=None,
        help="also export FaceNet from these weights (a facenet-pytorch .pt state dict), as "
        "ROLLCALL_EMBEDDER_WEIGHTS selects them",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("onnxscript", "onnx_ir"):
        # The exporter's optimiser logs every pass at INFO.
        logging.getLogger(chatty).setLevel(logging.WARNING)
    cache_dir = arguments.cache_dir if arguments.cache_dir is not None else default_cache_dir()
    for path in prepare_models(cache_dir, arguments.embedder_weights):
        sys.stdout.write(f"{path}\n")
    return 0
