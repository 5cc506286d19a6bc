"""MTCNN's P-, R- and O-Net as ONNX graphs, from facenet-pytorch's weight files (no torch).

The graphs are facenet-pytorch's ``PNet``, ``RNet`` and ``ONet`` (``facenet_pytorch/models/mtcnn.py``,
2.6.0) written out layer by layer:

- P-Net: conv 3x3 -> PReLU -> max-pool 2/2 -> conv 3x3 -> PReLU -> conv 3x3 -> PReLU, then a 1x1
  conv to 2 channels and a softmax over them (``probabilities``) and a 1x1 conv to 4
  (``regression``); fully convolutional, so any image of at least 12x12;
- R-Net (24x24) and O-Net (48x48): convs, PReLUs and max-pools, then the feature map is permuted
  to ``(N, W, H, C)`` before it is flattened (``x.permute(0, 3, 2, 1)``: the order the dense
  layer's weights were trained on, from the original Caffe model), dense layers with PReLU, a
  softmax head and the regression (and, for O-Net, landmark) heads.

Max-pools use ``ceil_mode`` as torch's ``MaxPool2d(..., ceil_mode=True)`` does: a last, partial
window counts. ``Linear`` layers are ``Gemm`` with ``transB`` (torch keeps ``(out, in)``). The
parity with facenet-pytorch's modules on real photos is in ``tests/ml/test_onnx_runtime.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ml.export.onnx_graph import Dim, GraphBuilder, build_model, float_tensor
from ml.export.torch_pickle import read_state_dict
from ml.weights.cache import file_sha256, save_checked_file
from ml.weights.onnx_models import (
    EXPORT_VERSION,
    MTCNN_FILENAMES,
    MTCNN_INPUT,
    MTCNN_NET_OF_FILE,
    MTCNN_OUTPUTS,
    ONET_FILENAME,
    PNET_FILENAME,
    RNET_FILENAME,
)
from ml.weights.sources import MTCNN_DISTRIBUTION, distribution_version, mtcnn_weights_path

logger = logging.getLogger(__name__)

Weights = Mapping[str, npt.NDArray[Any]]


class _Net:
    """Writes one network's layers, taking each weight once by its facenet-pytorch name."""

    def __init__(self, weights: Weights, name: str) -> None:
        self.builder = GraphBuilder()
        self._weights = dict(weights)
        self._name = name

    def take(self, key: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        if key not in self._weights:
            raise ValueError(f"{self._name}: no weight {key}")
        value = self._weights.pop(key)
        if value.shape != shape:
            raise ValueError(f"{self._name}: {key} has shape {value.shape}, expected {shape}")
        return np.ascontiguousarray(value, dtype=np.float32)

    def check_all_used(self) -> None:
        if self._weights:
            raise ValueError(f"{self._name}: weights left unused: {sorted(self._weights)}")

    def conv(self, x: str, layer: str, channels: tuple[int, int], kernel: int) -> str:
        out_channels, in_channels = channels
        weight = self.take(f"{layer}.weight", (out_channels, in_channels, kernel, kernel))
        bias = self.take(f"{layer}.bias", (out_channels,))
        b = self.builder
        return b.node(
            "Conv",
            [x, b.constant(f"{layer}.weight", weight), b.constant(f"{layer}.bias", bias)],
            layer,
            kernel_shape=[kernel, kernel],
        )

    def prelu(self, x: str, layer: str, channels: int, *, spatial: bool) -> str:
        slope = self.take(f"{layer}.weight", (channels,))
        # PReLU's slope is per channel: axis 1, so (C, 1, 1) against an NCHW map.
        shaped = slope.reshape(channels, 1, 1) if spatial else slope
        return self.builder.node("PRelu", [x, self.builder.constant(layer, shaped)], layer)

    def max_pool(self, x: str, layer: str, kernel: int, stride: int) -> str:
        return self.builder.node(
            "MaxPool",
            [x],
            layer,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            ceil_mode=1,
        )

    def dense(self, x: str, layer: str, features: tuple[int, int]) -> str:
        out_features, in_features = features
        weight = self.take(f"{layer}.weight", (out_features, in_features))
        bias = self.take(f"{layer}.bias", (out_features,))
        b = self.builder
        return b.node(
            "Gemm",
            [x, b.constant(f"{layer}.weight", weight), b.constant(f"{layer}.bias", bias)],
            layer,
            transB=1,
        )

    def softmax(self, x: str, layer: str) -> str:
        return self.builder.node("Softmax", [x], layer, axis=1)

    def flatten_as_torch(self, x: str) -> str:
        """``x.permute(0, 3, 2, 1).contiguous().view(N, -1)``."""
        permuted = self.builder.node("Transpose", [x], "permute", perm=[0, 3, 2, 1])
        return self.builder.node("Flatten", [permuted], "flatten", axis=1)


def _pnet(net: _Net) -> list[str]:
    x = net.prelu(net.conv(MTCNN_INPUT, "conv1", (10, 3), 3), "prelu1", 10, spatial=True)
    x = net.max_pool(x, "pool1", 2, 2)
    x = net.prelu(net.conv(x, "conv2", (16, 10), 3), "prelu2", 16, spatial=True)
    x = net.prelu(net.conv(x, "conv3", (32, 16), 3), "prelu3", 32, spatial=True)
    probabilities = net.softmax(net.conv(x, "conv4_1", (2, 32), 1), "softmax4_1")
    regression = net.conv(x, "conv4_2", (4, 32), 1)
    return [regression, probabilities]


def _rnet(net: _Net) -> list[str]:
    x = net.prelu(net.conv(MTCNN_INPUT, "conv1", (28, 3), 3), "prelu1", 28, spatial=True)
    x = net.max_pool(x, "pool1", 3, 2)
    x = net.prelu(net.conv(x, "conv2", (48, 28), 3), "prelu2", 48, spatial=True)
    x = net.max_pool(x, "pool2", 3, 2)
    x = net.prelu(net.conv(x, "conv3", (64, 48), 2), "prelu3", 64, spatial=True)
    x = net.prelu(
        net.dense(net.flatten_as_torch(x), "dense4", (128, 576)), "prelu4", 128, spatial=False
    )
    probabilities = net.softmax(net.dense(x, "dense5_1", (2, 128)), "softmax5_1")
    regression = net.dense(x, "dense5_2", (4, 128))
    return [regression, probabilities]


def _onet(net: _Net) -> list[str]:
    x = net.prelu(net.conv(MTCNN_INPUT, "conv1", (32, 3), 3), "prelu1", 32, spatial=True)
    x = net.max_pool(x, "pool1", 3, 2)
    x = net.prelu(net.conv(x, "conv2", (64, 32), 3), "prelu2", 64, spatial=True)
    x = net.max_pool(x, "pool2", 3, 2)
    x = net.prelu(net.conv(x, "conv3", (64, 64), 3), "prelu3", 64, spatial=True)
    x = net.max_pool(x, "pool3", 2, 2)
    x = net.prelu(net.conv(x, "conv4", (128, 64), 2), "prelu4", 128, spatial=True)
    x = net.prelu(
        net.dense(net.flatten_as_torch(x), "dense5", (256, 1152)), "prelu5", 256, spatial=False
    )
    probabilities = net.softmax(net.dense(x, "dense6_1", (2, 256)), "softmax6_1")
    regression = net.dense(x, "dense6_2", (4, 256))
    landmarks = net.dense(x, "dense6_3", (10, 256))
    return [regression, landmarks, probabilities]


_LAYOUTS: dict[str, tuple[Callable[[_Net], list[str]], list[Dim], list[Dim]]] = {
    PNET_FILENAME: (_pnet, ["batch", 3, "height", "width"], ["batch", None, None, None]),
    RNET_FILENAME: (_rnet, ["batch", 3, 24, 24], ["batch", None]),
    ONET_FILENAME: (_onet, ["batch", 3, 48, 48], ["batch", None]),
}


def mtcnn_onnx_bytes(filename: str, weights: Weights, *, source: str = "") -> bytes:
    """The ONNX model ``filename`` (one of :data:`MTCNN_FILENAMES`) of facenet-pytorch's ``weights``."""
    layout, input_shape, output_shape = _LAYOUTS[filename]
    net = _Net(weights, filename)
    outputs = layout(net)
    net.check_all_used()
    names: Sequence[str] = MTCNN_OUTPUTS[filename]
    for tensor, name in zip(outputs, names, strict=True):
        net.builder.rename(tensor, name)
    model = build_model(
        net.builder,
        filename.removesuffix(".onnx"),
        [float_tensor(MTCNN_INPUT, input_shape)],
        [float_tensor(name, output_shape) for name in names],
        producer_version=EXPORT_VERSION,
        properties={"source": source} if source else None,
    )
    data: bytes = model.SerializeToString()
    return data


def export_mtcnn(cache_dir: Path, filename: str) -> Path:
    """Export ``filename`` from the weights in facenet-pytorch's wheel into ``cache_dir``."""
    if filename not in MTCNN_FILENAMES:
        raise ValueError(f"{filename} is not one of MTCNN's networks {MTCNN_FILENAMES}")
    started = time.perf_counter()
    weights_path = mtcnn_weights_path(MTCNN_NET_OF_FILE[filename])
    source = (
        f"{MTCNN_DISTRIBUTION} {distribution_version(MTCNN_DISTRIBUTION)}:"
        f"{weights_path.name} (sha256 {file_sha256(weights_path)})"
    )
    data = mtcnn_onnx_bytes(filename, read_state_dict(weights_path), source=source)
    path = cache_dir / filename
    save_checked_file(data, path, version=EXPORT_VERSION, source=source)
    logger.info("exported %s in %.1f s", path, time.perf_counter() - started)
    return path
