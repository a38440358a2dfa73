"""Cyclic shift of a tensor along dims (``torch.roll``): Swin Transformer's shifted windows.

Element ``i`` of a rolled dim of size ``n`` is element ``(i - shift) mod n`` of the input, so a
positive shift moves elements to higher indices and the last ones wrap to the front. ONNX has no
roll: each rolled dim is two slices concatenated in swapped order (``x[-s:]`` then ``x[:-s]``),
which needs ``0 < |s| < n``: a known size reduces the shift modulo ``n`` first (a whole turn is
the identity); a symbolic size is taken as larger than the shift.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import INT64_MAX, Attr, OpDef, checked_dim, py
from archc.ops.registry import register


@register
class Roll(OpDef):
    name = "roll"
    doc = "Cyclic shift along dims: torch.roll(x, shifts, dims); ONNX slices and a concat per dim."
    attrs = {
        "shifts": Attr("ints", doc="shift of each dim in 'dims' (negative: towards index 0)"),
        "dims": Attr("ints", doc="the dims to roll, one per shift (negative count from the end)"),
    }
    role = "reshape"  # moves elements, computes nothing

    def _pairs(self, node, x) -> list[tuple[int, int]]:
        """(dim, shift) per rolled dim, dims made non-negative."""
        shifts, dims = ([v] if isinstance(v, int) else list(v) for v in (node.attrs["shifts"], node.attrs["dims"]))
        if len(shifts) != len(dims):
            raise ShapeError(f"shifts {shifts} and dims {dims} must have the same length (one shift per dim)")
        pairs = []
        for dim, shift in zip(dims, shifts):
            pairs.append((checked_dim(dim, x), shift))
        if len({d for d, _ in pairs}) != len(pairs):
            raise ShapeError(f"dims {dims} name a dim twice")
        return pairs

    def infer(self, node, ins):
        self._pairs(node, ins[0])
        return [ins[0]]

    def torch_forward(self, node, ins, args, module):
        pairs = self._pairs(node, ins[0])
        return (f"torch.roll({args[0]}, shifts={py(tuple(s for _, s in pairs))}, "
                f"dims={py(tuple(d for d, _ in pairs))})")

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        def c(v, hint):
            return emit.const(np.array([v], dtype=np.int64), hint)

        x, value = ins[0], inputs[0]
        for dim, shift in self._pairs(node, x):
            size = x.shape[dim]
            if isinstance(size, int):
                shift %= size
            if shift == 0:
                continue
            tail = emit.add_node("Slice", [value, c(-shift, "starts"), c(INT64_MAX, "ends"), c(dim, "axes")])[0]
            head = emit.add_node("Slice", [value, c(0, "starts"), c(-shift, "ends"), c(dim, "axes")])[0]
            value = emit.add_node("Concat", [tail, head], axis=dim)[0]
        return emit.add_node("Identity", [value]) if value == inputs[0] else [value]
