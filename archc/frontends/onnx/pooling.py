"""Max pooling with indices and max unpooling, as exporters write them -> the native pair.

ONNX's MaxPool returns indices into the whole N x C x H x W tensor, PyTorch's per (n, c)
plane. The default exporter writes ``max_pool2d_with_indices`` as a MaxPool whose indices
have each plane's origin subtracted (read from a 1x1 MaxPool's indices), and
``max_unpool2d`` as a ScatterND of the flattened values into zeros at the per-plane
indices plus each plane's offset: :func:`maxpool_with_indices` and :func:`max_unpool` fuse
those. Other tools write ONNX's own MaxUnpool over a MaxPool's whole-tensor indices:
:func:`onnx_max_unpool` turns the pair (the pool and every unpooling of its indices) into
the native ``maxpool`` with ``return_indices`` and ``max_unpool`` nodes. (torch's
TorchScript exporter cannot export ``max_unpool2d`` at all.)
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from archc.frontends.onnx.patterns import Follower, Match, constant, kind, matcher
from archc.ir.graph import Graph, Node, Value


def _onnx_attrs(node: Node) -> dict[str, Any]:
    return node.attrs.get("attributes") or {}


def _plane_origin(graph: Graph, value: Value, x: Value) -> list[str] | None:
    """The nodes computing each plane's first flat index of ``x``: the indices of a 1x1 MaxPool of
    ``x`` (its flat positions) sliced to spatial position 0 (the default exporter's spelling)."""
    nodes = []
    while kind(graph.node(value.node)) == "slice":
        node = graph.node(value.node)
        if node.attrs["start"] != 0 or node.attrs["end"] != 1 or node.attrs["dim"] < 2:
            return None
        nodes.append(node.name)
        value = node.inputs[0]
    pool = graph.node(value.node)
    a = _onnx_attrs(pool)
    if kind(pool) != "onnx:MaxPool" or value.out != 1 or pool.inputs != [x] or set(a.get("kernel_shape", [])) != {1} \
            or set(a.get("strides", [1])) != {1} or any(a.get("pads", [0])):
        return None
    spatial = graph.type_of(x).rank - 2
    return nodes + [pool.name] if len(nodes) == spatial else None


@matcher("sub")
def maxpool_with_indices(graph: Graph, root: Node) -> Match | None:
    """ONNX MaxPool's whole-tensor indices minus each plane's origin: PyTorch's per-plane indices,
    i.e. the native ``maxpool`` with ``return_indices``."""
    if kind(root) != "sub" or len(root.inputs) != 2:
        return None
    indices, origin = root.inputs
    pool = graph.node(indices.node)
    attrs = _pool_attrs(graph, pool) if kind(pool) == "onnx:MaxPool" and indices.out == 1 else None
    chain = _plane_origin(graph, origin, pool.inputs[0]) if attrs is not None else None
    if chain is None:
        return None
    return Match("maxpool", attrs, list(pool.inputs), [root.name, pool.name, *chain],
                 replaced=[(Value(pool.name, 0), 0), (Value(root.name), 1)], name=pool.name)


@matcher("reshape")
def max_unpool(graph: Graph, root: Node) -> Match | None:
    """The default exporter's MaxUnpool: per-plane indices plus each plane's offset, flattened, a
    ScatterND of the flattened values into zeros, reshaped: the native ``max_unpool``."""
    scatter = graph.node(root.inputs[0].node) if kind(root) == "reshape" else None
    if scatter is None or kind(scatter) != "onnx:ScatterND" or len(scatter.inputs) != 2:
        return None
    operands = scatter.attrs["operands"]
    data = graph.weights.get(scatter.name, {}).get(operands[0]) if isinstance(operands[0], str) else None
    if data is None or operands[1:] != [0, 1] or np.any(data) or _onnx_attrs(scatter).get("reduction", "none") != "none":
        return None
    column, flat_values = (graph.node(v.node) for v in scatter.inputs)
    offset = graph.node(column.inputs[0].node) if kind(column) == "reshape" else None
    if offset is None or kind(offset) != "onnx:Add" or kind(flat_values) != "flatten":
        return None
    indices, values = offset.inputs[0], flat_values.inputs[0]
    pool = graph.node(indices.node)
    out = root.outputs[0].shape
    shift = constant(graph, offset)
    if kind(pool) != "maxpool" or indices.out != 1 or shift is None or graph.type_of(values) != pool.outputs[0] \
            or not all(isinstance(d, int) for d in out) or data.size != math.prod(out):
        return None
    planes = np.arange(out[0] * out[1]).reshape(out[0], out[1], *[1] * (len(out) - 2)) * math.prod(out[2:])
    if shift.shape != planes.shape or not np.array_equal(shift, planes):
        return None
    attrs = {k: pool.attrs[k] for k in ("kernel_size", "stride", "padding")}
    return Match("max_unpool", {**attrs, "output_size": list(out[2:])}, [values, indices],
                 [root.name, scatter.name, column.name, offset.name, flat_values.name])


def _pool_attrs(graph: Graph, pool: Node) -> dict[str, Any] | None:
    """The native maxpool's attributes (with indices) for an ONNX MaxPool, or None where they
    cannot say the same: column-major indices, automatic or asymmetric padding."""
    a = _onnx_attrs(pool)
    if a.get("storage_order", 0) or a.get("auto_pad", "NOTSET") != "NOTSET":
        return None
    n = graph.type_of(pool.inputs[0]).rank - 2
    pads = list(a.get("pads", [0] * 2 * n))
    if pads[:n] != pads[n:]:
        return None
    return {"kernel_size": list(a["kernel_shape"]), "stride": list(a.get("strides", [1] * n)),
            "padding": pads[:n], "dilation": list(a.get("dilations", [1] * n)),
            "ceil_mode": bool(a.get("ceil_mode", 0)), "return_indices": True}


@matcher("onnx:MaxPool")
def onnx_max_unpool(graph: Graph, root: Node) -> Match | None:
    """An ONNX MaxPool whose indices only ONNX MaxUnpool nodes read -> native maxpool with indices
    and one native max_unpool per MaxUnpool (its output_shape, when given, as output_size)."""
    if kind(root) != "onnx:MaxPool" or len(root.outputs) != 2 or len(root.inputs) != 1:
        return None
    attrs = _pool_attrs(graph, root)
    users = [graph.node(u) for u in graph.users(root.name)]
    unpools = [u for u in users if any(v == Value(root.name, 1) for v in u.inputs)]
    if attrs is None or not unpools:
        return None
    then = []
    for unpool in unpools:
        follower = _follower(graph, root, unpool, attrs)
        if follower is None:
            return None
        then.append(follower)
    return Match("maxpool", attrs, list(root.inputs), [root.name, *(u.name for u in unpools)], then=then,
                 replaced=[(Value(root.name, 0), 0)] + [(Value(u.name), 2 + k) for k, u in enumerate(unpools)])


def _follower(graph: Graph, pool: Node, unpool: Node, pool_attrs: dict[str, Any]) -> Follower | None:
    """The native max_unpool standing for ONNX MaxUnpool ``unpool`` of ``pool``'s indices, or None
    where it does not undo that pooling (other kernel, stride or padding)."""
    if kind(unpool) != "onnx:MaxUnpool":
        return None
    a = _onnx_attrs(unpool)
    operands = unpool.attrs["operands"] or []
    n = len(pool_attrs["kernel_size"])
    pads = list(a.get("pads", [0] * 2 * n))
    if operands[:2] != [0, 1] or unpool.inputs[1] != Value(pool.name, 1) \
            or list(a.get("kernel_shape", [])) != pool_attrs["kernel_size"] \
            or list(a.get("strides", [1] * n)) != pool_attrs["stride"] or pads != pool_attrs["padding"] * 2 \
            or any(d != 1 for d in pool_attrs["dilation"]):
        return None
    size = None
    if len(operands) > 2 and operands[2] is not None:
        shape = constant_operand(graph, unpool, operands[2])
        if shape is None:
            return None  # an output shape computed at run time
        size = [int(d) for d in shape[2:]]
    # Whole-tensor indices are plane origin + per-plane index only where the unpooled planes are
    # the pooled input's planes.
    pooled, planes = graph.type_of(unpool.inputs[0]).shape[2:], list(graph.type_of(pool.inputs[0]).shape[2:])
    if size is None and all(isinstance(d, int) for d in pooled):
        size = [(d - 1) * s - 2 * p + k for d, s, p, k in
                zip(pooled, pool_attrs["stride"], pool_attrs["padding"], pool_attrs["kernel_size"])]
    if size != planes:
        return None
    attrs = {"kernel_size": pool_attrs["kernel_size"], "stride": pool_attrs["stride"],
             "padding": pool_attrs["padding"], "output_size": size}
    return Follower("max_unpool", attrs, [unpool.inputs[0], 1], unpool.name)


def constant_operand(graph: Graph, node: Node, operand: Any) -> np.ndarray | None:
    """The constant an onnx_node holds for ``operand`` (a parameter name), None for a computed input."""
    return graph.weights.get(node.name, {}).get(operand) if isinstance(operand, str) else None
