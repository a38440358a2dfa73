"""The ONNX backend: valid, deterministic models that keep the IR's names and compute what torch does."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import archc
from archc import SpecError, load_spec, loads_spec
from archc.errors import UsageError
from archc.ops.weights import initialize
from weights_helpers import randomize_statistics, state_dict_specs
from archc.lowering.onnx import OPSET, save_onnx, to_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESNET18 = os.path.join(ROOT, "specs", "resnet18.yaml")

SMALL = """
name: small
doc: A small test model.
inputs: {x: [N, 3, 8, 8], t: [N, 5, 4]}
nodes:
  - {name: conv, op: conv, out_channels: 4, kernel_size: 3, stride: 2, padding: 1}
  - {name: bn, op: batchnorm}
  - {name: relu, op: relu}
  - {name: pool, op: global_avgpool}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out_features: 3}
  - {name: proj, op: linear, in: t, out_features: 2}
outputs: {logits: fc, proj: proj, features: relu}
"""


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _feeds(graph, batch: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {n: rng.standard_normal([batch if isinstance(d, str) else d for d in graph.node(n).type.shape])
            .astype(np.float32) for n in graph.inputs}


def test_model_is_valid_and_shape_inference_agrees_with_the_ir():
    graph = loads_spec(SMALL)
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    types = {v.name: v.type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    produced = {n.name: n.output[0] for n in model.graph.node}
    for node in graph.nodes():
        if node.op == "input":
            continue
        dims = types[produced[node.name]].tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == list(node.type.shape), node.name
    assert model.opset_import[0].version == OPSET and model.ir_version == 8


def test_names_follow_the_ir():
    graph = loads_spec(SMALL)
    model = to_onnx(graph)
    node_names = [n.name for n in model.graph.node]
    ir_names = [n.name for n in graph.nodes() if n.op != "input"]
    assert [n for n in node_names if n in ir_names] == ir_names
    helpers = [n for n in node_names if n not in ir_names]
    assert helpers == ["proj/transpose", "proj/matmul"]  # the 3-D linear's helpers, named after it
    assert len(set(node_names)) == len(node_names)
    assert [i.name for i in model.graph.initializer if "/" not in i.name] == \
        [k for k, _ in state_dict_specs(graph) if not k.endswith("num_batches_tracked")]
    assert [i.name for i in model.graph.input] == ["x", "t"]
    assert [o.name for o in model.graph.output] == ["logits", "proj", "features"]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "N" and not batch.HasField("dim_value")
    assert model.graph.output[2].type.tensor_type.shape.dim[1].dim_value == 4
    # output values take the graph output's name (no Identity), other values their node's
    produced = {n.name: list(n.output) for n in model.graph.node}
    assert produced["fc"] == ["logits"] and produced["relu"] == ["features"] and produced["bn"] == ["bn"]


def test_metadata_and_doc():
    model = to_onnx(loads_spec(SMALL))
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"archc_version": archc.__version__, "graph_name": "small"}
    assert model.producer_name == "archc" and model.graph.name == "small"
    assert model.doc_string == "A small test model."


def test_skip_role_goes_into_the_node_doc_string():
    graph = load_spec(RESNET18, {"image_size": 32})
    docs = {n.name: n.doc_string for n in to_onnx(graph, labels={"layer2.0.add": "projection"}).graph.node
            if n.doc_string}
    assert docs == {"layer2.0.add": "skip: projection"}


def test_output_is_byte_identical_for_a_seed_and_differs_across_seeds():
    first = to_onnx(loads_spec(SMALL), seed=0).SerializeToString()
    again = to_onnx(loads_spec(SMALL), seed=0).SerializeToString()
    other = to_onnx(loads_spec(SMALL), seed=1).SerializeToString()
    assert first == again
    assert first != other and len(first) == len(other)


def test_weights_come_from_the_graph_when_present_and_the_graph_is_not_changed():
    graph = loads_spec(SMALL)
    to_onnx(graph, seed=4)
    assert graph.weights == {}
    initialize(graph, 9)
    graph.weights["fc"]["bias"] = np.array([1.0, 2.0, 3.0], np.float32)
    init = {i.name: onnx.numpy_helper.to_array(i) for i in to_onnx(graph, seed=4).graph.initializer}
    np.testing.assert_array_equal(init["fc.bias"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(init["conv.weight"], graph.weights["conv"]["weight"])


def test_incomplete_weights_are_reported():
    graph = loads_spec(SMALL)
    initialize(graph)
    del graph.weights["bn"]["running_var"]
    graph.weights["fc"]["weight"] = np.zeros((3, 5), np.float32)
    with pytest.raises(SpecError) as info:
        to_onnx(graph)
    assert "weights lack 'bn.running_var' (shape (4,))" in str(info.value)
    assert "weight 'fc.weight' has shape (3, 5), expected (3, 4)" in str(info.value)


def test_outputs_that_are_inputs_or_repeated():
    graph = loads_spec("""
name: passthrough
inputs: {x: [N, 3]}
nodes: [{name: r, op: relu}]
outputs: {same: x, a: r, b: r, r: x}
""")
    model = to_onnx(graph)
    assert [n.op_type for n in model.graph.node] == ["Relu", "Identity", "Identity", "Identity"]
    onnx.checker.check_model(model, full_check=True)
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    same, a, b, r = _run(model, {"x": x})
    np.testing.assert_array_equal(same, x)
    np.testing.assert_array_equal(r, x)
    np.testing.assert_array_equal(a, np.maximum(x, 0))
    np.testing.assert_array_equal(b, a)


def test_lowerings_may_return_a_value_twice_or_an_input(monkeypatch):
    """An op's ONNX lowering returning one value for two outputs, or its own input, still
    gives every IR output its own ONNX value."""
    from archc.ir import Graph, Node, TensorType, Value
    from archc.ops import OpDef, registry

    class Fanout(OpDef):
        name = "fanout_for_test"

        def infer(self, node, ins):
            return [ins[0]] * 3

        def onnx(self, emit, node, inputs, ins):
            r = emit.add_node("Relu", inputs)[0]
            return [r, r, inputs[0]]

    monkeypatch.setitem(registry._OPS, Fanout.name, Fanout())
    t = TensorType(("N", 3))
    graph = Graph("fanout")
    graph.add(Node("x", "input", {"shape": t.shape, "dtype": "float32"}, outputs=[t]))
    graph.add(Node("f", Fanout.name, inputs=[Value("x")], outputs=[t, t, t]))
    graph.add(Node("g", "add", inputs=[Value("f", 1), Value("f", 2)], outputs=[t]))
    graph.outputs = {"a": Value("f", 0), "b": Value("f", 1), "c": Value("f", 2), "g": Value("g")}
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    assert [(n.name, n.op_type) for n in model.graph.node] == [
        ("f", "Relu"), ("f/identity", "Identity"), ("f/identity_1", "Identity"), ("g", "Add")]
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    a, b, c, g = _run(model, {"x": x})
    np.testing.assert_array_equal(a, np.maximum(x, 0))
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(c, x)
    np.testing.assert_array_equal(g, a + x)


def test_nodes_of_other_domains_get_an_opset_import():
    from onnx import TensorProto, helper

    from archc.frontends.onnx import from_onnx

    node = helper.make_node("FastGelu", ["x"], ["y"], name="fast_gelu", domain="com.microsoft")
    original = helper.make_model(
        helper.make_graph([node], "ms", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)], ir_version=8)
    model = to_onnx(from_onnx(original))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET), ("com.microsoft", 1)]
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(_run(model, {"x": x})[0], _run(original, {"x": x})[0], rtol=1e-6)


def test_resnet18_matches_torch():
    import torch

    from archc.lowering.torch import build_module

    graph = load_spec(RESNET18, {"image_size": 32})
    initialize(graph, 0)
    randomize_statistics(graph, 0)
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    feeds = _feeds(graph, batch=2)
    (got,) = _run(model, feeds)
    with torch.no_grad():
        expected = build_module(graph).eval()(torch.from_numpy(feeds["x"])).numpy()
    assert got.shape == (2, 1000)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_building_onnx_never_imports_torch():
    script = textwrap.dedent(f"""
        import sys
        import archc.lowering.onnx as lo
        from archc import load_spec
        model = lo.to_onnx(load_spec({RESNET18!r}))
        assert len(model.graph.node) > 60
        assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))
        print('ok')
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_save_onnx_writes_the_model_or_nothing(tmp_path):
    model = to_onnx(loads_spec(SMALL))
    path = tmp_path / "small.onnx"
    save_onnx(model, str(path))
    assert path.read_bytes() == model.SerializeToString()
    assert onnx.load(str(path)).graph.name == "small"
    with pytest.raises(UsageError):
        save_onnx(model, str(tmp_path / "missing" / "small.onnx"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.onnx"]


def test_build_onnx_is_init_then_optimize_then_emit_and_leaves_the_graph_alone():
    from archc.lowering.onnx import build_onnx
    from archc.lowering.optimize import optimize_for_inference
    from archc.ops.weights import initialize

    spec = RESNET18
    overrides = {"width": 8, "image_size": 32, "num_classes": 10}
    graph = load_spec(spec, overrides)
    before = graph.format()
    model = build_onnx(graph, seed=3)
    assert graph.weights == {} and graph.format() == before  # not inplace: the caller's graph is untouched
    by_hand = to_onnx(optimize_for_inference(initialize(load_spec(spec, overrides), 3), inplace=True), 3)
    assert model.SerializeToString() == by_hand.SerializeToString()
    # given weights are used, and folding never writes into the caller's arrays
    weights = initialize(load_spec(spec, overrides), 3).weights
    saved = {k: {p: a.copy() for p, a in v.items()} for k, v in weights.items()}
    assert build_onnx(graph, weights, seed=99).SerializeToString() == by_hand.SerializeToString()
    assert all(np.array_equal(weights[k][p], saved[k][p]) for k in saved for p in saved[k])
    unoptimized = build_onnx(graph, seed=3, optimize=False, labels={"layer1.0.add": "residual"})
    assert any(n.doc_string == "skip: residual" for n in unoptimized.graph.node)
    assert len(unoptimized.graph.node) > len(model.graph.node)


def test_cached_attributes_match_onnx_helper() -> None:
    """Nodes made with cached attributes equal helper.make_node's, and values equal in Python but
    of other types (1, 1.0, True; [1, 2], [1.0, 2.0]) keep their own attribute types."""
    from onnx import helper

    from archc.lowering.onnx import _make_node

    cases = [{"alpha": 1}, {"alpha": 1.0}, {"alpha": True}, {"pads": [1, 2]}, {"pads": (1.0, 2.0)},
             {"mode": "constant", "axes": [0], "keepdims": None}, {"perm": list(range(20))},
             {"value": helper.make_tensor("t", 1, [1], [2.0])}, {"domain": "com.microsoft", "axis": -1}]
    for attrs in cases * 2:  # the second round comes from the cache
        made = _make_node("Op", ["x"], ["y"], "n", None, attrs)
        assert made == helper.make_node("Op", ["x"], ["y"], name="n", **attrs), attrs
    first = _make_node("Op", ["x"], ["y"], "n", None, {"alpha": 1})
    first.attribute[0].i = 5  # a node's attribute is its own copy: the cache is untouched
    assert _make_node("Op", ["x"], ["y"], "n", None, {"alpha": 1}).attribute[0].i == 1
