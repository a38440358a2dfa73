"""One namespace object makes every unique name: bases kept when free, suffixes otherwise."""
from __future__ import annotations

from archc.ir.names import Namespace


def test_free_bases_are_kept_and_taken_ones_get_the_first_free_suffix():
    names = Namespace(["x"])
    assert [names.take(b) for b in ["conv", "conv", "x", "conv", "conv_1"]] == \
        ["conv", "conv_1", "x_1", "conv_2", "conv_1_1"]


def test_free_reserves_nothing_and_live_containers_are_avoided():
    graph_names = {"relu"}
    names = Namespace(also_taken=graph_names, suffix=lambda base, i: f"{base}/value_{i}")
    assert names.free("relu") == "relu/value_1" and names.free("relu") == "relu/value_1"
    graph_names.add("add")
    assert names.free("add") == "add/value_1"
    names.reserve("relu/value_1")
    assert names.take("relu") == "relu/value_2" and "relu/value_2" in names
