"""Element-wise arithmetic between tensors or with a constant (mul, sub, div), scaling by a
constant, mean over dims, and batched matrix multiplication.

``add``, ``sub``, ``mul`` and ``div`` take either two tensors or one tensor and a constant
``value`` (``{op: add, value: 3}`` is ``x + 3``; with ``reverse: true``, ``sub``/``div`` give
``value - x`` / ``value / x``). With a constant they are no merge: the analyses see a scale
(mul, div) or an affine shift (add, sub).
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, checked_dim, broadcast, numel, py
from archc.ops.registry import register


def _same_dtype(ins) -> None:
    dtypes = {t.dtype for t in ins}
    if len(dtypes) > 1:
        raise ShapeError(f"inputs have different dtypes: {', '.join(sorted(dtypes))}; expected one dtype")


VALUE_ATTR = Attr("float", None, doc="a constant operand instead of a second tensor: x <op> value")
REVERSE_ATTR = Attr("bool", False, doc="with 'value': value <op> x instead of x <op> value")


class ConstantOperand(OpDef):
    """An arithmetic op of two tensors that takes a constant ``value`` in place of the second.

    Subclasses set ``symbol`` (the Python operator), ``onnx_op`` and the role the op has with
    a constant (``const_role``); ``reversible`` ones also take ``reverse``.
    """

    symbol: str = ""
    onnx_op: str = ""
    const_role: str = "affine"
    min_inputs = 1

    @staticmethod
    def constant(node) -> float | None:
        return node.attrs.get("value")

    def role_of(self, node):
        return self.role if self.constant(node) is None else self.const_role

    def check_operands(self, node, ins) -> bool:
        """Whether the node uses a constant; ShapeError unless exactly one of value / 2nd tensor."""
        value = self.constant(node)
        if value is None and len(ins) < 2:
            raise ShapeError(f"{self.name} needs two inputs, or one input and a constant 'value'")
        if value is not None and len(ins) != 1:
            raise ShapeError(f"{self.name} with a constant 'value' takes one input, got {len(ins)}")
        if value is not None and not ins[0].dtype.startswith("float"):
            raise ShapeError(f"{self.name} with a constant 'value' expects a floating-point input, got "
                             f"{ins[0].dtype} {ins[0]}")
        return value is not None

    def torch_constant(self, node, arg: str) -> str:
        value = repr(float(self.constant(node)))
        if node.attrs.get("reverse"):
            return f"{value} {self.symbol} {arg}"
        return f"{arg} {self.symbol} {value}"

    def onnx_constant(self, emit, node, inputs, ins) -> list[str]:
        # a literal, not an initializer: readers take a float initializer for a learned parameter
        c = emit.literal(np.array(self.constant(node), dtype=ins[0].dtype), "value")
        operands = [c, inputs[0]] if node.attrs.get("reverse") else [inputs[0], c]
        return emit.add_node(self.onnx_op, operands)


class _Binary(ConstantOperand):
    """a <op> b with NumPy broadcasting; both inputs of one dtype (or a <op> value)."""

    inputs = ("a", "b")

    def infer(self, node, ins):
        if self.check_operands(node, ins):
            return [ins[0]]
        _same_dtype(ins)
        return [ins[0].with_shape(broadcast([t.shape for t in ins]))]

    def torch_forward(self, node, ins, args, module):
        if self.constant(node) is not None:
            return self.torch_constant(node, args[0])
        return f"{args[0]} {self.symbol} {args[1]}"

    def onnx(self, emit, node, inputs, ins):
        if self.constant(node) is not None:
            return self.onnx_constant(emit, node, inputs, ins)
        return emit.add_node(self.onnx_op, inputs)


@register
class Mul(_Binary):
    name = "mul"
    aliases = ("multiply",)
    doc = "Element-wise product a * b (broadcasting), e.g. a gate times a feature map; or x * value."
    attrs = {"value": VALUE_ATTR}
    role, const_role = "merge_mul", "scale"
    symbol, onnx_op = "*", "Mul"


@register
class Sub(_Binary):
    name = "sub"
    aliases = ("subtract",)
    doc = "Element-wise difference a - b (broadcasting); or x - value (value - x with reverse)."
    attrs = {"value": VALUE_ATTR, "reverse": REVERSE_ATTR}
    role = "merge_sub"
    symbol, onnx_op = "-", "Sub"


@register
class Div(_Binary):
    name = "div"
    aliases = ("divide",)
    doc = "Element-wise true division a / b (broadcasting) of floating-point tensors; or x / value."
    attrs = {"value": VALUE_ATTR, "reverse": REVERSE_ATTR}
    symbol, onnx_op = "/", "Div"
    const_role = "scale"

    def infer(self, node, ins):
        for i, t in enumerate(ins):
            # torch's '/' on integers gives floats while ONNX Div truncates: only floats agree.
            if not t.dtype.startswith("float"):
                raise ShapeError(f"input {i} is {t.dtype} {t}; div expects floating-point inputs")
        return super().infer(node, ins)


@register
class Scale(OpDef):
    name = "scale"
    doc = "Multiplies by a constant factor (e.g. Inception-ResNet's residual scaling 0.17)."
    attrs = {"factor": Attr("float", doc="the constant multiplier")}
    role = "scale"

    def infer(self, node, ins):
        if not ins[0].dtype.startswith("float"):
            raise ShapeError(f"scale expects a floating-point input, got {ins[0].dtype} {ins[0]}")
        return [ins[0]]

    def torch_forward(self, node, ins, args, module):
        return f"{args[0]} * {py(float(node.attrs['factor']))}"

    def onnx(self, emit, node, inputs, ins):
        factor = emit.literal(np.array(node.attrs["factor"], dtype=ins[0].dtype), "factor")  # not a parameter
        return emit.add_node("Mul", [inputs[0], factor])


class Reduction(OpDef):
    """A reduction over the dims in ``dims`` (negative count from the end), which ``keepdim`` keeps
    with size 1: the attributes, the output shape and the lowerings that ``mean``, ``sum`` and
    ``amax`` share (``x.<torch_method>(dim=..., keepdim=...)``, ONNX's ``<onnx_op>``)."""

    #: the tensor method PyTorch reduces with, and ONNX's node
    torch_method: ClassVar[str] = ""
    onnx_op: ClassVar[str] = ""
    #: the opset from which the ONNX node takes its axes as an input, not an attribute
    axes_input_opset: ClassVar[int] = 18

    def torch_forward(self, node, ins, args, module):
        dims = self._dims(node, ins[0])
        return f"{args[0]}.{self.torch_method}(dim={py(dims)}, keepdim={node.attrs['keepdim']})"

    def onnx_reduce(self, emit, node, x, ins):
        """The ONNX node reducing ``x`` (an input name) over the node's dims."""
        dims = list(self._dims(node, ins[0]))
        keep = int(node.attrs["keepdim"])
        if emit.opset >= self.axes_input_opset:
            axes = emit.const(np.array(dims, dtype=np.int64), "axes")
            return emit.add_node(self.onnx_op, [x, axes], keepdims=keep)
        return emit.add_node(self.onnx_op, [x], axes=dims, keepdims=keep)

    def onnx(self, emit, node, inputs, ins):
        return self.onnx_reduce(emit, node, inputs[0], ins)

    def _dims(self, node, x) -> tuple[int, ...]:
        raw = node.attrs["dims"]
        raw = (raw,) if isinstance(raw, int) else tuple(raw)
        dims = tuple(sorted({checked_dim(d, x) for d in raw}))
        if len(dims) != len(raw):
            raise ShapeError(f"dims {list(raw)} name the same dim twice")
        return dims

    def reduced_shape(self, node, x) -> tuple:
        """The shape of ``x`` reduced over the node's dims."""
        dims = self._dims(node, x)
        if node.attrs["keepdim"]:
            return tuple(1 if i in dims else d for i, d in enumerate(x.shape))
        return tuple(d for i, d in enumerate(x.shape) if i not in dims)


@register
class Mean(Reduction):
    name = "mean"
    aliases = ("reduce_mean",)
    doc = "Mean over the given dims (e.g. over tokens), optionally keeping them as size 1."
    attrs = {
        "dims": Attr("ints", doc="the dim or dims to average over (negative counts from the end)"),
        "keepdim": Attr("bool", False, doc="keep the reduced dims with size 1"),
    }
    role = "pool"
    torch_method, onnx_op = "mean", "ReduceMean"  # (axes an input from opset 18)

    def infer(self, node, ins):
        x = ins[0]
        if not x.dtype.startswith("float"):
            raise ShapeError(f"mean expects a floating-point input, got {x.dtype} {x}")
        return [x.with_shape(self.reduced_shape(node, x))]


@register
class MatMul(OpDef):
    name = "matmul"
    aliases = ("bmm",)
    doc = "Matrix product a @ b with batch dims broadcast (torch.matmul / numpy.matmul rules)."
    inputs = ("a", "b")
    role = "matmul"

    def infer(self, node, ins):
        a, b = ins
        _same_dtype(ins)
        if a.rank == 0 or b.rank == 0:
            raise ShapeError(f"matmul expects inputs of at least 1 dim, got {a} and {b}")
        # 1-D operands are promoted to matrices and the added dim removed afterwards.
        sa = a.shape if a.rank > 1 else (1, *a.shape)
        sb = b.shape if b.rank > 1 else (*b.shape, 1)
        if sa[-1] != sb[-2]:
            raise ShapeError(f"inner dims differ: a {a} has {sa[-1]} columns but b {b} has {sb[-2]} rows; "
                             "expected a (..., M, K) and b (..., K, P)")
        try:
            batch = broadcast([sa[:-2], sb[:-2]]) if len(sa) > 2 or len(sb) > 2 else ()
        except ShapeError as exc:
            raise ShapeError(f"batch dims do not broadcast: a {a}, b {b} ({exc})") from None
        shape = [*batch]
        if a.rank > 1:
            shape.append(sa[-2])
        if b.rank > 1:
            shape.append(sb[-1])
        return [a.with_shape(tuple(shape))]

    def macs(self, node, ins, outs):
        return numel(outs[0]) * ins[0].shape[-1]  # each output element: K products

    def torch_forward(self, node, ins, args, module):
        return f"torch.matmul({args[0]}, {args[1]})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("MatMul", inputs)
