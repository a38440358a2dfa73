"""Max pooling with indices, ceil_mode, and max_unpool: parity with PyTorch's index layout and sizes."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from archc.ops import registry
from ops_harness import check_parity, feeds_for, graph_of, onnx_model, spec_error
from ops_harness import parity_suite

PARITY_OPS = {"maxpool", "max_unpool"}

CASES = [
    ("indices", "inputs: {x: [N, 3, 6, 6]}\nnodes: [{name: p, op: maxpool, kernel_size: 2, return_indices: true}]\n"
     "outputs: [p:y, p:indices]"),
    ("indices_odd_padded", "inputs: {x: [N, 2, 7, 9]}\nnodes: [{name: p, op: maxpool, kernel_size: 3, stride: 2, "
     "padding: 1, return_indices: true}]\noutputs: [p:0, p:1]"),
    ("indices_ceil", "inputs: {x: [N, 2, 5, 8]}\nnodes: [{name: p, op: maxpool, kernel_size: 2, stride: 2, "
     "ceil_mode: true, return_indices: true}]\noutputs: [p:0, p:1]"),
    ("indices_1d", "inputs: {x: [N, 3, 11]}\nnodes: [{name: p, op: maxpool, kernel_size: 3, stride: 2, "
     "return_indices: true}]\noutputs: [p:0, p:1]"),
    # ceil_mode where PyTorch drops the last window (it would start in the padding)
    ("ceil_drops_window", "inputs: {x: [N, 2, 5, 6]}\n"
     "nodes: [{op: maxpool, kernel_size: 2, stride: 2, padding: 1, ceil_mode: true}]"),
    ("ceil_googlenet", "inputs: {x: [N, 2, 14, 13]}\nnodes: [{op: maxpool, kernel_size: 3, stride: 2, ceil_mode: true}]"),
    ("ceil_same_size", "inputs: {x: [N, 2, 7, 7]}\n"
     "nodes: [{op: maxpool, kernel_size: 3, stride: 1, padding: 1, ceil_mode: true}]"),
    ("ceil_dilated", "inputs: {x: [N, 1, 10, 9]}\n"
     "nodes: [{op: maxpool, kernel_size: 2, stride: 3, dilation: 3, ceil_mode: true}]"),
    # here the end padding would reach the kernel size, which onnxruntime rejects: ceil_mode is kept
    ("ceil_dilated_kept", "inputs: {x: [N, 1, 8, 8]}\n"
     "nodes: [{op: maxpool, kernel_size: 2, stride: 3, dilation: 3, ceil_mode: true}]"),
    ("unpool_roundtrip", "inputs: {x: [N, 3, 6, 8]}\nnodes: [\n"
     "  {name: p, op: maxpool, kernel_size: 2, return_indices: true},\n"
     "  {name: u, op: max_unpool, in: ['p:y', 'p:indices'], kernel_size: 2}]"),
    ("unpool_odd_output_size", "inputs: {x: [N, 2, 7, 5]}\nnodes: [\n"
     "  {name: p, op: maxpool, kernel_size: 2, stride: 2, return_indices: true},\n"
     "  {name: r, op: relu, in: 'p:0'},\n"
     "  {name: u, op: max_unpool, in: [r, 'p:1'], kernel_size: 2, stride: 2, output_size: [7, 5]}]"),
    ("unpool_padded_overlapping", "inputs: {x: [N, 2, 9, 9]}\nnodes: [\n"
     "  {name: p, op: maxpool, kernel_size: 3, stride: 2, padding: 1, return_indices: true},\n"
     "  {name: u, op: max_unpool, in: ['p:0', 'p:1'], kernel_size: 3, stride: 2, padding: 1, output_size: 9}]"),
    ("unpool_1d", "inputs: {x: [N, 3, 9]}\nnodes: [\n"
     "  {name: p, op: maxpool, kernel_size: 2, return_indices: true},\n"
     "  {name: u, op: maxunpool, in: ['p:0', 'p:1'], kernel_size: 2, output_size: 9}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


def test_indices_are_per_plane_like_pytorch():
    graph, (y, idx) = check_parity(dict(CASES)["indices_odd_padded"])
    x = torch.from_numpy(feeds_for(graph)["x"])
    ref_y, ref_idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx, ref_idx.numpy())
    assert idx.dtype == np.int64 and idx.max() < 7 * 9  # within one plane, for every (n, c)
    assert graph.node("p").outputs[1].dtype == "int64"
    assert registry.lookup("maxpool").output_names(graph.node("p")) == ("y", "indices")


@pytest.mark.parametrize("size,kernel,stride,padding", [
    (5, 2, 2, 1), (6, 2, 2, 1), (4, 3, 3, 1), (9, 2, 4, 1), (14, 3, 2, 0), (13, 3, 2, 1), (7, 1, 2, 0)])
def test_ceil_mode_onnx_shape_inference_agrees_with_pytorch(size, kernel, stride, padding):
    # ONNX's own shape inference keeps windows that start in the padding; the lowering must not.
    graph = graph_of(f"inputs: {{x: [1, 1, {size}, {size}]}}\nnodes: [{{op: maxpool, kernel_size: {kernel}, "
                     f"stride: {stride}, padding: {padding}, ceil_mode: true}}]")
    inferred = onnx.shape_inference.infer_shapes(onnx_model(graph), strict_mode=True)
    dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    expected = F.max_pool2d(torch.zeros(1, 1, size, size), kernel, stride, padding, ceil_mode=True).shape
    assert tuple(dims) == tuple(expected) == graph.type_of(graph.outputs["output"]).shape


def test_unpool_places_maxima_like_pytorch():
    graph, (out,) = check_parity(dict(CASES)["unpool_odd_output_size"])
    x = torch.from_numpy(feeds_for(graph)["x"])
    y, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    ref = F.max_unpool2d(torch.relu(y), idx, 2, 2, output_size=(7, 5))
    np.testing.assert_array_equal(out, ref.numpy())
    assert (out != 0).sum() <= y.numel()


def test_roles():
    graph = graph_of(dict(CASES)["unpool_roundtrip"])
    assert registry.lookup("maxpool").role_of(graph.node("p")) == "pool"
    assert registry.lookup("max_unpool").role_of(graph.node("u")) == "unpool"


@pytest.mark.parametrize("text,message", [
    ("{name: u, op: max_unpool, in: ['p:0', 'p:1'], kernel_size: 2, output_size: [10, 4]}",
     "output_size 10 of spatial dim 0 must lie strictly between 4 and 8 (default 6)"),
    ("{name: u, op: max_unpool, in: ['p:0', x], kernel_size: 2}", "indices (N, 2, 6, 6) must have the shape of x"),
    ("{name: u, op: max_unpool, in: ['p:0', 'p:0'], kernel_size: 2}",
     "indices must be int64 (maxpool's indices output), got float32"),
])
def test_unpool_errors(text, message):
    msg = spec_error("inputs: {x: [N, 2, 6, 6]}\nnodes: [{name: p, op: maxpool, kernel_size: 2, "
                     f"return_indices: true}}, {text}]")
    assert "node 'u'" in msg and message in msg


def test_indices_port_needs_return_indices():
    msg = spec_error("inputs: {x: [N, 2, 6, 6]}\nnodes: [{name: p, op: maxpool, kernel_size: 2},\n"
                     "  {op: relu, in: 'p:indices'}]")
    assert "'p' has no output 'indices'; it has 1 output: y" in msg


@pytest.mark.parametrize("kernel, padding, dilation, bound", [(2, 2, 1, 1), (3, 2, 1, 1), (3, 3, 2, 2)])
def test_padding_beyond_half_the_kernel_names_the_bound(kernel, padding, dilation, bound):
    msg = spec_error(f"inputs: {{x: [N, 2, 9, 9]}}\nnodes: [{{name: p, op: maxpool, kernel_size: {kernel}, "
                     f"padding: {padding}, dilation: {dilation}}}]")
    extent = dilation * (kernel - 1) + 1
    assert "node 'p'" in msg and (f"padding {padding} must be at most {bound}, half the kernel's extent {extent} "
                                  "(as PyTorch's pooling requires)") in msg


def test_generated_forward_names_the_indices_after_their_port():
    from archc.lowering.torch import generate_source

    source = generate_source(graph_of("inputs: {x: [N, 2, 6, 6]}\nnodes: [{name: p, op: maxpool, kernel_size: 2, "
                                      "return_indices: true},\n  {name: u, op: max_unpool, in: ['p:y', 'p:indices'], "
                                      "kernel_size: 2}]"))
    assert "p, p_indices = F.max_pool2d(" in source and "F.max_unpool2d(p, p_indices, kernel_size=2," in source
