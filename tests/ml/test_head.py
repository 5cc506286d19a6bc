"""Projection head training on clustered embeddings."""

from __future__ import annotations

import numpy as np

from ml.head import HeadTrainingConfig, ProjectionHead, head_loss, train_head
from ml.matching import l2_normalize


def _views(n_students: int, per: int, seed: int, spread: float = 0.9) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(n_students, 512)))
    # Pairs of students share half their centre so the raw metric confuses them.
    for i in range(1, n_students, 2):
        centres[i] = l2_normalize(centres[i - 1] + 0.8 * centres[i])
    return {
        f"student-{i}": l2_normalize(
            centres[i] + spread * rng.normal(size=(per, 512)) / np.sqrt(512) * 8
        )
        for i in range(n_students)
    }


def test_fewer_than_two_students_means_no_head() -> None:
    assert train_head({}) is None
    assert train_head(_views(1, 5, seed=0)) is None


def test_training_lowers_the_triplet_loss_and_outputs_unit_vectors() -> None:
    views = _views(12, 10, seed=0)
    untrained = train_head(views, config=HeadTrainingConfig(max_steps=0))
    trained = train_head(views)
    assert untrained is not None and trained is not None
    assert head_loss(trained, views) < head_loss(untrained, views)
    projected = trained.project(np.concatenate(list(views.values())))
    assert projected.shape == (120, 64)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, atol=1e-5)
    assert trained.student_ids == tuple(sorted(views))


def test_training_is_deterministic_for_a_seed() -> None:
    views = _views(6, 8, seed=3)
    first, second = train_head(views), train_head(views)
    other = train_head(views, config=HeadTrainingConfig(seed=7))
    assert first is not None and second is not None and other is not None
    for name, value in first.weights.items():
        np.testing.assert_array_equal(value, second.weights[name])
    assert any(not np.array_equal(v, other.weights[k]) for k, v in first.weights.items())


def test_incremental_training_warm_starts_and_bumps_the_version() -> None:
    views = _views(10, 8, seed=4)
    first = train_head({k: v for k, v in views.items() if k != "student-9"})
    assert first is not None and first.version == 1
    second = train_head(views, previous=first)
    assert second is not None and second.version == 2
    assert "student-9" in second.student_ids
    # Warm start begins where the last head ended, so it starts far below a cold start's loss.
    cold = train_head(views, config=HeadTrainingConfig(max_steps=0))
    warm_start = train_head(views, previous=first, config=HeadTrainingConfig(max_steps=0))
    assert cold is not None and warm_start is not None
    assert head_loss(warm_start, views) <= head_loss(cold, views)


def test_serialisation_roundtrip() -> None:
    head = train_head(_views(4, 5, seed=5))
    assert head is not None
    data = head.to_bytes()
    restored = ProjectionHead.from_bytes(data)
    assert restored.version == head.version
    assert restored.student_ids == head.student_ids
    x = np.random.default_rng(0).normal(size=(3, 512)).astype(np.float32)
    np.testing.assert_array_equal(restored.project(x), head.project(x))
