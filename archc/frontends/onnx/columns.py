"""Small initializers read in columns from the model's bytes: every field of every tensor at once.

A model of 100k small weights (a deep residual chain) holds 143k initializers; reading each one's
name, dims, data type and bytes through protobuf's Python API costs more than the rest of its
import. The model's bytes are at hand (the checker's input, :mod:`~archc.frontends.onnx.rows`),
and a mirror of ``GraphProto`` that declares ``initializer`` as ``repeated bytes`` gives each
initializer's serialised ``TensorProto`` in one call. :func:`initializer_columns` walks those
messages *side by side* with numpy: step k reads the k-th field of every tensor (its tag, then its
varint or its length), so a pass costs a few array operations per field, not Python per tensor.

It understands what a plain initializer holds: ``dims`` (unpacked varints), ``data_type``,
``name``, ``raw_data`` and ``data_location``. A tensor with any other field (segments, typed data
fields, external data, a doc string, metadata), a malformed field, or bytes that do not fit its
dims is left to protobuf (:func:`~archc.frontends.onnx.tensors.read_tensors_grouped`), as is every
tensor where a name is not UTF-8. The small ones of one data type and shape are read as one array
(the same read-only, C-ordered views :func:`~archc.frontends.onnx.tensors.read_tensors_grouped`
gives); the caller reads the others.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from archc.frontends.onnx.tensors import GROUPED_BYTES, RAW_DTYPES

__all__ = ["Columns", "initializer_columns"]

_DIMS, _DATA_TYPE, _NAME, _RAW_DATA, _DATA_LOCATION = 1, 2, 8, 9, 14
_VARINT, _LENGTH_DELIMITED = 0, 2
_EXTERNAL = 1
#: most dims a tensor read here has; most fields it has
_MAX_RANK, _MAX_FIELDS = 8, 64
_SHIFTS = (7 * np.arange(10)).astype(np.uint64)


class Columns:
    """Initializers read from their bytes: ``names[i]`` and ``arrays[i]`` for each tensor read here
    (None for the others: the caller reads those), ``groups[i]`` the number of the group it was read
    with (one per data type and shape; negative numbers, -1, -2...)."""

    def __init__(self, count: int) -> None:
        self.names: list[Any] = [None] * count
        self.arrays: list[Any] = [None] * count
        self.groups: list[Any] = [None] * count
        #: the most elements a tensor has, where every tensor was read here (else None)
        self.most_elements: int | None = None


def _varints(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The varint at each of ``pos`` in ``buf`` (padded with 20 zero bytes): values (uint64) and
    lengths; length 0 where a varint runs over 10 bytes."""
    first = buf[pos]
    values, lengths = first.astype(np.uint64), np.ones(len(pos), np.int64)
    longer = np.flatnonzero(first >= 0x80)  # (most are one byte: tags, dims, data types)
    if longer.size:
        window = _windows(buf, 10)[pos[longer]]
        ends = window < 0x80
        length = np.where(ends.any(axis=1), ends.argmax(axis=1) + 1, 0)
        parts = (window & 0x7F).astype(np.uint64) << _SHIFTS
        parts[np.arange(10) >= length[:, None]] = 0
        values[longer], lengths[longer] = np.bitwise_or.reduce(parts, axis=1), length
    return values, lengths


def _windows(buf: np.ndarray, width: int) -> np.ndarray:
    """Every ``width`` bytes of ``buf`` from each position on, as rows of a view (no copy): indexing it
    by n starts gathers n rows with an index of n elements, not an (n, width) one."""
    return np.lib.stride_tricks.sliding_window_view(buf, width)


class _Walk:
    """The fields of ``count`` serialised tensors laid end to end in ``buf``, read side by side."""

    def __init__(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        count = len(starts)
        self.buf, self.ends = buf, ends
        self.pos = starts.copy()
        self.bad = np.zeros(count, bool)
        self.data_type = np.zeros(count, np.int64)
        self.location = np.zeros(count, np.int64)
        self.rank = np.zeros(count, np.int64)
        self.dims = np.ones((count, _MAX_RANK), np.int64)
        self.name = np.full((count, 2), -1, np.int64)   # start, end in buf
        self.raw = np.full((count, 2), -1, np.int64)

    def run(self) -> None:
        for _ in range(_MAX_FIELDS):
            live = np.flatnonzero((self.pos < self.ends) & ~self.bad)
            if not live.size:
                return
            self._step(live)
        self.bad |= self.pos < self.ends  # more fields than a plain initializer has

    def _step(self, live: np.ndarray) -> None:
        """Read the next field of each tensor in ``live``."""
        buf, pos = self.buf, self.pos[live]
        tag, taglen = _varints(buf, pos)
        value, vlen = _varints(buf, pos + taglen)
        field, wire = tag >> np.uint64(3), tag & np.uint64(7)
        after = pos + taglen + vlen
        delimited = wire == _LENGTH_DELIMITED
        nxt = np.where(delimited, after + np.minimum(value, np.uint64(1 << 40)).astype(np.int64), after)
        is_dims = (field == _DIMS) & (wire == _VARINT)
        known = is_dims | ((field == _DATA_TYPE) & (wire == _VARINT)) | ((field == _DATA_LOCATION) & (wire == _VARINT)) \
            | ((field == _NAME) & delimited) | ((field == _RAW_DATA) & delimited)
        ok = known & (taglen > 0) & (vlen > 0) & (nxt <= self.ends[live])
        ok &= ~is_dims | (self.rank[live] < _MAX_RANK)
        self.bad[live[~ok]] = True
        live, value, field, after, nxt, is_dims = live[ok], value[ok], field[ok], after[ok], nxt[ok], is_dims[ok]
        self.pos[live] = nxt
        signed = value.view(np.int64)
        sel = is_dims
        self.dims[live[sel], self.rank[live[sel]]] = signed[sel]
        self.rank[live[sel]] += 1
        for number, column in ((_DATA_TYPE, self.data_type), (_DATA_LOCATION, self.location)):
            sel = field == number
            column[live[sel]] = signed[sel]
        for number, span in ((_NAME, self.name), (_RAW_DATA, self.raw)):
            sel = field == number
            span[live[sel], 0], span[live[sel], 1] = after[sel], nxt[sel]


def initializer_columns(serialised: Sequence[bytes]) -> Columns | None:
    """The initializers ``serialised`` (one ``TensorProto`` each, in order: a list, or a mirror's
    repeated ``bytes`` field) that can be read in columns (see the module's docstring); None where
    a name read here is not UTF-8."""
    count = len(serialised)
    columns = Columns(count)
    if not count or sys.byteorder != "little":  # (raw_data is little-endian)
        return columns
    blobs = list(serialised[:])
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=count)
    blobs.append(bytes(20))
    joined = b"".join(blobs)
    del blobs  # (their bytes are in joined: not twice in memory while the arrays are made)
    buf = np.frombuffer(joined, dtype=np.uint8)  # (a varint read past a tensor's end stays inside)
    ends = np.cumsum(lengths)
    walk = _Walk(buf, ends - lengths, ends)
    walk.run()
    readable, nbytes, elements = _readable(walk)
    members = np.flatnonzero(readable)
    columns.most_elements = int(elements[members].max()) if len(members) == count else None
    if not members.size:
        return columns
    spans = walk.name[members]
    spans[spans[:, 0] < 0] = 0  # (no name field: the empty name)
    names = _names(buf, spans)
    if names is None:
        return None
    keys = np.column_stack([walk.data_type[members], walk.rank[members], walk.dims[members]])
    first, inverse = _groups(keys)
    order = np.argsort(inverse, kind="stable")  # each group's members in the file's order
    bounds = np.cumsum(np.bincount(inverse, minlength=len(first))).tolist()
    views: list[np.ndarray] = []  # each group's arrays, group after group
    start = 0
    for head, end in zip(first.tolist(), bounds):
        chosen = members[order[start:end]]
        start = end
        tensor = members[head]
        shape = tuple(walk.dims[tensor, :walk.rank[tensor]].tolist())
        stacked = _windows(buf, int(nbytes[tensor]))[walk.raw[chosen, 0]]
        stacked = stacked.view(RAW_DTYPES[int(walk.data_type[tensor])]).reshape((len(chosen), *shape))
        stacked.flags.writeable = False
        views.extend(stacked)
    place = np.empty_like(order)
    place[order] = np.arange(len(order))  # member -> where its array is in views
    arrays = list(map(views.__getitem__, place.tolist()))
    groups = (-1 - inverse).tolist()
    if len(members) == count:
        columns.names, columns.arrays, columns.groups = names, arrays, groups
        return columns
    for i, name, arr, group in zip(members.tolist(), names, arrays, groups):
        columns.names[i], columns.arrays[i], columns.groups[i] = name, arr, group
    return columns


#: bytes per element by ONNX data type (0: not a plain numeric type read here)
_ITEMSIZES = np.zeros(max(RAW_DTYPES) + 1, np.int64)
_ITEMSIZES[list(RAW_DTYPES)] = [np.dtype(dtype).itemsize for dtype in RAW_DTYPES.values()]


def _readable(walk: _Walk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which walked tensors are read here (a plain numeric type, rank 1 or more, raw bytes of exactly
    their size, at most ``GROUPED_BYTES``, not external), each one's size in bytes and in elements
    (both capped above ``GROUPED_BYTES``)."""
    itemsizes = _ITEMSIZES
    known_type = (walk.data_type >= 0) & (walk.data_type < len(itemsizes))
    nbytes = itemsizes[np.where(known_type, walk.data_type, 0)]
    elements = np.ones(len(nbytes), np.int64)
    for k in range(_MAX_RANK):  # (capped as they grow: no overflow)
        nbytes = np.minimum(nbytes * walk.dims[:, k], GROUPED_BYTES + 1)
        elements = np.minimum(elements * walk.dims[:, k], GROUPED_BYTES + 1)
    in_range = ((walk.dims >= 1) & (walk.dims <= GROUPED_BYTES)).all(axis=1)
    readable = ~walk.bad & known_type & (nbytes > 0) & (nbytes <= GROUPED_BYTES) & (walk.rank > 0) & in_range \
        & (walk.location != _EXTERNAL) & (walk.raw[:, 0] >= 0) & (walk.raw[:, 1] - walk.raw[:, 0] == nbytes)
    return readable, nbytes, elements


def _names(buf: np.ndarray, spans: np.ndarray) -> list[str] | None:
    """The UTF-8 texts at ``spans`` (start, end of each name field's text in ``buf``; in order, start 0
    for a tensor without a name: the empty text), decoded together; None where one is not UTF-8."""
    present = spans[:, 0] > 0
    if not present.all():
        found = _names(buf, spans[present]) if present.any() else []
        if found is None:
            return None
        texts = iter(found)
        return [next(texts) if here else "" for here in present.tolist()]
    # Each text with the byte before it (its field's length, never another text's byte: the field's tag
    # comes between), gathered by one index over the texts alone (not a pass over all of buf, whose
    # weights' bytes are most of it); those bytes become the NULs between texts.
    sizes = spans[:, 1] - spans[:, 0] + 1
    separators = np.cumsum(sizes) - sizes
    gathered = buf[np.arange(int(sizes.sum())) + np.repeat(spans[:, 0] - 1 - separators, sizes)]
    gathered[separators] = 1
    if not gathered.all():  # a NUL in a name: one by one
        try:
            return [buf[a:b].tobytes().decode("utf-8") for a, b in spans.tolist()]
        except UnicodeDecodeError:
            return None
    gathered[separators] = 0
    try:
        return gathered[1:].tobytes().decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return None


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``keys``: the index of each one's first row, and each row's group number
    (groups in the order of their first rows' values). By a hash of each row, checked against the
    group's first row (rows that share a hash but differ are grouped exactly)."""
    mix = np.uint64(0x9E3779B97F4A7C15) ** np.arange(1, keys.shape[1] + 1, dtype=np.uint64)
    hashes = (keys.astype(np.uint64) * mix).sum(axis=1, dtype=np.uint64)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if (keys == keys[first][inverse]).all():
        return first, inverse
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first, inverse.ravel()
