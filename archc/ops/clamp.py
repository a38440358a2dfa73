"""clamp: x limited to [min, max], either bound optional (min alone is max(x, min))."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.activation import Activation, scalar
from archc.ops.base import Attr
from archc.ops.registry import register


@register
class Clamp(Activation):
    name = "clamp"
    aliases = ("clip",)
    doc = "x limited to [min, max]; give one or both (min alone: max(x, min)): torch.clamp, ONNX Clip."
    attrs = {"min": Attr("float", None, doc="lower bound (none: unbounded)"),
             "max": Attr("float", None, doc="upper bound (none: unbounded)")}

    def infer(self, node, ins):
        lo, hi = node.attrs["min"], node.attrs["max"]
        if lo is None and hi is None:
            raise ShapeError("clamp needs 'min', 'max' or both")
        if lo is not None and hi is not None and lo > hi:
            raise ShapeError(f"min {lo} is above max {hi}")
        return super().infer(node, ins)

    def torch_forward(self, node, ins, args, module):
        bounds = [f"{k}={float(node.attrs[k])!r}" for k in ("min", "max") if node.attrs[k] is not None]
        return f"torch.clamp({args[0]}, {', '.join(bounds)})"

    def onnx(self, emit, node, inputs, ins):
        bounds = [scalar(emit, node.attrs[k], ins[0]) if node.attrs[k] is not None else "" for k in ("min", "max")]
        while bounds and not bounds[-1]:
            bounds.pop()
        return emit.add_node("Clip", [inputs[0], *bounds])
