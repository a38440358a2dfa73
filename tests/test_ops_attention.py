"""Multi-head attention: parity of the ONNX composition with nn.MultiheadAttention, masks,
symbolic batch/sequence dims, state_dict compatibility with nn.Transformer, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from archc.ops.weights import initialize
from archc.ops import registry
from ops_harness import parity_suite
from ops_harness import assert_same_state_dict_layout, check_parity, feeds_for, graph_of, module_of, randomize, \
    run_onnx, spec_error

PARITY_OPS = {"multi_head_attention"}

SELF = "inputs: {x: [N, L, 8]}\nnodes: [{name: attn, op: multi_head_attention, num_heads: 2, in: [x, x, x]%s}]"
CASES = [
    ("self", SELF % ""),
    ("self_causal", SELF % ", causal: true"),
    ("self_no_bias", SELF % ", bias: false"),
    ("one_head", "inputs: {x: [N, L, 6]}\nnodes: [{op: mha, num_heads: 1, in: [x, x, x]}]"),
    ("cross", "inputs: {q: [N, L, 12], m: [N, S, 12]}\n"
     "nodes: [{op: multi_head_attention, num_heads: 3, in: [q, m, m]}]"),
    ("cross_causal_rectangular", "inputs: {q: [N, L, 8], m: [N, T, 8]}\n"
     "nodes: [{op: multi_head_attention, num_heads: 4, causal: true, in: [q, m, m]}]"),
    ("distinct_kv", "inputs: {q: [N, L, 8], k: [N, S, 8], v: [N, S, 8]}\n"
     "nodes: [{op: attention, num_heads: 2, in: [q, k, v]}]"),
    ("bool_mask", "inputs: {q: [N, L, 8], m: [N, T, 8], mask: {shape: [L, T], dtype: bool}}\n"
     "nodes: [{op: multi_head_attention, num_heads: 2, in: [q, m, m, mask]}]"),
    ("float_mask_per_head", "inputs: {q: [N, L, 8], mask: [B, L, L]}\n"
     "nodes: [{op: multi_head_attention, num_heads: 2, in: [q, q, q, mask]}]"),
    ("static_dims", "inputs: {x: [3, 4, 8]}\nnodes: [{op: multi_head_attention, num_heads: 2, causal: true, "
     "in: [x, x, x]}]"),
]
# a per-head mask has N * num_heads rows: 2 * 2 with the harness's N = 2
SIZES = {"B": 4}


# The bool mask (p = 0.3 masked) never masks all of a row with these seeds: no NaN rows.
test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS, sizes=SIZES, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("sizes", [{"N": 1, "L": 1}, {"N": 3, "L": 9}])
def test_symbolic_dims_at_other_sizes(sizes):
    check_parity(SELF % ", causal: true", sizes=sizes)



def test_inferred_shape_keeps_symbolic_dims():
    graph = graph_of(dict(CASES)["cross"])
    assert graph.type_of(graph.outputs["output"]).shape == ("N", "L", 12)


@pytest.mark.parametrize("text,kwargs", [(SELF % "", {}), (SELF % ", bias: false", {"bias": False})])
def test_matches_nn_multihead_attention(text, kwargs):
    graph = randomize(graph_of(text))
    ours = module_of(graph, "attn")
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True, **kwargs).eval()
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict())
    x = torch.from_numpy(feeds_for(graph)["x"])
    with torch.no_grad():
        torch.testing.assert_close(ours(x, x, x, need_weights=False)[0], ref(x, x, x, need_weights=False)[0])


def test_transformer_decoder_self_attention_weights_load_and_causal_mask_matches():
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(d_model=8, nhead=2, batch_first=True).eval()
    graph = graph_of(SELF % ", causal: true")
    initialize(graph, 0)
    graph.weights["attn"] = {k: v.numpy().copy() for k, v in layer.self_attn.state_dict().items()}
    x = feeds_for(graph, {"L": 6})["x"]
    mask = torch.nn.Transformer.generate_square_subsequent_mask(6)
    with torch.no_grad():
        ref = layer.self_attn(*(torch.from_numpy(x),) * 3, attn_mask=mask, need_weights=False)[0].numpy()
    np.testing.assert_allclose(run_onnx(graph, {"x": x})[0], ref, rtol=1e-4, atol=1e-5)
    # and the causal mask matters: position 0 sees only itself
    unmasked = graph_of(SELF % "")
    unmasked.weights = graph.weights
    assert np.abs(run_onnx(unmasked, {"x": x})[0] - ref)[:, 0].max() > 1e-3


def test_params_follow_pytorch_init():
    graph = graph_of("inputs: {x: [N, L, 64]}\n"
                     "nodes: [{name: attn, op: multi_head_attention, num_heads: 4, in: [x, x, x]}]")
    w = initialize(graph, 0).weights["attn"]
    assert list(w) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert np.abs(w["in_proj_weight"]).max() <= np.sqrt(6 / (64 + 192))   # xavier_uniform on (3E, E)
    assert np.abs(w["out_proj.weight"]).max() <= 1 / 8                    # nn.Linear's bound 1/sqrt(E)
    assert not w["in_proj_bias"].any() and not w["out_proj.bias"].any()


def test_role_is_layer():
    graph = graph_of(SELF % "")
    assert registry.lookup("multi_head_attention").role_of(graph.node("attn")) == "layer"


@pytest.mark.parametrize("inputs,args,message", [
    ("{x: [N, L, 8]}", "num_heads: 3, in: [x, x, x]", "num_heads=3 must divide the embedding dim 8"),
    ("{x: [N, L, 8], k: [N, S, 6]}", "num_heads: 2, in: [x, k, k]",
     "key (N, S, 6) must have the query's embedding dim 8 as its last dim"),
    ("{x: [N, L, 8], k: [N, 3, 8], v: [N, 4, 8]}", "num_heads: 2, in: [x, k, v]",
     "key (N, 3, 8) and value (N, 4, 8) have different sequence lengths"),
    ("{x: [2, L, 8], k: [3, L, 8]}", "num_heads: 2, in: [x, k, k]",
     "key (3, L, 8) and query (2, L, 8) have different batch sizes"),
    ("{x: [N, 8]}", "num_heads: 2, in: [x, x, x]", "expected a 3-D input query (N, L, E), got 2-D (N, 8)"),
    ("{x: [N, L, 8], m: [L, L]}", "num_heads: 2, causal: true, in: [x, x, x, m]",
     "give either causal: true or an attn_mask input, not both"),
    ("{x: [N, 5, 8], m: [5, 4]}", "num_heads: 2, in: [x, x, x, m]", "attn_mask (5, 4) must end in (L, S) = (5, 5)"),
    ("{x: [3, 5, 8], m: [3, 5, 5]}", "num_heads: 2, in: [x, x, x, m]",
     "a 3-D attn_mask (3, 5, 5) needs N * num_heads = 6 as its first dim"),
    ("{x: [N, L, 8], m: {shape: [L, L], dtype: int64}}", "num_heads: 2, in: [x, x, x, m]",
     "attn_mask must be bool or float32 like the query, got int64"),
])
def test_errors(inputs, args, message):
    msg = spec_error(f"inputs: {inputs}\nnodes: [{{name: a, op: multi_head_attention, {args}}}]")
    assert "node 'a'" in msg and message in msg


def test_needs_three_inputs():
    msg = spec_error("inputs: {x: [N, L, 8]}\nnodes: [{op: multi_head_attention, num_heads: 2, in: [x, x]}]")
    assert "op 'multi_head_attention' takes 3 to 4 input(s), got 2" in msg
