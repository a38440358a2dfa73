"""Weights an ONNX model shares: one initializer read as the parameter of several nodes.

A layer applied twice, ALBERT's one layer applied N times, GPT-2's output projection tied to the
token embedding: the file holds one tensor, read by several nodes. The import stores one array for
it (:meth:`~archc.frontends.onnx.conversion.Conversion._store`), and :func:`tie_shared_weights`
makes each later use a tie (``node.meta["tie"]``, as a spec's ``tie:``): the parameter is counted
once, the PyTorch module holds one tensor under both keys, the rebuilt ONNX one initializer.
"""
from __future__ import annotations

from collections.abc import Collection
from itertools import chain

import numpy as np

from archc.ir.graph import Graph
from archc.ops.weights import TIE_META, param_specs

__all__ = ["tie_shared_weights"]


def tie_shared_weights(graph: Graph, made: Collection[int] = ()) -> int:
    """Tie every parameter that is the very array of an earlier node's parameter (of the same shape and
    dtype, neither a buffer) to that first one; how many were tied. ``made``: the ids of arrays the
    import made, not read from the file (a kind's literal, as a batchnorm's ``num_batches_tracked``:
    one array for every node of the kind, shared by no tensor of the file)."""
    weights = graph.weights
    ids = np.fromiter(map(id, chain.from_iterable(map(dict.values, weights.values()))), np.uint64)
    unique, counts = np.unique(ids, return_counts=True)  # (in C: a pass per node would cost lint 0.1 s at 100k)
    shared = set(unique[counts > 1].tolist()) - set(made)
    if not shared:
        return 0
    owners: dict[int, tuple[str, str]] = {}
    tied = 0
    for node in graph.nodes():
        for pname, array in weights.get(node.name, {}).items():
            if id(array) not in shared:
                continue
            owner = owners.setdefault(id(array), (node.name, pname))
            if owner[0] != node.name and _same_parameter(graph, owner, (node.name, pname)):
                node.meta.setdefault(TIE_META, {})[pname] = owner
                tied += 1
    return tied


def _same_parameter(graph: Graph, owner: tuple[str, str], user: tuple[str, str]) -> bool:
    """Whether both are learned parameters (not buffers) of one shape and dtype."""
    specs = [param_specs(graph, graph.node(name)).get(pname) for name, pname in (owner, user)]
    if any(spec is None or spec.buffer for spec in specs):
        return False
    return tuple(specs[0].shape) == tuple(specs[1].shape) and specs[0].dtype == specs[1].dtype
