"""Ops that only rearrange data."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef
from archc.ops.registry import register


@register
class Flatten(OpDef):
    name = "flatten"
    doc = "Merges dims start_dim..end_dim into one (torch.flatten)."
    attrs = {"start_dim": Attr("int", 1), "end_dim": Attr("int", -1)}
    role = "reshape"

    def _range(self, node, x):
        r = x.rank
        start, end = node.attrs["start_dim"] % r if r else 0, node.attrs["end_dim"] % r if r else 0
        if start > end:
            raise ShapeError(f"start_dim {node.attrs['start_dim']} comes after end_dim {node.attrs['end_dim']}"
                             f" for a {r}-D input")
        return start, end

    def infer(self, node, ins):
        x = ins[0]
        start, end = self._range(node, x)
        merged: int | str = 1
        for d in x.shape[start:end + 1]:
            if not isinstance(d, int):
                if end > start:
                    raise ShapeError(f"cannot flatten symbolic dim '{d}' with others")
                merged = d
            else:
                merged = merged * d if isinstance(merged, int) else merged
        return [x.with_shape((*x.shape[:start], merged, *x.shape[end + 1:]))]

    def torch_forward(self, node, ins, args, module):
        return f"torch.flatten({args[0]}, {node.attrs['start_dim']}, {node.attrs['end_dim']})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        x = ins[0]
        start, end = self._range(node, x)
        if start == 1 and end == x.rank - 1:
            return emit.add_node("Flatten", inputs, axis=1)
        out = node.outputs[0].shape
        # 0 copies the input dim (keeps the symbolic batch), -1 takes what is left.
        target = [0 if i < start and not isinstance(d, int) else d for i, d in enumerate(out)]
        target = [d if isinstance(d, int) else -1 for d in target]
        return emit.add_node("Reshape", [inputs[0], emit.const(np.array(target, dtype=np.int64), "shape")])
