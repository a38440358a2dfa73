"""What the ONNX importer knows about each ONNX value, and static evaluation of shape arithmetic.

Every ONNX value name is bound to one record:

* :class:`Const`: a constant array (an initializer, a ``Constant`` node, or a node folded
  because all its inputs were constant); ``learned`` says whether it came from an
  initializer (a parameter) rather than only from literals;
* :class:`Sym`: shape data with symbolic entries, e.g. ``Shape(x)`` = ``[N, 64, 8, 8]``
  and what ``Gather``/``Concat``/``Mul``... compute from it. Entries are ints or str
  dims; a str is an IR symbol (``"N"``) or an expression over them (``"N*2"``);
* :class:`Lazy`: the output of a node whose inputs are all static (Const, Sym, Lazy)
  but which could not be evaluated (``ConstantOfShape`` of a symbolic shape, ...);
* :class:`Tensor`: a computed IR value.

Sym and Lazy values are computed only when a node uses them as data; a node that
reads them as a shape (Reshape's target, Resize's scales, ...) takes their value
instead, so shape arithmetic disappears from the IR. Symbolic evaluation here is a
small table of numpy functions over object arrays, one per ONNX op, like
:mod:`onnx.reference`'s; constant folding uses :class:`onnx.reference.ReferenceEvaluator`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np
import onnx
from onnx import helper

from archc.errors import ShapeError, first_line
from archc.ir import dims
from archc.ir.graph import Value

Dim = Union[int, str]


@dataclass(slots=True)
class Const:
    array: np.ndarray
    learned: bool = False
    #: what a node kind's key holds of this constant, by how the key reads it (made on first use by
    #: :meth:`~archc.frontends.onnx.conversion.Conversion.kind`; a constant is read by many nodes)
    parts: dict[tuple[bool, bool], tuple] | None = field(default=None, compare=False, repr=False)
    #: the tag of its part of a kind key for a node whose op reads no float values (see
    #: :mod:`archc.frontends.onnx.kinds`), where given when it was read (initializers)
    tag: int | None = field(default=None, compare=False, repr=False)
    #: the initializer a learned constant was folded from by a node of that one learned input (a class
    #: token expanded to a fixed batch): the name a table read from it goes by (its state_dict key)
    source: str | None = field(default=None, compare=False, repr=False)
    #: for a constant folded over learned ones, the node that computed it: (op type, its input names),
    #: what a converter reads a weight's parametrization from (:mod:`~archc.frontends.onnx.parametrized`)
    made_by: tuple[str, tuple[str, ...]] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class Sym:
    array: np.ndarray          # object array of int | str
    node: onnx.NodeProto       # the producer, computed when the value is used as data
    out: int = 0               # which output of the producer


@dataclass(slots=True)
class Lazy:
    node: onnx.NodeProto
    out: int = 0


@dataclass(slots=True)
class Tensor:
    value: Value


Record = Union[Const, Sym, Lazy, Tensor]


class ShapeArithmeticError(ArithmeticError):
    """Shape arithmetic that has no answer: a division by a zero dim, a dim beyond int64."""

#: ops that must run every time (never folded)
NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                    "Bernoulli"}


def short_float(value: float, dtype: Any = np.float32) -> float:
    """The shortest decimal that is the same ``dtype`` number: ONNX stores float attributes
    as float32, so a model's ``1e-05`` reads back as 9.999999747378752e-06 without this."""
    return _short_float(float(value), np.dtype(dtype))


@functools.lru_cache(maxsize=4096)
def _short_float(value: float, dtype: np.dtype) -> float:
    # cached: a model repeats its few epsilons and momenta in every norm layer
    return float(str(dtype.type(value))) if dtype.itemsize <= 4 else value


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as plain Python values (str decoded; tensors as numpy arrays)."""
    out: dict[str, Any] = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.FLOAT:
            value = short_float(value)
        elif a.type == onnx.AttributeProto.FLOATS:
            value = [short_float(v) for v in value]
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, onnx.TensorProto):
            value = _tensor_value(a.name, value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        out[a.name] = value
    return out


class UnreadableAttribute(ValueError):
    """A node attribute's tensor that onnx's numpy_helper cannot read (a data type no ONNX version defines,
    data that does not fit its dims): the caller reports it at the node."""


def _tensor_value(name: str, tensor: onnx.TensorProto) -> np.ndarray:
    try:
        return onnx.numpy_helper.to_array(tensor)
    except Exception as exc:  # noqa: BLE001 - KeyError for an unknown data type, ValueError for bad data
        known = tensor.data_type in onnx.TensorProto.DataType.values()
        why = f"{helper.tensor_dtype_to_string(tensor.data_type)}: {first_line(exc)}" if known \
            else f"data type {tensor.data_type}, which no ONNX version defines"
        raise UnreadableAttribute(f"attribute '{name}' holds a tensor that cannot be read ({why})") from None


def fold(node: onnx.NodeProto, arrays: list[np.ndarray | None], opsets: dict[str, int]) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constant (onnx's reference implementation).

    The node runs inside a one-node model importing the model's opsets: a bare node
    would run as the newest version of its op (Unsqueeze-11's ``axes`` attribute fails).
    Nodes alike but for their value names share one evaluator (:func:`_evaluator`).
    """
    feeds: dict[str, np.ndarray] = {}
    canonical: dict[str, str] = {}
    for name, arr in zip(node.input, arrays):
        if name and name not in canonical:
            canonical[name] = f"x{len(canonical)}"
            feeds[canonical[name]] = arr
    key = (node.op_type, node.domain, tuple(a.SerializeToString() for a in node.attribute),
           tuple(canonical.get(name, "") for name in node.input), tuple(bool(o) for o in node.output),
           tuple(sorted(opsets.items())))
    return [np.asarray(v) for v in _evaluator(key, node).run(None, feeds)]


#: one-node reference evaluators by (op, domain, attributes, input pattern, outputs, opsets)
_EVALUATORS: dict[tuple, Any] = {}


def _evaluator(key: tuple, node: onnx.NodeProto) -> Any:
    """The reference evaluator of ``node`` with its values renamed x0, x1, ... (inputs) and
    y0, y1, ... (outputs), built once per key: building one costs more than running it."""
    if key not in _EVALUATORS:
        from onnx.reference import ReferenceEvaluator

        op_type, domain, _, inputs, outputs, opsets = key
        renamed = helper.make_node(op_type, list(inputs), [f"y{k}" if o else "" for k, o in enumerate(outputs)],
                                   domain=domain or None)
        renamed.attribute.extend(node.attribute)
        graph = helper.make_graph([renamed], "fold", [onnx.ValueInfoProto(name=n) for n in dict.fromkeys(inputs) if n],
                                  [onnx.ValueInfoProto(name=f"y{k}") for k, o in enumerate(outputs) if o])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
        if len(_EVALUATORS) >= 1024:
            _EVALUATORS.clear()
        _EVALUATORS[key] = ReferenceEvaluator(model)
    return _EVALUATORS[key]


# -- symbolic evaluation: object arrays of int | str -------------------------------------

def as_symbolic(arr: np.ndarray) -> np.ndarray:
    """An int array as an object array of Python ints (other dtypes unchanged)."""
    if arr.dtype == object:
        return arr
    if arr.dtype.kind in "iub":
        return np.array(arr.tolist(), dtype=object).reshape(arr.shape)
    return arr


def is_static_int(arr: np.ndarray) -> bool:
    return all(isinstance(v, (int, np.integer)) for v in np.asarray(arr, dtype=object).ravel())


#: the shape arithmetic of ONNX's binary ops on ints; on non-negative sizes, ONNX's integer Div is
#: floor division
_ARITHMETIC: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


def dim_arithmetic(a: Any, symbol: str, b: Any) -> Dim:
    """``a symbol b`` (``+ - * /``) on dims, as the symbolic evaluation computes it: an int for ints, else
    the expression's canonical text (:mod:`archc.ir.dims`: ``S + 19``, ``N*2``), so a converter can tell
    whether a computed dim is one it expects."""
    if not all(isinstance(v, (int, np.integer, str)) for v in (a, b)):
        raise ValueError("shape arithmetic with a non-integer")
    if symbol == "/" and isinstance(b, (int, np.integer)) and int(b) == 0:
        raise ShapeArithmeticError(f"shape arithmetic divides {a} by zero")
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        result = int(_ARITHMETIC[symbol](int(a), int(b)))
        if not -(2 ** 63) <= result < 2 ** 63:
            raise ShapeArithmeticError(f"shape arithmetic gives {int(a)} {symbol} {int(b)} = {result}, "
                                       "beyond int64")
        return result
    return _symbolic(int(a) if isinstance(a, np.integer) else a, int(b) if isinstance(b, np.integer) else b, symbol)


def _binary(symbol: str) -> Callable:
    def evaluate(node, attrs, ins):
        return [np.asarray(np.frompyfunc(lambda a, b: dim_arithmetic(a, symbol, b), 2, 1)(ins[0], ins[1]),
                           dtype=object)]

    return evaluate


def _symbolic(a: Dim, b: Dim, symbol: str) -> Dim:
    """``a <symbol> b`` of symbolic sizes as an expression (:mod:`archc.ir.dims`): ONNX's integer Div of sizes,
    which are not negative, is floor division, by a whole number or by a factor of every term; a ValueError
    (no symbolic value) for anything else."""
    try:
        if symbol == "+":
            return dims.add(a, b)
        if symbol == "-":
            return dims.sub(a, b)
        if symbol == "*":
            return dims.mul(a, b)
        quotient = dims.floordiv(a, b) if isinstance(b, int) and b > 0 else dims.divide(a, b)
    except ShapeError as exc:
        raise ValueError(str(exc)) from None
    if quotient is None:
        raise ValueError(f"shape arithmetic {a} / {b} has no expression")
    return quotient


def _ints(arr: np.ndarray | None) -> list[int] | None:
    if arr is None:
        return None
    if not is_static_int(arr):
        raise ValueError("symbolic indices")
    return [int(v) for v in np.asarray(arr, dtype=object).ravel()]


def _operand(attrs: dict[str, Any], ins: list, index: int, name: str) -> list[int] | None:
    """An ints operand given as an input (newer opsets) or an attribute (older ones)."""
    if len(ins) > index and ins[index] is not None:
        return _ints(ins[index])
    value = attrs.get(name)
    return None if value is None else [int(v) for v in (value if isinstance(value, list) else [value])]


def _gather(node, attrs, ins):
    data, idx = ins
    return [np.take(data, np.asarray(_ints(idx), dtype=np.int64).reshape(np.shape(idx)), axis=attrs.get("axis", 0))]


def _slice(node, attrs, ins):
    data = ins[0]
    starts = _operand(attrs, ins, 1, "starts")
    ends = _operand(attrs, ins, 2, "ends")
    axes = _operand(attrs, ins, 3, "axes") or list(range(len(starts)))
    steps = _operand(attrs, ins, 4, "steps") or [1] * len(starts)
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice(s, e, st)  # ONNX clamps out-of-range starts and ends as Python does
    return [data[tuple(index)]]


def _concat(node, attrs, ins):
    return [np.concatenate([np.atleast_1d(a) for a in ins], axis=attrs.get("axis", 0))]


def _unsqueeze(node, attrs, ins):
    out = ins[0]
    axes = _operand(attrs, ins, 1, "axes")
    rank = out.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        out = np.expand_dims(out, a)
    return [out]


def _squeeze(node, attrs, ins):
    axes = _operand(attrs, ins, 1, "axes")
    return [np.squeeze(ins[0], axis=tuple(axes) if axes is not None else None)]


def _reshape(node, attrs, ins):
    data, shape = ins
    target = _ints(shape)
    target = [data.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return [data.reshape(target)]


def _cast(node, attrs, ins):
    to = helper.tensor_dtype_to_np_dtype(attrs["to"])
    if np.dtype(to).kind in "iu":
        return [ins[0]]
    raise ValueError("a symbolic value cast to a non-integer type")


def _same(a: Any, b: Any) -> bool:
    """Whether two entries of shape arithmetic are equal, where that is known: sizes are never negative,
    so a symbol differs from a negative number (TorchScript's ``expand(N, -1, -1)`` tests ``== -1``)."""
    if isinstance(a, str) or isinstance(b, str):
        if a == b:
            return True
        number = b if isinstance(a, str) else a
        if isinstance(number, (int, np.integer)) and number < 0:
            return False
        raise ValueError(f"whether {a} equals {b} depends on the sizes")
    return bool(a == b)


def _equal(node, attrs, ins):
    a, b = np.broadcast_arrays(*ins)
    return [np.array([_same(x, y) for x, y in zip(a.ravel(), b.ravel())], dtype=object).reshape(a.shape)]


def _where(node, attrs, ins):
    condition, a, b = np.broadcast_arrays(*ins)
    if not all(isinstance(c, (bool, np.bool_)) for c in condition.ravel()):
        raise ValueError("a symbolic condition")
    return [np.where(condition.astype(bool), a, b)]


SYMBOLIC: dict[str, Callable[[onnx.NodeProto, dict, list], list[np.ndarray]]] = {
    "Equal": _equal,
    "Where": _where,
    "Identity": lambda node, attrs, ins: [ins[0]],
    "Cast": _cast,
    "Gather": _gather,
    "Slice": _slice,
    "Concat": _concat,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Reshape": _reshape,
    # (the TorchScript exporter reverses F.pad's pads into ONNX's order through a Transpose of (k, 2) pairs)
    "Transpose": lambda node, attrs, ins: [np.transpose(ins[0], attrs.get("perm"))],
    "Add": _binary("+"),
    "Sub": _binary("-"),
    "Mul": _binary("*"),
    # shape arithmetic is on non-negative sizes: floor division is ONNX's integer Div there
    "Div": _binary("/"),
}


def evaluate_symbolic(node: onnx.NodeProto, ins: list[np.ndarray | None]) -> list[np.ndarray] | None:
    """Outputs of a shape-arithmetic node over symbolic inputs, or None if it cannot be done;
    :class:`ShapeArithmeticError` if it has no answer."""
    fn = SYMBOLIC.get(node.op_type)
    if fn is None or node.domain not in ("", "ai.onnx"):
        return None
    try:
        return [np.asarray(v, dtype=object) for v in fn(node, attributes(node), [
            None if a is None else as_symbolic(np.asarray(a)) for a in ins])]
    except (ValueError, IndexError, TypeError, KeyError):
        return None


def spread(table: np.ndarray) -> float:
    """The standard deviation a spec written from the import draws a learned table with (its own)."""
    return short_float(float(np.std(table)), table.dtype)


def table_init(table: np.ndarray) -> dict[str, Any]:
    """The ``parameter`` init that a spec written from the import draws a learned table with, where no
    weights are loaded: its one value where all are equal, else normal of the table's spread."""
    first = float(table.flat[0])
    if np.all(table == table.flat[0]):
        return {"init": "zeros"} if first == 0 else {"init": "ones"} if first == 1 else \
            {"init": "constant", "value": short_float(first, table.dtype)}
    return {"init": "normal", "std": spread(table)}
