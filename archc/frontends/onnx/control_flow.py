"""ONNX control flow that folds away: If on a constant condition, Loop and Scan of a known length.

archc graphs are straight-line, so a subgraph is imported only where it becomes
straight-line code:

* ``If`` whose condition is a constant: the nodes of the branch taken;
* ``Loop`` whose trip count is a constant (and whose conditions stay constant true):
  the body once per iteration, loop-carried values threaded through, each scan output
  stacked along a new first axis (Unsqueeze + Concat);
* ``Scan`` whose scanned axes have a known length: the body once per step on the slice
  at that step (Gather), scan outputs stacked along their axes, reversed directions
  honoured.

Each iteration re-runs the body's nodes through the importer, so they are converted,
folded and named like any other node. Anything else is declined (the importer then
reports the node).
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import onnx
from onnx import helper, numpy_helper

from archc.frontends.onnx.values import Const


class Importer(Protocol):
    """What unrolling uses of :class:`archc.frontends.onnx.importer.Importer` (which imports this
    module, so it is not imported here)."""

    values: dict[str, Any]
    consumers: dict[str, int]
    _computed: dict[tuple, Any]
    _fresh: int

    def _process(self, node: onnx.NodeProto) -> None: ...
    def _fail(self, message: str, node: onnx.NodeProto | None = None) -> None: ...
    def attrs(self, node: onnx.NodeProto) -> dict[str, Any]: ...
    def const(self, name: str) -> np.ndarray | None: ...
    def otype(self, name: str) -> Any: ...
    def bind(self, name: str, rec: Any) -> None: ...
    def alias(self, out: str, source: str) -> Any: ...

#: the longest loop archc unrolls
MAX_ITERATIONS = 256


def resolve(im: "Importer", node: onnx.NodeProto) -> bool:
    """Import a control-flow node as straight-line code; False where it does not fold away."""
    handler = {"If": _inline_if, "Loop": _unroll_loop, "Scan": _unroll_scan}.get(node.op_type)
    return handler is not None and handler(im, node)


def _count_uses(im: "Importer", graph: onnx.GraphProto) -> None:
    """The subgraph's reads count as uses (``sole_use`` must not see a value as unshared)."""
    for inner in graph.node:
        for name in inner.input:
            im.consumers[name] = im.consumers.get(name, 0) + 1
    for out in graph.output:
        im.consumers[out.name] = im.consumers.get(out.name, 0) + 1


def _run_body(im: "Importer", body: onnx.GraphProto, bindings: dict[str, object]) -> list[object]:
    """One pass over ``body`` with its inputs bound to records; the records of its outputs."""
    for name, rec in bindings.items():
        im.bind(name, rec)
    for init in body.initializer:
        arr = numpy_helper.to_array(init)
        im.values[init.name] = Const(arr, learned=arr.dtype.kind in "fc")
    for inner in body.node:
        im._computed.pop((inner.op_type, *inner.output), None)  # each pass computes its own
        im._process(inner)
    return [im.values.get(out.name) for out in body.output]


def _emit(im: "Importer", op_type: str, inputs: list[str], **attrs) -> str:
    """A helper node (Gather, Unsqueeze, Concat) run through the importer; its output's name."""
    im._fresh += 1
    out = f"__archc_unrolled_{im._fresh}"
    im.consumers[out] = 1
    for name in inputs:
        im.consumers[name] = im.consumers.get(name, 0) + 1
    im._process(helper.make_node(op_type, inputs, [out], **attrs))
    return out


def _constant_name(im: "Importer", value: np.ndarray) -> str:
    im._fresh += 1
    name = f"__archc_const_{im._fresh}"
    im.values[name] = Const(value)
    return name


def _bind_outputs(im: "Importer", node: onnx.NodeProto, names: list[str]) -> None:
    for out, name in zip(node.output, names):
        if out:
            im.bind(out, im.alias(out, name))


def _stack(im: "Importer", parts: list[str], axis: int) -> str:
    axes = _constant_name(im, np.array([axis], dtype=np.int64))
    pieces = [_emit(im, "Unsqueeze", [p, axes]) for p in parts]
    return pieces[0] if len(pieces) == 1 else _emit(im, "Concat", pieces, axis=axis)


def _inline_if(im: "Importer", node: onnx.NodeProto) -> bool:
    cond = im.const(node.input[0]) if node.input and node.input[0] in im.values else None
    if cond is None or cond.size != 1:
        return False
    branch = im.attrs(node)["then_branch" if bool(cond.reshape(())) else "else_branch"]
    if len(branch.output) != len(node.output):
        im._fail("If branch has a different number of outputs than the node", node=node)
    _count_uses(im, branch)
    _run_body(im, branch, {})
    _bind_outputs(im, node, [out.name for out in branch.output])
    return True


def _unroll_loop(im: "Importer", node: onnx.NodeProto) -> bool:
    trip = im.const(node.input[0]) if node.input and node.input[0] else None
    cond = im.const(node.input[1]) if len(node.input) > 1 and node.input[1] else np.array(True)
    if trip is None or cond is None or not bool(cond.reshape(())) or int(trip.reshape(())) > MAX_ITERATIONS:
        return False
    body = im.attrs(node)["body"]
    carried = list(node.input[2:])
    n_carried = len(carried)
    _count_uses(im, body)
    scans: list[list[str]] = [[] for _ in body.output[1 + n_carried:]]
    for it in range(int(trip.reshape(()))):
        bindings = {body.input[0].name: Const(np.array(it, dtype=np.int64)),
                    body.input[1].name: Const(np.array(True))}
        bindings.update({b.name: im.values[c] for b, c in zip(body.input[2:], carried)})
        outs = _run_body(im, body, bindings)
        if not isinstance(outs[0], Const) or not bool(outs[0].array.reshape(())):
            im._fail("ONNX Loop: its condition is computed inside the body; archc unrolls only loops "
                     "of a constant trip count", node=node)
        carried = [_constant_name(im, r.array) if isinstance(r, Const) else _snapshot(im, o.name)
                   for r, o in zip(outs[1:1 + n_carried], body.output[1:1 + n_carried])]
        for k, out in enumerate(body.output[1 + n_carried:]):
            scans[k].append(_snapshot(im, out.name))
    if not all(scans) and scans:
        return False
    _bind_outputs(im, node, carried + [_stack(im, parts, 0) for parts in scans])
    return True


def _snapshot(im: "Importer", name: str) -> str:
    """A fresh name bound to what ``name`` holds now (the body reuses its names every pass)."""
    im._fresh += 1
    fresh = f"__archc_iter_{im._fresh}"
    im.bind(fresh, im.alias(fresh, name))
    im.consumers[fresh] = im.consumers.get(fresh, 0) + 1
    return fresh


def _unroll_scan(im: "Importer", node: onnx.NodeProto) -> bool:
    a = im.attrs(node)
    body, n_scan = a["body"], int(a["num_scan_inputs"])
    states, scanned = list(node.input[:len(node.input) - n_scan]), list(node.input[len(node.input) - n_scan:])
    in_axes = list(a.get("scan_input_axes", [0] * n_scan))
    in_dirs = list(a.get("scan_input_directions", [0] * n_scan))
    n_out = len(body.output) - len(states)
    out_axes = list(a.get("scan_output_axes", [0] * n_out))
    out_dirs = list(a.get("scan_output_directions", [0] * n_out))
    lengths = set()
    for name, axis in zip(scanned, in_axes):
        t = im.otype(name)
        if t is None or t.shape is None or not isinstance(t.shape[axis % len(t.shape)], int):
            return False
        lengths.add(t.shape[axis % len(t.shape)])
    if len(lengths) != 1 or next(iter(lengths)) > MAX_ITERATIONS:
        return False
    steps = next(iter(lengths))
    _count_uses(im, body)
    outputs: list[list[str]] = [[] for _ in range(n_out)]
    for t in range(steps):
        slices = [_emit(im, "Gather", [name, _constant_name(im, np.array(steps - 1 - t if d else t))],
                        axis=axis) for name, axis, d in zip(scanned, in_axes, in_dirs)]
        bindings = {b.name: im.values[s] for b, s in zip(body.input, states + slices)}
        _run_body(im, body, bindings)
        states = [_snapshot(im, o.name) for o in body.output[:len(states)]]
        for k, out in enumerate(body.output[len(states):]):
            outputs[k].append(_snapshot(im, out.name))
    stacked = []
    for parts, axis, d in zip(outputs, out_axes, out_dirs):
        stacked.append(_stack(im, parts[::-1] if d else parts, axis))
    _bind_outputs(im, node, states + stacked)
    return True
