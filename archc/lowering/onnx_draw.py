"""Drawing an ONNX file's weights on a thread per core while one thread writes what they drew.

:mod:`archc.lowering.onnx_writer` lays a file out as regions (a tensor's protobuf headers, then
its values) and hands them to :func:`draw_and_write`. The values are drawn in pieces (a deferred
array's ``pieces()``; any other source whole), grouped into jobs of about :data:`JOB_BYTES`. Pool
threads draw jobs (numpy's generators and arithmetic release the GIL); the calling thread writes
each job as soon as it is drawn, with one positional write of its contiguous run of bytes,
straight from the memory drawn into, and hands that memory back for the next job.

Why one writer: Linux file systems take the file's inode lock for each buffered write, so two
threads writing one file never copy at once; a second writer waits for the lock spinning on a
core (a fifth of the write stage's CPU time for ResNet-50 when measured), where it could be
drawing. Why reused memory: fresh memory costs a page fault per 4 KiB on first touch (more in a
virtual machine whose host reclaims freed guest memory), about as much per value as drawing it,
so the blocks drawn into are kept in a small pool for the next job and the next file.
"""
from __future__ import annotations

import math
import os
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from archc.ops.weights import drawing_threads

__all__ = ["Region", "WriteAt", "BufferPool", "POOL", "draw_and_write", "drawing_executor", "source_pieces", "draw_piece",
           "nbytes", "shape_dtype", "little_endian",
           "JOB_BYTES", "BLOCK_BYTES", "KEEP_BYTES"]

#: Pieces handed to a drawing thread at once: small tensors are grouped up to this many bytes.
JOB_BYTES = 4 * 2 ** 20
#: Size of the memory blocks a job's pieces are carved from (a job's values, plus room for a
#: conversion's wider stage, fit in one or two).
BLOCK_BYTES = 8 * 2 ** 20
#: Free blocks kept between writes (and files) at most, so the next file reuses warm memory.
KEEP_BYTES = 64 * 2 ** 20
#: Addresses of the pieces carved from a block are multiples of this (numpy's vector loops prefer it).
PIECE_ALIGNMENT = 64

#: Writes ``buffers`` one after the other from byte ``offset`` of the output.
WriteAt = Callable[[Sequence[Any], int], None]


class Region(NamedTuple):
    """A tensor's place in a file: ``prefix`` (its protobuf headers, or padding) at ``offset``,
    then the source's values."""

    offset: int
    prefix: bytes
    source: Any


def shape_dtype(source: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The source's shape and dtype (known without drawing it)."""
    return tuple(int(d) for d in np.shape(source)), np.dtype(source.dtype)


def nbytes(source: Any) -> int:
    """The size of the source's values in bytes (known without drawing them)."""
    shape, dtype = shape_dtype(source)
    return math.prod(shape) * dtype.itemsize  # (np.prod costs microseconds, asked ~400 times a file)


def little_endian(array: np.ndarray) -> np.ndarray:
    """``array`` contiguous and little-endian, as ONNX stores tensors (no copy when it is)."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def source_pieces(source: Any) -> list[tuple[int, int]]:
    """The ``(start, stop)`` ranges of the flattened source that :func:`draw_piece` draws one at
    a time: the source's own ``pieces()`` (a deferred array splits a large draw), else the whole."""
    pieces = getattr(source, "pieces", None)
    return pieces() if pieces is not None else [(0, nbytes(source) // np.dtype(source.dtype).itemsize)]


def draw_piece(source: Any, start: int, stop: int,
               allocate: Callable[[int, np.dtype], np.ndarray] = np.empty) -> np.ndarray:
    """Values ``start:stop`` of the flattened source (a range of :func:`source_pieces`), as a
    little-endian vector; a source with ``draw`` makes just those (in memory from ``allocate``
    where it fills a vector itself), any other is made whole."""
    draw = getattr(source, "draw", None)
    flat = draw(start, stop, allocate) if draw is not None else np.asarray(source).reshape(-1)[start:stop]
    return little_endian(flat)


class BufferPool:
    """Byte blocks for drawn pieces, taken by drawing threads and given back once written; up to
    ``keep_bytes`` of free blocks stay for later writes. Thread-safe."""

    def __init__(self, keep_bytes: int) -> None:
        self.keep_bytes = keep_bytes
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        """A byte vector of at least ``size`` bytes: the smallest free one that fits, else a new one."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if len(b) >= size]
            if fits:
                return self._free.pop(min(fits, key=lambda i: len(self._free[i])))
        return np.empty(size, np.uint8)

    def give(self, blocks: Sequence[np.ndarray]) -> None:
        """Return blocks; the largest free ones beyond ``keep_bytes`` are let go."""
        with self._lock:
            self._free.extend(blocks)
            self._free.sort(key=len)
            while self._free and sum(len(b) for b in self._free) > self.keep_bytes:
                self._free.pop()

    def free_bytes(self) -> int:
        with self._lock:
            return sum(len(b) for b in self._free)


#: The pool every write draws from (so a second file reuses the first one's memory).
POOL = BufferPool(KEEP_BYTES)


class _Arena:
    """One job's memory: pieces carved in order from pooled blocks of :data:`BLOCK_BYTES` (a
    larger piece gets a block of its own size), all given back together once the job is written."""

    def __init__(self, pool: BufferPool) -> None:
        self.pool = pool
        self.blocks: list[np.ndarray] = []
        self._used = 0

    def allocate(self, count: int, dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        size = count * dtype.itemsize
        block = self.blocks[-1] if self.blocks else None
        start = aligned_offset(block, self._used) if block is not None else 0
        if block is None or start + size > len(block):
            block = self.pool.take(max(size + PIECE_ALIGNMENT, BLOCK_BYTES))
            self.blocks.append(block)
            start = aligned_offset(block, 0)
        self._used = start + size
        return block[start:start + size].view(dtype)


def aligned_offset(block: np.ndarray, offset: int) -> int:
    """The first offset from ``offset`` on whose address in ``block`` is a multiple of :data:`PIECE_ALIGNMENT`."""
    return offset + (-(block.__array_interface__["data"][0] + offset) % PIECE_ALIGNMENT)


class _Drawn(NamedTuple):
    """A drawn job: its bytes as ``(offset, buffers)`` runs, the blocks holding them, and how
    many bytes of values it holds."""

    runs: list[tuple[int, list[Any]]]
    blocks: list[np.ndarray]
    values: int


def _jobs(sources: Sequence[Any]) -> list[list[tuple[int, int, int]]]:
    """Every piece of every source as ``(source index, start, stop)``, in file order, grouped into
    jobs of at least :data:`JOB_BYTES` (many small tensors go to a thread together)."""
    jobs: list[list[tuple[int, int, int]]] = []
    size = JOB_BYTES
    for index, source in enumerate(sources):
        itemsize = np.dtype(source.dtype).itemsize
        for start, stop in source_pieces(source):
            if size >= JOB_BYTES:
                jobs.append([])
                size = 0
            jobs[-1].append((index, start, stop))
            size += (stop - start) * itemsize
    return jobs


def _draw_job(regions: Sequence[Region], job: list[tuple[int, int, int]], pool: BufferPool) -> _Drawn:
    """Draw a job's pieces into pooled memory; consecutive pieces (with the prefix of each region
    that starts in the job) form one run of bytes, written later in one positional write."""
    arena = _Arena(pool)
    runs: list[tuple[int, list[Any]]] = []
    run_end = total = 0
    try:
        for index, start, stop in job:
            region = regions[index]
            values = draw_piece(region.source, start, stop, arena.allocate).reshape(-1).view(np.uint8)
            chunk = [region.prefix, values] if start == 0 else [values]
            at = region.offset if start == 0 else \
                region.offset + len(region.prefix) + start * np.dtype(region.source.dtype).itemsize
            if not runs or at != run_end:
                runs.append((at, []))
                run_end = at
            runs[-1][1].extend(chunk)
            run_end += sum(len(c) for c in chunk)
            total += len(values)
    except BaseException:
        pool.give(arena.blocks)
        raise
    return _Drawn(runs, arena.blocks, total)


def draw_and_write(regions: Sequence[Region], write_at: WriteAt, pool: BufferPool | None = None, *,
                   before_writing: Callable[[], None] | None = None) -> Iterator[int]:
    """Draw every region's values on a pool of threads and write them (with the regions' prefixes)
    from this thread, each job as soon as it is drawn; yields the bytes of values of each job
    written. Jobs are handed out while those drawn and not yet written hold under two jobs' worth
    of bytes per thread (or none at all), so memory stays bounded whatever the model's size: at
    most that plus one job. A failing job's error is raised when it is reached, and this file's
    other jobs are dropped. Memory comes from ``pool`` (default :data:`POOL`). ``before_writing`` runs on this
    thread once the first jobs are handed out, before anything is written (work that must come
    before the writes, done while the threads draw)."""
    pool = POOL if pool is None else pool
    pending = deque(_jobs([r.source for r in regions]))
    threads = drawing_threads()
    budget = 2 * threads * JOB_BYTES
    executor = drawing_executor(threads)
    running: dict[Future, int] = {}  # job -> its bytes of values
    try:
        while pending or running:
            while pending and (not running or sum(running.values()) < budget):
                job = pending.popleft()
                running[executor.submit(_draw_job, regions, job, pool)] = _job_bytes(regions, job)
            if before_writing is not None:
                before_writing, first = None, before_writing
                first()
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                del running[future]
                yield _write_drawn(future.result(), write_at, pool)
    finally:  # after an error (or a caller that stops early), jobs not started are dropped and
        # those drawing are waited for; jobs drawn but not written are dropped with their memory
        for future in running:
            future.cancel()
        wait(running)


_EXECUTORS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_EXECUTORS_LOCK = threading.Lock()


def drawing_executor(threads: int) -> ThreadPoolExecutor:
    """This process's pool of ``threads`` drawing threads, started with its first file and kept
    for the next ones: starting two threads and joining them again cost each file 0.1–4 ms, the
    most on a busy machine. A forked child (whose copy has no threads) starts its own."""
    key = (os.getpid(), threads)
    with _EXECUTORS_LOCK:
        executor = _EXECUTORS.get(key)
        if executor is None:
            for (pid, _), other in _EXECUTORS.items():
                if pid == key[0]:  # a pool of another size (the cores allowed changed): let it go
                    other.shutdown(wait=False)
            _EXECUTORS.clear()
            executor = _EXECUTORS[key] = ThreadPoolExecutor(threads, thread_name_prefix="archc-draw")
    return executor


def _job_bytes(regions: Sequence[Region], job: list[tuple[int, int, int]]) -> int:
    return sum((stop - start) * np.dtype(regions[i].source.dtype).itemsize for i, start, stop in job)


def _write_drawn(drawn: _Drawn, write_at: WriteAt, pool: BufferPool) -> int:
    try:
        for offset, buffers in drawn.runs:
            write_at(buffers, offset)
    finally:
        pool.give(drawn.blocks)  # written (or failed): the memory serves the next job
    return drawn.values
