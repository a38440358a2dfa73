"""Data-rearranging ops (reshape, permute, slice, split): parity, symbolic dims, errors."""
from __future__ import annotations

import numpy as np
import pytest

from archc.ops import registry
from ops_harness import check_parity, feeds_for, graph_of, spec_error
from ops_harness import parity_suite

PARITY_OPS = {"reshape", "permute", "slice", "split"}

CASES = [
    ("reshape_copy_batch", "inputs: {x: [N, 4, 6]}\nnodes: [{op: reshape, shape: [0, 3, -1]}]"),
    ("reshape_heads", "inputs: {x: [N, L, 8]}\nnodes: [{op: reshape, shape: [0, 0, 2, 4]}]"),
    ("reshape_fold_batch", "inputs: {x: [N, 4, 6]}\nnodes: [{op: reshape, shape: [-1, 6]}]"),
    ("reshape_static", "inputs: {x: [2, 3, 5]}\nnodes: [{op: reshape, shape: [5, 6]}]"),
    ("view_alias_flat", "inputs: {x: [N, 3, 5]}\nnodes: [{op: view, shape: [0, -1]}]"),
    ("permute", "inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: permute, perm: [0, 2, 3, 1]}]"),
    ("transpose_negative", "inputs: {x: [N, L, 6]}\nnodes: [{op: transpose, perm: [0, -1, 1]}]"),
    # (PyTorch's x.transpose(1, 2), as a transcription from PyTorch code writes it)
    ("transpose_two_dims", "inputs: {x: [N, L, 6]}\nnodes: [{op: transpose, dim0: 1, dim1: -1}]"),
    ("slice_basic", "inputs: {x: [N, 7, 4]}\nnodes: [{op: slice, dim: 1, start: 1, end: 5}]"),
    ("slice_step_open_end", "inputs: {x: [N, 3, 9]}\nnodes: [{op: slice, dim: -1, start: 1, step: 2}]"),
    ("slice_negative_start", "inputs: {x: [N, 6, 3]}\nnodes: [{op: slice, dim: 1, start: -2}]"),
    ("slice_negative_end_past", "inputs: {x: [N, 6]}\nnodes: [{op: slice, dim: 1, start: -100, end: -1, step: 3}]"),
    ("slice_end_beyond", "inputs: {x: [N, 5]}\nnodes: [{op: slice, dim: 1, start: 2, end: 50}]"),
    ("slice_symbolic_whole", "inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 2, start: 1}]"),
    # the last step of a sequence of symbolic length (found transcribing an LSTM classifier)
    ("slice_symbolic_last", "inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 1, start: -1}]"),
    ("split_sizes", "inputs: {x: [N, 7, 3]}\nnodes: [{name: sp, op: split, sizes: [2, 4, 1]}]\n"
     "outputs: [sp:0, sp:1, sp:y2]"),
    ("split_chunk", "inputs: {x: [N, 3, 5]}\nnodes: [{name: sp, op: split, sizes: 2, dim: -1}]\n"
     "outputs: [sp:0, sp:1, sp:2]"),
    ("split_consumed", "inputs: {x: [N, 6, 2]}\nnodes: [{name: sp, op: split, sizes: [3, 3]},\n"
     "  {op: sub, in: ['sp:y0', 'sp:y1']}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("text,shape", [
    ("inputs: {x: [N, 4, 6]}\nnodes: [{op: reshape, shape: [0, 3, -1]}]", ("N", 3, 8)),
    ("inputs: {x: [N, L, 8]}\nnodes: [{op: reshape, shape: [0, 0, 2, 4]}]", ("N", "L", 2, 4)),
    ("inputs: {x: [N, 4, 6]}\nnodes: [{op: reshape, shape: [-1, 6]}]", ("N*4", 6)),
    ("inputs: {x: [N, L, 6]}\nnodes: [{op: reshape, shape: [0, -1]}]", ("N", "L*6")),
    ("inputs: {x: [N, L, 6]}\nnodes: [{op: reshape, shape: [-1, 0, 6]}]", ("N", "L", 6)),
    ("inputs: {x: [N, L, 6]}\nnodes: [{op: transpose, perm: [0, -1, 1]}]", ("N", 6, "L")),
    ("inputs: {x: [N, 6]}\nnodes: [{op: slice, dim: 1, start: -100, end: -1, step: 3}]", ("N", 2)),
    ("inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 1}]", ("N", "L", 5)),
    # bounds of one sign fix the length whatever the symbolic size (taken long enough to hold them)
    ("inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 1, start: -1}]", ("N", 1, 5)),
    ("inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 1, start: -4, end: -1}]", ("N", 3, 5)),
    ("inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 1, start: 2, end: 7, step: 2}]", ("N", 3, 5)),
    # bounds from both ends: the length is an expression of the size (archc.ir.dims)
    ("inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 1, start: 1}]", ("N", "L - 1", 5)),
    ("inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 1, end: -1}]", ("N", "L - 1", 5)),
    ("inputs: {x: [N, L, 5]}\nnodes: [{op: slice, dim: 1, start: 1, end: -2, step: 2}]", ("N", "L//2 - 1", 5)),
    ("inputs: {x: [N, L, 6]}\nnodes: [{op: reshape, shape: [-1, 6]}]", ("L*N", 6)),
])
def test_inferred_shapes(text, shape):
    graph = graph_of(text)
    assert graph.type_of(graph.outputs["output"]).shape == shape


def test_split_outputs_and_ports():
    graph = graph_of("inputs: {x: [N, 3, 5]}\nnodes: [{name: sp, op: split, sizes: 2, dim: 2}]\n"
                     "outputs: [sp:0, sp:1, sp:2]")
    node = graph.node("sp")
    assert [t.shape for t in node.outputs] == [("N", 3, 2), ("N", 3, 2), ("N", 3, 1)]
    assert registry.lookup("split").output_names(node) == ("y0", "y1", "y2")


def test_split_values():
    graph, outs = check_parity("inputs: {x: [N, 7, 3]}\nnodes: [{name: sp, op: split, sizes: [2, 4, 1]}]\n"
                               "outputs: [sp:0, sp:1, sp:2]")
    np.testing.assert_array_equal(np.concatenate(outs, axis=1), feeds_for(graph)["x"])


def test_roles():
    for text in ("{op: reshape, shape: [0, -1]}", "{op: permute, perm: [1, 0]}", "{op: slice, dim: 1}",
                 "{op: split, sizes: 1}"):
        graph = graph_of(f"inputs: {{x: [N, 3]}}\nnodes: [{text}]")
        node = list(graph.nodes())[-1]
        assert registry.lookup(node.op).role_of(node) == "reshape"


@pytest.mark.parametrize("text,message", [
    ("{op: reshape, shape: [0, 5]}", "cannot reshape (N, 4, 6) (N*24 elements) to [0, 5] (N*5 elements)"),
    ("{op: reshape, shape: [2, 12]}", "the target fixes the symbolic dim 'N'; copy it with 0 or let -1 absorb it"),
    ("{op: reshape, shape: [0, 5, -1]}", "cannot reshape (N, 4, 6) to [0, 5, -1]: its N*24 elements are not "
                                         "divisible by N*5, the size of the dims given"),
    ("{op: reshape, shape: [0, 4, 7]}", "cannot reshape (N, 4, 6) (N*24 elements) to [0, 4, 7] (N*28 elements)"),
    ("{op: reshape, shape: [2, 12, 1]}", "cannot reshape (N, 4, 6) to [2, 12, 1]: the target fixes the symbolic dim"),
    ("{op: reshape, shape: [-1, -1]}", "has more than one -1"),
    # (a size computed too small is no copy: Swin's H // window on a map smaller than its window)
    ('{op: reshape, shape: [0, "6 // 8", 6, 4]}', "shape[1] = 6 // 8 is 0 here, and a reshape reads 0 as 'copy "
                                                 "dim 1 of the input': the sizes it is computed from are too small"),
    ("{op: reshape, shape: [0, 0, 0, 0]}", "has 0 (copy) at position 3 but the input (N, 4, 6) has only 3 dims"),
    ("{op: reshape, shape: [0, -2, 12]}", "attribute 'shape' of op 'reshape' must be at least -1, got -2"),
    ("{op: permute, perm: [0, 2]}", "perm [0, 2] is not a permutation of the 3 dims of (N, 4, 6)"),
    ("{op: permute, perm: [0, 1, 1]}", "expected 3 distinct values in 0..2"),
    ("{op: transpose, dim0: 1}", "expected either perm (a permutation of every dim) or both dim0 and dim1"),
    ("{op: transpose, perm: [0, 2, 1], dim0: 1, dim1: 2}", "expected either perm"),
    ("{op: transpose, dim0: 1, dim1: 3}", "dim0=1, dim1=3: expected dims of (N, 4, 6) (-3..2)"),
    ("{op: slice, dim: 3}", "dim 3 is out of range for a 3-D input (N, 4, 6)"),
    ("{op: slice, dim: 0, start: -3, end: 2}", "slice -3:2:1 of dim 0 (symbolic 'N') is empty or shorter the longer "
     "'N' is; archc needs a start from the beginning (x[:, 2:5], x[:, 1:-1]) or both bounds from the end (x[:, -3:], "
     "x[:, -4:-1])"),
    ("{op: slice, dim: 1, start: 3, end: 2}", "slice 3:2:1 of dim 1 (size 4) is empty"),
    ("{op: slice, dim: 1, step: 0}", "attribute 'step' of op 'slice' must be at least 1, got 0"),
    ("{op: split, sizes: [2, 3], dim: 2}", "sizes [2, 3] must be positive and sum to the size of dim 2, 6"),
    ("{op: split, sizes: 2, dim: 0}", "splitting dim 0 needs a known size, got symbolic 'N'"),
])
def test_shape_errors(text, message):
    msg = spec_error(f"inputs: {{x: [N, 4, 6]}}\nnodes: [{text}]")
    assert message in msg


@pytest.mark.parametrize("shifts, dims", [([-3, 3], [1, 2]), ([9], [-1]), (0, 1)])
def test_roll_is_numpys_cyclic_shift_in_both_lowerings(shifts, dims):
    """Swin's shifted windows: torch.roll / np.roll semantics, a positive shift moves elements up."""
    from ops_harness import graph_of, run_onnx, run_torch

    x = np.arange(2 * 7 * 7 * 3, dtype=np.float32).reshape(2, 7, 7, 3)
    want = np.roll(x, shifts, axis=dims)
    graph = graph_of(f"inputs: {{x: [N, 7, 7, 3]}}\nnodes: [{{op: roll, shifts: {shifts}, dims: {dims}}}]")
    for got in (run_torch(graph, {"x": x})[0], run_onnx(graph, {"x": x})[0]):
        np.testing.assert_array_equal(got, want)


def test_roll_errors_say_what_was_expected():
    from archc import SpecError, loads_spec

    for attrs, message in (("shifts: [1, 2], dims: [1]", "shifts [1, 2] and dims [1] must have the same length"),
                           ("shifts: 1, dims: 4", "dim 4 is out of range for a 3-D input"),
                           ("shifts: [1, 1], dims: [1, -2]", "dims [1, -2] name a dim twice")):
        with pytest.raises(SpecError) as info:
            loads_spec(f"inputs: {{x: [N, 4, 5]}}\nnodes: [{{op: roll, {attrs}}}]", "m.yaml")
        assert message in str(info.value) and "m.yaml:2:" in str(info.value)


@pytest.mark.parametrize("shape,target,written", [
    ([2, 6], [0, 1, 6], "x.unsqueeze(1)"),
    ([1, 6], [0, 1, 6], "x.unsqueeze(1)"),       # (a batch of 1 beside the new dim: the copy says which is which)
    ([1, 6], [1, 1, 6], "x.reshape(1, 1, 6)"),    # (no copy: either 1 may be the new one)
    ([2, 3, 1, 4], [0, 3, 4], "x.squeeze(2)"),
    ([1, 1, 6], [0, 6], "x.squeeze(1)"),
    ([2, 6], [0, 2, 3], "x.reshape(x.shape[0], 2, 3)"),
])
def test_a_reshape_that_puts_in_or_takes_out_a_unit_dim_is_written_as_such(shape, target, written):
    from archc.ir import Node, Value
    from archc.ir.types import TensorType

    op = registry.get("reshape")
    node = Node("r", "reshape", {"shape": target}, [Value("x")], [])
    assert op.torch_forward(node, [TensorType(tuple(shape), "float32")], ["x"], None) == written

