"""sum (torch.sum over dims): torch and onnxruntime against torch.sum, dtypes as torch promotes them,
ReduceSum's axes at opsets before and after 13, the import of ReduceSum from both torch exporters."""
from __future__ import annotations


import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from ops_harness import export_onnx, check_parity, feeds_for, graph_of, onnx_model, run_onnx, spec_error

import archc.lowering.onnx as onnx_lowering
from archc.frontends.onnx import from_onnx
from archc.lowering.torch import build_module

CASES = {
    "two_dims_kept": ("inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: sum, dims: [1, -1], keepdim: true}]", (1, -1), True),
    "tokens": ("inputs: {x: [N, 6, 4]}\nnodes: [{op: sum, dims: 1}]", (1,), False),
    "negative": ("inputs: {x: [N, 6, 4]}\nnodes: [{op: reduce_sum, dims: -2}]", (-2,), False),
    "batch": ("inputs: {x: [N, 3]}\nnodes: [{op: sum, dims: 0, keepdim: true}]", (0,), True),
    "all": ("inputs: {x: [2, 3]}\nnodes: [{op: sum, dims: [0, 1]}]", (0, 1), False),
}


@pytest.mark.parametrize("name", CASES)
def test_torch_and_onnxruntime_agree_with_torch_sum(name):
    text, dims, keepdim = CASES[name]
    graph, (out,) = check_parity(text)
    x = feeds_for(graph)["x"]
    expected = torch.sum(torch.from_numpy(x), dim=dims, keepdim=keepdim).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run_onnx(graph, feeds_for(graph))[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, result", [("float64", "float64"), ("int64", "int64"), ("int32", "int64"),
                                           ("uint8", "int64"), ("bool", "int64")])
def test_integers_and_booleans_sum_to_int64_as_torch_sum_does(dtype, result):
    text = f"inputs: {{x: {{shape: [N, 3, 4], dtype: {dtype}}}}}\nnodes: [{{op: sum, dims: [1, -1]}}]"
    graph, (out,) = check_parity(text)  # (check_parity: both builds give the inferred dtype, exactly)
    x = feeds_for(graph)["x"]
    expected = torch.sum(torch.from_numpy(x), dim=(1, -1))
    assert str(expected.dtype) == f"torch.{result}" and str(graph.type_of(graph.outputs["output"]).dtype) == result
    np.testing.assert_array_equal(out, expected.numpy())


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_the_reduce_sum_axes_are_written_for_the_opset(opset, monkeypatch):
    # ReduceSum's axes: an attribute up to opset 12, an input from 13 (ReduceMean's from 18)
    monkeypatch.setattr(onnx_lowering, "OPSET", opset)
    monkeypatch.setattr(onnx_lowering.Emitter, "opset", opset)
    graph = graph_of(CASES["two_dims_kept"][0])
    model = onnx_model(graph)
    (reduce,) = [n for n in model.graph.node if n.op_type == "ReduceSum"]
    assert (len(reduce.input), [a.name for a in reduce.attribute if a.name == "axes"]) == \
        ((2, []) if opset >= 13 else (1, ["axes"]))
    x = feeds_for(graph)["x"]
    (got,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(got, x.sum(axis=(1, 3), keepdims=True), rtol=1e-5, atol=1e-5)


def test_op_sum_is_not_the_expression_sum_nor_a_sum_of_tensors():
    # the node auto-named 'sum', the expression function sum([...]) and a reference to the node, side by side
    graph = graph_of("inputs: {x: [N, 3, 4, 4]}\nnodes:\n  - {op: sum, dims: 2, keepdim: true}\n"
                     "  - {op: conv, out_channels: 'sum([channels(sum), 1])', kernel_size: 1}")
    assert [(n.op, n.outputs[0].shape) for n in graph.nodes() if n.op != "input"] == \
        [("sum", ("N", 3, 1, 4)), ("conv", ("N", 4, 1, 4))]
    error = spec_error("inputs: {x: [N, 3], y: [N, 3]}\nnodes: [{op: sum, in: [x, y], dims: 1}]")
    assert error.startswith("<spec>:3:23: error: node 'sum': op 'sum' takes 1 input(s), got 2")
    assert "to add tensors element-wise: op: add, in: [x, y]" in error


@pytest.mark.parametrize("text, message", [
    ("inputs: {x: [N, 3, 4]}\nnodes: [{op: sum, dims: 3}]", "dim 3 is out of range for a 3-D input (N, 3, 4); "
     "expected -3 <= dim < 3"),
    ("inputs: {x: [N, 3, 4]}\nnodes: [{op: sum, dims: [1, -2]}]", "dims [1, -2] name the same dim twice"),
    ("inputs: {x: [N, 3, 4]}\nnodes: [{op: sum}]", "op 'sum' needs attribute 'dims' (the dim or dims to sum over"),
])
def test_bad_sums_say_what_was_expected(text, message):
    error = spec_error(text)
    assert message in error
    assert error.startswith("<spec>:3:") and ": error: node 'sum'" in error


class _TokenSum(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x).sum(dim=(1, -1), keepdim=True)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_both_exporters_reduce_sum_imports_as_sum(dynamo):
    x = torch.randn(2, 3, 4)
    graph = from_onnx(export_onnx(_TokenSum(), x, dynamo), "sum.onnx")
    (node,) = [n for n in graph.nodes() if n.op == "sum"]
    assert (sorted(d % 3 for d in node.attrs["dims"]), node.attrs["keepdim"]) == ([1, 2], True)
    with torch.no_grad():
        np.testing.assert_allclose(build_module(graph).eval()(x).numpy(), _TokenSum()(x).numpy(), rtol=1e-6)


def _reduce_sum_model(dtype: int, axes: list[int] | None, **attrs) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.array(axes, np.int64), "axes")] if axes is not None else []
    node = helper.make_node("ReduceSum", ["x", "axes"] if axes is not None else ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, [2, 3])],
                              [helper.make_tensor_value_info("y", dtype, None)], initializer=inits)
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_reduce_sums_that_are_no_torch_sum_stay_onnx_nodes_and_the_rest_import():
    def ops(model):
        return [n.op for n in from_onnx(model, "r.onnx").nodes() if n.op != "input"]
    # ONNX sums int32 to int32, torch to int64: kept as the ONNX node
    assert ops(_reduce_sum_model(TensorProto.INT32, [1])) == ["onnx_node"]
    assert ops(_reduce_sum_model(TensorProto.INT64, [1])) == ["sum"]
    # no axes: every dim, unless noop_with_empty_axes makes it the identity
    graph = from_onnx(_reduce_sum_model(TensorProto.FLOAT, None, keepdims=0), "all.onnx")
    assert [(n.op, n.attrs) for n in graph.nodes() if n.op != "input"] == [("sum", {"dims": (0, 1), "keepdim": False})]
    assert ops(_reduce_sum_model(TensorProto.FLOAT, None, noop_with_empty_axes=1)) == []


class _SumGatedResidual(torch.nn.Module):
    """A residual block whose branch is scaled by a sum over the channels of a sigmoid (ReduceSum on
    the main path, beside the residual's add)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        h = self.conv2(torch.relu(self.conv1(x)))
        return x + h * torch.sigmoid(h).sum(dim=1, keepdim=True)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_importing_reduce_sum_as_sum_changes_no_lint_label(dynamo, monkeypatch):
    from archc.analysis.skips import analyze
    from archc.frontends.onnx.convert import CONVERTERS
    from archc.frontends.onnx.importer import Fallback

    model = export_onnx(_SumGatedResidual(), torch.randn(1, 4, 6, 6), dynamo)
    native = from_onnx(model, "block.onnx")
    assert "sum" in {n.op for n in native.nodes()}

    def declines(im, node):
        raise Fallback("kept as the ONNX node, as before ReduceSum imported as sum")

    monkeypatch.setitem(CONVERTERS, "ReduceSum", declines)
    kept = from_onnx(model, "block.onnx")
    assert "sum" not in {n.op for n in kept.nodes()} and "onnx_node" in {n.op for n in kept.nodes()}

    def labels(graph):
        a = analyze(graph)
        return sorted((str(s.kind), str(s.carries)) for s in a.skips), sorted(str(j.kind) for j in a.joins), \
            a.paths.total
    assert labels(native) == labels(kept)
    assert labels(native)[0] == [("residual", "identity")]
