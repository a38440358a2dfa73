"""Example archc plug-in op: Squareplus (Barron 2021), y = (x + sqrt(x^2 + b)) / 2.

An op definition is one OpDef subclass: attributes, shape inference, parameters,
and both lowerings. It is registered by the `archc.ops` entry point in this
package's pyproject.toml; archc imports it when it first looks an op up.
"""
from __future__ import annotations

import numpy as np

from archc.ops.base import Attr, OpDef


class Squareplus(OpDef):
    name = "squareplus"
    doc = "(x + sqrt(x^2 + b)) / 2, element-wise, a smooth relu (plug-in example)."
    attrs = {"b": Attr("float", 4.0, doc="smoothness (b = 0 is relu)")}
    role = "activation"

    def torch_forward(self, node, ins, args, module):
        x, b = args[0], float(node.attrs["b"])
        return f"0.5 * ({x} + torch.sqrt({x} * {x} + {b!r}))"

    def onnx(self, emit, node, inputs, ins):
        def const(v):
            return emit.const(np.array(v, dtype=ins[0].dtype), "c")
        x = inputs[0]
        square = emit.add_node("Mul", [x, x])[0]
        root = emit.add_node("Sqrt", [emit.add_node("Add", [square, const(node.attrs["b"])])[0]])[0]
        return emit.add_node("Mul", [emit.add_node("Add", [x, root])[0], const(0.5)])
