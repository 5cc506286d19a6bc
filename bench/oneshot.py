"""One-shot attendance on LFW, open set: one registered photo per person, strangers never registered.

Identities with at least 3 photos (among the LFW photos present) are the students; identities with
1-2 photos are the strangers. Both are split (seeded) into a *calibration* half and a *test* half,
each half a class of its own. The threshold giving 1% false accepts is chosen on the calibration
class's strangers only and then applied to the test class, so no probe photo used to choose a
threshold is scored with it. The default thresholds (Rollcall: the cohort-score threshold
``ml.fusion.default_unknown_threshold`` gives its models; face_recognition: 0.6 distance) are
scored on the test class too, and so is the share of strangers given a name at the default
threshold in random classes of 5 to 250 students and in the whole test class.

Rollcall is measured fused (FaceNet + dlib, the default) and FaceNet alone, from one computation:
each photo is embedded once by both models, each setting uses its models' columns. Per system: the
first photo (sorted) of each student is registered; every other photo of a student is a genuine
probe, every photo of a test stranger a stranger probe. As in the verification section, the face
nearest the centre is used; a registration photo without a face is registered from the central box
(counted); a probe without a face gets no name (counted: a miss, or a correct reject). Rollcall
registers through the real enrolment path (margin crop, 15 augmented FaceNet views, template = mean
of views; dlib: ``FacePipeline.secondary_views``) and decides with ``ml.matching.match_faces``,
each probe on its own: stage 1 only (the service default) and with the two-stage head (trained on
the class's FaceNet views), plus a plain similarity threshold for reference. face_recognition
registers one encoding and names the nearest registered person when the distance is within the
threshold (``compare_faces`` semantics).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial.distance import cdist

from bench.common import BenchContext, JsonDict, rounded
from bench.systems import (
    FACENET_ALONE,
    FaceRecognitionSystem,
    FaceSystem,
    ImageEmbeddings,
    RollcallSystem,
    central_box_face,
    embed_images,
    face_recognition_available,
)
from ml.eval.lfw import central_face
from ml.eval.oneshot import (
    EmbeddingCache,
    Outcome,
    collect_identities,
    threshold_at_false_accept,
)
from ml.eval.oneshot import decide as decide_probes
from ml.eval.photos import load_rgb
from ml.fusion import FACENET, open_set_threshold
from ml.matching import SAME_PERSON_SIMILARITY, Cohort, Gallery, Impostors, cohort_scores

logger = logging.getLogger(__name__)

MIN_PHOTOS = 3
FALSE_ACCEPT_TARGET = 0.01
QUICK_STUDENTS_PER_HALF = 25
QUICK_STRANGERS_PER_HALF = 50
NO_SCORE = -1e9
CLASS_SIZES = (5, 25, 100, 250)
"""Class sizes of the false-accept figure (plus the whole test class)."""
CLASS_SIZE_REPEATS = 20


@dataclass(frozen=True)
class ClassSplit:
    """One half: the students (name -> photos, the first is registered) and the strangers."""

    students: dict[str, list[str]]
    strangers: dict[str, list[str]]

    def probes(self) -> list[tuple[str | None, str]]:
        """``(truth, photo)``: truth is the student, ``None`` for a stranger."""
        rows: list[tuple[str | None, str]] = [
            (name, photo) for name, photos in self.students.items() for photo in photos[1:]
        ]
        rows += [(None, photo) for photos in self.strangers.values() for photo in photos]
        return rows


def split_lfw(
    identities: Mapping[str, Sequence[str]],
    *,
    seed: int,
    min_photos: int = MIN_PHOTOS,
    max_students: int | None = None,
    max_strangers: int | None = None,
) -> tuple[ClassSplit, ClassSplit]:
    """(calibration, test): students and strangers each shuffled (seeded) and cut in two halves.

    No identity is in both halves; with the caps, each half keeps that many of each.
    """
    rng = np.random.default_rng(seed)
    students = sorted(n for n, p in identities.items() if len(p) >= min_photos)
    strangers = sorted(n for n, p in identities.items() if 0 < len(p) < min_photos)
    students = [students[i] for i in rng.permutation(len(students))]
    strangers = [strangers[i] for i in rng.permutation(len(strangers))]
    halves = []
    for part in (0, 1):
        chosen_students = students[part::2][:max_students]
        chosen_strangers = strangers[part::2][:max_strangers]
        halves.append(
            ClassSplit(
                {n: list(identities[n]) for n in chosen_students},
                {n: list(identities[n]) for n in chosen_strangers},
            )
        )
    return halves[0], halves[1]


def rates(outcome: Outcome) -> dict[str, float]:
    return {k: rounded(v, 4) for k, v in outcome.rates().items()}


# -- Rollcall -----------------------------------------------------------------------------------

RegistrationViews = dict[str, dict[str, npt.NDArray[np.float32]]]
"""``model -> photo -> (n, D)`` registration embeddings."""


def rollcall_views(
    system: RollcallSystem, root: Path, photos: Sequence[str], cache: EmbeddingCache
) -> tuple[RegistrationViews, int]:
    """Registration embeddings of each photo's central face (the central box when none is found),
    per model: FaceNet's augmented views and each secondary model's ``secondary_views``. Cache
    entries are ``<model>:<photo>``."""
    views: RegistrationViews = {model: {} for model in system.models}
    computed = 0
    for photo in photos:
        cached = {model: cache.get(f"{model}:{photo}") for model in system.models}
        if any(v is None for v in cached.values()):
            image = load_rgb(root / photo)
            face = central_face(system.detect(image), image.shape) or central_box_face(image.shape)
            fresh = system.enrol_views(image, face)
            for model in system.models:
                cache.put(f"{model}:{photo}", fresh[model])
            cached = {model: fresh[model] for model in system.models}
            computed += 1
            if computed % 100 == 0:
                logger.info("enrolled %d photos", computed)
                cache.save()
        for model, value in cached.items():
            assert value is not None
            views[model][photo] = value
    cache.save()
    return views, computed


@dataclass(frozen=True)
class RollcallClass:
    gallery: Gallery
    probes: dict[str, npt.NDArray[np.float32]]
    """Per model, one row per probe."""
    truth: list[str | None]
    has_face: npt.NDArray[np.bool_]


def rollcall_class(
    split: ClassSplit,
    views: Mapping[str, Mapping[str, npt.NDArray[np.float32]]],
    images: ImageEmbeddings,
) -> RollcallClass:
    """The class of ``split`` registered with the models of ``images`` (FaceNet first)."""
    models = images.models or ("facenet",)
    first = {n: photos[0] for n, photos in split.students.items()}
    gallery = Gallery.from_views(
        {n: views["facenet"][photo] for n, photo in first.items()},
        {m: {n: views[m][photo] for n, photo in first.items()} for m in models[1:]},
    )
    row = {p: i for i, p in enumerate(images.paths)}
    probes = split.probes()
    indices = [row[photo] for _, photo in probes]
    by_model = images.by_model(indices)
    return RollcallClass(
        gallery,
        by_model if images.models else {"facenet": by_model[""]},
        [truth for truth, _ in probes],
        images.faces_found[indices] > 0,
    )


def take(probes: Mapping[str, npt.NDArray[np.float32]], rows: Any) -> dict[str, Any]:
    return {model: matrix[rows] for model, matrix in probes.items()}


def rollcall_outcome(
    cls: RollcallClass, threshold: float | None, head: Any, cohort: Cohort | None = None
) -> Outcome:
    """The probes with a face decided as in the service (``threshold=None``: the calibrated
    default for the class and the school ``cohort``); probes without one get no name."""
    found = np.flatnonzero(cls.has_face)
    decided = decide_probes(
        take(cls.probes, found),
        [cls.truth[i] for i in found],
        cls.gallery,
        threshold,
        head,
        cohort=cohort,
    )
    predicted: list[str | None] = [None] * len(cls.truth)
    top1: list[str | None] = [None] * len(cls.truth)
    best = [NO_SCORE] * len(cls.truth)
    for k, i in enumerate(found):
        predicted[i] = decided.predicted[k]
        top1[i] = decided.top1[k]
        best[i] = decided.best_score[k]
    return Outcome(predicted, cls.truth, top1, best)


def similarities(cls: RollcallClass) -> npt.NDArray[np.float32]:
    """``(probes, students)`` fused similarity (FaceNet's raw cosine with FaceNet alone)."""
    return cls.gallery.similarities(cls.probes)


def stage1_scores(cls: RollcallClass, cohort: Cohort | None = None) -> npt.NDArray[np.float64]:
    """Best cohort-normalised score per probe (``NO_SCORE`` without a face, or when a member of
    the school ``cohort`` matches the probe at least as well as its best student)."""
    raw = similarities(cls)
    impostor = (
        Impostors.for_class(cls.gallery, cohort, None).best(cls.probes, len(raw))[0]
        if cohort is not None
        else None
    )
    scores = cohort_scores(raw, impostor_best=impostor).max(axis=1).astype(np.float64)
    if impostor is not None:
        scores = np.where(raw.max(axis=1) > impostor, scores, NO_SCORE)
    return np.where(cls.has_face, scores, NO_SCORE)


def plain_cosine_outcome(cls: RollcallClass, threshold: float) -> Outcome:
    raw = similarities(cls)
    best = raw.argmax(axis=1)
    top1: list[str | None] = [
        cls.gallery.student_ids[int(b)] if f else None
        for b, f in zip(best, cls.has_face, strict=True)
    ]
    score = np.where(cls.has_face, raw.max(axis=1), NO_SCORE)
    predicted = [t if s >= threshold else None for t, s in zip(top1, score, strict=True)]
    return Outcome(predicted, cls.truth, top1, [float(s) for s in score])


@dataclass(frozen=True)
class Decided:
    """Stage 1 of ``match_faces`` for single faces, many at once: the best student (a column of
    the class), the score compared with the threshold, and whether a member of the school cohort
    matched the face at least as well (then it is never named)."""

    best: npt.NDArray[np.intp]
    score: npt.NDArray[np.float32]
    vetoed: npt.NDArray[np.bool_]

    def named(self, threshold: float) -> npt.NDArray[np.bool_]:
        return np.asarray((self.score >= threshold) & ~self.vetoed, bool)


def decide_columns(
    scores: npt.NDArray[np.floating],
    class_columns: npt.NDArray[np.intp],
    cohort_columns: npt.NDArray[np.intp],
    same_person: npt.NDArray[np.bool_] | None = None,
) -> tuple[Decided, int]:
    """Every row of ``scores`` (fused similarities with everybody) as a one-face photo of the
    class ``class_columns``, with the school ``cohort_columns`` less the look-alikes of a class
    student (``same_person[class, cohort]``, as ``ml.matching.Impostors.for_class``); also the
    cohort's size after that rule (the threshold's ``cohort_size``). For a single face the named
    student is the best-similarity one: the assignment cannot prefer another."""
    if same_person is not None and len(cohort_columns) and len(class_columns):
        lookalike = same_person[np.ix_(class_columns, cohort_columns)].any(axis=0)
        cohort_columns = cohort_columns[~lookalike]
    impostor = (
        np.asarray(scores[:, cohort_columns].max(axis=1), np.float32)
        if len(cohort_columns)
        else None
    )
    return decide_single_faces(scores[:, class_columns], impostor), len(cohort_columns)


def decide_single_faces(
    raw: npt.NDArray[np.floating], impostor: npt.NDArray[np.float32] | None
) -> Decided:
    """Stage 1 for single faces: ``raw`` their similarities with the class's students, and
    ``impostor`` each face's best similarity with anybody else (``None``: nobody)."""
    raw = np.asarray(raw, np.float32)
    normalised = cohort_scores(raw, impostor_best=impostor)
    best = raw.argmax(axis=1)
    rows = np.arange(len(raw))
    vetoed = raw[rows, best] <= impostor if impostor is not None else np.zeros(len(raw), dtype=bool)
    return Decided(best, normalised[rows, best], np.asarray(vetoed, bool))


Accepts = Callable[[npt.NDArray[np.float64], npt.NDArray[np.intp]], npt.NDArray[np.bool_]]
"""``(scores with every student, the class's columns) -> which rows get a name``."""


def false_accept_by_class_size(
    stranger_scores: npt.NDArray[np.float64],
    accepted: Accepts,
    sizes: Sequence[int],
    seed: int,
    repeats: int = CLASS_SIZE_REPEATS,
    class_columns: int | None = None,
) -> list[JsonDict]:
    """Share of stranger probes given a name in classes of each size.

    ``stranger_scores`` is ``(strangers, students)`` against the whole school (a row of
    ``NO_SCORE`` for a probe without a face, never accepted); a class is drawn from its first
    ``class_columns`` columns (default: all) and ``accepted`` says which strangers get a name.
    Each size below the class is ``repeats`` random classes (seeded, mean and extremes); the whole
    class is scored once.
    """
    rng = np.random.default_rng(seed)
    n_students = stranger_scores.shape[1] if class_columns is None else class_columns
    has_face = ~np.all(stranger_scores <= NO_SCORE, axis=1)
    rows = []
    for size in [*(s for s in sizes if s < n_students), n_students]:
        samples = 1 if size == n_students else repeats
        shares = []
        for _ in range(samples):
            columns = (
                np.arange(n_students)
                if size == n_students
                else np.sort(rng.choice(n_students, size=size, replace=False))
            )
            hit = accepted(stranger_scores, columns) & has_face
            shares.append(float(hit.mean()) if len(hit) else 0.0)
        rows.append(
            {
                "students": size,
                "classes": samples,
                "false_accept": rounded(float(np.mean(shares)), 4),
                "min": rounded(min(shares), 4),
                "max": rounded(max(shares), 4),
            }
        )
    return rows


def cohort_accepts(
    threshold: float | None,
    models: Sequence[str] = (FACENET,),
    *,
    school: bool = False,
    same_person: npt.NDArray[np.bool_] | None = None,
) -> Accepts:
    """Stage 1: a name is given when the best cohort-normalised score reaches ``threshold``
    (``None``: the calibrated default for the class's size and school). ``school``: every column
    that is not the class's is the school cohort."""

    def accepted(
        scores: npt.NDArray[np.float64], columns: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.bool_]:
        cohort = (
            np.setdiff1d(np.arange(scores.shape[1]), columns) if school else np.zeros(0, np.intp)
        )
        decided, kept = decide_columns(scores, columns, cohort, same_person)
        applied = (
            open_set_threshold(models, class_size=len(columns), cohort_size=kept)
            if threshold is None
            else threshold
        )
        return decided.named(applied)

    return accepted


def school_views(
    students: Sequence[tuple[str, ClassSplit, str]],
    views: RegistrationViews,
    models: Sequence[str],
) -> tuple[dict[str, npt.NDArray[np.float32]], dict[str, dict[str, npt.NDArray[np.float32]]]]:
    """``Gallery.from_views`` arguments for ``(id, half, name)`` students registered from their
    first photo."""
    first = {sid: half.students[name][0] for sid, half, name in students}
    return (
        {sid: views[FACENET][photo] for sid, photo in first.items()},
        {m: {sid: views[m][photo] for sid, photo in first.items()} for m in models[1:]},
    )


def evaluate_rollcall(
    ctx: BenchContext,
    system: RollcallSystem,
    halves: tuple[ClassSplit, ClassSplit],
    images: ImageEmbeddings,
    views: RegistrationViews,
    computed: int,
    head: Any,
) -> JsonDict:
    """One Rollcall setting: ``images`` and ``views`` hold (at least) its models."""
    calibration, test = halves
    images = images.select(system.models)
    cal = rollcall_class(calibration, views, images)
    tst = rollcall_class(test, views, images)
    # The school: each half is the other's cohort (other classes' students: registration photos
    # only, never a probe of the class it is the cohort of).
    cal_school = Cohort.from_galleries([tst.gallery])
    tst_school = Cohort.from_galleries([cal.gallery])

    cal_strangers = [i for i, t in enumerate(cal.truth) if t is None]
    stage1_threshold = threshold_at_false_accept(
        stage1_scores(cal)[cal_strangers].tolist(), FALSE_ACCEPT_TARGET
    )
    school_threshold = threshold_at_false_accept(
        stage1_scores(cal, cal_school)[cal_strangers].tolist(), FALSE_ACCEPT_TARGET
    )
    raw_best = np.where(cal.has_face, similarities(cal).max(axis=1), NO_SCORE)
    plain_threshold = threshold_at_false_accept(
        raw_best[cal_strangers].tolist(), FALSE_ACCEPT_TARGET
    )
    alone_default = system.default_threshold_for(len(tst.gallery))
    school_default = system.default_threshold_for(
        len(tst.gallery), Impostors.for_class(tst.gallery, tst_school, None).cohort_size
    )
    methods: JsonDict = {
        "stage1": {
            "label": "stage 1, the class alone (service default without other classes)",
            "default_threshold": alone_default,
            "calibrated_threshold": rounded(stage1_threshold, 4),
            "at_default": rates(rollcall_outcome(tst, None, None)),
            "at_calibrated": rates(rollcall_outcome(tst, stage1_threshold, None)),
        },
        **(
            {
                "stage1_school": {
                    "label": (
                        f"stage 1 with the school: the calibration class's {len(cal.gallery)} students "
                        "as the other classes (service default with a school cohort)"
                    ),
                    "default_threshold": school_default,
                    "calibrated_threshold": rounded(school_threshold, 4),
                    "at_default": rates(rollcall_outcome(tst, None, None, tst_school)),
                    "at_calibrated": rates(
                        rollcall_outcome(tst, school_threshold, None, tst_school)
                    ),
                }
            }
            if system.calibrated
            else {}
        ),
        "two_stage": {
            "label": "two-stage: stage 1 (the class alone), then the class's projection head re-ranks",
            "default_threshold": alone_default,
            "calibrated_threshold": rounded(stage1_threshold, 4),
            "at_default": rates(rollcall_outcome(tst, None, head)),
            "at_calibrated": rates(rollcall_outcome(tst, stage1_threshold, head)),
        },
        "plain_cosine": {
            "label": "plain similarity of the templates, no cohort normalisation (reference)",
            "default_threshold": None,
            "calibrated_threshold": rounded(plain_threshold, 4),
            "at_default": None,
            "at_calibrated": rates(plain_cosine_outcome(tst, plain_threshold)),
        },
    }
    strangers = [i for i, t in enumerate(tst.truth) if t is None]
    # Stranger photos against the test class then the calibration class (a class is drawn from
    # the first columns, the rest is its school): one gallery of both, ids kept in that order.
    school = Gallery.from_views(
        *school_views(
            [(f"0 {n}", test, n) for n in test.students]
            + [(f"1 {n}", calibration, n) for n in calibration.students],
            views,
            system.models,
        )
    )
    everyone = school.similarities(tst.probes).astype(np.float64)
    stranger_scores = np.where(tst.has_face[strangers, None], everyone[strangers], NO_SCORE)
    same_person = (
        Cohort.from_galleries([school]).similarities_with(school) >= SAME_PERSON_SIMILARITY
    )
    np.fill_diagonal(same_person, False)
    enrol_rows = {p: i for i, p in enumerate(images.paths)}
    return {
        "label": system.label,
        "models": list(system.models),
        "methods": methods,
        "false_accept_by_class_size": {
            "threshold": "calibrated for each class size (ml.fusion.open_set_threshold)"
            if system.calibrated
            else system.default_threshold,
            "rows": false_accept_by_class_size(
                stranger_scores,
                cohort_accepts(None, system.models),
                CLASS_SIZES,
                ctx.seed,
                class_columns=len(tst.gallery),
            ),
        },
        **(
            {
                "false_accept_by_class_size_school": {
                    "threshold": "calibrated for each class size and school",
                    "school": len(school),
                    "rows": false_accept_by_class_size(
                        stranger_scores,
                        cohort_accepts(None, system.models, school=True, same_person=same_person),
                        CLASS_SIZES,
                        ctx.seed,
                        class_columns=len(tst.gallery),
                    ),
                }
            }
            if system.calibrated
            else {}
        ),
        "registration_photos_without_face": int(
            sum(
                1
                for half in halves
                for photos in half.students.values()
                if images.faces_found[enrol_rows[photos[0]]] == 0
            )
        ),
        "test_probes_without_face": int((~tst.has_face).sum()),
        "registration_photos_computed_this_run": computed,
    }


# -- face_recognition ---------------------------------------------------------------------------


def distance_outcome(
    split: ClassSplit, images: ImageEmbeddings, tolerance: float
) -> tuple[Outcome, npt.NDArray[np.float64]]:
    """Nearest registered encoding within ``tolerance``; also each probe's best score (-distance)."""
    row = {p: i for i, p in enumerate(images.paths)}
    names = list(split.students)
    known = images.embeddings[[row[split.students[n][0]] for n in names]].astype(np.float64)
    probes = split.probes()
    indices = [row[photo] for _, photo in probes]
    encodings = images.embeddings[indices].astype(np.float64)
    has_face = images.faces_found[indices] > 0
    distances = cdist(encodings, known)
    nearest = distances.argmin(axis=1)
    best = np.where(has_face, -distances.min(axis=1), NO_SCORE)
    top1: list[str | None] = [
        names[int(n)] if f else None for n, f in zip(nearest, has_face, strict=True)
    ]
    predicted = [t if s >= -tolerance else None for t, s in zip(top1, best, strict=True)]
    truth = [t for t, _ in probes]
    return Outcome(predicted, truth, top1, best.tolist()), best


def distance_accepts(tolerance: float) -> Accepts:
    """face_recognition: a name is given when the nearest encoding of the class is within
    ``tolerance`` (scores are negative distances; no school: the other columns are ignored)."""

    def accepted(
        scores: npt.NDArray[np.float64], columns: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.bool_]:
        return np.asarray(scores[:, columns].max(axis=1) >= -tolerance, dtype=bool)

    return accepted


def evaluate_face_recognition(
    ctx: BenchContext,
    system: FaceSystem,
    halves: tuple[ClassSplit, ClassSplit],
    images: ImageEmbeddings,
) -> JsonDict:
    calibration, test = halves
    cal_outcome, cal_best = distance_outcome(calibration, images, system.default_threshold)
    cal_strangers = [i for i, t in enumerate(cal_outcome.truth) if t is None]
    calibrated = -threshold_at_false_accept(cal_best[cal_strangers].tolist(), FALSE_ACCEPT_TARGET)
    test_photos = {p for _, p in test.probes()}
    row = {p: i for i, p in enumerate(images.paths)}
    names = list(test.students)
    known = images.embeddings[[row[test.students[n][0]] for n in names]].astype(np.float64)
    stranger_rows = [row[photo] for truth, photo in test.probes() if truth is None]
    stranger_scores = np.where(
        images.faces_found[stranger_rows, None] > 0,
        -cdist(images.embeddings[stranger_rows].astype(np.float64), known),
        NO_SCORE,
    )
    return {
        "label": system.label,
        "models": [],
        "false_accept_by_class_size": {
            "threshold": system.default_threshold,
            "rows": false_accept_by_class_size(
                stranger_scores, distance_accepts(system.default_threshold), CLASS_SIZES, ctx.seed
            ),
        },
        "methods": {
            "nearest": {
                "label": "nearest registered encoding within the distance threshold",
                "default_threshold": system.default_threshold,
                "calibrated_threshold": rounded(calibrated, 4),
                "at_default": rates(distance_outcome(test, images, system.default_threshold)[0]),
                "at_calibrated": rates(distance_outcome(test, images, calibrated)[0]),
            }
        },
        "registration_photos_without_face": int(
            sum(
                1
                for half in halves
                for photos in half.students.values()
                if images.faces_found[row[photos[0]]] == 0
            )
        ),
        "test_probes_without_face": int(
            sum(1 for p in test_photos if images.faces_found[row[p]] == 0)
        ),
    }


def run(ctx: BenchContext) -> JsonDict:
    identities = {
        name: [str(p.relative_to(ctx.lfw_dir)) for p in photos]
        for name, photos in collect_identities(ctx.lfw_dir).items()
    }
    halves = split_lfw(
        identities,
        seed=ctx.seed,
        max_students=QUICK_STUDENTS_PER_HALF if ctx.quick else None,
        max_strangers=QUICK_STRANGERS_PER_HALF if ctx.quick else None,
    )
    photos = sorted(
        {
            p
            for half in halves
            for ps in (*half.students.values(), *half.strangers.values())
            for p in ps
        }
    )
    result: JsonDict = {
        "protocol": {
            "dataset": "LFW (the photos present under faces/lfw)",
            "students": f"identities with >= {MIN_PHOTOS} photos; first photo registered",
            "strangers": f"identities with < {MIN_PHOTOS} photos, never registered",
            "false_accept_target": FALSE_ACCEPT_TARGET,
            "seed": ctx.seed,
            "calibration": {
                "students": len(halves[0].students),
                "strangers": len(halves[0].strangers),
                "genuine_probes": sum(1 for t, _ in halves[0].probes() if t is not None),
                "stranger_probes": sum(1 for t, _ in halves[0].probes() if t is None),
            },
            "test": {
                "students": len(halves[1].students),
                "strangers": len(halves[1].strangers),
                "genuine_probes": sum(1 for t, _ in halves[1].probes() if t is not None),
                "stranger_probes": sum(1 for t, _ in halves[1].probes() if t is None),
            },
        },
        "systems": {},
        "peer_available": face_recognition_available(),
    }
    # Every photo is embedded (and every registration photo enrolled) once by the fused pipeline;
    # FaceNet alone reads the FaceNet part of the same computation.
    ours = RollcallSystem()
    ours_images = embed_images(
        ours, ctx.lfw_dir, photos, ctx.cache("lfw", ours.name, ours.config())
    )
    enrol_photos = [p[0] for half in halves for p in half.students.values()]
    views, computed = rollcall_views(
        ours, ctx.lfw_dir, enrol_photos, ctx.cache("enrol", ours.name, ours.registration_config())
    )
    # The head is trained on FaceNet's views only: the same head for every setting.
    test_class = rollcall_class(halves[1], views, ours_images.select(FACENET_ALONE))
    head = ours.pipeline.train_head(test_class.gallery)
    for system in (ours, ours.variant(FACENET_ALONE)):
        result["systems"][system.name] = evaluate_rollcall(
            ctx, system, halves, ours_images, views, computed, head
        )
        logger.info("oneshot %s: %s", system.name, result["systems"][system.name]["methods"])
    if face_recognition_available():
        peer = FaceRecognitionSystem()
        peer_images = embed_images(
            peer, ctx.lfw_dir, photos, ctx.cache("lfw", peer.name, peer.config())
        )
        result["systems"][peer.name] = evaluate_face_recognition(ctx, peer, halves, peer_images)
    return result
