"""PyTorch source for imported ONNX ops: one faithful definition per ONNX op type.

An ``onnx_node`` (:mod:`archc.ops.onnx_node`) keeps an ONNX node archc has no native op
for. Its PyTorch lowering looks the node's ``op_type`` up in :data:`TORCH_LOWERINGS`;
each entry writes one Python *expression* computing the ONNX op with torch (a tuple
for several outputs), following the ONNX operator specification (attributes and their
defaults, broadcasting, negative axes, integer division, pooling indices over the whole
tensor, LSTM/GRU gate orders, ...), not PyTorch's conventions. Constant operands live in
the node's module (an ``OnnxConstants``, see :mod:`archc.ops.onnx_node`) and are read at run time, so the generated
code is the same whatever their values.

A default-domain op missing from the table, or an attribute combination PyTorch cannot
express (GRU with ``linear_before_reset=0``), raises :class:`Unsupported`, which the op
definition turns into an error naming the ONNX op and the node.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from archc.ir.types import TensorType
from archc.ops.base import py
from archc.pysource import literal as lit


class Unsupported(Exception):
    """The ONNX node cannot be written as PyTorch code (the message says why)."""


@dataclass
class Call:
    """One ONNX node as the lowerings see it: operand expressions, attributes, types."""

    op_type: str
    attributes: dict[str, Any]
    operands: list[str | None]          # per ONNX input: a Python expression, or None if omitted
    ranks: list[int | None]             # per ONNX input: its rank (None if omitted)
    outputs: list[TensorType]
    opset: int

    def a(self, name: str, default: Any = None) -> Any:
        return self.attributes.get(name, default)

    def x(self, i: int) -> str | None:
        return self.operands[i] if i < len(self.operands) else None

    def need(self, i: int) -> str:
        expr = self.x(i)
        if expr is None:
            raise Unsupported(f"input {i} is missing")
        return expr

    def ints(self, i: int) -> str:
        """A 1-D int tensor operand as a Python list at run time."""
        return f"{self.need(i)}.tolist()"

    def axes(self, i: int, attr: str = "axes") -> str | None:
        """An axes list that moved from an attribute (old opsets) to an input (new ones)."""
        if self.x(i) is not None:
            return self.ints(i)
        value = self.a(attr)
        return None if value is None else py(list(value))

    @property
    def out_rank(self) -> int:
        return self.outputs[0].rank


Lowering = Callable[[Call], str]
#: ONNX op type -> the function writing its PyTorch expression
TORCH_LOWERINGS: dict[str, Lowering] = {}

_TORCH_DTYPES = {"float32": "torch.float32", "float64": "torch.float64", "float16": "torch.float16",
                 "bfloat16": "torch.bfloat16", "int8": "torch.int8", "int16": "torch.int16",
                 "int32": "torch.int32", "int64": "torch.int64", "uint8": "torch.uint8", "bool": "torch.bool",
                 "uint16": "torch.uint16", "uint32": "torch.uint32", "uint64": "torch.uint64"}


def torch_dtype(name: str) -> str:
    if name not in _TORCH_DTYPES:
        raise Unsupported(f"dtype {name} has no torch equivalent")
    return _TORCH_DTYPES[name]


def lowers(*op_types: str) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for op_type in op_types:
            TORCH_LOWERINGS[op_type] = fn
        return fn
    return register


def lower(call: Call) -> str:
    """The PyTorch expression of one ONNX node; Unsupported if archc has none."""
    fn = TORCH_LOWERINGS.get(call.op_type)
    if fn is None:
        raise Unsupported("archc has no PyTorch lowering for this ONNX op")
    return fn(call)


# -- element-wise ----------------------------------------------------------------------

_UNARY = {
    "Abs": "torch.abs({})", "Neg": "torch.neg({})", "Exp": "torch.exp({})", "Log": "torch.log({})",
    "Sqrt": "torch.sqrt({})", "Reciprocal": "torch.reciprocal({})", "Sin": "torch.sin({})",
    "Cos": "torch.cos({})", "Tan": "torch.tan({})", "Asin": "torch.asin({})", "Acos": "torch.acos({})",
    "Atan": "torch.atan({})", "Sinh": "torch.sinh({})", "Cosh": "torch.cosh({})", "Asinh": "torch.asinh({})",
    "Acosh": "torch.acosh({})", "Atanh": "torch.atanh({})", "Erf": "torch.erf({})", "Floor": "torch.floor({})",
    "Ceil": "torch.ceil({})", "Round": "torch.round({})", "Sign": "torch.sign({})",
    "Sigmoid": "torch.sigmoid({})", "Tanh": "torch.tanh({})", "Relu": "torch.relu({})",
    "Softplus": "F.softplus({})", "Softsign": "F.softsign({})", "IsNaN": "torch.isnan({})",
    "Not": "torch.logical_not({})", "Mish": "F.mish({})", "HardSwish": "F.hardswish({})",
    "Identity": "{}", "BitwiseNot": "torch.bitwise_not({})",
}


def _unary(template: str) -> Lowering:
    return lambda c: template.format(c.need(0))


for _op, _template in _UNARY.items():
    TORCH_LOWERINGS[_op] = _unary(_template)

_BINARY = {"Add": "torch.add", "Sub": "torch.sub", "Mul": "torch.mul", "Pow": "torch.pow",
           "Equal": "torch.eq", "Less": "torch.lt", "Greater": "torch.gt", "LessOrEqual": "torch.le",
           "GreaterOrEqual": "torch.ge", "And": "torch.logical_and", "Or": "torch.logical_or",
           "Xor": "torch.logical_xor", "BitwiseAnd": "torch.bitwise_and", "BitwiseOr": "torch.bitwise_or",
           "BitwiseXor": "torch.bitwise_xor"}


def _binary(fn: str) -> Lowering:
    def lowering(c: Call) -> str:
        if c.op_type == "Pow":  # ONNX's Pow keeps the base's dtype
            return f"torch.pow({c.need(0)}, {c.need(1)}).to({c.need(0)}.dtype)"
        return f"{fn}({c.need(0)}, {c.need(1)})"
    return lowering


for _op, _fn in _BINARY.items():
    TORCH_LOWERINGS[_op] = _binary(_fn)


@lowers("Div")
def _div(c: Call) -> str:
    if c.outputs[0].dtype.startswith(("int", "uint")):
        return f"torch.div({c.need(0)}, {c.need(1)}, rounding_mode='trunc')"
    return f"torch.div({c.need(0)}, {c.need(1)})"


@lowers("Mod")
def _mod(c: Call) -> str:
    fn = "torch.fmod" if c.a("fmod", 0) else "torch.remainder"
    return f"{fn}({c.need(0)}, {c.need(1)})"


@lowers("Max", "Min", "Sum", "Mean")
def _variadic(c: Call) -> str:
    args = [e for e in c.operands if e is not None]
    fn = {"Max": "torch.maximum", "Min": "torch.minimum", "Sum": "torch.add", "Mean": "torch.add"}[c.op_type]
    expr = args[0]
    for other in args[1:]:
        expr = f"{fn}({expr}, {other})"
    return f"({expr}) / {len(args)}" if c.op_type == "Mean" else expr


@lowers("IsInf")
def _isinf(c: Call) -> str:
    x = c.need(0)
    pos, neg = c.a("detect_positive", 1), c.a("detect_negative", 1)
    if pos and neg:
        return f"torch.isinf({x})"
    if pos:
        return f"torch.isposinf({x})"
    return f"torch.isneginf({x})" if neg else f"torch.zeros_like({x}, dtype=torch.bool)"


@lowers("Where")
def _where(c: Call) -> str:
    return f"torch.where({c.need(0)}, {c.need(1)}, {c.need(2)})"


@lowers("Cast")
def _cast(c: Call) -> str:
    return f"{c.need(0)}.to({torch_dtype(c.outputs[0].dtype)})"


@lowers("CastLike")
def _cast_like(c: Call) -> str:
    return f"{c.need(0)}.to({c.need(1)}.dtype)"


@lowers("Clip")
def _clip(c: Call) -> str:
    lo = c.x(1) if c.x(1) is not None else (None if c.a("min") is None else repr(c.a("min")))
    hi = c.x(2) if c.x(2) is not None else (None if c.a("max") is None else repr(c.a("max")))
    return f"torch.clamp({c.need(0)}, {lo}, {hi})"


# -- activations -------------------------------------------------------------------------

@lowers("LeakyRelu")
def _leaky_relu(c: Call) -> str:
    return f"F.leaky_relu({c.need(0)}, {lit(c.a('alpha', 0.01))})"


@lowers("Elu")
def _elu(c: Call) -> str:
    return f"F.elu({c.need(0)}, {lit(c.a('alpha', 1.0))})"


@lowers("Celu")
def _celu(c: Call) -> str:
    return f"F.celu({c.need(0)}, {lit(c.a('alpha', 1.0))})"


@lowers("Selu")
def _selu(c: Call) -> str:
    alpha, gamma = c.a("alpha", 1.67326319217681884765625), c.a("gamma", 1.05070102214813232421875)
    x = c.need(0)
    return f"{lit(gamma)} * torch.where({x} > 0, {x}, {lit(alpha)} * torch.expm1({x}))"


@lowers("HardSigmoid")
def _hard_sigmoid(c: Call) -> str:
    return f"torch.clamp({lit(c.a('alpha', 0.2))} * {c.need(0)} + {lit(c.a('beta', 0.5))}, 0.0, 1.0)"


@lowers("ThresholdedRelu")
def _thresholded_relu(c: Call) -> str:
    x = c.need(0)
    return f"torch.where({x} > {lit(c.a('alpha', 1.0))}, {x}, torch.zeros_like({x}))"


@lowers("Shrink")
def _shrink(c: Call) -> str:
    x, lambd, bias = c.need(0), c.a("lambd", 0.5), c.a("bias", 0.0)
    return (f"torch.where({x} < -{lit(lambd)}, {x} + {lit(bias)}, torch.where({x} > {lit(lambd)}, {x} - {lit(bias)}, "
            f"torch.zeros_like({x})))")


@lowers("PRelu")
def _prelu(c: Call) -> str:
    x = c.need(0)
    return f"torch.where({x} >= 0, {x}, {x} * {c.need(1)})"


@lowers("Gelu")
def _gelu(c: Call) -> str:
    return f"F.gelu({c.need(0)}, approximate={lit(c.a('approximate', 'none'))})"


def _softmax_like(fn: str) -> Lowering:
    def lowering(c: Call) -> str:
        x = c.need(0)
        if c.opset >= 13:
            return f"{fn}({x}, dim={c.a('axis', -1)})"
        # before opset 13: over the dims from `axis` on, flattened
        axis = c.a("axis", 1)
        return f"{fn}({x}.flatten({axis}), dim=-1).reshape({x}.shape)" if axis != -1 else f"{fn}({x}, dim=-1)"
    return lowering


TORCH_LOWERINGS["Softmax"] = _softmax_like("torch.softmax")
TORCH_LOWERINGS["LogSoftmax"] = _softmax_like("torch.log_softmax")


@lowers("Hardmax")
def _hardmax(c: Call) -> str:
    x, axis = c.need(0), c.a("axis", -1)
    return f"F.one_hot(torch.argmax({x}, dim={axis}), {x}.shape[{axis}]).movedim(-1, {axis}).to({x}.dtype)"


# -- linear algebra ------------------------------------------------------------------------

@lowers("MatMul")
def _matmul(c: Call) -> str:
    return f"torch.matmul({c.need(0)}, {c.need(1)})"


@lowers("Gemm")
def _gemm(c: Call) -> str:
    a = f"{c.need(0)}.t()" if c.a("transA", 0) else c.need(0)
    b = f"{c.need(1)}.t()" if c.a("transB", 0) else c.need(1)
    expr = f"{lit(c.a('alpha', 1.0))} * torch.matmul({a}, {b})"
    if c.x(2) is not None:
        expr += f" + {lit(c.a('beta', 1.0))} * {c.x(2)}"
    return expr


@lowers("Einsum")
def _einsum(c: Call) -> str:
    return f"torch.einsum({lit(c.a('equation'))}, {', '.join(e for e in c.operands if e is not None)})"


# -- reductions -------------------------------------------------------------------------

_REDUCE = {"ReduceSum": "{x}.sum({d}, keepdim={k})", "ReduceMean": "{x}.mean({d}, keepdim={k})",
           "ReduceProd": "{x}.prod({d}, keepdim={k})", "ReduceMax": "{x}.amax({d}, keepdim={k})",
           "ReduceMin": "{x}.amin({d}, keepdim={k})", "ReduceL1": "{x}.abs().sum({d}, keepdim={k})",
           "ReduceL2": "{x}.square().sum({d}, keepdim={k}).sqrt()",
           "ReduceSumSquare": "{x}.square().sum({d}, keepdim={k})",
           "ReduceLogSum": "{x}.sum({d}, keepdim={k}).log()",
           "ReduceLogSumExp": "torch.logsumexp({x}, {d}, keepdim={k})"}
#: the opset from which each reduction takes its axes as an input
_AXES_INPUT_SINCE = {"ReduceSum": 13}


def _reduce(template: str) -> Lowering:
    def lowering(c: Call) -> str:
        x = c.need(0)
        since = _AXES_INPUT_SINCE.get(c.op_type, 18)
        keep = bool(c.a("keepdims", 1))
        if c.opset >= since and c.x(1) is not None:  # axes given at run time
            axes = c.ints(1)
            dims = f"tuple({axes})"
        elif c.a("axes") is not None:  # axes written in the file: a tuple literal (``(1,)``), which
            axes = py(list(c.a("axes")))  # torch.jit.script sizes and ruff accepts (``tuple([1])``: neither)
            dims = py(tuple(c.a("axes")))
        elif c.a("noop_with_empty_axes", 0):
            return x
        else:
            axes = f"list(range({x}.dim()))"
            dims = f"tuple({axes})"
        if c.op_type == "ReduceProd":  # torch.prod reduces one dim: move the axes last, flatten them
            moved = "t.movedim(tuple(ds), tuple(range(-len(ds), 0))).flatten(-len(ds)).prod(-1)"
            kept = "r.reshape([1 if i in [d % t.dim() for d in ds] else s for i, s in enumerate(t.shape)])"
            return f"(lambda t, ds: (lambda r: {kept if keep else 'r'})({moved}))({x}, {axes})"
        return template.format(x=x, d=dims, k=keep)
    return lowering


for _op, _template in _REDUCE.items():
    TORCH_LOWERINGS[_op] = _reduce(_template)


@lowers("ArgMax", "ArgMin")
def _argmax(c: Call) -> str:
    x, axis, keep = c.need(0), c.a("axis", 0), bool(c.a("keepdims", 1))
    fn = "argmax" if c.op_type == "ArgMax" else "argmin"
    if c.a("select_last_index", 0):
        return f"({x}.shape[{axis}] - 1 - torch.{fn}({x}.flip({axis}), dim={axis}, keepdim={keep}))"
    return f"torch.{fn}({x}, dim={axis}, keepdim={keep})"


@lowers("CumSum")
def _cumsum(c: Call) -> str:
    x, axis, reverse = c.need(0), f"int({c.need(1)})", bool(c.a("reverse", 0))
    expr = f"torch.cumsum({x}.flip({axis}), {axis}).flip({axis})" if reverse else f"torch.cumsum({x}, {axis})"
    return f"({expr} - {x})" if c.a("exclusive", 0) else expr


@lowers("TopK")
def _topk(c: Call) -> str:
    x = c.need(0)
    axis, largest, ordered = c.a("axis", -1), bool(c.a("largest", 1)), bool(c.a("sorted", 1))
    return f"tuple(torch.topk({x}, int({c.need(1)}), dim={axis}, largest={largest}, sorted={ordered}))"


# -- data movement ----------------------------------------------------------------------

@lowers("Reshape")
def _reshape(c: Call) -> str:
    if c.a("allowzero", 0):
        return f"{c.need(0)}.reshape({c.ints(1)})"
    return f"(lambda t, s: t.reshape([t.shape[i] if v == 0 else v for i, v in enumerate(s)]))({c.need(0)}, {c.ints(1)})"


@lowers("Flatten")
def _flatten(c: Call) -> str:
    rank = c.ranks[0]
    axis = c.a("axis", 1) % (rank + 1)
    x = c.need(0)
    if axis == 0:
        return f"{x}.reshape(1, -1)"
    return f"{x}.reshape({x}.shape[:{axis}].numel(), {x}.shape[{axis}:].numel())"


@lowers("Transpose")
def _transpose(c: Call) -> str:
    perm = c.a("perm") or list(range(c.ranks[0] - 1, -1, -1))
    return f"{c.need(0)}.permute({py(tuple(perm))})"


@lowers("Squeeze")
def _squeeze(c: Call) -> str:
    axes = c.axes(1) if c.opset >= 13 else (None if c.a("axes") is None else py(list(c.a("axes"))))
    return f"{c.need(0)}.squeeze()" if axes is None else f"{c.need(0)}.squeeze(tuple({axes}))"


@lowers("Unsqueeze")
def _unsqueeze(c: Call) -> str:
    axes = c.axes(1) if c.opset >= 13 else py(list(c.a("axes")))
    r = c.out_rank
    return (f"(lambda t, ax: t.reshape((lambda it, new: [1 if i in new else next(it) for i in range({r})])"
            f"(iter(t.shape), [a % {r} for a in ax])))({c.need(0)}, {axes})")


@lowers("Concat")
def _concat(c: Call) -> str:
    return f"torch.cat([{', '.join(e for e in c.operands if e is not None)}], dim={c.a('axis')})"


@lowers("Split")
def _split(c: Call) -> str:
    x, axis, n = c.need(0), c.a("axis", 0), len(c.outputs)
    sizes = c.axes(1, "split") if c.opset >= 13 else (None if c.a("split") is None else py(list(c.a("split"))))
    if sizes is None:
        sizes = f"-(-{x}.shape[{axis}] // {n})"
    return f"tuple(torch.split({x}, {sizes}, dim={axis}))"


@lowers("Slice")
def _slice(c: Call) -> str:
    x = c.need(0)
    starts, ends = c.ints(1), c.ints(2)
    axes = c.ints(3) if c.x(3) is not None else f"range(len({starts}))"
    steps = c.ints(4) if c.x(4) is not None else f"[1] * len({starts})"
    # slice.indices clamps start and end per ONNX's rules, for negative steps too
    pick = "t.index_select(a, torch.arange(*slice(s, e, p).indices(t.shape[a]), device=t.device))"
    return (f"(lambda t, st, en, ax, sp: ([t := {pick} for s, e, a, p in zip(st, en, ax, sp)], t)[-1])"
            f"({x}, {starts}, {ends}, {axes}, {steps})")


def _from_end(index: str, size: str) -> str:
    """ONNX's indices, negative ones counted from the end: ``index + size`` where below 0. (Not ``index %
    size``, which would wrap an index out of range into the tensor; ONNX refuses one, and torch then too.)"""
    return f"torch.where({index} < 0, {index} + {size}, {index})"


@lowers("Gather")
def _gather(c: Call) -> str:
    a = c.a("axis", 0) % c.ranks[0]
    return (f"(lambda t, i: t.index_select({a}, {_from_end('i', f't.shape[{a}]')}.flatten())"
            f".reshape(t.shape[:{a}] + i.shape + t.shape[{a + 1}:]))({c.need(0)}, {c.need(1)})")


@lowers("GatherElements")
def _gather_elements(c: Call) -> str:
    a = c.a("axis", 0) % c.ranks[0]
    return f"(lambda t, i: torch.gather(t, {a}, {_from_end('i', f't.shape[{a}]')}))({c.need(0)}, {c.need(1)})"


@lowers("GatherND")
def _gather_nd(c: Call) -> str:
    if c.a("batch_dims", 0):
        raise Unsupported("batch_dims > 0")
    return f"(lambda t, i: t[tuple(i.movedim(-1, 0))])({c.need(0)}, {c.need(1)})"


@lowers("ScatterND")
def _scatter_nd(c: Call) -> str:
    reduction = c.a("reduction", "none")
    if reduction not in ("none", "add"):
        raise Unsupported(f"reduction '{reduction}'")
    return (f"{c.need(0)}.index_put(tuple({c.need(1)}.unbind(-1)), {c.need(2)}, "
            f"accumulate={reduction == 'add'})")


@lowers("ScatterElements")
def _scatter_elements(c: Call) -> str:
    a = c.a("axis", 0) % c.ranks[0]
    reduction = c.a("reduction", "none")
    index = _from_end(c.need(1), f"{c.need(0)}.shape[{a}]")
    if reduction == "none":
        return f"torch.scatter({c.need(0)}, {a}, {index}, {c.need(2)})"
    how = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return f"torch.scatter_reduce({c.need(0)}, {a}, {index}, {c.need(2)}, {lit(how)})"


@lowers("Expand")
def _expand(c: Call) -> str:
    return (f"(lambda t, s: torch.broadcast_to(t, torch.broadcast_shapes(t.shape, tuple(s))))"
            f"({c.need(0)}, {c.ints(1)})")


@lowers("Tile")
def _tile(c: Call) -> str:
    return f"{c.need(0)}.repeat({c.ints(1)})"


@lowers("Pad")
def _pad(c: Call) -> str:
    mode = c.a("mode", "constant")
    if c.x(3) is not None:
        raise Unsupported("the axes input")
    pads = c.ints(1) if c.opset >= 11 else py(list(c.a("pads")))
    x = c.need(0)
    if mode == "constant":
        value = f"{c.x(2)}.item()" if c.x(2) is not None else repr(c.a("value", 0.0))
        return (f"(lambda t, p: F.pad(t, [v for d in reversed(range(t.dim())) for v in (p[d], p[d + t.dim()])], "
                f"value={value}))({x}, {pads})")
    if mode not in _PAD_INDEX:
        raise Unsupported(f"mode '{mode}'")
    # F.pad's other modes pad only the dims after batch and channel (and 1-3 of them): each padded axis
    # is gathered by index instead, any axis, any rank (an index past either end mapped back inside)
    return (f"(lambda t, p: ([t := t.index_select(d, (lambda i, n: {_PAD_INDEX[mode]})(torch.arange(-p[d], "
            f"t.shape[d] + p[d + t.dim()], device=t.device), t.shape[d])) for d in range(t.dim()) "
            f"if p[d] or p[d + t.dim()]], t)[-1])({x}, {pads})")


#: where an index ``i`` of the padded axis (``n`` long, ``i`` from -before to n + after) reads, by Pad's mode
_PAD_INDEX = {"edge": "i.clamp(0, n - 1)", "wrap": "i.remainder(n)",
              "reflect": "(lambda j: torch.where(j < n, j, 2 * n - 2 - j))(i.remainder(max(2 * n - 2, 1)))"}


@lowers("ConstantOfShape")
def _constant_of_shape(c: Call) -> str:
    value = c.a("value")
    fill = 0 if value is None else value.reshape(-1)[0].item()
    return (f"torch.full(tuple({c.ints(0)}), {lit(fill)}, dtype={torch_dtype(c.outputs[0].dtype)}, "
            f"device={c.need(0)}.device)")


@lowers("Range")
def _range(c: Call) -> str:
    return (f"torch.arange({c.need(0)}.item(), {c.need(1)}.item(), {c.need(2)}.item(), "
            f"dtype={torch_dtype(c.outputs[0].dtype)}, device={c.need(0)}.device)")


@lowers("Shape")
def _shape(c: Call) -> str:
    start, end = c.a("start", 0), c.a("end")
    return f"torch.tensor({c.need(0)}.shape[{start}:{'' if end is None else end}], dtype=torch.int64)"


@lowers("Size")
def _size(c: Call) -> str:
    return f"torch.tensor({c.need(0)}.numel(), dtype=torch.int64)"


@lowers("DepthToSpace")
def _depth_to_space(c: Call) -> str:
    b, x = c.a("blocksize"), c.need(0)
    if c.a("mode", "DCR") == "CRD":
        return f"F.pixel_shuffle({x}, {b})"
    return (f"(lambda t, n, ch, h, w: t.reshape(n, {b}, {b}, ch // {b * b}, h, w).permute(0, 3, 4, 1, 5, 2)"
            f".reshape(n, ch // {b * b}, h * {b}, w * {b}))({x}, *{x}.shape)")


@lowers("SpaceToDepth")
def _space_to_depth(c: Call) -> str:
    b, x = c.a("blocksize"), c.need(0)
    return (f"(lambda t, n, ch, h, w: t.reshape(n, ch, h // {b}, {b}, w // {b}, {b}).permute(0, 3, 5, 1, 2, 4)"
            f".reshape(n, ch * {b * b}, h // {b}, w // {b}))({x}, *{x}.shape)")


@lowers("Trilu")
def _trilu(c: Call) -> str:
    fn = "torch.triu" if c.a("upper", 1) else "torch.tril"
    k = f"int({c.x(1)})" if c.x(1) is not None else "0"
    return f"{fn}({c.need(0)}, {k})"


@lowers("OneHot")
def _one_hot(c: Call) -> str:
    axis = c.a("axis", -1)
    return (f"(lambda i, d, v: torch.where(F.one_hot(i.long() % d, d).movedim(-1, {axis}) == 1, v[1], v[0]))"
            f"({c.need(0)}, int({c.need(1)}), {c.need(2)})")


@lowers("NonZero")
def _non_zero(c: Call) -> str:
    return f"torch.nonzero({c.need(0)}).t()"


@lowers("Dropout")
def _dropout(c: Call) -> str:
    x = c.need(0)
    return f"({x}, torch.ones_like({x}, dtype=torch.bool))" if len(c.outputs) > 1 else x


# -- convolution and pooling --------------------------------------------------------------

def _window(c: Call, kernel_rank: int) -> tuple[list[int], list[int], list[int], list[int] | None]:
    """strides, dilations, symmetric pads (or the begin pads) and the asymmetric full pad list for F.pad."""
    n = kernel_rank
    strides = list(c.a("strides", [1] * n))
    dilations = list(c.a("dilations", [1] * n))
    auto_pad = c.a("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID"):
        raise Unsupported(f"auto_pad {auto_pad}")
    pads = list(c.a("pads", [0] * 2 * n)) if auto_pad == "NOTSET" else [0] * 2 * n
    if pads[:n] == pads[n:]:
        return strides, dilations, pads[:n], None
    torch_pads = [v for d in reversed(range(n)) for v in (pads[d], pads[d + n])]
    return strides, dilations, [0] * n, torch_pads


@lowers("Conv")
def _conv(c: Call) -> str:
    n = c.ranks[1] - 2
    strides, dilations, pads, full = _window(c, n)
    x = c.need(0) if full is None else f"F.pad({c.need(0)}, {full})"
    return (f"F.conv{n}d({x}, {c.need(1)}, {c.x(2)}, {py(tuple(strides))}, {py(tuple(pads))}, "
            f"{py(tuple(dilations))}, {c.a('group', 1)})")


@lowers("ConvTranspose")
def _conv_transpose(c: Call) -> str:
    n = c.ranks[1] - 2
    if c.a("output_shape") is not None or c.a("auto_pad", "NOTSET") != "NOTSET":
        raise Unsupported("output_shape or auto_pad")
    pads = list(c.a("pads", [0] * 2 * n))
    if pads[:n] != pads[n:]:
        raise Unsupported(f"asymmetric pads {pads}")
    return (f"F.conv_transpose{n}d({c.need(0)}, {c.need(1)}, {c.x(2)}, {py(tuple(c.a('strides', [1] * n)))}, "
            f"{py(tuple(pads[:n]))}, {py(tuple(c.a('output_padding', [0] * n)))}, {c.a('group', 1)}, "
            f"{py(tuple(c.a('dilations', [1] * n)))})")


@lowers("MaxPool")
def _maxpool(c: Call) -> str:
    n = c.ranks[0] - 2
    kernel = list(c.a("kernel_shape"))
    strides, dilations, pads, full = _window(c, n)
    ceil = bool(c.a("ceil_mode", 0))
    if len(c.outputs) == 1:
        x = c.need(0) if full is None else f'F.pad({c.need(0)}, {full}, value=float("-inf"))'
        return f"F.max_pool{n}d({x}, {py(tuple(kernel))}, {py(tuple(strides))}, {py(tuple(pads))}, " \
               f"{py(tuple(dilations))}, {ceil})"
    if full is not None or c.a("storage_order", 0):
        raise Unsupported("indices with asymmetric pads or column-major storage_order")
    # PyTorch counts indices per (n, c) plane, ONNX over the whole input tensor
    pool = (f"F.max_pool{n}d(t, {py(tuple(kernel))}, {py(tuple(strides))}, {py(tuple(pads))}, "
            f"{py(tuple(dilations))}, {ceil}, return_indices=True)")
    offset = (f"torch.arange(t.shape[0] * t.shape[1], device=t.device).reshape(t.shape[0], t.shape[1]"
              f"{', 1' * n}) * t.shape[2:].numel()")
    return f"(lambda t: (lambda y, i: (y, i + {offset}))(*{pool}))({c.need(0)})"


@lowers("MaxUnpool")
def _max_unpool(c: Call) -> str:
    n = c.ranks[0] - 2
    kernel = list(c.a("kernel_shape"))
    strides = list(c.a("strides", [1] * n))
    pads = list(c.a("pads", [0] * 2 * n))
    if c.x(2) is not None:
        shape = f"tuple({c.ints(2)})"
    else:
        sizes = ", ".join(f"(x.shape[{2 + d}] - 1) * {strides[d]} - {pads[d] + pads[d + n]} + {kernel[d]}"
                          for d in range(n))
        shape = f"(x.shape[0], x.shape[1], {sizes})"
    # ONNX's indices count over the whole output tensor: scatter into it flattened
    return (f"(lambda x, i: (lambda s: x.new_zeros(torch.Size(s).numel()).scatter(0, i.flatten(), x.flatten())"
            f".reshape(s))({shape}))({c.need(0)}, {c.need(1)})")


@lowers("AveragePool")
def _avgpool(c: Call) -> str:
    n = c.ranks[0] - 2
    kernel = list(c.a("kernel_shape"))
    strides, dilations, pads, full = _window(c, n)
    if any(d != 1 for d in dilations):
        raise Unsupported("dilations")
    include, ceil = bool(c.a("count_include_pad", 0)), bool(c.a("ceil_mode", 0))
    if full is None:
        return (f"F.avg_pool{n}d({c.need(0)}, {py(tuple(kernel))}, {py(tuple(strides))}, {py(tuple(pads))}, "
                f"{ceil}, {include})")
    # PyTorch pads symmetrically: the pads are written out with F.pad, and where padding is not counted
    # the sums of the padded input's windows are divided by the sums of a padded plane of ones (the
    # number of the input's own elements in each window).

    def pool(t: str) -> str:
        return f"F.avg_pool{n}d(F.pad({t}, {full}), {py(tuple(kernel))}, {py(tuple(strides))}, 0, {ceil}, True)"

    if include:
        return pool(c.need(0))
    if ceil:  # (a last window starting in the end padding: ONNX's shape inference keeps it, onnxruntime not)
        raise Unsupported("ceil_mode with asymmetric pads without count_include_pad")
    return f"(lambda t: {pool('t')} / {pool('torch.ones_like(t[:1, :1])')})({c.need(0)})"


@lowers("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(c: Call) -> str:
    fn = "mean" if c.op_type == "GlobalAveragePool" else "amax"
    return f"{c.need(0)}.{fn}(tuple(range(2, {c.ranks[0]})), keepdim=True)"


@lowers("Resize")
def _resize(c: Call) -> str:
    mode, ctm = c.a("mode", "nearest"), c.a("coordinate_transformation_mode", "half_pixel")
    if c.a("antialias", 0) or c.a("exclude_outside", 0) or c.a("axes") is not None \
            or c.a("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise Unsupported("antialias, exclude_outside, axes or keep_aspect_ratio_policy")
    n = c.ranks[0] - 2
    if mode == "nearest":
        how = {("asymmetric", "floor"): "'nearest'", ("half_pixel", "round_prefer_ceil"): "'nearest-exact'"}
        torch_mode = how.get((ctm, c.a("nearest_mode", "round_prefer_floor")))
        if torch_mode is None:
            raise Unsupported(f"nearest mode with {ctm} and {c.a('nearest_mode', 'round_prefer_floor')}")
        extra = ""
    else:
        if ctm not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            raise Unsupported(f"{mode} mode with {ctm}")
        if mode == "cubic" and c.a("cubic_coeff_a", -0.75) != -0.75:
            raise Unsupported("cubic_coeff_a other than -0.75")
        names = {"linear": {1: "linear", 2: "bilinear", 3: "trilinear"}, "cubic": {2: "bicubic"}}
        torch_mode = repr(names.get(mode, {}).get(n, "?"))
        if torch_mode == "'?'":
            raise Unsupported(f"{mode} mode over {n} spatial dims")
        extra = f", align_corners={ctm == 'align_corners'}"
    x = c.need(0)
    if c.x(3) is not None:
        return f"F.interpolate({x}, size={c.ints(3)}[2:], mode={torch_mode}{extra})"
    return (f"F.interpolate({x}, scale_factor={c.need(2)}.tolist()[2:], mode={torch_mode}{extra}, "
            f"recompute_scale_factor=False)")


# -- normalisation ----------------------------------------------------------------------

@lowers("BatchNormalization")
def _batchnorm(c: Call) -> str:
    if c.a("training_mode", 0) or len(c.outputs) > 1:
        raise Unsupported("training_mode=1 (the batch statistics and running-statistic updates of training); "
                          "export the model in eval mode (model.eval(), training=TrainingMode.EVAL)")
    return (f"F.batch_norm({c.need(0)}, {c.need(3)}, {c.need(4)}, {c.need(1)}, {c.need(2)}, False, 0.0, "
            f"{lit(c.a('epsilon', 1e-5))})")


@lowers("InstanceNormalization")
def _instance_norm(c: Call) -> str:
    return f"F.instance_norm({c.need(0)}, weight={c.need(1)}, bias={c.need(2)}, eps={lit(c.a('epsilon', 1e-5))})"


@lowers("LayerNormalization")
def _layer_norm(c: Call) -> str:
    if len(c.outputs) > 1:
        raise Unsupported("the Mean and InvStdDev outputs")
    axis = c.a("axis", -1) % c.ranks[0]
    return (f"F.layer_norm({c.need(0)}, {c.need(0)}.shape[{axis}:], {c.need(1)}, {c.x(2)}, "
            f"{lit(c.a('epsilon', 1e-5))})")


@lowers("GroupNormalization")
def _group_norm(c: Call) -> str:
    groups, x = c.a("num_groups"), c.need(0)
    per_channel = "(lambda v: v.reshape(1, -1, *([1] * (t.dim() - 2))))"
    # opset 18 gives scale and bias per group, 21 per channel
    widen = "" if c.opset >= 21 else f".repeat_interleave(t.shape[1] // {groups})"
    return (f"(lambda t: F.group_norm(t, {groups}, eps={lit(c.a('epsilon', 1e-5))}) * {per_channel}({c.need(1)}{widen})"
            f" + {per_channel}({c.need(2)}{widen}))({x})")


@lowers("LpNormalization")
def _lp_norm(c: Call) -> str:
    return f"F.normalize({c.need(0)}, p={lit(float(c.a('p', 2)))}, dim={c.a('axis', -1)}, eps=0.0)"


@lowers("LRN")
def _lrn(c: Call) -> str:
    return (f"F.local_response_norm({c.need(0)}, {c.a('size')}, alpha={lit(c.a('alpha', 1e-4))}, "
            f"beta={lit(c.a('beta', 0.75))}, k={lit(c.a('bias', 1.0))})")


@lowers("MeanVarianceNormalization")
def _mvn(c: Call) -> str:
    axes = py(tuple(c.a("axes", [0, 2, 3])))
    return (f"(lambda t: (t - t.mean({axes}, keepdim=True)) / (t.var({axes}, unbiased=False, keepdim=True) "
            f"+ 1e-9).sqrt())({c.need(0)})")


# -- recurrent layers -------------------------------------------------------------------

#: row blocks of ONNX's gate order in PyTorch's order: LSTM iofc -> ifgo, GRU zrh -> rzn, RNN one gate
_GATES = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}


def _recurrent(c: Call) -> str:
    """LSTM, GRU and RNN with their default activations as ``torch.lstm``/``gru``/``rnn_tanh``."""
    kind = c.op_type
    if c.a("clip") is not None or c.a("input_forget", 0) or c.x(4) is not None \
            or (kind == "LSTM" and c.x(7) is not None):
        raise Unsupported("clip, input_forget, sequence_lens or peepholes")
    if c.a("activations") and kind != "RNN" or (kind == "RNN" and c.a("activations", ["Tanh"])[0] != "Tanh"):
        raise Unsupported("activations other than the defaults")
    if kind == "GRU" and not c.a("linear_before_reset", 0):
        raise Unsupported("GRU with linear_before_reset=0 (PyTorch's GRU applies the reset gate after "
                          "the hidden projection)")
    direction = c.a("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    gates, h = _GATES[kind], c.a("hidden_size")
    g = len(gates)
    layout = c.a("layout", 0)
    w, r, b = c.need(1), c.need(2), c.x(3)

    def rows(t: str, d: int) -> str:
        return f"{t}[{d}].reshape({g}, {h}, -1)[{gates}].reshape({g * h}, -1)"

    params = []
    for d in range(dirs):
        params += [rows(w, d), rows(r, d)]
        if b is not None:
            params += [f"{b}[{d}, :{g * h}].reshape({g}, {h})[{gates}].reshape(-1)",
                       f"{b}[{d}, {g * h}:].reshape({g}, {h})[{gates}].reshape(-1)"]
    batch_axis, time_axis = (1, 0) if layout == 0 else (0, 1)

    def state(i: int) -> str:
        given = c.x(i)
        if given is None:
            return f"x.new_zeros({dirs}, x.shape[{batch_axis}], {h})"
        return given if layout == 0 else f"{given}.transpose(0, 1)"

    x = c.need(0)
    seq = f"x.flip({time_axis})" if direction == "reverse" else "x"
    hx = f"({state(5)}, {state(6)})" if kind == "LSTM" else state(5)
    fn = {"LSTM": "torch.lstm", "GRU": "torch.gru", "RNN": "torch.rnn_tanh"}[kind]
    run = f"{fn}({seq}, {hx}, [{', '.join(params)}], {b is not None}, 1, 0.0, False, {dirs == 2}, {layout == 1})"
    y = f"r[0].flip({time_axis})" if direction == "reverse" else "r[0]"
    # ONNX: Y (S, D, N, H) or with layout 1 (N, S, D, H); states (D, N, H) or (N, D, H)
    if layout == 0:
        y = f"{y}.reshape({y}.shape[0], {y}.shape[1], {dirs}, {h}).transpose(1, 2)"
        states = ["r[1]", "r[2]"]
    else:
        y = f"{y}.reshape({y}.shape[0], {y}.shape[1], {dirs}, {h})"
        states = ["r[1].transpose(0, 1)", "r[2].transpose(0, 1)"]
    if kind != "LSTM":
        states = states[:1]
    outs = [y, *states][:len(c.outputs)]
    body = outs[0] if len(outs) == 1 else f"({', '.join(outs)})"
    return f"(lambda x: (lambda r: {body})({run}))({x})"


for _op in _GATES:
    TORCH_LOWERINGS[_op] = _recurrent


# -- the rest: small ops ------------------------------------------------------------------

@lowers("Swish")
def _swish(c: Call) -> str:
    return f"(lambda t: t * torch.sigmoid({lit(c.a('alpha', 1.0))} * t))({c.need(0)})"


@lowers("EyeLike")
def _eye_like(c: Call) -> str:
    dtype = torch_dtype(c.outputs[0].dtype)
    return (f"(lambda t: (torch.arange(t.shape[1], device=t.device) - torch.arange(t.shape[0], device=t.device)"
            f".unsqueeze(1) == {c.a('k', 0)}).to({dtype}))({c.need(0)})")


@lowers("Det")
def _det(c: Call) -> str:
    return f"torch.linalg.det({c.need(0)})"


@lowers("Compress")
def _compress(c: Call) -> str:
    axis = c.a("axis")
    x, keep = c.need(0), f"torch.nonzero({c.need(1)}).flatten()"
    if axis is None:
        return f"{x}.flatten()[{keep}]"
    return f"{x}.index_select({axis}, {keep})"


@lowers("LpPool")
def _lp_pool(c: Call) -> str:
    n = c.ranks[0] - 2
    strides, dilations, pads, full = _window(c, n)
    if full is not None or any(pads) or any(d != 1 for d in dilations) or c.a("ceil_mode", 0):
        raise Unsupported("pads, dilations or ceil_mode")
    return f"F.lp_pool{n}d({c.need(0)}, {lit(float(c.a('p', 2)))}, {py(tuple(c.a('kernel_shape')))}, {py(tuple(strides))})"


@lowers("GlobalLpPool")
def _global_lp_pool(c: Call) -> str:
    p = float(c.a("p", 2))
    return f"{c.need(0)}.abs().pow({lit(p)}).sum(tuple(range(2, {c.ranks[0]})), keepdim=True).pow({lit(1 / p)})"


@lowers("DequantizeLinear")
def _dequantize(c: Call) -> str:
    axis = c.a("axis", 1)
    zero = f"{c.x(2)}.float()" if c.x(2) is not None else "0"
    shape = f"[-1 if d == {axis} % t.dim() else 1 for d in range(t.dim())]"
    return (f"(lambda t, s: ((t.float() - ({zero} if s.dim() == 0 else {zero}.reshape({shape}) if {c.x(2) is not None} "
            f"else 0)) * (s if s.dim() == 0 else s.reshape({shape}))))({c.need(0)}, {c.need(1)})")


@lowers("BitShift")
def _bit_shift(c: Call) -> str:
    if c.outputs[0].dtype in ("uint16", "uint32", "uint64"):  # (torch has the dtypes, not their shifts)
        raise Unsupported(f"on {c.outputs[0].dtype} tensors (PyTorch shifts uint8 and signed integers only)")
    fn = "torch.bitwise_left_shift" if c.a("direction") == "LEFT" else "torch.bitwise_right_shift"
    return f"{fn}({c.need(0)}, {c.need(1)})"


@lowers("RandomNormalLike", "RandomUniformLike", "Bernoulli")
def _random_like(c: Call) -> str:
    dtype = torch_dtype(c.outputs[0].dtype)
    x = c.need(0)
    if c.op_type == "Bernoulli":
        return f"torch.bernoulli({x}).to({dtype})"
    if c.op_type == "RandomNormalLike":
        return f"(torch.randn_like({x}, dtype={dtype}) * {lit(c.a('scale', 1.0))} + {lit(c.a('mean', 0.0))})"
    lo, hi = c.a("low", 0.0), c.a("high", 1.0)
    return f"(torch.rand_like({x}, dtype={dtype}) * {lit(hi - lo)} + {lit(lo)})"


@lowers("GridSample")
def _grid_sample(c: Call) -> str:
    mode = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest", "cubic": "bicubic",
            "bicubic": "bicubic"}[c.a("mode", "linear" if c.opset >= 20 else "bilinear")]
    return (f"F.grid_sample({c.need(0)}, {c.need(1)}, mode={lit(mode)}, padding_mode={lit(c.a('padding_mode', 'zeros'))}, "
            f"align_corners={bool(c.a('align_corners', 0))})")
