"""Transposed convolution: parity, agreement with nn.ConvTranspose{1,2}d, init, shape errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from archc.ops import registry
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, randomize, \
    spec_error
from ops_harness import parity_suite

PARITY_OPS = {"conv_transpose"}

CASES = [
    ("basic", "inputs: {x: [N, 3, 5, 5]}\nnodes: [{op: conv_transpose, out_channels: 4, kernel_size: 3}]"),
    ("stride2_pad_outpad_odd", "inputs: {x: [N, 4, 5, 6]}\nnodes: [{op: conv_transpose, out_channels: 2, "
     "kernel_size: 3, stride: 2, padding: 1, output_padding: 1, bias: false}]"),
    ("upsample_x2", "inputs: {x: [N, 3, 3, 5]}\n"
     "nodes: [{op: conv_transpose2d, out_channels: 3, kernel_size: 2, stride: 2}]"),
    ("grouped_dilated_per_dim", "inputs: {x: [N, 4, 4, 5]}\nnodes: [{op: conv_transpose, out_channels: 6, "
     "kernel_size: [3, 2], groups: 2, dilation: [2, 1], stride: [1, 2], padding: [1, 0]}]"),
    # output_padding >= stride is allowed below the dilation; ONNX gets it as less end padding
    ("outpad_below_dilation", "inputs: {x: [N, 2, 4, 5]}\nnodes: [{op: conv_transpose, out_channels: 2, "
     "kernel_size: 3, dilation: 3, padding: [2, 1], output_padding: [2, 1]}]"),
    ("depthwise", "inputs: {x: [N, 3, 4, 4]}\n"
     "nodes: [{op: deconv, out_channels: 3, kernel_size: 3, groups: 3, stride: 2}]"),
    ("conv1d", "inputs: {x: [N, 3, 7]}\n"
     "nodes: [{op: conv_transpose, out_channels: 2, kernel_size: 4, stride: 2, padding: 1}]"),
    ("conv1d_outpad", "inputs: {x: [N, 2, 6]}\nnodes: [{op: conv_transpose1d, out_channels: 5, kernel_size: 3, "
     "stride: 3, output_padding: 2, bias: false}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("text,reference", [
    ("inputs: {x: [N, 4, 5, 6]}\nnodes: [{name: up, op: conv_transpose, out_channels: 6, kernel_size: [3, 2], "
     "stride: 2, padding: 1, output_padding: 1, groups: 2, dilation: [1, 2]}]",
     lambda: torch.nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=1, output_padding=1, groups=2,
                                      dilation=(1, 2))),
    ("inputs: {x: [N, 3, 7]}\nnodes: [{name: up, op: conv_transpose, out_channels: 2, kernel_size: 4, stride: 2, "
     "bias: false}]",
     lambda: torch.nn.ConvTranspose1d(3, 2, 4, stride=2, bias=False)),
])
def test_matches_reference_module(text, reference):
    graph = randomize(graph_of(text))
    ours, ref = module_of(graph, "up"), reference().eval()
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict())
    x = torch.from_numpy(feeds_for(graph)["x"])
    with torch.no_grad():
        assert tuple(ref(x).shape[1:]) == graph.type_of(graph.outputs["output"]).shape[1:]
        torch.testing.assert_close(ours(x), ref(x))


def test_init_bound_follows_pytorch_fan_in():
    # PyTorch's fan-in for ConvTranspose is weight.size(1) * kernel = out_channels/groups * k.
    graph = graph_of("inputs: {x: [N, 16, 4, 4]}\n"
                     "nodes: [{name: up, op: conv_transpose, out_channels: 8, kernel_size: 3, groups: 2}]")
    weights = randomize(graph).weights["up"]
    bound = 1 / math.sqrt(4 * 9)
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(16, 8, 3, groups=2)
    for name in ("weight", "bias"):
        ours, theirs = np.abs(weights[name]).max(), ref.state_dict()[name].abs().max().item()
        assert ours <= bound and theirs <= bound
        if name == "weight":  # 576 draws reach close to the bound; the 8 biases need not
            assert ours > 0.95 * bound and theirs > 0.95 * bound


def test_role_is_layer():
    graph = graph_of(CASES[0][1])
    node = list(graph.nodes())[-1]
    assert registry.lookup(node.op).role_of(node) == "layer"


@pytest.mark.parametrize("text,message", [
    ("{op: conv_transpose, out_channels: 4, kernel_size: 3, stride: 2, output_padding: 2}",
     "output_padding 2 must be smaller than stride (2) or dilation (1)"),
    ("{op: conv_transpose, out_channels: 4, kernel_size: 3, groups: 4}",
     "groups=4 must divide in_channels (6) and out_channels (4)"),
    ("{op: conv_transpose, out_channels: 4, kernel_size: [3, 3, 3]}", "kernel_size needs 1 or 2 values, got 3"),
    ("{op: conv_transpose, out_channels: 4, kernel_size: 1, padding: 3}",
     "input size 5 gives an empty output (kernel 1, stride 1, padding 3)"),
])
def test_shape_errors(text, message):
    msg = spec_error(f"inputs: {{x: [N, 6, 5, 5]}}\nnodes: [{text}]")
    assert message in msg


def test_output_padding_beyond_padding_and_stride_has_no_onnx_lowering():
    from archc import SpecError
    from archc.lowering.onnx import to_onnx

    graph = graph_of("inputs: {x: [N, 2, 4, 4]}\nnodes: [{name: up, op: conv_transpose, out_channels: 2, "
                     "kernel_size: 3, dilation: 2, output_padding: 1}]")
    with pytest.raises(SpecError, match="node 'up': output_padding 1 >= stride 1 and > padding 0 has no ONNX"):
        to_onnx(graph)


def test_needs_spatial_input():
    msg = spec_error("inputs: {x: [N, 6]}\nnodes: [{op: conv_transpose, out_channels: 4, kernel_size: 3}]")
    assert "expected a 3-D or 4-D input (N, C, L) or (N, C, H, W), got 2-D (N, 6)" in msg
