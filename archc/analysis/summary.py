"""Per-node summary rows (name, op, output shapes, parameter count) and totals."""
from __future__ import annotations

from typing import Any

from archc.ir import Graph
from archc.ir.weights import count_params


def summarize(graph: Graph) -> dict[str, Any]:
    """A JSON-ready summary of a graph: one row per node plus totals."""
    rows = []
    total = 0
    for node in graph.nodes():
        n = count_params(graph, node)
        total += n
        rows.append({
            "name": node.name,
            "op": node.op,
            "shapes": [list(t.shape) for t in node.outputs],
            "dtypes": [t.dtype for t in node.outputs],
            "params": n,
        })
    return {
        "model": graph.name,
        "inputs": {n: {"shape": list(graph.node(n).type.shape), "dtype": graph.node(n).type.dtype}
                   for n in graph.inputs},
        "outputs": {k: {"node": str(v), "shape": list(graph.type_of(v).shape)} for k, v in graph.outputs.items()},
        "nodes": rows,
        "total_nodes": len(rows),
        "total_params": total,
    }
