"""Padding (``F.pad``): each of the last dims widened by a number of elements before and after.

``pads`` is F.pad's list, last dim first: ``[left, right, top, bottom, ...]`` pads the last dim
by ``left``/``right`` and the one before it by ``top``/``bottom``. Modes are F.pad's: ``constant``
fills with ``value`` (Glow's ZeroConv2d pads with 1), ``reflect`` mirrors without repeating the
edge, ``replicate`` repeats the edge, ``circular`` wraps around.

Only mode ``constant`` takes negative pads, which crop (as F.pad does; a dim keeps at least one
element). The other modes take what F.pad takes: the last 1 to 3 dims of an input with one or two
dims more (batch, channels), non-negative pads, ``reflect`` less than the dim's size and
``circular`` at most its size (checked where the size is known; a symbolic size is taken as large
enough, as F.pad checks it at run time).

ONNX (opset 17): ``Pad`` with the pads in ONNX's order (every dim's start, then every dim's end),
``replicate`` as mode ``edge``. ONNX's ``wrap`` mode arrives in opset 19, so ``circular`` is two
slices concatenated around the input per padded dim (``x[-before:]``, ``x``, ``x[:after]``).
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir import dims
from archc.ir.types import Dim, TensorType
from archc.ops.base import INT64_MAX, Attr, OpDef, py
from archc.ops.registry import register

MODES = ("constant", "reflect", "replicate", "circular")
#: torch's module per mode (``nn.ReflectionPad2d``), for 1 to 3 padded dims
_MODULES = {"reflect": "ReflectionPad", "replicate": "ReplicationPad", "circular": "CircularPad"}
_ONNX_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


def _grown(size: Dim, total: int) -> Dim:
    """``size`` plus ``total`` elements (a symbolic size as an expression, ``S + 2``: :mod:`archc.ir.dims`)."""
    return dims.add(size, total)


@register
class Pad(OpDef):
    name = "pad"
    doc = ("Pad the last dims: F.pad(x, pads, mode, value); pads last dim first ([left, right, top, "
           "bottom]); ONNX Pad.")
    attrs = {
        "pads": Attr("ints", doc="F.pad's list, last dim first: [before, after] per dim ([left, right, top, "
                                 "bottom, ...]); negative crops (mode constant)"),
        "mode": Attr("str", "constant", choices=MODES,
                     doc="constant (fill with value), reflect, replicate (repeat the edge) or circular (wrap)"),
        "value": Attr("float", 0.0, doc="what mode constant fills with"),
    }
    role = "reshape"  # moves elements and adds fixed ones, computes nothing
    keeps_layout = True

    def _sides(self, node, x: TensorType) -> list[tuple[int, int, int]]:
        """(dim, before, after) per padded dim, last dim first, checked against the mode and ``x``."""
        pads = node.attrs["pads"]
        pads = [pads] if isinstance(pads, int) else list(pads)
        if len(pads) % 2:
            raise ShapeError(f"pads {pads} must come in pairs (before, after) per dim, last dim first; "
                             f"got {len(pads)} values")
        count = len(pads) // 2
        if count > x.rank:
            raise ShapeError(f"pads {pads} pad {count} dims, but the input {x} has {x.rank}")
        sides = [(x.rank - 1 - i, pads[2 * i], pads[2 * i + 1]) for i in range(count)]
        mode = node.attrs["mode"]
        if mode == "constant":
            self._check_crop(sides, x)
        else:
            self._check_mode(mode, node.attrs["value"], sides, x)
        return sides

    @staticmethod
    def _check_crop(sides: list[tuple[int, int, int]], x: TensorType) -> None:
        for dim, before, after in sides:
            size = x.shape[dim]
            if isinstance(size, int) and size + before + after < 1:
                raise ShapeError(f"pads {before}, {after} crop all {size} elements of dim {dim} of {x}; "
                                 "a padded dim keeps at least one")

    @staticmethod
    def _check_mode(mode: str, value: float, sides: list[tuple[int, int, int]], x: TensorType) -> None:
        """What F.pad takes in the modes that copy the input's own values."""
        if value != 0:
            raise ShapeError(f"value {value} fills mode 'constant' only; mode '{mode}' pads with the input's "
                             "own values")
        count = len(sides)
        dims = "1 dim" if count == 1 else f"{count} dims"
        if count > 3 or x.rank not in (count + 1, count + 2):
            raise ShapeError(f"mode '{mode}' pads the last 1 to 3 dims of an input with one or two dims more "
                             f"(batch, channels), as F.pad does: pads of {dims} need a {count + 1}-D or "
                             f"{count + 2}-D input, got {x}")
        for dim, before, after in sides:
            if min(before, after) < 0:
                raise ShapeError(f"mode '{mode}' takes pads of at least 0 (only mode 'constant' crops), got "
                                 f"{before}, {after} for dim {dim}")
            size = x.shape[dim]
            if not isinstance(size, int):
                continue
            if mode == "reflect" and max(before, after) >= size:
                raise ShapeError(f"mode 'reflect' pads dim {dim} of {x} by less than its size {size}, got "
                                 f"{before}, {after}")
            if mode == "circular" and max(before, after) > size:
                raise ShapeError(f"mode 'circular' pads dim {dim} of {x} by at most its size {size}, got "
                                 f"{before}, {after}")

    def _fill(self, node, x: TensorType) -> float | int | bool:
        """The constant ``value`` in the input's kind of number (F.pad casts it; ONNX needs its dtype)."""
        value = node.attrs["value"]
        if x.dtype.startswith("float"):
            return float(value)
        if float(value) != int(value):
            raise ShapeError(f"value {value} is not a whole number, and the input holds {x.dtype}")
        return bool(value) if x.dtype == "bool" else int(value)

    def infer(self, node, ins):
        x = ins[0]
        shape = list(x.shape)
        for dim, before, after in self._sides(node, x):
            shape[dim] = _grown(shape[dim], before + after)
        if node.attrs["mode"] == "constant":
            self._fill(node, x)
        return [x.with_shape(tuple(shape))]

    def _pads(self, node) -> list[int]:
        pads = node.attrs["pads"]
        return [pads] if isinstance(pads, int) else list(pads)

    def torch_forward(self, node, ins, args, module):
        mode = node.attrs["mode"]
        if mode != "constant":
            return f"F.pad({args[0]}, {py(self._pads(node))}, mode={py(mode)})"
        fill = self._fill(node, ins[0])
        return f"F.pad({args[0]}, {py(self._pads(node))}" + (f", value={py(fill)})" if fill else ")")

    def torch_module_form(self, node, ins):
        """torch's padding module (``nn.ZeroPad2d((1, 1, 1, 1))``) for 1 to 3 padded dims."""
        pads, mode = tuple(self._pads(node)), node.attrs["mode"]
        count = len(pads) // 2
        if count > 3:
            return None
        if mode != "constant":
            return f"nn.{_MODULES[mode]}{count}d({py(pads)})"
        fill = self._fill(node, ins[0])
        if not fill:
            return f"nn.ZeroPad{count}d({py(pads)})"
        return f"nn.ConstantPad{count}d({py(pads)}, {py(fill)})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        x, mode = ins[0], node.attrs["mode"]
        sides = self._sides(node, x)
        if mode == "circular":
            return self._onnx_wrap(emit, inputs[0], sides)
        starts, ends = [0] * x.rank, [0] * x.rank
        for dim, before, after in sides:
            starts[dim], ends[dim] = before, after
        operands = [inputs[0], emit.const(np.array(starts + ends, dtype=np.int64), "pads")]
        if mode == "constant" and self._fill(node, x):
            operands.append(emit.literal(np.array(self._fill(node, x), dtype=x.dtype), "value"))
        return emit.add_node("Pad", operands, mode=_ONNX_MODES[mode])

    @staticmethod
    def _onnx_wrap(emit, value: str, sides: list[tuple[int, int, int]]) -> list[str]:
        """Circular padding without opset 19's ``wrap``: per dim, the input's last ``before`` and
        first ``after`` elements along it concatenated around it (each dim wraps independently, so
        padding one dim after another gives the corners F.pad gives)."""
        import numpy as np

        def c(v: int, hint: str) -> str:
            return emit.const(np.array([v], dtype=np.int64), hint)

        original = value
        for dim, before, after in sides:
            if not before and not after:
                continue
            pieces = [value]
            if before:
                pieces.insert(0, emit.add_node("Slice", [value, c(-before, "starts"), c(INT64_MAX, "ends"),
                                                         c(dim, "axes")])[0])
            if after:
                pieces.append(emit.add_node("Slice", [value, c(0, "starts"), c(after, "ends"), c(dim, "axes")])[0])
            value = emit.add_node("Concat", pieces, axis=dim)[0]
        return emit.add_node("Identity", [value]) if value == original else [value]
