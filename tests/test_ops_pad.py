"""pad: F.pad as a native op (Glow's ZeroConv2d pads with 1), against F.pad itself, in PyTorch and
onnxruntime, and ONNX Pads from both of torch's exporters imported as it."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from archc.frontends.onnx import from_onnx
from archc.lowering.onnx import OPSET, to_onnx
from archc.lowering.torch import build_module, generate_source
from ops_harness import check_parity, export_onnx, feeds_for, graph_of, spec_error

#: case -> (input shape, pads, mode, value): each mode, crops, symbolic dims, integers
CASES = {
    "glow_value_1": ("[N, 4, 8, 8]", [1, 1, 1, 1], "constant", 1.0),
    "zeros_three_dims": ("[N, 2, 3, 4, 5]", [0, 1, 2, 0, 1, 1], "constant", 0.0),
    "crop_and_pad": ("[N, 3, 6, 7]", [-1, 2, 1, -2], "constant", -0.5),
    "symbolic_length": ("[N, 4, L]", [3, 0], "constant", 0.25),
    "batch_dim_too": ("[N, 3, 4]", [1, 0, 0, 0, 1, 1], "constant", 2.0),
    "reflect_2d": ("[N, 3, 5, 6]", [4, 1, 2, 3], "reflect", 0.0),
    "reflect_1d_unbatched": ("[3, 7]", [2, 6], "reflect", 0.0),
    "reflect_symbolic": ("[N, 2, L]", [1, 2], "reflect", 0.0),
    "replicate_3d": ("[N, 2, 3, 4, 5]", [1, 2, 0, 3, 2, 1], "replicate", 0.0),
    "circular_whole_size": ("[N, 2, 3, 4]", [4, 1, 0, 3], "circular", 0.0),
    "circular_symbolic": ("[N, 3, L]", [2, 1], "circular", 0.0),
}


def _spec(shape: str, pads: list[int], mode: str, value: float, dtype: str = "") -> str:
    inputs = f"{{x: {{shape: {shape}, dtype: {dtype}}}}}" if dtype else f"{{x: {shape}}}"
    return f"inputs: {inputs}\nnodes: [{{op: pad, pads: {pads}, mode: {mode}, value: {value}}}]"


@pytest.mark.parametrize("name", CASES)
def test_torch_and_onnxruntime_compute_f_pad(name):
    shape, pads, mode, value = CASES[name]
    graph, (out,) = check_parity(_spec(shape, pads, mode, value))
    x = torch.from_numpy(feeds_for(graph)["x"])
    expected = F.pad(x, pads, mode=mode, value=value) if mode == "constant" else F.pad(x, pads, mode=mode)
    np.testing.assert_array_equal(out, expected.numpy())


def test_integer_tensors_are_filled_with_a_whole_value():
    _, (out,) = check_parity(_spec("[N, 3, 4]", [1, 2], "constant", 7.0, dtype="int64"), high={"x": 5})
    assert out.dtype == np.int64 and (out[..., 0] == 7).all() and (out[..., -2:] == 7).all()


def test_the_shape_grows_symbolic_dims_as_expressions():
    graph = graph_of("inputs: {x: [N, 3, L]}\nnodes: [{name: p, op: pad, pads: [2, 1, -1, 0]}]")
    assert graph.node("p").outputs[0].shape == ("N", 2, "L + 3")
    graph = graph_of("inputs: {x: [N, 3, L]}\nnodes: [{name: p, op: pad, pads: [-2, 1]}]")
    assert graph.node("p").outputs[0].shape == ("N", 3, "L - 1")


@pytest.mark.parametrize("pads, mode, value, text", [
    ([1, 1, 1, 1], "constant", 1.0, "F.pad(x, [1, 1, 1, 1], value=1.0)"),
    ([0, 2], "constant", 0.0, "F.pad(x, [0, 2])"),
    ([1, 2, 1, 0], "reflect", 0.0, 'F.pad(x, [1, 2, 1, 0], mode="reflect")'),
    ([1, 1, 2, 2], "replicate", 0.0, 'F.pad(x, [1, 1, 2, 2], mode="replicate")'),
    ([3, 1, 0, 4], "circular", 0.0, 'F.pad(x, [3, 1, 0, 4], mode="circular")'),
])
def test_the_generated_code_is_f_pad_with_literals_and_traces_exports_and_scripts(pads, mode, value, text):
    # an onnx_node Pad read its pads and value from buffers in a lambda: no fx, export or script
    graph = graph_of(_spec("[N, 4, 5, 6]", pads, mode, value))
    assert f"pad = {text}\n" in generate_source(graph)
    module = build_module(graph).eval()
    assert not module.state_dict()
    x = torch.randn(3, 4, 5, 6)
    expected = module(x)
    torch.testing.assert_close(torch.fx.symbolic_trace(module)(x), expected)
    torch.testing.assert_close(torch.jit.script(module)(x), expected)
    exported = torch.export.export(module, (torch.randn(2, 4, 5, 6),),
                                   dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.testing.assert_close(exported.module()(x), expected)


def test_circular_padding_in_onnx_is_slices_and_concats_at_opset_17():
    # ONNX Pad's wrap mode needs opset 19; archc writes opset 17
    model = to_onnx(graph_of(_spec("[N, 2, 3, 4]", [4, 1, 0, 3], "circular", 0.0)))
    assert OPSET == 17 and model.opset_import[0].version == 17
    ops = {n.op_type for n in model.graph.node}
    assert "Pad" not in ops and {"Slice", "Concat"} <= ops


@pytest.mark.parametrize("text, message", [
    (_spec("[N, 3, 4]", [1, 1, 1], "constant", 0.0), "pads [1, 1, 1] must come in pairs (before, after) per dim"),
    (_spec("[N, 4]", [1, 1, 1, 1, 1, 1], "constant", 0.0), "pads [1, 1, 1, 1, 1, 1] pad 3 dims, but the input"),
    (_spec("[N, 3, 4]", [1, 1], "reflect", 1.0), "value 1.0 fills mode 'constant' only"),
    (_spec("[N, 3, 4, 5]", [1, 1], "reflect", 0.0),
     ("mode 'reflect' pads the last 1 to 3 dims of an input with one or two dims more (batch, channels), as "
      "F.pad does: pads of 1 dim need a 2-D or 3-D input, got")),
    (_spec("[N, 3, 4, 5]", [1, 1, 1, 1, 1, 1, 1, 1], "replicate", 0.0), "pads of 4 dims need a 5-D or 6-D input"),
    (_spec("[N, 3, 4]", [-1, 1], "replicate", 0.0),
     "mode 'replicate' takes pads of at least 0 (only mode 'constant' crops), got -1, 1 for dim 2"),
    (_spec("[N, 3, 4]", [1, 4], "reflect", 0.0), "mode 'reflect' pads dim 2 of"),
    (_spec("[N, 3, 4]", [1, 4], "reflect", 0.0), "by less than its size 4, got 1, 4"),
    (_spec("[N, 3, 4]", [5, 0], "circular", 0.0), "by at most its size 4, got 5, 0"),
    (_spec("[N, 3, 4]", [-2, -2], "constant", 0.0),
     "pads -2, -2 crop all 4 elements of dim 2 of (N, 3, 4); a padded dim keeps at least one"),
    (_spec("[N, 3, 4]", [1, 1], "constant", 0.5, dtype="int64"),
     "value 0.5 is not a whole number, and the input holds int64"),
    (_spec("[N, 3, 4]", [1, 1], "wrap", 0.0), "attribute 'mode' of op 'pad'"),
])
def test_bad_pads_say_what_was_expected(text, message):
    assert message in spec_error(text)


# -- ONNX import ------------------------------------------------------------------------------

class _Padding(torch.nn.Module):
    def __init__(self, pads: list[int], mode: str, value: float) -> None:
        super().__init__()
        self.pads, self.mode, self.value = pads, mode, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(x, self.pads, value=self.value)
        return F.pad(x, self.pads, mode=self.mode)


#: (pads, mode, value, the pad node's attributes after import: pads as F.pad's trimmed list)
IMPORTS = [
    ([1, 1, 1, 1], "constant", 1.0, {"pads": (1, 1, 1, 1), "mode": "constant", "value": 1.0}),
    ([1, 2, 0, 0], "constant", 0.5, {"pads": (1, 2), "mode": "constant", "value": 0.5}),
    ([1, -1, 0, 0, 2, 0], "constant", 0.0, {"pads": (1, -1, 0, 0, 2, 0), "mode": "constant", "value": 0.0}),
    ([2, 1, 0, 0], "reflect", 0.0, {"pads": (2, 1, 0, 0), "mode": "reflect", "value": 0.0}),
    ([1, 2, 0, 1], "replicate", 0.0, {"pads": (1, 2, 0, 1), "mode": "replicate", "value": 0.0}),
    ([1, 2, 2, 1], "circular", 0.0, {"pads": (1, 2, 2, 1), "mode": "circular", "value": 0.0}),
]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("pads, mode, value, attrs", IMPORTS, ids=[f"{c[1]}{c[0]}" for c in IMPORTS])
def test_an_exported_f_pad_imports_as_pad_and_computes_the_same(pads, mode, value, attrs, dynamo):
    reference = _Padding(pads, mode, value).eval()
    x = torch.randn(2, 3, 5, 6)
    graph = from_onnx(export_onnx(reference, x, dynamo), "padded.onnx")
    kept = [n.attrs["op_type"] for n in graph.nodes() if n.op == "onnx_node"]
    assert not kept
    padded = [n for n in graph.nodes() if n.op == "pad"]
    if mode == "circular" and not dynamo:
        # the TorchScript exporter writes circular padding as slices and concats, which import as such
        assert not padded and any(n.op == "concat" for n in graph.nodes())
    else:
        assert [{k: n.attrs[k] for k in attrs} for n in padded] == [attrs]
    expected = reference(x).numpy()
    with torch.no_grad():
        np.testing.assert_allclose(build_module(graph).eval()(x).numpy(), expected, rtol=1e-6)
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {next(iter(graph.inputs)): x.numpy()})[0],
                               expected, rtol=1e-6)


def test_a_pad_f_pad_cannot_write_stays_the_onnx_node_and_still_computes():
    # edge padding of the batch dim: F.pad's replicate pads only the dims after batch and channels
    from test_onnx_torch_ops import one_node_model

    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    model = one_node_model("Pad", [x], [np.array([1, 0, 0, 0, 0, 1], np.int64)], {"mode": "edge"}, 1, 17)
    graph = from_onnx(model, "edge.onnx")
    assert [n.attrs["op_type"] for n in graph.nodes() if n.op == "onnx_node"] == ["Pad"]
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x0": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(build_module(graph).eval()(torch.from_numpy(x)).numpy(), expected)
