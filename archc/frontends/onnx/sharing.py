"""Weights an ONNX model shares: one initializer read as the parameter of several nodes.

A layer applied twice, ALBERT's one layer applied N times, a siamese encoder: the file holds one
tensor, read by several nodes of one module. The import stores one array for
it (:meth:`~archc.frontends.onnx.conversion.Conversion._store`), and :func:`tie_shared_weights`
makes each later use in the same module a tie (``node.meta["tie"]``, as a spec's ``tie:``): the
parameter is counted once, the PyTorch module holds one tensor under both keys, the rebuilt ONNX one
initializer. Modules of their own reading one tensor keep a parameter each: the exporters merge
initializers of equal values (an untrained model's cloned layers), which shares nothing; so do two
bare tensors of one fill read by the model's own ops in one call (layer scales of 0.1).
"""
from __future__ import annotations

import re
from collections.abc import Collection
from itertools import chain

import numpy as np

from archc.ir.graph import MODULES_META, Graph, Node
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
    owners: dict[tuple[int, str | None], tuple[str, str]] = {}
    tied = 0
    for node in graph.nodes():
        for pname, array in weights.get(node.name, {}).items():
            if id(array) not in shared:
                continue
            # (per module: both exporters merge equal initializers, an untrained model's cloned layers or
            # its layer-norm gains of ones; modules of their own reading one merged tensor keep their own)
            owner = owners.setdefault((id(array), _module(node)), (node.name, pname))
            if owner[0] != node.name and _same_parameter(graph, owner, (node.name, pname)) \
                    and not _merged_fills(graph.node(owner[0]), node, array):
                node.meta.setdefault(TIE_META, {})[pname] = owner
                tied += 1
    return tied


def _merged_fills(first: Node, later: Node, array: np.ndarray) -> bool:
    """Whether two bare tensors of the model's own forward (read by ONNX ops, not a layer's parameters),
    in what the file records as one call of one module, are more likely two parameters of one fill the
    exporter merged (CaiT's and ResMLP's layer scales gamma_1 = gamma_2 = 0.1) than one read twice:
    their one tensor holds a single value repeated."""
    if first.op != "onnx_node" or later.op != "onnx_node" or first.meta.get(MODULES_META) != later.meta.get(
            MODULES_META):
        return False
    flat = np.asarray(array).reshape(-1)
    return flat.size > 0 and bool((flat == flat[0]).all())


def _module(node: Node) -> str | None:
    """The module the node ran in, its later calls counted as it (TorchScript's ``/layer/qkv_1`` is
    ``layer.qkv``); None where no module is on record (a file of another tool: the file is trusted)."""
    modules = node.meta.get(MODULES_META)
    return _CALL_SUFFIX.sub("", modules[-1][0]) if modules else None


#: the suffix TorchScript's exporter gives a module's later calls (``qkv_1``, ``qkv_2``)
_CALL_SUFFIX = re.compile(r"_\d+$")


def _same_parameter(graph: Graph, owner: tuple[str, str], user: tuple[str, str]) -> bool:
    """Whether both are learned parameters (not buffers) of one shape and dtype."""
    specs = [param_specs(graph, graph.node(name)).get(pname) for name, pname in (owner, user)]
    if any(spec is None or spec.buffer for spec in specs):
        return False
    return tuple(specs[0].shape) == tuple(specs[1].shape) and specs[0].dtype == specs[1].dtype
