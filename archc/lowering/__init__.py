"""Backends: the graph IR lowered to PyTorch source (:mod:`.torch`) and to ONNX (:mod:`.onnx`),
plus inference-time rewrites (:mod:`.optimize`).

This package's ``__init__`` holds only what both lowerings share and must stay free
of torch, since :mod:`archc.lowering.onnx` is imported without it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from archc.errors import Diagnostic, Location, SpecError
from archc.ir.graph import Graph
from archc.ops.weights import initial_weights, param_entries

__all__ = ["graph_weights"]


def graph_weights(graph: Graph, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The weights both backends use: ``graph.weights`` if filled, else archc's seeded init.

    The graph is not modified, so lowering one graph with two seeds gives two models.
    A partly filled ``graph.weights`` is an error listing the missing or mis-shaped keys.
    """
    if not graph.weights:
        return initial_weights(graph, seed)
    problems = []
    for key, node, pname, spec in param_entries(graph):
        arr = graph.weights.get(node, {}).get(pname)
        if arr is None:
            problems.append(Diagnostic(f"weights lack '{key}' (shape {tuple(spec.shape)})", node=node))
        elif tuple(np.shape(arr)) != tuple(spec.shape):
            problems.append(Diagnostic(f"weight '{key}' has shape {tuple(np.shape(arr))}, expected "
                                       f"{tuple(spec.shape)}", node=node))
    if problems:
        for d in problems:
            d.location = d.location or Location(f"<weights of {graph.name}>")
        raise SpecError(problems)
    return graph.weights
