"""Making a list of spec nodes: ``op``/``block`` choice, ``if``, ``repeat``, ``inline`` and naming.

An :class:`Instantiator` walks a list of nodes in order. For each it decides what the node
applies (an op or a block, possibly chosen by a parameter), its local and full name
(:mod:`~archc.frontends.yaml.naming`; children of a ``sequential`` block are numbered like
``nn.Sequential``'s), whether ``if`` leaves it out, and how many times ``repeat`` makes it
(in series, or densely when ``in`` names ``NAME[*]``, with per-repetition ``overrides`` and
``instance_name``); each instance is then an op application
(:func:`~archc.frontends.yaml.opnode.apply_op`) or a block instance
(:func:`~archc.frontends.yaml.blocks.apply_block`, which comes back here for the block's
nodes). A node that fails poisons its name, so its users stay quiet.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Container

from archc.errors import did_you_mean
from archc.frontends.yaml import schema
from archc.frontends.yaml.blocks import apply_block
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.naming import (chosen_name, inputs_of, node_name, repetition_entries, resolve,
                                         some_input)
from archc.frontends.yaml.opnode import apply_op
from archc.frontends.yaml.params import (LIST_ITEM_RE, MAX_NAME_LENGTH, MODULE_NAME_RE, chosen_kind, interpolate,
                                         shown_name)
from archc.frontends.yaml.scope import POISON, Abort, Binding, Poison, Scope
from archc.frontends.yaml.site import Instantiation, Site
from archc.frontends.yaml.source import SList, SMap
from archc.ir import Graph, Value
from archc.ops import registry
from archc.frontends.yaml.spelling import spelled

#: fields a repetition's ``overrides`` may not change
#: (``if``, ``else``, ``inline`` and ``parallel`` decide the node as a whole, before its repetitions)
_NOT_OVERRIDABLE = ("name", "op", "block", "in", "repeat", "overrides", "instance_name", "if", "else", "inline",
                    "parallel")


@dataclass(frozen=True, eq=False)
class _Written:
    """A node as the spec writes it, once its kind and names are known."""

    item: SMap
    kind: str
    is_op: bool
    #: its local name, the handle later nodes use
    name: str
    #: its full name (in a sequential block: the next child index)
    path: str
    inline: bool

    def instance(self, fields: SMap, path: str, inputs: list[Value | Poison]) -> Instantiation:
        return Instantiation(self.item, fields, self.kind, path, inputs, self.inline)


def _record_count(graph: Graph, node: _Written, scope: Scope) -> None:
    """Record a repeat whose count reads parameters: generated code writes it as a loop whose length
    may follow them (``Graph.repeat_counts``)."""
    read = scope.sources_of(node.item["repeat"])
    if read and not node.inline and scope.counter is None:
        graph.repeat_counts[node.path] = read


class Instantiator:
    """Makes the nodes of node lists (the top level's, and each block instance's) into the graph."""

    def __init__(self, ctx: Elaboration) -> None:
        self.ctx = ctx

    def node_list(self, nodes: SList, scope: Scope) -> None:
        """Make every node of ``nodes`` in ``scope``; a failed node binds its name to poison."""
        for item in nodes:
            if isinstance(item, SMap) and "name" in item:
                scope.declared.add(str(item["name"]))
        for i, item in enumerate(nodes):
            if not isinstance(item, SMap):
                self.ctx.error("each node must be a mapping like {name: conv1, op: conv, ...}", nodes.where(i))
                continue
            try:
                self._node(item, scope)
            except Abort:
                name = item.get("name")
                if name is not None:
                    scope.bindings[str(name)] = Binding([POISON])
                scope.names_lost |= "repeat" in item and "instance_name" in item
                scope.set_previous(POISON)

    # -- one node ---------------------------------------------------------------------
    def _node(self, item: SMap, scope: Scope) -> None:
        ctx = self.ctx
        ctx.fatal(ctx.budget.add_node(), item.location)
        self._check_node_keys(item)
        kind, is_op = self._kind(item, scope)
        name = node_name(ctx, item, scope, kind)
        if "if" in item and self._left_out(item, scope, name):
            if LIST_ITEM_RE.match(name):
                self.ctx.left_out_items.add(scope.prefix + name)
            return
        if LIST_ITEM_RE.match(name):  # (kept: a module list's numbering counts it)
            list_name, _, index = name.rpartition(".")
            self.ctx.list_items.setdefault(scope.prefix + list_name, []).append((int(index), item.where("name")))
        if name in scope.left_out:  # a kept alternative takes the name: those left out are as if not written
            scope.left_out.discard(name)
            scope.left_out_errors.pop(name, None)  # (what they stood for, and its errors, is no one's input)
            if scope.left_out_chain is not None and scope.left_out_chain[0] == name:  # written right before it
                scope.set_previous(*scope.left_out_chain[1:])
        inline = self._inline(item, scope, is_op)
        path = scope.prefix + name
        if scope.counter is not None and not inline and not ("repeat" in item and "instance_name" in item):
            # nn.Sequential numbering; `name` is the handle. (Repetitions named by `instance_name`
            # take their own places in the numbering: the group has no module of its own.)
            path = scope.prefix + scope.next_index()
        node = _Written(item, kind, is_op, name, path, inline)
        # An op without inputs (a learned tensor) is declared, not chained: it is no one's
        # default input and the previous node stays what it was.
        source = is_op and "in" not in item and _takes_no_input(kind)
        if "repeat" in item:
            binding = self._repeat(node, scope)
        else:
            inputs = [] if source else inputs_of(ctx, item, scope, path)
            binding = self._instance(node, node.instance(item, path, inputs), scope, {})
        scope.bindings[name] = binding
        scope.level_names.add(name)
        if not source:
            scope.set_previous(binding.values[0])

    def _kind(self, item: SMap, scope: Scope) -> tuple[str, bool]:
        """The op or block a node applies, and whether it is an op."""
        has_op = "op" in item
        if has_op == ("block" in item):
            self.ctx.error("a node needs exactly one of 'op' or 'block'", item.location,
                           str(item.get("name", "")) or None)
            raise Abort()
        field_name = "op" if has_op else "block"
        kind = str(item[field_name])
        if "${" in kind:  # an op or block chosen by a parameter; still only registered ones exist
            site = Site(item, field_name, item.get("name"))
            kind = interpolate(kind, self.ctx, scope, site)
        else:  # `op: act` where the parameter act holds an op or block name
            kind = chosen_kind(kind, scope.env, self._known_kind)
        if kind in self.ctx.blocks and registry.get(kind) is None:
            has_op = False  # `op:` may name a block (chosen by a parameter), and `block:` an op
        elif registry.get(kind) is not None and kind not in self.ctx.blocks:
            has_op = True
        return kind, has_op

    def _known_kind(self, kind: str) -> bool:
        return registry.get(kind) is not None or kind in self.ctx.blocks

    def _left_out(self, item: SMap, scope: Scope, name: str) -> bool:
        """Evaluate ``if``; a node it leaves out binds its name to its ``else`` (or its input)."""
        path = scope.prefix + name
        name_taken = name in scope.bindings and name not in scope.left_out
        cond = item["if"]
        if isinstance(cond, str):
            cond = self.ctx.evaluate(cond, scope, Site(item, "if", path))
        if not isinstance(cond, bool):  # (a number or a list would otherwise decide by Python's truthiness)
            self.ctx.error(f"'if' must be a condition, true or false, got {spelled(cond)}", item.where("if"), path,
                           scope.origin_hint(item["if"]))
            raise Abort()
        if cond:
            if name_taken:
                self.ctx.error(f"duplicate node name '{name}' (two nodes of this name are both kept)",
                               item.where("name"), path)
                raise Abort()
            return False
        value, held = self._stands_for(item, scope, path)  # (a typo in its inputs is reported all the same)
        if name_taken:  # a kept alternative of the same name keeps it; one left out is as if not written
            return True
        scope.bindings[name] = Binding([value])
        scope.left_out.add(name)
        if held:
            scope.left_out_errors[name] = held
        else:  # (an earlier alternative's, left out too, no longer what the name stands for)
            scope.left_out_errors.pop(name, None)
        chain = scope.left_out_chain  # (kept from the first of adjacent alternatives all left out)
        before = chain if chain is not None and chain[0] == name else (name, scope.previous, scope.previous_errors,
                                                                         scope.previous_binding)
        scope.set_previous(value, held)
        scope.left_out_chain = before
        return True

    def _stands_for(self, item: SMap, scope: Scope, path: str) -> tuple[Value | Poison, list]:
        """What a left-out node's name stands for (its ``else``, or its first input), and the errors
        found resolving it, held where they depend on which nodes ``if`` kept (an output another
        configuration has, ShuffleNet's split of a unit left out): reported only where the name is
        used. A name unknown in every configuration (a typo) is reported here."""
        target = item.get("else")
        with self.ctx.held() as held:
            try:
                if target is not None:
                    site = Site(item, "else", path)
                    value = resolve(self.ctx, chosen_name(self.ctx, str(target), scope, site), scope, site)
                else:
                    # (a repeated node's name stands for the input of its repetition 0)
                    value = inputs_of(self.ctx, item, scope, path, {"index": 0} if "repeat" in item else None)[0]
            except Abort:
                value = POISON
        refs = [target] if target is not None else item.get("in", [])
        refs = [refs] if isinstance(refs, (str, int)) else list(refs) if isinstance(refs, SList) else []
        known = all(str(ref).partition(":")[0].removesuffix("[*]") in scope.bindings for ref in refs)
        if held and (value is not POISON or not known):
            if not known:
                self.ctx.sink.diagnostics.extend(held)
            return value, []
        why = "this node is left out by its 'if', so its name stands for this input, and a later node reads it"
        return value, [dataclasses.replace(d, hint=why) for d in held]

    def _inline(self, item: SMap, scope: Scope, is_op: bool) -> bool:
        """Whether a node is ``inline: true``: a block instance (or repetitions) without a name level."""
        inline = self.ctx.flag(item, "inline")
        if inline is None:
            raise Abort()
        if inline and is_op and ("repeat" not in item or scope.counter is None):
            self.ctx.error("'inline' applies to block instances (and to repeated ops inside a sequential block, "
                           "which number each repetition)", item.where_key("inline"))
            raise Abort()
        return inline

    def _check_node_keys(self, item: SMap) -> None:
        ctx = self.ctx
        if "else" in item and "if" not in item:
            ctx.error("'else' needs an 'if'", item.where_key("else"))
        for key in ("overrides", "instance_name", "parallel"):
            if key in item and "repeat" not in item:
                ctx.error(f"'{key}' needs a 'repeat'", item.where_key(key))
        _check_expect(ctx, item)

    # -- repeat -----------------------------------------------------------------------
    def _repeat(self, node: _Written, scope: Scope) -> Binding:
        """Instantiate a node ``repeat`` times in series (or densely, when ``in`` names ``NAME[*]``);
        ``inline`` repetitions add no name level (numbered children of a sequential block)."""
        item, name = node.item, node.name
        count = self._repeat_count(item, scope, node.path)
        _record_count(self.ctx.graph, node, scope)
        overrides = self._overrides(item, count, node.path)
        dense = _mentions(item.get("in"), f"{name}[*]")
        parallel = self._parallel(item, dense)
        # (`in: "parts:${index}"`: each repetition reads what its own index names)
        per_repetition = _interpolated(item.get("in"))
        scope.repetitions[name] = []
        if dense:
            inputs = None
        elif per_repetition:
            first_entry, *others = repetition_entries(self.ctx, item, scope, node.path, 0, count)
            inputs = some_input(self.ctx, item, node.path, [*first_entry, *(v for entry in others for v in entry)])
        else:
            inputs = inputs_of(self.ctx, item, scope, node.path)
        binding = Binding([inputs[0]]) if inputs else Binding([scope.used_previous(self.ctx.sink)])
        for index in range(count):
            if index:  # (each repetition is a node or instance of its own: the first was counted with the node)
                self.ctx.fatal(self.ctx.budget.add_node(), item.location)
            env = {"index": index}
            if dense:  # each repetition sees every earlier repetition's output
                inputs = inputs_of(self.ctx, item, scope, node.path, env)
            elif per_repetition and index:
                # (in series, the repetition before stands in the first entry's place: it is not read again)
                own = repetition_entries(self.ctx, item, scope, node.path, index, count)
                lead = [] if parallel else [inputs[0], *first_entry[1:]]
                inputs = [*lead, *(v for entry in own for v in entry)]
            fields = _merged(item, overrides[index]) if index in overrides else item
            local = self._instance_name(node, scope, index)
            if node.inline:
                path = scope.prefix + scope.next_index() if node.is_op else node.path
            elif "instance_name" in item:
                path = scope.prefix + local
            else:
                path = f"{node.path}.{index}"
            binding = self._instance(node, node.instance(fields, path, inputs), scope, env)
            if "instance_name" in item:
                scope.bindings[local] = binding
            scope.repetitions[name].append((local, binding))
            if not dense and not parallel and inputs:  # (a block of no inputs chains none: each reads nothing)
                inputs = [binding.values[0], *inputs[1:]]
        return binding

    def _parallel(self, item: SMap, dense: bool) -> bool:
        """Whether a repeated node's repetitions are parallel branches (``parallel: true``): each
        reads the node's own inputs."""
        parallel = self.ctx.flag(item, "parallel")
        if parallel is None:
            raise Abort()
        if parallel and dense:
            self.ctx.error("'parallel: true' and an 'in' naming the node's own repetitions ([*]) contradict: "
                           "parallel repetitions all read the node's inputs, dense ones each earlier one",
                           item.where_key("parallel"))
            raise Abort()
        return parallel

    def _repeat_count(self, item: SMap, scope: Scope, path: str) -> int:
        count = item["repeat"]
        if isinstance(count, str):
            count = self.ctx.evaluate(count, scope, Site(item, "repeat", path),
                                      expects=lambda: "'repeat' expects a non-negative int")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.ctx.error(f"'repeat' must be a non-negative int, got {spelled(count)}", item.where("repeat"), path,
                           scope.origin_hint(item["repeat"]))
            raise Abort()
        self.ctx.fatal(self.ctx.budget.check_repeat(count), item.where("repeat"), path)
        return count

    def _instance_name(self, node: _Written, scope: Scope, index: int) -> str:
        """The local name of repetition ``index``: ``NAME.INDEX``, or its ``instance_name``."""
        item = node.item
        if "instance_name" not in item:
            return f"{node.name}.{index}"
        site = Site(item, "instance_name", node.path)
        local = interpolate(str(item["instance_name"]), self.ctx, scope.with_names({"index": index}), site)
        problem = _name_problem(local, index, scope.bindings, str(item["instance_name"]))
        if problem is not None:
            self.ctx.report(problem[0], site, problem[1])
            raise Abort()
        if scope.counter is not None and local.isdigit():  # a place in a sequential block's numbering
            if int(local) < scope.counter[0]:
                self.ctx.report(f"instance_name gives '{local}' for repetition {index}, but this sequential "
                                f"block has already numbered its children up to {scope.counter[0] - 1}; "
                                f"expected {scope.counter[0]} or more (e.g. \"${{index + {scope.counter[0]}}}\" "
                                "for the first repetition)", site)
                raise Abort()
            scope.counter[0] = int(local) + 1
        return local

    def _overrides(self, item: SMap, count: int, path: str) -> dict[int, SMap]:
        """``overrides: {INDEX: {field: value}}``: fields of single repetitions, by index."""
        raw = item.get("overrides")
        if raw is None:
            return {}
        ctx = self.ctx
        if not isinstance(raw, SMap):
            ctx.error("'overrides' must map a repetition index to fields, e.g. {0: {stride: 2}}",
                      item.where("overrides"), path)
            raise Abort()
        result: dict[int, SMap] = {}
        for key, fields in raw.items():
            try:
                index = int(key)
            except ValueError:
                ctx.error(f"override key '{key}' must be a repetition index", raw.where_key(key), path)
                continue
            if not -count <= index < count:
                ctx.error(f"override index {index} is outside repeat count {count}", raw.where_key(key), path)
                continue
            if not isinstance(fields, SMap):
                ctx.error("an override must be a mapping of field -> value", raw.where(key), path)
                continue
            for k in fields:
                if k in _NOT_OVERRIDABLE:
                    ctx.error(f"'{k}' cannot be overridden per repetition", fields.where_key(k), path)
            _check_expect(ctx, fields, path)
            result[index % count] = fields
        return result

    # -- one instance: an op application or a block instantiation ---------------------------
    def _instance(self, node: _Written, call: Instantiation, scope: Scope, env_extra: dict[str, Any]) -> Binding:
        inner = Scope(prefix=scope.prefix, env={**scope.env, **env_extra}, stack=scope.stack,
                      bindings=scope.bindings, declared=scope.declared, repetitions=scope.repetitions,
                      counter=scope.counter, previous=scope.previous, block_inputs=scope.block_inputs,
                      width_queries=scope.width_queries, left_out_errors=scope.left_out_errors,
                      origins=scope.origins, level_names=scope.level_names, sources=scope.sources,
                      inline=scope.inline)
        if node.is_op:
            return apply_op(self.ctx, call, inner)
        return apply_block(self.ctx, call, inner, self.node_list)


def _check_expect(ctx: Elaboration, fields: SMap, path: str | None = None) -> None:
    """An error at a node's (or a repetition's override's) ``expect`` unless it names a connection kind."""
    if "expect" in fields and fields["expect"] not in schema.EXPECT_KINDS:
        ctx.error(f"unknown connection kind '{fields['expect']}'; expected one of "
                  f"{', '.join(schema.EXPECT_KINDS)}", fields.where("expect"), path,
                  hint=did_you_mean(str(fields["expect"]), schema.EXPECT_KINDS))


def _takes_no_input(kind: str) -> bool:
    op = registry.get(kind)
    return op is not None and op.arity() == (0, 0)


def _mentions(refs: Any, ref: str) -> bool:
    """Whether an ``in`` field names ``ref``."""
    if isinstance(refs, list):
        return any(str(r) == ref for r in refs)
    return refs is not None and str(refs) == ref


def _interpolated(refs: Any) -> bool:
    """Whether an ``in`` field holds ``${...}`` text (a reference computed per repetition)."""
    if isinstance(refs, list):
        return any("${" in str(r) for r in refs)
    return refs is not None and "${" in str(refs)


def _merged(item: SMap, extra: SMap) -> SMap:
    """A node's fields with one repetition's overrides applied (locations kept)."""
    merged = SMap({**item, **extra})
    merged.location = item.location
    merged.key_locations = {**item.key_locations, **extra.key_locations}
    merged.value_locations = {**item.value_locations, **extra.value_locations}
    merged.quoted = {**item.quoted, **extra.quoted}
    return merged


def _name_problem(local: str, index: int, taken: Container[str], written: str) -> tuple[str, str | None] | None:
    """What is wrong with ``local``, the name ``instance_name`` (``written``) gives repetition ``index``,
    as (message, hint); None where nothing is. Where it gives every repetition one name (it holds no
    ``${...}``), the hint says to write ``${index}`` in it."""
    if not MODULE_NAME_RE.match(local):
        return (f"instance_name gives '{shown_name(local)}' for repetition {index}: names must use letters, "
                f"digits, '_' and '-', at most {MAX_NAME_LENGTH} characters", None)
    if local not in taken:
        return None
    hint = None if "${" in written else \
        f"each repetition needs its own name: write ${{index}} in it, e.g. \"{written}${{index}}\""
    return f"instance_name gives '{local}' for repetition {index}, a name already taken in this scope; " \
           "names must be unique", hint
