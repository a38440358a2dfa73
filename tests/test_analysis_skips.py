"""Skip-connection labels on small architectures: residual, long, dense, gated, and the joins that are not skips."""
from __future__ import annotations

import copy

import pytest
from conftest import SPECS

from archc.analysis.skips import analyze, merge_labels
from archc.frontends.yaml import load_spec, loads_spec
from archc.ir import Graph, Node, Value

RESNET = """
archc: 1
name: resnet_tiny
params: {bottleneck: false, plain_between: false}
inputs: {x: [N, 3, 16, 16]}
blocks:
  basic:
    params: {planes: null, stride: 1}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 3, stride: stride, padding: 1, bias: false}
      - {name: bn1, op: batchnorm}
      - {name: relu, op: relu}
      - {name: conv2, op: conv, out_channels: planes, kernel_size: 3, padding: 1, bias: false}
      - {name: bn2, op: batchnorm}
      - {name: down, block: proj, in: x, out: planes, stride: stride,
         if: "stride != 1 or channels(x) != planes", else: x}
      - {name: add, op: add, in: [bn2, down], expect: residual}
      - {name: relu2, op: relu}
  bottleneck:
    params: {planes: null, stride: 1}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 1, bias: false}
      - {name: bn1, op: batchnorm}
      - {name: relu, op: relu}
      - {name: conv2, op: conv, out_channels: planes, kernel_size: 3, stride: stride, padding: 1, bias: false}
      - {name: bn2, op: batchnorm}
      - {name: relu_1, op: relu}
      - {name: conv3, op: conv, out_channels: planes * 4, kernel_size: 1, bias: false}
      - {name: bn3, op: batchnorm}
      - {name: down, block: proj, in: x, out: planes * 4, stride: stride,
         if: "stride != 1 or channels(x) != planes * 4", else: x}
      - {name: add, op: add, in: [bn3, down], expect: residual}
      - {name: relu_2, op: relu}
  proj:
    params: {out: null, stride: 1}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 1, stride: stride, bias: false}
      - {name: bn, op: batchnorm}
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: layer1, block: basic, repeat: 2, planes: 8, if: "not bottleneck"}
  - {name: layer1b, block: bottleneck, repeat: 2, planes: 2, if: bottleneck}
  - {name: plain, op: conv, out_channels: 8, kernel_size: 3, padding: 1, if: plain_between}
  - {name: layer2, block: basic, repeat: 2, planes: 16, overrides: {0: {stride: 2}}, if: "not bottleneck"}
  - {name: layer2b, block: bottleneck, repeat: 2, planes: 4, overrides: {0: {stride: 2}}, if: bottleneck}
  - {name: pool, op: global_avgpool}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out_features: 10}
"""


def kinds(analysis) -> dict[str, list[str]]:
    """merge name -> labels of its (fork, merge) pairs."""
    out: dict[str, list[str]] = {}
    for c in analysis.connections:
        out.setdefault(c.merge, []).append(c.kind)
    return out


def only(analysis, merge: str):
    (rec,) = [c for c in analysis.connections if c.merge == merge]
    return rec


# -- residual ---------------------------------------------------------------------------------

def test_resnet_basic_identity_and_projection_shortcuts():
    a = analyze(loads_spec(RESNET))
    assert a.summary()["residual"] == 4 and len(a.connections) == 4
    assert not a.expectations
    first, proj = only(a, "layer1.0.add"), only(a, "layer2.0.add")
    assert (first.fork, first.carries, first.shortcut) == ("stem", "identity", [])
    assert (first.span.layers, first.span.ops, first.span.depth) == (2, 5, 2)
    assert first.span.nodes == ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu", "layer1.0.conv2", "layer1.0.bn2"]
    assert (proj.fork, proj.carries) == ("layer1.1.relu2", "projection")
    assert proj.shortcut == ["layer2.0.down.conv", "layer2.0.down.bn"]
    # blocks in series form one stage, in order
    assert [(c.merge, c.stage, c.position) for c in a.chains[0]] == [
        ("layer1.0.add", 0, 0), ("layer1.1.add", 0, 1), ("layer2.0.add", 0, 2), ("layer2.1.add", 0, 3)]


def test_resnet_bottleneck_stack():
    a = analyze(loads_spec(RESNET, overrides={"bottleneck": True}))
    assert a.summary()["residual"] == 4 and not a.expectations
    assert {c.span.layers for c in a.skips} == {3}
    # the stem already has planes * 4 channels: only the strided block projects
    assert [c.carries for c in a.skips] == ["identity", "identity", "projection", "identity"]
    assert len(a.chains) == 1


def test_a_plain_layer_between_stacks_starts_a_new_stage():
    a = analyze(loads_spec(RESNET, overrides={"plain_between": True}))
    assert [[c.merge for c in chain] for chain in a.chains] == [
        ["layer1.0.add", "layer1.1.add"], ["layer2.0.add", "layer2.1.add"]]
    assert [c.stage for c in a.skips] == [0, 0, 1, 1]
    assert [c.blocks for c in a.paths.chains] == [2, 2]


def test_transformer_sublayers_are_residual_pre_and_post_norm():
    g = loads_spec("""
archc: 1
inputs: {x: [N, 6, 16]}
blocks:
  pre:
    nodes:
      - {name: ln1, op: layernorm}
      - {name: attn, op: multi_head_attention, in: [ln1, ln1, ln1], num_heads: 2}
      - {name: add1, op: add, in: [x, attn], expect: residual}
      - {name: ln2, op: layernorm}
      - {name: fc1, op: linear, out_features: 32}
      - {name: act, op: gelu}
      - {name: fc2, op: linear, out_features: 16}
      - {name: add2, op: add, in: [add1, fc2], expect: residual}
  post:
    nodes:
      # attention written out: Q/K/V projections join in matmuls (branches, not skips)
      - {name: q, op: linear, in: x, out_features: 16}
      - {name: k, op: linear, in: x, out_features: 16}
      - {name: v, op: linear, in: x, out_features: 16}
      - {name: kt, op: permute, in: k, perm: [0, 2, 1]}
      - {name: scores, op: matmul, in: [q, kt], expect: branch}
      - {name: p, op: softmax}
      - {name: ctx, op: matmul, in: [p, v], expect: branch}
      - {name: proj, op: linear, out_features: 16}
      - {name: add, op: add, in: [x, proj], expect: residual}
      - {name: ln, op: layernorm}
nodes:
  - {name: enc, block: pre, repeat: 2}
  - {name: dec, block: post}
""")
    a = analyze(g)
    assert not a.expectations
    assert a.summary() == {"residual": 5, "long_skip": 0, "dense": 0, "gated": 0, "branch": 2, "sequential": 0}
    assert [c.blocks for c in a.paths.chains] == [5]
    assert only(a, "dec.add").span.layers == 4        # q, k, v and the output projection


def test_scaled_residual_and_branches_inside_stay_residual():
    # Inception-ResNet: x + 0.17 * conv1x1(concat(branches))
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 8, 8, 8]}
nodes:
  - {name: b1, op: conv, in: x, out_channels: 4, kernel_size: 1}
  - {name: b2a, op: conv, in: x, out_channels: 4, kernel_size: 1}
  - {name: b2, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: cat, op: concat, in: [b1, b2]}
  - {name: up, op: conv, out_channels: 8, kernel_size: 1}
  - {name: s, op: scale, factor: 0.17}
  - {name: add, op: add, in: [x, s]}
"""))
    assert kinds(a) == {"cat": ["branch"], "add": ["residual"]}


def test_se_block_inside_residual():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 8, 8, 8]}
nodes:
  - {name: conv, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: gap, op: global_avgpool}
  - {name: fc1, op: conv, out_channels: 2, kernel_size: 1}
  - {name: relu, op: relu}
  - {name: fc2, op: conv, out_channels: 8, kernel_size: 1}
  - {name: gate, op: sigmoid}
  - {name: se, op: mul, in: [conv, gate], expect: none}
  - {name: add, op: add, in: [x, se], expect: residual}
"""))
    assert not a.expectations
    assert kinds(a) == {"se": ["sequential"], "add": ["residual"]}
    assert "gate on the main path" in only(a, "se").reason


def test_two_input_models_cross_attention_and_fusion():
    # The decoder's residual does not dominate the cross-attention (the encoder feeds it too).
    a = analyze(loads_spec("""
archc: 1
inputs: {src: [N, 6, 16], tgt: [N, 5, 16]}
nodes:
  - {name: enc, op: linear, in: src, out_features: 16}
  - {name: ln, op: layernorm, in: tgt}
  - {name: sa, op: multi_head_attention, in: [ln, ln, ln], num_heads: 2}
  - {name: add1, op: add, in: [tgt, sa], expect: residual}
  - {name: ln2, op: layernorm}
  - {name: ca, op: multi_head_attention, in: [ln2, enc, enc], num_heads: 2, expect: branch}
  - {name: add2, op: add, in: [add1, ca], expect: residual}
"""))
    assert not a.expectations
    assert only(a, "ca").fork is None and "no common fork" in only(a, "ca").reason
    assert (only(a, "add2").fork, only(a, "add2").span.nodes) == ("add1", ["ln2", "ca"])
    assert [c.merge for c in a.chains[0]] == ["add1", "add2"]


# -- long skips ---------------------------------------------------------------------------------

UNET = """
archc: 1
inputs: {x: [N, 3, 32, 32]}
blocks:
  double:
    params: {c: null}
    nodes:
      - {name: c1, op: conv, out_channels: c, kernel_size: 3, padding: 1}
      - {name: r1, op: relu}
      - {name: c2, op: conv, out_channels: c, kernel_size: 3, padding: 1}
      - {name: r2, op: relu}
nodes:
  - {name: e1, block: double, c: 4}
  - {name: p1, op: maxpool, kernel_size: 2}
  - {name: e2, block: double, c: 8}
  - {name: p2, op: maxpool, kernel_size: 2}
  - {name: e3, block: double, c: 16}
  - {name: p3, op: maxpool, kernel_size: 2}
  - {name: mid, block: double, c: 16}
  - {name: u3, op: conv_transpose, out_channels: 16, kernel_size: 2, stride: 2}
  - {name: cat3, op: concat, in: [e3, u3], expect: long_skip}
  - {name: d3, block: double, c: 16}
  - {name: u2, op: upsample, scale_factor: 2}
  - {name: cat2, op: concat, in: [e2, u2], expect: long_skip}
  - {name: d2, block: double, c: 8}
  - {name: u1, op: upsample, scale_factor: 2}
  - {name: cat1, op: concat, in: [e1, u1], expect: long_skip}
  - {name: d1, block: double, c: 4}
  - {name: head, op: conv, out_channels: 2, kernel_size: 1}
"""


def test_unet_one_long_skip_per_level():
    a = analyze(loads_spec(UNET))
    assert not a.expectations
    assert a.summary() == {"residual": 0, "long_skip": 3, "dense": 0, "gated": 0, "branch": 0, "sequential": 0}
    assert [(c.fork, c.merge, c.carries) for c in a.skips] == [
        ("e3.r2", "cat3", "identity"), ("e2.r2", "cat2", "identity"), ("e1.r2", "cat1", "identity")]
    # the innermost level is long because its path down- and upsamples, the outer ones also enclose skips
    assert "enclose" not in only(a, "cat3").reason and "upsample" in only(a, "cat3").reason
    assert "enclose other skips" in only(a, "cat1").reason  # (across N layers that enclose: plural)
    assert a.paths.total == 4


def test_fpn_top_down_adds_are_long_skips():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 3, 32, 32]}
nodes:
  - {name: c2, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: c3, op: conv, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {name: c4, op: conv, out_channels: 32, kernel_size: 3, stride: 2, padding: 1}
  - {name: lat4, op: conv, in: c4, out_channels: 8, kernel_size: 1}
  - {name: lat3, op: conv, in: c3, out_channels: 8, kernel_size: 1}
  - {name: lat2, op: conv, in: c2, out_channels: 8, kernel_size: 1}
  - {name: up4, op: upsample, in: lat4, scale_factor: 2}
  - {name: p3, op: add, in: [lat3, up4], expect: long_skip}
  - {name: up3, op: upsample, in: p3, scale_factor: 2}
  - {name: p2, op: add, in: [lat2, up3], expect: long_skip}
  - {name: out2, op: conv, in: p2, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: out3, op: conv, in: p3, out_channels: 8, kernel_size: 3, padding: 1}
outputs: [out2, out3]
"""))
    assert not a.expectations
    assert [(c.fork, c.merge, c.carries, c.shortcut) for c in a.skips] == [
        ("c3", "p3", "projection", ["lat3"]), ("c2", "p2", "projection", ["lat2"])]


def test_hourglass_nested_adds():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 8, 16, 16]}
blocks:
  res:
    nodes:
      - {name: bn, op: batchnorm}
      - {name: relu, op: relu}
      - {name: conv1, op: conv, out_channels: 4, kernel_size: 1}
      - {name: conv2, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
      - {name: conv3, op: conv, out_channels: 8, kernel_size: 1}
      - {name: add, op: add, in: [conv3, x], expect: residual}
  level:
    params: {depth: null}
    nodes:
      - {name: up1, block: res, in: x}
      - {name: pool, op: maxpool, in: x, kernel_size: 2}
      - {name: low1, block: res}
      - {name: inner, block: level, depth: depth - 1, if: "depth > 1", else: low1}
      - {name: low2, block: res, if: "depth == 1", else: inner}
      - {name: low3, block: res}
      - {name: up2, op: upsample, scale_factor: 2}
      - {name: add, op: add, in: [up1, up2], expect: long_skip}
nodes:
  - {name: hg, block: level, depth: 2}
"""))
    assert not a.expectations
    assert a.summary()["residual"] == 7 and a.summary()["long_skip"] == 2
    outer = only(a, "hg.add")
    # the upper branch computes (a residual module): still long, because of what the other path spans
    assert (outer.fork, outer.carries) == ("x", "computed")


def test_segnet_pooling_indices():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 3, 16, 16]}
nodes:
  - {name: e1, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: p1, op: maxpool, kernel_size: 2, return_indices: true}
  - {name: e2, op: conv, in: "p1:0", out_channels: 4, kernel_size: 3, padding: 1}
  - {name: p2, op: maxpool, kernel_size: 2, return_indices: true}
  - {name: mid, op: conv, in: "p2:0", out_channels: 4, kernel_size: 3, padding: 1}
  - {name: u2, op: max_unpool, in: [mid, "p2:1"], kernel_size: 2}
  - {name: d2, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: u1, op: max_unpool, in: [d2, "p1:1"], kernel_size: 2}
"""))
    assert [(c.fork, c.fork_output, c.merge, c.kind, c.carries) for c in a.connections] == [
        ("p2", 1, "u2", "long_skip", "indices"), ("p1", 1, "u1", "long_skip", "indices")]


# -- dense and gated -------------------------------------------------------------------------

DENSE = """
archc: 1
params: {layers: 4}
inputs: {x: [N, 8, 8, 8]}
blocks:
  layer:
    inputs: [features...]
    nodes:
      - {name: cat, op: concat, in: features}
      - {name: bn, op: batchnorm}
      - {name: relu, op: relu}
      - {name: conv, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: layer, block: layer, repeat: layers, in: [stem, "layer[*]"]}
  - {name: out, op: concat, in: [stem, "layer[*]"], expect: dense}
  - {name: trans, op: conv, out_channels: 8, kernel_size: 1}
"""


@pytest.mark.parametrize("layers", [1, 2, 4, 7])
def test_dense_block_counts_l_l_plus_1_over_2(layers):
    a = analyze(loads_spec(DENSE, overrides={"layers": layers}))
    assert a.summary()["dense"] == layers * (layers + 1) // 2
    assert len(a.connections) == layers * (layers + 1) // 2 and not a.expectations
    # the block output concat reads L + 1 tensors: L pairs, the most recent input being the main path
    out = [c for c in a.connections if c.merge == "out"]
    assert [c.fork for c in out] == ["stem"] + [f"layer.{i}.conv" for i in range(layers - 1)]
    assert [c.span.depth for c in out] == list(range(layers, 0, -1))


def test_highway_gated_in_both_forms():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 16]}
blocks:
  carry_form:          # y = x + T * (H - x)
    nodes:
      - {name: h, op: linear, in: x, out_features: 16}
      - {name: hr, op: relu}
      - {name: t, op: linear, in: x, out_features: 16}
      - {name: tg, op: sigmoid}
      - {name: d, op: sub, in: [hr, x]}
      - {name: g, op: mul, in: [tg, d]}
      - {name: y, op: add, in: [x, g], expect: gated}
  paper_form:          # y = H * T + x * (1 - T), written x - x * T
    nodes:
      - {name: h, op: linear, in: x, out_features: 16}
      - {name: hr, op: relu}
      - {name: t, op: linear, in: x, out_features: 16}
      - {name: tg, op: sigmoid}
      - {name: ht, op: mul, in: [hr, tg]}
      - {name: xt, op: mul, in: [x, tg]}
      - {name: carry, op: sub, in: [x, xt]}
      - {name: y, op: add, in: [ht, carry], expect: gated}
nodes:
  - {name: a, block: carry_form}
  - {name: b, block: paper_form}
"""))
    assert not a.expectations
    assert [(c.fork, c.merge) for c in a.skips] == [("x", "a.y"), ("a.y", "b.y")]
    # (x - x*T in the paper form is arithmetic on x: a gated product lies as deep as the value it scales)
    assert a.summary() == {"residual": 0, "long_skip": 0, "dense": 0, "gated": 2, "branch": 3, "sequential": 2}


# -- not skips ------------------------------------------------------------------------------------

def test_inception_module_is_a_branch():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 8, 16, 16]}
nodes:
  - {name: b1, op: conv, in: x, out_channels: 4, kernel_size: 1}
  - {name: b2a, op: conv, in: x, out_channels: 4, kernel_size: 1}
  - {name: b2, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: b3a, op: conv, in: x, out_channels: 4, kernel_size: 1}
  - {name: b3, op: conv, out_channels: 4, kernel_size: 5, padding: 2}
  - {name: b4a, op: maxpool, in: x, kernel_size: 3, stride: 1, padding: 1}
  - {name: b4, op: conv, out_channels: 4, kernel_size: 1}
  - {name: cat, op: concat, in: [b1, b2, b3, b4], expect: branch}
"""))
    assert not a.skips and not a.expectations
    assert kinds(a) == {"cat": ["branch"]} and only(a, "cat").fork == "x"
    assert a.paths.total == 4


def test_aspp_with_image_pooling_is_a_branch():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 8, 16, 16]}
nodes:
  - {name: b0, op: conv, in: x, out_channels: 4, kernel_size: 1}
  - {name: b1, op: conv, in: x, out_channels: 4, kernel_size: 3, padding: 6, dilation: 6}
  - {name: gp, op: global_avgpool, in: x}
  - {name: gc, op: conv, out_channels: 4, kernel_size: 1}
  - {name: gu, op: upsample, size: 16}
  - {name: cat, op: concat, in: [b0, b1, gu]}
"""))
    assert kinds(a) == {"cat": ["branch"]}


def test_plain_chain_has_no_joins():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 3, 8, 8]}
nodes:
  - {op: conv, out_channels: 4, kernel_size: 3}
  - {op: relu}
  - {op: conv, out_channels: 4, kernel_size: 3}
  - {op: flatten}
  - {op: linear, out_features: 3}
"""))
    assert a.connections == [] and a.chains == []
    assert (a.paths.total, a.paths.shortest, a.paths.longest) == (1, 3, 3)


def test_decomposed_activation_and_normalisation_are_not_skips():
    # tanh-GELU: x * tanh(x + 0.044715 x^3) (constants dropped); RMS-style x / mean(x * x)
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 16]}
nodes:
  - {name: fc, op: linear, out_features: 16}
  - {name: x2, op: mul, in: [fc, fc]}
  - {name: x3, op: mul, in: [x2, fc]}
  - {name: c, op: scale, factor: 0.044715}
  - {name: inner, op: add, in: [fc, c]}
  - {name: t, op: tanh}
  - {name: g, op: mul, in: [fc, t]}
  - {name: sq, op: mul, in: [g, g]}
  - {name: ms, op: mean, dims: -1, keepdim: true}
  - {name: rms, op: div, in: [g, ms]}
  - {name: fc2, op: linear, out_features: 4}
"""))
    assert not a.skips
    assert set(kinds(a)) == {"x3", "inner", "g", "rms"}      # x2 and sq read one tensor twice: no join
    assert {c.kind for c in a.connections} == {"sequential"}


def test_rearranging_paths_that_join_again_are_not_skips():
    a = analyze(loads_spec("""
archc: 1
inputs: {x: [N, 8, 8, 8]}
nodes:
  - {name: conv, op: conv, out_channels: 8, kernel_size: 1}
  - {name: top, op: slice, in: conv, dim: 2, start: 0, end: 4}
  - {name: bottom, op: slice, in: conv, dim: 2, start: 4, end: 8}
  - {name: swapped, op: concat, in: [bottom, top], axis: 2}
  - {name: head, op: conv, out_channels: 2, kernel_size: 1}
"""))
    assert not a.skips
    assert kinds(a) == {"swapped": ["sequential"]}


# -- structure only: names, scopes and annotations do not decide ---------------------------------------

def _renamed(graph: Graph) -> Graph:
    """The same graph with opaque node names, no block scopes and no meta."""
    names = {n.name: f"n{i:03d}" for i, n in enumerate(reversed(list(graph.nodes())))}
    g = Graph("renamed")
    for node in graph.nodes():
        g.add(Node(names[node.name], node.op, dict(node.attrs),
                   [Value(names[v.node], v.out) for v in node.inputs], list(node.outputs)))
    g.outputs = {k: Value(names[v.node], v.out) for k, v in graph.outputs.items()}
    return g


@pytest.mark.parametrize("spec", [RESNET, UNET, DENSE])
def test_labels_do_not_depend_on_names_or_scopes(spec):
    graph = loads_spec(spec)
    before = analyze(graph)
    after = analyze(_renamed(graph))
    assert after.summary() == before.summary()
    assert sorted((c.kind, c.carries, c.span.depth) for c in after.connections) == \
        sorted((c.kind, c.carries, c.span.depth) for c in before.connections)


# -- annotations and expectations ------------------------------------------------------------------

def test_merge_labels_name_each_merge_holding_a_skip():
    labels = merge_labels(analyze(loads_spec(RESNET)))
    assert labels["layer1.0.add"] == "residual merge (fork stem)"
    assert "layer1.0.conv1" not in labels
    dense = merge_labels(analyze(loads_spec(DENSE, overrides={"layers": 3})))
    assert dense["out"] == "dense merge (forks stem, layer.0.conv, layer.1.conv)"


def _snapshot(graph) -> object:
    """Everything a pass could change: nodes (op, attrs, inputs, outputs, meta), edges, outputs."""
    nodes = [(n.name, n.op, repr(n.attrs), [(v.node, v.out) for v in n.inputs], repr(n.outputs),
              copy.deepcopy(n.meta)) for n in graph.nodes()]
    edges = sorted(map(repr, graph.nx.edges(keys=True, data=True)))
    return nodes, edges, dict(graph.outputs), graph.name


@pytest.mark.parametrize("name", ["resnet18", "unet", "densenet121", "highway", "segnet", "transformer"])
def test_analysis_changes_nothing_in_the_graph(name):
    graph = load_spec(str(SPECS / f"{name}.yaml"))
    before = _snapshot(graph)
    analyze(graph)
    analyze(graph, band=(1, 3))
    assert _snapshot(graph) == before


def test_expect_mismatch_is_reported_with_location():
    text = UNET.replace("{name: cat2, op: concat, in: [e2, u2], expect: long_skip}",
                        "{name: cat2, op: concat, in: [e2, u2], expect: residual}") \
        .replace("{name: head, op: conv", "{name: head, expect: residual, op: conv")
    a = analyze(loads_spec(text, filename="unet.yaml"))
    got = {(m.node, m.expected, m.found) for m in a.expectations}
    assert got == {("cat2", "residual", "long_skip"), ("head", "residual", "none")}
    cat2 = next(m for m in a.expectations if m.node == "cat2")
    assert cat2.location.startswith("unet.yaml:") and "enclose other skips" in cat2.reason


NESTED_CONCAT = """
inputs: {x: [N, 8, 16, 16]}
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 1}
  - {name: a, op: conv, in: stem, out_channels: 4, kernel_size: [1, 3], padding: [0, 1]}
  - {name: b, op: conv, in: stem, out_channels: 4, kernel_size: [3, 1], padding: [1, 0]}
  - {name: inner, op: concat, in: [a, b], expect: branch}
  - {name: c, op: conv, in: x, out_channels: 4, kernel_size: 1}
  - {name: outer, op: concat, in: [inner, c], expect: branch}
"""


def test_an_expectation_on_a_part_of_a_larger_merge_is_checked_against_that_merge():
    # Inception-v3's expanded filter bank: cat(cat(a, b), c) is one concat, whose pairs hold the inner's
    assert analyze(loads_spec(NESTED_CONCAT, filename="n.yaml")).expectations == []
    wrong = analyze(loads_spec(NESTED_CONCAT.replace("[a, b], expect: branch", "[a, b], expect: dense"),
                               filename="n.yaml")).expectations
    (m,) = wrong
    assert (m.node, m.expected, m.found) == ("inner", "dense", "branch")
    assert m.reason.startswith("part of the concat 'outer', which holds its pairs: ")


FILM_SPEC = """
archc: 1
inputs: {x: [N, 8, 6, 6], c: [N, 4]}
nodes:
  - {name: conv, op: conv, in: x, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: h, op: relu}
%s
  - {name: gamma, op: reshape, in: %s, shape: [0, 8, 1, 1]}
  - {name: beta, op: reshape, in: %s, shape: [0, 8, 1, 1]}
  - {name: scaled, op: mul, in: [gamma, h]}
  - {name: shifted, op: add, in: [scaled, beta]}
  - {name: out, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
"""
FILM_CHUNK = ("""  - {name: film, op: linear, in: c, out_features: 16}
  - {name: parts, op: split, sizes: 8}""", '"parts:0"', '"parts:1"')
FILM_TWO_LINEARS = ("""  - {name: lg, op: linear, in: c, out_features: 8}
  - {name: lb, op: linear, in: c, out_features: 8}""", "lg", "lb")


def test_a_film_shift_from_one_split_is_injected_as_from_two_linears():
    # gamma * h + beta: the shift is broadcast conditioning whether gamma and beta are one split's parts
    # (the fork then the split, no layer to the add) or two linears' outputs; 3 paths either way
    chunk, two = (analyze(loads_spec(FILM_SPEC % form)) for form in (FILM_CHUNK, FILM_TWO_LINEARS))
    for a in (chunk, two):
        assert kinds(a) == {"scaled": ["branch"], "shifted": ["branch"]}
        assert only(a, "shifted").rule == "broadcast_injection"
    assert (chunk.paths.total, chunk.paths.longest) == (two.paths.total, two.paths.longest) == (3, 2)
