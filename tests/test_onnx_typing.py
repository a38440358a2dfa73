"""Ill-typed ONNX models are refused, never accepted silently.

Every model here passes ``onnx.checker.check_model`` (structural validity without strict shape
inference, which is what a broken exporter produces), yet ONNX's typing rules reject it: an Add of
float and int64, a Conv whose weight wants other input channels, a MatMul or Gemm whose inner dims
differ, a Reshape to another element count, a Concat of mismatched non-axis dims, a broadcast that
does not broadcast, a window larger than its padded input, a norm's scale of the wrong size, a
declared type the node does not compute. (Wrong input counts and unknown ops never get this far:
``onnx.checker`` refuses them, see tests/test_onnx_import.py.) Each import fails with an archc
error naming the ONNX node and what was expected.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from archc.errors import SpecError
from archc.frontends.onnx.importer import from_onnx

F = TensorProto.FLOAT


def _vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def _out(rank):
    """A graph output 'z' of the given rank, its dims left symbolic (the checker wants a shape)."""
    return [_vi("z", [f"o{i}" for i in range(rank)])]


def _model(nodes, inputs, outputs, inits=(), value_info=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), value_info=list(value_info))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)  # structurally valid: only the types are wrong
    return model


def _w(name, shape, dtype=np.float32):
    return numpy_helper.from_array(np.zeros(shape, dtype), name)


def _relu_pair(declared):
    return _model([helper.make_node("Relu", ["x"], ["y"], name="r1"), helper.make_node("Relu", ["y"], ["z"], name="r2")],
                  [_vi("x", [2, 3])], _out(2), value_info=[declared])


CASES = {
    "add_float_int64": (
        _model([helper.make_node("Add", ["x", "y"], ["z"], name="add1")],
               [_vi("x", [2, 3]), _vi("y", [2, 3], TensorProto.INT64)], _out(2)),
        "node 'add1'", "Add", "inputs 'x' (float32) and 'y' (int64) must have one element type"),
    "conv_channels": (
        _model([helper.make_node("Conv", ["x", "w"], ["z"], name="conv3", pads=[1, 1, 1, 1])],
               [_vi("x", [1, 32, 8, 8])], _out(4), [_w("w", (16, 64, 3, 3))]),
        "node 'conv3'", "Conv", "weight [16, 64, 3, 3] expects 64 input channels, the input [1, 32, 8, 8] has 32"),
    "matmul_inner": (
        _model([helper.make_node("MatMul", ["x", "w"], ["z"], name="mm")],
               [_vi("x", [4, 4])], _out(2), [_w("w", (5, 3))]),
        "node 'mm'", "MatMul", "A [4, 4] has 4 columns (its last dim), B [5, 3] has 5 rows"),
    "reshape_count": (
        _model([helper.make_node("Reshape", ["x", "s"], ["z"], name="rs")],
               [_vi("x", [2, 4])], _out(2), [numpy_helper.from_array(np.array([3, 3], np.int64), "s")]),
        "node 'rs'", "Reshape", "cannot reshape 8 elements (input [2, 4]) to [3, 3] (9 elements)"),
    "gemm_inner": (
        _model([helper.make_node("Gemm", ["x", "w", "b"], ["z"], name="fc", transB=1)],
               [_vi("x", [4, 10])], _out(2), [_w("w", (3, 12)), _w("b", (3,))]),
        "node 'fc'", "Gemm", "A has 10 columns but B^T has 12 rows"),
    "concat_other_dims": (
        _model([helper.make_node("Concat", ["x", "y"], ["z"], name="cat", axis=1)],
               [_vi("x", [2, 3, 4]), _vi("y", [2, 5, 6])], _out(3)),
        "node 'cat'", "Concat", "'x' float32[2, 3, 4], 'y' float32[2, 5, 6]"),
    "broadcast": (
        _model([helper.make_node("Mul", ["x", "y"], ["z"], name="mul")],
               [_vi("x", [2, 3]), _vi("y", [2, 4])], _out(2)),
        "node 'mul'", "Mul", "Incompatible dimensions (inputs: 'x' float32[2, 3], 'y' float32[2, 4])"),
    "declared_value_info_dim": (
        _relu_pair(_vi("y", [2, 4])),
        "node 'r1'", "Relu", "output 'y' is declared float32[2, 4], but the node computes float32[2, 3]"),
    "declared_value_info_dtype": (
        _relu_pair(_vi("y", [2, 3], TensorProto.DOUBLE)),
        "node 'r1'", "Relu", "output 'y' is declared float64[2, 3], but the node computes float32[2, 3]"),
    "declared_graph_output": (
        _model([helper.make_node("Relu", ["x"], ["z"], name="r1")], [_vi("x", [2, 3])], [_vi("z", [2, 4])]),
        "node 'r1'", "Relu", "output 'z' is declared float32[2, 4], but the node computes float32[2, 3]"),
    "conv_transpose_channels": (
        _model([helper.make_node("ConvTranspose", ["x", "w"], ["z"], name="up")],
               [_vi("x", [1, 8, 4, 4])], _out(4), [_w("w", (6, 4, 2, 2))]),
        "node 'up'", "ConvTranspose", "weight [6, 4, 2, 2] expects 6 input channels (its first dim), the input"),
    "conv_bias": (
        _model([helper.make_node("Conv", ["x", "w", "b"], ["z"], name="c")],
               [_vi("x", [1, 3, 8, 8])], _out(4), [_w("w", (16, 3, 3, 3)), _w("b", (8,))]),
        "node 'c'", "Conv", "bias [8] must be [16], one value per output channel"),
    "matmul_batched": (
        _model([helper.make_node("MatMul", ["x", "y"], ["z"], name="bmm")],
               [_vi("x", [2, 4, 6]), _vi("y", [2, 5, 3])], _out(3)),
        "node 'bmm'", "MatMul", "A [2, 4, 6] has 6 columns (its last dim), B [2, 5, 3] has 5 rows"),
    "reshape_minus_one": (
        _model([helper.make_node("Reshape", ["x", "s"], ["z"], name="rs")],
               [_vi("x", [2, 5])], _out(2), [numpy_helper.from_array(np.array([3, -1], np.int64), "s")]),
        "node 'rs'", "Reshape", "cannot reshape 10 elements (input [2, 5]) to [3, -1]: 10 is not a multiple of 3"),
    "conv_window_too_large": (
        _model([helper.make_node("Conv", ["x", "w"], ["z"], name="c", pads=[1, 1, 1, 1])],
               [_vi("x", [1, 3, 4, 4])], _out(4), [_w("w", (8, 3, 7, 7))]),
        "node 'c'", "Conv", ("the window spans 7 along spatial dim 0 (kernel 7, dilation 1) but the input "
                            "[1, 3, 4, 4] has only 6 there (with pads 1+1)")),
    "maxpool_window_too_large": (
        _model([helper.make_node("MaxPool", ["x"], ["z"], name="p", kernel_shape=[3, 3], dilations=[2, 2])],
               [_vi("x", [1, 3, 4, 4])], _out(4)),
        "node 'p'", "MaxPool", "the window spans 5 along spatial dim 0 (kernel 3, dilation 2)"),
    "layernorm_scale": (
        _model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["z"], name="ln")],
               [_vi("x", [2, 6])], _out(2), [_w("s", (5,)), _w("b", (5,))]),
        "node 'ln'", "LayerNormalization", "scale [5] must broadcast to the normalized shape [6]"),
    "batchnorm_scale": (
        _model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["z"], name="bn")],
               [_vi("x", [1, 3, 4, 4])], _out(4), [_w("s", (5,)), _w("b", (3,)), _w("m", (3,)), _w("v", (3,))]),
        "node 'bn'", "BatchNormalization", "Dimension mismatch in unification between 5 and 3"),
    "where_types": (
        _model([helper.make_node("Where", ["c", "x", "y"], ["z"], name="wh")],
               [_vi("c", [2, 3], TensorProto.BOOL), _vi("x", [2, 3]), _vi("y", [2, 3], TensorProto.INT64)], _out(2)),
        "node 'wh'", "Where", "inputs 'x' (float32) and 'y' (int64) must have one element type"),
    "split_sizes": (
        _model([helper.make_node("Split", ["x", "s"], ["z", "z2"], name="sp")],
               [_vi("x", [6, 3])], [*_out(2), _vi("z2", ["a", "b"])],
               [numpy_helper.from_array(np.array([2, 2], np.int64), "s")]),
        "node 'sp'", "Split", "Mismatch between the sum of 'split' (4) and the split dimension of the input (6)"),
}

#: the four cases the project's issue names, through every command that reads an ONNX file
NAMED = ["add_float_int64", "conv_channels", "matmul_inner", "reshape_count"]


def _expect_refusal(model, node, op, message):
    with pytest.raises(SpecError) as info:
        from_onnx(model, "bad.onnx")
    text = str(info.value)
    assert node in text and op in text and message in text, text


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_ill_typed_node_is_refused_naming_it_and_what_was_expected(case):
    _expect_refusal(*CASES[case])


@pytest.mark.parametrize("case", NAMED)
def test_the_cli_refuses_an_ill_typed_model_with_the_nodes_name_and_what_it_expected(case, tmp_path, run_archc):
    model, node, op, message = CASES[case]
    path = tmp_path / f"{case}.onnx"
    onnx.save(model, path)
    for command in (["lint"], ["summary"], ["check"], ["build", "-o", str(tmp_path / "out.py")]):
        proc = run_archc(*command, str(path))
        assert proc.returncode != 0, (command, proc.stdout)
        assert "Traceback" not in proc.stderr
        assert node in proc.stderr and op in proc.stderr and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out.py").exists()  # no partial output file


def test_a_refusal_is_decided_once_per_kind_of_node_and_names_the_first_bad_one():
    """Twenty well-typed Adds share one signature; the first ill-typed one is named."""
    nodes = [helper.make_node("Add", [f"h{i}", "x"], [f"h{i + 1}"], name=f"add{i}") for i in range(20)]
    nodes.append(helper.make_node("Add", ["h20", "i"], ["z"], name="bad"))
    model = _model([helper.make_node("Relu", ["x"], ["h0"], name="r"), *nodes],
                   [_vi("x", [2, 3]), _vi("i", [2, 3], TensorProto.INT64)], _out(2))
    _expect_refusal(model, "node 'bad'", "Add", "'h20' (float32) and 'i' (int64)")


def test_well_typed_neighbours_of_the_refused_cases_import():
    """The rules do not over-reach: grouped convs, -1 and 0 in reshape targets, Gemm with transA,
    broadcasting, batched MatMul with a broadcast weight all import."""
    ok = [
        _model([helper.make_node("Conv", ["x", "w"], ["z"], name="g", group=4)],
               [_vi("x", [1, 8, 5, 5])], _out(4), [_w("w", (12, 2, 3, 3))]),
        _model([helper.make_node("Reshape", ["x", "s"], ["z"], name="rs")],
               [_vi("x", [2, 3, 4])], _out(3), [numpy_helper.from_array(np.array([0, -1, 2], np.int64), "s")]),
        _model([helper.make_node("Gemm", ["x", "w"], ["z"], name="fc", transA=1)],
               [_vi("x", [10, 4])], _out(2), [_w("w", (10, 3))]),
        _model([helper.make_node("Add", ["x", "y"], ["z"], name="a")],
               [_vi("x", [2, 1, 3]), _vi("y", [4, 1])], _out(3)),
        _model([helper.make_node("MatMul", ["x", "w"], ["z"], name="mm")],
               [_vi("x", [2, 4, 6])], _out(3), [_w("w", (6, 3))]),
        _model([helper.make_node("ConvTranspose", ["x", "w"], ["z"], name="up", group=2)],
               [_vi("x", [1, 8, 4, 4])], _out(4), [_w("w", (8, 3, 2, 2))]),
    ]
    for model in ok:
        from_onnx(model, "ok.onnx")


_dims = st.integers(1, 6)


@settings(max_examples=25, deadline=None)
@given(n=_dims, c=_dims, wc=_dims, k=st.integers(1, 3), out=_dims)
def test_random_conv_channel_mismatches_are_refused_and_matches_import(n, c, wc, k, out):
    model = _model([helper.make_node("Conv", ["x", "w"], ["z"], name="conv")],
                   [_vi("x", [n, c, 6, 6])], _out(4), [_w("w", (out, wc, k, k))])
    if c == wc:
        from_onnx(model, "ok.onnx")
    else:
        _expect_refusal(model, "node 'conv'", "Conv", f"expects {wc} input channels")


@settings(max_examples=25, deadline=None)
@given(m=_dims, k=_dims, k2=_dims, n=_dims)
def test_random_matmul_inner_mismatches_are_refused_and_matches_import(m, k, k2, n):
    model = _model([helper.make_node("MatMul", ["x", "y"], ["z"], name="mm")],
                   [_vi("x", [m, k]), _vi("y", [k2, n])], _out(2))
    if k == k2:
        from_onnx(model, "ok.onnx")
    else:
        _expect_refusal(model, "node 'mm'", "MatMul", f"has {k} columns (its last dim), B [{k2}, {n}] has {k2} rows")


@settings(max_examples=25, deadline=None)
@given(a=st.lists(_dims, min_size=1, max_size=3), b=st.lists(_dims, min_size=1, max_size=3))
def test_random_add_shapes_import_exactly_when_they_broadcast(a, b):
    model = _model([helper.make_node("Add", ["x", "y"], ["z"], name="add")],
                   [_vi("x", a), _vi("y", b)], _out(max(len(a), len(b))))
    try:
        np.broadcast_shapes(tuple(a), tuple(b))
    except ValueError:
        _expect_refusal(model, "node 'add'", "Add", "Incompatible dimensions")
    else:
        from_onnx(model, "ok.onnx")


@pytest.mark.parametrize("op, inputs, message", [
    ("Relu", ["x", "y"], "has input size 2 not in range [min=1, max=1]"),
    ("Conv", ["x"], "has input size 1 not in range [min=2, max=3]"),
])
def test_a_wrong_number_of_inputs_is_refused_naming_the_node(op, inputs, message):
    graph = helper.make_graph([helper.make_node(op, inputs, ["z"], name="n")], "g",
                              [_vi(name, [1, 3, 4, 4]) for name in inputs], _out(4))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _expect_refusal(model, "node 'n'", op, message)
