"""Two-stage open-set matching of probe faces against a class gallery.

Stage 1 rejects strangers: a face whose fused similarity with a student, normalised against
everybody else it could be (see ``cohort_scores``: the rest of the class, and when the caller
passes them the school's other students, :class:`Cohort`, and the class's known strangers,
:class:`KnownStrangers`), stays below the unknown threshold is unknown; so is a face that a
student of another class or a known stranger matches at least as well. Stage 2 decides between
the enrolled students whose raw score is close to the best one, where the projection head (if
any, and if it knows them) re-ranks. Finally a joint assignment over the whole photo guarantees
that a student is named on at most one face.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from ml.fusion import (
    FACENET,
    default_unknown_threshold,
    fuse,
    open_set_threshold,
    to_facenet_scale,
)
from ml.head import ProjectionHead
from ml.types import Embeddings
from ml.vectors import (
    l2_normalize as l2_normalize,
)  # re-exported: tests and bench import it from here

logger = logging.getLogger(__name__)

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
small margin). The fused default's depends on the class and the school
(``ml.fusion.open_set_threshold``)."""

STAGE2_MARGIN = 0.08
"""Students whose raw cosine is within this of the face's best raw cosine are re-ranked by the head."""
HEAD_WEIGHT = 0.5
"""Weight of the head's similarity in the stage-2 score (the rest is the raw cosine)."""

_FORBIDDEN = -1e6


def cohort_scores(
    raw: npt.NDArray[np.float32],
    weight: float = COHORT_WEIGHT,
    impostor_best: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """``raw[f, s] - weight * max(raw[f, s'] for s' != s, impostor_best[f])``: the stage-1
    acceptance score.

    ``impostor_best`` is each face's best similarity with anybody else it could be that is not a
    student of the class (the school's other students, the class's known strangers; see
    :func:`match_faces`): the face is scored as if those people were in the class too. Without
    them and with a single student there is no cohort and the score is the raw similarity.
    """
    n_faces, n_students = raw.shape
    if n_faces == 0:
        return raw.astype(np.float32)
    if n_students < 2:
        others = np.full((n_faces, n_students), -np.inf, np.float32)
    else:
        order = np.argsort(raw, axis=1)
        rows = np.arange(n_faces)
        best_index = order[:, -1]
        best = raw[rows, best_index]
        second = raw[rows, order[:, -2]]
        others = np.repeat(best[:, None], n_students, axis=1).astype(np.float32)
        others[rows, best_index] = second
    if impostor_best is not None:
        others = np.maximum(others, np.asarray(impostor_best, np.float32)[:, None])
    penalty = np.where(np.isfinite(others), weight * others, 0.0)
    result: npt.NDArray[np.float32] = (raw - penalty).astype(np.float32)
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


TEMPLATE_LENGTH_POWER = 0.6
"""A student's template of several photos (registration photos and confirmed faces) points along
the mean of the photos' unit templates, with length ``|mean| ** TEMPLATE_LENGTH_POWER`` (a single
photo keeps its unit template, see :func:`aggregate_photos`).

Why: the re-normalised mean of several real photos is a more generic face than one photo, and
accepts more strangers. LFW, the 101 identities with >= 7 photos as one class, each registered from
its first photo (15 views) with its next 4 photos as confirmed faces, against the 4,346 photos of
the identities with 1-2 photos, cohort-normalised fused score at 0.36: strangers accepted 1.33 %
with the registration photo alone, 2.23 % with the re-normalised mean of the five photos (named
right on the later photos 86.5 % -> 98.1 %). With the length power 0.5 / 0.6 / 0.7 / 1 (the plain
mean): 1.13 / 1.06 / 0.94 / 0.71 % strangers, 96.4 / 96.4 / 95.9 / 93.7 % named; with one and two
confirmed faces, 0.6 kept strangers at 1.24 % and 1.15 % (random classes of 20: 1.19 %, 1.20 %,
1.15 % against 1.28 % registered alone), so more samples never accepted more strangers than the
registration photo alone, and named right stays within 0.5 points of the best power. Measured
2026-12-06 on the bench caches (`python -m bench --sections oneshot`) with a one-off script
(docs/benchmarks.md, "Samples that never widen a template")."""


def aggregate_photos(
    photo_templates: npt.ArrayLike, length_power: float = TEMPLATE_LENGTH_POWER
) -> npt.NDArray[np.float32]:
    """One student's template of one model from their per-photo unit templates ``(P, D)``: the
    direction of their mean, of length ``|mean| ** length_power`` (see
    :data:`TEMPLATE_LENGTH_POWER`; 0 is the re-normalised mean, 1 the plain mean). The more the
    photos disagree, the shorter the template, so its similarity with every face, a stranger's
    included, does not grow as confirmed faces are added."""
    rows = np.atleast_2d(np.asarray(photo_templates, dtype=np.float32))
    mean = rows.mean(axis=0)
    length = float(np.linalg.norm(mean))
    if length < 1e-12:
        return np.zeros(rows.shape[1], np.float32)
    template: npt.NDArray[np.float32] = (mean * (length**length_power / length)).astype(np.float32)
    return template


class Gallery:
    """The enrolled students of one class: one template per student and model, plus the FaceNet
    views (for the projection head). Built by :meth:`from_views` the templates are unit vectors;
    built by :meth:`from_photos` they aggregate one unit template per photo (registration photos
    and confirmed samples, ``ml.samples``) with :func:`aggregate_photos`, and the per-photo
    templates are kept for the ``MAX`` combination.

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
        length_power: float = TEMPLATE_LENGTH_POWER,
    ) -> Gallery:
        """``student_id -> [(n, D) per photo]``: FaceNet's embeddings of each of a student's photos
        (a registration photo's augmented views, or a confirmed sample's single row), and per
        secondary model the same for the photos it has embedded.

        Each photo gets its own unit template (the re-normalised mean of its views), so a
        registration photo's 15 augmented views weigh as much as one confirmed face; a student's
        template aggregates them (:func:`aggregate_photos`: one photo gives its unit template,
        several a shorter one where they disagree; ``length_power`` 0 is the re-normalised mean of
        earlier versions). ``combination`` says how those per-photo
        templates make a student's score. ``views`` (what the projection head trains on) are all
        the rows of all the student's photos.
        """
        ids = sorted(photos)
        per_photo = {sid: _photo_templates(sid, photos[sid]) for sid in ids}
        stacked = [
            np.concatenate([_unit_views(sid, np.atleast_2d(m)) for m in photos[sid]]) for sid in ids
        ]
        dim = stacked[0].shape[1] if stacked else 512
        templates = (
            np.stack([aggregate_photos(per_photo[sid], length_power) for sid in ids])
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
                    matrix[i] = aggregate_photos(model_photos[sid], length_power)
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


# -- people a face must not be confused with: the school's other students, known strangers ------

MAX_COHORT_SIZE = 5_000
"""Most people a :class:`Cohort` holds (a large school); beyond, an evenly spread subset is kept.
With 5,000 (FaceNet's 512 and dlib's 128 float32 each) the arrays take 12.2 MiB, and a class of 40
matched a photo of 30 faces in 6.0 ms instead of 0.9 ms alone, after 14 ms once for the
look-alike rule (``python -m bench --sections scale``, 2026-12-06)."""
MAX_KNOWN_STRANGERS = 50
"""Most known strangers a class keeps (the caller bounds them like samples,
``ml.samples.select_samples``; :meth:`KnownStrangers.from_faces` keeps the newest this many)."""
SAME_PERSON_SIMILARITY = 0.6
"""A school member whose fused similarity with one of the class's students' (unit) templates
reaches this is taken for that student (the same child enrolled in two classes) and left out of
the class's cohort. On LFW
(747 identities with >= 3 photos, each registered from its first photo) 84.0 % of a person's other
photos reach 0.6 against their registration template, and 0.0068 % of other people's photos do
(0.11 % reach 0.5); 2026-12-06, the bench caches of `python -m bench --sections oneshot`."""


@dataclass(frozen=True, eq=False)
class ImpostorTemplates:
    """People a face of the class must not be named for: each model's vector of each person, one
    row each (FaceNet's for all, zero rows where ``available`` is false for another model)."""

    vectors: Mapping[str, Embeddings]
    available: Mapping[str, npt.NDArray[np.bool_]]

    def __post_init__(self) -> None:
        if FACENET not in self.vectors:
            raise ValueError("impostor templates need FaceNet's")
        rows = self.vectors[FACENET].shape[0]
        for model, matrix in self.vectors.items():
            mask = self.available.get(model)
            if matrix.ndim != 2 or matrix.shape[0] != rows or mask is None or mask.shape != (rows,):
                raise ValueError(f"model {model!r}: one row and one availability flag per person")
        if not bool(np.all(self.available[FACENET])):
            raise ValueError("every person needs FaceNet's template")

    def __len__(self) -> int:
        return int(self.vectors[FACENET].shape[0])

    @classmethod
    def _stack(
        cls, rows: Sequence[Mapping[str, npt.NDArray[np.float32]]], *, unit: bool
    ) -> tuple[dict[str, Embeddings], dict[str, npt.NDArray[np.bool_]]]:
        models = sorted({model for row in rows for model in row})
        if rows and FACENET not in models:
            raise ValueError("impostor templates need FaceNet's")
        vectors: dict[str, Embeddings] = {}
        available: dict[str, npt.NDArray[np.bool_]] = {}
        for model in models or [FACENET]:
            dims = {np.ravel(row[model]).shape[0] for row in rows if model in row}
            if len(dims) > 1:
                raise ValueError(f"model {model!r}: rows of different widths {sorted(dims)}")
            dim = dims.pop() if dims else 512
            matrix = np.zeros((len(rows), dim), np.float32)
            mask = np.zeros(len(rows), dtype=bool)
            for i, row in enumerate(rows):
                if model in row:
                    vector = np.ravel(np.asarray(row[model], np.float32))
                    matrix[i] = l2_normalize(vector) if unit else vector
                    mask[i] = True
            vectors[model], available[model] = matrix, mask
        return vectors, available

    def subset(self, keep: npt.NDArray[np.bool_]) -> Self:
        """The people where ``keep`` is true, as the same kind."""
        return dataclasses.replace(
            self,
            vectors={m: v[keep] for m, v in self.vectors.items()},
            available={m: a[keep] for m, a in self.available.items()},
        )

    def similarities(self, probes: Mapping[str, Embeddings]) -> npt.NDArray[np.float32]:
        """``(F, K)`` fused similarity of unit probes (one matrix per model) with every person, on
        the models both have (as :meth:`Gallery.fused`)."""
        cosines = {
            model: (probes[model] @ matrix.T).astype(np.float32)
            for model, matrix in self.vectors.items()
            if model in probes
        }
        return fuse(cosines, {model: self.available[model] for model in cosines})

    def similarities_with(self, gallery: Gallery) -> npt.NDArray[np.float32]:
        """``(S, K)`` fused similarity of the gallery's students' unit templates with every
        person, per pair on the models both have."""
        total = np.zeros((len(gallery), len(self)), np.float64)
        count = np.zeros_like(total)
        student_models: dict[str, tuple[Embeddings, npt.NDArray[np.bool_]]] = {
            FACENET: (gallery.templates, np.ones(len(gallery), dtype=bool))
        }
        student_models.update(
            {model: (t.templates, t.available) for model, t in gallery.secondary.items()}
        )
        for model, (templates, has) in student_models.items():
            if model not in self.vectors:
                continue
            cosine = l2_normalize(templates) @ l2_normalize(self.vectors[model]).T
            mask = has[:, None] & self.available[model][None, :]
            total += np.where(mask, to_facenet_scale(model, cosine), 0.0)
            count += mask
        result: npt.NDArray[np.float32] = (total / np.maximum(count, 1.0)).astype(np.float32)
        return result


def cohort_rows(gallery: Gallery) -> list[dict[str, npt.NDArray[np.float32]]]:
    """One row per student of ``gallery``, in its order: their FaceNet template and the template
    of each secondary model they have, as the gallery matches with them."""
    rows: list[dict[str, npt.NDArray[np.float32]]] = []
    for i in range(len(gallery)):
        row = {FACENET: gallery.templates[i]}
        row.update(
            {
                model: extra.templates[i]
                for model, extra in gallery.secondary.items()
                if extra.available[i]
            }
        )
        rows.append(row)
    return rows


def cohort_picks(count: int, max_size: int = MAX_COHORT_SIZE) -> npt.NDArray[np.intp] | None:
    """Which of ``count`` people a cohort keeps: ``None`` for all of them, else ``max_size``
    evenly spread indexes (the cut is logged)."""
    if count <= max_size:
        return None
    logger.warning("school cohort of %d people cut to %d (MAX_COHORT_SIZE)", count, max_size)
    return np.linspace(0, count - 1, max_size).round().astype(np.intp)


@dataclass(frozen=True, eq=False)
class Cohort(ImpostorTemplates):
    """The school's other students: everybody enrolled in the deployment's other classes (the
    caller leaves the class's own students out), one row per student with their template of each
    model, as their class's :class:`Gallery` holds it.

    Matching against them (``match_faces(..., cohort=...)``): a face is never named as a student
    of the class when one of them matches it at least as well (a pupil of another class in this
    class's photo), and its stage-1 score is normalised against them as against the rest of the
    class (the best of everybody else counts, see :func:`cohort_scores`). A stranger who is
    nobody's look-alike then has to beat the whole school to be named, so the threshold that keeps
    strangers at the calibrated rate is lower, the more so the smaller the class's share of the
    school (``ml.fusion.open_set_threshold``). People who look like one of the class's students
    (:data:`SAME_PERSON_SIMILARITY`) are left out for that class: the same child enrolled in two
    classes is not their own impostor.
    """

    @classmethod
    def from_galleries(
        cls, galleries: Iterable[Gallery], *, max_size: int = MAX_COHORT_SIZE
    ) -> Cohort:
        """Every student of ``galleries`` (the other classes' galleries, as built for matching),
        at most ``max_size`` (an evenly spread subset beyond)."""
        rows = [row for gallery in galleries for row in cohort_rows(gallery)]
        picks = cohort_picks(len(rows), max_size)
        if picks is not None:
            rows = [rows[i] for i in picks]
        vectors, available = cls._stack(rows, unit=False)
        return cls(vectors, available)

    @classmethod
    def from_templates(cls, templates: Sequence[Mapping[str, npt.ArrayLike]]) -> Cohort:
        """One mapping ``model -> (D,)`` template per person (FaceNet's required), kept as given
        (templates aggregated by :func:`aggregate_photos` may be shorter than 1)."""
        rows = [{m: np.asarray(v, np.float32) for m, v in row.items()} for row in templates]
        vectors, available = cls._stack(rows, unit=False)
        return cls(vectors, available)


@dataclass(frozen=True, eq=False)
class KnownStrangers(ImpostorTemplates):
    """Faces a teacher said are nobody of this class (a visiting teacher, a sibling, an
    assistant who comes every week): each model's embedding of each face, as
    ``FacePipeline.embed_face`` gives it.

    Negative evidence for the class (``match_faces(..., strangers=...)``): a face that one of them
    matches at least as well as its best student is not named, and a face's stage-1 score is
    normalised against them as against the other students, so a face close to a known stranger
    is not named on a score it would not have earned had that stranger been a student. They do
    not lower the threshold (they are not a sample of the population, but the people who do come).
    They count whoever they look like, a sibling as much as anyone: a student's own face marked
    "nobody" by mistake keeps that student unnamed on faces closer to it than to their template
    (``MatchDecision.closer_to`` says so) until the teacher removes it.
    """

    @classmethod
    def from_faces(
        cls,
        faces: Sequence[Mapping[str, npt.ArrayLike]],
        *,
        max_faces: int = MAX_KNOWN_STRANGERS,
    ) -> KnownStrangers:
        """``faces``: oldest first, each ``model -> (D,)`` or ``(1, D)`` (FaceNet's required);
        the newest ``max_faces`` are kept."""
        if max_faces < 0:
            raise ValueError("max_faces must be >= 0")
        kept = list(faces)[-max_faces:] if max_faces else []
        rows = [{m: np.asarray(v, np.float32) for m, v in face.items()} for face in kept]
        vectors, available = cls._stack(rows, unit=True)
        return cls(vectors, available)


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


class ImpostorKind(StrEnum):
    """Who, besides the class's students, a face matched at least as well as its best student."""

    COHORT = "cohort"
    """A student of another class (:class:`Cohort`)."""
    KNOWN_STRANGER = "known_stranger"
    """A face the teacher said is nobody of this class (:class:`KnownStrangers`)."""


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
    """Best fused similarity of the face with anybody else it could be: any *other* student, and
    the school's other students and the class's known strangers when given (``None`` in a class
    of one without them): how far ahead the chosen student is, which ``ml.samples`` uses to
    auto-confirm a face."""
    impostor_similarity: float | None = None
    """Best fused similarity with a student of another class or a known stranger (``None`` when
    neither was given)."""
    closer_to: ImpostorKind | None = None
    """Set when such a person matches the face at least as well as its best student: the face is
    then unknown whatever its score (who it looked like more)."""


def stage2_scores(
    raw: npt.NDArray[np.float32],
    normalised: npt.NDArray[np.float32],
    head_scores: npt.NDArray[np.float32] | None,
    head_known: npt.NDArray[np.bool_] | None,
    *,
    threshold: float,
    margin: float = STAGE2_MARGIN,
    head_weight: float = HEAD_WEIGHT,
    impostor_best: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float64]:
    """Score matrix ``(F, S)`` used for assignment; ``_FORBIDDEN`` where a pairing is not allowed.

    Only pairs whose cohort-normalised score (``normalised``: :func:`cohort_scores` of ``raw``
    with ``impostor_best``) reaches the threshold are allowed, and only students who match the
    face better than every impostor (``impostor_best``: the best similarity of each face with the
    school's other students and the known strangers). Among the allowed students
    close to a face's best raw score, those the head knows are scored by a blend of head and raw
    similarity; everybody else keeps the raw cosine, so a student enrolled after the head was
    trained is never hidden by it.
    """
    scores = raw.astype(np.float64).copy()
    allowed = normalised >= threshold
    if impostor_best is not None:
        allowed &= raw > np.asarray(impostor_best)[:, None]
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


@dataclass(frozen=True)
class Impostors:
    """What :func:`match_faces` compares a photo's faces with besides the class: the school's
    other students and the known strangers that are not one of the class's students."""

    cohort: Cohort | None
    strangers: KnownStrangers | None

    @classmethod
    def for_class(
        cls, gallery: Gallery, cohort: Cohort | None, strangers: KnownStrangers | None
    ) -> Impostors:
        """``cohort`` less the people who look like one of the gallery's students
        (:data:`SAME_PERSON_SIMILARITY`), and ``strangers``. The last few answers are kept (by the
        objects' identity: galleries and cohorts are immutable), since every photo of a class
        asks again with the same ones."""
        if cohort is None and strangers is None:
            return cls(None, None)
        return _impostors_for_class(gallery, cohort, strangers)

    @classmethod
    def _for_class(
        cls, gallery: Gallery, cohort: Cohort | None, strangers: KnownStrangers | None
    ) -> Impostors:

        def usable(people: ImpostorTemplates | None) -> npt.NDArray[np.bool_] | None:
            if people is None or not len(people) or not len(gallery):
                return None
            return np.asarray(
                people.similarities_with(gallery).max(axis=0) < SAME_PERSON_SIMILARITY, bool
            )

        kept_cohort = cohort
        keep = usable(cohort)
        if cohort is not None and keep is not None and not keep.all():
            kept_cohort = cohort.subset(keep)
        # Known strangers are kept whoever they look like: a sibling or a twin is the case they
        # are for (a student's own face marked "nobody" by mistake is the teacher's to remove).
        return cls(kept_cohort, strangers)

    @property
    def cohort_size(self) -> int:
        return len(self.cohort) if self.cohort is not None else 0

    def best(
        self, probes: Mapping[str, Embeddings], n_faces: int
    ) -> tuple[npt.NDArray[np.float32] | None, list[ImpostorKind | None]]:
        """Each face's best similarity with anybody here (``None`` if nobody) and who it was."""
        best: npt.NDArray[np.float32] | None = None
        kinds: list[ImpostorKind | None] = [None] * n_faces
        for people, kind in (
            (self.cohort, ImpostorKind.COHORT),
            (self.strangers, ImpostorKind.KNOWN_STRANGER),
        ):
            if people is None or not len(people):
                continue
            scores = people.similarities(probes).max(axis=1)
            if best is None:
                best, kinds = scores, [kind] * n_faces
                continue
            better = scores > best
            kinds = [kind if b else k for b, k in zip(better, kinds, strict=True)]
            best = np.maximum(best, scores)
        return best, kinds


@functools.lru_cache(maxsize=8)
def _impostors_for_class(
    gallery: Gallery, cohort: Cohort | None, strangers: KnownStrangers | None
) -> Impostors:
    """:meth:`Impostors.for_class`'s last answers, keyed by the objects' identity (none of the
    three defines equality); the cache holds them, so their ids are not reused while keys."""
    return Impostors._for_class(gallery, cohort, strangers)


def match_faces(
    embeddings: ProbeEmbeddings,
    gallery: Gallery,
    *,
    threshold: float | None = None,
    head: ProjectionHead | None = None,
    margin: float = STAGE2_MARGIN,
    head_weight: float = HEAD_WEIGHT,
    cohort: Cohort | None = None,
    strangers: KnownStrangers | None = None,
) -> tuple[list[MatchDecision], float]:
    """Decide every face of one photo at once. Returns the decisions and the threshold applied.

    ``cohort``: the school's other students (never the class's own); ``strangers``: the class's
    known strangers. Both make a face that one of them matches at least as well as its best
    student unknown, and count in the stage-1 score's normalisation (:func:`cohort_scores`).
    The default threshold is the one calibrated for the models the decision uses (the models both
    the probes and the gallery have), the class's size and the cohort's
    (``ml.fusion.open_set_threshold``); an explicit ``threshold`` is applied as it is.
    """
    models = gallery.models_for(embeddings) if len(gallery) else (FACENET,)
    impostors = Impostors.for_class(gallery, cohort, strangers)
    applied = (
        open_set_threshold(
            models, class_size=max(1, len(gallery)), cohort_size=impostors.cohort_size
        )
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
    impostor_best, impostor_kinds = impostors.best(by_model, n_faces)
    normalised = cohort_scores(raw, impostor_best=impostor_best)
    head_scores: npt.NDArray[np.float32] | None = None
    head_known: npt.NDArray[np.bool_] | None = None
    if head is not None:
        head_known = np.array([sid in head.student_ids for sid in gallery.student_ids], dtype=bool)
        if head_known.sum() >= 2:
            head_scores = (
                head.project(by_model[FACENET]) @ head.project(l2_normalize(gallery.templates)).T
            ).astype(np.float32)
        else:
            head_known = None
    scores = stage2_scores(
        raw,
        normalised,
        head_scores,
        head_known,
        threshold=applied,
        margin=margin,
        head_weight=head_weight,
        impostor_best=impostor_best,
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
        runner_up = float(others.max()) if others.size else None
        impostor = float(impostor_best[f]) if impostor_best is not None else None
        if impostor is not None:
            runner_up = impostor if runner_up is None else max(runner_up, impostor)
        closer = (
            impostor_kinds[f]
            if col is None and impostor is not None and impostor >= float(raw[f, best])
            else None
        )
        decisions.append(
            MatchDecision(
                None if col is None else gallery.student_ids[col],
                float(raw[f, chosen]),
                head_sim,
                candidate,
                float(normalised[f, chosen]),
                details,
                runner_up,
                impostor,
                closer,
            )
        )
    return decisions, applied
