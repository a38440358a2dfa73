"""Group normalisation as exporters write it -> the native ``groupnorm``.

ONNX had no GroupNormalization before opset 18 (and deprecated it in 21), so both torch
exporters, and archc's own ONNX lowering, write ``nn.GroupNorm(G, C)`` as a reshape of
``(N, C, ...)`` to ``(N, G, -1)``, an InstanceNormalization of the groups with a scale of
ones and a shift of zeros (which the importer has made an ``instancenorm``), a reshape back, and
the per-channel affine as a multiplication and an addition by ``(C, 1, ...)`` constants.
:func:`groupnorm` fuses that back: one ``groupnorm`` node whose ``weight`` and ``bias`` are the
affine's (so they count as the module's 2C parameters, not the exporter's per-group ones and zeros
as well), which PyTorch writes as ``nn.GroupNorm`` and lint reads as one norm.
"""
from __future__ import annotations

import math

import numpy as np

from archc.frontends.onnx.patterns import Match, constant, constant_operand, kind, matcher, module_name
from archc.ir.graph import Graph, Node, Value


@matcher("onnx:Add", "onnx:Mul", "scale", "reshape")  # the shift, a scale without one, or no affine at all
def groupnorm(graph: Graph, root: Node) -> Match | None:
    """``reshape(instance_norm(reshape(x, (N, G, -1))), shape(x)) * w + b`` (``w``, ``b``: C values; the
    exporters write ``affine=False`` as a product by constant ones and a sum of constant zeros, or not)."""
    nodes, affine, node = [], {}, root
    if kind(node) == "onnx:Add":
        affine["bias"] = _operand(graph, node)
        nodes.append(node.name)
        node = graph.node(node.inputs[0].node)
        if kind(node) not in ("onnx:Mul", "scale"):
            return None
    elif _shifted(graph, node):
        return None  # the shift after the scale is part of it: match from there
    if kind(node) in ("onnx:Mul", "scale"):
        affine["weight"] = _operand(graph, node)
        nodes.append(node.name)
        node = graph.node(node.inputs[0].node)
    if kind(node) != "reshape" or (not affine and _shifted(graph, node)):
        return None
    grouped = _grouped(graph, node)
    if grouped is None or len(affine) == 1:  # (a scale without a shift is no nn.GroupNorm affine)
        return None
    x, groups, eps, inner = grouped
    weights = _affine_weights(affine, graph.type_of(x).shape[1], graph.type_of(x).rank)
    if weights is None:
        return None
    fused = [*nodes, node.name, *inner]
    return Match("groupnorm", {"num_groups": groups, "eps": eps, "affine": bool(weights)}, [x], fused, weights,
                 name=module_name(graph, set(fused), root, root.name))  # (the module's path: '1', not '1.Add')


def _operand(graph: Graph, node: Node) -> tuple[np.ndarray, bool] | None:
    """The constant a scale or an imported Mul/Add applies, and whether it is learned (an initializer of the
    model, not a Constant node); None where the node applies no one constant."""
    if kind(node) == "scale":
        return np.asarray(node.attrs["factor"], np.float32), False
    name = constant_operand(node)
    value = graph.weights.get(node.name, {}).get(name) if name is not None else None
    if value is None:
        return None
    return value, bool(node.attrs["params"][name].get("learned", True))


def _affine_weights(affine: dict[str, tuple[np.ndarray, bool] | None], channels: int,
                    rank: int) -> dict[str, np.ndarray] | None:
    """The fused node's weight and bias (C values each): {} for no affine or one of constant ones and zeros
    (what the exporters write for ``affine=False``); None where the operands are no per-channel affine."""
    if not affine:
        return {}
    if any(op is None for op in affine.values()):
        return None
    (weight, learned_w), (bias, learned_b) = affine["weight"], affine["bias"]
    if not (learned_w or learned_b) and np.all(weight == 1) and not np.any(bias):
        return {}
    if any(w.size != channels or not _along_channels(w.shape, rank) for w in (weight, bias)):
        return None
    return {"weight": np.ascontiguousarray(weight.reshape(channels)),
            "bias": np.ascontiguousarray(bias.reshape(channels))}


def _grouped(graph: Graph, back: Node) -> tuple[Value, int, float, list[str]] | None:
    """For the reshape ``back`` to the shape of some ``x``: ``x``, the number of groups, epsilon and the
    inner nodes' names, where ``back`` reads an instance norm of ones and zeros over ``x`` reshaped to
    ``(N, G, -1)`` (the importer's ``instancenorm``: without affine where the ones and zeros are literals,
    else with a learned weight and bias that must be ones and zeros); else None."""
    norm = graph.node(back.inputs[0].node)
    if kind(norm) != "instancenorm" or norm.attrs["track_running_stats"]:
        return None
    split = graph.node(norm.inputs[0].node)
    if kind(split) != "reshape":
        return None
    x = split.inputs[0]
    shape, grouped = graph.type_of(x).shape, graph.type_of(Value(split.name)).shape
    if len(shape) < 3 or graph.type_of(Value(back.name)).shape != shape or len(grouped) != 3 \
            or grouped[0] != shape[0] or not isinstance(grouped[1], int) or not isinstance(shape[1], int) \
            or shape[1] % grouped[1]:
        return None
    if norm.attrs["affine"]:
        held = graph.weights.get(norm.name, {})
        if not np.all(np.asarray(held["weight"]) == 1) or np.any(np.asarray(held["bias"])):
            return None
    return x, grouped[1], float(norm.attrs["eps"]), [norm.name, split.name]


def _along_channels(shape: tuple[int, ...], rank: int) -> bool:
    """Whether ``shape`` lays its values along dim 1 of a rank-``rank`` tensor ((C, 1, 1) or (1, C, 1, 1),
    or (C,) for rank 2)."""
    dims = list(shape)
    while dims and dims[0] == 1 and len(dims) > rank - 1:
        dims.pop(0)
    return len(dims) == rank - 1 and math.prod(dims[1:]) == 1


def _shifted(graph: Graph, node: Node) -> bool:
    """Whether ``node``'s only use is a scale or an imported Mul/Add by a constant: the affine goes on from
    there, so the match starts further down the chain."""
    users = graph.users(node.name)
    if len(users) != 1 or graph.uses(node.name) != 1:
        return False
    user = graph.node(users[0])
    return kind(user) == "scale" or (kind(user) in ("onnx:Add", "onnx:Mul") and constant(graph, user) is not None)
