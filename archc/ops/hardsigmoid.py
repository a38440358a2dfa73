"""hardsigmoid: relu6(x + 3) / 6, element-wise (MobileNetV3's gate)."""
from __future__ import annotations

from archc.ops.activation import Activation
from archc.ops.registry import register


@register
class Hardsigmoid(Activation):
    name = "hardsigmoid"
    aliases = ("hard_sigmoid",)
    doc = "relu6(x + 3) / 6, element-wise: torch.nn.functional.hardsigmoid, ONNX HardSigmoid(1/6, 0.5)."
    role = "gate"  # values in [0, 1]: a product with it gates (MobileNetV3's squeeze-and-excitation)

    def torch_forward(self, node, ins, args, module):
        return f"F.hardsigmoid({args[0]})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("HardSigmoid", inputs, alpha=1.0 / 6.0, beta=0.5)
