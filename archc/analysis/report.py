"""The records the skip analysis returns, and their JSON form (schema in :mod:`archc.cli.lint`)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, not_
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from archc.analysis.paths import PathStats

from archc.ir.vocab import JOIN_KINDS, SKIP_KIND_SET, SKIP_KINDS, Carries, Kind

SCHEMA = "archc.lint/2"
_KIND = attrgetter("kind")


@dataclass(slots=True)
class Span:
    """What the other path of a (fork, merge) pair spans.

    ``layers``/``ops`` count parametric layers / all ops in the whole bypassed region
    (every node on a path from the fork to the merge's main input); None when the
    region was too large to walk. ``depth``/``depth_ops`` count them along the
    longest bypassed path. ``nodes`` lists the region when it is small.
    """

    layers: int | None
    ops: int | None
    depth: int
    depth_ops: int
    nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "ops": self.ops, "depth": self.depth, "depth_ops": self.depth_ops,
                "nodes": list(self.nodes)}


@dataclass(slots=True)
class Skip:
    """One (fork, merge) pair: a skip connection (``kind`` in SKIP_KINDS) or another join."""

    fork: str | None          # node whose value is forked; None when the inputs share no fork
    merge: str                # the joining node
    merge_op: str
    merge_role: str
    kind: Kind
    carries: Carries | None   # None without a fork
    shortcut: list[str]       # nodes on the shortcut, fork side first ([] for identity)
    span: Span
    reason: str               # one line a person can check against the graph
    fork_output: int = 0      # which output of the fork the shortcut reads
    stage: int | None = None  # index of the chain of residual blocks in series (residual only)
    position: int | None = None  # position within that chain
    rule: str = ""            # the classification rule that decided ``kind`` (:mod:`archc.analysis.rules`)
    _fork_id: int = field(default=-1, repr=False, compare=False)
    _merge_id: int = field(default=-1, repr=False, compare=False)
    #: whether the skip makes a skip enclosing it long (not dense, not between a split's parts: see skips.py)
    _nests: bool = field(default=True, repr=False, compare=False)
    #: a dense pair whose fork one concat alone reads back: it nests a concat's pair only (see skips.py)
    _reused_once: bool = field(default=False, repr=False, compare=False)

    @property
    def is_skip(self) -> bool:
        return self.kind in SKIP_KIND_SET

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        out = {
            "fork": self.fork, "fork_output": self.fork_output, "merge": self.merge, "merge_op": self.merge_op,
            "kind": self.kind, "carries": self.carries, "shortcut": list(self.shortcut),
            "span": self.span.to_dict(), "stage": self.stage, "position": self.position, "reason": self.reason,
        }
        if explain:
            out["rule"] = self.rule
        return out


@dataclass
class Mismatch:
    """A node whose declared ``expect`` differs from what the analysis found."""

    node: str
    expected: str
    found: str
    reason: str
    location: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "expected": self.expected, "found": self.found, "reason": self.reason,
                "location": self.location}


@dataclass
class Analysis:
    """Everything :func:`archc.analysis.skips.analyze` found in one graph."""

    model: str
    connections: list[Skip]                 # every (fork, merge) pair at every join, topological order
    chains: list[list[Skip]]                # residual pairs in series, one list per stage
    expectations: list[Mismatch]
    paths: "PathStats | None" = None
    #: how many nodes declare an ``expect`` (0: the mismatches list is empty because nothing was checked)
    declared_expectations: int = 0

    @property
    def skips(self) -> list[Skip]:
        return list(compress(self.connections, self._skip_flags()))

    @property
    def joins(self) -> list[Skip]:
        """Joins that are not skips (branch, sequential)."""
        return list(compress(self.connections, map(not_, self._skip_flags())))

    def _skip_flags(self) -> Iterator[bool]:
        """Whether each connection is a skip (:attr:`Skip.is_skip`, asked in C: lint asks of every pair)."""
        return map(SKIP_KIND_SET.__contains__, map(_KIND, self.connections))

    def summary(self) -> dict[str, int]:
        """Count of each label (skip kinds first; 0 when absent)."""
        counts = {k: 0 for k in Kind}
        counts.update(Counter(map(_KIND, self.connections)))
        return counts

    def to_dict(self, explain: bool = False,
                connections: Callable[[list[Skip]], Any] | None = None) -> dict[str, Any]:
        """The JSON form (schema in :mod:`archc.cli.lint`); ``explain`` adds each pair's rule.
        ``connections``: how each list of connections (``skips``, ``joins``) is given (default: a list
        of their dicts; the JSON writer takes the records themselves)."""
        counts = self.summary()
        skips, joins = self.skips, self.joins
        return {
            "schema": SCHEMA,
            "model": self.model,
            "summary": {k: counts[k] for k in SKIP_KINDS},
            "joins_summary": {k: counts[k] for k in JOIN_KINDS},
            "skips": [c.to_dict(explain) for c in skips] if connections is None else connections(skips),
            "joins": [c.to_dict(explain) for c in joins] if connections is None else connections(joins),
            "paths": self.paths.to_dict() if self.paths is not None else None,
            "expectations": [m.to_dict() for m in self.expectations],
        }
