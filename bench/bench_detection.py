"""Face-detector speed on CPU: stock facenet-pytorch MTCNN vs ours (ONNX, and its torch reference) vs YOLOv8-face.

Run: ``uv run python -m bench.bench_detection [--runs N] [--threads T]``; writes a markdown table to
stdout. Needs ``../shared`` (or ``$ROLLCALL_SHARED_DIR``). Photos:

* ``retinaface__img3.jpg`` (1000x644, ~30 faces plus a crowd): the "~1000 px" photo;
* ``deepface__couple.jpg`` (2280x1588, 2 faces): the largest group photo in shared/;
* the "class photo": shared/ has no 5334 px class photo, so retinaface__img3 is upscaled
  (bicubic) to 5334 px wide, ~17 Mpx with faces of ~35-250 px.

Every detector runs on a photo in turn (interleaved), ``--runs`` times after a warm-up; the table
gives the median wall time and CPU time (process time: less disturbed by other processes on a
shared machine) and each time as a ratio to stock MTCNN on the same photo.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ml.detection import MTCNNFaceDetector, YoloFaceOnnxDetector
from ml.eval.photos import load_rgb
from ml.protocols import FaceDetector
from ml.types import DetectedFace, RGBImage
from ml.weights.torch_models import TorchMtcnnNets

logger = logging.getLogger(__name__)

SHARED_DIR = Path(
    os.environ.get("ROLLCALL_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)
CLASS_PHOTO_WIDTH = 5334


class StockMTCNN:
    """facenet-pytorch's ``MTCNN(keep_all=True)`` with its defaults, as a :class:`FaceDetector`."""

    def __init__(self, min_face_size: int = 20) -> None:
        from facenet_pytorch import MTCNN

        self._mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, device="cpu")

    def detect(self, image: RGBImage) -> list[DetectedFace]:
        boxes, scores, points = self._mtcnn.detect(image, landmarks=True)
        if boxes is None:
            return []
        faces = [
            DetectedFace(
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                score=float(s),
                landmarks=np.asarray(p, dtype=np.float32),
            )
            for b, s, p in zip(boxes, scores, points, strict=True)
        ]
        return sorted(faces, key=lambda face: face.score, reverse=True)


@dataclass(frozen=True)
class Timing:
    wall_ms: float
    cpu_ms: float
    faces: int


def time_detector(detector: FaceDetector, image: RGBImage, runs: int) -> Timing:
    faces = detector.detect(image)  # warm-up: kernel selection for this image size
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        faces = detector.detect(image)
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    return Timing(statistics.median(walls), statistics.median(cpus), len(faces))


def photos() -> dict[str, RGBImage]:
    groups = SHARED_DIR / "faces" / "groups"
    crowd = load_rgb(groups / "retinaface__img3.jpg")
    factor = CLASS_PHOTO_WIDTH / crowd.shape[1]
    large = np.asarray(
        cv2.resize(crowd, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC), np.uint8
    )
    return {
        "retinaface__img3 1000x644": crowd,
        "deepface__couple 2280x1588": load_rgb(groups / "deepface__couple.jpg"),
        f"img3 upscaled {large.shape[1]}x{large.shape[0]}": large,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_detection", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per photo (median)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch/onnxruntime threads (default: library's)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        help="run only the detectors and photos whose names contain this text (repeatable; "
        "the first detector kept is the reference of the ratio columns)",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not (SHARED_DIR / "faces" / "groups").is_dir():
        logger.error("shared data not found at %s (set ROLLCALL_SHARED_DIR)", SHARED_DIR)
        return 2
    if arguments.threads is not None:
        torch.set_num_threads(arguments.threads)
    yolo_weights = SHARED_DIR / "models" / "yolov8-lite-t.onnx"
    detectors: dict[str, Callable[[], FaceDetector]] = {
        "MTCNN stock (facenet-pytorch)": StockMTCNN,
        "MTCNN ours (ONNX)": lambda: MTCNNFaceDetector(intra_op_threads=arguments.threads),
        "MTCNN ours, torch networks": lambda: MTCNNFaceDetector(nets=TorchMtcnnNets()),
        "MTCNN ours, no size-relative min face": lambda: MTCNNFaceDetector(
            min_face_fraction=0.0, intra_op_threads=arguments.threads
        ),
        "YOLOv8-lite-t ONNX (tiled)": lambda: YoloFaceOnnxDetector(
            yolo_weights, num_threads=arguments.threads
        ),
        "YOLOv8-lite-t ONNX (one pass)": lambda: YoloFaceOnnxDetector(
            yolo_weights, min_face_size=None, num_threads=arguments.threads
        ),
    }
    chosen = photos()
    if arguments.only:
        detectors = {k: v for k, v in detectors.items() if any(o in k for o in arguments.only)}
        chosen = {k: v for k, v in chosen.items() if any(o in k for o in arguments.only)}
    built = {name: factory() for name, factory in detectors.items()}
    results: dict[tuple[str, str], Timing] = {}
    for photo_name, image in chosen.items():
        for name, detector in built.items():
            results[(photo_name, name)] = time_detector(detector, image, arguments.runs)
            logger.info("%s / %s: %s", photo_name, name, results[(photo_name, name)])

    out = sys.stdout
    out.write(
        f"## Face detection, CPU ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), "
        f"median of {arguments.runs}\n\n"
    )
    stock_name = next(iter(built))
    out.write(
        f"| photo | detector | faces | wall ms | CPU ms | wall vs {stock_name} | CPU vs it |\n"
    )
    out.write("|---|---|---:|---:|---:|---:|---:|\n")
    for (photo_name, name), timing in results.items():
        stock = results[(photo_name, stock_name)]
        out.write(
            f"| {photo_name} | {name} | {timing.faces} | {timing.wall_ms:.0f} | "
            f"{timing.cpu_ms:.0f} | {timing.wall_ms / stock.wall_ms:.2f} | "
            f"{timing.cpu_ms / stock.cpu_ms:.2f} |\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
