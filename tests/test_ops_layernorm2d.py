"""layernorm2d: ConvNeXt's channels-first LayerNorm2d: parity of both lowerings, torchvision's
module layout (strict load, equal outputs), the class it needs in the generated file, errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archc.lowering.torch import generate_source
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, parity_suite, \
    randomize, spec_error

PARITY_OPS = {"layernorm2d"}

CASES = [
    ("layernorm2d", "inputs: {x: [N, 6, 3, 5]}\nnodes: [{op: layernorm2d}]"),
    ("layernorm2d_eps", "inputs: {x: [N, 4, 2, 2]}\nnodes: [{op: layer_norm2d, eps: 0.001}]"),
    ("layernorm2d_no_bias", "inputs: {x: [N, 4, 3, 3]}\nnodes: [{op: layernorm2d, bias: false}]"),
    ("layernorm2d_no_affine", "inputs: {x: [N, 5, 2, 3]}\nnodes: [{op: layernorm2d, elementwise_affine: false}]"),
]

test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


class TorchvisionLayerNorm2d(torch.nn.LayerNorm):
    """torchvision.models.convnext.LayerNorm2d, as written there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def test_matches_torchvision_layernorm2d():
    graph = randomize(graph_of("inputs: {x: [N, 6, 3, 5]}\nnodes: [{name: ln, op: layernorm2d}]"))
    ours, ref = module_of(graph, "ln"), TorchvisionLayerNorm2d(6, eps=1e-6).eval()
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.from_numpy(feeds_for(graph)["x"])
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_generated_file_defines_the_class_once():
    graph = graph_of("inputs: {x: [N, 6, 3, 5]}\nnodes: [{name: a, op: layernorm2d}, {name: b, op: layernorm2d}]")
    source = generate_source(graph)
    assert source.count("class LayerNorm2d(nn.LayerNorm):") == 1
    assert "self.a = LayerNorm2d(6, eps=1e-06" in source


@pytest.mark.parametrize("text,expected", [
    ("inputs: {x: [N, 6, 5]}\nnodes: [{op: layernorm2d}]", "expected a 4-D input (N, C, H, W), got 3-D"),
    ("inputs: {x: [N, C, 3, 5]}\nnodes: [{op: layernorm2d}]", "channels must be a known size, got symbolic 'C'"),
    ("inputs: {x: {shape: [N, 6, 3, 5], dtype: int64}}\nnodes: [{op: layernorm2d}]",
     "layernorm2d expects a floating-point input, got int64"),
    ("inputs: {x: [N, 6, 3, 5]}\nnodes: [{op: layernorm2d, num_channels: 6}]",
     "archc infers 'num_channels' from the input's channels (dim 1): leave it out"),
])
def test_errors_name_the_place_and_what_was_expected(text, expected):
    message = spec_error(text)
    assert expected in message and ":" in message.split(" ")[0]
