"""Face-detection evaluation on the group photos: ``python -m ml.eval detection --data DIR``.

Ground truth in ``DIR`` (the layout of ``shared/faces/groups``):

* ``dlib_face_boxes.tsv`` (``image, split, top, left, width, height``): hand boxes. dlib's boxes
  are tight (eyebrows to lip), so a detection matches a box when IoU >= 0.4 *or* the detection's
  centre lies inside the box.
* ``compreface_face_noses.tsv`` (``image, n_faces, x,y;x,y;...``): one nose tip per face; a
  detection matches a nose lying inside its box.
* ``groups.tsv`` (``file, faces, count_exact, ...``): for the other photos only the number of
  faces is known; found vs expected is reported (exact counts and by-eye counts separately).

Matching is one-to-one (maximum matching by Hungarian assignment). Precision and recall are over
the annotated photos; timing is the median of ``--runs`` runs per photo.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from ml.detection.geometry import box_overlaps
from ml.eval.photos import load_rgb
from ml.eval.timing import timed_median
from ml.protocols import FaceDetector
from ml.types import DetectedFace, RGBImage

logger = logging.getLogger(__name__)

DLIB_MIN_IOU = 0.4
BOXES_FILE = "dlib_face_boxes.tsv"
NOSES_FILE = "compreface_face_noses.tsv"
GROUPS_FILE = "groups.tsv"


@dataclass(frozen=True)
class PhotoTruth:
    """What is known about the faces in one photo."""

    name: str
    kind: str
    """``"boxes"``, ``"noses"`` or ``"count"``."""
    expected: int
    count_exact: bool
    boxes: npt.NDArray[np.float64]
    """(N, 4) ``x1, y1, x2, y2`` for ``"boxes"``; empty otherwise."""
    noses: npt.NDArray[np.float64]
    """(N, 2) ``x, y`` for ``"noses"``; empty otherwise."""


@dataclass(frozen=True)
class PhotoResult:
    name: str
    kind: str
    expected: int
    count_exact: bool
    detected: int
    matched: int | None
    """Matched faces for annotated photos, ``None`` for count-only photos."""
    milliseconds: float


def _data_rows(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def load_ground_truth(data_dir: Path) -> list[PhotoTruth]:
    """Every photo listed in ``groups.tsv`` with its best available ground truth."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    if (data_dir / BOXES_FILE).is_file():
        for name, _split, top, left, width, height in _data_rows(data_dir / BOXES_FILE):
            x1, y1 = float(left), float(top)
            boxes.setdefault(name, []).append((x1, y1, x1 + float(width), y1 + float(height)))
    noses: dict[str, list[tuple[float, float]]] = {}
    if (data_dir / NOSES_FILE).is_file():
        for name, _count, points in _data_rows(data_dir / NOSES_FILE):
            for point in points.split(";"):
                x, y = point.split(",")
                noses.setdefault(name, []).append((float(x), float(y)))
    truths = []
    for row in _data_rows(data_dir / GROUPS_FILE):
        name, faces, count_exact = row[0], int(row[1]), row[2].strip() == "1"
        no_boxes = np.zeros((0, 4))
        no_noses = np.zeros((0, 2))
        if name in boxes:
            truth = PhotoTruth(
                name, "boxes", len(boxes[name]), True, np.array(boxes[name]), no_noses
            )
        elif name in noses:
            truth = PhotoTruth(
                name, "noses", len(noses[name]), True, no_boxes, np.array(noses[name])
            )
        else:
            truth = PhotoTruth(name, "count", faces, count_exact, no_boxes, no_noses)
        truths.append(truth)
    return truths


def _box_array(faces: Sequence[DetectedFace]) -> npt.NDArray[np.float64]:
    return np.array([face.box for face in faces], dtype=np.float64).reshape(-1, 4)


def _max_matching(valid: npt.NDArray[np.bool_], preference: npt.NDArray[np.float64]) -> int:
    """Size of a maximum one-to-one matching over ``valid`` pairs (ties broken by preference)."""
    if valid.size == 0 or not valid.any():
        return 0
    cost = np.where(valid, 1.0 - 0.5 * preference, 10.0)
    rows, cols = linear_sum_assignment(cost)
    return int(valid[rows, cols].sum())


def match_boxes(
    faces: Sequence[DetectedFace], truth: npt.NDArray[np.float64], min_iou: float = DLIB_MIN_IOU
) -> int:
    """Detections matched to tight ground-truth boxes (IoU >= ``min_iou`` or centre inside)."""
    detected = _box_array(faces)
    if len(detected) == 0 or len(truth) == 0:
        return 0
    iou = box_overlaps(detected, truth).astype(np.float64)
    d = detected[:, None, :]
    t = truth[None, :, :]
    centre_x = (d[..., 0] + d[..., 2]) / 2
    centre_y = (d[..., 1] + d[..., 3]) / 2
    centre_inside = (
        (centre_x >= t[..., 0])
        & (centre_x <= t[..., 2])
        & (centre_y >= t[..., 1])
        & (centre_y <= t[..., 3])
    )
    return _max_matching((iou >= min_iou) | centre_inside, iou)


def match_noses(faces: Sequence[DetectedFace], noses: npt.NDArray[np.float64]) -> int:
    """Detections matched to nose points lying inside their boxes."""
    detected = _box_array(faces)
    if len(detected) == 0 or len(noses) == 0:
        return 0
    d = detected[:, None, :]
    x, y = noses[None, :, 0], noses[None, :, 1]
    inside = (x >= d[..., 0]) & (x <= d[..., 2]) & (y >= d[..., 1]) & (y <= d[..., 3])
    centre = np.stack([(d[..., 0] + d[..., 2]) / 2, (d[..., 1] + d[..., 3]) / 2], axis=-1)
    size = np.maximum(d[..., 2] - d[..., 0], 1.0)
    closeness = 1.0 - np.clip(np.hypot(centre[..., 0] - x, centre[..., 1] - y) / size, 0, 1)
    return _max_matching(inside, closeness)


def evaluate_photo(
    detector: FaceDetector, truth: PhotoTruth, image: RGBImage, runs: int = 3
) -> PhotoResult:
    faces, seconds = timed_median(lambda: detector.detect(image), runs)
    matched: int | None = None
    if truth.kind == "boxes":
        matched = match_boxes(faces, truth.boxes)
    elif truth.kind == "noses":
        matched = match_noses(faces, truth.noses)
    return PhotoResult(
        name=truth.name,
        kind=truth.kind,
        expected=truth.expected,
        count_exact=truth.count_exact,
        detected=len(faces),
        matched=matched,
        milliseconds=seconds * 1000.0,
    )


def summarise(results: Sequence[PhotoResult]) -> dict[str, float | int]:
    """Totals: precision/recall over annotated photos, count errors over count-only photos."""
    annotated = [r for r in results if r.matched is not None]
    matched = sum(r.matched or 0 for r in annotated)
    detected = sum(r.detected for r in annotated)
    expected = sum(r.expected for r in annotated)
    exact_counts = [r for r in results if r.matched is None and r.count_exact]
    rough_counts = [r for r in results if r.matched is None and not r.count_exact]
    return {
        "photos": len(results),
        "annotated_photos": len(annotated),
        "annotated_faces": expected,
        "detected": detected,
        "matched": matched,
        "precision": round(matched / detected, 4) if detected else 0.0,
        "recall": round(matched / expected, 4) if expected else 0.0,
        "exact_count_photos": len(exact_counts),
        "exact_count_expected": sum(r.expected for r in exact_counts),
        "exact_count_found": sum(r.detected for r in exact_counts),
        "exact_count_abs_error": sum(abs(r.detected - r.expected) for r in exact_counts),
        "rough_count_photos": len(rough_counts),
        "rough_count_expected": sum(r.expected for r in rough_counts),
        "rough_count_found": sum(r.detected for r in rough_counts),
        "ms_per_photo_median": round(statistics.median(r.milliseconds for r in results), 1)
        if results
        else 0.0,
        "ms_total": round(sum(r.milliseconds for r in results), 1),
    }


def format_report(
    results: Sequence[PhotoResult], totals: dict[str, float | int], label: str
) -> str:
    lines = [
        f"# detection: {label}",
        f"{'photo':40} {'truth':6} {'expect':>6} {'found':>6} {'match':>6} {'prec':>6} {'recall':>6} {'ms':>8}",
    ]
    for r in results:
        truth = r.kind if r.matched is not None else ("count" if r.count_exact else "~count")
        if r.matched is not None:
            precision = f"{r.matched / r.detected:.2f}" if r.detected else "-"
            recall = f"{r.matched / r.expected:.2f}" if r.expected else "-"
            match = str(r.matched)
        else:
            precision = recall = match = "-"
        lines.append(
            f"{r.name:40} {truth:6} {r.expected:>6} {r.detected:>6} {match:>6} {precision:>6} "
            f"{recall:>6} {r.milliseconds:>8.1f}"
        )
    lines.append(
        f"annotated photos: {totals['annotated_photos']}  faces: {totals['annotated_faces']}  "
        f"detected: {totals['detected']}  matched: {totals['matched']}  "
        f"precision: {totals['precision']:.4f}  recall: {totals['recall']:.4f}"
    )
    lines.append(
        f"exact-count photos: {totals['exact_count_photos']}  expected: "
        f"{totals['exact_count_expected']}  found: {totals['exact_count_found']}  "
        f"abs error: {totals['exact_count_abs_error']};  by-eye-count photos: "
        f"{totals['rough_count_photos']}  expected ~{totals['rough_count_expected']}  "
        f"found: {totals['rough_count_found']}"
    )
    lines.append(
        f"ms per photo (median over photos of the median of runs): {totals['ms_per_photo_median']}"
    )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from ml.detection import create_detector

    data_dir = Path(args.data)
    if not (data_dir / GROUPS_FILE).is_file():
        logger.error("%s has no %s", data_dir, GROUPS_FILE)
        return 2
    try:
        detector = create_detector(
            args.detector,
            yolo_weights=Path(args.yolo_weights) if args.yolo_weights else None,
            min_face_size=args.min_face_size,
            min_score=args.min_score,
            yolo_tiling=not args.no_yolo_tiling,
        )
    except (ValueError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    truths = [t for t in load_ground_truth(data_dir) if not args.only or args.only in t.name]
    results = []
    for truth in truths:
        image = load_rgb(data_dir / truth.name)
        detector.detect(image)  # warm-up: first call on a new size builds kernels/caches
        results.append(evaluate_photo(detector, truth, image, runs=args.runs))
        logger.info("%s: %d faces", truth.name, results[-1].detected)
    totals = summarise(results)
    label = args.detector + (f" ({args.yolo_weights})" if args.detector == "yolo" else "")
    sys.stdout.write(format_report(results, totals, label))
    sys.stdout.write(json.dumps({"detector": args.detector, **totals}) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "detection",
        help="precision/recall/time of a face detector on annotated group photos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, help="folder with groups.tsv (shared/faces/groups)"
    )
    parser.add_argument("--detector", choices=("mtcnn", "yolo"), default="mtcnn")
    parser.add_argument("--yolo-weights", default=None, help="YOLO face weights (.onnx / .pt)")
    parser.add_argument("--min-face-size", type=int, default=20)
    parser.add_argument("--min-score", type=float, default=None, help="final score threshold")
    parser.add_argument(
        "--no-yolo-tiling", action="store_true", help="one letterboxed YOLO pass, no tiles"
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per photo (median)")
    parser.add_argument("--only", default="", help="only photos whose name contains this")
    parser.set_defaults(func=run)
