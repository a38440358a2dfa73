"""Weights drawn in pieces, on threads, and written as they come give exactly the values (and the
file bytes) of drawing every array whole: the speed of ``archc build --target onnx`` must not
change a single seeded value."""
from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FailingSource

from archc.frontends.yaml import load_spec
from archc.lowering import onnx_draw, onnx_writer
from archc.lowering.onnx import build_onnx_parts
from archc.lowering.onnx_dtype import WeightDtype, store_weights_as
from archc.lowering.onnx_writer import assemble, write_onnx
from archc.lowering.optimize import optimize_for_inference
from archc.ops import weights
from archc.ops.base import ParamSpec
from archc.ops.weights import (
    DeferredArray,
    _generator,
    _uniform_into,
    deferred_weights,
    init_array,
)

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of a few hundred values, so that small models are split, drawn and written in many."""
    monkeypatch.setattr(weights, "PIECE_ELEMENTS", 258)
    monkeypatch.setattr(onnx_draw, "JOB_BYTES", 3000)


SPECS_UNDER_TEST = [
    ParamSpec((37, 3, 3, 3), "uniform", 0.25),          # rows of 27 values: pieces start at rows
    ParamSpec((1001,), "uniform", 1.5),                 # odd length: the last piece is odd
    ParamSpec((40, 25), "xavier_uniform"),
    ParamSpec((700,), "constant", value=0.125),
    ParamSpec((3, 333), "ones"),
    ParamSpec((999,), "zeros", dtype="int64"),
    ParamSpec((600,), "normal", std=0.02),              # not divisible: drawn whole
    ParamSpec((5, 200), "uniform", 0.1, dtype="float64"),  # drawn in float32, cast: whole
]


@pytest.mark.parametrize("spec", SPECS_UNDER_TEST, ids=lambda s: f"{s.init}{s.shape}")
def test_pieces_in_any_order_give_the_whole_draw(spec, small_pieces):
    expected = init_array("block.layer.weight", spec, 11)
    deferred = DeferredArray("block.layer.weight", spec, 11)
    pieces = deferred.pieces()
    assert pieces[0][0] == 0 and pieces[-1][1] == spec.numel
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    if spec.init in ("uniform", "xavier_uniform") and spec.dtype == "float32":
        assert len(pieces) > 2 and all(start % 2 == 0 for start, _ in pieces)
    flat = np.empty(spec.numel, expected.dtype)
    for start, stop in random.Random(3).sample(pieces, len(pieces)):  # independent of order
        flat[start:stop] = deferred.draw(start, stop)
    np.testing.assert_array_equal(flat.reshape(spec.shape), expected)
    np.testing.assert_array_equal(np.asarray(deferred), expected)
    assert np.asarray(deferred).dtype == expected.dtype


def test_scaled_pieces_start_at_whole_output_units(small_pieces):
    spec = ParamSpec((37, 3, 3, 3), "uniform", 0.25)
    factor = np.random.default_rng(0).uniform(0.5, 2.0, size=37).astype(np.float32)
    factor2 = np.random.default_rng(1).uniform(0.5, 2.0, size=37).astype(np.float32)
    expected = init_array("conv.weight", spec, 4)
    expected *= factor.reshape(-1, 1, 1, 1)
    expected *= factor2.reshape(-1, 1, 1, 1)
    scaled = DeferredArray("conv.weight", spec, 4).scaled(factor).scaled(factor2)
    assert all(start % 54 == 0 for start, _ in scaled.pieces())  # lcm(2, 27): even and whole rows
    flat = np.concatenate([scaled.draw(start, stop) for start, stop in scaled.pieces()])
    np.testing.assert_array_equal(flat.reshape(spec.shape), expected)


@pytest.mark.parametrize("bound", [0.0, 1e-3, 0.0417, 0.5, 3.0, -0.25, 2.0 ** -110])
@pytest.mark.parametrize("count", [0, 1, 2, 7, 1000, 4097])
def test_uniform_from_raw_output_is_numpys_float32_draw(bound, count, monkeypatch):
    monkeypatch.setattr(weights, "PIECE_ELEMENTS", 1024)  # several rounds of raw output
    expected = np.random.default_rng([5, 77]).random(size=count, dtype=np.float32)
    expected *= np.float32(2 * bound)
    expected -= np.float32(bound)
    out = np.empty(count, np.float32)
    _uniform_into(np.random.default_rng([5, 77]), out, bound)
    np.testing.assert_array_equal(out, expected)


def test_an_advanced_generator_continues_the_stream():
    key, seed = "fc.weight", 2
    whole = np.empty(5000, np.float32)
    _uniform_into(_generator(key, seed), whole, 0.3)
    tail = np.empty(5000 - 1234, np.float32)
    _uniform_into(_generator(key, seed, skip=617), tail, 0.3)  # 617 raw outputs = 1234 values
    np.testing.assert_array_equal(tail, whole[1234:])


def test_folding_draws_no_weight_of_a_layer_it_scales():
    graph = load_spec(str(SPECS / "resnet18.yaml"), {"image_size": 32}, None)
    graph.weights = deferred_weights(graph, 0)
    folded = optimize_for_inference(graph, inplace=True)
    convs = [n for n in folded.nodes() if n.op == "conv"]
    assert convs and all(isinstance(folded.weights[n.name]["weight"], DeferredArray) for n in convs)
    assert all(folded.weights[n.name]["weight"].unit_scales for n in convs)


@pytest.mark.parametrize("external", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_many_small_pieces_on_threads_write_the_same_bytes(tmp_path, small_pieces, external, dtype):
    graph = load_spec(str(SPECS / "resnet18.yaml"), {"image_size": 32, "num_classes": 10}, None)
    parts = store_weights_as(build_onnx_parts(graph, seed=6), WeightDtype(dtype))
    assert max(len(onnx_writer.source_pieces(s)) for _, s in parts.initializers) > 100
    path = tmp_path / "m.onnx"
    write_onnx(parts, str(path), external_data=external)
    model = onnx.load(str(path))  # external data read back into the tensors
    expected = assemble(parts)
    assert len(model.graph.initializer) == len(expected.graph.initializer)
    for got, want in zip(model.graph.initializer, expected.graph.initializer):
        assert got.name == want.name and got.raw_data == want.raw_data, got.name
    if not external:
        assert path.read_bytes() == expected.SerializeToString()


def test_a_source_failing_mid_stream_stops_the_drawing_threads(tmp_path, small_pieces):
    parts = build_onnx_parts(load_spec(str(SPECS / "resnet18.yaml"), {"image_size": 32}, None), seed=1)
    parts.initializers.insert(3, ("failing", FailingSource(OSError(28, "No space left on device"))))
    with pytest.raises(Exception, match="no space left on device"):
        write_onnx(parts, str(tmp_path / "m.onnx"))
    assert list(tmp_path.iterdir()) == []


def test_arrays_drawn_in_pieces_on_threads_equal_init_array(small_pieces, monkeypatch):
    """The --state-dict path (init_arrays, drawn_arrays): every piece of every array on a pool of
    threads gives init_array's values, dtypes and shapes; sources that are not deferred pass as they are."""
    monkeypatch.setattr(weights, "_PARALLEL_NUMEL", 10)
    monkeypatch.setattr(weights, "drawing_threads", lambda: 4)
    items = [(f"layer{i}.weight", spec) for i, spec in enumerate(SPECS_UNDER_TEST)]
    items.append(("bn.num_batches_tracked", ParamSpec((), "zeros", dtype="int64")))
    drawn = weights.init_arrays(items, 9)
    assert any(len(DeferredArray(k, s, 9).pieces()) > 2 for k, s in items)
    for (key, spec), array in zip(items, drawn, strict=True):
        expected = init_array(key, spec, 9)
        assert array.dtype == expected.dtype and array.shape == expected.shape, key
        np.testing.assert_array_equal(array, expected)
    plain = np.arange(5.0)
    assert list(weights.drawn_arrays([plain, DeferredArray(*items[0], 9)]))[0] is plain


def _bytes_written(tmp_path: Path, parts, external: bool) -> list[bytes]:
    """The bytes of the model (and its data file) written to a fresh folder, under one name."""
    folder = tmp_path / str(len(list(tmp_path.iterdir())))
    folder.mkdir()
    path = folder / "m.onnx"
    write_onnx(parts, str(path), external_data=external)
    return [path.read_bytes()] + ([Path(f"{path}.data").read_bytes()] if external else [])


@pytest.mark.parametrize("external", [False, True])
def test_short_positional_writes_are_continued(tmp_path, small_pieces, monkeypatch, external):
    """A pwritev may write fewer bytes than asked (it returns how many): the writer continues
    from there, across buffer boundaries, so the file is complete."""
    parts = build_onnx_parts(load_spec(str(SPECS / "resnet18.yaml"), {"image_size": 32}, None), seed=2)
    expected = _bytes_written(tmp_path, parts, external)
    real = os.pwritev
    calls = []

    def short(fd, buffers, offset):  # at most 1,000 bytes, and often a buffer cut in its middle
        joined = b"".join(bytes(b) for b in buffers)[:1000]
        calls.append(len(joined))
        return real(fd, [joined], offset)

    monkeypatch.setattr(os, "pwritev", short)
    assert _bytes_written(tmp_path, parts, external) == expected
    assert max(calls) == 1000


def test_without_positional_writes_threads_seek_and_write_in_turn(tmp_path, small_pieces, monkeypatch):
    """Where os.pwritev does not exist (not a POSIX system), the threads take turns at
    seek + write on the file object: the same bytes."""
    parts = build_onnx_parts(load_spec(str(SPECS / "resnet18.yaml"), {"image_size": 32}, None), seed=2)
    expected = _bytes_written(tmp_path, parts, False) + _bytes_written(tmp_path, parts, True)
    monkeypatch.delattr(os, "pwritev")
    assert _bytes_written(tmp_path, parts, False) + _bytes_written(tmp_path, parts, True) == expected


def test_a_model_written_to_a_file_in_memory_is_the_same(small_pieces):
    """A writer handed a file object without a descriptor (io.BytesIO: the atomic writer's
    callers may buffer) writes the same bytes: the threads take turns at seek + write."""
    parts = build_onnx_parts(load_spec(str(SPECS / "resnet18.yaml"), {"image_size": 32}, None), seed=2)
    buffer = io.BytesIO(b"ahead")
    buffer.seek(5)
    onnx_writer._write_layout(buffer, onnx_writer._inline_layout(parts))
    assert buffer.getvalue() == b"ahead" + assemble(parts).SerializeToString()
    assert buffer.tell() == len(buffer.getvalue())
