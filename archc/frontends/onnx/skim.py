"""Read an ONNX file's structure without its weights' bytes.

``onnx.load`` reads the whole file and copies every initializer's ``raw_data`` into the
parsed message: a ViT-B/16 export is 346 MB, all of it weights that ``lint``, ``summary``
and ``graph`` never look at. :func:`read_structure` walks the protobuf wire format of the
file (memory-mapped, so skipped bytes are never read from disk), copies every field except
the large ``raw_data`` payloads of the main graph's initializers, and parses what is left
with protobuf. Each initializer it left out is marked as ONNX external data pointing at
its bytes in the model file itself (``location``, ``offset``, ``length``): the importer
already treats unread external data as a placeholder of the tensor's shape and dtype.

The protobuf library cannot skip a field while parsing, hence the small walker here. It
understands only what it needs (field numbers of ModelProto.graph, GraphProto.initializer,
TensorProto.dims/data_type/raw_data/data_location); any other field is copied verbatim, and
anything unexpected (a group, a length past the end, a payload whose size disagrees with
the tensor's dims) makes it give up (None), so the caller reads the file with ``onnx.load``
and reports what is wrong the usual way.
"""
from __future__ import annotations

import math
import mmap
import os

import numpy as np
import onnx
from onnx import helper

__all__ = ["SKIM_BYTES", "read_structure"]

#: initializer payloads of more bytes than this are left in the file (smaller ones hold
#: shapes, axes and scalars the importer reads)
SKIM_BYTES = 4096
#: walking a field costs about what parsing this many bytes does: the walker gives up (and
#: onnx.load parses the file) once it has walked more fields than the file has bytes / this
#: (a graph of many nodes and small weights, where walking would cost more than it saves)
BYTES_PER_FIELD = 2048

_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_RAW_DATA, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 1, 2, 9, 13, 14
_LENGTH_DELIMITED = 2


class _GiveUp(Exception):
    """The bytes are not what the walker expects, or not worth walking: read the file the ordinary way."""


def read_structure(path: str) -> onnx.ModelProto | None:
    """The model in ``path`` with its large initializers' bytes left in the file, or None when the
    file has nothing to leave out or the walker cannot follow it (then use ``onnx.load``)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            skipped: list[tuple[int, int]] = []
            try:
                parts = _model(buf, size, skipped, size // BYTES_PER_FIELD)
            except _GiveUp:
                return None
            if not skipped:
                return None
            data = b"".join(parts)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf's decode errors: let onnx.load report them
        return None
    location = os.path.basename(path)
    by_offset = dict(skipped)
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.HasField("raw_data"):
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        if "archc.skim.offset" not in entries:
            continue
        offset = int(entries["archc.skim.offset"])
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(by_offset[offset]))):
            tensor.external_data.add(key=key, value=value)
    return model


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _GiveUp
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf, pos: int, end: int):
    """(field number, wire type, field start, key end, payload start, field end) of each field in
    buf[pos:end] (a length-delimited field's payload starts after its length)."""
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos, end)
        wire = key & 7
        key_end = payload = pos
        if wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == _LENGTH_DELIMITED:
            length, payload = _varint(buf, pos, end)
            pos = payload + length
        elif wire == 5:
            pos += 4
        else:  # groups (3, 4) are not in ONNX's messages
            raise _GiveUp
        if pos > end:
            raise _GiveUp
        yield key >> 3, wire, start, key_end, payload, pos


def _model(buf, end: int, skipped: list, budget: int) -> list:
    parts: list = []
    for field, wire, start, key_end, payload, stop in _fields(buf, 0, end):
        if field == _MODEL_GRAPH and wire == _LENGTH_DELIMITED:
            _nested(parts, buf[start:key_end], _graph(buf, payload, stop, skipped, budget))
        else:
            parts.append(buf[start:stop])
    return parts


def _graph(buf, pos: int, end: int, skipped: list, budget: int) -> list:
    parts: list = []
    for walked, (field, wire, start, key_end, payload, stop) in enumerate(_fields(buf, pos, end)):
        if walked > budget:
            raise _GiveUp  # not malformed, but not worth walking: onnx.load reads it faster
        tensor = _tensor(buf, payload, stop, skipped) \
            if field == _GRAPH_INITIALIZER and wire == _LENGTH_DELIMITED else None
        if tensor is None:
            parts.append(buf[start:stop])
        else:
            _nested(parts, buf[start:key_end], tensor)
    return parts


def _nested(parts: list, key: bytes, inner: list) -> None:
    """Append a length-delimited field: its key, the new length, the new payload."""
    length = sum(len(p) for p in inner)
    parts.append(key)
    parts.append(_encode_varint(length))
    parts.extend(inner)


def _tensor(buf, pos: int, end: int, skipped: list) -> list | None:
    """The TensorProto's fields without a large raw_data (a marker of its offset instead), or None
    to keep the tensor as it is."""
    dims: list[int] = []
    data_type = 0
    raw = None
    external = False
    fields = list(_fields(buf, pos, end))
    for field, wire, _, _, payload, stop in fields:
        if field == _TENSOR_DIMS and wire == 0:
            dims.append(_varint(buf, payload, stop)[0])
        elif field == _TENSOR_DIMS and wire == _LENGTH_DELIMITED:
            p = payload
            while p < stop:
                value, p = _varint(buf, p, stop)
                dims.append(value)
        elif field == _TENSOR_DATA_TYPE and wire == 0:
            data_type = _varint(buf, payload, stop)[0]
        elif field == _TENSOR_RAW_DATA and wire == _LENGTH_DELIMITED:
            raw = (payload, stop)
        elif field == _TENSOR_DATA_LOCATION and wire == 0:
            external = _varint(buf, payload, stop)[0] == onnx.TensorProto.EXTERNAL
    if raw is None or external or raw[1] - raw[0] <= SKIM_BYTES:
        return None
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).itemsize
    except Exception:  # noqa: BLE001 - an unknown or sub-byte type: keep the bytes, the importer decides
        return None
    if any(d >= 1 << 62 for d in dims) or math.prod(dims) * itemsize != raw[1] - raw[0]:
        return None  # bytes that do not match the dims: the importer reports it when reading them
    skipped.append((raw[0], raw[1] - raw[0]))
    parts = [buf[start:stop] for field, wire, start, _, _, stop in fields
             if not (field == _TENSOR_RAW_DATA and wire == _LENGTH_DELIMITED)]
    marker = onnx.StringStringEntryProto(key="archc.skim.offset", value=str(raw[0])).SerializeToString()
    parts.append(_encode_varint(_TENSOR_EXTERNAL_DATA << 3 | _LENGTH_DELIMITED) + _encode_varint(len(marker)) + marker)
    return parts
