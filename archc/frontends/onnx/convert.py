"""ONNX op type -> native IR op: one small converter per ONNX op, registered (``@converts``) in the
importer's :data:`~archc.frontends.onnx.importer.CONVERTERS` table.

Converters marked ``pure`` run once per kind of node (:mod:`archc.frontends.onnx.replay`): they read
only the node's attributes, its inputs' types and its constants' shapes, and pass constants through
as weights unchanged (MatMul transposes its weight, Gemm reshapes its bias: not pure).

A converter gets the :class:`~archc.frontends.onnx.importer.Importer` and the ONNX node.
It reads constant and shape-type inputs (``im.const``, ``im.static``), asks for data
inputs (``im.tensor``), and returns one entry per output it handles: an IR
:class:`~archc.ir.graph.Value` made by ``im.emit`` (which checks the native op's shape
inference and parameters against ONNX's), or the record of an input the node only
passes through. Returning None or raising :class:`Fallback` keeps the node as an
``onnx_node``, so a converter maps only what it maps exactly.

Besides the one-to-one maps, converters see through exporter noise: Identity, Dropout
and same-dtype Casts disappear; chains of Reshape/Flatten/Squeeze/Unsqueeze become one
reshape (or flatten, or nothing when the shape does not change); ``MatMul`` by a
constant matrix is a ``linear`` whose following ``Add`` of a constant vector becomes its
bias (likewise a constant per-channel ``Add`` after a bias-free conv); ``Gemm`` is a
``linear``; multiplying by a literal scalar is a ``scale``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from archc.errors import ShapeError
from archc.frontends.onnx.converters import of_kind, on_demand
from archc.frontends.onnx.importer import CONVERTERS, Converter, Fallback, converts  # noqa: F401 (tests patch CONVERTERS here)
from archc.frontends.onnx.naming import node_meta
from archc.frontends.onnx.parametrized import weight_normed
from archc.frontends.onnx.sharing import PARAMETER_MODULES_META
from archc.frontends.onnx.values import (Const, Lazy, ShapeArithmeticError, Sym, Tensor, dim_arithmetic, short_float,
                                        spread, table_init)
from archc.ir import dims
from archc.ir.graph import MODULES_META, Value
from archc.ir.types import Dim
from archc.ops import registry
from archc.ops.base import INT64_MAX

if TYPE_CHECKING:
    from archc.frontends.onnx.importer import Importer



def _input(node: onnx.NodeProto, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


def _operand_ints(im: "Importer", node: onnx.NodeProto, index: int, attr: str) -> list[Dim] | None:
    """An ints operand that moved from an attribute (old opsets) to an input (new ones)."""
    name = _input(node, index)
    if name:
        values = im.static_ints(name)
        if values is None:
            raise Fallback(f"input {index} of {node.op_type} is not known statically")
        return values
    value = im.attrs(node).get(attr)
    if value is None:
        return None
    return [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def _compact(values) -> Any:
    """A per-dim list as the spec language writes it: one int when all dims agree."""
    values = [int(v) for v in values]
    return values[0] if values and all(v == values[0] for v in values) else values


def _window(im: "Importer", node: onnx.NodeProto, n: int, kernel: tuple[int, ...],
            padded: bool = False) -> dict[str, Any]:
    """kernel, stride, padding, dilation of Conv/MaxPool/AveragePool with symmetric padding
    (``padded``: its pads are taken by a pad node before it, the window has none)."""
    a = im.attrs(node)
    strides = list(a.get("strides", [1] * n))
    dilations = list(a.get("dilations", [1] * n))
    auto_pad = a.get("auto_pad", "NOTSET")
    _require_window(strides, dilations, kernel, a.get("pads", []))
    if padded:
        padding: Any = 0
    elif auto_pad == "NOTSET":
        pads = list(a.get("pads", [0] * 2 * n))
        if pads[:n] != pads[n:]:
            raise Fallback(f"asymmetric pads {pads}")
        padding = _compact(pads[:n])
    elif auto_pad == "VALID":
        padding = 0
    elif auto_pad == "SAME_UPPER" and all(s == 1 for s in strides):
        padding = "same"  # the IR's 'same' puts the odd extra padding at the end, like SAME_UPPER
    else:
        raise Fallback(f"auto_pad {auto_pad}")
    return {"kernel_size": _compact(kernel), "stride": _compact(strides), "padding": padding,
            "dilation": _compact(dilations)}


def _require_window(strides, dilations, kernel, pads, groups: int = 1) -> None:
    """Fallback unless a window's numbers make a layer: positive strides, dilations, kernel and
    groups, pads not negative (a mutated or hostile model stays an onnx_node, checked by ONNX)."""
    try:
        ok = min(map(int, [*strides, *dilations, *kernel, groups])) >= 1 and min(map(int, pads), default=0) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise Fallback("a window with a non-positive stride, dilation, kernel or group, or a negative pad")


def _optional_const(im: "Importer", node: onnx.NodeProto, index: int) -> np.ndarray | None:
    name = _input(node, index)
    if not name:
        return None
    arr = im.const(name)
    if arr is None:
        raise Fallback(f"input {index} of {node.op_type} is computed, not a constant")
    return arr


# -- layers ------------------------------------------------------------------------------

@converts("Conv", pure=True)
def conv(im: "Importer", node: onnx.NodeProto):
    w = im.const(node.input[1])
    if w is None:
        return None
    b = _optional_const(im, node, 2)
    x = im.tensor(node.input[0])
    n = w.ndim - 2
    kernel = tuple(im.attrs(node).get("kernel_shape", w.shape[2:]))
    _require_window([], [], [], [], groups=im.attrs(node).get("group", 1))
    padded = _uneven_pads(im.attrs(node), n)
    if padded is not None:  # (a causal conv, or TF's SAME at a stride: F.pad, then the conv without padding)
        # named beside the conv's module, not in it, so that the conv alone takes the module's name
        name = im.names.default(node)
        (x,) = im.emit(node, "pad", {"pads": padded, "mode": "constant"}, [x], check=False,
                       key=(name.rpartition(".")[0] or name) + "_pad")
    attrs = {"out_channels": int(w.shape[0]), "groups": int(im.attrs(node).get("group", 1)),
             "bias": b is not None, **_window(im, node, n, kernel, padded is not None)}
    normed = weight_normed(im, node.input[1])  # (g and v kept by the TorchScript exporter)
    if normed is not None:
        attrs["weight_norm"] = True
    weights = {**(normed or {"weight": w}), **({"bias": b} if b is not None else {})}
    return im.emit(node, "conv", attrs, [x], weights, replayable=normed is None)


def _uneven_pads(a: dict[str, Any], n: int) -> list[int] | None:
    """A Conv's explicit pads that differ before and after a dim (``pads=[1, 0]``, what the default
    exporter makes of ``F.pad(x, (1, 0))`` before a conv), in F.pad's order; None where they are even."""
    pads = [int(p) for p in a.get("pads", [0] * 2 * n)]
    if a.get("auto_pad", "NOTSET") != "NOTSET" or len(pads) != 2 * n or pads[:n] == pads[n:] or min(pads) < 0:
        return None
    return [p for d in reversed(range(n)) for p in (pads[d], pads[n + d])]


@converts("ConvTranspose", pure=True)
def conv_transpose(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    w = im.const(node.input[1])
    if w is None or "output_shape" in a or a.get("auto_pad", "NOTSET") != "NOTSET":
        return None
    b = _optional_const(im, node, 2)
    x = im.tensor(node.input[0])
    n = w.ndim - 2
    groups = int(a.get("group", 1))
    _require_window(a.get("strides", []), a.get("dilations", []), a.get("kernel_shape", []), a.get("pads", []),
                    groups)
    pads = list(a.get("pads", [0] * 2 * n))
    if pads[:n] != pads[n:]:
        return None
    attrs = {"out_channels": int(w.shape[1]) * groups, "kernel_size": _compact(a.get("kernel_shape", w.shape[2:])),
             "stride": _compact(a.get("strides", [1] * n)), "padding": _compact(pads[:n]),
             "output_padding": _compact(a.get("output_padding", [0] * n)), "groups": groups,
             "dilation": _compact(a.get("dilations", [1] * n)), "bias": b is not None}
    weights = {"weight": w, **({"bias": b} if b is not None else {})}
    return im.emit(node, "conv_transpose", attrs, [x], weights)


@converts("MatMul")
def matmul(im: "Importer", node: onnx.NodeProto):
    a_name, b_name = node.input
    w = im.const(b_name)
    if w is not None and w.ndim == 2 and im.is_tensor(a_name):
        # x @ W with W (in, out) is a linear layer with weight W^T (out, in); a bias may follow.
        return im.emit(node, "linear", {"out_features": int(w.shape[1]), "bias": False},
                       [im.tensor(a_name)], {"weight": im.contiguous(w.T)})
    if im.is_tensor(a_name) and im.is_tensor(b_name):
        return im.emit(node, "matmul", {}, [im.tensor(a_name), im.tensor(b_name)])
    return None


@converts("Gemm")
def gemm(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    if a.get("alpha", 1.0) != 1.0 or a.get("transA", 0) or (len(node.input) > 2 and a.get("beta", 1.0) != 1.0):
        return None
    w = im.const(node.input[1])
    if w is None or not im.is_tensor(node.input[0]):
        return None
    weight = w if a.get("transB", 0) else w.T
    out = int(weight.shape[0])
    c = _optional_const(im, node, 2)
    if c is not None and c.size != out:
        return None
    weights = {"weight": im.contiguous(weight), **({"bias": c.reshape(out)} if c is not None else {})}
    return im.emit(node, "linear", {"out_features": out, "bias": c is not None}, [im.tensor(node.input[0])],
                   weights)


@converts("Gather")
def gather(im: "Importer", node: onnx.NodeProto):
    axis = int(im.attrs(node).get("axis", 0))
    table = im.const(node.input[0])
    if table is not None:
        # rows of a constant table picked by computed ids: an embedding lookup
        if table.ndim != 2 or axis != 0 or not im.is_tensor(node.input[1]):
            return None
        return im.emit(node, "embedding", {"num_embeddings": int(table.shape[0]),
                                           "embedding_dim": int(table.shape[1])},
                       [im.tensor(node.input[1])], {"weight": table})
    index = im.const(node.input[1])
    if index is None or index.ndim != 0:
        return None
    # x.select(axis, i) (q, k, v out of a packed projection; a class token): slice, drop the dim
    x = im.tensor(node.input[0])
    shape = im.itype(x).shape
    axis %= len(shape)
    i = int(index)
    picked = im.emit(node, "slice", {"dim": axis, "start": i, "end": None if i == -1 else i + 1},
                     [x], check=False, suffix="_slice")
    if len(shape) >= 2:  # the picked dim of size 1 merged into its neighbour: no size written (any batch)
        start = axis - 1 if axis else 0
        return im.emit(node, "flatten", {"start_dim": start, "end_dim": start + 1}, picked)
    target = _target(im.itype(picked[0]).shape, [])
    if target is None:
        raise Fallback("cannot drop the gathered dim statically")
    return im.emit(node, "reshape", {"shape": target}, picked)


# -- normalisation -----------------------------------------------------------------------

@of_kind  # (which inputs are constants and whether each is learnt: what the node's kind key holds)
def _learned_affine(im: "Importer", node: onnx.NodeProto) -> bool:
    """Whether a BatchNormalization's, InstanceNormalization's or LayerNormalization's scale and bias
    (inputs 1 and 2; an absent bias aside) are all learned parameters: then it is an affine norm
    whatever their values, and its conversion depends on its kind only."""
    return all(im.learned(name) for name in node.input[1:3] if name)


def _literal(im: "Importer", node: onnx.NodeProto, index: int, fill: float) -> bool:
    """Whether a norm's input ``index`` is absent, or a constant equal to ``fill`` throughout that is no
    learned parameter. Both torch exporters write the scale (ones) and bias (zeros) a module lacks
    (nn.BatchNorm2d(C, affine=False), nn.LayerNorm(D, elementwise_affine=False), the bias of
    nn.LayerNorm(D, bias=False)) as such literals: Constant nodes, or with dynamo initializers its graph
    signature does not list as parameters. A learned scale of ones (a freshly initialised affine
    module's) is a parameter."""
    name = _input(node, index)
    if not name:
        return True
    value = im.const(name)
    return value is not None and not im.learned(name) and bool(np.all(value == fill))


def _without_affine(im: "Importer", node: onnx.NodeProto) -> bool:
    """Whether a BatchNormalization's, InstanceNormalization's or LayerNormalization's scale and bias are
    literal ones and zeros (the bias may be absent), neither a learned parameter: the exported module
    has no affine."""
    return _literal(im, node, 1, 1) and _literal(im, node, 2, 0)


@converts("BatchNormalization", pure=_learned_affine)
def batchnorm(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    if a.get("training_mode", 0):
        return None
    params = [im.const(name) for name in node.input[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        return None
    scale, bias, mean, var = params
    # ONNX's momentum weighs the running statistic, PyTorch's the new batch.
    attrs = {"eps": float(a.get("epsilon", 1e-5)), "momentum": round(1.0 - float(a.get("momentum", 0.9)), 7)}
    stats = {"running_mean": mean, "running_var": var, "num_batches_tracked": np.array(0, dtype=np.int64)}
    if _without_affine(im, node):  # nn.BatchNorm2d(C, affine=False)
        return im.emit(node, "batchnorm", {**attrs, "affine": False}, [im.tensor(node.input[0])], stats)[:1]
    weights = {"weight": scale, "bias": bias, **stats}
    return im.emit(node, "batchnorm", attrs, [im.tensor(node.input[0])], weights)[:1]


@converts("LayerNormalization", pure=_learned_affine)
def layernorm(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    x = im.tensor(node.input[0])
    t = im.itype(x)
    axis = int(a.get("axis", -1)) % t.rank
    scale = im.const(node.input[1])
    bias = _optional_const(im, node, 2)
    if scale is None or tuple(scale.shape) != tuple(t.shape[axis:]):
        return None
    attrs = {"dims": t.rank - axis, "eps": float(a.get("epsilon", 1e-5))}
    if _without_affine(im, node):  # nn.LayerNorm(D, elementwise_affine=False)
        return im.emit(node, "layernorm", {**attrs, "elementwise_affine": False}, [x])[:1]
    # nn.LayerNorm(D, bias=False): the TorchScript exporter writes a literal bias of zeros
    if _literal(im, node, 2, 0):
        bias = None
    attrs.update(elementwise_affine=True, bias=bias is not None)
    weights = {"weight": scale, **({"bias": bias} if bias is not None else {})}
    return im.emit(node, "layernorm", attrs, [x], weights)[:1]


@converts("InstanceNormalization", pure=_learned_affine)
def instancenorm(im: "Importer", node: onnx.NodeProto):
    """InstanceNormalization with a constant scale and bias per channel as archc's instancenorm,
    nn.InstanceNorm1d/2d/3d (track_running_stats=False: both torch exporters write that module so).
    Literal ones and zeros (TorchScript's Constant nodes, dynamo's initializers its graph signature
    lists as no parameter) are ``affine: false``; anything else is the learned weight and bias. A
    computed scale, or an affine one over symbolic channels, stays the ONNX node."""
    x = im.tensor(node.input[0])
    t = im.itype(x)
    scale, bias = im.const(node.input[1]), im.const(node.input[2])
    channels = t.shape[1]
    if t.rank not in (3, 4, 5) or scale is None or bias is None or scale.ndim != 1 or bias.shape != scale.shape \
            or (isinstance(channels, int) and scale.shape != (channels,)):
        return None
    attrs = {"eps": float(im.attrs(node).get("epsilon", 1e-5))}
    if _without_affine(im, node):  # nn.InstanceNorm2d(C), the default
        return im.emit(node, "instancenorm", {**attrs, "affine": False}, [x])[:1]
    return im.emit(node, "instancenorm", {**attrs, "affine": True}, [x], {"weight": scale, "bias": bias})[:1]


@converts("GroupNormalization", pure=True)
def groupnorm(im: "Importer", node: onnx.NodeProto):
    """ONNX's GroupNormalization (opset 21: a scale and bias per channel; opset 18's per-group form is
    deprecated, and refused by the checker) as archc's groupnorm, nn.GroupNorm: re-emitted at archc's
    opset as its reshape and instance norm, and written for PyTorch."""
    a = im.attrs(node)
    x = im.tensor(node.input[0])
    channels, groups = im.itype(x).shape[1], int(a.get("num_groups", 0))
    scale, bias = im.const(node.input[1]), _optional_const(im, node, 2)
    if scale is None or bias is None or not isinstance(channels, int) or groups < 1 or channels % groups \
            or int(a.get("stash_type", 1)) != 1 or scale.shape != (channels,) or bias.shape != (channels,):
        return None
    attrs = {"num_groups": groups, "eps": float(a.get("epsilon", 1e-5)), "affine": True}
    return im.emit(node, "groupnorm", attrs, [x], {"weight": scale, "bias": bias})[:1]


# -- element-wise ------------------------------------------------------------------------

def _unary(op: str) -> Converter:
    def convert(im: "Importer", node: onnx.NodeProto):
        return im.emit(node, op, {}, [im.tensor(node.input[0])])
    return convert


for _onnx_op, _ir_op in {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish",
                         "Mish": "mish"}.items():
    converts(_onnx_op, pure=True)(_unary(_ir_op))


@converts("LeakyRelu", pure=True)
def leaky_relu(im: "Importer", node: onnx.NodeProto):
    slope = float(im.attrs(node).get("alpha", 0.01))
    return im.emit(node, "leaky_relu", {"negative_slope": slope}, [im.tensor(node.input[0])])


@converts("Gelu", pure=True)
def gelu(im: "Importer", node: onnx.NodeProto):
    return im.emit(node, "gelu", {"approximate": im.attrs(node).get("approximate", "none")},
                   [im.tensor(node.input[0])])


@converts("Clip")
def clip(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    lo = _optional_const(im, node, 1)
    hi = _optional_const(im, node, 2)
    lo = float(lo) if lo is not None else a.get("min")
    hi = float(hi) if hi is not None else a.get("max")
    x = im.tensor(node.input[0])
    if lo == 0.0 and hi == 6.0:
        return im.emit(node, "relu6", {}, [x])
    if lo == 0.0 and hi is None:
        return im.emit(node, "relu", {}, [x])
    return None


@converts("Softmax", pure=True)
@converts("LogSoftmax", pure=True)
def softmax(im: "Importer", node: onnx.NodeProto):
    x = im.tensor(node.input[0])
    rank = im.itype(x).rank
    version = im.opsets.get("", 13)
    axis = int(im.attrs(node).get("axis", -1 if version >= 13 else 1))
    # Before opset 13 (Log)Softmax flattened the dims from `axis` on: equal only for the last axis.
    if version < 13 and axis % rank != rank - 1:
        return None
    return im.emit(node, "log_softmax" if node.op_type == "LogSoftmax" else "softmax", {"axis": axis}, [x])


_MERGE_OPS = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


@of_kind  # (whether each input is a tensor: what the node's kind says of it)
def _all_tensors(im: "Importer", node: onnx.NodeProto) -> bool:
    return all(im.is_tensor(n) for n in node.input)


@converts("Add", "Sub", "Mul", "Div", pure=_all_tensors)  # (with a constant: bias folding, scales read values)
def arithmetic(im: "Importer", node: onnx.NodeProto):
    a_name, b_name = node.input
    if im.is_tensor(a_name) and im.is_tensor(b_name):
        return im.emit(node, _MERGE_OPS[node.op_type], {}, [im.tensor(a_name), im.tensor(b_name)])
    # One operand is constant: a one-input node, never a merge.
    const_first = not im.is_tensor(a_name)
    c_name, x_name = (a_name, b_name) if const_first else (b_name, a_name)
    if not im.is_tensor(x_name):
        return None
    c = im.const(c_name)
    x = im.tensor(x_name)
    t = im.itype(x)
    if node.op_type == "Add" and c.ndim <= t.rank:
        folded = _fold_bias(im, node, x, c)
        if folded is not None:
            return folded
    if node.op_type in ("Mul", "Div") and c.size == 1 and c.ndim <= t.rank and not im.learned(c_name) \
            and not (node.op_type == "Div" and const_first) and c.dtype.kind == "f":
        value = short_float(float(c.reshape(())), c.dtype)
        if node.op_type == "Div" and value == 0.0:
            return None
        factor = value if node.op_type == "Mul" else short_float(1.0 / value, c.dtype)
        return im.emit(node, "scale", {"factor": factor}, [x])
    if node.op_type == "Add" and im.learned(c_name) and t.rank >= 3 and c.shape == (1, *t.shape[1:]) \
            and str(c.dtype) == t.dtype:  # (a table of the input's shape but its batch: ViT's `x + pos`)
        return im.emit(node, "position_embedding", {"init_std": spread(c)}, [x], weights={"": c},
                       key=im.state_dict_key(c_name))
    return None


def _fold_bias(im: "Importer", node: onnx.NodeProto, x: Value, c: np.ndarray) -> list | None:
    """``linear``/``conv`` without bias, then Add of a constant per-feature vector: the layer's bias."""
    producer = im.graph.node(x.node)
    if producer.op not in ("linear", "conv", "conv_transpose") or producer.attrs.get("bias") or x.out != 0:
        return None
    if not im.sole_use(x):
        return None
    out = producer.outputs[0]
    axis = out.rank - 1 if producer.op == "linear" else 1
    padded = (1,) * (out.rank - c.ndim) + tuple(c.shape)
    features = out.shape[axis]
    if any(d != 1 for i, d in enumerate(padded) if i != axis) or padded[axis] != features:
        return None
    weights = im.graph.weights[producer.name]
    if c.dtype != weights["weight"].dtype:
        return None
    im.check_types(node, [out])
    producer.attrs["bias"] = True
    weights["bias"] = im.contiguous(c.reshape(features))
    added_in = node_meta(node).get(MODULES_META, ())
    if added_in != producer.meta.get(MODULES_META, ()):  # (the bias is a parameter of the Add's module)
        producer.meta.setdefault(PARAMETER_MODULES_META, {})["bias"] = added_in
    return [x]


@converts("Sum", pure=True)
def sum_(im: "Importer", node: onnx.NodeProto):
    if len(node.input) < 2 or not all(im.is_tensor(n) for n in node.input):
        return None
    return im.emit(node, "add", {}, [im.tensor(n) for n in node.input])


# -- pass-through ------------------------------------------------------------------------

@converts("Identity")
def identity(im: "Importer", node: onnx.NodeProto):
    return [im.alias(node.output[0], node.input[0])]


@converts("Dropout")
def dropout(im: "Importer", node: onnx.NodeProto):
    # Inference graphs: dropout is the identity (its mask output, if used, keeps the node).
    return [im.alias(node.output[0], node.input[0])]


@converts("Cast")
def cast(im: "Importer", node: onnx.NodeProto):
    x = im.tensor(node.input[0])
    to = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(im.attrs(node)["to"])).name
    if im.itype(x).dtype == to:
        return [im.alias(node.output[0], node.input[0])]
    return None


# -- pooling -----------------------------------------------------------------------------

@converts("MaxPool", pure=True)
def maxpool(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    # ONNX's indices count over the whole tensor, PyTorch's (the IR's) per plane: keep the
    # two-output MaxPool as it is.
    if len(node.output) > 1 or a.get("storage_order", 0) or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return None
    x = im.tensor(node.input[0])
    n = im.itype(x).rank - 2
    pads = list(a.get("pads", [0] * 2 * n)) if a.get("auto_pad", "NOTSET") == "NOTSET" else [0] * 2 * n
    begin, end = pads[:n], pads[n:]
    window = {"kernel_size": _compact(a["kernel_shape"]), "stride": _compact(a.get("strides", [1] * n)),
              "padding": _compact(begin), "dilation": _compact(a.get("dilations", [1] * n))}
    ceil = bool(a.get("ceil_mode", 0))
    if begin == end:
        return im.emit(node, "maxpool", {**window, "ceil_mode": ceil}, [x])
    if ceil or any(e < b for b, e in zip(begin, end)):
        return None
    # Extra padding at the end (how archc itself writes PyTorch's ceil_mode) only adds
    # -inf cells: the result is a ceil-mode pool whenever that has the same windows,
    # which the output shape, checked against ONNX's, tells.
    try:
        return im.emit(node, "maxpool", {**window, "ceil_mode": False}, [x])
    except (Fallback, ShapeError):
        return im.emit(node, "maxpool", {**window, "ceil_mode": True}, [x])


@converts("AveragePool", pure=True)
def avgpool(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    x = im.tensor(node.input[0])
    n = im.itype(x).rank - 2
    attrs = _window(im, node, n, tuple(a["kernel_shape"]))
    if attrs["padding"] == "same" or attrs.pop("dilation") not in (1, [1] * n):
        return None
    return im.emit(node, "avgpool", {**attrs, "ceil_mode": bool(a.get("ceil_mode", 0)),
                                     "count_include_pad": bool(a.get("count_include_pad", 0))}, [x])


@converts("GlobalAveragePool", pure=True)
def global_avgpool(im: "Importer", node: onnx.NodeProto):
    return im.emit(node, "global_avgpool", {}, [im.tensor(node.input[0])])


def _reduction(im: "Importer", node: onnx.NodeProto, op: str, scalar: bool):
    """A Reduce* node over known axes as ``op`` (``dims``, ``keepdim``); its input where it reduces
    nothing (empty axes with ``noop_with_empty_axes``). ``scalar``: whether a rank-0 input's reduction
    (all of no axes) is ``op`` too, or stays the ONNX node it is."""
    a = im.attrs(node)
    x = im.tensor(node.input[0])
    axes = _operand_ints(im, node, 1, "axes")
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(im.itype(x).rank))
    if (not axes and not scalar) or any(isinstance(v, str) for v in axes):
        return None  # axes known only symbolically
    return im.emit(node, op, {"dims": [int(v) for v in axes], "keepdim": bool(a.get("keepdims", 1))}, [x])


@converts("ReduceMean")
def reduce_mean(im: "Importer", node: onnx.NodeProto):
    return _reduction(im, node, "mean", scalar=True)


@converts("ReduceMax")
def reduce_max(im: "Importer", node: onnx.NodeProto):
    """ReduceMax over known axes is ``amax`` (CBAM's max-pooled channels); a scalar's stays the ONNX node."""
    return _reduction(im, node, "amax", scalar=False)


@converts("ReduceSum")
def reduce_sum(im: "Importer", node: onnx.NodeProto):
    """ReduceSum over known axes is ``sum`` (an int32 one, which ONNX sums to int32 and torch to int64,
    fails the type check and stays the ONNX node it is; so does a scalar's sum, which has no dims to name)."""
    return _reduction(im, node, "sum", scalar=False)


# -- data movement -----------------------------------------------------------------------

def _reshape_like(im: "Importer", node: onnx.NodeProto, x: Value, desired: list[Dim | None],
                  flatten: bool = True) -> list:
    """``x`` reshaped to ``desired`` (None: the one dim left to infer), through earlier reshapes.

    The result is a ``flatten`` where ``flatten`` allows and ``desired`` merges a range
    of known dims, else a ``reshape``; nothing at all where the shape does not change.
    """
    chain = [x]
    while im.graph.node(chain[-1].node).op in ("reshape", "flatten"):
        chain.append(im.graph.node(chain[-1].node).inputs[0])
    for src in reversed(chain):  # the earliest source first: one reshape for the whole chain
        shape = im.itype(src).shape
        if list(shape) == desired:
            im.check_types(node, [im.itype(src)])
            return [src]
        span = _flatten_span(shape, desired) if flatten else None
        try:
            if span is not None:
                start, end = span
                return im.emit(node, "flatten", {"start_dim": start, "end_dim": -1 if end == len(shape) - 1 else end},
                               [src])
            target = _target(shape, desired)
            if target is not None:
                return im.emit(node, "reshape", {"shape": target}, [src])
        except Fallback:
            continue
    raise Fallback(f"cannot express the reshape to {desired} statically")


def _flatten_span(shape: tuple[Dim, ...], desired: list[Dim | None]) -> tuple[int, int] | None:
    """(start, end) if ``desired`` merges dims start..end of ``shape`` (all known) into one."""
    k = len(shape) - len(desired)
    if k < 1:
        return None
    for start in range(len(desired)):
        end = start + k
        merged = shape[start:end + 1]
        if list(shape[:start]) == desired[:start] and list(shape[end + 1:]) == desired[start + 1:] \
                and all(isinstance(d, int) for d in merged) and desired[start] in (None, math.prod(merged)):
            return start, end
    return None


def _target(shape: tuple[Dim, ...], desired: list[Dim | None]) -> list[int] | None:
    """A reshape target for ``desired`` from ``shape``: ints, 0 to copy a dim, one -1. A first dim that
    stays the input's is copied where it is a number too: in a model exported at a fixed batch it is the
    batch, and the module then runs at any (an exporter's Unsqueeze of a step's ``(1, 8)`` to ``(1, 1, 8)``)."""
    target = []
    for i, d in enumerate(desired):
        if i == 0 and shape and isinstance(d, int) and shape[0] == d:
            target.append(0)
        elif isinstance(d, int):
            target.append(d)
        elif d is not None and i < len(shape) and shape[i] == d:
            target.append(0)
        else:
            target.append(-1)
    if target.count(-1) > 1:
        return None
    return target


def _desired_from_onnx(im: "Importer", node: onnx.NodeProto, desired: list[Dim | None]) -> list[Dim | None]:
    """Fill unknown dims from ONNX's inferred output shape."""
    o = im.otype(node.output[0])
    if o is None or o.shape is None or len(o.shape) != len(desired):
        return desired
    return [theirs if mine is None and theirs is not None and not str(theirs).startswith("unk")
            else mine for mine, theirs in zip(desired, o.shape)]


@converts("Reshape")
def reshape(im: "Importer", node: onnx.NodeProto):
    x = im.tensor(node.input[0])
    shape = im.itype(x).shape
    target = im.static_ints(node.input[1])
    if target is None:
        o = im.otype(node.output[0])
        if o is None or o.shape is None:
            return None
        desired = list(o.shape)
    else:
        allowzero = im.attrs(node).get("allowzero", 0)
        desired = []
        for i, d in enumerate(target):
            if d == 0 and not allowzero:
                if i >= len(shape):  # (ONNX's 0 copies the input's dim at its place: none there)
                    im._fail(f"Reshape's target shape {list(target)} copies dim {i} (a 0 there) of an input of "
                             f"rank {len(shape)}, which has none", node)
                desired.append(shape[i])
            elif d == -1:
                desired.append(None)
            else:
                desired.append(d)
    desired = _desired_from_onnx(im, node, desired)
    try:
        return _reshape_like(im, node, x, desired)
    except (Fallback, ShapeError):
        # The IR's symbolic dims cannot always express the result (N*2 -> (N, 2) needs a
        # division); a static target still keeps the shape arithmetic out of the graph.
        target = _target(shape, desired)
        if target is None:
            raise
        return im.generic(node, {1: Const(np.array(target, dtype=np.int64))})


@converts("Flatten")
def flatten(im: "Importer", node: onnx.NodeProto):
    x = im.tensor(node.input[0])
    shape = im.itype(x).shape
    axis = int(im.attrs(node).get("axis", 1)) % (len(shape) + 1)
    desired = [_product(shape[:axis]), _product(shape[axis:])]
    return _reshape_like(im, node, x, desired)


def _product(dims) -> Dim | None:
    if all(isinstance(d, int) for d in dims):
        return math.prod(dims)
    return dims[0] if len(dims) == 1 else None


@converts("Squeeze")
def squeeze(im: "Importer", node: onnx.NodeProto):
    x = im.tensor(node.input[0])
    shape = im.itype(x).shape
    axes = _operand_ints(im, node, 1, "axes")
    if axes is None:
        drop = {i for i, d in enumerate(shape) if d == 1}
    else:
        drop = {int(a) % len(shape) for a in axes}
    return _reshape_like(im, node, x, [d for i, d in enumerate(shape) if i not in drop], flatten=False)


@converts("Unsqueeze")
def unsqueeze(im: "Importer", node: onnx.NodeProto):
    x = im.tensor(node.input[0])
    desired: list[Dim | None] = list(im.itype(x).shape)
    axes = _operand_ints(im, node, 1, "axes")
    rank = len(desired) + len(axes)
    for a in sorted(int(a) % rank for a in axes):
        desired.insert(a, 1)
    return _reshape_like(im, node, x, desired, flatten=False)


@converts("Transpose", pure=True)
def transpose(im: "Importer", node: onnx.NodeProto):
    x = im.tensor(node.input[0])
    rank = im.itype(x).rank
    perm = list(im.attrs(node).get("perm", range(rank - 1, -1, -1)))
    if perm == list(range(rank)):
        return [x]
    return im.emit(node, "permute", {"perm": perm}, [x])


@converts("DepthToSpace", pure=True)
def depth_to_space(im: "Importer", node: onnx.NodeProto):
    """Mode CRD is ``nn.PixelShuffle`` exactly (both torch exporters write it so); the default DCR
    takes the sub-pixels from channels C apart, another permutation: kept as the ONNX node it is."""
    a = im.attrs(node)
    if a.get("mode", "DCR") != "CRD":
        return None
    return im.emit(node, "pixel_shuffle", {"upscale_factor": int(a["blocksize"])}, [im.tensor(node.input[0])])


@converts("Concat", pure=True)
def concat(im: "Importer", node: onnx.NodeProto):
    token = _prepended_token(im, node)
    if token is not None:
        return token
    if not all(im.is_tensor(n) for n in node.input):
        return None
    if len(node.input) == 1:  # torch.cat([x]): nothing to concatenate
        return [im.alias(node.output[0], node.input[0])]
    return im.emit(node, "concat", {"axis": int(im.attrs(node)["axis"])}, [im.tensor(n) for n in node.input])


def _prepended_token(im: "Importer", node: onnx.NodeProto) -> list[Value] | None:
    """``torch.cat([token.expand(N, -1, -1), x], dim=1)``: learned (1, k, D) tables expanded to the
    batch of a (N, S, D) sequence and put before it (ViT's class token; DeiT's class and distillation
    tokens) are ``prepend_token`` nodes, one per table. An export at a fixed batch may have folded the
    expand into a constant (N, k, D) of N equal rows: that is the table too."""
    *heads, last = node.input
    if not heads or not isinstance(im.record(last), Tensor):
        return None
    x = im.tensor(last)
    shape = im.itype(x).shape
    if len(shape) != 3 or int(im.attrs(node)["axis"]) % 3 != 1:
        return None
    tables = [_token_table(im, name, shape) for name in heads]
    if any(table is None for table in tables):
        return None
    out = x
    for k in reversed(range(len(tables))):  # (the last table goes on first, next to x)
        attrs = {"num_tokens": int(tables[k].shape[1]), "init_std": spread(tables[k])}
        # (the table's initializer: what an Expand of it reads, what a fixed batch's was folded from, or itself)
        rec = im.record(heads[k])
        source = rec.node.input[0] if isinstance(rec, Lazy) else rec.source or heads[k]
        (out,) = im.emit(node, "prepend_token", attrs, [out], weights={"": tables[k]}, check=k == 0,
                         suffix=f"_token_{k}" if k else "", key=im.state_dict_key(source))
    return [out]


def _token_table(im: "Importer", name: str, shape: tuple[Dim, ...]) -> np.ndarray | None:
    """The learned (1, k, D) table the input ``name`` of a concat before a (N, S, D) sequence repeats
    over the batch; None where it is no such table."""
    rec = im.record(name)
    if isinstance(rec, Lazy) and rec.node.op_type == "Expand" and im.learned(rec.node.input[0]):
        table = im.const(rec.node.input[0])
        try:
            sizes = _operand_ints(im, rec.node, 1, "shape")
        except Fallback:
            return None
        if table.ndim != 3 or len(sizes) != 3 or sizes[0] != shape[0] \
                or any(s not in (-1, 1, d) for s, d in zip(sizes[1:], table.shape[1:])):
            return None
    elif isinstance(rec, Const) and rec.learned and rec.array.ndim == 3 and rec.array.shape[0] == shape[0] \
            and bool((rec.array == rec.array[:1]).all()):
        table = rec.array[:1]
    else:
        return None
    return table if table.shape[0] == 1 and table.shape[2] == shape[2] else None


@converts("Split")
def split(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    x = im.tensor(node.input[0])
    shape = im.itype(x).shape
    axis = int(a.get("axis", 0)) % len(shape)
    total = shape[axis]
    sizes = _operand_ints(im, node, 1, "split")
    if not sizes:
        if not isinstance(total, int):
            return None
        parts = len(node.output)
        piece = -(-total // parts)
        sizes = [min(piece, total - i * piece) for i in range(parts)]
    return im.emit(node, "split", {"sizes": [int(s) for s in sizes], "dim": axis}, [x])


@converts("Slice")
def slice_(im: "Importer", node: onnx.NodeProto):
    x = im.tensor(node.input[0])
    shape = im.itype(x).shape
    starts = _operand_ints(im, node, 1, "starts")
    ends = _operand_ints(im, node, 2, "ends")
    axes = _operand_ints(im, node, 3, "axes") or list(range(len(starts)))
    steps = _operand_ints(im, node, 4, "steps") or [1] * len(starts)
    if any(isinstance(v, str) for v in [*axes, *steps]) or any(s < 1 for s in steps):
        return None
    try:  # (a bound read from a shape at run time: a fixed distance from the dim's end where it is one)
        bounds = [(_from_the_end(start, shape[axis % len(shape)], start=True),
                   _from_the_end(end, shape[axis % len(shape)], start=False))
                  for start, end, axis in zip(starts, ends, axes)]
    except Fallback:  # else a window of another tensor's size: a crop to it, where it is one
        cropped = _crop(im, node, x, starts, ends, [a % len(shape) for a in axes]) if set(steps) == {1} else None
        if cropped is None:
            raise
        return cropped
    pieces = []
    for (start, end), axis, step in zip(bounds, axes, steps):
        axis %= len(shape)
        size = shape[axis]
        full = start == 0 and step == 1 and (end >= INT64_MAX // 2 or (isinstance(size, int) and end >= size))
        if not full:
            open_end = end >= INT64_MAX // 2 or (isinstance(size, int) and end >= size)
            pieces.append({"dim": axis, "start": start, "end": None if open_end else end, "step": step})
    if not pieces:
        return [x]
    out = x
    for i, attrs in enumerate(pieces):
        out = im.emit(node, "slice", attrs, [out], check=i == len(pieces) - 1)[0]
    return [out]


@on_demand("Slice")
def cropped_table(im: "Importer", node: onnx.NodeProto) -> list[Value] | None:
    """A learned table cut to another tensor's size at run time (``pos[:, :x.shape[1]]``, ViT's and
    GPT's position tables over a sequence of any length): the table as a ``parameter`` node, then
    ``crop`` of it to that tensor. None where the data is no learned table or no crop cuts it so."""
    table = im.record(node.input[0])
    if not (isinstance(table, Const) and table.learned) or str(table.array.dtype) not in _TABLE_DTYPES:
        return None
    starts, ends = _operand_ints(im, node, 1, "starts"), _operand_ints(im, node, 2, "ends")
    axes = _operand_ints(im, node, 3, "axes") or list(range(len(starts)))
    steps = _operand_ints(im, node, 4, "steps") or [1] * len(starts)
    shape = table.array.shape
    if not any(isinstance(v, str) for v in [*starts, *ends]) or any(isinstance(v, str) for v in axes) \
            or set(steps) != {1} or not shape:
        return None
    found = _crop_reference(im, node, shape, starts, ends, [a % len(shape) for a in axes])
    if found is None:
        return None
    held = {"shape": list(shape), "dtype": str(table.array.dtype), **table_init(table.array)}
    (param,) = im.emit(node, "parameter", held, [], weights={"": table.array}, check=False, suffix="_table",
                       key=im.state_dict_key(node.input[0]))
    return im.emit(node, "crop", found[1], [param, found[0]])


#: the dtypes a table ``parameter`` holds (the op's own choices)
_TABLE_DTYPES = registry.lookup("parameter").attrs["dtype"].choices


def _crop(im: "Importer", node: onnx.NodeProto, x: Value, starts: list[Dim], ends: list[Dim],
          axes: list[int]) -> list[Value] | None:
    """A Slice whose window is another tensor's size, read from that tensor's Shape at run time, is
    ``crop`` of x to it: ``x[:, :, k : k + ref.shape[2]]`` (FCN's crops) from ``offset`` k, or from ``(H -
    S) // 2`` (the valid-convolution U-Net's centred crop), as both torch exporters write them for
    dynamic sizes. None where there is no such tensor (other arithmetic stays the ONNX Slice)."""
    found = _crop_reference(im, node, im.itype(x).shape, starts, ends, axes)
    return im.emit(node, "crop", found[1], [x, found[0]]) if found is not None else None


def _crop_reference(im: "Importer", node: onnx.NodeProto, shape: tuple[Dim, ...], starts: list[Dim],
                    ends: list[Dim], axes: list[int]) -> tuple[Value, dict[str, Any]] | None:
    """The tensor a Slice of data of ``shape`` crops to, with the crop's attributes: a tensor (not the
    sliced data) of that rank whose Shape the window's arithmetic reads and whose sizes make the
    window; None where there is none."""
    for name in _shape_sources(im, [n for n in node.input[1:3] if n]):
        if name == node.input[0] or not isinstance(im.record(name), Tensor):
            continue
        ref = im.tensor(name)
        if im.itype(ref).rank == len(shape):
            attrs = _crop_window(shape, im.itype(ref).shape, starts, ends, axes)
            if attrs is not None:
                return ref, attrs
    return None


def _crop_window(shape: tuple[Dim, ...], ref: tuple[Dim, ...], starts: list[Dim], ends: list[Dim],
                 axes: list[int]) -> dict[str, Any] | None:
    """crop's attributes where each window ``starts[i]:ends[i]`` along ``axes[i]`` of a tensor of ``shape``
    is ``ref``'s size there from one fixed offset each, or centred in each, else None."""
    window: dict[int, Dim] = {}
    try:
        for start, end, axis in zip(starts, ends, axes):
            size = ref[axis]
            if end not in (dim_arithmetic(start, "+", size), dim_arithmetic(size, "+", start)):
                return None
            centred = dim_arithmetic(dim_arithmetic(shape[axis], "-", size), "/", 2)
            window[axis] = "center" if isinstance(start, str) and start == centred else start
    except (ValueError, ShapeArithmeticError):
        return None
    starts_at = list(window.values())
    center = starts_at and all(s == "center" for s in starts_at)
    if not center and not all(isinstance(s, int) and s >= 0 for s in starts_at):
        return None
    cropped = sorted(window)
    attrs: dict[str, Any] = {"center": True} if center else {"offset": _compact([window[d] for d in cropped])}
    if cropped != list(range(2, len(shape))):
        attrs["dims"] = cropped
    return attrs


def _from_the_end(bound: Dim, size: Dim, start: bool) -> int:
    """A Slice bound read from a shape at run time (``x[:, :, :T]``: ``T``, the input's length, of a dim of
    ``T + 1``) as an index of the sliced dim: its distance from the dim's end, a negative index (0: to the
    end), where that distance is one whole number at every size (:mod:`archc.ir.dims`); a Fallback
    otherwise. A known bound is itself."""
    if isinstance(bound, int):
        return bound
    try:
        offset = dims.sub(bound, size)
    except ShapeError:
        offset = None
    if not isinstance(offset, int) or (start and offset >= 0):
        raise Fallback(f"Slice bound '{bound}' of a dim of size '{size}' is no fixed distance from its end")
    return offset if offset < 0 else INT64_MAX  # (an end at or past the dim's end: to the end)


#: ONNX Pad's modes -> ``pad``'s (F.pad's)
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@converts("Pad")
def pad(im: "Importer", node: onnx.NodeProto):
    """A Pad of constant pads (and fill) is ``pad``, its pads in F.pad's order: last dim first, down
    to the first padded dim. Where ``pad`` refuses it (modes other than constant beyond F.pad's
    dims, negative pads outside mode constant) or its pads are computed, it stays the ONNX node."""
    a = im.attrs(node)
    mode = _PAD_MODES.get(a.get("mode", "constant"))
    x = im.tensor(node.input[0])
    rank = im.itype(x).rank
    pads = _operand_ints(im, node, 1, "pads")
    axes = _operand_ints(im, node, 3, "axes") or list(range(rank))  # (Pad-18's optional axes)
    fill = _optional_const(im, node, 2)
    value = float(np.asarray(fill).reshape(-1)[0]) if fill is not None and fill.size else float(a.get("value", 0.0))
    if mode == "constant" and pads is not None and len(pads) == 2 * len(axes) \
            and any(isinstance(v, str) for v in pads) and not any(isinstance(v, str) for v in axes):
        return _padded_to(im, node, x, pads, [int(v) % rank for v in axes], value)
    if mode is None or pads is None or any(isinstance(v, str) for v in [*pads, *axes]) \
            or len(pads) != 2 * len(axes):
        return None
    axes = [int(v) % rank for v in axes]
    before, after = dict(zip(axes, pads[:len(axes)])), dict(zip(axes, pads[len(axes):]))
    padded = [d for d in axes if before[d] or after[d]]
    if not padded:
        return [im.alias(node.output[0], node.input[0])]
    count = rank - min(padded)
    if mode != "constant":  # F.pad's other modes take pads of all dims but batch and channels (or one fewer)
        count = max(count, rank - 2)
    f_pads = [int(p) for d in range(rank - 1, rank - 1 - count, -1) for p in (before.get(d, 0), after.get(d, 0))]
    attrs: dict[str, Any] = {"pads": f_pads, "mode": mode}
    if value and mode == "constant":  # (the other modes ignore it)
        attrs["value"] = value
    return im.emit(node, "pad", attrs, [x])


def _padded_to(im: "Importer", node: onnx.NodeProto, x: Value, pads: list[Dim], axes: list[int],
               value: float) -> list[Value] | None:
    """A Pad whose pads are computed from another tensor's Shape, half the difference to its size (rounded
    down) before each padded dim and the rest after (a U-Net decoder's ``F.pad(x1, [dx // 2, dx - dx // 2,
    ...])`` to its skip, exported with dynamic sizes), is ``pad_to`` that tensor (filled with ``value``); None
    where it is no such pad (the Pad then stays the ONNX node, its shape arithmetic with it)."""
    shape = im.itype(x).shape
    sides = {d: (pads[i], pads[i + len(axes)]) for i, d in enumerate(axes)}
    padded = sorted(d for d, (before, after) in sides.items() if before != 0 or after != 0)
    for name in _shape_sources(im, [node.input[1]]):
        if name == node.input[0] or not isinstance(im.record(name), Tensor):
            continue
        ref = im.tensor(name)
        sizes = im.itype(ref).shape
        if len(sizes) == len(shape) and padded and all(
                _halved(sides[d], dims.sub(sizes[d], shape[d])) for d in padded):
            return im.emit(node, "pad_to", {"dims": padded, "value": value}, [x, ref])
    return None


def _halved(side: tuple[Dim, Dim], difference: Dim) -> bool:
    """Whether (before, after) is ``difference`` split as ``d // 2`` and ``d - d // 2``, as expressions."""
    half = dims.floordiv(difference, 2)
    return dims.canonical(side[0]) == dims.canonical(half) \
        and dims.canonical(side[1]) == dims.canonical(dims.sub(difference, half))


#: ONNX nodes :func:`_shape_sources` walks up a Resize's sizes (a Slice's ends) before it gives up (an exporter's
#: shape arithmetic there is a Shape, a Slice or Gather, an Unsqueeze, a Cast and two Concats)
_SIZE_WALK_LIMIT = 32


@converts("Resize")
def resize(im: "Importer", node: onnx.NodeProto):
    a = im.attrs(node)
    if a.get("antialias", 0) or a.get("exclude_outside", 0) or "axes" in a \
            or a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        return None
    x = im.tensor(node.input[0])
    t = im.itype(x)
    n = t.rank - 2
    attrs = _resize_mode(a, n)
    if attrs is None:
        return None
    ins = [x]
    scales = im.static(_input(node, 2)) if _input(node, 2) else None
    sizes = im.static_ints(_input(node, 3)) if _input(node, 3) else None
    if scales is not None and np.asarray(scales).size:
        values = [float(v) for v in np.asarray(scales, dtype=np.float64).ravel()]
        if values[:2] != [1.0, 1.0]:
            return None
        spatial = values[2:]
        attrs["scale_factor"] = spatial[0] if len(set(spatial)) == 1 else spatial
    elif sizes is not None:
        # F.interpolate(x, size=ref.shape[2:]) as exported: sizes read from ref's Shape at run time
        ref = _sized_like(im, _input(node, 3), node.input[0], t.rank, sizes)
        if ref is not None:
            ins.append(ref)
        elif any(isinstance(v, str) for v in sizes[2:]):
            return None
        else:
            attrs["size"] = [int(v) for v in sizes[2:]]
    else:
        return None
    o = im.otype(node.output[0])
    # pytorch_half_pixel differs from half_pixel only for outputs of length 1 (which a size read
    # at run time may be)
    if a.get("coordinate_transformation_mode") == "pytorch_half_pixel" and (
            o is None or o.shape is None or 1 in o.shape[2:] or len(ins) > 1):
        return None
    return im.emit(node, "upsample", attrs, ins)


def _resize_mode(a: dict[str, Any], n: int) -> dict[str, Any] | None:
    """upsample's mode attributes for a Resize's attributes ``a`` (``n`` spatial dims), or None
    where its sampling is not one F.interpolate has."""
    mode = a.get("mode", "nearest")
    ctm = a.get("coordinate_transformation_mode", "half_pixel")
    if mode == "nearest":
        # floor(dst / scale): the sampling PyTorch's nearest uses and the IR op emits
        if ctm != "asymmetric" or a.get("nearest_mode", "round_prefer_floor") != "floor":
            return None
        return {"mode": "nearest"}
    if mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        return {"mode": "linear" if n == 1 else "bilinear", "align_corners": ctm == "align_corners"}
    return None


def _shape_sources(im: "Importer", names: list[str]) -> list[str]:
    """The tensors whose ``Shape`` the (still symbolic) shape arithmetic computing ``names`` reads: what
    a size computed at run time is the size of (a Resize's sizes, a Slice's ends)."""
    todo, seen, shaped = list(names), set(), []
    while todo and len(seen) < _SIZE_WALK_LIMIT:
        name = todo.pop()
        rec = im.record(name)
        if name in seen or not isinstance(rec, Sym):
            continue
        seen.add(name)
        if rec.node.op_type == "Shape":
            shaped.append(rec.node.input[0])
        else:
            todo.extend(i for i in rec.node.input if i)
    return shaped


def _sized_like(im: "Importer", sizes_name: str, x_name: str, rank: int, sizes: list[Dim]) -> Value | None:
    """The tensor whose spatial dims a Resize's ``sizes`` are, where they are read from its
    ``Shape`` at run time: the exporters' ``Concat(Shape(x)[:2], Shape(ref)[2:])`` for
    ``F.interpolate(x, size=ref.shape[2:])``. Walks the (still symbolic) shape arithmetic
    above the sizes to the tensors whose Shape it reads, and takes one other than the resized
    ``x`` of the same rank whose spatial dims equal the sizes' (symbols too): that tensor gives
    the same sizes at any input size. None where there is none (sizes of constants)."""
    for name in _shape_sources(im, [sizes_name]):
        if name == x_name or not isinstance(im.record(name), Tensor):
            continue
        ref = im.tensor(name)
        shape = im.itype(ref).shape
        if len(shape) == rank and list(shape[2:]) == list(sizes[2:]):
            return ref
    return None
