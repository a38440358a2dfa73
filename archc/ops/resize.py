"""Spatial resizing: upsampling by a scale factor, to a size, or to another tensor's spatial size."""
from __future__ import annotations

import math

import numpy as np

from archc.errors import ShapeError
from archc.ir import dims
from archc.ir.types import Dim
from archc.ops.base import Attr, OpDef, expand, expect_rank, py
from archc.ops.registry import register


#: largest denominator of a scale factor that resizes a symbolic size (a float of at most 10 binary
#: places: 2, 0.5, 1.5, 0.25), exactly as PyTorch's and onnxruntime's floor(size * scale) compute it
MAX_SCALE_DENOMINATOR = 1024


def scaled_size(size: Dim, scale: float) -> Dim:
    """floor(size * scale), as ``F.interpolate`` and ONNX ``Resize`` size their output; of a symbolic size
    an expression (``H*2``, ``H//2``: :mod:`archc.ir.dims`) where the scale is a float32 of few binary
    places, which both compute exactly; a ShapeError for other scales of a symbolic size."""
    if isinstance(size, int):
        return math.floor(size * scale)
    from fractions import Fraction

    ratio = Fraction(scale)
    if ratio.denominator > MAX_SCALE_DENOMINATOR or float(np.float32(scale)) != scale:
        raise ShapeError(f"scale_factor {scale} of symbolic size '{size}' gives a size archc cannot write as an "
                         "expression; a symbolic size takes a whole scale or one of few binary places (2, 0.5, "
                         "1.5); give the input a known size")
    return dims.floordiv(dims.mul(size, ratio.numerator), ratio.denominator)


@register
class Upsample(OpDef):
    """Resizes the spatial dims of (N, C, L) or (N, C, H, W), like ``F.interpolate``.

    ONNX lowering: ``Resize`` with the coordinate transformation that reproduces
    PyTorch's sampling positions: ``asymmetric`` + ``floor`` for nearest
    (source = floor(dst / scale)), ``half_pixel`` for linear with
    ``align_corners: false`` and ``align_corners`` for ``align_corners: true``.
    A ``scale_factor`` is passed as Resize scales (PyTorch, too, samples with the
    given factor rather than the size ratio); a ``size`` as Resize sizes, whose
    batch and channel entries are read from the input's shape so a symbolic batch
    keeps working.

    A second input ``ref`` (``in: [x, ref]``) gives the output's spatial size at run
    time, as ``F.interpolate(x, size=ref.shape[2:])`` does in U-Net and FPN decoders
    that meet an odd-sized skip: the model then works at any input size. Only ref's
    shape is read (:attr:`shape_only_inputs`), so analyses see no data edge from it.
    Its ONNX sizes are ``Concat(Shape(x)[:2], Shape(ref)[2:])``.
    """

    name = "upsample"
    aliases = ("interpolate", "resize")
    doc = ("Resizes spatial dims by scale_factor, to size, or to the spatial size of a second input "
           "(in: [x, ref], read at run time); mode nearest or (bi)linear.")
    inputs = ("x", "ref")
    min_inputs = 1
    #: ref is read for its shape only (its spatial dims), not its values
    shape_only_inputs = frozenset({1})
    attrs = {
        "scale_factor": Attr("floats", None, doc="a positive number or one per spatial dim", above=0, max=2**20),
        "size": Attr("ints", None, doc="output spatial size, an int or one per spatial dim (fixed at "
                     "build; give a second input to take its size at run time)", min=1),
        "mode": Attr("str", "nearest", choices=("nearest", "linear", "bilinear"),
                     doc="'nearest', or 'linear'/'bilinear' (linear in every spatial dim)"),
        "align_corners": Attr("bool", False, doc="linear modes: align the corner pixels' centres"),
    }
    role = "upsample"

    def _geometry(self, node, x, ref=None):
        """(spatial dims, scale factors or None, output spatial sizes); the sizes are ref's
        spatial dims, symbolic ones too, where a second input gives them."""
        expect_rank(x, (3, 4), "(N, C, L) or (N, C, H, W)")
        n = x.rank - 2
        a = node.attrs
        given = [what for what, value in (("scale_factor", a["scale_factor"]), ("size", a["size"]),
                                          ("a second input", ref)) if value is not None]
        if len(given) != 1:
            got = f"; got {' and '.join(given)}" if given else ""
            raise ShapeError("give exactly one of scale_factor, size and a second input whose spatial "
                             f"size to take (in: [x, ref]){got}")
        if a["mode"] == "nearest" and a["align_corners"]:
            raise ShapeError("align_corners applies only to the linear modes, not to 'nearest'")
        if ref is not None:
            if ref.rank != x.rank:
                raise ShapeError(f"the second input gives the output's spatial size, so it must have x's "
                                 f"rank {x.rank} ({'N, C, L' if n == 1 else 'N, C, H, W'}), got {ref.rank}-D {ref}")
            return n, None, tuple(ref.shape[2:])
        scales = None
        if a["scale_factor"] is not None:
            scales = self._scales(a["scale_factor"], n)
            sizes = tuple(scaled_size(x.shape[2 + i], scales[i]) for i in range(n))
        else:
            sizes = expand(a["size"], n, "size")
        if any(isinstance(s, int) and s < 1 for s in sizes):
            raise ShapeError(f"output size {list(sizes)} must be positive")
        return n, scales, sizes

    @staticmethod
    def _scales(raw, n):
        """One scale factor per spatial dim, from one number or one per dim."""
        values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 for v in values):
            raise ShapeError(f"scale_factor must be a positive number or a list of them, got {raw!r}")
        if len(values) not in (1, n):
            raise ShapeError(f"scale_factor needs 1 or {n} values, got {len(values)}")
        return tuple(float(v) for v in (values * n if len(values) == 1 else values))

    def infer(self, node, ins):
        x = ins[0]
        if not x.dtype.startswith("float"):
            raise ShapeError(f"upsample expects a floating-point input, got {x.dtype} {x}")
        n, scales, sizes = self._geometry(node, *ins)
        return [x.with_shape((*x.shape[:2], *sizes))]

    def _torch_mode(self, node, n):
        return "nearest" if node.attrs["mode"] == "nearest" else ("linear" if n == 1 else "bilinear")

    def torch_forward(self, node, ins, args, module):
        n, scales, sizes = self._geometry(node, *ins)
        mode = self._torch_mode(node, n)
        if len(args) > 1:  # ref's size, read at run time (what fx, export and script all trace)
            how = f"size={args[1]}.shape[2:]"
        else:
            how = f"scale_factor={py(scales)}" if scales is not None else f"size={py(sizes)}"
        corners = f", align_corners={node.attrs['align_corners']}" if mode != "nearest" else ""
        return f"F.interpolate({args[0]}, {how}, mode={py(mode)}{corners})"

    def onnx(self, emit, node, inputs, ins):
        n, scales, sizes = self._geometry(node, *ins)
        if node.attrs["mode"] == "nearest":
            how = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            ctm = "align_corners" if node.attrs["align_corners"] else "half_pixel"
            how = dict(mode="linear", coordinate_transformation_mode=ctm)
        if scales is not None:
            scale = emit.literal(np.array([1.0, 1.0, *scales], dtype=np.float32), "scales")
            return emit.add_node("Resize", [inputs[0], "", scale], **how)
        lead = emit.add_node("Shape", [inputs[0]], start=0, end=2)[0]
        if len(inputs) > 1:  # ref's spatial dims at run time: the model runs at any input size
            spatial = emit.add_node("Shape", [inputs[1]], start=2)[0]
        else:
            spatial = emit.const(np.array(sizes, dtype=np.int64), "sizes")
        full = emit.add_node("Concat", [lead, spatial], axis=0)[0]
        return emit.add_node("Resize", [inputs[0], "", "", full], **how)
