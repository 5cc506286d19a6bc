"""OpenMP's wait policy, set by each program's entry point before torch is imported.

OpenMP threads that spin while waiting steal the CPU from each other and from the service's other
threads; on 2 cores that made MTCNN ~10x slower in wall time. OpenMP reads ``OMP_WAIT_POLICY`` once,
when torch loads its runtime, so this must run before the first ``import torch`` of the process:
the packages ``tests`` and ``bench`` call it when first imported (torch is the tests' reference),
``python -m ml.eval`` before its evaluations can load torch (ultralytics). The service and the
exporter never import torch (the models run on onnxruntime and are exported with ``onnx``), so
they need none of this. Importing an ``ml`` module changes nothing.
"""

from __future__ import annotations

import os


def prefer_passive_waits() -> None:
    """Let idle OpenMP threads sleep instead of spinning, unless the environment already chose."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
