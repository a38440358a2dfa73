"""glu (nn.GLU): torch and onnxruntime against a * sigmoid(b) written with torch, at ONNX opsets before
and after Split's num_outputs; what lint makes of it in a residual block."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from ops_harness import check_parity, feeds_for, graph_of, onnx_model, run_onnx, spec_error

import archc.lowering.onnx as onnx_lowering
from archc.analysis.skips import analyze
from archc.frontends.onnx import from_onnx

CASES = {
    "last": ("inputs: {x: [N, 3, 8]}\nnodes: [{op: glu}]", -1),
    "channels": ("inputs: {x: [N, 6, 2, 3]}\nnodes: [{op: glu, dim: 1}]", 1),
    "negative": ("inputs: {x: [N, 4, 6, 5]}\nnodes: [{op: glu, dim: -2}]", -2),
    "batch_dim": ("inputs: {x: [4, 3]}\nnodes: [{op: glu, dim: 0}]", 0),
}


def _reference(x: torch.Tensor, dim: int) -> torch.Tensor:
    a, b = x.chunk(2, dim)
    return a * torch.sigmoid(b)


@pytest.mark.parametrize("name", CASES)
def test_torch_and_onnxruntime_compute_a_times_sigmoid_b(name):
    text, dim = CASES[name]
    graph, (out,) = check_parity(text)
    x = torch.from_numpy(feeds_for(graph)["x"])
    expected = _reference(x, dim).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run_onnx(graph, feeds_for(graph))[0], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out, torch.nn.GLU(dim)(x).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_the_onnx_split_is_written_for_the_opset(opset, monkeypatch):
    # Split takes num_outputs from opset 18 on (required there without split sizes); before it splits equally
    monkeypatch.setattr(onnx_lowering, "OPSET", opset)
    monkeypatch.setattr(onnx_lowering.Emitter, "opset", opset)
    graph = graph_of("inputs: {x: [N, 3, 8]}\nnodes: [{op: glu}]")
    model = onnx_model(graph)  # full_check: strict shape inference at that opset
    (split,) = [n for n in model.graph.node if n.op_type == "Split"]
    assert [a.name for a in split.attribute if a.name == "num_outputs"] == (["num_outputs"] if opset >= 18 else [])
    x = feeds_for(graph)["x"]
    (got,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(got, _reference(torch.from_numpy(x), -1).numpy(), rtol=1e-6, atol=1e-6)


def test_a_block_ending_in_glu_keeps_its_residual_and_its_onnx_gives_the_same_labels():
    # Conformer-style: a projection to twice the width, glu back to it, added to x
    text = ("inputs: {x: [N, 5, 8]}\nnodes:\n  - {name: proj, op: linear, out_features: 16}\n"
            "  - {name: gate, op: glu}\n  - {name: out, op: linear, out_features: 8}\n"
            "  - {name: add, op: add, in: [x, out]}")
    graph = graph_of(text)
    spec = analyze(graph)
    assert [(s.kind, s.fork, s.merge) for s in spec.skips] == [("residual", "x", "add")]
    # archc's ONNX writes the glu as Split, Sigmoid, Mul, which the import fuses back: the same skip, no join
    imported_graph = from_onnx(onnx_model(graph), "glu.onnx")
    assert "glu" in {n.op for n in imported_graph.nodes()}
    imported = analyze(imported_graph)
    assert [(s.kind, s.merge) for s in imported.skips] == [("residual", "add")]
    assert [j.kind for j in imported.joins if j.merge_op == "mul"] == []
    assert spec.paths.total == imported.paths.total == 2


@pytest.mark.parametrize("text, message", [
    ("inputs: {x: [N, 3, 7]}\nnodes: [{op: glu}]", "glu halves dim -1, which needs an even size, got 7 in (N, 3, 7)"),
    ("inputs: {x: [N, 3, 4]}\nnodes: [{op: glu, dim: 1}]", "glu halves dim 1, which needs an even size, got 3"),
    ("inputs: {x: [N, 4]}\nnodes: [{op: glu, dim: 0}]", "glu needs a known size at dim 0 to halve, got symbolic 'N'"),
    ("inputs: {x: [N, 4]}\nnodes: [{op: glu, dim: -3}]",
     "dim -3 is out of range for a 2-D input (N, 4); expected -2 <= dim < 2"),
    ("inputs: {x: {shape: [N, 4], dtype: int64}}\nnodes: [{op: glu}]", "glu expects a floating-point input, got int64"),
])
def test_bad_glus_say_what_was_expected(text, message):
    error = spec_error(text)
    assert message in error
    assert error.startswith("<spec>:3:") and ": error: node 'glu'" in error
