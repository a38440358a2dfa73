"""rsqrt: 1 / sqrt(x), element-wise (RMSNorm written out)."""
from __future__ import annotations

from archc.ops.activation import Activation
from archc.ops.registry import register


@register
class Rsqrt(Activation):
    name = "rsqrt"
    doc = "1 / sqrt(x), element-wise: torch.rsqrt, ONNX Reciprocal(Sqrt(x))."

    def torch_forward(self, node, ins, args, module):
        return f"torch.rsqrt({args[0]})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Reciprocal", [emit.add_node("Sqrt", inputs)[0]])
