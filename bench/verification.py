"""LFW View-2 verification, every system on the same pairs, the protocol of ``ml.eval.lfw``.

Rollcall is scored fused (the default: each model's cosine mapped onto FaceNet's scale and averaged,
``ml.fusion``) and FaceNet alone, both from the same per-photo embeddings (one computation).

10 folds of 300 same + 300 different pairs; each fold is scored with the threshold that is best on
the other nine (``ml.eval.lfw.cross_validated_accuracy``); mean and standard deviation over folds.
face_recognition is also scored at its fixed default tolerance (distance <= 0.6).

Photos where a system finds no face are counted and scored two ways, identically for both systems:
*strict*, every pair that contains such a photo is called "different" (a failure costs the
same pairs it would cost a user); *fallback*, the photo is embedded from a fixed central box.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import BenchContext, JsonDict, rounded
from bench.systems import (
    FACENET_ALONE,
    FaceRecognitionSystem,
    FaceSystem,
    ImageEmbeddings,
    RollcallSystem,
    embed_images,
    face_recognition_available,
)
from ml.eval.lfw import LfwPair, cross_validated_accuracy, read_pairs, select_pairs

logger = logging.getLogger(__name__)

QUICK_FOLDS = 2
QUICK_PAIRS_PER_FOLD = 100
FAILED = -1e9
"""Score given to a pair with a photo where no face was found (strict policy): always 'different'."""


def fused_pair_scores(
    first: Mapping[str, npt.NDArray[np.float32]], second: Mapping[str, npt.NDArray[np.float32]]
) -> npt.NDArray[np.float64]:
    """Per pair, the mean over models of the model's cosine mapped onto FaceNet's scale
    (``ml.fusion.to_facenet_scale``): ``ml.fusion.fuse`` for two photos that have every model.
    With FaceNet alone (or one unnamed embedding) it is the plain cosine."""
    from ml.fusion import to_facenet_scale

    mapped = [
        to_facenet_scale(model, np.sum(first[model].astype(np.float64) * second[model], axis=1))
        if model
        else np.sum(first[model].astype(np.float64) * second[model], axis=1)
        for model in first
    ]
    return np.asarray(np.mean(mapped, axis=0), dtype=np.float64)


def pair_scores(
    pairs: list[LfwPair], run: ImageEmbeddings, metric: str, strict: bool
) -> npt.NDArray[np.float64]:
    """Similarity per pair, higher = more alike (negative distance for euclidean)."""
    index = {p: i for i, p in enumerate(run.paths)}
    first_rows = [index[p.first] for p in pairs]
    second_rows = [index[p.second] for p in pairs]
    if metric == "cosine":
        scores = fused_pair_scores(run.by_model(first_rows), run.by_model(second_rows))
    else:
        first = run.embeddings[first_rows].astype(np.float64)
        second = run.embeddings[second_rows].astype(np.float64)
        scores = -np.linalg.norm(first - second, axis=1)
    if strict:
        found = run.faces_found > 0
        ok = found[[index[p.first] for p in pairs]] & found[[index[p.second] for p in pairs]]
        scores = np.where(ok, scores, FAILED)
    return np.asarray(scores, dtype=np.float64)


def fixed_threshold_accuracy(
    scores: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_],
    folds: npt.NDArray[np.int64],
    threshold: float,
) -> tuple[float, float]:
    """Mean and std over folds of the accuracy at one fixed threshold (``same`` iff score >= it)."""
    per_fold = [
        float(np.mean((scores[folds == f] >= threshold) == same[folds == f]))
        for f in np.unique(folds)
    ]
    return float(np.mean(per_fold)), float(np.std(per_fold))


def evaluate(system: FaceSystem, run: ImageEmbeddings, pairs: list[LfwPair]) -> JsonDict:
    same = np.array([p.same for p in pairs], dtype=bool)
    folds = np.array([p.fold for p in pairs], dtype=np.int64)
    row = {path: i for i, path in enumerate(run.paths)}
    failed = {path for path in run.paths if run.faces_found[row[path]] == 0}
    result: JsonDict = {
        "label": system.label,
        "models": list(system.models),
        "photos": len(run.paths),
        "photos_without_face": int((run.faces_found == 0).sum()),
        "photos_computed_this_run": run.computed,
        "pairs_with_a_failed_photo": sum(1 for p in pairs if {p.first, p.second} & failed),
    }
    for policy, strict in (("strict", True), ("fallback", False)):
        scores = pair_scores(pairs, run, system.metric, strict)
        cv = cross_validated_accuracy(scores, same, folds)
        threshold = cv.threshold if system.metric == "cosine" else -cv.threshold
        entry: JsonDict = {
            "accuracy": rounded(cv.accuracy, 5),
            "std": rounded(cv.std, 5),
            "threshold_mean": rounded(threshold, 4),
            "fold_accuracies": [rounded(a, 5) for a in cv.fold_accuracies],
            "threshold_selection": cv.threshold_selection,
        }
        if system.metric == "euclidean":
            accuracy, std = fixed_threshold_accuracy(scores, same, folds, -system.default_threshold)
            entry["default_tolerance_accuracy"] = rounded(accuracy, 5)
            entry["default_tolerance_std"] = rounded(std, 5)
            entry["default_tolerance"] = system.default_threshold
        result[policy] = entry
    return result


def run(ctx: BenchContext) -> JsonDict:
    all_pairs = read_pairs(ctx.lfw_dir)
    if ctx.quick:
        pairs = select_pairs(all_pairs, QUICK_FOLDS, QUICK_PAIRS_PER_FOLD)
    else:
        pairs = select_pairs(all_pairs, max(p.fold for p in all_pairs) + 1)
    photos = sorted({p.first for p in pairs} | {p.second for p in pairs})
    ours = RollcallSystem()
    systems: list[tuple[FaceSystem, FaceSystem]] = [
        (ours, ours),
        (ours.variant(FACENET_ALONE), ours),
    ]
    if face_recognition_available():
        peer = FaceRecognitionSystem()
        systems.append((peer, peer))
    results: dict[str, Any] = {}
    runs: dict[str, ImageEmbeddings] = {}
    for system, computed_by in systems:
        # Each photo is embedded once by the fused pipeline; FaceNet alone reads its columns.
        if computed_by.name not in runs:
            cache = ctx.cache("lfw", computed_by.name, computed_by.config())
            runs[computed_by.name] = embed_images(computed_by, ctx.lfw_dir, photos, cache)
        run_result = runs[computed_by.name]
        if system is not computed_by:
            run_result = run_result.select(system.models)
        results[system.name] = evaluate(system, run_result, pairs)
        logger.info("verification %s: %s", system.name, results[system.name]["strict"])
    return {
        "protocol": {
            "dataset": "LFW View-2 (pairs.txt)",
            "folds": len({p.fold for p in pairs}),
            "pairs": len(pairs),
            "photos": len(photos),
            "threshold_selection": "best on the other folds (ml.eval.lfw.cross_validated_accuracy)",
            "no_face_policy": (
                "strict: a pair with a photo without a face is called different; "
                "fallback: that photo is embedded from the central box (0.3-0.7 of each side)"
            ),
            "multiple_faces": "the face nearest the image centre",
            "published_reference": {"dlib": 0.9938, "facenet_casia_webface": 0.9905},
        },
        "systems": results,
        "peer_available": face_recognition_available(),
    }
