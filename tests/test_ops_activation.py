"""Activation ops and dropout: torch (eval) vs onnxruntime parity, shape errors, roles."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from archc.ops import registry
from ops_harness import graph_of, randomize, run_onnx, spec_error
from ops_harness import parity_suite

PARITY_OPS = {"relu", "gelu", "silu", "sigmoid", "tanh", "softmax", "relu6", "hardswish", "leaky_relu", "dropout",
              "log_softmax", "exp", "log", "abs"}

# Inputs are scaled by 4 so that the interesting ranges (relu6's 6, hardswish's +-3) are reached.
CASES = [
    ("relu", "inputs: {x: [N, 3, 5]}\nnodes: [{op: relu}]"),
    ("gelu_exact", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 3.0}, {op: gelu}]"),
    ("gelu_tanh", "inputs: {x: [N, 7]}\nnodes: [{op: scale, factor: 3.0}, {op: gelu, approximate: tanh}]"),
    ("silu", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 3.0}, {op: silu}]"),
    ("swish_alias", "inputs: {x: [N, 4]}\nnodes: [{op: swish}]"),
    ("sigmoid", "inputs: {x: [N, 3, 2, 3]}\nnodes: [{op: sigmoid}]"),
    ("tanh", "inputs: {x: [N, 5]}\nnodes: [{op: tanh}]"),
    ("softmax_last", "inputs: {x: [N, 3, 5]}\nnodes: [{op: softmax}]"),
    ("softmax_axis1", "inputs: {x: [N, 3, 5]}\nnodes: [{op: softmax, axis: 1}]"),
    ("softmax_neg_axis", "inputs: {x: [N, 3, 5, 2]}\nnodes: [{op: softmax, axis: -3}]"),
    ("relu6", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 4.0}, {op: relu6}]"),
    ("hardswish", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 4.0}, {op: hardswish}]"),
    ("leaky_relu_default", "inputs: {x: [N, 9]}\nnodes: [{op: leaky_relu}]"),
    ("leaky_relu_slope", "inputs: {x: [N, 3, 3]}\nnodes: [{op: leaky_relu, negative_slope: 0.2}]"),
    ("dropout", "inputs: {x: [N, 3, 5]}\nnodes: [{op: dropout, p: 0.3}, {op: relu}]"),
    ("log_softmax", "inputs: {x: [N, 3, 5]}\nnodes: [{op: scale, factor: 20.0}, {op: log_softmax, axis: 1}]"),
    ("exp_log_abs", "inputs: {x: [N, 3, 5]}\nnodes: [{op: abs}, {op: log}, {op: exp}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("op,fn", [
    ("gelu", lambda x: torch.nn.functional.gelu(x)),
    ("silu", torch.nn.functional.silu),
    ("hardswish", torch.nn.functional.hardswish),
    ("relu6", torch.nn.functional.relu6),
])
def test_onnx_matches_torch_reference_on_a_wide_range(op, fn):
    # The ONNX compositions (erf formula, Clip bounds) against torch's own functions.
    graph = randomize(graph_of(f"inputs: {{x: [N, 41]}}\nnodes: [{{op: {op}}}]"))
    x = np.linspace(-8, 8, 82, dtype=np.float32).reshape(2, 41)
    np.testing.assert_allclose(run_onnx(graph, {"x": x})[0], fn(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_gelu_tanh_differs_from_exact():
    x = {"x": np.linspace(-3, 3, 14, dtype=np.float32).reshape(2, 7)}
    exact = run_onnx(graph_of("inputs: {x: [N, 7]}\nnodes: [{op: gelu}]"), x)[0]
    approx = run_onnx(graph_of("inputs: {x: [N, 7]}\nnodes: [{op: gelu, approximate: tanh}]"), x)[0]
    assert 1e-5 < np.abs(exact - approx).max() < 1e-2


def test_dropout_is_a_module_that_drops_in_training():
    from archc.lowering.torch import build_module

    module = build_module(graph_of("inputs: {x: [N, 400]}\nnodes: [{op: dropout, p: 0.5}]"))
    x = torch.ones(2, 400)
    assert torch.equal(module.eval()(x), x)
    torch.manual_seed(0)
    dropped = module.train()(x)
    assert 0.3 < (dropped == 0).float().mean().item() < 0.7


def test_roles():
    graph = graph_of("inputs: {x: [N, 3]}\nnodes: [{op: gelu}, {op: softmax}, {op: dropout}, {op: leaky_relu}, "
                     "{op: log_softmax}]")
    roles = {n.op: registry.lookup(n.op).role_of(n) for n in graph.nodes() if n.op != "input"}
    assert roles == {"gelu": "activation", "softmax": "gate", "dropout": "identity",
                     "leaky_relu": "activation", "log_softmax": "activation"}


def test_softmax_axis_out_of_range():
    msg = spec_error("inputs: {x: [N, 3, 5]}\nnodes: [{name: sm, op: softmax, axis: 3}]")
    assert "node 'sm'" in msg and "axis 3 is out of range for a 3-D input" in msg and "-3 <= axis < 3" in msg


def test_activation_needs_float_input():
    msg = spec_error("inputs: {x: {shape: [N, 3], dtype: int64}}\nnodes: [{op: sigmoid}]")
    assert "sigmoid expects a floating-point input, got int64" in msg


def test_gelu_approximate_choices():
    msg = spec_error("inputs: {x: [N, 3]}\nnodes: [{op: gelu, approximate: tanhh}]")
    assert "attribute 'approximate' of op 'gelu' expects one of 'none', 'tanh', got 'tanhh'" in msg
    assert "did you mean 'tanh'?" in msg


def test_dropout_probability_range():
    msg = spec_error("inputs: {x: [N, 3]}\nnodes: [{op: dropout, p: 1.0}]")
    assert "attribute 'p' of op 'dropout' must be less than 1, got 1.0" in msg


@pytest.mark.parametrize("op", ["relu", "abs"])
def test_relu_and_abs_of_integers_run_on_onnxruntime(op):
    # ONNX's Relu takes int64 from opset 14 but onnxruntime has no kernel for it: written as Max(x, 0)
    from ops_harness import check_parity

    check_parity(f"""
inputs:
  a: {{shape: [N, 4], dtype: int64}}
nodes:
  - {{name: p, op: positions, dim: 1}}
  - {{name: d, op: sub, in: [a, p]}}
  - {{name: r, op: {op}}}
""", high={"a": 3})


def test_log_softmax_from_onnx_is_the_native_op(tmp_path):
    import onnx
    from onnx import helper

    from archc.frontends.onnx import load_onnx

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 5])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 5])
    graph = helper.make_graph([helper.make_node("LogSoftmax", ["x"], ["y"], axis=1)], "g", [x], [y])
    path = tmp_path / "ls.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    (node,) = [n for n in load_onnx(str(path)).nodes() if n.op != "input"]
    assert (node.op, node.attrs["axis"]) == ("log_softmax", 1)
