"""ONNX LSTM and GRU nodes come back as archc's native lstm / gru: nn.LSTM / nn.GRU written here, exported
by both torch.onnx exporters, build to the same module type with the original state_dict bit for bit
(gate blocks back in PyTorch's order), layers merged into num_layers, computing what onnxruntime does.
Models that also return the final states: tests/test_ops_rnn_state.py."""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
from torch import nn  # noqa: E402

from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.lowering.spec_yaml import dump_spec, to_spec  # noqa: E402
from conftest import SPECS, check_against_onnxruntime  # noqa: E402
from ops_harness import randomized_module  # noqa: E402


class Encoder(nn.Module):
    """A recurrent encoder (Sutskever et al. 2014; Cho et al. 2014 for the GRU) returning the output
    sequence (tests/test_ops_rnn_state.py imports those returning their final state too)."""

    def __init__(self, cell: str, batch_first: bool, bidirectional: bool) -> None:
        super().__init__()
        self.rnn = getattr(nn, cell)(6, 5, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)

    def forward(self, x):
        return self.rnn(x)[0]


def _export(module: nn.Module, shape, path: str, dynamo: bool, dynamic: bool = False, extra: tuple = ()) -> str:
    """Export; ``dynamic`` (default exporter): batch and sequence length symbolic. ``extra``: further
    inputs after x (an initial state)."""
    options = {"dynamic_shapes": ({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")},)} if dynamic else {}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape), *extra), path, dynamo=dynamo, **options)
    return path


CASES = [(cell, batch_first, bidirectional, dynamo) for cell in ("LSTM", "GRU") for batch_first in (True, False)
         for bidirectional in (False, True) for dynamo in (False, True)]


@pytest.mark.parametrize("cell,batch_first,bidirectional,dynamo", CASES)
def test_recurrent_layers_come_back_native_with_the_original_state_dict(tmp_path, cell, batch_first,
                                                                        bidirectional, dynamo):
    source = randomized_module(Encoder(cell, batch_first, bidirectional))
    shape = (2, 7, 6) if batch_first else (7, 2, 6)
    path = _export(source, shape, str(tmp_path / "rnn.onnx"), dynamo)
    graph = load_onnx(path)
    (node,) = [n for n in graph.nodes() if n.op != "input"]
    assert node.op == cell.lower()
    assert (node.attrs["num_layers"], node.attrs["bidirectional"], node.attrs["batch_first"]) == \
        (2, bidirectional, batch_first)
    module = check_against_onnxruntime(path)
    (built,) = [m for m in module.modules() if isinstance(m, getattr(nn, cell))]
    original, rebuilt = source.rnn.state_dict(), built.state_dict()
    assert list(rebuilt) == list(original)
    for key, value in original.items():
        assert rebuilt[key].numpy().tobytes() == value.numpy().tobytes(), key


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_symbolic_batch_and_length_still_fuse(tmp_path, cell):
    path = _export(randomized_module(Encoder(cell, True, True)), (2, 7, 6), str(tmp_path / "dyn.onnx"), True, dynamic=True)
    graph = load_onnx(path)
    assert [n.op for n in graph.nodes()] == ["input", cell.lower()]
    check_against_onnxruntime(path)


def test_gru_without_linear_before_reset_is_not_fused(tmp_path):
    """ONNX's default GRU resets before the hidden linear map; PyTorch's nn.GRU does not."""
    rng = np.random.default_rng(0)
    w, r = rng.standard_normal((1, 9, 4)).astype(np.float32), rng.standard_normal((1, 9, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GRU", ["x", "W", "R"], ["y"], hidden_size=3)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 2, 3])],
        initializer=[onnx.numpy_helper.from_array(w, "W"), onnx.numpy_helper.from_array(r, "R")])
    path = str(tmp_path / "gru.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert [n.attrs["op_type"] for n in load_onnx(path).nodes() if n.op == "onnx_node"] == ["GRU"]


def test_spec_of_an_lstm_encoder_shows_the_lstm(tmp_path):
    path = _export(randomized_module(Encoder("LSTM", True, True)), (2, 7, 6), str(tmp_path / "enc.onnx"), True)
    spec, _ = to_spec(load_onnx(path))
    text = dump_spec(spec, path)
    assert "op: lstm" in text and "num_layers: 2" in text and "onnx_node" not in text


class StackedEncoder(nn.Module):
    """GNMT's encoder shape (Wu et al. 2016): a bidirectional LSTM, then unidirectional ones, each in
    its own entry of a ModuleList (``layers.0.lstm``, ``layers.1.lstm``)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleDict({"lstm": nn.LSTM(6, 4, batch_first=True, bidirectional=True)}),
                                     nn.ModuleDict({"lstm": nn.LSTM(8, 8, batch_first=True)})])

    def forward(self, x):
        for layer in self.layers:
            x = layer["lstm"](x)[0]
        return x


@pytest.mark.parametrize("source", ["archc", "torchscript", "dynamo"])
def test_stacked_lstms_import_under_their_own_module_names_and_build(tmp_path, source):
    """A fused LSTM that took in the next layer's input transpose is named after its own module,
    not after the container both share (``layers``, which would also contain the next LSTM)."""
    import onnxruntime as ort

    from archc import load_spec
    from archc.lowering.onnx import build_onnx
    from archc.lowering.torch import build_module

    path = tmp_path / "stacked.onnx"
    if source == "archc":
        spec = load_spec(str(SPECS / "gnmt_encoder.yaml"), overrides={"vocab_size": 50, "hidden": 8})
        path.write_bytes(build_onnx(spec, seed=0).SerializeToString())
        feeds = {"tokens": np.random.default_rng(0).integers(0, 50, (2, 5))}
    else:
        _export(randomized_module(StackedEncoder()), (2, 5, 6), str(path), dynamo=source == "dynamo")
        feeds = {onnx.load(str(path)).graph.input[0].name: np.random.default_rng(0).standard_normal((2, 5, 6)).astype(np.float32)}
    graph = load_onnx(str(path))
    names = [n.name for n in graph.nodes()]
    assert not [(a, b) for a in names for b in names if b.startswith(a + ".")]  # no node is another's container
    if source != "torchscript":  # (the TorchScript exporter names these modules 'lstm' only)
        lstms = [n for n in names if graph.node(n).op == "lstm"]
        assert all(name.startswith("layers.") and name.split(".")[1].isdigit() for name in lstms), lstms
    expected = ort.InferenceSession(str(path)).run(None, feeds)[0]
    with torch.no_grad():
        got = build_module(graph).eval()(*[torch.from_numpy(v) for v in feeds.values()])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


class StartedEncoder(nn.Module):
    """A two-layer encoder given its initial state, as a seq2seq decoder starts from the encoder's
    (Cho et al. 2014): ``rnn(x, h0)`` / ``rnn(x, (h0, c0))``."""

    def __init__(self, cell: str, batch_first: bool, bidirectional: bool) -> None:
        super().__init__()
        self.rnn = getattr(nn, cell)(6, 5, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)

    def forward(self, x, h0, c0=None):
        return self.rnn(x, h0 if c0 is None else (h0, c0))[0]


def _summary(capsys, path: str) -> dict:
    from archc.cli import main

    assert main(["summary", path, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("cell,batch_first,bidirectional,dynamo", CASES)
def test_an_initial_state_comes_back_as_the_native_ops_input(tmp_path, capsys, cell, batch_first, bidirectional,
                                                            dynamo):
    """The exporters slice each layer's rows of h0 (and c0) into initial_h (initial_c): the layers
    still merge into one native op reading the model's h0 whole, costing what the layer without a
    state does, and computing what onnxruntime does on the file."""
    source = randomized_module(StartedEncoder(cell, batch_first, bidirectional))
    shape = (2, 7, 6) if batch_first else (7, 2, 6)
    state = torch.randn(2 * (2 if bidirectional else 1), 2, 5)
    path = _export(source, shape, str(tmp_path / "started.onnx"), dynamo,
                   extra=(state, state + 1) if cell == "LSTM" else (state,))
    plain = _export(randomized_module(Encoder(cell, batch_first, bidirectional)), shape, str(tmp_path / "plain.onnx"),
                    dynamo)
    graph = load_onnx(path)
    (node,) = [n for n in graph.nodes() if n.op != "input"]
    assert node.op == cell.lower() and node.attrs["num_layers"] == 2
    assert [graph.node(v.node).op for v in node.inputs] == ["input"] * (3 if cell == "LSTM" else 2)
    ours, theirs = _summary(capsys, path), _summary(capsys, plain)
    assert ours["totals"]["macs"] == theirs["totals"]["macs"] > 0
    assert ours["total_params"] == theirs["total_params"]
    check_against_onnxruntime(path)


@pytest.mark.parametrize("dynamo", [False, True])
def test_one_layer_of_a_stack_given_its_state_slice_still_fuses(tmp_path, dynamo):
    """Only the second layer's rows of a state: the layers stay two native ops, each correct."""

    class SecondStarted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = nn.GRU(6, 5, batch_first=True), nn.GRU(5, 5, batch_first=True)

        def forward(self, x, h):
            return self.second(self.first(x)[0], h[1:])[0]

    path = _export(randomized_module(SecondStarted()), (2, 7, 6), str(tmp_path / "second.onnx"), dynamo,
                   extra=(torch.randn(2, 2, 5),))
    graph = load_onnx(path)
    assert [n.op for n in graph.nodes() if n.op not in ("input", "slice")] == ["gru", "gru"]
    check_against_onnxruntime(path)


def _hand_written(tmp_path, op: str, layout: int, states: list[str]) -> str:
    """One ONNX ``op`` (hidden 3, input 4, forward) reading x (5, 2, 4), or (2, 5, 4) with layout=1, and
    the run-time ``states`` named (``initial_h``, ``initial_c``) as graph inputs of ONNX's layout; its
    Y with the direction axis reshaped away."""
    rng = np.random.default_rng(0)
    gates = 4 if op == "LSTM" else 3
    w = rng.standard_normal((1, gates * 3, 4)).astype(np.float32)
    r = rng.standard_normal((1, gates * 3, 3)).astype(np.float32)
    x_shape, state_shape = ([2, 5, 4], [2, 1, 3]) if layout else ([5, 2, 4], [1, 2, 3])
    inputs = ["x", "W", "R", "", ""] + [s if s in states else "" for s in ("initial_h", "initial_c")[:gates - 2]]
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y4"], hidden_size=3, layout=layout, **attrs),
         helper.make_node("Reshape", ["y4", "shape"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
        + [helper.make_tensor_value_info(s, TensorProto.FLOAT, state_shape) for s in states],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, x_shape[:2] + [3])],
        initializer=[onnx.numpy_helper.from_array(w, "W"), onnx.numpy_helper.from_array(r, "R"),
                     onnx.numpy_helper.from_array(np.array(x_shape[:2] + [3], dtype=np.int64), "shape")])
    path = str(tmp_path / f"{op}.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_batch_major_state_is_permuted_to_pytorchs_layout(tmp_path):
    """ONNX's layout=1 states are (N, D, H); nn.GRU's h0 is (D, N, H) in either layout. (onnxruntime
    runs no layout=1 RNN: the reference is the same node in layout 0 on the transposed data.)"""
    import onnxruntime as ort

    from archc.lowering.torch import build_module

    (tmp_path / "batch_major").mkdir()
    graph = load_onnx(_hand_written(tmp_path / "batch_major", "GRU", 1, ["initial_h"]))
    assert [n.op for n in graph.nodes()] == ["input", "input", "permute", "gru"]
    rng = np.random.default_rng(1)
    x, h = rng.standard_normal((2, 5, 4)).astype(np.float32), rng.standard_normal((2, 1, 3)).astype(np.float32)
    time_major = ort.InferenceSession(_hand_written(tmp_path, "GRU", 0, ["initial_h"]))
    expected = time_major.run(None, {"x": x.transpose(1, 0, 2), "initial_h": h.transpose(1, 0, 2)})[0]
    with torch.no_grad():
        got = build_module(graph).eval()(torch.from_numpy(x), torch.from_numpy(h))
    np.testing.assert_allclose(got.numpy(), expected.transpose(1, 0, 2), rtol=1e-5, atol=1e-6)


def test_an_lstm_given_h0_but_no_c0_keeps_the_onnx_node(tmp_path):
    """The native lstm takes both states or neither; a zero c0 has no value to pass."""
    path = _hand_written(tmp_path, "LSTM", 0, ["initial_h"])
    assert [n.attrs["op_type"] for n in load_onnx(path).nodes() if n.op == "onnx_node"] == ["LSTM"]
    check_against_onnxruntime(path)
