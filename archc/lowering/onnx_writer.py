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
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Sequence

import numpy as np
import onnx
from google.protobuf.message import Message

from archc.fileio import Streamed, write_atomic_files
from archc.lowering.onnx_draw import Region as _Region
from archc.lowering.onnx_draw import WriteAt, draw_and_write, draw_piece, source_pieces
from archc.lowering.onnx_draw import little_endian as _little_endian
from archc.lowering.onnx_draw import nbytes as _nbytes
from archc.lowering.onnx_draw import shape_dtype as _shape_dtype
from archc.progress import Unit, task
from archc.replaced import REPLACED

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


def _tensor_header(name: str, source: Any) -> onnx.TensorProto:
    shape, dtype = _shape_dtype(source)
    tensor = onnx.TensorProto()
    tensor.dims.extend(shape)
    tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    tensor.name = name
    return tensor


@dataclass
class _Layout:
    """Where everything goes in one file of ``size`` bytes: ``head`` at its start, each region,
    and ``tail`` at its end, with nothing in between (regions are contiguous)."""

    head: bytes
    regions: list[_Region]
    tail: bytes
    size: int


#: Buffers in one positional write at most (Linux's IOV_MAX).
_IOV_MAX = 1024


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
    """Writes at offsets from ``fh``'s current position: ``pwritev`` on its descriptor (one system
    call per run of buffers, no seek); elsewhere (no ``pwritev``, or a file in memory) seek and
    write. Called from one thread at a time."""
    fh.flush()
    base = fh.tell()
    fd = _descriptor(fh) if hasattr(os, "pwritev") else None
    if fd is not None:
        return lambda buffers, offset: _pwritev_all(fd, buffers, base + offset)

    def write_at(buffers: Sequence[Any], offset: int) -> None:
        fh.seek(base + offset)
        fh.writelines(buffers)

    return write_at


def _write_layout(fh: BinaryIO, layout: _Layout) -> None:
    """Write ``layout`` from ``fh``'s position, which ends after it."""
    base = fh.tell()
    write_at = _positional_writer(fh)
    write_at([layout.head], 0)
    total = sum(_nbytes(r.source) for r in layout.regions)
    with task("writing weights", total=total, unit=Unit.BYTES) as bar:
        # the files replaced before are let go once the threads draw: their pages, freed then,
        # are the ones this file's writes reuse (see archc.replaced)
        for written in draw_and_write(layout.regions, write_at, before_writing=REPLACED.release):
            bar.advance(written)
    write_at([layout.tail], layout.size - len(layout.tail))
    fh.seek(base + layout.size)


def serialized_size(parts: OnnxParts) -> int:
    """The size in bytes of the model written as one file (weights inline)."""
    return _inline_layout(parts).size


def _inline_entry(name: str, source: Any, size: int) -> bytes:
    """An initializer's bytes before its ``size`` bytes of data: graph field header, tensor header,
    raw_data header."""
    header = _tensor_header(name, source).SerializeToString()
    raw = _field_header(_TENSOR_RAW_DATA, size)
    return _field_header(_GRAPH_INITIALIZER, len(header) + len(raw) + size) + header + raw


def _inline_layout(parts: OnnxParts) -> _Layout:
    """The model as one file: the protobuf encoding of the model with its initializers, fields
    in field-number order (so it equals ``SerializeToString``)."""
    head, tail = _split(parts.model, _MODEL_GRAPH)
    low, high = _split(parts.model.graph, _GRAPH_INITIALIZER)
    entries = [(_inline_entry(name, source, size), source, size)
               for name, source in parts.initializers for size in (_nbytes(source),)]
    weights = sum(len(prefix) + size for prefix, _, size in entries)
    start = head + _field_header(_MODEL_GRAPH, len(low) + weights + len(high)) + low
    regions: list[_Region] = []
    offset = len(start)
    for prefix, source, size in entries:
        regions.append(_Region(offset, prefix, source))
        offset += len(prefix) + size
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


def _streamed(layout: _Layout) -> Streamed:
    """The file ``layout`` describes, as an output of known size (its writer frees the files
    replaced before itself, at a better moment than before it starts)."""
    return Streamed(lambda fh: _write_layout(fh, layout), layout.size, releases_replaced=False)


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
        write_atomic_files([(path, _streamed(inline))], option)
        return WrittenOnnx(path, None, nodes, len(parts.initializers), weight_bytes)
    data_path = os.path.join(os.path.dirname(path), data_file_name(path))
    model, layout = _external_layout(parts, data_file_name(path))
    write_atomic_files([(data_path, _streamed(layout)),
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
