"""Repeated structure in a graph, found by structural hashing, for writing it back as a spec.

The graph is cut into *segments* at single-tensor cut points: positions in topological
order after which exactly one value (the output of the node just passed) is still needed.
A segment therefore reads one tensor and hands one on, like a block of the spec language.
Each segment has a *skeleton*: its nodes' ops and wiring, with the segment's input as
``x`` and attribute values left out. Segments with the same skeleton are instances of
one block; so are segments whose skeleton becomes the same once a chain of nodes that
only transforms ``x`` on its way to a merge (a projection shortcut) is taken out: those
nodes become optional (``if:`` a block flag) in the block. Consecutive instances of a
block become one repeated node; a run ends where the exporter's module path prefix
changes (``layer1.*`` -> ``layer2.*``), a hint only, or, without hints, where an instance
after the first of a run differs in its attribute values. Attributes whose values differ
between instances become block parameters (slots with equal values everywhere share
one), with per-repetition ``overrides``.

Nothing here reads node names to decide structure; names only name things.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archc.ir.graph import Graph, Node, Value

#: an input reference inside a segment: ("x",) for the segment's input, else ("n", index, output)
Ref = tuple


@dataclass
class Segment:
    """Consecutive nodes reading one tensor (``entry``) and handing on the last node's output."""

    entry: Value
    nodes: list[Node]

    def refs(self, node: Node) -> list[Ref]:
        local = {n.name: i for i, n in enumerate(self.nodes)}
        return [("x",) if v == self.entry else ("n", local[v.node], v.out) for v in node.inputs]

    def skeleton(self) -> tuple:
        return tuple((n.op, _fixed_attrs(n), tuple(self.refs(n))) for n in self.nodes)


def _fixed_attrs(node: Node) -> Any:
    """The part of a node's attributes that must agree between instances: all of an
    ``onnx_node``'s (they hold its operand layout and types), none of a native op's."""
    if node.op == "onnx_node":
        return repr(sorted(node.attrs.items()))
    return tuple(sorted(node.attrs))


def segments(graph: Graph) -> list[Segment] | None:
    """The graph cut at single-tensor cut points; None where it has no such cut after the inputs."""
    order = [n for n in graph.nodes() if n.op != "input"]
    if not order:
        return None
    pos = {n.name: i for i, n in enumerate(order)}
    last_use: dict[Value, int] = {}
    for i, node in enumerate(order):
        for v in node.inputs:
            last_use[v] = max(last_use.get(v, -1), i)
    for v in graph.outputs.values():
        last_use[v] = len(order)
    # live values after position i: produced at or before i (inputs: before 0), used after i
    born: dict[int, list[Value]] = {}
    for v in last_use:
        born.setdefault(pos.get(v.node, -1), []).append(v)
    live: set[Value] = set(born.get(-1, []))
    cuts: list[tuple[int, Value]] = []
    for i, node in enumerate(order):
        live.update(born.get(i, []))
        live = {v for v in live if last_use[v] > i}
        if len(live) == 1 and next(iter(live)).node == node.name:
            cuts.append((i, next(iter(live))))
    if not cuts:
        return None
    first_live = {v for v in born.get(-1, []) if last_use[v] >= 0}
    if len(first_live) != 1:
        return None
    result, start, entry = [], 0, next(iter(first_live))
    for i, value in cuts:
        result.append(Segment(entry, order[start:i + 1]))
        start, entry = i + 1, value
    if start != len(order):
        return None  # the graph's end is not a single tensor (several outputs)
    return result


@dataclass
class BlockType:
    """One block: the full instance's nodes (optional ones flagged) and its instances."""

    skeleton: tuple
    template: Segment
    optional: set[int] = field(default_factory=set)    # template node indexes behind the flag
    instances: list[tuple[Segment, dict[int, int] | None]] = field(default_factory=list)
    # each instance: its segment and the map template index -> its node index (None: identity)


def _without(seg: Segment, removed: set[int], exit_index: int) -> tuple:
    """The skeleton of ``seg`` with nodes ``removed`` taken out and the exit read as ``x``."""
    keep = [i for i in range(len(seg.nodes)) if i not in removed]
    new_index = {old: k for k, old in enumerate(keep)}
    out = []
    for i in keep:
        n = seg.nodes[i]
        refs = []
        for r in seg.refs(n):
            if r[0] == "n" and r[1] == exit_index:
                refs.append(("x",))
            else:
                refs.append(r if r[0] == "x" else ("n", new_index[r[1]], r[2]))
        out.append((n.op, _fixed_attrs(n), tuple(refs)))
    return tuple(out)


def optional_chains(seg: Segment) -> list[tuple[set[int], int]]:
    """(nodes, exit) of each shortcut chain: an exit node and its ancestors in the segment, which
    only transform ``x``, read by nothing else, the exit read once by a merge (a node that also
    reads something outside the chain), e.g. a projection shortcut."""
    found = []
    readers = [[r for r in seg.refs(n)] for n in seg.nodes]
    last = len(seg.nodes) - 1
    for e in range(last):
        chain, frontier = set(), [e]
        while frontier:
            i = frontier.pop()
            if i not in chain:
                chain.add(i)
                frontier += [r[1] for r in readers[i] if r[0] == "n"]
        outside = [(j, r) for j in range(len(seg.nodes)) if j not in chain for r in readers[j]
                   if r[0] == "n" and r[1] in chain]
        if len(outside) != 1 or outside[0][1][1] != e or outside[0][1][2] != 0:
            continue
        merge = outside[0][0]
        if len(readers[merge]) >= 2 and len(chain) < len(seg.nodes) - 1:
            found.append((chain, e))
    return found


def block_types(segs: list[Segment]) -> list[BlockType]:
    """Segments grouped into block types (by skeleton, or by skeleton once a shortcut chain is out)."""
    types: list[BlockType] = []
    by_skeleton: dict[tuple, BlockType] = {}
    reduced: dict[tuple, tuple[BlockType, set[int], int]] = {}
    for seg in sorted(segs, key=lambda s: -len(s.nodes)):  # longest first: they carry the chains
        sk = seg.skeleton()
        if sk in by_skeleton:
            bt = by_skeleton[sk]
            bt.instances.append((seg, {i: i for i in range(len(seg.nodes))}))
            continue
        if sk in reduced:
            bt, chain, _ = reduced[sk]
            keep = [i for i in range(len(bt.template.nodes)) if i not in chain]
            bt.optional |= chain
            bt.instances.append((seg, {old: k for k, old in enumerate(keep)}))
            continue
        bt = BlockType(sk, seg, instances=[(seg, {i: i for i in range(len(seg.nodes))})])
        types.append(bt)
        by_skeleton[sk] = bt
        for chain, exit_index in optional_chains(seg):
            reduced.setdefault(_without(seg, chain, exit_index), (bt, chain, exit_index))
    return types


#: the most minimal segments one repeated unit may span (a transformer layer is four)
MAX_PERIOD = 8


def _join(segs: list[Segment]) -> Segment:
    return Segment(segs[0].entry, [n for s in segs for n in s.nodes])


def _keys(seg: Segment) -> set[tuple]:
    """The skeletons a segment matches: its own, and its own without one shortcut chain."""
    return {seg.skeleton(), *(_without(seg, chain, e) for chain, e in optional_chains(seg))}


def _compatible(a: Segment, b: Segment) -> bool:
    return a.skeleton() == b.skeleton() or bool(_keys(a) & {b.skeleton()}) or bool(_keys(b) & {a.skeleton()})


def units(segs: list[Segment]) -> list[Segment]:
    """Minimal segments joined into repeating units: at each position, the period (in segments)
    whose unit repeats over the most segments (at least twice) wins, else one segment alone."""
    out: list[Segment] = []
    i = 0
    while i < len(segs):
        best_p, best_count = 1, 1
        for p in range(1, MAX_PERIOD + 1):
            if i + 2 * p > len(segs):
                break
            unit = _join(segs[i:i + p])
            count = 1
            while i + (count + 1) * p <= len(segs) and \
                    _compatible(unit, _join(segs[i + count * p:i + (count + 1) * p])):
                count += 1
            if count >= 2 and count * p > best_count * best_p:
                best_p, best_count = p, count
        if best_count >= 2:
            out += [_join(segs[i + k * best_p:i + (k + 1) * best_p]) for k in range(best_count)]
            i += best_p * best_count
        else:
            out.append(segs[i])
            i += 1
    return out
