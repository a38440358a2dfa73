"""Example archc plug-in op: Mish (Misra 2019), y = x * tanh(softplus(x)).

An op definition is one OpDef subclass: attributes, shape inference, parameters,
and both lowerings. It is registered by the `archc.ops` entry point in this
package's pyproject.toml; archc imports it when it first looks an op up.
"""
from __future__ import annotations

from archc.ops.base import OpDef


class Mish(OpDef):
    name = "mish"
    doc = "x * tanh(softplus(x)), element-wise (plug-in example)."
    role = "activation"

    def torch_forward(self, node, ins, args, module):
        return f"F.mish({args[0]})"

    def onnx(self, emit, node, inputs, ins):
        # ONNX has Mish only from opset 18; archc emits opset 17, so compose it.
        softplus = emit.add_node("Softplus", inputs)
        tanh = emit.add_node("Tanh", softplus)
        return emit.add_node("Mul", [inputs[0], tanh[0]])
