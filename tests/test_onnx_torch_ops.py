"""Every ONNX op archc lowers to PyTorch without a native op (archc.ops.onnx_torch) computes
what onnxruntime computes: one-node models, data inputs as graph inputs, the other operands
as initializers, imported, built to a PyTorch module and compared."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

torch = pytest.importorskip("torch")

from archc.errors import SpecError  # noqa: E402
from archc.frontends.onnx import from_onnx  # noqa: E402
from archc.lowering.torch import build_module, generate_source  # noqa: E402
from archc.ops.onnx_torch import TORCH_LOWERINGS  # noqa: E402

rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values):
    return np.array(values, dtype=np.int64)


#: (id, op, data inputs, constant inputs (None: omitted), attributes, number of outputs, opset)
CASES = [
    ("abs", "Abs", [f32(2, 3)], [], {}, 1, 17),
    ("erf", "Erf", [f32(2, 3)], [], {}, 1, 17),
    ("sqrt_of_abs", "Sqrt", [np.abs(f32(2, 3))], [], {}, 1, 17),
    ("pow", "Pow", [np.abs(f32(2, 3))], [np.float32(3.0)], {}, 1, 17),
    ("div_int", "Div", [i64(7, -7, 9).reshape(3)], [i64(2, 2, -4)], {}, 1, 17),
    ("mod", "Mod", [i64(7, -7, 9)], [i64(3, 3, -4)], {}, 1, 17),
    ("fmod", "Mod", [f32(4)], [np.full(4, 0.7, np.float32)], {"fmod": 1}, 1, 17),
    ("max3", "Max", [f32(2, 3), f32(2, 3), f32(1, 3)], [], {}, 1, 17),
    ("mean2", "Mean", [f32(2, 3), f32(2, 3)], [], {}, 1, 17),
    ("where", "Where", [f32(2, 3) > 0, f32(2, 3), f32(2, 3)], [], {}, 1, 17),
    ("cast", "Cast", [f32(2, 3) * 5], [], {"to": onnx.TensorProto.INT32}, 1, 17),
    ("clip", "Clip", [f32(2, 3)], [np.float32(-0.5), np.float32(0.3)], {}, 1, 17),
    ("elu", "Elu", [f32(2, 3)], [], {"alpha": 0.7}, 1, 17),
    ("selu", "Selu", [f32(2, 3)], [], {}, 1, 17),
    ("hardsigmoid", "HardSigmoid", [f32(2, 3)], [], {"alpha": 0.3}, 1, 17),
    ("prelu", "PRelu", [f32(2, 3, 4)], [f32(3, 1)], {}, 1, 17),
    ("shrink", "Shrink", [f32(2, 3)], [], {"lambd": 0.4, "bias": 0.1}, 1, 17),
    ("softmax_axis1", "Softmax", [f32(2, 3, 4)], [], {"axis": 1}, 1, 17),
    ("logsoftmax_old", "LogSoftmax", [f32(2, 3, 4)], [], {"axis": 1}, 1, 11),
    ("hardmax", "Hardmax", [f32(2, 5)], [], {}, 1, 17),
    ("gemm", "Gemm", [f32(3, 4)], [f32(5, 4), f32(5)], {"transB": 1, "alpha": 0.5, "beta": 2.0}, 1, 17),
    ("einsum", "Einsum", [f32(2, 3, 4), f32(2, 4, 5)], [], {"equation": "bij,bjk->bik"}, 1, 17),
    ("reducesum", "ReduceSum", [f32(2, 3, 4)], [i64(1, -1)], {"keepdims": 0}, 1, 17),
    ("reducemax_attr", "ReduceMax", [f32(2, 3, 4)], [], {"axes": [1]}, 1, 17),
    ("reduceprod", "ReduceProd", [f32(2, 3, 4)], [], {"axes": [0, 2]}, 1, 17),
    ("reducel2_all", "ReduceL2", [f32(2, 3)], [], {"keepdims": 0}, 1, 17),
    ("reducelogsumexp", "ReduceLogSumExp", [f32(2, 3, 4)], [i64(2)], {}, 1, 18),
    ("argmax_last", "ArgMax", [np.array([[1, 3, 3], [2, 2, 0]], np.float32)], [],
     {"axis": 1, "select_last_index": 1}, 1, 17),
    ("cumsum_rev_excl", "CumSum", [f32(2, 5)], [np.array(1, np.int64)], {"reverse": 1, "exclusive": 1}, 1, 17),
    ("topk", "TopK", [f32(3, 6)], [i64(2)], {"axis": 1}, 2, 17),
    ("reshape_zero", "Reshape", [f32(2, 3, 4)], [i64(0, -1)], {}, 1, 17),
    ("flatten2", "Flatten", [f32(2, 3, 4)], [], {"axis": 2}, 1, 17),
    ("transpose", "Transpose", [f32(2, 3, 4)], [], {"perm": [2, 0, 1]}, 1, 17),
    ("squeeze", "Squeeze", [f32(2, 1, 4, 1)], [i64(-1)], {}, 1, 17),
    ("unsqueeze", "Unsqueeze", [f32(2, 3)], [i64(0, -1)], {}, 1, 17),
    ("split", "Split", [f32(2, 7)], [i64(3, 4)], {"axis": 1}, 2, 17),
    ("split_even", "Split", [f32(2, 6)], [], {"axis": 1}, 3, 17),
    ("slice_neg_step", "Slice", [f32(4, 6)], [i64(-1, 1), i64(-100, 5), i64(0, 1), i64(-1, 2)], {}, 1, 17),
    ("gather_neg", "Gather", [f32(5, 3)], [i64(-1, 0, 2)], {"axis": 0}, 1, 17),
    ("gather_scalar", "Gather", [f32(2, 5, 3)], [np.array(1, np.int64)], {"axis": 1}, 1, 17),
    ("gather_elements", "GatherElements", [f32(3, 4)], [np.array([[0, 1], [2, -1], [3, 0]], np.int64)],
     {"axis": 1}, 1, 17),
    ("gather_nd", "GatherND", [f32(3, 4, 2)], [np.array([[0, 1], [2, 3]], np.int64)], {}, 1, 17),
    ("scatter_nd", "ScatterND", [f32(4, 3)], [np.array([[1], [3]], np.int64), f32(2, 3)], {}, 1, 17),
    ("scatter_elements_add", "ScatterElements", [f32(3, 4)], [np.array([[0, 1]], np.int64), f32(1, 2)],
     {"axis": 0, "reduction": "add"}, 1, 17),
    ("expand", "Expand", [f32(3, 1)], [i64(2, 1, 4)], {}, 1, 17),
    ("tile", "Tile", [f32(2, 3)], [i64(2, 1)], {}, 1, 17),
    ("pad_const", "Pad", [f32(1, 2, 3, 3)], [i64(0, 0, 1, 0, 0, 0, 0, 2), np.float32(0.5)], {}, 1, 17),
    ("pad_reflect", "Pad", [f32(1, 2, 4, 4)], [i64(0, 0, 1, 2, 0, 0, 2, 1)], {"mode": "reflect"}, 1, 17),
    # (F.pad pads only dims after batch and channel: these padded axes 0 and 1 were dropped silently)
    ("pad_reflect_all_axes", "Pad", [f32(2, 4, 5)], [i64(1, 0, 2, 0, 1, 1)], {"mode": "reflect"}, 1, 17),
    ("pad_edge_channels", "Pad", [f32(1, 3, 4, 5)], [i64(0, 1, 0, 0, 0, 1, 0, 2)], {"mode": "edge"}, 1, 17),
    ("pad_wrap_2d", "Pad", [f32(3, 4)], [i64(2, 1, 1, 3)], {"mode": "wrap"}, 1, 19),
    ("pad_reflect_crop", "Pad", [f32(1, 2, 5, 5)], [i64(0, 0, -1, 2, 0, 0, 2, -1)], {"mode": "reflect"}, 1, 17),
    ("depth_to_space", "DepthToSpace", [f32(1, 8, 2, 3)], [], {"blocksize": 2}, 1, 17),
    ("depth_to_space_crd", "DepthToSpace", [f32(1, 8, 2, 3)], [], {"blocksize": 2, "mode": "CRD"}, 1, 17),
    ("space_to_depth", "SpaceToDepth", [f32(1, 2, 4, 6)], [], {"blocksize": 2}, 1, 17),
    ("trilu", "Trilu", [f32(4, 4)], [np.array(1, np.int64)], {"upper": 0}, 1, 17),
    ("conv_asym", "Conv", [f32(1, 2, 6, 6)], [f32(4, 2, 3, 3), f32(4)], {"pads": [0, 1, 2, 1], "strides": [2, 1]},
     1, 17),
    ("conv1d_groups", "Conv", [f32(1, 4, 9)], [f32(4, 2, 3)], {"group": 2, "dilations": [2]}, 1, 17),
    ("convtranspose", "ConvTranspose", [f32(1, 2, 4, 4)], [f32(2, 3, 3, 3), f32(3)],
     {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, 1, 17),
    ("maxpool_indices", "MaxPool", [f32(2, 3, 6, 6)], [], {"kernel_shape": [2, 2], "strides": [2, 2]}, 2, 17),
    ("maxpool_asym", "MaxPool", [f32(1, 2, 5, 5)], [], {"kernel_shape": [3, 3], "pads": [0, 0, 1, 1],
                                                       "strides": [2, 2]}, 1, 17),
    ("avgpool_ceil", "AveragePool", [f32(1, 2, 5, 5)], [], {"kernel_shape": [2, 2], "strides": [2, 2],
                                                           "ceil_mode": 1}, 1, 17),
    ("avgpool_asym_exclude", "AveragePool", [f32(1, 2, 6, 6)], [], {"kernel_shape": [7, 7], "pads": [0, 0, 1, 1]},
     1, 9),
    ("avgpool_asym_exclude_strided", "AveragePool", [f32(1, 2, 7, 6)], [],
     {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [1, 0, 2, 1]}, 1, 17),
    ("avgpool_asym_include", "AveragePool", [f32(1, 2, 5)], [],
     {"kernel_shape": [3], "strides": [2], "pads": [2, 1], "count_include_pad": 1}, 1, 17),
    ("globalmaxpool", "GlobalMaxPool", [f32(2, 3, 4, 4)], [], {}, 1, 17),
    ("resize_nearest", "Resize", [f32(1, 2, 3, 3)], [None, np.array([1, 1, 2, 2], np.float32)],
     {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, 1, 17),
    ("resize_linear_sizes", "Resize", [f32(1, 2, 3, 3)], [None, None, i64(1, 2, 5, 7)],
     {"mode": "linear"}, 1, 17),
    ("batchnorm", "BatchNormalization", [f32(2, 3, 4)],
     [f32(3), f32(3), f32(3), np.abs(f32(3)) + 0.5], {"epsilon": 1e-3}, 1, 17),
    ("instancenorm", "InstanceNormalization", [f32(2, 3, 5)], [f32(3), f32(3)], {}, 1, 17),
    # (a scale and bias given as inputs: no native instancenorm, the ONNX op's own PyTorch lowering)
    ("instancenorm_given_scale", "InstanceNormalization", [f32(2, 3, 5), f32(3), f32(3)], [], {"epsilon": 1e-3},
     1, 17),
    ("layernorm", "LayerNormalization", [f32(2, 3, 4)], [f32(3, 4), f32(3, 4)], {"axis": 1}, 1, 17),
    ("groupnorm21", "GroupNormalization", [f32(2, 4, 3)], [f32(4), f32(4)], {"num_groups": 2}, 1, 21),
    ("lpnorm", "LpNormalization", [f32(2, 5)], [], {"p": 1, "axis": 1}, 1, 17),
    ("lrn", "LRN", [f32(1, 5, 3, 3)], [], {"size": 3}, 1, 17),
    ("mvn", "MeanVarianceNormalization", [f32(2, 3, 4, 4)], [], {}, 1, 17),
    ("lstm_bidi", "LSTM", [f32(5, 2, 3)], [f32(2, 16, 3), f32(2, 16, 4), f32(2, 32)],
     {"hidden_size": 4, "direction": "bidirectional"}, 3, 17),
    ("lstm_reverse", "LSTM", [f32(5, 2, 3)], [f32(1, 16, 3), f32(1, 16, 4), f32(1, 32)],
     {"hidden_size": 4, "direction": "reverse"}, 2, 17),
    ("gru", "GRU", [f32(5, 2, 3)], [f32(1, 12, 3), f32(1, 12, 4), f32(1, 24)],
     {"hidden_size": 4, "linear_before_reset": 1}, 2, 17),
    ("rnn", "RNN", [f32(5, 2, 3)], [f32(1, 4, 3), f32(1, 4, 4), f32(1, 8)], {"hidden_size": 4}, 2, 17),
    ("onehot", "OneHot", [i64(0, 2, 1)], [np.array(4, np.int64), np.array([0.0, 3.0], np.float32)], {}, 1, 17),
    ("swish_like_silu", "HardSwish", [f32(2, 3)], [], {}, 1, 17),
    ("eyelike", "EyeLike", [f32(3, 4)], [], {"k": 1}, 1, 17),
    ("det", "Det", [f32(2, 3, 3)], [], {}, 1, 17),
    ("compress", "Compress", [f32(4, 3)], [np.array([True, False, True, True])], {"axis": 0}, 1, 17),
    ("lppool", "LpPool", [f32(1, 2, 4, 4)], [], {"kernel_shape": [2, 2], "strides": [2, 2]}, 1, 18),
    ("globallppool", "GlobalLpPool", [f32(1, 2, 4, 4)], [], {}, 1, 17),
    ("dequantize", "DequantizeLinear", [np.array([0, 3, 200], np.uint8)], [np.float32(0.5), np.uint8(10)], {}, 1,
     17),
    ("bitshift", "BitShift", [np.array([1, 4, 8], np.uint8)], [np.array([1, 2, 3], np.uint8)],
     {"direction": "LEFT"}, 1, 17),
    ("gridsample", "GridSample", [f32(1, 2, 4, 4)], [np.clip(f32(1, 3, 3, 2), -1, 1)], {"align_corners": 1}, 1, 17),
    ("isinf_pos", "IsInf", [np.array([1.0, np.inf, -np.inf], np.float32)], [], {"detect_negative": 0}, 1, 17),
]


def one_node_model(op, data, consts, attrs, n_out, opset):
    inputs, names, inits = [], [], []
    for k, arr in enumerate(data):
        arr = np.asarray(arr)
        name = f"x{k}"
        elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
        inputs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
        names.append(name)
    for k, arr in enumerate(consts):
        if arr is None:
            names.append("")
            continue
        name = f"c{k}"
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        names.append(name)
    outs = [f"y{k}" for k in range(n_out)]
    node = helper.make_node(op, names, outs, name=f"the_{op.lower()}", **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_empty_tensor_value_info(o) for o in outs],
                              initializer=inits)
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))
    for out in model.graph.output:
        if not out.type.tensor_type.HasField("shape"):  # ops defined as functions (GroupNormalization-18)
            out.CopyFrom(helper.make_tensor_value_info(out.name, onnx.TensorProto.FLOAT, list(np.shape(data[0]))))
    return model


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_onnx_op_lowers_to_torch_like_onnxruntime(case):
    _, op, data, consts, attrs, n_out, opset = case
    model = one_node_model(op, data, consts, attrs, n_out, opset)
    feeds = {f"x{k}": np.asarray(a) for k, a in enumerate(data)}
    expected = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    graph = from_onnx(model, "case.onnx")
    module = build_module(graph, seed=None).eval()
    with torch.no_grad():
        got = module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in graph.inputs])
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        g = g.numpy()
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op, attrs, text", [
    ("ReduceMax", {"axes": [1]}, ".amax(dim=(1,), keepdim=True)"),  # (archc's amax op)
    ("ReduceMin", {"axes": [1, 2], "keepdims": 0}, "x0.amin((1, 2), keepdim=False)"),
])
def test_reduction_axes_from_an_attribute_are_a_tuple_literal_jit_script_can_size(op, attrs, text):
    # seen transcribing CBAM: `x.amax(tuple([1]), keepdim=True)` failed ruff (C409) and torch.jit.script
    model = one_node_model(op, [np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)], [], attrs, 1,
                           17)
    graph = from_onnx(model, "case.onnx")
    assert text in generate_source(graph)
    module = build_module(graph, seed=None).eval()
    x = torch.randn(2, 3, 4)
    assert torch.equal(torch.jit.script(module)(x), module(x))


def test_a_file_with_onnx_nodes_keeps_its_lines_within_ruffs_default():
    # seen importing PoolFormer: the OnnxConstants docstring's first line was 89 columns (ruff's E501)
    model = one_node_model("PRelu", [f32(2, 3, 4)], [f32(3, 1)], {}, 1, 17)
    source = generate_source(from_onnx(model, "case.onnx"))
    assert "class OnnxConstants" in source
    assert max(map(len, source.splitlines())) <= 88


def test_a_constant_of_one_value_is_written_as_that_value():
    # seen importing PoolFormer: each layer scale's 32 copies of 1e-5 took 64 lines, twice (init and reset)
    model = one_node_model("PRelu", [f32(2, 3, 4)], [np.full((3, 1), 0.25, np.float32)], {}, 1, 17)
    graph = from_onnx(model, "case.onnx")
    source = generate_source(graph)
    assert "torch.full((3, 1), 0.25, dtype=torch.float32)" in source and "nn.init.constant_(" in source
    assert "0.25, 0.25" not in source
    module = build_module(graph, seed=None).eval()
    weights = [p for p in module.parameters()]
    assert len(weights) == 1 and torch.equal(weights[0], torch.full((3, 1), 0.25))


def test_the_cases_cover_most_of_the_table():
    covered = {c[1] for c in CASES}
    assert len(covered) >= 60 and len(TORCH_LOWERINGS) >= 120


def test_custom_domain_op_is_an_error_naming_op_and_node():
    node = helper.make_node("FancyOp", ["x"], ["y"], name="my_fancy", domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    graph = from_onnx(model, "custom.onnx")
    with pytest.raises(SpecError) as err:
        generate_source(graph)
    text = str(err.value)
    assert "my_fancy" in text and "FancyOp" in text and "com.example" in text


def test_gru_without_linear_before_reset_says_why():
    model = one_node_model("GRU", [f32(5, 2, 3)], [f32(1, 12, 3), f32(1, 12, 4)], {"hidden_size": 4}, 1, 17)
    with pytest.raises(SpecError, match="the_gru.*linear_before_reset=0"):
        generate_source(from_onnx(model, "gru.onnx"))


def _if_model(cond_nodes, inits):
    def branch(op, name):
        return helper.make_graph([helper.make_node(op, ["x"], [name + "_y"])], name, [],
                                 [helper.make_tensor_value_info(name + "_y", onnx.TensorProto.FLOAT, [2, 3])])

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("Relu", "t"), else_branch=branch("Neg", "e"),
                            name="the_if")
    graph = helper.make_graph([*cond_nodes, node], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("cond", [True, False])
def test_if_on_a_constant_condition_becomes_its_branch(cond):
    model = _if_model([], [numpy_helper.from_array(np.array(cond), "c")])
    graph = from_onnx(model, "if.onnx")
    assert [n.attrs["op_type"] for n in graph.nodes() if n.op == "onnx_node"] == ([] if cond else ["Neg"])
    x = f32(2, 3)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(build_module(graph, seed=None)(torch.from_numpy(x)).detach().numpy(), expected)


def test_if_on_a_computed_condition_is_an_error_naming_the_node():
    cond = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0), helper.make_node("Greater", ["s", "z"], ["c"])]
    model = _if_model(cond, [numpy_helper.from_array(np.array(0, np.float32), "z")])
    with pytest.raises(SpecError, match="the_if.*does not fold away"):
        from_onnx(model, "if.onnx")


def _check_against_ort(model, feeds):
    expected = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    graph = from_onnx(model, "cf.onnx")
    assert not any(n.op == "onnx_node" and n.attrs["op_type"] in ("Loop", "Scan") for n in graph.nodes())
    got = build_module(graph, seed=None)(*[torch.from_numpy(feeds[graph.node(n).meta["onnx_name"]])
                                           for n in graph.inputs])
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.detach().numpy(), e, rtol=1e-5, atol=1e-6)
    return graph


def test_loop_of_a_constant_trip_count_is_unrolled():
    """acc = acc * 0.5 + x, three times, and each iteration's acc stacked as a scan output."""
    F32 = onnx.TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Mul", ["acc_in", "half"], ["scaled"]),
         helper.make_node("Add", ["scaled", "x"], ["acc_out"]),
         helper.make_node("Identity", ["acc_out"], ["scan_out"])],
        "body", [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", F32, [2, 3])],
        [helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", F32, [2, 3]), helper.make_tensor_value_info("scan_out", F32, [2, 3])],
        initializer=[numpy_helper.from_array(np.array(0.5, np.float32), "half")])
    loop = helper.make_node("Loop", ["trip", "", "x"], ["acc", "all"], body=body, name="the_loop")
    graph = helper.make_graph([loop], "g", [helper.make_tensor_value_info("x", F32, [2, 3])],
                              [helper.make_tensor_value_info("acc", F32, [2, 3]),
                               helper.make_tensor_value_info("all", F32, [3, 2, 3])],
                              initializer=[numpy_helper.from_array(np.array(3, np.int64), "trip")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _check_against_ort(model, {"x": f32(2, 3)})


def test_scan_of_a_known_length_is_unrolled():
    """A running sum over axis 1 of (2, 4) in reverse, with the partial sums as a scan output."""
    F32 = onnx.TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "col"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["y"])],
        "body", [helper.make_tensor_value_info("s_in", F32, [2]), helper.make_tensor_value_info("col", F32, [2])],
        [helper.make_tensor_value_info("s_out", F32, [2]), helper.make_tensor_value_info("y", F32, [2])])
    scan = helper.make_node("Scan", ["s0", "x"], ["total", "partial"], body=body, num_scan_inputs=1,
                            scan_input_axes=[1], scan_input_directions=[1], name="the_scan")
    graph = helper.make_graph([scan], "g", [helper.make_tensor_value_info("s0", F32, [2]),
                                            helper.make_tensor_value_info("x", F32, [2, 4])],
                              [helper.make_tensor_value_info("total", F32, [2]),
                               helper.make_tensor_value_info("partial", F32, [4, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    _check_against_ort(model, {"s0": f32(2), "x": f32(2, 4)})


def test_loop_with_a_computed_trip_count_is_an_error_naming_the_node():
    body = helper.make_graph([helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("Relu", ["v"], ["v2"])],
                             "body", [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
                                      helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, []),
                                      helper.make_tensor_value_info("v", onnx.TensorProto.FLOAT, [2])],
                             [helper.make_tensor_value_info("c2", onnx.TensorProto.BOOL, []),
                              helper.make_tensor_value_info("v2", onnx.TensorProto.FLOAT, [2])])
    nodes = [helper.make_node("Loop", ["n", "", "x"], ["y"], body=body, name="the_loop")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2]),
                                           helper.make_tensor_value_info("n", onnx.TensorProto.INT64, [])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(SpecError, match="the_loop.*Loop of a constant trip count"):
        from_onnx(model, "loop.onnx")


def test_avgpool_ceil_mode_with_asymmetric_pads_excluded_is_an_error_naming_the_node():
    """onnxruntime drops a last window that starts in the end padding, ONNX's shape inference keeps
    it: no PyTorch expression can agree with both, so the node is refused, by name."""
    node = helper.make_node("AveragePool", ["x"], ["y"], name="pool5", kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 1, 2, 2], ceil_mode=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 7, 7])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 5, 5])])
    graph = from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), "pool.onnx")
    with pytest.raises(SpecError, match="node 'pool5': imported ONNX op 'AveragePool' cannot be written as PyTorch: "
                                        "ceil_mode with asymmetric pads without count_include_pad"):
        generate_source(graph)


@pytest.mark.parametrize("op, attrs, index", [
    ("Gather", {"axis": 1}, np.array([[0, 7]], np.int64)),
    ("GatherElements", {"axis": 1}, np.array([[0, 7, 1, 2]], np.int64)),
    ("ScatterElements", {"axis": 1}, np.array([[0, 7, 1, 2]], np.int64)),
])
def test_an_index_out_of_range_is_refused_as_onnxruntime_refuses_it(op, attrs, index):
    # (index % size, which counts negative indices from the end, also wrapped 7 into a size of 4: a
    # silent result where onnxruntime and torch refuse the index)
    data = np.arange(8, dtype=np.float32).reshape(2, 4)
    names = ["x0", "x1"] + (["x2"] if op == "ScatterElements" else [])
    inputs = [helper.make_tensor_value_info("x0", onnx.TensorProto.FLOAT, [2, 4]),
              helper.make_tensor_value_info("x1", onnx.TensorProto.INT64, list(index.shape))]
    if op == "ScatterElements":
        inputs.append(helper.make_tensor_value_info("x2", onnx.TensorProto.FLOAT, list(index.shape)))
    node = helper.make_node(op, names, ["y"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_empty_tensor_value_info("y")])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    feeds = {"x0": data, "x1": index, "x2": np.ones(index.shape, np.float32)}
    feeds = {k: v for k, v in feeds.items() if k in names}
    with pytest.raises(Exception):
        ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    module = build_module(from_onnx(model, "oob.onnx"), seed=None).eval()
    with pytest.raises((RuntimeError, IndexError)):
        module(*[torch.from_numpy(feeds[n]) for n in names])


@pytest.mark.parametrize("dtype", [onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64])
def test_a_bit_shift_of_wide_unsigned_integers_is_refused_at_build_naming_the_node(dtype):
    # the PyTorch file was written, then failed at run time ("lshift_cpu" not implemented for 'UInt32')
    node = helper.make_node("BitShift", ["x", "s"], ["y"], name="the_shift", direction="LEFT")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, [4]),
                                            helper.make_tensor_value_info("s", dtype, [4])],
                              [helper.make_tensor_value_info("y", dtype, [4])])
    graph = from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), "shift.onnx")
    with pytest.raises(SpecError) as err:
        generate_source(graph)
    name = onnx.helper.tensor_dtype_to_np_dtype(dtype).name
    assert "the_shift" in str(err.value) and f"on {name} tensors (PyTorch shifts uint8 and signed integers only)" \
        in str(err.value), str(err.value)
