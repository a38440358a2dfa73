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
    short = [0] * n
    long_ = [0] * n
    lo = [0] * n          # distribution: shares of lengths lo[i], lo[i] + 1, ...
    dist: list[np.ndarray | None] = [None] * n
    pending = [len(s) for s in flow.succs]
    keep = set(flow.outputs)
    one = np.ones(1)
    for i in range(n):
        ins = slots[i]
        wi = 1 if w[i] else 0
        if not ins:
            c = 1
            sh = lg = 0
            base, arr = 0, one
        elif len(ins) == 1:
            p = ins[0][0]
            c = count[p]
            sh, lg = short[p], long_[p]
            base, arr = lo[p], dist[p]
        else:
            c = 0
            sh, lg = None, 0
            for p, _ in ins:
                c += count[p]
                sh = short[p] if sh is None or short[p] < sh else sh
                lg = long_[p] if long_[p] > lg else lg
            base, arr = _merge([(count[p], lo[p], dist[p]) for p, _ in ins], c)
        if wi:
            # every path through this node gets one layer longer
            sh += 1
            lg += 1
            base += 1
        count[i], short[i], long_[i] = c, sh, lg
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
    base, arr = _merge([(count[o], lo[o], dist[o]) for o in outs], total)
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


def _merge(parts: list[tuple[int, int, np.ndarray]], total: int) -> tuple[int, np.ndarray]:
    """Mix length distributions weighted by their path counts (a join, or the graph outputs)."""
    base = min(b for _, b, _ in parts)
    top = max(b + len(a) for _, b, a in parts)
    # Weights count / total through logarithms: a big-int division costs O(digits), log2 of an int O(1).
    log_total = math.log2(total)
    if len(parts) <= 4:
        out = np.zeros(top - base)
        for c, b, a in parts:
            if c:
                out[b - base: b - base + len(a)] += 2.0 ** (math.log2(c) - log_total) * a
    else:
        # Wide joins (DenseNet concats): one scatter-add instead of a numpy call per input.
        lens = np.fromiter((len(a) for _, _, a in parts), np.int64, len(parts))
        starts = np.fromiter((b - base for _, b, _ in parts), np.int64, len(parts))
        weights = np.exp2(np.fromiter((math.log2(c) if c else -math.inf for c, _, _ in parts), np.float64,
                                      len(parts)) - log_total)
        ends = np.cumsum(lens)
        positions = np.arange(ends[-1]) + np.repeat(starts - (ends - lens), lens)
        values = np.concatenate([a for _, _, a in parts]) * np.repeat(weights, lens)
        out = np.bincount(positions, weights=values, minlength=top - base)
    # Drop negligible tails so long chains keep short vectors.
    keep = np.nonzero(out > _TRIM * out.sum())[0]
    if len(keep) == 0:
        return base, out
    return base + int(keep[0]), out[keep[0]: keep[-1] + 1]
