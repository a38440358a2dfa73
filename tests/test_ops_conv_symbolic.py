"""A convolution over a symbolic length (PointNet's P points, a sequence model's T steps): the length
it keeps, or the expression of its formula where it changes it."""
from __future__ import annotations

import pytest
import torch

from ops_harness import check_parity, feeds_for, graph_of, randomize, run_onnx, spec_error
from archc.lowering.torch import build_module

POINTS = ("inputs: {x: [N, 3, P]}\nnodes:\n  - {name: c1, op: conv, out_channels: 8, kernel_size: 1}\n"
          "  - {op: batchnorm}\n  - {op: relu}\n"
          "  - {name: c2, op: conv, out_channels: 8, kernel_size: 3, padding: same, dilation: 2}\n"
          "  - {name: c3, op: conv, out_channels: 4, kernel_size: 5, padding: 2}\n"
          "  - {op: adaptive_maxpool, output_size: 1}\n")


def test_size_keeping_convs_take_a_symbolic_length():
    graph = graph_of(POINTS)
    assert graph.node("c3").outputs[0].shape == ("N", 4, "P")
    for points in (7, 50):  # (one build, any number of points)
        check_parity(POINTS, sizes={"N": 2, "P": points})


def test_the_generated_module_matches_nn_conv1d_at_any_length():
    graph = randomize(graph_of(POINTS))
    module = build_module(graph).eval()
    for points in (5, 31):
        feeds = feeds_for(graph, {"N": 2, "P": points})
        x = torch.from_numpy(feeds["x"])
        with torch.no_grad():
            expected = module.c1(x)
            assert torch.equal(expected, torch.nn.functional.conv1d(x, module.c1.weight, module.c1.bias))
            ours = module(x).numpy()
        (onnx_out,) = run_onnx(graph, feeds)
        assert ours.shape == (2, 4, 1) and abs(ours - onnx_out).max() < 1e-5


@pytest.mark.parametrize("node, length", [
    ("{op: conv, out_channels: 4, kernel_size: 3}", "P - 2"),
    ("{op: conv, out_channels: 4, kernel_size: 1, stride: 2}", "(P + 1)//2"),
    ("{op: conv, out_channels: 4, kernel_size: 3, padding: 2}", "P + 2"),
    ("{op: conv, out_channels: 4, kernel_size: 2, padding: 1}", "P + 1"),
    ("{op: conv, out_channels: 4, kernel_size: 3, stride: 2, padding: 1, dilation: 2}", "(P + 1)//2 - 1"),
])
def test_a_conv_that_changes_a_symbolic_length_gives_its_formula(node, length):
    """The output length is the conv's formula over the symbol (archc.ir.dims), and both builds
    compute that length at any size."""
    text = f"inputs: {{x: [N, 3, P]}}\nnodes: [{node}]"
    graph = graph_of(text)
    assert graph.type_of(graph.outputs["output"]).shape == ("N", 4, length)
    for points in (9, 16):
        check_parity(text, sizes={"N": 2, "P": points})
