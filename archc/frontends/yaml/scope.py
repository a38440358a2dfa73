"""What names stand for while a spec is elaborated: bindings, scopes, and the poison value.

A :class:`Scope` holds the names visible in one list of nodes (the top level or one
block instance); a :class:`Binding` is what one name stands for (a node's outputs by
port, or all the tensors of a variadic block input). :data:`POISON` stands for a value
whose node failed, so that errors are reported once and not again by every user.
"""
from __future__ import annotations

import ast

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from archc.errors import Diagnostic, DiagnosticSink, Location
from archc.ir import BlockInstance, Graph, Node, TensorType, Value
from archc.ir.names import Namespace
from archc.limits import DEFAULT_LIMITS, Limits
from archc.frontends.yaml.expr import Evaluator, ExprError, WorkMeter, names_in
from archc.frontends.yaml.spelling import spelled


class Poison:
    """Stands for a value that failed to elaborate; users of it stay silent."""

    def __repr__(self) -> str:  # pragma: no cover
        return "<poison>"


POISON = Poison()

#: the functions an expression asks a tensor's type with (``channels(x)``)
TENSOR_QUERIES = frozenset({"shape", "channels", "rank"})
#: the name of "the node before this one" in expressions and ``in:`` (unless a node takes the name)
PREVIOUS = "prev"


class Abort(Exception):
    """Stops elaborating one node after its error was recorded."""


@dataclass
class Binding:
    """What a local name stands for: the outputs of a node or block, by port."""

    values: list[Value | Poison]
    ports: tuple[str, ...] = ()
    #: a variadic block input (``xs...``): ``in: xs`` passes all of its values
    spread: bool = False
    #: whether anything named it (an ``in:``, ``outputs``, ``shape()``/``channels()``, or ``prev``):
    #: a block input nothing reads is warned about (blocks.py)
    read: bool = False
    #: the op node whose outputs these are (None for a block instance or an input): asked for a hint
    #: where a port it does not have is named (:meth:`~archc.ops.base.OpDef.port_hint`)
    node: Node | None = None

    @property
    def poisoned(self) -> bool:
        return any(v is POISON for v in self.values)


class _Replaced(ast.NodeTransformer):
    """Names replaced by expressions (not the names of called functions; not inside a replacement)."""

    def __init__(self, replaced: Mapping[str, ast.expr], functions: set[int]) -> None:
        self.replaced, self.functions = replaced, functions

    def visit_Name(self, node: ast.Name) -> ast.AST:
        found = self.replaced.get(node.id) if id(node) not in self.functions else None
        return found if found is not None else node


@dataclass
class Scope:
    """Names visible while elaborating one list of nodes (top level or one block instance)."""

    prefix: str
    env: dict[str, Any]
    stack: tuple[BlockInstance, ...] = ()
    bindings: dict[str, Binding] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)     # every node name listed in this scope
    previous: Value | Poison | None = None
    #: the block input ``previous`` still stands for (a block's first node reads its first input)
    previous_binding: Binding | None = None
    #: names made up for nodes without a ``name:`` (``conv``, ``conv_1``, ...); see __post_init__
    auto_names: Namespace = field(init=False, repr=False)
    #: the node names bound at this scope's name level so far, shared with the inline block instances
    #: in it (their nodes add no name level): made-up names avoid them all
    level_names: set[str] = field(default_factory=set)
    #: outputs of each repetition of a repeated node so far, for ``NAME[*]`` references
    repetitions: dict[str, list[tuple[str, Binding]]] = field(default_factory=dict)
    #: names bound by nodes that ``if`` left out; a kept node of the same name may take them
    left_out: set[str] = field(default_factory=set)
    #: where each parameter's value was written, the caller's places after it (a block argument that
    #: passes a parameter on): what an error about the value adds (see :meth:`origin_hint`)
    origins: dict[str, tuple[Location, ...]] = field(default_factory=dict)
    #: errors in what a left-out node stands for, held until its name is used (see Elaboration.held)
    left_out_errors: dict[str, list[Diagnostic]] = field(default_factory=dict)
    #: the same for ``previous``, where a left-out node's held errors left it poisoned
    previous_errors: list[Diagnostic] = field(default_factory=list)
    #: where the last node made was a left-out alternative (a node ``if`` left out whose name a later
    #: node may take): (its name, ``previous``, ``previous_errors`` and ``previous_binding`` before it). A
    #: kept alternative of that name right after it chains from what came before, as if the left-out one
    #: were not written
    left_out_chain: tuple[str, Any, list[Diagnostic], Binding | None] | None = None
    #: in a ``sequential`` block: the next child index (shared with inline blocks inside it),
    #: so children are named 0, 1, 2, ... like ``nn.Sequential``'s; None elsewhere
    counter: list[int] | None = None
    #: the block's own input names (``x``): what ``channels(x)`` inside it refers to
    block_inputs: tuple[str, ...] = ()
    #: width queries (``channels(NAME)``) made while evaluating the current node's fields
    queried: list[str] = field(default_factory=list)
    #: whether a failed node in this scope would have named its repetitions (``instance_name``): a name
    #: nothing here binds may be one of those, so an unknown name is no error of its own
    names_lost: bool = False
    #: the model parameters each name's value was computed from, where a block argument carries one
    #: (``{block: layer, p: dropout}``: the block's ``p`` is the model's ``dropout``); a model parameter
    #: stands for itself. What a use outside node attributes fixes in generated code (see
    #: Elaboration.evaluate)
    sources: dict[str, frozenset[str]] = field(default_factory=dict)
    #: per block: (node, queried block input, location, the input's readers then) of widths computed
    #: from a block input the node does not read (checked when the block ends: blocks.py's width warning)
    width_queries: list[tuple[str, str, Any, frozenset[str]]] = field(default_factory=list)
    #: an inline block's scope: its parameters, its lets and the arguments its call wrote as expressions,
    #: and its caller's scope (an expression written here reads in the caller's terms: see as_written)
    inline: tuple[frozenset[str], frozenset[str], Mapping[str, str], Scope] | None = None

    def as_written(self, text: str) -> str | None:
        """The expression ``text``, written in this scope, as the nearest block instance (or the model)
        reads it, recorded for the generated code: through each inline block between, each of its
        parameters the call passed as an expression replaced by that expression. None where it reads
        what the instance cannot (a parameter left at its default or given a value, a let, a tensor
        of the inline block, a name its caller declares otherwise): a node of an inline block is
        written in its caller's class, whose parameters are not the block's."""
        if self.inline is None:
            return text
        params, lets, passed, outer = self.inline
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        functions = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        replaced: dict[str, ast.expr] = {}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Name) or id(node) in functions:
                continue
            name = node.id
            if name in lets or name in self.bindings or (name in params and name not in passed):
                return None
            if name in params:
                replaced[name] = ast.parse(passed[name].strip(), mode="eval").body
            elif name in outer.declared_names():
                return None  # (a model parameter the caller's own parameter hides there)
        return outer.as_written(ast.unparse(_Replaced(replaced, functions).visit(tree)))

    def declared_names(self) -> frozenset[str]:
        """The parameters and lets of the block this scope elaborates (none at the model's level)."""
        if self.inline is not None:
            return self.inline[0] | self.inline[1]
        if not self.stack or not self.prefix:
            return frozenset()
        info = self.stack[-1]
        return frozenset(name for name, _ in info.defaults) | frozenset(name for name, _ in info.lets)

    def used_previous(self, sink: DiagnosticSink) -> Value | Poison | None:
        """``previous``, as a node reading it uses it: the held errors of a left-out node it stands
        for are reported now."""
        if self.previous_errors:
            sink.diagnostics.extend(self.previous_errors)
            self.previous_errors = []
        if self.previous_binding is not None:
            self.previous_binding.read = True
        return self.previous

    def set_previous(self, value: Value | Poison, held: list[Diagnostic] | None = None,
                     binding: Binding | None = None) -> None:
        """What the next node reads by default (``held``: errors a left-out node's value holds back;
        ``binding``: the block input it is, if it is one)."""
        self.previous, self.previous_errors, self.previous_binding = value, held or [], binding
        self.left_out_chain = None

    def with_names(self, names: Mapping[str, Any]) -> Scope:
        """This scope with ``names`` bound in its expressions too (a repetition's ``index``): the same
        nodes, bindings and state, so ``${...}`` in one repetition's field (its ``instance_name``, its
        ``in:``) reads what the node's other fields read."""
        return dataclasses.replace(self, env={**self.env, **names})

    def sources_of(self, text: Any) -> frozenset[str]:
        """The model parameters an argument or expression ``text`` is computed from (:func:`sources_of`)."""
        return sources_of(self.sources, text)

    def places_of(self, text: Any) -> tuple[Location, ...]:
        """Where the parameters that the expression ``text`` reads got their values, in the order they
        appear (none for text that names none or does not parse)."""
        places: list[Location] = []
        for name in self._parameters_in(text):
            places.extend(place for place in self.origins[name] if place not in places)
        return tuple(places)

    def origin_hint(self, text: Any) -> str | None:
        """Where the parameters an expression reads got their values (``hidden = 16.5: given at
        m.yaml:22:40, its value from m.yaml:4:19``), for a message about the value it computes."""
        parts = []
        for name in self._parameters_in(text):
            places = self.origins[name]
            parts.append(f"{name} = {spelled(self.env.get(name))}: given at {places[0]}"
                         + (f", its value from {', from '.join(map(str, places[1:]))}" if places[1:] else ""))
        return "; ".join(parts) or None

    def _parameters_in(self, text: Any) -> list[str]:
        """The parameters with a known origin that the expression ``text`` names, sorted."""
        if not isinstance(text, str) or not text:
            return []
        try:
            return sorted(names_in(text) & self.origins.keys())
        except ExprError:  # text that does not parse has no names to follow
            return []

    def __post_init__(self) -> None:
        # A made-up name avoids every name listed or bound in this scope, now or later.
        self.auto_names = Namespace(also_taken=_ScopeNames(self))

    def next_index(self) -> str:
        """The next ``nn.Sequential`` child name of a sequential scope."""
        assert self.counter is not None
        self.counter[0] += 1
        return str(self.counter[0] - 1)

    def evaluator(self, graph: Graph, limits: Limits = DEFAULT_LIMITS,
                  functions: dict[str, Any] | None = None, meter: WorkMeter | None = None) -> Evaluator:
        def tensor(ref: str, width: bool = False) -> TensorType:
            b = self.bindings.get(ref)
            if b is None and ref == PREVIOUS and self.previous is not None:
                b = self.previous_binding or Binding([self.previous])
            if b is None:
                raise KeyError(ref)
            b.read = True
            if width:  # (a width query: see opnode's width_queries)
                self.queried.append(ref)
            v = b.values[0]
            if v is POISON:
                raise Abort()
            return graph.type_of(v)

        return Evaluator(self.env, {  # (TENSOR_QUERIES names these)
            "shape": lambda r: list(tensor(r).shape),
            "channels": lambda r: _channels(tensor(r, width=True), r),
            "rank": lambda r: tensor(r).rank,
        }, limits, functions, meter)


class _ScopeNames:
    """The names a scope lists or binds, as one live container."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __contains__(self, name: object) -> bool:
        scope = self.scope
        return name in scope.declared or name in scope.bindings or name in scope.level_names


def _channels(t: TensorType, ref: str) -> Any:
    """Dim 1 of a tensor; ValueError (reported at the expression) for a tensor of rank below 2."""
    if t.rank < 2:
        raise ValueError(f"channels({ref}) needs a tensor of rank 2 or more; '{ref}' is {t}")
    if isinstance(t.shape[1], str):  # (arithmetic on it would repeat the text: 'S' * 4 is 'SSSS')
        raise ValueError(f"channels({ref}) is dim 1 of {t}, the symbolic size '{t.shape[1]}'; expected a known "
                         f"size (for the last dim of a sequence (N, S, D) write shape({ref})[-1])")
    return t.shape[1]


def sources_of(sources: Mapping[str, frozenset[str]], text: Any) -> frozenset[str]:
    """The model parameters an argument or expression ``text`` (a list's items too) is computed from:
    those the names it reads stand for in ``sources`` (:attr:`Scope.sources`)."""
    if isinstance(text, list):
        return frozenset().union(*(sources_of(sources, item) for item in text))
    if not isinstance(text, str) or not text:
        return frozenset()
    try:
        names = names_in(text)
    except Exception:  # noqa: BLE001 - no expression (evaluating it says why)
        return frozenset()
    return frozenset().union(*(sources.get(name, ()) for name in names))
