"""LSTM and GRU: parity with ONNX LSTM/GRU (gate reordering, bidirectional, stacked), nn.LSTM/nn.GRU
agreement, with and without an initial state, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from archc.lowering.torch import build_module
from archc.ops.weights import initialize
from archc.ops import registry
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, randomize, \
    run_onnx, run_torch, spec_error
from ops_harness import parity_suite

PARITY_OPS = {"lstm", "gru"}

CASES = [
    ("one_layer", "inputs: {x: [N, L, 4]}\nnodes: [{op: lstm, hidden_size: 3}]"),
    ("bidirectional", "inputs: {x: [N, L, 4]}\nnodes: [{op: lstm, hidden_size: 3, bidirectional: true}]"),
    ("stacked_bidirectional", "inputs: {x: [N, L, 5]}\n"
     "nodes: [{op: lstm, hidden_size: 4, num_layers: 2, bidirectional: true}]"),
    ("stacked_no_bias", "inputs: {x: [N, L, 3]}\nnodes: [{op: lstm, hidden_size: 2, num_layers: 3, bias: false}]"),
    ("time_major", "inputs: {x: [L, N, 4]}\n"
     "nodes: [{op: lstm, hidden_size: 3, batch_first: false, bidirectional: true}]"),
    ("then_linear", "inputs: {x: [N, T, 4]}\nnodes: [{op: lstm, hidden_size: 6}, {op: linear, out_features: 2}]"),
    ("gru", "inputs: {x: [N, L, 4]}\nnodes: [{op: gru, hidden_size: 3}]"),
    ("gru_stacked_bidirectional", "inputs: {x: [N, L, 5]}\n"
     "nodes: [{op: gru, hidden_size: 4, num_layers: 2, bidirectional: true}]"),
    ("gru_time_major_no_bias", "inputs: {x: [L, N, 3]}\n"
     "nodes: [{op: gru, hidden_size: 2, batch_first: false, bias: false}]"),
    ("gru_initial_state", "inputs: {x: [N, L, 5], h0: [4, N, 3]}\n"
     "nodes: [{op: gru, in: [x, h0], hidden_size: 3, num_layers: 2, bidirectional: true}]"),
    ("lstm_initial_state_no_bias", "inputs: {x: [L, N, 5], h0: [2, N, 3], c0: [2, N, 3]}\n"
     "nodes: [{op: lstm, in: [x, h0, c0], hidden_size: 3, num_layers: 2, batch_first: false, bias: false}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("op", ["lstm", "gru"])
@pytest.mark.parametrize("attrs,kwargs", [
    ("hidden_size: 4, num_layers: 2, bidirectional: true", dict(num_layers=2, bidirectional=True)),
    ("hidden_size: 4, bias: false", dict(bias=False)),
])
def test_matches_nn_lstm_and_gru(op, attrs, kwargs):
    graph = randomize(graph_of(f"inputs: {{x: [N, L, 5]}}\nnodes: [{{name: rnn, op: {op}, {attrs}}}]"))
    module = torch.nn.LSTM if op == "lstm" else torch.nn.GRU
    ours, ref = module_of(graph, "rnn"), module(5, 4, batch_first=True, **kwargs).eval()
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict())
    x = torch.from_numpy(feeds_for(graph)["x"])
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x)[0])
    assert graph.type_of(graph.outputs["output"]).shape == ("N", "L", 4 * (2 if "bidirectional" in kwargs else 1))


def test_state_dict_names_and_shapes():
    graph = graph_of("inputs: {x: [N, L, 5]}\nnodes: [{name: rnn, op: lstm, hidden_size: 4, num_layers: 2, "
                     "bidirectional: true}]")
    w = initialize(graph, 0).weights["rnn"]
    assert w["weight_ih_l0"].shape == (16, 5) and w["weight_ih_l1_reverse"].shape == (16, 8)
    assert w["weight_hh_l1"].shape == (16, 4) and w["bias_hh_l0_reverse"].shape == (16,)
    assert len(w) == 16
    # nn.LSTM draws everything from U(-1/sqrt(H), 1/sqrt(H))
    assert all(np.abs(a).max() <= 1 / math.sqrt(4) for a in w.values())


def test_role_is_layer():
    graph = graph_of(CASES[0][1])
    node = list(graph.nodes())[-1]
    assert registry.lookup(node.op).role_of(node) == "layer"


@pytest.mark.parametrize("inputs,text,message", [
    ("[N, L]", "{op: lstm, hidden_size: 3}", "expected a 3-D input (N, S, features), got 2-D (N, L)"),
    ("[L, N]", "{op: lstm, hidden_size: 3, batch_first: false}", "expected a 3-D input (S, N, features)"),
    ("[N, L, F]", "{op: lstm, hidden_size: 3}", "input features (last dim) must be a known size, got symbolic 'F'"),
    ("[N, L, 4]", "{op: lstm, hidden_size: 0}", "attribute 'hidden_size' of op 'lstm' must be at least 1, got 0"),
])
def test_errors(inputs, text, message):
    msg = spec_error(f"inputs: {{x: {inputs}}}\nnodes: [{text}]")
    assert message in msg


def _with_initial_state(cell: str, layers: int, bidirectional: bool, batch_first: bool) -> str:
    """A spec of one ``cell`` layer (4 -> 3) reading x and its initial state(s), (D * layers, N, 3)."""
    states = ["h0", "c0"] if cell == "lstm" else ["h0"]
    rows = layers * (2 if bidirectional else 1)
    x = "[N, L, 4]" if batch_first else "[L, N, 4]"
    inputs = ", ".join([f"x: {x}", *(f"{s}: [{rows}, N, 3]" for s in states)])
    return (f"inputs: {{{inputs}}}\nnodes: [{{name: rnn, op: {cell}, in: [x, {', '.join(states)}], hidden_size: 3, "
            f"num_layers: {layers}, bidirectional: {str(bidirectional).lower()}, "
            f"batch_first: {str(batch_first).lower()}}}]")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_initial_state_matches_nn_lstm_and_gru(cell, layers, bidirectional, batch_first):
    """``self.rnn(x, h0)`` / ``self.rnn(x, (h0, c0))`` of nn.GRU / nn.LSTM, in the built module and in
    onnxruntime (each layer's ONNX node reading its D rows of the state)."""
    graph = randomize(graph_of(_with_initial_state(cell, layers, bidirectional, batch_first)))
    ref = getattr(torch.nn, cell.upper())(4, 3, num_layers=layers, bidirectional=bidirectional,
                                           batch_first=batch_first).eval()
    ref.load_state_dict(module_of(graph, "rnn").state_dict())
    feeds = feeds_for(graph, {"N": 2, "L": 5})
    x, *states = (torch.from_numpy(feeds[name]) for name in graph.inputs)
    with torch.no_grad():
        expected, _ = ref(x, tuple(states) if cell == "lstm" else states[0])
        zero_state, _ = ref(x)
    assert not torch.allclose(expected, zero_state)  # the state matters, so the check below can fail
    np.testing.assert_allclose(run_torch(graph, feeds)[0], expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run_onnx(graph, feeds)[0], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_initial_state_adds_no_macs_or_parameters():
    """The state is an input, not a parameter, and costs no multiply-accumulates of its own."""
    from archc.analysis.cost import costs

    with_state = graph_of(_with_initial_state("gru", 2, True, True))
    without = graph_of("inputs: {x: [N, L, 4]}\nnodes: [{name: rnn, op: gru, hidden_size: 3, num_layers: 2, "
                       "bidirectional: true}]")
    sizes = {"N": 2, "L": 5}
    (ours,), (plain,) = ([c for c in costs(g, sizes=sizes) if c.name == "rnn"] for g in (with_state, without))
    assert (ours.params, ours.macs) == (plain.params, plain.macs) == (360, 2 * 5 * 2 * (3 * 3 * 7 + 3 * 3 * 9))


@pytest.mark.parametrize("inputs,text,message", [
    ("{x: [N, L, 4], h0: [1, N, 3]}", "{op: lstm, in: [x, h0], hidden_size: 3}",
     "lstm takes its initial state as h0, c0 after x (in: [x, h0, c0]), all of them or none; got 1 of 2"),
    ("{x: [N, L, 4], h0: [1, N, 3]}", "{op: gru, in: [x, h0], hidden_size: 3, bidirectional: true}",
     "initial state h0 must be (D * num_layers, N, H) = (2, N, 3) like nn.GRU's, got"),
    ("{x: [2, L, 4], h0: [1, 3, 3]}", "{op: gru, in: [x, h0], hidden_size: 3}",
     "initial state h0 must be (D * num_layers, N, H) = (1, 2, 3)"),
    ("{x: [L, 2, 4], h0: [2, 3]}", "{op: gru, in: [x, h0], hidden_size: 3, batch_first: false}",
     "initial state h0 must be (D * num_layers, N, H) = (1, 2, 3)"),
    ("{x: [N, L, 4], h0: [1, N, 3], c0: {shape: [1, N, 3], dtype: float64}}",
     "{op: lstm, in: [x, h0, c0], hidden_size: 3}", "initial state c0 must be float32 like x, got float64"),
])
def test_initial_state_errors(inputs, text, message):
    assert message in spec_error(f"inputs: {inputs}\nnodes: [{text}]")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_initial_state_traces_scripts_and_exports(cell):
    """The generated ``self.rnn(x, h0)`` / ``(x, (h0, c0))`` works with torch.fx, jit.script and
    torch.export, and each computes what the module does."""
    graph = randomize(graph_of(_with_initial_state(cell, 1, True, True)))
    module = build_module(graph).eval()
    feeds = feeds_for(graph, {"N": 2, "L": 5})
    args = tuple(torch.from_numpy(feeds[name]) for name in graph.inputs)
    with torch.no_grad():
        expected = module(*args)
        for traced in (torch.fx.symbolic_trace(module), torch.jit.script(module),
                       torch.export.export(module, args).module()):
            torch.testing.assert_close(traced(*args), expected)
