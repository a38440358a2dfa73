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


def test_library_calls_never_touch_the_garbage_collector(monkeypatch, tmp_path):
    """Pausing the collector is the CLI's policy for its own process (archc.cli), never a library's."""
    torch = pytest.importorskip("torch")  # noqa: F841
    from archc.lowering.onnx import build_onnx
    from archc.lowering.torch import generate_source

    graph = load_spec(str(SPECS / "resnet18.yaml"), {"width": 4, "image_size": 32})

    def refuse() -> None:
        raise AssertionError("a library call switched the garbage collector off")

    monkeypatch.setattr(gc, "disable", refuse)
    monkeypatch.setattr(gc, "freeze", refuse)
    analyze(graph)
    generate_source(graph)
    path = tmp_path / "m.onnx"
    path.write_bytes(build_onnx(graph, seed=0).SerializeToString())
    from archc.frontends.onnx import load_onnx

    analyze(load_onnx(str(path)))


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cli_restores_the_garbage_collector(enabled, capsys):
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        assert main(["lint", str(SPECS / "resnet18.yaml")]) == 0
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


@pytest.mark.skipif(not hasattr(sys, "get_int_max_str_digits"), reason="Python < 3.11 has no digit limit")
def test_lint_never_touches_the_digit_limit(capsys, monkeypatch):
    """Counts beyond 2^53 are written as decimal strings converted piece by piece
    (archc.analysis.counts), so lint needs no lifted limit (the 25,000-block chain is in test_cli_lint)."""
    before = sys.get_int_max_str_digits()

    def refuse(_digits: int) -> None:
        raise AssertionError("lint changed the process-wide int -> str digit limit")

    monkeypatch.setattr(sys, "set_int_max_str_digits", refuse)
    for fmt in ("json", "table"):
        assert main(["lint", str(SPECS / "densenet121.yaml"), "--format", fmt]) == 0
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

