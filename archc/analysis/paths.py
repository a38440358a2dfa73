"""Path analysis in the spirit of Veit, Wilber & Belongie (2016), "Residual Networks Behave Like
Ensembles of Relatively Shallow Networks".

Two views:

* per chain of n residual blocks in series (a ``stage`` of :mod:`archc.analysis.skips`):
  each block is passed through its residual branch or its shortcut, so the chain holds
  2^n paths whose number of residual branches taken is Binomial(n, 1/2);
* for the whole network: the exact number of input -> output paths of the data-flow DAG
  (an edge read twice, as in ``x + x``, counts twice), the exact shortest and longest
  length in parametric layers, and from the length distribution the mean, standard
  deviation and the share of paths whose length lies in a band.

Everything is a dynamic programme over one topological order, never an enumeration:
counts are exact Python integers; the length *distribution* is a normalised float vector
per node (shares, so huge counts never overflow), shared along chains, mixed at joins
with weights count/total, trimmed of tails below 1e-18 and freed once consumed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from archc.analysis.structure import Flow

if TYPE_CHECKING:
    from archc.analysis.report import Skip

#: chains up to this many blocks list their binomial distribution in full
DISTRIBUTION_LIMIT = 64
#: histograms are listed when the lengths span at most this many values
HISTOGRAM_LIMIT = 64
#: distribution entries below this share (relative to the sum) are dropped
_TRIM = 1e-18


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
        return {"stage": self.stage, "blocks": self.blocks, "merges": list(self.merges), "paths": self.paths,
                "mean": self.mean, "std": self.std, "distribution": self.distribution}


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
            "total": self.total, "shortest": self.shortest, "longest": self.longest,
            "mean": self.mean, "std": self.std,
            "band": {"lo": self.band[0], "hi": self.band[1], "share": self.band_share,
                     "source": self.band_source} if self.band else None,
            "histogram": {str(k): v for k, v in self.histogram.items()} if self.histogram is not None else None,
            "chains": [c.to_dict() for c in self.chains],
        }


def chain_paths(stage: int, chain: list["Skip"]) -> ChainPaths:
    n = len(chain)
    dist = [math.comb(n, k) for k in range(n + 1)] if n <= DISTRIBUTION_LIMIT else None
    return ChainPaths(stage=stage, blocks=n, merges=[c.merge for c in chain], paths=2 ** n, mean=n / 2,
                      std=math.sqrt(n) / 2, distribution=dist)


def path_stats(flow: Flow, chains: list[list["Skip"]] | None = None,
               band: tuple[int, int] | None = None) -> PathStats:
    """Count and measure every input -> output path of ``flow`` (see the module docstring)."""
    n = len(flow)
    slots = flow.slots
    w = flow.parametric
    count = [0] * n
    log_count = [0.0] * n  # log2 of count, taken once per join (chains share it)
    short = [0] * n
    long_ = [0] * n
    lo = [0] * n          # distribution: shares of lengths lo[i], lo[i] + 1, ...
    dist: list[np.ndarray | None] = [None] * n
    pending = [len(s) for s in flow.succs]
    keep = set(flow.outputs)
    one = np.ones(1)
    for i in range(n):
        ins = slots[i]
        if not ins:
            c, lc = 1, 0.0
            sh = lg = 0
            base, arr = 0, one
        elif len(ins) == 1:
            p = ins[0][0]
            c, lc = count[p], log_count[p]
            sh, lg = short[p], long_[p]
            base, arr = lo[p], dist[p]
        else:
            c = 0
            sh, lg = None, 0
            for p, _ in ins:
                c += count[p]
                sh = short[p] if sh is None or short[p] < sh else sh
                lg = long_[p] if long_[p] > lg else lg
            lc = _log2(c)
            base, arr = _merge([(log_count[p], lo[p], dist[p]) for p, _ in ins], lc)
        if w[i]:
            # every path through this node gets one layer longer
            sh += 1
            lg += 1
            base += 1
        count[i], log_count[i], short[i], long_[i] = c, lc, sh, lg
        lo[i], dist[i] = base, arr
        for p, _ in ins:
            pending[p] -= 1
            if pending[p] == 0 and p not in keep:
                dist[p] = None
    outs = flow.outputs
    total = sum(count[o] for o in outs)
    chain_stats = [chain_paths(k, c) for k, c in enumerate(chains or [])]
    if total == 0:
        return PathStats(0, None, None, None, None, None, None, "given" if band else "central95", None, chain_stats)
    base, arr = _merge([(log_count[o], lo[o], dist[o]) for o in outs], _log2(total))
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
        total=total, shortest=min(short[o] for o in outs), longest=max(long_[o] for o in outs),
        mean=mean, std=math.sqrt(max(var, 0.0)), band=chosen, band_share=min(share, 1.0), band_source=source,
        histogram=hist, chains=chain_stats)


def _log2(count: int) -> float:
    """log2 of a path count (exact big int), -inf for none."""
    return math.log2(count) if count else -math.inf


def _merge(parts: list[tuple[float, int, np.ndarray]], log_total: float) -> tuple[int, np.ndarray]:
    """Mix length distributions weighted by their path counts (a join, or the graph outputs).

    ``parts`` are (log2 of the count, lowest length, shares); ``log_total`` is log2 of the counts' sum.
    Weights count / total go through logarithms: a big-int division costs O(digits), log2 of an int
    O(1), and each node's log2 is taken once however many joins read it.

    Entry ``k`` of the result is ``0.0 + v1[k] + v2[k] + ...`` summed left to right over the parts in
    order, where ``vj = weight_j * share_j`` (entries a part does not cover add nothing). Every way of
    mixing below keeps exactly that order of float operations, so the figures do not depend on it.
    """
    base = min(b for _, b, _ in parts)
    width = max(b + len(a) for _, b, a in parts) - base
    # Python's 2.0 ** x and numpy's exp2 may differ in the last bit: each branch keeps the one
    # it has always used, so reported figures stay the same.
    if len(parts) <= 4:
        weights = [2.0 ** (lc - log_total) for lc, _, _ in parts]
        out = _mix_few(parts, weights, base, width)
    else:
        weights = np.exp2(np.fromiter((lc for lc, _, _ in parts), np.float64, len(parts)) - log_total)
        out = _mix_many(parts, weights, base, width)
    return _trim(base, out)


def _mix_few(parts: list[tuple[float, int, np.ndarray]], weights: list[float], base: int,
             width: int) -> np.ndarray:
    """Weighted sum of a few distributions: the first part is written in place, the others added.

    ``0.0 + v1`` is ``v1`` exactly, so writing the first part saves a pass of zeros and one of adds;
    with two parts either may go first (one addition commutes exactly), so the longer one does: a
    U-Net decoder join adds a one-entry skip to a distribution thousands of entries wide.
    """
    if len(parts) == 2 and len(parts[1][2]) > len(parts[0][2]):
        parts, weights = parts[::-1], weights[::-1]
    out = np.empty(width)
    _, b, a = parts[0]
    out[:b - base] = 0.0
    out[b - base + len(a):] = 0.0
    np.multiply(a, weights[0], out=out[b - base: b - base + len(a)])
    for (_, b, a), w in zip(parts[1:], weights[1:]):
        out[b - base: b - base + len(a)] += w * a
    return out


def _mix_many(parts: list[tuple[float, int, np.ndarray]], weights: np.ndarray, base: int,
              width: int) -> np.ndarray:
    """Weighted sum of many distributions (DenseNet concats): one row per part, summed down the columns.

    numpy reduces a C-ordered grid over axis 0 row by row, the sequential order :func:`_merge`
    promises, as long as rows hold two or more entries; a single column would be summed pairwise
    instead, so the grid is never narrower than two (the spare column stays zero).
    """
    grid = np.zeros((len(parts), max(width, 2)))
    for row, w, (_, b, a) in zip(grid, weights.tolist(), parts):
        np.multiply(a, w, out=row[b - base: b - base + len(a)])
    return grid.sum(axis=0)[:width]


def _trim(base: int, out: np.ndarray) -> tuple[int, np.ndarray]:
    """Drop negligible tails (entries at most ``_TRIM`` of the sum) so long chains keep short vectors."""
    limit = _TRIM * out.sum()
    first = _first_above(out, limit)
    if first is None:
        return base, out
    last = len(out) - 1 - _first_above(out[::-1], limit)
    return base + first, out[first: last + 1]


def _first_above(values: np.ndarray, limit: float) -> int | None:
    """Index of the first entry above ``limit``, looking at growing windows from the front:
    tails are short, and comparing all of a U-Net's thousands of entries per join would cost
    more than the join itself."""
    start, size = 0, 64
    while start < len(values):
        above = values[start: start + size] > limit
        k = int(above.argmax())
        if above[k]:
            return start + k
        start += size
        size *= 8
    return None
