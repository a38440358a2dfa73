"""The error classes of issue 10 written in archc's spec language, where it can say them: each merge
declares what it is (``expect:``) and lint must agree. The same models as torch modules, exported by
both ONNX exporters, are in tests/test_lint_exports.py."""
from __future__ import annotations

import pytest

from archc.analysis.skips import analyze
from archc.frontends.yaml import loads_spec

HEAD = """\
archc: 1
name: {name}
inputs: {{x: [N, 3, 16, 16]}}
"""

SPECS = {
    # class 1: the shortcut is one strided 3x3 conv + norm, beside a main path of two layers
    "kxk_shortcut": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: conv1, op: conv, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {name: bn1, op: batchnorm}
  - {name: relu, op: relu}
  - {name: conv2, op: conv, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: short, op: conv, in: stem, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {name: short_bn, op: batchnorm}
  - {name: add, op: add, in: [conv2, short_bn], expect: residual}
""",
    # class 6: a depthwise + pointwise shortcut beside three layers
    "dw_pw_shortcut": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: expand, op: conv, out_channels: 8, kernel_size: 1}
  - {name: dw, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1, groups: 8}
  - {name: project, op: conv, out_channels: 16, kernel_size: 1}
  - {name: s_dw, op: conv, in: stem, out_channels: 8, kernel_size: 3, stride: 2, padding: 1, groups: 8}
  - {name: s_bn1, op: batchnorm}
  - {name: s_pw, op: conv, out_channels: 16, kernel_size: 1}
  - {name: s_bn2, op: batchnorm}
  - {name: add, op: add, in: [project, s_bn2], expect: residual}
""",
    # class 3: x + a(x) + b(x) as two adds: one merge, x counted once
    "three_term_sum": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: a1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: a2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b, op: conv, in: stem, out_channels: 8, kernel_size: 1}
  - {name: bx, op: add, in: [b, stem], expect: none}
  - {name: sum, op: add, in: [bx, a2], expect: residual}
""",
    # class 5: x + pool(norm(x)) - norm(x), no learned layer in the mixer
    "pool_mixer": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: norm, op: groupnorm, num_groups: 1}
  - {name: pool, op: avgpool, kernel_size: 3, stride: 1, padding: 1, count_include_pad: false}
  - {name: diff, op: sub, in: [pool, norm]}
  - {name: add, op: add, in: [stem, diff], expect: residual}
""",
    # an FPN lateral 1x1 conv on a pyramid of one width keeps the shape: still light across the round trip
    "one_width_fpn": """\
nodes:
  - {name: c1, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: c2, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: p2, op: conv, out_channels: 8, kernel_size: 1}
  - {name: up, op: upsample, scale_factor: 2}
  - {name: lateral, op: conv, in: c1, out_channels: 8, kernel_size: 1}
  - {name: p1, op: add, in: [lateral, up], expect: long_skip}
""",
    # residual learning by subtraction (DnCNN's x - F(x)), either order: a sum with one term negated
    "sub_residual": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: a1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: a_relu, op: relu}
  - {name: a2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: x_minus_f, op: sub, in: [stem, a2], expect: residual}
  - {name: b1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b_relu, op: relu}
  - {name: b2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: f_minus_x, op: sub, in: [b2, x_minus_f], expect: residual}
""",
    # a decoder's residual block that only upsamples (BigGAN's generator block): no round trip, as ResNet's
    # stride-2 block holds none; its shortcut, upsample + 1x1 conv, a projection
    "upsampling_residual": """\
nodes:
  - {name: stem, op: conv, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: up, op: upsample, scale_factor: 2}
  - {name: c1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: relu, op: relu}
  - {name: c2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: s_up, op: upsample, in: stem, scale_factor: 2}
  - {name: s_proj, op: conv, out_channels: 8, kernel_size: 1}
  - {name: add, op: add, in: [c2, s_proj], expect: residual}
""",
    # ENet's upsampling bottleneck: the shortcut unpools a 1x1 conv of y with an earlier pooling's indices; the
    # add's fork is y (the indices' own link is a long skip), the block only upsamples
    "unpool_residual": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: pool, op: maxpool, kernel_size: 2, stride: 2, return_indices: true}
  - {name: mid, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: y, op: relu}
  - {name: m1, op: conv, out_channels: 4, kernel_size: 1}
  - {name: m_up, op: conv_transpose, out_channels: 4, kernel_size: 2, stride: 2}
  - {name: m2, op: conv, out_channels: 8, kernel_size: 1}
  - {name: short, op: conv, in: y, out_channels: 8, kernel_size: 1}
  - {name: unpool, op: max_unpool, in: [short, "pool:indices"], kernel_size: 2, stride: 2, expect: long_skip}
  - {name: add, op: add, in: [m2, unpool], expect: residual}
""",
    # class 8: a head summing pyramid levels, each through two layers of its own
    "pyramid_sum": """\
nodes:
  - {name: d0, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: d1, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: l0a, op: conv, in: d0, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: l0b, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: l1a, op: conv, in: d1, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: l1b, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: up, op: upsample, scale_factor: 2}
  - {name: sum, op: add, in: [l0b, up], expect: branch}
""",
    # class 14: PyramidNet's shortcut, ResNet's option A: x widened by zero channels (F.pad's list runs from
    # the last dim: W, H, then the channels), an identity padded
    "padded_shortcut": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: conv1, op: conv, out_channels: 12, kernel_size: 3, padding: 1}
  - {name: relu, op: relu}
  - {name: conv2, op: conv, out_channels: 12, kernel_size: 3, padding: 1}
  - {name: widen, op: pad, in: stem, pads: [0, 0, 0, 0, 0, 4]}
  - {name: add, op: add, in: [conv2, widen], expect: residual}
""",
    # class 15: a one-layer lateral beside a round trip of one layer: both paths compute alike
    "one_layer_round_trip": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: pool, op: maxpool, kernel_size: 2}
  - {name: mid, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: up, op: upsample, scale_factor: 2}
  - {name: lateral, op: conv, in: stem, out_channels: 8, kernel_size: 1}
  - {name: sum, op: add, in: [up, lateral], expect: branch}
""",
    # class 15: a pooling upsampled back, no layer, beside a conv: it carries a projection, of the fork's shape
    "pooled_and_upsampled": """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: pool, op: maxpool, kernel_size: 2}
  - {name: up, op: upsample, scale_factor: 2}
  - {name: lateral, op: conv, in: stem, out_channels: 8, kernel_size: 1}
  - {name: sum, op: add, in: [up, lateral], expect: branch}
""",
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_error_class_as_a_spec(name):
    analysis = analyze(loads_spec(HEAD.format(name=name) + SPECS[name]))
    assert not analysis.expectations, [(m.node, m.expected, m.found, m.reason) for m in analysis.expectations]
    skips = [c for c in analysis.skips]
    assert len(skips) == SKIPS.get(name, 1)


#: skips in each spec of :data:`SPECS` that holds other than one
SKIPS = {"pyramid_sum": 0, "sub_residual": 2, "unpool_residual": 2, "one_layer_round_trip": 0,
         "pooled_and_upsampled": 0}


@pytest.mark.parametrize("name, carries, rule, reason", [
    ("padded_shortcut", "identity", "residual", "identity shortcut (padded) from stem around 2 layers"),
    ("one_layer_round_trip", "projection", "both_compute",
     "both paths from stem compute (1 layer and 1 layer that down- and upsamples)"),
    ("pooled_and_upsampled", "projection", "add_branch",
     "both paths from stem compute (0 layers and 1 layer; a same-shape projection)")])
def test_classes14_and_15_as_a_spec_and_through_archcs_onnx(name, carries, rule, reason, tmp_path):
    # the words of the torch-module tests (tests/test_lint_exports.py, classes 14 and 15) from a spec, and
    # from archc's ONNX build of it, re-imported
    for a in _lint(name, SPECS[name], tmp_path):
        (pair,) = a.connections
        assert (pair.carries, pair.rule, pair.reason) == (carries, rule, reason)


@pytest.mark.parametrize("name, carries", [("sub_residual", ["identity", "identity"]),
                                           ("upsampling_residual", ["projection"]),
                                           ("unpool_residual", ["projection"])])
def test_a_residual_by_subtraction_or_upsampling_as_a_spec_and_through_archcs_onnx(name, carries, tmp_path):
    # what each residual's shortcut carries, and from where: the same in archc's ONNX build as in the spec
    spec, onnx_build = _lint(name, SPECS[name], tmp_path)
    for a in (spec, onnx_build):
        residuals = [s for s in a.skips if s.kind == "residual"]
        assert [(s.carries, s.rule) for s in residuals] == [(c, "residual") for c in carries]
        assert not any("down- and upsample" in s.reason for s in residuals)  # (no round trip)
        assert a.summary() == spec.summary()
    assert [s.fork for s in spec.skips if s.kind == "residual"] == {
        "sub_residual": ["stem", "x_minus_f"], "upsampling_residual": ["stem"], "unpool_residual": ["y"]}[name]


# -- classes 2, 4 and 7: whole models, checked pair by pair as the torch-module tests do --------

#: class 2: SegNet-style pooling indices. The spec language says max_pool2d(return_indices) and
#: max_unpool2d, not the index arithmetic an exporter wraps around them (it has no ops on
#: indices); archc's own ONNX lowering writes that arithmetic (Shape, Mul, Range, Reshape, Add of
#: plane offsets), so the spec is also linted through its ONNX build, re-imported.
POOL_INDICES = """\
nodes:
  - {name: e1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: e1_bn, op: batchnorm}
  - {name: e1_relu, op: relu}
  - {name: pool1, op: maxpool, kernel_size: 2, stride: 2, return_indices: true}
  - {name: e2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: e2_bn, op: batchnorm}
  - {name: e2_relu, op: relu}
  - {name: pool2, op: maxpool, kernel_size: 2, stride: 2, return_indices: true}
  - {name: mid, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: mid_bn, op: batchnorm}
  - {name: mid_relu, op: relu}
  - {name: unpool2, op: max_unpool, in: [mid_relu, "pool2:indices"], kernel_size: 2, stride: 2, expect: long_skip}
  - {name: d2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: d2_bn, op: batchnorm}
  - {name: d2_relu, op: relu}
  - {name: unpool1, op: max_unpool, in: [d2_relu, "pool1:indices"], kernel_size: 2, stride: 2, expect: long_skip}
  - {name: d1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: head, op: conv, out_channels: 4, kernel_size: 1}
"""

#: class 4: an attention-gated U-Net of 2 levels (Oktay et al.): the gate's theta(skip) + phi(g)
#: is a branch join; the gated skip skip * psi(...) is one long skip per level, to the concat
ATTENTION_UNET = """\
nodes:
  - {name: e0, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: e0_relu, op: relu}
  - {name: p0, op: maxpool, kernel_size: 2}
  - {name: e1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: e1_relu, op: relu}
  - {name: p1, op: maxpool, kernel_size: 2}
  - {name: bott, op: conv, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: bott_relu, op: relu}
  - {name: up1, op: conv_transpose, out_channels: 8, kernel_size: 2, stride: 2}
  - {name: theta1, op: conv, in: e1_relu, out_channels: 4, kernel_size: 1}
  - {name: phi1, op: conv, in: up1, out_channels: 4, kernel_size: 1}
  - {name: gate_add1, op: add, in: [theta1, phi1], expect: branch}
  - {name: gate_relu1, op: relu}
  - {name: psi1, op: conv, out_channels: 1, kernel_size: 1}
  - {name: psi_bn1, op: batchnorm}
  - {name: psi_sig1, op: sigmoid}
  - {name: gated1, op: mul, in: [e1_relu, psi_sig1]}
  - {name: cat1, op: concat, in: [gated1, up1], expect: long_skip}
  - {name: d1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: d1_relu, op: relu}
  - {name: up0, op: conv_transpose, out_channels: 4, kernel_size: 2, stride: 2}
  - {name: theta0, op: conv, in: e0_relu, out_channels: 2, kernel_size: 1}
  - {name: phi0, op: conv, in: up0, out_channels: 2, kernel_size: 1}
  - {name: gate_add0, op: add, in: [theta0, phi0], expect: branch}
  - {name: gate_relu0, op: relu}
  - {name: psi0, op: conv, out_channels: 1, kernel_size: 1}
  - {name: psi_bn0, op: batchnorm}
  - {name: psi_sig0, op: sigmoid}
  - {name: gated0, op: mul, in: [e0_relu, psi_sig0]}
  - {name: cat0, op: concat, in: [gated0, up0], expect: long_skip}
  - {name: d0, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: d0_relu, op: relu}
  - {name: head, op: conv, out_channels: 2, kernel_size: 1}
"""

#: class 7: UNet++ of depth 3 (Zhou et al.): X[i][j] = H(cat(X[i][0..j-1], up(X[i+1][j-1])));
#: X02's concat merges two shortcuts of its level (X00 and X01), each its own pair
NESTED_UNET = """\
nodes:
  - {name: x00, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: x00_relu, op: relu}
  - {name: p0, op: maxpool, kernel_size: 2}
  - {name: x10, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: x10_relu, op: relu}
  - {name: p1, op: maxpool, kernel_size: 2}
  - {name: x20, op: conv, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: x20_relu, op: relu}
  - {name: up10, op: upsample, in: x10_relu, scale_factor: 2}
  - {name: cat01, op: concat, in: [x00_relu, up10], expect: long_skip}
  - {name: x01, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: x01_relu, op: relu}
  - {name: up20, op: upsample, in: x20_relu, scale_factor: 2}
  - {name: cat11, op: concat, in: [x10_relu, up20], expect: long_skip}
  - {name: x11, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: x11_relu, op: relu}
  - {name: up11, op: upsample, scale_factor: 2}
  - {name: cat02, op: concat, in: [x00_relu, x01_relu, up11], expect: long_skip}
  - {name: x02, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: x02_relu, op: relu}
  - {name: head, op: conv, out_channels: 2, kernel_size: 1}
"""


#: class 3 on BiFPN (Tan et al., 2020), one layer over three levels: P4_out sums P4_in, P4_td and
#: down(P3_out), where P3_out is computed from an upsampled P4_td. However the sum is written, it is one
#: merge with a long skip from each of P4_in and P4_td across the round trip through P3.
BIFPN = """\
archc: 1
name: bifpn
inputs: {x: [N, 3, 32, 32]}
nodes:
  - {name: c3, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: c4, op: conv, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
  - {name: c5, op: conv, out_channels: 24, kernel_size: 3, stride: 2, padding: 1}
  - {name: p3, op: conv, in: c3, out_channels: 8, kernel_size: 1}
  - {name: p4, op: conv, in: c4, out_channels: 8, kernel_size: 1}
  - {name: p5, op: conv, in: c5, out_channels: 8, kernel_size: 1}
  - {name: p5_up, op: upsample, in: p5, scale_factor: 2}
  - {name: td_sum, op: add, in: [p4, p5_up], expect: long_skip}
  - {name: p4_td, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: td_up, op: upsample, in: p4_td, scale_factor: 2}
  - {name: p3_sum, op: add, in: [p3, td_up], expect: long_skip}
  - {name: p3_out, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: p3_down, op: maxpool, in: p3_out, kernel_size: 3, stride: 2, padding: 1}
%s
  - {name: p4_out, op: conv, in: p4_sum, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: p4_down, op: maxpool, in: p4_out, kernel_size: 3, stride: 2, padding: 1}
  - {name: p5_sum, op: add, in: [p5, p4_down], expect: long_skip}
  - {name: p5_out, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
outputs: [p3_out, p4_out, p5_out]
"""
#: P4_out's sum: one add of three inputs, the exporters' two adds, or fast fusion's learned weights first
BIFPN_SUMS = {
    "one_add": """\
  - {name: p4_sum, op: add, in: [p4, p4_td, p3_down], expect: long_skip}""",
    "two_adds": """\
  - {name: partial, op: add, in: [p4, p4_td], expect: none}
  - {name: p4_sum, op: add, in: [partial, p3_down], expect: long_skip}""",
    "weighted": """\
  - {name: w, op: parameter, shape: [3, 1, 1, 1], init: ones}
  - {name: w0, op: slice, in: w, dim: 0, start: 0, end: 1}
  - {name: w1, op: slice, in: w, dim: 0, start: 1, end: 2}
  - {name: w2, op: slice, in: w, dim: 0, start: 2, end: 3}
  - {name: t0, op: mul, in: [p4, w0]}
  - {name: t1, op: mul, in: [p4_td, w1]}
  - {name: t2, op: mul, in: [p3_down, w2]}
  - {name: partial, op: add, in: [t0, t1], expect: none}
  - {name: p4_sum, op: add, in: [partial, t2], expect: long_skip}""",
}


def bifpn_spec(form: str) -> str:
    return BIFPN % BIFPN_SUMS[form]


@pytest.mark.parametrize("form", sorted(BIFPN_SUMS))
def test_class3_a_bifpn_three_term_sum_as_a_spec_and_through_archcs_onnx(form, tmp_path):
    spec, onnx_build = _lint_text("bifpn", bifpn_spec(form), tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for a in (spec, onnx_build):
        assert _kinds(a) == {"long_skip": 5} and not a.joins, [(c.merge, c.fork, c.kind) for c in a.connections]
        p4_out = [s for s in a.skips if s.merge == "p4_sum"]
        assert sorted((s.fork, s.carries, s.span.layers) for s in p4_out) == [
            ("p4", "identity", 2), ("p4_td", "identity", 1)]
        assert a.paths.total == 16


#: class 12 on SKNet (Li et al., 2019): a softmax across the two kernels' branches weights each, as a
#: sigmoid would: the logits' stack computes a gate, the product is a gate on the main path, and a path
#: takes one of the two kernels (the gate side adds none)
SELECTIVE_KERNEL = """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: k3, op: conv, in: stem, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: k5, op: conv, in: stem, out_channels: 8, kernel_size: 3, padding: 2, dilation: 2}
  - {name: feats, op: stack, in: [k3, k5], dim: 1, expect: branch}
  - {name: u, op: sum, in: feats, dims: [1]}
  - {name: s, op: global_avgpool}
  - {name: squeeze, op: conv, out_channels: 4, kernel_size: 1}
  - {name: z, op: relu}
  - {name: la, op: conv, in: z, out_channels: 8, kernel_size: 1}
  - {name: lb, op: conv, in: z, out_channels: 8, kernel_size: 1}
  - {name: logits, op: stack, in: [la, lb], dim: 1, expect: branch}
  - {name: weights, op: softmax, axis: 1}
  - {name: scaled, op: mul, in: [feats, weights], expect: sequential}
  - {name: v, op: sum, dims: [1]}
"""


@pytest.mark.parametrize("gate", ["softmax", "sigmoid"])
def test_class12_a_softmax_across_branches_as_a_spec_and_through_archcs_onnx(gate, tmp_path):
    body = SELECTIVE_KERNEL.replace("op: softmax, axis: 1", "op: sigmoid") if gate == "sigmoid" else SELECTIVE_KERNEL
    assert body != SELECTIVE_KERNEL or gate == "softmax"
    spec, onnx_build = _lint("selective_kernel", body, tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for a in (spec, onnx_build):
        assert sorted((c.kind, c.rule) for c in a.joins) == [
            ("branch", "both_compute"), ("branch", "gate_computation"), ("sequential", "multiplicative_gate")]
        assert (a.paths.total, a.paths.shortest, a.paths.longest) == (2, 2, 2)


#: class 13 on FractalNet (Larsson et al., 2017): two blocks of three columns in series; each block's last
#: join sums three columns from two forks, each through a conv of its own: a merge of computed levels in
#: both blocks, though the first one's result goes on into the second block and only the second's is final
FRACTAL = """\
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b1_c3a, op: conv, in: stem, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b1_c3b, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b1_c2a, op: conv, in: stem, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b1_a, op: add, in: [b1_c3b, b1_c2a]}
  - {name: b1_c3c, op: conv, in: b1_a, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b1_c3d, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b1_c2b, op: conv, in: b1_a, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b1_c1, op: conv, in: stem, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b1_join, op: add, in: [b1_c3d, b1_c2b, b1_c1], expect: branch}
  - {name: b2_c3a, op: conv, in: b1_join, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b2_c3b, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b2_c2a, op: conv, in: b1_join, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b2_a, op: add, in: [b2_c3b, b2_c2a]}
  - {name: b2_c3c, op: conv, in: b2_a, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b2_c3d, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b2_c2b, op: conv, in: b2_a, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b2_c1, op: conv, in: b1_join, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b2_join, op: add, in: [b2_c3d, b2_c2b, b2_c1], expect: branch}
"""


def test_class13_a_joins_label_does_not_depend_on_what_follows_as_a_spec_and_through_archcs_onnx(tmp_path):
    spec, onnx_build = _lint("fractal", FRACTAL, tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for a in (spec, onnx_build):
        joins = {b: sorted((str(c.kind), c.rule, c.span.depth) for c in a.connections if c.merge.startswith(b))
                 for b in ("b1_join", "b2_join")}
        assert joins["b1_join"] == joins["b2_join"] == [("branch", "computed_levels", 2), ("branch", "computed_levels", 4)], joins


#: class 16 on HRNet (Wang et al. 2019), two resolutions: ``blocks`` basic blocks per branch, then a fusion unit
#: summing both branches into each resolution (a 1x1 conv + BN upsampled; a strided 3x3 conv + BN down)
HRNET_FUSION = """\
params: {{blocks: {blocks}}}
blocks:
  basic:
    nodes:
      - {{name: conv1, op: conv, in: x, out_channels: channels(x), kernel_size: 3, padding: 1, bias: false}}
      - {{name: bn1, op: batchnorm}}
      - {{name: relu1, op: relu}}
      - {{name: conv2, op: conv, out_channels: channels(x), kernel_size: 3, padding: 1, bias: false}}
      - {{name: bn2, op: batchnorm}}
      - {{name: add, op: add, in: [bn2, x], expect: residual}}
      - {{name: relu2, op: relu}}
nodes:
  - {{name: stem, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}}
  - {{name: transition, op: conv, in: stem, out_channels: 16, kernel_size: 3, stride: 2, padding: 1}}
  - {{name: hi, block: basic, in: stem, repeat: blocks}}
  - {{name: lo, block: basic, in: transition, repeat: blocks}}
  - {{name: up, op: conv, in: lo, out_channels: 8, kernel_size: 1, bias: false}}
  - {{name: up_bn, op: batchnorm}}
  - {{name: up_2x, op: upsample, scale_factor: 2}}
  - {{name: y_hi, op: add, in: [hi, up_2x], expect: branch}}
  - {{name: down, op: conv, in: hi, out_channels: 16, kernel_size: 3, stride: 2, padding: 1, bias: false}}
  - {{name: down_bn, op: batchnorm}}
  - {{name: y_lo, op: add, in: [down_bn, lo], expect: branch}}
  - {{name: lo_2x, op: upsample, in: y_lo, scale_factor: 2}}
  - {{name: cat, op: concat, in: [y_hi, lo_2x]}}
"""


@pytest.mark.parametrize("blocks", [1, 2])
def test_class16_hrnet_fusion_sums_as_a_spec_and_through_archcs_onnx(blocks, tmp_path):
    # the torch-module test's HRFusion (tests/test_lint_exports.py, class 16): the high resolution's sum was a
    # long skip with one block per branch, a branch with two
    spec, onnx_build = _lint(f"hrnet_fusion_{blocks}", HRNET_FUSION.format(blocks=blocks), tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for a in (spec, onnx_build):
        assert _kinds(a) == {"residual": 2 * blocks, "branch": 3}
        assert sorted(c.rule for c in a.joins if c.merge_op == "add") == ["both_compute", "parallel_streams"]


def _kinds(analysis) -> dict[str, int]:
    return {k: v for k, v in analysis.summary().items() if v}


def _lint(name: str, body: str, tmp_path=None):
    """The analysis of the spec (HEAD and ``body``), and (with ``tmp_path``) of archc's ONNX build of it,
    re-imported."""
    return _lint_text(name, HEAD.format(name=name) + body, tmp_path)


def _lint_text(name: str, text: str, tmp_path=None):
    """:func:`_lint` of a whole spec's ``text``."""
    graph = loads_spec(text)
    analyses = [analyze(graph)]
    if tmp_path is not None:
        from archc.frontends.onnx import load_onnx
        from archc.lowering.onnx import to_onnx

        path = tmp_path / f"{name}.onnx"
        path.write_bytes(to_onnx(graph, seed=0).SerializeToString())
        analyses.append(analyze(load_onnx(str(path))))
    return analyses


def test_class2_pooling_indices_as_a_spec_and_through_archcs_onnx(tmp_path):
    spec, onnx_build = _lint("pool_indices", POOL_INDICES, tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for a in (spec, onnx_build):
        long_skips = [s for s in a.skips if s.kind == "long_skip"]
        assert len(long_skips) == 2 and all(s.carries == "indices" for s in long_skips)
        assert all(s.span.depth > 0 for s in a.skips)  # a long skip that spans no layer is a contradiction
        assert sorted(s.span.depth for s in long_skips) == [1, 3]
        assert a.summary() == spec.summary()


def test_class4_attention_gated_unet_as_a_spec():
    (a,) = _lint("attention_unet", ATTENTION_UNET)
    assert not a.expectations, [(m.node, m.expected, m.found, m.reason) for m in a.expectations]
    assert _kinds(a) == {"long_skip": 2, "branch": 2, "sequential": 2}
    assert sorted((s.merge, s.fork) for s in a.skips) == [("cat0", "e0_relu"), ("cat1", "e1_relu")]
    assert all(s.carries == "identity" for s in a.skips)


def test_class7_nested_unet_as_a_spec_counts_every_pair():
    (a,) = _lint("nested_unet", NESTED_UNET)
    assert not a.expectations, [(m.node, m.expected, m.found, m.reason) for m in a.expectations]
    pairs = sorted((s.merge, s.fork, s.kind) for s in a.skips)
    # (X01, which only cat02 reads, forks nothing: no pair cat02 <- x01_relu; see the 4-level UNet++ in
    # tests/test_lint_exports.py for nodes later nodes of their level reuse)
    assert pairs == [("cat01", "x00_relu", "long_skip"), ("cat02", "x00_relu", "long_skip"),
                     ("cat11", "x10_relu", "long_skip")]


def nested_unet_spec(depth: int) -> str:
    """UNet++ of ``depth`` levels as a spec body: X[i][j] = conv(cat(X[i][0..j-1], up(X[i+1][j-1])))."""
    lines = ["nodes:"]
    for i in range(depth):
        source = "" if i == 0 else f", in: p{i - 1}"
        lines += [f"  - {{name: x{i}0, op: conv{source}, out_channels: {4 << i}, kernel_size: 3, padding: 1}}",
                  f"  - {{name: x{i}0_relu, op: relu}}", f"  - {{name: p{i}, op: maxpool, kernel_size: 2}}"]
    for j in range(1, depth):
        for i in range(depth - j):
            reads = ", ".join([f"x{i}{k}_relu" for k in range(j)] + [f"up{i + 1}{j - 1}"])
            lines += [f"  - {{name: up{i + 1}{j - 1}, op: upsample, in: x{i + 1}{j - 1}_relu, scale_factor: 2}}",
                      f"  - {{name: cat{i}{j}, op: concat, in: [{reads}]}}",
                      f"  - {{name: x{i}{j}, op: conv, out_channels: {4 << i}, kernel_size: 3, padding: 1}}",
                      f"  - {{name: x{i}{j}_relu, op: relu}}"]
    return "\n".join(lines + ["  - {name: head, op: conv, out_channels: 2, kernel_size: 1}", ""])


def test_class7_a_node_later_nodes_of_its_level_reuse_is_a_dense_fork_as_a_spec_and_through_archcs_onnx(tmp_path):
    # X01 is read by cat02 and cat03: a dense pair at each; X11 by cat12 and (upsampled) cat02: a pair at
    # cat12; X02, read by cat03 alone, forks nothing, as X01 in the 3-level net above
    for a in _lint("nested_unet4", nested_unet_spec(4), tmp_path):
        assert sorted((s.merge, s.fork) for s in a.skips if s.kind == "dense") == [
            ("cat02", "x01_relu"), ("cat03", "x01_relu"), ("cat12", "x11_relu")], \
            [(s.merge, s.fork, s.kind) for s in a.skips]
        assert _kinds(a) == {"long_skip": 6, "dense": 3}


#: class 9: residual blocks that each add a projection of a timestep embedding (a diffusion U-Net's
#: ResnetBlock): the adds of the embedding are branch joins, whichever block reads it, and the
#: blocks' own shortcuts are residuals
TIME_CONDITIONED = """\
archc: 1
name: time_conditioned
inputs: {x: [N, 8, 16, 16], t: [N, 4]}
blocks:
  res:
    inputs: [x, temb]
    nodes:
      - {name: conv1, op: conv, in: x, out_channels: 8, kernel_size: 3, padding: 1}
      - {name: proj, op: linear, in: temb, out_features: 8}
      - {name: bias, op: reshape, shape: [0, 8, 1, 1]}
      - {name: inject, op: add, in: [conv1, bias], expect: branch}
      - {name: act, op: silu}
      - {name: conv2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
      - {name: add, op: add, in: [conv2, x], expect: residual}
nodes:
  - {name: emb, op: linear, in: t, out_features: 16}
  - {name: emb_act, op: silu}
  - {name: stem, op: conv, in: x, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: block1, block: res, in: [stem, emb_act]}
  - {name: block2, block: res, in: [block1, emb_act]}
  - {name: block3, block: res, in: [block2, emb_act]}
"""


def test_class9_a_timestep_embedding_in_every_block_as_a_spec_and_through_archcs_onnx(tmp_path):
    spec, onnx_build = _lint_text("time_conditioned", TIME_CONDITIONED, tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for analysis in (spec, onnx_build):
        assert _kinds(analysis).get("residual") == 3 and _kinds(analysis).get("long_skip") is None
        injections = [c for c in analysis.joins if c.merge_op == "add"]
        assert len(injections) == 3 and all(c.kind == "branch" for c in injections)


#: class 8 with one layer per level: SegFormer's all-MLP decoder. Each stage (a strided conv and a
#: residual unit) hands its features to a 1x1 conv of its own (a linear over the tokens); the levels,
#: upsampled to the first one's size, are concatenated and fused: a merge of computed levels, no skip
ALL_MLP_HEAD = """\
nodes:
  - {name: e0, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: r0, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: s0, op: add, in: [r0, e0], expect: residual}
  - {name: e1, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: r1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: s1, op: add, in: [r1, e1], expect: residual}
  - {name: e2, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: r2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: s2, op: add, in: [r2, e2], expect: residual}
  - {name: m0, op: conv, in: s0, out_channels: 4, kernel_size: 1}
  - {name: m1, op: conv, in: s1, out_channels: 4, kernel_size: 1}
  - {name: up1, op: upsample, scale_factor: 2}
  - {name: m2, op: conv, in: s2, out_channels: 4, kernel_size: 1}
  - {name: up2, op: upsample, scale_factor: 4}
  - {name: cat, op: concat, in: [up2, up1, m0], expect: branch}
  - {name: fuse, op: conv, out_channels: 2, kernel_size: 1}
"""


def test_class8_levels_each_through_one_layer_as_a_spec_and_through_archcs_onnx(tmp_path):
    spec, onnx_build = _lint("all_mlp_head", ALL_MLP_HEAD, tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for a in (spec, onnx_build):
        assert _kinds(a).get("residual") == 3 and len(a.skips) == 3
        heads = [c for c in a.joins if c.merge_op == "concat"]
        assert len(heads) == 2 and all(c.kind == "branch" and c.rule == "computed_levels" for c in heads)


#: tokens, not features: a one-token summary of the patch tokens is concatenated with them along the
#: token axis twice (class attention's keys and values, then the head's input), beside DenseNet-style
#: concats of features along the feature axis, which stay feature reuse
TOKEN_CONCAT = """\
archc: 1
name: token_concat
inputs: {x: [N, 16, 8]}
nodes:
  - {name: embed, op: linear, out_features: 8}
  - {name: mlp, op: linear, out_features: 8}
  - {name: res, op: add, in: [mlp, embed], expect: residual}
  - {name: first, op: slice, in: res, dim: 1, start: 0, end: 1}
  - {name: summary, op: linear, out_features: 8}
  - {name: kv, op: concat, in: [summary, res], axis: 1, expect: branch}
  - {name: attend, op: linear, out_features: 8}
  - {name: pick, op: slice, dim: 1, start: 0, end: 1}
  - {name: cls, op: linear, out_features: 8}
  - {name: head_in, op: concat, in: [cls, res], axis: 1, expect: branch}
  - {name: f1, op: linear, in: head_in, out_features: 8}
  - {name: feats1, op: concat, in: [f1, head_in], axis: 2, expect: dense}
  - {name: f2, op: linear, out_features: 8}
  - {name: feats2, op: concat, in: [f2, head_in, f1], axis: 2, expect: dense}
"""


def test_a_concat_along_the_token_axis_as_a_spec_and_through_archcs_onnx(tmp_path):
    spec, onnx_build = _lint_text("token_concat", TOKEN_CONCAT, tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for analysis in (spec, onnx_build):
        tokens = [c for c in analysis.connections if c.merge in ("kv", "head_in")]
        assert len(tokens) == 2 and all(c.kind == "branch" and c.rule == "concat_of_positions" for c in tokens)
        assert _kinds(analysis).get("dense") == 3


@pytest.mark.parametrize("bins", [[1, 6], [6, 1], [1, 2, 3, 6], [6, 3, 2, 1], [2, 1]])
def test_a_concat_of_parallel_branches_is_labelled_alike_in_any_order(bins):
    # found transcribing PSPNet: the pyramid's concat was a long skip for bins [1, 6] and dense for
    # [6, 1] (the tie between branches alike but for their pooling went to the one listed last); it is
    # one branch join, the feature one of the pyramid's branches (round 17: it was a long skip across
    # the one layer of a pooled branch, as if that branch were a U-Net's decoder)
    spec = HEAD.format(name="psp") + """\
params: {bins: [1, 6]}
blocks:
  branch:
    params: {b: null}
    nodes:
      - {op: adaptive_avgpool, output_size: b}
      - {op: conv, out_channels: 4, kernel_size: 1}
      - {op: upsample, size: "shape(x)[2:]", mode: bilinear}
nodes:
  - {name: feat, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: ppm, block: branch, in: feat, repeat: "len(bins)", parallel: true, b: "bins[index]"}
  - {name: cat, op: concat, in: [feat, "ppm[*]"]}
"""
    analysis = analyze(loads_spec(spec, overrides={"bins": bins}))
    (join,) = analysis.joins
    assert not analysis.skips and (join.fork, join.merge, join.kind, join.rule) == ("feat", "cat", "branch",
                                                                                 "pyramid_pooling")


#: Glow's affine coupling (Kingma & Dhariwal 2018): ``x_a, x_b = x.chunk(2)``, ``log_s, t = NN(x_a).chunk(2)``,
#: ``y_b = x_b * exp(log_s) + t``, out ``cat(x_a, y_b)``. The shift t is a part of the NN's split that the
#: main input ``x_b * exp(log_s)`` never reads, and x_b never passes that split: a branch, t's own path
GLOW_COUPLING = """\
archc: 1
name: glow_coupling
inputs: {x: [N, 8, 8, 8]}
nodes:
  - {name: halves, op: split, in: x, sizes: 4}
  - {name: nn1, op: conv, in: "halves:0", out_channels: 16, kernel_size: 3, padding: 1}
  - {name: nn_act, op: relu}
  - {name: nn2, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: st, op: split, sizes: 4}
  - {name: scale, op: exp, in: "st:0"}
  - {name: scaled, op: mul, in: ["halves:1", scale], expect: branch}
  - {name: shifted, op: add, in: [scaled, "st:1"], expect: branch}
  - {name: out, op: concat, in: ["halves:0", shifted], expect: dense}
"""


def test_a_glow_couplings_shift_as_a_spec_and_through_archcs_onnx(tmp_path):
    # round 15: the add of t was sequential (no_layer_between) and its path dropped: 3 paths, not 4
    spec, onnx_build = _lint_text("glow_coupling", GLOW_COUPLING, tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for analysis in (spec, onnx_build):
        (shift,) = [c for c in analysis.joins if c.merge_op == "add"]
        assert (shift.kind, shift.rule) == ("branch", "shift_injection")
        # x_a (the concat's reuse), x_b, log_s and t: x_a's 0 layers beside three of the NN's 2
        assert (analysis.paths.total, analysis.paths.shortest, analysis.paths.longest) == (4, 0, 2)


#: Bahdanau et al.'s (2015) deep output, reduced to its data flow: the previous word's embedding y and the
#: context c each read by the decoder's input concat and by the deep output's; c after three layers, the state
#: s = tanh(W [y, c]) one layer after both
DEEP_OUTPUT = """\
archc: 1
name: deep_output
inputs: {src: [N, 8], y_prev: [N, 10]}
nodes:
  - {name: emb, op: linear, in: y_prev, out_features: 8}
  - {name: enc1, op: linear, in: src, out_features: 16}
  - {name: enc2, op: linear, out_features: 16}
  - {name: ctx, op: linear, out_features: 16}
  - {name: dec_in, op: concat, in: [emb, ctx], axis: 1, expect: branch}
  - {name: dec, op: linear, out_features: 16}
  - {name: state, op: tanh}
  - {name: deep_out, op: concat, in: [state, ctx, emb], axis: 1, expect: dense}
  - {name: logits, op: linear, out_features: 10}
"""


def test_a_dense_pairs_layers_are_its_longest_path_as_a_spec_and_through_archcs_onnx(tmp_path):
    # round 15: emb's pair gave ~3 (the state's depth from the inputs, 4, less emb's 1): its only path into
    # deep_out passes one layer, dec
    spec, onnx_build = _lint_text("deep_output", DEEP_OUTPUT, tmp_path)
    assert not spec.expectations, [(m.node, m.expected, m.found, m.reason) for m in spec.expectations]
    for analysis in (spec, onnx_build):
        assert [(s.kind, s.span.depth) for s in analysis.skips] == [("dense", 1)] * 2
        assert all(s.reason.endswith("across 1 layer") for s in analysis.skips)
    assert sorted(s.fork for s in spec.skips) == ["ctx", "emb"]


def test_attention_scores_whose_shapes_happen_to_agree_are_no_element_wise_arithmetic():
    # found on a hand-written Swin: windows of 16 tokens and heads of 16 channels make q @ k^T's output
    # the broadcast shape of its inputs, and the matmul was labelled sequential, "element-wise arithmetic"
    text = """archc: 1
name: scores
inputs: {x: [N, 16, 16]}
nodes:
  - {name: qk, op: linear, out_features: 32}
  - {name: parts, op: split, sizes: [16, 16], dim: -1}
  - {name: kt, op: transpose, dim0: 1, dim1: 2, in: parts:1}
  - {name: scores, op: matmul, in: [parts:0, kt]}
"""
    (analysis,) = _lint_text("scores", text)
    (scores,) = [c for c in analysis.connections if c.merge == "scores"]
    assert (str(scores.kind), scores.rule) == ("branch", "arithmetic_without_layers"), scores.reason
    assert "element-wise" not in scores.reason
