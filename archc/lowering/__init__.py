"""Backends: the graph IR lowered to PyTorch source (:mod:`.torch`) and to ONNX (:mod:`.onnx`),
plus inference-time rewrites (:mod:`.optimize`).

This package's ``__init__`` holds only what both lowerings share and must stay free
of torch, since :mod:`archc.lowering.onnx` is imported without it.
"""
from __future__ import annotations

from typing import Any, Iterator, NamedTuple

import numpy as np

from archc.errors import Diagnostic, Location, SpecError
from archc.ir.graph import Graph
from archc.ir.weights import init_arrays, param_specs
from archc.ops.base import ParamSpec, param_key

__all__ = ["graph_weights", "ParamEntry", "param_entries"]


class ParamEntry(NamedTuple):
    """One state_dict entry: its key, node and parameter name (which may contain dots)."""

    key: str
    node: str
    param: str
    spec: ParamSpec


def param_entries(graph: Graph) -> Iterator[ParamEntry]:
    """Every parameter and buffer in state_dict order (keys cannot be split at the last dot:
    ``attn.out_proj.weight`` is parameter ``out_proj.weight`` of node ``attn``)."""
    for node in graph.nodes():
        for pname, spec in param_specs(graph, node).items():
            yield ParamEntry(param_key(node.name, pname), node.name, pname, spec)


def graph_weights(graph: Graph, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The weights both backends use: ``graph.weights`` if filled, else archc's seeded init.

    The graph is not modified, so lowering one graph with two seeds gives two models.
    A partly filled ``graph.weights`` is an error listing the missing or mis-shaped keys.
    """
    if not graph.weights:
        entries = list(param_entries(graph))
        weights: dict[str, dict[str, Any]] = {}
        for e, array in zip(entries, init_arrays([(e.key, e.spec) for e in entries], seed)):
            weights.setdefault(e.node, {})[e.param] = array
        return weights
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
