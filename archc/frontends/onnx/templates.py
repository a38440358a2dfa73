"""What the native op makes of one kind of node, worked out once per kind.

A converter maps an ONNX node to a native op with attributes; the importer then needs the
op's completed attributes, its inferred output types, its parameter specs and whether the
weights fit them. All of it depends only on the op, the attributes, the input types and
the weights' shapes, and a model repeats a few such kinds thousands of times (a residual
chain: four; a transformer: a few dozen). :class:`Templates` works each kind out once,
with :func:`~archc.ops.nodes.build_node` and the op's ``params``, and hands the answer
(or the reason the op declines) to every node of that kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from archc.errors import ShapeError
from archc.frontends.onnx import limits
from archc.ir.graph import Value
from archc.ir.types import TensorType
from archc.ops.base import OpDef
from archc.ops.nodes import NodeError, build_node

__all__ = ["Template", "Templates"]

#: attribute values whose ``repr`` tells them apart exactly (so it can stand in a cache key)
_PLAIN = frozenset({int, float, str, bool, type(None), tuple, list})


@dataclass(frozen=True)
class Template:
    """The native op's answer for one kind of node.

    ``refusal``: why the op cannot take it (bad attributes, shape inference, a tensor no layer
    has), found before the types are checked against ONNX's; ``param_refusal``: why the
    weights do not fit the op's parameters. ``attrs`` are completed (defaults, schema order).
    """

    op: str
    attrs: Mapping[str, Any]
    outputs: tuple[TensorType, ...]
    specs: Mapping[str, Any]
    refusal: str | None = None
    param_refusal: str | None = None


def _shape(w: Any) -> tuple[int, ...]:
    return w.shape if isinstance(w, np.ndarray) else np.shape(w)


def make_template(opdef: OpDef, attrs: Mapping[str, Any], ins: Sequence[TensorType],
                  weight_shapes: Mapping[str, tuple[int, ...]]) -> Template:
    """Build the op's node for these attributes, input types and weight shapes; record why not."""
    op = opdef.name
    try:
        ir = build_node(opdef, "?", attrs, [Value("?") for _ in ins], ins)
    except (NodeError, ShapeError) as exc:  # the native op cannot express this node
        return Template(op, {}, (), {}, refusal=f"op '{op}': {exc}")
    why = limits.native_refusal(ins, ir.outputs, {k: np.broadcast_to(np.zeros((), np.int8), s)
                                                  for k, s in weight_shapes.items()})
    if why is not None:
        return Template(op, {}, (), {}, refusal=f"op '{op}': {why}")
    specs = opdef.params(ir, list(ins))
    template = Template(op, ir.attrs, tuple(ir.outputs), specs)
    required = set(specs) - {k for k, s in specs.items() if s.optional}
    if required - set(weight_shapes) or set(weight_shapes) - set(specs):
        return Template(op, ir.attrs, tuple(ir.outputs), specs,
                        param_refusal=f"op '{op}' wants parameters {sorted(specs)}, got {sorted(weight_shapes)}")
    for key, spec in specs.items():
        if key in weight_shapes and tuple(weight_shapes[key]) != tuple(spec.shape):
            return Template(op, ir.attrs, tuple(ir.outputs), specs, param_refusal=(
                f"parameter '{key}' has shape {weight_shapes[key]}, op '{op}' wants {spec.shape}"))
    return template


class Templates:
    """One import's templates, by (op, attributes, input types, weight shapes)."""

    def __init__(self) -> None:
        self._cache: dict[tuple, Template] = {}

    def get(self, opdef: OpDef, attrs: Mapping[str, Any], ins: Sequence[TensorType],
            weights: Mapping[str, Any] | None) -> Template:
        shapes = {k: _shape(w) for k, w in (weights or {}).items()}
        if not all(type(v) in _PLAIN for v in attrs.values()):
            return make_template(opdef, attrs, ins, shapes)  # an attribute whose repr may not tell it apart
        # repr, not the values: it tells 1 from 1.0 and True, and -0.0 from 0.0, which compare equal
        key = (opdef.name, repr(attrs), tuple(ins), tuple(shapes.items()))
        template = self._cache.get(key)
        if template is None:
            template = self._cache[key] = make_template(opdef, attrs, ins, shapes)
        return template
