"""LFW View-2 face verification: ``python -m ml.eval lfw --data ../shared/faces/lfw``.

Standard protocol: 10 folds of 300 same + 300 different pairs; each fold is scored with the cosine
threshold that is best on the other folds. Per image: MTCNN, the face closest to the image centre
(LFW images are centred on the labelled person), crop/align, embed crop and mirror, average.

The reusable part, image -> crop -> mirror-averaged embedding, is :class:`FaceCropper` and
:func:`embed_with_mirror`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ml.align import ALIGNMENTS, Alignment, centre_crop, crop_face
from ml.config import PipelineConfig
from ml.embedder import embed_plain_and_mirrored
from ml.eval.photos import load_rgb
from ml.eval.shared_data import shared_dir
from ml.fusion import FACENET, to_facenet_scale
from ml.pipeline import SecondaryModel
from ml.protocols import FaceDetector, FaceEmbedder, HeadSegmenter
from ml.segmentation import MaskFill, apply_head_mask
from ml.types import DetectedFace, Embeddings, RGBImage

logger = logging.getLogger(__name__)

DEFAULT_DATA = shared_dir() / "faces" / "lfw"
EMBED_CHUNK = 64
"""Images per embedding call: bounds memory, keeps the progress log moving."""


# -- reusable: image -> crop -> embedding -------------------------------------------------------


def central_face(
    faces: Sequence[DetectedFace], image_shape: tuple[int, ...]
) -> DetectedFace | None:
    """The face whose box centre is closest to the image centre (``None`` when there is none)."""
    if not faces:
        return None
    centre_x = image_shape[1] / 2
    centre_y = image_shape[0] / 2

    def distance(face: DetectedFace) -> float:
        x1, y1, x2, y2 = face.box
        return math.hypot((x1 + x2) / 2 - centre_x, (y1 + y2) / 2 - centre_y)

    return min(faces, key=distance)


@dataclass(frozen=True)
class FaceCropper:
    """Turns one face of an image into the embedder's input crop: optional head mask, then alignment."""

    alignment: Alignment = "similarity"
    size: int = 160
    segmenter: HeadSegmenter | None = None
    mask_fill: MaskFill = "blur"

    def crop(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        if self.segmenter is not None:
            image = apply_head_mask(image, self.segmenter.segment(image, face), fill=self.mask_fill)
        return crop_face(image, face, self.alignment, self.size)


def embed_with_mirror(
    embedder: FaceEmbedder, crops: Sequence[RGBImage], flip: bool = True
) -> Embeddings:
    """``(N, D)`` unit embeddings of ``crops``; with ``flip`` the crop and its mirror are averaged.

    The mirror average makes the embedding less sensitive to which way the head is turned
    (on LFW it mostly tightens the score distributions; see the numbers in the report).
    """
    if not flip:
        return embedder.embed(crops) if crops else np.zeros((0, embedder.dim), np.float32)
    return embed_plain_and_mirrored(embedder, crops)[1]


# -- LFW protocol -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LfwPair:
    first: str
    """Image path relative to the LFW folder."""
    second: str
    same: bool
    fold: int
    """0-based fold index."""


def _image_path(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_pairs(data_dir: Path) -> list[LfwPair]:
    """The 6,000 View-2 pairs of ``data_dir/pairs.txt`` with their fold (in file order)."""
    lines = (data_dir / "pairs.txt").read_text().splitlines()
    n_folds, per_class = (int(v) for v in lines[0].split())
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    if len(rows) != n_folds * 2 * per_class:
        raise ValueError(f"pairs.txt: expected {n_folds * 2 * per_class} pairs, found {len(rows)}")
    pairs = []
    for index, row in enumerate(rows):
        fold = index // (2 * per_class)
        if len(row) == 3:
            pairs.append(
                LfwPair(_image_path(row[0], row[1]), _image_path(row[0], row[2]), True, fold)
            )
        elif len(row) == 4:
            pairs.append(
                LfwPair(_image_path(row[0], row[1]), _image_path(row[2], row[3]), False, fold)
            )
        else:
            raise ValueError(f"pairs.txt line {index + 2}: cannot parse {row!r}")
    return pairs


def select_pairs(
    pairs: Sequence[LfwPair], folds: int, max_pairs: int | None = None
) -> list[LfwPair]:
    """The pairs of the first ``folds`` folds; ``max_pairs`` keeps that many per fold, half same, half different."""
    selected = []
    for fold in range(folds):
        in_fold = [p for p in pairs if p.fold == fold]
        if max_pairs is not None:
            same = [p for p in in_fold if p.same][: (max_pairs + 1) // 2]
            different = [p for p in in_fold if not p.same][: max_pairs // 2]
            in_fold = same + different
        selected.extend(in_fold)
    return selected


def best_threshold(similarities: npt.NDArray[np.float64], same: npt.NDArray[np.bool_]) -> float:
    """The cosine threshold (``same`` iff similarity >= threshold) with the highest accuracy.

    Exact search over every gap between sorted similarities; among equally good thresholds the
    middle one of the widest-scoring stretch is taken so the choice does not hug a sample.
    """
    order = np.argsort(similarities, kind="stable")
    sorted_sims = similarities[order]
    sorted_same = same[order]
    # Threshold between position i-1 and i: the first i are called different, the rest same.
    different_below = np.concatenate([[0], np.cumsum(~sorted_same)])
    same_above = np.concatenate([np.cumsum(sorted_same[::-1])[::-1], [0]])
    correct = different_below + same_above
    candidates = np.concatenate(
        [
            [sorted_sims[0] - 1e-6],
            (sorted_sims[:-1] + sorted_sims[1:]) / 2,
            [sorted_sims[-1] + 1e-6],
        ]
    )
    # Ties between equal similarities cannot be split; only gaps between distinct values count.
    valid = np.concatenate([[True], sorted_sims[1:] > sorted_sims[:-1], [True]])
    scores = np.where(valid, correct, -1)
    best = np.flatnonzero(scores == scores.max())
    return float(candidates[best[len(best) // 2]])


@dataclass(frozen=True)
class VerificationResult:
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    threshold_selection: str
    """``other folds`` (standard) or ``same fold`` (one fold only: optimistic)."""

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.fold_accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_accuracies))

    @property
    def threshold(self) -> float:
        return float(np.mean(self.fold_thresholds))


def cross_validated_accuracy(
    similarities: npt.ArrayLike, same: npt.ArrayLike, folds: npt.ArrayLike
) -> VerificationResult:
    """Per-fold accuracy with the threshold chosen on the other folds (on the fold itself if only one)."""
    sims = np.asarray(similarities, dtype=np.float64)
    labels = np.asarray(same, dtype=bool)
    fold_ids = np.asarray(folds)
    unique_folds = np.unique(fold_ids)
    accuracies = []
    thresholds = []
    for fold in unique_folds:
        test = fold_ids == fold
        train = ~test if len(unique_folds) > 1 else test
        threshold = best_threshold(sims[train], labels[train])
        accuracies.append(float(np.mean((sims[test] >= threshold) == labels[test])))
        thresholds.append(threshold)
    selection = "other folds" if len(unique_folds) > 1 else "same fold (optimistic)"
    return VerificationResult(tuple(accuracies), tuple(thresholds), selection)


@dataclass
class EmbeddingRun:
    """Embeddings of a set of LFW images, with what happened on the way."""

    embeddings: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    plain_embeddings: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    """Crop-only embeddings; with flip on they come for free and give the no-flip accuracy too."""
    no_detection: list[str] = field(default_factory=list)
    seconds: float = 0.0
    secondary: dict[str, dict[str, npt.NDArray[np.float32]]] = field(default_factory=dict)
    """Per secondary model (dlib), one embedding per image: of the detected face's own crop, or
    of a central box (:data:`FALLBACK_BOX`) when no face was detected."""


FALLBACK_BOX = (0.3, 0.3, 0.7, 0.7)
"""Secondary models' face box, as fractions of the image, for an image without a detection (LFW
images are centred on the labelled face, about 0.4 of the image wide)."""


def fallback_face(shape: tuple[int, ...]) -> DetectedFace:
    height, width = shape[:2]
    x1, y1, x2, y2 = FALLBACK_BOX
    return DetectedFace(
        box=(x1 * width, y1 * height, x2 * width, y2 * height),
        score=0.0,
        landmarks=np.zeros((5, 2), np.float32),
    )


def embed_lfw_images(
    data_dir: Path,
    relative_paths: Sequence[str],
    detector: FaceDetector,
    embedder: FaceEmbedder,
    cropper: FaceCropper,
    flip: bool = True,
    secondary: Sequence[SecondaryModel] = (),
) -> EmbeddingRun:
    """Detect, crop and embed every image; images without a face fall back to a centre crop.

    Each secondary model embeds the same face from its own crop (no mirror, as the pipeline does).
    """
    run = EmbeddingRun()
    started = time.perf_counter()
    names: list[str] = []
    crops: list[RGBImage] = []
    secondary_crops: dict[str, list[RGBImage]] = {model.name: [] for model in secondary}

    def flush() -> None:
        if flip:
            plain, averaged = embed_plain_and_mirrored(embedder, crops)
        else:
            plain = averaged = embed_with_mirror(embedder, crops, flip=False)
        for name, plain_row, row in zip(names, plain, averaged, strict=True):
            run.embeddings[name] = row
            run.plain_embeddings[name] = plain_row
        for model in secondary:
            model_crops = secondary_crops[model.name]
            rows = (
                model.embedder.embed(model_crops)
                if model_crops
                else np.zeros((0, model.embedder.dim), np.float32)
            )
            target = run.secondary.setdefault(model.name, {})
            for name, row in zip(names, rows, strict=True):
                target[name] = row
            model_crops.clear()
        names.clear()
        crops.clear()

    for index, relative in enumerate(relative_paths):
        image = load_rgb(data_dir / relative)
        face = central_face(detector.detect(image), image.shape)
        if face is None:
            run.no_detection.append(relative)
            crops.append(centre_crop(image, cropper.size))
        else:
            crops.append(cropper.crop(image, face))
        for model in secondary:
            secondary_crops[model.name].append(
                model.cropper.crop(image, face or fallback_face(image.shape))
            )
        names.append(relative)
        if len(crops) >= EMBED_CHUNK:
            flush()
        if (index + 1) % 500 == 0:
            elapsed = time.perf_counter() - started
            logger.info(
                "%d/%d images, %.1f images/s", index + 1, len(relative_paths), (index + 1) / elapsed
            )
    flush()
    run.seconds = time.perf_counter() - started
    return run


def pair_similarities(
    pairs: Sequence[LfwPair], embeddings: dict[str, npt.NDArray[np.float32]]
) -> npt.NDArray[np.float64]:
    """Cosine similarity of each pair (embeddings are unit rows)."""
    return np.array(
        [float(np.dot(embeddings[p.first], embeddings[p.second])) for p in pairs], dtype=np.float64
    )


# -- command line -------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "lfw",
        help="LFW View-2 verification accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LFW folder with pairs.txt")
    parser.add_argument("--folds", type=int, default=10, help="evaluate the first K folds (1-10)")
    parser.add_argument(
        "--max-pairs", type=int, default=None, help="pairs per fold (half same, half different)"
    )
    parser.add_argument("--alignment", choices=ALIGNMENTS, default=PipelineConfig.alignment)
    parser.add_argument("--segment", action="store_true", help="mask the background with GrabCut")
    parser.add_argument("--mask-fill", choices=("grey", "blur"), default="blur")
    parser.add_argument(
        "--no-flip", action="store_true", help="embed the crop only, not its mirror"
    )
    parser.add_argument(
        "--embedders",
        choices=("facenet", "facenet+dlib"),
        default="+".join(PipelineConfig.embedders),
        help="face models: each one's accuracy, and the fused score's (ml.fusion)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that ``python -m ml.eval --help`` stays fast and needs no model.
    from ml.detection import create_detector
    from ml.embedder import FaceNetEmbedder
    from ml.factory import build_secondary
    from ml.segmentation import GrabCutHeadSegmenter
    from ml.weights.cache import default_cache_dir

    data_dir: Path = args.data
    if not (data_dir / "pairs.txt").is_file():
        logger.error("no pairs.txt in %s", data_dir)
        return 2
    all_pairs = read_pairs(data_dir)
    n_folds = max(p.fold for p in all_pairs) + 1
    if not 1 <= args.folds <= n_folds:
        logger.error("--folds must be between 1 and %d", n_folds)
        return 2
    if args.max_pairs is not None and args.max_pairs < 2:
        logger.error("--max-pairs must be at least 2")
        return 2
    pairs = select_pairs(all_pairs, args.folds, args.max_pairs)
    images = sorted({p.first for p in pairs} | {p.second for p in pairs})
    flip = not args.no_flip
    logger.info(
        "LFW: %d pairs in %d folds, %d images; alignment=%s segment=%s flip=%s",
        len(pairs),
        args.folds,
        len(images),
        args.alignment,
        args.segment,
        flip,
    )

    detector = create_detector("mtcnn", yolo_weights=None, min_face_size=20)
    embedder = FaceNetEmbedder(batch_size=args.batch_size)
    segmenter = GrabCutHeadSegmenter() if args.segment else None
    cropper = FaceCropper(args.alignment, embedder.input_size, segmenter, args.mask_fill)
    secondary = [
        build_secondary(name, default_cache_dir()) for name in args.embedders.split("+")[1:]
    ]
    run_result = embed_lfw_images(data_dir, images, detector, embedder, cropper, flip, secondary)

    same = [p.same for p in pairs]
    folds = [p.fold for p in pairs]
    result = cross_validated_accuracy(pair_similarities(pairs, run_result.embeddings), same, folds)
    # The crop-only embeddings of the same run: the accuracy without mirror averaging.
    plain = cross_validated_accuracy(
        pair_similarities(pairs, run_result.plain_embeddings), same, folds
    )
    images_per_second = len(images) / max(run_result.seconds, 1e-9)
    out = sys.stdout
    out.write(f"LFW View-2, {args.folds} fold(s), {len(pairs)} pairs, {len(images)} images\n")
    out.write(f"alignment={args.alignment} segment={args.segment} flip={flip}\n")
    for fold, (accuracy, threshold) in enumerate(
        zip(result.fold_accuracies, result.fold_thresholds, strict=True), start=1
    ):
        out.write(
            f"  fold {fold:2d}: accuracy {accuracy:.4f} at cosine threshold {threshold:.4f}\n"
        )
    out.write(
        f"accuracy {result.accuracy:.4f} +- {result.std:.4f} (threshold chosen on {result.threshold_selection})\n"
    )
    if flip:
        out.write(f"without mirror averaging: {plain.accuracy:.4f} +- {plain.std:.4f}\n")
    out.write(f"no detection (centre crop used): {len(run_result.no_detection)} images\n")
    per_model = {FACENET: pair_similarities(pairs, run_result.embeddings)}
    for name, embeddings in run_result.secondary.items():
        per_model[name] = pair_similarities(pairs, embeddings)
    models_summary: dict[str, object] = {}
    for name, scores in per_model.items():
        model_result = cross_validated_accuracy(scores, same, folds)
        models_summary[name] = {
            "accuracy": round(model_result.accuracy, 5),
            "std": round(model_result.std, 5),
            "pair_score_mean": round(float(scores.mean()), 4),
            "pair_score_std": round(float(scores.std()), 4),
        }
        out.write(
            f"{name}: accuracy {model_result.accuracy:.4f} +- {model_result.std:.4f}; "
            f"pair scores mean {scores.mean():.4f} std {scores.std():.4f} (ml.fusion.SCORE_SCALES)\n"
        )
    fused_summary = None
    if len(per_model) > 1:
        fused = np.mean([to_facenet_scale(m, v) for m, v in per_model.items()], axis=0)
        fused_result = cross_validated_accuracy(fused, same, folds)
        fused_summary = {
            "accuracy": round(fused_result.accuracy, 5),
            "std": round(fused_result.std, 5),
        }
        out.write(
            f"fused ({'+'.join(per_model)}): accuracy {fused_result.accuracy:.4f} +- {fused_result.std:.4f}\n"
        )
    out.write(f"{images_per_second:.1f} images/s ({run_result.seconds:.1f} s)\n")
    summary = {
        "accuracy": round(result.accuracy, 5),
        "std": round(result.std, 5),
        "threshold": round(result.threshold, 5),
        "images_per_second": round(images_per_second, 2),
        "folds": args.folds,
        "alignment": args.alignment,
        "segment": args.segment,
        "mask_fill": args.mask_fill if args.segment else None,
        "flip": flip,
        "pairs": len(pairs),
        "images": len(images),
        "no_detection": len(run_result.no_detection),
        "threshold_selection": result.threshold_selection,
        "fold_accuracies": [round(a, 5) for a in result.fold_accuracies],
        "accuracy_no_flip": round(plain.accuracy, 5),
        "std_no_flip": round(plain.std, 5),
        "models": models_summary,
        "fused": fused_summary,
    }
    out.write(json.dumps(summary) + "\n")
    out.flush()
    return 0
