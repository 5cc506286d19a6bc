"""onnxruntime sessions configured the same way for every model the service runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def create_session(model: bytes | Path, *, intra_op_threads: int | None = None) -> Any:
    """A CPU ``onnxruntime.InferenceSession`` for ``model`` (the file's bytes or its path).

    ``intra_op_threads``: threads one inference may use (``None``: onnxruntime's default, one per
    physical core). Idle worker threads sleep instead of spinning: spinning threads steal the CPU
    from each other and from the service's other threads (on 2 cores that made MTCNN ~10x slower
    in wall time under torch's OpenMP, which is why ``OMP_WAIT_POLICY=PASSIVE`` used to be set).
    ``run`` is thread-safe.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
