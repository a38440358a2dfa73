"""positions: the position ids 0 .. S-1 of an input's dim (GPT-2's ``torch.arange(t)``).

A learned position table read as an ``nn.Embedding`` (nanoGPT's and Hugging Face's GPT-2
``wpe``, BERT's ``position_embeddings``) is an ``embedding`` of these ids, so its state_dict key is
``wpe.weight`` with shape (max_len, D), as those checkpoints have it. The ids depend on the
input's size only, never on its values: for the analyses they are a shape computation.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir.types import TensorType
from archc.ops.base import Attr, OpDef, checked_dim
from archc.ops.registry import register


@register
class Positions(OpDef):
    """``torch.arange(x.shape[dim])``; ONNX ``Range(0, Shape(x)[dim], 1)``, so the size may be symbolic."""

    name = "positions"
    aliases = ("position_ids", "arange")
    doc = "The int64 position ids 0 .. S-1 of the input's dim `dim` (S may be symbolic), e.g. for a position embedding."
    attrs = {"dim": Attr("int", 1, doc="the dim whose positions to number (negative counts from the end)")}
    role = "shape"

    def infer(self, node, ins):
        x = ins[0]
        if x.rank == 0:
            raise ShapeError(f"expected an input with at least one dim, got a scalar {x}")
        dim = checked_dim(node.attrs["dim"], x)
        return [TensorType((x.shape[dim],), "int64")]

    def torch_forward(self, node, ins, args, module):
        dim = checked_dim(node.attrs["dim"], ins[0])
        return f"torch.arange({args[0]}.shape[{dim}], device={args[0]}.device)"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        dim = checked_dim(node.attrs["dim"], ins[0])
        size = emit.add_node("Shape", inputs, start=dim, end=dim + 1)[0]
        scalar = emit.add_node("Squeeze", [size, emit.const(np.array([0], dtype=np.int64), "axis")])[0]
        return emit.add_node("Range", [emit.const(np.array(0, dtype=np.int64), "start"), scalar,
                                       emit.const(np.array(1, dtype=np.int64), "step")])
