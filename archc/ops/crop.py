"""Cropping to another tensor's size, read at run time: FCN's ``x[:, :, 19 : 19 + ref.shape[2], 19 : 19 +
ref.shape[3]]`` (Long et al. 2015, the crops of its score maps to the upsampled ones and to the image) and
the valid-convolution U-Net's centred crop of an encoder map to the decoder's (Ronneberger et al. 2015).

``in: [x, ref]``: x cut, in each cropped dim (default every dim after the first two), to ref's size there,
from ``offset`` (an int for every cropped dim or one per dim) or, with ``center: true``, from ``(x's size -
ref's size) // 2``. The window's size is read from ref at run time, so a model built at one input size
computes the same crops at another; only ref's shape is read (:attr:`OpDef.shape_only_inputs`), so
analyses see no data edge from it, as for ``upsample``'s ``in: [x, ref]``.

PyTorch: the slice as written by hand, or for ``center`` a small function narrowing each dim (it traces
with torch.fx, exports and scripts). ONNX: ``Slice`` whose ends are ``Gather(Shape(ref), dims)`` plus the
offsets (centred: starts ``(Gather(Shape(x)) - Gather(Shape(ref))) / 2``), so sizes may be symbolic.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir.types import Dim, TensorType
from archc.ops.base import Attr, OpDef, expand, py, spatial_dims
from archc.ops.registry import register


@register
class Crop(OpDef):
    name = "crop"
    doc = ("Cuts x to a second input's size, read at run time (in: [x, ref]), in every dim after the first "
           "two (or `dims`): x[:, :, k : k + ref.shape[2], ...] from `offset` k, or centred (`center: true`).")
    inputs = ("x", "ref")
    #: ref is read for its shape only (its sizes in the cropped dims), not its values
    shape_only_inputs = frozenset({1})
    attrs = {
        "offset": Attr("ints", 0, min=0, doc="where the window starts: one int for every cropped dim, or "
                       "one per dim"),
        "center": Attr("bool", False, doc="start at (x's size - ref's size) // 2 in each cropped dim, "
                       "read at run time (U-Net's crop); offset stays 0"),
        "dims": Attr("ints", None, doc="the dims to crop (negative count from the end); default: every dim "
                     "after the first two (the spatial ones of (N, C, ...))"),
    }
    role = "reshape"  # moves elements, computes nothing
    keeps_layout = True

    torch_functions = {"center_crop": '''\
def center_crop(x: torch.Tensor, ref: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """x cut to ref's size in each of dims, the window centred: from (x - ref) // 2."""
    for dim in dims:
        x = x.narrow(dim, (x.shape[dim] - ref.shape[dim]) // 2, ref.shape[dim])
    return x
'''}

    def window(self, node, x: TensorType, ref: TensorType) -> tuple[list[int], tuple[int, ...]]:
        """(the cropped dims, counted from 0 and in order; their offsets), checked against x and ref."""
        if ref.rank != x.rank:
            raise ShapeError(f"the second input gives the crop's size, so it must have x's rank {x.rank}, got "
                             f"{ref.rank}-D {ref}")
        a = node.attrs
        dims = spatial_dims(a["dims"], x, "crop", "crop", "cuts")
        offsets = expand(a["offset"], len(dims), "offset")
        if a["center"] and any(offsets):
            raise ShapeError(f"center: true places the window itself, in the middle; leave offset out (got "
                             f"offset {a['offset']})")
        for dim, offset in zip(dims, offsets):
            self._fits(x.shape[dim], ref.shape[dim], offset, dim, a["center"])
        return dims, offsets

    @staticmethod
    def _fits(size: Dim, wanted: Dim, offset: int, dim: int, center: bool) -> None:
        """A ShapeError where the window, both sizes known, does not fit in x (a symbolic one is known
        only at run time)."""
        if not (isinstance(size, int) and isinstance(wanted, int)):
            return
        if center and wanted > size:
            raise ShapeError(f"dim {dim}: the crop is larger than x: ref's size {wanted} > x's size {size}")
        if offset + wanted > size:
            raise ShapeError(f"dim {dim}: the crop is larger than x: offset {offset} + ref's size {wanted} = "
                             f"{offset + wanted} > x's size {size}")

    def infer(self, node, ins):
        x, ref = ins
        dims, _ = self.window(node, x, ref)
        shape = list(x.shape)
        for dim in dims:
            shape[dim] = ref.shape[dim]
        return [x.with_shape(tuple(shape))]

    def torch_forward(self, node, ins, args, module):
        dims, offsets = self.window(node, *ins)
        x, ref = args
        if node.attrs["center"]:
            return f"center_crop({x}, {ref}, {py(dims)})"
        # offset 0 left out, as people write a slice, unless the spec computes it (a block class then
        # takes the parameter, whatever each instance's value)
        computed = any(key.partition("[")[0] == "offset" for key in node.attr_exprs)
        index = [":"] * (dims[-1] + 1)
        for dim, offset in zip(dims, offsets):  # (as ruff formats a slice of an expression)
            index[dim] = f"{offset} : {offset} + {ref}.shape[{dim}]" if offset or computed \
                else f": {ref}.shape[{dim}]"
        return f"{x}[{', '.join(index)}]"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        dims, offsets = self.window(node, *ins)
        axes = emit.const(np.array(dims, dtype=np.int64), "axes")
        wanted = emit.add_node("Gather", [emit.add_node("Shape", [inputs[1]])[0], axes], axis=0)[0]
        if node.attrs["center"]:
            size = emit.add_node("Gather", [emit.add_node("Shape", [inputs[0]])[0], axes], axis=0)[0]
            spare = emit.add_node("Sub", [size, wanted])[0]
            starts = emit.add_node("Div", [spare, emit.const(np.array([2], dtype=np.int64), "two")])[0]
        else:
            starts = emit.const(np.array(offsets, dtype=np.int64), "starts")
        ends = emit.add_node("Add", [starts, wanted])[0]
        return emit.add_node("Slice", [inputs[0], starts, ends, axes])
