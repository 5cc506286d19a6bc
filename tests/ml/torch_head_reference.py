"""The projection head's training as it was written in torch (ml/head.py before it moved to numpy).

Kept only as the reference the numpy head is tested against. Copied from commit 12aea09 with two
changes, both marked: the batch rows can come from ``ml.head.sample_batch`` (so that both trainers see
the same batches), and the loss of every step is returned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from safetensors.numpy import save as save_safetensors
from torch import nn

from ml.head import HIDDEN_DIM, INPUT_DIM, OUTPUT_DIM, HeadTrainingConfig, sample_batch


def pca_initialisation(samples: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
    mean = samples.mean(axis=0)
    centred = samples - mean
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


class HeadModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(INPUT_DIM, OUTPUT_DIM)
        self.hidden = nn.Linear(INPUT_DIM, HIDDEN_DIM)
        self.residual = nn.Linear(HIDDEN_DIM, OUTPUT_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x) + self.residual(torch.relu(self.hidden(x)))
        return nn.functional.normalize(out, dim=-1)


class _Adam:
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


def batch_hard_triplet_loss(
    projected: torch.Tensor, labels: torch.Tensor, margin: float
) -> torch.Tensor:
    sims = projected @ projected.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    hardest_positive = torch.where(same & ~eye, sims, torch.full_like(sims, 2.0)).min(dim=1).values
    hardest_negative = torch.where(~same, sims, torch.full_like(sims, -2.0)).max(dim=1).values
    return torch.relu(hardest_negative - hardest_positive + margin).mean()


@dataclass(frozen=True)
class TorchTraining:
    weights: dict[str, npt.NDArray[np.float32]]
    losses: tuple[float, ...]
    final_loss: float
    student_ids: tuple[str, ...]


def train_torch_head(
    views: Mapping[str, npt.NDArray[np.float32]],
    *,
    previous: Mapping[str, npt.NDArray[np.float32]] | None = None,
    config: HeadTrainingConfig | None = None,
    sampling: Literal["torch", "numpy"] = "torch",
) -> TorchTraining:
    cfg = config or HeadTrainingConfig()
    student_ids = tuple(sorted(views))
    matrices = [np.asarray(views[sid], dtype=np.float32) for sid in student_ids]
    data = torch.from_numpy(np.concatenate(matrices))
    data = nn.functional.normalize(data, dim=-1)
    labels = torch.cat([torch.full((len(m),), i, dtype=torch.long) for i, m in enumerate(matrices)])
    offsets = np.cumsum([0] + [len(m) for m in matrices])

    initial = previous if previous is not None else pca_initialisation(data.numpy())
    module = HeadModule()
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.from_numpy(np.array(initial[name])))

    generator = torch.Generator().manual_seed(cfg.seed)
    numpy_rng = np.random.default_rng(cfg.seed)  # changed: the numpy trainer's batches
    optimiser = _Adam(list(module.parameters()), lr=cfg.learning_rate)
    n_students = len(student_ids)
    per_batch = min(cfg.students_per_batch, n_students)
    best_loss = float("inf")
    since_best = 0
    running: float | None = None
    losses: list[float] = []  # changed: every step's loss is kept
    for step in range(1, cfg.max_steps + 1):
        if sampling == "numpy":  # changed
            index = sample_batch(
                numpy_rng, offsets.astype(np.int64), per_batch, cfg.views_per_student
            ).tolist()
        else:
            chosen = torch.randperm(n_students, generator=generator)[:per_batch].tolist()
            index = []
            for s in chosen:
                count = int(offsets[s + 1] - offsets[s])
                picks = torch.randint(0, count, (cfg.views_per_student,), generator=generator)
                index.extend(int(offsets[s]) + int(p) for p in picks)
        batch = data[index]
        batch_labels = labels[index]
        projected = module(batch)
        triplet = batch_hard_triplet_loss(projected, batch_labels, cfg.margin)
        raw_sims = batch @ batch.T
        distill = ((projected @ projected.T - raw_sims) ** 2).mean()
        loss = triplet + cfg.distill_weight * distill
        module.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        value = float(loss.detach())
        losses.append(value)
        running = value if running is None else 0.9 * running + 0.1 * value
        if running < best_loss - cfg.tolerance:
            best_loss = running
            since_best = 0
        else:
            since_best += 1
        if step >= cfg.min_steps and since_best >= cfg.patience:
            break
    weights = {name: p.detach().numpy().copy() for name, p in module.named_parameters()}
    return TorchTraining(
        weights,
        tuple(losses),
        running if running is not None else float("nan"),
        student_ids,
    )


def torch_head_bytes(training: TorchTraining, version: int = 1) -> bytes:
    """The bytes the torch-era ``ProjectionHead.to_bytes`` wrote for this training."""
    metadata = {
        "format": "1",
        "version": str(version),
        "student_ids": json.dumps(list(training.student_ids)),
        "steps": str(len(training.losses)),
        "final_loss": repr(training.final_loss),
    }
    return save_safetensors(dict(training.weights), metadata=metadata)


def torch_project(
    weights: Mapping[str, npt.NDArray[np.float32]], embeddings: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    module = HeadModule()
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.from_numpy(np.array(weights[name])))
        projected: npt.NDArray[np.float32] = module(torch.from_numpy(embeddings)).numpy()
    return projected
