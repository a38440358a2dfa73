"""Pooling over spatial dimensions."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, concrete, expand, expect_rank, py
from archc.ops.conv import conv_out
from archc.ops.registry import register


def pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's pooling length: with ceil_mode the last window must start inside the input."""
    if p > (d * (k - 1) + 1) // 2:
        raise ShapeError(f"padding {p} must be at most half the kernel's extent {d * (k - 1) + 1}")
    out = conv_out(size, k, s, 2 * p, d, ceil)
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


class _WindowPool(OpDef):
    attrs = {
        "kernel_size": Attr("ints"),
        "stride": Attr("ints", None, doc="defaults to kernel_size"),
        "padding": Attr("ints", 0),
        "ceil_mode": Attr("bool", False),
    }
    role = "pool"

    def _geometry(self, node, x):
        expect_rank(x, (3, 4), "(N, C, L) or (N, C, H, W)")
        n = x.rank - 2
        a = node.attrs
        k = expand(a["kernel_size"], n, "kernel_size")
        s = expand(a["stride"] if a["stride"] is not None else k, n, "stride")
        p = expand(a["padding"], n, "padding")
        d = expand(a.get("dilation", 1), n, "dilation")
        return n, k, s, p, d

    def infer(self, node, ins):
        x = ins[0]
        n, k, s, p, d = self._geometry(node, x)
        spatial = [pool_out(concrete(x.shape[2 + i], "spatial size"), k[i], s[i], p[i], d[i],
                            node.attrs["ceil_mode"]) for i in range(n)]
        return [x.with_shape((*x.shape[:2], *spatial))]

    def _onnx_attrs(self, node, x):
        n, k, s, p, d = self._geometry(node, x)
        return dict(kernel_shape=list(k), strides=list(s), pads=list(p) * 2,
                    ceil_mode=int(node.attrs["ceil_mode"])), n, k, s, p, d


@register
class MaxPool(_WindowPool):
    name = "maxpool"
    aliases = ("maxpool1d", "maxpool2d")
    doc = "Max pooling over windows."
    attrs = {**_WindowPool.attrs, "dilation": Attr("ints", 1)}

    def torch_forward(self, node, ins, args, module):
        n, k, s, p, d = self._geometry(node, ins[0])
        return (f"F.max_pool{n}d({args[0]}, kernel_size={py(k)}, stride={py(s)}, padding={py(p)}, "
                f"dilation={py(d)}, ceil_mode={node.attrs['ceil_mode']})")

    def onnx(self, emit, node, inputs, ins):
        attrs, n, k, s, p, d = self._onnx_attrs(node, ins[0])
        return emit.add_node("MaxPool", inputs, dilations=list(d), **attrs)


@register
class AvgPool(_WindowPool):
    name = "avgpool"
    aliases = ("avgpool1d", "avgpool2d")
    doc = "Average pooling over windows."
    attrs = {**_WindowPool.attrs, "count_include_pad": Attr("bool", True)}

    def torch_forward(self, node, ins, args, module):
        n, k, s, p, d = self._geometry(node, ins[0])
        a = node.attrs
        return (f"F.avg_pool{n}d({args[0]}, kernel_size={py(k)}, stride={py(s)}, padding={py(p)}, "
                f"ceil_mode={a['ceil_mode']}, count_include_pad={a['count_include_pad']})")

    def onnx(self, emit, node, inputs, ins):
        attrs, *_ = self._onnx_attrs(node, ins[0])
        return emit.add_node("AveragePool", inputs, count_include_pad=int(node.attrs["count_include_pad"]),
                             **attrs)


@register
class GlobalAvgPool(OpDef):
    name = "global_avgpool"
    aliases = ("adaptive_avgpool",)
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
