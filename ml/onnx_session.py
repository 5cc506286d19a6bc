"""onnxruntime sessions configured the same way for every model the service runs, and the batched
forward passes the embedders share."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


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
    # No memory arena and no memory patterns: MTCNN's P-Net runs on a new input size at every
    # pyramid scale, and the arena kept the largest buffers of every photo ever seen. After one
    # 5334 x 2767 photo the pipeline held 1,438 MiB with the arena and 691 MiB without, for the
    # same time (9.3 vs 9.9 s on 2 loaded cores, within noise; 2026-11-29, the runtime
    # environment, detect + embed through FacePipeline).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_in_batches(
    session: Any,
    inputs: Sequence[npt.NDArray[Any]],
    *,
    batch_size: int,
    output_dim: int,
    lock: threading.Lock,
    prepare: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] = np.ascontiguousarray,
) -> npt.NDArray[np.float32]:
    """``session``'s first output on ``inputs``, stacked at most ``batch_size`` at a time, rows in
    order; ``(0, output_dim)`` for no inputs.

    Each stack goes through ``prepare`` (to the model's input layout) and its pass holds ``lock``:
    one pass already spreads over the session's intra-op threads, and concurrent passes would only
    contend for the cores. The batch bounds the activation memory of one pass.
    """
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    rows = [np.zeros((0, output_dim), np.float32)]
    for start in range(0, len(inputs), batch_size):
        batch = prepare(np.stack(inputs[start : start + batch_size]))
        with lock:
            (output,) = session.run([output_name], {input_name: batch})
        rows.append(np.asarray(output, dtype=np.float32))
    return np.concatenate(rows)
