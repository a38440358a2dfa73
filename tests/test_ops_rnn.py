"""LSTM and GRU: parity with ONNX LSTM/GRU (gate reordering, bidirectional, stacked), nn.LSTM/nn.GRU
agreement, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from archc.ops.weights import initialize
from archc.ops import registry
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, randomize, \
    spec_error
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
