"""Channel shuffle (ShuffleNet, Zhang et al. 2018; ShuffleNet V2, Ma et al. 2018): the channels of
``groups`` groups interleaved, so that the next grouped conv (or channel split) mixes the groups.

Channel ``g * (C / groups) + k`` moves to ``k * groups + g``: torchvision's ``channel_shuffle``
(view as (N, groups, C / groups, ...), swap those two dims, flatten them again). PyTorch:
``x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)``, which traces, scripts and exports
(``F.channel_shuffle`` does not export to ONNX). ONNX: Reshape to (N, groups, C / groups, rest),
Transpose, Reshape to the input's own shape, so the batch and the spatial sizes may be symbolic.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, py
from archc.ops.registry import register


@register
class ChannelShuffle(OpDef):
    name = "channel_shuffle"
    doc = "Interleave the channels of 'groups' groups (ShuffleNet); torchvision's channel_shuffle."
    attrs = {"groups": Attr("int", min=1, doc="number of channel groups; divides the channels (dim 1)")}
    role = "reshape"  # moves channels, computes nothing

    def infer(self, node, ins):
        x, groups = ins[0], node.attrs["groups"]
        if x.rank < 2:
            raise ShapeError(f"channel_shuffle needs (N, C, ...), got {x}")
        channels = x.shape[1]
        if not isinstance(channels, int):
            raise ShapeError(f"channel_shuffle needs a known channel count (dim 1), got {x}")
        if channels % groups:
            raise ShapeError(f"{channels} channels do not divide into {groups} groups")
        return [x]

    def torch_forward(self, node, ins, args, module):
        return f"{args[0]}.unflatten(1, ({py(node.attrs['groups'])}, -1)).transpose(1, 2).flatten(1, 2)"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        groups, channels = node.attrs["groups"], ins[0].shape[1]
        grouped = np.array([0, groups, channels // groups, -1], dtype=np.int64)
        split = emit.add_node("Reshape", [inputs[0], emit.const(grouped, "groups")])[0]
        swapped = emit.add_node("Transpose", [split], perm=[0, 2, 1, 3])[0]
        shape = emit.add_node("Shape", [inputs[0]])[0]
        return emit.add_node("Reshape", [swapped, shape])
