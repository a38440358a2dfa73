"""amax: the maximum over dims (CBAM's max-pooled channels), its parity, its import from ONNX's ReduceMax."""
from __future__ import annotations

import numpy as np
import pytest

from ops_harness import check_parity, feeds_for, graph_of, spec_error


@pytest.mark.parametrize("dims,keepdim", [(1, True), ([2, 3], True), (-1, False), ([1, 2, 3], False)])
def test_amax_is_torch_amax_in_both_targets(dims, keepdim):
    text = f"inputs: {{x: [N, 4, 5, 6]}}\nnodes: [{{op: amax, dims: {dims}, keepdim: {str(keepdim).lower()}}}]"
    graph, (out,) = check_parity(text, sizes={"N": 2})
    x = feeds_for(graph, {"N": 2})["x"]
    axes = tuple(d % 4 for d in ([dims] if isinstance(dims, int) else dims))
    np.testing.assert_array_equal(out, x.max(axis=axes, keepdims=keepdim))


def test_max_and_reduce_max_are_its_names():
    for name in ("max", "reduce_max"):
        graph = graph_of(f"inputs: {{x: [N, 4, 6]}}\nnodes: [{{op: {name}, dims: 1, keepdim: true}}]")
        assert [n.op for n in graph.nodes()][-1] == "amax"


@pytest.mark.parametrize("node,message", [
    ("{op: amax, dims: 3}", "dim 3 is out of range"),
    ("{op: amax, dims: [1, -2]}", "dims [1, -2] name the same dim twice"),
    ("{op: amax, dims: 1, in: [x, x]}", "'amax' reduces one tensor over its 'dims'; it takes one input"),
])
def test_amax_errors_say_what_was_expected(node, message):
    assert message in spec_error(f"inputs: {{x: [N, 4, 6]}}\nnodes: [{node}]")


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_a_channel_max_of_an_export_is_amax(tmp_path, dynamo):
    # CBAM's spatial attention pools each position's channels by their maximum: it stayed an onnx_node
    torch = pytest.importorskip("torch")
    import contextlib
    import io
    import warnings

    from archc.frontends.onnx import load_onnx
    from archc.lowering.torch import build_module

    class SpatialAttention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 1, 7, padding=3)

        def forward(self, x):
            pooled = torch.cat([x.mean(1, keepdim=True), torch.max(x, dim=1, keepdim=True)[0]], 1)
            return x * torch.sigmoid(self.conv(pooled))

    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model, x = SpatialAttention().eval(), torch.randn(1, 4, 8, 8)
    path = tmp_path / "sa.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=dynamo)
    graph = load_onnx(str(path))
    assert "amax" in [n.op for n in graph.nodes()] and "onnx_node" not in [n.op for n in graph.nodes()]
    built = build_module(graph).eval()
    np.testing.assert_allclose(built(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
