"""Spatial resizing: upsampling by a scale factor or to a size (nearest or linear)."""
from __future__ import annotations

import math

import numpy as np

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, concrete, expand, expect_rank, py
from archc.ops.registry import register


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
    """

    name = "upsample"
    aliases = ("interpolate", "resize")
    doc = "Resizes spatial dims by scale_factor or to size; mode nearest or (bi)linear."
    attrs = {
        "scale_factor": Attr("floats", None, doc="a positive number or one per spatial dim", above=0, max=2**20),
        "size": Attr("ints", None, doc="output spatial size, an int or one per spatial dim", min=1),
        "mode": Attr("str", "nearest", choices=("nearest", "linear", "bilinear"),
                     doc="'nearest', or 'linear'/'bilinear' (linear in every spatial dim)"),
        "align_corners": Attr("bool", False, doc="linear modes: align the corner pixels' centres"),
    }
    role = "upsample"

    def _geometry(self, node, x):
        expect_rank(x, (3, 4), "(N, C, L) or (N, C, H, W)")
        n = x.rank - 2
        a = node.attrs
        if (a["scale_factor"] is None) == (a["size"] is None):
            raise ShapeError("give exactly one of scale_factor and size")
        if a["mode"] == "nearest" and a["align_corners"]:
            raise ShapeError("align_corners applies only to the linear modes, not to 'nearest'")
        scales = None
        if a["scale_factor"] is not None:
            raw = a["scale_factor"]
            values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
            if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
                                 for v in values):
                raise ShapeError(f"scale_factor must be a positive number or a list of them, got {raw!r}")
            if len(values) not in (1, n):
                raise ShapeError(f"scale_factor needs 1 or {n} values, got {len(values)}")
            scales = tuple(float(v) for v in (values * n if len(values) == 1 else values))
            sizes = tuple(math.floor(concrete(x.shape[2 + i], "spatial size") * scales[i]) for i in range(n))
        else:
            sizes = expand(a["size"], n, "size")
        if any(s < 1 for s in sizes):
            raise ShapeError(f"output size {list(sizes)} must be positive")
        return n, scales, sizes

    def infer(self, node, ins):
        x = ins[0]
        if not x.dtype.startswith("float"):
            raise ShapeError(f"upsample expects a floating-point input, got {x.dtype} {x}")
        n, scales, sizes = self._geometry(node, x)
        return [x.with_shape((*x.shape[:2], *sizes))]

    def _torch_mode(self, node, n):
        return "nearest" if node.attrs["mode"] == "nearest" else ("linear" if n == 1 else "bilinear")

    def torch_forward(self, node, ins, args, module):
        n, scales, sizes = self._geometry(node, ins[0])
        mode = self._torch_mode(node, n)
        how = f"scale_factor={py(scales)}" if scales is not None else f"size={py(sizes)}"
        corners = f", align_corners={node.attrs['align_corners']}" if mode != "nearest" else ""
        return f"F.interpolate({args[0]}, {how}, mode={py(mode)}{corners})"

    def onnx(self, emit, node, inputs, ins):
        n, scales, sizes = self._geometry(node, ins[0])
        if node.attrs["mode"] == "nearest":
            how = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            ctm = "align_corners" if node.attrs["align_corners"] else "half_pixel"
            how = dict(mode="linear", coordinate_transformation_mode=ctm)
        if scales is not None:
            scale = emit.literal(np.array([1.0, 1.0, *scales], dtype=np.float32), "scales")
            return emit.add_node("Resize", [inputs[0], "", scale], **how)
        lead = emit.add_node("Shape", [inputs[0]], start=0, end=2)[0]
        spatial = emit.const(np.array(sizes, dtype=np.int64), "sizes")
        full = emit.add_node("Concat", [lead, spatial], axis=0)[0]
        return emit.add_node("Resize", [inputs[0], "", "", full], **how)
