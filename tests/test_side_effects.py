"""Library calls leave the process as they found it: the garbage collector, the int -> str
digit limit and linecache."""
from __future__ import annotations

import gc
import linecache
import sys

import pytest

from archc.analysis.skips import analyze
from archc.cli import main
from archc.frontends.yaml import load_spec
from conftest import SPECS


@pytest.mark.parametrize("enabled", [True, False])
def test_analysis_leaves_the_garbage_collector_as_it_was(enabled):
    graph = load_spec(str(SPECS / "resnet18.yaml"))
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        analyze(graph)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="Python < 3.11 has no digit limit")
def test_lint_lifts_the_digit_limit_only_while_printing(capsys):
    from archc.cli.lint import _any_int_digits

    before = sys.get_int_max_str_digits()
    with _any_int_digits():
        print(2 ** 15000)  # 4516 digits, above Python's default limit of 4300
    assert len(capsys.readouterr().out.strip()) == 4516
    assert sys.get_int_max_str_digits() == before
    assert main(["lint", str(SPECS / "resnet18.yaml"), "--format", "json"]) == 0
    assert "\"paths\"" in capsys.readouterr().out
    assert sys.get_int_max_str_digits() == before


def test_generated_sources_leave_linecache_with_their_modules():
    pytest.importorskip("torch")
    from archc.lowering.torch import build_module

    graph = load_spec(str(SPECS / "resnet18.yaml"), {"width": 4, "image_size": 32})

    def generated() -> set[str]:
        return {n for n in linecache.cache if n.startswith("<archc-generated")}

    earlier = generated()  # modules other tests still hold
    first = build_module(graph)
    first_name = generated() - earlier
    second = build_module(graph)
    second_name = generated() - earlier - first_name
    assert len(first_name) == len(second_name) == 1  # one entry each: deleting one cannot drop the other
    del first
    gc.collect()
    assert generated() - earlier == second_name
    del second
    gc.collect()
    assert generated() - earlier == set()

