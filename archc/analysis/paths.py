"""Path analysis in the spirit of Veit, Wilber & Belongie (2016), "Residual Networks Behave Like
Ensembles of Relatively Shallow Networks".

Two views:

* per chain of n residual blocks in series (a ``stage`` of :mod:`archc.analysis.skips`):
  each block is passed through its residual branch or its shortcut, so the chain holds
  2^n paths whose number of residual branches taken is Binomial(n, 1/2);
* for the whole network, on the unravelled view: the exact number of input -> output paths
  that take or skip each skip connection and pick one branch at each branch join (a layer
  reading one value twice, as attention reads x as query, key and value, has a path per read;
  arithmetic such as ``x * x`` has one), the exact shortest and longest length in
  parametric layers, and from the length distribution the mean, standard deviation and the
  share of paths whose length lies in a band. A join that is no choice (every pair there is
  ``sequential``: decomposed activations and norms, element-wise arithmetic) passes the paths of
  one input only, so how an op is lowered (SiLU as x·sigmoid(x), a norm as its arithmetic)
  changes no figure.

Everything is a dynamic programme over one topological order, never an enumeration:
counts are exact Python integers; the length *distribution* is a normalised float vector
per node (shares, so huge counts never overflow), shared along chains, mixed at joins
with weights count/total, trimmed of tails below 1e-18 and freed once consumed.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from archc.analysis.counts import json_count, log2_count
from archc.analysis.structure import Flow


class Joined(Protocol):
    """What the path counts read of a skip (:class:`archc.analysis.report.Skip`): its merge node.
    (A protocol, not an import: the report imports this module for :class:`PathStats`.)"""

    merge: str


#: chains up to this many blocks list their binomial distribution in full
DISTRIBUTION_LIMIT = 64
#: histograms are listed when the lengths span at most this many values
HISTOGRAM_LIMIT = 64
#: distribution entries below this share (relative to the sum) are dropped
_TRIM = 1e-18
#: ``ndarray.sum`` of a vector without its Python wrapper (the same pairwise sum)
_sum = np.add.reduce
_multiply, _add = np.multiply, np.add
#: entries :func:`_first_above` reads one by one before comparing windows of them
_SCALAR_HEAD = 4
#: the producer of a (producer, output) slot
_PRODUCER = operator.itemgetter(0)


@dataclass
class ChainPaths:
    """The 2^n paths through one chain of n residual blocks in series."""

    stage: int
    blocks: int
    merges: list[str]
    paths: int
    mean: float
    std: float
    distribution: list[int] | None   # paths taking k residual branches, k = 0..n (None past the limit)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "blocks": self.blocks, "merges": list(self.merges),
                "paths": json_count(self.paths), "paths_log2": log2_count(self.paths),
                "mean": self.mean, "std": self.std,
                "distribution": [json_count(n) for n in self.distribution] if self.distribution is not None else None}


@dataclass
class PathStats:
    """Input -> output paths of the whole network, lengths in parametric layers."""

    total: int
    shortest: int | None
    longest: int | None
    mean: float | None
    std: float | None
    band: tuple[int, int] | None
    band_share: float | None
    band_source: str              # "given", or "central95": the central band holding 95% of paths
    histogram: dict[int, float] | None
    chains: list[ChainPaths] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": json_count(self.total), "total_log2": log2_count(self.total),
            "shortest": self.shortest, "longest": self.longest,
            "mean": self.mean, "std": self.std,
            "band": {"lo": self.band[0], "hi": self.band[1], "share": self.band_share,
                     "source": self.band_source} if self.band else None,
            "histogram": {str(k): v for k, v in self.histogram.items()} if self.histogram is not None else None,
            "chains": [c.to_dict() for c in self.chains],
        }


def chain_paths(stage: int, chain: Sequence[Joined]) -> ChainPaths:
    n = len(chain)
    dist = [math.comb(n, k) for k in range(n + 1)] if n <= DISTRIBUTION_LIMIT else None
    return ChainPaths(stage=stage, blocks=n, merges=[c.merge for c in chain], paths=2 ** n, mean=n / 2,
                      std=math.sqrt(n) / 2, distribution=dist)


def path_stats(flow: Flow, chains: Sequence[Sequence[Joined]] | None = None,
               band: tuple[int, int] | None = None, through: Mapping[int, int] | None = None) -> PathStats:
    """Count and measure every input -> output path of ``flow`` (see the module docstring).

    ``through`` maps nodes where paths have no choice (joins where every pair is ``sequential``:
    decomposed activations and norms, element-wise arithmetic) to the one input paths follow there."""
    table = _PathTable(flow, through or {})
    outs = flow.outputs
    chain_stats = [chain_paths(k, c) for k, c in enumerate(chains or [])]
    if not outs:  # (every value has at least one path: no outputs is the only way to none)
        return PathStats(0, None, None, None, None, None, None, "given" if band else "central95", None, chain_stats)
    total, shortest, longest, logs, bases, arrays = table.gather(outs)
    base, arr = _merge(logs, bases, arrays, _log2(total))
    arr = arr / arr.sum()
    lengths = np.arange(base, base + len(arr))
    mean = float(arr @ lengths)
    var = float(arr @ (lengths - mean) ** 2)
    if band is not None:
        a, b = band
        share = float(arr[max(0, a - base): max(0, b - base + 1)].sum()) if b >= a else 0.0
        chosen, source = (a, b), "given"
    else:
        cdf = np.cumsum(arr)
        first = int(np.searchsorted(cdf, 0.025, side="right"))
        last = int(np.searchsorted(cdf, 0.975 - 1e-12, side="left"))
        last = min(last, len(arr) - 1)
        chosen, source = (base + first, base + last), "central95"
        share = float(arr[first:last + 1].sum())
    hist = {base + k: float(v) for k, v in enumerate(arr) if v > 0} if len(arr) <= HISTOGRAM_LIMIT else None
    return PathStats(
        total=total, shortest=shortest, longest=longest,
        mean=mean, std=math.sqrt(max(var, 0.0)), band=chosen, band_share=min(share, 1.0), band_source=source,
        histogram=hist, chains=chain_stats)


class _PathTable:
    """The dynamic programme: per node, its paths from the inputs (exact count and its log2,
    shortest and longest length, length distribution), in one topological pass.

    Only *heads* hold values: inputs and joins (nodes reading other than exactly one value).
    Every other node passes its one input on, so it reads its chain's head, lengths longer by
    the parametric layers between (a difference of :attr:`Flow.depth_layers`, exact along a
    chain): the pass visits joins only, not every node.
    """

    def __init__(self, flow: Flow, through: Mapping[int, int]) -> None:
        n = len(flow)
        self.layers = flow.depth_layers
        heads = flow.slot_head
        joins = flow.slot_joins
        #: the producers each join reads (one per slot), or the one input paths follow through a join
        #: that is no choice
        slots = flow.slots
        self.reads = {i: ([through[i]] if i in through else list(map(_PRODUCER, slots[i]))) for i in joins}
        self.heads = heads
        self.count = [0] * n
        self.log_count = [0.0] * n  # log2 of count, taken once per head however many joins read it
        self.short = [0] * n
        self.long = [0] * n
        self.lo = [0] * n           # the distribution holds shares of lengths lo, lo + 1, ...
        self.dist: list[np.ndarray | None] = [None] * n
        # A head's distribution is dropped once every join reading its chain has been computed.
        pending = self._pending = [0] * n
        for ids in self.reads.values():
            for p in ids:
                pending[heads[p]] += 1
        self._keep = {heads[o] for o in flow.outputs}
        self._run(flow, joins)

    def _run(self, flow: Flow, joins: list[int]) -> None:
        one = np.ones(1)
        parametric, reads = flow.parametric, self.reads
        for i in joins:
            ids = reads[i]
            if not ids:  # a graph input: one path, of no layers
                c, lc, sh, lg, base, arr = 1, 0.0, 0, 0, 0, one
            else:
                c, sh, lg, logs, bases, arrays = self.gather(ids, consume=True)
                lc = _log2(c)
                base, arr = _merge(logs, bases, arrays, lc)
            if parametric[i]:
                # every path through this node gets one layer longer
                sh += 1
                lg += 1
                base += 1
            self.count[i], self.log_count[i], self.short[i], self.long[i] = c, lc, sh, lg
            self.lo[i], self.dist[i] = base, arr

    def gather(self, ids: list[int], consume: bool = False
               ) -> tuple[int, int | None, int, list[float], list[int], list[np.ndarray]]:
        """Paths into the values of ``ids`` (a value listed twice counts twice): their number,
        shortest and longest length, and per id the log2 count, lowest length and distribution.
        With ``consume`` (a join's inputs), a distribution no other join will read is dropped
        from the table (the lists returned still hold it)."""
        heads, layers = self.heads, self.layers
        count, log_count, short, long_, lo, dist = self.count, self.log_count, self.short, self.long, self.lo, \
            self.dist
        pending, keep = self._pending, self._keep
        total, shortest, longest = 0, None, 0
        logs: list[float] = []
        bases: list[int] = []
        arrays: list[np.ndarray] = []
        for p in ids:
            h = heads[p]
            extra = layers[p] - layers[h]
            total += count[h]
            if shortest is None or short[h] + extra < shortest:
                shortest = short[h] + extra
            if long_[h] + extra > longest:
                longest = long_[h] + extra
            logs.append(log_count[h])
            bases.append(lo[h] + extra)
            arrays.append(dist[h])
            if consume:
                pending[h] -= 1
                if pending[h] == 0 and h not in keep:
                    dist[h] = None
        return total, shortest, longest, logs, bases, arrays


def _log2(count: int) -> float:
    """log2 of a path count (exact big int), -inf for none."""
    return math.log2(count) if count else -math.inf


def _merge(logs: list[float], bases: list[int], arrays: list[np.ndarray], log_total: float) -> tuple[int, np.ndarray]:
    """Mix length distributions weighted by their path counts (a join, or the graph outputs).

    Per part: log2 of its path count, its lowest length, its shares; ``log_total`` is log2 of
    the counts' sum. Weights count / total go through logarithms: a big-int division costs
    O(digits), log2 of an int O(1), and each head's log2 is taken once however many joins read it.

    Entry ``k`` of the result is ``0.0 + v1[k] + v2[k] + ...`` summed left to right over the parts in
    order, where ``vj = weight_j * share_j`` (entries a part does not cover add nothing). How the
    work is laid out may change; that order of float operations may not, so figures stay put.
    """
    if len(arrays) == 2:  # (most joins: unrolled, the same numbers as the general case below)
        (b0, b1), (a0, a1), (l0, l1) = bases, arrays, logs
        base = min(b0, b1)
        width = max(b0 + len(a0), b1 + len(a1)) - base
        return _trim(base, _mix([b0 - base, b1 - base], arrays, [2.0 ** (l0 - log_total), 2.0 ** (l1 - log_total)],
                                width))
    base = min(bases)
    width = max(map(operator.add, bases, map(len, arrays))) - base
    offsets = [b - base for b in bases]
    # Python's 2.0 ** x and numpy's exp2 may differ in the last bit: each branch keeps the one
    # it has always used, so reported figures stay the same.
    if len(arrays) <= 4:
        weights = [2.0 ** (lc - log_total) for lc in logs]
    else:
        weights = np.exp2(np.array(logs) - log_total).tolist()
    return _trim(base, _mix(offsets, arrays, weights, width))


def _mix(offsets: list[int], arrays: list[np.ndarray], weights: list[float], width: int) -> np.ndarray:
    """Weighted sum of distributions placed at ``offsets``, in the order :func:`_merge` promises.

    ``0.0 + v1`` is ``v1`` exactly, so the first part is written in place (zeros around it) and
    the others' products are added one by one. With
    two parts either may go first (one addition commutes exactly), so the longer one does: a
    U-Net decoder join adds a one-entry skip to a distribution thousands of entries wide.
    """
    if len(arrays) == 2:  # (most joins: unrolled)
        (o0, o1), (a0, a1), (w0, w1) = offsets, arrays, weights
        if len(a1) > len(a0):
            o0, o1, a0, a1, w0, w1 = o1, o0, a1, a0, w1, w0
        out = _placed(o0, a0, w0, width)
        segment = out[o1: o1 + len(a1)]
        _add(segment, _multiply(a1, w1), segment)
        return out
    out = _placed(offsets[0], arrays[0], weights[0], width)
    for start, a, w in zip(offsets[1:], arrays[1:], weights[1:]):
        segment = out[start: start + len(a)]
        _add(segment, _multiply(a, w), segment)
    return out


def _placed(start: int, a: np.ndarray, weight: float, width: int) -> np.ndarray:
    """``weight * a`` placed at ``start`` among zeros, ``width`` entries in all."""
    if start == 0 and len(a) == width:
        return _multiply(a, weight)  # (a U-Net decoder's wide part covers the whole width)
    out = np.zeros(width)
    _multiply(a, weight, out[start: start + len(a)])
    return out


def _trim(base: int, out: np.ndarray) -> tuple[int, np.ndarray]:
    """Drop negligible tails (entries at most ``_TRIM`` of the sum) so long chains keep short vectors."""
    limit = _TRIM * float(_sum(out))
    if out.item(0) > limit and out.item(-1) > limit:  # (the ends kept; item: a Python float, no numpy scalar)
        return base, out
    first = _first_above(out, limit)
    if first is None:
        return base, out
    last = len(out) - 1 - _first_above(out[::-1], limit)
    return base + first, out[first: last + 1]


def _first_above(values: np.ndarray, limit: float) -> int | None:
    """Index of the first entry above ``limit``, looking at growing windows from the front:
    tails are short, and comparing all of a U-Net's thousands of entries per join would cost
    more than the join itself. The first few are read one by one (a tail is mostly an entry or
    two, and a Python float each costs less than one vector comparison)."""
    head = min(len(values), _SCALAR_HEAD)
    for k in range(head):
        if values.item(k) > limit:
            return k
    start, size = head, 64
    while start < len(values):
        above = values[start: start + size] > limit
        k = int(above.argmax())
        if above[k]:
            return start + k
        start += size
        size *= 8
    return None
