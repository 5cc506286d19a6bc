"""Export MTCNN's P/R/O-Nets and FaceNet from PyTorch to ONNX into the model cache (build time; needs torch).

Uses ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter (with onnxscript). The legacy
TorchScript exporter (``dynamo=False``) still works in torch 2.15 but warns that it will be removed. Every export
is checked against the PyTorch model on onnxruntime before it is written (random inputs; the parity tests use
real faces and photos).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml.onnx_session import create_session
from ml.weights.cache import file_sha256, save_checked_file
from ml.weights.facenet_casia import GRAPH_DISTRIBUTION, GRAPH_RESOURCE
from ml.weights.onnx_models import (
    EXPORT_VERSION,
    FACENET_INPUT,
    FACENET_OUTPUT,
    MTCNN_FILENAMES,
    MTCNN_INPUT,
    MTCNN_OUTPUTS,
    ONET_FILENAME,
    PNET_FILENAME,
    RNET_FILENAME,
    facenet_onnx_filename,
)
from ml.weights.torch_models import load_facenet_module, load_mtcnn_modules

logger = logging.getLogger(__name__)

OPSET = 18
EXPORT_CHECK_TOLERANCE = 1e-4
"""Largest |ONNX - torch| accepted on the random check inputs (observed: ~1e-6)."""


def _to_onnx(
    module: nn.Module,
    example: torch.Tensor,
    dynamic_axes: dict[int, torch.export.Dim],
    input_name: str,
    output_names: tuple[str, ...],
) -> bytes:
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        opset_version=OPSET,
        input_names=[input_name],
        output_names=list(output_names),
        dynamic_shapes=(dynamic_axes,),
        external_data=False,
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    data: bytes = program.model_proto.SerializeToString()
    return data


def _check_export(
    module: nn.Module, data: bytes, input_name: str, inputs: list[torch.Tensor], name: str
) -> None:
    session = create_session(data, intra_op_threads=1)
    for tensor in inputs:
        with torch.inference_mode():
            expected = module(tensor)
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = session.run(None, {input_name: tensor.numpy()})
        for want, got in zip(expected, actual, strict=True):
            if want.shape != got.shape:
                raise RuntimeError(f"{name}: ONNX output shape {got.shape} != torch {want.shape}")
            difference = float(np.abs(want.numpy() - got).max())
            if difference > EXPORT_CHECK_TOLERANCE:
                raise RuntimeError(f"{name}: ONNX differs from torch by {difference:.3g}")


def _random(*shape: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(*shape, generator=generator) * 2 - 1


def export_mtcnn(cache_dir: Path, filenames: Sequence[str] = MTCNN_FILENAMES) -> list[Path]:
    """P-Net (any image size), R-Net and O-Net (any batch) from the weights in facenet-pytorch's wheel.

    ``filenames`` selects some of the three (:data:`ml.weights.onnx_models.MTCNN_FILENAMES`).
    """
    pnet, rnet, onet = load_mtcnn_modules()
    height = torch.export.Dim("height", min=12, max=16384)
    width = torch.export.Dim("width", min=12, max=16384)
    batch = torch.export.Dim("batch", min=1, max=65536)
    # Batch 1 or a side of 1 would be specialised by torch.export, so the examples avoid them.
    jobs = [
        (PNET_FILENAME, pnet, _random(1, 3, 64, 80), {2: height, 3: width}, [_random(1, 3, 13, 12), _random(1, 3, 157, 93)]),
        (RNET_FILENAME, rnet, _random(2, 3, 24, 24), {0: batch}, [_random(1, 3, 24, 24), _random(5, 3, 24, 24)]),
        (ONET_FILENAME, onet, _random(2, 3, 48, 48), {0: batch}, [_random(1, 3, 48, 48), _random(5, 3, 48, 48)]),
    ]  # fmt: skip
    source = f"facenet-pytorch {_distribution_version('facenet-pytorch')} MTCNN"
    written = []
    for filename, module, example, axes, checks in jobs:
        if filename not in filenames:
            continue
        started = time.perf_counter()
        data = _to_onnx(module, example, axes, MTCNN_INPUT, MTCNN_OUTPUTS[filename])
        _check_export(module, data, MTCNN_INPUT, checks, filename)
        path = cache_dir / filename
        save_checked_file(data, path, version=EXPORT_VERSION, source=source)
        logger.info("exported %s in %.1f s", path, time.perf_counter() - started)
        written.append(path)
    return written


def export_facenet(cache_dir: Path, weights: Path | None = None) -> Path:
    """FaceNet (any batch) from ``weights`` (``None``: the CASIA-WebFace graph, converted into ``cache_dir``)."""
    started = time.perf_counter()
    module = load_facenet_module(weights, cache_dir)
    batch = torch.export.Dim("batch", min=1, max=65536)
    data = _to_onnx(module, _random(2, 3, 160, 160), {0: batch}, FACENET_INPUT, (FACENET_OUTPUT,))
    _check_export(
        module, data, FACENET_INPUT, [_random(1, 3, 160, 160), _random(3, 3, 160, 160)], "FaceNet"
    )
    if weights is None:
        source = f"{GRAPH_DISTRIBUTION}:{GRAPH_RESOURCE}"
    else:
        source = f"{weights} (sha256 {file_sha256(weights)})"
    path = cache_dir / facenet_onnx_filename(weights)
    save_checked_file(data, path, version=EXPORT_VERSION, source=source)
    logger.info("exported %s in %.1f s", path, time.perf_counter() - started)
    return path


def export_model(filename: str, cache_dir: Path, *, embedder_weights: Path | None = None) -> None:
    """Export the model that :mod:`ml.weights.onnx_models` names ``filename``."""
    if filename in MTCNN_FILENAMES:
        export_mtcnn(cache_dir, [filename])
    elif filename == facenet_onnx_filename(embedder_weights):
        export_facenet(cache_dir, embedder_weights)
    else:
        raise ValueError(f"no exporter for {filename!r}")


def _distribution_version(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)
