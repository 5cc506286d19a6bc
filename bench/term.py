"""A simulated term: one registration photo, then weekly sessions that teach the class.

Three scenarios: LFW students in classes of 30, the same students in one class, and the people of
``faces/people`` with at least :data:`PEOPLE_MIN_PHOTOS` photos in one class (registered from the
first photo the real registration accepts; LFW strangers). The LFW protocol:

Students are LFW identities with at least :data:`MIN_PHOTOS` photos (among those present), shuffled
(seeded) into classes of :data:`CLASS_SIZE`; each is registered from its first photo (sorted),
through the real enrolment path (the one-shot section's cached registration views). Week ``w``
(1, 2, ...) is one class photo holding every student that still has an unseen photo (their photo
``w``, so each photo is seen once, in order) and :data:`STRANGERS_PER_SESSION` strangers (first
photos of LFW identities with fewer than 3 photos, a new set every week, never registered). Faces
are the cached central faces of the one-shot section; a photo without a detected face is a face
the class photo did not show (a miss that cannot be corrected, a stranger that cannot be
accepted). The whole session is decided at once by ``ml.matching.match_faces`` at the default
threshold (joint assignment: nobody named twice).

After each session the policy learns:

* *no learning*: the gallery stays the registration photo (the one-shot figure, week after week);
* *teacher + auto-confirm*: the teacher assigns every enrolled face that was missed or named wrong
  to the right student (a sample) and clears every wrong name (a sample it had given is removed),
  and every face recognition named with a high margin (``ml.samples.AutoConfirmRule``) becomes a
  sample too;
* *auto-confirm only*: no teacher; high-margin faces become samples, wrong ones stay (the drift
  risk).

Samples per student are bounded by ``ml.samples.select_samples``; the gallery is
``Gallery.from_photos`` (one template per photo) with the policy's combination; a policy with the
head retrains it (warm start) after every session on the gallery's views: registration views plus
the real samples, every enrolled student a negative.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bench.common import BenchContext, JsonDict, rounded
from bench.groups import rollcall_register
from bench.oneshot import MIN_PHOTOS as ONESHOT_MIN_PHOTOS
from bench.oneshot import (
    QUICK_STRANGERS_PER_HALF,
    QUICK_STUDENTS_PER_HALF,
    ClassSplit,
    RegistrationViews,
    rollcall_views,
    split_lfw,
)
from bench.systems import ImageEmbeddings, RollcallSystem, embed_images
from ml.eval.oneshot import collect_identities
from ml.fusion import FACENET
from ml.head import ProjectionHead, train_head
from ml.matching import (
    TEMPLATE_LENGTH_POWER,
    Cohort,
    Gallery,
    KnownStrangers,
    MatchDecision,
    TemplateCombination,
    match_faces,
)
from ml.samples import (
    DEFAULT_AUTO_CONFIRM,
    DEFAULT_MAX_SAMPLES,
    AutoConfirmRule,
    Sample,
    select_samples,
)

logger = logging.getLogger(__name__)

MIN_PHOTOS = 6
"""Registration photo + at least five weeks."""
PEOPLE_MIN_PHOTOS = 4
"""``faces/people`` has fewer photos per identity (1-13): registration photo + three weeks."""
CLASS_SIZE = 30
STRANGERS_PER_SESSION = 5
QUICK_CLASSES = 1
SAMPLE_LIMITS: tuple[int | None, ...] = (1, 2, 4, 8, None)
SCORE_MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
RUNNER_UP_GAPS = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3)
GRID_POLICIES = ("none", "teacher_mean", "auto_mean")
WHOLE_COHORT_POLICIES: tuple[str, ...] | None = None
"""The policies also run with every student in one class (the harder open set): all of them."""
"""Whose named faces the auto-confirm grid counts (before and with learning, with and without a
teacher to clear wrong names)."""

Embedded = dict[str, npt.NDArray[np.float32]]
"""One face (or registration photo) per model."""


@dataclass(frozen=True)
class TermClass:
    students: dict[str, list[str]]
    """Name -> photos; the first is registered, photo ``w`` is shown in week ``w``."""
    strangers: list[list[str]]
    """Per week, the stranger photos of that session."""
    recurring: tuple[str, ...] = ()
    """A stranger who comes every week (a visiting teacher, a sibling): their photo of week
    ``w`` is ``recurring[w - 1]``, while they have one."""

    @property
    def weeks(self) -> int:
        return max(len(p) for p in self.students.values()) - 1


def term_classes(
    identities: Mapping[str, Sequence[str]],
    *,
    seed: int,
    min_photos: int = MIN_PHOTOS,
    class_size: int | None = CLASS_SIZE,
    strangers_per_session: int = STRANGERS_PER_SESSION,
    max_classes: int | None = None,
) -> list[TermClass]:
    """Students shuffled (seeded) into classes of ``class_size`` (a smaller remainder joins the
    last class; ``None``: one class of everybody); each session gets its own strangers, none
    shown twice."""
    rng = np.random.default_rng(seed)
    students = sorted(n for n, p in identities.items() if len(p) >= min_photos)
    students = [students[i] for i in rng.permutation(len(students))]
    strangers = sorted(n for n, p in identities.items() if 0 < len(p) < ONESHOT_MIN_PHOTOS)
    strangers = [strangers[i] for i in rng.permutation(len(strangers))]
    if class_size is None:
        class_size = len(students)
    n_classes = max(1, len(students) // class_size)
    if max_classes is not None:
        n_classes = min(n_classes, max_classes)
    classes = []
    next_stranger = 0
    for c in range(n_classes):
        end = (c + 1) * class_size if c < n_classes - 1 or max_classes else len(students)
        members = {n: list(identities[n]) for n in students[c * class_size : end]}
        weeks = max(len(p) for p in members.values()) - 1
        per_week = []
        for _ in range(weeks):
            chosen = strangers[next_stranger : next_stranger + strangers_per_session]
            next_stranger += strangers_per_session
            per_week.append([identities[n][0] for n in chosen])
        classes.append(TermClass(members, per_week))
    return classes


@dataclass(frozen=True)
class Policy:
    label: str
    learning: str
    """``none``, ``teacher`` (corrections + auto-confirm) or ``auto`` (auto-confirm only)."""
    combination: TemplateCombination = TemplateCombination.MEAN
    head: bool = False
    max_samples: int | None = DEFAULT_MAX_SAMPLES
    rule: AutoConfirmRule = DEFAULT_AUTO_CONFIRM
    school: bool = False
    """The other classes' students are the school cohort (``ml.matching.Cohort``)."""
    known_strangers: bool = False
    """A stranger's face the teacher clears becomes a known stranger of the class."""
    length_power: float = TEMPLATE_LENGTH_POWER
    """How a student's photos make one template (``ml.matching.aggregate_photos``)."""
    threshold: float | None = None
    """``None``: the calibrated default for the class and the school."""


PREVIOUS_THRESHOLD = 0.36
"""The fused default before the calibration by class and school size."""


def policies() -> dict[str, Policy]:
    mean, best = TemplateCombination.MEAN, TemplateCombination.MAX
    result = {
        "none": Policy("no learning (registration photo only)", "none"),
        "none_head": Policy("no learning, two-stage with the head", "none", head=True),
        "teacher_mean": Policy("teacher + auto-confirm, mean template", "teacher", mean),
        "teacher_max": Policy("teacher + auto-confirm, best photo (max)", "teacher", best),
        "teacher_mean_head": Policy(
            "teacher + auto-confirm, mean template, two-stage with the head",
            "teacher",
            mean,
            head=True,
        ),
        "auto_mean": Policy("auto-confirm only (no teacher), mean template", "auto", mean),
    }
    result["previous"] = Policy(
        f"before: teacher + auto-confirm, re-normalised mean, the class alone at {PREVIOUS_THRESHOLD}",
        "teacher",
        mean,
        length_power=0.0,
        threshold=PREVIOUS_THRESHOLD,
    )
    result["school_only"] = Policy(
        "teacher + auto-confirm, the school as cohort, no known strangers",
        "teacher",
        mean,
        school=True,
    )
    result["school"] = Policy(
        "teacher + auto-confirm, the school as cohort, known strangers (default)",
        "teacher",
        mean,
        school=True,
        known_strangers=True,
    )
    for limit in SAMPLE_LIMITS:
        if limit == DEFAULT_MAX_SAMPLES:
            continue
        name = f"teacher_mean_n{limit if limit is not None else 'all'}"
        result[name] = Policy(
            f"teacher + auto-confirm, mean template, {limit or 'unbounded'} samples",
            "teacher",
            mean,
            max_samples=limit,
        )
    return result


@dataclass
class StoredSample:
    sample: Sample
    embedded: Embedded
    source: str
    """``teacher`` or ``auto``."""
    correct: bool


@dataclass
class WeekCounts:
    week: int
    student_faces: int = 0
    named_right: int = 0
    wrong_name: int = 0
    stranger_faces: int = 0
    strangers_accepted: int = 0
    samples_teacher: int = 0
    samples_auto: int = 0
    wrong_samples_auto: int = 0
    samples_kept: int = 0
    recurring_faces: int = 0
    recurring_accepted: int = 0
    known_strangers: int = 0

    def add(self, other: WeekCounts) -> None:
        for name in self.__dataclass_fields__:
            if name != "week":
                setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class NamedFace:
    """A face recognition named: its margins and whether the name was right."""

    score_margin: float
    runner_up_gap: float
    right: bool


@dataclass
class TermData:
    images: ImageEmbeddings
    registration: dict[str, dict[str, npt.NDArray[np.float32]]]
    """model -> photo -> registration embeddings."""
    row: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.row = {p: i for i, p in enumerate(self.images.paths)}

    def faces(self, photos: Sequence[str]) -> tuple[Embedded, npt.NDArray[np.bool_]]:
        indices = [self.row[p] for p in photos]
        return self.images.by_model(indices), self.images.faces_found[indices] > 0


def build_gallery(
    students: Sequence[str],
    registered: Mapping[str, str],
    samples: Mapping[str, list[StoredSample]],
    data: TermData,
    models: Sequence[str],
    combination: TemplateCombination,
    length_power: float = TEMPLATE_LENGTH_POWER,
) -> Gallery:
    photos = {
        sid: [
            data.registration[FACENET][registered[sid]],
            *(s.embedded[FACENET] for s in samples[sid]),
        ]
        for sid in students
    }
    secondary = {
        model: {
            sid: [
                data.registration[model][registered[sid]],
                *(s.embedded[model] for s in samples[sid]),
            ]
            for sid in students
        }
        for model in models
        if model != FACENET
    }
    return Gallery.from_photos(
        photos, secondary, combination=combination, length_power=length_power
    )


def school_cohort(
    others: Sequence[str], registered: Mapping[str, str], data: TermData, models: Sequence[str]
) -> Cohort | None:
    """The other classes' students, as registered (their samples are not followed)."""
    if not others:
        return None
    return Cohort.from_galleries(
        [
            Gallery.from_views(
                {sid: data.registration[FACENET][registered[sid]] for sid in others},
                {
                    m: {sid: data.registration[m][registered[sid]] for sid in others}
                    for m in models
                    if m != FACENET
                },
            )
        ]
    )


def simulate(
    term: TermClass,
    policy: Policy,
    data: TermData,
    models: Sequence[str],
    school: Cohort | None = None,
) -> tuple[list[WeekCounts], list[NamedFace], float]:
    """Week-by-week counts, every named face's margins, and the seconds spent training heads.
    ``school``: the other classes' students, used when the policy says so."""
    students = sorted(term.students)
    registered = {sid: term.students[sid][0] for sid in students}
    samples: dict[str, list[StoredSample]] = {sid: [] for sid in students}
    known: list[Embedded] = []
    cohort = school if policy.school else None
    head: ProjectionHead | None = None
    head_seconds = 0.0
    weeks: list[WeekCounts] = []
    named: list[NamedFace] = []
    for week in range(1, term.weeks + 1):
        gallery = build_gallery(
            students, registered, samples, data, models, policy.combination, policy.length_power
        )
        if policy.head and (head is None or policy.learning != "none"):
            started = time.perf_counter()
            head = train_head(
                dict(zip(gallery.student_ids, gallery.views, strict=True)), previous=head
            )
            head_seconds += time.perf_counter() - started
        present = [sid for sid in students if len(term.students[sid]) > week]
        recurring = [term.recurring[week - 1]] if week <= len(term.recurring) else []
        photos = (
            [term.students[sid][week] for sid in present] + term.strangers[week - 1] + recurring
        )
        truth: list[str | None] = [
            *present,
            *([None] * (len(term.strangers[week - 1]) + len(recurring))),
        ]
        by_model, shown = data.faces(photos)
        shown_rows = np.flatnonzero(shown)
        decisions: list[MatchDecision | None] = [None] * len(photos)
        threshold = 0.0
        if len(shown_rows):
            found, threshold = match_faces(
                {m: by_model[m][shown_rows] for m in models},
                gallery,
                head=head,
                threshold=policy.threshold,
                cohort=cohort,
                strangers=KnownStrangers.from_faces(known) if known else None,
            )
            for row, one in zip(shown_rows, found, strict=True):
                decisions[int(row)] = one
        counts = WeekCounts(week)
        first_recurring = len(photos) - len(recurring)
        for i, decision in enumerate(decisions):
            name = decision.student_id if decision is not None else None
            if i >= first_recurring:
                counts.recurring_faces += decision is not None
                counts.recurring_accepted += name is not None
            if truth[i] is None:
                counts.stranger_faces += 1
                counts.strangers_accepted += name is not None
                if name is not None and policy.known_strangers and policy.learning == "teacher":
                    # The teacher clears the wrong name: "nobody of this class".
                    known.append({model: by_model[model][i] for model in models})
            else:
                counts.student_faces += 1
                counts.named_right += name == truth[i]
                counts.wrong_name += name is not None and name != truth[i]
            if decision is not None and name is not None:
                named.append(named_face(decision, threshold, truth[i]))
        if policy.learning != "none":
            learn(
                policy, term, week, photos, truth, decisions, by_model, threshold, samples, counts
            )
            for sid in students:
                if policy.max_samples is None or len(samples[sid]) <= policy.max_samples:
                    continue
                reference = data.registration[FACENET][registered[sid]].mean(axis=0)[None, :]
                selection = select_samples(
                    [s.sample for s in samples[sid]], policy.max_samples, reference=reference
                )
                keep = set(selection.kept)
                samples[sid] = [s for s in samples[sid] if s.sample.sample_id in keep]
        counts.samples_kept = sum(len(v) for v in samples.values())
        counts.known_strangers = len(known)
        weeks.append(counts)
    return weeks, named, head_seconds


def learn(
    policy: Policy,
    term: TermClass,
    week: int,
    photos: Sequence[str],
    truth: Sequence[str | None],
    decisions: Sequence[MatchDecision | None],
    by_model: Embedded,
    threshold: float,
    samples: dict[str, list[StoredSample]],
    counts: WeekCounts,
) -> None:
    """One session's confirmed faces join the samples (see the module docstring)."""

    def stored(i: int, source: str, student: str) -> StoredSample:
        embedded = {model: matrix[i : i + 1] for model, matrix in by_model.items()}
        sample = Sample(f"{photos[i]}", embedded[FACENET][0], float(week))
        return StoredSample(sample, embedded, source, student == truth[i])

    for i, decision in enumerate(decisions):
        if decision is None:
            continue  # no face shown: nothing to confirm or assign
        name = decision.student_id
        auto = name is not None and policy.rule.confirms(decision, threshold)
        if auto and name is not None:
            counts.samples_auto += 1
            counts.wrong_samples_auto += name != truth[i]
        if policy.learning == "teacher":
            if name == truth[i]:
                if auto and name is not None:
                    samples[name].append(stored(i, "auto", name))
                continue
            # Wrong name or missed: the teacher clears the name (its sample is never kept) and
            # assigns the face to the right student, if any.
            right = truth[i]
            if right is not None:
                samples[right].append(stored(i, "teacher", right))
                counts.samples_teacher += 1
        elif auto and name is not None:
            samples[name].append(stored(i, "auto", name))


def summarise(weeks: Sequence[WeekCounts]) -> list[JsonDict]:
    rows = []
    for w in weeks:
        rows.append(
            {
                "week": w.week,
                "student_faces": w.student_faces,
                "named_right": w.named_right,
                "wrong_name": w.wrong_name,
                "stranger_faces": w.stranger_faces,
                "strangers_accepted": w.strangers_accepted,
                "named_right_rate": rounded(w.named_right / max(1, w.student_faces), 4),
                "wrong_name_rate": rounded(w.wrong_name / max(1, w.student_faces), 4),
                "stranger_accept_rate": rounded(w.strangers_accepted / max(1, w.stranger_faces), 4),
                "samples_teacher": w.samples_teacher,
                "samples_auto": w.samples_auto,
                "wrong_samples_auto": w.wrong_samples_auto,
                "samples_kept": w.samples_kept,
                "recurring_faces": w.recurring_faces,
                "recurring_accepted": w.recurring_accepted,
                "known_strangers": w.known_strangers,
            }
        )
    return rows


def totals(weeks: Sequence[WeekCounts], first: int, last: int | None = None) -> JsonDict:
    total = WeekCounts(0)
    for w in weeks:
        if w.week >= first and (last is None or w.week <= last):
            total.add(w)
    return {
        "weeks": f"{first}-{last}" if last is not None else f"{first}+",
        "student_faces": total.student_faces,
        "named_right_rate": rounded(total.named_right / max(1, total.student_faces), 4),
        "wrong_name": total.wrong_name,
        "strangers_accepted": total.strangers_accepted,
        "stranger_faces": total.stranger_faces,
        "wrong_samples_auto": total.wrong_samples_auto,
        "recurring_faces": total.recurring_faces,
        "recurring_accepted": total.recurring_accepted,
    }


def auto_confirm_grid(named: Sequence[NamedFace]) -> list[JsonDict]:
    """For each candidate rule: how many wrong and right names it would have confirmed."""
    rows = []
    right_total = sum(n.right for n in named)
    for margin in SCORE_MARGINS:
        for gap in RUNNER_UP_GAPS:
            wrong = sum(
                1
                for n in named
                if not n.right and n.score_margin >= margin and n.runner_up_gap >= gap
            )
            right = sum(
                1 for n in named if n.right and n.score_margin >= margin and n.runner_up_gap >= gap
            )
            rows.append(
                {
                    "min_score_margin": margin,
                    "min_runner_up_gap": gap,
                    "wrong_confirmed": wrong,
                    "right_confirmed": right,
                    "right_confirmed_share": rounded(right / max(1, right_total), 4),
                }
            )
    return rows


def named_face(decision: MatchDecision, threshold: float, truth: str | None) -> NamedFace:
    runner_up = decision.runner_up_similarity
    return NamedFace(
        decision.score - threshold,
        decision.similarity - (runner_up if runner_up is not None else -1.0),
        decision.student_id == truth,
    )


def oneshot_named_faces(
    halves: Sequence[ClassSplit],
    registration: Mapping[str, Mapping[str, npt.NDArray[np.float32]]],
    data: TermData,
) -> list[NamedFace]:
    """Every face named in the one-shot section's two classes (each probe decided on its own at
    the default threshold, registration photo only): the auto-confirm rule must not take the
    wrong ones either."""
    models = data.images.models
    named: list[NamedFace] = []
    for half in halves:
        first = {n: photos[0] for n, photos in half.students.items()}
        gallery = Gallery.from_views(
            {n: registration[FACENET][p] for n, p in first.items()},
            {m: {n: registration[m][p] for n, p in first.items()} for m in models[1:]},
        )
        probes = [(t, p) for t, p in half.probes()]
        by_model, shown = data.faces([p for _, p in probes])
        for i in np.flatnonzero(shown):
            decisions, threshold = match_faces({m: by_model[m][i : i + 1] for m in models}, gallery)
            if decisions[0].student_id is not None:
                named.append(named_face(decisions[0], threshold, probes[int(i)][0]))
    return named


def run_policies(
    classes: Sequence[TermClass],
    chosen: Mapping[str, Policy],
    data: TermData,
    models: Sequence[str],
    grid_named: list[NamedFace],
) -> JsonDict:
    """Every policy over every class, the classes' weeks added up. A class's school is the
    other classes of the scenario."""
    result: JsonDict = {}
    registered = {sid: c.students[sid][0] for c in classes for sid in c.students}
    schools = [
        school_cohort(
            [sid for other in classes if other is not term for sid in sorted(other.students)],
            registered,
            data,
            models,
        )
        for term in classes
    ]
    for name, policy in chosen.items():
        started = time.perf_counter()
        merged: dict[int, WeekCounts] = {}
        head_seconds = 0.0
        for term, school in zip(classes, schools, strict=True):
            weeks, named, seconds = simulate(term, policy, data, models, school)
            head_seconds += seconds
            if name in GRID_POLICIES:
                grid_named.extend(named)
            for w in weeks:
                merged.setdefault(w.week, WeekCounts(w.week)).add(w)
        ordered = [merged[k] for k in sorted(merged)]
        result[name] = {
            "label": policy.label,
            "learning": policy.learning,
            "combination": str(policy.combination),
            "head": policy.head,
            "school": policy.school,
            "known_strangers": policy.known_strangers,
            "length_power": policy.length_power,
            "threshold": policy.threshold,
            "max_samples": policy.max_samples,
            "weeks": summarise(ordered),
            "totals": [totals(ordered, 1, 1), totals(ordered, 2, 4), totals(ordered, 5)],
            "seconds": rounded(time.perf_counter() - started, 1),
            "head_training_seconds": rounded(head_seconds, 1),
        }
        logger.info("term %s: %s", name, [t["named_right_rate"] for t in result[name]["totals"]])
    return result


def people_class(
    ctx: BenchContext,
    system: RollcallSystem,
    stranger_photos: Sequence[str],
) -> tuple[TermClass, list[str], RegistrationViews]:
    """``faces/people`` identities with at least :data:`PEOPLE_MIN_PHOTOS` photos as one class,
    each registered from the first photo the real registration accepts (the group section's
    cache); the photos after it are the weeks. Strangers are LFW photos (``stranger_photos``, in
    order). Returns the class, the people photos to embed, and the registration views."""
    identities = collect_identities(ctx.people_dir)
    cache = ctx.cache("people-enrol", system.name, system.registration_config())
    students: dict[str, list[str]] = {}
    registration: RegistrationViews = {model: {} for model in system.models}
    for name, paths in sorted(identities.items()):
        if len(paths) < PEOPLE_MIN_PHOTOS:
            continue
        views, tried = rollcall_register(system, ctx.people_dir, paths, cache)
        relative = [str(p.relative_to(ctx.people_dir)) for p in paths]
        if views is None or tried == len(relative):
            continue
        students[name] = relative[tried - 1 :]
        for model in system.models:
            registration[model][relative[tried - 1]] = views[model]
    cache.save()
    weeks = max(len(p) for p in students.values()) - 1
    strangers = [
        list(stranger_photos[w * STRANGERS_PER_SESSION : (w + 1) * STRANGERS_PER_SESSION])
        for w in range(weeks)
    ]
    probes = sorted({p for photos in students.values() for p in photos[1:]})
    return TermClass(students, strangers), probes, registration


RECURRING_POLICIES = ("none", "previous", "teacher_mean", "school_only", "school", "auto_mean")
"""The policies run on the classes with a recurring stranger."""


def with_recurring_strangers(
    classes: Sequence[TermClass],
    identities: Mapping[str, Sequence[str]],
    data: TermData,
    models: Sequence[str],
) -> list[TermClass]:
    """Each class with a recurring stranger: among the LFW identities with 3 to 5 photos (too few
    to be a student of the term, and never shown as a weekly stranger), the one whose first photo
    looks most like a student of the class (the highest fused similarity with a registration
    template), each stranger in one class only; they come every week while they have a photo."""
    candidates = sorted(
        n for n, p in identities.items() if ONESHOT_MIN_PHOTOS <= len(p) < MIN_PHOTOS
    )
    first = [identities[n][0] for n in candidates]
    probes, shown = data.faces(first)
    taken: set[str] = set()
    result = []
    for term in classes:
        registered = {sid: term.students[sid][0] for sid in term.students}
        gallery = Gallery.from_views(
            {sid: data.registration[FACENET][p] for sid, p in registered.items()},
            {
                m: {sid: data.registration[m][p] for sid, p in registered.items()}
                for m in models
                if m != FACENET
            },
        )
        likeness = np.where(shown, gallery.similarities(probes).max(axis=1), -np.inf)
        for index in np.argsort(-likeness, kind="stable"):
            if candidates[int(index)] not in taken:
                name = candidates[int(index)]
                break
        taken.add(name)
        result.append(dataclasses.replace(term, recurring=tuple(identities[name])))
    return result


def merged_images(first: ImageEmbeddings, second: ImageEmbeddings) -> ImageEmbeddings:
    """The photos of both (their paths must not collide), the same models."""
    if set(first.paths) & set(second.paths) or first.models != second.models:
        raise ValueError("cannot merge these embeddings")
    return ImageEmbeddings(
        first.paths + second.paths,
        np.concatenate([first.embeddings, second.embeddings]),
        np.concatenate([first.faces_found, second.faces_found]),
        first.computed + second.computed,
        first.seconds + second.seconds,
        first.models,
    )


def run(ctx: BenchContext) -> JsonDict:
    identities = {
        name: [str(p.relative_to(ctx.lfw_dir)) for p in photos]
        for name, photos in collect_identities(ctx.lfw_dir).items()
    }
    scenarios = {
        "classes": term_classes(
            identities, seed=ctx.seed, max_classes=QUICK_CLASSES if ctx.quick else None
        ),
        "one_class": term_classes(
            identities,
            seed=ctx.seed,
            class_size=None,
            max_classes=1,
        ),
    }
    if ctx.quick:
        del scenarios["one_class"]
    ours = RollcallSystem()
    models = ours.models
    # The one-shot section's classes too, for the auto-confirm grid (the same caches).
    halves = split_lfw(
        identities,
        seed=ctx.seed,
        max_students=QUICK_STUDENTS_PER_HALF if ctx.quick else None,
        max_strangers=QUICK_STRANGERS_PER_HALF if ctx.quick else None,
    )
    classes = [c for group in scenarios.values() for c in group]
    recurring_candidates = {
        p for ps in identities.values() if ONESHOT_MIN_PHOTOS <= len(ps) < MIN_PHOTOS for p in ps
    }
    photos = sorted(
        {p for c in classes for ps in c.students.values() for p in ps[1:]}
        | {p for c in classes for week in c.strangers for p in week}
        | {p for half in halves for _, p in half.probes()}
        | recurring_candidates
    )
    images = embed_images(ours, ctx.lfw_dir, photos, ctx.cache("lfw", ours.name, ours.config()))
    enrol = sorted(
        {p[0] for half in halves for p in half.students.values()}
        | {c.students[n][0] for c in classes for n in c.students}
    )
    registration, computed = rollcall_views(
        ours, ctx.lfw_dir, enrol, ctx.cache("enrol", ours.name, ours.registration_config())
    )
    images = images.select(models)
    if not ctx.quick and ctx.people_dir.is_dir():
        # faces/people: other sources (phone-like, grayscale crops), one class; its strangers are
        # LFW identities with 1-2 photos that no LFW class showed and nobody in faces/people is.
        people_names = set(collect_identities(ctx.people_dir))
        shown = {p for c in classes for week in c.strangers for p in week}
        spare = [
            photos[0]
            for name, photos in sorted(identities.items())
            if 0 < len(photos) < ONESHOT_MIN_PHOTOS
            and name not in people_names
            and photos[0] not in shown
        ]
        order = np.random.default_rng(ctx.seed + 1).permutation(len(spare))
        people, people_photos, people_views = people_class(ctx, ours, [spare[i] for i in order])
        people_images = embed_images(
            ours, ctx.people_dir, people_photos, ctx.cache("people", ours.name, ours.config())
        ).select(models)
        extra = sorted({p for week in people.strangers for p in week} - set(images.paths))
        if extra:  # normally none: the one-shot section's strangers are all LFW's 1-2 photo ones
            images = merged_images(
                images,
                embed_images(
                    ours, ctx.lfw_dir, extra, ctx.cache("lfw", ours.name, ours.config())
                ).select(models),
            )
        images = merged_images(images, people_images)
        for model, views in people_views.items():
            registration[model].update(views)
        scenarios["people"] = [people]
    data = TermData(images, registration)
    scenarios["recurring"] = with_recurring_strangers(
        scenarios["classes"], identities, data, models
    )
    result: JsonDict = {
        "protocol": {
            "dataset": "LFW (the photos present under faces/lfw)",
            "students": f"identities with >= {MIN_PHOTOS} photos, first photo registered",
            "strangers_per_session": STRANGERS_PER_SESSION,
            "models": list(models),
            "threshold": "calibrated for each class and school (ml.fusion.open_set_threshold)",
            "previous_threshold": PREVIOUS_THRESHOLD,
            "default_max_samples": DEFAULT_MAX_SAMPLES,
            "default_auto_confirm": {
                "min_score_margin": DEFAULT_AUTO_CONFIRM.min_score_margin,
                "min_runner_up_gap": DEFAULT_AUTO_CONFIRM.min_runner_up_gap,
            },
            "registration_photos_computed_this_run": computed,
            "seed": ctx.seed,
        },
        "scenarios": {},
    }
    grid_named: list[NamedFace] = []
    every_policy = policies()
    for name, group in scenarios.items():
        if name == "recurring":
            chosen = {k: v for k, v in every_policy.items() if k in RECURRING_POLICIES}
        elif name == "classes" or WHOLE_COHORT_POLICIES is None:
            chosen = every_policy
        else:
            chosen = {k: v for k, v in every_policy.items() if k in WHOLE_COHORT_POLICIES}
        result["scenarios"][name] = {
            "classes": len(group),
            "class_sizes": [len(c.students) for c in group],
            "weeks": max(c.weeks for c in group),
            "policies": run_policies(group, chosen, data, models, grid_named),
        }
    oneshot_named = oneshot_named_faces(halves, registration, data)
    result["auto_confirm_grid"] = {
        "term": grid_summary(grid_named) | {"policies": list(GRID_POLICIES)},
        "oneshot": grid_summary(oneshot_named),
    }
    return result


def grid_summary(named: Sequence[NamedFace]) -> JsonDict:
    wrong = [n for n in named if not n.right]
    return {
        "named_faces": len(named),
        "wrong_names": len(wrong),
        "wrong_max_score_margin": rounded(max((n.score_margin for n in wrong), default=0.0)),
        "wrong_max_runner_up_gap": rounded(max((n.runner_up_gap for n in wrong), default=0.0)),
        "rows": auto_confirm_grid(named),
    }
