"""Element-wise arithmetic, scale, mean and matmul: parity, inferred shapes, errors, roles."""
from __future__ import annotations

import numpy as np
import pytest

from archc.ops import registry
from ops_harness import check_parity, graph_of, spec_error
from ops_harness import parity_suite

PARITY_OPS = {"mul", "sub", "div", "scale", "mean", "matmul"}

CASES = [
    ("mul_same", "inputs: {x: [N, 3, 5], y: [N, 3, 5]}\nnodes: [{op: mul, in: [x, y]}]"),
    ("mul_gate", "inputs: {x: [N, 4, 5, 3], y: [N, 4, 1, 1]}\n"
     "nodes: [{name: g, op: sigmoid, in: y}, {op: mul, in: [x, g]}]"),
    ("mul_self", "inputs: {x: [N, 3]}\nnodes: [{op: mul, in: [x, x]}]"),
    ("sub_broadcast_rank", "inputs: {x: [N, 3, 4], y: [4]}\nnodes: [{op: sub, in: [x, y]}]"),
    ("sub_both_sides", "inputs: {x: [N, 1, 4], y: [3, 1]}\nnodes: [{op: sub, in: [y, x]}]"),
    ("div", "inputs: {x: [N, 3, 4], y: [N, 3, 1]}\n"
     "nodes: [{name: d, op: sigmoid, in: y}, {op: div, in: [x, d]}]"),
    ("scale", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 0.17}]"),
    ("scale_negative_int", "inputs: {x: [N, 2]}\nnodes: [{op: scale, factor: -3}]"),
    ("mean_tokens", "inputs: {x: [N, 6, 4]}\nnodes: [{op: mean, dims: 1}]"),
    ("mean_keepdim", "inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: mean, dims: [2, 3], keepdim: true}]"),
    ("mean_negative_dims", "inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: mean, dims: [-1, 1]}]"),
    ("mean_symbolic_seq", "inputs: {x: [N, L, 4]}\nnodes: [{op: mean, dims: 1}]"),
    ("matmul_batched", "inputs: {x: [N, 3, 4], y: [N, 4, 5]}\nnodes: [{op: matmul, in: [x, y]}]"),
    ("matmul_broadcast_batch", "inputs: {x: [N, 1, 3, 4], y: [5, 4, 2]}\nnodes: [{op: matmul, in: [x, y]}]"),
    ("matmul_vector_right", "inputs: {x: [N, 3, 4], y: [4]}\nnodes: [{op: matmul, in: [x, y]}]"),
    ("matmul_vector_left", "inputs: {x: [4], y: [N, 4, 3]}\nnodes: [{op: matmul, in: [x, y]}]"),
    ("matmul_symbolic_inner", "inputs: {x: [N, L, 4], y: [N, 4, L]}\nnodes: [{op: matmul, in: [x, y]}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("text,shape", [
    ("inputs: {x: [N, 1, 4], y: [3, 1]}\nnodes: [{op: sub, in: [x, y]}]", ("N", 3, 4)),
    ("inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: mean, dims: [-1, 1]}]", ("N", 4)),
    ("inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: mean, dims: 0, keepdim: true}]", (1, 3, 4, 5)),
    ("inputs: {x: [N, 1, 3, 4], y: [5, 4, 2]}\nnodes: [{op: matmul, in: [x, y]}]", ("N", 5, 3, 2)),
    ("inputs: {x: [4], y: [4]}\nnodes: [{op: matmul, in: [x, y]}]", ()),
    ("inputs: {x: [4], y: [N, 4, 3]}\nnodes: [{op: matmul, in: [x, y]}]", ("N", 3)),
])
def test_inferred_shapes(text, shape):
    graph = graph_of(text)
    assert graph.type_of(graph.outputs["output"]).shape == shape


def test_scale_multiplies_by_its_factor():
    graph, (out,) = check_parity("inputs: {x: [N, 3]}\nnodes: [{op: scale, factor: 0.17}]")
    from ops_harness import feeds_for

    np.testing.assert_allclose(out, feeds_for(graph)["x"] * np.float32(0.17), rtol=1e-6)


def test_roles():
    graph = graph_of("inputs: {x: [N, 3], y: [N, 3]}\nnodes: [{name: m, op: mul, in: [x, y]}, "
                     "{name: s, op: sub, in: [x, y]}, {name: k, op: scale, factor: 2}]")
    assert {n.name: registry.lookup(n.op).role_of(n) for n in graph.nodes() if n.op != "input"} == \
        {"m": "merge_mul", "s": "merge_sub", "k": "scale"}


def test_mul_shapes_must_broadcast():
    msg = spec_error("inputs: {x: [N, 3, 4], y: [N, 5, 4]}\nnodes: [{name: m, op: mul, in: [x, y]}]")
    assert "node 'm': mul: shapes do not broadcast: (N, 3, 4), (N, 5, 4)" in msg


def test_sub_needs_one_dtype():
    msg = spec_error("inputs: {x: [N, 3], y: {shape: [N, 3], dtype: int64}}\nnodes: [{op: sub, in: [x, y]}]")
    assert "inputs have different dtypes: float32, int64" in msg


def test_mul_takes_two_inputs():
    msg = spec_error("inputs: {x: [N, 3]}\nnodes: [{op: mul, in: [x, x, x]}]")
    assert "op 'mul' takes 1 to 2 input(s), got 3" in msg  # 1 with a constant 'value'


def test_div_needs_floats():
    msg = spec_error("inputs: {x: {shape: [N, 3], dtype: int64}}\nnodes: [{op: div, in: [x, x]}]")
    assert "input 0 is int64 (N, 3) int64; div expects floating-point inputs" in msg


def test_matmul_inner_dims_must_match():
    msg = spec_error("inputs: {x: [N, 3, 4], y: [N, 5, 2]}\nnodes: [{op: matmul, in: [x, y]}]")
    assert "inner dims differ: a (N, 3, 4) has 4 columns but b (N, 5, 2) has 5 rows" in msg
    assert "expected a (..., M, K) and b (..., K, P)" in msg


def test_matmul_batch_dims_must_broadcast():
    msg = spec_error("inputs: {x: [2, 3, 4], y: [3, 4, 2]}\nnodes: [{op: matmul, in: [x, y]}]")
    assert "batch dims do not broadcast" in msg


def test_mean_dim_out_of_range():
    msg = spec_error("inputs: {x: [N, 3]}\nnodes: [{op: mean, dims: [1, 2]}]")
    assert "dim 2 is out of range for a 2-D input (N, 3); expected -2 <= dim < 2" in msg


def test_mean_dims_repeated():
    msg = spec_error("inputs: {x: [N, 3, 4]}\nnodes: [{op: mean, dims: [1, -2]}]")
    assert "dims [1, -2] name the same dim twice" in msg
