"""mish: x tanh(softplus(x)), element-wise (Misra 2019)."""
from __future__ import annotations

from archc.ops.activation import Activation
from archc.ops.registry import register
from archc.ops.softplus import onnx_softplus


@register
class Mish(Activation):
    name = "mish"
    doc = "x * tanh(softplus(x)): torch.nn.functional.mish; ONNX Mish from opset 18, else the composition."

    def torch_forward(self, node, ins, args, module):
        return f"F.mish({args[0]})"

    def onnx(self, emit, node, inputs, ins):
        if emit.opset >= 18:
            return emit.add_node("Mish", inputs)
        # torch's mish uses softplus with its threshold 20 (x itself above it).
        soft = onnx_softplus(emit, inputs[0], ins[0], 1.0, 20.0)
        return emit.add_node("Mul", [inputs[0], emit.add_node("Tanh", [soft])[0]])
