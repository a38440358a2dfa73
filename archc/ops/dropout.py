"""Regularisers that act only in training: dropout (the identity at inference).

``channelwise: true`` zeroes whole channels instead of elements, as ``nn.Dropout1d``, ``nn.Dropout2d`` and
``nn.Dropout3d`` do (Tompson et al. 2015's spatial dropout; FCN's ``drop6``/``drop7``): one of them by the
input's rank, (N, C, L), (N, C, H, W) or (N, C, D, H, W). Either way the node holds no state and is the
identity in eval mode and in ONNX.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, py
from archc.ops.registry import register

#: the input ranks channel-wise dropout takes, (N, C, L) to (N, C, D, H, W): PyTorch's module of each
_CHANNELWISE = {3: "nn.Dropout1d", 4: "nn.Dropout2d", 5: "nn.Dropout3d"}


@register
class Dropout(OpDef):
    name = "dropout"
    doc = ("Zeroes elements (channelwise: whole channels, nn.Dropout1d/2d/3d) with probability p while "
           "training; the identity at inference.")
    attrs = {
        "p": Attr("float", 0.5, doc="probability of zeroing an element (a channel), 0 <= p < 1", min=0, below=1),
        "channelwise": Attr("bool", False, doc="zero whole channels (dim 1 of (N, C, ...)) rather than elements: "
                            "nn.Dropout1d, 2d or 3d by the input's rank, as FCN's nn.Dropout2d"),
    }
    spelled_with = {f"dropout{n}d": "channelwise: true" for n in (1, 2, 3)}
    # An analysis sees it as the identity: archc builds inference graphs.
    role = "identity"

    def infer(self, node, ins):
        p = node.attrs["p"]
        if not 0.0 <= p < 1.0:
            raise ShapeError(f"dropout probability p={p} must satisfy 0 <= p < 1")
        x = ins[0]
        if node.attrs["channelwise"] and x.rank not in _CHANNELWISE:
            raise ShapeError(f"channel-wise dropout zeroes whole channels of (N, C, L), (N, C, H, W) or (N, C, D, "
                             f"H, W) (nn.Dropout1d, 2d, 3d), got {x.rank}-D {x}; leave channelwise out to drop "
                             "elements")
        return [x]

    def torch_module(self, node, ins):
        # A module (not F.dropout) so that model.train()/eval() switch it like in PyTorch.
        module = _CHANNELWISE[ins[0].rank] if node.attrs["channelwise"] else "nn.Dropout"
        return f"{module}(p={py(node.attrs['p'])})"

    def onnx(self, emit, node, inputs, ins):
        # ONNX models are exported for inference, where dropout does nothing.
        return emit.add_node("Identity", inputs)
