"""``${index}`` in a repeated node's ``in:``: each repetition reads what its own index names.

ResNeSt's split attention (Zhang et al. 2020, zhanghang1989/ResNeSt ``splat.py``) splits a conv's
output into ``radix`` pieces, sums them, and sums them again weighted by an attention over the
radix: ``in: "splited:${index}"`` picks piece ``index`` per repetition, for any ``--set radix``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archc import SpecError, loads_spec
from archc.ir import Value
from archc.lowering.torch import build_module, state_dict_from_graph
from archc.ops.weights import initialize, total_params
from ops_harness import run_onnx
from weights_helpers import randomize_statistics

SPLAT = """
name: splat
params: {radix: 2, cardinality: 1, channels: 16, reduction_factor: 4}
inputs: {x: [N, 16, 8, 8]}
let:
  inter_channels: "max(16 * radix // reduction_factor, 32)"
nodes:
  - {name: conv, op: conv, out_channels: "channels * radix", kernel_size: 3, padding: 1,
     groups: "cardinality * radix", bias: false}
  - {name: bn0, op: batchnorm}
  - {name: relu, op: relu}
  - {name: splited, op: split, sizes: channels}                      # torch.split(x, channels, dim=1)
  - {name: piece, op: identity, repeat: radix, parallel: true, in: "splited:${index}"}
  - {name: gap_sum, op: add, in: ["piece[*]"]}                        # sum(splited)
  - {name: gap, op: global_avgpool}
  - {name: fc1, op: conv, out_channels: inter_channels, kernel_size: 1, groups: cardinality}
  - {name: bn1, op: batchnorm}
  - {name: relu_gap, op: relu}
  - {name: fc2, op: conv, out_channels: "channels * radix", kernel_size: 1, groups: cardinality}
  # rSoftMax: view(batch, cardinality, radix, -1).transpose(1, 2), softmax over the radix
  - {op: reshape, shape: "[0, cardinality, radix, -1]"}
  - {op: permute, perm: [0, 2, 1, 3]}
  - {op: softmax, axis: 1}
  - {name: atten, op: reshape, shape: [0, -1, 1, 1]}
  - {name: attens, op: split, sizes: channels}
  - {name: weighted, op: mul, repeat: radix, parallel: true, in: ["attens:${index}", "splited:${index}"]}
  - {name: out, op: add, in: ["weighted[*]"]}                         # sum(att * split)
"""


class RSoftMax(nn.Module):
    def __init__(self, radix: int, cardinality: int) -> None:
        super().__init__()
        self.radix, self.cardinality = radix, cardinality

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.size(0)
        x = x.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
        return F.softmax(x, dim=1).reshape(batch, -1)


class SplAtConv2d(nn.Module):
    """ResNeSt's split-attention conv (radix > 1), as splat.py writes it."""

    def __init__(self, in_channels: int, channels: int, radix: int, cardinality: int,
                 reduction_factor: int = 4) -> None:
        super().__init__()
        inter_channels = max(in_channels * radix // reduction_factor, 32)
        self.radix = radix
        self.conv = nn.Conv2d(in_channels, channels * radix, 3, padding=1, groups=cardinality * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.relu = nn.ReLU()
        self.fc1 = nn.Conv2d(channels, inter_channels, 1, groups=cardinality)
        self.bn1 = nn.BatchNorm2d(inter_channels)
        self.fc2 = nn.Conv2d(inter_channels, channels * radix, 1, groups=cardinality)
        self.rsoftmax = RSoftMax(radix, cardinality)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn0(self.conv(x)))
        batch, rchannel = x.shape[:2]
        splited = torch.split(x, rchannel // self.radix, dim=1)
        gap = F.adaptive_avg_pool2d(sum(splited), 1)
        gap = self.relu(self.bn1(self.fc1(gap)))
        atten = self.rsoftmax(self.fc2(gap)).view(batch, -1, 1, 1)
        attens = torch.split(atten, rchannel // self.radix, dim=1)
        return sum(att * split for att, split in zip(attens, splited))


@pytest.mark.parametrize("radix, cardinality", [(2, 1), (4, 1), (4, 2)])
def test_split_attention_reads_every_piece_for_any_radix(radix, cardinality):
    graph = loads_spec(SPLAT, overrides={"radix": radix, "cardinality": cardinality})
    assert graph.node("gap_sum").inputs == [Value(f"piece.{i}") for i in range(radix)]
    assert [graph.node(f"piece.{i}").inputs for i in range(radix)] == [[Value("splited", i)] for i in range(radix)]
    assert graph.node(f"weighted.{radix - 1}").inputs == [Value("attens", radix - 1), Value("splited", radix - 1)]
    reference = SplAtConv2d(16, 16, radix, cardinality).eval()
    initialize(graph, seed=0)
    randomize_statistics(graph, seed=0)
    reference.load_state_dict(state_dict_from_graph(graph), strict=True)
    assert total_params(graph) == sum(p.numel() for p in reference.parameters())
    x = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(radix))
    with torch.no_grad():
        want = reference(x)
        got = build_module(graph).eval()(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    (onnx_out,) = run_onnx(graph, {"x": x.numpy()})
    np.testing.assert_allclose(onnx_out, want.numpy(), rtol=1e-4, atol=1e-5)


SKIPS = """
inputs: {x: [N, 4, 8]}
nodes:
  - {name: enc, op: conv, out_channels: 4, kernel_size: 1, repeat: 3, instance_name: "enc${index}"}
  - {name: dec, op: add, repeat: 3, in: [enc, "enc${2 - index}"]}
"""


def test_in_series_the_first_entry_is_the_repetition_before_and_the_others_follow_the_index():
    # a decoder's skips in reverse: dec.i = dec.(i-1) + enc.(2-i); dec.0 reads the node's own first entry
    graph = loads_spec(SKIPS)
    assert graph.node("dec.0").inputs == [Value("enc2"), Value("enc2")]
    assert graph.node("dec.1").inputs == [Value("dec.0"), Value("enc1")]
    assert graph.node("dec.2").inputs == [Value("dec.1"), Value("enc0")]


def test_in_series_an_unread_first_entry_is_not_resolved_again():
    # repetition 1 reads rep 0 in place of "parts:${index + 1}" (parts:2 does not exist, and is not read)
    graph = loads_spec("""
inputs: {x: [N, 4, 8]}
nodes:
  - {name: parts, op: split, sizes: 2}
  - {name: r, op: relu, repeat: 3, in: "parts:${index}"}
""")
    assert [graph.node(f"r.{i}").inputs for i in range(3)] == [[Value("parts", 0)], [Value("r.0")], [Value("r.1")]]


def test_a_dense_repetition_reads_its_index_too():
    graph = loads_spec("""
inputs: {x: [N, 6, 8]}
nodes:
  - {name: parts, op: split, sizes: 2}
  - {name: layer, op: concat, repeat: 2, in: ["parts:${index}", "layer[*]"]}
""")
    assert graph.node("layer.0").inputs == [Value("parts", 0)]
    assert graph.node("layer.1").inputs == [Value("parts", 1), Value("layer.0")]


def test_a_left_out_or_zero_times_repeated_node_stands_for_what_its_repetition_0_reads():
    graph = loads_spec("""
inputs: {x: [N, 4, 8]}
nodes:
  - {name: parts, op: split, sizes: 2}
  - {name: a, op: relu, repeat: 0, in: "parts:${index + 1}"}
  - {name: b, op: relu, repeat: 2, if: false, in: "parts:${index + 1}"}
  - {name: y, op: add, in: [a, b]}
""")
    assert graph.node("y").inputs == [Value("parts", 1), Value("parts", 1)]


def _errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads_spec(text, "m.yaml")
    return [d.format() for d in info.value.diagnostics]


def test_an_output_index_out_of_range_names_the_repetition_once():
    # radix 4 on a split of 2 pieces: repetitions 2 and 3 would fail alike; the first is reported
    assert _errors("""inputs: {x: [N, 16, 8]}
params: {radix: 4}
nodes:
  - {name: splited, op: split, sizes: 8}
  - {name: piece, op: identity, repeat: radix, parallel: true, in: "splited:${index}"}
  - {name: total, op: add, in: ["piece[*]"]}
""") == ["m.yaml:5:68: error: node 'piece': 'splited' has no output '2'; it has 2 outputs: y0, y1 "
         "(at repetition 2 of 4: index = 2)"]


def test_a_bad_expression_in_a_repeated_in_is_located_inside_it():
    assert _errors("""inputs: {x: [N, 4, 8]}
nodes:
  - {name: parts, op: split, sizes: 2}
  - {name: r, op: relu, repeat: 2, parallel: true, in: "parts:${index + radix}"}
""") == ["m.yaml:4:73: error: node 'r': unknown name 'radix' (at repetition 0 of 2: index = 0)"]


def test_index_outside_a_repeated_node_says_where_it_is_known():
    assert _errors("""inputs: {x: [N, 4, 8]}
nodes:
  - {name: parts, op: split, sizes: 2}
  - {name: r, op: relu, in: "parts:${index}"}
""") == ["m.yaml:4:38: error: node 'r': unknown name 'index' ('index' is a repeated node's repetition number: "
         "a node's fields ('in:', its attributes, 'instance_name') read it where the node has 'repeat:')"]
