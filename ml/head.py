"""The 64-D projection head, trained with triplet loss on the enrolled students of one class.

A plain 512->64 triplet head trained only on augmented copies of one photo per student learns what
differs between copies of a photo, not between real photos of a person, and lowers accuracy. So the
head starts as a PCA of the gallery (which keeps the pretrained metric), adds a residual MLP whose
output layer starts at zero, and is regularised toward the raw cosine similarities while batch-hard
triplets push apart the students that the raw metric confuses. It is used only to re-rank close
candidates (see ``ml.matching``).

Training is plain numpy (forward, hand-written backward, Adam), so the service runs without torch.
It follows the torch head it replaced step for step when both see the same batches (gradients within
1e-6, checked against finite differences and torch autograd in ``tests/ml/test_head_numpy.py``); the
batches themselves come from numpy's generator, so a seed gives other batches than torch's did.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors
from threadpoolctl import threadpool_limits

from ml.types import Embeddings
from ml.vectors import l2_normalize

logger = logging.getLogger(__name__)

INPUT_DIM = 512
OUTPUT_DIM = 64
HIDDEN_DIM = 128
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class HeadTrainingConfig:
    margin: float = 0.2
    """Triplet margin on cosine distance."""
    distill_weight: float = 4.0
    """Weight of the pull toward the raw 512-D similarities."""
    learning_rate: float = 1e-3
    students_per_batch: int = 32
    views_per_student: int = 4
    max_steps: int = 400
    min_steps: int = 20
    patience: int = 30
    """Stop when the running loss has not improved for this many steps."""
    tolerance: float = 1e-4
    seed: int = 0


_PARAMETER_NAMES = (
    "linear.weight",
    "linear.bias",
    "hidden.weight",
    "hidden.bias",
    "residual.weight",
    "residual.bias",
)


class ProjectionHead:
    """A trained head: immutable weights, a version number and the students it was trained on."""

    def __init__(
        self,
        weights: Mapping[str, npt.NDArray[np.float32]],
        *,
        version: int,
        student_ids: tuple[str, ...],
        steps: int = 0,
        final_loss: float = float("nan"),
    ):
        missing = [name for name in _PARAMETER_NAMES if name not in weights]
        if missing:
            raise ValueError(f"head weights lack {missing}")
        self._weights = {
            name: np.ascontiguousarray(weights[name], dtype=np.float32) for name in _PARAMETER_NAMES
        }
        for array in self._weights.values():
            array.setflags(write=False)
        if self._weights["linear.weight"].shape != (OUTPUT_DIM, INPUT_DIM):
            raise ValueError("head weights have the wrong shape")
        self.version = version
        self.student_ids = student_ids
        self.steps = steps
        self.final_loss = final_loss

    @property
    def weights(self) -> Mapping[str, npt.NDArray[np.float32]]:
        return self._weights

    def project(self, embeddings: npt.ArrayLike) -> Embeddings:
        """Unit-norm 64-D projection of ``(N, 512)`` embeddings (numpy: thread-safe, no torch)."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        projected: Embeddings = _forward(self._weights, x).projected.astype(np.float32, copy=False)
        return projected

    def to_bytes(self) -> bytes:
        metadata = {
            "format": FORMAT_VERSION,
            "version": str(self.version),
            "student_ids": json.dumps(list(self.student_ids)),
            "steps": str(self.steps),
            "final_loss": repr(self.final_loss),
        }
        return save_safetensors(dict(self._weights), metadata=metadata)

    @classmethod
    def from_bytes(cls, data: bytes) -> ProjectionHead:
        weights = load_safetensors(data)
        metadata = _read_metadata(data)
        if metadata.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported head format {metadata.get('format')!r}")
        return cls(
            weights,
            version=int(metadata["version"]),
            student_ids=tuple(json.loads(metadata["student_ids"])),
            steps=int(metadata.get("steps", "0")),
            final_loss=float(metadata.get("final_loss", "nan")),
        )


def _read_metadata(data: bytes) -> dict[str, str]:
    # safetensors: 8-byte little-endian header length, then a JSON header with "__metadata__".
    stream = io.BytesIO(data)
    header_len = int.from_bytes(stream.read(8), "little")
    header = json.loads(stream.read(header_len))
    metadata = header.get("__metadata__", {})
    return {str(k): str(v) for k, v in metadata.items()}


def _pca_initialisation(samples: Embeddings) -> dict[str, npt.NDArray[np.float32]]:
    """Linear layer = top principal directions of the gallery; MLP branch contributes zero."""
    mean = samples.mean(axis=0)
    centred = samples - mean
    # Eigenvectors of the 512x512 scatter matrix: cheap for any number of samples, and with fewer
    # samples than 64 the trailing directions are still an orthonormal completion.
    _, eigenvectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred)
    basis = eigenvectors[:, ::-1][:, :OUTPUT_DIM].T.astype(np.float32)
    rng = np.random.default_rng(0)
    hidden = rng.normal(0.0, (2.0 / INPUT_DIM) ** 0.5, (HIDDEN_DIM, INPUT_DIM)).astype(np.float32)
    return {
        "linear.weight": basis,
        "linear.bias": (-basis @ mean).astype(np.float32),
        "hidden.weight": hidden,
        "hidden.bias": np.zeros(HIDDEN_DIM, np.float32),
        "residual.weight": np.zeros((OUTPUT_DIM, HIDDEN_DIM), np.float32),
        "residual.bias": np.zeros(OUTPUT_DIM, np.float32),
    }


_Arrays = dict[str, npt.NDArray[np.floating]]


@dataclass(frozen=True)
class _Activations:
    """What the backward pass needs from one forward pass."""

    hidden_pre: npt.NDArray[np.floating]
    hidden: npt.NDArray[np.floating]
    norms: npt.NDArray[np.floating]
    projected: npt.NDArray[np.floating]


def _forward(
    weights: Mapping[str, npt.NDArray[np.floating]], x: npt.NDArray[np.floating]
) -> _Activations:
    """The head in the dtype of ``x`` and ``weights`` (float32 to train, float64 to check gradients)."""
    hidden_pre = x @ weights["hidden.weight"].T + weights["hidden.bias"]
    hidden = np.maximum(hidden_pre, 0.0)
    out = (
        x @ weights["linear.weight"].T
        + weights["linear.bias"]
        + hidden @ weights["residual.weight"].T
    )
    out = out + weights["residual.bias"]
    # Unit rows, dividing by at least 1e-12 as torch.nn.functional.normalize does.
    norms = np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
    return _Activations(hidden_pre, hidden, norms, out / norms)


def _batch_hard_triplet(
    sims: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], margin: float
) -> tuple[float, npt.NDArray[np.floating]]:
    """Batch-hard triplet loss of a similarity matrix, and its gradient with respect to ``sims``.

    Each row's hardest positive (least similar other view of the same student) and hardest negative
    (most similar view of another student) carry the gradient, as torch's ``min``/``max`` route it.
    A row without a positive or a negative scores against 2.0 / -2.0 and passes no gradient there.
    """
    n = len(labels)
    rows = np.arange(n)
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(n, dtype=bool)
    negative = ~same
    positive_index = np.argmin(np.where(positive, sims, 2.0), axis=1)
    negative_index = np.argmax(np.where(negative, sims, -2.0), axis=1)
    has_positive = positive[rows, positive_index]
    has_negative = negative[rows, negative_index]
    hardest_positive = np.where(has_positive, sims[rows, positive_index], 2.0)
    hardest_negative = np.where(has_negative, sims[rows, negative_index], -2.0)
    hinge = hardest_negative - hardest_positive + margin
    loss = np.maximum(hinge, 0.0).mean()
    weight = (hinge > 0).astype(sims.dtype) / n
    gradient = np.zeros_like(sims)
    np.add.at(gradient, (rows, negative_index), weight * has_negative)
    np.add.at(gradient, (rows, positive_index), -weight * has_positive)
    return float(loss), gradient


def batch_loss_and_gradients(
    weights: Mapping[str, npt.NDArray[np.floating]],
    batch: npt.NDArray[np.floating],
    labels: npt.NDArray[np.integer],
    *,
    margin: float,
    distill_weight: float,
) -> tuple[float, _Arrays]:
    """Training loss of one batch of unit embeddings and its gradient for every head parameter.

    Loss = batch-hard triplet loss of the projections + ``distill_weight`` * mean squared difference
    between the projections' and the raw embeddings' cosine similarities. Works in the dtype of its
    arguments, so the gradient can be checked against finite differences in float64.
    """
    act = _forward(weights, batch)
    projected = act.projected
    sims = projected @ projected.T
    triplet, d_sims = _batch_hard_triplet(sims, labels, margin)
    difference = sims - batch @ batch.T
    distill = float(np.mean(difference**2))
    d_sims = d_sims + (2.0 * distill_weight / difference.size) * difference
    d_projected = (d_sims + d_sims.T) @ projected
    # Through out / max(|out|, eps): the radial part is removed unless the clamp was active.
    radial = projected * np.sum(projected * d_projected, axis=1, keepdims=True)
    clamped = act.norms <= 1e-12
    d_out = np.where(clamped, d_projected, d_projected - radial) / act.norms
    d_hidden = (d_out @ weights["residual.weight"]) * (act.hidden_pre > 0)
    gradients = {
        "linear.weight": d_out.T @ batch,
        "linear.bias": d_out.sum(axis=0),
        "hidden.weight": d_hidden.T @ batch,
        "hidden.bias": d_hidden.sum(axis=0),
        "residual.weight": d_out.T @ act.hidden,
        "residual.bias": d_out.sum(axis=0),
    }
    return triplet + distill_weight * distill, gradients


class _Adam:
    """Plain Adam (Kingma & Ba), the torch head's update rule; updates the arrays in place."""

    def __init__(self, params: _Arrays, lr: float, betas: tuple[float, float] = (0.9, 0.999)):
        self.params = params
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = 1e-8
        self.t = 0
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}

    def step(self, gradients: Mapping[str, npt.NDArray[np.floating]]) -> None:
        self.t += 1
        correction1 = 1 - self.beta1**self.t
        correction2 = 1 - self.beta2**self.t
        for name, p in self.params.items():
            g = gradients[name]
            m, v = self.m[name], self.v[name]
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            denominator = np.sqrt(v / correction2) + self.eps
            p -= (self.lr / correction1) * (m / denominator)


def sample_batch(
    rng: np.random.Generator, offsets: npt.NDArray[np.int64], students: int, views_per_student: int
) -> npt.NDArray[np.int64]:
    """Rows of one batch: ``students`` distinct students drawn at random, ``views_per_student``
    views of each drawn with replacement. ``offsets[s]:offsets[s + 1]`` are student ``s``'s rows."""
    chosen = rng.permutation(len(offsets) - 1)[:students]
    counts = offsets[chosen + 1] - offsets[chosen]
    picks = rng.integers(0, counts[:, None], size=(students, views_per_student))
    rows: npt.NDArray[np.int64] = (offsets[chosen][:, None] + picks).reshape(-1)
    return rows


@dataclass(frozen=True)
class HeadTraining:
    """A trained head and the loss of every step that trained it."""

    head: ProjectionHead
    losses: tuple[float, ...]


def fit_head(
    views: Mapping[str, Embeddings],
    *,
    previous: ProjectionHead | None = None,
    config: HeadTrainingConfig | None = None,
) -> HeadTraining | None:
    """:func:`train_head`, with the loss of every step (for tests and diagnostics)."""
    cfg = config or HeadTrainingConfig()
    student_ids = tuple(sorted(views))
    if len(student_ids) < 2:
        return None
    started = time.perf_counter()
    matrices = [np.asarray(views[sid], dtype=np.float32) for sid in student_ids]
    data = l2_normalize(np.concatenate(matrices))
    labels = np.concatenate([np.full(len(m), i, dtype=np.int64) for i, m in enumerate(matrices)])
    offsets = np.cumsum([0] + [len(m) for m in matrices], dtype=np.int64)

    initial = previous.weights if previous is not None else _pca_initialisation(data)
    params = {name: np.array(initial[name], dtype=np.float32) for name in _PARAMETER_NAMES}
    rng = np.random.default_rng(cfg.seed)
    optimiser = _Adam(params, lr=cfg.learning_rate)
    per_batch = min(cfg.students_per_batch, len(student_ids))
    losses: list[float] = []
    best_loss = float("inf")
    since_best = 0
    running: float | None = None
    # One BLAS thread: the matrices are small (batches of ~100 x 512 -> 64), and OpenBLAS's threads
    # waiting for a busy core made training 14x slower on 2 loaded cores (132 s instead of 9.6 s
    # for 30 students x 15 views, 2026-11-29).
    with threadpool_limits(limits=1, user_api="blas"):
        for step in range(1, cfg.max_steps + 1):
            rows = sample_batch(rng, offsets, per_batch, cfg.views_per_student)
            value, gradients = batch_loss_and_gradients(
                params,
                data[rows],
                labels[rows],
                margin=cfg.margin,
                distill_weight=cfg.distill_weight,
            )
            optimiser.step(gradients)
            losses.append(value)
            running = value if running is None else 0.9 * running + 0.1 * value
            if running < best_loss - cfg.tolerance:
                best_loss = running
                since_best = 0
            else:
                since_best += 1
            if step >= cfg.min_steps and since_best >= cfg.patience:
                break
    version = (previous.version + 1) if previous is not None else 1
    final_loss = running if running is not None else float("nan")
    logger.info(
        "head v%d trained on %d students in %d steps (%.2fs), loss %.4f",
        version,
        len(student_ids),
        len(losses),
        time.perf_counter() - started,
        final_loss,
    )
    head = ProjectionHead(
        params,
        version=version,
        student_ids=student_ids,
        steps=len(losses),
        final_loss=final_loss,
    )
    return HeadTraining(head, tuple(losses))


def train_head(
    views: Mapping[str, Embeddings],
    *,
    previous: ProjectionHead | None = None,
    config: HeadTrainingConfig | None = None,
) -> ProjectionHead | None:
    """Train (or continue training) the head on every enrolled student's views.

    Returns ``None`` with fewer than two students (no triplet exists). Deterministic for a given
    seed and input. Warm-starts from ``previous`` so adding one student costs a few steps, and stops
    as soon as the loss stops improving.
    """
    training = fit_head(views, previous=previous, config=config)
    return None if training is None else training.head


def head_loss(head: ProjectionHead, views: Mapping[str, Embeddings], margin: float = 0.2) -> float:
    """Batch-hard triplet loss of ``head`` over all of ``views`` (for tests and diagnostics)."""
    ids = sorted(views)
    data = np.concatenate([np.asarray(views[s], np.float32) for s in ids])
    labels = np.concatenate([np.full(len(views[s]), i) for i, s in enumerate(ids)])
    projected = head.project(data)
    return _batch_hard_triplet(projected @ projected.T, labels, margin)[0]
