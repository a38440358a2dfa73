"""Initializers as numpy arrays: read once, or stood in for when their bytes were not read.

Lint, summary and the other structure-only commands do not read external data (nor, through
:mod:`archc.frontends.onnx.skim`, large in-file payloads): such a tensor becomes a *placeholder*,
zeros of its shape and dtype as a read-only zero-stride view that takes no memory whatever its
size. Rearranging a placeholder (:func:`contiguous`) keeps it one.
"""
from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["contiguous", "is_placeholder", "is_unread", "read_tensor", "unread"]


def is_unread(tensor: onnx.TensorProto) -> bool:
    """An initializer whose data lives in an external file that was not loaded."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL and not tensor.HasField("raw_data")


def unread(tensor: onnx.TensorProto) -> np.ndarray:
    """A stand-in for unloaded external data: zeros of the tensor's shape and dtype as a
    read-only zero-stride view, so it takes no memory whatever its size."""
    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(tensor.dims))


#: TensorProto data types whose raw_data is the numpy array's bytes (little-endian)
_RAW_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
               onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.INT64: np.int64,
               onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT16: np.int16, onnx.TensorProto.INT8: np.int8,
               onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.UINT16: np.uint16,
               onnx.TensorProto.UINT32: np.uint32, onnx.TensorProto.UINT64: np.uint64,
               onnx.TensorProto.BOOL: np.bool_}


def read_tensor(tensor: onnx.TensorProto) -> np.ndarray:
    """``numpy_helper.to_array(tensor)``, with its commonest case (raw bytes of a plain numeric
    type, no segment) done directly: a model of many small weights calls it once per weight."""
    dtype = _RAW_DTYPES.get(tensor.data_type)
    if dtype is not None and sys.byteorder == "little" and tensor.HasField("raw_data") \
            and not tensor.HasField("segment"):
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tensor.dims)
    return numpy_helper.to_array(tensor)


def is_placeholder(arr: np.ndarray) -> bool:
    """Whether ``arr`` stands in for unread data (see :func:`unread`)."""
    return arr.size > 1 and not any(arr.strides)


def contiguous(arr: np.ndarray) -> np.ndarray:
    """``arr`` as a C-contiguous array, except that a placeholder (see :func:`unread`) stays a
    placeholder of the new shape: rearranging unread weights must not allocate them."""
    if is_placeholder(arr):
        return np.broadcast_to(np.zeros((), dtype=arr.dtype), arr.shape)
    return np.ascontiguousarray(arr)
