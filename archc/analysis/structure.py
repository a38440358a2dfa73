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
arithmetic never forms a fork.

Dominators are computed here rather than with ``networkx.immediate_dominators``:
the graph is a DAG given in topological order, so one pass intersecting the
predecessors' dominator-tree paths (Cooper, Harvey & Kennedy's algorithm, which
needs only that pass on a DAG) gives the same tree about five times faster on
100k-node graphs; ``tests/test_analysis_structure.py`` checks it against networkx.
The virtual source (id ``SOURCE`` = -1) precedes every graph input.
"""
from __future__ import annotations

from collections import deque
from typing import Iterable

from archc.ir import Graph, Node
from archc.ops import registry

SOURCE = -1
#: roles of ops with learned weights that transform features (what "a layer" means in spans and paths)
PARAMETRIC = frozenset({"layer"})
#: roles whose nodes join tensors; other multi-input ops (attention, matmul) are joins too, but no skip
MERGE_ROLES = frozenset({"merge_add", "merge_concat", "merge_mul", "merge_sub"})
#: roles that carry a value on without computing from it
TRANSPARENT = frozenset({"identity", "reshape"})
#: roles that raise spatial resolution
UPSAMPLING = frozenset({"upsample", "unpool"})
META_ROLES = frozenset({"shape", "const"})
_INT_DTYPES = ("int", "uint", "bool")


class Flow:
    """Data-flow DAG of a graph: ids in topological order, roles, producers, consumers, dominators."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        order, nodes, roles = _topological(graph)
        meta = _meta_flags(order, nodes, roles)

        self.names: list[str] = [n for n in order if not meta[n]]
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        index = self.index
        self.nodes: list[Node] = [nodes[n] for n in self.names]
        self.roles: list[str] = [roles[n] for n in self.names]
        count = len(self.names)
        #: data producers per input slot, as (producer id, output index); repeats kept (x + x)
        self.slots: list[tuple[tuple[int, int], ...]] = []
        #: distinct producer ids, in slot order
        self.preds: list[tuple[int, ...]] = []
        #: consumer ids per consuming slot (repeats kept)
        self.succs: list[list[int]] = [[] for _ in range(count)]
        for i, node in enumerate(self.nodes):
            slots = tuple((index[v.node], v.out) for v in node.inputs if v.node in index)
            self.slots.append(slots)
            self.preds.append(tuple(dict.fromkeys(p for p, _ in slots)))
            for p, _ in slots:
                self.succs[p].append(i)
        #: graph outputs that read a data node, as ids (repeats kept)
        self.outputs: list[int] = [index[v.node] for v in graph.outputs.values() if v.node in index]
        #: data uses of each node: consuming slots plus graph outputs
        self.uses: list[int] = [len(s) for s in self.succs]
        for o in self.outputs:
            self.uses[o] += 1
        self.parametric: list[bool] = [r in PARAMETRIC for r in self.roles]
        self._dominators()
        self._depths()

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
    def _dominators(self) -> None:
        count = len(self.names)
        idom = [SOURCE] * count
        depth = [1] * count
        for i in range(count):
            preds = self.preds[i]
            if not preds:
                continue
            d = preds[0]
            for p in preds[1:]:
                d = self._intersect(d, p, idom, depth)
            idom[i] = d
            depth[i] = (depth[d] if d != SOURCE else 0) + 1
        self.idom = idom
        self.dom_depth = depth
        # Pre/post numbering of the dominator tree: a dominates b iff b's interval nests in a's.
        children: list[list[int]] = [[] for _ in range(count)]
        roots: list[int] = []
        for i, d in enumerate(idom):
            (roots if d == SOURCE else children[d]).append(i)
        tin = [0] * count
        tout = [0] * count
        clock = 0
        stack: list[tuple[int, int]] = [(r, 0) for r in reversed(roots)]
        while stack:
            v, state = stack.pop()
            if state == 0:
                tin[v] = clock
                clock += 1
                stack.append((v, 1))
                stack.extend((c, 0) for c in reversed(children[v]))
            else:
                tout[v] = clock
                clock += 1
        self._tin, self._tout = tin, tout

    @staticmethod
    def _intersect(a: int, b: int, idom: list[int], depth: list[int]) -> int:
        while a != b:
            da = depth[a] if a != SOURCE else 0
            db = depth[b] if b != SOURCE else 0
            if da >= db:
                a = idom[a]
            if db >= da:
                b = idom[b]
        return a

    def dominates(self, a: int, b: int) -> bool:
        """Whether every path from the inputs to ``b`` passes through ``a`` (a node dominates itself)."""
        if a == SOURCE:
            return True
        if b == SOURCE:
            return False
        return self._tin[a] <= self._tin[b] and self._tout[b] <= self._tout[a]

    # -- depths --------------------------------------------------------------------------
    def _depths(self) -> None:
        """Longest paths from the inputs, in parametric layers and in ops, and the latest upsampling."""
        count = len(self.names)
        layers = [0] * count
        ops = [0] * count
        up = [SOURCE] * count
        for i in range(count):
            best_l = best_o = 0
            best_u = SOURCE
            for p in self.preds[i]:
                if layers[p] > best_l:
                    best_l = layers[p]
                if ops[p] > best_o:
                    best_o = ops[p]
                if up[p] > best_u:
                    best_u = up[p]
            if self.parametric[i]:
                best_l += 1
            if self.roles[i] != "input":
                best_o += 1
            if self._upsamples(i):
                best_u = i
            layers[i], ops[i], up[i] = best_l, best_o, best_u
        #: longest path from an input to each node, counting parametric layers / all ops
        self.depth_layers = layers
        self.depth_ops = ops
        #: the latest upsampling node among each node's ancestors (itself included), or SOURCE
        self.last_upsample = up

    def _upsamples(self, i: int) -> bool:
        """Whether node i raises spatial resolution (a decoder step), judged by role and shapes.

        Broadcasting a 1x1 map back up (ASPP's image pooling) is global context, not a
        decoder step. Shapes count only for rank >= 4 tensors with every spatial dim
        growing, on ops that compute (a transposed conv): rank-3 tensors may be (N, L, E)
        tokens, where a linear layer widening E would look like upsampling.
        """
        role = self.roles[i]
        if role == "reshape" or not self.slots[i]:
            return False
        src = self.value_type(*self.slots[i][0]).shape
        dst = self.nodes[i].outputs[0].shape if self.nodes[i].outputs else ()
        src_sp, dst_sp = src[2:], dst[2:]
        if role in UPSAMPLING:
            return not (src_sp and all(d == 1 for d in src_sp))
        if len(dst) < 4 or len(src) != len(dst):
            return False
        if not all(isinstance(d, int) for d in (*src_sp, *dst_sp)):
            return False
        return all(b > a for a, b in zip(src_sp, dst_sp)) and not all(a == 1 for a in src_sp)

    # -- bounded searches ----------------------------------------------------------------
    def reaches(self, a: int, b: int, limit: int = 20000) -> bool | None:
        """Whether ``a`` is an ancestor of ``b`` (None if the search exceeded ``limit`` nodes)."""
        if a == b or self.dominates(a, b):
            return True
        seen = {b}
        todo = [b]
        while todo:
            v = todo.pop()
            for p in self.preds[v]:
                if p == a:
                    return True
                if p > a and p not in seen:
                    seen.add(p)
                    if len(seen) > limit:
                        return None
                    todo.append(p)
        return False

    def region(self, fork: int, targets: Iterable[int], limit: int) -> list[int] | None:
        """Nodes strictly between ``fork`` and ``targets`` (descendants of fork, ancestors of a target
        or a target itself), sorted; None when more than ``limit`` nodes would be visited."""
        targets = [t for t in targets if t != fork]
        if not targets:
            return []
        top = max(targets)
        # Forward: descendants of fork up to the last target.
        below = {fork}
        todo = [fork]
        while todo:
            v = todo.pop()
            for c in self.succs[v]:
                if c <= top and c not in below:
                    below.add(c)
                    if len(below) > limit:
                        return None
                    todo.append(c)
        # Backward from the targets, within the descendants.
        found: set[int] = set()
        todo = [t for t in targets if t in below]
        found.update(todo)
        while todo:
            v = todo.pop()
            for p in self.preds[v]:
                if p != fork and p in below and p not in found:
                    found.add(p)
                    todo.append(p)
        return sorted(found)

    def dominated_region(self, fork: int, targets: Iterable[int], limit: int) -> list[int] | None:
        """Like :meth:`region` when ``fork`` dominates every target: a backward walk that stays
        among nodes ``fork`` dominates. None when the region has more than ``limit`` nodes."""
        found: set[int] = set()
        todo = []
        for t in targets:
            if t != fork and t not in found:
                found.add(t)
                todo.append(t)
        while todo:
            v = todo.pop()
            for p in self.preds[v]:
                if p != fork and p not in found and self.dominates(fork, p):
                    found.add(p)
                    if len(found) > limit:
                        return None
                    todo.append(p)
        return sorted(found)


def _topological(graph: Graph) -> tuple[list[str], dict[str, Node], dict[str, str]]:
    """Node names in a topological order (Kahn's, ties in insertion order), nodes and roles."""
    nodes: dict[str, Node] = dict(graph.nx.nodes(data="node"))
    roles: dict[str, str] = {}
    opdefs: dict[str, object] = {}
    consumers: dict[str, list[str]] = {n: [] for n in nodes}
    pending: dict[str, int] = {}
    for name, node in nodes.items():
        op = opdefs.get(node.op)
        if op is None:
            op = opdefs[node.op] = registry.get(node.op) or False
        roles[name] = op.role_of(node) if op else "other"
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
    return order, nodes, roles


def _meta_flags(order: list[str], nodes: dict[str, Node], roles: dict[str, str]) -> dict[str, bool]:
    meta: dict[str, bool] = {}
    for name in order:
        node, role = nodes[name], roles[name]
        if role == "input":
            meta[name] = False
        elif role in META_ROLES or not node.inputs:
            meta[name] = True
        elif all(meta[v.node] for v in node.inputs):
            meta[name] = True
        else:
            meta[name] = _is_shape_vector(node, nodes)
    return meta


def _is_shape_vector(node: Node, nodes: dict[str, Node]) -> bool:
    """An integer vector no longer than its (non-integer) input's rank: what ``Shape`` returns."""
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        return False
    out = node.outputs[0]
    src = nodes[node.inputs[0].node].outputs[node.inputs[0].out]
    return (out.rank == 1 and out.dtype.startswith(_INT_DTYPES) and not src.dtype.startswith(_INT_DTYPES)
            and isinstance(out.shape[0], int) and out.shape[0] <= src.rank)
