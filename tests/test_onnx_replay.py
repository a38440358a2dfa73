"""The importer's fast way through a model gives exactly the graph its general way gives.

A node of a kind whose first node its converter already converted is replayed before the general
way's checks (frontends/onnx/walk.py ``Walk.walk``); without that shortcut every node takes the
general way (still replaying recipes), and with no pure converter every node runs its converter.
All three must give the same nodes, names, attributes, types, meta and weights: on models written
from papers and exported by both torch exporters, and on random ONNX chains (hypothesis). Small
initializers are read as one array per dtype and shape (frontends/onnx/tensors.py): the same arrays
as one read each.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from archc.errors import SpecError
from archc.frontends.onnx import from_onnx
from archc.frontends.onnx import importer as importer_module
from archc.frontends.onnx import rows as rows_module
from archc.frontends.onnx.tensors import read_tensor, read_tensors

torch = pytest.importorskip("torch")

import onnx_models  # noqa: E402  (tests/onnx_models.py: modules written from their papers)
from conftest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from bench_lint import bert_encoder  # noqa: E402  (BERT as Devlin et al. describe it)


def _snapshot(graph):
    nodes = [(n.name, n.op, repr(n.attrs), n.inputs, n.outputs, n.location, repr(n.meta), n.scope) for n in graph.nodes()]
    weights = {k: {p: (type(w).__name__, w.dtype.str, w.shape, w.strides, w.flags.writeable, w.tobytes())
                   for p, w in ws.items()} for k, ws in graph.weights.items()}
    return graph.name, graph.doc, list(graph.inputs), dict(graph.outputs), nodes, list(graph.weights), weights


def _three_ways(model: onnx.ModelProto, monkeypatch) -> tuple:
    """The graph of ``model`` the usual way (with how many nodes were replayed), without the fast
    replay, and with no pure converter."""
    replayed = []
    original = importer_module.Importer.walk

    def counting(self, rows):
        done = original(self, rows)
        replayed.append(done)
        return done

    def general_way(self, rows):
        for row in rows:
            self._process(row[0], row[5])
        return 0

    with monkeypatch.context() as m:
        m.setattr(importer_module.Importer, "walk", counting)
        fast = from_onnx(model, "m.onnx")
    with monkeypatch.context() as m:
        m.setattr(importer_module.Importer, "walk", general_way)
        general = from_onnx(model, "m.onnx")
    with monkeypatch.context() as m:
        m.setattr(importer_module, "PURE", {})
        converted = from_onnx(model, "m.onnx")
    return fast, sum(replayed), general, converted


def _values(snapshot: tuple) -> tuple:
    """A snapshot with each weight's type, dtype, shape and bytes only (not how it is stored)."""
    return (*snapshot[:-1], {k: {p: (w[0], w[1], w[2], w[5]) for p, w in ws.items()} for k, ws in snapshot[-1].items()})


def _assert_same(model: onnx.ModelProto, monkeypatch, replays: bool = True) -> None:
    fast, replayed, general, converted = _three_ways(model, monkeypatch)
    assert _snapshot(fast) == _snapshot(general) == _snapshot(converted)
    if replays:
        assert replayed > 0  # the fast way was taken
    with monkeypatch.context() as m:  # the nodes' fields read from the NodeProtos, attributes serialised
        m.setattr(rows_module, "_mirrored_nodes", lambda data, count, mirrored=None: None)
        assert _snapshot(from_onnx(model, "m.onnx")) == _snapshot(fast)
    # the model's own bytes at hand (a file read whole): its initializers read from them, the same graph
    assert _snapshot(from_onnx(model, "m.onnx", data=model.SerializeToString())) == _snapshot(fast)
    # for a caller that never reads weight values: the same graph and weights, not copied
    assert _values(_snapshot(from_onnx(model, "m.onnx", weights=False))) == _values(_snapshot(fast))


# -- models written from papers, both exporters ------------------------------------------------

MODELS = {
    "resnet": (lambda: onnx_models.ResNet(layers=(2, 1, 1, 1), width=4, num_classes=3), (1, 3, 32, 32)),
    "unet": (lambda: onnx_models.UNet(), (1, 3, 16, 16)),
    "transformer": (lambda: onnx_models.TransformerEncoder(layers=3), (2, 5, 8)),
    "transformer_pre_norm": (lambda: onnx_models.TransformerEncoder(layers=2, pre_norm=True), (2, 5, 8)),
    "bert": (lambda: bert_encoder(layers=3, dim=32, heads=4, ffn=64, vocab=50, positions=16), (1, 12)),
    "lstm": (lambda: onnx_models.LSTMEncoder(), (2, 7, 6)),
    "mlp_tanh_gelu": (lambda: onnx_models.MLP(approximate="tanh"), (3, 10)),
}


def _export(name: str, dynamo: bool) -> onnx.ModelProto:
    factory, shape = MODELS[name]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randint(0, 50, shape) if name == "bert" else torch.randn(*shape)
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # (no no_grad: under it, eval attention exports as one fused aten op)
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(model, (x,), dynamo=True)
            return program.model_proto
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17)
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("name", list(MODELS))
def test_fast_and_general_ways_agree_on_torchscript_exports(name, monkeypatch):
    _assert_same(_export(name, dynamo=False), monkeypatch, replays=name != "lstm")  # (no kind repeats in the LSTM)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n != "resnet" else n for n in MODELS])
def test_fast_and_general_ways_agree_on_dynamo_exports(name, monkeypatch):
    try:
        model = _export(name, dynamo=True)
    except Exception as exc:  # noqa: BLE001 - the default exporter does not run everywhere
        pytest.skip(f"the default exporter cannot export {name} here: {exc}")
    _assert_same(model, monkeypatch, replays=name != "lstm")


# -- random chains -----------------------------------------------------------------------------

C = 3
#: node names as exporters write them, and as nobody does: scoped, repeated, empty, odd characters
NAMES = st.sampled_from(["", "conv", "/layer1/conv1/Conv", "/layer1/layer1.0/relu/Relu", "/a/Add", "Relu_1",
                         "x y", "/blocks/blocks.0/Mul", "/layer1/conv1/Conv_1", "n.o.d.e"])


def _conv(draw, i, x, inits):
    k = draw(st.sampled_from([1, 3]))
    bias = draw(st.booleans())
    inits.append(numpy_helper.from_array(np.full((C, C, k, k), 0.1 * i, np.float32), f"w{i}"))
    inputs = [x, f"w{i}"]
    if bias:
        inits.append(numpy_helper.from_array(np.arange(C, dtype=np.float32), f"b{i}"))
        inputs.append(f"b{i}")
    return "Conv", inputs, {"kernel_shape": [k, k], "pads": [k // 2] * 4}


def _batchnorm(draw, i, x, inits):
    parts = [f"bn{i}_{part}" for part in ("scale", "bias", "mean", "var")]
    for part in parts:
        inits.append(numpy_helper.from_array(np.ones(C, np.float32), part))
    return "BatchNormalization", [x, *parts], {"epsilon": draw(st.sampled_from([1e-5, 1e-3]))}


@st.composite
def random_chains(draw):
    """A chain of convs, norms, activations, residual adds and sums over earlier values, all of
    shape (N, C, 6, 6), with random node names and some declared output types."""
    nodes, inits, values, value_info = [], [], ["x"], []
    for i in range(draw(st.integers(1, 24))):
        x = values[-1]
        kind = draw(st.sampled_from(["conv", "bn", "relu", "sigmoid", "leaky", "add", "sum", "mul_const"]))
        if kind == "conv":
            op, inputs, attrs = _conv(draw, i, x, inits)
        elif kind == "bn":
            op, inputs, attrs = _batchnorm(draw, i, x, inits)
        elif kind in ("relu", "sigmoid"):
            op, inputs, attrs = kind.capitalize(), [x], {}
        elif kind == "leaky":
            op, inputs, attrs = "LeakyRelu", [x], {"alpha": draw(st.sampled_from([0.01, 0.2]))}
        elif kind == "add":
            op, inputs, attrs = "Add", [x, draw(st.sampled_from(values))], {}
        elif kind == "sum":
            op, inputs, attrs = "Sum", [x, *draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))], {}
        else:
            inits.append(numpy_helper.from_array(np.array(draw(st.sampled_from([0.5, 2.0])), np.float32), f"k{i}"))
            op, inputs, attrs = "Mul", [x, f"k{i}"], {}
        out = f"out{i}"
        nodes.append(helper.make_node(op, inputs, [out], name=draw(NAMES), **attrs))
        if draw(st.integers(0, 5)) == 0:
            value_info.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", C, 6, 6]))
        values.append(out)
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, 6, 6])],
                              [helper.make_tensor_value_info(values[-1], TensorProto.FLOAT, ["N", C, 6, 6])],
                              inits, value_info=value_info)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=random_chains())
def test_fast_and_general_ways_agree_on_random_chains(model, monkeypatch):
    _assert_same(model, monkeypatch, replays=False)


def test_an_undefined_input_is_reported_by_the_general_way_even_in_a_replayed_kind():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="one"), helper.make_node("Relu", ["a"], ["b"], name="two"),
             helper.make_node("Relu", ["nowhere"], ["y"], name="three")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    importer = importer_module.Importer(model, "m.onnx")
    with pytest.raises(SpecError, match="input 'nowhere' is not defined before its use") as info:
        importer.run()
    assert "three" in str(info.value)


# -- initializers read together ----------------------------------------------------------------

def _tensors() -> list[TensorProto]:
    rng = np.random.default_rng(3)
    arrays = {
        "w0": rng.standard_normal((2, 2, 3, 3)).astype(np.float32),
        "w1": rng.standard_normal((2, 2, 3, 3)).astype(np.float32),
        "big": rng.standard_normal((40, 40)).astype(np.float32),   # over the grouping limit
        "shape": np.array([1, -1], np.int64),
        "scalar": np.array(2.5, np.float32),                       # rank 0: read alone
        "half": rng.standard_normal((2, 2, 3, 3)).astype(np.float16),
        "mask": np.array([True, False, True]),
        "w2": rng.standard_normal((2, 2, 3, 3)).astype(np.float32),
        "empty": np.zeros((0, 3), np.float32),
    }
    tensors = [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    # stored in float_data, not raw bytes
    tensors.append(helper.make_tensor("listed", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0]))
    return tensors


def test_initializers_read_together_are_the_arrays_read_one_by_one():
    tensors = _tensors()
    together = read_tensors(tensors, read_tensor)
    assert [name for name, _ in together] == [t.name for t in tensors]
    for tensor, (_, arr) in zip(tensors, together):
        alone = read_tensor(tensor)
        assert (arr.dtype, arr.shape, arr.flags.writeable, arr.flags.c_contiguous) == \
            (alone.dtype, alone.shape, alone.flags.writeable, alone.flags.c_contiguous)
        assert arr.tobytes() == alone.tobytes()


def test_an_initializer_of_the_wrong_size_is_reported_in_order():
    tensors = _tensors()
    bad = numpy_helper.from_array(np.zeros((2, 2, 3, 3), np.float32), "bad")
    bad.raw_data = bad.raw_data[:-4]
    worse = numpy_helper.from_array(np.zeros((3,), np.int64), "worse")
    worse.raw_data = worse.raw_data[:-1]
    seen = []

    def read(tensor):
        seen.append(tensor.name)
        return read_tensor(tensor)

    with pytest.raises(ValueError):
        read_tensors([*tensors[:2], bad, *tensors[2:], worse], read)
    assert seen[-1] == "bad"  # the first bad tensor in the file's order is the one reported


# -- each node's fields read at once -------------------------------------------------------------

def test_rows_read_from_the_bytes_are_the_nodes_fields():
    model = _export("resnet", dynamo=False)
    data = model.SerializeToString()
    mirrored, plain = rows_module.node_rows(model.graph, data), rows_module.node_rows(model.graph, None)
    assert len(mirrored) == len(plain) == len(model.graph.node)
    for m, p, node in zip(mirrored, plain, model.graph.node):
        assert m[:5] == p[:5] and m[6:] == p[6:] == (node.name, len(node.metadata_props) > 0)
        assert p[5] is None and m[5] == tuple(a.SerializeToString() for a in node.attribute)


def test_rows_tell_which_nodes_have_metadata():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="none"), helper.make_node("Relu", ["a"], ["b"], name="one"),
             helper.make_node("Relu", ["b"], ["c"], name="two"), helper.make_node("Relu", ["c"], ["y"], name="empty")]
    nodes[1].metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'act']")
    nodes[2].metadata_props.add(key="k", value="v")
    nodes[2].metadata_props.add(key="l", value="w")
    nodes[3].metadata_props.add()  # (an empty entry: no bytes, still an entry)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    read, plain = rows_module.node_rows(model.graph, model.SerializeToString()), rows_module.node_rows(model.graph, None)
    assert [r[7] for r in read] == [r[7] for r in plain] == [False, True, True, True]
    assert [r[5] for r in read] == [()] * 4  # (read from the bytes)


def test_rows_fall_back_to_the_nodes_where_the_bytes_do_not_parse():
    model = _export("resnet", dynamo=False)
    node = model.graph.node[0]
    assert rows_module.node_rows(model.graph, b"\xff\xff")[0][5] is None  # not a message
    other = onnx.ModelProto()
    other.CopyFrom(model)
    del other.graph.node[1:]
    assert rows_module.node_rows(model.graph, other.SerializeToString())[0][5] is None  # not these nodes
    assert rows_module.node_rows(model.graph, None)[0][:5] == (node, node.op_type, node.domain, list(node.input),
                                                               list(node.output))
