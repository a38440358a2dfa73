"""Structural probes the skip rules ask about one join: n-ary sums, gates, token mixers, broadcasting.

Each is a function of the :class:`~archc.analysis.structure.Flow` and node ids, so the classifier
in :mod:`archc.analysis.skips` stays about tracing and measuring pairs.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from archc.analysis.structure import SOURCE, Flow
from archc.errors import ShapeError
from archc.ir import dims
from archc.ir.dims import same_shape
from archc.ir.types import Dim
from archc.ir.vocab import SHAPE_KEEPING, Role
from archc.ops import registry
from archc.ops.base import broadcast

#: regions with more nodes than this are not searched for a token mixer
MIXER_LIMIT = 256
#: roles a carried value may pass through while staying "the same" value, element-wise
#: ('affine': plus or minus a constant, as the ONNX importer labels it)
ARITH = frozenset({Role.MERGE_MUL, Role.MERGE_SUB, Role.MERGE_ADD, Role.SCALE, Role.AFFINE, Role.IDENTITY,
                   Role.RESHAPE})
#: (bound once: an Enum member's attribute access is a Python-level lookup in 3.11)
_ADD, _CONCAT = Role.MERGE_ADD, Role.MERGE_CONCAT


def inner_merge(f: Flow, m: int) -> int | None:
    """The merge that ``m`` is a part of, or None: an n-ary sum or concat, however the exporter
    associated it (``(x + a) + b``, ``cat(cat(a, b), c)``) or flattened it (``cat(a, b, c)``), is
    one merge. ``m``'s one use is then a merge of the same kind: an add of the same shape, a concat
    along the same axis."""
    if f.uses[m] != 1 or len(f.succs[m]) != 1:
        return None
    s = f.succs[m][0]
    role = f.roles[m]
    if f.roles[s] != role or len(f.preds[s]) < 2:
        return None
    if role == _ADD:
        if not same_shape(f.nodes[s].outputs[0].shape, f.nodes[m].outputs[0].shape):
            return None
    elif role != _CONCAT or (axis := _concat_axis(f.nodes[m])) is None or axis != _concat_axis(f.nodes[s]):
        return None
    if f.last_upsample[s] != f.last_upsample[m] and not _round_trip_from_inside(f, m, s):
        # the other terms come back from a resolution round trip around ``m``: a level merge
        # around a complete residual unit (an hourglass's Residual(x) + Up(Low(x))), two merges
        return None
    return s


#: nodes a partial sum's own region may hold for :func:`_round_trip_from_inside` to walk it
UNIT_LIMIT = 256


def _round_trip_from_inside(f: Flow, m: int, s: int) -> bool:
    """Whether the terms that ``s`` adds to the partial merge ``m`` read a value computed inside
    ``m`` (strictly between ``m``'s dominator and ``m``): then their round trip leaves from one of
    the sum's own terms rather than going around ``m`` as a whole, and the sum is one merge (BiFPN's
    ``P4_in + P4_td + down(P3_out)``, where ``P3_out`` is computed from an upsampled ``P4_td``). A
    region too large to walk counts as none (two merges, as before)."""
    entry = f.idom[m]
    inside = f.dominated_region(entry, (m,), UNIT_LIMIT)
    if not inside:
        return False
    members = set(inside)
    succs = f.succs
    return any(c not in members and f.reaches(c, s) for v in inside if v != m for c in succs[v])


def _concat_axis(node) -> int | None:
    """A concat's axis counted from the front (None when unknown)."""
    axis = node.attrs.get("axis")
    rank = node.outputs[0].rank if node.outputs else None
    if not isinstance(axis, int) or not isinstance(rank, int) or rank == 0:
        return None
    return axis % rank


def merge_terms(f: Flow, m: int) -> list[tuple[int, int]] | None:
    """The (producer, output) terms of the sum or concat rooted at ``m``, partial merges expanded
    (see :func:`inner_merge`), in order; None when ``m`` merges no partial merge."""
    roles = f.roles
    role = roles[m]
    for p in f.preds[m]:
        if roles[p] == role and inner_merge(f, p) == m:
            break
    else:
        return None
    terms: list[tuple[int, int]] = []
    todo = list(reversed(f.slots[m]))
    while todo:
        p, out = todo.pop()
        if roles[p] == role and inner_merge(f, p) is not None:
            todo.extend(reversed(f.slots[p]))
        else:
            terms.append((p, out))
    return terms


#: a sum or concat of at least this many inputs, each through a learned layer of its own, merges levels
LEVELS = 3
#: non-learned steps followed back from an input in search of its own learned layer
OWN_LAYER_STEPS = 64


def computed_levels(f: Flow, m: int, producers: Sequence[int]) -> int:
    """How many inputs the sum or concat ``m`` reading ``producers`` merges where at least :data:`LEVELS`
    do and each went through a learned layer of its own (a segmentation head concatenating every pyramid
    level after its own projection: every input computes); 0 otherwise. An input reused elsewhere, or one
    reaching another merge before a layer, has no layer of its own. The answer reads the merge and what
    leads to it, never what follows it (a FractalNet join is one whether another block or the model's
    output reads it); a U-Net decoder node (:func:`_decoder_node`) is none: UNet 3+'s decoder nodes read
    computed levels too, and their links are long skips."""
    if len(producers) < LEVELS:
        return 0
    uses, preds, parametric = f.uses, f.preds, f.parametric
    for v in producers:
        for _ in range(OWN_LAYER_STEPS):
            if v == SOURCE or uses[v] != 1:
                return 0
            if parametric[v]:
                break
            if len(preds[v]) != 1:
                return 0
            v = preds[v][0]
        else:
            return 0
    return 0 if _decoder_node(f, producers) else len(producers)


def _decoder_node(f: Flow, producers: Sequence[int]) -> bool:
    """Whether a merge of ``producers`` is a U-Net decoder node (UNet 3+'s full-scale concat): one input
    is an encoder feature never upsampled, another comes up from a decoder merge (a merge after an
    upsampling); or, at the deepest decoder node, which reads no decoder merge yet, the levels come to it
    from both sides, one pooled down from a finer level, another upsampled from a coarser one. A head
    merging pyramid levels has no such inputs: they are all encoder levels (SegFormer's), all brought up
    to one resolution, or all upsampled or decoder levels (a head over FPN's outputs)."""
    last_up = f.last_upsample
    if not any(last_up[v] == SOURCE for v in producers):
        return False
    if any(_from_decoder_merge(f, v) for v in producers if last_up[v] != SOURCE):
        return True
    moves = {_resolution_move(f, v) for v in producers}
    return -1 in moves and 1 in moves


def _resolution_move(f: Flow, v: int) -> int:
    """How the spatial size changes along the chain of one input and one use each that ends at ``v``,
    from the value it leaves (a fork, or a merge), that value's own node included (a pooling the encoder
    shares with the link, as the TorchScript exporter merges two ``max_pool2d(e1)``): -1 smaller (pooled
    down), 1 larger (upsampled), 0 the same or not known (no spatial shapes)."""
    end = _spatial(f, v)
    uses, preds = f.uses, f.preds
    for _ in range(OWN_LAYER_STEPS):
        if v == SOURCE or len(preds[v]) != 1:
            break
        v = preds[v][0]
        if v == SOURCE or uses[v] != 1:
            break
    start = _spatial(f, v)
    if start is not None and end is not None and same_shape(start, end) and len(preds[v]) == 1:
        start = _spatial(f, preds[v][0])  # (the fork's own step: its input's size)
    if end is None or start is None or len(end) != len(start):
        return 0
    return -1 if _finer(start, end) else 1 if _finer(end, start) else 0


def _spatial(f: Flow, v: int) -> tuple[Dim, ...] | None:
    """The spatial dims (after batch and channels) of ``v``'s output (ints, or symbolic sizes that
    :func:`_finer` orders by their probe values); None for rank-3 tensors, which may be (N, L, E) tokens,
    where a linear layer changes the last dim."""
    shape = f.nodes[v].outputs[0].shape if v != SOURCE and f.nodes[v].outputs else None
    if shape is None or len(shape) < 4:
        return None
    return tuple(shape[2:])


def _from_decoder_merge(f: Flow, v: int) -> bool:
    """Whether the one-input chain ``v`` hangs from is a merge that comes after an upsampling."""
    preds = f.preds
    for _ in range(OWN_LAYER_STEPS):
        if v == SOURCE or len(preds[v]) != 1:
            break
        v = preds[v][0]
    return v != SOURCE and len(preds[v]) >= 2 and f.last_upsample[v] != SOURCE


#: nodes :func:`upsamples_only` walks back from a main input before it gives up (and answers no)
ONE_WAY_LIMIT = 256


def upsamples_only(f: Flow, fork: int, main: int) -> bool:
    """Whether the main path is one block that only raises the resolution: ``fork`` dominates ``main`` (the
    path computes from the fork alone), ``main`` is finer than ``fork`` and no value on a route between them
    (walked back from ``main``) is coarser than ``fork``'s. A decoder's residual block that upsamples
    (``conv(up(x)) + proj(up(x))``, ENet's upsampling bottleneck) then holds half of no encoder -> decoder
    round trip, as ResNet's stride-2 block holds none. A link from a coarser level to a finer decoder node
    (UNet 3+'s) passes decoder nodes that merge other levels, which the fork does not dominate: a round trip's
    link still. False where the spatial shapes are unknown or the walk grows past :data:`ONE_WAY_LIMIT` nodes."""
    if not f.dominates(fork, main):
        return False
    start, end = _spatial(f, fork), _spatial(f, main)
    if start is None or end is None or len(start) != len(end) or not _finer(end, start):
        return False
    seen, todo = {main}, [main]
    while todo:
        v = todo.pop()
        here = _spatial(f, v)
        if here is not None and len(here) == len(start) and _finer(start, here):
            return False  # (a value coarser than the fork's: the path went down before it came up)
        for p in f.preds[v]:
            if p > fork and p not in seen:  # (ids are topological; the fork dominates: those after it are between)
                if len(seen) >= ONE_WAY_LIMIT:
                    return False
                seen.add(p)
                todo.append(p)
    return True


def _finer(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> bool:
    """Whether spatial dims ``a`` are finer than ``b``: none smaller, one larger (symbolic sizes compared
    at the probe sizes, :func:`archc.ir.dims.compare`; unrelated symbols are no answer: not finer)."""
    if a == b:
        return False
    if all(type(x) is int for x in (*a, *b)):
        return all(x >= y for x, y in zip(a, b))
    orders = [dims.compare(x, y) for x, y in zip(a, b)]
    return None not in orders and min(orders) >= 0 and max(orders) > 0


#: nodes :func:`parallel_streams` walks between a fork and a join before it gives up (and answers no), as
#: the skip analysis's region walks (:data:`archc.analysis.skips.REGION_LIMIT`)
STREAM_LIMIT = 4096


def parallel_streams(f: Flow, m: int, fork: int, shortcut: int, main: int) -> bool:
    """Whether the join ``m`` meets two streams that each go on past it: a value computed after ``fork`` on
    the way to the shortcut's input ``shortcut`` and one on the way to the main input ``main`` are both read
    outside the span from ``fork`` to ``m`` (HRNet's parallel resolutions: each branch's output feeds every
    fusion unit, its own resolution's and, resampled, the others'). A long skip's shortcut waits while
    the main path makes its detour and comes back: neither side feeds anything else on the way (an
    hourglass level, a U-Net link). False where a walk grows past :data:`STREAM_LIMIT` nodes."""
    span = f.region(fork, f.preds[m], STREAM_LIMIT)
    if not span:
        return False
    inside = set(span)
    inside.add(m)
    return _goes_on(f, fork, shortcut, inside) and _goes_on(f, fork, main, inside)


def _goes_on(f: Flow, fork: int, end: int, inside: set[int]) -> bool:
    """Whether a value computed after ``fork`` on the way to ``end`` (``end`` included) is read outside
    ``inside``: by a node there is not, or as an output of the model."""
    side = f.region(fork, [end], STREAM_LIMIT)
    uses, succs = f.uses, f.succs
    # (a use that is no consumer is a graph output)
    return bool(side) and any(uses[v] > len(succs[v]) or any(c not in inside for c in succs[v]) for v in side)


def unpooled_value(f: Flow, u: int) -> int | None:
    """For a max unpooling, the value it places: its one input that is no integer tensor; None for any
    other node. Its indices say where each value goes, not what it is, so a shortcut through it carries
    that value (ENet's upsampling bottleneck, ``unpool(conv(y), indices) + F(y)``, leaves from ``y``, not
    from the pooling the indices come from; their own link is a long skip of its own)."""
    if f.roles[u] != Role.UNPOOL:
        return None
    data = {p for p, out in f.slots[u] if not f.is_int_value(p, out)}
    return data.pop() if len(data) == 1 else None


#: roles whose output keeps its (first) input's layout: the features stay on the same axis
LAYOUT_KEEPING = SHAPE_KEEPING | {Role.POOL, Role.UPSAMPLE, Role.MERGE_ADD, Role.MERGE_MUL, Role.MERGE_SUB}
#: steps followed back from a value in search of the layer that says where its features are
LAYOUT_STEPS = 16


def feature_axis(f: Flow, v: int) -> int | None:
    """The axis of ``v``'s output that holds features, counted from the front: the ``feature_axis`` of the
    nearest op back from ``v`` that declares one (:attr:`~archc.ops.base.OpDef.feature_axis`), searched
    breadth-first through ops that keep their input's layout (every input of a sum has the sum's
    layout; a slice, a split: :attr:`~archc.ops.base.OpDef.keeps_layout`) and reshapes that only insert or
    drop dims of size 1 (an Unsqueeze before a stack of time
    steps: the axis moves with them); None where only other rearrangements (a transpose, a merge of
    dims), ops that do not say or changes of rank are found within :data:`LAYOUT_STEPS` nodes."""
    rank = f.nodes[v].outputs[0].rank if v != SOURCE and f.nodes[v].outputs else None
    if not isinstance(rank, int) or rank == 0:
        return None
    nodes, roles, preds = f.nodes, f.roles, f.preds
    # (each entry: a node, and where each axis of its output lies in v's output)
    todo, seen = deque([(v, tuple(range(rank)))]), {v}
    while todo and len(seen) <= LAYOUT_STEPS:
        v, axes = todo.popleft()
        node = nodes[v]
        if v == SOURCE or not node.outputs or node.outputs[0].rank != len(axes):
            continue
        op = registry.get(node.op)
        axis = op.feature_axis if op is not None else None
        if axis is not None:
            return axes[axis % len(axes)]
        moved = _unit_dims_moved(f, v) if roles[v] == Role.RESHAPE else None
        if roles[v] not in LAYOUT_KEEPING and not (op is not None and op.keeps_layout) and moved is None:
            continue
        for p in preds[v]:
            if p not in seen:
                seen.add(p)
                todo.append((p, axes if moved is None else tuple(axes[k] for k in moved)))
    return None


def _unit_dims_moved(f: Flow, v: int) -> tuple[int, ...] | None:
    """For a reshape whose output is its input with dims of size 1 inserted or dropped, where each of
    the input's other dims lands in the output; None for any other reshape."""
    if len(f.slots[v]) != 1:
        return None
    (p, out), = f.slots[v]
    source, target = f.value_type(p, out).shape, f.nodes[v].outputs[0].shape
    placed, k = [], 0
    for dim in source:
        while k < len(target) and target[k] != dim and target[k] == 1:
            k += 1  # (an inserted unit dim)
        if k < len(target) and target[k] == dim:
            placed.append(k)
            k += 1
        elif dim == 1:
            placed.append(None)  # (a dropped unit dim: no feature axis is one of these)
        else:
            return None
    if any(d != 1 for i, d in enumerate(target) if i not in placed):
        return None
    return tuple(0 if k is None else k for k in placed)


def concat_of_positions(f: Flow, m: int, producers: Sequence[int], known: dict[int, int | None]) -> bool:
    """Whether concat ``m`` joins its inputs along an axis other than the one their features are on (a
    class token prepended to the patch tokens, a memory of earlier tokens): it appends positions, it
    does not reuse features. False where the axis or any input's feature axis is unknown. ``known``:
    the feature axes found so far, by node (a DenseNet block's features are read by many concats)."""
    axis = _concat_axis(f.nodes[m])
    if axis is None:
        return False
    for p in producers:
        if p not in known:
            known[p] = feature_axis(f, p)
        if known[p] is None or known[p] == axis:
            return False
    return True


def elementwise(f: Flow, m: int) -> bool:
    """Whether the join's output has the broadcast shape of its inputs (a matmul contracts instead,
    even where its shapes happen to agree: a window of 16 tokens, heads of 16 channels)."""
    if f.roles[m] == Role.MATMUL:
        return False
    shapes = [f.value_type(p, o).shape for p, o in f.slots[m]]
    try:
        return f.nodes[m].outputs[0].shape == broadcast(shapes)
    except ShapeError:
        return False



def scaled_by_gate(f: Flow, m: int) -> bool:
    """Whether every use of ``m``'s output is a product that scales it by a gate (a sigmoid-derived factor):
    the difference ``H - x`` of a gate's interpolation ``x + T·(H − x)`` (Highway's carry form, a decomposed
    ``lerp``), a term of the gating the add after it is (:func:`gated`), not a residual of its own."""
    succs = f.succs[m]
    return bool(succs) and all(f.gated_factor(c) == m for c in succs)


def gated(f: Flow, m: int, fork: int) -> bool:
    """Whether the add is Highway's gating of ``fork`` against a transform: a product near the add
    takes one factor from a ``gate`` (sigmoid) and the other from the fork and a transform through
    element-wise ops (x + T·(H − x)), or the fork itself while another gated product brings the
    transform (H·T + x·(1 − T)). A carry scaled by a gate beside an ungated transform (BiSeNet's
    ``x·att(x) + F(x)``, an attention on the shortcut) is no Highway."""
    carried = False
    gated_products = 0
    for g in closure(f, f.preds[m], ARITH, stop=fork):
        if f.roles[g] != Role.MERGE_MUL:
            continue
        factors = f.preds[g]
        gates = [a for a in factors if f.from_gate(a)]
        if not gates:
            continue
        gated_products += 1
        for b in factors:
            if b in gates:
                continue
            if b == fork:
                carried = True
            elif fork in closure(f, [b], ARITH, stop=fork):
                return True
    return carried and gated_products >= 2



def feeds_gate(f: Flow, m: int, steps: int = 8) -> bool:
    """Whether the join's value goes only into a gate that scales something: single-use, single-input
    nodes lead to a sigmoid whose value a product reads (through resampling or reshaping). A sigmoid
    that ends the model (a segmentation map's probabilities) gates nothing."""
    v = m
    for _ in range(steps):
        if f.uses[v] != 1 or len(f.succs[v]) != 1:
            return False
        v = f.succs[v][0]
        if f.roles[v] == Role.GATE:
            return _scales(f, v, steps)
        if len(f.preds[v]) != 1:
            return False
    return False


def _scales(f: Flow, gate: int, steps: int) -> bool:
    """Whether ``gate``'s value reaches a product through single-input nodes."""
    todo = list(f.succs[gate])
    for _ in range(steps):
        if not todo:
            return False
        v = todo.pop()
        if f.roles[v] == Role.MERGE_MUL:
            return True
        if len(f.preds[v]) == 1:
            todo.extend(f.succs[v])
    return False



def mixing(f: Flow, fork: int, main: int) -> bool:
    """Whether a window pooling that keeps its input's shape (a token mixer) lies between fork and main."""
    region = f.region(fork, [main], MIXER_LIMIT) or []
    for r in region:
        if f.roles[r] == Role.POOL and f.slots[r] and \
                same_shape(f.value_type(*f.slots[r][0]).shape, f.nodes[r].outputs[0].shape):
            return True
    return False



def closure(f: Flow, starts: Sequence[int], roles: frozenset, stop: int, limit: int = 16) -> set[int]:
    """Nodes reached backwards from ``starts`` through ``roles`` (the stop node included, not passed)."""
    seen: set[int] = set()
    todo = list(starts)
    while todo and len(seen) < limit:
        v = todo.pop()
        if v in seen or v == SOURCE:
            continue
        seen.add(v)
        if v != stop and f.roles[v] in roles:
            todo.extend(f.preds[v])
    return seen

