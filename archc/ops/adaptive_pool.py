"""Adaptive average and max pooling to a fixed output size, with exactly PyTorch's bins.

For an input length L and output length O, output position i pools input positions
``floor(i * L / O)`` to ``ceil((i + 1) * L / O)`` (exclusive), as
``torch.nn.functional.adaptive_avg_pool2d`` does, for any L (bins may overlap or differ in
size). ONNX has no adaptive pooling: where the spatial sizes are known, the lowering emits
a global pool (O = 1), a plain pool (L divisible by O) or, in general, one slice and
reduction per output position along each axis. Averaging axis by axis is exact because
every row of a bin has as many elements; the maximum is separable anyway.
"""
from __future__ import annotations

import numpy as np

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, expand, expect_rank
from archc.ops.registry import register


def bins(length: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows: (start, end) of each of ``out`` positions over ``length``."""
    return [((i * length) // out, -((-(i + 1) * length) // out)) for i in range(out)]


class _AdaptivePool(OpDef):
    attrs = {"output_size": Attr("ints", 1, min=1, doc="spatial output size: one int for every spatial dim, or one per dim")}
    role = "pool"
    #: PyTorch function stem and the ONNX ops for each lowering path
    torch_stem: str = ""
    torch_module_stem: str = ""  # the nn class: AdaptiveAvgPool, then the rank
    onnx_global: str = ""
    onnx_window: str = ""
    onnx_reduce: str = ""

    def _size(self, node, x) -> tuple[int, ...]:
        expect_rank(x, (3, 4, 5), "(N, C, ...spatial)")
        size = expand(node.attrs["output_size"], x.rank - 2, "output_size")
        if any(o < 1 for o in size):
            raise ShapeError(f"output_size {list(size)} must be positive")
        return size

    def infer(self, node, ins):
        x = ins[0]
        return [x.with_shape((*x.shape[:2], *self._size(node, x)))]

    def torch_forward(self, node, ins, args, module):
        x = ins[0]
        size = self._size(node, x)
        arg = size[0] if len(set(size)) == 1 else size
        return f"F.{self.torch_stem}{x.rank - 2}d({args[0]}, {arg!r})"

    def torch_module_form(self, node, ins):
        x = ins[0]
        size = self._size(node, x)
        arg = size[0] if len(set(size)) == 1 else size
        return f"nn.{self.torch_module_stem}{x.rank - 2}d({arg!r})"

    def onnx(self, emit, node, inputs, ins):
        x = ins[0]
        size = self._size(node, x)
        if all(o == 1 for o in size):
            return emit.add_node(self.onnx_global, inputs)
        spatial = x.shape[2:]
        if not all(isinstance(d, int) for d in spatial):
            raise NotImplementedError(f"{self.name} to output_size {list(size)} needs known spatial sizes for "
                                      f"ONNX, got {x} (ONNX has no adaptive pooling)")
        if all(d % o == 0 for d, o in zip(spatial, size)):
            kernel = [d // o for d, o in zip(spatial, size)]
            return emit.add_node(self.onnx_window, inputs, kernel_shape=kernel, strides=kernel)
        value = inputs[0]
        for axis, (length, out) in enumerate(zip(spatial, size), start=2):
            if length == out:
                continue
            pieces = []
            for start, end in bins(length, out):
                starts = emit.const(np.array([start], dtype=np.int64), "start")
                ends = emit.const(np.array([end], dtype=np.int64), "end")
                axes = emit.const(np.array([axis], dtype=np.int64), "axis")
                piece = emit.add_node("Slice", [value, starts, ends, axes])[0]
                pieces.append(self._reduce(emit, piece, axis))
            value = emit.add_node("Concat", pieces, axis=axis)[0]
        return [value]

    def _reduce(self, emit, value: str, axis: int) -> str:
        if emit.opset >= 18:  # axes became an input in opset 18
            axes = emit.const(np.array([axis], dtype=np.int64), "axes")
            return emit.add_node(self.onnx_reduce, [value, axes], keepdims=1)[0]
        return emit.add_node(self.onnx_reduce, [value], axes=[axis], keepdims=1)[0]


@register
class AdaptiveAvgPool(_AdaptivePool):
    name = "adaptive_avgpool"
    aliases = ("adaptive_avgpool1d", "adaptive_avgpool2d", "adaptive_avgpool3d")
    doc = "Average pooling to a fixed output_size with PyTorch's bins (nn.AdaptiveAvgPool2d)."
    torch_stem, onnx_global, onnx_window, onnx_reduce = "adaptive_avg_pool", "GlobalAveragePool", "AveragePool", \
        "ReduceMean"
    torch_module_stem = "AdaptiveAvgPool"


@register
class AdaptiveMaxPool(_AdaptivePool):
    name = "adaptive_maxpool"
    aliases = ("adaptive_maxpool1d", "adaptive_maxpool2d", "adaptive_maxpool3d")
    doc = "Max pooling to a fixed output_size with PyTorch's bins (nn.AdaptiveMaxPool2d)."
    torch_stem, onnx_global, onnx_window, onnx_reduce = "adaptive_max_pool", "GlobalMaxPool", "MaxPool", "ReduceMax"
    torch_module_stem = "AdaptiveMaxPool"
