"""Embedding: parity (ONNX Gather), agreement with nn.Embedding, N(0, 1) init, errors."""
from __future__ import annotations

import numpy as np
import torch

from archc.ops.weights import initialize
from archc.ops import registry
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, randomize, \
    spec_error
from ops_harness import parity_suite

PARITY_OPS = {"embedding"}

CASES = [
    ("tokens", "inputs: {ids: {shape: [N, L], dtype: int64}}\n"
     "nodes: [{op: embedding, num_embeddings: 11, embedding_dim: 6}]"),
    ("flat_int32", "inputs: {ids: {shape: [N], dtype: int32}}\n"
     "nodes: [{op: embedding, num_embeddings: 11, embedding_dim: 3}]"),
    ("then_layer", "inputs: {ids: {shape: [N, 2, L], dtype: int64}}\n"
     "nodes: [{op: embedding, num_embeddings: 11, embedding_dim: 4}, {op: linear, out_features: 3}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS, high={"ids": 11})


def test_matches_nn_embedding():
    graph = randomize(graph_of("inputs: {ids: {shape: [N, L], dtype: int64}}\n"
                               "nodes: [{name: emb, op: embedding, num_embeddings: 11, embedding_dim: 6}]"))
    ours, ref = module_of(graph, "emb"), torch.nn.Embedding(11, 6)
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict())
    ids = torch.from_numpy(feeds_for(graph, high={"ids": 11})["ids"])
    torch.testing.assert_close(ours(ids), ref(ids))
    assert graph.type_of(graph.outputs["output"]).shape == ("N", "L", 6)


def test_init_is_standard_normal():
    graph = graph_of("inputs: {ids: {shape: [N], dtype: int64}}\n"
                     "nodes: [{name: emb, op: embedding, num_embeddings: 500, embedding_dim: 40}]")
    table = initialize(graph, 3).weights["emb"]["weight"]
    assert table.dtype == np.float32 and table.shape == (500, 40)
    assert abs(table.mean()) < 0.02 and abs(table.std() - 1.0) < 0.02


def test_role_is_layer():
    graph = graph_of(CASES[0][1])
    node = list(graph.nodes())[-1]
    assert registry.lookup(node.op).role_of(node) == "layer"


def test_needs_integer_ids():
    msg = spec_error("inputs: {x: [N, L]}\nnodes: [{name: emb, op: embedding, num_embeddings: 5, embedding_dim: 2}]")
    assert "node 'emb'" in msg and "expected integer token ids (int64), got float32 (N, L)" in msg


def test_needs_positive_sizes():
    msg = spec_error("inputs: {ids: {shape: [N], dtype: int64}}\n"
                     "nodes: [{op: embedding, num_embeddings: 0, embedding_dim: 2}]")
    assert "attribute 'num_embeddings' of op 'embedding' must be at least 1, got 0" in msg
