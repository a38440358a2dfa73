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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator, Sequence

import numpy as np
import onnx
from google.protobuf.message import Message

from archc.fileio import write_atomic_files
from archc.progress import Unit, task

__all__ = ["OnnxParts", "WrittenOnnx", "write_onnx", "assemble", "data_file_name", "serialized_size",
           "INLINE_LIMIT", "ALIGNMENT", "EXTERNAL_MIN_BYTES"]

#: Largest model written as one file: protobuf refuses messages of 2 GiB or more; the margin
#: leaves room for the graph itself.
INLINE_LIMIT = 2 ** 31 - 64 * 2 ** 20
#: Offsets of tensors in an external data file are multiples of this (lets runtimes map them).
ALIGNMENT = 64
#: Tensors smaller than this stay inside the model file even with external data (as onnx's
#: own converter does: a separate location costs more than it saves).
EXTERNAL_MIN_BYTES = 1024
#: Arrays drawn ahead of the one being written: at most this many bytes (or one array).
PREFETCH_BYTES = 256 * 2 ** 20

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


def _arrays(sources: Sequence[Any]) -> Iterator[np.ndarray]:
    """``np.asarray`` of each source in order, the next ones drawn on a thread while the caller
    writes (numpy's generators release the GIL), within :data:`PREFETCH_BYTES` ahead."""
    with ThreadPoolExecutor(1) as pool:
        pending: list[tuple[Future, int]] = []
        ahead = 0
        next_index = 0
        for _ in range(len(sources)):
            while next_index < len(sources) and (not pending or ahead + _nbytes(sources[next_index]) <= PREFETCH_BYTES):
                size = _nbytes(sources[next_index])
                pending.append((pool.submit(lambda s=sources[next_index]: _little_endian(np.asarray(s))), size))
                ahead += size
                next_index += 1
            future, size = pending.pop(0)
            ahead -= size
            yield future.result()


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
    with task("writing weights", total=total, unit=Unit.BYTES) as bar:
        for prefix, array in zip(prefixes, _arrays([s for _, s in parts.initializers])):
            fh.write(prefix)
            _write_array(fh, array)
            bar.advance(array.nbytes)
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
    position = 0
    with task("writing weights", total=sum(_nbytes(s) for _, s in placed), unit=Unit.BYTES) as bar:
        for (offset, _), array in zip(placed, _arrays([s for _, s in placed])):
            fh.write(b"\0" * (offset - position))
            _write_array(fh, array)
            position = offset + array.nbytes
            bar.advance(array.nbytes)


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
    if external_data is None:
        external_data = serialized_size(parts) > INLINE_LIMIT
    if not external_data:
        write_atomic_files([(path, lambda fh: _write_inline(fh, parts))], option)
        return WrittenOnnx(path, None, nodes, len(parts.initializers), weight_bytes)
    data_path = os.path.join(os.path.dirname(path), data_file_name(path))
    model, placed = _external_layout(parts, data_file_name(path))
    write_atomic_files([(data_path, lambda fh: _write_data(fh, placed)),
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
