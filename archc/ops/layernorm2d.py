"""layernorm2d: layer normalisation over the channels of (N, C, H, W) at each position.

ConvNeXt's ``LayerNorm2d`` (torchvision, timm): ``nn.LayerNorm(C)`` applied to the channels-last
view, so its parameters are ``weight`` and ``bias`` of shape (C,) under the node's own name, as
one module of an ``nn.Sequential`` (``features.0.1.weight``). Written out as permute, layernorm,
permute in a block, the layernorm would sit one name level deeper (``features.0.1.ln.weight``)
and no torchvision or timm checkpoint would load.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, concrete, expect_rank, numel, py
from archc.ops.norm import emit_layer_norm, layer_norm_params
from archc.ops.registry import register

_CLASS = '''\
class LayerNorm2d(nn.LayerNorm):
    """nn.LayerNorm over the channels (dim 1) of (N, C, H, W): ConvNeXt's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
'''


@register
class LayerNorm2d(OpDef):
    """Channels-first layer norm; ONNX: Transpose to channels last, LayerNormalization, Transpose back."""

    name = "layernorm2d"
    aliases = ("layer_norm2d",)
    doc = "Layer norm over the channels (dim 1) of (N, C, H, W) at each position (ConvNeXt's LayerNorm2d)."
    inferred = {"normalized_shape": "the input's channels (dim 1)", "num_channels": "the input's channels (dim 1)"}
    attrs = {
        "eps": Attr("float", 1e-6, min=0, doc="torchvision's and timm's ConvNeXt default"),
        "elementwise_affine": Attr("bool", True, doc="learn a per-channel weight (and bias)"),
        "bias": Attr("bool", True, doc="with elementwise_affine, also learn a bias"),
    }
    role = "norm"
    feature_axis = 1
    torch_classes = {"LayerNorm2d": _CLASS}

    def infer(self, node, ins):
        x = ins[0]
        expect_rank(x, (4,), "(N, C, H, W)")
        if not x.dtype.startswith("float"):
            raise ShapeError(f"layernorm2d expects a floating-point input, got {x.dtype} {x}")
        concrete(x.shape[1], "channels")
        return [x]

    def macs(self, node, ins, outs):
        # per-position statistics cannot be folded into a neighbour: one multiply-add per element
        return numel(outs[0])

    def params(self, node, ins):
        return layer_norm_params(node.attrs, (ins[0].shape[1],))

    def torch_module(self, node, ins):
        a = node.attrs
        return (f"LayerNorm2d({ins[0].shape[1]}, eps={py(a['eps'])}, "
                f"elementwise_affine={a['elementwise_affine']}, bias={a['bias']})")

    def onnx(self, emit, node, inputs, ins):
        last = emit.add_node("Transpose", inputs, perm=[0, 2, 3, 1])[0]
        normed = emit_layer_norm(emit, node.attrs, last, (ins[0].shape[1],), ins[0].dtype, -1)[0]
        return emit.add_node("Transpose", [normed], perm=[0, 3, 1, 2])
