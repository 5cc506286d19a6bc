"""What every benchmark section shares: paths, the on-disk cache, timing, machine facts.

The cache (``.bench-cache/``, git-ignored) holds per-image results as ``.npz`` (no pickle) keyed by
system + configuration (the file name) and image (the entry name), so a re-run skips the models; a
run with ``--fresh`` (or a deleted folder) computes everything again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ml.eval.oneshot import EmbeddingCache
from ml.eval.shared_data import shared_dir

logger = logging.getLogger(__name__)

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DIR = shared_dir()
CACHE_DIR = REPO_DIR / ".bench-cache"

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class BenchContext:
    """Options every section sees."""

    shared_dir: Path = SHARED_DIR
    cache_dir: Path | None = CACHE_DIR
    """``None``: no cache at all (everything is computed and nothing is kept)."""
    quick: bool = False
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lfw_dir(self) -> Path:
        return self.shared_dir / "faces" / "lfw"

    @property
    def people_dir(self) -> Path:
        return self.shared_dir / "faces" / "people"

    @property
    def groups_dir(self) -> Path:
        return self.shared_dir / "faces" / "groups"

    @property
    def yolo_weights(self) -> Path:
        return self.shared_dir / "models" / "yolov8-lite-t.onnx"

    def cache(self, kind: str, system: str, config: Mapping[str, Any]) -> EmbeddingCache:
        """The cache of ``kind`` (e.g. ``lfw``) results of ``system`` run with ``config``."""
        signature = json.dumps({"system": system, **config}, sort_keys=True, default=str)
        digest = hashlib.sha256(signature.encode()).hexdigest()[:12]
        path = None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            path = self.cache_dir / f"{kind}-{system}-{digest}.npz"
        return EmbeddingCache(path, signature)


def rounded(value: float, digits: int = 4) -> float:
    return float(round(float(value), digits))


def unit_rows(matrix: npt.ArrayLike) -> npt.NDArray[np.float32]:
    array = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    result: npt.NDArray[np.float32] = (array / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by the whole machine and by this process (with its waited children)."""

    wall: float
    machine_busy: float
    own: float

    @classmethod
    def now(cls) -> CpuSnapshot:
        import psutil  # type: ignore[import-untyped]

        machine = psutil.cpu_times()
        own = os.times()
        return cls(
            time.perf_counter(),
            float(
                machine.user
                + machine.nice
                + machine.system
                + getattr(machine, "irq", 0.0)
                + getattr(machine, "softirq", 0.0)
                + getattr(machine, "steal", 0.0)
            ),
            own.user + own.system + own.children_user + own.children_system,
        )

    def other_share(self, later: CpuSnapshot) -> float:
        """Share of the machine's CPU capacity that *other* processes used between the two."""
        capacity = (later.wall - self.wall) * (os.cpu_count() or 1)
        other = (later.machine_busy - self.machine_busy) - (later.own - self.own)
        return max(0.0, other / capacity) if capacity > 0 else 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def _torch_threads() -> int | None:
    """torch's intra-op threads if torch is already loaded (a peer ran on it), else ``None``:
    importing it here would cost seconds and change nothing measured."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def machine_info() -> JsonDict:
    """CPU, cores, memory, library versions and the code's commit: what a reader needs to compare."""
    import psutil

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        # The peers' runtime where the torch group is installed (`uv sync --group torch`).
        "torch": _version("torch"),
        "torch_threads": _torch_threads(),
        "numpy": np.__version__,
        "onnxruntime": _version("onnxruntime"),
        "dlib": _version("dlib-bin") or _version("dlib"),
        "face_recognition": _version("face-recognition"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
