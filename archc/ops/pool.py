"""Pooling over spatial dimensions."""
from __future__ import annotations

import math

from archc.errors import ShapeError
from archc.ir.types import Dim, TensorType
from archc.ops.base import Attr, OpDef, concrete, expand, expect_rank, py, py_dims
from archc.ops.conv import conv_dim, conv_out, window
from archc.ops.registry import register


def pool_out(size: Dim, k: int, s: int, p: int, d: int, ceil: bool) -> Dim:
    """PyTorch's pooling length: with ceil_mode the last window must start inside the input. Of a
    symbolic size, the formula as an expression (:func:`conv_dim`); in ceil mode only where no last
    window can start in the padding (the kernel's extent reaches past padding + stride), since
    whether one does depends on the size."""
    extent = d * (k - 1) + 1
    if p > extent // 2:
        raise ShapeError(f"padding {p} must be at most {extent // 2}, half the kernel's extent {extent} "
                         "(as PyTorch's pooling requires)")
    if not isinstance(size, int):
        if ceil and extent - 1 < p + s - 1:
            raise ShapeError(f"ceil_mode over symbolic size '{size}' passes only where no window can start "
                             f"in the padding (kernel extent - 1 >= padding + stride - 1; here kernel extent "
                             f"{extent}, padding {p}, stride {s}); give the input a known size")
        return conv_dim(size, k, s, 2 * p, d, ceil)
    out = conv_out(size, k, s, 2 * p, d, ceil)
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


class _WindowPool(OpDef):
    attrs = {
        "kernel_size": Attr("ints", min=1),
        "stride": Attr("ints", None, doc="defaults to kernel_size", min=1),
        "padding": Attr("ints", 0, min=0),
        "ceil_mode": Attr("bool", False),
    }
    role = "pool"

    def _geometry(self, node, x):
        n, k, s, d = window(node, x)
        return n, k, s, expand(node.attrs["padding"], n, "padding"), d

    def infer(self, node, ins):
        x = ins[0]
        n, k, s, p, d = self._geometry(node, x)
        spatial = [pool_out(x.shape[2 + i], k[i], s[i], p[i], d[i], node.attrs["ceil_mode"]) for i in range(n)]
        return [x.with_shape((*x.shape[:2], *spatial))]

    def _onnx_attrs(self, node, x):
        n, k, s, p, d = self._geometry(node, x)
        return dict(kernel_shape=list(k), strides=list(s), pads=list(p) * 2,
                    ceil_mode=int(node.attrs["ceil_mode"])), n, k, s, p, d


@register
class MaxPool(_WindowPool):
    """Max pooling; with ``return_indices`` a second output ``indices`` (int64).

    ``indices`` follow PyTorch: the argmax's offset within its own (n, c) plane of
    the *input*, h * W + w (padding not counted), as ``max_unpool`` expects. ONNX
    MaxPool's indices count over the whole N x C x H x W tensor instead, so the ONNX
    lowering takes them modulo H * W.

    PyTorch's ``ceil_mode`` drops a last window that would start in the right
    padding; ONNX's shape inference does not (onnxruntime does), so in ceil mode the
    ONNX lowering pads the end explicitly to PyTorch's output size and uses floor mode.
    """

    name = "maxpool"
    aliases = ("maxpool1d", "maxpool2d")
    doc = "Max pooling over windows; with return_indices also the argmax positions (outputs y, indices)."
    attrs = {**_WindowPool.attrs, "dilation": Attr("ints", 1, min=1),
             "return_indices": Attr("bool", False, doc="also output the argmax indices, for max_unpool")}

    def output_names(self, node):
        return ("y", "indices") if node.attrs.get("return_indices") else ("y",)

    def infer(self, node, ins):
        y = super().infer(node, ins)[0]
        if node.attrs.get("return_indices"):
            return [y, TensorType(y.shape, "int64")]
        return [y]

    def torch_forward(self, node, ins, args, module):
        n, k, s, p, d = self._geometry(node, ins[0])
        indices = ", return_indices=True" if node.attrs.get("return_indices") else ""
        return (f"F.max_pool{n}d({args[0]}, kernel_size={py_dims(k)}, stride={py_dims(s)}, padding={py_dims(p)}, "
                f"dilation={py_dims(d)}, ceil_mode={node.attrs['ceil_mode']}{indices})")

    def torch_module_form(self, node, ins):
        if node.attrs.get("return_indices"):
            return None  # two outputs: no link of a chain
        n, k, s, p, d = self._geometry(node, ins[0])
        return (f"nn.MaxPool{n}d(kernel_size={py_dims(k)}, stride={py_dims(s)}, padding={py_dims(p)}, "
                f"dilation={py_dims(d)}, ceil_mode={node.attrs['ceil_mode']})")

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        x = ins[0]
        attrs, n, k, s, p, d = self._onnx_attrs(node, x)
        known = all(isinstance(v, int) for v in x.shape[2:])
        if node.attrs["ceil_mode"] and known:  # (a symbolic size keeps ceil_mode: no window starts in the padding)
            out = node.outputs[0].shape[2:]
            ends = [max(p[i], (out[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - x.shape[2 + i] - p[i])
                    for i in range(n)]
            # onnxruntime rejects a pad as large as the kernel (possible only with dilation);
            # there keep ceil_mode, which onnxruntime computes like PyTorch.
            if all(e < kk for e, kk in zip(ends, k)):
                attrs.update(pads=list(p) + ends, ceil_mode=0)
        if not node.attrs.get("return_indices"):
            return emit.add_node("MaxPool", inputs, dilations=list(d), **attrs)
        y, flat = emit.add_node("MaxPool", inputs, outputs=2, dilations=list(d), **attrs)
        if known:
            plane = emit.const(np.array(math.prod(x.shape[2:]), dtype=np.int64), "plane")
        else:  # (the plane's size at run time: the product of the input's spatial dims)
            spatial = emit.add_node("Shape", [inputs[0]], start=2)[0]
            plane = emit.add_node("ReduceProd", [spatial], keepdims=0)[0]
        return [y, emit.add_node("Mod", [flat, plane])[0]]


@register
class AvgPool(_WindowPool):
    name = "avgpool"
    aliases = ("avgpool1d", "avgpool2d")
    doc = "Average pooling over windows."
    attrs = {**_WindowPool.attrs, "count_include_pad": Attr("bool", True)}

    def torch_forward(self, node, ins, args, module):
        n, k, s, p, d = self._geometry(node, ins[0])
        a = node.attrs
        return (f"F.avg_pool{n}d({args[0]}, kernel_size={py_dims(k)}, stride={py_dims(s)}, padding={py_dims(p)}, "
                f"ceil_mode={a['ceil_mode']}, count_include_pad={a['count_include_pad']})")

    def torch_module_form(self, node, ins):
        n, k, s, p, d = self._geometry(node, ins[0])
        a = node.attrs
        return (f"nn.AvgPool{n}d(kernel_size={py_dims(k)}, stride={py_dims(s)}, padding={py_dims(p)}, "
                f"ceil_mode={a['ceil_mode']}, count_include_pad={a['count_include_pad']})")

    def onnx(self, emit, node, inputs, ins):
        attrs, *_ = self._onnx_attrs(node, ins[0])
        return emit.add_node("AveragePool", inputs, count_include_pad=int(node.attrs["count_include_pad"]),
                             **attrs)


@register
class GlobalAvgPool(OpDef):
    name = "global_avgpool"
    doc = "Mean over all spatial dims, keeping them as size 1 (like AdaptiveAvgPool2d(1))."
    role = "pool"

    def infer(self, node, ins):
        expect_rank(ins[0], (3, 4, 5), "(N, C, ...spatial)")
        x = ins[0]
        return [x.with_shape((*x.shape[:2], *([1] * (x.rank - 2))))]

    def torch_forward(self, node, ins, args, module):
        rank = ins[0].rank
        dims = tuple(range(2, rank))
        return f"{args[0]}.mean(dim={py(dims)}, keepdim=True)"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("GlobalAveragePool", inputs)


@register
class MaxUnpool(OpDef):
    """Partial inverse of max pooling: scatters x into zeros at PyTorch-style indices.

    ``indices`` are those of ``maxpool`` with ``return_indices: true``: offsets within
    each (n, c) plane of the unpooled output. ONNX MaxUnpool wants offsets into the
    whole N x C x H x W output, so the ONNX lowering adds (n * C + c) * H * W, built
    at run time from the input's shape so a symbolic batch works. An explicit
    ``output_size`` becomes MaxUnpool's ``output_shape`` input.
    """

    name = "max_unpool"
    aliases = ("max_unpool1d", "max_unpool2d", "maxunpool")
    doc = "Inverse of max pooling: inputs x and maxpool's indices; output_size resolves odd sizes."
    inputs = ("x", "indices")
    attrs = {
        "kernel_size": Attr("ints", doc="the pooling's kernel size", min=1),
        "stride": Attr("ints", None, doc="the pooling's stride; defaults to kernel_size", min=1),
        "padding": Attr("ints", 0, doc="the pooling's padding", min=0),
        "output_size": Attr("ints", None, min=1, doc="spatial output size (e.g. the pooled input's odd size); "
                                              "default (in - 1) * stride - 2 * padding + kernel"),
    }
    role = "unpool"

    def _geometry(self, node, x):
        n, k, s, _ = window(node, x)
        a = node.attrs
        p = expand(a["padding"], n, "padding")
        default = [(concrete(x.shape[2 + i], "spatial size") - 1) * s[i] - 2 * p[i] + k[i] for i in range(n)]
        if a["output_size"] is None:
            size = default
        else:
            size = list(expand(a["output_size"], n, "output_size"))
            for i in range(n):
                if not default[i] - s[i] < size[i] < default[i] + s[i]:
                    raise ShapeError(f"output_size {size[i]} of spatial dim {i} must lie strictly between "
                                     f"{default[i] - s[i]} and {default[i] + s[i]} (default {default[i]})")
        if any(v < 1 for v in size):
            raise ShapeError(f"output size {size} must be positive")
        return n, k, s, p, tuple(size)

    def infer(self, node, ins):
        x, idx = ins
        if idx.shape != x.shape:
            raise ShapeError(f"indices {idx} must have the shape of x {x}")
        if idx.dtype != "int64":
            raise ShapeError(f"indices must be int64 (maxpool's indices output), got {idx.dtype}")
        concrete(x.shape[1], "channels")
        n, k, s, p, size = self._geometry(node, x)
        return [x.with_shape((*x.shape[:2], *size))]

    def torch_forward(self, node, ins, args, module):
        n, k, s, p, size = self._geometry(node, ins[0])
        # (the default size is what PyTorch computes from the input: written only where the spec sets one)
        given = f", output_size={py(size)}" if node.attrs["output_size"] is not None else ""
        return (f"F.max_unpool{n}d({args[0]}, {args[1]}, kernel_size={py_dims(k)}, stride={py_dims(s)}, "
                f"padding={py_dims(p)}{given})")

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        x = ins[0]
        n, k, s, p, size = self._geometry(node, x)
        channels = x.shape[1]

        def c(values, hint):
            return emit.const(np.array(values, dtype=np.int64), hint)

        # plane offsets (n * C + c) * prod(size), shaped (N, C, 1, ...) to broadcast over indices
        batch = emit.add_node("Shape", [inputs[0]], start=0, end=1)[0]
        planes = emit.add_node("Mul", [batch, c([channels], "channels")])[0]
        count = emit.add_node("Squeeze", [planes, c([0], "axes")])[0]
        rng = emit.add_node("Range", [c(0, "zero"), count, c(1, "one")])[0]
        offsets = emit.add_node("Mul", [rng, c(math.prod(size), "plane")])[0]
        offsets = emit.add_node("Reshape", [offsets, c([-1, channels] + [1] * n, "shape")])[0]
        flat = emit.add_node("Add", [inputs[1], offsets])[0]
        args = [inputs[0], flat]
        if node.attrs["output_size"] is not None:
            lead = emit.add_node("Shape", [inputs[0]], start=0, end=2)[0]
            args.append(emit.add_node("Concat", [lead, c(list(size), "size")], axis=0)[0])
        return emit.add_node("MaxUnpool", args, kernel_shape=list(k), strides=list(s), pads=list(p) * 2)
