"""op: parameter: learned tensors that are not a layer (layer scale, tokens, bias tables)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from archc.analysis.skips import analyze
from archc.ops.weights import initial_weights, total_params
from archc.lowering.torch import build_module
from ops_harness import assert_same_state_dict_layout, graph_of, parity_suite, spec_error

PARITY_OPS = {"parameter", "mul", "add", "concat"}

LAYER_SCALE = """
params: {dim: 6}
inputs: {x: [N, 5, dim]}
blocks:
  block:
    nodes:
      - {name: norm, op: layernorm}
      - {name: fc, op: linear, out_features: dim}
      - {name: gamma, op: parameter, shape: [dim], init: constant, value: 1e-6}
      - {name: scaled, op: mul, in: [fc, gamma]}
      - {name: add, op: add, in: [x, scaled]}
nodes:
  - {name: cls_token, op: parameter, shape: [1, 1, dim], init: trunc_normal, std: 0.02}
  - {name: blocks, block: block, repeat: 2}
"""

CASES = [
    ("layer_scale", LAYER_SCALE),
    ("bias_table", "inputs: {x: [N, 3, 4, 4]}\nnodes:\n  - {name: table, op: parameter, shape: [3, 4, 4], init: normal, std: 1}\n"
                   "  - {op: add, in: [x, table]}"),
    ("token_concat", "inputs: {x: [N, 3, 4]}\nnodes:\n  - {name: t, op: parameter, shape: [1, 3, 1], init: ones}\n"
                     "  - {op: mul, in: [x, t:0]}"),
    ("scalar_gain", "inputs: {x: [N, 3, 4]}\nnodes:\n  - {name: skip_gain, op: parameter, shape: [], init: constant, "
                    "value: 0.5}\n  - {op: mul, in: [x, skip_gain]}"),
    ("concat_with_parameter", "inputs: {x: [2, 3, 4]}\nnodes:\n  - {name: t, op: parameter, shape: [2, 1, 4]}\n"
                              "  - {op: concat, in: [t, x], axis: 1}"),
]

test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


class LayerScaleBlock(nn.Module):
    """A block with layer scale as ConvNeXt / CaiT write it: a bare nn.Parameter named gamma."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x):
        return x + self.fc(self.norm(x)) * self.gamma


class Reference(nn.Module):
    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Sequential(LayerScaleBlock(dim), LayerScaleBlock(dim))

    def forward(self, x):
        return self.blocks(x)


def test_state_dict_is_pytorchs_and_loads_strictly():
    graph = graph_of(LAYER_SCALE)
    ours, ref = build_module(graph).eval(), Reference().eval()
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 5, 6)
    torch.testing.assert_close(ours(x), ref(x))
    assert total_params(graph) == sum(p.numel() for p in ref.parameters())


def test_initial_values():
    graph = graph_of(LAYER_SCALE)
    w = initial_weights(graph, 0)
    np.testing.assert_array_equal(w["blocks.0.gamma"][""], np.full(6, 1e-6, np.float32))
    big = graph_of("inputs: {x: [N, 1]}\nnodes:\n  - {name: t, op: parameter, shape: [200, 100], init: trunc_normal,"
                   " std: 1, a: -0.5, b: 1.5}\n  - {op: relu, in: x}")
    t = initial_weights(big, 0)["t"][""]
    assert t.min() >= -0.5 and t.max() <= 1.5 and (t < -0.4).any() and (t > 1.4).any()
    normal = initial_weights(graph_of("inputs: {x: [N, 1]}\nnodes:\n  - {name: t, op: parameter, shape: [100, 100],"
                                      " init: normal, std: 0.5}\n  - {op: relu, in: x}"), 0)["t"][""]
    assert abs(normal.std() - 0.5) < 0.02


def test_a_parameter_is_not_chained_and_not_a_skip():
    graph = graph_of(LAYER_SCALE)
    assert graph.node("blocks.0.norm").inputs[0].node == "x"  # cls_token is declared, not the previous node
    assert analyze(graph).summary()["residual"] == 2


@pytest.mark.parametrize("node,message", [
    ("{name: p, op: parameter, shape: [3, 0]}", "attribute 'shape' of op 'parameter' must be at least 1, got 0"),
    ("{name: p, op: parameter, shape: [3], init: uniformm}",
     "attribute 'init' of op 'parameter' expects one of 'zeros', 'ones', 'constant', 'normal', 'trunc_normal', "
     "got 'uniformm'"),
    ("{name: p, op: parameter, shape: [3], init: trunc_normal, a: 1}", "trunc_normal bounds a=1.0, b=2.0"),
    ("{name: p, op: parameter}", "op 'parameter' needs attribute 'shape'"),
    ("{name: p, op: parameter, shape: [2.5]}",
     "attribute 'shape' of op 'parameter' expects an integer or a list of integers (or []), >= 1, got [2.5]"),
])
def test_errors(node, message):
    msg = spec_error(f"inputs: {{x: [N, 4]}}\nnodes: [{node}, {{op: relu, in: x}}]")
    assert message in msg, msg
