"""Names in a spec: what a node is called, and what a name written in a field refers to.

A node's local name is its ``name:`` or, if it has none, one made up from its kind by the
scope's :class:`~archc.ir.names.Namespace` (``conv``, ``conv_1``, ...), avoiding every
name listed or bound in the scope. A reference (``in:``, ``else:``, ``outputs:``, ``tie:``)
is ``NAME``, ``NAME:PORT`` (an output by index or name), ``NAME[*]`` (every repetition of a
repeated node so far) or ``prev`` (the node before this one); :func:`resolve` and its
relatives turn one into values of the scope, reporting unknown names at the reference.
"""
from __future__ import annotations

from typing import Any, Mapping

from archc.errors import did_you_mean
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.params import (LIST_ITEM_RE, MAX_NAME_LENGTH, MODULE_NAME_RE, interpolate,
                                         shown_name)
from archc.frontends.yaml.scope import POISON, PREVIOUS, Abort, Binding, Poison, Scope
from archc.frontends.yaml.site import Instantiation, Site
from archc.frontends.yaml.source import SList, SMap
from archc.frontends.yaml.spelling import spelled
from archc.ir import Value
from archc.ops import registry


def node_name(ctx: Elaboration, item: SMap, scope: Scope, kind: str) -> str:
    """The local name of the node ``item`` (of op or block ``kind``) in ``scope``."""
    if "name" not in item:
        return scope.auto_names.take(kind)
    given = item["name"]
    if not isinstance(given, (str, int)) or isinstance(given, bool):  # (null would name the node 'None')
        ctx.error(f"node name must be a name (text, or a number in a sequence), got {spelled(given)}; leave "
                  "'name' out for one made from its op or block", item.where("name"),
                  hint="YAML reads null and ~ as nothing, and yes, no, on, off as true or false: quote a name "
                       "written so ('on')" if given is None or isinstance(given, bool) else None)
        raise Abort()
    name = str(given)
    if not MODULE_NAME_RE.match(name):
        if LIST_ITEM_RE.match(name):
            _check_list_item(ctx, item, scope, name)
        else:
            ctx.error(f"node name '{shown_name(name)}' must use only letters, digits, '_' and '-' (hierarchy "
                      f"comes from blocks; LIST.N, e.g. convs.0, names an item of a module list), at most "
                      f"{MAX_NAME_LENGTH} characters", item.where("name"))
            raise Abort()
    # Alternatives switched by `if` may share a name: only two kept nodes clash.
    if name in scope.bindings and name not in scope.left_out and "if" not in item:
        ctx.error(f"duplicate node name '{name}'", item.where("name"), scope.prefix + name)
        raise Abort()
    return name


def _check_list_item(ctx: Elaboration, item: SMap, scope: Scope, name: str) -> None:
    """A module-list item's name (``convs.0``) where one can stand: not in a sequential block's numbering,
    and not of a list that is also a node's name in the same scope. A repeated item is an nn.Sequential in
    the list (ConvNeXt's stages)."""
    list_name = name.rpartition(".")[0]
    problem = (
        "a sequential block numbers its nodes (their names are handles, not module names): name the "
        "node without a '.'" if scope.counter is not None else
        f"'{list_name}' is also a node's name here: a module list and a node cannot share it"
        if list_name in scope.declared else None)
    if problem is not None:
        if list_name not in scope.declared or ctx.list_clashes.setdefault(scope.prefix + list_name, name) == name:
            ctx.error(problem, item.where("name"), scope.prefix + name)  # (a clash: once, at its first item)
        raise Abort()


def inputs_of(ctx: Elaboration, item: SMap, scope: Scope, node: str,
              names: Mapping[str, Any] | None = None) -> list[Value | Poison]:
    """What the node ``item`` reads: its ``in:`` entries, or the previous node; ``names``: values its
    ``${...}`` parts may read besides the scope's (one repetition's ``index``: ``in: "parts:${index}"``)."""
    if "in" not in item:
        if scope.previous is None:
            ctx.error("this node has no input: give 'in:' (there is no previous node)", item.location, node)
            raise Abort()
        return [scope.used_previous(ctx.sink)]
    refs = item["in"]
    if isinstance(refs, SList) and not refs and _may_take_no_input(ctx, item):
        return []  # `in: []` on what can read nothing (an ONNX ConstantOfShape kept as it is, a table block)
    return some_input(ctx, item, node, [v for entry in input_entries(ctx, item, scope, node, names) for v in entry])


def input_entries(ctx: Elaboration, item: SMap, scope: Scope, node: str, names: Mapping[str, Any] | None = None,
                  start: int = 0) -> list[list[Value | Poison]]:
    """The values each ``in:`` entry of the node ``item`` stands for (one, or several for ``NAME[*]`` and
    variadic inputs), from entry ``start`` on; ``names`` as for :func:`inputs_of`. An entry that fails
    is reported and stands for poison, so the node's other entries are still checked."""
    refs = item["in"]
    if isinstance(refs, (str, int)):
        sites = [Site(item, "in", node)]
    elif isinstance(refs, SList):
        sites = [Site(refs, i, node) for i in range(len(refs))]
    else:
        ctx.error("'in' must be a name or a list of names", item.where("in"), node)
        raise Abort()
    entries: list[list[Value | Poison]] = []
    for site in sites[start:]:
        try:
            entries.append(resolve_all(ctx, chosen_name(ctx, str(site.value), scope, site, names), scope, site))
        except Abort:
            entries.append([POISON])  # reported (or already reported); keep checking this node
    return entries


def repetition_entries(ctx: Elaboration, item: SMap, scope: Scope, node: str, index: int,
                       count: int) -> list[list[Value | Poison]]:
    """What repetition ``index`` (of ``count``) of the repeated node ``item`` reads where its ``in:`` holds
    ``${...}`` (ResNeSt's ``splited:${index}``): :func:`input_entries` made with this repetition's
    ``index``; in series, after the first repetition, from the second entry on (the repetition before
    takes the first's place, which is not read again). An error in them names the repetition and stops
    the node (Abort: the later repetitions would repeat it)."""
    start = 1 if index and item.get("parallel") is not True else 0
    entries: list[list[Value | Poison]] | None = None
    with ctx.held() as held:
        try:
            entries = input_entries(ctx, item, scope, node, {"index": index}, start)
        except Abort:
            pass  # (its error is held)
    which = f"at repetition {index} of {count}: index = {index}" if count else \
        "repeat 0 leaves the node out, and its name stands for what its repetition 0 would read"
    for diagnostic in held:
        ctx.error(diagnostic.message, diagnostic.location, diagnostic.node,
                  "; ".join(filter(None, (diagnostic.hint, which))))
    if held or entries is None:
        raise Abort()
    return entries


def some_input(ctx: Elaboration, item: SMap, node: str, values: list[Value | Poison]) -> list[Value | Poison]:
    """``values``, what the ``in:`` of node ``item`` stands for; an error where that is no tensor at all."""
    if not values:
        ctx.error("'in' names no tensor here (an empty NAME[*] or variadic input)", item.where("in"), node)
        raise Abort()
    return values


def chosen_name(ctx: Elaboration, ref: str, scope: Scope, site: Site,
                names: Mapping[str, Any] | None = None) -> str:
    """A reference with its ``${expr}`` parts replaced by their values (``in: "${'a' if wide else 'b'}"``,
    as in every string field; ``names``: as for :func:`inputs_of`); Abort after reporting a bad
    expression."""
    if "${" not in ref:
        return ref
    return interpolate(ref, ctx, scope.with_names(names) if names else scope, site)


def resolve_all(ctx: Elaboration, ref: str, scope: Scope, site: Site) -> list[Value | Poison]:
    """What one ``in`` entry stands for: one value, or several for ``NAME[*]`` and variadic inputs."""
    if "[*]" in ref:
        return [v for _, v in repetition_values(ctx, ref, scope, site)]
    binding = scope.bindings.get(ref)
    if binding is not None and binding.spread:
        binding.read = True
        return list(binding.values)
    return [resolve(ctx, ref, scope, site)]


def repetition_values(ctx: Elaboration, ref: str, scope: Scope, site: Site) -> list[tuple[str, Value | Poison]]:
    """``NAME[*]`` or ``NAME[*]:port``: (instance name, value) of each repetition so far."""
    base, _, port = ref.partition("[*]")
    if port and not port.startswith(":") or base not in scope.repetitions:
        ctx.report(f"'{ref}': '{base}' is not a repeated node in this scope (NAME[*] lists the outputs of "
                   "a node's repetitions so far; NAME[*]:PORT one output of each)", site,
                   did_you_mean(base, scope.repetitions))
        raise Abort()
    return [(local, _port(ctx, binding, local, port[1:], site)) for local, binding in scope.repetitions[base]]


def resolve(ctx: Elaboration, ref: str, scope: Scope, site: Site) -> Value | Poison:
    """The one value ``ref`` (``NAME``, ``NAME:PORT`` or ``prev``), written at ``site``, stands for."""
    name, _, port = ref.partition(":")
    binding = scope.bindings.get(name)
    if name in scope.left_out_errors:  # a left-out node's name, standing for what is not there
        ctx.sink.diagnostics.extend(scope.left_out_errors.pop(name))
    if binding is None and name == PREVIOUS and scope.previous is not None and not port:
        return scope.used_previous(ctx.sink)  # `prev`: the node before this one
    if binding is None:
        if name in scope.declared:
            ctx.report(f"'{name}' is used before it is defined (list nodes after their inputs)", site)
        elif not scope.names_lost:  # (else perhaps a repetition's name a failed node, reported, would have made)
            ctx.report(f"unknown node or input '{name}'", site, did_you_mean(name, scope.bindings))
        raise Abort()
    if binding.spread:
        ctx.report(f"'{name}' is a variadic input: use it in 'in', where it stands for all its tensors", site)
        raise Abort()
    binding.read = True
    return _port(ctx, binding, name, port, site)


def _port(ctx: Elaboration, binding: Binding, name: str, port: str, site: Site) -> Value | Poison:
    """One output of a binding: the first, or ``port`` by index or output name."""
    if binding.poisoned:
        return POISON
    if not port:
        return binding.values[0]
    if port.isdigit() and int(port) < len(binding.values):
        return binding.values[int(port)]
    if port in binding.ports:
        return binding.values[binding.ports.index(port)]
    count = len(binding.values)
    hint = registry.lookup(binding.node.op).port_hint(binding.node, port) if binding.node is not None else None
    ctx.report(f"'{name}' has no output '{port}'; it has {count} output{'s' if count != 1 else ''}"
               f"{': ' + ', '.join(binding.ports) if binding.ports else ''}", site,
               hint or did_you_mean(port, binding.ports))
    raise Abort()


def _may_take_no_input(ctx: Elaboration, item: SMap) -> bool:
    """Whether the node ``item`` applies an op whose fewest inputs is none, or instantiates a block that
    declares no inputs (``inputs: []``: its nodes are parameters and constants)."""
    if "block" in item:
        block = ctx.blocks.get(str(item["block"]))
        return isinstance(block, SMap) and isinstance(block.get("inputs"), SList) and not block["inputs"]
    op = registry.get(str(item["op"])) if "op" in item else None
    return op is not None and op.arity()[0] == 0


def aliased_formals(call: Instantiation, scope: Scope) -> dict[int, str]:
    """Input slot -> block input named in the ``in:`` of ``call`` (an op or a block instance) where that
    block input holds the tensor of an earlier one (one tensor passed twice: ``in: [x, h, h]``), so
    that a class per block reads the one the spec names."""
    refs = call.item.get("in")
    refs = [refs] if isinstance(refs, str) else list(refs) if isinstance(refs, SList) else []
    if len(refs) != len(call.inputs) or not scope.block_inputs:
        return {}
    first: dict[Any, str] = {}
    for formal in scope.block_inputs:
        first.setdefault(scope.bindings[formal].values[0], formal)
    # (a repetition after the first reads the one before it, whatever its in: names)
    return {slot: ref for slot, ref in enumerate(map(str, refs)) if ref in scope.block_inputs
            and scope.bindings[ref].values[0] == call.inputs[slot] and first[call.inputs[slot]] != ref}
