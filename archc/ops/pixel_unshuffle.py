"""Pixel unshuffle, the inverse of :mod:`archc.ops.pixel_shuffle`: each ``r x r`` patch becomes
``r * r`` channels, (N, C, H * r, W * r) -> (N, C * r^2, H, W), as ``nn.PixelUnshuffle(r)``.

Output channel ``c * r^2 + i * r + j`` at ``[h, w]`` is input element ``[c, h * r + i, w * r + j]``.
ONNX's SpaceToDepth puts the patch offset outermost instead (channel ``(i * r + j) * C + c``, the
DCR order), which agrees with PyTorch only for one channel; so the ONNX lowering is what torch's
exporters write: Reshape to (N, C, H, r, W, r), Transpose to (N, C, r, r, H, W), Reshape to
(N, C * r^2, H, W), each reshape copying the batch (0) so that it may stay symbolic. (ONNX import
keeps that chain as the reshapes and permute it is: it is no one op's unambiguous spelling.)
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, py
from archc.ops.pixel_shuffle import image_dims
from archc.ops.registry import register


@register
class PixelUnshuffle(OpDef):
    name = "pixel_unshuffle"
    doc = ("Inverse of pixel_shuffle (N, C, H*r, W*r) -> (N, C*r^2, H, W), r = downscale_factor: "
           "nn.PixelUnshuffle.")
    attrs = {"downscale_factor": Attr("int", min=1, doc="r: each side shrinks r times; the channels grow r^2 times")}
    role = "reshape"  # moves elements, computes nothing

    def infer(self, node, ins):
        x, r = ins[0], node.attrs["downscale_factor"]
        channels, height, width = image_dims(self.name, x)
        if height % r or width % r:
            raise ShapeError(f"downscale_factor {r} needs a height and width divisible "
                             f"by {r}, got {height} x {width} in {x}")
        return [x.with_shape((x.shape[0], channels * r * r, height // r, width // r))]

    def torch_forward(self, node, ins, args, module):
        return f"F.pixel_unshuffle({args[0]}, {py(node.attrs['downscale_factor'])})"

    def torch_module_form(self, node, ins):
        return f"nn.PixelUnshuffle({py(node.attrs['downscale_factor'])})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        r = node.attrs["downscale_factor"]
        channels, height, width = image_dims(self.name, ins[0])
        patches = np.array([0, channels, height // r, r, width // r, r], dtype=np.int64)
        split = emit.add_node("Reshape", [inputs[0], emit.const(patches, "patches")])[0]
        moved = emit.add_node("Transpose", [split], perm=[0, 1, 3, 5, 2, 4])[0]
        stacked = np.array([0, channels * r * r, height // r, width // r], dtype=np.int64)
        return emit.add_node("Reshape", [moved, emit.const(stacked, "shape")])
