"""adaptive_avgpool / adaptive_maxpool: PyTorch's bins for any input size, in both targets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archc import SpecError
from archc.lowering.onnx import to_onnx
from archc.ops.adaptive_pool import bins
from ops_harness import graph_of, parity_suite, run_onnx, run_torch, spec_error

PARITY_OPS = {"adaptive_avgpool", "adaptive_maxpool"}

CASES = [
    ("avg_global", "inputs: {x: [N, 3, 7, 5]}\nnodes: [{op: adaptive_avgpool}]"),
    ("avg_divisible", "inputs: {x: [N, 3, 8, 6]}\nnodes: [{op: adaptive_avgpool, output_size: [4, 3]}]"),
    ("avg_uneven", "inputs: {x: [N, 3, 13, 10]}\nnodes: [{op: adaptive_avgpool, output_size: 7}]"),
    ("avg_upsampling", "inputs: {x: [N, 2, 3, 5]}\nnodes: [{op: adaptive_avgpool, output_size: [6, 5]}]"),
    ("avg_1d", "inputs: {x: [N, 3, 11]}\nnodes: [{op: adaptive_avgpool, output_size: 4}]"),
    ("avg_3d", "inputs: {x: [N, 2, 5, 6, 7]}\nnodes: [{op: adaptive_avgpool, output_size: [2, 3, 4]}]"),
    ("max_global", "inputs: {x: [N, 3, 7, 5]}\nnodes: [{op: adaptive_maxpool}]"),
    ("max_uneven", "inputs: {x: [N, 3, 13, 10]}\nnodes: [{op: adaptive_maxpool, output_size: [5, 3]}]"),
    ("max_divisible", "inputs: {x: [N, 3, 12, 12]}\nnodes: [{op: adaptive_maxpool, output_size: 6}]"),
    ("max_1d", "inputs: {x: [N, 3, 11]}\nnodes: [{op: adaptive_maxpool, output_size: 3}]"),
]

test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("h,w,out", [(13, 10, (7, 7)), (7, 7, (7, 7)), (5, 9, (3, 2)), (224, 224, (7, 7)),
                                     (3, 3, (5, 4))])
@pytest.mark.parametrize("op,fn", [("adaptive_avgpool", F.adaptive_avg_pool2d),
                                   ("adaptive_maxpool", F.adaptive_max_pool2d)])
def test_matches_pytorch(op, fn, h, w, out):
    graph = graph_of(f"inputs: {{x: [N, 2, {h}, {w}]}}\nnodes: [{{op: {op}, output_size: [{out[0]}, {out[1]}]}}]")
    x = np.random.default_rng(0).standard_normal((2, 2, h, w)).astype(np.float32)
    want = fn(torch.from_numpy(x), out).numpy()
    np.testing.assert_allclose(run_torch(graph, {"x": x})[0], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run_onnx(graph, {"x": x})[0], want, rtol=1e-5, atol=1e-6)


def test_bins_are_pytorchs():
    assert bins(10, 4) == [(0, 3), (2, 5), (5, 8), (7, 10)]
    assert bins(3, 5) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]


def test_symbolic_spatial_size_runs_in_torch_but_not_onnx():
    graph = graph_of("inputs: {x: [N, 3, H, W]}\nnodes: [{name: p, op: adaptive_avgpool, output_size: 3}]")
    assert graph.node("p").outputs[0].shape == ("N", 3, 3, 3)
    x = np.random.default_rng(0).standard_normal((1, 3, 10, 8)).astype(np.float32)
    np.testing.assert_allclose(run_torch(graph, {"x": x})[0], F.adaptive_avg_pool2d(torch.from_numpy(x), 3).numpy())
    with pytest.raises(SpecError, match="output_size \\[3, 3\\] needs known spatial sizes for ONNX"):
        to_onnx(graph)


def test_errors():
    assert "attribute 'output_size' of op 'adaptive_maxpool' must be at least 1, got 0" in spec_error(
        "inputs: {x: [N, 3, 4, 4]}\nnodes: [{op: adaptive_maxpool, output_size: [0, 2]}]")
    assert "output_size needs 1 or 2 values, got 3" in spec_error(
        "inputs: {x: [N, 3, 4, 4]}\nnodes: [{op: adaptive_avgpool, output_size: [1, 2, 3]}]")
