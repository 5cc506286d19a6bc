"""Score-level fusion of several face embedders into one similarity on FaceNet's cosine scale.

FaceNet CASIA-WebFace and dlib's ResNet fail on different faces, so averaging their (normalised)
cosines separates students from strangers better than either alone (README, "Measured accuracy").
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


# Measured 2026-11-29 on ../shared/faces/lfw with the pipeline's MTCNN faces (FaceNet: margin crop,
# crop + mirror averaged; dlib: its 5-point chip of the MTCNN box):
# `python -m ml.eval lfw --data ../shared/faces/lfw` prints these per model ("pair scores").
SCORE_SCALES: Mapping[str, ScoreScale] = {
    FACENET: ScoreScale(mean=0.3586, std=0.3123),
    DLIB: ScoreScale(mean=0.7838, std=0.1225),
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
# models in use. FaceNet alone: README, "Telling strangers apart". Fused: the 1%-false-accept
# threshold of LFW strangers, measured for classes of 5 to 500 students with
# `python -m ml.eval oneshot --data ../shared/faces/lfw --max-enrolled 500 --max-strangers 500`
# (README, "Telling strangers apart"), with a small margin.
DEFAULT_UNKNOWN_THRESHOLDS: Mapping[frozenset[str], float] = {
    frozenset({FACENET}): 0.41,
    frozenset({FACENET, DLIB}): 0.41,
}


def default_unknown_threshold(models: Collection[str]) -> float:
    """The calibrated default threshold for the models a decision uses."""
    key = frozenset(models)
    if key not in DEFAULT_UNKNOWN_THRESHOLDS:
        raise ValueError(f"no calibrated threshold for models {sorted(key)}")
    return DEFAULT_UNKNOWN_THRESHOLDS[key]
