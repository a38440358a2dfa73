"""pad_to: x padded up to a second input's size read at run time, as the most used PyTorch U-Net pads its
upsampled map to the skip (milesial/Pytorch-UNet's ``Up``): parity with that code at static and symbolic
sizes, one build run at odd and even sizes, the generated code under fx/export/script, errors, lint's view
of the size input."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from archc.analysis.skips import analyze
from archc.lowering.torch import build_module, generate_source
from archc.frontends.onnx import from_onnx
from ops_harness import check_parity, export_onnx, feeds_for, graph_of, onnx_model, spec_error


def unet_pad(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """milesial/Pytorch-UNet's pad of the upsampled x1 to the skip x2, as written there."""
    diff_y, diff_x = ref.size()[2] - x.size()[2], ref.size()[3] - x.size()[3]
    return F.pad(x, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])


#: (case, spec, the reference on (x, ref))
CASES = [
    ("odd", "inputs: {x: [N, 3, 6, 4], ref: [N, 5, 9, 7]}\nnodes: [{op: pad_to, in: [x, ref]}]", unet_pad),
    ("equal", "inputs: {x: [N, 3, 6, 4], ref: [N, 5, 6, 4]}\nnodes: [{op: pad_to, in: [x, ref]}]", unet_pad),
    ("symbolic", "inputs: {x: [N, 3, 6, 4], ref: [N, 5, S, T]}\nnodes: [{op: pad_to, in: [x, ref]}]", unet_pad),
    ("one_dim_value", "inputs: {x: [N, 2, 5, 4], ref: [N, 1, 8, 4]}\n"
     "nodes: [{op: pad_to, in: [x, ref], dims: 2, value: -1.5}]",
     lambda x, r: F.pad(x, [0, 0, 1, 2], value=-1.5)),
    ("sequence", "inputs: {x: [N, 3, 4], ref: [N, 6, 4]}\nnodes: [{op: pad_to, in: [x, ref], dims: 1}]",
     lambda x, r: F.pad(x, [0, 0, 1, 2])),
]


@pytest.mark.parametrize("text, reference", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_torch_and_onnxruntime_agree_with_the_unet_s_own_padding(text, reference):
    graph, (out,) = check_parity(text)
    feeds = feeds_for(graph)
    want = reference(torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["ref"])).numpy()
    np.testing.assert_array_equal(out, want)


def test_one_build_pads_to_the_sizes_given_at_run_time():
    graph = graph_of("inputs: {x: [N, 3, H, W], ref: [N, 5, S, T]}\nnodes: [{op: pad_to, in: [x, ref]}]")
    assert graph.type_of(graph.outputs["output"]).shape == ("N", 3, "S", "T")
    module = build_module(graph).eval()
    session = ort.InferenceSession(onnx_model(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    for sizes in ({"N": 2, "H": 4, "W": 6, "S": 9, "T": 6}, {"N": 1, "H": 8, "W": 3, "S": 8, "T": 10}):
        feeds = feeds_for(graph, sizes)
        want = unet_pad(torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["ref"])).numpy()
        with torch.no_grad():
            np.testing.assert_array_equal(module(*map(torch.from_numpy, feeds.values())).numpy(), want)
        np.testing.assert_array_equal(session.run(None, feeds)[0], want)


@pytest.mark.parametrize("text, message", [
    ("{op: pad_to, in: [x, small]}", "dim 2: pad_to pads x up to ref's size, but ref's size 8 < x's size 9 "
                                     "(op crop cuts x down to it)"),
    ("{op: pad_to, in: [x, flat]}", "the second input gives the padded size, so it must have x's rank 4, got 2-D"),
    ("{op: pad_to, in: [flat, flat]}", "pad_to pads the dims after the first two (N, C, ...), and a 2-D input "
                                       "(N, 7) has none; give 'dims' to pad others"),
    ("{op: pad_to, in: [x, x], dims: [3, -1]}", "dims [3, -1] must name each dim to pad once"),
    ("{op: pad_to, in: [ids, ids]}", "pad_to fills with a number in a floating-point tensor, got int64"),
    ("{op: pad_to, in: x}", "op 'pad_to' takes 2 input(s), got 1"),
])
def test_errors_say_what_was_expected_at_the_node(text, message):
    msg = spec_error("inputs: {x: [N, 2, 9, 9], small: [N, 1, 8, 9], flat: [N, 7], "
                     f"ids: {{shape: [N, 2, 3, 3], dtype: int64}}}}\nnodes: [{text}]")
    assert message in msg and msg.startswith("<spec>:3:"), msg


def test_a_unet_level_with_odd_sizes_traces_exports_scripts_and_lints_one_long_skip():
    graph = graph_of("inputs: {x: [N, 3, 9, 7]}\nnodes:\n"
                     "  - {name: enc, op: conv, out_channels: 4, kernel_size: 3, padding: 1}\n"
                     "  - {op: maxpool, kernel_size: 2}\n"
                     "  - {name: up, op: conv_transpose, out_channels: 4, kernel_size: 2, stride: 2}\n"
                     "  - {name: padded, op: pad_to, in: [up, enc]}\n"
                     "  - {name: cat, op: concat, in: [enc, padded]}")
    assert "padded = pad_to(up, enc, [2, 3], 4)" in generate_source(graph)
    module = build_module(graph).eval()
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        want = module(x)
        assert want.shape == (2, 8, 9, 7)
        torch.testing.assert_close(torch.fx.symbolic_trace(module)(x), want)
        torch.testing.assert_close(torch.jit.script(module)(x), want)
        exported = torch.export.export(module, (x,), dynamic_shapes={"x": {0: torch.export.Dim("N", min=1, max=8)}})
        torch.testing.assert_close(exported.module()(x[:1]), want[:1])
    # (the size input is no data edge: the concat's skip from enc is the level's one long skip)
    assert [c.kind for c in analyze(graph, paths=False).connections] == ["long_skip"]


class UnetLevel(torch.nn.Module):
    """One level of milesial/Pytorch-UNet: the encoder's map, pooled and upsampled back, padded to the skip's
    size as its ``Up`` pads, concatenated with it."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.up = torch.nn.ConvTranspose2d(4, 4, 2, 2)
        self.out = torch.nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = self.enc(x)
        return self.out(torch.cat([x2, unet_pad(self.up(F.max_pool2d(x2, 2)), x2)], 1))


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_the_pad_to_the_skip_imports_as_pad_to(dynamo):
    # (exported with dynamic sizes, the pads are shape arithmetic: they were a dozen onnx_nodes and a Pad; the
    # TorchScript exporter's reversal of F.pad's pairs through a Transpose was not evaluated symbolically)
    torch.manual_seed(0)
    module = UnetLevel().eval()
    if dynamo:
        options = {"dynamic_shapes": ({2: torch.export.Dim("H", min=4, max=64), 3: torch.export.Dim("W", min=4, max=64)},)}
    else:
        options = {"dynamic_axes": {"x": {2: "H", 3: "W"}}}
    graph = from_onnx(export_onnx(module, torch.randn(1, 3, 9, 7), dynamo, input_names=["x"], **options))
    assert [n.op for n in graph.nodes()] == ["input", "conv", "maxpool", "conv_transpose", "pad_to", "concat", "conv"]
    built = build_module(graph).eval()
    built.load_state_dict(module.state_dict())
    x = torch.randn(2, 3, 13, 11)
    with torch.no_grad():
        torch.testing.assert_close(built(x), module(x), rtol=1e-5, atol=1e-6)

