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
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_error_class_as_a_spec(name):
    analysis = analyze(loads_spec(HEAD.format(name=name) + SPECS[name]))
    assert not analysis.expectations, [(m.node, m.expected, m.found, m.reason) for m in analysis.expectations]
    skips = [c for c in analysis.skips]
    assert len(skips) == (0 if name == "pyramid_sum" else 1)
