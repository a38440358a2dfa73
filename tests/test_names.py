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


class _CountingNames(set):
    """A live container that counts how often it is asked."""

    lookups = 0

    def __contains__(self, name: object) -> bool:
        _CountingNames.lookups += 1
        return super().__contains__(name)


def test_many_names_of_one_base_cost_linear_lookups():
    live = _CountingNames({"relu_5"})
    names = Namespace(also_taken=live)
    made = [names.take("relu") for _ in range(2000)]
    assert made[:6] == ["relu", "relu_1", "relu_2", "relu_3", "relu_4", "relu_6"] and len(set(made)) == 2000
    assert _CountingNames.lookups < 3 * 2000
    live.add("conv")  # a live container may grow: its new names are avoided too
    assert names.take("conv") == "conv_1"
