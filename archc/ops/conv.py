"""Convolutions over 1-D and 2-D inputs (rank picked from the input)."""
from __future__ import annotations

import math

from archc.errors import ShapeError
from archc.ops.base import (Attr, OpDef, ParamSpec, concrete, expand, expect_float, expect_rank, numel, py,
                             py_dims, scale_output_units, torch_keywords)
from archc.ir import dims
from archc.ir.types import Dim
from archc.ops import weight_norm
from archc.ops.registry import register


def conv_out(size: int, kernel: int, stride: int, pad_total: int, dilation: int, ceil: bool = False) -> int:
    """Output length of a sliding window (PyTorch's formula)."""
    span = size + pad_total - dilation * (kernel - 1) - 1
    if span < 0:
        raise ShapeError(f"input size {size} is smaller than the kernel's extent {dilation * (kernel - 1) + 1}"
                         f" (with padding {pad_total})")
    return (math.ceil(span / stride) if ceil else span // stride) + 1


def conv_dim(size: Dim, kernel: int, stride: int, pad_total: int, dilation: int, ceil: bool = False) -> Dim:
    """Output length of a sliding window along one spatial dim: :func:`conv_out` of a known size; of a
    symbolic size (``H``, ``T`` steps) the same formula as an expression (``(H + 1)//2``), the size
    taken as long as the kernel's extent (:mod:`archc.ir.dims`)."""
    if isinstance(size, int):
        return conv_out(size, kernel, stride, pad_total, dilation, ceil)
    span = dims.add(size, pad_total - dilation * (kernel - 1) - 1)
    return dims.add(dims.ceildiv(span, stride) if ceil else dims.floordiv(span, stride), 1)


def window(node, x) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(spatial rank, kernel, stride, dilation) of a sliding-window op on an (N, C, L) or
    (N, C, H, W) input; a missing stride defaults to the kernel (pooling), a missing
    dilation to 1."""
    expect_rank(x, (3, 4), "(N, C, L) or (N, C, H, W)")
    n = x.rank - 2
    a = node.attrs
    k = expand(a["kernel_size"], n, "kernel_size")
    s = expand(a["stride"] if a.get("stride") is not None else k, n, "stride")
    d = expand(a.get("dilation", 1), n, "dilation")
    return n, k, s, d


def same_pads(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """PyTorch's padding='same' for stride 1: extra padding goes at the end."""
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


@register
class Conv(weight_norm.WeightNormable, OpDef):
    name = "conv"
    always_learned = True  # a weight whatever the sizes
    aliases = ("conv1d", "conv2d")
    doc = "Convolution (N, C, L) or (N, C, H, W); in_channels is inferred."
    inferred = {"in_channels": "the input's channels (dim 1)"}
    attrs = {
        "out_channels": Attr("int", doc="number of output channels", min=1),
        "kernel_size": Attr("ints", doc="kernel size, an int or one per spatial dim", min=1),
        "stride": Attr("ints", 1, min=1),
        "padding": Attr("int_or_str", 0, choices=("same", "valid"), min=0),
        "dilation": Attr("ints", 1, min=1),
        "groups": Attr("int", 1, min=1),
        "bias": Attr("bool", True),
        "weight_norm": weight_norm.WEIGHT_NORM,
    }
    role = "layer"
    feature_axis = 1

    def _geometry(self, node, x):
        n, k, s, d = window(node, x)
        a = node.attrs
        if a["padding"] == "same":
            if any(v != 1 for v in s):
                raise ShapeError("padding 'same' needs stride 1")
            pads = same_pads(k, d)
        elif a["padding"] == "valid":
            pads = ((0, 0),) * n
        else:
            pads = tuple((p, p) for p in expand(a["padding"], n, "padding"))
        return n, k, s, d, pads

    def infer(self, node, ins):
        x = ins[0]
        expect_float(x, self.name)
        n, k, s, d, pads = self._geometry(node, x)
        a = node.attrs
        cin = concrete(x.shape[1], "input channels")
        if a["groups"] < 1 or cin % a["groups"] or a["out_channels"] % a["groups"]:
            raise ShapeError(f"groups={a['groups']} must divide in_channels ({cin}) and "
                             f"out_channels ({a['out_channels']})")
        spatial = [conv_dim(x.shape[2 + i], k[i], s[i], sum(pads[i]), d[i]) for i in range(n)]
        return [x.with_shape((x.shape[0], a["out_channels"], *spatial))]

    def params(self, node, ins):
        x = ins[0]
        n, k, *_ = self._geometry(node, x)
        a = node.attrs
        cin = x.shape[1] // a["groups"]
        fan_in = cin * math.prod(k)
        bound = 1 / math.sqrt(fan_in)
        bias = ParamSpec((a["out_channels"],), "uniform", bound) if a["bias"] else None
        return weight_norm.layer_params(node, ParamSpec((a["out_channels"], cin, *k), "uniform", bound), bias)

    def macs(self, node, ins, outs):
        # every output element: one product per input channel of its group and kernel tap
        _, k, *_ = self._geometry(node, ins[0])
        return numel(outs[0]) * (ins[0].shape[1] // node.attrs["groups"]) * math.prod(k)

    def torch_module(self, node, ins):
        x = ins[0]
        n, k, s, d, pads = self._geometry(node, x)
        a = node.attrs
        if a["padding"] in ("same", "valid"):
            padding = py(a["padding"])
        else:
            padding = py_dims(tuple(p for p, _ in pads))
        # dilation and groups only where they are not PyTorch's default 1 (most convs), as people write it
        extra = torch_keywords(node, {"dilation": 1, "groups": 1}, {"dilation": py_dims(d)})
        return weight_norm.torch_module(node, (
            f"nn.Conv{n}d({x.shape[1]}, {a['out_channels']}, kernel_size={py_dims(k)}, stride={py_dims(s)}, "
            f"padding={padding}{extra}, bias={a['bias']})"))

    def absorb_affine(self, node, weights, scale, shift, inplace=False):
        # Output channels are axis 1 of the output and the first axis of the weight (a weight-normed
        # conv, kept where its weight is tied, has none to scale).
        if node.attrs.get("weight_norm"):
            return None
        return scale_output_units(weights, scale, shift, inplace)

    def onnx(self, emit, node, inputs, ins):
        n, k, s, d, pads = self._geometry(node, ins[0])
        args = [inputs[0], weight_norm.onnx_weight(emit, node, n + 2)]
        if node.attrs["bias"]:
            args.append(emit.param("bias"))
        return emit.add_node("Conv", args, kernel_shape=list(k), strides=list(s), dilations=list(d),
                             pads=[p for p, _ in pads] + [q for _, q in pads], group=node.attrs["groups"])


def conv_transpose_out(size: Dim, kernel: int, stride: int, pad: int, dilation: int, output_padding: int) -> Dim:
    """Output length of a transposed convolution (PyTorch's and ONNX's formula); of a symbolic size the
    same formula as an expression (``H*2``: :mod:`archc.ir.dims`)."""
    out = dims.add(dims.mul(dims.sub(size, 1), stride), dilation * (kernel - 1) + output_padding + 1 - 2 * pad)
    if isinstance(out, int) and out < 1:
        raise ShapeError(f"input size {size} gives an empty output (kernel {kernel}, stride {stride}, "
                         f"padding {pad})")
    return out


@register
class ConvTranspose(weight_norm.WeightNormable, OpDef):
    name = "conv_transpose"
    always_learned = True  # a weight whatever the sizes
    aliases = ("conv_transpose1d", "conv_transpose2d", "deconv")
    doc = ("Transposed convolution (N, C, L) or (N, C, H, W), the gradient of conv; in_channels is "
           "inferred. Weight layout (in_channels, out_channels / groups, *kernel) as PyTorch's.")
    inferred = {"in_channels": "the input's channels (dim 1)"}
    attrs = {
        "out_channels": Attr("int", doc="number of output channels", min=1),
        "kernel_size": Attr("ints", doc="kernel size, an int or one per spatial dim", min=1),
        "stride": Attr("ints", 1, min=1),
        "padding": Attr("ints", 0, min=0, doc="removed from both ends of the output: dilation*(k-1)-padding "
                                       "zero-padding of the input"),
        "output_padding": Attr("ints", 0, min=0, doc="extra size added at the end of each output dim "
                                              "(less than stride or dilation)"),
        "groups": Attr("int", 1, min=1),
        "dilation": Attr("ints", 1, min=1),
        "bias": Attr("bool", True),
        "weight_norm": weight_norm.WEIGHT_NORM,
    }
    role = "layer"
    feature_axis = 1

    def _geometry(self, node, x):
        n, k, s, d = window(node, x)
        a = node.attrs
        p = expand(a["padding"], n, "padding")
        op = expand(a["output_padding"], n, "output_padding")
        for i in range(n):
            if op[i] >= max(s[i], d[i]) or op[i] < 0:
                raise ShapeError(f"output_padding {op[i]} must be smaller than stride ({s[i]}) or dilation "
                                 f"({d[i]})")
        return n, k, s, d, p, op

    def infer(self, node, ins):
        x = ins[0]
        expect_float(x, self.name)
        n, k, s, d, p, op = self._geometry(node, x)
        a = node.attrs
        cin = concrete(x.shape[1], "input channels")
        if a["groups"] < 1 or cin % a["groups"] or a["out_channels"] % a["groups"]:
            raise ShapeError(f"groups={a['groups']} must divide in_channels ({cin}) and "
                             f"out_channels ({a['out_channels']})")
        spatial = [conv_transpose_out(x.shape[2 + i], k[i], s[i], p[i], d[i], op[i]) for i in range(n)]
        return [x.with_shape((x.shape[0], a["out_channels"], *spatial))]

    def params(self, node, ins):
        x = ins[0]
        n, k, *_ = self._geometry(node, x)
        a = node.attrs
        cout_g = a["out_channels"] // a["groups"]
        # PyTorch computes the fan-in from the weight's dim 1, which is out_channels/groups here.
        bound = 1 / math.sqrt(cout_g * math.prod(k))
        bias = ParamSpec((a["out_channels"],), "uniform", bound) if a["bias"] else None
        # (weight-normed along dim 0 as torch's weight_norm does: per input channel here)
        return weight_norm.layer_params(node, ParamSpec((x.shape[1], cout_g, *k), "uniform", bound), bias)

    def macs(self, node, ins, outs):
        # every input element is scattered through (out_channels / groups) * kernel taps
        _, k, *_ = self._geometry(node, ins[0])
        return numel(ins[0]) * (node.attrs["out_channels"] // node.attrs["groups"]) * math.prod(k)

    def torch_module(self, node, ins):
        x = ins[0]
        n, k, s, d, p, op = self._geometry(node, x)
        a = node.attrs
        # (output_padding, groups and dilation where they are not PyTorch's defaults, as for conv)
        extra = torch_keywords(node, {"output_padding": 0, "groups": 1},
                               {"output_padding": py_dims(op)})
        extra += f", bias={a['bias']}" + torch_keywords(node, {"dilation": 1}, {"dilation": py_dims(d)})
        return weight_norm.torch_module(node, (
            f"nn.ConvTranspose{n}d({x.shape[1]}, {a['out_channels']}, kernel_size={py_dims(k)}, stride={py_dims(s)}, "
            f"padding={py_dims(p)}{extra})"))

    def onnx(self, emit, node, inputs, ins):
        n, k, s, d, p, op = self._geometry(node, ins[0])
        ends, extra = list(p), list(op)
        for i in range(n):
            # onnxruntime requires output_padding < stride, PyTorch only < max(stride, dilation).
            # Output padding is the end padding not cropped, so it can be taken off the end pads.
            if op[i] >= s[i]:
                if op[i] > p[i]:
                    raise NotImplementedError(
                        f"output_padding {op[i]} >= stride {s[i]} and > padding {p[i]} has no ONNX lowering "
                        "(onnxruntime needs output_padding < stride)")
                ends[i], extra[i] = p[i] - op[i], 0
        args = [inputs[0], weight_norm.onnx_weight(emit, node, n + 2)]
        if node.attrs["bias"]:
            args.append(emit.param("bias"))
        return emit.add_node("ConvTranspose", args, kernel_shape=list(k), strides=list(s), dilations=list(d),
                             pads=list(p) + ends, output_padding=extra, group=node.attrs["groups"])
