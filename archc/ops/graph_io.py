"""Graph inputs and the identity op."""
from __future__ import annotations

from archc.ir.types import TensorType
from archc.ops.base import Attr, OpDef
from archc.ops.registry import register


@register
class Input(OpDef):
    name = "input"
    doc = "A graph input of a declared shape and dtype (batch dimension usually symbolic)."
    attrs = {"shape": Attr("any"), "dtype": Attr("str", "float32")}
    inputs = ()
    role = "input"

    def infer(self, node, ins):
        return [TensorType(tuple(node.attrs["shape"]), node.attrs["dtype"])]


@register
class Identity(OpDef):
    name = "identity"
    doc = "Passes its input through unchanged (dropped by the inference optimiser)."
    role = "identity"

    def torch_forward(self, node, ins, args, module):
        return args[0]

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Identity", inputs)
