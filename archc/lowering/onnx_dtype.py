"""Weights stored in a narrower float type (``--dtype float16|bfloat16``) and structure-only models.

:func:`store_weights_as` keeps the model computing in float32, so it runs on every
onnxruntime build and provider (bfloat16 kernels are rare on CPUs), and stores each float32
parameter in the narrower type, followed by a ``Cast`` back to float32: the file, and the
weights a runtime reads, are half the size; the outputs are those of the rounded weights.
:func:`without_weights` turns the parameters into graph inputs, as
``torch.onnx.export(export_params=False)`` does: a valid model of the structure alone, written
in seconds whatever the model's size.
"""
from __future__ import annotations

import enum
from typing import Any, Callable

import ml_dtypes
import numpy as np
import onnx
from onnx import helper

from archc.lowering.onnx_draw import draw_piece, source_pieces
from archc.lowering.onnx_writer import OnnxParts

__all__ = ["WeightDtype", "store_weights_as", "without_weights"]


class WeightDtype(str, enum.Enum):
    """The float types weights can be stored in, and what a comparison against float32 allows."""

    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(ml_dtypes.bfloat16) if self is WeightDtype.bfloat16 else np.dtype(self.value)

    @property
    def epsilon(self) -> float:
        """Spacing of the type's numbers near 1 (2^-23, 2^-10, 2^-7)."""
        return float(ml_dtypes.finfo(self.numpy).eps)

    def tolerances(self, rtol: float, atol: float) -> tuple[float, float]:
        """Comparison tolerances for outputs of weights stored in this type, given float32's:
        each weight is off by up to half an epsilon relative to its value, and a layer sums
        such errors, so outputs may differ by several epsilons relative (8 allowed) and by one
        epsilon absolute; never tighter than asked."""
        if self is WeightDtype.float32:
            return rtol, atol
        return max(rtol, 8 * self.epsilon), max(atol, self.epsilon)


class _Cast:
    """A source's values converted to ``dtype`` when drawn (shape known without drawing)."""

    __slots__ = ("source", "dtype")

    def __init__(self, source: Any, dtype: np.dtype) -> None:
        self.source, self.dtype = source, dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.source))

    def pieces(self) -> list[tuple[int, int]]:
        """The source's pieces: converting is value by value, so it splits where the source does."""
        return source_pieces(self.source)

    def draw(self, start: int, stop: int, allocate: Callable[[int, np.dtype], np.ndarray] = np.empty) -> np.ndarray:
        """Values ``start:stop`` of the flattened source, converted (into ``allocate(count, dtype)``)."""
        wide = draw_piece(self.source, start, stop, allocate)
        narrow = allocate(stop - start, self.dtype)
        narrow[...] = wide
        return narrow

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = np.asarray(self.source).astype(self.dtype)
        return array if dtype is None else array.astype(dtype, copy=False)


def store_weights_as(parts: OnnxParts, dtype: WeightDtype) -> OnnxParts:
    """``parts`` with every float32 parameter stored as ``dtype`` and cast back by a node."""
    if dtype is WeightDtype.float32:
        return parts
    outputs = {o.name for o in parts.model.graph.output}
    narrow = {name for name, source in parts.initializers
              if name in parts.parameters and name not in outputs and np.dtype(source.dtype) == np.float32}
    if not narrow:
        return parts
    model = onnx.ModelProto()
    model.CopyFrom(parts.model)
    widened = {name: f"{name}/{WeightDtype.float32.value}" for name in narrow}
    for node in model.graph.node:
        node.input[:] = [widened.get(i, i) for i in node.input]
    casts = [helper.make_node("Cast", [name], [widened[name]], name=f"{name}/cast", to=onnx.TensorProto.FLOAT)
             for name, _ in parts.initializers if name in narrow]
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    initializers = [(name, _Cast(source, dtype.numpy) if name in narrow else source)
                    for name, source in parts.initializers]
    return OnnxParts(model, initializers, parts.parameters)


def without_weights(parts: OnnxParts) -> OnnxParts:
    """``parts`` with the parameters as graph inputs (named by their state_dict keys) instead of
    initializers; constants the lowering made (shapes, axes) stay."""
    model = onnx.ModelProto()
    model.CopyFrom(parts.model)
    kept = []
    for name, source in parts.initializers:
        if name in parts.parameters:
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(source.dtype))
            model.graph.input.append(helper.make_tensor_value_info(name, elem, list(np.shape(source))))
        else:
            kept.append((name, source))
    return OnnxParts(model, kept, frozenset())
