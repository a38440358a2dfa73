"""sum: the sum over dims, optionally keeping them as size 1 (``torch.sum(x, dims, keepdim)``), beside
``mean`` (:class:`archc.ops.elementwise.Mean`); alias ``reduce_sum``.

Not to be confused with ``add``, which sums several *tensors* element-wise (ONNX's ``Sum`` node imports
as ``add``), nor with the expression language's ``sum([...])`` of numbers: ``op: sum`` reduces one
tensor over its own dims.

Types follow torch: a floating-point input sums in its dtype; an integer or boolean one sums to int64
(``torch.sum`` promotes them), so ONNX casts it to int64 first (ReduceSum has no boolean kernel, and
int32 would stay int32). ONNX: ReduceSum, whose ``axes`` became an input in opset 13 (ReduceMean's
only in 18). Role ``reduce`` (another reduction: not a pooling), the role an imported ReduceSum node
has always had, so importing ReduceSum as ``sum`` changes no label.
"""
from __future__ import annotations

from archc.ir.types import TensorType
from archc.ops.base import Attr
from archc.ops.elementwise import Reduction
from archc.ops.registry import register


@register
class Sum(Reduction):
    name = "sum"
    aliases = ("reduce_sum",)
    doc = "Sum over the given dims, optionally keeping them as size 1: torch.sum (integers sum to int64)."
    attrs = {
        "dims": Attr("ints", doc="the dim or dims to sum over (negative counts from the end)"),
        "keepdim": Attr("bool", False, doc="keep the reduced dims with size 1"),
    }
    role = "reduce"
    torch_method, onnx_op, axes_input_opset = "sum", "ReduceSum", 13  # (ReduceMean's axes only in 18)

    def arity_hint(self, given: list[str]) -> str | None:
        if len(given) > 1:
            return ("'sum' reduces one tensor over its 'dims'; to add tensors element-wise: "
                    f"op: add, in: [{', '.join(given)}]")
        return None

    def infer(self, node, ins):
        x = ins[0]
        dtype = x.dtype if x.dtype.startswith("float") else "int64"  # torch.sum's promotion
        return [TensorType(self.reduced_shape(node, x), dtype)]

    def onnx(self, emit, node, inputs, ins):
        from onnx import TensorProto

        x = inputs[0]
        if not ins[0].dtype.startswith("float") and ins[0].dtype != "int64":
            x = emit.add_node("Cast", [x], to=TensorProto.INT64)[0]
        return self.onnx_reduce(emit, node, x, ins)
