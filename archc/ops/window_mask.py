"""Swin Transformer's shifted-window attention mask (Liu et al., ICCV 2021, section 3.2).

After a cyclic shift of the feature map by ``s`` (``roll``), a window at the border holds tokens
from up to four regions that were not neighbours before the shift. Along each axis of size ``L``
with window ``w``, positions ``< L - w``, ``L - w .. L - s - 1`` and ``>= L - s`` are regions 0, 1,
2 (torchvision's slices ``(0, -w), (-w, -s), (-s, None)``); attention between two tokens of a
window whose regions differ gets -100 added before the softmax. The op adds that mask to the
scores ``(N * nW, heads, T, T)`` of the ``nW`` windows of a ``(H, W)`` map (``feature_size``), in
window-major order like the window partition. The mask depends on sizes only: PyTorch computes
it in the forward pass, ONNX holds it as a constant.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, SizeLimit, expand, py
from archc.ops.registry import register

#: what torchvision adds between tokens of different regions
MASKED = -100.0


def _regions(length: int, window: int, shift: int) -> list[int]:
    return [int(i >= length - window) + int(i >= length - shift) for i in range(length)]


def window_mask(size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]):
    """The (nW, T, T) float32 mask: 0 within a region, MASKED across regions."""
    import numpy as np

    (h, w), (wh, ww) = size, window
    region = np.add.outer(np.array(_regions(h, wh, shift[0])) * 3, np.array(_regions(w, ww, shift[1])))
    windows = region.reshape(h // wh, wh, w // ww, ww).transpose(0, 2, 1, 3).reshape(-1, wh * ww)
    return np.where(windows[:, None, :] != windows[:, :, None], MASKED, 0.0).astype(np.float32)


def _window_count(size: tuple[int, ...], window: tuple[int, ...]) -> int:
    """How many windows of ``window`` tile a map of ``size`` (each a multiple of it)."""
    return (size[0] // window[0]) * (size[1] // window[1])


@register
class ShiftedWindowMask(OpDef):
    name = "shifted_window_mask"
    doc = ("Adds Swin's shifted-window attention mask (-100 across pre-shift regions) to scores "
           "(N * nW, heads, T, T) of the windows of a feature_size map.")
    attrs = {
        "feature_size": Attr("ints", doc="height and width of the (shifted) feature map", min=1),
        "window_size": Attr("ints", doc="window height and width (one int: square)", min=1),
        "shift_size": Attr("ints", doc="the cyclic shift along height and width, 0 <= shift < window", min=0),
    }
    role = "activation"  # element-wise on the scores, no learned weight (like causal_mask)

    def _sizes(self, node):
        size, window, shift = (expand(node.attrs[k], 2, k) for k in ("feature_size", "window_size", "shift_size"))
        for L, w, s in zip(size, window, shift):
            if L % w:
                raise ShapeError(f"feature_size {list(size)} must be a multiple of window_size {list(window)}")
            if not 0 <= s < w:
                raise ShapeError(f"shift_size {list(shift)} must be at least 0 and less than window_size "
                                 f"{list(window)}")
        return size, window, shift

    def infer(self, node, ins):
        size, window, _ = self._sizes(node)
        x, tokens = ins[0], window[0] * window[1]
        if x.rank != 4 or x.shape[2:] != (tokens, tokens):
            raise ShapeError(f"expected scores (N * nW, heads, {tokens}, {tokens}) of {window[0]}x{window[1]} "
                             f"windows, got {x.rank}-D {x}")
        windows = _window_count(size, window)
        if isinstance(x.shape[0], int) and x.shape[0] % windows:
            raise ShapeError(f"the scores' first dim {x.shape[0]} is not a multiple of the {windows} windows "
                             f"of a {size[0]}x{size[1]} map")
        return [x]

    def size_limits(self, node, ins):
        size, window, _ = self._sizes(node)
        windows = _window_count(size, window)
        return [SizeLimit(0, 0, f"the scores of each sample's {windows} windows of a {size[0]}x{size[1]} map",
                          multiple=windows)]

    torch_functions = {"shifted_window_mask": '''\
def shifted_window_mask(
    scores: torch.Tensor, size: list[int], window: list[int], shift: list[int]
) -> torch.Tensor:
    """Swin's scores (N * nW, heads, T, T) of the windows of a size[0] x size[1] map, with -100
    added between two tokens of a window that were in different regions before the shift."""
    h, w, wh, ww = size[0], size[1], window[0], window[1]
    device = scores.device
    rows = torch.bucketize(
        torch.arange(h, device=device),
        torch.tensor([h - wh, h - shift[0]], device=device),
        right=True,
    )
    cols = torch.bucketize(
        torch.arange(w, device=device),
        torch.tensor([w - ww, w - shift[1]], device=device),
        right=True,
    )
    windows, tokens = (h // wh) * (w // ww), wh * ww
    region = (rows.unsqueeze(1) * 3 + cols).reshape(h // wh, wh, w // ww, ww)
    region = region.permute(0, 2, 1, 3).reshape(windows, tokens)
    mask = torch.where(region.unsqueeze(1) != region.unsqueeze(2), {masked}, 0.0)
    grouped = scores.reshape(-1, windows, scores.shape[1], tokens, tokens)
    return (grouped + mask.reshape(1, windows, 1, tokens, tokens)).reshape(scores.shape)
'''.format(masked=py(MASKED))}

    def torch_forward(self, node, ins, args, module):
        (h, w), window, shift = self._sizes(node)
        return f"shifted_window_mask({args[0]}, {py([h, w])}, {py(list(window))}, {py(list(shift))})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        size, window, shift = self._sizes(node)
        mask = window_mask(size, window, shift)
        heads, tokens = ins[0].shape[1], mask.shape[1]
        grouped = emit.add_node("Reshape", [inputs[0], emit.const(
            np.array([-1, mask.shape[0], heads, tokens, tokens], dtype=np.int64), "windows")])[0]
        masked = emit.add_node("Add", [grouped, emit.literal(mask[None, :, None].astype(ins[0].dtype), "mask")])[0]
        return emit.add_node("Reshape", [masked, emit.const(np.array([-1, heads, tokens, tokens], dtype=np.int64),
                                                            "scores")])
