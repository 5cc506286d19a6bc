"""Registration views: shapes, determinism per seed, thread safety."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from ml.augment import augment_views


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A smooth, asymmetric 160 px test image (a flip or rotation visibly changes it)."""
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(noise, (0, 0), 4)
    cv2.rectangle(image, (20, 30), (70, 60), (250, 30, 30), thickness=-1)
    return np.asarray(image, dtype=np.uint8)


def test_views_have_the_crop_shape_and_dtype(crop: np.ndarray) -> None:
    views = augment_views(crop, n_views=15, seed=0)
    assert len(views) == 15
    for view in views:
        assert view.shape == crop.shape
        assert view.dtype == np.uint8
        assert view.flags["C_CONTIGUOUS"]


def test_first_view_is_the_crop_and_the_others_differ(crop: np.ndarray) -> None:
    views = augment_views(crop, n_views=10, seed=3)
    np.testing.assert_array_equal(views[0], crop)
    assert views[0] is not crop
    for view in views[1:]:
        assert not np.array_equal(view, crop)
    # The perturbations are mild: the view still looks like the crop.
    for view in views[1:]:
        assert np.abs(view.astype(int) - crop.astype(int)).mean() < 60


def test_same_seed_same_views_other_seed_other_views(crop: np.ndarray) -> None:
    first = augment_views(crop, n_views=8, seed=11)
    again = augment_views(crop, n_views=8, seed=11)
    other = augment_views(crop, n_views=8, seed=12)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sum(np.array_equal(a, b) for a, b in zip(first[1:], other[1:], strict=True)) == 0


def test_n_views_one_and_invalid(crop: np.ndarray) -> None:
    assert len(augment_views(crop, n_views=1)) == 1
    with pytest.raises(ValueError):
        augment_views(crop, n_views=0)
    with pytest.raises(ValueError):
        augment_views(crop.astype(np.float32))


def test_concurrent_calls_match_sequential_ones(crop: np.ndarray) -> None:
    seeds = list(range(8))
    expected = [augment_views(crop, n_views=6, seed=s) for s in seeds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda s: augment_views(crop, n_views=6, seed=s), seeds))
    for views, reference in zip(results, expected, strict=True):
        for a, b in zip(views, reference, strict=True):
            np.testing.assert_array_equal(a, b)


def test_some_views_are_mirrored(crop: np.ndarray) -> None:
    """Across views, some are mirrored: the red patch moves to the right half."""
    views = augment_views(crop, n_views=30, seed=0)
    red = [(v[:, :, 0].astype(int) - v[:, :, 1]) > 120 for v in views[1:]]
    mirrored = [mask[:, 80:].sum() > mask[:, :80].sum() for mask in red]
    assert 0 < sum(mirrored) < len(mirrored)
