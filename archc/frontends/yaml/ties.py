"""Weight tying in a spec (``tie:``): a parameter that is another node's tensor.

On an op node, ``tie: {weight: wte.weight}`` maps the node's parameters to other nodes'
(:func:`tie_node`); on a block instance, ``tie: enc_a`` ties every parameter to the same path in
another instance, or a mapping ties the paths it names (:func:`tie_instance`). Either way each
tie is checked (a parameter of another node, one shape and dtype) and recorded on the owning
node (``TIE_META``), a chain of ties ending at the tensor's owner.
"""
from __future__ import annotations

from typing import NamedTuple

from archc.errors import did_you_mean
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.naming import resolve
from archc.frontends.yaml.scope import POISON, PREVIOUS, Abort, Scope
from archc.frontends.yaml.site import Instantiation, Site
from archc.frontends.yaml.source import SMap
from archc.ir import Graph, Node
from archc.ops.base import param_key
from archc.ops.weights import TIE_META, param_specs, tied_params

__all__ = ["tie_instance", "tie_node"]


class _Own(NamedTuple):
    """A parameter being tied: its node, its name there, and the name the spec gives it."""

    node: Node
    param: str
    shown: str


def _tie_target(ctx: Elaboration, ref: str, scope: Scope, site: Site, own: str) -> tuple[Node, str]:
    """The node and parameter ``ref`` names: ``NODE.PARAM`` (``NODE`` a name in scope), or a dotted
    path into a block instance of this scope, as its state_dict key reads
    (``transformer.wte.weight``; ``blocks.0.gamma`` for a parameter node; ``layer.0.fc.weight`` for
    an earlier repetition of a repeated instance)."""
    target, _, tparam = ref.partition(".")
    graph = ctx.graph
    if tparam and target not in scope.bindings:  # (a repetition made already: its name is bound after the last)
        found = _parameter_at(graph, scope.prefix + ref, scope.prefix)
        if found is not None:
            return found
    if target not in scope.bindings and target != PREVIOUS:
        # (PyTorch ties either way round, a linear's weight to the embedding's or back; a spec's tie names a
        # tensor made before the node that shares it: a name no node here has, close to none, may be a later one's)
        advice = (f"a tie names a tensor made earlier; to share this one ({own}) with a later node or one outside "
                  f"this block, put the tie on that node: tie: {{PARAM: {own}}}")
        near = did_you_mean(target, scope.bindings)
        if target in scope.declared:
            ctx.report(f"'{target}' comes after this node: {advice}", site)
        else:
            ctx.report(f"unknown node or input '{target}'" + ("" if near else f" ({advice})"), site, near)
        raise Abort()
    value = resolve(ctx, target, scope, site)  # the first name must be in scope (its errors, hints)
    if value is POISON:
        raise Abort()
    if tparam and target in scope.bindings:
        found = _parameter_at(graph, scope.prefix + ref, scope.prefix + target)
        if found is not None:
            return found
        instance = scope.prefix + target + "."
        if "." in tparam and value.node.startswith(instance):  # a path into the instance that is none
            message, hint = _no_parameter_at(ref, target, _param_paths(graph, instance, scope.prefix))
            ctx.report(message, site, hint)
            raise Abort()
    return graph.node(value.node), tparam


def _parameter_at(graph: Graph, path: str, below: str) -> tuple[Node, str] | None:
    """The node and parameter whose state_dict key is ``path``, for a node named below ``below`` (a
    parameter's own name may hold dots: ``attention.out_proj.weight`` is the attention node's
    ``out_proj.weight``); the longest node name that fits first. None where none fits."""
    if path in graph and "" in param_specs(graph, graph.node(path)):
        return graph.node(path), ""  # a parameter node
    end = len(path)
    while (end := path.rfind(".", 0, end)) > len(below):
        owner = path[:end]
        if owner in graph:
            node = graph.node(owner)
            if path[end + 1:] in param_specs(graph, node):
                return node, path[end + 1:]
    return None


def _param_paths(graph: Graph, under: str, relative_to: str) -> list[str]:
    """The state_dict keys of the parameters of the nodes named under ``under``, as read from the name
    level ``relative_to`` (a prefix of it)."""
    return [param_key(n.name, p)[len(relative_to):] for n in graph.nodes() if n.name.startswith(under)
            for p in param_specs(graph, n)]


def _no_parameter_at(path: str, instance: str, keys: list[str]) -> tuple[str, str | None]:
    """The message, and its hint, for a ``path`` that names no parameter of ``instance`` (whose are ``keys``)."""
    return (f"'{path}' names no parameter inside block instance '{instance}'; expected a path as its state_dict "
            f"key reads" + (f", e.g. {', '.join(keys[:3])}" if keys else ""), did_you_mean(path, keys))


def tie_node(ctx: Elaboration, node: Node, call: Instantiation, scope: Scope) -> None:
    """``tie: {weight: wte.weight}`` on an op node: this node's parameter is another node's tensor."""
    decl = call.fields["tie"]
    own = param_specs(ctx.graph, node)
    local = node.name.rpartition(".")[2]
    if isinstance(decl, str) and _is_path(decl):  # every parameter, to the same one of another node
        if scope.prefix + decl == call.path and "repeat" in call.item:
            return  # (`repeat: n, tie: layer.0`: the first repetition owns what the rest share)
        _refuse_later_repetition(ctx, call, scope.prefix + decl, call.field_site("tie"))
        pairs = [(p or local, f"{decl}.{p}" if p else decl, call.field_site("tie")) for p in own]
    elif isinstance(decl, SMap) and decl:
        pairs = [(str(pname), str(ref), Site(decl, pname, call.path)) for pname, ref in decl.items()]
    else:
        ctx.report("'tie' names another node, all of whose parameters this node shares (tie: fc), or maps this "
                   "node's parameters to other nodes', e.g. {weight: wte.weight}", call.field_site("tie"))
        raise Abort()
    ties: dict[str, tuple[str, str]] = {}
    for pname, ref, site in pairs:
        param = "" if pname == local else pname
        if param not in own:
            has = f"it has: {', '.join(p or node.name for p in own)}" if own else "it holds none"
            ctx.error(f"op '{node.op}' has no parameter '{pname}' to tie; {has}", site.key_location, call.path)
            raise Abort()
        if "repeat" in call.item and scope.prefix + ref == f"{call.path}.{pname}":
            continue  # (a repetition mapped to itself owns the tensor: `{weight: layer.0.weight}` at layer.0)
        ties[param] = _tie_one(ctx, _Own(node, param, pname), ref, scope, site)
    if ties:
        node.meta[TIE_META] = ties


def _tie_one(ctx: Elaboration, tied: _Own, ref: str, scope: Scope, site: Site) -> tuple[str, str]:
    """The (node, parameter) that ``tied`` is tied to by ``ref``, checked: another node's parameter of one
    shape and dtype; a chain of ties ends at the tensor's owner."""
    node, param = tied.node, tied.param
    own = param_specs(ctx.graph, node)
    source, tparam = _tie_target(ctx, ref, scope, site, param_key(node.name, param))
    theirs = param_specs(ctx.graph, source)
    if source.name == node.name:
        ctx.report(f"'{ref}' is this node's own parameter: a tie names another node's", site)
        raise Abort()
    if tparam not in theirs:
        ctx.report(f"'{ref}' is no parameter of another node ('{source.name}' has: "
                   f"{', '.join(p or source.name for p in theirs) or 'none'})", site)
        raise Abort()
    if own[param].shape != theirs[tparam].shape or own[param].dtype != theirs[tparam].dtype:
        ctx.report(f"cannot tie '{tied.shown}' {own[param].shape} to '{ref}' {theirs[tparam].shape}: tied "
                   "parameters need one shape and dtype", site)
        raise Abort()
    return tied_params(source).get(tparam, (source.name, tparam))


def tie_instance(ctx: Elaboration, call: Instantiation, scope: Scope) -> None:
    """``tie:`` on a block instance, made already: ``tie: enc_a`` makes each of its parameters the
    parameter at the same path in ``enc_a`` (another instance in scope, of the same structure, as a
    siamese encoder's second branch); a mapping ties the paths it names inside the instance
    (``{conv1.weight: enc_a.conv1.weight}``)."""
    decl, site = call.fields["tie"], call.field_site("tie")
    if call.inline:
        ctx.report("'tie' on an inline block instance: its nodes join the caller's, so tie them one by one",
                   site)
        raise Abort()
    graph, prefix = ctx.graph, call.path + "."
    if isinstance(decl, str) and _is_path(decl):
        if scope.prefix + decl == call.path:
            if "repeat" in call.item:  # (`repeat: n, tie: layer.0`: the first repetition owns what the rest share)
                return
            ctx.report(f"'tie: {decl}' ties block instance '{decl}' to itself; name another instance", site)
            raise Abort()
        _refuse_later_repetition(ctx, call, scope.prefix + decl, site)
        pairs = [(path, f"{decl}.{path}", site) for path in _param_paths(graph, prefix, prefix)]
    elif isinstance(decl, SMap) and decl:
        pairs = [(str(path), str(ref), Site(decl, path, call.path)) for path, ref in decl.items()]
    else:
        ctx.report("'tie' on a block instance names another instance (tie: enc_a) or maps paths inside this one "
                   "to other parameters ({conv1.weight: enc_a.conv1.weight})", site)
        raise Abort()
    for path, ref, entry in pairs:
        node, param = _own_parameter(ctx, prefix, path, entry)
        node.meta.setdefault(TIE_META, {})[param] = _tie_one(ctx, _Own(node, param, path), ref, scope, entry)


def _refuse_later_repetition(ctx: Elaboration, call: Instantiation, target: str, site: Site) -> None:
    """Refuse a repeated instance's ``tie:`` naming a repetition of its own node not made before it
    (``repeat: 3, tie: layer.7`` or ``layer.2`` at ``layer.0``): it would read as a name used before
    its definition, though the node is only repeated."""
    node, _, index = call.path.rpartition(".")
    owner, _, wanted = target.rpartition(".")
    if "repeat" not in call.item or owner != node or not (index.isdigit() and wanted.isdigit()):
        return
    if int(wanted) > int(index):
        name = node.rpartition(".")[2]
        ctx.report(f"'tie: {name}.{wanted}' names no repetition made before '{call.path}': a repeated instance "
                   f"ties to an earlier repetition, e.g. tie: {name}.0 (the first owns what the rest share)", site)
        raise Abort()


def _is_path(text: str) -> bool:
    """Whether ``text`` names an instance: a name, or a repetition's (``layer.0``, ``stage.layer.1``)."""
    first, *rest = text.split(".")
    return first.isidentifier() and all(part.isidentifier() or part.isdigit() for part in rest)


def _own_parameter(ctx: Elaboration, prefix: str, path: str, site: Site) -> tuple[Node, str]:
    """The node and parameter at ``path`` (as its state_dict key reads) inside the instance ``prefix``."""
    found = _parameter_at(ctx.graph, prefix + path, prefix[:-1])
    if found is not None:
        return found
    message, hint = _no_parameter_at(path, prefix[:-1], _param_paths(ctx.graph, prefix, prefix))
    ctx.error(message, site.key_location if isinstance(site.holder, SMap) and site.key != "tie" else site.location,
              site.node, hint)
    raise Abort()
