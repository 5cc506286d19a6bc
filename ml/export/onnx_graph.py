"""An ONNX graph written node by node with ``onnx.helper``: what every exporter of :mod:`ml.export` builds on.

Opset 17 and IR version 8: loadable by every onnxruntime the project allows (>= 1.18). A model is
checked with ``onnx.checker`` (shape inference included) before it is serialised, and its bytes
are deterministic for one source and one exporter version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

ONNX_OPSET = 17
ONNX_IR_VERSION = 8
PRODUCER_NAME = "rollcall.ml.export"

Dim = int | str | None
"""A dimension of a graph input or output: fixed, named (dynamic), or unknown."""


@dataclass
class GraphBuilder:
    """Nodes and initialisers in the order they are added; every name is unique."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    counter: int = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def constant(self, prefix: str, value: npt.NDArray[np.generic]) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: Sequence[str], prefix: str, **attributes: Any) -> str:
        """Add one node with one output; returns the output's name."""
        output = self.name(prefix)
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attributes))
        return output

    def rename(self, tensor: str, output: str) -> None:
        """Expose ``tensor`` as the graph output ``output`` (an ``Identity`` node)."""
        self.nodes.append(helper.make_node("Identity", [tensor], [output], name=output))


def float_tensor(name: str, shape: Sequence[Dim]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def build_model(
    builder: GraphBuilder,
    graph_name: str,
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    *,
    producer_version: str,
    properties: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """The checked model of ``builder``'s nodes, with ``properties`` as its metadata."""
    graph = helper.make_graph(
        builder.nodes, graph_name, list(inputs), list(outputs), builder.initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name=PRODUCER_NAME,
        producer_version=producer_version,
    )
    model.ir_version = ONNX_IR_VERSION
    if properties:
        helper.set_model_props(model, properties)
    onnx.checker.check_model(model, full_check=True)
    return model
