"""The ops of windowed attention (Swin): relative_position_index, index_select, shifted_window_mask."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from archc import SpecError, loads_spec
from archc.lowering.torch import build_module
from archc.ops.relative_position import relative_position_index
from archc.ops.weights import total_params
from archc.ops.window_mask import window_mask
from ops_harness import graph_of, run_onnx, run_torch


def torchvision_index(wh: int, ww: int) -> torch.Tensor:
    """torchvision's ShiftedWindowAttention.define_relative_position_index."""
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wh - 1
    rel[:, :, 1] += ww - 1
    rel[:, :, 0] *= 2 * ww - 1
    return rel.sum(-1).flatten()


@pytest.mark.parametrize("window", [(7, 7), (2, 3), (1, 4)])
def test_relative_position_index_is_torchvisions_in_the_op_and_in_the_generated_module(window):
    want = torchvision_index(*window)
    assert relative_position_index(window) == want.tolist()
    graph = loads_spec(f"inputs: {{x: [N, 4]}}\nnodes: [{{name: idx, op: relative_position_index, "
                       f"window_size: {list(window)}}}]\noutputs: idx")
    module = build_module(graph)
    assert torch.equal(module.state_dict()["idx"], want)        # a buffer in the state_dict ...
    assert list(module.parameters()) == [] and total_params(graph) == 0   # ... not a learned parameter
    assert torch.equal(module.idx, want)                         # the file's formula computes it too
    source_built = type(module)()
    assert torch.equal(source_built.idx, want)


def test_index_select_reads_rows_like_indexing():
    table = np.random.default_rng(0).standard_normal((9, 2)).astype(np.float32)
    index = np.array([8, 0, 3, 3], dtype=np.int64)
    graph = graph_of("inputs: {t: [9, 2], i: {shape: [4], dtype: int64}}\nnodes: [{op: index_select, in: [t, i]}]")
    for got in (run_torch(graph, {"t": table, "i": index})[0], run_onnx(graph, {"t": table, "i": index})[0]):
        np.testing.assert_array_equal(got, table[index])


def torchvision_mask(h: int, w: int, window: int, shift: int) -> np.ndarray:
    """The attn_mask of torchvision's shifted_window_attention, (nW, T, T)."""
    mask = torch.zeros(h, w)
    slices = ((0, -window), (-window, -shift), (-shift, None))
    count = 0
    for hs in slices:
        for ws in slices:
            mask[hs[0]:hs[1], ws[0]:ws[1]] = count
            count += 1
    mask = mask.view(h // window, window, w // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0).numpy()


@pytest.mark.parametrize("h, w, window, shift", [(8, 8, 4, 2), (14, 7, 7, 3), (6, 9, 3, 1)])
def test_shifted_window_mask_is_torchvisions(h, w, window, shift):
    want = torchvision_mask(h, w, window, shift)
    np.testing.assert_array_equal(window_mask((h, w), (window, window), (shift, shift)), want)
    windows, tokens = want.shape[0], window * window
    scores = np.random.default_rng(1).standard_normal((2 * windows, 3, tokens, tokens)).astype(np.float32)
    graph = graph_of(f"inputs: {{x: {list(scores.shape)}}}\nnodes: [{{op: shifted_window_mask, "
                     f"feature_size: [{h}, {w}], window_size: {window}, shift_size: {shift}}}]")
    expected = (scores.reshape(2, windows, 3, tokens, tokens) + want[None, :, None]).reshape(scores.shape)
    for got in (run_torch(graph, {"x": scores})[0], run_onnx(graph, {"x": scores})[0]):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("node, message", [
    ("{op: shifted_window_mask, feature_size: 6, window_size: 4, shift_size: 2}",
     "feature_size [6, 6] must be a multiple of window_size [4, 4]"),
    ("{op: shifted_window_mask, feature_size: 8, window_size: 4, shift_size: 4}",
     "shift_size [4, 4] must be at least 0 and less than window_size [4, 4]"),
    ("{op: shifted_window_mask, feature_size: 8, window_size: 2, shift_size: 1}",
     "expected scores (N * nW, heads, 4, 4) of 2x2 windows, got 4-D (8, 2, 9, 9)"),
    ("{op: shifted_window_mask, feature_size: 6, window_size: 3, shift_size: 1, in: y}",
     "the scores' first dim 6 is not a multiple of the 4 windows of a 6x6 map"),
    ("{op: index_select, in: [x, x]}", "index must be a 1-D integer tensor, got 4-D float32"),
])
def test_window_op_errors_are_located_and_say_what_was_expected(node, message):
    with pytest.raises(SpecError) as info:
        loads_spec(f"inputs: {{x: [8, 2, 9, 9], y: [6, 1, 9, 9]}}\nnodes: [{node}]", "m.yaml")
    text = str(info.value)
    assert message in text and "m.yaml:2:" in text, text


def test_a_relative_position_window_over_32_is_refused_before_any_index_is_made():
    # window_size 1000 built a list of 10^12 values while inferring the output's shape: 7.7 GB, then a
    # traceback (found by an adversarial review); the index of a 32 x 32 window holds a million values
    with pytest.raises(SpecError) as exc:
        loads_spec("inputs: {x: [N, 3]}\nnodes:\n  - {name: i, op: relative_position_index, window_size: 1000}\n")
    assert "attribute 'window_size' of op 'relative_position_index' must be at most 32, got 1000" in str(exc.value)
    graph = loads_spec("inputs: {x: [N, 3]}\nnodes:\n  - {name: i, op: relative_position_index, window_size: 32}\n"
                       "outputs: {index: i}\n")
    assert graph.node("i").outputs[0].shape == ((32 * 32) ** 2,)


def test_the_shifted_window_mask_is_one_function_the_pytorch_tools_take():
    # the mask was one 60-line nested expression whose sizes a Swin block class took as 16 arguments
    # named masked_1 .. masked_46; it is a function of the file now, called with the map, window and shift
    from archc.lowering.torch import generate_source

    text = ("inputs: {x: [N, 2, 16, 16]}\nnodes: [{op: shifted_window_mask, feature_size: [8, 8], window_size: 4, "
            "shift_size: 2}]")
    graph = graph_of(text)
    source = generate_source(graph)
    assert "def shifted_window_mask(" in source and "shifted_window_mask(x, [8, 8], [4, 4], [2, 2])" in source
    module = build_module(graph).eval()
    x = torch.randn(8, 2, 16, 16)
    want = torch.from_numpy(run_onnx(graph, {"x": x.numpy()})[0])
    torch.testing.assert_close(module(x), want)
    torch.testing.assert_close(torch.fx.symbolic_trace(module)(x), want)
    torch.testing.assert_close(torch.jit.script(module)(x), want)
    batch = torch.export.Dim("batch", min=2, max=64)
    exported = torch.export.export(module, (torch.randn(8, 2, 16, 16),), dynamic_shapes={"x": {0: 4 * batch}})
    torch.testing.assert_close(exported.module()(x), want)
