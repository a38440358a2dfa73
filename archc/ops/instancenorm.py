"""instancenorm: instance normalisation (Ulyanov et al. 2016), ``nn.InstanceNorm1d/2d/3d``.

Each channel of each sample is normalised over its own spatial positions (style transfer,
CycleGAN's and pix2pix's ResNet generators). The class follows the input's rank, as batchnorm's
does: (N, C, L) is ``InstanceNorm1d``, (N, C, H, W) ``InstanceNorm2d``, (N, C, D, H, W)
``InstanceNorm3d``. As in PyTorch, ``affine`` (a learned per-channel ``weight`` and ``bias``) and
``track_running_stats`` (buffers ``running_mean``, ``running_var``, ``num_batches_tracked``) are off
by default, so the state_dict keys are the module's and a reference module's loads strictly.

PyTorch: the ``nn.InstanceNorm{1,2,3}d`` module, written with the arguments that differ from its
defaults (``nn.InstanceNorm2d(64, affine=True)``, as CycleGAN's code writes it); where the channels
are symbolic (no affine, no tracking: nothing per channel is stored) ``F.instance_norm(x)``, since
the module needs a channel count.

ONNX: ``InstanceNormalization``, with the learned weight and bias, or scale ones and bias zeros as
``Constant`` literals without affine (an initializer would read back as a learned parameter; for
symbolic channels the literal 1 and 0 are expanded to ``Shape(x)[1:2]``). With
``track_running_stats`` PyTorch's eval mode normalises by the running statistics instead of the
instance's, a per-channel affine as batchnorm's: that is lowered as ONNX ``BatchNormalization``
(inference mode), and ``build --eval`` folds it into the layer before it as it folds batchnorm.
(In training mode the module uses the instance's statistics and updates the running ones; an
ONNX build, like batchnorm's, is the eval-mode function.)
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir.types import TensorType
from archc.ops.base import Attr, OnnxEmitter, OpDef, ParamSpec, concrete, expect_float, numel, py, torch_keywords
from archc.ops.norm import emit_batch_norm, running_stats_affine
from archc.ops.registry import register

#: PyTorch's defaults of nn.InstanceNorm*d's arguments after num_features, in its order: the
#: generated constructor writes only those that differ
_TORCH_DEFAULTS = {"eps": 1e-5, "momentum": 0.1, "affine": False, "track_running_stats": False}


@register
class InstanceNorm(OpDef):
    name = "instancenorm"
    aliases = ("instance_norm",)
    doc = "Normalises each channel of each sample over its positions (nn.InstanceNorm1d/2d/3d by the input's rank)."
    inferred = {"num_features": "the input's channels (dim 1)"}
    attrs = {
        "eps": Attr("float", 1e-5, min=0),
        "momentum": Attr("float", 0.1, min=0, max=1, doc="with track_running_stats, the new statistics' weight"),
        "affine": Attr("bool", False, doc="learn a per-channel weight and bias (PyTorch's default: no)"),
        "track_running_stats": Attr("bool", False, doc="keep running statistics, which eval mode normalises "
                                                       "by instead of the instance's (PyTorch's default: no)"),
    }
    role = "norm"
    feature_axis = 1

    def infer(self, node, ins):
        x, a = ins[0], node.attrs
        if x.rank not in (3, 4, 5):
            why = (": an (N, C) input has one value per sample and channel, nothing to normalise over "
                   "(batchnorm or layernorm normalise features)") if x.rank == 2 else ""
            raise ShapeError(f"expected a 3-D, 4-D or 5-D input (N, C, L), (N, C, H, W) or (N, C, D, H, W), "
                             f"got {x.rank}-D {x}{why}")
        expect_float(x, self.name)
        learned = [key for key in ("affine", "track_running_stats") if a[key]]
        if learned:
            concrete(x.shape[1], f"with {' and '.join(f'{key}: true' for key in learned)} (one value per "
                                 "channel), the channels (dim 1)")
        return [x]

    def params(self, node, ins):
        a, c = node.attrs, ins[0].shape[1]
        affine = {"weight": ParamSpec((c,), "ones"), "bias": ParamSpec((c,), "zeros")} if a["affine"] else {}
        if not a["track_running_stats"]:
            return affine
        return {
            **affine,
            "running_mean": ParamSpec((c,), "zeros", buffer=True),
            "running_var": ParamSpec((c,), "ones", buffer=True),
            # (optional as batchnorm's: PyTorch's own loader fills it in for older checkpoints)
            "num_batches_tracked": ParamSpec((), "zeros", dtype="int64", buffer=True, optional=True),
        }

    def macs(self, node, ins, outs):
        # Running statistics fold into a neighbour at inference, as batchnorm's (which counts 0); the
        # instance's own cannot (as group and layer norm): one multiply-add per element.
        return 0 if node.attrs["track_running_stats"] else numel(outs[0])

    def torch_module(self, node, ins):
        x = ins[0]
        if not isinstance(x.shape[1], int):
            return None  # (symbolic channels: F.instance_norm, see torch_forward)
        return f"nn.InstanceNorm{x.rank - 2}d({x.shape[1]}{torch_keywords(node, _TORCH_DEFAULTS)})"

    def torch_forward(self, node, ins, args, module):
        if module is not None:
            return super().torch_forward(node, ins, args, module)
        eps = node.attrs["eps"]
        return f"F.instance_norm({args[0]}" + ("" if eps == _TORCH_DEFAULTS["eps"] else f", eps={py(eps)}") + ")"

    def affine_params(self, node, weights):
        # in eval mode a norm by running statistics is a per-channel affine; by the instance's, not
        return running_stats_affine(node.attrs, weights) if node.attrs["track_running_stats"] else None

    def onnx(self, emit, node, inputs, ins):
        a, x = node.attrs, ins[0]
        if a["track_running_stats"]:  # eval mode: the running statistics, as batchnorm's
            return emit_batch_norm(emit, a, inputs[0], x)
        if a["affine"]:
            scale, bias = emit.param("weight"), emit.param("bias")
        else:
            scale, bias = (_per_channel(emit, inputs[0], x, value, hint) for value, hint in ((1, "scale"), (0, "bias")))
        return emit.add_node("InstanceNormalization", [inputs[0], scale, bias], epsilon=float(a["eps"]))


def _per_channel(emit: OnnxEmitter, x: str, t: TensorType, value: float, hint: str) -> str:
    """A literal (not learned) vector of ``value`` per channel of ``x``: a Constant node, or, where the
    channels are symbolic, a literal scalar expanded to the channel count read from ``Shape(x)``."""
    import numpy as np

    if isinstance(t.shape[1], int):
        return emit.literal(np.full(t.shape[1], value, dtype=t.dtype), hint)
    channels = emit.add_node("Shape", [x], start=1, end=2)[0]
    return emit.add_node("Expand", [emit.literal(np.array([value], dtype=t.dtype), hint), channels])[0]
