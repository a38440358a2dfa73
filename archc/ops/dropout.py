"""Regularisers that act only in training: dropout (the identity at inference)."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, py
from archc.ops.registry import register


@register
class Dropout(OpDef):
    name = "dropout"
    doc = "Zeroes elements with probability p while training; the identity at inference."
    attrs = {"p": Attr("float", 0.5, doc="probability of zeroing an element, 0 <= p < 1", min=0, below=1)}
    # An analysis sees it as the identity: archc builds inference graphs.
    role = "identity"

    def infer(self, node, ins):
        p = node.attrs["p"]
        if not 0.0 <= p < 1.0:
            raise ShapeError(f"dropout probability p={p} must satisfy 0 <= p < 1")
        return [ins[0]]

    def torch_module(self, node, ins):
        # A module (not F.dropout) so that model.train()/eval() switch it like in PyTorch.
        return f"nn.Dropout(p={py(node.attrs['p'])})"

    def onnx(self, emit, node, inputs, ins):
        # ONNX models are exported for inference, where dropout does nothing.
        return emit.add_node("Identity", inputs)
