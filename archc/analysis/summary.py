"""Per-node summary rows (name, op, output shapes, parameter count, skip label) and totals."""
from __future__ import annotations

from typing import Any

from archc.analysis.skips import analyze
from archc.ir import Graph
from archc.ir.vocab import Kind
from archc.ops.weights import count_params


def summarize(graph: Graph) -> dict[str, Any]:
    """A JSON-ready summary of a graph: one row per node plus totals.

    Rows of join nodes also hold ``skip``: their connection labels from
    :func:`archc.analysis.skips.analyze` (``residual``, ``dense x3``, ``branch``, ...).
    """
    rows = []
    total = 0
    labels = _skip_labels(graph)
    for node in graph.nodes():
        n = count_params(graph, node)
        total += n
        row = {
            "name": node.name,
            "op": node.op,
            "shapes": [list(t.shape) for t in node.outputs],
            "dtypes": [t.dtype for t in node.outputs],
            "params": n,
        }
        if node.name in labels:  # joins only: what the skip analysis labelled them
            row["skip"] = labels[node.name]
        rows.append(row)
    return {
        "model": graph.name,
        "inputs": {n: {"shape": list(graph.node(n).type.shape), "dtype": graph.node(n).type.dtype}
                   for n in graph.inputs},
        "outputs": {k: {"node": str(v), "shape": list(graph.type_of(v).shape)} for k, v in graph.outputs.items()},
        "nodes": rows,
        "total_nodes": len(rows),
        "total_params": total,
    }


def _skip_labels(graph: Graph) -> dict[str, str]:
    """Merge node -> its connection labels, skip kinds first (e.g. ``residual``, ``dense x3``)."""
    kinds: dict[str, dict[str, int]] = {}
    for c in analyze(graph, paths=False).connections:
        per = kinds.setdefault(c.merge, {})
        per[c.kind] = per.get(c.kind, 0) + 1
    return {m: ", ".join(k if per[k] == 1 else f"{k} x{per[k]}" for k in sorted(per, key=list(Kind).index))
            for m, per in kinds.items()}
