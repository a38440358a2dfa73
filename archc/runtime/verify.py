"""Checks that the PyTorch and ONNX builds of one graph compute the same function, and that
the check means something.

Agreement of two near-constant outputs proves nothing, so :func:`verify` also measures the
*sensitivity* of each output (how much it changes between two different random inputs,
relative to its size) and reports a failure where that is below the comparison tolerance.
It compares the targets at every block's output too, so a disagreement is located: the
first block (in graph order) whose output differs is named. Weights are archc's seeded
initialisation calibrated on random inputs (unit-variance layers, batchnorm statistics)
(:mod:`archc.runtime.calibrate`), or the graph's own (``--weights``); both targets use the
same ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from archc.ir import BlockInstance, Graph, Value

if TYPE_CHECKING:
    import onnx

    from archc.lowering.onnx_dtype import WeightDtype


@dataclass
class OutputComparison:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool
    #: max |f(x1) - f(x2)| / max |f(x1)| for two different inputs (None: not a float output)
    sensitivity: float | None = None
    #: the largest max_abs that agrees: atol + rtol * max |expected| (0 where shapes or non-finite values differ)
    allowed: float = 0.0
    #: where float32 rounding alone moves the reference more than rtol allows (a deep network): that
    #: rounding, relative to the tensor's size (the reference in float32 against float64), which
    #: ``allowed`` then takes in place of rtol, times :data:`ROUNDING_SLACK`
    rounding: float | None = None


@dataclass
class VerifyReport:
    """Final outputs, block outputs (graph order), and what the weights were."""

    outputs: list[OutputComparison]
    blocks: list[OutputComparison] = field(default_factory=list)
    #: (layers scaled to unit output variance, batchnorm layers calibrated); (0, 0) for given weights
    calibrated: tuple[int, int] = (0, 0)
    rtol: float = 1e-3
    #: what the reference ran, where it is not the file itself (a model of an opset onnxruntime lacks)
    reference_note: str | None = None

    @property
    def first_divergent_block(self) -> OutputComparison | None:
        return next((b for b in self.blocks if not b.ok), None)

    @property
    def insensitive(self) -> list[OutputComparison]:
        """Outputs that barely depend on the input: their agreement proves nothing."""
        return [o for o in self.outputs if o.sensitivity is not None and o.sensitivity < self.rtol]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs) and self.first_divergent_block is None and not self.insensitive


#: how far beyond the reference's own float32 rounding two runtimes may differ: their kernels round
#: otherwise (another summation order, folded batchnorms), by about as much again
ROUNDING_SLACK = 4.0
#: the most the rounding widens the tolerance, in rtols: a model whose outputs float64 moves further
#: (a decision flipped: a max, a threshold) is compared at that, never at its own noise
ROUNDING_CAP = 10.0


def compare(name: str, expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float,
            exact: np.ndarray | None = None) -> OutputComparison:
    """Max absolute error, and the error relative to the tensor's size (max |e|); agreement is
    ``max |a - e| <= atol + rtol * max |e|``. Measured against the tensor's size rather than each
    element, float rounding in elements near zero (which every reordering of a sum causes) is not
    a disagreement, while any error that matters at the tensor's scale is; the sensitivity is
    measured on the same scale."""
    if expected.shape != actual.shape:
        return OutputComparison(name, tuple(actual.shape), float("inf"), float("inf"), False)
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    if not e.size:
        return OutputComparison(name, tuple(actual.shape), 0.0, 0.0, True)
    finite = np.isfinite(e)
    if not np.array_equal(finite, np.isfinite(a)) or not np.array_equal(e[~finite], a[~finite], equal_nan=True):
        return OutputComparison(name, tuple(actual.shape), float("inf"), float("inf"), False)
    diff = np.abs(a[finite] - e[finite])
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(e[finite]).max()) if diff.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    rounding = _rounding(e, exact, finite, scale)
    allowed = atol + min(max(rtol, ROUNDING_SLACK * (rounding or 0.0)), ROUNDING_CAP * rtol) * scale
    return OutputComparison(name, tuple(actual.shape), max_abs, max_rel, max_abs <= allowed, allowed=allowed,
                            rounding=rounding if rounding is not None and ROUNDING_SLACK * rounding > rtol else None)


def _rounding(expected: np.ndarray, exact: np.ndarray | None, finite: np.ndarray, scale: float) -> float | None:
    """How far the float32 reference lies from the same weights run in float64, relative to its size."""
    if exact is None or exact.shape != expected.shape or not scale:
        return None
    x = exact.astype(np.float64)
    if not np.array_equal(np.isfinite(x), finite):
        return None
    return float(np.abs(expected[finite] - x[finite]).max()) / scale if finite.any() else None


def sensitivity(first: np.ndarray, second: np.ndarray) -> float | None:
    """How much an output changed between two inputs, relative to its size (None for non-floats)."""
    if first.dtype.kind != "f" or first.shape != second.shape or not first.size:
        return None
    a, b = first.astype(np.float64), second.astype(np.float64)
    finite = np.isfinite(a) & np.isfinite(b)  # (an element not finite in both, e.g. sqrt of a negative, says nothing)
    if not finite.any():
        return None
    scale = float(np.abs(a[finite]).max())
    change = float(np.abs(a[finite] - b[finite]).max())
    return change / scale if scale > 0 else (0.0 if change == 0 else float("inf"))


def block_outputs(graph: Graph) -> dict[str, Value]:
    """Each block instance's output values (read outside the instance, or graph outputs), named
    ``INSTANCE`` (``INSTANCE:i`` for several, ``i`` as the spec's ``INSTANCE:i`` reads it), in graph
    order; only floating-point values."""
    members: dict[str, set[str]] = {}
    instances: dict[str, BlockInstance] = {}
    for node in graph.nodes():
        for inst in node.scope:
            members.setdefault(inst.path, set()).add(node.name)
            instances.setdefault(inst.path, inst)
    order = {n.name: i for i, n in enumerate(graph.nodes())}
    graph_outputs = set(graph.outputs.values())
    found: list[tuple[int, str, Value]] = []
    for path, names in members.items():
        values = []
        for name in names:
            node = graph.node(name)
            for k, t in enumerate(node.outputs):
                v = Value(name, k)
                read_outside = any(v in graph.node(u).inputs for u in graph.users(name) if u not in names)
                if (read_outside or v in graph_outputs) and t.dtype.startswith("float"):
                    values.append(v)
        values.sort(key=lambda v: (order[v.node], v.out))
        for i, v in enumerate(values):
            index = instances[path].output_index(v)
            name = path if len(values) == 1 else f"{path}:{i if index is None else index}"
            found.append((order[v.node], name, v))
    found.sort(key=lambda f: f[0])
    return {name: v for _, name, v in found}


def _run_torch(graph: Graph, feeds_list: list[dict[str, np.ndarray]], device: str,
               allow_fallback: bool) -> tuple[list[list[np.ndarray]], list[np.ndarray | None]]:
    """The graph's module (eval, graph.weights) run on each feed, built once; then the first feed
    run in float64 (the module and its float inputs), to measure how much float32 rounding alone
    moves each output (Nones where the module does not run so: an op without float64 kernels)."""
    from archc.lowering.torch import build_module
    from archc.runtime.torch_runner import forward, torch_device

    dev = torch_device(device, allow_fallback)
    module = build_module(graph).eval().to(dev)
    outputs = [forward(module, graph, feeds, dev) for feeds in feeds_list]
    exact: list[np.ndarray | None] = [None] * len(outputs[0])
    if all(t.dtype == "float32" for t in (graph.type_of(Value(n)) for n in graph.inputs) if t.dtype.startswith("float")):
        wide = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds_list[0].items()}
        try:
            exact = list(forward(module.double(), graph, wide, dev))
        except Exception:  # noqa: BLE001 - no float64 run: the tolerance stays rtol's alone
            pass
    return outputs, exact


def verify(graph: Graph, feeds: dict[str, np.ndarray], seed: int = 0, rtol: float = 1e-3, atol: float = 1e-5,
           device: str = "cpu", optimize: bool = True, allow_fallback: bool = False,
           dtype: "WeightDtype | None" = None) -> VerifyReport:
    """Build both targets with one set of weights, run ``feeds`` through torch (eval) and onnxruntime,
    compare final and block outputs; measure each output's sensitivity to the input.

    ``dtype`` stores the ONNX build's weights in a narrower type (the torch reference stays
    float32); the caller raises the tolerances (:meth:`WeightDtype.tolerances`)."""
    from archc.lowering.onnx import build_onnx_parts
    from archc.lowering.onnx_dtype import WeightDtype, store_weights_as
    from archc.lowering.onnx_writer import assemble
    from archc.ops.weights import initialize
    from archc.runtime.calibrate import calibrate, example_dims
    from archc.runtime.inputs import input_types, other_inputs
    from archc.runtime.ort import run_onnx

    calibrated = (0, 0)
    if not graph.weights:
        initialize(graph, seed)
        calibrated = calibrate(graph, feeds, seed)
    probes = block_outputs(graph)
    probed = graph.copy()
    probed.outputs.update({f"block {name}": v for name, v in probes.items()})
    other = other_inputs(feeds, input_types(graph), example_dims(graph, feeds), seed + 1)  # a second, different input
    (reference, second), exact = _run_torch(probed, [feeds, other], device, allow_fallback)
    parts = store_weights_as(build_onnx_parts(probed, seed=seed, optimize=optimize), dtype or WeightDtype.float32)
    actual, _ = run_onnx(assemble(parts).SerializeToString(), feeds, device, allow_fallback)
    n = len(graph.outputs)
    outputs = [compare(name, r, a, rtol, atol, x) for name, r, a, x in zip(graph.outputs, reference[:n], actual[:n],
                                                                         exact[:n])]
    for o, r, s in zip(outputs, reference[:n], second[:n]):
        o.sensitivity = sensitivity(r, s)
    blocks = [compare(name, r, a, rtol, atol, x) for name, r, a, x in zip(probes, reference[n:], actual[n:], exact[n:])]
    return VerifyReport(outputs, blocks, calibrated, rtol)


def verify_model(path: str, graph: Graph, feeds: dict[str, np.ndarray], rtol: float = 1e-3, atol: float = 1e-5,
                 device: str = "cpu", allow_fallback: bool = False,
                 model: "onnx.ModelProto | None" = None) -> VerifyReport:
    """An imported ONNX model against itself: onnxruntime on the original file (the reference)
    and the PyTorch module archc generates from ``graph`` (its import, with the file's weights);
    the sensitivity is measured on the reference with a second random input. ``model``: the model
    ``graph`` was imported from, where it is not the file (its weights redrawn), run instead."""
    from archc.runtime.calibrate import example_dims
    from archc.runtime.inputs import input_types, other_inputs
    from archc.runtime.ort import run_session

    other = other_inputs(feeds, input_types(graph), example_dims(graph, feeds), 1)
    (actual,), exact = _run_torch(graph, [feeds], device, allow_fallback)
    session, note = _reference_session(path, device, allow_fallback, model)
    # the file's inputs are named as in ONNX; the graph's inputs may be cleaned-up names
    onnx_names = {n: graph.node(n).meta.get("onnx_name", n) for n in graph.inputs}
    reference = run_session(session, {onnx_names[n]: feeds[n] for n in graph.inputs}, path)
    second = run_session(session, {onnx_names[n]: other[n] for n in graph.inputs}, path)
    outputs = [compare(name, r, a, rtol, atol, x) for name, r, a, x in zip(graph.outputs, reference, actual, exact)]
    for o, r, s in zip(outputs, reference, second):
        o.sensitivity = sensitivity(r, s)
    return VerifyReport(outputs, rtol=rtol, reference_note=note)


def _reference_session(path: str, device: str, allow_fallback: bool, model: "onnx.ModelProto | None" = None):
    """onnxruntime's session on the file (or on ``model``), and None; where onnxruntime has no kernels
    for the file's old opset (opset 6 and before), a session on the file as the importer upgrades it
    (onnx's version converter), and a note saying so. Any other load failure is the error it was."""
    from archc.errors import Location, SpecError
    from archc.frontends.onnx.importer import UPGRADE_TO, default_opset, read_onnx_model, upgrade_opset
    from archc.runtime.ort import load_session

    try:
        return load_session(path if model is None else model.SerializeToString(), device, allow_fallback), None
    except SpecError as exc:
        refused = SpecError(exc.diagnostics[0].message, location=Location(path))  # (at the file, whatever was read)
        if model is None:
            model = read_onnx_model(path)
        upgraded = upgrade_opset(model)
        if upgraded is model:
            raise refused from None
        opset = default_opset(model)
        try:
            session = load_session(upgraded.SerializeToString(), device, allow_fallback)
        except SpecError:
            raise refused from None
        return session, (f"onnxruntime has no kernels for the file's opset {opset}: the reference is onnxruntime "
                         f"on the file converted to opset {UPGRADE_TO} by onnx.version_converter")
