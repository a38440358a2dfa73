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

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator, Sequence

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
#: Values drawn ahead of the piece being written: at most this many bytes (or one job).
PREFETCH_BYTES = 256 * 2 ** 20
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


def _drawn(sources: Sequence[Any]) -> Iterator[tuple[int, np.ndarray]]:
    """``(source index, values)`` of every piece of every source in order, drawn on a pool of
    threads (numpy's generators and arithmetic release the GIL) up to :data:`PREFETCH_BYTES`
    ahead of the caller, who writes them; every source yields at least one piece."""
    jobs = _jobs(sources)
    itemsizes = [np.dtype(s.dtype).itemsize for s in sources]
    job_bytes = [sum((stop - start) * itemsizes[i] for i, start, stop in job) for job in jobs]

    buffers = _Buffers()

    def run(job: list[tuple[int, int, int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        taken: list[np.ndarray] = []

        def allocate(count: int, dtype: np.dtype) -> np.ndarray:
            taken.append(buffers.take(count * np.dtype(dtype).itemsize))
            return taken[-1][:count * np.dtype(dtype).itemsize].view(dtype)

        return [draw_piece(sources[i], start, stop, allocate) for i, start, stop in job], taken

    pool = ThreadPoolExecutor(_workers())
    try:
        pending: deque[tuple[Future, int]] = deque()
        ahead = submitted = 0
        for job in jobs:
            while submitted < len(jobs) and (not pending or ahead + job_bytes[submitted] <= PREFETCH_BYTES):
                pending.append((pool.submit(run, jobs[submitted]), job_bytes[submitted]))
                ahead += job_bytes[submitted]
                submitted += 1
            future, size = pending.popleft()
            ahead -= size
            pieces, taken = future.result()
            for (index, _, _), values in zip(job, pieces):
                yield index, values
            buffers.give(taken)  # the caller has written this job's pieces
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _write_array(fh: BinaryIO, array: np.ndarray) -> None:
    if array.size:
        fh.write(array.reshape(-1).view(np.uint8).data)  # the array's own buffer, no copy


def serialized_size(parts: OnnxParts) -> int:
    """The size in bytes of the model written as one file (weights inline)."""
    head, tail = _split(parts.model, _MODEL_GRAPH)
    graph = _inline_graph_size(parts)
    return len(head) + len(_field_header(_MODEL_GRAPH, graph)) + graph + len(tail)


def _inline_entry(name: str, source: Any) -> tuple[bytes, int]:
    """An initializer's bytes before its data (graph field header, tensor header, raw_data
    header) and its data's length."""
    header = _tensor_header(name, source).SerializeToString()
    size = _nbytes(source)
    raw = _field_header(_TENSOR_RAW_DATA, size)
    return _field_header(_GRAPH_INITIALIZER, len(header) + len(raw) + size) + header + raw, size


def _inline_graph_size(parts: OnnxParts) -> int:
    low, high = _split(parts.model.graph, _GRAPH_INITIALIZER)
    entries = sum(len(prefix) + size for prefix, size in (_inline_entry(n, s) for n, s in parts.initializers))
    return len(low) + entries + len(high)


def _write_inline(fh: BinaryIO, parts: OnnxParts) -> None:
    head, tail = _split(parts.model, _MODEL_GRAPH)
    low, high = _split(parts.model.graph, _GRAPH_INITIALIZER)
    prefixes = [_inline_entry(n, s)[0] for n, s in parts.initializers]
    graph_size = len(low) + len(high) + sum(len(p) + _nbytes(s) for p, (_, s) in zip(prefixes, parts.initializers))
    fh.write(head + _field_header(_MODEL_GRAPH, graph_size) + low)
    total = sum(_nbytes(s) for _, s in parts.initializers)
    current = -1
    with task("writing weights", total=total, unit=Unit.BYTES) as bar:
        for index, values in _drawn([s for _, s in parts.initializers]):
            if index != current:
                current = index
                fh.write(prefixes[index])
            _write_array(fh, values)
            bar.advance(values.nbytes)
    fh.write(high + tail)


def data_file_name(path: str) -> str:
    """The external data file of the model at ``path``: its file name plus ``.data``."""
    return os.path.basename(path) + ".data"


def _external_layout(parts: OnnxParts, location: str) -> tuple[onnx.ModelProto, list[tuple[int, Any]]]:
    """The model with every initializer in place (large ones pointing into ``location``) and
    the (offset, source) of each tensor the data file holds, in file order."""
    model = onnx.ModelProto()
    model.CopyFrom(parts.model)
    placed: list[tuple[int, Any]] = []
    offset = 0
    for name, source in parts.initializers:
        tensor = model.graph.initializer.add()
        size = _nbytes(source)
        if size < EXTERNAL_MIN_BYTES:
            tensor.CopyFrom(_tensor_header(name, source))
            tensor.raw_data = _little_endian(np.asarray(source)).tobytes()
            continue
        offset += -offset % ALIGNMENT
        tensor.CopyFrom(_tensor_header(name, source))
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(size))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        placed.append((offset, source))
        offset += size
    return model, placed


def _write_data(fh: BinaryIO, placed: list[tuple[int, Any]]) -> None:
    position, current = 0, -1
    with task("writing weights", total=sum(_nbytes(s) for _, s in placed), unit=Unit.BYTES) as bar:
        for index, values in _drawn([s for _, s in placed]):
            if index != current:
                current = index
                fh.write(b"\0" * (placed[index][0] - position))
                position = placed[index][0]
            _write_array(fh, values)
            position += values.nbytes
            bar.advance(values.nbytes)


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
    size = serialized_size(parts)
    if external_data is None:
        external_data = size > INLINE_LIMIT
    if not external_data:
        write_atomic_files([(path, Streamed(lambda fh: _write_inline(fh, parts), size))], option)
        return WrittenOnnx(path, None, nodes, len(parts.initializers), weight_bytes)
    data_path = os.path.join(os.path.dirname(path), data_file_name(path))
    model, placed = _external_layout(parts, data_file_name(path))
    data_size = placed[-1][0] + _nbytes(placed[-1][1]) if placed else 0
    write_atomic_files([(data_path, Streamed(lambda fh: _write_data(fh, placed), data_size)),
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
