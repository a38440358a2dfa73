"""The data-flow view the skip and path analyses work on.

:class:`Flow` turns a :class:`~archc.ir.Graph` into integer ids in topological
order (so ``a < b`` whenever ``a`` comes before ``b``), with each node's op role,
its *data* producers and consumers, dominators and a few longest-path depths. It
owns the structural facts; :mod:`archc.analysis.skips` owns what they mean.

Data versus meta. Exporters compute shapes at run time (``Shape -> Gather ->
Concat -> Reshape``) and models add constants (biases, positional tables). Such
values do not carry features, so they are *meta*: a node is meta when its role is
``shape`` or ``const``, when it has no inputs and is not a graph input, when all its
inputs are meta, or when it returns an integer vector no longer than its input's
rank (what a ``Shape`` op returns, for ops registered without the ``shape`` role).
Edges from meta nodes are dropped, so adding a constant is not a merge and shape
arithmetic never forms a fork; a merge op left with one data input takes the role it has
beside a constant (:data:`~archc.ir.vocab.WITH_CONSTANT`: ``cat(x, zeros)`` rearranges x,
whether the exporter folded the zeros into a constant or builds them from ``x.shape`` at
run time, as a dynamic batch makes it). So are the inputs an op reads for their shape only
(:attr:`~archc.ops.base.OpDef.shape_only_inputs`: a decoder's resize to a skip's size).

Dominators are computed here rather than with ``networkx.immediate_dominators``:
the graph is a DAG given in topological order, so one pass intersecting the
predecessors' dominator-tree paths (Cooper, Harvey & Kennedy's algorithm, which
needs only that pass on a DAG) gives the same tree about five times faster on
100k-node graphs; ``tests/test_analysis_structure.py`` checks it against networkx.
The virtual source (id ``SOURCE`` = -1) precedes every graph input.
"""
from __future__ import annotations

import operator
from collections import deque
from typing import Callable, Iterable, Mapping

from archc.ir import Graph, Node, Value, dims
from archc.ir.vocab import WITH_CONSTANT
from archc.ops import registry
from archc.ops.base import OpDef

SOURCE = -1
#: roles of ops with learned weights that transform features (what "a layer" means in spans and paths)
PARAMETRIC = frozenset({"layer"})
#: roles that carry a value on without computing from it
TRANSPARENT = frozenset({"identity", "reshape"})
#: roles that raise spatial resolution
UPSAMPLING = frozenset({"upsample", "unpool"})
META_ROLES = frozenset({"shape", "const"})
#: roles between a gate and its use: its complement 1 - T, a scaling
GATE_PATH = frozenset({"scale", "affine", "identity", "reshape", "merge_sub"})
#: roles whose ops may raise resolution (by role, or a transposed conv / unknown op by shapes)
_MAY_UPSAMPLE = UPSAMPLING | {"layer", "other"}
#: dtype prefixes of integer (and boolean) tensors: indices, shapes, masks
_INT_DTYPES = ("int", "uint", "bool")
#: dtypes known not to be integers (a set lookup, before the prefix test, for most nodes)
_FLOAT_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16"})
_UNKNOWN = OpDef()  # ops not registered (e.g. a plugin missing): role 'other'
_FIRST = operator.itemgetter(0)
#: edges the region walks of one analysis may scan in all, at least, and per node of the graph. Each
#: walk is bounded by its own limit, but a dense join (node i reading every node before it) makes
#: O(n^2) pairs of O(n^2)-edge regions; past the budget a walk answers "too large" (None), and the
#: callers fall back to depths from the inputs, as they do for one large region.
WALK_BUDGET_MIN = 4_000_000
WALK_BUDGET_PER_NODE = 64
#: steps up the dominator tree :meth:`Flow.dominates` takes before it numbers the tree instead
_WALK_STEPS = 16


class _Unordered(Exception):
    """The graph's insertion order is not topological."""


class Flow:
    """Data-flow DAG of a graph: ids in topological order, roles, producers, consumers, dominators."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        #: every node of the graph (data and meta) by name, in insertion order
        self.graph_nodes: Mapping[str, Node] = graph.node_map()
        nodes = self.graph_nodes
        try:
            # Frontends add nodes after their inputs: insertion order is usually topological.
            built = _FlowBuilder(nodes).run(nodes.items())
        except _Unordered:
            built = _FlowBuilder(nodes).run([(name, nodes[name]) for name in _topological(nodes)])
        #: node name per id; ids follow a topological order of the data nodes
        self.names: list[str] = built.names
        #: data node name -> id
        self.index: dict[str, int] = built.index()
        self.nodes: list[Node] = built.data
        self.roles: list[str] = built.roles
        #: data producers per input slot, as (producer id, output index); repeats kept (x + x)
        self.slots: list[tuple[tuple[int, int], ...]] = built.slots
        #: distinct producer ids, in slot order
        self.preds: list[tuple[int, ...]] = built.preds
        #: consumer ids per consuming slot (repeats kept)
        self.succs: list[list[int]] = built.succs
        #: for a node with one producer, the node its chain of one-producer nodes hangs from
        #: (a join or an input); any other node is its own head. Nodes of a chain share what
        #: flows into it: the dominator walks and the path counts skip along chains with it.
        self.chain_head: list[int] = built.heads
        #: like :attr:`chain_head` over nodes reading exactly one *slot* (``x * x`` reads two: it heads
        #: its own): paths flow unchanged along such nodes, so the path counts are kept at heads only
        self.slot_head: list[int] = built.slot_heads
        #: the nodes heading their own slot chains (inputs, joins, nodes reading a value twice), in id order
        self.slot_joins: list[int] = built.slot_joins
        #: the nodes joining two or more distinct producers (:meth:`is_merge`), in id order
        self.merges: list[int] = built.merges
        #: whether each node is a parametric layer (:data:`PARAMETRIC`)
        self.parametric: list[bool] = built.parametric
        #: immediate dominator of each node (SOURCE for the inputs and what only the source dominates)
        self.idom: list[int] = built.idom
        #: longest path from an input to each node, counting parametric layers / all ops
        self.depth_layers: list[int] = built.layers
        self.depth_ops: list[int] = built.ops
        #: the latest upsampling node among each node's ancestors (itself included), or SOURCE
        self.last_upsample: list[int] = built.up
        index = self.index
        #: graph outputs that read a data node, as ids (repeats kept)
        self.outputs: list[int] = [index[v.node] for v in graph.outputs.values() if v.node in index]
        #: data uses of each node: consuming slots plus graph outputs
        self.uses: list[int] = list(map(len, self.succs))
        for o in self.outputs:
            self.uses[o] += 1
        self._pred_sets: dict[int, frozenset[int]] = {}
        #: the dominator tree's preorder numbers and subtree sizes, made on the first query a short walk
        #: up the tree does not answer (see :meth:`dominates`)
        self._tin: list[int] | None = None
        self._size: list[int] = []
        #: edges the region walks may still scan (see :data:`WALK_BUDGET_MIN`)
        self.walk_budget = max(WALK_BUDGET_MIN, WALK_BUDGET_PER_NODE * len(self.names))

    # -- basic facts ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def value_type(self, producer: int, out: int = 0):
        return self.nodes[producer].outputs[out]

    def is_int_value(self, producer: int, out: int = 0) -> bool:
        return self.nodes[producer].outputs[out].dtype.startswith(_INT_DTYPES)

    def is_merge(self, i: int) -> bool:
        """Whether node ``i`` joins two or more distinct data producers."""
        return len(self.preds[i]) >= 2

    # -- dominators ----------------------------------------------------------------------
    def depths_between(self, fork: int, v: int) -> tuple[int, int]:
        """(layers, ops) by which ``v`` lies deeper than ``fork`` from the inputs, never below 0: the
        span between them where ``fork`` dominates ``v``, else an upper bound of it (O(1), no walk)."""
        return (max(0, self.depth_layers[v] - self.depth_layers[fork]),
                max(0, self.depth_ops[v] - self.depth_ops[fork]))

    def dominates(self, a: int, b: int) -> bool:
        """Whether every path from the inputs to ``b`` passes through ``a`` (a node dominates itself)."""
        if a == SOURCE:
            return True
        if b == SOURCE:
            return False
        tin = self._tin
        if tin is None:
            # Most queries ask about a fork a few steps up the tree from the node (a residual block's
            # input and its main path): walk up, and number the whole tree (a pass over every node)
            # only when a query needs more steps.
            heads, idom = self.chain_head, self.idom
            v = b
            for _ in range(_WALK_STEPS):
                if v <= a:
                    return v == a
                # (a chain's head dominates its nodes: jump to it unless ``a`` may lie on the chain)
                h = heads[v]
                v = h if h != v and h >= a else idom[v]
            self._tin, self._size = _preorder(idom)
            tin = self._tin
        return 0 <= tin[b] - tin[a] < self._size[a]

    # -- gates -------------------------------------------------------------------------
    def from_gate(self, v: int) -> bool:
        """Whether ``v`` is a gate (a sigmoid) or a scaling, complement or rearrangement of one."""
        return _from_gate(self.roles, self.preds, v)

    def gated_factor(self, i: int) -> int | None:
        """For a product ``x * T`` of two values where exactly one factor comes from a gate, the
        other factor (the value the gate scales); None for any other node."""
        return _gated_factor(self.roles, self.preds, i)

    # -- bounded searches ----------------------------------------------------------------
    def reaches(self, a: int, b: int, limit: int = 20000) -> bool | None:
        """Whether ``a`` is an ancestor of ``b`` (None if the search exceeded ``limit`` nodes)."""
        if a == b or self.dominates(a, b):
            return True
        while len(self.preds[b]) == 1:  # follow a chain without bookkeeping
            b = self.preds[b][0]
            if b <= a:
                return b == a
        seen = {b}
        todo = [b]
        while todo:
            v = todo.pop()
            preds = self.preds[v]
            if len(preds) > 8 and a in self.pred_set(v):
                return True  # wide joins (dense concats): a set lookup instead of a scan
            for p in preds:
                if p == a:
                    return True
                if p > a and p not in seen:
                    seen.add(p)
                    if len(seen) > limit:
                        return None
                    todo.append(p)
        return False

    def pred_set(self, v: int) -> frozenset[int]:
        """The distinct producers of ``v`` as a set (cached: wide joins are asked many times)."""
        got = self._pred_sets.get(v)
        if got is None:
            got = self._pred_sets[v] = frozenset(self.preds[v])
        return got

    def region(self, fork: int, targets: Iterable[int], limit: int) -> list[int] | None:
        """Nodes strictly between ``fork`` and ``targets`` (descendants of fork, ancestors of a target
        or a target itself), sorted; None when more than ``limit`` nodes would be visited, or when the
        analysis's walks have spent their budget (:data:`WALK_BUDGET_MIN`)."""
        targets = [t for t in targets if t != fork]
        if not targets:
            return []
        top = max(targets)
        # Forward: descendants of fork up to the last target; backward from the targets, within them.
        below = self._walk({fork}, self.succs, lambda c: c <= top, limit)
        if below is None:
            return None
        found = self._walk({t for t in targets if t in below}, self.preds, lambda p: p != fork and p in below)
        return sorted(found) if found is not None else None

    def _walk(self, starts: set[int], edges: list[list[int]], keep: Callable[[int], bool],
              limit: int | None = None) -> set[int] | None:
        """``starts`` and the nodes reached from them along ``edges`` (succs or preds) through nodes
        ``keep`` accepts; None when more than ``limit`` nodes would be reached, or when the analysis's
        walks spend their budget (:data:`WALK_BUDGET_MIN`: every edge looked at counts)."""
        budget = self.walk_budget
        if budget <= 0:
            return None
        found, todo = set(starts), list(starts)
        while todo:
            v = todo.pop()
            budget -= len(edges[v])
            for w in edges[v]:
                if w not in found and keep(w):
                    found.add(w)
                    if limit is not None and len(found) > limit:
                        self.walk_budget = budget
                        return None
                    todo.append(w)
            if budget < 0:
                self.walk_budget = 0
                return None
        self.walk_budget = budget
        return found

    def longest_to(self, target: int, lo: int, limit: int) -> dict[int, tuple[int, int]] | None:
        """For each ancestor ``v >= lo`` of ``target``: (parametric layers, ops) on the longest path
        from ``v`` to ``target``, counting the nodes strictly between the two (each figure its own
        longest path). Unlike the difference of the depths from the inputs, it counts only paths that
        leave ``v``: a deeper path from another input into ``target`` adds nothing. None when more than ``limit``
        nodes would be visited, or when the analysis's walks have spent their budget."""
        succs, parametric = self.succs, self.parametric
        found = self._walk({target}, self.preds, lambda p: p >= lo, limit)
        if found is None:
            return None
        # Ids are topological: each node's consumers inside the set are settled before it. ``upto``
        # counts a node itself and what follows it up to ``target`` (excluded).
        upto = {target: (0, 0)}
        out: dict[int, tuple[int, int]] = {}
        for v in sorted(found, reverse=True)[1:]:  # (the largest is ``target``)
            after = [upto[s] for s in succs[v] if s in upto]
            best = (max(a[0] for a in after), max(a[1] for a in after))
            out[v] = best
            upto[v] = (best[0] + parametric[v], best[1] + 1)
        return out

    def dominated_region(self, fork: int, targets: Iterable[int], limit: int) -> list[int] | None:
        """Like :meth:`region` when ``fork`` dominates every target: a backward walk that stays
        among nodes ``fork`` dominates. None when the region has more than ``limit`` nodes, or when
        the walks' budget is spent."""
        starts = {t for t in targets if t != fork}
        found = self._walk(starts, self.preds, lambda p: p != fork and self.dominates(fork, p), limit)
        return sorted(found) if found is not None else None


class _FlowBuilder:
    """One pass over a graph's nodes in a topological order that gives the data nodes their ids and
    every per-node fact :class:`Flow` holds. Each node's producers are placed before it, so its
    dominator and its longest-path depths follow from theirs as it is placed: no second pass.

    The lists are indexed by id. Most nodes read one value, and :meth:`run` places those inline
    (a graph of 100k nodes makes this loop the analysis's largest per-node cost)."""

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        self.nodes = nodes
        self.visited: dict[str, int] = {}   # name -> id, or -1 for a meta node
        self.count = 0                      # data nodes placed: the next id
        self.slots_diverge = False          # whether a node reads one producer in several slots
        self.names: list[str] = []          # (these three made by _finish)
        self.data: list[Node] = []
        self.slot_heads: list[int] = []
        self.slot_joins: list[int] = []
        self.merges: list[int] = []
        # One entry per node, set by id (faster than appending); _finish drops the meta nodes' room.
        size = len(nodes)
        self.roles: list[str] = [""] * size
        self.slots: list[tuple[tuple[int, int], ...]] = [()] * size
        self.preds: list[tuple[int, ...]] = [()] * size
        self.succs: list[list[int]] = [[]] * size  # (each replaced by its own list when placed)
        self.heads: list[int] = [0] * size
        self.parametric: list[bool] = [False] * size
        self.idom: list[int] = [0] * size
        self.layers: list[int] = [0] * size
        self.ops: list[int] = [0] * size
        self.up: list[int] = [0] * size
        self.roles_of = _RoleCache()

    def run(self, order: Iterable[tuple[str, Node]]) -> _FlowBuilder:
        """Place every (name, node) of ``order``; _Unordered when a node comes before a producer.
        (Names, nodes and slot heads are not kept per node here: :meth:`_finish` makes them.)"""
        visited, nodes, fixed_roles, role_of = self.visited, self.nodes, self.roles_of.fixed, self.roles_of.role_of
        roles, slots, preds, succs, heads = self.roles, self.slots, self.preds, self.succs, self.heads
        parametric, idom, layers, ops, up = self.parametric, self.idom, self.layers, self.ops, self.up
        i = self.count
        for name, node in order:
            role = fixed_roles.get(node.op) or role_of(node)
            inputs = node.inputs
            if role == "input" or len(inputs) != 1:
                self.count = i
                self._place_other(name, node, role)
                i = self.count
                continue
            v = inputs[0]
            j = visited.get(v.node)
            if j is None:
                raise _Unordered()
            # A node reading no data producer (constants, shapes) is meta. (Only an integer output
            # may be a shape vector: test the dtype here, before a call per node.)
            outs = node.outputs
            if j < 0 or role in META_ROLES or (len(outs) == 1 and outs[0].dtype not in _FLOAT_DTYPES and
                                               outs[0].dtype.startswith(_INT_DTYPES) and _is_shape_vector(node, nodes)):
                visited[name] = -1
                continue
            # A node reading one value: its producer heads its chain's facts and dominates it.
            visited[name] = i
            roles[i] = role
            slots[i] = ((j, v.out),)
            preds[i] = (j,)
            succs[j].append(i)
            succs[i] = []
            heads[i] = heads[j]
            idom[i] = j
            layer = parametric[i] = role in PARAMETRIC
            layers[i] = layers[j] + layer
            ops[i] = ops[j] + 1
            if role in _MAY_UPSAMPLE:
                # (a layer keeping its input's shape, the common case, raises nothing: no call)
                src = nodes[v.node].outputs[v.out].shape
                up[i] = i if (role in UPSAMPLING or not outs or src != outs[0].shape) and _upsamples(role, src, node) \
                    else up[j]
            else:
                up[i] = up[j]
            i += 1
        self.count = i
        return self._finish()

    def _finish(self) -> _FlowBuilder:
        """The per-id lists :meth:`run` leaves out: names and nodes (from the names seen, in id order),
        and the slot heads (the chain heads unless a node reads one producer in several slots)."""
        visited, nodes, count = self.visited, self.nodes, self.count
        if count < len(nodes):
            for facts in (self.roles, self.slots, self.preds, self.succs, self.heads, self.parametric, self.idom,
                          self.layers, self.ops, self.up):
                del facts[count:]
        names = list(visited) if len(visited) == count else [n for n, i in visited.items() if i >= 0]
        self.names = names
        # (every node a data node, placed in insertion order: the nodes are the mapping's values)
        in_order = count == len(nodes) and names == list(nodes)
        self.data = list(nodes.values()) if in_order else list(map(nodes.__getitem__, names))
        if not self.slots_diverge:
            self.slot_heads = self.heads
        else:
            slot_heads = self.slot_heads = []
            for i, s in enumerate(self.slots):
                slot_heads.append(slot_heads[s[0][0]] if len(s) == 1 else i)
        return self

    def _place_other(self, name: str, node: Node, role: str) -> None:
        """Place a graph input, or a node reading other than one value (a join, a meta node)."""
        first = None  # the first data value read
        if role == "input":
            slots: tuple[tuple[int, int], ...] = ()
        else:
            found = []
            # (a slot the op reads for its shape only, a resize's target, carries no data)
            shape_only = self.roles_of.shape_only(node.op)
            for k, v in enumerate(node.inputs):
                j = self.visited.get(v.node)
                if j is None:
                    raise _Unordered()
                if j >= 0 and k not in shape_only:
                    found.append((j, v.out))
                    if first is None:
                        first = v
            if not found or role in META_ROLES or (len(found) == 1 and _is_shape_vector(node, self.nodes)):
                self.visited[name] = -1
                return
            slots = tuple(found)
            if len(slots) == 1:
                # a merge op reading one value beside meta ones (``cat(x, zeros)`` with the zeros made from
                # x's shape at run time) is what it is beside a constant: the static export's
                role = WITH_CONSTANT.get(role, role)
        i = self.visited[name] = self.count
        self.count += 1
        ps = list(map(_FIRST, slots))
        # (distinct producers, in slot order; most joins read each producer once)
        preds = tuple(ps) if len(set(ps)) == len(ps) else tuple(dict.fromkeys(ps))
        self.roles[i] = role
        self.slots[i] = slots
        self.preds[i] = preds
        self.succs[i] = []
        for p in ps:
            self.succs[p].append(i)
        self.heads[i] = self.heads[ps[0]] if len(preds) == 1 else i
        if len(preds) >= 2:
            self.merges.append(i)
        if len(slots) != 1:
            self.slot_joins.append(i)
            if len(preds) == 1:
                self.slots_diverge = True  # (x * x: one producer, read twice, heads its own slot chain)
        self.parametric[i] = role in PARAMETRIC
        # its immediate dominator: the meeting point of its producers' dominator-tree paths
        self.idom[i] = _meeting_point(preds, self.idom, self.heads)
        self._depths(i, preds, role, first, node)

    def _depths(self, i: int, preds: tuple[int, ...], role: str, first: Value | None, node: Node) -> None:
        """Longest paths from the inputs to ``i``, in parametric layers and in ops, and its latest upsampling."""
        layers, ops, up = self.layers, self.ops, self.up
        if not preds:  # a graph input
            best_l, best_o, best_u = 0, 0, SOURCE
        elif len(preds) == 1:
            p = preds[0]
            best_l, best_o, best_u = layers[p], ops[p], up[p]
        elif role == "merge_mul" and (carried := _gated_factor(self.roles, self.preds, i)) is not None:
            # x * T(...): the gate scales x, so the product lies as deep as x (the gate's own
            # layers compute a scaling, not the features passed on: squeeze-and-excitation,
            # attention gates)
            g = preds[0] if preds[1] == carried else preds[1]
            best_l, best_o, best_u = layers[carried], max(ops[carried], ops[g]), max(up[carried], up[g])
        elif len(preds) == 2:  # (most joins: two compares instead of three calls of max)
            a, b = preds
            best_l = layers[a] if layers[a] >= layers[b] else layers[b]
            best_o = ops[a] if ops[a] >= ops[b] else ops[b]
            best_u = up[a] if up[a] >= up[b] else up[b]
        else:  # (no default= for max: a keyword argument costs each join a slower call)
            best_l = max(map(layers.__getitem__, preds))
            best_o = max(map(ops.__getitem__, preds))
            best_u = max(map(up.__getitem__, preds))
        layers[i] = best_l + (role in PARAMETRIC)
        ops[i] = best_o + (role != "input")
        if role in _MAY_UPSAMPLE and first is not None and \
                _upsamples(role, self.nodes[first.node].outputs[first.out].shape, node):
            best_u = i
        up[i] = best_u

    def index(self) -> dict[str, int]:
        """Data node name -> id (the names seen are the ids when no node was meta)."""
        visited = self.visited
        if len(visited) == len(self.names):
            return visited
        return {n: i for n, i in visited.items() if i >= 0}


def _preorder(idom: list[int]) -> tuple[list[int], list[int]]:
    """Preorder numbers and subtree sizes of the dominator tree: a dominates b iff b's number
    falls in a's subtree. Parents have smaller ids, so two linear passes suffice."""
    count = len(idom)
    size = [1] * count
    for i, d in zip(range(count - 1, -1, -1), reversed(idom)):
        if d != SOURCE:
            size[d] += size[i]
    tin = [0] * count
    free = [0] * count      # next preorder number for a child of each node
    top = 0                 # next number for a child of the virtual source
    for i, d in enumerate(idom):
        if d == SOURCE:
            t = top
            top += size[i]
        else:
            t = free[d]
            free[d] = t + size[i]
        tin[i] = t
        free[i] = t + 1
    return tin, size


def _meeting_point(preds: tuple[int, ...], idom: list[int], heads: list[int]) -> int:
    """The immediate dominator of a node reading ``preds`` (SOURCE for none)."""
    if not preds:
        return SOURCE
    d = preds[0]
    for p in preds[1:]:
        h = heads[p]
        # When d heads p's chain or dominates its head (a DenseNet layer's output seen
        # from its block's input), d dominates p and stays the meeting point.
        if h != d and idom[h] != d:
            d = _intersect(d, p, idom, heads)
    return d


def _intersect(a: int, b: int, idom: list[int], heads: list[int]) -> int:
    """The nearest common dominator of ``a`` and ``b`` (Cooper, Harvey & Kennedy): ids are
    topological, so a dominator's id is smaller than its nodes'; the larger of the two cannot
    dominate the other and moves up until they meet.

    A chain node may jump straight to its chain's head (every node between dominates the next)
    when the head's id is no smaller than the other side's: the nodes skipped have larger ids
    than the meeting point (which dominates the other side, so its id is at most that side's).
    DenseNet joins meet every earlier layer's output, each at the end of a chain.
    """
    while a != b:
        if a > b:
            h = heads[a]
            a = h if h != a and h >= b else idom[a]
        else:
            h = heads[b]
            b = h if h != b and h >= a else idom[b]
    return a


def _from_gate(roles: list[str], preds: list[tuple[int, ...]], v: int) -> bool:
    """:meth:`Flow.from_gate` on the lists (the builder asks before the Flow exists)."""
    for _ in range(6):
        if roles[v] == "gate":
            return True
        if roles[v] not in GATE_PATH or len(preds[v]) != 1:
            return False
        v = preds[v][0]
    return False


def _gated_factor(roles: list[str], preds: list[tuple[int, ...]], i: int) -> int | None:
    """:meth:`Flow.gated_factor` on the lists."""
    ps = preds[i]
    if len(ps) != 2 or roles[i] != "merge_mul":
        return None
    a, b = _from_gate(roles, preds, ps[0]), _from_gate(roles, preds, ps[1])
    if a == b:
        return None
    return ps[1] if a else ps[0]


def _upsamples(role: str, src: tuple, node: Node) -> bool:
    """Whether ``node`` (of ``role``, reading first a value of shape ``src``) raises spatial
    resolution (a decoder step), judged by role and shapes.

    Broadcasting a 1x1 map back up (ASPP's image pooling) is global context, not a
    decoder step. Shapes count only for rank >= 4 tensors with every spatial dim
    growing, on ops that compute (a transposed conv): rank-3 tensors may be (N, L, E)
    tokens, where a linear layer widening E would look like upsampling.
    """
    dst = node.outputs[0].shape if node.outputs else ()
    src_sp, dst_sp = src[2:], dst[2:]
    if role in UPSAMPLING:
        return not (src_sp and all(d == 1 for d in src_sp))
    if len(dst) < 4 or len(src) != len(dst) or src_sp == dst_sp:
        return False  # (equal spatial dims, the common case, need no closer look)
    if not all(isinstance(d, int) for d in (*src_sp, *dst_sp)):  # (symbolic sizes: ordered at the probe sizes)
        return all(dims.compare(b, a) == 1 for a, b in zip(src_sp, dst_sp)) and not all(a == 1 for a in src_sp)
    return all(b > a for a, b in zip(src_sp, dst_sp)) and not all(a == 1 for a in src_sp)


class _RoleCache:
    """Each node's op role, looking each op up once. Most ops have one role for all their nodes:
    those land in ``fixed`` (op name -> role), which callers read directly before calling
    :meth:`role_of`; only ops overriding :meth:`OpDef.role_of` (imported ONNX nodes) are asked per node."""

    def __init__(self) -> None:
        self.fixed: dict[str, str] = {}
        self._opdefs: dict[str, OpDef] = {}  # op name -> definition, for ops whose role varies
        self._shape_only: dict[str, frozenset[int]] = {}

    def shape_only(self, op: str) -> frozenset[int]:
        """The input slots op ``op`` reads for their shape only (:attr:`OpDef.shape_only_inputs`)."""
        slots = self._shape_only.get(op)
        if slots is None:
            slots = self._shape_only[op] = (registry.get(op) or _UNKNOWN).shape_only_inputs
        return slots

    def role_of(self, node: Node) -> str:
        role = self.fixed.get(node.op)
        if role is not None:
            return role
        op = self._opdefs.get(node.op)
        if op is None:
            op = registry.get(node.op) or _UNKNOWN
            if type(op).role_of is OpDef.role_of:
                role = self.fixed[node.op] = op.role
                return role
            self._opdefs[node.op] = op
        return op.role_of(node)


def _topological(nodes: dict[str, Node]) -> list[str]:
    """Node names in a topological order (Kahn's algorithm, ties in insertion order)."""
    consumers: dict[str, list[str]] = {n: [] for n in nodes}
    pending: dict[str, int] = {}
    for name, node in nodes.items():
        pending[name] = len(node.inputs)
        for v in node.inputs:
            consumers[v.node].append(name)
    ready = deque(n for n, k in pending.items() if k == 0)
    order: list[str] = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for c in consumers[n]:
            pending[c] -= 1
            if pending[c] == 0:
                ready.append(c)
    if len(order) != len(nodes):
        stuck = sorted(n for n, k in pending.items() if k > 0)[:5]
        raise ValueError("graph has a cycle through " + ", ".join(stuck))
    return order


def _is_shape_vector(node: Node, nodes: dict[str, Node]) -> bool:
    """An integer vector no longer than its (non-integer) input's rank: what ``Shape`` returns."""
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        return False
    out = node.outputs[0]
    if out.rank != 1:
        return False
    src = nodes[node.inputs[0].node].outputs[node.inputs[0].out]
    return (out.rank == 1 and out.dtype.startswith(_INT_DTYPES) and not src.dtype.startswith(_INT_DTYPES)
            and isinstance(out.shape[0], int) and out.shape[0] <= src.rank)
