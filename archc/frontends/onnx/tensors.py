"""Initializers as numpy arrays: read once, or stood in for when their bytes were not read.

Lint, summary and the other structure-only commands do not read external data (nor, through
:mod:`archc.frontends.onnx.skim`, large in-file payloads): such a tensor becomes a *placeholder*,
zeros of its shape and dtype as a read-only zero-stride view that takes no memory whatever its
size. Rearranging a placeholder (:func:`contiguous`) keeps it one.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["GROUPED_BYTES", "RAW_DTYPES", "contiguous", "is_placeholder", "is_unread", "read_tensor", "read_tensors", "read_tensors_grouped", "unread"]


def is_unread(tensor: onnx.TensorProto) -> bool:
    """An initializer whose data lives in an external file that was not loaded."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL and not tensor.HasField("raw_data")


def unread(tensor: onnx.TensorProto) -> np.ndarray:
    """A stand-in for unloaded external data: zeros of the tensor's shape and dtype as a
    read-only zero-stride view, so it takes no memory whatever its size."""
    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(tensor.dims))


#: TensorProto data types whose raw_data is the numpy array's bytes (little-endian)
RAW_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
               onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.INT64: np.int64,
               onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT16: np.int16, onnx.TensorProto.INT8: np.int8,
               onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.UINT16: np.uint16,
               onnx.TensorProto.UINT32: np.uint32, onnx.TensorProto.UINT64: np.uint64,
               onnx.TensorProto.BOOL: np.bool_}

_ITEMSIZES = {data_type: np.dtype(dtype).itemsize for data_type, dtype in RAW_DTYPES.items()}


def read_tensor(tensor: onnx.TensorProto) -> np.ndarray:
    """``numpy_helper.to_array(tensor)``, with its commonest case (raw bytes of a plain numeric
    type, no segment) done directly: a model of many small weights calls it once per weight."""
    dtype = RAW_DTYPES.get(tensor.data_type)
    if dtype is not None and sys.byteorder == "little" and tensor.HasField("raw_data") \
            and not tensor.HasField("segment"):
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tensor.dims)
    return numpy_helper.to_array(tensor)


#: initializers of at most this many bytes are read together with the others of their dtype and shape
GROUPED_BYTES = 4096


def read_tensors(tensors: Sequence[onnx.TensorProto], read: Callable[[onnx.TensorProto], np.ndarray]
                 ) -> list[tuple[str, np.ndarray]]:
    """Each tensor's name and ``read(tensor)`` (see :func:`read_tensors_grouped`)."""
    return [(name, arr) for name, arr, _ in read_tensors_grouped(tensors, read)]


def read_tensors_grouped(tensors: Sequence[onnx.TensorProto], read: Callable[[onnx.TensorProto], np.ndarray]
                         ) -> list[tuple[str, np.ndarray, int | None]]:
    """Each tensor's name, ``read(tensor)`` and its group (a number, or None), where the small tensors of one dtype and shape stored
    as raw bytes are read as one array, one view of it each: the same values, dtype, shape and
    (read-only) flags as :func:`read_tensor` gives, at a fraction of numpy's cost per call (a
    model of many small weights has thousands of each shape). ``read`` reads the others, in order
    (its errors are raised in the order of ``tensors``). The tensors read together have the same group
    number (one number per group of the call), the others None."""
    read_in: list[Any] = []   # per tensor: its array, or its group's chunk list (filled in below)
    names: list[str] = []
    groups: dict[tuple, list[bytes]] = {}
    itemsizes = _ITEMSIZES if sys.byteorder == "little" else {}
    for tensor in tensors:
        names.append(tensor.name)
        dims = tuple(tensor.dims[:])  # (a slice: iterating the field ends in an IndexError protobuf formats)
        data_type = tensor.data_type
        itemsize = itemsizes.get(data_type)
        nbytes = math.prod(dims) * itemsize if itemsize and dims else 0
        if 0 < nbytes <= GROUPED_BYTES and not tensor.HasField("segment"):
            raw = tensor.raw_data
            if len(raw) == nbytes:  # (else no raw bytes, or the wrong number: read says what is wrong)
                chunks = groups.get((data_type, dims))
                if chunks is None:
                    chunks = groups[(data_type, dims)] = []
                chunks.append(raw)
                read_in.append(chunks)
                continue
        read_in.append(read(tensor))
    views = {id(chunks): iter(np.frombuffer(b"".join(chunks), dtype=RAW_DTYPES[data_type])
                              .reshape((len(chunks), *dims)))
             for (data_type, dims), chunks in groups.items()}
    # (the group: the same number for the tensors of one dtype and shape read together, None for the others)
    return [(name, got, None) if type(got) is not list else (name, next(views[id(got)]), id(got))
            for name, got in zip(names, read_in)]


def is_placeholder(arr: np.ndarray) -> bool:
    """Whether ``arr`` stands in for unread data (see :func:`unread`)."""
    return arr.size > 1 and not any(arr.strides)


def contiguous(arr: np.ndarray) -> np.ndarray:
    """``arr`` as a C-contiguous array, except that a placeholder (see :func:`unread`) stays a
    placeholder of the new shape: rearranging unread weights must not allocate them."""
    if is_placeholder(arr):
        return np.broadcast_to(np.zeros((), dtype=arr.dtype), arr.shape)
    return np.ascontiguousarray(arr)
