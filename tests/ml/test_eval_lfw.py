"""LFW evaluation: protocol helpers on synthetic scores, and a short real run of the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ml.eval.__main__ import main
from ml.eval.lfw import (
    best_threshold,
    central_face,
    cross_validated_accuracy,
    embed_with_mirror,
    read_pairs,
    select_pairs,
)
from ml.types import DetectedFace, Embeddings, RGBImage

# the LFW evaluation on real pairs
pytestmark = pytest.mark.slow


def test_best_threshold_separates_and_sits_in_the_gap() -> None:
    sims = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    same = np.array([False, False, False, True, True, True])
    threshold = best_threshold(sims, same)
    assert 0.3 < threshold <= 0.6
    assert np.all((sims >= threshold) == same)


def test_best_threshold_with_overlap_maximises_accuracy() -> None:
    rng = np.random.default_rng(0)
    sims = np.concatenate([rng.normal(0.6, 0.15, 500), rng.normal(0.1, 0.15, 500)])
    same = np.arange(1000) < 500
    threshold = best_threshold(sims, same)
    accuracy = np.mean((sims >= threshold) == same)
    grid = np.linspace(-0.5, 1.0, 1501)
    best_grid = max(np.mean((sims >= t) == same) for t in grid)
    assert accuracy >= best_grid
    assert 0.2 < threshold < 0.5


def test_best_threshold_cannot_split_ties() -> None:
    sims = np.array([0.5, 0.5, 0.5, 0.5])
    same = np.array([True, False, True, False])
    threshold = best_threshold(sims, same)
    assert np.mean((sims >= threshold) == same) == 0.5


def test_cross_validation_uses_other_folds() -> None:
    # Fold 0 alone would pick a threshold near 0.45; the other folds put it near 0.25.
    sims = np.array([0.5, 0.4, 0.3, 0.2] + [0.3, 0.2, 0.28, 0.22] * 2)
    same = np.array([True, True, False, False] + [True, False, True, False] * 2)
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    result = cross_validated_accuracy(sims, same, folds)
    assert result.threshold_selection == "other folds"
    assert len(result.fold_accuracies) == 3
    assert 0.2 < result.fold_thresholds[0] < 0.3
    assert result.fold_accuracies[0] == 0.75  # 0.3 (different) is above that threshold
    single = cross_validated_accuracy(sims[:4], same[:4], folds[:4])
    assert single.threshold_selection.startswith("same fold")
    assert single.fold_accuracies == (1.0,)


def test_central_face_picks_the_one_nearest_the_centre() -> None:
    landmarks = np.zeros((5, 2), np.float32)
    corner = DetectedFace((0.0, 0.0, 100.0, 100.0), 0.999, landmarks)
    middle = DetectedFace((100.0, 100.0, 150.0, 150.0), 0.95, landmarks)
    assert central_face([corner, middle], (250, 250, 3)) is middle
    assert central_face([], (250, 250, 3)) is None


class _PixelSumEmbedder:
    """Stand-in embedder whose output reveals which crops it saw (left/right halves)."""

    dim = 2
    input_size = 4

    def embed(self, crops: Sequence[RGBImage]) -> Embeddings:
        rows = [[float(c[:, :2].sum()) + 1.0, float(c[:, 2:].sum()) + 1.0] for c in crops]
        array = np.asarray(rows, dtype=np.float32)
        return np.asarray(array / np.linalg.norm(array, axis=1, keepdims=True), dtype=np.float32)


def test_mirror_averaging_is_symmetric() -> None:
    crop = np.zeros((4, 4, 3), np.uint8)
    crop[:, :2] = 50
    embedder = _PixelSumEmbedder()
    plain = embed_with_mirror(embedder, [crop], flip=False)
    averaged = embed_with_mirror(embedder, [crop], flip=True)
    assert plain[0, 0] > plain[0, 1]
    np.testing.assert_allclose(averaged[0, 0], averaged[0, 1], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(averaged, axis=1), 1.0, rtol=1e-6)
    assert embed_with_mirror(embedder, []).shape == (0, 2)


@pytest.fixture(scope="module")
def lfw_dir(shared_dir: Path) -> Path:
    path = shared_dir / "faces/lfw"
    if not (path / "pairs.txt").is_file():
        pytest.skip(f"no LFW pairs.txt under {path}")
    return path


def test_read_pairs_follows_view2(lfw_dir: Path) -> None:
    pairs = read_pairs(lfw_dir)
    assert len(pairs) == 6000
    assert sum(p.same for p in pairs) == 3000
    assert {p.fold for p in pairs} == set(range(10))
    assert all(p.first.endswith(".jpg") and (lfw_dir / p.first).is_file() for p in pairs[:50])
    subset = select_pairs(pairs, folds=2, max_pairs=10)
    assert len(subset) == 20
    assert sum(p.same for p in subset) == 10
    assert {p.fold for p in subset} == {0, 1}


def test_lfw_cli_on_one_fold_subset(lfw_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real MTCNN + FaceNet on 100 pairs of fold 1: far above chance (0.5)."""
    code = main(["lfw", "--data", str(lfw_dir), "--folds", "1", "--max-pairs", "100"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["folds"] == 1
    assert summary["pairs"] == 100
    assert summary["threshold_selection"].startswith("same fold")
    assert summary["no_detection"] <= 2
    assert summary["accuracy"] >= 0.95, summary
    assert summary["images_per_second"] > 0
