"""The numpy projection head against finite differences and against the torch head it replaced.

The torch code is kept in ``tests/ml/torch_head_reference.py`` (torch is a test dependency, not a
runtime one). Tolerances were measured with ``OPENBLAS_NUM_THREADS=1`` on the 2-core dev machine,
2026-11-29; each assertion says what it measured and the margin it allows for other CPUs' rounding.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest
from safetensors.numpy import load as load_safetensors

from ml.head import (
    HeadTrainingConfig,
    ProjectionHead,
    batch_loss_and_gradients,
    fit_head,
    head_loss,
    train_head,
)
from ml.matching import l2_normalize
from tests.ml.conftest import TORCH_MISSING
from tests.ml.test_head import _views

torch = pytest.importorskip("torch", reason=TORCH_MISSING)
from tests.ml import torch_head_reference as reference  # noqa: E402

# Loads the real face models or torch (the reference): not in the fast set (docs/development.md).
pytestmark = pytest.mark.models

_Weights = dict[str, npt.NDArray[np.float64]]


def _header(data: bytes) -> dict[str, object]:
    """The safetensors JSON header: tensor names, dtypes, shapes, offsets and ``__metadata__``."""
    length = int.from_bytes(data[:8], "little")
    header: dict[str, object] = json.loads(data[8 : 8 + length])
    return header


def _random_weights(rng: np.random.Generator) -> _Weights:
    """Weights away from the PCA start: the residual branch is non-zero, so every gradient is."""
    return {
        "linear.weight": rng.normal(0.0, 512**-0.5, (64, 512)),
        "linear.bias": rng.normal(0.0, 0.02, 64),
        "hidden.weight": rng.normal(0.0, (2 / 512) ** 0.5, (128, 512)),
        "hidden.bias": rng.normal(0.0, 0.05, 128),
        "residual.weight": rng.normal(0.0, 0.1, (64, 128)),
        "residual.bias": rng.normal(0.0, 0.02, 64),
    }


def _batch() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Six students, three views each, one view twice (a duplicate pick) and a student seen once."""
    views = _views(7, 3, seed=11)
    ids = sorted(views)
    data = np.concatenate([views[s] for s in ids[:6]] + [views[ids[6]][:1], views[ids[0]][:1]])
    labels = np.array([i for i in range(6) for _ in range(3)] + [6, 0])
    return l2_normalize(data).astype(np.float64), labels


def test_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    weights = _random_weights(rng)
    batch, labels = _batch()
    cfg = HeadTrainingConfig()

    def loss(w: _Weights) -> float:
        value, _ = batch_loss_and_gradients(
            w, batch, labels, margin=cfg.margin, distill_weight=cfg.distill_weight
        )
        return value

    _, gradients = batch_loss_and_gradients(
        weights, batch, labels, margin=cfg.margin, distill_weight=cfg.distill_weight
    )
    assert loss(weights) > 0
    step = 1e-6
    for name, value in weights.items():
        # Central differences in float64: truncation ~step**2, rounding ~1e-16/step, so 1e-8 absolute
        # is a wide margin; a wrong term in the backward pass is off by the size of the gradient.
        flat_indices = rng.choice(value.size, size=min(12, value.size), replace=False)
        for flat in flat_indices:
            index = np.unravel_index(flat, value.shape)
            plus = {k: v.copy() for k, v in weights.items()}
            minus = {k: v.copy() for k, v in weights.items()}
            plus[name][index] += step
            minus[name][index] -= step
            numeric = (loss(plus) - loss(minus)) / (2 * step)
            assert gradients[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (
                name,
                index,
            )
        assert np.abs(gradients[name]).max() > 1e-4, f"{name} gets no gradient"
    # The whole gradient at once, along a random direction.
    direction = {k: rng.normal(size=v.shape) for k, v in weights.items()}
    plus = {k: v + step * direction[k] for k, v in weights.items()}
    minus = {k: v - step * direction[k] for k, v in weights.items()}
    numeric = (loss(plus) - loss(minus)) / (2 * step)
    analytic = sum(float(np.sum(gradients[k] * direction[k])) for k in weights)
    assert analytic == pytest.approx(numeric, rel=1e-6)


def test_loss_and_gradients_match_torch_autograd() -> None:
    batch64, labels = _batch()
    batch = batch64.astype(np.float32)
    cfg = HeadTrainingConfig()
    for seed in range(3):
        weights = {
            k: v.astype(np.float32) for k, v in _random_weights(np.random.default_rng(seed)).items()
        }
        value, gradients = batch_loss_and_gradients(
            weights, batch, labels, margin=cfg.margin, distill_weight=cfg.distill_weight
        )
        module = reference.HeadModule()
        with torch.no_grad():
            for name, param in module.named_parameters():
                param.copy_(torch.from_numpy(weights[name]))
        x = torch.from_numpy(batch)
        projected = module(x)
        triplet = reference.batch_hard_triplet_loss(projected, torch.from_numpy(labels), cfg.margin)
        distill = ((projected @ projected.T - x @ x.T) ** 2).mean()
        expected = triplet + cfg.distill_weight * distill
        expected.backward()
        # float32 both sides: measured differences 2e-8 (loss) and under 1e-6 of each
        # parameter's largest gradient.
        assert value == pytest.approx(float(expected.detach()), abs=1e-6)
        for name, param in module.named_parameters():
            assert param.grad is not None
            torch_gradient = param.grad.numpy()
            scale = float(np.abs(torch_gradient).max())
            np.testing.assert_allclose(
                gradients[name], torch_gradient, rtol=1e-4, atol=1e-5 * scale, err_msg=name
            )


def test_training_matches_the_torch_head_on_the_same_batches() -> None:
    # A realistic class (30 students x 15 views), both trainers fed the same batches.
    views = _views(30, 15, seed=0)
    config = HeadTrainingConfig(max_steps=200)
    ours = fit_head(views, config=config)
    theirs = reference.train_torch_head(views, config=config, sampling="numpy")
    assert ours is not None
    # Measured over 400 steps: per-step losses within 1.4e-6, final projections within 7e-5
    # (torch float32 itself differs from a float64 run of the same steps by as much). The bounds
    # leave 70x and 14x for other CPUs' rounding.
    assert len(ours.losses) == len(theirs.losses)
    np.testing.assert_allclose(ours.losses, theirs.losses, rtol=0, atol=1e-4)
    assert ours.head.final_loss == pytest.approx(theirs.final_loss, abs=1e-4)
    x = np.concatenate(list(views.values()))
    np.testing.assert_allclose(
        ours.head.project(x), reference.torch_project(theirs.weights, l2_normalize(x)), atol=1e-3
    )


def test_training_reaches_the_torch_heads_loss_where_rounding_splits_the_runs() -> None:
    # On this class a hidden unit sits on its ReLU kink: float32 rounding (1e-6 in a weight) flips
    # it at step 27, and from there torch and numpy take different paths (torch float32 splits from
    # a float64 run of the same steps the same way; numpy float32 stays within 6e-8 of it). Measured:
    # mean loss of the last 100 of 400 steps 0.03457 (numpy) and 0.03439 (torch); the bound is 5%.
    views = _views(12, 10, seed=0)
    config = HeadTrainingConfig(max_steps=400, patience=10**6)
    ours = fit_head(views, config=config)
    theirs = reference.train_torch_head(views, config=config, sampling="numpy")
    assert ours is not None
    assert np.mean(ours.losses[-100:]) == pytest.approx(np.mean(theirs.losses[-100:]), rel=0.05)
    # Both heads separate the class equally well (full-data batch-hard loss).
    torch_head = ProjectionHead(theirs.weights, version=1, student_ids=theirs.student_ids)
    assert head_loss(ours.head, views) == pytest.approx(head_loss(torch_head, views), abs=0.01)


def test_a_head_saved_by_the_torch_code_loads_and_projects_the_same() -> None:
    views = _views(5, 6, seed=2)
    trained = reference.train_torch_head(views, config=HeadTrainingConfig(max_steps=25))
    saved = reference.torch_head_bytes(trained, version=3)
    loaded = ProjectionHead.from_bytes(saved)
    assert loaded.version == 3
    assert loaded.student_ids == trained.student_ids
    assert loaded.steps == 25
    assert loaded.final_loss == trained.final_loss
    # Writing it back gives the same tensors under the same keys and the same metadata (not the
    # same bytes: safetensors writes the metadata keys in hash order, the torch code's too).
    written = loaded.to_bytes()
    assert _header(written) == _header(saved)
    original = load_safetensors(saved)
    for name, array in load_safetensors(written).items():
        np.testing.assert_array_equal(array, original[name])
    x = l2_normalize(np.random.default_rng(1).normal(size=(9, 512)))
    np.testing.assert_allclose(
        loaded.project(x), reference.torch_project(trained.weights, x), atol=1e-6
    )
    # And a head trained now continues from it as from any previous head.
    continued = train_head(views, previous=loaded, config=HeadTrainingConfig(max_steps=5))
    assert continued is not None and continued.version == 4
