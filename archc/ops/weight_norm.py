"""Weight normalisation of a layer's weight (``weight_norm: true`` on linear, conv, conv_transpose).

What ``torch.nn.utils.parametrizations.weight_norm(layer, name="weight", dim=0)`` makes of a
layer: its weight is no parameter but computed, ``w = g * v / ||v||`` per unit along dim 0 (the
norm over every other dim), from two parameters named as that parametrization's state_dict keys:
the magnitude ``g`` of shape (units, 1, ...) and the direction ``v`` of the weight's shape.
PyTorch initialises ``v`` as the plain layer's weight and ``g = ||v||``, so a fresh layer
computes what the plain one would; archc's seeded init does the same (``v`` is drawn as the
plain layer's ``weight``). The layer ops call these helpers; their other parameters (the bias)
stay as they are.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from archc.ops.base import Attr, OnnxEmitter, ParamSpec, torch_init_source

if TYPE_CHECKING:
    import numpy as np

    from archc.ir.graph import Node

#: the magnitude g and the direction v, as the parametrization's state_dict keys name them
MAGNITUDE = "parametrizations.weight.original0"
DIRECTION = "parametrizations.weight.original1"

WEIGHT_NORM = Attr("bool", False, doc="learn the weight as g * v / ||v|| per unit "
                                      "(nn.utils.parametrizations.weight_norm, dim 0)")


def layer_params(node: "Node", weight: ParamSpec, bias: ParamSpec | None) -> dict[str, ParamSpec]:
    """A layer's parameters in its module's state_dict order: ``weight`` (then ``bias``), or with
    ``weight_norm`` the bias (the layer's own parameter) then g and v (its parametrization's)."""
    with_bias = {"bias": bias} if bias is not None else {}
    if not node.attrs.get("weight_norm"):
        return {"weight": weight, **with_bias}
    units = (weight.shape[0],) + (1,) * (len(weight.shape) - 1)
    return {**with_bias,
            MAGNITUDE: ParamSpec(units, "unit_norms", dtype=weight.dtype, source=weight, drawn_as="weight"),
            DIRECTION: dataclasses.replace(weight, drawn_as="weight")}


class WeightNormable:
    """What a layer op with the ``weight_norm`` attribute shares (a mixin before ``OpDef``): its
    fresh draw after ``to_empty()`` and its eval-time fold into a plain weight."""

    def torch_reset(self, node: "Node", ins: list, module: str) -> list[str]:
        if node.attrs.get("weight_norm"):
            return torch_reset(self.params(node, ins), module)  # type: ignore[attr-defined]
        return super().torch_reset(node, ins, module)  # type: ignore[misc]

    def torch_reset_is_default(self, node: "Node") -> bool:
        return not node.attrs.get("weight_norm") and type(self).torch_reset is WeightNormable.torch_reset

    def fold_parametrization(self, node: "Node", weights: dict[str, Any]
                             ) -> tuple[dict[str, Any], dict[str, "np.ndarray"]] | None:
        return plain_form(node, weights)


def torch_module(node: "Node", constructor: str) -> str:
    """The layer's constructor source, wrapped in the parametrization where the node asks for it."""
    if not node.attrs.get("weight_norm"):
        return constructor
    return f"nn.utils.parametrizations.weight_norm({constructor})"


def torch_reset(params: dict[str, ParamSpec], module: str) -> list[str]:
    """Statements drawing a weight-normed layer's parameters afresh as construction does: v and the
    bias from their inits, then g = ||v||. (The layer's own ``reset_parameters()`` would write its
    init into the computed weight, a temporary, and leave g and v as they were.)

    Where those inits are PyTorch's layer init, U(-b, b) with b = 1/sqrt(fan-in) of the weight
    (linear, conv, conv_transpose), the bound is read from v's shape at run time, as the plain
    layer's ``reset_parameters()`` reads it: the statements then name no size, so block instances
    with other kernel sizes or channel counts share one class as their plain layers do."""
    v = f"{module}.{DIRECTION}"
    drawn = {name: spec for name, spec in params.items() if name != MAGNITUDE}
    drawn = {DIRECTION: drawn.pop(DIRECTION), **drawn}  # v first: the weight, as construction draws it
    if all(_fan_in_uniform(spec, params[DIRECTION].shape) for spec in drawn.values()):
        lines = [f"bound = {v}.shape[1:].numel() ** -0.5"]
        lines += [f"nn.init.uniform_({module}.{name}, -bound, bound)" for name in drawn]
    else:
        lines = [torch_init_source(spec, f"{module}.{name}") for name, spec in drawn.items()]
    dims = tuple(range(1, len(params[DIRECTION].shape)))
    lines.append(f"{module}.{MAGNITUDE}.detach().copy_(torch.linalg.vector_norm({v}, dim={dims}, keepdim=True))")
    return lines


def _fan_in_uniform(spec: ParamSpec, weight_shape: tuple[int, ...]) -> bool:
    """Whether ``spec`` is U(-b, b) with b = 1/sqrt(fan-in) of a weight of ``weight_shape``
    (PyTorch's fan-in: every dim but the first)."""
    return spec.init == "uniform" and math.isclose(spec.bound, 1 / math.sqrt(math.prod(weight_shape[1:])))


def onnx_weight(emit: OnnxEmitter, node: "Node", rank: int) -> str:
    """The ONNX value of the layer's weight (of ``rank`` dims): its initializer, or with
    ``weight_norm`` v * (g / ||v||) computed in the graph, as torch's ``_weight_norm`` does."""
    if not node.attrs.get("weight_norm"):
        return emit.param("weight")
    import numpy as np

    v, g = emit.param(DIRECTION), emit.param(MAGNITUDE)
    axes = list(range(1, rank))
    if emit.opset >= 18:  # axes became an input
        norm = emit.add_node("ReduceL2", [v, emit.const(np.array(axes, dtype=np.int64), "axes")], keepdims=1)[0]
    else:
        norm = emit.add_node("ReduceL2", [v], axes=axes, keepdims=1)[0]
    return emit.add_node("Mul", [v, emit.add_node("Div", [g, norm])[0]])[0]


def unit_norms(units: "np.ndarray") -> "np.ndarray":
    """The L2 norm of each unit (along dim 0) of ``units``, over all its other dims: a weight-normed
    layer's magnitude g for the direction v, flat (one per unit)."""
    import numpy as np

    return np.sqrt(np.square(units.reshape(units.shape[0], -1)).sum(axis=1))


def normed_weight(g: Any, v: Any) -> "np.ndarray":
    """The weight a weight-normed layer computes, g * v / ||v|| per unit (in float64, stored in v's
    dtype)."""
    import numpy as np

    v = np.asarray(v)
    g64, v64 = np.asarray(g, dtype=np.float64), v.astype(np.float64)
    return (v64 * (g64 / unit_norms(v64).reshape(g64.shape))).astype(v.dtype)


def plain_form(node: "Node", weights: dict[str, Any]) -> tuple[dict[str, Any], dict[str, "np.ndarray"]] | None:
    """:meth:`OpDef.fold_parametrization` of a layer: with ``weight_norm``, the plain layer computing
    the same, its weight g * v / ||v|| (in float64, stored in v's dtype); None without."""
    if not node.attrs.get("weight_norm"):
        return None
    plain = {"weight": normed_weight(weights[MAGNITUDE], weights[DIRECTION])}
    if "bias" in weights:
        plain["bias"] = weights["bias"]
    return {"weight_norm": False}, plain
