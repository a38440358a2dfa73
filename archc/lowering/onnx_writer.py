"""Writing ONNX models of any size: the initializers' bytes go straight from the arrays to the file.

An emitted model comes in two parts (:class:`OnnxParts`): the ``ModelProto`` without its
initializers (small: nodes, inputs, outputs) and the initializers as a list of
``(name, source)``, where a source is an array or anything ``np.asarray`` turns into one
(archc's deferred seeded arrays, drawn only when written). :func:`write_onnx` writes the
protobuf wire format itself: the skeleton's fields are serialised by onnx, and each
initializer's ``TensorProto`` header (dims, data type, name) is serialised by onnx too,
followed by its ``raw_data`` field (tag, varint length, the array's bytes) written from the
array's buffer. So no message ever holds the weights, the 2 GB protobuf limit does not
apply to the writing, and at most a bounded number of arrays exist at once.

Inline models are byte-identical to ``onnx.ModelProto.SerializeToString()`` of the same
model (fields in field-number order). Models whose weights would not fit in one protobuf
message (over :data:`INLINE_LIMIT`), or any model when asked, are written with ONNX's
external data: ``NAME.onnx`` plus ``NAME.onnx.data`` beside it, each tensor of
:data:`EXTERNAL_MIN_BYTES` or more at an offset aligned to :data:`ALIGNMENT` bytes, located
by a relative path. Both files are written atomically together
(:func:`archc.fileio.write_atomic_files`): the data is named first, then the model.
"""
from __future__ import annotations

import errno
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import onnx
from google.protobuf.message import Message

from archc.fileio import Streamed, write_atomic_files
from archc.progress import Unit, task

__all__ = ["OnnxParts", "WrittenOnnx", "write_onnx", "assemble", "data_file_name", "serialized_size",
           "source_pieces", "draw_piece",
           "INLINE_LIMIT", "ALIGNMENT", "EXTERNAL_MIN_BYTES"]

#: Largest model written as one file: protobuf refuses messages of 2 GiB or more; the margin
#: leaves room for the graph itself.
INLINE_LIMIT = 2 ** 31 - 64 * 2 ** 20
#: Offsets of tensors in an external data file are multiples of this (lets runtimes map them).
ALIGNMENT = 64
#: Tensors smaller than this stay inside the model file even with external data (as onnx's
#: own converter does: a separate location costs more than it saves).
EXTERNAL_MIN_BYTES = 1024
#: Pieces handed to a drawing thread at once: small tensors are grouped up to this many bytes.
JOB_BYTES = 4 * 2 ** 20

_MODEL_GRAPH = 7          # ModelProto.graph
_GRAPH_INITIALIZER = 5    # GraphProto.initializer
_TENSOR_RAW_DATA = 9      # TensorProto.raw_data
_LENGTH_DELIMITED = 2


@dataclass
class OnnxParts:
    """An emitted model: ``model`` without initializers, the initializers in order, and which
    of them are learned parameters (the rest are constants the lowering made)."""

    model: onnx.ModelProto
    initializers: list[tuple[str, Any]] = field(default_factory=list)
    parameters: frozenset[str] = frozenset()


@dataclass
class WrittenOnnx:
    """What :func:`write_onnx` wrote."""

    path: str
    data_path: str | None       # the external data file, or None for a single file
    nodes: int
    initializers: int
    weight_bytes: int


def _tag(number: int) -> bytes:
    return _varint((number << 3) | _LENGTH_DELIMITED)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_header(number: int, length: int) -> bytes:
    return _tag(number) + _varint(length)


def _split(message: Message, number: int) -> tuple[bytes, bytes]:
    """The serialised fields of ``message`` numbered below and above ``number`` (field ``number``
    itself left out): protobuf writes fields in number order, so ``low + field + high`` is the
    message's canonical serialisation."""
    low, high = type(message)(), type(message)()
    for descriptor, value in message.ListFields():
        if descriptor.number == number:
            continue
        target = low if descriptor.number < number else high
        if descriptor.is_repeated:
            getattr(target, descriptor.name).extend(value)
        elif descriptor.type == descriptor.TYPE_MESSAGE:
            getattr(target, descriptor.name).CopyFrom(value)
        else:
            setattr(target, descriptor.name, value)
    return low.SerializeToString(), high.SerializeToString()


def _shape_dtype(source: Any) -> tuple[tuple[int, ...], np.dtype]:
    return tuple(int(d) for d in np.shape(source)), np.dtype(source.dtype)


def _nbytes(source: Any) -> int:
    shape, dtype = _shape_dtype(source)
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _tensor_header(name: str, source: Any) -> onnx.TensorProto:
    shape, dtype = _shape_dtype(source)
    tensor = onnx.TensorProto()
    tensor.dims.extend(shape)
    tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    tensor.name = name
    return tensor


def _little_endian(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def source_pieces(source: Any) -> list[tuple[int, int]]:
    """The ``(start, stop)`` ranges of the flattened source that :func:`draw_piece` draws one at
    a time: the source's own ``pieces()`` (a deferred array splits a large draw), else the whole."""
    pieces = getattr(source, "pieces", None)
    return pieces() if pieces is not None else [(0, _nbytes(source) // np.dtype(source.dtype).itemsize)]


def draw_piece(source: Any, start: int, stop: int,
               allocate: Callable[[int, np.dtype], np.ndarray] = np.empty) -> np.ndarray:
    """Values ``start:stop`` of the flattened source (a range of :func:`source_pieces`), as a
    little-endian vector; a source with ``draw`` makes just those (in memory from ``allocate``
    where it fills a vector itself), any other is made whole."""
    draw = getattr(source, "draw", None)
    flat = draw(start, stop, allocate) if draw is not None else np.asarray(source).reshape(-1)[start:stop]
    return _little_endian(flat)


class _Buffers:
    """Memory for drawn pieces, reused once a piece is written: fresh memory costs a page fault
    per 4 KiB on first touch, about as much per value as drawing it. Thread-safe."""

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        """A byte vector of at least ``nbytes``: a free one if one is large enough, else a new one."""
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if len(b) >= nbytes]
            if fits:
                return self._free.pop(min(fits, key=lambda i: len(self._free[i])))
        return np.empty(nbytes, np.uint8)

    def give(self, buffers: list[np.ndarray]) -> None:
        with self._lock:
            self._free.extend(buffers)


def _workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


class _Region(NamedTuple):
    """A tensor's place in a file: ``prefix`` (its protobuf headers, or padding) at ``offset``,
    then the source's values."""

    offset: int
    prefix: bytes
    source: Any


@dataclass
class _Layout:
    """Where everything goes in one file of ``size`` bytes: ``head`` at its start, each region,
    and ``tail`` at its end, with nothing in between (regions are contiguous)."""

    head: bytes
    regions: list[_Region]
    tail: bytes
    size: int


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


#: Buffers in one positional write at most (Linux's IOV_MAX).
_IOV_MAX = 1024

#: Writes ``buffers`` one after the other from byte ``offset`` of the output, from any thread.
WriteAt = Callable[[Sequence[Any], int], None]


def _pwritev_all(fd: int, buffers: Sequence[Any], offset: int) -> None:
    """``os.pwritev`` until every byte is written (a call may write less than asked)."""
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    while views:
        done = os.pwritev(fd, views[:_IOV_MAX], offset)
        if done <= 0:
            raise OSError(errno.EIO, "the output accepted no more bytes")
        offset += done
        while views and done >= len(views[0]):
            done -= len(views.pop(0))
        if done:
            views[0] = views[0][done:]


def _descriptor(fh: BinaryIO) -> int | None:
    """The file descriptor under ``fh``, or None for an in-memory file (``io.BytesIO``)."""
    try:
        return fh.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return None


def _positional_writer(fh: BinaryIO) -> WriteAt:
    """Writes at offsets from ``fh``'s current position: ``pwritev`` on its descriptor, so that
    threads write at once without moving the file position; elsewhere (no ``pwritev``, or a file
    in memory) seek and write under a lock."""
    fh.flush()
    base = fh.tell()
    fd = _descriptor(fh) if hasattr(os, "pwritev") else None
    if fd is not None:
        return lambda buffers, offset: _pwritev_all(fd, buffers, base + offset)
    lock = threading.Lock()

    def write_at(buffers: Sequence[Any], offset: int) -> None:
        with lock:
            fh.seek(base + offset)
            fh.writelines(buffers)

    return write_at


def _draw_and_write(regions: Sequence[_Region], write_at: WriteAt) -> Iterator[int]:
    """Draw every piece of every region's source on a pool of threads (numpy's generators and
    arithmetic, and writing, release the GIL); each thread writes what it drew at its place,
    straight from the memory it drew into, one positional write per job. Yields the bytes of
    each job in file order as it is done; a failing job's error is raised at its turn."""
    jobs = _jobs([r.source for r in regions])
    buffers = _Buffers()

    def run(job: list[tuple[int, int, int]]) -> int:
        taken: list[np.ndarray] = []

        def allocate(count: int, dtype: np.dtype) -> np.ndarray:
            taken.append(buffers.take(count * np.dtype(dtype).itemsize))
            return taken[-1][:count * np.dtype(dtype).itemsize].view(dtype)

        try:
            return _write_job([(regions[i], start, stop) for i, start, stop in job], allocate, write_at)
        finally:
            buffers.give(taken)  # written (or failed): the memory serves the next job

    pool = ThreadPoolExecutor(_workers())
    try:
        futures = [pool.submit(run, job) for job in jobs]
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _write_job(pieces: list[tuple[_Region, int, int]], allocate: Callable[[int, np.dtype], np.ndarray],
               write_at: WriteAt) -> int:
    """Draw the pieces and write each contiguous run of them (with the prefix of each region
    that starts in it) in one positional write; returns the bytes of values written."""
    run: list[Any] = []
    run_start = run_end = total = 0
    for region, start, stop in pieces:
        values = draw_piece(region.source, start, stop, allocate).reshape(-1).view(np.uint8)
        chunk = [region.prefix, values] if start == 0 else [values]
        at = region.offset if start == 0 else \
            region.offset + len(region.prefix) + start * np.dtype(region.source.dtype).itemsize
        if run and at != run_end:
            write_at(run, run_start)
            run = []
        if not run:
            run_start = run_end = at
        run.extend(chunk)
        run_end += sum(len(c) for c in chunk)
        total += len(values)
    if run:
        write_at(run, run_start)
    return total


def _write_layout(fh: BinaryIO, layout: _Layout) -> None:
    """Write ``layout`` from ``fh``'s position, which ends after it."""
    base = fh.tell()
    write_at = _positional_writer(fh)
    write_at([layout.head], 0)
    total = sum(_nbytes(r.source) for r in layout.regions)
    with task("writing weights", total=total, unit=Unit.BYTES) as bar:
        for written in _draw_and_write(layout.regions, write_at):
            bar.advance(written)
    write_at([layout.tail], layout.size - len(layout.tail))
    fh.seek(base + layout.size)


def serialized_size(parts: OnnxParts) -> int:
    """The size in bytes of the model written as one file (weights inline)."""
    return _inline_layout(parts).size


def _inline_entry(name: str, source: Any) -> bytes:
    """An initializer's bytes before its data: graph field header, tensor header, raw_data header."""
    header = _tensor_header(name, source).SerializeToString()
    size = _nbytes(source)
    raw = _field_header(_TENSOR_RAW_DATA, size)
    return _field_header(_GRAPH_INITIALIZER, len(header) + len(raw) + size) + header + raw


def _inline_layout(parts: OnnxParts) -> _Layout:
    """The model as one file: the protobuf encoding of the model with its initializers, fields
    in field-number order (so it equals ``SerializeToString``)."""
    head, tail = _split(parts.model, _MODEL_GRAPH)
    low, high = _split(parts.model.graph, _GRAPH_INITIALIZER)
    entries = [(_inline_entry(name, source), source) for name, source in parts.initializers]
    weights = sum(len(prefix) + _nbytes(source) for prefix, source in entries)
    start = head + _field_header(_MODEL_GRAPH, len(low) + weights + len(high)) + low
    regions: list[_Region] = []
    offset = len(start)
    for prefix, source in entries:
        regions.append(_Region(offset, prefix, source))
        offset += len(prefix) + _nbytes(source)
    return _Layout(start, regions, high + tail, offset + len(high) + len(tail))


def data_file_name(path: str) -> str:
    """The external data file of the model at ``path``: its file name plus ``.data``."""
    return os.path.basename(path) + ".data"


def _external_layout(parts: OnnxParts, location: str) -> tuple[onnx.ModelProto, _Layout]:
    """The model with every initializer in place (large ones pointing into ``location``) and
    the layout of the data file: each tensor it holds after zeros up to its aligned offset."""
    model = onnx.ModelProto()
    model.CopyFrom(parts.model)
    regions: list[_Region] = []
    offset = 0
    for name, source in parts.initializers:
        tensor = model.graph.initializer.add()
        size = _nbytes(source)
        if size < EXTERNAL_MIN_BYTES:
            tensor.CopyFrom(_tensor_header(name, source))
            tensor.raw_data = _little_endian(np.asarray(source)).tobytes()
            continue
        padding = -offset % ALIGNMENT
        tensor.CopyFrom(_tensor_header(name, source))
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset + padding)), ("length", str(size))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        regions.append(_Region(offset, b"\0" * padding, source))
        offset += padding + size
    return model, _Layout(b"", regions, b"", offset)


def write_onnx(parts: OnnxParts, path: str, *, external_data: bool | None = None,
               option: str | None = None) -> WrittenOnnx:
    """Write the model to ``path``, streaming the initializers; returns what was written.

    ``external_data``: True writes ``path`` plus :func:`data_file_name` beside it, False one
    file, None (default) external data only when one file would exceed :data:`INLINE_LIMIT`.
    ``option`` names the command-line flag that gave ``path`` (for error locations).
    Nothing is written unless everything is: see :func:`archc.fileio.write_atomic_files`.
    """
    weight_bytes = sum(_nbytes(s) for _, s in parts.initializers)
    nodes = len(parts.model.graph.node)
    inline = _inline_layout(parts) if not external_data else None
    if external_data is None:
        external_data = inline.size > INLINE_LIMIT
    if not external_data:
        write_atomic_files([(path, Streamed(lambda fh: _write_layout(fh, inline), inline.size))], option)
        return WrittenOnnx(path, None, nodes, len(parts.initializers), weight_bytes)
    data_path = os.path.join(os.path.dirname(path), data_file_name(path))
    model, layout = _external_layout(parts, data_file_name(path))
    write_atomic_files([(data_path, Streamed(lambda fh: _write_layout(fh, layout), layout.size)),
                        (path, model.SerializeToString())], option)
    return WrittenOnnx(path, data_path, nodes, len(parts.initializers), weight_bytes)


def assemble(parts: OnnxParts) -> onnx.ModelProto:
    """The whole model in memory (weights inline), for callers that run it at once."""
    model = onnx.ModelProto()
    model.CopyFrom(parts.model)
    for name, source in parts.initializers:
        tensor = model.graph.initializer.add()
        tensor.CopyFrom(_tensor_header(name, source))
        tensor.raw_data = _little_endian(np.asarray(source)).tobytes()
    return model
