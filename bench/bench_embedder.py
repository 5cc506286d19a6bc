"""Throughput of FaceNet on CPU, ONNX Runtime (the service) vs PyTorch: images/s for batch sizes 1, 8 and 32.

Run: ``uv run python -m bench.bench_embedder [--runs N] [--threads T]``; writes a markdown table to stdout.
Uses the CASIA-WebFace FaceNet (exported into the default model cache on first use) and real LFW crops
when ``../shared`` is present, random pixels otherwise (throughput does not depend on the pixel values).
Both runtimes embed the same crops in turn (interleaved per batch size), median of ``--runs``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import torch

from ml.embedder import INPUT_SIZE, FaceNetEmbedder
from ml.protocols import FaceEmbedder
from ml.weights.torch_models import TorchFaceNetEmbedder

logger = logging.getLogger(__name__)

BATCH_SIZES = (1, 8, 32)
SHARED_DIR = Path(
    os.environ.get("ROLLCALL_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)


def load_crops(count: int) -> list[npt.NDArray[np.uint8]]:
    """``count`` 160x160 RGB crops: central regions of LFW images, or random pixels without ../shared."""
    images = sorted((SHARED_DIR / "faces" / "lfw").glob("*/*.jpg"))[:count]
    if len(images) < count:
        logger.warning("LFW not found under %s: using random pixels", SHARED_DIR)
        rng = np.random.default_rng(0)
        return [
            rng.integers(0, 256, (INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8) for _ in range(count)
        ]
    crops = []
    for path in images:
        image = cv2.imread(str(path))
        if image is None:
            raise OSError(f"cannot read {path}")
        centre = image[50:200, 50:200]
        resized = cv2.resize(centre, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        crops.append(np.ascontiguousarray(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB), dtype=np.uint8))
    return crops


def images_per_second(
    embedder: FaceEmbedder | TorchFaceNetEmbedder, crops: Sequence[npt.NDArray[np.uint8]], runs: int
) -> float:
    embedder.embed(crops)  # warm-up: first-call allocations and kernel selection
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        embedder.embed(crops)
        durations.append(time.perf_counter() - started)
    return len(crops) / statistics.median(durations)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_embedder", description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs per batch size (median reported)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime intra-op threads and torch threads (default: each library's)",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if arguments.threads is not None:
        torch.set_num_threads(arguments.threads)

    crops = load_crops(max(BATCH_SIZES))
    rows = []
    for batch_size in BATCH_SIZES:
        onnx = FaceNetEmbedder(batch_size=batch_size, intra_op_threads=arguments.threads)
        reference = TorchFaceNetEmbedder(batch_size=batch_size)
        # One call of exactly one batch, so the number measures that batch size alone.
        onnx_rate = images_per_second(onnx, crops[:batch_size], arguments.runs)
        torch_rate = images_per_second(reference, crops[:batch_size], arguments.runs)
        rows.append(
            f"| {batch_size} | {onnx_rate:.1f} | {torch_rate:.1f} | {onnx_rate / torch_rate:.2f} |"
        )

    sys.stdout.write(
        f"FaceNet (InceptionResnetV1, 160x160) on CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, onnxruntime threads {arguments.threads or 'default'}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads "
        f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), median of {arguments.runs} runs\n\n"
        "| batch size | ONNX images/s | torch images/s | ONNX / torch |\n|---:|---:|---:|---:|\n"
        + "\n".join(rows)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
