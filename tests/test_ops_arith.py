"""Arithmetic with constants and the activations built from it: torch (eval) vs onnxruntime parity,
each against PyTorch's own function, shape errors and analysis roles."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archc.analysis.skips import analyze
from archc.ops import registry
from ops_harness import graph_of, parity_suite, randomize, run_onnx, run_torch, spec_error

PARITY_OPS = {"add", "sub", "mul", "div", "clamp", "pow", "sqrt", "rsqrt", "hardsigmoid", "hardtanh",
              "softplus", "elu", "mish", "relu6"}

CASES = [
    ("add_value", "inputs: {x: [N, 3, 5]}\nnodes: [{op: add, value: 3}]"),
    ("sub_value", "inputs: {x: [N, 3, 5]}\nnodes: [{op: sub, value: 0.25}]"),
    ("sub_reverse", "inputs: {x: [N, 3, 5]}\nnodes: [{op: sigmoid}, {op: sub, value: 1, reverse: true}]"),
    ("mul_value", "inputs: {x: [N, 3, 5]}\nnodes: [{op: mul, value: 0.5}]"),
    ("div_value", "inputs: {x: [N, 3, 5]}\nnodes: [{op: div, value: 6}]"),
    ("div_reverse", "inputs: {x: [N, 3, 5]}\nnodes: [{op: sigmoid}, {op: div, value: 2, reverse: true}]"),
    ("hardsigmoid_by_hand", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 4.0}, {op: add, value: 3},"
                            " {op: relu6}, {op: div, value: 6}]"),
    ("clamp_both", "inputs: {x: [N, 3, 5]}\nnodes: [{op: clamp, min: -0.5, max: 0.75}]"),
    ("clamp_min", "inputs: {x: [N, 3, 5]}\nnodes: [{op: clamp, min: 0.1}]"),
    ("clamp_max", "inputs: {x: [N, 3, 5]}\nnodes: [{op: clamp, max: 0.1}]"),
    ("pow_2", "inputs: {x: [N, 3, 5]}\nnodes: [{op: pow, exponent: 2}]"),
    ("pow_half", "inputs: {x: [N, 3, 5]}\nnodes: [{op: sigmoid}, {op: pow, exponent: 0.5}]"),
    ("sqrt", "inputs: {x: [N, 3, 5]}\nnodes: [{op: sigmoid}, {op: sqrt}]"),
    ("rsqrt", "inputs: {x: [N, 3, 5]}\nnodes: [{op: sigmoid}, {op: rsqrt}]"),
    ("rms_norm_by_hand", "inputs: {x: [N, 3, 8]}\nnodes: [{op: pow, exponent: 2}, {op: mean, dims: -1, keepdim: true},"
                         " {op: add, value: 1e-6}, {op: rsqrt}, {name: y, op: mul, in: [x, rsqrt]}]"),
    ("hardsigmoid", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 4.0}, {op: hardsigmoid}]"),
    ("hardtanh", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 3.0}, {op: hardtanh, min_val: -2, max_val: 1.5}]"),
    ("softplus", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 3.0}, {op: softplus}]"),
    ("softplus_beta", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 9.0}, {op: softplus, beta: 2, threshold: 5}]"),
    ("elu", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 3.0}, {op: elu, alpha: 0.7}]"),
    ("mish", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 4.0}, {op: mish}]"),
]

test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)

X = np.linspace(-30, 30, 242, dtype=np.float32).reshape(2, 121)


@pytest.mark.parametrize("node,fn", [
    ("{op: hardsigmoid}", F.hardsigmoid),
    ("{op: hardtanh}", F.hardtanh),
    ("{op: hardtanh, min_val: -3, max_val: 0.5}", lambda x: F.hardtanh(x, -3.0, 0.5)),
    ("{op: softplus}", F.softplus),
    ("{op: softplus, beta: 0.5, threshold: 4}", lambda x: F.softplus(x, beta=0.5, threshold=4.0)),
    ("{op: elu}", F.elu),
    ("{op: elu, alpha: 0.3}", lambda x: F.elu(x, alpha=0.3)),
    ("{op: mish}", F.mish),
    ("{op: clamp, min: -1, max: 2}", lambda x: torch.clamp(x, -1.0, 2.0)),
    ("{op: pow, exponent: 3}", lambda x: torch.pow(x, 3.0)),
    ("{op: add, value: 3}", lambda x: x + 3),
    ("{op: sub, value: 2, reverse: true}", lambda x: 2 - x),
    ("{op: div, value: 6}", lambda x: x / 6),
])
def test_both_targets_match_pytorch_function_on_a_wide_range(node, fn):
    graph = randomize(graph_of(f"inputs: {{x: [N, 121]}}\nnodes: [{node}]"))
    want = fn(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(run_torch(graph, {"x": X})[0], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run_onnx(graph, {"x": X})[0], want, rtol=1e-5, atol=1e-5)


def test_positive_inputs_for_roots():
    x = np.linspace(0.01, 50, 100, dtype=np.float32).reshape(2, 50)
    for node, fn in (("sqrt", torch.sqrt), ("rsqrt", torch.rsqrt)):
        graph = graph_of(f"inputs: {{x: [N, 50]}}\nnodes: [{{op: {node}}}]")
        np.testing.assert_allclose(run_onnx(graph, {"x": x})[0], fn(torch.from_numpy(x)).numpy(), rtol=1e-6)


def test_generated_source_calls_the_pytorch_functions():
    from archc.lowering.torch import generate_source

    src = generate_source(graph_of("inputs: {x: [N, 4]}\nnodes: [{op: add, value: 3}, {op: relu6}, {op: div, value: 6},"
                                   " {op: hardsigmoid}, {op: mish}, {op: softplus}, {op: elu}, {op: rsqrt}]"))
    for piece in ("x + 3.0", "F.relu6(", " / 6.0", "F.hardsigmoid(", "F.mish(", "F.softplus(", "F.elu(", "torch.rsqrt("):
        assert piece in src


def test_constant_arithmetic_is_no_merge():
    graph = graph_of("inputs: {x: [N, 4]}\nnodes: [{op: add, value: 3}, {op: mul, value: 2}, {op: sub, value: 1},"
                     " {op: div, value: 6}]")
    roles = [registry.lookup(n.op).role_of(n) for n in graph.nodes() if n.op != "input"]
    assert roles == ["affine", "scale", "affine", "scale"]
    assert analyze(graph).summary()["residual"] == 0


@pytest.mark.parametrize("node,message", [
    ("{name: a, op: add}", "add needs two inputs, or one input and a constant 'value'"),
    ("{name: a, op: mul, in: [x, x], value: 2}", "mul with a constant 'value' takes one input, got 2"),
    ("{name: a, op: clamp}", "clamp needs 'min', 'max' or both"),
    ("{name: a, op: clamp, min: 2, max: 1}", "min 2.0 is above max 1.0"),
    ("{name: a, op: hardtanh, min_val: 2}", "min_val 2.0 is above max_val 1.0"),
    ("{name: a, op: softplus, beta: 0}", "beta 0.0 must be > 0"),
    ("{name: a, op: pow}", "op 'pow' needs attribute 'exponent'"),
])
def test_errors(node, message):
    msg = spec_error(f"inputs: {{x: [N, 4]}}\nnodes: [{node}]")
    assert "node 'a'" in msg and message in msg, msg


def test_constant_on_integers_is_refused():
    msg = spec_error("inputs: {x: {shape: [N, 4], dtype: int64}}\nnodes: [{name: a, op: add, value: 1}]")
    assert "add with a constant 'value' expects a floating-point input, got int64" in msg


def test_a_sum_of_three_integer_tensors_is_valid_onnx():
    # ONNX's Sum takes floating-point tensors only: an n-ary add of integers adds pairwise
    from ops_harness import check_parity

    check_parity("""
inputs:
  a: {shape: [N, 4], dtype: int64}
nodes:
  - {name: p, op: positions, in: a, dim: 1}
  - {name: s, op: add, in: [a, p, a]}
""")
