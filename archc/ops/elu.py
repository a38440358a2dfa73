"""elu: x for x > 0, alpha (exp(x) - 1) otherwise, element-wise."""
from __future__ import annotations

from archc.ops.activation import Activation
from archc.ops.base import Attr
from archc.ops.registry import register


@register
class Elu(Activation):
    name = "elu"
    doc = "x if x > 0 else alpha (exp(x) - 1): torch.nn.functional.elu, ONNX Elu."
    attrs = {"alpha": Attr("float", 1.0, doc="scale of the negative part")}

    def torch_forward(self, node, ins, args, module):
        return f"F.elu({args[0]}, alpha={float(node.attrs['alpha'])!r})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Elu", inputs, alpha=float(node.attrs["alpha"]))
