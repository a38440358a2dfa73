"""Checks that the PyTorch and ONNX builds of one graph compute the same function."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from archc.ir import Graph

if TYPE_CHECKING:
    from archc.lowering.onnx_dtype import WeightDtype


@dataclass
class OutputComparison:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool


def compare(name: str, expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> OutputComparison:
    """Max absolute and relative error, and numpy's allclose verdict (|a - e| <= atol + rtol * |e|)."""
    if expected.shape != actual.shape:
        return OutputComparison(name, tuple(actual.shape), float("inf"), float("inf"), False)
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    diff = np.abs(a - e)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(e), 1e-12)).max()) if diff.size else 0.0
    ok = bool(np.allclose(a, e, rtol=rtol, atol=atol)) and (np.isfinite(a).all() == np.isfinite(e).all())
    return OutputComparison(name, tuple(actual.shape), max_abs, max_rel, ok)


def verify(graph: Graph, feeds: dict[str, np.ndarray], seed: int = 0, rtol: float = 1e-3, atol: float = 1e-5,
           device: str = "cpu", optimize: bool = True, allow_fallback: bool = False,
           dtype: "WeightDtype | None" = None) -> list[OutputComparison]:
    """Build both targets from one seed, run ``feeds`` through torch (eval) and onnxruntime, compare.

    ``dtype`` stores the ONNX build's weights in a narrower type (the torch reference stays
    float32); the caller scales the tolerances (:meth:`WeightDtype.tolerances`)."""
    from archc.lowering.onnx import build_onnx_parts
    from archc.lowering.onnx_dtype import WeightDtype, store_weights_as
    from archc.lowering.onnx_writer import assemble
    from archc.ops.weights import initialize
    from archc.runtime.ort import run_onnx
    from archc.runtime.torch_runner import run_torch

    if not graph.weights:
        initialize(graph, seed)
    reference, _ = run_torch(graph, feeds, device, seed, allow_fallback)
    parts = build_onnx_parts(graph, seed=seed, optimize=optimize)
    model = assemble(store_weights_as(parts, dtype or WeightDtype.float32))
    actual, _ = run_onnx(model.SerializeToString(), feeds, device, allow_fallback)
    return [compare(name, r, a, rtol, atol) for name, r, a in zip(graph.outputs, reference, actual)]


def verify_model(path: str, graph: Graph, feeds: dict[str, np.ndarray], rtol: float = 1e-3, atol: float = 1e-5,
                 device: str = "cpu", allow_fallback: bool = False) -> list[OutputComparison]:
    """An imported ONNX model against itself: onnxruntime on the original file (the reference)
    and the PyTorch module archc generates from ``graph`` (its import, with the file's weights)."""
    from archc.runtime.ort import run_onnx
    from archc.runtime.torch_runner import run_torch

    actual, _ = run_torch(graph, feeds, device, 0, allow_fallback)
    # the file's inputs are named as in ONNX; the graph's inputs may be cleaned-up names
    onnx_feeds = {graph.node(n).meta.get("onnx_name", n): feeds[n] for n in graph.inputs}
    reference, _ = run_onnx(path, onnx_feeds, device, allow_fallback)
    return [compare(name, r, a, rtol, atol) for name, r, a in zip(graph.outputs, reference, actual)]
