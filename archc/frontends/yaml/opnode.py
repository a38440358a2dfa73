"""Applying an op: one IR node made from a node of the spec, its shapes inferred at once.

:func:`apply_op` reads the node's attributes (:mod:`~archc.frontends.yaml.attributes`),
checks its number of inputs and its name, and makes the node with the one node builder,
:func:`archc.ops.nodes.build_node`, which infers its output types (so later expressions may
ask ``channels(x)``); a shape error is reported with the inputs it read, named, and their shapes.
The expansion budget is asked about the node's size, and ``tie:`` (weight tying,
:mod:`~archc.frontends.yaml.ties`) is resolved against the nodes made before it.
"""
from __future__ import annotations

from archc.errors import ShapeError, did_you_mean
from archc.frontends.yaml.attributes import op_attributes
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.naming import aliased_formals
from archc.frontends.yaml.scope import POISON, Abort, Binding, Scope
from archc.frontends.yaml.site import Instantiation
from archc.frontends.yaml.ties import tie_node
from archc.ir import Node, Value
from archc.ir.graph import FORMAL_INPUTS_META
from archc.ops import registry
from archc.ops.base import OpDef
from archc.ops.nodes import build_node


def _text_argument_hint(call: Instantiation, scope: Scope) -> str | None:
    """Where ``op:`` names a parameter whose value is an expression's text (an argument for a
    parameter of text default is text, never evaluated): how to have it computed."""
    name = call.fields.get("op")
    if not isinstance(name, str) or name == call.kind or scope.env.get(name) != call.kind or call.kind.isidentifier():
        return None
    return (f"'{name}' holds the text {call.kind!r}: an argument for a parameter whose default is text is "
            f"taken as written; to compute it, write it inside ${{...}}: {name}: \"${{{call.kind}}}\"")


def apply_op(ctx: Elaboration, call: Instantiation, scope: Scope) -> Binding:
    """Make the node ``call`` describes (an op application) and add it to the graph."""
    op = registry.get(call.kind)
    if op is None:
        written = registry.written_as(call.kind)  # (another library's name: nn.Dropout2d)
        ctx.report(f"unknown op '{call.kind}'", call.site("op"), f"write {written}" if written else
                   _text_argument_hint(call, scope) or did_you_mean(call.kind, registry.names() + list(ctx.blocks)))
        raise Abort()
    attrs, exprs = op_attributes(ctx, op, call.fields, scope, call.path)
    _check_inputs(ctx, op, call, scope)
    node = _build(ctx, op, call, attrs, scope, exprs)  # (exprs: for backends writing the spec's expressions)
    formals = aliased_formals(call, scope)
    if formals:
        node.meta[FORMAL_INPUTS_META] = formals
    ctx.graph.add(node)
    if "tie" in call.fields:
        tie_node(ctx, node, call, scope)
    for ref in dict.fromkeys(scope.queried):
        value = scope.bindings[ref].values[0] if ref in scope.block_inputs else None
        if isinstance(value, Value) and value not in call.inputs:  # (with the input's readers so far)
            scope.width_queries.append((call.path, ref, call.item.location, frozenset(ctx.graph.users(value.node))))
    ports = op.output_names(node)
    return Binding([Value(call.path, i) for i in range(len(node.outputs))], ports, node=node)


def _check_inputs(ctx: Elaboration, op: OpDef, call: Instantiation, scope: Scope) -> None:
    """The number of inputs, that none failed, and that the node's name is free."""
    inputs, fields = call.inputs, call.fields
    lo, hi = op.arity()
    if len(inputs) < lo or (hi is not None and len(inputs) > hi):
        want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
        ctx.error(f"op '{op.name}' takes {want} input(s), got {len(inputs)}",
                  fields.where("in") if "in" in fields else fields.location, call.path,
                  op.arity_hint([str(v).removeprefix(scope.prefix) for v in inputs if v is not POISON]))
        raise Abort()
    if any(v is POISON for v in inputs):
        raise Abort()
    ctx.fatal(ctx.budget.add_edges(len(inputs)), fields.where("in") if "in" in fields else fields.location,
              call.path)
    if call.path in ctx.graph:
        ctx.error(f"two nodes are named '{call.path}' (inline blocks and their repetitions add no name "
                  "level: number them in a sequential block, or give the nodes distinct names)",
                  call.item.location, call.path)
        raise Abort()


def _build(ctx: Elaboration, op: OpDef, call: Instantiation, attrs: dict, scope: Scope,
           exprs: dict[str, str]) -> Node:
    """The node, its output types inferred, within the expansion budget (``exprs``: its attributes'
    expressions, :attr:`~archc.ir.graph.Node.attr_exprs`)."""
    item = call.item
    in_types = [ctx.graph.type_of(v) for v in call.inputs]
    try:
        node = build_node(op, call.path, attrs, call.inputs, in_types, scope=scope.stack, location=item.location,
                          meta={"expect": call.fields["expect"]} if "expect" in call.fields else None,
                          attr_exprs=exprs)
    except ShapeError as exc:
        named = ", ".join(f"{v} {t}" for v, t in zip(call.inputs, in_types))
        ctx.error(f"{op.name}: {exc} [input{'s' if len(in_types) > 1 else ''}: {named}]", item.location, call.path)
        raise Abort() from None
    too_big, fatal = ctx.budget.check_op(op, node, in_types)
    if fatal:
        ctx.fatal(too_big, item.location, call.path)
    if too_big:
        ctx.error(too_big, item.location, call.path)
        raise Abort()
    return node
