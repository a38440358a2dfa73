"""Single ONNX arithmetic nodes left after fusion, as the native ops they are.

The importer keeps ``Pow``, ``Sqrt``, an ``Add`` of a constant and their like as ``onnx_node``s while
it imports, because the patterns of :mod:`archc.frontends.onnx.patterns` (layer norm, GELU, group norm)
match them in that form. What no pattern took is then written as the native op (registered with
:func:`~archc.frontends.onnx.patterns.native`): T5's and LLaMA's RMSNorm, ``x * rsqrt(mean(x^2) + eps)``,
becomes ``pow``, ``mean``, ``add`` (a value), ``rsqrt`` and ``mul``, as a spec writes it, which PyTorch
writes as ``torch.pow`` and friends and lint reads as arithmetic. A native op's value is no parameter:
a learned tensor that is no layer's parameter (a layer scale, ResMLP's affine, ReZero's gain) becomes a
``parameter`` node read by the native op (:func:`learned_operands`, last), named by its state_dict key.
"""
from __future__ import annotations

import numpy as np

from archc.frontends.onnx.generic import PARAMETER_KEYS_META
from archc.frontends.onnx.patterns import Match, constant_operand, kind, native, rename, scalar
from archc.frontends.onnx.values import table_init
from archc.ir.graph import Graph, Node, Value
from archc.ir.names import Namespace
from archc.ir.types import Dim
from archc.ops import registry
from archc.ops.nodes import build_node

#: ONNX element-wise functions of one tensor -> the native op
_UNARY = {"onnx:Sqrt": "sqrt", "onnx:Exp": "exp", "onnx:Log": "log", "onnx:Abs": "abs"}
_SQRT = ("sqrt", "onnx:Sqrt")


def _literal_scalar(graph: Graph, node: Node) -> float | None:
    """The one constant operand of ``node`` where it is a single float literal (no learned parameter),
    else None."""
    name = constant_operand(node)
    if name is None or (node.attrs.get("params") or {}).get(name, {}).get("learned", True):
        return None
    value = scalar(graph, node)
    dtype = graph.weights[node.name][name].dtype
    return value if dtype.kind == "f" else None


def _x_first(node: Node) -> bool:
    """Whether the computed input is the ONNX node's first operand (``x - c``, not ``c - x``)."""
    return (node.attrs["operands"] or [None])[0] == 0


def _of_one_tensor(node: Node) -> bool:
    """Whether ONNX ``node`` reads one computed tensor and nothing else."""
    return len(node.inputs) == 1 and list(node.attrs["operands"] or []) == [0]


def _float_input(graph: Graph, node: Node) -> bool:
    return len(node.inputs) == 1 and graph.type_of(node.inputs[0]).dtype.startswith("float")


@native(*_UNARY)
def unary(graph: Graph, root: Node) -> Match | None:
    """``Sqrt(x)``, ``Exp(x)``, ``Log(x)``, ``Abs(x)``."""
    if not _of_one_tensor(root) or root.attrs.get("attributes"):
        return None
    return Match(_UNARY[kind(root)], {}, list(root.inputs), [root.name])


@native("onnx:Pow")
def power(graph: Graph, root: Node) -> Match | None:
    """``x ** c`` for a literal exponent."""
    c = _literal_scalar(graph, root)
    if c is None or not _x_first(root) or not _float_input(graph, root):
        return None
    return Match("pow", {"exponent": c}, list(root.inputs), [root.name])


@native("onnx:Add", "onnx:Sub")
def shift(graph: Graph, root: Node) -> Match | None:
    """``x + c``, ``c + x``, ``x - c``, ``c - x`` for a literal c (a norm's epsilon)."""
    c = _literal_scalar(graph, root)
    if c is None or not _float_input(graph, root):
        return None
    op = "add" if kind(root) == "onnx:Add" else "sub"
    attrs = {"value": c, **({"reverse": True} if op == "sub" and not _x_first(root) else {})}
    return Match(op, attrs, list(root.inputs), [root.name])


@native("onnx:Div", "onnx:Reciprocal")
def reciprocal_sqrt(graph: Graph, root: Node) -> Match | None:
    """``1 / sqrt(x)`` (a Div of the literal 1, or a Reciprocal) of a square root only it reads: ``rsqrt``."""
    if len(root.inputs) != 1 or (kind(root) == "onnx:Div" and (_x_first(root) or _literal_scalar(graph, root) != 1.0)):
        return None
    sqrt = graph.node(root.inputs[0].node)
    if kind(sqrt) not in _SQRT or len(sqrt.inputs) != 1 or graph.uses(sqrt.name) != 1 \
            or (sqrt.op == "onnx_node" and not _of_one_tensor(sqrt)):
        return None
    return Match("rsqrt", {}, list(sqrt.inputs), [root.name, sqrt.name])


#: ONNX element-wise ops of two operands -> the native op
_BINARY = {"onnx:Add": "add", "onnx:Sub": "sub", "onnx:Mul": "mul", "onnx:Div": "div"}


def learned_operands(graph: Graph) -> int:
    """Each ONNX Add, Sub, Mul or Div left (after every pattern) of one computed value and a learned tensor
    that broadcasts into it, as a ``parameter`` node and the native op reading both; how many. The
    parameter is named after the initializer where that is the model's state_dict key (a bare
    ``nn.Parameter``'s key is its name: ``blocks.0.gamma``), for the first node reading it (a later one may
    read a tensor the exporter merged from parameters of equal values: named after itself), else after
    the node (``Mul_param``)."""
    found = [(node, key) for node in graph.nodes() if node.op == "onnx_node"
             and (key := _learned_operand(graph, node)) is not None]
    if found:
        taken = Namespace(node.name for node in graph.nodes())
        for node, key in found:
            _as_parameter(graph, node, key, taken)
    return len(found)


def _learned_operand(graph: Graph, node: Node) -> str | None:
    """The weight key of ``node``'s learned operand where it is such a node, else None."""
    if node.op != "onnx_node" or kind(node) not in _BINARY or node.attrs.get("attributes"):
        return None
    key = constant_operand(node)
    if key is None or not (node.attrs.get("params") or {}).get(key, {}).get("learned"):
        return None
    array, x = graph.weights[node.name][key], graph.type_of(node.inputs[0])
    if str(array.dtype) != x.dtype or not x.dtype.startswith("float") or node.outputs[0] != x \
            or not _broadcasts_into(array.shape, x.shape):
        return None
    return key


def _broadcasts_into(small: tuple[int, ...], shape: tuple[Dim, ...]) -> bool:
    """Whether a tensor of shape ``small`` broadcasts against one of ``shape`` without widening it."""
    return len(small) <= len(shape) and all(d == 1 or d == s for d, s in zip(reversed(small), reversed(shape)))


def _as_parameter(graph: Graph, node: Node, key: str, taken: Namespace) -> None:
    """Replace ``node`` by a ``parameter`` of its operand ``key`` and the native op, which takes its name."""
    array: np.ndarray = graph.weights[node.name][key]
    meta = {k: v for k, v in node.meta.items() if k != PARAMETER_KEYS_META}
    initializer = node.meta.get(PARAMETER_KEYS_META, {}).get(key)
    name = taken.take(initializer if initializer and initializer not in taken else f"{node.name}_param")
    held = {"shape": list(array.shape), "dtype": str(array.dtype), **table_init(array)}
    graph.add(build_node(registry.get("parameter"), name, held, [], [], location=node.location, meta=meta))
    graph.weights[name] = {"": array}
    x = node.inputs[0]
    inputs = [x, Value(name)] if _x_first(node) else [Value(name), x]
    temp = build_node(registry.get(_BINARY[kind(node)]), taken.take(f"{node.name}.native"), {}, inputs,
                      list(map(graph.type_of, inputs)), location=node.location, meta=meta)
    graph.add(temp)
    graph.erase(node.name, replace_with=Value(temp.name))
    rename(graph, temp.name, node.name)
