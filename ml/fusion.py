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


# Open-set thresholds on the cohort-normalised score (``ml.matching.cohort_scores``), per set of
# models in use. FaceNet alone: 0.41, docs/accuracy.md, "Telling strangers apart". Fused: the threshold that
# accepts 1 % of the strangers of the one-shot calibration class (LFW, 374 students, 2,192 stranger
# probes: 0.3596), which on the held-out test class (373 students) accepted 1.16 % of strangers,
# named 86.6 % of students right and none wrong (FaceNet alone at its 0.41: 74.5 %). The same 1 %
# threshold measured 0.35-0.39 for random classes of 25, 50, 100 and 250 students (5 draws each) and
# 0.35-0.44 for classes of 5: it does not drift with the class size. Measured 2026-11-29 with
# `python -m bench --sections oneshot` (docs/benchmarks.md, "One-shot").
DEFAULT_UNKNOWN_THRESHOLDS: Mapping[frozenset[str], float] = {
    frozenset({FACENET}): 0.41,
    frozenset({FACENET, DLIB}): 0.36,
}


def default_unknown_threshold(models: Collection[str]) -> float:
    """The calibrated default threshold for the models a decision uses."""
    key = frozenset(models)
    if key not in DEFAULT_UNKNOWN_THRESHOLDS:
        raise ValueError(f"no calibrated threshold for models {sorted(key)}")
    return DEFAULT_UNKNOWN_THRESHOLDS[key]
