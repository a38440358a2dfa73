"""pow: x ** exponent for a constant exponent, element-wise."""
from __future__ import annotations

from archc.ops.activation import Activation, scalar
from archc.ops.base import Attr
from archc.ops.registry import register


@register
class Pow(Activation):
    name = "pow"
    aliases = ("power",)
    doc = "x ** exponent (a constant), element-wise: torch.pow, ONNX Pow."
    attrs = {"exponent": Attr("float", doc="the constant exponent, e.g. 2 or 0.5")}

    def torch_forward(self, node, ins, args, module):
        return f"torch.pow({args[0]}, {float(node.attrs['exponent'])!r})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Pow", [inputs[0], scalar(emit, node.attrs["exponent"], ins[0])])
