"""Two-stage open-set matching of probe faces against a class gallery.

Stage 1 rejects strangers: a face whose raw 512-D cosine against every student, normalised
against the rest of the class (see ``cohort_scores``), stays below the unknown threshold is
unknown. Stage 2 decides between the enrolled students whose raw score is close to the best one, where the projection head (if any, and if it knows them) re-ranks. Finally a
joint assignment over the whole photo guarantees that a student is named on at most one face.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from ml.fusion import FACENET, default_unknown_threshold, fuse
from ml.head import ProjectionHead
from ml.types import Embeddings
from ml.vectors import (
    l2_normalize as l2_normalize,
)  # re-exported: tests and bench import it from here

# Open-set calibration, measured with `python -m ml.eval oneshot` (docs/accuracy.md, "Telling strangers apart").
# A stranger's best raw cosine against N students is the maximum of N impostor scores, so with raw
# cosine the threshold that holds false accepts at 1% climbs with the class size (measured on LFW:
# 0.42 for 2 students, 0.60 for 100, 0.65 for 437). Normalising against the class itself as a
# cohort removes that drift: a face is scored against a student by its raw cosine minus half its
# best cosine with any *other* student. A stranger resembles many students about equally and loses
# most of its score; a student stands out from the rest of the class. The 1%-false-accept threshold
# of this score measured 0.38-0.39 for every class size from 5 to 437 students, and it named more
# students right than raw cosine at the same false-accept rate for classes of 25 and more.
COHORT_WEIGHT = 0.5
DEFAULT_UNKNOWN_THRESHOLD = default_unknown_threshold((FACENET,))
"""FaceNet alone: cohort-normalised score below which a face is unknown (1% false accepts, with a
small margin). Fused models have their own (``ml.fusion.DEFAULT_UNKNOWN_THRESHOLDS``)."""

STAGE2_MARGIN = 0.08
"""Students whose raw cosine is within this of the face's best raw cosine are re-ranked by the head."""
HEAD_WEIGHT = 0.5
"""Weight of the head's similarity in the stage-2 score (the rest is the raw cosine)."""

_FORBIDDEN = -1e6


def cohort_scores(
    raw: npt.NDArray[np.float32], weight: float = COHORT_WEIGHT
) -> npt.NDArray[np.float32]:
    """``raw[f, s] - weight * max(raw[f, s'] for s' != s)``: the stage-1 acceptance score.

    With a single student there is no cohort and the score is the raw cosine.
    """
    n_faces, n_students = raw.shape
    if n_students < 2 or n_faces == 0:
        return raw.astype(np.float32)
    order = np.argsort(raw, axis=1)
    rows = np.arange(n_faces)
    best_index = order[:, -1]
    best = raw[rows, best_index]
    second = raw[rows, order[:, -2]]
    others = np.repeat(best[:, None], n_students, axis=1)
    others[rows, best_index] = second
    result: npt.NDArray[np.float32] = (raw - weight * others).astype(np.float32)
    return result


ProbeEmbeddings = Embeddings | Mapping[str, Embeddings]
"""Probe faces: FaceNet embeddings ``(F, 512)``, or one ``(F, D)`` matrix per model (FaceNet included)."""


def probes_by_model(probes: ProbeEmbeddings) -> dict[str, Embeddings]:
    if isinstance(probes, Mapping):
        if FACENET not in probes:
            raise ValueError("probe embeddings need FaceNet's")
        return {model: l2_normalize(np.atleast_2d(matrix)) for model, matrix in probes.items()}
    return {FACENET: l2_normalize(np.atleast_2d(probes))}


@dataclass(frozen=True)
class ModelTemplates:
    """One secondary model's templates: a row per student, zero where the student has none yet."""

    templates: Embeddings
    available: npt.NDArray[np.bool_]


class TemplateCombination(StrEnum):
    """How a student's photos (registration photos and confirmed samples) make one score."""

    MEAN = "mean"
    """Cosine with the re-normalised mean of the per-photo templates (one template per student)."""
    MAX = "max"
    """Best cosine over the per-photo templates (nearest photo of the student)."""


DEFAULT_TEMPLATE_COMBINATION = TemplateCombination.MEAN
"""Chosen by the simulated term (LFW, 153 students each registered from one photo, weekly sessions
with a teacher's corrections; ``python -m bench --sections term``, docs/benchmarks.md, "Learning
from confirmed faces", 2026-11-29): the mean named more faces right than the best photo (max) in
weeks 2-4 (classes of 30: 97.8 % vs 96.5 %; one class of 153: 93.3 % vs 91.9 %) and as many or
more in weeks 5-13 (97.8 % vs 97.4 %; 96.4 % both), with no wrong name either way, and it costs
one template per student however many samples it keeps."""


@dataclass(frozen=True)
class PhotoTemplates:
    """One model's per-photo templates: a unit row per photo and the student row it belongs to."""

    templates: Embeddings
    owners: npt.NDArray[np.intp]

    def best_per_student(self, probes: Embeddings, n_students: int) -> npt.NDArray[np.float32]:
        """``(F, S)`` best cosine of each probe over each student's photos (0 where none)."""
        photo_scores = probes @ self.templates.T
        best = np.full((n_students, probes.shape[0]), -np.inf, dtype=np.float32)
        np.maximum.at(best, self.owners, photo_scores.T.astype(np.float32))
        best[~np.isfinite(best)] = 0.0
        result: npt.NDArray[np.float32] = best.T.copy()
        return result


class Gallery:
    """The enrolled students of one class: one unit-norm template per student and model, plus the
    FaceNet views (for the projection head). Built by :meth:`from_photos` it also keeps one template
    per photo (registration photos and confirmed samples, ``ml.samples``), which the ``MAX``
    combination scores against.

    ``templates`` and ``views`` are FaceNet's (the primary model, every student has them);
    ``secondary`` holds the other models' templates, with which students have them.
    """

    def __init__(
        self,
        student_ids: Sequence[str],
        templates: Embeddings,
        views: Sequence[Embeddings],
        secondary: Mapping[str, ModelTemplates] | None = None,
        *,
        photos: Mapping[str, PhotoTemplates] | None = None,
        combination: TemplateCombination = TemplateCombination.MEAN,
    ):
        if len(student_ids) != len(set(student_ids)):
            raise ValueError("duplicate student id in gallery")
        if templates.shape[0] != len(student_ids) or len(views) != len(student_ids):
            raise ValueError("one template and one view matrix per student")
        for model, extra in (secondary or {}).items():
            if model == FACENET:
                raise ValueError("FaceNet is the primary model, not a secondary one")
            if extra.templates.shape[0] != len(student_ids) or extra.available.shape != (
                len(student_ids),
            ):
                raise ValueError(f"model {model!r}: one template row per student")
        self.student_ids: tuple[str, ...] = tuple(student_ids)
        self.templates: Embeddings = templates
        self.views: tuple[Embeddings, ...] = tuple(views)
        self.secondary: dict[str, ModelTemplates] = {
            model: extra for model, extra in (secondary or {}).items() if extra.available.any()
        }
        self.photos: dict[str, PhotoTemplates] = dict(photos or {})
        if combination is TemplateCombination.MAX and FACENET not in self.photos:
            raise ValueError("combining by max needs FaceNet's per-photo templates")
        self.combination = combination
        self._index = {sid: i for i, sid in enumerate(self.student_ids)}

    @classmethod
    def from_photos(
        cls,
        photos: Mapping[str, Sequence[Embeddings]],
        secondary_photos: Mapping[str, Mapping[str, Sequence[Embeddings]]] | None = None,
        *,
        combination: TemplateCombination = DEFAULT_TEMPLATE_COMBINATION,
    ) -> Gallery:
        """``student_id -> [(n, D) per photo]``: FaceNet's embeddings of each of a student's photos
        (a registration photo's augmented views, or a confirmed sample's single row), and per
        secondary model the same for the photos it has embedded.

        Each photo gets its own template (the re-normalised mean of its views), so a registration
        photo's 15 augmented views weigh as much as one confirmed face. ``combination`` says how
        those per-photo templates make a student's score. ``views`` (what the projection head
        trains on) are all the rows of all the student's photos.
        """
        ids = sorted(photos)
        per_photo = {sid: _photo_templates(sid, photos[sid]) for sid in ids}
        stacked = [
            np.concatenate([_unit_views(sid, np.atleast_2d(m)) for m in photos[sid]]) for sid in ids
        ]
        dim = stacked[0].shape[1] if stacked else 512
        templates = (
            l2_normalize(np.stack([per_photo[sid].mean(axis=0) for sid in ids]))
            if ids
            else np.zeros((0, dim), np.float32)
        )
        photo_templates = {FACENET: _stack_photos(ids, per_photo, dim)}
        secondary: dict[str, ModelTemplates] = {}
        for model, per_student in (secondary_photos or {}).items():
            present = [sid for sid in ids if per_student.get(sid)]
            if not present:
                continue
            model_photos = {sid: _photo_templates(sid, per_student[sid]) for sid in present}
            model_dim = next(iter(model_photos.values())).shape[1]
            matrix = np.zeros((len(ids), model_dim), np.float32)
            for i, sid in enumerate(ids):
                if sid in model_photos:
                    matrix[i] = l2_normalize(model_photos[sid].mean(axis=0))
            available = np.array([sid in model_photos for sid in ids], dtype=bool)
            secondary[model] = ModelTemplates(matrix, available)
            photo_templates[model] = _stack_photos(ids, model_photos, model_dim)
        return cls(
            ids, templates, stacked, secondary, photos=photo_templates, combination=combination
        )

    @classmethod
    def from_views(
        cls,
        views: Mapping[str, Embeddings],
        secondary_views: Mapping[str, Mapping[str, Embeddings]] | None = None,
    ) -> Gallery:
        """``student_id -> (n, D)`` raw view embeddings (all photos stacked), FaceNet's, and per
        secondary model the same for the students that have them.

        The template is the re-normalised mean of a student's views: averaging augmented views of a
        photo measured better than matching against any single view.
        """
        ids = sorted(views)
        stacked = [_unit_views(sid, views[sid]) for sid in ids]
        dim = stacked[0].shape[1] if stacked else 512
        templates = (
            l2_normalize(np.stack([m.mean(axis=0) for m in stacked]))
            if stacked
            else np.zeros((0, dim), np.float32)
        )
        secondary: dict[str, ModelTemplates] = {}
        for model, per_student in (secondary_views or {}).items():
            present = [sid for sid in ids if sid in per_student]
            if not present:
                continue
            rows = {sid: _unit_views(sid, per_student[sid]).mean(axis=0) for sid in present}
            model_dim = next(iter(rows.values())).shape[0]
            matrix = np.zeros((len(ids), model_dim), np.float32)
            for i, sid in enumerate(ids):
                if sid in rows:
                    matrix[i] = rows[sid]
            available = np.array([sid in rows for sid in ids], dtype=bool)
            matrix[available] = l2_normalize(matrix[available])
            secondary[model] = ModelTemplates(matrix, available)
        return cls(ids, templates, stacked, secondary)

    def __len__(self) -> int:
        return len(self.student_ids)

    def __contains__(self, student_id: object) -> bool:
        return student_id in self._index

    def index(self, student_id: str) -> int:
        return self._index[student_id]

    @property
    def models(self) -> tuple[str, ...]:
        """FaceNet, then every secondary model at least one student has."""
        return (FACENET, *sorted(self.secondary))

    def models_for(self, probes: ProbeEmbeddings) -> tuple[str, ...]:
        """The models a decision on ``probes`` uses: those both the probes and the gallery have."""
        probe_models = probes_by_model(probes)
        return tuple(model for model in self.models if model in probe_models)

    def model_similarities(self, probes: ProbeEmbeddings) -> dict[str, npt.NDArray[np.float32]]:
        """Raw cosine ``(F, S)`` per model used (zero where a student lacks that model)."""
        by_model = probes_by_model(probes)
        if self.combination is TemplateCombination.MAX:
            return {
                model: self.photos[model].best_per_student(by_model[model], len(self))
                for model in (FACENET, *self.secondary)
                if model in by_model and model in self.photos
            }
        result = {FACENET: (by_model[FACENET] @ self.templates.T).astype(np.float32)}
        for model, extra in self.secondary.items():
            if model in by_model:
                result[model] = (by_model[model] @ extra.templates.T).astype(np.float32)
        return result

    def fused(self, cosines: Mapping[str, npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        """The fused similarity (``ml.fusion``) of :meth:`model_similarities`' output."""
        available = {FACENET: np.ones(len(self), dtype=bool)}
        available.update({m: self.secondary[m].available for m in cosines if m != FACENET})
        return fuse(cosines, available)

    def similarities(self, probes: ProbeEmbeddings) -> npt.NDArray[np.float32]:
        """Fused similarity ``(F, S)`` of the probes with the students (FaceNet's raw cosine when
        only FaceNet is used), on FaceNet's cosine scale."""
        return self.fused(self.model_similarities(probes))

    def most_similar(self, probes: ProbeEmbeddings) -> tuple[str, float] | None:
        if not self.student_ids:
            return None
        scores = self.similarities(probes)[0]
        best = int(np.argmax(scores))
        return self.student_ids[best], float(scores[best])


def _unit_views(student_id: str, views: Embeddings) -> Embeddings:
    matrix = np.asarray(views, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"student {student_id!r} has no embeddings")
    return l2_normalize(matrix)


def _photo_templates(student_id: str, photos: Sequence[Embeddings]) -> Embeddings:
    """One unit template per photo: the re-normalised mean of that photo's unit views."""
    if not photos:
        raise ValueError(f"student {student_id!r} has no embeddings")
    return l2_normalize(
        np.stack([_unit_views(student_id, np.atleast_2d(m)).mean(axis=0) for m in photos])
    )


def _stack_photos(
    ids: Sequence[str], per_photo: Mapping[str, Embeddings], dim: int
) -> PhotoTemplates:
    rows = [per_photo[sid] for sid in ids if sid in per_photo]
    owners = [
        i for i, sid in enumerate(ids) if sid in per_photo for _ in range(len(per_photo[sid]))
    ]
    return PhotoTemplates(
        np.concatenate(rows) if rows else np.zeros((0, dim), np.float32),
        np.asarray(owners, dtype=np.intp),
    )


@dataclass(frozen=True)
class MatchDecision:
    """The outcome for one probe face."""

    student_id: str | None
    similarity: float
    """Fused similarity (FaceNet's raw cosine with FaceNet alone) with the chosen student, or with
    the best candidate when unknown."""
    head_similarity: float | None
    candidate_id: str | None
    """Best-similarity student, even when the face was rejected."""
    score: float = 0.0
    """The stage-1 score the decision is made on (cohort-normalised similarity) for that student:
    the face is named only if it reaches the threshold."""
    model_similarities: Mapping[str, float] = field(default_factory=dict)
    """Each model's raw cosine with that student (details)."""
    runner_up_similarity: float | None = None
    """Best fused similarity of the face with any *other* student (``None`` in a class of one):
    how far ahead the chosen student is, which ``ml.samples`` uses to auto-confirm a face."""


def stage2_scores(
    raw: npt.NDArray[np.float32],
    head_scores: npt.NDArray[np.float32] | None,
    head_known: npt.NDArray[np.bool_] | None,
    *,
    threshold: float,
    margin: float = STAGE2_MARGIN,
    head_weight: float = HEAD_WEIGHT,
) -> npt.NDArray[np.float64]:
    """Score matrix ``(F, S)`` used for assignment; ``_FORBIDDEN`` where a pairing is not allowed.

    Only pairs whose cohort-normalised score reaches the threshold are allowed. Among the allowed students close to a face's best raw
    score, those the head knows are scored by a blend of head and raw similarity; everybody else keeps
    the raw cosine, so a student enrolled after the head was trained is never hidden by it.
    """
    scores = raw.astype(np.float64).copy()
    allowed = cohort_scores(raw) >= threshold
    if head_scores is not None and head_known is not None and raw.shape[1] > 0:
        best = raw.max(axis=1, keepdims=True)
        close = allowed & (raw >= best - margin) & head_known[None, :]
        # Re-rank only where at least two known candidates compete; a lone candidate keeps raw.
        competing = close.sum(axis=1, keepdims=True) >= 2
        blend = (1.0 - head_weight) * raw + head_weight * head_scores
        scores = np.where(close & competing, blend, scores)
    scores[~allowed] = _FORBIDDEN
    return scores


def assign_faces(scores: npt.NDArray[np.float64]) -> list[int | None]:
    """Joint assignment: each face gets at most one student and each student at most one face.

    Maximises the summed score over allowed pairs (Hungarian algorithm); a face whose only allowed
    students went to faces that match them better ends up unknown.
    """
    n_faces, n_students = scores.shape
    result: list[int | None] = [None] * n_faces
    if n_faces == 0 or n_students == 0:
        return result
    rows, cols = linear_sum_assignment(scores, maximize=True)
    for r, c in zip(rows, cols, strict=True):
        if scores[r, c] > _FORBIDDEN / 2:
            result[int(r)] = int(c)
    return result


def match_faces(
    embeddings: ProbeEmbeddings,
    gallery: Gallery,
    *,
    threshold: float | None = None,
    head: ProjectionHead | None = None,
    margin: float = STAGE2_MARGIN,
    head_weight: float = HEAD_WEIGHT,
) -> tuple[list[MatchDecision], float]:
    """Decide every face of one photo at once. Returns the decisions and the threshold applied.

    The default threshold is the one calibrated for the models the decision uses (the models both
    the probes and the gallery have: see ``ml.fusion``).
    """
    applied = (
        default_unknown_threshold(gallery.models_for(embeddings) if len(gallery) else (FACENET,))
        if threshold is None
        else threshold
    )
    by_model = probes_by_model(embeddings) if len(embeddings) else {}
    n_faces = int(by_model[FACENET].shape[0]) if by_model else 0
    if n_faces == 0:
        return [], applied
    if len(gallery) == 0:
        return [MatchDecision(None, -1.0, None, None, -1.0) for _ in range(n_faces)], applied
    cosines = gallery.model_similarities(by_model)
    raw = gallery.fused(cosines)
    cohort = cohort_scores(raw)
    head_scores: npt.NDArray[np.float32] | None = None
    head_known: npt.NDArray[np.bool_] | None = None
    if head is not None:
        head_known = np.array([sid in head.student_ids for sid in gallery.student_ids], dtype=bool)
        if head_known.sum() >= 2:
            head_scores = (
                head.project(by_model[FACENET]) @ head.project(gallery.templates).T
            ).astype(np.float32)
        else:
            head_known = None
    scores = stage2_scores(
        raw, head_scores, head_known, threshold=applied, margin=margin, head_weight=head_weight
    )
    assignment = assign_faces(scores)
    decisions = []
    for f, col in enumerate(assignment):
        best = int(np.argmax(raw[f]))
        candidate = gallery.student_ids[best]
        chosen = best if col is None else col

        details = {
            model: round(float(matrix[f, chosen]), 4)
            for model, matrix in cosines.items()
            if model == FACENET or gallery.secondary[model].available[chosen]
        }
        head_sim = (
            float(head_scores[f, col])
            if col is not None
            and head_scores is not None
            and head_known is not None
            and head_known[col]
            else None
        )
        others = np.delete(raw[f], chosen)
        decisions.append(
            MatchDecision(
                None if col is None else gallery.student_ids[col],
                float(raw[f, chosen]),
                head_sim,
                candidate,
                float(cohort[f, chosen]),
                details,
                float(others.max()) if others.size else None,
            )
        )
    return decisions, applied
