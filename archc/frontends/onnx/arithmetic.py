"""Single ONNX arithmetic nodes left after fusion, as the native ops they are.

The importer keeps ``Pow``, ``Sqrt``, an ``Add`` of a constant and their like as ``onnx_node``s while
it imports, because the patterns of :mod:`archc.frontends.onnx.patterns` (layer norm, GELU, group norm)
match them in that form. What no pattern took is then written as the native op (registered with
:func:`~archc.frontends.onnx.patterns.native`): T5's and LLaMA's RMSNorm, ``x * rsqrt(mean(x^2) + eps)``,
becomes ``pow``, ``mean``, ``add`` (a value), ``rsqrt`` and ``mul``, as a spec writes it, which PyTorch
writes as ``torch.pow`` and friends and lint reads as arithmetic. A constant that is a learned
parameter (an initializer, not a literal) stays where it is: a native op's value is no parameter.
"""
from __future__ import annotations

from archc.frontends.onnx.patterns import Match, constant_operand, kind, native, scalar
from archc.ir.graph import Graph, Node

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
