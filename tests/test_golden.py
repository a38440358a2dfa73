"""The golden table: skip-connection counts and input->output paths of every shipped spec.

The same table is in the README. The counts follow the concept: ResNets one residual per
block; U-Net only long skips, one per resolution level; FPN the backbone's residuals plus a
long skip at every top-down merge; SegNet long skips carrying pooling indices; GoogLeNet
branches but no skips; Inception-ResNet residuals; the hourglass residual modules plus long
skips per level (and one around each stack); GNMT residuals from the third layer; the
Transformer two residuals per encoder layer and three per decoder layer; DenseNet dense
connections (L(L+1)/2 per block of L layers); Highway gated ones.
"""
from __future__ import annotations

import pytest

from archc import load_spec
from archc.analysis.skips import analyze

from conftest import SPECS

#: spec -> (residual, long_skip, dense, gated, input->output paths)
GOLDEN = {
    "densenet121": (0, 0, 535, 0, 288230376151711744),
    "efficientnet_v2_s": (35, 0, 0, 0, 2 ** 35),
    "fpn_resnet50": (16, 3, 0, 0, 352520),
    "gnmt_encoder": (6, 0, 0, 0, 64),
    "googlenet": (0, 0, 0, 0, 262144),
    # 3 paths a layer: the carry, or the transform H·T, a choice between H and the gate T (x·(1 - T) is
    # no choice: the gate scales x). Was 2^20 before paths were counted on the unravelled view.
    "highway": (0, 0, 0, 10, 3 ** 10),
    "hourglass": (31, 9, 0, 0, 29789760),
    "inception_resnet_v2": (20, 0, 0, 0, 1410554953728),
    "llama": (8, 0, 0, 0, 20736),
    "mobilenet_v2": (10, 0, 0, 0, 1024),
    "regnet_y_400mf": (16, 0, 0, 0, 65536),
    "resnet101": (33, 0, 0, 0, 8589934592),
    "resnet152": (50, 0, 0, 0, 1125899906842624),
    "resnet18": (8, 0, 0, 0, 256),
    "resnet34": (16, 0, 0, 0, 65536),
    "resnet50": (16, 0, 0, 0, 65536),
    "segnet": (0, 4, 0, 0, 6),
    "squeezenet1_1": (0, 0, 0, 0, 256),
    # like ViT: attention reads Q, K and V from one input beside its shortcut, 4 x 2 paths per block
    "swin_t": (24, 0, 0, 0, 2 ** 36),
    "transformer": (30, 0, 0, 0, 1172829110272),
    "unet": (0, 4, 0, 0, 5),
    "vit_b16": (24, 0, 0, 0, 68719476736),
}


def test_every_shipped_spec_is_in_the_table():
    assert sorted(p.stem for p in SPECS.glob("*.yaml")) == sorted(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_lint_counts_and_paths(name):
    result = analyze(load_spec(str(SPECS / f"{name}.yaml")))
    summary = result.summary()
    counts = tuple(summary[k] for k in ("residual", "long_skip", "dense", "gated"))
    assert counts + (result.paths.total,) == GOLDEN[name]
    assert not result.expectations  # every `expect:` the spec declares holds


def test_densenet_dense_pairs_follow_l_times_l_plus_1_over_2():
    assert GOLDEN["densenet121"][2] == sum(n * (n + 1) // 2 for n in (6, 12, 24, 16))


def test_residual_chains_give_two_to_the_n_paths():
    for name, blocks in (("resnet18", 8), ("resnet34", 16), ("resnet50", 16), ("resnet101", 33),
                         ("resnet152", 50), ("mobilenet_v2", 10)):
        assert GOLDEN[name][0] == blocks and GOLDEN[name][4] == 2 ** blocks
    # ViT: attention reads Q, K and V from one input (3 paths) beside its shortcut: 4 x 2 per layer
    assert GOLDEN["vit_b16"][0] == 24 and GOLDEN["vit_b16"][4] == (4 * 2) ** 12
