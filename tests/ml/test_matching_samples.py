"""Confirmed samples in the gallery (``Gallery.from_photos``) and their rules (``ml.samples``):
units on hand-made embeddings, no models needed."""

from __future__ import annotations

import numpy as np
import pytest

from ml.matching import (
    TEMPLATE_LENGTH_POWER,
    Gallery,
    MatchDecision,
    TemplateCombination,
    l2_normalize,
    match_faces,
)
from ml.samples import AutoConfirmRule, Sample, select_samples


def _basis(n: int, dim: int = 512) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)[:n]


def test_one_photo_per_student_gives_the_same_templates_as_from_views() -> None:
    rng = np.random.default_rng(0)
    views = {s: rng.normal(size=(15, 512)).astype(np.float32) for s in ("ann", "bob", "cat")}
    dlib = {s: rng.normal(size=(2, 128)).astype(np.float32) for s in ("ann", "bob")}
    old = Gallery.from_views(views, {"dlib": dlib})
    new = Gallery.from_photos(
        {s: [v] for s, v in views.items()}, {"dlib": {s: [v] for s, v in dlib.items()}}
    )
    assert new.student_ids == old.student_ids
    np.testing.assert_allclose(new.templates, old.templates, atol=1e-6)
    np.testing.assert_allclose(
        new.secondary["dlib"].templates, old.secondary["dlib"].templates, atol=1e-6
    )
    np.testing.assert_array_equal(new.secondary["dlib"].available, [True, True, False])
    probes = {"facenet": views["bob"][:3], "dlib": dlib["bob"][:1].repeat(3, axis=0)}
    np.testing.assert_allclose(new.similarities(probes), old.similarities(probes), atol=1e-5)


def test_mean_weighs_each_photo_once_however_many_views_it_has() -> None:
    e = _basis(3)
    registration = np.repeat(e[0:1], 15, axis=0)  # 15 views of one photo
    sample = e[1:2]  # one confirmed face
    gallery = Gallery.from_photos({"ann": [registration, sample], "bob": [e[2:3]]})
    # The direction of the mean of the two photo templates; shorter, as the photos disagree.
    length = float(np.linalg.norm((e[0] + e[1]) / 2)) ** TEMPLATE_LENGTH_POWER
    np.testing.assert_allclose(gallery.templates[0], length * l2_normalize(e[0] + e[1]), atol=1e-6)
    np.testing.assert_allclose(gallery.templates[1], e[2], atol=1e-6)
    # The head trains on every row: the 15 views and the sample.
    assert gallery.views[0].shape == (16, 512)


def test_max_scores_a_student_by_their_nearest_photo() -> None:
    e = _basis(4)
    photos = {"ann": [e[0:1], e[1:2]], "bob": [e[2:3]]}
    best = Gallery.from_photos(photos, combination=TemplateCombination.MAX)
    mean = Gallery.from_photos(photos, combination=TemplateCombination.MEAN)
    probe = l2_normalize(e[1] + 0.1 * e[3])[None, :]
    np.testing.assert_allclose(best.similarities(probe)[0, 0], probe[0] @ e[1], atol=1e-6)
    assert best.similarities(probe)[0, 0] > mean.similarities(probe)[0, 0]
    assert best.similarities(probe)[0, 1] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="per-photo templates"):
        Gallery(["x"], e[0:1], [e[0:1]], combination=TemplateCombination.MAX)


def test_max_with_a_secondary_model_only_some_students_have() -> None:
    rng = np.random.default_rng(1)
    facenet = {s: [rng.normal(size=(1, 512)).astype(np.float32)] for s in ("ann", "bob")}
    dlib_ann = [rng.normal(size=(1, 128)).astype(np.float32) for _ in range(2)]
    gallery = Gallery.from_photos(
        facenet, {"dlib": {"ann": dlib_ann}}, combination=TemplateCombination.MAX
    )
    probe = {"facenet": facenet["ann"][0], "dlib": dlib_ann[1]}
    cosines = gallery.model_similarities(probe)
    assert cosines["dlib"][0, 0] == pytest.approx(1.0, abs=1e-5)
    decisions, _ = match_faces(probe, gallery, threshold=0.3)
    assert decisions[0].student_id == "ann"
    assert decisions[0].model_similarities.keys() == {"facenet", "dlib"}


def test_a_confirmed_sample_wins_a_face_the_registration_photo_missed() -> None:
    e = _basis(5)
    new_look = l2_normalize(0.3 * e[0] + e[3])  # ann in a later photo
    without = Gallery.from_photos({"ann": [e[0:1]], "bob": [e[1:2]], "cat": [e[2:3]]})
    with_sample = Gallery.from_photos(
        {
            "ann": [e[0:1], l2_normalize(new_look + 0.2 * e[4])[None]],
            "bob": [e[1:2]],
            "cat": [e[2:3]],
        }
    )
    probe = new_look[None, :]
    assert match_faces(probe, without, threshold=0.4)[0][0].student_id is None
    assert match_faces(probe, with_sample, threshold=0.4)[0][0].student_id == "ann"


def test_decisions_carry_the_runner_up() -> None:
    e = _basis(3)
    gallery = Gallery.from_views({"ann": e[0:1], "bob": e[1:2]})
    probe = l2_normalize(e[0] + 0.5 * e[1])[None, :]
    decision = match_faces(probe, gallery, threshold=0.2)[0][0]
    assert decision.student_id == "ann"
    assert decision.runner_up_similarity == pytest.approx(float(probe[0] @ e[1]), abs=1e-6)
    alone = match_faces(probe, Gallery.from_views({"ann": e[0:1]}), threshold=0.2)[0][0]
    assert alone.runner_up_similarity is None


def _sample(i: int, vector: np.ndarray, at: float) -> Sample:
    return Sample(f"s{i}", vector.astype(np.float32), at)


def test_selection_keeps_everything_under_the_limit_newest_first() -> None:
    e = _basis(3)
    samples = [_sample(0, e[0], 1.0), _sample(1, e[1], 3.0), _sample(2, e[2], 2.0)]
    assert select_samples(samples, 5).kept == ("s1", "s2", "s0")
    assert select_samples(samples, 5).dropped == ()
    assert select_samples(samples, 0).kept == ()


def test_selection_keeps_the_newest_then_the_most_diverse() -> None:
    e = _basis(4)
    near_a = l2_normalize(e[0] + 0.1 * e[3])
    samples = [
        _sample(0, e[0], 1.0),  # old, like the newest
        _sample(1, e[1], 2.0),  # old, unlike everything: kept for diversity
        _sample(2, near_a, 3.0),
        _sample(3, e[0], 4.0),  # newest
    ]
    chosen = select_samples(samples, 2)
    assert chosen.kept == ("s3", "s1")
    assert set(chosen.dropped) == {"s0", "s2"}
    # Measured against the registration too: a sample like it adds nothing.
    reference = e[1:2]
    assert select_samples(samples, 2, reference=reference).kept == ("s3", "s2")
    # All recent: plain newest-N.
    assert select_samples(samples, 2, recent_share=1.0).kept == ("s3", "s2")
    assert select_samples(samples, 2) == select_samples(list(reversed(samples)), 2)


def test_selection_rejects_bad_input() -> None:
    e = _basis(1)
    with pytest.raises(ValueError, match="duplicate"):
        select_samples([_sample(0, e[0], 1.0), _sample(0, e[0], 2.0)], 1)
    with pytest.raises(ValueError, match="limit"):
        select_samples([], -1)
    with pytest.raises(ValueError, match="recent_share"):
        select_samples([], 1, recent_share=1.5)


def _decision(
    student: str | None, score: float, similarity: float, runner_up: float | None
) -> MatchDecision:
    return MatchDecision(student, similarity, None, student, score, {}, runner_up)


def test_auto_confirm_needs_both_margins() -> None:
    rule = AutoConfirmRule(min_score_margin=0.1, min_runner_up_gap=0.2)
    threshold = 0.36
    assert rule.confirms(_decision("ann", 0.5, 0.8, 0.5), threshold)
    assert not rule.confirms(_decision("ann", 0.45, 0.8, 0.5), threshold)  # score too close
    assert not rule.confirms(_decision("ann", 0.5, 0.8, 0.65), threshold)  # runner-up too close
    assert not rule.confirms(_decision(None, 0.9, 0.9, 0.0), threshold)  # not named
    assert rule.confirms(_decision("ann", 0.5, 0.5, None), threshold)  # class of one
