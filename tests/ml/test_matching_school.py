"""The school cohort, known strangers, template aggregation and the calibrated threshold
(``ml.matching``, ``ml.fusion``): units on hand-made embeddings, no models needed."""

from __future__ import annotations

import numpy as np
import pytest

from ml.fusion import DLIB, FACENET, OPEN_SET_CALIBRATIONS, open_set_threshold
from ml.matching import (
    COHORT_WEIGHT,
    MAX_KNOWN_STRANGERS,
    SAME_PERSON_SIMILARITY,
    Cohort,
    Gallery,
    ImpostorKind,
    KnownStrangers,
    aggregate_photos,
    cohort_scores,
    l2_normalize,
    match_faces,
)

FUSED = (FACENET, DLIB)


def _basis(n: int, dim: int = 512) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)[:n]


def _class(n: int = 3) -> Gallery:
    e = _basis(n)
    return Gallery.from_views({f"s{i}": e[i : i + 1] for i in range(n)})


def test_the_cohort_counts_in_the_score_like_another_student() -> None:
    raw = np.array([[0.7, 0.2, 0.4]], np.float32)
    impostor = np.array([0.5], np.float32)
    scores = cohort_scores(raw, impostor_best=impostor)
    w = COHORT_WEIGHT
    np.testing.assert_allclose(scores, [[0.7 - w * 0.5, 0.2 - w * 0.7, 0.4 - w * 0.7]], atol=1e-6)
    # A class of one: the impostors are its only cohort.
    np.testing.assert_allclose(cohort_scores(raw[:, :1], impostor_best=impostor), [[0.7 - w * 0.5]])


def test_a_face_more_like_a_student_of_another_class_is_not_named() -> None:
    e = _basis(6)
    gallery = _class(3)
    # The face looks like s0 (0.6) but more like someone of another class (0.8).
    face = l2_normalize(0.6 * e[0] + 0.8 * e[4])[None, :]
    cohort = Cohort.from_templates([{FACENET: e[4]}, {FACENET: e[5]}])
    alone, _ = match_faces(face, gallery, threshold=0.2)
    assert alone[0].student_id == "s0"
    assert alone[0].impostor_similarity is None and alone[0].closer_to is None
    (decision,), _ = match_faces(face, gallery, threshold=0.2, cohort=cohort)
    assert decision.student_id is None
    assert decision.candidate_id == "s0"
    assert decision.closer_to is ImpostorKind.COHORT
    assert decision.impostor_similarity == pytest.approx(0.8, abs=1e-5)
    assert decision.runner_up_similarity == pytest.approx(0.8, abs=1e-5)


def test_the_cohort_lowers_the_score_and_the_threshold() -> None:
    e = _basis(8)
    gallery = _class(3)
    face = l2_normalize(0.9 * e[0] + 0.3 * e[5])[None, :]
    cohort = Cohort.from_templates([{FACENET: e[5]}, {FACENET: e[6]}, {FACENET: e[7]}])
    (alone,), t_alone = match_faces(face, gallery)
    (school,), t_school = match_faces(face, gallery, cohort=cohort)
    assert t_alone == open_set_threshold((FACENET,), class_size=3)
    assert t_school == open_set_threshold((FACENET,), class_size=3, cohort_size=3)
    # Named either way; in the school its score is normalised by the cohort's best (0.3).
    assert alone.student_id == school.student_id == "s0"
    cohort_best = float(face[0] @ e[5])
    assert school.score == pytest.approx(alone.similarity - COHORT_WEIGHT * cohort_best, abs=1e-5)
    assert school.runner_up_similarity == pytest.approx(cohort_best, abs=1e-5)


def test_the_fused_threshold_falls_with_the_school_and_stays_in_its_range() -> None:
    alone = [open_set_threshold(FUSED, class_size=n) for n in (5, 30, 100, 373)]
    assert alone == sorted(alone, reverse=True)  # small classes need the higher threshold
    school = [open_set_threshold(FUSED, class_size=30, cohort_size=m) for m in (0, 30, 300, 3000)]
    assert school == sorted(school, reverse=True) and school[0] > school[-1]
    calibration = OPEN_SET_CALIBRATIONS[frozenset(FUSED)]
    # No extrapolation: beyond the fitted ranges the threshold stays at the edge's.
    assert open_set_threshold(FUSED, class_size=5000) == open_set_threshold(
        FUSED, class_size=calibration.max_class_size
    )
    far = int(30 * calibration.max_school_ratio)
    assert open_set_threshold(FUSED, class_size=30, cohort_size=10 * far) == open_set_threshold(
        FUSED, class_size=30, cohort_size=far - 30
    )
    assert all(0.2 < t < 0.45 for t in (*alone, *school))
    with pytest.raises(ValueError):
        open_set_threshold(FUSED, class_size=0)


def test_an_explicit_threshold_is_applied_as_it_is() -> None:
    e = _basis(5)
    cohort = Cohort.from_templates([{FACENET: e[4]}])
    _, applied = match_faces(e[0:1], _class(3), threshold=0.33, cohort=cohort)
    assert applied == 0.33


def test_a_student_enrolled_in_two_classes_is_not_their_own_impostor() -> None:
    e = _basis(5)
    gallery = _class(3)
    near_s0 = l2_normalize(e[0] + 0.2 * e[3])  # s0's template from their other class
    assert float(near_s0 @ e[0]) >= SAME_PERSON_SIMILARITY
    cohort = Cohort.from_templates([{FACENET: near_s0}, {FACENET: e[4]}])
    face = l2_normalize(e[0] + 0.25 * e[3])[None, :]  # closer to the other class's template
    (decision,), applied = match_faces(face, gallery, cohort=cohort)
    assert decision.student_id == "s0"
    # Only the one who is not s0 counts in the school's size.
    assert applied == open_set_threshold((FACENET,), class_size=3, cohort_size=1)


def test_a_known_stranger_keeps_their_look_alike_unnamed() -> None:
    e = _basis(6)
    gallery = _class(3)
    visitor = l2_normalize(0.55 * e[1] + 0.83 * e[5])  # looks somewhat like s1
    later = l2_normalize(visitor + 0.1 * e[4])[None, :]  # the visitor next week
    (before,), _ = match_faces(later, gallery, threshold=0.2)
    assert before.student_id == "s1"
    strangers = KnownStrangers.from_faces([{FACENET: visitor}])
    (after,), _ = match_faces(later, gallery, threshold=0.2, strangers=strangers)
    assert after.student_id is None and after.closer_to is ImpostorKind.KNOWN_STRANGER
    # s1 themselves is still named: the known stranger matches them less than their template.
    (student,), _ = match_faces(e[1:2], gallery, threshold=0.2, strangers=strangers)
    assert student.student_id == "s1"
    # Known strangers never lower the calibrated threshold.
    assert match_faces(later, gallery, strangers=strangers)[1] == match_faces(later, gallery)[1]


def test_a_known_stranger_counts_whoever_they_look_like() -> None:
    """A sibling who looks like s2 (or s2's own face marked "nobody" by mistake): a later face
    closer to it than to s2's template is not named, and the decision says why."""
    e = _basis(4)
    gallery = _class(3)
    sibling = l2_normalize(e[2] + 0.3 * e[3])
    strangers = KnownStrangers.from_faces([{FACENET: sibling}])
    later = l2_normalize(e[2] + 0.35 * e[3])[None]
    (decision,), _ = match_faces(later, gallery, strangers=strangers)
    assert decision.student_id is None and decision.closer_to is ImpostorKind.KNOWN_STRANGER
    # s2 on a face like their registration photo is still named.
    (student,), _ = match_faces(
        l2_normalize(e[2] + 0.05 * e[3])[None], gallery, strangers=strangers
    )
    assert student.student_id == "s2"


def test_known_strangers_keep_the_newest() -> None:
    rng = np.random.default_rng(0)
    faces = [{FACENET: l2_normalize(rng.normal(size=512))} for _ in range(MAX_KNOWN_STRANGERS + 5)]
    kept = KnownStrangers.from_faces(faces)
    assert len(kept) == MAX_KNOWN_STRANGERS
    np.testing.assert_allclose(kept.vectors[FACENET][-1], faces[-1][FACENET], atol=1e-6)
    assert len(KnownStrangers.from_faces(faces, max_faces=0)) == 0
    with pytest.raises(ValueError, match="FaceNet"):
        KnownStrangers.from_faces([{DLIB: np.ones(128, np.float32)}])


def test_cohort_from_galleries_keeps_each_models_templates() -> None:
    rng = np.random.default_rng(1)

    def unit(n: int, dim: int) -> np.ndarray:
        return l2_normalize(rng.normal(size=(n, dim)).astype(np.float32))

    with_dlib = Gallery.from_views(
        {"a": unit(2, 512), "b": unit(3, 512)}, {DLIB: {"a": unit(2, 128)}}
    )
    facenet_only = Gallery.from_views({"c": unit(1, 512)})
    cohort = Cohort.from_galleries([with_dlib, facenet_only])
    assert len(cohort) == 3
    np.testing.assert_allclose(cohort.vectors[FACENET][:2], with_dlib.templates, atol=1e-6)
    assert cohort.available[DLIB].tolist() == [True, False, False]
    # A fused probe is compared on FaceNet alone with the people who lack dlib.
    probe = {FACENET: unit(1, 512), DLIB: unit(1, 128)}
    scores = cohort.similarities(probe)
    assert scores[0, 2] == pytest.approx(float(probe[FACENET][0] @ facenet_only.templates[0]))
    bounded = Cohort.from_galleries([with_dlib, facenet_only], max_size=2)
    assert len(bounded) == 2


def test_one_photo_keeps_its_unit_template_and_disagreeing_photos_shorten_it() -> None:
    e = _basis(3)
    np.testing.assert_allclose(aggregate_photos(e[0:1]), e[0], atol=1e-6)
    same = aggregate_photos(np.stack([e[0], e[0]]))
    np.testing.assert_allclose(same, e[0], atol=1e-6)
    apart = aggregate_photos(np.stack([e[0], e[1]]))
    assert float(np.linalg.norm(apart)) < 1.0
    np.testing.assert_allclose(l2_normalize(apart), l2_normalize(e[0] + e[1]), atol=1e-6)
    np.testing.assert_allclose(
        aggregate_photos(np.stack([e[0], e[1]]), length_power=0.0),
        l2_normalize(e[0] + e[1]),
        atol=1e-6,
    )


def test_a_confirmed_face_raises_a_strangers_similarity_less_than_a_renormalised_mean() -> None:
    """Every face shares a generic part (``g``): the re-normalised mean of two photos of a student
    is more generic than either and closer to every stranger; the shorter template is not."""
    e = _basis(7)
    g = e[6]
    registration = l2_normalize(0.6 * g + 0.8 * e[0])[None, :]
    sample = l2_normalize(0.6 * g + 0.8 * e[1])[None, :]
    stranger = l2_normalize(0.6 * g + 0.8 * e[2])
    photos = {"ann": [registration, sample], "bob": [e[5:6]]}
    alone = Gallery.from_photos({"ann": [registration], "bob": [e[5:6]]})
    learned = Gallery.from_photos(photos)
    renormalised = Gallery.from_photos(photos, length_power=0.0)
    plain_mean = Gallery.from_photos(photos, length_power=1.0)
    base = float(alone.similarities(stranger)[0, 0])
    assert float(plain_mean.similarities(stranger)[0, 0]) == pytest.approx(base, abs=1e-6)
    widened = float(renormalised.similarities(stranger)[0, 0]) - base
    assert 0 < float(learned.similarities(stranger)[0, 0]) - base < 0.5 * widened
    # The student's later look gains much more than the stranger.
    new_look = l2_normalize(0.6 * g + 0.57 * e[0] + 0.57 * e[1])
    gain = float(learned.similarities(new_look)[0, 0] - alone.similarities(new_look)[0, 0])
    assert gain > 2 * (float(learned.similarities(stranger)[0, 0]) - base)
