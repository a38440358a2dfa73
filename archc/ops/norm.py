"""Normalisation layers."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from archc.errors import ShapeError
from archc.ir.types import TensorType
from archc.ops.base import (Attr, OnnxEmitter, OpDef, ParamSpec, concrete, expect_float, expect_rank, numel, py,
                             torch_keywords)
from archc.ops.registry import register

if TYPE_CHECKING:
    import numpy as np

#: PyTorch's defaults of the norm modules' keyword arguments, in their order: a generated constructor
#: writes those that differ (``nn.BatchNorm2d(64)``, ``nn.GroupNorm(32, 256)``)
_BATCH_NORM_DEFAULTS = {"eps": 1e-5, "momentum": 0.1, "affine": True}
_LAYER_NORM_DEFAULTS = {"eps": 1e-5, "elementwise_affine": True, "bias": True}
_GROUP_NORM_DEFAULTS = {"eps": 1e-5, "affine": True}


@register
class BatchNorm(OpDef):
    name = "batchnorm"
    always_learned = True  # running statistics whatever the sizes and attributes
    aliases = ("batchnorm1d", "batchnorm2d")
    doc = "Batch normalisation over channel dim 1 of (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W)."
    inferred = {"num_features": "the input's channels (dim 1)"}
    attrs = {"eps": Attr("float", 1e-5, min=0), "momentum": Attr("float", 0.1, min=0, max=1),
             "affine": Attr("bool", True, doc="learn a per-channel weight and bias (false: running "
                                              "statistics only, as nn.BatchNorm2d(C, affine=False))")}
    role = "norm"
    feature_axis = 1

    def infer(self, node, ins):
        expect_rank(ins[0], (2, 3, 4, 5), "(N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W)")
        expect_float(ins[0], self.name)
        concrete(ins[0].shape[1], "channels")
        return [ins[0]]

    def params(self, node, ins):
        c = ins[0].shape[1]
        affine = {"weight": ParamSpec((c,), "ones"), "bias": ParamSpec((c,), "zeros")}
        return {
            **(affine if node.attrs["affine"] else {}),
            "running_mean": ParamSpec((c,), "zeros", buffer=True),
            "running_var": ParamSpec((c,), "ones", buffer=True),
            # Checkpoints written before PyTorch 0.4.1 (torchvision's ResNet weights) lack it.
            "num_batches_tracked": ParamSpec((), "zeros", dtype="int64", buffer=True, optional=True),
        }

    def torch_module(self, node, ins):
        dim = max(ins[0].rank - 2, 1)  # BatchNorm1d takes (N, C) and (N, C, L)
        return f"nn.BatchNorm{dim}d({ins[0].shape[1]}{torch_keywords(node, _BATCH_NORM_DEFAULTS)})"

    def affine_params(self, node, weights):
        return running_stats_affine(node.attrs, weights)

    def onnx(self, emit, node, inputs, ins):
        return emit_batch_norm(emit, node.attrs, inputs[0], ins[0])


def running_stats_affine(attrs: dict, weights: Mapping[str, "np.ndarray"]) -> tuple["np.ndarray", "np.ndarray"]:
    """``(scale, shift)`` per channel of a norm that in eval mode normalises by its running statistics
    (batchnorm; instancenorm with track_running_stats): y = (x - mean) / sqrt(var + eps) * gamma + beta,
    gamma 1 and beta 0 where ``attrs['affine']`` is false."""
    import numpy as np

    scale = 1.0 / np.sqrt(weights["running_var"].astype(np.float64) + attrs["eps"])
    if attrs["affine"]:
        scale = weights["weight"].astype(np.float64) * scale
    shift = -weights["running_mean"].astype(np.float64) * scale
    if attrs["affine"]:
        shift = shift + weights["bias"].astype(np.float64)
    return scale, shift


def emit_batch_norm(emit: OnnxEmitter, attrs: dict, x: str, t: TensorType) -> list[str]:
    """ONNX BatchNormalization (inference mode) of ``x`` of type ``t`` by the node's running statistics,
    with its learned weight and bias where ``attrs['affine']``, else literal ones and zeros (the op needs
    a scale and bias; an initializer would read as a learned parameter). ``attrs['momentum']`` is
    PyTorch's (the new batch's weight); ONNX's weighs the running statistic."""
    import numpy as np

    if attrs["affine"]:
        affine = [emit.param("weight"), emit.param("bias")]
    else:
        affine = [emit.literal(np.full(t.shape[1], value, dtype=t.dtype), hint)
                  for value, hint in ((1, "scale"), (0, "bias"))]
    args = [x, *affine, emit.param("running_mean"), emit.param("running_var")]
    return emit.add_node("BatchNormalization", args, epsilon=float(attrs["eps"]),
                         momentum=1.0 - float(attrs["momentum"]))


@register
class LayerNorm(OpDef):
    """Layer normalisation over the last ``dims`` dims (nn.LayerNorm); ONNX LayerNormalization (opset 17)."""

    name = "layernorm"
    aliases = ("layer_norm",)
    doc = "Normalises over the last `dims` dims (nn.LayerNorm), with a learned scale and shift."
    inferred = {"normalized_shape": "the input's last 'dims' dims"}
    attrs = {
        "dims": Attr("int", 1, doc="how many trailing dims form normalized_shape", min=1),
        "eps": Attr("float", 1e-5, min=0),
        "elementwise_affine": Attr("bool", True, doc="learn a per-element weight (and bias)"),
        "bias": Attr("bool", True, doc="with elementwise_affine, also learn a bias"),
    }
    role = "norm"
    feature_axis = -1

    def _shape(self, node, x) -> tuple[int, ...]:
        k = node.attrs["dims"]
        if not 1 <= k <= x.rank:
            raise ShapeError(f"dims={k} must be between 1 and the input's rank {x.rank} ({x})")
        return tuple(concrete(d, "a normalised dim") for d in x.shape[x.rank - k:])

    def infer(self, node, ins):
        if not ins[0].dtype.startswith("float"):
            raise ShapeError(f"layernorm expects a floating-point input, got {ins[0].dtype} {ins[0]}")
        self._shape(node, ins[0])
        return [ins[0]]

    def macs(self, node, ins, outs):
        # per-sample statistics cannot be folded into a neighbour (batchnorm's can, so it counts 0):
        # one multiply-add per element to normalise and scale
        return numel(outs[0])

    def params(self, node, ins):
        return layer_norm_params(node.attrs, self._shape(node, ins[0]))

    def torch_module(self, node, ins):
        return f"nn.LayerNorm({py(self._shape(node, ins[0]))}{torch_keywords(node, _LAYER_NORM_DEFAULTS)})"

    def onnx(self, emit, node, inputs, ins):
        return emit_layer_norm(emit, node.attrs, inputs[0], self._shape(node, ins[0]), ins[0].dtype, -node.attrs["dims"])


def layer_norm_params(attrs: dict, shape: tuple[int, ...]) -> dict[str, ParamSpec]:
    """A layer norm's parameters over ``shape`` (weight, and bias where ``attrs['bias']``); none
    without ``attrs['elementwise_affine']``."""
    if not attrs["elementwise_affine"]:
        return {}
    return {"weight": ParamSpec(shape, "ones"), **({"bias": ParamSpec(shape, "zeros")} if attrs["bias"] else {})}


def emit_layer_norm(emit, attrs: dict, x: str, shape: tuple[int, ...], dtype: str, axis: int) -> list[str]:
    """ONNX LayerNormalization of ``x`` from ``axis`` on, over ``shape``, with the node's learned
    weight and bias, or a literal scale of ones where it learns none (the op requires a scale; an
    initializer would read as a learned parameter)."""
    import numpy as np

    if attrs["elementwise_affine"]:
        args = [x, emit.param("weight")] + ([emit.param("bias")] if attrs["bias"] else [])
    else:
        args = [x, emit.literal(np.ones(shape, dtype=dtype), "scale")]
    return emit.add_node("LayerNormalization", args, axis=axis, epsilon=float(attrs["eps"]))


@register
class GroupNorm(OpDef):
    """Group normalisation (nn.GroupNorm) over (N, C, ...).

    ONNX lowering for opset 17, which has no GroupNormalization: reshape to
    (N, G, -1), InstanceNormalization with unit scale per group, reshape back to
    the input's shape, then the per-channel affine (Mul, Add).
    """

    name = "groupnorm"
    aliases = ("group_norm",)
    doc = "Normalises groups of channels of (N, C, ...) (nn.GroupNorm), with per-channel scale and shift."
    inferred = {"num_channels": "the input's channels (dim 1)"}
    attrs = {
        "num_groups": Attr("int", doc="number of channel groups; must divide the channels", min=1),
        "eps": Attr("float", 1e-5, min=0),
        "affine": Attr("bool", True, doc="learn a per-channel weight and bias"),
    }
    role = "norm"
    feature_axis = 1

    def infer(self, node, ins):
        x = ins[0]
        if x.rank < 2:
            raise ShapeError(f"expected an input (N, C, ...) of at least 2 dims, got {x}")
        c = concrete(x.shape[1], "channels")
        g = node.attrs["num_groups"]
        if g < 1 or c % g:
            raise ShapeError(f"num_groups={g} must divide the number of channels {c}")
        return [x]

    def macs(self, node, ins, outs):
        # per-sample statistics cannot be folded into a neighbour (batchnorm's can, so it counts 0):
        # one multiply-add per element to normalise and scale
        return numel(outs[0])

    def params(self, node, ins):
        if not node.attrs["affine"]:
            return {}
        c = ins[0].shape[1]
        return {"weight": ParamSpec((c,), "ones"), "bias": ParamSpec((c,), "zeros")}

    def torch_module(self, node, ins):
        groups = node.attrs["num_groups"]
        return f"nn.GroupNorm({groups}, {ins[0].shape[1]}{torch_keywords(node, _GROUP_NORM_DEFAULTS)})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        x, a = ins[0], node.attrs
        g = a["num_groups"]
        grouped = emit.add_node("Reshape", [inputs[0], emit.const(np.array([0, g, -1], dtype=np.int64), "shape")])[0]
        # unit scale and zero shift per group: literals, not parameters (the affine is per channel)
        normed = emit.add_node("InstanceNormalization", [grouped, emit.literal(np.ones(g, dtype=x.dtype), "ones"),
                                                         emit.literal(np.zeros(g, dtype=x.dtype), "zeros")],
                               epsilon=float(a["eps"]))[0]
        shape = emit.add_node("Shape", inputs)[0]
        if not a["affine"]:
            return emit.add_node("Reshape", [normed, shape])
        y = emit.add_node("Reshape", [normed, shape])[0]
        per_channel = emit.const(np.array([-1] + [1] * (x.rank - 2), dtype=np.int64), "shape")
        w = emit.add_node("Reshape", [emit.param("weight"), per_channel])[0]
        b = emit.add_node("Reshape", [emit.param("bias"), per_channel])[0]
        return emit.add_node("Add", [emit.add_node("Mul", [y, w])[0], b])
