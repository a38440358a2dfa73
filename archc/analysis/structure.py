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
from typing import Iterable, Mapping

from archc.ir import Graph, Node
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
_INT_DTYPES = ("int", "uint", "bool")
_UNKNOWN = OpDef()  # ops not registered (e.g. a plugin missing): role 'other'


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
            self._build(nodes, nodes.items())
        except _Unordered:
            self._build(nodes, [(name, nodes[name]) for name in _topological(nodes)])
        #: graph outputs that read a data node, as ids (repeats kept)
        index = self.index
        self.outputs: list[int] = [index[v.node] for v in graph.outputs.values() if v.node in index]
        #: data uses of each node: consuming slots plus graph outputs
        self.uses: list[int] = [len(s) for s in self.succs]
        for o in self.outputs:
            self.uses[o] += 1
        self.parametric: list[bool] = [r in PARAMETRIC for r in self.roles]
        self._pred_sets: dict[int, frozenset[int]] = {}
        self._dominators()
        self._depths()

    def _build(self, nodes: dict[str, Node], order: Iterable[tuple[str, Node]]) -> None:
        """Ids, roles, producers and consumers of the data nodes, visiting ``order`` (name, node)."""
        visited: dict[str, int] = {}  # name -> id, or -1 for a meta node
        names: list[str] = []
        data: list[Node] = []
        roles: list[str] = []
        all_slots: list[tuple[tuple[int, int], ...]] = []
        all_preds: list[tuple[int, ...]] = []
        succs: list[list[int]] = []
        heads: list[int] = []
        roles_of = _RoleCache()
        fixed_roles = roles_of.fixed
        # (bound once: this loop runs once per node of graphs of 100k nodes)
        add_name, add_node, add_role, add_slots, add_preds, add_head, add_succs = (
            names.append, data.append, roles.append, all_slots.append, all_preds.append, heads.append, succs.append)
        i = 0  # the id the next data node gets
        for name, node in order:
            role = fixed_roles.get(node.op) or roles_of.role_of(node)
            inputs = node.inputs
            if role == "input":
                slots: tuple[tuple[int, int], ...] = ()
                preds: tuple[int, ...] = ()
                head = i
            elif len(inputs) == 1:
                # Most nodes read one value: no list to build, no duplicates to drop.
                v = inputs[0]
                j = visited.get(v.node)
                if j is None:
                    raise _Unordered()
                # A node reading no data producer (constants, shapes) is meta. (Only an integer
                # output may be a shape vector: test the dtype here, before a call per node.)
                outs = node.outputs
                if j < 0 or role in META_ROLES or (
                        len(outs) == 1 and outs[0].dtype.startswith(_INT_DTYPES) and _is_shape_vector(node, nodes)):
                    visited[name] = -1
                    continue
                slots = ((j, v.out),)
                preds = (j,)
                head = heads[j]
                succs[j].append(i)
            else:
                found = []
                for v in inputs:
                    j = visited.get(v.node)
                    if j is None:
                        raise _Unordered()
                    if j >= 0:
                        found.append((j, v.out))
                if not found or role in META_ROLES or (len(found) == 1 and _is_shape_vector(node, nodes)):
                    visited[name] = -1
                    continue
                slots = tuple(found)
                ps = [p for p, _ in found]
                # (distinct producers, in slot order; most joins read each producer once)
                preds = tuple(ps) if len(set(ps)) == len(ps) else tuple(dict.fromkeys(ps))
                head = heads[ps[0]] if len(preds) == 1 else i
                for p in ps:
                    succs[p].append(i)
            visited[name] = i
            i += 1
            add_name(name)
            add_node(node)
            add_role(role)
            add_slots(slots)
            add_preds(preds)
            add_head(head)
            add_succs([])
        #: node name per id; ids follow a topological order of the data nodes
        self.names = names
        self.index: dict[str, int] = visited if len(visited) == len(names) else {
            n: i for n, i in visited.items() if i >= 0}  # (no meta nodes: the names seen are the ids)
        self.nodes = data
        self.roles = roles
        #: data producers per input slot, as (producer id, output index); repeats kept (x + x)
        self.slots = all_slots
        #: distinct producer ids, in slot order
        self.preds = all_preds
        #: consumer ids per consuming slot (repeats kept)
        self.succs = succs
        #: for a node with one producer, the node its chain of one-producer nodes hangs from
        #: (a join or an input); any other node is its own head. Nodes of a chain share what
        #: flows into it: the dominator walks and the path counts skip along chains with it.
        self.chain_head = heads

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
        intersect = self._intersect
        heads = self.chain_head
        for i, preds in enumerate(self.preds):
            if len(preds) == 1:  # a chain node: its one producer dominates it
                d = preds[0]
                idom[i] = d
                depth[i] = depth[d] + 1
            elif preds:
                d = preds[0]
                for p in preds[1:]:
                    h = heads[p]
                    # When d heads p's chain or dominates its head (a DenseNet layer's output seen
                    # from its block's input), d dominates p and stays the meeting point.
                    if h != d and idom[h] != d:
                        d = intersect(d, p, idom, depth, heads)
                idom[i] = d
                depth[i] = (depth[d] if d != SOURCE else 0) + 1
        self.idom = idom
        self.dom_depth = depth
        # Preorder numbers and subtree sizes of the dominator tree: a dominates b iff b's number
        # falls in a's subtree. Parents have smaller ids, so two linear passes suffice.
        size = [1] * count
        for i in range(count - 1, -1, -1):
            if idom[i] != SOURCE:
                size[idom[i]] += size[i]
        tin = [0] * count
        free = [0] * count      # next preorder number for a child of each node
        top = 0                 # next number for a child of the virtual source
        for i in range(count):
            d = idom[i]
            if d == SOURCE:
                tin[i] = top
                top += size[i]
            else:
                tin[i] = free[d]
                free[d] += size[i]
            free[i] = tin[i] + 1
        self._tin, self._size = tin, size

    @staticmethod
    def _intersect(a: int, b: int, idom: list[int], depth: list[int], heads: list[int]) -> int:
        """The nearest common dominator of ``a`` and ``b``: walk the deeper one up until they meet.

        A chain node may jump straight to its chain's head (every node between dominates the next)
        when the head is no shallower than the other side: the nodes skipped are deeper than the
        meeting point. DenseNet joins meet every earlier layer's output, each at the end of a chain.
        """
        while a != b:
            da = depth[a] if a != SOURCE else 0
            db = depth[b] if b != SOURCE else 0
            if da > db:
                h = heads[a]
                a = h if h != a and depth[h] >= db else idom[a]
            elif db > da:
                h = heads[b]
                b = h if h != b and depth[h] >= da else idom[b]
            else:
                a, b = idom[a], idom[b]
        return a

    def dominates(self, a: int, b: int) -> bool:
        """Whether every path from the inputs to ``b`` passes through ``a`` (a node dominates itself)."""
        if a == SOURCE:
            return True
        if b == SOURCE:
            return False
        return 0 <= self._tin[b] - self._tin[a] < self._size[a]

    # -- depths --------------------------------------------------------------------------
    def _depths(self) -> None:
        """Longest paths from the inputs, in parametric layers and in ops, and the latest upsampling."""
        count = len(self.names)
        layers = [0] * count
        ops = [0] * count
        up = [SOURCE] * count
        parametric, roles = self.parametric, self.roles
        for i, preds in enumerate(self.preds):
            if len(preds) == 1:  # most nodes: no maxima to take
                p = preds[0]
                best_l, best_o, best_u = layers[p], ops[p], up[p]
            elif (carried := self.gated_factor(i)) is not None:
                # x * T(...): the gate scales x, so the product lies as deep as x (the gate's own
                # layers compute a scaling, not the features passed on: squeeze-and-excitation,
                # attention gates)
                g = preds[0] if preds[1] == carried else preds[1]
                best_l, best_o, best_u = layers[carried], max(ops[carried], ops[g]), max(up[carried], up[g])
            else:
                best_l = best_o = 0
                best_u = SOURCE
                for p in preds:
                    if layers[p] > best_l:
                        best_l = layers[p]
                    if ops[p] > best_o:
                        best_o = ops[p]
                    if up[p] > best_u:
                        best_u = up[p]
            if parametric[i]:
                best_l += 1
            role = roles[i]
            if role != "input":
                best_o += 1
            if role in _MAY_UPSAMPLE and self._upsamples(i):
                best_u = i
            layers[i], ops[i], up[i] = best_l, best_o, best_u
        #: longest path from an input to each node, counting parametric layers / all ops
        self.depth_layers = layers
        self.depth_ops = ops
        #: the latest upsampling node among each node's ancestors (itself included), or SOURCE
        self.last_upsample = up

    def from_gate(self, v: int) -> bool:
        """Whether ``v`` is a gate (a sigmoid) or a scaling, complement or rearrangement of one."""
        for _ in range(6):
            if self.roles[v] == "gate":
                return True
            if self.roles[v] not in GATE_PATH or len(self.preds[v]) != 1:
                return False
            v = self.preds[v][0]
        return False

    def gated_factor(self, i: int) -> int | None:
        """For a product ``x * T`` of two values where exactly one factor comes from a gate, the
        other factor (the value the gate scales); None for any other node."""
        preds = self.preds[i]
        if len(preds) != 2 or self.roles[i] != "merge_mul":
            return None
        a, b = self.from_gate(preds[0]), self.from_gate(preds[1])
        if a == b:
            return None
        return preds[1] if a else preds[0]

    def _upsamples(self, i: int) -> bool:
        """Whether node i raises spatial resolution (a decoder step), judged by role and shapes.

        Broadcasting a 1x1 map back up (ASPP's image pooling) is global context, not a
        decoder step. Shapes count only for rank >= 4 tensors with every spatial dim
        growing, on ops that compute (a transposed conv): rank-3 tensors may be (N, L, E)
        tokens, where a linear layer widening E would look like upsampling.
        """
        role = self.roles[i]
        if role not in _MAY_UPSAMPLE or not self.slots[i]:
            return False
        src = self.value_type(*self.slots[i][0]).shape
        dst = self.nodes[i].outputs[0].shape if self.nodes[i].outputs else ()
        src_sp, dst_sp = src[2:], dst[2:]
        if role in UPSAMPLING:
            return not (src_sp and all(d == 1 for d in src_sp))
        if len(dst) < 4 or len(src) != len(dst) or src_sp == dst_sp:
            return False  # (equal spatial dims, the common case, need no closer look)
        if not all(isinstance(d, int) for d in (*src_sp, *dst_sp)):
            return False
        return all(b > a for a, b in zip(src_sp, dst_sp)) and not all(a == 1 for a in src_sp)

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


class _RoleCache:
    """Each node's op role, looking each op up once. Most ops have one role for all their nodes:
    those land in ``fixed`` (op name -> role), which callers read directly before calling
    :meth:`role_of`; only ops overriding :meth:`OpDef.role_of` (imported ONNX nodes) are asked per node."""

    def __init__(self) -> None:
        self.fixed: dict[str, str] = {}
        self._opdefs: dict[str, OpDef] = {}  # op name -> definition, for ops whose role varies

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
