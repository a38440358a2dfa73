"""Normalisation layers."""
from __future__ import annotations

from archc.ops.base import Attr, OpDef, ParamSpec, concrete, expect_rank
from archc.ops.registry import register


@register
class BatchNorm(OpDef):
    name = "batchnorm"
    aliases = ("batchnorm1d", "batchnorm2d")
    doc = "Batch normalisation over channel dim 1 of (N, C), (N, C, L) or (N, C, H, W)."
    attrs = {"eps": Attr("float", 1e-5), "momentum": Attr("float", 0.1)}
    role = "norm"

    def infer(self, node, ins):
        expect_rank(ins[0], (2, 3, 4), "(N, C), (N, C, L) or (N, C, H, W)")
        concrete(ins[0].shape[1], "channels")
        return [ins[0]]

    def params(self, node, ins):
        c = ins[0].shape[1]
        return {
            "weight": ParamSpec((c,), "ones"),
            "bias": ParamSpec((c,), "zeros"),
            "running_mean": ParamSpec((c,), "zeros", buffer=True),
            "running_var": ParamSpec((c,), "ones", buffer=True),
            # Checkpoints written before PyTorch 0.4.1 (torchvision's ResNet weights) lack it.
            "num_batches_tracked": ParamSpec((), "zeros", dtype="int64", buffer=True, optional=True),
        }

    def torch_module(self, node, ins):
        dim = 2 if ins[0].rank == 4 else 1
        a = node.attrs
        return f"nn.BatchNorm{dim}d({ins[0].shape[1]}, eps={a['eps']!r}, momentum={a['momentum']!r})"

    def affine_params(self, node, weights):
        # In eval mode: y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel.
        import numpy as np

        scale = weights["weight"].astype(np.float64) / np.sqrt(
            weights["running_var"].astype(np.float64) + node.attrs["eps"])
        return scale, weights["bias"].astype(np.float64) - weights["running_mean"].astype(np.float64) * scale

    def onnx(self, emit, node, inputs, ins):
        args = [inputs[0]] + [emit.param(p) for p in ("weight", "bias", "running_mean", "running_var")]
        return emit.add_node("BatchNormalization", args, epsilon=float(node.attrs["eps"]),
                             momentum=1.0 - float(node.attrs["momentum"]))
