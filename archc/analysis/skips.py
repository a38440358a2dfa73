"""Skip-connection analysis: every join of the data flow, found and labelled from structure alone.

Entry point: :func:`analyze` (graph -> :class:`~archc.analysis.report.Analysis`).
Decisions use only the graph's structure, op roles, attributes and shapes — never
node names, block names or annotations (``expect`` is compared afterwards).

How a join is read (see docs in the module's functions for the details):

1. A *join* is a node reading two or more distinct data producers. Its *main*
   input is the deepest one (longest path from the inputs in parametric layers,
   then in ops); every other input is traced back along its own chain (nodes with
   one producer and one use) to the first node whose value is used twice and that
   reaches the main input: its *fork* (a node used twice off the main path, as a
   projection split into two parts, is passed). A chain that meets another join
   falls back to the join's immediate dominator. An n-ary sum or concat, however
   nested, is one join. One (fork, join) pair is one connection; inputs sharing a
   fork share the pair, the lightest being the shortcut. So a dense concat of x0,
   x1, x2 gives the pairs (x0, cat), (x1, cat).
2. The shortcut *carries*: ``identity`` (nothing, or only rearranging / element-wise
   ops keeping the shape; rearranging with fixed elements set beside it is *padded*,
   ``cat(x, zeros)``), ``projection`` (one learned layer, or non-parametric resampling,
   changing the shape or going down and back up to it), ``indices`` (an integer
   tensor: max-pool indices), or ``computed``.
3. What the other path spans is measured from the fork: parametric layers on its
   longest path, whether it encloses another skip (both ends inside; residual, long
   or gated: not feature reuse, nor a join of one split's parts) and whether it
   upsamples (an encoder -> decoder round trip; the fork and the join sit at one
   resolution, so an upsampling inside means a downsampling too; a block that only
   upsamples from a fork dominating it holds none).
4. Labels, in order: ``long_skip`` for indices; ``sequential`` when no layer lies on
   either path (decomposed activations, norms, rearrangements) and for a
   multiplicative gate on the main path (squeeze-and-excitation); ``branch`` when
   the join is not an add or concat, when both paths compute alike, or when a
   computing shortcut neither projects nor crosses a resolution change (Inception,
   ASPP, Q/K/V), or crosses one where both sides go on past the join (parallel
   streams: HRNet's fusion); ``gated`` for an add whose carry is multiplied by a sigmoid-derived
   gate (Highway); for concat: ``dense`` when the identity-carried producer feeds
   several concats (DenseNet) or the skip is short, ``long_skip`` when the span
   encloses skips or crosses a resolution change; for add: ``residual`` for an
   identity or shape-changing projection shortcut around a span with no skip
   nested and no resolution round trip, ``long_skip`` otherwise when the span
   encloses skips or upsamples.
5. Residual pairs in series (the next fork reached from a merge through
   non-parametric single-path ops only) form a chain: ``stage`` is its index.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import partial
from itertools import compress, repeat
from typing import Collection, Mapping, Sequence

from archc.analysis.probes import (
    computed_levels,
    concat_of_positions,
    elementwise,
    feeds_gate,
    gated,
    inner_merge,
    merge_terms,
    mixing,
    parallel_streams,
    scaled_by_gate,
    unpooled_value,
    upsamples_only,
)
from archc.analysis.report import Analysis, Mismatch, Skip, Span
from archc.analysis.rules import SUMS, Decision, PairFacts, RememberingDecider, decide, never, reworded
from archc.analysis.rules import layers as _layers
from archc.analysis.structure import SOURCE, TRANSPARENT, Flow
from archc.ir import Graph, Node
from archc.ir.dims import same_shape
from archc.ir.vocab import EXPECT_NONE, SKIP_KIND_SET, Carries, Kind, Role

#: regions with more nodes than this are not walked (spans then report depths only)
SPAN_LIMIT = 256
#: spans list their nodes when they have at most this many
LIST_LIMIT = 32
#: learned layers a shape-changing shortcut into an add may hold and still be a projection
LIGHT_LAYERS = 2
#: bound on the region walked to decide a pair whose fork does not dominate the main input
REGION_LIMIT = 4096


def analyze(graph: Graph, band: tuple[int, int] | None = None, paths: bool = True) -> Analysis:
    """Find and label every join of ``graph``; optionally count paths (see :mod:`archc.analysis.paths`).

    Pure: the graph is not changed. The backends print skip labels that
    :func:`merge_labels` makes from the result.
    """
    return _analyze(graph, band, paths)


def _analyze(graph: Graph, band: tuple[int, int] | None, paths: bool) -> Analysis:
    flow = Flow(graph)
    classifier = _Classifier(flow)
    connections = classifier.run()
    chains = _chains(flow, connections)
    expecting = _expecting(flow.graph_nodes)
    expectations = check_expectations(graph, connections, expecting, _merged_into(flow, expecting))
    stats = None
    if paths:
        from archc.analysis.paths import path_stats

        stats = path_stats(flow, chains, band, _no_choice(flow, connections, classifier.main_of))
    declared = sum(1 for node in expecting.values() if node.meta["expect"] is not None)
    return Analysis(model=graph.name, connections=connections, chains=chains, expectations=expectations,
                    paths=stats, declared_expectations=declared)


def _expecting(nodes: Mapping[str, Node]) -> dict[str, Node]:
    """The nodes that declare an ``expect``, by name (each node's meta asked in C: most declare none)."""
    declares = list(map(operator.contains, map(_meta, nodes.values()), repeat("expect")))
    if not any(declares):
        return {}
    return dict(compress(nodes.items(), declares))


_meta = operator.attrgetter("meta")
_FORK_ID = operator.attrgetter("_fork_id")
_KIND = operator.attrgetter("kind")
#: the vocabulary words the per-join code compares with, bound once (an Enum member's attribute
#: access is a Python-level lookup in Python 3.11, several per join)
_ADD, _CONCAT, _RESHAPE = Role.MERGE_ADD, Role.MERGE_CONCAT, Role.RESHAPE
_IDENTITY, _PROJECTION, _INDICES, _COMPUTED = Carries.IDENTITY, Carries.PROJECTION, Carries.INDICES, Carries.COMPUTED
_DENSE, _GATED, _RESIDUAL, _SEQUENTIAL = Kind.DENSE, Kind.GATED, Kind.RESIDUAL, Kind.SEQUENTIAL
#: roles that may change a value's resolution without a learned layer
_RESAMPLING = frozenset({Role.POOL, Role.UPSAMPLE, Role.UNPOOL})


@dataclass(slots=True)
class _Input:
    """One non-main input of a join, traced back to its fork."""

    node: int                 # producer id
    fork: int                 # fork id, or SOURCE when none
    fork_out: int             # which output of the fork the shortcut reads
    path: list[int] | None    # chain nodes from the fork (exclusive) to the input (inclusive); None: not a chain
    reads: int = 0            # which output of the producer the join reads
    weight: tuple[int, int] | None = None   # (layers, ops) on the shortcut, cached


class _Tracer:
    """Step 1 of the module docstring: a join's main input, and its other inputs traced back to their forks."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        # The chain of the main input last asked about (see :meth:`reaches_main`), made on demand.
        self._chain_of = SOURCE
        self._chain: set[int] = set()
        self._top = SOURCE
        self._feeds_top: Collection[int] = ()

    def deepest(self, preds: Sequence[int]) -> int:
        """The deepest input: most parametric layers on its longest path, then most ops, then the one
        whose path upsamples latest, then latest. (Compared by layers alone first: a wide concat rarely
        ties there, and no key tuples are built.) The upsampling before the order: of parallel branches
        alike but for their resolutions (PSPNet's poolings to 1, 2, 3 and 6), the one that resamples
        is the main path whatever order the spec or file lists them in."""
        dl = self.flow.depth_layers
        deepest = max(map(dl.__getitem__, preds))
        tied = [p for p in preds if dl[p] == deepest]
        if len(tied) == 1:
            return tied[0]
        do, up = self.flow.depth_ops, self.flow.last_upsample
        return max(tied, key=lambda p: (do[p], up[p], p))

    def reads(self, join: int) -> dict[int, int]:
        """Which output of each producer the join reads (the first slot's, when it reads several)."""
        # (slots are (producer, output) pairs; reversed, the first slot of each producer is set last)
        return dict(reversed(self.flow.slots[join]))

    def walk_back(self, s: int, reads: int, main: int = SOURCE) -> _Input:
        """Follow ``s`` back through single-producer, single-use nodes to the node used twice.
        With ``main``: past nodes used twice that are no ancestor of ``main`` (a projection whose
        output also feeds another merge, as DPN's splits into a residual and a dense part) to the
        first one that is: the fork the shortcut shares with the main path."""
        f = self.flow
        path: list[int] = []
        u = s
        out = reads
        while True:
            if f.uses[u] >= 2 and (main == SOURCE or self.reaches_main(u, main)) and not _sliced_part(f, u):
                return _Input(s, u, out, path, reads)
            preds = f.preds[u]
            if len(preds) != 1:
                carried = f.gated_factor(u)
                if carried is None:
                    carried = unpooled_value(f, u)  # (an unpooling places the value it reads, where its indices say)
                if carried is None:
                    # a graph input used once, or a join: no chain to a fork
                    return _Input(s, SOURCE, 0, None, reads)
                preds = (carried,)  # a gated value is the value it scales (an attention-gated skip)
                out = next(o for p, o in f.slots[u] if p == carried)
            else:
                out = f.slots[u][0][1]
            path.append(u)
            u = preds[0]

    def inputs(self, join: int, main: int, terms: list[tuple[int, int]] | None = None) -> dict[int, list[_Input]]:
        """Non-main inputs grouped by fork (SOURCE: no common fork with the main input); ``terms``:
        the (producer, output) slots the join stands for, when it is the root of a sum."""
        f = self.flow
        groups: dict[int, list[_Input]] = {}
        reads = dict(reversed(terms)) if terms is not None else self.reads(join)
        for s in (dict.fromkeys(p for p, _ in terms) if terms is not None else f.preds[join]):
            if s == main:
                continue
            inp = self.walk_back(s, reads[s], main)
            if inp.fork == SOURCE:
                # Not a chain from a shared fork: the join's immediate dominator is the fork.
                inp = _Input(s, f.idom[join], 0, None, reads[s])
            groups.setdefault(inp.fork, []).append(inp)
        return groups

    def direct_inputs(self, main: int, producers: Sequence[int]) -> list[int] | None:
        """The non-main inputs (of a join reading ``producers``) when every one is its own fork: used
        elsewhere too and an ancestor of the main input (a DenseNet concat). Then :meth:`inputs`
        would put each alone in its group, in this order. None otherwise."""
        uses = self.flow.uses
        direct = [s for s in producers if s != main]
        for s in direct:
            if uses[s] < 2 or not self.reaches_main(s, main):
                return None
        return direct

    def reaches_main(self, fork: int, main: int) -> bool:
        """Whether ``fork`` is an ancestor of ``main`` (or ``main`` itself).

        A fork that dominates the main input is one (most residual forks): O(1). Otherwise the
        main input's own chain is walked once per main input: most forks lie on it or feed its
        top (a DenseNet concat's inputs are the previous concat's inputs: one set lookup each).
        """
        f = self.flow
        if f.dominates(fork, main):
            return True
        if self._chain_of != main:
            chain = {main}
            top = main
            while len(f.preds[top]) == 1:
                top = f.preds[top][0]
                chain.add(top)
            self._chain_of, self._chain, self._top = main, chain, top
            self._feeds_top = f.preds[top] if len(f.preds[top]) <= 8 else f.pred_set(top)
        return bool(fork in self._chain or fork in self._feeds_top or f.reaches(fork, self._top))


class _Measures:
    """Steps 2 and 3 of the module docstring: what a shortcut carries and weighs, and what the
    main path spans from the fork. Reads the skips found so far that nest (``nest``, ``skips_at``),
    which :class:`_Classifier` fills in topological order."""

    def __init__(self, flow: Flow, nest: dict[int, int], skips_at: dict[int, list[Skip]],
                 concat_nest: dict[int, int], concat_skips_at: dict[int, list[Skip]]) -> None:
        self.flow = flow
        #: per join: the largest fork id of a skip whose join is this node or an ancestor
        #: (see :meth:`nested_fork`)
        self.nest = nest
        #: join id -> the skips found there that nest (:meth:`split_part`)
        self.skips_at = skips_at
        #: the same for a concat's pairs: a feature one concat alone reads back nests too
        self.concat_nest, self.concat_skips_at = concat_nest, concat_skips_at
        self._family: dict[int, int] = {}
        self._features: dict[int, tuple[str, int, int, bool]] = {}
        #: the concat :meth:`reuse_depth` last walked back from, the lowest id it walked to, and what it found
        self._reuse_of = SOURCE
        self._reuse_lo = SOURCE
        self._reuse: dict[int, tuple[int, int]] | None = None

    def nested_fork(self, v: int, concat: bool = False) -> int:
        """The largest fork id of a skip whose join is ``v`` or an ancestor of it (SOURCE: none);
        ``concat``: of one that nests a concat's pair. A node reading one producer has its
        producer's: its chain's head holds the answer."""
        return (self.concat_nest if concat else self.nest).get(self.flow.chain_head[v], SOURCE)

    def weight(self, fork: int, inp: _Input) -> tuple[int, int]:
        """(parametric layers, ops) on a shortcut, cached on the input."""
        if inp.weight is None:
            f = self.flow
            if inp.path is not None:
                inp.weight = (sum(f.parametric[u] for u in inp.path) if inp.path else 0), len(inp.path)
            else:
                base_l = f.depth_layers[fork] if fork != SOURCE else 0
                base_o = f.depth_ops[fork] if fork != SOURCE else 0
                inp.weight = f.depth_layers[inp.node] - base_l, f.depth_ops[inp.node] - base_o
        return inp.weight

    def carries(self, m: int, fork: int, sc: _Input) -> tuple[Carries, bool, bool]:
        """What the shortcut carries, whether it changes the shape from fork to join, and whether it
        is an identity padded: the fork's value rearranged into a larger one, fixed elements set beside
        it (``cat(x, zeros)``, ``F.pad``: ResNet's option A, PyramidNet's shortcut)."""
        f = self.flow
        src = f.value_type(fork, sc.fork_out).shape
        dst = (f.nodes[m].outputs[0] if f.roles[m] != _CONCAT else f.value_type(sc.node, sc.reads)).shape
        changed = src != dst and not same_shape(src, dst)
        carried = self._carried(m, fork, sc, changed)
        return carried, changed, carried == _IDENTITY and changed and _grows(src, dst)

    def _carried(self, m: int, fork: int, sc: _Input, changed: bool) -> Carries:
        """:meth:`carries`' first answer, given its second."""
        f = self.flow
        if f.is_int_value(sc.node, sc.reads) and self._from_pooling(fork, sc.fork_out):
            return _INDICES
        if sc.path is None:
            # Not a chain: a projection made of parallel light paths, merged (shake-shake's two
            # shifted 1x1 convs, concatenated), where it lies wholly after the fork and matches the
            # main path's shape; else computed
            if changed and f.roles[m] in SUMS and self.weight(fork, sc)[0] <= LIGHT_LAYERS \
                    and self._concatenated_paths(fork, sc.node):
                return _PROJECTION
            return _COMPUTED
        if not sc.path:
            return _IDENTITY
        layers = [u for u in sc.path if f.parametric[u]]
        if not layers:
            # A path that resamples carries a projection even where it comes back to the fork's size (a
            # pooling, then an upsampling): the values it brings are not the fork's. (A gate's product passes
            # the value it scales: ResNeSt's slices of x, each times its softmax weight, carry x's parts as
            # torch.split's parts do.)
            if all(f.roles[u] in TRANSPARENT or f.gated_factor(u) is not None for u in sc.path) \
                    or not changed and not any(map(partial(_resamples, f), sc.path)):
                return _IDENTITY
            return _PROJECTION
        if len(layers) == 1 or changed and len(layers) <= LIGHT_LAYERS and f.roles[m] in SUMS:
            # One learned layer, whatever its kernel (a 1x1 conv, a 3x3 conv on a U-Net link), or a
            # short path whose job is to match the main path's shape (a strided k x k conv, a
            # depthwise + pointwise pair): a projection by its role. That the main path is longer
            # is the rules' test (both_compute).
            return _PROJECTION
        return _COMPUTED

    def _concatenated_paths(self, fork: int, v: int, limit: int = 32) -> bool:
        """Whether ``v`` is computed from ``fork`` alone by paths that meet only in concats (parallel
        projections side by side), at most ``limit`` nodes; not by products or attention."""
        f = self.flow
        seen = {v}
        todo = [v]
        while todo:
            u = todo.pop()
            if not f.dominates(fork, u) or len(f.preds[u]) >= 2 and f.roles[u] != _CONCAT:
                return False
            for p in f.preds[u]:
                if p != fork and p not in seen:
                    if len(seen) >= limit:
                        return False
                    seen.add(p)
                    todo.append(p)
        return True

    def broadcast(self, m: int, sc: _Input) -> bool:
        """Whether the shortcut's value is broadcast to the join's output shape: it lacks a leading dim
        or has a dim of 1 where the output's is another size (a per-channel bias on a feature map)."""
        f = self.flow
        src, dst = f.value_type(sc.node, sc.reads).shape, f.nodes[m].outputs[0].shape
        if src == dst or len(src) > len(dst):
            return False
        lead = len(dst) - len(src)
        return any(d != 1 for d in dst[:lead]) or any(s == 1 and d != 1 for s, d in zip(src, dst[lead:]))

    def _from_pooling(self, fork: int, out: int, steps: int = 8) -> bool:
        """Whether the integer value ``fork`` gives (its output ``out``) is a max pooling's indices, or
        computed from them by single-input integer steps (an exporter's reshapes of them). Other integer
        values (top-k routing, gather indices) are no pooling indices."""
        f = self.flow
        v = fork
        for _ in range(steps):
            if f.roles[v] == Role.POOL:
                return True
            if len(f.preds[v]) != 1 or not f.is_int_value(v, out):
                return False
            v, out = f.slots[v][0]
        return False

    def split_part(self, fork: int, sc: _Input, m: int) -> bool:
        """Whether the shortcut carries a part of the fork's value that the main path never reads:
        one output of a split (a rearrangement with several outputs) that nothing else reads, or a
        slice (a rearrangement keeping fewer elements), read only there, of a value every consumer
        only slices.

        Such a pair joins parallel groups of one block (Res2Net's hierarchical connections,
        ShuffleNet V2's channel split): its shortcut bypasses no layer that computes from what it
        carries, so it keeps its own label but does not make a skip around the block long."""
        f = self.flow
        first = sc.path[-1] if sc.path else m
        if f.roles[fork] == _RESHAPE and len(f.nodes[fork].outputs) >= 2:
            return all(c == first for c in f.succs[fork] if (fork, sc.fork_out) in f.slots[c])
        # (the slice itself read only on the shortcut, as a split's output is above: a part the main
        # path also reads, as C2f's second half its bottleneck, is no parallel group's)
        return bool(sc.path) and f.uses[first] == 1 and all(map(_slices_of(f, fork), f.succs[fork]))

    def span_facts(self, fork: int, main: int, family: int, dominated: bool, concat: bool = False
                   ) -> tuple[int, int, bool, bool, list[int] | None]:
        """What the main path spans from the fork: depth in layers and ops, nesting, resampling,
        and the region between when it was walked (None otherwise). ``dominated``: whether the
        fork dominates the main input; ``concat``: the pair's join is a concat."""
        f = self.flow
        if dominated or family >= 2:
            # O(1) from depths: exact when the fork dominates the main input. A DenseNet producer
            # does not (earlier features bypass it): there the difference says where the concat's
            # main input lies beside it, which decides the pair; a dense pair then reports its own
            # path's layers (see reuse_depth), walked once per concat, not a region per pair
            # (O(L^3) per block of L layers).
            depth, ops = f.depths_between(fork, main)
            nested, resampled = self.nested_fork(main, concat) >= fork, f.last_upsample[main] > fork
            region = None
        else:
            region = f.region(fork, [main], REGION_LIMIT)
            depth, ops, nested, resampled = self.measure(fork, main, region, concat)
        # (a round trip is one the main path cannot avoid: an octave conv's low-frequency side path
        # resamples, its main path stays at the fork's resolution)
        # A block that only upsamples (a decoder's residual block) holds no round trip either.
        return depth, ops, nested, resampled and not _flat_route(f, fork, main) \
            and not upsamples_only(f, fork, main), region

    def measure(self, fork: int, main: int, region: list[int] | None, concat: bool = False
                ) -> tuple[int, int, bool, bool]:
        """Depth (layers, ops), nesting (of a concat's pair where ``concat``) and upsampling of the
        region between fork and main."""
        f = self.flow
        if region is None:
            # Too large to walk: depths from the inputs give upper bounds.
            return (*f.depths_between(fork, main), self.nested_fork(main, concat) >= fork,
                    f.last_upsample[main] > fork)
        inside = set(region)
        best_l = {fork: 0}
        best_o = {fork: 0}
        for r in region:
            ls = [best_l[p] for p in f.preds[r] if p in best_l]
            os_ = [best_o[p] for p in f.preds[r] if p in best_o]
            best_l[r] = (max(ls) if ls else 0) + f.parametric[r]
            best_o[r] = (max(os_) if os_ else 0) + 1
        skips_at = self.concat_skips_at if concat else self.skips_at
        nested = any(sk._fork_id == fork or sk._fork_id in inside for r in region for sk in skips_at.get(r, ()))
        resampled = any(f.last_upsample[r] == r for r in region)
        return best_l.get(main, 0), best_o.get(main, 0), nested, resampled

    def span(self, fork: int, main: int, kind: str, depth: int, depth_ops: int, region: list[int] | None,
             dominated: bool, side: list[int] | None = None) -> Span:
        """The span record of a pair: its region's layers, size and (when short) node names.
        ``dominated``: whether the fork dominates the main input; ``side``: the join's other inputs
        from the fork, beside the shortcut (RepVGG's second conv branch), whose region the shortcut
        bypasses too."""
        f = self.flow
        if side and kind in SKIP_KIND_SET:
            targets = [main, *side]
            region = f.dominated_region(fork, targets, SPAN_LIMIT) if dominated and all(
                f.dominates(fork, t) for t in side) else f.region(fork, targets, SPAN_LIMIT)
        # Dense pairs keep depths only: a block of L layers holds O(L^2) pairs of O(L)-node regions.
        if dominated and kind in SKIP_KIND_SET and kind != _DENSE and region is None and depth_ops < SPAN_LIMIT:
            # (the region holds at least the longest path: skip the walk when that alone is too long)
            region = _chain_between(f, fork, main)
            if region is None:
                region = f.dominated_region(fork, [main], SPAN_LIMIT)
        if region is None or len(region) > SPAN_LIMIT:
            return Span(None, None, depth, depth_ops, [])
        if type(region) is range:  # (consecutive ids: slices, no lookup per node)
            first, end = region.start, region.stop
            names = f.names[first:end] if end - first <= LIST_LIMIT else []
            return Span(sum(f.parametric[first:end]), end - first, depth, depth_ops, names)
        layers = sum(map(f.parametric.__getitem__, region))
        names = list(map(f.names.__getitem__, region)) if len(region) <= LIST_LIMIT else []
        return Span(layers, len(region), depth, depth_ops, names)

    def reuse_depth(self, m: int, main: int, fork: int, lo: int) -> tuple[int, int]:
        """(layers, ops) on the longest path from ``fork`` to the concat ``m`` that reuses it: over the
        paths that leave the fork, where the difference of the depths from the inputs would count a
        deeper path from another input (in ``cat(lin(cat(y, deep(a))), y)`` y's pair spans 1 layer, not
        ``deep``'s). In a DenseNet block the longest path to the concat passes every feature it reads,
        so there both agree. One walk back from ``m`` serves each of its forks from ``lo`` on; where it
        is too large, the difference of depths (to the main input ``main``) stands in, an upper bound."""
        if self._reuse_of != m or fork < self._reuse_lo:
            self._reuse_of, self._reuse_lo = m, min(lo, fork)
            self._reuse = self.flow.longest_to(m, self._reuse_lo, REGION_LIMIT)
        got = self._reuse.get(fork) if self._reuse is not None else None
        return got if got is not None else self.flow.depths_between(fork, main)

    def concat_family(self, fork: int) -> int:
        """How many distinct concat joins read ``fork`` directly (DenseNet reuses features in several)."""
        n = self._family.get(fork)
        if n is None:
            f = self.flow
            n = self._family[fork] = len({c for c in f.succs[fork] if f.roles[c] == Role.MERGE_CONCAT})
        return n

    def feature(self, fork: int) -> tuple[str, int, int, bool]:
        """A feature's name, concat family, depth in layers and whether its first output is an integer
        tensor, cached: DenseNet reads each feature in every later concat of its block."""
        got = self._features.get(fork)
        if got is None:
            f = self.flow
            got = self._features[fork] = (f.names[fork], self.concat_family(fork), f.depth_layers[fork],
                                          f.is_int_value(fork, 0))
        return got


def _resamples(f: Flow, u: int) -> bool:
    """Whether ``u`` is a pooling, upsampling or unpooling that changes its data input's size past the
    batch and channels (a pooling of stride 1, a token mixer, keeps it)."""
    if f.roles[u] not in _RESAMPLING or not f.slots[u]:
        return False
    return f.value_type(*f.slots[u][0]).shape[2:] != f.nodes[u].outputs[0].shape[2:]


def _grows(src: tuple, dst: tuple) -> bool:
    """Whether shape ``dst`` holds ``src`` and more: the same rank, each dim as large or larger (a
    symbolic dim only where it is the same), one larger."""
    if len(src) != len(dst) or src == dst:
        return False
    return all(a == b or isinstance(a, int) and isinstance(b, int) and b > a for a, b in zip(src, dst))


def _slices_of(f: Flow, fork: int):
    """Whether a consumer of ``fork`` is a slice of it: a one-input rearrangement keeping fewer elements."""
    whole = f.nodes[fork].outputs[0].numel()

    def slices(c: int) -> bool:
        if f.roles[c] != _RESHAPE or len(f.preds[c]) != 1 or whole is None:
            return False
        part = f.nodes[c].outputs[0].numel()
        return part is not None and part < whole
    return slices


def _flat_route(f: Flow, fork: int, main: int, limit: int = 256) -> bool:
    """Whether some route from ``fork`` to ``main`` passes no upsampling (so the main path need not
    leave the fork's resolution): a walk back from ``main`` that never enters an upsampling node;
    False where it grows past ``limit`` nodes."""
    up = f.last_upsample
    seen, todo = {main}, [main]
    while todo:
        v = todo.pop()
        if v == fork:
            return True
        if up[v] == v:
            continue  # (an upsampling node: routes through it resample)
        for p in f.preds[v]:
            if p >= fork and p not in seen:
                if len(seen) >= limit:
                    return False
                seen.add(p)
                todo.append(p)
    return False


def _sliced_part(f: Flow, u: int) -> bool:
    """Whether ``u`` is one slice of a value its consumers only slice (``chunk``, as the TorchScript
    exporter writes it: a Slice per part, where the default exporter writes one Split): the value is the
    fork, as a Split is, so that both lowerings give the same pairs."""
    if len(f.preds[u]) != 1 or f.roles[u] != _RESHAPE:
        return False
    whole = f.preds[u][0]
    return f.uses[whole] >= 2 and all(map(_slices_of(f, whole), f.succs[whole]))


def _chain_between(f: Flow, fork: int, main: int) -> list[int] | range | None:
    """The nodes after ``fork`` up to ``main`` when ``main`` hangs from ``fork`` through
    one-producer nodes (what :meth:`Flow.dominated_region` finds then, without its set and
    dominance tests: a residual block's main path), in id order; None otherwise.

    ``fork`` dominates ``main`` (the caller asks first). Then ``main`` hangs from it when both
    share a chain head, or ``fork`` heads ``main``'s chain: one-producer nodes hanging from one
    head form a tree whose dominators are their producers, so the walk needs no test per step.
    Each step back adds one op to the depth (:attr:`Flow.depth_ops`) and ids grow along the path,
    so when the path has as many nodes as there are ids between, it is those ids (a ``range``)."""
    heads = f.chain_head
    h = heads[main]
    steps = f.depth_ops[main] - f.depth_ops[fork]
    if h != fork and h != heads[fork] or steps > SPAN_LIMIT:
        return None
    if main - fork == steps:
        return range(fork + 1, main + 1)
    path = []
    append = path.append
    preds = f.preds
    v = main
    while v != fork:
        append(v)
        v = preds[v][0]
    path.reverse()
    return path


class _Classifier:
    """Steps 1-4 of the module docstring over every join in topological order: each join's
    pairs, measured (:class:`_Measures`) and decided by :func:`archc.analysis.rules.decide`."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.has_gates = Role.GATE in flow.roles
        #: join id -> the skips found there
        self.skips_at: dict[int, list[Skip]] = {}
        #: join id -> the skips found there that make a skip enclosing them long: residual, long and
        #: gated skips; not a block's own internals, feature reuse (dense) and joins of a split's
        #: parts (:meth:`_Measures.split_part`): a residual around a dense block (RDN's local residual)
        #: or a Res2Net block is a residual
        self.nesting_at: dict[int, list[Skip]] = {}
        #: per join: the largest fork id of a skip whose join is this node or an ancestor
        self.nest: dict[int, int] = {}
        #: the same two for a concat's pairs, where a feature that one concat alone reads back beside
        #: layers computed from it nests too: a U of concats at one resolution (U^2-Net's dilated
        #: RSU-4F) nests its links as a U-Net's levels do, while a residual around such a block stays one
        self.concat_nesting_at: dict[int, list[Skip]] = {}
        self.concat_nest: dict[int, int] = {}
        #: join id -> its main input
        self.main_of: dict[int, int] = {}
        self.trace = _Tracer(flow)
        self.measures = _Measures(flow, self.nest, self.nesting_at, self.concat_nest, self.concat_nesting_at)
        self.decide = RememberingDecider()
        #: node id -> the axis its features are on (see :func:`~archc.analysis.probes.feature_axis`)
        self.feature_axes: dict[int, int | None] = {}

    def run(self) -> list[Skip]:
        """Every pair of every join, in topological order of the joins."""
        f = self.flow
        nest, concat_nest, preds, head = self.nest, self.concat_nest, f.preds, f.chain_head.__getitem__
        nested = nest.get  # (a node's nesting is its chain head's: see _Measures.nested_fork)
        concat_nested = concat_nest.get
        out: list[Skip] = []
        parts = self._parts_joins()
        for i in f.merges if not parts else sorted([*f.merges, *parts]):
            k = nest[i] = max(map(nested, map(head, preds[i]), repeat(SOURCE)))
            kc = concat_nest[i] = max(map(concat_nested, map(head, preds[i]), repeat(SOURCE)))
            records = self._join(i) if i not in parts else [self._parts_join(i)]
            skips = list(compress(records, map(SKIP_KIND_SET.__contains__, map(_KIND, records))))
            if skips:
                self.skips_at[i] = skips
                nesting = [s for s in skips if s._nests]
                if nesting:
                    self.nesting_at[i] = nesting
                    nest[i] = max(k, *map(_FORK_ID, nesting))
                nesting += [s for s in skips if s._reused_once]
                if nesting:
                    self.concat_nesting_at[i] = nesting
                    concat_nest[i] = max(kc, *map(_FORK_ID, nesting))
            out.extend(records)
        return out

    def _parts_joins(self) -> set[int]:
        """The nodes reading several outputs of one producer and nothing else (the parts of one
        split, added): joins of values that meet at that producer, with no node between. Integer
        outputs beside one value are no part of it (a pooling's indices, a quantization's zero point)."""
        f = self.flow
        return {i for i in f.slot_joins if len(f.preds[i]) == 1
                and len({slot for slot in f.slots[i] if not f.is_int_value(*slot)}) > 1}

    def _parts_join(self, m: int) -> Skip:
        """The one pair of a join of parts of one producer's outputs (see :meth:`_parts_joins`),
        decided as the same join of slices of one value is: no layer on either path."""
        f = self.flow
        fork = self.main_of[m] = f.preds[m][0]
        out = f.slots[m][0][1]
        facts = PairFacts(f.nodes[m].op, f.roles[m], f.names[fork], _IDENTITY, False, 0, 0, False, False,
                          elementwise=partial(elementwise, f, m))
        kind, why, rule = self.decide(facts)
        return self._record(m, fork, _Input(fork, fork, out, [], out), kind, _IDENTITY, Span(0, 0, 0, 0, []),
                            why, rule)

    def _join(self, m: int) -> list[Skip]:
        f = self.flow
        role = f.roles[m]
        terms = None
        if role == _ADD or role == _CONCAT:
            if inner_merge(f, m) is not None:
                return []  # a partial sum or concat: the merge it feeds is the merge
            terms = merge_terms(f, m)
        producers = list(dict.fromkeys(p for p, _ in terms)) if terms is not None else f.preds[m]
        main = self.main_of[m] = self.trace.deepest(producers)
        positions = role == _CONCAT and concat_of_positions(f, m, producers, self.feature_axes)
        if role == _CONCAT and not positions:
            direct = self.trace.direct_inputs(main, producers)
            if direct is not None:
                return self._concat_pairs(m, main, direct, dict(reversed(terms)) if terms else self.trace.reads(m))
        groups = self.trace.inputs(m, main, terms)
        # (inputs from several forks that each compute: a head merging levels, see computed_levels)
        levels = computed_levels(f, m, producers) if len(groups) >= 2 and (role == _ADD or role == _CONCAT) else 0
        records = [self._pair(m, main, fork, members, levels, positions) for fork, members in groups.items()]
        if role == _CONCAT and not positions:
            records += self._level_reuse(m, main, groups)
        return records

    def _level_reuse(self, m: int, main: int, groups: dict[int, list[_Input]]) -> list[Skip]:
        """Further pairs of a concat: inputs that share a fork with a lighter one but are themselves
        the output of an earlier skip merge at the concat's level (a nested U-Net's decoder node reads
        every earlier node of its level) and are read elsewhere too: each such fork is its own (input,
        concat) pair, decided alone. A node only this concat reads forks nothing (UNet++'s X01 in X02 =
        H[X00, X01, up(X11)] where no later node reads X01: the newest feature of the level, as a DenseNet
        layer's output is at the concat right after it)."""
        f = self.flow
        out = []
        for fork, members in groups.items():
            if len(members) < 2 or fork == SOURCE:
                continue
            lightest = min(members, key=lambda inp: (self.measures.weight(fork, inp), inp.node))
            for inp in members:
                if inp is lightest or inp.path is not None or f.uses[inp.node] < 2 \
                        or not self._after_skip_merge(inp.node):
                    continue
                v = inp.node
                depth = f.depths_between(v, main)[0]
                facts = PairFacts(f.nodes[m].op, Role.MERGE_CONCAT, f.names[v], Carries.IDENTITY, False, depth, 0,
                                  nested=False, resampled=False, family=self.measures.concat_family(v))
                decision = decide(facts)
                if decision.kind in SKIP_KIND_SET:
                    (kind, why, rule), depth, depth_ops = self._own_path(m, main, v, facts, decision)
                    own = _Input(v, v, inp.reads, [], inp.reads)
                    out.append(self._record(m, v, own, kind, Carries.IDENTITY,
                                            Span(None, None, depth, depth_ops, []), why, rule))
        return out

    def _own_path(self, m: int, main: int, fork: int, facts: PairFacts, decision: Decision
                  ) -> tuple[Decision, int, int]:
        """A pair of a concat decided from the difference of its main input's and its fork's depths
        (where the main input lies beside the reused feature), reported with the layers and ops on the
        fork's own longest path into the concat (see :meth:`_Measures.reuse_depth`): the decision
        re-worded with them (``facts`` takes the figure), and the figures."""
        facts.depth, depth_ops = self.measures.reuse_depth(m, main, fork, fork)
        return reworded(decision, facts), facts.depth, depth_ops

    def _after_skip_merge(self, v: int) -> bool:
        """Whether ``v`` hangs (through one-input nodes, a learned layer among them) from a merge that
        holds a skip: a node computed at its level (a nested U-Net's X01 = H[X00, up(X10)]), not the
        merge's own sum (NASNet's cell concatenates its sums: each is read there alone)."""
        f = self.flow
        layers = False
        while len(f.preds[v]) == 1:
            layers = layers or f.parametric[v]
            v = f.preds[v][0]
        return layers and v in self.skips_at

    def _concat_pairs(self, m: int, main: int, direct: list[int], reads: dict[int, int]) -> list[Skip]:
        """The pairs of concat ``m`` whose inputs are all direct (see :meth:`_Tracer.direct_inputs`),
        DenseNet's case decided here in one step.

        That case: other concats read the feature too, layers lie between and nothing
        upsamples. A block of L layers holds O(L^2) such pairs, so they share the join's facts
        and each feature's facts. It gives exactly what :meth:`_pair` would: an identity carry,
        depths as :meth:`_pair` takes them for a feature read by two or more concats, the first
        concat rule of :func:`decide`. Every other pair goes to :meth:`_pair`.
        """
        f = self.flow
        merge, op = f.names[m], f.nodes[m].op
        main_layers, main_up = f.depth_layers[main], f.last_upsample[main]
        records = []
        feature, reuse_depth, lo = self.measures.feature, self.measures.reuse_depth, min(direct)
        for fork in direct:
            out = reads[fork]
            name, family, layers, int_out = feature(fork)
            if family >= 2 and main_layers > layers and main_up <= fork and not (int_out if out == 0 else
                                                                                 f.is_int_value(fork, out)):
                depth, depth_ops = reuse_depth(m, main, fork, lo)
                span = Span(None, None, depth, depth_ops, [])
                reason = f"concat reuses {name}, which {family} concats read (DenseNet-style), across {_layers(depth)}"
                # Positional: fork, merge, merge_op, merge_role, kind, carries, shortcut, span, reason
                # (a call by keywords costs a third more, and DenseNet makes O(L^2) of these).
                records.append(Skip(name, merge, op, Role.MERGE_CONCAT, Kind.DENSE, Carries.IDENTITY, [], span, reason,
                                    fork_output=out, rule="dense_reuse", _fork_id=fork, _merge_id=m, _nests=False))
            else:
                records.append(self._pair(m, main, fork, [_Input(fork, fork, out, [], out)]))
        return records

    def _pair(self, m: int, main: int, fork: int, members: list[_Input], levels: int = 0,
              positions: bool = False) -> Skip:
        """One (fork, join) pair: its shortcut (the lightest member), measured and decided (``levels``:
        the join's :func:`~archc.analysis.probes.computed_levels`; ``positions``: its
        :func:`~archc.analysis.probes.concat_of_positions`)."""
        f, measures = self.flow, self.measures
        role = f.roles[m]
        if len(members) > 1:
            members = sorted(members, key=lambda inp: (measures.weight(fork, inp), inp.node))
        sc = members[0]
        w_short = measures.weight(fork, sc)[0]
        if fork == SOURCE:
            kind, why, rule = decide(PairFacts(f.nodes[m].op, role, None, None, False, 0, w_short, False, False,
                                               via=self._names(f.preds[m], 3)))
            return self._record(m, fork, sc, kind, None, Span(None, None, 0, 0, []), why, rule)
        carries, changed, padded = measures.carries(m, fork, sc)
        family = measures.concat_family(fork) if role == _CONCAT and carries == _IDENTITY else 0
        dominated = f.dominates(fork, main)
        depth, depth_ops, nested, resampled, region = measures.span_facts(fork, main, family, dominated,
                                                                         role == _CONCAT)
        # PairFacts' fields by position (merge_op, merge_role, fork, carries, changed, depth, shortcut_layers,
        # nested, resampled, family, members, via, broadcast, levels, positions, dominated, padded): one per join,
        # and a call by keywords costs a third more.
        facts = PairFacts(
            f.nodes[m].op, role, f.names[fork], carries, changed, depth, w_short, nested, resampled, family,
            len(members), self._names(list(reversed(sc.path)) if sc.path is not None else [sc.node], 3)
            if carries == _PROJECTION and sc.path != [] else "",
            role in SUMS and measures.broadcast(m, sc), levels, positions, dominated, padded)
        decision = self.decide.recall(facts)
        if decision is None:
            # The probes, where no rule remembered for equal facts decides (most pairs of a graph have one).
            # (partials, not lambdas: a lambda would make this function's variables closure cells, slower to
            # read all along)
            facts.elementwise = partial(elementwise, f, m)
            if self.has_gates:
                facts.gated, facts.feeds_gate = partial(gated, f, m, fork), partial(feeds_gate, f, m)
                if role == Role.MERGE_SUB:
                    facts.scaled_by_gate = partial(scaled_by_gate, f, m)
            facts.mixing, facts.split_part = partial(mixing, f, fork, main), partial(measures.split_part, fork, sc, m)
            facts.streams = partial(parallel_streams, f, m, fork, sc.node, main)
            decision = self.decide(facts)
        if decision.kind == _DENSE and family >= 2 and not dominated:
            decision, depth, depth_ops = self._own_path(m, main, fork, facts, decision)
        kind, why, rule = decision
        if kind == _GATED:
            carries = _IDENTITY  # the fork's own value, scaled by the gate
        span = measures.span(fork, main, kind, depth, depth_ops, region, dominated,
                             [inp.node for inp in members[1:]] if len(members) > 1 else None)
        record = self._record(m, fork, sc, kind, carries, span, why, rule)
        if kind == _DENSE or kind in SKIP_KIND_SET and measures.split_part(fork, sc, m):
            record._nests = False  # feature reuse or a split's parts inside one block (see nesting_at)
            # (a feature one concat alone reads back nests a concat's pair: see concat_nesting_at)
            record._reused_once = kind == _DENSE and family < 2 and not measures.split_part(fork, sc, m)
        return record

    def _record(self, m: int, fork: int, sc: _Input, kind: Kind, carries: Carries | None, span: Span,
                reason: str, rule: str) -> Skip:
        f = self.flow
        node = f.nodes[m]
        # Positional: fork, merge, merge_op, merge_role, kind, carries, shortcut, span, reason, fork_output,
        # stage, position, rule, _fork_id, _merge_id (a call by keywords costs a third more).
        return Skip(f.names[fork] if fork != SOURCE else None, node.name, node.op, f.roles[m], kind, carries,
                    [f.names[u] for u in reversed(sc.path)] if sc.path else [], span, reason, sc.fork_out,
                    None, None, rule, fork, m)

    def _names(self, ids, limit: int) -> str:
        names = [self.flow.names[i] for i in ids]
        if len(names) > limit:
            return ", ".join(names[:limit]) + f", +{len(names) - limit}"
        return ", ".join(names)


def _chains(flow: Flow, connections: list[Skip]) -> list[list[Skip]]:
    """Residual pairs in series: from a merge, follow single-use, single-producer, non-parametric
    nodes; the chain continues when this reaches the fork of another residual pair."""
    residual = [c for c in connections if c.kind == _RESIDUAL]
    by_fork: dict[int, Skip] = {}
    for c in residual:
        by_fork.setdefault(c._fork_id, c)
    following: dict[int, Skip] = {}
    has_prev: set[int] = set()
    uses, succs, preds, parametric = flow.uses, flow.succs, flow.preds, flow.parametric
    for c in residual:
        u = c._merge_id
        while True:
            nxt = by_fork.get(u)
            if nxt is not None and nxt is not c and id(nxt) not in has_prev:
                following[id(c)] = nxt
                has_prev.add(id(nxt))
                break
            if uses[u] != 1 or len(succs[u]) != 1:
                break
            v = succs[u][0]
            if len(preds[v]) != 1 or parametric[v]:
                break
            u = v
    chains: list[list[Skip]] = []
    for c in residual:
        if id(c) in has_prev:
            continue
        chain = [c]
        while id(chain[-1]) in following:
            chain.append(following[id(chain[-1])])
        for pos, rec in enumerate(chain):
            rec.stage, rec.position = len(chains), pos
        chains.append(chain)
    return chains


def _merged_into(flow: Flow, nodes: Mapping[str, Node]) -> dict[str, str]:
    """Each of ``nodes`` that is a part of a larger merge (see :func:`inner_merge`) -> that merge's name."""
    out = {}
    for name in nodes:
        i = flow.index.get(name)
        outer = None
        while i is not None and (i := inner_merge(flow, i)) is not None:
            outer = i
        if outer is not None:
            out[name] = flow.names[outer]
    return out


def check_expectations(graph: Graph, connections: list[Skip], nodes: Mapping[str, Node] | None = None,
                       merged_into: Mapping[str, str] | None = None) -> list[Mismatch]:
    """Compare each node's declared ``meta["expect"]`` with what the analysis found there.

    ``nodes``: the graph's nodes by name (:meth:`Graph.node_map`, as :attr:`Flow.graph_nodes` holds them),
    or those of them that declare an ``expect``. ``merged_into``: a node that is a part of a larger merge
    (the inner concat of ``cat(cat(a, b), c)``) -> that merge, whose pairs hold the part's: the part's
    expectation holds where it holds of the part alone (``none``) or of that merge."""
    if nodes is None:
        nodes = graph.node_map()
    expecting = list(_expecting(nodes).items())
    if not expecting:
        return []  # most graphs declare nothing: skip indexing every connection
    by_merge: dict[str, list[Skip]] = {}
    for c in connections:
        by_merge.setdefault(c.merge, []).append(c)
    out = []
    for name, node in expecting:
        expected = node.meta["expect"]
        if expected is None:
            continue
        records = by_merge.get(name, [])
        if _holds(expected, records):
            continue
        # a part of a larger merge (no pairs of its own: "none" held above) may mean that merge
        outer = (merged_into or {}).get(name) if not records else None
        if outer is not None:
            records = by_merge.get(outer, [])
            if _holds(expected, records):
                continue
        kinds = sorted({r.kind for r in records})
        found = "/".join(kinds) if kinds else "none"
        reason = records[0].reason if records else "not a join (fewer than two distinct data inputs)"
        if outer is not None:
            reason = f"part of the {node.op} '{outer}', which holds its pairs: {reason}"
        out.append(Mismatch(node=name, expected=expected, found=found, reason=reason,
                            location=str(node.location) if node.location else None))
    return out


def _holds(expected: str, records: list[Skip]) -> bool:
    """Whether the pairs found at a node agree with its declared ``expect``."""
    kinds = {r.kind for r in records}
    return expected in kinds or (expected == EXPECT_NONE and not kinds & SKIP_KIND_SET) or (
        not records and expected == Kind.SEQUENTIAL)


def _no_choice(flow: Flow, connections: list[Skip], main_of: dict[int, int]) -> dict[int, int]:
    """Nodes reading several values where paths have no choice -> the input they follow: joins
    where every pair is ``sequential`` (a decomposed activation or norm, element-wise arithmetic,
    a gate on the main path: there the value it scales), and arithmetic reading one value several
    times (``x * x``). Paths are counted on the unravelled view: residual blocks taken or skipped,
    branch joins a choice among branches; how an op is lowered adds no choice. (A layer or matmul reading one value several
    times, attention's query, key and value, keeps one path per read.)"""
    kinds: dict[int, bool] = {}
    for c in connections:
        kinds[c._merge_id] = kinds.get(c._merge_id, True) and c.kind == _SEQUENTIAL
    through = {m: main_of[m] for m, only_sequential in kinds.items() if only_sequential}
    if Role.GATE in flow.roles:
        # A gate on the main path (x·T: a squeeze-and-excitation scaling, Highway's carry x·(1 − T))
        # passes the paths of the value it scales, not those of the gate (the deeper input): a path
        # skipping Highway's transform carries x through no layer.
        for m in through:
            scaled = flow.gated_factor(m)
            if scaled is not None:
                through[m] = scaled
    for i in flow.slot_joins:  # (the nodes reading other than one slot)
        slots = flow.slots[i]
        if len(slots) > 1 and len(flow.preds[i]) == 1 and flow.roles[i] not in _READS_COUNT \
                and len(set(slots)) == 1:
            through[i] = flow.preds[i][0]
    return through


#: roles whose every read of one value is a path of its own (attention reads x as query, key, value)
_READS_COUNT = frozenset({Role.LAYER, Role.MATMUL})


def merge_labels(analysis: Analysis) -> dict[str, str]:
    """Merge node name -> a one-line label of the skips it holds, for the backends to print
    (e.g. ``"residual merge (fork layer1.0.relu)"``, ``"dense merge (forks stem, layer.0.conv, +2)"``)."""
    at: dict[str, list[Skip]] = {}
    for c in analysis.connections:
        if c.kind in SKIP_KIND_SET:
            at.setdefault(c.merge, []).append(c)
    labels = {}
    for merge, records in at.items():
        label = "/".join(sorted({str(r.kind) for r in records}))
        forks = [r.fork for r in records if r.fork]
        shown = ", ".join(forks[:3]) + (f", +{len(forks) - 3}" if len(forks) > 3 else "")
        labels[merge] = f"{label} merge (fork{'s' if len(forks) > 1 else ''} {shown})"
    return labels
