"""Instantiating a block: its parameters bound, its inputs named, its nodes made in a new scope.

:func:`apply_block` checks a block instance's arguments against the block's ``params``
(each argument read like an attribute: a parameter's value, ``${expr}`` text, literal text
or an expression), binds its inputs to the block's formal names (a last formal ``xs...``
takes the rest), opens the block's scope (a name level ``PATH.``, with its
:class:`~archc.ir.BlockInstance` on the scope stack, unless the instance is ``inline``),
evaluates the block's ``let``, has the caller make its nodes, and returns what its
``outputs`` name. It then warns where a node's width was computed from a block input the
block reads only in its first node.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from archc.errors import ArchcError, Diagnostic, Location, Note, closest, did_you_mean, meant_hint
from archc.frontends.yaml import schema
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.naming import aliased_formals, resolve
from archc.frontends.yaml.params import (NOT_A_PARAMETER, define_lets, interpolate, parameter_value,
                                         takes_literal_text)
from archc.frontends.yaml.scope import POISON, PREVIOUS, Abort, Binding, Scope, sources_of
from archc.frontends.yaml.site import Instantiation, Site
from archc.frontends.yaml.ties import tie_instance
from archc.frontends.yaml.source import SList, SMap
from archc.ir import BlockInstance, Graph, Value
from archc.ops import registry

#: makes a list of nodes in a scope (the instantiation step, which owns node lists)
NodeListMaker = Callable[[SList, Scope], None]


@dataclass(frozen=True)
class _Signature:
    """A block's declared parameters (name -> default, None: required) and formal input names."""

    params: Mapping[str, Any]
    formals: tuple[str, ...]

    @property
    def variadic(self) -> bool:
        """Whether the last formal (``xs...``) takes any number of inputs."""
        return bool(self.formals) and self.formals[-1].endswith("...")

    @property
    def fixed(self) -> tuple[str, ...]:
        return self.formals[:-1] if self.variadic else self.formals


def apply_block(ctx: Elaboration, call: Instantiation, scope: Scope, make_nodes: NodeListMaker) -> Binding:
    """Instantiate the block ``call`` names; ``make_nodes`` makes the block's nodes in its scope."""
    bdef = ctx.blocks.get(call.kind)
    if bdef is None:
        ctx.report(f"unknown block '{call.kind}'", call.site("block"),
                   did_you_mean(call.kind, list(ctx.blocks) + registry.names()))
        raise Abort()
    ctx.fatal(ctx.budget.check_depth(len(scope.stack)), call.item.location, call.path)
    with _noting_instance(ctx, call):
        return _instantiate(ctx, call, scope, bdef, make_nodes)


def _instantiate(ctx: Elaboration, call: Instantiation, scope: Scope, bdef: SMap,
                 make_nodes: NodeListMaker) -> Binding:
    """:func:`apply_block` for a block that exists, ``bdef``."""
    declared = _declared_params(ctx, call, bdef)
    written: dict[str, str] = {}
    env = _arguments(ctx, call, scope, declared, written)
    signature = _Signature(declared, _formals(ctx, call, bdef))
    _check_inputs(ctx, call, signature)
    inner = _enter(call, scope, bdef, env, signature, written)
    inner.origins = _origins(ctx, call, scope, declared)
    inner.sources = _sources(ctx, call, scope, declared)
    define_lets(ctx, bdef, inner)
    nodes = bdef.get("nodes")
    if not isinstance(nodes, SList) or not nodes:
        ctx.error(f"block '{call.kind}' needs a non-empty 'nodes' list", bdef.location)
        raise Abort()
    errors_before = len(ctx.sink.diagnostics)
    make_nodes(nodes, inner)
    if len(ctx.sink.diagnostics) > errors_before:
        raise Abort()
    if "tie" in call.fields:
        tie_instance(ctx, call, scope)
    result = _outputs(ctx, call, bdef, inner)
    if not call.inline:  # (an inline block has no instance: its nodes are the caller's)
        inner.stack[-1].outputs.extend(v for v in result.values if isinstance(v, Value))
    _warn_unread_widths(ctx, inner, {v.node for v in result.values if isinstance(v, Value)})
    _note_input_reads(ctx, call.kind, bdef, signature, inner)
    return result


@contextlib.contextmanager
def _noting_instance(ctx: Elaboration, call: Instantiation) -> Iterator[None]:
    """Each error found while the instance ``call`` is made, somewhere other than the instance's
    own lines (in the block's definition, most often), gets a note naming the instance and where
    it is written: the arguments the block failed on are there, and the error's own place is
    shared by every instance."""
    sink, before = ctx.sink, len(ctx.sink.diagnostics)
    raised: list[Diagnostic] = []
    try:
        yield
    except ArchcError as exc:  # (a limit hit: raised with the diagnostics found so far)
        raised = exc.diagnostics
        raise
    finally:
        found = sink.diagnostics[before:] + [d for d in raised if not any(d is e for e in sink.diagnostics)]
        if found:
            note = Note(f"in '{call.path}', an instance of block '{call.kind}'", call.site("block").location)
            own = _written_lines(call.item)
            for diag in found:
                loc = diag.location
                if loc is not None and loc.line > 0 and (loc.file != note.location.file or loc.line not in own):
                    diag.notes.append(note)


def _written_lines(item: SMap) -> set[int]:
    """The lines a node's mapping is written on (where its keys and their values start)."""
    places = [item.location, *item.key_locations.values(), *item.value_locations.values()]
    return {loc.line for loc in places if loc.file == item.location.file}


def _note_input_reads(ctx: Elaboration, kind: str, bdef: SMap, signature: _Signature, inner: Scope) -> None:
    """Record which of block ``kind``'s inputs this instance read (for :func:`warn_unread_inputs`).
    A variadic input given no tensors says nothing either way."""
    written = bdef.get("inputs")
    for k, formal in enumerate(signature.formals):
        binding = inner.bindings[formal.removesuffix("...")]
        if binding.spread and not binding.values:
            continue
        where = written.where(k) if isinstance(written, SList) else bdef.where("inputs") if written else bdef.location
        key = (kind, formal)
        read_before = ctx.block_input_reads.get(key, (where, False))[1]
        ctx.block_input_reads[key] = (where, read_before or binding.read)


def warn_unread_inputs(ctx: Elaboration) -> None:
    """Warn, once per block definition, about each block input that no instance of the block read:
    neither an ``in:``, its ``outputs``, ``prev`` nor a shape query names it (most likely a
    mistyped ``in:`` reads another input in its place)."""
    for (kind, formal), (where, read) in ctx.block_input_reads.items():
        if not read:
            name = formal.removesuffix("...")
            ctx.graph.warnings.append(Diagnostic(
                f"block '{kind}': its input '{name}' is never read (no node's 'in:' names it, nor its "
                f"'outputs'); read it, or leave it out of the block's inputs", where, severity="warning"))


def _declared_params(ctx: Elaboration, call: Instantiation, bdef: SMap) -> Mapping[str, Any]:
    declared = bdef.get("params")
    if declared is None:
        return {}
    if not isinstance(declared, SMap):
        ctx.error(f"'params' of block '{call.kind}' must be a mapping", bdef.where("params"))
        raise Abort()
    return declared


def _arguments(ctx: Elaboration, call: Instantiation, scope: Scope, declared: Mapping[str, Any],
               written: dict[str, str]) -> dict[str, Any]:
    """The block scope's names: top-level params and lets, then the arguments and defaults;
    ``written`` gets the arguments written as expressions (parameter -> its text)."""
    fields = call.fields
    env = dict(ctx.globals)  # top-level params and lets stay visible inside blocks
    failed = False
    suggested = set()  # parameters a misspelt key was taken for: not reported missing as well
    for key in fields:
        if key in schema.NODE_KEYS:
            continue
        if key not in declared:
            meant = closest(key, declared)
            has = f"it has: {', '.join(declared)}" if declared else "it takes no parameters"
            ctx.error(f"block '{call.kind}' has no parameter '{key}'; {has}", fields.where_key(key), call.path,
                      meant_hint(meant))
            if meant is not None:
                suggested.add(meant)
            failed = True
            continue
        try:
            env[key] = _argument(ctx, call.field_site(key), declared[key], scope, written)
        except Abort:
            failed = True
    for key, default in declared.items():
        if key in fields:
            continue
        if default is None:
            if key not in suggested:
                ctx.error(f"block '{call.kind}' needs parameter '{key}'", fields.location, call.path)
            failed = True
        else:
            env[key] = default
    if failed:
        raise Abort()
    return env


def _origins(ctx: Elaboration, call: Instantiation, scope: Scope,
             declared: Mapping[str, Any]) -> dict[str, tuple[Location, ...]]:
    """Where each parameter of the block's scope got its value: the argument written at the call (and,
    where it reads parameters, their places: ``v: "cfg[index]"`` leads on to ``cfg``), else the block's
    default."""
    origins = dict(ctx.global_origins)
    fields = call.fields
    for key in declared:
        if key in fields:
            raw = fields[key]
            origins[key] = (fields.where(key), *scope.places_of(raw))
        elif isinstance(declared, SMap):
            origins[key] = (declared.where(key),)
    return origins


def _sources(ctx: Elaboration, call: Instantiation, scope: Scope, declared: Mapping[str, Any]
             ) -> dict[str, frozenset[str]]:
    """The model parameters each name of the block's scope stands for (Scope.sources): the model's
    own names, then each parameter's argument as the caller's scope computed it, else its default
    (one naming another parameter, ``mid: out``, stands for what that one does)."""
    sources = dict(ctx.global_sources)
    fields = call.fields
    for key in declared:
        sources[key] = scope.sources_of(fields[key]) if key in fields else frozenset()
    for key, default in declared.items():
        if key not in fields and isinstance(default, str):
            sources[key] = sources_of(sources, default)
    return sources


def _argument(ctx: Elaboration, site: Site, default: Any, scope: Scope, written: dict[str, str]) -> Any:
    """The value of the argument written at ``site`` for a parameter of default ``default``; an
    argument that names a parameter or is an expression goes into ``written`` as its text (a
    class written for the caller passes ``dil=dil``, not whichever of its parameters is equal)."""
    raw = site.value
    # (an argument fixes no model parameter: the block's scope stands for the parameters it carries,
    # fixed where the block uses it otherwise than in a node attribute, see _sources)
    named = parameter_value(raw, scope.env)
    if named is not NOT_A_PARAMETER:
        written[site.key] = raw
        return named  # parameters of any type flow through nested blocks
    if isinstance(raw, str) and "${" in raw:
        return interpolate(raw, ctx, scope, site)
    if isinstance(raw, str) and not takes_literal_text(raw, default):
        written[site.key] = raw
        return ctx.evaluate(raw, scope, site, attr=True)
    if isinstance(raw, SList):
        return [ctx.evaluate(v, scope, site.at(raw, i), attr=True) if isinstance(v, str) else v
                for i, v in enumerate(raw)]
    return raw


def _formals(ctx: Elaboration, call: Instantiation, bdef: SMap) -> tuple[str, ...]:
    formal = bdef.get("inputs", ["x"])
    if isinstance(formal, str):
        formal = [formal]
    if not isinstance(formal, list) or not all(isinstance(f, str) for f in formal):
        ctx.error(f"block '{call.kind}': 'inputs' must be a name or a list of names", bdef.where("inputs"),
                  call.path)
        raise Abort()
    return tuple(str(f) for f in formal)


def _check_inputs(ctx: Elaboration, call: Instantiation, signature: _Signature) -> None:
    inputs, fields, fixed = call.inputs, call.fields, signature.fixed
    # (none at all only for a block that declares none: a variadic input takes at least one)
    if len(inputs) < len(fixed) or (not signature.variadic and len(inputs) != len(fixed)) \
            or (not inputs and signature.formals):
        want = f"at least {len(fixed)}" if signature.variadic else str(len(fixed))
        takes = f"{want} input(s) ({', '.join(signature.formals)})" if signature.formals else "no input"
        ctx.error(f"block '{call.kind}' takes {takes}, got {len(inputs)}",
                  fields.where("in") if "in" in fields else fields.location, call.path,
                  _count_hint(call, signature))
        raise Abort()
    if any(v is POISON for v in inputs):
        raise Abort()


def _count_hint(call: Instantiation, signature: _Signature) -> str | None:
    """What to write where an instance passes a block more inputs than it declares."""
    if signature.variadic or len(call.inputs) <= len(signature.fixed):
        return None
    if not signature.formals and "in" not in call.fields:  # (it read the previous node by default)
        return "the block declares no inputs: write in: [] to instantiate it"
    return ("for any number of inputs, end the block's inputs with a variadic one, "
            f"inputs: [{', '.join([*signature.fixed, 'rest...'])}], and pass them on with in: rest")


def _enter(call: Instantiation, scope: Scope, bdef: SMap, env: dict[str, Any], signature: _Signature,
           written: Mapping[str, str]) -> Scope:
    """The block's scope, its formal inputs bound; ``written``: the arguments written as expressions."""
    if call.inline:  # the block's nodes join the caller's names (and its numbering, if sequential)
        lets = bdef.get("let") if isinstance(bdef.get("let"), SMap) else {}
        inner = Scope(prefix=scope.prefix, env=env, stack=scope.stack, counter=scope.counter,
                      inline=(frozenset(signature.params), frozenset(lets), dict(written), scope))
        inner.level_names = scope.level_names
    else:
        declared = signature.params
        lets = bdef.get("let") if isinstance(bdef.get("let"), SMap) else {}
        instance = BlockInstance(call.path, call.kind, defaults=tuple(declared.items()),
                                 args=tuple((k, env.get(k)) for k in declared),
                                 lets=tuple((k, v) for k, v in lets.items() if isinstance(v, str)),
                                 arg_exprs=tuple(_as_written(written, scope).items()),
                                 formals=signature.formals, inputs=tuple(call.inputs),
                                 formal_inputs=tuple(aliased_formals(call, scope).items()),
                                 location=call.fields.location)
        inner = Scope(prefix=call.path + ".", env=env, stack=scope.stack + (instance,),
                      counter=[0] if bdef.get("sequential") is True else None)
    inputs, fixed = call.inputs, signature.fixed
    for fname, value in zip(fixed, inputs):
        inner.bindings[fname] = Binding([value])
        inner.declared.add(fname)
    if signature.variadic:
        rest = signature.formals[-1][:-3]
        inner.bindings[rest] = Binding(list(inputs[len(fixed):]), spread=True)
        inner.declared.add(rest)
    if inputs:  # (a block of no inputs, `inputs: []`: its first node has no previous one to read)
        inner.previous = inputs[0]
        inner.previous_binding = inner.bindings[fixed[0] if fixed else signature.formals[-1][:-3]]
    inner.block_inputs = tuple(fixed)
    return inner


def _as_written(written: Mapping[str, str], scope: Scope) -> dict[str, str]:
    """The arguments written as expressions, as the caller's class reads them (those it can: a call
    inside an inline block is written in the class of the inline block's caller)."""
    return {key: text for key, raw in written.items() if (text := scope.as_written(raw)) is not None}


def _outputs(ctx: Elaboration, call: Instantiation, bdef: SMap, inner: Scope) -> Binding:
    """What the block instance stands for: the values its ``outputs`` name, or its last node's."""
    outs = bdef.get("outputs")
    if outs is None:
        last = inner.used_previous(ctx.sink)
        if last is None:  # (no inputs, and only declared nodes: parameters and constants chain nothing)
            ctx.error(f"block '{call.kind}' reads no input and has no node after its declared tensors: name its "
                      "output with 'outputs:'", bdef.location, call.path)
            raise Abort()
        return Binding([last])
    if not isinstance(outs, (str, list)):
        ctx.error(f"block '{call.kind}': 'outputs' must be a node name or a list of them", bdef.where("outputs"),
                  call.path)
        raise Abort()
    refs = [outs] if isinstance(outs, str) else list(outs)
    if not refs:
        ctx.error(f"block '{call.kind}': 'outputs' names no output: a block gives at least one (leave "
                  "'outputs' out for its last node's)", bdef.where("outputs"), call.path)
        raise Abort()
    sites = [Site(bdef, "outputs", call.path)] if isinstance(outs, str) else \
        [Site(outs, i, call.path) for i in range(len(refs))]
    values = [resolve(ctx, str(r), inner, site) for r, site in zip(refs, sites)]
    return Binding(values, tuple(str(r).replace(":", "_") for r in refs))


def _same_width(graph: Graph, node: str, value: Value) -> bool:
    """Whether ``node``'s first input has dim 1 of ``value`` (what channels() reads)."""
    if node not in graph or not graph.node(node).inputs:
        return False
    mine, theirs = graph.type_of(graph.node(node).inputs[0]).shape, graph.type_of(value).shape
    return len(mine) >= 2 and len(theirs) >= 2 and mine[1] == theirs[1]


def _warn_unread_widths(ctx: Elaboration, inner: Scope, outputs: set[str]) -> None:
    """Warn where a node's width comes from the block input (``channels(x)``) while the block
    reads that input only as its first node's input: most likely ``prev`` was meant. Not for
    the block's output nodes: giving the output the input's width is what a shape-preserving
    block means (an MLP's ``out_features or in_features``), nor where the node's own input has
    the block input's width (DenseNet's transition: BN and ReLU, then a conv of channels(x) // 2):
    then both read the same; nor where the first node reads the input as other than its first (the
    size an upsampling matches): the block refers to that tensor. Once per spec place, not per instance."""
    graph = ctx.graph
    for node, ref, location, earlier_readers in inner.width_queries:
        if node in outputs:
            continue
        value = inner.bindings[ref].values[0]
        if _same_width(graph, node, value):
            continue
        readers = [n for n in graph.users(value.node)
                   if n.startswith(inner.prefix) and value in graph.node(n).inputs]
        if any(n not in earlier_readers for n in readers):
            continue  # a node after this one reads the input: the block still holds it (a residual's add)
        if readers and graph.node(readers[0]).inputs[0] != value:
            continue  # read beside another tensor (an upsampling to its size): the block means that input
        if len(readers) <= 1 and not any(w.location == location for w in graph.warnings):
            graph.warnings.append(Diagnostic(
                f"its width is computed from {ref}, the block's input, which it does not read (the block "
                f"reads '{ref}' only in its first node); for the node before this one write '{PREVIOUS}', "
                f"e.g. channels({PREVIOUS})", location, node, severity="warning"))
