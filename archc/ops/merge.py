"""Ops that merge several tensors: addition and concatenation."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir import dims
from archc.ops.base import Attr, OpDef, broadcast
from archc.ops.elementwise import VALUE_ATTR, ConstantOperand
from archc.ops.registry import register


@register
class Add(ConstantOperand):
    name = "add"
    doc = "Element-wise sum of two or more tensors (NumPy broadcasting); or x + value."
    attrs = {"value": VALUE_ATTR}
    inputs = ("a", "b")
    variadic = True
    role = "merge_add"
    symbol, onnx_op = "+", "Add"

    def infer(self, node, ins):
        if self.check_operands(node, ins):
            return [ins[0]]
        dtypes = {t.dtype for t in ins}
        if len(dtypes) > 1:
            raise ShapeError(f"inputs have different dtypes: {', '.join(sorted(dtypes))}")
        return [ins[0].with_shape(broadcast([t.shape for t in ins]))]

    def torch_forward(self, node, ins, args, module):
        if self.constant(node) is not None:
            return self.torch_constant(node, args[0])
        return " + ".join(args)

    def onnx(self, emit, node, inputs, ins):
        if self.constant(node) is not None:
            return self.onnx_constant(emit, node, inputs, ins)
        if len(inputs) == 2:
            return emit.add_node("Add", inputs)
        if ins[0].dtype.startswith("float"):
            return emit.add_node("Sum", inputs)
        total = inputs[0]  # (ONNX's Sum takes floating-point tensors only: integers add pairwise)
        for term in inputs[1:]:
            (total,) = emit.add_node("Add", [total, term])
        return [total]


@register
class Concat(OpDef):
    name = "concat"
    aliases = ("cat",)
    doc = "Concatenation along an axis (default 1, channels)."
    attrs = {"axis": Attr("int", 1)}
    inputs = ("a", "b")
    variadic = True
    min_inputs = 1
    role = "merge_concat"

    def infer(self, node, ins):
        rank = ins[0].rank
        axis = node.attrs["axis"]
        if not -rank <= axis < rank:
            raise ShapeError(f"axis {axis} is out of range for {rank}-D inputs")
        axis %= rank
        total: int | str = 0
        for i, t in enumerate(ins):
            if t.rank != rank:
                raise ShapeError(f"input {i} is {t.rank}-D {t}, expected {rank}-D like input 0 {ins[0]}")
            for d in range(rank):
                if d != axis and t.shape[d] != ins[0].shape[d] and not dims.agree(t.shape[d], ins[0].shape[d]):
                    sizes = "" if isinstance(t.shape[d], int) and isinstance(ins[0].shape[d], int) else \
                        f": {dims.mismatch(ins[0].shape[d], t.shape[d])}"
                    raise ShapeError(f"input {i} has shape {t}, which differs from input 0 {ins[0]} "
                                     f"outside the concat axis {axis}{sizes}")
            total = dims.add(total, t.shape[axis])
        shape = list(ins[0].shape)
        shape[axis] = total
        return [ins[0].with_shape(tuple(shape))]

    def torch_forward(self, node, ins, args, module):
        return f"torch.cat([{', '.join(args)}], dim={node.attrs['axis']})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Concat", inputs, axis=node.attrs["axis"])
