"""Weights an ONNX model shares: one initializer read as the parameter of several nodes.

A layer applied twice, ALBERT's one layer applied N times, a siamese encoder: the file holds one
tensor, read by several nodes of one module. The import stores one array for
it (:meth:`~archc.frontends.onnx.conversion.Conversion._store`), and :func:`tie_shared_weights`
makes each later use in the same module a tie (``node.meta["tie"]``, as a spec's ``tie:``): the
parameter is counted once, the PyTorch module holds one tensor under both keys, the rebuilt ONNX one
initializer. Modules of their own reading one tensor keep a parameter each: the exporters merge
initializers of equal values (an untrained model's cloned layers), which shares nothing; so do two
bare tensors of one fill read by the model's own ops in one call (layer scales of 0.1). Where a torch
dynamo export's graph signature lists each module's parameters, a tensor read twice in one call is one
parameter unless the module has more parameters than tensors its own nodes read (ReZero's alpha read by
both residual branches; CaiT's two layer scales merged into one). A file without that record (the
TorchScript exporter's) says nothing of merges: a bare tensor of one fill read twice is taken as two
merged parameters, a single value (no fill: one value repeats nothing) as one read twice.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection
from itertools import chain
from typing import Any

import numpy as np

from archc.ir.graph import MODULES_META, Graph, Node
from archc.ops.weights import REUSE_META, TIE_META, param_specs, whole_layer_tie

__all__ = ["PARAMETER_MODULES_META", "parameter_modules", "tie_shared_weights"]

#: ``Node.meta`` key: parameter name -> the modules (as ``MODULES_META``) of the ONNX node that read
#: it, where not the node's own: a bias an ``Add`` outside the layer's module added, folded into the
#: layer (one bias vector added after two bias-free layers is one parameter of the module around them)
PARAMETER_MODULES_META = "parameter_modules"


def tie_shared_weights(graph: Graph, made: Collection[int] = (), parameters: Collection[str] | None = None) -> int:
    """Tie every parameter that is the very array of an earlier node's parameter (of the same shape and
    dtype, neither a buffer) to that first one; how many were tied. ``made``: the ids of arrays the
    import made, not read from the file (a kind's literal, as a batchnorm's ``num_batches_tracked``:
    one array for every node of the kind, shared by no tensor of the file). ``parameters``: the
    module's parameters a torch dynamo export's graph signature lists (``fc.weight``), None where the
    file has no signature."""
    weights = graph.weights
    ids = np.fromiter(map(id, chain.from_iterable(map(dict.values, weights.values()))), np.uint64)
    unique, counts = np.unique(ids, return_counts=True)  # (in C: a pass per node would cost lint 0.1 s at 100k)
    shared = set(unique[counts > 1].tolist()) - set(made)
    if not shared:
        return 0
    owners: dict[tuple[int, str | None], tuple[str, str]] = {}
    merges = _Merges(graph, parameters) if parameters is not None else None
    tied = 0
    for node in graph.nodes():
        for pname, array in weights.get(node.name, {}).items():
            if id(array) not in shared:
                continue
            # (per module: both exporters merge equal initializers, an untrained model's cloned layers or
            # its layer-norm gains of ones; modules of their own reading one merged tensor keep their own)
            owner = owners.setdefault((id(array), _module(node, pname)), (node.name, pname))
            if owner[0] != node.name and _same_parameter(graph, owner, (node.name, pname)) \
                    and not _merged_fills(graph.node(owner[0]), node, array, merges):
                node.meta.setdefault(TIE_META, {})[pname] = owner
                tied += 1
    for node in graph.nodes() if tied else ():  # (one layer the file applies twice: one module, called again)
        owner = whole_layer_tie(graph, node) if TIE_META in node.meta else None
        if owner is not None:
            node.meta[REUSE_META] = owner
    return tied


#: the ops that hold a bare tensor of the model's forward (an ONNX op's operand, a ``parameter``), not a layer's
_BARE = frozenset({"onnx_node", "parameter"})


def _merged_fills(first: Node, later: Node, array: np.ndarray, merges: _Merges | None) -> bool:
    """Whether two bare tensors of the model's own forward (read by ONNX ops, not a layer's parameters),
    in what the file records as one call of one module, are more likely two parameters of one fill the
    exporter merged (CaiT's and ResMLP's layer scales gamma_1 = gamma_2 = 0.1) than one read twice
    (ReZero's alpha): their one tensor holds a single value repeated, and, where the file has a graph
    signature (``merges``), the module has more parameters than its nodes read tensors."""
    if first.op not in _BARE or later.op not in _BARE or first.meta.get(MODULES_META) != later.meta.get(MODULES_META):
        return False
    if merges is not None and not merges.possible_in(_path(later)):
        return False
    flat = np.asarray(array).reshape(-1)
    if merges is None and flat.size == 1:
        return False  # (one value is no fill: without a signature, the file's one tensor is one parameter)
    return flat.size > 0 and bool((flat == flat[0]).all())


class _Merges:
    """Where a torch dynamo export can have merged parameters of equal values into one tensor: in a
    module whose own nodes read fewer distinct learned tensors than the signature lists parameters of
    it (a parameter ``blocks.0.gamma_2`` belongs to ``blocks.0``). Counted on first use."""

    def __init__(self, graph: Graph, parameters: Collection[str]) -> None:
        self._graph = graph
        self._owned = Counter(name.rpartition(".")[0] for name in parameters)
        self._read: dict[str, set[int]] | None = None

    def possible_in(self, module: str) -> bool:
        """Whether some parameter of ``module`` (a path, ``""`` the root) may be merged into another."""
        if self._read is None:
            self._read = {}
            weights = self._graph.weights
            for node in self._graph.nodes():
                learned = [id(array) for pname, array in weights.get(node.name, {}).items()
                           if _learned(self._graph, node, pname)]
                if learned:
                    self._read.setdefault(_path(node), set()).update(learned)
        return len(self._read.get(module, ())) < self._owned.get(module, 0)


def _learned(graph: Graph, node: Node, pname: str) -> bool:
    spec = param_specs(graph, node).get(pname)
    return spec is not None and not spec.buffer


def _path(node: Node) -> str:
    """The path of the module the node ran in (``blocks.0``), ``""`` for the root module."""
    modules = node.meta.get(MODULES_META)
    return modules[-1][0] if modules else ""


def parameter_modules(node: Node, pname: str) -> Any:
    """The modules (as ``MODULES_META``) that read the node's parameter ``pname``: its
    ``PARAMETER_MODULES_META`` entry, else the node's own; None where none is on record."""
    return node.meta.get(PARAMETER_MODULES_META, {}).get(pname, node.meta.get(MODULES_META))


def _module(node: Node, pname: str) -> str | None:
    """The module that read the node's parameter ``pname`` (:func:`parameter_modules`), its later
    calls counted as it (TorchScript's ``/layer/qkv_1`` is ``layer.qkv``); None where no module is on
    record (a file of another tool: the file is trusted)."""
    modules = parameter_modules(node, pname)
    return _CALL_SUFFIX.sub("", modules[-1][0]) if modules else None


#: the suffix TorchScript's exporter gives a module's later calls (``qkv_1``, ``qkv_2``)
_CALL_SUFFIX = re.compile(r"_\d+$")


def _same_parameter(graph: Graph, owner: tuple[str, str], user: tuple[str, str]) -> bool:
    """Whether both are learned parameters (not buffers) of one shape and dtype."""
    specs = [param_specs(graph, graph.node(name)).get(pname) for name, pname in (owner, user)]
    if any(spec is None or spec.buffer for spec in specs):
        return False
    return tuple(specs[0].shape) == tuple(specs[1].shape) and specs[0].dtype == specs[1].dtype
