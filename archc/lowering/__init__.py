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

__all__ = ["check_parameter_dtypes", "graph_weights"]

#: floating dtypes other than the float32 that archc's native ops keep their parameters in
_OTHER_FLOATS = ("float16", "bfloat16", "float64")
#: nodes named one by one in :func:`check_parameter_dtypes`' error (the others are counted)
_NAMED = 3


def check_parameter_dtypes(graph: Graph) -> None:
    """SpecError naming each node whose floating input is not float32 while its parameters are (a model
    exported after ``.half()``): archc's native ops hold float32 parameters, and neither ONNX nor PyTorch
    multiplies a float16 input by them. (A node kept as an ONNX node holds its constants in their own
    dtype.) Cheap where every tensor is float32: only the nodes' output types are read."""
    if not any(t.dtype in _OTHER_FLOATS for node in graph.nodes() for t in node.outputs):
        return
    from archc.ops.weights import param_specs

    offenders = []  # (node, its input's dtype, the dtypes of its float parameters that differ)
    for node in graph.nodes():
        found = next((t.dtype for t in graph.input_types(node) if t.dtype in _OTHER_FLOATS), None)
        if found is not None:
            held = sorted({p.dtype for p in param_specs(graph, node).values() if p.dtype.startswith("float")} - {found})
            if held:
                offenders.append((node, found, held))
    if not offenders:
        return
    problems = [Diagnostic(f"its input is {found}, but archc's '{node.op}' holds {', '.join(held)} parameters: "
                           "archc's native ops compute in float32 (give float32 inputs; an ONNX model: export "
                           "it before .half(); --dtype float16 stores a build's weights as half)",
                           location=node.location, node=node.name)
                for node, found, held in offenders[:_NAMED]]
    more = [node.name for node, _, _ in offenders[_NAMED:]]
    if more:
        problems.append(Diagnostic(f"{len(more)} more nodes hold float32 parameters beside inputs of another float "
                                   f"dtype ({', '.join(more[:3])}{', ...' * (len(more) > 3)})",
                                   location=offenders[_NAMED][0].location))
    raise SpecError(problems)


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
