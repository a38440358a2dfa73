"""Tensor types of the IR: a shape whose dimensions are ints or symbols, and a dtype.

Symbolic dimensions (``"N"`` for the batch) are strings; they flow through ops
that do not need their value and become ``dim_param`` in ONNX. An op that changes a
symbolic size writes an expression over the symbols (``"(H + 1)//2"``), made only by
:mod:`archc.ir.dims`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Dim = Union[int, str]

#: dtypes the IR knows, by their numpy name.
DTYPES = ("float32", "float16", "float64", "int64", "int32", "bool", "uint8")


@dataclass(frozen=True)
class TensorType:
    """The static type of one value in the graph."""

    shape: tuple[Dim, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape: tuple[Dim, ...] | list[Dim]) -> "TensorType":
        return TensorType(tuple(shape), self.dtype)

    def numel(self) -> int | None:
        """Number of elements, or None when a dimension is symbolic."""
        n = 1
        for d in self.shape:
            if not isinstance(d, int):
                return None
            n *= d
        return n

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        suffix = "" if self.dtype == "float32" else f" {self.dtype}"
        return f"({dims}){suffix}"
