"""The one way both frontends make an IR node from an op name and attributes.

:func:`build_node` completes the attributes from the op's schema (defaults, schema order),
checks the number of inputs, and infers the output types through the op definition. The
YAML elaborator reports its own, located errors before calling it (it checks attributes
and arity with the spec's positions); the ONNX importer turns :class:`NodeError` and
:class:`~archc.errors.ShapeError` into its "no native op for this" signal.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from archc.errors import Location
from archc.ir.graph import BlockInstance, Node, Value
from archc.ir.types import TensorType
from archc.ops.base import OpDef

__all__ = ["NodeError", "build_node", "complete_attrs"]


class NodeError(ValueError):
    """The op cannot make this node: unknown or missing attributes, or a wrong number of inputs."""


def complete_attrs(op: OpDef, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``attrs`` with the op's defaults filled in, in schema order; NodeError for an unknown
    attribute or a missing required one."""
    unknown = set(attrs) - set(op.attrs)
    if unknown:
        raise NodeError(f"op '{op.name}' has no attributes {sorted(unknown)}")
    full: dict[str, Any] = {}
    for key, spec in op.attrs.items():
        if key in attrs:
            full[key] = attrs[key]
        elif spec.required:
            raise NodeError(f"op '{op.name}' needs '{key}'")
        else:
            full[key] = spec.default
    return full


def build_node(op: OpDef, name: str, attrs: Mapping[str, Any], inputs: Sequence[Value],
               in_types: Sequence[TensorType], *, location: Location | None = None,
               scope: tuple[BlockInstance, ...] = (), meta: Mapping[str, Any] | None = None,
               attr_exprs: Mapping[str, str] | None = None) -> Node:
    """A node of ``op`` with its output types inferred (not yet added to a graph); ``attr_exprs``: the
    spec's expressions of its attributes (:attr:`~archc.ir.graph.Node.attr_exprs`), which its
    inference may name in a message.

    NodeError for bad attributes or input count; the op's ShapeError propagates.
    """
    lo, hi = op.arity()
    if len(inputs) < lo or (hi is not None and len(inputs) > hi):
        raise NodeError(f"op '{op.name}' takes {lo}{'+' if hi is None else f'..{hi}'} inputs, got {len(inputs)}")
    node = Node(name=name, op=op.name, attrs=complete_attrs(op, attrs), inputs=list(inputs), scope=scope,
                location=location, meta=dict(meta or {}), attr_exprs=dict(attr_exprs or {}))
    node.outputs = op.infer(node, list(in_types))
    return node
