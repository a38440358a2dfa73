"""ONNX's types in the importer: inferred per node, once per signature, the whole model's shape
inference only where a node needs it (frontends/onnx/inference.py); native ops' answers once per
kind of node (frontends/onnx/templates.py). Declared types that contradict a node's and ill-typed
nodes are refused; symbolic shapes still get the whole model's inference."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from archc.errors import SpecError
from archc.frontends.onnx import from_onnx
from archc.frontends.onnx.importer import Importer
from archc.ir import Graph, Node, TensorType, Value
from archc.lowering.onnx import to_onnx

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), value_info=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, n) for n, v in inits],
                              value_info=list(value_info))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def _import(model):
    importer = Importer(model, "m.onnx")
    return importer, importer.run()


def _chain(blocks: int) -> onnx.ModelProto:
    g = Graph("chain")
    s = ("N", 4, 8, 8)
    conv = {"out_channels": 4, "kernel_size": 3, "stride": 1, "padding": 1, "dilation": 1, "groups": 1, "bias": False}
    g.add(Node("x", "input", {"shape": list(s)}, [], [TensorType(s)]))
    last = "x"
    for i in range(blocks):
        g.add(Node(f"c{i}", "conv", conv, [Value(last)], [TensorType(s)]))
        g.add(Node(f"r{i}", "relu", {}, [Value(f"c{i}")], [TensorType(s)]))
        g.add(Node(f"a{i}", "add", {}, [Value(f"r{i}"), Value(last)], [TensorType(s)]))
        last = f"a{i}"
    g.outputs = {"y": Value(last)}
    return to_onnx(g, seed=0)


def test_a_chain_archc_wrote_is_typed_node_by_node_once_per_signature(monkeypatch):
    calls = []
    infer = onnx.shape_inference.infer_shapes
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", lambda m, *a, **k: calls.append(len(m.graph.node))
                        or infer(m, *a, **k))
    importer, graph = _import(_chain(30))
    assert not importer.types.has_whole  # no whole-model inference
    assert calls == [1, 1, 1]  # one single-node inference each for Conv, Relu, Add: 90 nodes
    assert [n.op for n in graph.nodes()].count("conv") == 30 and "onnx_node" not in {n.op for n in graph.nodes()}


def test_symbolic_shape_values_get_the_whole_models_inference():
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsq"),
             helper.make_node("Concat", ["n1", "rest"], ["target"], name="cat", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="flat")]
    model = _model(nodes, [_vi("x", ["N", 4, 2])], [_vi("y", ["N", 8])],
                   [("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)),
                    ("rest", np.array([8], np.int64))])
    importer, graph = _import(model)
    assert importer.types.has_whole
    assert [(n.op, n.outputs[0].shape) for n in graph.nodes()] == [("input", ("N", 4, 2)), ("flatten", ("N", 8))]


@pytest.mark.parametrize("declared", [_vi("y", ["N", 4], TensorProto.INT64), _vi("y", ["N", 5]),
                                      _vi("y", ["N", 4, 1])], ids=["dtype", "dim", "rank"])
def test_a_declared_output_type_that_disagrees_is_refused_naming_the_node(declared):
    """(These used to import as onnx_nodes typed as the file declared: accepted silently.)"""
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", ["N", 4])], [declared])
    with pytest.raises(SpecError, match=r"node 'r'.*output 'y' is declared .* but the node computes float32\[N, 4\]"):
        from_onnx(model, "m.onnx")


def test_a_declared_value_info_that_disagrees_is_refused_naming_the_node():
    model = _model([helper.make_node("Relu", ["x"], ["h"], name="r"), helper.make_node("Relu", ["h"], ["y"], name="r2")],
                   [_vi("x", ["N", 4])], [_vi("y", ["N", 4])], value_info=[_vi("h", ["N", 7])])
    with pytest.raises(SpecError, match=r"node 'r'.*output 'h' is declared float32\[N, 7\], but the node computes "
                                        r"float32\[N, 4\]"):
        _import(model)


def test_a_node_strict_inference_rejects_is_refused_naming_the_node():
    """Add of a float and an int64 tensor (with symbolic dims): refused per node, before any
    whole-model inference could type it leniently (tests/test_onnx_typing.py has the other cases)."""
    model = _model([helper.make_node("Add", ["x", "i"], ["y"], name="add")],
                   [_vi("x", ["N", 4]), _vi("i", ["N", 4], TensorProto.INT64)], [_vi("y", ["N", 4])])
    with pytest.raises(SpecError, match=r"node 'add'.*'x' \(float32\) and 'i' \(int64\) must have one element type"):
        _import(model)


def test_nodes_of_one_kind_share_the_native_ops_answer_but_not_attributes_that_only_compare_equal():
    """-0.0 == 0.0 and 1 == 1.0 == True: a kind of node is told by its attributes' text."""
    from archc.frontends.onnx.templates import Templates
    from archc.ops import registry

    templates, leaky = Templates(), registry.get("leaky_relu")
    x = [TensorType(("N", 4))]
    zero, again = (templates.get(leaky, {"negative_slope": 0.0}, x, None) for _ in range(2))
    negative = templates.get(leaky, {"negative_slope": -0.0}, x, None)
    assert zero is again and negative is not zero
    assert repr(negative.attrs["negative_slope"]) == "-0.0" and zero.outputs == (TensorType(("N", 4)),)
    assert templates.get(leaky, {"negative_slope": 1}, x, None) is not templates.get(leaky, {"negative_slope": 1.0}, x, None)


def test_each_node_owns_its_attributes():
    """Nodes of one kind share the answer, not the attribute dict: later stages edit attributes
    (a bias folded into a conv)."""
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="one"), helper.make_node("Relu", ["a"], ["y"], name="two")]
    graph = from_onnx(_model(nodes, [_vi("x", ["N", 4])], [_vi("y", ["N", 4])]), "m.onnx")
    first, second = (n for n in graph.nodes() if n.op == "relu")
    assert first.attrs == second.attrs and first.attrs is not second.attrs


def _conv_bias_chain(blocks: int) -> onnx.ModelProto:
    """Bias-free convs each followed by an Add of a per-channel constant (the bias the importer folds
    into the conv), a Relu and a residual Add: pure kinds (conv, relu, residual add) around an impure one."""
    nodes, inits, last = [], [], "x"
    rng = np.random.default_rng(0)
    for i in range(blocks):
        inits += [(f"w{i}", rng.standard_normal((4, 4, 3, 3)).astype(np.float32)),
                  (f"b{i}", rng.standard_normal((1, 4, 1, 1)).astype(np.float32))]
        nodes += [helper.make_node("Conv", [last, f"w{i}"], [f"c{i}"], name=f"/block{i}/conv/Conv", pads=[1] * 4),
                  helper.make_node("Add", [f"c{i}", f"b{i}"], [f"cb{i}"], name=f"/block{i}/conv/Add"),
                  helper.make_node("Relu", [f"cb{i}"], [f"r{i}"], name=f"/block{i}/act/Relu"),
                  helper.make_node("Add", [f"r{i}", last], [f"a{i}" if i < blocks - 1 else "y"], name=f"/block{i}/Add")]
        last = f"a{i}"
    return _model(nodes, [_vi("x", ["N", 4, 8, 8])], [_vi("y", ["N", 4, 8, 8])], inits)


def _snapshot(graph):
    return ([(n.name, n.op, n.attrs, n.inputs, n.outputs, n.meta) for n in graph.nodes()],
            {k: {p: (w.dtype, w.shape, w.tobytes()) for p, w in ws.items()} for k, ws in graph.weights.items()})


@pytest.mark.parametrize("make, biased", [(lambda: _chain(6), False), (lambda: _conv_bias_chain(5), True)],
                         ids=["chain", "bias-folding"])
def test_replayed_kinds_make_the_nodes_their_converters_make(make, biased, monkeypatch):
    from archc.frontends.onnx import importer as importer_module

    replayed = _import(make())
    assert replayed[0]._recipes  # kinds were recorded and replayed
    monkeypatch.setattr(importer_module, "PURE", {})  # every node through its converter
    converted = _import(make())
    assert not converted[0]._recipes
    assert _snapshot(replayed[1]) == _snapshot(converted[1])
    convs = [n for n in replayed[1].nodes() if n.op == "conv"]
    assert len(convs) >= 5 and all(n.attrs["bias"] is biased for n in convs)  # folded into replayed convs too
