"""Pixel shuffle (Shi et al. 2016, ESPCN's sub-pixel convolution): ``r * r`` channel groups become an
``r``-times finer grid, (N, C * r^2, H, W) -> (N, C, H * r, W * r), as ``nn.PixelShuffle(r)``.

Output element ``[n, c, h * r + i, w * r + j]`` is input element ``[n, c * r^2 + i * r + j, h, w]``:
each output channel's ``r * r`` sub-pixels are consecutive input channels. That is ONNX's
DepthToSpace in mode "CRD" (column, row, depth) exactly, which both of torch's ONNX exporters emit
for ``nn.PixelShuffle``; the default mode "DCR" takes the sub-pixels ``C`` channels apart instead
and is another permutation (imported as it is). PyTorch: ``F.pixel_shuffle``, which traces,
scripts and exports. The inverse is :mod:`archc.ops.pixel_unshuffle`.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir.types import TensorType
from archc.ops.base import Attr, OpDef, concrete, py
from archc.ops.registry import register


def image_dims(op: str, x: TensorType) -> tuple[int, int, int]:
    """(C, H, W) of a 4-D (N, C, H, W) input with known channels and spatial sizes; a ShapeError
    saying what ``op``'s input lacks otherwise. (Shared with pixel_unshuffle.)"""
    if x.rank != 4:
        raise ShapeError(f"expected a 4-D (N, C, H, W) input, got {x.rank}-D {x}")
    if not isinstance(x.shape[1], int):
        raise ShapeError(f"{op} needs a known channel count (dim 1), got {x}")
    return x.shape[1], concrete(x.shape[2], "the height (dim 2)"), concrete(x.shape[3], "the width (dim 3)")


@register
class PixelShuffle(OpDef):
    name = "pixel_shuffle"
    doc = ("Sub-pixel upsampling (N, C*r^2, H, W) -> (N, C, H*r, W*r), r = upscale_factor: nn.PixelShuffle, "
           "ONNX DepthToSpace mode CRD.")
    attrs = {"upscale_factor": Attr("int", min=1, doc="r: each side grows r times; the channels shrink r^2 times")}
    role = "reshape"  # moves elements, computes nothing

    def infer(self, node, ins):
        x, r = ins[0], node.attrs["upscale_factor"]
        channels, height, width = image_dims(self.name, x)
        if channels % (r * r):
            raise ShapeError(f"upscale_factor {r} needs channels divisible by "
                             f"{r}^2 = {r * r}, got {channels} in {x}")
        return [x.with_shape((x.shape[0], channels // (r * r), height * r, width * r))]

    def torch_forward(self, node, ins, args, module):
        return f"F.pixel_shuffle({args[0]}, {py(node.attrs['upscale_factor'])})"

    def torch_module_form(self, node, ins):
        return f"nn.PixelShuffle({py(node.attrs['upscale_factor'])})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("DepthToSpace", inputs, blocksize=node.attrs["upscale_factor"], mode="CRD")
