"""Layer and group normalisation: parity, agreement with nn.LayerNorm / nn.GroupNorm, errors."""
from __future__ import annotations

import pytest
import torch

from archc.ops import registry
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, randomize, \
    spec_error
from ops_harness import parity_suite

PARITY_OPS = {"layernorm", "groupnorm"}

CASES = [
    ("layernorm_tokens", "inputs: {x: [N, L, 6]}\nnodes: [{op: layernorm}]"),
    ("layernorm_two_dims", "inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: layernorm, dims: 2, eps: 0.001}]"),
    ("layernorm_all_dims", "inputs: {x: [N, 3, 5]}\nnodes: [{op: layer_norm, dims: 2}]"),
    ("layernorm_no_affine", "inputs: {x: [N, 7]}\nnodes: [{op: layernorm, elementwise_affine: false}]"),
    ("layernorm_no_bias", "inputs: {x: [N, L, 6]}\nnodes: [{op: layernorm, bias: false}]"),
    ("groupnorm_2d", "inputs: {x: [N, 6, 3, 5]}\nnodes: [{op: groupnorm, num_groups: 3}]"),
    ("groupnorm_1d_eps", "inputs: {x: [N, 4, 7]}\nnodes: [{op: groupnorm, num_groups: 2, eps: 0.01}]"),
    ("groupnorm_no_affine", "inputs: {x: [N, 6, 2, 3]}\nnodes: [{op: group_norm, num_groups: 6, affine: false}]"),
    ("groupnorm_one_group_2d_input", "inputs: {x: [N, 5]}\nnodes: [{op: groupnorm, num_groups: 1}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("text,reference", [
    ("inputs: {x: [N, 3, 4, 5]}\nnodes: [{name: ln, op: layernorm, dims: 2, eps: 0.001}]",
     lambda: torch.nn.LayerNorm((4, 5), eps=1e-3)),
    ("inputs: {x: [N, L, 6]}\nnodes: [{name: ln, op: layernorm, bias: false}]",
     lambda: torch.nn.LayerNorm(6, bias=False)),
    ("inputs: {x: [N, L, 6]}\nnodes: [{name: ln, op: layernorm, elementwise_affine: false}]",
     lambda: torch.nn.LayerNorm(6, elementwise_affine=False)),
    ("inputs: {x: [N, 6, 3, 5]}\nnodes: [{name: ln, op: groupnorm, num_groups: 3}]",
     lambda: torch.nn.GroupNorm(3, 6)),
    ("inputs: {x: [N, 3, 4, 2, 5]}\nnodes: [{name: ln, op: batchnorm, eps: 0.001}]",
     lambda: torch.nn.BatchNorm3d(3, eps=1e-3)),
])
def test_matches_reference_module(text, reference):
    graph = randomize(graph_of(text))
    ours, ref = module_of(graph, "ln"), reference().eval()
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict())
    x = torch.from_numpy(feeds_for(graph)["x"])
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_default_init_is_identity_affine():
    graph = graph_of("inputs: {x: [N, L, 6]}\nnodes: [{name: ln, op: layernorm}]")
    from archc.ops.weights import initialize

    w = initialize(graph, 0).weights["ln"]
    assert (w["weight"] == 1).all() and (w["bias"] == 0).all() and w["weight"].shape == (6,)


def test_roles():
    for op in ("layernorm", "groupnorm, num_groups: 2"):
        graph = graph_of(f"inputs: {{x: [N, 4, 3]}}\nnodes: [{{op: {op}}}]")
        node = list(graph.nodes())[-1]
        assert registry.lookup(node.op).role_of(node) == "norm"


@pytest.mark.parametrize("text,message", [
    ("{op: layernorm, dims: 4}", "dims=4 must be between 1 and the input's rank 3 ((N, L, 6))"),
    ("{op: layernorm, dims: 2}", "a normalised dim must be a known size, got symbolic 'L'"),
    ("{op: groupnorm, num_groups: 4}", "channels must be a known size, got symbolic 'L'"),
])
def test_errors(text, message):
    msg = spec_error(f"inputs: {{x: [N, L, 6]}}\nnodes: [{text}]")
    assert message in msg


def test_groupnorm_groups_must_divide_channels():
    msg = spec_error("inputs: {x: [N, 6, 4]}\nnodes: [{op: groupnorm, num_groups: 4}]")
    assert "num_groups=4 must divide the number of channels 6" in msg
