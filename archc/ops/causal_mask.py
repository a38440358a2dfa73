"""causal_mask: attention scores with the future masked out (decoder self-attention)."""
from __future__ import annotations

import numpy as np

from archc.errors import ShapeError
from archc.ops.base import OpDef
from archc.ops.registry import register


@register
class CausalMask(OpDef):
    """Scores (..., S, T) with position j > i + (T - S) set to -inf (query i sees keys up to itself).

    PyTorch ``x.masked_fill(x.new_ones(S, T, dtype=bool).triu(T - S + 1), -inf)``; ONNX ``Where(Trilu(ones,
    k = T - S + 1, upper), -inf, x)``, the ones built from ``Shape(x)`` so S and T may be symbolic.
    Applied before the softmax it is the square subsequent mask of ``nn.Transformer``.
    """

    name = "causal_mask"
    doc = "Sets attention scores (..., S, T) above the causal diagonal to -inf (query i sees keys <= i)."
    role = "activation"  # element-wise on the scores, no learned weight

    def infer(self, node, ins):
        x = ins[0]
        if x.rank < 2 or not x.dtype.startswith("float"):
            raise ShapeError(f"expected floating-point scores (..., S, T) of at least 2 dims, got {x.dtype} {x}")
        return [x]

    def torch_forward(self, node, ins, args, module):
        x = args[0]
        # x.new_ones(...), not torch.ones(S, T, ...): torch.fx traces a method of the traced
        # tensor, not a factory function given sizes it cannot see
        mask = f"{x}.new_ones({x}.shape[-2:], dtype=torch.bool).triu({x}.shape[-1] - {x}.shape[-2] + 1)"
        return f'{x}.masked_fill({mask}, float("-inf"))'

    def onnx(self, emit, node, inputs, ins):
        x, t = inputs[0], ins[0]
        rank = t.rank
        size = emit.add_node("Shape", [x], start=rank - 2, end=rank)[0]  # [S, T]
        ones = emit.add_node("ConstantOfShape", [size], value=_tensor(np.array([1], dtype=np.int64)))[0]
        s = emit.add_node("Shape", [x], start=rank - 2, end=rank - 1)[0]
        tt = emit.add_node("Shape", [x], start=rank - 1, end=rank)[0]
        k = emit.add_node("Add", [emit.add_node("Sub", [tt, s])[0],
                                  emit.const(np.array([1], dtype=np.int64), "one")])[0]
        k0 = emit.add_node("Squeeze", [k, emit.const(np.array([0], dtype=np.int64), "axis")])[0]
        upper = emit.add_node("Trilu", [ones, k0], upper=1)[0]
        mask = emit.add_node("Cast", [upper], to=9)[0]  # BOOL
        neg_inf = emit.literal(np.array(-np.inf, dtype=t.dtype), "neg_inf")
        return emit.add_node("Where", [mask, neg_inf, x])


def _tensor(array: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(array)
