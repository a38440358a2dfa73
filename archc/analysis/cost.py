"""What a model costs at a given batch: parameters, multiply-accumulates and memory, per node and per block.

Each op counts its own multiply-accumulates (:meth:`archc.ops.base.OpDef.macs`, one op, one
place); this module gives the symbolic dims sizes, sums, and adds up block levels
(:mod:`archc.analysis.hierarchy`) for ``archc summary --depth N``. Memory is in bytes:
parameter memory holds every parameter and buffer; activation memory is the outputs of every
node for one forward pass at the batch (what training keeps for the backward pass). Pure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archc.analysis.hierarchy import graph_levels
from archc.ir import Graph, TensorType, dims
from archc.ir.graph import Node
from archc.ops import registry
from archc.ops.weights import param_specs, tied_params


@dataclass
class Cost:
    """The cost of one node, or of a block level (a sum over its nodes)."""

    name: str
    op: str                       # the op, or the block type for a level ("repeat" for a repeat group)
    shapes: list[tuple[int, ...]]  # output shapes at the batch (a level: its last node's)
    params: int
    trainable: int
    macs: int
    param_bytes: int
    activation_bytes: int
    nodes: int = 1


def resolve(t: TensorType, batch: int, sizes: dict[str, int] | None = None) -> TensorType:
    """``t`` with its symbolic dims given sizes: each symbol from ``sizes`` by name, else ``batch``
    in the first dim, else 1 (an unnamed sequence length, say, counts once). A dim an op computed
    (``N*64``: 64 windows of each sample; ``(H + 1)//2`` after a strided conv) is its expression
    at those sizes (:mod:`archc.ir.dims`), at least 0 (a window larger than the size counts nothing)."""
    sizes = sizes or {}
    if all(type(d) is int for d in t.shape):
        return t

    def size(d: str, first: bool) -> int:
        if d in sizes:
            return sizes[d]
        return max(0, dims.evaluate(d, lambda symbol: sizes.get(symbol, batch if first else 1)))

    shape = tuple(d if isinstance(d, int) else size(d, i == 0) for i, d in enumerate(t.shape))
    return t.with_shape(shape)


def node_cost(graph: Graph, node: Node, batch: int = 1, sizes: dict[str, int] | None = None) -> Cost:
    ins = [resolve(t, batch, sizes) for t in graph.input_types(node)]
    outs = [resolve(t, batch, sizes) for t in node.outputs]
    tied = tied_params(node)  # one tensor, counted (and stored) once, at its owner
    specs = [p for name, p in param_specs(graph, node).items() if name not in tied]
    params = sum(p.numel for p in specs if not p.buffer)
    activation = 0 if node.op == "input" else sum(_bytes(t) for t in outs)
    return Cost(node.name, node.op, [tuple(t.shape) for t in outs], params, params,  # no frozen parameters
                registry.lookup(node.op).macs(node, ins, outs),
                sum(p.numel * np.dtype(p.dtype).itemsize for p in specs), activation)


def _bytes(t: TensorType) -> int:
    return (t.numel() or 0) * np.dtype(t.dtype).itemsize


def costs(graph: Graph, batch: int = 1, sizes: dict[str, int] | None = None) -> list[Cost]:
    """One :class:`Cost` per node, in topological order."""
    return [node_cost(graph, node, batch, sizes) for node in graph.nodes()]


def by_depth(graph: Graph, per_node: list[Cost], depth: int) -> list[Cost]:
    """Rows at block depth ``depth`` (>= 1): a node inside ``depth`` or more block levels is added
    up into its level number ``depth`` (at depth 1, ResNet-50's layer1..layer4); other nodes keep
    their own row. Rows in order of first appearance."""
    rows: list[Cost] = []
    groups: dict[str, Cost] = {}
    all_levels = graph_levels(graph)
    for node, cost in zip(graph.nodes(), per_node):
        node_levels = all_levels[node.name]
        if len(node_levels) < depth:
            rows.append(cost)
            continue
        level = node_levels[depth - 1]
        group = groups.get(level.path)
        if group is None:
            group = groups[level.path] = Cost(level.path, level.block or "repeat", [], 0, 0, 0, 0, 0, 0)
            rows.append(group)
        _add(group, cost)
    return rows


def _add(group: Cost, cost: Cost) -> None:
    group.shapes = cost.shapes
    group.params += cost.params
    group.trainable += cost.trainable
    group.macs += cost.macs
    group.param_bytes += cost.param_bytes
    group.activation_bytes += cost.activation_bytes
    group.nodes += 1


def totals(per_node: list[Cost]) -> dict[str, int]:
    return {"params": sum(c.params for c in per_node), "trainable": sum(c.trainable for c in per_node),
            "macs": sum(c.macs for c in per_node), "param_bytes": sum(c.param_bytes for c in per_node),
            "activation_bytes": sum(c.activation_bytes for c in per_node)}
