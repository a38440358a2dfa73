"""Inference-time rewrites of the IR, applied before lowering for deployment.

:func:`optimize_for_inference` returns a graph computing the same function in eval
mode with fewer nodes (a new graph, or for a caller that owns it the same one rewritten
in place): identity-like nodes (role ``identity``: identity, dropout) are dropped,
weight-normed layers become plain ones (via :meth:`OpDef.fold_parametrization`),
per-channel affine nodes (BatchNorm in eval mode, via :meth:`OpDef.affine_params`) are
folded into the layer producing their input (via :meth:`OpDef.absorb_affine`) when that
is sound, and nodes no output depends on are removed (:meth:`Graph.eliminate_dead_code`). The passes ask ops through their OpDef hooks and roles, never by op name.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from archc.ir.graph import Graph, Node, verify_in_debug
from archc.ops import registry
from archc.ops.weights import DeferredArray, initialize, tied_params

__all__ = ["optimize_for_inference", "drop_identities", "fold_parametrizations", "fold_affine"]


def _op(node: Node):
    return registry.lookup(node.op)


def drop_identities(graph: Graph) -> int:
    """Bypass and remove nodes whose role is 'identity'; returns how many (in place)."""
    count = 0
    for node in list(graph.nodes()):
        if _op(node).role_of(node) == "identity" and len(node.inputs) == 1 and len(node.outputs) == 1:
            graph.erase(node.name, replace_with=node.inputs[0])
            count += 1
    return count


def _tied_nodes(graph: Graph) -> set[str]:
    """Nodes holding a tied weight, by tying or by being tied to: one tensor under two names, so
    rewriting the weights of either would change the other."""
    return {n.name for n in graph.nodes() if tied_params(n)} | \
        {owner for n in graph.nodes() for owner, _ in tied_params(n).values()}


def fold_parametrizations(graph: Graph) -> int:
    """Replace parametrized weights (weight normalisation) by the plain weights they compute, where
    the node shares no weight (:meth:`OpDef.fold_parametrization`); returns how many (in place).
    A node with a tied weight keeps its parametrization, which both lowerings compute."""
    count = 0
    shared = _tied_nodes(graph)
    for node in graph.nodes():
        if node.name in shared or node.name not in graph.weights:
            continue
        folded = _op(node).fold_parametrization(node, graph.weights[node.name])
        if folded is not None:
            attrs, weights = folded
            node.attrs.update(attrs)
            graph.weights[node.name] = weights
            count += 1
    return count


def fold_affine(graph: Graph, inplace: bool = False) -> int:
    """Fold per-channel affine nodes into their producers where sound; returns how many (in place).

    Sound means the producer's only use is this affine node (no other consumer, not a
    graph output), so changing the producer's weights changes nothing else. Folded layers
    get new arrays unless ``inplace``, which lets the ops overwrite the arrays of
    ``graph.weights`` (only for a caller that owns them and shares them with nothing else).
    """
    count = 0
    # A tied weight is one tensor under two names: folding into either would change the other.
    shared = _tied_nodes(graph)
    for node in list(graph.nodes()):
        if len(node.inputs) != 1 or node.name not in graph.weights:
            continue
        # Deferred arrays are drawn only for the nodes that fold: an op that does not read its
        # weights here (most) leaves them undrawn.
        affine = _op(node).affine_params(node, _Drawn(graph.weights[node.name]))
        if affine is None:
            continue
        source = node.inputs[0]
        producer = graph.node(source.node)
        if len(producer.outputs) != 1 or graph.uses(producer.name) != 1 or producer.name in shared:
            continue
        # The producer's weights stay deferred: a layer that scales them (conv, linear) draws
        # them when they are written, so folding draws nothing big.
        absorbed = _op(producer).absorb_affine(producer, dict(graph.weights.get(producer.name, {})), *affine,
                                               inplace=inplace)
        if absorbed is None:
            continue
        attrs, weights = absorbed
        producer.attrs.update(attrs)
        graph.weights[producer.name] = weights
        graph.erase(node.name, replace_with=source)
        count += 1
    return count


class _Drawn(Mapping):
    """A node's parameters as arrays, each deferred one drawn when read."""

    def __init__(self, params: Mapping) -> None:
        self.params = params

    def __getitem__(self, key: str):
        value = self.params[key]
        return np.asarray(value) if isinstance(value, DeferredArray) else value

    def __iter__(self):
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)


def optimize_for_inference(graph: Graph, inplace: bool = False) -> Graph:
    """``graph`` rewritten for inference (eval mode): a copy, ``graph`` left unchanged, or with
    ``inplace`` the graph itself.

    The weights are ``graph.weights`` (archc's init for seed 0 if it has none). A copy's
    folded layers get new arrays, so the original's arrays are never modified; ``inplace``
    folds into the arrays themselves, saving a copy of most of the weights: for a caller
    that owns the graph and its arrays, such as ``archc build``.
    """
    # A copy has new Node records and attrs dicts: folding never reaches the original.
    g = graph if inplace else graph.copy()
    if not g.weights:
        initialize(g, 0)
    drop_identities(g)
    fold_parametrizations(g)  # first: a weight-normed conv then absorbs its batchnorm as a plain one
    fold_affine(g, inplace)
    g.eliminate_dead_code()
    verify_in_debug(g)
    return g
