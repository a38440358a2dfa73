"""Path analysis: exact counts and lengths against brute-force enumeration, 2^n per residual chain."""
from __future__ import annotations

import math
from collections import Counter

import pytest

from archc.analysis.paths import path_stats
from archc.analysis.skips import analyze
from archc.analysis.structure import Flow
from archc.frontends.yaml import loads_spec
from test_analysis_structure import _random_dag

RES_STACK = """
archc: 1
name: res_stack
params: {blocks: 3}
inputs: {x: [N, 4, 8, 8]}
blocks:
  res:
    nodes:
      - {name: conv1, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
      - {name: relu, op: relu}
      - {name: conv2, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
      - {name: add, op: add, in: [x, conv2]}
nodes:
  - {name: stem, op: conv, out_channels: 4, kernel_size: 1}
  - {name: layer, block: res, repeat: blocks}
  - {name: head, op: conv, out_channels: 2, kernel_size: 1}
"""


def _brute_force(flow: Flow) -> Counter:
    """Length (parametric layers) of every input -> output path, by enumeration (small graphs only)."""
    lengths: Counter = Counter()

    def walk(i: int, length: int) -> None:
        length += flow.parametric[i]
        for o in flow.outputs:
            if o == i:
                lengths[length] += 1
        for c in flow.succs[i]:
            walk(c, length)

    for i in range(len(flow)):
        if not flow.slots[i]:
            walk(i, 0)
    return lengths


@pytest.mark.parametrize("blocks", [1, 3, 6])
def test_residual_chain_has_two_to_the_n_paths(blocks):
    a = analyze(loads_spec(RES_STACK, overrides={"blocks": blocks}))
    assert [c.blocks for c in a.paths.chains] == [blocks]
    chain = a.paths.chains[0]
    assert chain.paths == 2 ** blocks
    assert chain.distribution == [math.comb(blocks, k) for k in range(blocks + 1)]
    assert chain.mean == blocks / 2
    # the whole network: stem and head in series with the chain
    p = a.paths
    assert p.total == 2 ** blocks
    assert (p.shortest, p.longest) == (2, 2 + 2 * blocks)
    assert p.mean == pytest.approx(2 + blocks)                  # each block adds 0 or 2 layers
    assert p.std == pytest.approx(math.sqrt(blocks))            # 2 * sqrt(n) / 2
    assert p.histogram == pytest.approx({2 + 2 * k: math.comb(blocks, k) / 2 ** blocks
                                         for k in range(blocks + 1)})


def test_counts_and_lengths_match_enumeration_on_random_dags():
    for seed in range(6):
        g = _random_dag(seed, n=30, inputs=1 + seed % 2)
        # make some nodes parametric so lengths vary
        for k, node in enumerate(g.nodes()):
            if node.op == "relu" and k % 2:
                node.op = "linear"
        flow = Flow(g)
        stats = path_stats(flow)
        brute = _brute_force(flow)
        total = sum(brute.values())
        assert stats.total == total
        assert (stats.shortest, stats.longest) == (min(brute), max(brute))
        mean = sum(k * v for k, v in brute.items()) / total
        assert stats.mean == pytest.approx(mean)
        assert stats.std == pytest.approx(math.sqrt(sum(v * (k - mean) ** 2 for k, v in brute.items()) / total))
        lo, hi = stats.band
        assert stats.band_share == pytest.approx(sum(v for k, v in brute.items() if lo <= k <= hi) / total)
        band = path_stats(flow, band=(min(brute), min(brute) + 1))
        assert band.band_source == "given"
        assert band.band_share == pytest.approx(
            sum(v for k, v in brute.items() if k <= min(brute) + 1) / total)


def test_arithmetic_reading_one_value_twice_adds_no_path():
    """a + a is arithmetic on one value, as x * x inside a decomposed GELU: no choice on the unravelled
    view (attention reading x as query, key and value keeps its three paths: the ViT golden figure)."""
    g = loads_spec("""
archc: 1
inputs: {x: [N, 4]}
nodes:
  - {name: a, op: linear, out_features: 4}
  - {name: twice, op: add, in: [a, a]}
  - {name: b, op: linear, out_features: 4}
""")
    stats = analyze(g).paths
    assert stats.total == 1
    assert (stats.shortest, stats.longest) == (2, 2)


def test_huge_counts_stay_exact():
    a = analyze(loads_spec(RES_STACK, overrides={"blocks": 200}))
    assert a.paths.total == 2 ** 200
    assert a.paths.chains[0].distribution is None            # past the listing limit
    assert a.paths.band_share >= 0.95
    lo, hi = a.paths.band
    assert lo < 2 + 200 < hi                                  # centred on the mean length
