"""Fully connected layers."""
from __future__ import annotations

import math

from archc.ops import weight_norm
from archc.ops.base import Attr, OpDef, ParamSpec, concrete, expect_float, numel, scale_output_units
from archc.ops.registry import register
from archc.errors import ShapeError


@register
class Linear(weight_norm.WeightNormable, OpDef):
    name = "linear"
    always_learned = True  # a weight whatever the sizes
    aliases = ("dense", "fc")
    doc = "y = x W^T + b over the last dim; in_features is inferred."
    inferred = {"in_features": "the input's last dim"}
    attrs = {"out_features": Attr("int", min=1), "bias": Attr("bool", True), "weight_norm": weight_norm.WEIGHT_NORM}
    role = "layer"
    feature_axis = -1

    def infer(self, node, ins):
        x = ins[0]
        if x.rank < 1:
            raise ShapeError(f"expected at least a 1-D input, got {x}")
        expect_float(x, "linear")  # (its float weight cannot multiply token ids: embed them first)
        concrete(x.shape[-1], "input features (last dim)")
        return [x.with_shape((*x.shape[:-1], node.attrs["out_features"]))]

    def params(self, node, ins):
        fin = ins[0].shape[-1]
        out = node.attrs["out_features"]
        bound = 1 / math.sqrt(fin)
        bias = ParamSpec((out,), "uniform", bound) if node.attrs["bias"] else None
        return weight_norm.layer_params(node, ParamSpec((out, fin), "uniform", bound), bias)

    def macs(self, node, ins, outs):
        return numel(outs[0]) * ins[0].shape[-1]

    def torch_module(self, node, ins):
        return weight_norm.torch_module(
            node, f"nn.Linear({ins[0].shape[-1]}, {node.attrs['out_features']}, bias={node.attrs['bias']})")

    def absorb_affine(self, node, weights, scale, shift, inplace=False):
        # A per-channel affine acts on axis 1, which is the feature axis only for 2-D outputs;
        # a weight-normed layer (kept where its weight is tied) has no weight to scale.
        if node.outputs[0].rank != 2 or node.attrs.get("weight_norm"):
            return None
        return scale_output_units(weights, scale, shift, inplace)

    def onnx(self, emit, node, inputs, ins):
        bias = node.attrs["bias"]
        weight = weight_norm.onnx_weight(emit, node, 2)
        if ins[0].rank == 2:
            args = [inputs[0], weight] + ([emit.param("bias")] if bias else [])
            return emit.add_node("Gemm", args, transB=1)
        wt = emit.add_node("Transpose", [weight], perm=[1, 0])[0]
        if not bias:
            return emit.add_node("MatMul", [inputs[0], wt])
        y = emit.add_node("MatMul", [inputs[0], wt], outputs=[emit.output_names()[0] + "_matmul"])[0]
        return emit.add_node("Add", [y, emit.param("bias")])
