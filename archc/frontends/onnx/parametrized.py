"""A layer's weight that a file computes from learned tensors: weight normalisation.

``torch.nn.utils.parametrizations.weight_norm`` learns a layer's weight as ``g * v / ||v||`` per
unit (dim 0). The TorchScript exporter keeps ``g`` and ``v`` as initializers and writes the
computation out (``ReduceL2``, ``Div``, ``Mul``), which the import folds into one constant. A
converter asks :func:`weight_normed` for the weight it reads: where that constant is exactly the
weight norm of two learned tensors, the layer is built with ``weight_norm: true`` and those two as
its parameters, under the keys PyTorch gives them, rather than one plain weight that would lose
the parametrization and count fewer parameters than the file holds.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from archc.frontends.onnx.values import Const
from archc.ops.weight_norm import DIRECTION, MAGNITUDE, normed_weight

if TYPE_CHECKING:
    from archc.frontends.onnx.importer import Importer

__all__ = ["weight_normed"]


def weight_normed(im: "Importer", name: str) -> dict[str, np.ndarray] | None:
    """The magnitude and direction (by their parameter keys) whose weight norm the constant ``name``
    is, where it was computed as ``v / norm(v) * g`` (or ``g * v / norm(v)``) from two learned
    tensors and equals it; None otherwise."""
    rec = im.record(name)
    if not isinstance(rec, Const) or rec.made_by is None or rec.made_by[0] != "Mul":
        return None
    for scaled, magnitude in _both_orders(rec.made_by[1]):
        direction = _normalised(im, scaled)
        g = _learned(im, magnitude)
        if direction is None or g is None:
            continue
        v = direction.array
        units = (v.shape[0],) + (1,) * (v.ndim - 1)
        if g.array.shape != units or g.array.dtype != v.dtype:
            continue
        if np.allclose(rec.array, normed_weight(g.array, v), rtol=1e-5, atol=1e-7):
            return {MAGNITUDE: g.array, DIRECTION: v}
    return None


def _both_orders(inputs: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(inputs[0], inputs[1]), (inputs[1], inputs[0])] if len(inputs) == 2 else []


def _normalised(im: "Importer", name: str) -> Const | None:
    """The learned tensor ``v`` where ``name`` was computed as ``v / f(v)`` (its norm, checked by value
    by the caller)."""
    rec = im.record(name)
    if not isinstance(rec, Const) or rec.made_by is None or rec.made_by[0] != "Div" or len(rec.made_by[1]) != 2:
        return None
    numerator, denominator = rec.made_by[1]
    norm = im.record(denominator)
    if not isinstance(norm, Const) or norm.made_by is None or numerator not in norm.made_by[1]:
        return None
    return _learned(im, numerator)


def _learned(im: "Importer", name: str) -> Const | None:
    """The learned tensor (an initializer, not one computed) ``name`` names, else None."""
    rec = im.record(name)
    return rec if isinstance(rec, Const) and rec.learned and rec.made_by is None else None
