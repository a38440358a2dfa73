"""stack: tensors of one shape joined along a new dim (``torch.stack(tensors, dim)``).

The new dim is inserted at ``dim`` of the output, so ``dim`` runs from ``-(rank + 1)`` to ``rank``
for inputs of rank ``rank`` (``-1`` appends it last), and has one entry per input. ONNX has no
stack: each input is unsqueezed at the new dim (the axes an input from opset 13, an attribute
before) and the results concatenated along it, which is what both torch exporters write.

For the analyses a stack is a concatenation (role ``merge_concat``), not a data rearrangement of one
tensor: it joins several computed tensors, as ``concat`` does, and its labels are those of the
Unsqueeze + Concat it lowers to, so lint gives the same labels from a spec, from archc's ONNX and from
an exported model. (Its new axis holds neither features nor positions of the inputs: the
concat-of-positions rule, which compares a concat's axis with its inputs' feature axis, never
applies to a stack, as it never applies to a concat of unsqueezed values.)
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef
from archc.ops.registry import register


@register
class Stack(OpDef):
    name = "stack"
    doc = "Tensors of one shape stacked along a new dim: torch.stack; ONNX Unsqueeze each, then Concat."
    attrs = {"dim": Attr("int", 0, doc="where the new dim goes in the output: -(rank+1) <= dim <= rank")}
    inputs = ("a", "b")
    variadic = True
    min_inputs = 2
    role = "merge_concat"

    def _dim(self, node, ins) -> int:
        """The new dim counted from the front of the output; a ShapeError where the inputs' shapes or
        dtypes differ or ``dim`` is out of range."""
        first = ins[0]
        for i, t in enumerate(ins[1:], start=1):
            if t.shape != first.shape:
                raise ShapeError(f"input {i} has shape {t}, input 0 has shape {first}; stack needs inputs of one shape")
            if t.dtype != first.dtype:
                raise ShapeError(f"input {i} is {t.dtype}, input 0 is {first.dtype}; stack needs inputs of one dtype")
        dim, rank = node.attrs["dim"], first.rank
        if not -(rank + 1) <= dim <= rank:
            raise ShapeError(f"dim {dim} is out of range for stacking {rank}-D inputs {first}; expected "
                             f"{-(rank + 1)} <= dim <= {rank}")
        return dim % (rank + 1)

    def infer(self, node, ins):
        dim = self._dim(node, ins)
        shape = list(ins[0].shape)
        shape.insert(dim, len(ins))
        return [ins[0].with_shape(tuple(shape))]

    def torch_forward(self, node, ins, args, module):
        return f"torch.stack([{', '.join(args)}], dim={node.attrs['dim']})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        dim = self._dim(node, ins)
        if emit.opset >= 13:  # Unsqueeze's axes moved from an attribute to an input in opset 13
            axes = emit.const(np.array([dim], dtype=np.int64), "axes")
            parts = [emit.add_node("Unsqueeze", [x, axes])[0] for x in inputs]
        else:
            parts = [emit.add_node("Unsqueeze", [x], axes=[dim])[0] for x in inputs]
        return emit.add_node("Concat", parts, axis=dim)
