"""Confirmed faces as extra gallery samples: which faces qualify, and which of a student's are kept.

A *sample* is the embedding of a face from a real class photo that a teacher assigned to a student,
or that recognition named with a high margin (:class:`AutoConfirmRule`). Samples join the student's
registration photos in the gallery (``ml.matching.Gallery.from_photos``: one template per photo)
and give the projection head what augmented copies of one photo cannot: real positives from other
photos. Provenance (session, photo, who confirmed) is the service's business; here a sample is an
id, an embedding and a time.

The figures below come from the simulated term, ``python -m bench --sections term``
(docs/benchmarks.md, "Learning from confirmed faces"), measured 2026-11-29.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ml.matching import l2_normalize
from ml.types import Embeddings

DEFAULT_MAX_SAMPLES = 4
"""Samples kept per student: the smallest bound that named as many faces right as keeping every
sample, in both scenarios of the simulated term (LFW, 153 students, weeks 5-13, teacher +
auto-confirm, mean template): named right 97.8 % with 4 in classes of 30 (1: 97.1 %, 2: 98.3 %, 8
and unbounded: 97.6 %) and 96.4 % with 4 in one class of 153 (1: 95.7 %, 2: 96.1 %, 8 and
unbounded: 96.4 %), no wrong name with any bound. Measured 2026-11-29 with
``python -m bench --sections term``."""

RECENT_SHARE = 0.5
"""Share of the kept samples that are simply the newest (faces change over a term); the rest are
chosen for diversity."""


@dataclass(frozen=True)
class Sample:
    """One confirmed face of a student: an opaque id, the primary model's (FaceNet) embedding, on
    which diversity is judged, and when it was taken (any monotone clock, e.g. epoch seconds)."""

    sample_id: str
    embedding: npt.NDArray[np.float32]
    taken_at: float


@dataclass(frozen=True)
class SampleSelection:
    """Which samples a student keeps (newest first) and which are dropped."""

    kept: tuple[str, ...]
    dropped: tuple[str, ...]


def select_samples(
    samples: Sequence[Sample],
    limit: int = DEFAULT_MAX_SAMPLES,
    *,
    reference: Embeddings | None = None,
    recent_share: float = RECENT_SHARE,
) -> SampleSelection:
    """Keep at most ``limit`` samples: the ``ceil(recent_share * limit)`` newest, then, one at a
    time, the sample least like anything kept so far (lowest best cosine with the kept samples and
    with ``reference``, e.g. the student's registration templates), newer first on ties.

    Deterministic (ties on time broken by id). A sample that is far from everything is kept for
    diversity, so a wrong face is removed by deleting it, not by the bound; the auto-confirm rule
    keeps wrong faces out in the first place.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if not 0.0 <= recent_share <= 1.0:
        raise ValueError("recent_share must be within [0, 1]")
    ids = [s.sample_id for s in samples]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate sample id")
    newest_first = sorted(samples, key=lambda s: (-s.taken_at, s.sample_id))
    if len(newest_first) <= limit:
        return SampleSelection(tuple(s.sample_id for s in newest_first), ())
    n_recent = min(limit, math.ceil(recent_share * limit))
    kept = list(range(n_recent))
    candidates = list(range(n_recent, len(newest_first)))
    if limit > n_recent:
        vectors = l2_normalize(np.stack([np.ravel(s.embedding) for s in newest_first]))
        anchors = [vectors[i] for i in kept]
        if reference is not None and len(reference):
            anchors.extend(l2_normalize(np.atleast_2d(reference)))
        nearest = (
            (vectors[candidates] @ np.stack(anchors).T).max(axis=1)
            if anchors
            else np.full(len(candidates), -np.inf, np.float32)
        )
        while len(kept) < limit:
            pick = int(np.argmin(nearest))  # first minimum: the newest among equals
            chosen = candidates.pop(pick)
            kept.append(chosen)
            nearest = np.delete(nearest, pick)
            if candidates:
                nearest = np.maximum(nearest, vectors[candidates] @ vectors[chosen])
    kept_set = set(kept)
    return SampleSelection(
        tuple(newest_first[i].sample_id for i in sorted(kept_set)),
        tuple(s.sample_id for i, s in enumerate(newest_first) if i not in kept_set),
    )


class ScoredMatch(Protocol):
    """What the rule reads of a decision (``ml.matching.MatchDecision``, ``ml.pipeline.FaceMatch``)."""

    @property
    def student_id(self) -> str | None: ...
    @property
    def score(self) -> float: ...
    @property
    def similarity(self) -> float: ...
    @property
    def runner_up_similarity(self) -> float | None: ...


@dataclass(frozen=True)
class AutoConfirmRule:
    """A recognised face becomes a sample without a teacher only when recognition was sure: its
    stage-1 score clears the threshold by ``min_score_margin`` *and* its similarity beats every
    other student's by ``min_runner_up_gap``.

    The defaults add no wrong face on the benchmarks. Of the faces named at the default threshold
    in the one-shot section's two LFW classes (373-374 students, each probe alone, registration
    photo only: 2,305 named, 47 wrongly, strangers included) the wrong ones reached at most 0.081
    over the threshold, and in the simulated term (5,957 named, 5 wrongly) at most 0.027. A margin
    of 0.1 takes none of them; the runner-up gap of 0.2 is a second guard for faces near that
    bound (at a margin of 0.05 it cuts the wrong faces taken from 10 to 2) and costs few right
    ones: the pair takes 65 % of the right faces in the one-shot classes and 83 % in the term
    (a margin of 0.1 alone: 67 % and 84 %). Measured 2026-11-29 with
    ``python -m bench --sections term`` (docs/benchmarks.md, "Choosing the auto-confirm rule").
    """

    min_score_margin: float = 0.1
    min_runner_up_gap: float = 0.2

    def confirms(self, decision: ScoredMatch, threshold: float) -> bool:
        if decision.student_id is None:
            return False
        if decision.score - threshold < self.min_score_margin:
            return False
        if decision.runner_up_similarity is None:
            return True
        return decision.similarity - decision.runner_up_similarity >= self.min_runner_up_gap


DEFAULT_AUTO_CONFIRM = AutoConfirmRule()
"""The service default (a setting)."""
