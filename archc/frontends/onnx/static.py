"""Values known before the model runs: constants folded, shape arithmetic evaluated symbolically.

A node whose inputs are all constants or shape values is not an IR node: over constants it
is folded (:func:`~archc.frontends.onnx.values.fold`, bounded by :mod:`~archc.frontends.onnx.limits`);
over shape values (``Shape`` of a tensor, and the arithmetic on it) it is evaluated symbolically,
``N`` staying a str dim. What neither can do stays a *lazy* record, computed as an IR node only
if a tensor input needs it (:meth:`~archc.frontends.onnx.generic.GenericNodes.tensor`).
"""
from __future__ import annotations

import numpy as np
import onnx

from archc.frontends.onnx import limits
from archc.frontends.onnx.conversion import attribute_bytes
from archc.frontends.onnx.state import ImportState
from archc.frontends.onnx.values import (Const, Lazy, Record, ShapeArithmeticError, Sym, evaluate_symbolic, fold,
                                         is_static_int)
from archc.errors import ShapeError
from archc.ir import dims
from archc.ir.types import Dim

__all__ = ["StaticValues", "constant_value", "short"]

#: ops that pass their first input through unchanged at inference
PASS_THROUGH = ("Identity", "Dropout")


def short(arr: np.ndarray) -> str:
    """An array's values for a message, cut at 120 characters."""
    text = str(np.asarray(arr, dtype=object).tolist())
    return text if len(text) <= 120 else text[:117] + "..."


def constant_value(node: onnx.NodeProto, im: ImportState) -> np.ndarray:
    """The value of a ``Constant`` node."""
    a = im.attrs(node)
    for key, cast in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
        if key in a:
            return np.asarray(a[key]) if cast is None else np.asarray(a[key], dtype=cast)
    im._fail("Constant node without a supported value attribute", node=node)
    raise AssertionError  # unreachable


class StaticValues(ImportState):
    """Folding and symbolic evaluation of the nodes that compute no tensor."""

    #: (op type, domain, attributes, input records' ids) of a fold over a weight -> its output records
    _folded: dict[tuple, list[Const]]

    def _evaluate(self, node: onnx.NodeProto, recs: list[Record | None]) -> None:
        """Fold a node over constants, or evaluate it over symbolic shape data."""
        if node.op_type in PASS_THROUGH and (len(node.output) == 1 or not self.consumers.get(node.output[1])):
            self.bind(node.output[0], recs[0])
            return
        if self.node_types(node) is None and not self.types.has_whole:
            self.types.whole()  # a node the per-node inference cannot vouch for: ONNX checks the whole model
        if node.op_type in ("Shape", "Size") and isinstance(recs[0], Sym):
            self._shape_of(node, recs[0].array.shape)
            return
        if node.op_type in ("Shape", "Size"):
            t = self.otype(node.input[0])
            if t is not None and t.shape is not None:
                self._shape_of(node, tuple(self.fresh_symbol() if d is None else d for d in t.shape))
                return
        if all(r is None or isinstance(r, Const) for r in recs):
            learned = any(isinstance(r, Const) and r.learned for r in recs)
            # (a weight rearranged alike by several nodes, a transpose of a shared one per use: one record,
            # so that the weight stays one tensor; the records folded over stay bound, so their ids hold)
            key = (node.op_type, node.domain, attribute_bytes(node), tuple(map(id, recs))) if learned else None
            folded = self._folded.get(key) if key is not None else None
            if folded is None:
                arrays = self._fold(node, [None if r is None else r.array for r in recs])
                sources = [r.source or name for name, r in zip(node.input, recs) if isinstance(r, Const) and r.learned]
                source = sources[0] if len(sources) == 1 else None
                made_by = (node.op_type, tuple(node.input)) if learned else None
                folded = None if arrays is None else [Const(arr, learned, source=source, made_by=made_by)
                                                      for arr in arrays]
                if key is not None and folded is not None:
                    self._folded[key] = folded
            if folded is not None:
                for name, rec in zip(node.output, folded):
                    self.bind(name, rec)
                return
        ins = [None if r is None else r.array for r in recs] if not any(isinstance(r, Lazy) for r in recs) else None
        if ins is not None and limits.symbolic_allowed(ins):
            try:
                outs = evaluate_symbolic(node, ins)
            except ShapeArithmeticError as exc:
                self._fail(str(exc), node=node)
            if outs is not None:
                for k, (name, arr) in enumerate(zip(node.output, outs)):
                    self.bind(name, self._static_record(name, arr, node, k))
                return
        for k, name in enumerate(node.output):
            self.bind(name, Lazy(node, k))

    def _fold(self, node: onnx.NodeProto, arrays: list[np.ndarray | None]) -> list[np.ndarray] | None:
        """The node's outputs over constant inputs; None (it stays symbolic) when the reference
        implementation cannot run it or the result would be too large to make."""
        if limits.fold_refusal(node, arrays, self.opsets) is not None:
            return None
        if limits.is_integer_arithmetic(node, arrays):
            # numpy wraps int64 overflow and turns a division by zero into 0: check in Python ints first
            try:
                evaluate_symbolic(node, arrays)
            except ShapeArithmeticError as exc:
                self._fail(str(exc), node=node)
        try:
            return fold(node, arrays, self.opsets)
        except Exception:  # noqa: BLE001 - the reference implementation lacks some ops
            return None

    def _static_record(self, name: str, arr: np.ndarray, node: onnx.NodeProto, out: int = 0) -> Record:
        if not limits.fits_int64(np.asarray(arr, dtype=object).ravel()):
            self._fail(f"shape arithmetic gives a value beyond int64: {short(arr)}", node=node)
        if is_static_int(arr):
            t = self.types.whole().get(name)
            dtype = t.dtype if t is not None and t.dtype else "int64"
            try:
                return Const(np.array(arr.tolist(), dtype=dtype).reshape(arr.shape))
            except (OverflowError, TypeError, ValueError):
                self._fail(f"shape value {short(arr)} does not fit its declared type {dtype}", node=node)
        return Sym(arr, node, out)

    def _shape_of(self, node: onnx.NodeProto, shape: tuple[Dim, ...]) -> None:
        a = self.attrs(node)
        if node.op_type == "Size":
            try:
                size: Dim = dims.product(shape)
            except ShapeError:  # (an opaque dim, no expression: a size of its own)
                size = self.fresh_symbol()
            arr = np.array(size, dtype=object)
        else:
            arr = np.array(list(shape)[slice(a.get("start", 0), a.get("end"))], dtype=object)
        self.bind(node.output[0], self._static_record(node.output[0], arr, node))
