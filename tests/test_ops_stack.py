"""stack (torch.stack): torch and onnxruntime against torch.stack, ONNX at opsets before and after
Unsqueeze's axes input, lint's labels from a spec, from archc's ONNX and from torch's exporters."""
from __future__ import annotations


import numpy as np
import onnxruntime as ort
import pytest
import torch
from ops_harness import export_onnx, check_parity, feeds_for, graph_of, onnx_model, run_onnx, spec_error

import archc.lowering.onnx as onnx_lowering
from archc.analysis.skips import analyze
from archc.frontends.onnx import from_onnx

CASES = {
    "front": ("inputs: {x: [N, 3, 4], y: [N, 3, 4]}\nnodes: [{op: stack, in: [x, y]}]", 0),
    "middle": ("inputs: {x: [N, 3, 4], y: [N, 3, 4], z: [N, 3, 4]}\nnodes: [{op: stack, in: [x, y, z], dim: 2}]", 2),
    "last": ("inputs: {x: [N, 3], y: [N, 3]}\nnodes: [{op: stack, in: [x, y], dim: 2}]", 2),
    "minus_one": ("inputs: {x: [N, 3], y: [N, 3]}\nnodes: [{op: stack, in: [x, y], dim: -1}]", -1),
    "most_negative": ("inputs: {x: [N, 3], y: [N, 3]}\nnodes: [{op: stack, in: [x, y], dim: -3}]", -3),
    "integers": ("inputs: {x: {shape: [N, 4], dtype: int64}, y: {shape: [N, 4], dtype: int64}}\n"
                 "nodes: [{op: stack, in: [x, y], dim: 1}]", 1),
    "same_twice": ("inputs: {x: [N, 2]}\nnodes: [{op: stack, in: [x, x], dim: -2}]", -2),
}


@pytest.mark.parametrize("name", CASES)
def test_torch_and_onnxruntime_agree_with_torch_stack(name):
    text, dim = CASES[name]
    graph, (out,) = check_parity(text)
    feeds = feeds_for(graph)
    node = next(n for n in graph.nodes() if n.op == "stack")
    tensors = [torch.from_numpy(feeds[v.node]) for v in node.inputs]
    expected = torch.stack(tensors, dim=dim).numpy()
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(run_onnx(graph, feeds)[0], expected)


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_the_unsqueeze_axes_are_written_for_the_opset(opset, monkeypatch):
    # Unsqueeze's axes: an attribute up to opset 12, an input from 13
    monkeypatch.setattr(onnx_lowering, "OPSET", opset)
    monkeypatch.setattr(onnx_lowering.Emitter, "opset", opset)
    graph = graph_of(CASES["minus_one"][0])
    model = onnx_model(graph)
    unsqueezes = [n for n in model.graph.node if n.op_type == "Unsqueeze"]
    assert len(unsqueezes) == 2
    assert all((len(n.input), len(n.attribute)) == ((2, 0) if opset >= 13 else (1, 1)) for n in unsqueezes)
    feeds = feeds_for(graph)
    (got,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_array_equal(got, np.stack([feeds["x"], feeds["y"]], axis=-1))


RESIDUAL_STACK = ("inputs: {x: [N, 4, 5]}\nnodes:\n"
                  "  - {name: c1, op: conv, out_channels: 4, kernel_size: 3, padding: 1}\n  - {op: relu}\n"
                  "  - {name: c2, op: conv, out_channels: 4, kernel_size: 3, padding: 1}\n"
                  "  - {name: s, op: stack, in: [x, c2], dim: 1}\n  - {op: mean, dims: 1}")


class _StackBlock(torch.nn.Module):
    """What RESIDUAL_STACK computes, written in torch."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = torch.nn.Conv1d(4, 4, 3, padding=1), torch.nn.Conv1d(4, 4, 3, padding=1)

    def forward(self, x):
        return torch.stack([x, self.c2(torch.relu(self.c1(x)))], dim=1).mean(1)


def _labels(analysis) -> list[tuple[str, str, str]]:
    return [(str(s.kind), s.fork, str(s.carries)) for s in analysis.skips] + \
        [(str(j.kind), "join", "") for j in analysis.joins]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_lint_labels_a_stack_as_the_unsqueeze_and_concat_exporters_write(dynamo):
    # a stack is a concat for lint: x read unchanged beside layers computed from it is feature reuse,
    # from the spec, from archc's ONNX and from torch's export of the same block alike
    graph = graph_of(RESIDUAL_STACK)
    expected = [("dense", "x", "identity")]
    assert _labels(analyze(graph)) == expected
    assert _labels(analyze(from_onnx(onnx_model(graph), "stack.onnx"))) == expected
    exported = export_onnx(_StackBlock(), torch.randn(2, 4, 5), dynamo, input_names=["x"])
    assert {"Unsqueeze", "Concat"} <= {n.op_type for n in exported.graph.node}
    assert _labels(analyze(from_onnx(exported, "exported.onnx"))) == expected


@pytest.mark.parametrize("text, message", [
    ("inputs: {x: [N, 3, 4], y: [N, 3, 5]}\nnodes: [{op: stack, in: [x, y]}]",
     "input 1 has shape (N, 3, 5), input 0 has shape (N, 3, 4); stack needs inputs of one shape"),
    ("inputs: {x: [N, 3], y: [N, 3, 1]}\nnodes: [{op: stack, in: [x, y]}]",
     "input 1 has shape (N, 3, 1), input 0 has shape (N, 3); stack needs inputs of one shape"),
    ("inputs: {x: [N, 3], y: {shape: [N, 3], dtype: int64}}\nnodes: [{op: stack, in: [x, y]}]",
     "input 1 is int64, input 0 is float32; stack needs inputs of one dtype"),
    ("inputs: {x: [N, 3], y: [N, 3]}\nnodes: [{op: stack, in: [x, y], dim: 3}]",
     "dim 3 is out of range for stacking 2-D inputs (N, 3); expected -3 <= dim <= 2"),
    ("inputs: {x: [N, 3], y: [N, 3]}\nnodes: [{op: stack, in: [x, y], dim: -4}]",
     "dim -4 is out of range for stacking 2-D inputs (N, 3); expected -3 <= dim <= 2"),
    ("inputs: {x: [N, 3]}\nnodes: [{op: stack, in: [x]}]", "op 'stack' takes at least 2 input(s), got 1"),
])
def test_bad_stacks_say_what_was_expected(text, message):
    error = spec_error(text)
    assert message in error
    assert error.startswith("<spec>:3:") and ": error: node 'stack'" in error
