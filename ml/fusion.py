"""Score-level fusion of several face embedders into one similarity on FaceNet's cosine scale.

FaceNet CASIA-WebFace and dlib's ResNet fail on different faces, so averaging their (normalised)
cosines separates students from strangers better than either alone (docs/accuracy.md, "Measured accuracy").
Each model's cosine ``c`` is z-normalised with that model's mean and spread of LFW View-2 pair scores
and mapped onto FaceNet's scale: ``mu_F + sigma_F * (c - mu_m) / sigma_m``. The fused similarity is
the mean of the mapped cosines of the models both sides have. With FaceNet alone it is exactly
FaceNet's raw cosine, so the FaceNet-only threshold keeps its meaning, and a student whose second
model's embeddings are not computed yet is compared on FaceNet alone, on the same scale.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FACENET = "facenet"
DLIB = "dlib"
KNOWN_MODELS = (FACENET, DLIB)
"""Every embedder the pipeline can run, the first is the primary one (always present)."""


@dataclass(frozen=True)
class ScoreScale:
    """Mean and standard deviation of a model's cosine over the 6,000 LFW View-2 pairs
    (3,000 genuine, 3,000 impostor), crop as the pipeline cuts it."""

    mean: float
    std: float


# Measured 2026-11-29 over the 6,000 LFW View-2 pairs of ../shared/faces/lfw with the pipeline's own
# faces (MTCNN, the face nearest the centre; FaceNet: margin crop, crop + mirror averaged; dlib: its
# 5-point chip of the MTCNN box, one pass): `python -m ml.eval lfw --data ../shared/faces/lfw` prints
# them per model ("pair scores mean ... std ..."). With them the fused LFW accuracy is 99.32 % +- 0.38
# (FaceNet alone 98.63 %, dlib alone 98.75 %).
SCORE_SCALES: Mapping[str, ScoreScale] = {
    FACENET: ScoreScale(mean=0.3720, std=0.3538),
    DLIB: ScoreScale(mean=0.8922, std=0.0663),
}


def to_facenet_scale(model: str, cosines: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """A model's cosines mapped onto FaceNet's cosine scale (identity for FaceNet)."""
    values = np.asarray(cosines, dtype=np.float64)
    if model == FACENET:
        return values
    scale = SCORE_SCALES[model]
    reference = SCORE_SCALES[FACENET]
    result: npt.NDArray[np.float64] = reference.mean + reference.std * (
        (values - scale.mean) / scale.std
    )
    return result


def fuse(
    cosines: Mapping[str, npt.NDArray[np.float32]],
    available: Mapping[str, npt.NDArray[np.bool_]],
) -> npt.NDArray[np.float32]:
    """``(F, S)`` fused similarity: per student, the mean of the mapped cosines of the models that
    student has (``available[model]`` is ``(S,)``); FaceNet must be among them for every student."""
    if FACENET not in cosines:
        raise ValueError("fusion needs FaceNet cosines")
    total = np.zeros_like(cosines[FACENET], dtype=np.float64)
    count = np.zeros(cosines[FACENET].shape[1], dtype=np.float64)
    for model, matrix in cosines.items():
        mask = available[model]
        mapped = to_facenet_scale(model, matrix)
        total += np.where(mask[None, :], mapped, 0.0)
        count += mask
    if np.any(count == 0):
        raise ValueError("a student has no embeddings from any model in use")
    fused: npt.NDArray[np.float32] = (total / count[None, :]).astype(np.float32)
    return fused


@dataclass(frozen=True)
class OpenSetCalibration:
    """The stage-1 threshold (``ml.matching.cohort_scores``) that accepts the target share of
    strangers, as a function of the class's size ``N`` and the number ``S`` of people a face is
    compared with (the class plus the school's other students, ``ml.matching.Cohort``):

    ``t = c0 + c1 u + c2 w + c3 w^2 + c4 u w + c5 u^2`` with ``u = ln N`` and ``w = ln(S / N)``,
    ``u`` and ``w`` clamped to the ranges it was fitted on (no extrapolation: a bigger class or
    school gets the threshold of the largest measured).
    """

    coefficients: tuple[float, float, float, float, float, float]
    max_class_size: int
    """Largest class it was fitted on."""
    max_school_ratio: float
    """Largest ``S / N`` it was fitted on."""
    target: float
    """Share of strangers the fitted threshold accepts (the calibration class's)."""

    def threshold(self, class_size: int, cohort_size: int = 0) -> float:
        if class_size < 1 or cohort_size < 0:
            raise ValueError("class_size must be >= 1 and cohort_size >= 0")
        u = math.log(min(class_size, self.max_class_size))
        w = min(math.log((class_size + cohort_size) / class_size), math.log(self.max_school_ratio))
        c0, c1, c2, c3, c4, c5 = self.coefficients
        return c0 + c1 * u + c2 * w + c3 * w * w + c4 * u * w + c5 * u * u


# Open-set calibration, per set of models in use (docs/accuracy.md, "Telling strangers apart"). Fitted on the
# one-shot split's calibration halves (LFW identities with >= 3 photos registered from their first
# photo; strangers: the identities with 1-2 photos; 10 seeded splits, 8 random classes per split
# and size) for classes of 5-300 students and school cohorts of 0-370 other students, at the
# threshold accepting 0.7 % of strangers, the margin below the 1 % target: the held-out halves
# accepted 0.59-0.81 % on average for every size (split to split sd 0.1-0.26 points, the noise of
# ~2,150 stranger photos; the worst split 1.12 %). A class without a school cohort of 5 / 30 / 100
# / 373 students gets 0.408 / 0.388 / 0.380 / 0.375; a school cohort lowers it (a class of 30 among
# 500 students: 0.301, among 1,000: 0.291). Fitted 2026-12-06 with
# `uv run --group bench python -m bench --sections school` (docs/benchmarks.md, "Threshold with a
# margin": the section refits them and shows the committed ones beside).
OPEN_SET_CALIBRATIONS: Mapping[frozenset[str], OpenSetCalibration] = {
    frozenset({FACENET, DLIB}): OpenSetCalibration(
        (0.43305, -0.01784, -0.06854, 0.00448, 0.00736, 0.00136),
        max_class_size=373,
        max_school_ratio=75.0,
        target=0.007,
    ),
}

REFERENCE_CLASS_SIZE = 30
"""The class size :func:`default_unknown_threshold` quotes the threshold for (a typical class)."""

# FaceNet alone (not the default): its own fixed threshold, docs/accuracy.md, "Telling strangers apart".
FIXED_UNKNOWN_THRESHOLDS: Mapping[frozenset[str], float] = {frozenset({FACENET}): 0.41}


def open_set_threshold(models: Collection[str], *, class_size: int, cohort_size: int = 0) -> float:
    """The calibrated stage-1 threshold for a decision on ``models`` in a class of ``class_size``
    students matched together with ``cohort_size`` students of other classes."""
    key = frozenset(models)
    if key in OPEN_SET_CALIBRATIONS:
        return round(OPEN_SET_CALIBRATIONS[key].threshold(class_size, cohort_size), 4)
    if key in FIXED_UNKNOWN_THRESHOLDS:
        return FIXED_UNKNOWN_THRESHOLDS[key]
    raise ValueError(f"no calibrated threshold for models {sorted(key)}")


def default_unknown_threshold(models: Collection[str]) -> float:
    """The calibrated threshold for the models a decision uses, in a class of
    :data:`REFERENCE_CLASS_SIZE` without a school cohort (what one number can say; a decision
    applies :func:`open_set_threshold` for its own class and cohort)."""
    return open_set_threshold(models, class_size=REFERENCE_CLASS_SIZE)
