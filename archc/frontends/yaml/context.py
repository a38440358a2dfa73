"""What one elaboration shares: the graph being built, the spec's definitions, diagnostics, evaluation.

An :class:`Elaboration` is made once per spec and handed to every step of the elaborator.
It owns the error sink (errors are collected, so ``archc check`` reports every problem
it finds; :meth:`Elaboration.fatal` stops at a resource limit), the expansion budget, the
blocks and functions the spec may use, and :meth:`Elaboration.evaluate`, which evaluates
one expression written at a :class:`~archc.frontends.yaml.site.Site` and reports its error
there.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from archc.errors import Diagnostic, DiagnosticSink, Location, SpecError, did_you_mean
from archc.frontends.yaml.budget import ExpansionBudget
from archc.frontends.yaml.expr import ExprError, UnknownValue, WorkExhausted, WorkMeter, names_in
from archc.frontends.yaml.scope import Abort, Scope
from archc.frontends.yaml.site import Site
from archc.frontends.yaml.source import SMap
from archc.frontends.yaml.spelling import spelled
from archc.ir import Graph
from archc.limits import DEFAULT_LIMITS, Limits


class Elaboration:
    """The state of elaborating one spec into ``graph``."""

    def __init__(self, filename: str, limits: Limits = DEFAULT_LIMITS, allow_include_anywhere: bool = False) -> None:
        self.filename = filename
        self.limits = limits
        self.budget = ExpansionBudget(limits)
        #: every expression's evaluation steps, together (spec functions' included)
        self.meter = WorkMeter(limits)
        self.allow_include_anywhere = allow_include_anywhere
        self.sink = DiagnosticSink()
        self.graph = Graph()
        self.blocks: dict[str, SMap] = {}
        #: top-level parameters and lets: visible inside every block
        self.globals: dict[str, Any] = {}
        #: where the top-level parameters' values were written (Scope.origins)
        self.global_origins: dict[str, tuple[Location, ...]] = {}
        #: the model parameters each top-level name stands for (Scope.sources)
        self.global_sources: dict[str, frozenset[str]] = {}
        #: the spec's own pure functions (functions.py)
        self.functions: dict[str, Any] = {}
        #: module list path (``layer1.0.convs``) -> (index, where its item is named) of each kept item
        self.list_items: dict[str, list[tuple[int, Location]]] = {}
        #: module list paths an ``if:`` left an item of out, by item path (``layer1.0.convs.1``)
        self.left_out_items: set[str] = set()
        #: module list path -> the item its clash with a node's name was reported at (once per list)
        self.list_clashes: dict[str, str] = {}
        #: (block, input) -> (where the block lists it, whether any instance read it): blocks.py
        self.block_input_reads: dict[tuple[str, str], tuple[Location | None, bool]] = {}

    # -- diagnostics -------------------------------------------------------------------
    def error(self, message: str, location: Location | None, node: str | None = None,
              hint: str | None = None) -> None:
        self.sink.error(message, location, node, hint)

    def report(self, message: str, site: Site, hint: str | None = None) -> None:
        """An error about the value at ``site``."""
        self.sink.error(message, site.location, site.node, hint)

    @contextlib.contextmanager
    def held(self) -> Iterator[list[Diagnostic]]:
        """Errors reported inside the block are held in the list it yields, not reported: for
        what a spec may never use (a left-out node's input), reported only where it is used."""
        sink, self.sink = self.sink, DiagnosticSink()
        try:
            yield self.sink.diagnostics
        finally:
            self.sink = sink

    def fatal(self, message: str | None, location: Location | None, node: str | None = None) -> None:
        """Stop elaborating (a resource limit was hit), reporting what was found so far."""
        if message is not None:
            self.error(message, location, node)
            raise SpecError(self.sink.diagnostics)

    def check_keys(self, m: SMap, allowed: dict[str, str], where: str) -> None:
        for key in m:
            if key not in allowed:
                self.error(f"unknown key '{key}' {where}; expected one of: {', '.join(allowed)}",
                           m.where_key(key), hint=did_you_mean(key, allowed))

    def flag(self, m: SMap, key: str, owner: str = "") -> bool | None:
        """The boolean ``m[key]`` (false where not written); None after reporting any other value
        (``owner``, `` of block 'b'``, names whose key it is). Text is said to be text: YAML's ``yes``
        and a quoted ``"true"`` are strings in a spec, and would otherwise silently mean false."""
        value = m.get(key, False)
        if isinstance(value, bool):
            return value
        text = " (text: write true or false without quotes)" if isinstance(value, str) else ""
        self.error(f"'{key}'{owner} must be true or false, got {spelled(value)}{text}", m.where(key))
        return None

    # -- expressions -------------------------------------------------------------------
    def evaluate(self, text: str, scope: Scope, site: Site, attr: bool = False,
                 expects: Callable[[], str] | None = None, shift: int = 0) -> Any:
        """Evaluate the expression ``text`` written at ``site``; ``attr``: it is one op attribute's
        whole value (see below); ``expects``: what the value should be (made only when needed), said
        where the text is no expression at all (``kernel_size: "7x7"``); ``shift``: where the text starts in
        the field (an expression inside ``${...}``). Abort after reporting its error."""
        try:
            value = scope.evaluator(self.graph, self.limits, self.functions, self.meter).evaluate(text)
        except ExprError as exc:
            # (what the field expects, where the text is no expression at all or one unknown word: `three`)
            hint = exc.hint or (expects() if expects is not None and (exc.unparsed or text.strip().isidentifier())
                                else None)
            # (a parameter's value, written elsewhere: say where; else where the values the error is
            # about were given: the list `widths[4]` indexes)
            origin = scope.origin_hint(site.value) if text is not site.value else None
            if origin is None and exc.about is not None:
                origin = scope.origin_hint(exc.about)
            hint = "; ".join(filter(None, (hint, origin))) or None
            if isinstance(exc, WorkExhausted):  # (every later expression would fail alike: stop here)
                self.fatal(str(exc), site.expr_location(exc.offset + shift), site.node)
            self.error(str(exc), site.expr_location(exc.offset + shift), site.node, hint)
            raise Abort() from None
        except UnknownValue:  # uses a 'let' whose error was reported: stay quiet
            raise Abort() from None
        # Only a node's attribute keeps a parameter a run-time argument of the generated code
        # (Node.attr_exprs; a block class takes it from the model where it reads it, or from its
        # caller where a block argument carries it); any other use fixes it when the graph is built.
        if not attr:
            self.graph.structural_params |= scope.sources_of(text)
        return value

