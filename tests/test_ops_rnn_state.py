"""LSTM and GRU giving their final states (``return_state: true``), as ``out, h_n = gru(x, h0)`` and
``out, (h_n, c_n) = lstm(x)`` do in PyTorch: the states' values against nn.GRU / nn.LSTM written here
(both lowerings), the generated source and the tools it must work with, the ONNX import of models
that read Y_h / Y_c from both torch exporters, lint of a seq2seq encoder-decoder whichever way it
comes, and references to a state a node does not give."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from archc import SpecError, loads_spec
from archc.analysis.cost import costs
from archc.frontends.onnx import load_onnx
from archc.lowering.onnx import build_onnx
from archc.lowering.torch import build_module, generate_source
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, parity_suite, randomize, \
    randomized_module, run_onnx, run_torch

PARITY_OPS = {"lstm", "gru"}

CASES = [
    ("gru", "inputs: {x: [N, L, 4]}\nnodes: [{name: rnn, op: gru, hidden_size: 3, return_state: true}]\n"
     "outputs: [rnn, 'rnn:h_n']"),
    ("gru_stacked_bidirectional_time_major", "inputs: {x: [L, N, 5]}\nnodes: [{name: rnn, op: gru, hidden_size: 4, "
     "num_layers: 2, bidirectional: true, batch_first: false, return_state: true}]\noutputs: [rnn, 'rnn:1']"),
    ("lstm_stacked_bidirectional", "inputs: {x: [N, L, 5]}\nnodes: [{name: rnn, op: lstm, hidden_size: 4, "
     "num_layers: 2, bidirectional: true, return_state: true}]\noutputs: [rnn, 'rnn:h_n', 'rnn:c_n']"),
    ("lstm_started_no_bias", "inputs: {x: [N, L, 3], h0: [2, N, 2], c0: [2, N, 2]}\nnodes: [{name: rnn, op: lstm, "
     "in: [x, h0, c0], hidden_size: 2, num_layers: 2, bias: false, return_state: true}]\n"
     "outputs: {c: 'rnn:c_n', h: 'rnn:h_n'}"),
    ("gru_encoder_decoder", "inputs: {src: [N, S, 4], tgt: [N, T, 4]}\nnodes:\n"
     "  - {name: encoder, op: gru, in: src, hidden_size: 3, num_layers: 2, return_state: true}\n"
     "  - {name: decoder, op: gru, in: [tgt, 'encoder:h_n'], hidden_size: 3, num_layers: 2}"),
]

test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


def _spec(cell: str, layers: int, bidirectional: bool, batch_first: bool, started: bool) -> str:
    """One ``cell`` (4 -> 3) with return_state, its outputs the sequence and every final state; its
    initial states inputs where ``started``."""
    states = ["h0", "c0"] if cell == "lstm" else ["h0"]
    rows = layers * (2 if bidirectional else 1)
    x = "[N, L, 4]" if batch_first else "[L, N, 4]"
    inputs = ", ".join([f"x: {x}", *(f"{s}: [{rows}, N, 3]" for s in states if started)])
    reads = ", ".join(["x", *(states if started else [])])
    outputs = ", ".join(["rnn", "'rnn:h_n'", *(["'rnn:c_n'"] if cell == "lstm" else [])])
    return (f"inputs: {{{inputs}}}\nnodes: [{{name: rnn, op: {cell}, in: [{reads}], hidden_size: 3, "
            f"num_layers: {layers}, bidirectional: {str(bidirectional).lower()}, "
            f"batch_first: {str(batch_first).lower()}, return_state: true}}]\noutputs: [{outputs}]")


def _flat(result) -> list[torch.Tensor]:
    """nn.GRU's (out, h_n) or nn.LSTM's (out, (h_n, c_n)) as a flat list."""
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("started", [False, True])
def test_states_are_nn_grus_and_lstms(cell, layers, bidirectional, batch_first, started):
    """The sequence and each final state (D * num_layers, N, H), layer-major, whatever batch_first says,
    equal nn.GRU's / nn.LSTM's (loaded strictly from the built module's state_dict), in the built module
    and in onnxruntime (each layer's Y_h / Y_c concatenated)."""
    graph = randomize(graph_of(_spec(cell, layers, bidirectional, batch_first, started)))
    ours = module_of(graph, "rnn")
    ref = getattr(nn, cell.upper())(4, 3, num_layers=layers, bidirectional=bidirectional,
                                    batch_first=batch_first).eval()
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict(), strict=True)
    feeds = feeds_for(graph, {"N": 2, "L": 5})
    x, *states = (torch.from_numpy(feeds[name]) for name in graph.inputs)
    with torch.no_grad():
        expected = _flat(ref(x, (tuple(states) if cell == "lstm" else states[0]) if states else None))
    rows = layers * (2 if bidirectional else 1)
    assert [tuple(t.shape) for t in expected[1:]] == [(rows, 2, 3)] * (2 if cell == "lstm" else 1)
    for got in (run_torch(graph, feeds), run_onnx(graph, feeds)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-5)


def test_output_types_and_names():
    graph = graph_of(_spec("lstm", 2, True, False, False))
    node = graph.node("rnn")
    assert [t.shape for t in node.outputs] == [("L", "N", 6), (4, "N", 3), (4, "N", 3)]
    from archc.ops import registry

    assert registry.lookup("lstm").output_names(node) == ("y", "h_n", "c_n")
    assert registry.lookup("gru").output_names(graph_of(_spec("gru", 1, False, True, False)).node("rnn")) == \
        ("y", "h_n")


def test_the_final_state_adds_no_parameters_or_macs():
    sizes = {"N": 2, "L": 5}
    plain = graph_of("inputs: {x: [N, L, 4]}\nnodes: [{name: rnn, op: lstm, hidden_size: 3, num_layers: 2, "
                     "bidirectional: true}]")
    (ours,), (theirs,) = ([c for c in costs(g, sizes=sizes) if c.name == "rnn"]
                          for g in (graph_of(_spec("lstm", 2, True, True, False)), plain))
    assert (ours.params, ours.macs) == (theirs.params, theirs.macs) == (480, 2 * 5 * 2 * (4 * 3 * 7 + 4 * 3 * 9))


# -- the generated PyTorch ----------------------------------------------------------------------------

def _assert_ruff_clean(source: str, tmp_path: Path) -> None:
    """``ruff format --check`` and ruff's classic checks (as tests/test_torch_codegen.py runs them: an
    unpacked state nobody reads is no unused variable) pass on ``source``."""
    path = tmp_path / "generated.py"
    path.write_text(source)
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    for command in (["format", "--check", "--diff"], ["check", "--select", "E4,E7,E9,F,B006"]):
        check = subprocess.run([ruff, *command, "--no-cache", "--isolated", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("cell,started,line", [
    ("gru", False, "rnn, rnn_h_n = self.rnn(x)"),
    ("gru", True, "rnn, rnn_h_n = self.rnn(x, h0)"),
    ("lstm", False, "rnn, (rnn_h_n, rnn_c_n) = self.rnn(x)"),
    ("lstm", True, "rnn, (rnn_h_n, rnn_c_n) = self.rnn(x, (h0, c0))"),
])
def test_the_forward_unpacks_as_pytorch_does(tmp_path, cell, started, line):
    source = generate_source(graph_of(_spec(cell, 2, True, True, started)))
    assert f"        {line}\n" in source
    _assert_ruff_clean(source, tmp_path)


def test_a_long_unpacking_is_split_as_ruff_splits_it(tmp_path):
    name = "a_rather_long_recurrent_encoder_name"
    source = generate_source(graph_of(
        f"inputs: {{x: [N, L, 4]}}\nnodes: [{{name: {name}, op: lstm, hidden_size: 3, return_state: true}}]\n"
        f"outputs: [{name}, '{name}:c_n']"))
    assert f"            (\n                {name}_h_n,\n                {name}_c_n,\n            ),\n" in source
    _assert_ruff_clean(source, tmp_path)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("started", [False, True])
def test_traces_scripts_and_exports_with_a_dynamic_batch(cell, started):
    """torch.fx, torch.jit.script and torch.export (batch dynamic: run at another batch) compute
    what the module does, states included."""
    graph = randomize(graph_of(_spec(cell, 2, True, True, started)))
    module = build_module(graph).eval()

    def arguments(batch: int) -> tuple[torch.Tensor, ...]:
        feeds = feeds_for(graph, {"N": batch, "L": 5})
        return tuple(torch.from_numpy(feeds[name]) for name in graph.inputs)

    batch = torch.export.Dim("batch")
    dynamic = ({0: batch}, *[{1: batch}] * (len(graph.inputs) - 1))  # the states' batch is their dim 1
    args, other = arguments(2), arguments(3)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        exported = torch.export.export(module, args, dynamic_shapes=dynamic).module()
        for traced in (torch.fx.symbolic_trace(module), torch.jit.script(module), exported):
            for inputs in (args, other):
                for got, expected in zip(traced(*inputs), module(*inputs), strict=True):
                    torch.testing.assert_close(got, expected)


# -- bad references ----------------------------------------------------------------------------------

def _diagnostics(text: str) -> list[str]:
    """Each error the spec ``text`` (read as ``m.yaml``) is refused with, as the CLI prints it."""
    with pytest.raises(SpecError) as info:
        loads_spec("name: m\n" + text, "m.yaml")
    return [d.format() for d in info.value.diagnostics]


@pytest.mark.parametrize("text,message", [
    ("inputs: {x: [N, L, 4]}\nnodes:\n  - {name: rnn, op: gru, hidden_size: 3}\n"
     "  - {name: y, op: relu, in: 'rnn:h_n'}",
     "m.yaml:5:29: error: node 'y': 'rnn' has no output 'h_n'; it has 1 output: y "
     "(set 'return_state: true' to get gru's final state h_n as output 1)"),
    ("inputs: {x: [N, L, 4]}\nnodes: [{name: rnn, op: lstm, hidden_size: 3}]\noutputs: [rnn, 'rnn:2']",
     "m.yaml:4:16: error: 'rnn' has no output '2'; it has 1 output: y "
     "(set 'return_state: true' to get lstm's final states h_n, c_n as outputs 1, 2)"),
    ("inputs: {x: [N, L, 4]}\nnodes: [{name: rnn, op: gru, hidden_size: 3, return_state: true}]\n"
     "outputs: [rnn, 'rnn:c_n']",
     "m.yaml:4:16: error: 'rnn' has no output 'c_n'; it has 2 outputs: y, h_n (did you mean 'h_n'?)"),
    ("inputs: {x: [N, L, 4]}\nnodes: [{name: rnn, op: lstm, hidden_size: 3, return_state: true}]\n"
     "outputs: [rnn, 'rnn:3']",
     "m.yaml:4:16: error: 'rnn' has no output '3'; it has 3 outputs: y, h_n, c_n"),
    ("inputs: {src: [N, S, 4], tgt: [N, T, 4]}\nnodes:\n"
     "  - {name: encoder, op: gru, in: src, hidden_size: 3, return_state: true}\n"
     "  - {name: decoder, op: gru, in: [tgt, 'encoder:h_n'], hidden_size: 3, num_layers: 2}",
     "m.yaml:5:5: error: node 'decoder': gru: initial state h0 must be (D * num_layers, N, H) = (2, N, 3) like "
     "nn.GRU's, got (1, N, 3) [inputs: tgt (N, T, 4), encoder:1 (1, N, 3)]"),
    ("inputs: {x: [N, L, 4]}\nnodes: [{name: rnn, op: gru, hidden_size: 3, return_state: 2}]",
     "m.yaml:3:60: error: node 'rnn': attribute 'return_state' of op 'gru' expects true or false, got 2"),
], ids=["no_state_by_name", "no_state_by_index", "gru_has_no_c_n", "index_past_the_states", "state_too_few_layers",
        "return_state_not_a_bool"])
def test_a_state_a_node_does_not_give_is_refused_where_it_is_asked_for(text, message):
    assert _diagnostics(text) == [message]


# -- ONNX import: models reading Y_h (Y_c), from both torch exporters -----------------------------------

class StatefulEncoder(nn.Module):
    """A recurrent encoder returning its output and final states (Sutskever et al. 2014; Cho et al.
    2014): ``out, h_n = gru(x[, h0])``, ``out, (h_n, c_n) = lstm(x[, (h0, c0)])``."""

    def __init__(self, cell: str, layers: int, bidirectional: bool, batch_first: bool) -> None:
        super().__init__()
        self.rnn = getattr(nn, cell)(6, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)

    def forward(self, x, *state):
        if not state:
            return tuple(_flat(self.rnn(x)))
        return tuple(_flat(self.rnn(x, state if len(state) == 2 else state[0])))


def _export(module: nn.Module, args: tuple, path: Path, dynamo: bool) -> str:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=dynamo)
    return str(path)


def _arguments(cell: str, layers: int, bidirectional: bool, batch_first: bool, started: bool) -> tuple:
    """x (batch 2, length 7, 6 features) and, where ``started``, distinct initial states."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((2, 7, 6) if batch_first else (7, 2, 6), generator=gen)
    rows = layers * (2 if bidirectional else 1)
    states = [torch.randn(rows, 2, 5, generator=gen) for _ in range(2 if cell == "LSTM" else 1)] if started else []
    return (x, *states)


def _matches_onnxruntime_and_the_source(graph, path: str, source: nn.Module, args: tuple) -> None:
    """The module built from ``graph`` computes what onnxruntime does on the file and what the source
    module does, every output."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    expected = session.run(None, feeds)
    with torch.no_grad():
        got = build_module(graph).eval()(*args)
        original = source(*args)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected) == len(original)
    for g, e, o in zip(got, expected, original):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g.numpy(), o.numpy(), rtol=1e-4, atol=1e-5)


IMPORT_CASES = [(cell, layers, bidirectional, batch_first, started, dynamo)
                for dynamo in (False, True) for cell in ("GRU", "LSTM") for layers in (1, 2)
                for bidirectional in (False, True) for batch_first in (True, False) for started in (False, True)]


def _quick(case: tuple) -> bool:
    """The cases run by default: every TorchScript export, and the default exporter's (seconds each) on
    two-layer bidirectional models (its one-layer ones: test_a_model_reading_only_the_final_state...)."""
    _, layers, bidirectional, _, _, dynamo = case
    return not dynamo or (layers == 2 and bidirectional)


@pytest.mark.parametrize("cell,layers,bidirectional,batch_first,started,dynamo",
                         [c if _quick(c) else pytest.param(*c, marks=pytest.mark.slow) for c in IMPORT_CASES])
def test_final_states_read_import_as_the_native_op(tmp_path, cell, layers, bidirectional, batch_first, started,
                                                  dynamo):
    """Y_h (and Y_c) of each layer's ONNX node, concatenated over the layers as the exporters write h_n,
    come back as the native op's state outputs: one node, nn's state_dict bit for bit, computing what
    onnxruntime and the source module do."""
    source = randomized_module(StatefulEncoder(cell, layers, bidirectional, batch_first))
    args = _arguments(cell, layers, bidirectional, batch_first, started)
    path = _export(source, args, tmp_path / "stateful.onnx", dynamo)
    graph = load_onnx(path)
    (node,) = [n for n in graph.nodes() if n.op != "input"]
    assert node.op == cell.lower()
    assert {k: node.attrs[k] for k in ("num_layers", "bidirectional", "batch_first", "return_state")} == \
        {"num_layers": layers, "bidirectional": bidirectional, "batch_first": batch_first, "return_state": True}
    assert [(v.node, v.out) for v in graph.outputs.values()] == [(node.name, k) for k in range(len(node.outputs))]
    (built,) = [m for m in build_module(graph).modules() if isinstance(m, getattr(nn, cell))]
    rebuilt, original = built.state_dict(), source.rnn.state_dict()
    assert list(rebuilt) == list(original)
    assert all(rebuilt[k].numpy().tobytes() == v.numpy().tobytes() for k, v in original.items())
    _matches_onnxruntime_and_the_source(graph, path, source, args)


def test_the_spec_of_an_imported_model_gives_its_states(tmp_path):
    """``archc spec`` of a file whose states are read writes the op with return_state and the graph
    outputs as its ports; the spec reads back to the same outputs."""
    from archc.lowering.spec_yaml import dump_spec, to_spec

    args = _arguments("LSTM", 2, True, True, True)
    path = _export(randomized_module(StatefulEncoder("LSTM", 2, True, True)), args, tmp_path / "lstm.onnx", False)
    graph = load_onnx(path)
    text = dump_spec(to_spec(graph)[0], path)
    assert "return_state: true" in text and "onnx_node" not in text
    again = loads_spec(text)
    (node,) = [n for n in again.nodes() if n.op != "input"]
    assert (node.op, node.attrs["return_state"]) == ("lstm", True)
    assert [(v.node, v.out) for v in again.outputs.values()] == [(node.name, 0), (node.name, 1), (node.name, 2)]
    assert [again.type_of(v).shape for v in again.outputs.values()] == [(2, 7, 10), (4, 2, 5), (4, 2, 5)]


class FinalStateOnly(nn.Module):
    """A sentence encoder read by its final state only (``_, h_n = gru(x)``), whole or its last layer's
    last direction (``h_n[-1]``), as classifiers and seq2seq encoders read it."""

    def __init__(self, layers: int, last: bool) -> None:
        super().__init__()
        self.rnn = nn.GRU(6, 5, num_layers=layers, batch_first=True, bidirectional=True)
        self.last = last

    def forward(self, x):
        h_n = self.rnn(x)[1]
        return h_n[-1] if self.last else h_n


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("layers,last", [(1, False), (2, False), (3, False), (2, True)])
def test_a_model_reading_only_the_final_state_imports_native(tmp_path, dynamo, layers, last):
    """The sequence output is read by no one (the last layer's Y feeds nothing): still one native op,
    its state the model's; three layers' Y_h in one Concat merge pairwise into one."""
    source = randomized_module(FinalStateOnly(layers, last))
    args = (torch.randn(2, 7, 6, generator=torch.Generator().manual_seed(2)),)
    path = _export(source, args, tmp_path / "final.onnx", dynamo)
    graph = load_onnx(path)
    (node,) = [n for n in graph.nodes() if n.op == "gru"]
    assert (node.attrs["num_layers"], node.attrs["return_state"]) == (layers, True)
    assert not [n for n in graph.nodes() if n.op in ("onnx_node", "concat")]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {session.get_inputs()[0].name: args[0].numpy()})
    with torch.no_grad():
        got = build_module(graph).eval()(*args)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.numpy(), source(*args).numpy(), rtol=1e-4, atol=1e-5)


class TwoEncoders(nn.Module):
    """Two single-layer GRUs in series, each final state returned on its own (not one h_n)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.GRU(6, 5, batch_first=True), nn.GRU(5, 5, batch_first=True)

    def forward(self, x):
        out, h_first = self.first(x)
        out, h_second = self.second(out)
        return out, h_first, h_second


@pytest.mark.parametrize("dynamo", [False, True])
def test_stacked_layers_whose_states_are_read_apart_stay_two_native_ops(tmp_path, dynamo):
    """Their states are no rows of one tensor: the layers do not merge (one op would give one h_n)."""
    source = randomized_module(TwoEncoders())
    args = (torch.randn(2, 7, 6, generator=torch.Generator().manual_seed(3)),)
    path = _export(source, args, tmp_path / "two.onnx", dynamo)
    graph = load_onnx(path)
    assert [(n.op, n.attrs["return_state"]) for n in graph.nodes() if n.op != "input"] == [("gru", True)] * 2
    _matches_onnxruntime_and_the_source(graph, path, source, args)


def test_a_batch_major_final_state_keeps_the_onnx_node(tmp_path):
    """ONNX's layout=1 Y_h is (N, D, H), PyTorch's (D, N, H); no torch exporter writes it, and the node
    stays an onnx_node rather than fuse with an adapter on the state."""
    rng = np.random.default_rng(0)
    w, r = rng.standard_normal((1, 9, 4)).astype(np.float32), rng.standard_normal((1, 9, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GRU", ["x", "W", "R"], ["y", "y_h"], hidden_size=3, layout=1, linear_before_reset=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 1, 3]),
         helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [2, 1, 3])],
        initializer=[onnx.numpy_helper.from_array(w, "W"), onnx.numpy_helper.from_array(r, "R")])
    path = tmp_path / "batch_major.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert [n.attrs["op_type"] for n in load_onnx(str(path)).nodes() if n.op == "onnx_node"] == ["GRU"]


def _json(run_archc, *args: str) -> dict:
    return json.loads(run_archc(*args, "--format", "json", check=True).stdout)


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_summary_and_lint_of_both_exports_are_the_specs(tmp_path, run_archc, cell):
    """``archc summary`` and ``archc lint`` (the installed command) on both exporters' files of a started
    two-layer bidirectional encoder returning its states say what they say of the spec of that model:
    the layer's MACs (not 0, as an onnx_node's) and parameters; one join, the layer reading x and its
    initial state (the exporters' Concat of the layers' final states is gone)."""
    spec = tmp_path / "spec.yaml"
    states = ["h0", "c0"] if cell == "LSTM" else ["h0"]
    inputs = ", ".join(["x: [2, 7, 6]", *(f"{s}: [4, 2, 5]" for s in states)])
    finals = ", ".join(f"'rnn:{k}'" for k in range(1, 1 + len(states)))  # h_n (and c_n), as the module returns
    spec.write_text(f"name: encoder\ninputs: {{{inputs}}}\nnodes:\n"
                    f"  - {{name: rnn, op: {cell.lower()}, in: [x, {', '.join(states)}], hidden_size: 5, "
                    f"num_layers: 2, bidirectional: true, return_state: true}}\n"
                    f"outputs: [rnn, {finals}]\n")
    source = randomized_module(StatefulEncoder(cell, 2, True, True))
    args = _arguments(cell, 2, True, True, True)
    expected, lint = _json(run_archc, "summary", str(spec)), _lint_view(run_archc, str(spec))
    assert expected["totals"]["macs"] > 0
    assert lint[:3] == ([("branch", cell.lower(), "None", "None")], {"residual": 0, "long_skip": 0, "dense": 0,
                                                                      "gated": 0}, {"branch": 1, "sequential": 0})
    for dynamo in (False, True):
        path = _export(source, args, tmp_path / f"encoder_{dynamo}.onnx", dynamo)
        summary = _json(run_archc, "summary", path)
        assert (summary["totals"]["macs"], summary["total_params"]) == \
            (expected["totals"]["macs"], expected["total_params"])
        assert [row["op"] for row in summary["nodes"] if row["op"] != "input"] == [cell.lower()]
        assert _lint_view(run_archc, path) == lint


# -- lint of a seq2seq encoder-decoder, from the spec, archc's ONNX and the generated module's exports --

ENCODER_DECODER = """name: seq2seq
inputs: {src: [N, S, 16], tgt: [N, T, 16]}
example_dims: {S: 7, T: 5}
nodes:
  - {name: encoder, op: gru, in: src, hidden_size: 32, return_state: true}
  - {name: decoder, op: gru, in: [tgt, "encoder:h_n"], hidden_size: 32}
  - {name: attention, op: multi_head_attention, in: [decoder, encoder, encoder], num_heads: 1}
  - {name: context, op: concat, in: [decoder, attention], axis: -1}
  - {name: proj, op: linear, out_features: 10}
"""


def _lint_view(run_archc, path: str) -> tuple:
    """What lint says of a model, without its node names (each exporter chooses its own): each join's
    kind, merge op, what its shortcut carries and its span in layers; the counts; the path figures."""
    lint = _json(run_archc, "lint", path)
    joins = sorted((j["kind"], j["merge_op"], str(j["carries"]), str(j["span"]["layers"]))
                   for j in lint["skips"] + lint["joins"])
    paths = lint["paths"]
    return joins, lint["summary"], lint["joins_summary"], (paths["total"], paths["shortest"], paths["longest"])


def test_an_encoder_decoder_lints_alike_from_the_spec_archcs_onnx_and_both_exports(tmp_path, run_archc):
    """The decoder started from the encoder's h_n (Cho et al. 2014) with attention over the encoder's
    outputs (Bahdanau et al. 2015; Luong et al. 2015's concat of the decoder state and the context):
    the decoder joins two inputs of no common fork (a branch), attention reads the encoder by two
    paths, its outputs and, through the decoder, its state (a branch), and the concat reuses the
    decoder's output (dense) — the state is the encoder's output as its sequence is, no skip of its
    own. archc's ONNX of it and torch.onnx.export of the generated module (both exporters) lint alike."""
    spec = tmp_path / "seq2seq.yaml"
    spec.write_text(ENCODER_DECODER)
    expected = _lint_view(run_archc, str(spec))
    assert expected == (
        [("branch", "gru", "None", "None"), ("branch", "multi_head_attention", "identity", "1"),
         ("dense", "concat", "identity", "1")],
        {"residual": 0, "long_skip": 0, "dense": 1, "gated": 0}, {"branch": 2, "sequential": 0}, (6, 2, 4))
    graph = loads_spec(ENCODER_DECODER)
    archc_onnx = tmp_path / "archc.onnx"
    archc_onnx.write_bytes(build_onnx(graph, seed=0).SerializeToString())
    module = build_module(graph, seed=0).eval()
    args = (torch.randn(2, 7, 16), torch.randn(2, 5, 16))
    paths = [str(archc_onnx)] + [_export(module, args, tmp_path / f"torch_{dynamo}.onnx", dynamo)
                                 for dynamo in (False, True)]
    for path in paths:
        assert [n.op for n in load_onnx(path).nodes() if n.op == "gru"] == ["gru", "gru"], path
        assert _lint_view(run_archc, path) == expected, path
