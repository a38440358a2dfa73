"""amax: the maximum over dims, optionally keeping them as size 1 (``torch.amax(x, dims, keepdim)``,
``x.max(dim, keepdim=True)[0]``), beside ``mean`` and ``sum``; aliases ``reduce_max``, ``max``.

CBAM's channel attention pools each channel by its average and its maximum, its spatial attention
each position's channels alike (``torch.max(x, dim=1, keepdim=True)[0]``). ONNX: ReduceMax, whose
``axes`` became an input in opset 18. Role ``pool``, as ``mean``'s: a max pooling over the dims.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr
from archc.ops.elementwise import Reduction
from archc.ops.registry import register


@register
class Amax(Reduction):
    name = "amax"
    aliases = ("reduce_max", "max")
    doc = ("Maximum over the given dims, optionally keeping them as size 1: torch.amax (CBAM's max-pooled "
           "channels, x.max(dim=1, keepdim=True)[0]).")
    attrs = {
        "dims": Attr("ints", doc="the dim or dims to take the maximum over (negative counts from the end)"),
        "keepdim": Attr("bool", False, doc="keep the reduced dims with size 1"),
    }
    role = "pool"
    torch_method, onnx_op = "amax", "ReduceMax"  # (axes an input from opset 18)

    def arity_hint(self, given: list[str]) -> str | None:
        if len(given) > 1:
            return "'amax' reduces one tensor over its 'dims'; it takes one input"
        return None

    def infer(self, node, ins):
        x = ins[0]
        if x.dtype == "bool":
            raise ShapeError(f"amax expects a numeric input, got {x.dtype} {x}")
        return [x.with_shape(self.reduced_shape(node, x))]
