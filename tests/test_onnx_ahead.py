"""Drawing the first weights ahead (archc.lowering.onnx_ahead): the values are those drawn without
it, scaled by what folding added later; an array asked for early is drawn by the asker; a
failure surfaces where it would without drawing ahead; the memory goes back to the pool."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from archc import loads_spec
from archc.frontends.yaml import load_spec
from archc.lowering import onnx_ahead
from archc.lowering.onnx import build_onnx_parts, to_onnx
from archc.lowering.onnx_ahead import DrawAhead, draw_ahead
from archc.lowering.onnx_draw import BufferPool
from archc.lowering.onnx_dtype import WeightDtype, store_weights_as
from archc.lowering.onnx_writer import assemble, write_onnx
from archc.lowering.optimize import optimize_for_inference
from archc.ops.base import ParamSpec
from archc.ops.weights import DeferredArray, deferred_weights, initialize

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _uniform(key: str, shape: tuple[int, ...], seed: int = 3) -> DeferredArray:
    return DeferredArray(key, ParamSpec(shape, init="uniform", bound=0.5), seed)


def _drawn_ahead(arrays: list[DeferredArray], pool: BufferPool | None = None) -> DrawAhead:
    """A finished drawer of ``arrays`` (the thread joined), pointed at by them."""
    ahead = DrawAhead(arrays, pool or BufferPool(0))
    for array in arrays:
        array.ahead = ahead
    ahead.start().join()
    return ahead


@pytest.mark.parametrize("spec", ["resnet18.yaml", "transformer.yaml", "vit_b16.yaml"])
def test_a_build_drawing_ahead_writes_the_bytes_of_initialised_weights(spec, tmp_path):
    """Folding scales the convolutions drawn ahead after they were drawn: the file equals the
    model of weights drawn whole by init_array (no deferred array, nothing drawn ahead)."""
    graph = load_spec(SPECS / spec)
    expected = to_onnx(optimize_for_inference(initialize(graph.copy(), seed=5), inplace=True)).SerializeToString()
    parts = build_onnx_parts(graph, seed=5)
    assert any(getattr(a, "ahead", None) is not None for _, a in parts.initializers)
    write_onnx(parts, str(tmp_path / "m.onnx"))
    assert (tmp_path / "m.onnx").read_bytes() == expected


def test_converted_and_assembled_weights_take_the_values_drawn_ahead():
    graph = load_spec(SPECS / "resnet18.yaml")
    plain = store_weights_as(build_onnx_parts(graph, seed=2, draw_ahead=False), WeightDtype.float16)
    ahead = store_weights_as(build_onnx_parts(graph, seed=2), WeightDtype.float16)
    assert assemble(ahead).SerializeToString() == assemble(plain).SerializeToString()


def test_delivered_values_are_scaled_and_their_memory_goes_back_to_the_pool():
    arrays = [_uniform(f"l{i}.weight", (4 + i, 6)) for i in range(5)]
    expected = [np.asarray(DeferredArray(a.key, a.spec, a.seed)) for a in arrays]
    pool = BufferPool(1 << 30)
    _drawn_ahead(arrays, pool)
    assert pool.free_bytes() == 0  # every block holds values not yet taken
    factor = np.linspace(0.5, 2.0, 4, dtype=np.float32)
    scaled = arrays[0].scaled(factor).scaled(factor)
    assert scaled.ahead is arrays[0].ahead
    assert np.array_equal(np.asarray(scaled), expected[0] * factor[:, None] * factor[:, None])
    for array, values in zip(arrays[1:], expected[1:]):
        assert np.array_equal(np.asarray(array), values)
    assert pool.free_bytes() > 0  # all taken: the block is free again
    assert not arrays[1].ahead.deliver(arrays[1].key, 0, arrays[1].spec.numel, lambda v: None)  # taken once


def test_an_array_asked_for_before_its_turn_is_drawn_by_the_asker():
    arrays = [_uniform("a.weight", (3, 4)), _uniform("b.weight", (5, 4))]
    ahead = DrawAhead(arrays, BufferPool(0))
    assert not ahead.deliver("a.weight", 0, 12, lambda v: pytest.fail("nothing was drawn yet"))
    ahead.start().join()
    assert not ahead.deliver("a.weight", 0, 12, lambda v: pytest.fail("the asker drew it"))
    assert ahead.deliver("b.weight", 0, 20, lambda v: None)


def test_an_array_being_drawn_is_waited_for(monkeypatch):
    started, finish = threading.Event(), threading.Event()
    array = _uniform("slow.weight", (8, 8))
    expected = np.asarray(DeferredArray(array.key, array.spec, array.seed))
    fill = DeferredArray.fill_unscaled

    def slow_fill(self, flat, start):
        started.set()
        finish.wait(10)
        fill(self, flat, start)

    monkeypatch.setattr(DeferredArray, "fill_unscaled", slow_fill)
    ahead = DrawAhead([array], BufferPool(0))
    array.ahead = ahead
    ahead.start()
    assert started.wait(10)
    got: list[np.ndarray] = []
    asker = threading.Thread(target=lambda: got.append(np.asarray(array)))
    asker.start()
    asker.join(0.2)
    assert asker.is_alive()  # waiting for the drawing thread rather than drawing it again
    finish.set()
    asker.join(10)
    assert np.array_equal(got[0], expected)


def test_a_failing_draw_fails_where_the_array_is_asked_for(monkeypatch):
    array = _uniform("bad.weight", (2, 2))
    monkeypatch.setattr(DeferredArray, "fill_unscaled", lambda self, flat, start: 1 / 0)
    _drawn_ahead([array])
    with pytest.raises(ZeroDivisionError):
        np.asarray(array)


def test_the_leading_random_arrays_are_chosen_up_to_the_first_drawn_in_pieces(monkeypatch):
    """Fills are skipped, tied parameters are skipped, and the scan ends at a large array or at
    the byte limit."""
    monkeypatch.setattr(onnx_ahead, "DrawAhead", lambda arrays, pool: _Recorded(arrays))
    graph = load_spec(SPECS / "resnet50.yaml")
    weights = deferred_weights(graph)
    chosen = draw_ahead(graph, weights, limit=1 << 40).arrays
    flat = [a for params in weights.values() for a in params.values()]
    first_large = next(i for i, a in enumerate(flat) if len(a.pieces()) > 1)
    assert chosen == [a for a in flat[:first_large] if a.spec.init == "uniform" and a.nbytes >= 2 ** 20]
    assert len(chosen) > 10
    assert all(a.ahead is not None for a in chosen)
    assert all(a.ahead is None for a in flat if a not in chosen)
    limited = draw_ahead(graph, deferred_weights(graph), limit=8 * 2 ** 20).arrays
    assert sum(a.nbytes for a in limited) <= 8 * 2 ** 20 < sum(a.nbytes for a in chosen[:len(limited) + 1])


TIED = """
inputs: {x: {shape: [N, 8]}}
nodes:
  - {name: a, op: linear, out_features: 8}
  - {name: b, op: linear, out_features: 8, tie: {weight: a.weight}}
"""


def test_a_tied_parameter_is_not_drawn_ahead(monkeypatch):
    """The emitter writes the owner's tensor; the tied key's own deferred array is never drawn."""
    monkeypatch.setattr(onnx_ahead, "DrawAhead", lambda arrays, pool: _Recorded(arrays))
    monkeypatch.setattr(onnx_ahead, "AHEAD_MIN_BYTES", 0)
    graph = loads_spec(TIED)
    weights = deferred_weights(graph)
    assert [a.key for a in draw_ahead(graph, weights).arrays] == ["a.weight", "a.bias", "b.bias"]


class _Recorded:
    """Stands in for DrawAhead: records the arrays chosen, draws nothing."""

    def __init__(self, arrays: list[DeferredArray]) -> None:
        self.arrays = arrays

    def start(self) -> "_Recorded":
        return self


def test_the_switch_interval_is_lowered_while_drawing_and_put_back(monkeypatch):
    """Two drawers overlapping: the interval stays low until the last one is done, then is the
    caller's own again."""
    import sys

    gates = {key: threading.Event() for key in ("first.weight", "second.weight")}
    fill = DeferredArray.fill_unscaled

    def gated_fill(self, flat, start):
        gates[self.key].wait(10)
        fill(self, flat, start)

    monkeypatch.setattr(DeferredArray, "fill_unscaled", gated_fill)
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    try:
        first = DrawAhead([_uniform("first.weight", (2, 2))], BufferPool(0)).start()
        second = DrawAhead([_uniform("second.weight", (2, 2))], BufferPool(0)).start()
        assert sys.getswitchinterval() == pytest.approx(onnx_ahead.SWITCH_INTERVAL)
        gates["first.weight"].set()
        first.join(10)
        assert sys.getswitchinterval() == pytest.approx(onnx_ahead.SWITCH_INTERVAL)
        gates["second.weight"].set()
        second.join(10)
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        sys.setswitchinterval(before)


def test_a_drawer_that_stops_leaves_nobody_waiting():
    """No memory for the values (the pool fails): the drawer gives up quietly and every array is
    drawn by its asker, with the same values."""

    class NoMemory(BufferPool):
        def take(self, size: int) -> np.ndarray:
            raise MemoryError("no memory for the test")

    arrays = [_uniform("x.weight", (3, 3)), _uniform("y.weight", (4, 3))]
    expected = [np.asarray(DeferredArray(a.key, a.spec, a.seed)) for a in arrays]
    _drawn_ahead(arrays, NoMemory(0))
    for array, values in zip(arrays, expected):
        assert np.array_equal(np.asarray(array), values)
