"""The 64-D projection head, trained with triplet loss on the enrolled students of one class.

A plain 512->64 triplet head trained only on augmented copies of one photo per student learns what
differs between copies of a photo, not between real photos of a person, and lowers accuracy. So the
head starts as a PCA of the gallery (which keeps the pretrained metric), adds a residual MLP whose
output layer starts at zero, and is regularised toward the raw cosine similarities while batch-hard
triplets push apart the students that the raw metric confuses. It is used only to re-rank close
candidates (see ``ml.matching``).
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
import torch
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors
from torch import nn

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


class _HeadModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(INPUT_DIM, OUTPUT_DIM)
        self.hidden = nn.Linear(INPUT_DIM, HIDDEN_DIM)
        self.residual = nn.Linear(HIDDEN_DIM, OUTPUT_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x) + self.residual(torch.relu(self.hidden(x)))
        return nn.functional.normalize(out, dim=-1)


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
        w = self._weights
        hidden = np.maximum(x @ w["hidden.weight"].T + w["hidden.bias"], 0.0)
        out = x @ w["linear.weight"].T + w["linear.bias"] + hidden @ w["residual.weight"].T
        out = out + w["residual.bias"]
        return l2_normalize(out)

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


class _Adam:
    """Plain Adam. ``torch.optim`` imports ``torch._dynamo`` on first use, which costs seconds of
    start-up in every process that trains a head; these few lines cost nothing."""

    def __init__(
        self, params: list[nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999)
    ):
        self.params = params
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = 1e-8
        self.t = 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        correction1 = 1 - self.beta1**self.t
        correction2 = 1 - self.beta2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.mul_(self.beta1).add_(p.grad, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1 - self.beta2)
            denominator = (v / correction2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denominator, value=-self.lr / correction1)


def _batch_hard_triplet_loss(
    projected: torch.Tensor, labels: torch.Tensor, margin: float
) -> torch.Tensor:
    sims = projected @ projected.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    hardest_positive = torch.where(same & ~eye, sims, torch.full_like(sims, 2.0)).min(dim=1).values
    hardest_negative = torch.where(~same, sims, torch.full_like(sims, -2.0)).max(dim=1).values
    return torch.relu(hardest_negative - hardest_positive + margin).mean()


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
    cfg = config or HeadTrainingConfig()
    student_ids = tuple(sorted(views))
    if len(student_ids) < 2:
        return None
    started = time.perf_counter()
    matrices = [np.asarray(views[sid], dtype=np.float32) for sid in student_ids]
    data = torch.from_numpy(np.concatenate(matrices))
    data = nn.functional.normalize(data, dim=-1)
    labels = torch.cat([torch.full((len(m),), i, dtype=torch.long) for i, m in enumerate(matrices)])
    offsets = np.cumsum([0] + [len(m) for m in matrices])

    initial = previous.weights if previous is not None else _pca_initialisation(data.numpy())
    module = _HeadModule()
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.from_numpy(np.array(initial[name])))

    generator = torch.Generator().manual_seed(cfg.seed)
    optimiser = _Adam(list(module.parameters()), lr=cfg.learning_rate)
    n_students = len(student_ids)
    per_batch = min(cfg.students_per_batch, n_students)
    best_loss = float("inf")
    since_best = 0
    running: float | None = None
    step = 0
    for step in range(1, cfg.max_steps + 1):
        chosen = torch.randperm(n_students, generator=generator)[:per_batch].tolist()
        index: list[int] = []
        for s in chosen:
            count = int(offsets[s + 1] - offsets[s])
            picks = torch.randint(0, count, (cfg.views_per_student,), generator=generator)
            index.extend(int(offsets[s]) + int(p) for p in picks)
        batch = data[index]
        batch_labels = labels[index]
        projected = module(batch)
        triplet = _batch_hard_triplet_loss(projected, batch_labels, cfg.margin)
        raw_sims = batch @ batch.T
        distill = ((projected @ projected.T - raw_sims) ** 2).mean()
        loss = triplet + cfg.distill_weight * distill
        module.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        value = float(loss.detach())
        running = value if running is None else 0.9 * running + 0.1 * value
        if running < best_loss - cfg.tolerance:
            best_loss = running
            since_best = 0
        else:
            since_best += 1
        if step >= cfg.min_steps and since_best >= cfg.patience:
            break
    weights = {name: p.detach().numpy().copy() for name, p in module.named_parameters()}
    version = (previous.version + 1) if previous is not None else 1
    logger.info(
        "head v%d trained on %d students in %d steps (%.2fs), loss %.4f",
        version,
        n_students,
        step,
        time.perf_counter() - started,
        running if running is not None else float("nan"),
    )
    return ProjectionHead(
        weights,
        version=version,
        student_ids=student_ids,
        steps=step,
        final_loss=running if running is not None else float("nan"),
    )


def head_loss(head: ProjectionHead, views: Mapping[str, Embeddings], margin: float = 0.2) -> float:
    """Batch-hard triplet loss of ``head`` over all of ``views`` (for tests and diagnostics)."""
    ids = sorted(views)
    data = np.concatenate([np.asarray(views[s], np.float32) for s in ids])
    labels = np.concatenate([np.full(len(views[s]), i) for i, s in enumerate(ids)])
    projected = torch.from_numpy(head.project(data))
    return float(_batch_hard_triplet_loss(projected, torch.from_numpy(labels), margin))
