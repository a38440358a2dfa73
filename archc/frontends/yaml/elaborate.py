"""Turns a parsed spec into the graph IR: the entry point and the order of the steps.

Elaboration reads the spec's parameters (:mod:`~archc.frontends.yaml.params`: profiles,
``--set``), its blocks and functions and those it includes
(:mod:`~archc.frontends.yaml.definitions`), its ``let``, inputs and example dims
(:mod:`~archc.frontends.yaml.interface`), then walks its nodes in order
(:mod:`~archc.frontends.yaml.instantiate`). Each node either applies an op (validated
against the op registry's attribute schema, then shape-inferred at once, so later
expressions may ask ``channels(x)``: :mod:`~archc.frontends.yaml.opnode`) or instantiates a
block, which recurses into the block's nodes under a hierarchical name prefix
(``layer1.0.conv1``: :mod:`~archc.frontends.yaml.blocks`). Errors are collected, not raised
one by one, so ``archc check`` reports every problem it can find; a failed node poisons
only the names that depend on it.
"""
from __future__ import annotations

from typing import Any

from archc.errors import Location, SpecError
from archc.frontends.yaml import schema
from archc.frontends.yaml.blocks import warn_unread_inputs
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.definitions import collect_definitions
from archc.frontends.yaml.instantiate import Instantiator
from archc.frontends.yaml.interface import declare_example_dims, declare_inputs, declare_outputs
from archc.frontends.yaml.params import MAX_NAME_LENGTH, define_lets, param_origins, spec_params
from archc.frontends.yaml.scope import Scope
from archc.frontends.yaml.source import SList, SMap
from archc.ir import Graph, dims
from archc.limits import DEFAULT_LIMITS, Limits


def elaborate(doc: Any, filename: str, overrides: dict[str, Any] | None = None,
              profile: str | None = None, limits: Limits = DEFAULT_LIMITS, *,
              allow_include_anywhere: bool = False) -> Graph:
    """Build the IR for a parsed spec within ``limits``; raise SpecError listing every problem found.

    ``allow_include_anywhere`` lets ``include:`` read files outside the spec's folder
    (see :mod:`archc.frontends.yaml.includes`). Sizes that meet (an ``add``, a ``concat``) must be
    equal at every size of the symbolic dims (:func:`archc.ir.dims.strict_sizes`): a spec says what
    its model computes, so ``(H//2)*2`` is not ``H``; ``trust_sizes: true`` asks only that they agree
    at the sizes the model runs at, as an imported file's do.
    """
    ctx = Elaboration(filename, limits, allow_include_anywhere)
    if not isinstance(doc, SMap):
        raise SpecError("a spec is a mapping with 'inputs' and 'nodes' at its top level",
                        location=Location(filename, 1, 1))
    _header(ctx, doc)
    with dims.strict_sizes(not ctx.flag(doc, "trust_sizes", " of the spec")):
        return _elaborate(ctx, doc, overrides, profile)


def _elaborate(ctx: Elaboration, doc: SMap, overrides: dict[str, Any] | None, profile: str | None) -> Graph:
    params = spec_params(ctx, doc, overrides or {}, profile)
    ctx.graph.params = dict(params)
    ctx.sink.raise_if_any()

    collect_definitions(ctx, doc)
    sequential = ctx.flag(doc, "sequential", " of the spec")
    scope = Scope(prefix="", env=dict(params), origins=param_origins(doc, overrides or {}, profile),
                  counter=[0] if sequential else None, sources={p: frozenset([p]) for p in params})
    define_lets(ctx, doc, scope)
    ctx.globals = dict(scope.env)
    ctx.global_origins = dict(scope.origins)
    ctx.global_sources = dict(scope.sources)
    declare_inputs(ctx, doc, scope)
    declare_example_dims(ctx, doc, scope)
    nodes = doc.get("nodes")
    if not isinstance(nodes, SList) or not nodes:
        ctx.error("a spec needs a non-empty 'nodes' list", doc.where("nodes") if "nodes" in doc else doc.location)
    else:
        Instantiator(ctx).node_list(nodes, scope)
    declare_outputs(ctx, doc, scope)
    ctx.sink.raise_if_any()
    _check_module_lists(ctx)  # (after the nodes' own errors: a failed item would leave a gap)
    ctx.sink.raise_if_any()
    warn_unread_inputs(ctx)
    return ctx.graph


def _check_module_lists(ctx: Elaboration) -> None:
    """The items a module list keeps (``convs.0``, ``convs.1``; ``if:`` may leave some out) are
    numbered 0, 1, 2, ... without a gap, as an ``nn.ModuleList``'s are."""
    for path, items in ctx.list_items.items():
        items = sorted(items, key=lambda item: item[0])
        gap = next((k for k, (index, _) in enumerate(items) if index != k), None)
        if gap is not None:
            list_name = path.rpartition(".")[2]
            why = ("left out by its 'if:'; number the kept items 0, 1, 2, ... in each case"
                   if f"{path}.{gap}" in ctx.left_out_items else "missing")
            ctx.error(f"module list '{list_name}' has items {', '.join(str(i) for i, _ in items)}: a module "
                      f"list's items are numbered 0, 1, 2, ... without a gap ({list_name}.{gap} is {why})",
                      items[gap][1], f"{path}.{items[gap][0]}")


def _header(ctx: Elaboration, doc: SMap) -> None:
    """The top level's keys, and the model's name and doc."""
    ctx.check_keys(doc, schema.TOP_KEYS, "at the top level of a spec")
    graph = ctx.graph
    graph.name = str(doc.get("name", "model"))
    if "name" in doc and (not isinstance(doc["name"], (str, int)) or isinstance(doc["name"], bool)
                         or not graph.name.strip() or len(graph.name) > MAX_NAME_LENGTH):
        ctx.error(f"'name' must be a non-empty string of at most {MAX_NAME_LENGTH} characters", doc.where("name"))
    graph.doc = str(doc.get("doc", "") or "")
