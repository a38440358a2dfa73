"""hardtanh: x clipped to [min_val, max_val], element-wise."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.activation import Activation, scalar
from archc.ops.base import Attr
from archc.ops.registry import register


@register
class Hardtanh(Activation):
    name = "hardtanh"
    doc = "x clipped to [min_val, max_val] (default [-1, 1]): torch.nn.functional.hardtanh, ONNX Clip."
    attrs = {"min_val": Attr("float", -1.0, doc="lower bound"), "max_val": Attr("float", 1.0, doc="upper bound")}

    def infer(self, node, ins):
        if node.attrs["min_val"] > node.attrs["max_val"]:
            raise ShapeError(f"min_val {node.attrs['min_val']} is above max_val {node.attrs['max_val']}")
        return super().infer(node, ins)

    def torch_forward(self, node, ins, args, module):
        a = node.attrs
        return f"F.hardtanh({args[0]}, min_val={float(a['min_val'])!r}, max_val={float(a['max_val'])!r})"

    def onnx(self, emit, node, inputs, ins):
        a, t = node.attrs, ins[0]
        return emit.add_node("Clip", [inputs[0], scalar(emit, a["min_val"], t), scalar(emit, a["max_val"], t)])
