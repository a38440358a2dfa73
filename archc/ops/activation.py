"""Element-wise activation functions."""
from __future__ import annotations

from archc.ops.base import OpDef
from archc.ops.registry import register


@register
class Relu(OpDef):
    name = "relu"
    doc = "max(x, 0), element-wise."
    role = "activation"

    def torch_forward(self, node, ins, args, module):
        return f"torch.relu({args[0]})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Relu", inputs)
