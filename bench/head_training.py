"""Projection-head training time: the numpy head against the torch head it replaced.

``python -m bench.head_training`` trains both on a synthetic class of 30 students x 15 views of
512-D unit vectors (the cost depends on the shapes and the number of steps, not on the values),
with the default training config, each in a fresh process with 1 and with 2 BLAS / intra-op
threads, and prints one JSON line per run and the medians. It needs the dev dependencies (the torch
head lives in ``tests/ml/torch_head_reference.py``, torch is not a runtime dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

STUDENTS = 30
VIEWS = 15


def _train_once(backend: str) -> dict[str, float | int | str]:
    from ml.head import HeadTrainingConfig, fit_head
    from tests.ml.test_head import _views

    views = _views(STUDENTS, VIEWS, seed=0)
    config = HeadTrainingConfig()
    if backend == "torch":
        import torch

        from tests.ml.torch_head_reference import train_torch_head

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        train_torch_head(views, config=HeadTrainingConfig(max_steps=2))  # first-call set-up
        started = time.perf_counter()
        steps = len(train_torch_head(views, config=config).losses)
    else:
        fit_head(views, config=HeadTrainingConfig(max_steps=2))
        started = time.perf_counter()
        training = fit_head(views, config=config)
        assert training is not None
        steps = len(training.losses)
    seconds = time.perf_counter() - started
    return {"backend": backend, "steps": steps, "seconds": round(seconds, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_train_once(args.child)))
        return
    results: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for threads in ("1", "2"):
            for backend in ("numpy", "torch"):
                env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
                out = subprocess.run(
                    [sys.executable, "-m", "bench.head_training", "--child", backend],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                row = {**json.loads(out), "threads": int(threads), "load": os.getloadavg()[0]}
                print(json.dumps(row), flush=True)
                results.setdefault(f"{backend}, {threads} thread(s)", []).append(row["seconds"])
    for name, seconds in results.items():
        print(f"{name}: median {statistics.median(seconds):.2f} s over {len(seconds)} runs")


if __name__ == "__main__":
    main()
