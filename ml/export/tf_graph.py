"""A minimal reader of serialised TensorFlow ``GraphDef`` protobufs (no TensorFlow, no protobuf package).

Just enough of the protobuf wire format to list a frozen graph's nodes and decode its constant tensors;
:mod:`ml.export.facenet` maps those constants onto facenet-pytorch's InceptionResnetV1 keys.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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
