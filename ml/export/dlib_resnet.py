"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) exported to ONNX, without dlib.

dlib has no export API, so this module reads the serialized network itself and rebuilds it with ``onnx.helper``.
The file is dlib's ``anet_type`` from ``examples/dnn_face_recognition_ex.cpp``::

    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

with ``ares`` / ``ares_down`` residual blocks (see :func:`anet_layers`). Facts from dlib's source
(``dlib/serialize.h``, ``dlib/dnn/core.h``, ``layers.h``, ``input.h``, ``loss.h``, ``cuda/tensor.h``, read at
davisking/dlib 3d40bf57) that the reader and the graph rely on:

- integers are a control byte (bit 7: negative, low 4 bits: byte count) then that many little-endian bytes;
  floats and doubles are an integer mantissa then an integer exponent (``mantissa * 2**exponent``); bools are the
  ASCII bytes ``'0'``/``'1'``; strings are their length then their bytes; tensors are version 2, four dimensions
  and raw little-endian float32 data; alias tensors (``gamma``, ``filters``...) are only a shape;
- a network is written outside in: each wrapper (``add_layer``, ``add_tag_layer``, ``add_skip_layer``) writes its
  version and then its sub-network before its own layer, so the file holds every wrapper's version from the loss
  down, then the input layer, then each layer's parameters from the input up;
- the file stores its ``affine`` layers as the batch-norm layers they were trained as (``bn_con2``); dlib turns
  them into ``gamma / sqrt(running_variance + eps)`` and ``beta - gamma' * running_mean`` on loading, and so
  does :func:`_read_affine`;
- the input layer feeds ``(pixel - mean) / 256`` per channel, NCHW;
- ``add_prev`` adds tensors of different shapes by zero-padding both to the larger one (channels, rows, columns at
  the end): in the 256-channel levels the shortcut has 128 channels and a 4x4 map against the 3x3 of the strided
  branch, so the exported graph pads explicitly there;
- convolutions and poolings use floor output sizes with the padding stored in the file (0 for every strided one).

The exported graph takes ``chips``: ``(N, 150, 150, 3)`` uint8 RGB, dlib's ``get_face_chip`` output as is,
dynamic batch, and returns ``descriptor``: ``(N, 128)`` float32, dlib's raw (not unit) descriptor. Each affine is
folded into the convolution before it (``W * gamma``, ``b * gamma + beta``), which changes the float rounding but
not the function; :mod:`tests.ml.test_dlib_onnx` holds the parity with dlib itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper

from ml.export.onnx_graph import GraphBuilder, build_model
from ml.weights.cache import file_sha256, save_checked_file, write_atomically
from ml.weights.onnx_models import (
    DLIB_CHIP_SIZE,
    DLIB_EMBEDDING_DIM,
    DLIB_INPUT,
    DLIB_ONNX_FILENAME,
    DLIB_OUTPUT,
    EXPORT_VERSION,
)
from ml.weights.sources import DLIB_DISTRIBUTION, RESNET_FILE, dlib_models_dir

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]


class DlibFormatError(ValueError):
    """The file is not the serialized dlib network this reader expects."""


# --------------------------------------------------------------------------------------------------------------------
# dlib's serialization primitives
# --------------------------------------------------------------------------------------------------------------------


class DlibReader:
    """Sequential reader of dlib's ``serialize``/``deserialize`` encoding over a byte buffer."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.position = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self.position

    def _take(self, count: int) -> bytes:
        if count > self.remaining:
            raise DlibFormatError(
                f"truncated at byte {self.position}: need {count}, {self.remaining} left"
            )
        chunk = self._data[self.position : self.position + count]
        self.position += count
        return chunk

    def integer(self) -> int:
        """Any of dlib's integer types (signed and unsigned share the encoding for values >= 0)."""
        control = self._take(1)[0]
        size = control & 0x0F
        if control & 0x70 or size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte {control:#04x} at {self.position - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def floating(self) -> float:
        """A float or double: mantissa then exponent (dlib's ``float_details``)."""
        if self.remaining and self._data[self.position] & 0x70:
            raise DlibFormatError(f"old ASCII float encoding at byte {self.position} (unsupported)")
        mantissa = self.integer()
        exponent = self.integer()
        if exponent >= 32000:  # float_details::is_inf, is_ninf, is_nan
            return {32000: float("inf"), 32001: float("-inf")}.get(exponent, float("nan"))
        return float(np.ldexp(np.float64(mantissa), exponent))

    def boolean(self) -> bool:
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {byte!r} at {self.position - 1}")
        return byte == b"1"

    def string(self) -> str:
        length = self.integer()
        return self._take(length).decode("ascii")

    def tensor(self) -> FloatArray:
        """A ``resizable_tensor``: shape ``(num_samples, k, nr, nc)`` of float32."""
        version = self.integer()
        if version != 2:
            raise DlibFormatError(f"tensor version {version}, expected 2")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        data = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        return data.reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: only the shape of a view into a layer's ``params``."""
        version = self.integer()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version}, expected 1")
        n, k, nr, nc = (self.integer() for _ in range(4))
        return n, k, nr, nc

    def expect_string(self, *accepted: str) -> str:
        found = self.string()
        if found not in accepted:
            raise DlibFormatError(f"expected one of {accepted}, found {found!r}")
        return found


# --------------------------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputLayer:
    channel_means: tuple[float, float, float]
    """``avg_red``, ``avg_green``, ``avg_blue`` subtracted before the division by 256."""
    size: int


@dataclass(frozen=True)
class Conv:
    filters: FloatArray
    """``(out, in, rows, cols)``, cross-correlation like ONNX ``Conv``."""
    bias: FloatArray | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    fused_relu: bool


@dataclass(frozen=True)
class Affine:
    gamma: FloatArray
    beta: FloatArray
    disabled: bool


@dataclass(frozen=True)
class Relu:
    disabled: bool


@dataclass(frozen=True)
class Pool:
    is_max: bool
    window: tuple[int, int]
    """``(0, 0)``: the whole map (``avg_pool_everything``)."""
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FullyConnected:
    weights: FloatArray
    """``(inputs, outputs)``: ``output = flatten(input) @ weights``."""
    bias: FloatArray | None


@dataclass(frozen=True)
class Tag:
    tag_id: int


@dataclass(frozen=True)
class Skip:
    tag_id: int


@dataclass(frozen=True)
class AddPrev:
    tag_id: int


Layer = Conv | Affine | Relu | Pool | FullyConnected | Tag | Skip | AddPrev


@dataclass(frozen=True)
class DlibResNet:
    input: InputLayer
    layers: tuple[Layer, ...]
    """From the input to the descriptor."""
    metric_margin: float
    metric_distance_threshold: float


# The layer kinds of anet_type, input side first; ("con", filters, stride) etc. are checked against the file.
LayerKind = tuple[str, int, int]


def _block(filters: int, stride: int) -> list[LayerKind]:
    # block<N,BN,stride,SUBNET> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [
        ("con", filters, stride),
        ("affine", 0, 0),
        ("relu", 0, 0),
        ("con", filters, 1),
        ("affine", 0, 0),
    ]


def _ares(filters: int) -> list[LayerKind]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("tag", 1, 0), *_block(filters, 1), ("add_prev", 1, 0), ("relu", 0, 0)]


def _ares_down(filters: int) -> list[LayerKind]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [
        ("tag", 1, 0),
        *_block(filters, 2),
        ("tag", 2, 0),
        ("skip", 1, 0),
        ("avg_pool", 2, 2),
        ("add_prev", 2, 0),
        ("relu", 0, 0),
    ]


def anet_layers() -> list[LayerKind]:
    """dlib's ``anet_type`` without its input and loss, input side first (one entry per serialized wrapper)."""
    kinds: list[LayerKind] = [
        ("con", 32, 2),
        ("affine", 0, 0),
        ("relu", 0, 0),
        ("max_pool", 3, 2),
    ]
    kinds += _ares(32) * 3  # alevel4
    kinds += _ares_down(64) + _ares(64) * 3  # alevel3
    kinds += _ares_down(128) + _ares(128) * 2  # alevel2
    kinds += _ares_down(256) + _ares(256) * 2  # alevel1
    kinds += _ares_down(256)  # alevel0
    kinds += [("avg_pool", 0, 1), ("fc", DLIB_EMBEDDING_DIM, 0)]
    return kinds


def _read_input(reader: DlibReader) -> InputLayer:
    reader.expect_string("input_rgb_image_sized")
    means = (reader.floating(), reader.floating(), reader.floating())
    rows, cols = reader.integer(), reader.integer()
    if rows != cols:
        raise DlibFormatError(f"input is {rows}x{cols}, expected a square")
    return InputLayer(channel_means=means, size=rows)


def _read_conv(reader: DlibReader, filters: int, stride: int) -> Conv:
    version = reader.expect_string("con_4", "con_5", "con_6")
    params = reader.tensor().reshape(-1)
    num_filters = reader.integer()
    rows, cols = reader.integer(), reader.integer()
    stride_y, stride_x = reader.integer(), reader.integer()
    padding = (reader.integer(), reader.integer())
    filter_shape = reader.alias_tensor()
    bias_shape = reader.alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.floating()
    use_bias = reader.boolean() if version in ("con_5", "con_6") else True
    use_relu = reader.boolean() if version == "con_6" else False
    if num_filters != filters or (stride_y, stride_x) != (stride, stride):
        raise DlibFormatError(
            f"con has {num_filters} filters, stride {(stride_y, stride_x)}; expected {filters}, {stride}"
        )
    if filter_shape[0] != num_filters or filter_shape[2:] != (rows, cols):
        raise DlibFormatError(
            f"con filters {filter_shape} disagree with {num_filters}x{rows}x{cols}"
        )
    filter_count = int(np.prod(filter_shape))
    weights = params[:filter_count].reshape(filter_shape)
    bias: FloatArray | None = None
    if use_bias:
        bias_count = int(np.prod(bias_shape))
        if params.size != filter_count + bias_count:
            raise DlibFormatError(
                f"con params hold {params.size} values, expected {filter_count + bias_count}"
            )
        bias = params[filter_count:].copy()
    elif params.size != filter_count:
        raise DlibFormatError(f"con params hold {params.size} values, expected {filter_count}")
    return Conv(
        filters=np.ascontiguousarray(weights),
        bias=bias,
        stride=(stride_y, stride_x),
        padding=padding,
        fused_relu=use_relu,
    )


def _read_affine(reader: DlibReader) -> Affine:
    version = reader.expect_string("affine_", "affine_2", "bn_con2")
    if version == "bn_con2":
        params = reader.tensor().reshape(-1)
        gamma_shape = reader.alias_tensor()
        reader.alias_tensor()  # beta: same shape, after gamma in params
        reader.tensor()  # means of the last training batch
        reader.tensor()  # their inverse standard deviations
        running_means = reader.tensor().reshape(-1)
        running_variances = reader.tensor().reshape(-1)
        reader.integer()  # num_updates
        reader.integer()  # running_stats_window_size
        for _ in range(4):
            reader.floating()
        eps = np.float32(reader.floating())
        channels = int(np.prod(gamma_shape))
        # affine_(const bn_&): float arithmetic, as dlib's matrix expressions over float tensors do.
        gamma = params[:channels] / np.sqrt(running_variances + eps)
        beta = params[channels : 2 * channels] - gamma * running_means
        return Affine(gamma=gamma.astype(np.float32), beta=beta.astype(np.float32), disabled=False)
    params = reader.tensor().reshape(-1)
    gamma_shape = reader.alias_tensor()
    reader.alias_tensor()
    reader.integer()  # layer mode (conv or fc): per channel either way here
    disabled = reader.boolean() if version == "affine_2" else False
    channels = int(np.prod(gamma_shape))
    if disabled:
        empty = np.zeros(0, np.float32)
        return Affine(gamma=empty, beta=empty, disabled=True)
    return Affine(
        gamma=params[:channels].copy(), beta=params[channels : 2 * channels].copy(), disabled=False
    )


def _read_pool(reader: DlibReader, is_max: bool, window: int, stride: int) -> Pool:
    reader.expect_string("max_pool_2" if is_max else "avg_pool_2")
    rows, cols = reader.integer(), reader.integer()
    stride_y, stride_x = reader.integer(), reader.integer()
    padding = (reader.integer(), reader.integer())
    if (rows, cols, stride_y, stride_x) != (window, window, stride, stride):
        raise DlibFormatError(
            f"pool {rows}x{cols} stride {(stride_y, stride_x)}, expected {window}x{window} stride {stride}"
        )
    return Pool(is_max=is_max, window=(rows, cols), stride=(stride_y, stride_x), padding=padding)


def _read_fc(reader: DlibReader, outputs: int) -> FullyConnected:
    version = reader.expect_string("fc_2", "fc_3")
    num_outputs, num_inputs = reader.integer(), reader.integer()
    params = reader.tensor().reshape(-1)
    reader.alias_tensor()  # weights: (num_inputs, num_outputs)
    reader.alias_tensor()  # biases
    bias_mode = reader.integer()
    for _ in range(4):
        reader.floating()
    use_bias = reader.boolean() if version == "fc_3" else True
    if num_outputs != outputs:
        raise DlibFormatError(f"fc has {num_outputs} outputs, expected {outputs}")
    count = num_inputs * num_outputs
    weights = params[:count].reshape(num_inputs, num_outputs).copy()
    bias: FloatArray | None = None
    if bias_mode == 0 and use_bias:  # FC_HAS_BIAS
        bias = params[count : count + num_outputs].copy()
    elif params.size != count:
        raise DlibFormatError(f"fc_no_bias params hold {params.size} values, expected {count}")
    return FullyConnected(weights=weights, bias=bias)


def _read_relu(reader: DlibReader) -> Relu:
    version = reader.expect_string("relu_", "relu_2")
    return Relu(disabled=reader.boolean() if version == "relu_2" else False)


def _read_add_prev(reader: DlibReader, tag_id: int) -> AddPrev:
    reader.expect_string("add_prev_")
    return AddPrev(tag_id=tag_id)


def _skip_layer_state(reader: DlibReader, version: int, holds_input: bool) -> None:
    """What ``add_layer`` writes after its layer: flags and training buffers, not needed for inference."""
    for _ in range(
        3
    ):  # this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled
        reader.boolean()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if holds_input:
        reader.tensor()  # grad_final
        if version >= 3:
            reader.integer()  # _sample_expansion_factor
    elif version >= 2:
        reader.tensor()  # params_grad


def read_dlib_resnet(data: bytes) -> DlibResNet:
    """Parse a serialized ``anet_type``; the whole buffer must be consumed."""
    reader = DlibReader(data)
    if reader.integer() != 1:
        raise DlibFormatError("add_loss_layer version is not 1")
    loss_version = reader.expect_string("loss_metric_", "loss_metric_2")
    margin, threshold = (
        (reader.floating(), reader.floating()) if loss_version == "loss_metric_2" else (0.1, 0.75)
    )
    kinds = anet_layers()
    versions: list[int] = []
    for kind, _, _ in reversed(kinds):  # outside in: one version per wrapper
        version = reader.integer()
        accepted = {"tag": (1,), "skip": (1,)}.get(kind, (1, 2, 3))
        if version not in accepted:
            raise DlibFormatError(f"{kind} wrapper version {version}, expected one of {accepted}")
        versions.append(version)
    versions.reverse()
    input_layer = _read_input(reader)
    readers: dict[str, Callable[[int, int], Layer]] = {
        "con": lambda a, b: _read_conv(reader, a, b),
        "affine": lambda a, b: _read_affine(reader),
        "relu": lambda a, b: _read_relu(reader),
        "max_pool": lambda a, b: _read_pool(reader, True, a, b),
        "avg_pool": lambda a, b: _read_pool(reader, False, a, b),
        "fc": lambda a, b: _read_fc(reader, a),
        "add_prev": lambda a, b: _read_add_prev(reader, a),
        "tag": lambda a, b: Tag(tag_id=a),
        "skip": lambda a, b: Skip(tag_id=a),
    }
    layers: list[Layer] = []
    for index, ((kind, first, second), version) in enumerate(zip(kinds, versions, strict=True)):
        layers.append(readers[kind](first, second))
        if kind not in ("tag", "skip"):
            _skip_layer_state(reader, version, holds_input=index == 0)
    if reader.remaining:
        raise DlibFormatError(f"{reader.remaining} bytes left after the network")
    return DlibResNet(
        input=input_layer,
        layers=tuple(layers),
        metric_margin=margin,
        metric_distance_threshold=threshold,
    )


# --------------------------------------------------------------------------------------------------------------------
# ONNX graph
# --------------------------------------------------------------------------------------------------------------------


Shape = tuple[int, int, int]
"""(channels, rows, cols) of one sample."""


def _conv_output(
    shape: Shape,
    channels: int,
    window: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> Shape:
    rows = 1 + (shape[1] + 2 * padding[0] - window[0]) // stride[0]
    cols = 1 + (shape[2] + 2 * padding[1] - window[1]) // stride[1]
    return channels, rows, cols


def _pad_to(builder: GraphBuilder, tensor: str, shape: Shape, target: Shape) -> str:
    """Zero-pad ``tensor`` at the end of its channel, row and column axes up to ``target`` (dlib's add_prev)."""
    if shape == target:
        return tensor
    extra = [0, target[0] - shape[0], target[1] - shape[1], target[2] - shape[2]]
    pads = builder.constant("pads", np.array([0, 0, 0, 0, *extra], np.int64))
    return builder.node("Pad", [tensor, pads], "pad", mode="constant")


def build_onnx_model(
    network: DlibResNet, properties: dict[str, str] | None = None
) -> onnx.ModelProto:
    """The ONNX graph of ``network``: ``chips`` (N, size, size, 3) uint8 RGB -> ``descriptor`` (N, 128) float32,
    with ``properties`` as its metadata."""
    builder = GraphBuilder()
    size = network.input.size
    as_float = builder.node("Cast", [DLIB_INPUT], "float", to=TensorProto.FLOAT)
    means = builder.constant("channel_means", np.array(network.input.channel_means, np.float32))
    centred = builder.node("Sub", [as_float, means], "centred")
    # /256 and *(1/256) are the same float operation: 256 is a power of two.
    scaled = builder.node(
        "Mul", [centred, builder.constant("scale", np.array(1.0 / 256.0, np.float32))], "scaled"
    )
    current = builder.node("Transpose", [scaled], "nchw", perm=[0, 3, 1, 2])
    shape: Shape = (3, size, size)
    tags: dict[int, tuple[str, Shape]] = {}
    layers = list(network.layers)
    index = 0
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, Conv):
            weights = layer.filters.astype(np.float64)
            bias = (
                layer.bias.astype(np.float64)
                if layer.bias is not None
                else np.zeros(weights.shape[0], np.float64)
            )
            following = layers[index + 1] if index + 1 < len(layers) else None
            if isinstance(following, Affine) and not following.disabled and not layer.fused_relu:
                weights = weights * following.gamma.astype(np.float64)[:, None, None, None]
                bias = bias * following.gamma + following.beta
                index += 1
            current = builder.node(
                "Conv",
                [
                    current,
                    builder.constant("conv_w", weights.astype(np.float32)),
                    builder.constant("conv_b", bias.astype(np.float32)),
                ],
                "conv",
                kernel_shape=list(weights.shape[2:]),
                strides=list(layer.stride),
                pads=[layer.padding[0], layer.padding[1], layer.padding[0], layer.padding[1]],
            )
            shape = _conv_output(
                shape,
                weights.shape[0],
                (weights.shape[2], weights.shape[3]),
                layer.stride,
                layer.padding,
            )
            if layer.fused_relu:
                current = builder.node("Relu", [current], "relu")
        elif isinstance(layer, Affine):
            if not layer.disabled:
                column = (-1, 1, 1)
                gamma = builder.constant("gamma", layer.gamma.reshape(column))
                beta = builder.constant("beta", layer.beta.reshape(column))
                current = builder.node(
                    "Add", [builder.node("Mul", [current, gamma], "scale"), beta], "shift"
                )
        elif isinstance(layer, Relu):
            if not layer.disabled:
                current = builder.node("Relu", [current], "relu")
        elif isinstance(layer, Pool):
            if layer.window == (0, 0):
                op = "GlobalMaxPool" if layer.is_max else "GlobalAveragePool"
                current = builder.node(op, [current], "global_pool")
                shape = (shape[0], 1, 1)
            else:
                current = builder.node(
                    "MaxPool" if layer.is_max else "AveragePool",
                    [current],
                    "pool",
                    kernel_shape=list(layer.window),
                    strides=list(layer.stride),
                    pads=[layer.padding[0], layer.padding[1], layer.padding[0], layer.padding[1]],
                )
                shape = _conv_output(shape, shape[0], layer.window, layer.stride, layer.padding)
        elif isinstance(layer, Tag):
            tags[layer.tag_id] = (current, shape)
        elif isinstance(layer, Skip):
            current, shape = tags[layer.tag_id]
        elif isinstance(layer, AddPrev):
            other, other_shape = tags[layer.tag_id]
            target: Shape = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )
            current = builder.node(
                "Add",
                [
                    _pad_to(builder, current, shape, target),
                    _pad_to(builder, other, other_shape, target),
                ],
                "add_prev",
            )
            shape = target
        elif isinstance(layer, FullyConnected):
            flat = builder.node("Flatten", [current], "flatten", axis=1)
            if layer.weights.shape[0] != shape[0] * shape[1] * shape[2]:
                raise DlibFormatError(
                    f"fc expects {layer.weights.shape[0]} inputs, the graph gives {shape}"
                )
            current = builder.node("MatMul", [flat, builder.constant("fc_w", layer.weights)], "fc")
            if layer.bias is not None:
                current = builder.node(
                    "Add", [current, builder.constant("fc_b", layer.bias)], "fc_bias"
                )
            shape = (layer.weights.shape[1], 1, 1)
        index += 1
    builder.rename(current, DLIB_OUTPUT)
    return build_model(
        builder,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(DLIB_INPUT, TensorProto.UINT8, ["batch", size, size, 3])],
        [helper.make_tensor_value_info(DLIB_OUTPUT, TensorProto.FLOAT, ["batch", shape[0]])],
        producer_version=EXPORT_VERSION,
        properties=properties,
    )


# --------------------------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedModel:
    path: Path
    sha256: str
    """Of the written file's bytes."""


def dlib_resnet_onnx_bytes(source: Path | None = None) -> bytes:
    """The ONNX model of dlib's ResNet (``source``, default: the ``face-recognition-models`` wheel's)."""
    source = source if source is not None else dlib_models_dir() / RESNET_FILE
    network = read_dlib_resnet(source.read_bytes())
    if network.input.size != DLIB_CHIP_SIZE:
        raise DlibFormatError(
            f"network input is {network.input.size} px, expected {DLIB_CHIP_SIZE}"
        )
    model = build_onnx_model(network, {"source_sha256": file_sha256(source)})
    data: bytes = model.SerializeToString()
    return data


def export_dlib_to_cache(cache_dir: Path) -> Path:
    """Write the ONNX model into the model cache with its checksum record, as
    :func:`ml.weights.onnx_models.load_onnx_model` reads it."""
    started = time.perf_counter()
    source = dlib_models_dir() / RESNET_FILE
    path = cache_dir / DLIB_ONNX_FILENAME
    save_checked_file(
        dlib_resnet_onnx_bytes(source),
        path,
        version=EXPORT_VERSION,
        source=f"{DLIB_DISTRIBUTION}:{RESNET_FILE} (sha256 {file_sha256(source)})",
    )
    logger.info("exported %s in %.1f s", path, time.perf_counter() - started)
    return path


def export_dlib_resnet_onnx(destination: Path, source: Path | None = None) -> ExportedModel:
    """Read dlib's ResNet (``source``, default: the ``face-recognition-models`` wheel's) and write it as ONNX.

    Written atomically (temp file + rename), readable by another user (the image is built as root and served as
    another user). The bytes are deterministic for one source file and exporter version.
    """
    source = source if source is not None else dlib_models_dir() / RESNET_FILE
    data = dlib_resnet_onnx_bytes(source)
    write_atomically(destination, lambda temp: temp.write_bytes(data))
    exported = ExportedModel(path=destination, sha256=file_sha256(destination))
    logger.info("exported %s to %s (sha256 %s)", source, destination, exported.sha256)
    return exported
