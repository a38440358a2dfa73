"""pixel_shuffle and pixel_unshuffle (sub-pixel convolution, ESPCN) against nn.PixelShuffle and
nn.PixelUnshuffle; the import of what torch's two exporters write for them."""
from __future__ import annotations


import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from ops_harness import export_onnx, check_parity, feeds_for, graph_of, run_onnx, spec_error

from archc.frontends.onnx import from_onnx
from archc.lowering.torch import build_module

SHUFFLES = {
    "r2": ("inputs: {x: [N, 8, 3, 5]}\nnodes: [{op: pixel_shuffle, upscale_factor: 2}]", torch.nn.PixelShuffle(2)),
    "r3": ("inputs: {x: [N, 18, 2, 3]}\nnodes: [{op: pixel_shuffle, upscale_factor: 3}]", torch.nn.PixelShuffle(3)),
    "r1": ("inputs: {x: [N, 3, 2, 2]}\nnodes: [{op: pixel_shuffle, upscale_factor: 1}]", torch.nn.PixelShuffle(1)),
    "un_r2": ("inputs: {x: [N, 3, 4, 6]}\nnodes: [{op: pixel_unshuffle, downscale_factor: 2}]",
              torch.nn.PixelUnshuffle(2)),
    "un_r3": ("inputs: {x: [N, 2, 9, 3]}\nnodes: [{op: pixel_unshuffle, downscale_factor: 3}]",
              torch.nn.PixelUnshuffle(3)),
    "un_fixed_batch": ("inputs: {x: [1, 1, 2, 2]}\nnodes: [{op: pixel_unshuffle, downscale_factor: 2}]",
                       torch.nn.PixelUnshuffle(2)),
}


@pytest.mark.parametrize("name", SHUFFLES)
def test_torch_and_onnxruntime_agree_with_the_nn_modules(name):
    text, reference = SHUFFLES[name]
    graph, (out,) = check_parity(text)
    feeds = feeds_for(graph)
    expected = reference(torch.from_numpy(feeds["x"])).numpy()
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(run_onnx(graph, feeds)[0], expected)


def test_unshuffle_undoes_shuffle_and_the_spec_keeps_its_shapes():
    graph = graph_of("inputs: {x: [N, 12, 3, 4]}\nnodes:\n  - {op: pixel_shuffle, upscale_factor: 2}\n"
                     "  - {op: pixel_unshuffle, downscale_factor: 2}")
    shapes = [n.outputs[0].shape for n in graph.nodes() if n.op.startswith("pixel")]
    assert shapes == [("N", 3, 6, 8), ("N", 12, 3, 4)]
    feeds = feeds_for(graph)
    np.testing.assert_array_equal(run_onnx(graph, feeds)[0], feeds["x"])


def test_a_sub_pixel_output_channel_takes_consecutive_input_channels():
    # output[c, h*r + i, w*r + j] = input[c*r^2 + i*r + j, h, w]: channel 0's 2x2 block is channels 0..3
    graph = graph_of("inputs: {x: [1, 8, 1, 1]}\nnodes: [{op: pixel_shuffle, upscale_factor: 2}]")
    (out,) = run_onnx(graph, {"x": np.arange(8, dtype=np.float32).reshape(1, 8, 1, 1)})
    assert out.tolist() == [[[[0, 1], [2, 3]], [[4, 5], [6, 7]]]]


def test_onnx_space_to_depth_would_order_the_channels_otherwise():
    # why pixel_unshuffle is a Reshape/Transpose/Reshape and not SpaceToDepth: with C > 1 the orders differ
    node = helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2)
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 1, 1])]),
        opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    (space_to_depth,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    torch_order = torch.nn.PixelUnshuffle(2)(torch.from_numpy(x)).numpy()
    assert not np.array_equal(space_to_depth, torch_order)
    graph = graph_of("inputs: {x: [1, 2, 2, 2]}\nnodes: [{op: pixel_unshuffle, downscale_factor: 2}]")
    np.testing.assert_array_equal(run_onnx(graph, {"x": x})[0], torch_order)


@pytest.mark.parametrize("text, message", [
    ("inputs: {x: [N, 6, 4, 4]}\nnodes: [{op: pixel_shuffle, upscale_factor: 2}]",
     "pixel_shuffle: upscale_factor 2 needs channels divisible by 2^2 = 4, got 6 in (N, 6, 4, 4)"),
    ("inputs: {x: [N, 8, 4]}\nnodes: [{op: pixel_shuffle, upscale_factor: 2}]",
     "pixel_shuffle: expected a 4-D (N, C, H, W) input, got 3-D (N, 8, 4)"),
    ("inputs: {x: [N, C, 4, 4]}\nnodes: [{op: pixel_shuffle, upscale_factor: 2}]",
     "pixel_shuffle needs a known channel count (dim 1), got (N, C, 4, 4)"),
    ("inputs: {x: [N, 4, H, 4]}\nnodes: [{op: pixel_shuffle, upscale_factor: 2}]",
     "pixel_shuffle: the height (dim 2) must be a known size, got symbolic 'H'"),
    ("inputs: {x: [N, 4, 4, 4]}\nnodes: [{op: pixel_shuffle, upscale_factor: 0}]",
     "attribute 'upscale_factor' of op 'pixel_shuffle' must be at least 1, got 0"),
    ("inputs: {x: [N, 2, 4, 6]}\nnodes: [{op: pixel_unshuffle, downscale_factor: 4}]",
     "pixel_unshuffle: downscale_factor 4 needs a height and width divisible by 4, got 4 x 6 in (N, 2, 4, 6)"),
    ("inputs: {x: [N, 2, 4, 6, 2]}\nnodes: [{op: pixel_unshuffle, downscale_factor: 2}]",
     "pixel_unshuffle: expected a 4-D (N, C, H, W) input, got 5-D"),
    ("inputs: {x: [N, C, 4, 6]}\nnodes: [{op: pixel_unshuffle, downscale_factor: 2}]",
     "pixel_unshuffle needs a known channel count (dim 1)"),
])
def test_bad_shuffles_say_what_was_expected(text, message):
    error = spec_error(text)
    assert message in error
    assert error.startswith("<spec>:3:") and ": error: node 'pixel_" in error  # located: the node's line


class _SubPixelHead(torch.nn.Module):
    """ESPCN's tail: a conv to r^2 * C channels, then the shuffle."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 12, 3, padding=1)
        self.shuffle = torch.nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_both_exporters_depth_to_space_imports_as_pixel_shuffle(dynamo):
    torch.manual_seed(0)
    head, x = _SubPixelHead(), torch.randn(2, 3, 5, 4)
    model = export_onnx(head, x, dynamo)
    assert [(n.op_type, helper.get_attribute_value(a)) for n in model.graph.node if n.op_type == "DepthToSpace"
            for a in n.attribute if a.name == "mode"] == [("DepthToSpace", b"CRD")]
    graph = from_onnx(model, "espcn.onnx")
    (shuffle,) = [n for n in graph.nodes() if n.op == "pixel_shuffle"]
    assert shuffle.attrs["upscale_factor"] == 2
    with torch.no_grad():
        got = build_module(graph).eval()(x)
        np.testing.assert_allclose(got.numpy(), head(x).numpy(), rtol=1e-5, atol=1e-6)


def test_depth_to_space_in_dcr_mode_stays_the_onnx_op_it_is():
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="DCR")
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 6])]),
        opset_imports=[helper.make_opsetid("", 17)])
    assert [n.op for n in from_onnx(model, "dcr.onnx").nodes() if n.op not in ("input", "output")] == ["onnx_node"]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_both_exporters_pixel_unshuffle_imports_and_computes_what_torch_does(dynamo):
    # the exporters write Reshape/Transpose/Reshape, imported as the reshapes and permute they are
    module, x = torch.nn.PixelUnshuffle(2), torch.randn(2, 3, 4, 6)
    graph = from_onnx(export_onnx(module, x, dynamo), "unshuffle.onnx")
    with torch.no_grad():
        np.testing.assert_array_equal(build_module(graph).eval()(x).numpy(), module(x).numpy())


def test_archc_spec_writes_an_exported_shuffle_back_as_pixel_shuffle(tmp_path, run_archc):
    path = tmp_path / "espcn.onnx"
    torch.manual_seed(0)
    onnx.save(export_onnx(_SubPixelHead(), torch.randn(1, 3, 5, 4), dynamo=False), path)
    spec = run_archc("spec", str(path), "-o", str(tmp_path / "espcn.yaml"), check=True)
    assert spec.returncode == 0
    assert "op: pixel_shuffle, upscale_factor: 2" in (tmp_path / "espcn.yaml").read_text()
    run_archc("verify", str(path), check=True)
