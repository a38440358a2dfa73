"""Padding to another tensor's size, read at run time: the U-Net decoder's pad of the upsampled map to its
skip's size before the concat, as the most used PyTorch U-Net writes it (``diffY = x2.size(2) - x1.size(2)``,
``F.pad(x1, [diffX // 2, diffX - diffX // 2, diffY // 2, diffY - diffY // 2])``), so the network takes
inputs of any size, odd ones too.

``in: [x, ref]``: x padded, in each padded dim (default every dim after the first two), up to ref's size
there: half the difference (rounded down) before, the rest after, filled with ``value``. Only ref's shape
is read (:attr:`OpDef.shape_only_inputs`): analyses see no data edge from it, as for ``crop``, the
operation's inverse. ref may not be smaller than x where both sizes are known (a crop cuts down); where
one is known only at run time, a smaller ref crops, as F.pad's negative pads do, alike in both lowerings.

PyTorch: a small function that computes the pads from the two shapes and calls ``F.pad`` (it traces with
torch.fx, exports and scripts). ONNX: ``Pad`` whose pads are computed from ``Shape(ref) - Shape(x)``.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir.types import TensorType
from archc.ops.base import Attr, OpDef, py, spatial_dims
from archc.ops.registry import register


@register
class PadTo(OpDef):
    name = "pad_to"
    doc = ("Pads x up to a second input's size, read at run time (in: [x, ref]), in every dim after the first two "
           "(or `dims`): half the difference before, the rest after (a U-Net decoder's F.pad to its skip's size).")
    inputs = ("x", "ref")
    #: ref is read for its shape only (its sizes in the padded dims), not its values
    shape_only_inputs = frozenset({1})
    attrs = {
        "dims": Attr("ints", None, doc="the dims to pad (negative count from the end); default: every dim "
                     "after the first two (the spatial ones of (N, C, ...))"),
        "value": Attr("float", 0.0, doc="what the padding fills with"),
    }
    role = "reshape"  # moves elements and adds fixed ones, computes nothing
    keeps_layout = True

    torch_functions = {"pad_to": '''\
def pad_to(
    x: torch.Tensor, ref: torch.Tensor, dims: list[int], rank: int, value: float = 0.0
) -> torch.Tensor:
    """x padded up to ref's size in each of dims: half the difference before, the rest after."""
    pads: list[int] = []
    for dim in range(rank - 1, min(dims) - 1, -1):  # (F.pad's list: the last dim first)
        diff = ref.shape[dim] - x.shape[dim] if dim in dims else 0
        pads += [diff // 2, diff - diff // 2]
    return F.pad(x, pads, value=value)
'''}

    def padded(self, node, x: TensorType, ref: TensorType) -> list[int]:
        """The padded dims, counted from 0 and in order, checked against x and ref."""
        if ref.rank != x.rank:
            raise ShapeError(f"the second input gives the padded size, so it must have x's rank {x.rank}, got "
                             f"{ref.rank}-D {ref}")
        dims = spatial_dims(node.attrs["dims"], x, "pad_to", "pad", "pads")
        for dim in dims:
            size, wanted = x.shape[dim], ref.shape[dim]
            if isinstance(size, int) and isinstance(wanted, int) and wanted < size:
                raise ShapeError(f"dim {dim}: pad_to pads x up to ref's size, but ref's size {wanted} < x's size "
                                 f"{size} (op crop cuts x down to it)")
        return dims

    def infer(self, node, ins):
        x, ref = ins
        shape = list(x.shape)
        for dim in self.padded(node, x, ref):
            shape[dim] = ref.shape[dim]
        if not x.dtype.startswith("float"):
            raise ShapeError(f"pad_to fills with a number in a floating-point tensor, got {x.dtype} {x}")
        return [x.with_shape(tuple(shape))]

    def torch_forward(self, node, ins, args, module):
        dims = self.padded(node, *ins)
        value = node.attrs["value"]
        return f"pad_to({args[0]}, {args[1]}, {py(dims)}, {ins[0].rank}" + (f", {py(float(value))})" if value else ")")

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        x, ref = ins
        dims = self.padded(node, x, ref)
        axes = emit.const(np.array(dims, dtype=np.int64), "axes")
        sizes = [emit.add_node("Gather", [emit.add_node("Shape", [t])[0], axes], axis=0)[0] for t in inputs]
        spare = emit.add_node("Sub", [sizes[1], sizes[0]])[0]
        two = emit.const(np.array([2], dtype=np.int64), "two")
        # (rounded down as Python's // is, whatever the sign: ONNX's integer Div truncates)
        even = emit.add_node("Sub", [spare, emit.add_node("Mod", [spare, two])[0]])[0]
        before = emit.add_node("Div", [even, two])[0]
        after = emit.add_node("Sub", [spare, before])[0]
        zero = emit.const(np.array([0], dtype=np.int64), "zero")
        pieces = []
        for side in (before, after):  # (ONNX's pads: every dim's start, then every dim's end)
            for dim in range(x.rank):
                if dim in dims:
                    index = emit.const(np.array([dims.index(dim)], dtype=np.int64), "index")
                    pieces.append(emit.add_node("Gather", [side, index], axis=0)[0])
                else:
                    pieces.append(zero)
        pads = emit.add_node("Concat", pieces, axis=0)[0]
        fill = emit.const(np.array(node.attrs["value"], dtype=np.dtype(x.dtype)), "value")
        return emit.add_node("Pad", [inputs[0], pads, fill], mode="constant")
