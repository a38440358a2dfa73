"""The ONNX writer's drawing machinery (archc.lowering.onnx_draw): threads draw, one thread writes,
memory is bounded and reused between files, and the bytes are those of drawing everything whole."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FailingSource

from archc.frontends.yaml import load_spec
from archc.lowering import onnx_draw
from archc.lowering.onnx import build_onnx_parts
from archc.lowering.onnx_draw import BufferPool, Region, draw_and_write
from archc.lowering.onnx_writer import assemble, write_onnx
from archc.ops import weights

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture
def small_jobs(monkeypatch):
    """Pieces of a few hundred values and jobs of a few KiB: a small model makes hundreds of jobs."""
    monkeypatch.setattr(weights, "PIECE_ELEMENTS", 258)
    monkeypatch.setattr(onnx_draw, "JOB_BYTES", 3000)
    monkeypatch.setattr(onnx_draw, "BLOCK_BYTES", 8192)


class CountingPool(BufferPool):
    """A pool that counts the blocks it makes and the most taken at once."""

    def __init__(self, keep_bytes: int) -> None:
        super().__init__(keep_bytes)
        self.made = self.out = self.most_out = 0
        self.count_lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        before = self.free_bytes()
        block = super().take(size)
        with self.count_lock:
            self.made += self.free_bytes() == before  # nothing left the free list: a new block
            self.out += 1
            self.most_out = max(self.most_out, self.out)
        return block

    def give(self, blocks) -> None:
        with self.count_lock:
            self.out -= len(blocks)
        super().give(blocks)


def _regions(parts) -> tuple[list[Region], int]:
    """The initializers laid out back to back (no prefixes), and the total size."""
    regions, offset = [], 0
    for _, source in parts.initializers:
        regions.append(Region(offset, b"", source))
        offset += onnx_draw.nbytes(source)
    return regions, offset


def _resnet18_parts():
    return build_onnx_parts(load_spec(str(SPECS / "resnet18.yaml"), {"image_size": 32, "num_classes": 10}, None),
                            seed=3)


def test_one_thread_writes_everything_the_others_drew(small_jobs):
    parts = _resnet18_parts()
    regions, size = _regions(parts)
    out = bytearray(size)
    writers = set()

    def write_at(buffers, offset):
        writers.add(threading.get_ident())
        data = b"".join(bytes(memoryview(b).cast("B")) for b in buffers)
        out[offset:offset + len(data)] = data

    written = sum(draw_and_write(regions, write_at, CountingPool(0)))
    assert writers == {threading.get_ident()}
    assert written == size
    expected = b"".join(t.raw_data for t in assemble(parts).graph.initializer)
    assert bytes(out) == expected


def test_a_slow_writer_holds_back_the_drawing(small_jobs):
    pool = CountingPool(0)
    parts = _resnet18_parts()
    regions, size = _regions(parts)
    assert len(onnx_draw._jobs([r.source for r in regions])) > 100
    writes = []

    def slow_at_first(buffers, offset):  # the drawing threads would run far ahead if nothing held them
        writes.append(offset)
        if len(writes) < 40:
            time.sleep(0.005)

    assert sum(draw_and_write(regions, slow_at_first, pool)) == size
    # each job holds a block or two (a piece larger than a block gets its own); two jobs a thread
    assert pool.most_out <= 2 * weights.drawing_threads() * 2
    assert pool.out == 0  # every block came back


def test_memory_is_reused_for_the_next_file(small_jobs, tmp_path, monkeypatch):
    pool = CountingPool(onnx_draw.KEEP_BYTES)
    monkeypatch.setattr(onnx_draw, "POOL", pool)
    write_onnx(_resnet18_parts(), str(tmp_path / "a.onnx"))
    first = pool.made
    assert first > 0
    write_onnx(_resnet18_parts(), str(tmp_path / "b.onnx"))
    assert pool.made == first  # the second file drew into the first one's memory
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_the_pool_keeps_at_most_its_bound_and_hands_out_the_smallest_fit():
    pool = BufferPool(keep_bytes=100)
    pool.give([np.empty(n, np.uint8) for n in (10, 40, 60, 30)])
    assert pool.free_bytes() <= 100
    assert len(pool.take(25)) == 30
    assert len(pool.take(1000)) == 1000  # none fits: a new block


def test_a_failing_job_stops_the_writing_and_raises(small_jobs):
    parts = _resnet18_parts()
    parts.initializers.insert(5, ("failing", FailingSource(ValueError("drawing failed"))))
    regions, _ = _regions(parts)
    with pytest.raises(ValueError, match="drawing failed"):
        for _ in draw_and_write(regions, lambda buffers, offset: None, BufferPool(0)):
            pass


def test_jobs_over_the_budget_are_drawn_one_at_a_time(small_jobs):
    """Tensors drawn whole (a normal init) can be far larger than a job: however many follow each
    other, only one is held at a time, so memory stays one tensor plus the bounded rest."""
    counts = {"drawn": 0, "written": 0, "most_held": 0}
    lock = threading.Lock()

    class Whole:
        shape, dtype = (20000,), np.dtype("float32")  # 80 kB: many times two jobs a thread

        def __init__(self, value):
            self.value = value

        def draw(self, start, stop, allocate=np.empty):
            with lock:
                counts["drawn"] += 1
                counts["most_held"] = max(counts["most_held"], counts["drawn"] - counts["written"])
            return np.full(stop - start, self.value, np.float32)

    regions = [Region(k * 80000, b"", Whole(k)) for k in range(12)]
    out = bytearray(12 * 80000)

    def write_at(buffers, offset):
        data = b"".join(bytes(memoryview(b).cast("B")) for b in buffers)
        out[offset:offset + len(data)] = data
        with lock:
            counts["written"] += 1

    assert sum(draw_and_write(regions, write_at, BufferPool(0))) == len(out)
    assert counts["most_held"] == 1
    assert np.array_equal(np.frombuffer(bytes(out), np.float32), np.repeat(np.arange(12, dtype=np.float32), 20000))
