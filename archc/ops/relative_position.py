"""Relative positions inside attention windows (Swin Transformer, Liu et al. 2021; BEiT).

A window of ``Wh x Ww`` tokens attends with a learned bias per head that depends only on the
relative offset of the two tokens: a table of ``(2 Wh - 1)(2 Ww - 1)`` rows (an ``op: parameter``)
read at a fixed index per token pair. ``relative_position_index`` is that index, a buffer of
``(Wh Ww)^2`` int64 values in the state_dict under the node's name, computed as torchvision's
``ShiftedWindowAttention.define_relative_position_index`` does (row offset times ``2 Ww - 1``
plus column offset, both shifted to start at 0); ``index_select`` reads the table with it.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir.types import TensorType
from archc.ops.base import Attr, OpDef, checked_dim, ParamSpec, expand, py
from archc.ops.registry import register


def relative_position_index(window: tuple[int, int]) -> list[int]:
    """For token i = (hi, wi) and j = (hj, wj) of a window, in row-major (i, j) order:
    (hi - hj + Wh - 1) * (2 Ww - 1) + (wi - wj + Ww - 1)."""
    wh, ww = window
    coords = [(h, w) for h in range(wh) for w in range(ww)]
    return [(hi - hj + wh - 1) * (2 * ww - 1) + (wi - wj + ww - 1) for hi, wi in coords for hj, wj in coords]


@register
class RelativePositionIndex(OpDef):
    name = "relative_position_index"
    doc = ("The fixed (Wh*Ww)^2 int64 index of each token pair of a window into a relative position bias "
           "table (Swin), a buffer in the state_dict.")
    inputs = ()
    #: (the index holds (Wh Ww)^2 values, written into the spec's buffer: 32 x 32 gives a million, as
    #: BEiT's 32 x 32 patch grid of a 512-pixel image; Swin's windows are 7 to 24)
    attrs = {"window_size": Attr("ints", doc="window height and width (one int: square)", min=1, max=32)}
    role = "const"

    def _window(self, node) -> tuple[int, int]:
        window = expand(node.attrs["window_size"], 2, "window_size")
        if any(w < 1 for w in window):
            raise ShapeError(f"window_size {list(window)} must be positive")
        return window[0], window[1]

    def _spec(self, node) -> ParamSpec:
        wh, ww = self._window(node)
        values = tuple(relative_position_index((wh, ww)))
        return ParamSpec((len(values),), "values", dtype="int64", buffer=True, values=values)

    def infer(self, node, ins):
        wh, ww = self._window(node)
        return [TensorType(((wh * ww) ** 2,), "int64")]

    def params(self, node, ins):
        return {"": self._spec(node)}

    def torch_parameter(self, node, ins):
        wh, ww = self._window(node)
        # The index is p_i - p_j + (Wh - 1)(2 Ww - 1) + Ww - 1 with p = row * (2 Ww - 1) + column: written
        # out (nested calls, which format like ruff's) so the generated file needs nothing but torch.
        tokens, offset = wh * ww, (wh - 1) * (2 * ww - 1) + ww - 1
        p = f"torch.arange({tokens}) // {ww} * {ww - 1} + torch.arange({tokens})"
        return f"torch.sub(torch.unsqueeze({p}, 1) + {offset}, torch.unsqueeze({p}, 0)).flatten()"

    def torch_reset(self, node, ins, module):
        # fixed data, not drawn: the index again, in place (reset_parameters() after to_empty())
        return [f"{module}.copy_({self.torch_parameter(node, ins)})"]

    def torch_forward(self, node, ins, args, module):
        return module

    def onnx(self, emit, node, inputs, ins):
        return [emit.param("")]


@register
class IndexSelect(OpDef):
    name = "index_select"
    aliases = ("gather_rows",)
    doc = "Entries of x at integer indices along one dim: torch.index_select(x, dim, index), ONNX Gather."
    inputs = ("x", "index")
    attrs = {"dim": Attr("int", 0, doc="the dim to index (negative counts from the end)")}
    role = "other"

    def _dim(self, node, x) -> int:
        return checked_dim(node.attrs["dim"], x)

    def infer(self, node, ins):
        x, index = ins
        if index.rank != 1 or not index.dtype.startswith("int"):
            raise ShapeError(f"index must be a 1-D integer tensor, got {index.rank}-D {index.dtype} {index}")
        dim = self._dim(node, x)
        shape = list(x.shape)
        shape[dim] = index.shape[0]
        return [x.with_shape(tuple(shape))]

    def torch_forward(self, node, ins, args, module):
        return f"torch.index_select({args[0]}, {py(self._dim(node, ins[0]))}, {args[1]})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Gather", inputs, axis=self._dim(node, ins[0]))
