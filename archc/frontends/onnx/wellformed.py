"""ONNX's typing rules that its own shape inference leaves unchecked, or checks without saying
what it expected.

ONNX's strict shape inference (run per node by :mod:`archc.frontends.onnx.inference`) rejects
most ill-typed nodes, but not all: a ``Conv`` whose weight wants more input channels than the
input has, or a ``Reshape`` to a different number of elements, pass it and would only fail when
run. And where it does reject (``Incompatible dimensions for matrix multiplication``) it names
neither the dims nor what they should be. :func:`problem` checks those rules over a node's
input types, once per kind of node like the inference, and says what was expected.

``typed`` is the node's inputs as the per-node inference takes them: an IR
:class:`~archc.ir.types.TensorType` for a computed value or a large constant, the array itself
for a small integer constant, None for an absent or symbolic input.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import onnx
from onnx import helper

from archc.ir.types import TensorType

__all__ = ["problem"]

Typed = Sequence[Any]
Rule = Callable[[dict[str, Any], Typed], "str | None"]


def _shape(t: Any) -> tuple | None:
    if isinstance(t, TensorType):
        return tuple(t.shape)
    if isinstance(t, np.ndarray):
        return tuple(t.shape)
    return None


def _known(d: Any) -> bool:
    return type(d) is int


def _text(shape: tuple) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _conv(attrs: dict[str, Any], typed: Typed) -> str | None:
    x, w = (_shape(t) for t in typed[:2])
    if x is None or w is None:
        return None
    if len(x) != len(w):
        return f"weight {_text(w)} has rank {len(w)}, the input {_text(x)} rank {len(x)}; they must be equal"
    group = int(attrs.get("group", 1))
    if len(x) < 2 or group < 1:
        return None
    channels, wanted = x[1], w[1]
    if _known(channels) and _known(wanted) and channels != wanted * group:
        per = f" ({wanted} per group x {group} groups)" if group > 1 else ""
        return (f"weight {_text(w)} expects {wanted * group} input channels{per}, "
                f"the input {_text(x)} has {channels}")
    if _known(w[0]) and w[0] % group:
        return f"weight {_text(w)} has {w[0]} output channels, not a multiple of group={group}"
    return _bias(w[0], typed, 2, "output channels") or _window(attrs, x, w[2:])


def _window(attrs: dict[str, Any], x: tuple, kernel: Sequence[Any]) -> str | None:
    """A sliding window (explicit pads) must fit its padded input along every spatial dim."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or len(x) != len(kernel) + 2:
        return None
    n = len(kernel)
    pads = list(attrs.get("pads", [0] * 2 * n))
    dilations = list(attrs.get("dilations", [1] * n))
    if len(pads) != 2 * n or len(dilations) != n:
        return None  # ONNX's own inference names a malformed attribute
    for i, (size, k) in enumerate(zip(x[2:], kernel)):
        if not (_known(size) and _known(k)):
            continue
        span, padded = (k - 1) * dilations[i] + 1, size + pads[i] + pads[i + n]
        if span > padded:
            return (f"the window spans {span} along spatial dim {i} (kernel {k}, dilation {dilations[i]}) but the "
                    f"input {_text(x)} has only {padded} there (with pads {pads[i]}+{pads[i + n]})")
    return None


def _pool(attrs: dict[str, Any], typed: Typed) -> str | None:
    x = _shape(typed[0])
    kernel = attrs.get("kernel_shape")
    return None if x is None or kernel is None else _window(attrs, x, list(kernel))


def _layernorm(attrs: dict[str, Any], typed: Typed) -> str | None:
    x = _shape(typed[0])
    if x is None or not x:
        return None
    axis = int(attrs.get("axis", -1))
    if not -len(x) <= axis < len(x):
        return None  # ONNX's own inference names it
    normalized = x[axis % len(x):]
    for what, t in zip(("scale", "bias"), typed[1:3]):
        p = _shape(t)
        if p is None or not all(map(_known, (*p, *normalized))):
            continue
        try:
            fits = np.broadcast_shapes(p, normalized) == tuple(normalized)
        except ValueError:
            fits = False
        if not fits:
            return (f"{what} {_text(p)} must broadcast to the normalized shape {_text(normalized)} "
                    f"(the input {_text(x)} from axis {axis})")
    return None


def _conv_transpose(attrs: dict[str, Any], typed: Typed) -> str | None:
    x, w = (_shape(t) for t in typed[:2])
    if x is None or w is None:
        return None
    if len(x) != len(w):
        return f"weight {_text(w)} has rank {len(w)}, the input {_text(x)} rank {len(x)}; they must be equal"
    group = int(attrs.get("group", 1))
    if len(x) >= 2 and _known(x[1]) and _known(w[0]) and x[1] != w[0]:
        return f"weight {_text(w)} expects {w[0]} input channels (its first dim), the input {_text(x)} has {x[1]}"
    if len(w) >= 2 and _known(w[1]) and group >= 1:
        return _bias(w[1] * group, typed, 2, "output channels")
    return None


def _bias(size: Any, typed: Typed, index: int, what: str) -> str | None:
    b = _shape(typed[index]) if len(typed) > index else None
    if b is None or not _known(size):
        return None
    if len(b) != 1 or (_known(b[0]) and b[0] != size):
        return f"bias {_text(b)} must be [{size}], one value per {what[:-1]} ({size} {what})"
    return None


def _matmul(attrs: dict[str, Any], typed: Typed) -> str | None:
    a, b = (_shape(t) for t in typed[:2])
    if a is None or b is None or not a or not b:
        return None
    inner_a = a[-1]
    inner_b = b[-2] if len(b) >= 2 else b[0]
    if _known(inner_a) and _known(inner_b) and inner_a != inner_b:
        where = "dim -2" if len(b) >= 2 else "length"
        return (f"A {_text(a)} has {inner_a} columns (its last dim), B {_text(b)} has {inner_b} rows "
                f"(its {where}); a matrix product needs them equal")
    return None


def _gemm(attrs: dict[str, Any], typed: Typed) -> str | None:
    a, b = (_shape(t) for t in typed[:2])
    if a is None or b is None:
        return None
    if len(a) != 2 or len(b) != 2:
        return f"A {_text(a)} and B {_text(b)} must both be matrices (rank 2)"
    k_a = a[0] if attrs.get("transA", 0) else a[1]
    k_b = b[1] if attrs.get("transB", 0) else b[0]
    if _known(k_a) and _known(k_b) and k_a != k_b:
        ta = "A^T" if attrs.get("transA", 0) else "A"
        tb = "B^T" if attrs.get("transB", 0) else "B"
        return (f"{ta} has {k_a} columns but {tb} has {k_b} rows (A {_text(a)}, transA={attrs.get('transA', 0)}; "
                f"B {_text(b)}, transB={attrs.get('transB', 0)}); a matrix product needs them equal")
    return None


def _reshape(attrs: dict[str, Any], typed: Typed) -> str | None:
    x = _shape(typed[0])
    target = typed[1] if len(typed) > 1 else None
    if x is None or not all(_known(d) for d in x) or not isinstance(target, np.ndarray) or target.ndim != 1 \
            or target.dtype.kind not in "iu":
        return None
    wanted = [int(v) for v in target]
    dims = []
    for i, v in enumerate(wanted):
        if v == 0 and not attrs.get("allowzero", 0):
            if i >= len(x):
                return f"target {wanted} copies dim {i} (a 0) but the input {_text(x)} has rank {len(x)}"
            v = x[i]
        dims.append(v)
    if sum(v == -1 for v in dims) > 1 or any(v < -1 for v in dims):
        return f"target {wanted} may have one -1 and no other negative entry"
    count, rest = math.prod(x), math.prod(v for v in dims if v != -1)
    if -1 in dims:
        if rest == 0 or count % rest:
            return f"cannot reshape {count} elements (input {_text(x)}) to {wanted}: {count} is not a multiple of {rest}"
        return None
    if rest != count:
        return f"cannot reshape {count} elements (input {_text(x)}) to {wanted} ({rest} elements)"
    return None


def _prelu(attrs: dict[str, Any], typed: Typed) -> str | None:
    """The slope broadcasts to the input from the right (unidirectionally, opset 7 on)."""
    x, slope = (_shape(t) for t in typed[:2])
    if x is None or slope is None or not all(map(_known, (*x, *slope))):
        return None
    try:
        fits = np.broadcast_shapes(slope, x) == tuple(x)
    except ValueError:
        fits = False
    if fits:
        return None
    hint = f" (one per channel is [{x[1]}{', 1' * (len(x) - 2)}])" if len(x) > 2 else ""
    return f"slope {_text(slope)} must broadcast to the input {_text(x)} from the right{hint}"


#: ONNX op type (default domain) -> its rule
RULES: dict[str, Rule] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Reshape": _reshape,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "LpPool": _pool,
    "LayerNormalization": _layernorm,
    "PRelu": _prelu,
}


def _dtype(t: Any) -> str | None:
    if isinstance(t, TensorType):
        return t.dtype
    return t.dtype.name if isinstance(t, np.ndarray) else None


def shared_type(node: onnx.NodeProto, typed: Typed, opset: int) -> str | None:
    """Inputs the op's schema binds to one type parameter (Add's A and B are both ``T``) must have
    one element type; what they have otherwise."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except Exception:  # noqa: BLE001 - the checker has vouched for the op; no schema, no rule
        return None
    params = {c.type_param_str for c in schema.type_constraints}
    formals = list(schema.inputs)
    if not formals:
        return None
    first: dict[str, tuple[str, str]] = {}
    for i, (name, t) in enumerate(zip(node.input, typed)):
        formal = formals[min(i, len(formals) - 1)]
        dtype = _dtype(t)
        mixed = formal.option == onnx.defs.OpSchema.FormalParameterOption.Variadic and not formal.is_homogeneous
        if not name or dtype is None or formal.type_str not in params or mixed:
            continue
        seen = first.setdefault(formal.type_str, (name, dtype))
        if seen[1] != dtype:
            return (f"inputs '{seen[0]}' ({seen[1]}) and '{name}' ({dtype}) must have one element type "
                    f"(both are {formal.type_str} in {node.op_type}'s schema)")
    return None


def problem(node: onnx.NodeProto, typed: Typed, opset: int) -> str | None:
    """What is wrong with the input types of a node of the standard domain by ONNX's rules for its
    op (at ``opset``), or None."""
    found = shared_type(node, typed, opset)
    rule = RULES.get(node.op_type)
    if found is not None or rule is None:
        return found
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return rule(attrs, typed)
