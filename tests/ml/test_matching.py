"""Matcher logic on hand-made embeddings (a unit: no models needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.head import ProjectionHead, train_head
from ml.matching import (
    COHORT_WEIGHT,
    DEFAULT_UNKNOWN_THRESHOLD,
    Gallery,
    assign_faces,
    cohort_scores,
    l2_normalize,
    match_faces,
)


def _basis(n: int, dim: int = 512) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)[:n]


def _mix(a: np.ndarray, b: np.ndarray, weight_b: float) -> np.ndarray:
    return l2_normalize((1 - weight_b) * a + weight_b * b)


def test_cohort_score_subtracts_the_best_other_student() -> None:
    raw = np.array([[0.7, 0.2, 0.4], [0.3, 0.3, 0.1]], np.float32)
    scores = cohort_scores(raw)
    w = COHORT_WEIGHT
    expected = [
        [0.7 - w * 0.4, 0.2 - w * 0.7, 0.4 - w * 0.7],
        [0.3 - w * 0.3, 0.3 - w * 0.3, 0.1 - w * 0.3],
    ]
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    # One student: no cohort, the raw cosine decides.
    np.testing.assert_array_equal(cohort_scores(raw[:, :1]), raw[:, :1])


def test_a_face_like_everyone_is_a_stranger() -> None:
    """Equal, moderately high similarity to every student: raw cosine would accept, cohort does not."""
    e = _basis(4)
    gallery = Gallery.from_views({"ann": e[0:1], "bob": e[1:2], "cat": e[2:3]})
    probe = l2_normalize(e[0] + e[1] + e[2] + 0.3 * e[3])[None, :]
    assert float((probe @ gallery.templates.T).max()) > DEFAULT_UNKNOWN_THRESHOLD
    decisions, threshold = match_faces(probe, gallery)
    assert threshold == DEFAULT_UNKNOWN_THRESHOLD
    assert decisions[0].student_id is None


def test_gallery_templates_are_unit_mean_of_views() -> None:
    e = _basis(3)
    gallery = Gallery.from_views({"b": np.stack([e[0], e[1]]), "a": e[2:3] * 5})
    assert gallery.student_ids == ("a", "b")
    np.testing.assert_allclose(np.linalg.norm(gallery.templates, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(gallery.templates[1], l2_normalize(e[0] + e[1]), atol=1e-6)
    best = gallery.most_similar(e[2])
    assert best is not None and best[0] == "a" and best[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no embeddings"):
        Gallery.from_views({"x": np.zeros((0, 512), np.float32)})


def test_stranger_is_unknown_and_keeps_candidate() -> None:
    e = _basis(4)
    gallery = Gallery.from_views({"ann": e[0:1], "bob": e[1:2]})
    probes = np.stack([_mix(e[0], e[2], 0.1), _mix(e[1], e[3], 0.85)])
    decisions, threshold = match_faces(probes, gallery, threshold=0.5)
    assert threshold == 0.5
    assert decisions[0].student_id == "ann"
    assert decisions[1].student_id is None
    assert decisions[1].candidate_id == "bob"
    assert decisions[1].similarity < 0.5


def test_a_student_is_named_on_at_most_one_face() -> None:
    e = _basis(3)
    gallery = Gallery.from_views({"ann": e[0:1], "bob": e[1:2]})
    # Both faces look most like ann; the first more so. The second is also close enough to bob.
    probes = np.stack([_mix(e[0], e[2], 0.05), l2_normalize(0.62 * e[0] + 0.55 * e[1])])
    decisions, _ = match_faces(probes, gallery, threshold=0.2)
    names = [d.student_id for d in decisions]
    assert names == ["ann", "bob"]
    # Without bob in reach, the weaker ann look-alike becomes unknown instead of a second ann.
    decisions, _ = match_faces(probes[:, :], Gallery.from_views({"ann": e[0:1]}), threshold=0.4)
    assert [d.student_id for d in decisions] == ["ann", None]


def test_assignment_maximises_total_score() -> None:
    scores = np.array([[0.9, 0.8], [0.85, -1e6]])
    assert assign_faces(scores) == [1, 0]
    assert assign_faces(np.zeros((0, 3))) == []
    assert assign_faces(np.full((2, 1), -1e6)) == [None, None]


def _clustered_views(n_students: int, per: int, spread: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(n_students, 512)))
    return {
        f"s{i:02d}": l2_normalize(centres[i] + spread * rng.normal(size=(per, 512)) / np.sqrt(512))
        for i in range(n_students)
    }


def test_student_unknown_to_the_head_is_not_hidden() -> None:
    views = _clustered_views(4, 6, 0.3, seed=1)
    head = train_head({k: views[k] for k in ("s00", "s01", "s02")})
    assert head is not None
    gallery = Gallery.from_views(views)  # s03 enrolled after the head was trained
    probe = views["s03"][0:1]
    decisions, _ = match_faces(probe, gallery, threshold=0.3, head=head)
    assert decisions[0].student_id == "s03"
    assert decisions[0].head_similarity is None


def test_head_scores_are_used_among_close_candidates() -> None:
    views = _clustered_views(5, 8, 0.3, seed=2)
    head = train_head(views)
    assert isinstance(head, ProjectionHead)
    gallery = Gallery.from_views(views)
    probes = np.concatenate([v[1:3] for v in views.values()])
    decisions, _ = match_faces(probes, gallery, threshold=0.3, head=head, margin=1.0)
    truth = [sid for sid in views for _ in range(2)]
    # Joint assignment names each student once per photo, so decide each probe on its own.
    single = [
        match_faces(p[None], gallery, threshold=0.3, head=head, margin=1.0)[0][0] for p in probes
    ]
    assert [d.student_id for d in single] == truth
    assert all(d.head_similarity is not None for d in single)
    assert len({d.student_id for d in decisions if d.student_id}) == sum(
        d.student_id is not None for d in decisions
    )


def test_empty_inputs() -> None:
    gallery = Gallery.from_views({})
    decisions, threshold = match_faces(np.zeros((2, 512), np.float32), gallery)
    assert [d.student_id for d in decisions] == [None, None]
    assert threshold == DEFAULT_UNKNOWN_THRESHOLD
    decisions, _ = match_faces(np.zeros((0, 512), np.float32), gallery)
    assert decisions == []
