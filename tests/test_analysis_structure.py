"""The data-flow view: topological ids, meta values dropped, dominators (checked against networkx)."""
from __future__ import annotations

import random

import networkx as nx
import pytest

from archc.analysis import structure
from archc.analysis.structure import SOURCE, Flow
from archc.ir import Graph, Node, TensorType, Value


def _random_dag(seed: int, n: int = 60, inputs: int = 2) -> Graph:
    """A random DAG of 'add'/'relu' nodes over (N, 4) tensors with a few graph inputs."""
    rng = random.Random(seed)
    g = Graph("random")
    t = TensorType(("N", 4))
    names = []
    for i in range(inputs):
        g.add(Node(f"in{i}", "input", {"shape": ["N", 4]}, [], [t]))
        names.append(f"in{i}")
    for i in range(n):
        k = rng.choice([1, 1, 2, 2, 3])
        srcs = [rng.choice(names[-12:]) for _ in range(k)]
        op = "relu" if k == 1 else "add"
        g.add(Node(f"n{i}", op, {}, [Value(s) for s in srcs], [t]))
        names.append(f"n{i}")
    g.outputs = {"y": Value(names[-1]), "z": Value(names[-5])}
    return g


def test_ids_are_topological_and_multi_edges_kept():
    g = _random_dag(1)
    flow = Flow(g)
    for i in range(len(flow)):
        assert all(p < i for p in flow.preds[i])
        assert len(flow.slots[i]) == len(flow.nodes[i].inputs)
    # uses count consuming slots and graph outputs
    last = flow.index["n59"]
    assert flow.uses[last] == len(flow.succs[last]) + 1


@pytest.mark.parametrize("steps", [0, 16, 10_000])
def test_dominators_match_networkx(monkeypatch, steps):
    # dominates() walks up the tree at most _WALK_STEPS steps, then numbers the tree: 0 numbers it on the
    # first query, 10_000 answers every query of these small graphs by the walk
    monkeypatch.setattr(structure, "_WALK_STEPS", steps)
    for seed in range(8):
        g = _random_dag(seed, inputs=1 + seed % 3)
        flow = Flow(g)
        dg = nx.DiGraph()
        dg.add_node("SRC")
        for i in range(len(flow)):
            if not flow.preds[i]:
                dg.add_edge("SRC", i)
            for p in flow.preds[i]:
                dg.add_edge(p, i)
        expected = nx.immediate_dominators(dg, "SRC")
        for i in range(len(flow)):
            want = expected[i]
            assert flow.idom[i] == (SOURCE if want == "SRC" else want), (seed, flow.names[i])
            # dominates() agrees with walking up the tree
            chain, v = set(), i
            while v != "SRC":
                chain.add(v)
                v = expected[v]
            for j in range(len(flow)):
                assert flow.dominates(j, i) == (j in chain), (seed, j, i)
        if steps in (0, 10_000):
            assert (flow._tin is None) == (steps == 10_000)


def test_shape_arithmetic_and_constants_are_not_data():
    g = Graph("meta")
    x = TensorType(("N", 8, 4, 4))
    g.add(Node("x", "input", {"shape": ["N", 8, 4, 4]}, [], [x]))
    # An exporter's Shape op (unknown to the registry): an int64 vector of the input's rank.
    g.add(Node("shape", "shape_of", {}, [Value("x")], [TensorType((4,), "int64")]))
    g.add(Node("dims", "gather_dims", {}, [Value("shape")], [TensorType((2,), "int64")]))
    g.add(Node("table", "constant_table", {}, [], [x]))       # no inputs: a constant
    g.add(Node("conv", "conv", {"out_channels": 8, "kernel_size": 1, "stride": 1, "padding": 0,
                                "dilation": 1, "groups": 1, "bias": True}, [Value("x")], [x]))
    g.add(Node("resh", "reshape_like", {}, [Value("conv"), Value("dims")], [x]))
    g.add(Node("pos", "add", {}, [Value("resh"), Value("table")], [x]))
    g.outputs = {"y": Value("pos")}
    flow = Flow(g)
    assert set(flow.names) == {"x", "conv", "resh", "pos"}
    assert not flow.is_merge(flow.index["pos"])      # adding a constant joins nothing
    assert flow.preds[flow.index["resh"]] == (flow.index["conv"],)


def test_region_and_reaches():
    g = _random_dag(3, n=40)
    flow = Flow(g)
    dg = nx.DiGraph((p, i) for i in range(len(flow)) for p in flow.preds[i])
    for a, b in [(0, len(flow) - 1), (2, 30), (5, 20)]:
        between = nx.descendants(dg, a) & (nx.ancestors(dg, b) | {b})
        assert flow.reaches(a, b) == (b in nx.descendants(dg, a))
        assert set(flow.region(a, [b], limit=10_000)) == between
    assert flow.region(0, [len(flow) - 1], limit=3) is None      # bounded


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_longest_to_counts_only_paths_that_leave_each_node(seed):
    """Flow.longest_to against networkx: for each ancestor v of a target, the layers (and ops) on the longest
    path v -> target, the nodes strictly between counted; not the difference of the depths from the inputs,
    which counts deeper paths from other nodes into the target."""
    g = _random_dag(seed, n=40)
    rng = random.Random(seed)
    for node in list(g.node_map().values()):
        if node.op == "relu" and rng.random() < 0.5:
            node.op = "linear"  # (a learned layer: parametric)
    flow = Flow(g)
    target, lo = len(flow) - 1, 10
    got = flow.longest_to(target, lo, limit=10_000)
    dg = nx.DiGraph((p, i) for i in range(len(flow)) for p in flow.preds[i])
    for v in nx.ancestors(dg, target):
        if v < lo:
            assert v not in got
            continue
        sub = dg.subgraph(nx.descendants(dg, v) & (nx.ancestors(dg, target) | {target}) | {v})
        for key, weight in ((0, lambda b: flow.parametric[b]), (1, lambda b: 1)):
            for a, b in sub.edges:
                sub.edges[a, b]["w"] = 0 if b == target else weight(b)
            assert got[v][key] == nx.dag_longest_path_length(sub, weight="w"), (v, key)
    # (the round-15 case: the difference of depths, the target's own layer aside, counts more for some node)
    main_depth = flow.depth_layers[target] - flow.parametric[target]
    assert any(got[v][0] < main_depth - flow.depth_layers[v] for v in got)
    assert flow.longest_to(target, 0, limit=3) is None  # bounded


def test_region_walks_share_one_budget():
    """A dense join makes O(n^2) pairs of O(n^2)-edge regions: past the budget every walk answers
    "too large" (None) at once, and what was spent is not given back."""
    g = _random_dag(3, n=40)
    flow = Flow(g)
    last = len(flow) - 1
    whole = flow.region(0, [last], limit=10_000)
    spent = flow.walk_budget
    assert whole and flow.region(0, [last], limit=10_000) == whole
    assert flow.walk_budget < spent                              # each walk pays for its edges
    flow.walk_budget = 5
    assert flow.region(0, [last], limit=10_000) is None
    assert flow.walk_budget == 0
    assert flow.region(2, [30], limit=10_000) is None            # spent: no walk at all
    assert flow.dominated_region(0, [last], limit=10_000) is None
    assert flow.region(4, [4], limit=10_000) == []               # (nothing between: no walk needed)


def test_insertion_order_need_not_be_topological():
    g = Graph("rewired")
    t = TensorType(("N", 4))
    g.add(Node("x", "input", {"shape": ["N", 4]}, [], [t]))
    g.add(Node("late", "relu", {}, [Value("x")], [t]))
    g.add(Node("early", "linear", {"out_features": 4}, [Value("x")], [t]))
    g.add(Node("join", "add", {}, [Value("x"), Value("early")], [t]))
    g.set_inputs("late", [Value("join")])      # 'late' now reads a node inserted after it
    g.outputs = {"y": Value("late")}
    flow = Flow(g)
    assert flow.names == ["x", "early", "join", "late"]
    assert flow.idom[flow.index["late"]] == flow.index["join"]


@pytest.mark.parametrize("op, role", [("concat", "reshape"), ("add", "affine"), ("sub", "affine"), ("mul", "scale")])
def test_a_merge_op_beside_values_made_from_shapes_alone_takes_its_role_beside_a_constant(op, role):
    # round 16: cat(x, zeros(x.shape)) with the zeros built at run time (a dynamic batch: Shape, Gather, Concat,
    # ConstantOfShape) was a 'merge_concat' reading one value, where the static export's cat(x, constant) is an
    # onnx_node Concat of role 'reshape': one module, two answers. The merge op with one data input left is what
    # it is beside a constant (vocab.WITH_CONSTANT, the onnx_node roles' table too)
    g = Graph("shape_made")
    x = TensorType(("N", 8, 4, 4))
    g.add(Node("x", "input", {"shape": ["N", 8, 4, 4]}, [], [x]))
    g.add(Node("shape", "shape_of", {}, [Value("x")], [TensorType((4,), "int64")]))
    g.add(Node("zeros", "zeros_of_shape", {}, [Value("shape")], [x]))  # reads meta only: meta
    g.add(Node("m", op, {"axis": 1} if op == "concat" else {}, [Value("x"), Value("zeros")],
               [TensorType(("N", 16, 4, 4)) if op == "concat" else x]))
    g.add(Node("r", "relu", {}, [Value("x")], [x]))
    g.add(Node("both", op, {"axis": 1} if op == "concat" else {}, [Value("x"), Value("r")],
               [TensorType(("N", 16, 4, 4)) if op == "concat" else x]))
    g.outputs = {"y": Value("m"), "z": Value("both")}
    flow = Flow(g)
    assert "zeros" not in flow.index and flow.preds[flow.index["m"]] == (flow.index["x"],)
    assert flow.roles[flow.index["m"]] == role
    assert flow.roles[flow.index["both"]] == f"merge_{op}"  # two data values: still a merge
