"""Upsampling: parity of ONNX Resize's coordinate modes with F.interpolate, shapes, errors; the
second input whose spatial size to take at run time (``in: [x, ref]``): parity at two sizes from
one build, the generated code under fx/export/script, ONNX import from both exporters, lint."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from archc.analysis.skips import analyze
from archc.cli import main
from archc.frontends.onnx import from_onnx
from archc.lowering.onnx import to_onnx
from archc.lowering.torch import build_module, generate_source
from archc.ops import registry
from ops_harness import check_parity, export_onnx, feeds_for, graph_of, onnx_model, spec_error
from ops_harness import parity_suite

PARITY_OPS = {"upsample"}

CASES = [
    ("nearest_x2", "inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, scale_factor: 2}]"),
    ("nearest_per_dim", "inputs: {x: [N, 2, 3, 5]}\nnodes: [{op: upsample, scale_factor: [3, 2]}]"),
    ("nearest_fractional", "inputs: {x: [N, 2, 4, 6]}\nnodes: [{op: upsample, scale_factor: 1.5}]"),
    ("nearest_size_odd", "inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, size: [7, 5]}]"),
    ("nearest_size_down", "inputs: {x: [N, 2, 9, 7]}\nnodes: [{op: interpolate, size: [4, 3]}]"),
    ("bilinear_x2", "inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, scale_factor: 2, mode: bilinear}]"),
    ("bilinear_size_odd", "inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, size: [5, 9], mode: bilinear}]"),
    ("bilinear_corners_scale", "inputs: {x: [N, 2, 3, 4]}\n"
     "nodes: [{op: upsample, scale_factor: 2, mode: bilinear, align_corners: true}]"),
    ("bilinear_corners_size", "inputs: {x: [N, 2, 3, 4]}\n"
     "nodes: [{op: upsample, size: [5, 9], mode: bilinear, align_corners: true}]"),
    ("linear1d", "inputs: {x: [N, 2, 5]}\nnodes: [{op: upsample, scale_factor: 3, mode: linear}]"),
    ("linear1d_corners_size", "inputs: {x: [N, 2, 5]}\n"
     "nodes: [{op: upsample, size: 8, mode: linear, align_corners: true}]"),
    ("nearest1d_size", "inputs: {x: [N, 3, 4]}\nnodes: [{op: upsample, size: 11}]"),
    ("nearest_like_ref", "inputs: {x: [N, 2, 3, 4], ref: [N, 1, L, T]}\nnodes: [{op: upsample, in: [x, ref]}]"),
    ("bilinear_like_ref", "inputs: {x: [N, 2, S, T], ref: [N, 5, L, B]}\n"
     "nodes: [{op: resize, in: [x, ref], mode: bilinear}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("text,shape", [
    ("inputs: {x: [N, 2, 4, 6]}\nnodes: [{op: upsample, scale_factor: 1.5}]", ("N", 2, 6, 9)),
    ("inputs: {x: [N, 2, 3, 5]}\nnodes: [{op: upsample, scale_factor: [3, 2]}]", ("N", 2, 9, 10)),
    ("inputs: {x: [N, 2, 5]}\nnodes: [{op: upsample, scale_factor: 0.5}]", ("N", 2, 2)),
    ("inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, size: 6}]", ("N", 2, 6, 6)),
    # a second input's spatial dims, symbolic ones kept (read at run time); x's batch and channels
    ("inputs: {x: [N, 2, 3, 4], ref: [B, 5, H, W]}\nnodes: [{op: upsample, in: [x, ref]}]", ("N", 2, "H", "W")),
    ("inputs: {x: [N, 2, 3, 4], ref: [N, 5, 7, W]}\nnodes: [{op: upsample, in: [x, ref]}]", ("N", 2, 7, "W")),
    ("inputs: {x: [N, 2, 9], ref: [N, 1, 4]}\nnodes: [{op: upsample, in: [x, ref], mode: linear}]", ("N", 2, 4)),
])
def test_inferred_shapes(text, shape):
    graph = graph_of(text)
    assert graph.type_of(graph.outputs["output"]).shape == shape


def test_nearest_repeats_pixels():
    graph, (out,) = check_parity(CASES[0][1])
    x = feeds_for(graph)["x"]
    np.testing.assert_array_equal(out, x.repeat(2, axis=2).repeat(2, axis=3))


def test_modes_agree_with_interpolate_reference():
    # The coordinate modes matter: half_pixel and align_corners differ, and each matches torch.
    x = feeds_for(graph_of(CASES[0][1]))["x"]
    for corners in (False, True):
        graph, (out,) = check_parity("inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, size: [5, 9], "
                                     f"mode: bilinear, align_corners: {str(corners).lower()}}}]")
        ref = F.interpolate(torch.from_numpy(x), size=(5, 9), mode="bilinear", align_corners=corners)
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-6)
        other = F.interpolate(torch.from_numpy(x), size=(5, 9), mode="bilinear", align_corners=not corners)
        assert np.abs(out - other.numpy()).max() > 1e-2


def test_role():
    graph = graph_of(CASES[0][1])
    node = list(graph.nodes())[-1]
    assert registry.lookup(node.op).role_of(node) == "upsample"


@pytest.mark.parametrize("text,message", [
    ("{op: upsample}", "give exactly one of scale_factor, size and a second input whose spatial size to take "
                       "(in: [x, ref])"),
    ("{op: upsample, scale_factor: 2, size: 6}",
     "give exactly one of scale_factor, size and a second input whose spatial size to take (in: [x, ref]); "
     "got scale_factor and size"),
    ("{op: upsample, scale_factor: 2, align_corners: true}",
     "align_corners applies only to the linear modes, not to 'nearest'"),
    ("{op: upsample, scale_factor: [2, 2, 2]}", "scale_factor needs 1 or 2 values, got 3"),
    ("{op: upsample, scale_factor: -1}", "attribute 'scale_factor' of op 'upsample' must be greater than 0, got -1"),
    ("{op: upsample, scale_factor: two}", "unknown name 'two'"),
    ("{op: upsample, scale_factor: 0.1}", "output size [0, 0] must be positive"),
    ("{op: upsample, size: 4, mode: bicubic}", "attribute 'mode' of op 'upsample' expects one of 'nearest', "
                                               "'linear', 'bilinear', got 'bicubic'"),
])
def test_errors(text, message):
    msg = spec_error(f"inputs: {{x: [N, 2, 3, 4]}}\nnodes: [{text}]")
    assert message in msg


@pytest.mark.parametrize("scale, height", [(2, "H*2"), (0.5, "H//2"), (1.5, "H + H//2")])
def test_a_scale_of_few_binary_places_resizes_a_symbolic_size(scale, height):
    text = f"inputs: {{x: [N, 2, H, 4]}}\nnodes: [{{op: upsample, scale_factor: {scale}}}]"
    graph = graph_of(text)
    assert graph.type_of(graph.outputs["output"]).shape == ("N", 2, height, int(4 * scale))
    for h in (5, 8):  # (one build, torch and onnxruntime at two sizes)
        check_parity(text, sizes={"N": 2, "H": h})


def test_other_scales_need_a_known_spatial_size():
    msg = spec_error("inputs: {x: [N, 2, H, 4]}\nnodes: [{op: upsample, scale_factor: 0.3}]")
    assert ("scale_factor 0.3 of symbolic size 'H' gives a size archc cannot write as an expression; a symbolic "
            "size takes a whole scale or one of few binary places (2, 0.5, 1.5); give the input a known size") in msg


# -- a second input whose spatial size to take (in: [x, ref]) ---------------------------------

#: two sizes for the symbolic dims of one build: x up and down, ref of other sizes each time
RUN_SIZES = ({"N": 2, "H": 3, "W": 4, "S": 7, "T": 9}, {"N": 3, "H": 6, "W": 5, "S": 4, "T": 11})


@pytest.mark.parametrize("mode,corners", [("nearest", False), ("bilinear", False), ("bilinear", True),
                                          ("linear", False), ("linear", True)])
def test_resizes_to_the_second_inputs_size_read_at_run_time(mode, corners):
    # One build (a torch module, an onnxruntime session) run at two input sizes, against
    # F.interpolate(x, size=ref.shape[2:]) at each: the size is not frozen at build.
    spatial = "H, W" if mode != "linear" else "H"
    ref_spatial = "S, T" if mode != "linear" else "S"
    graph = graph_of(f"inputs: {{x: [N, 2, {spatial}], ref: [N, 3, {ref_spatial}]}}\n"
                     f"nodes: [{{op: upsample, in: [x, ref], mode: {mode}, align_corners: {str(corners).lower()}}}]")
    module = build_module(graph).eval()
    session = ort.InferenceSession(onnx_model(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    for sizes in RUN_SIZES:
        feeds = feeds_for(graph, sizes)
        x, ref = torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["ref"])
        extra = {} if mode == "nearest" else {"align_corners": corners}
        want = F.interpolate(x, size=ref.shape[2:], mode=mode, **extra).numpy()
        assert want.shape[2:] == ref.shape[2:]
        with torch.no_grad():
            np.testing.assert_allclose(module(x, ref).numpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(session.run(None, feeds)[0], want, rtol=1e-5, atol=1e-6)


def test_the_onnx_sizes_are_read_from_the_second_inputs_shape():
    # Resize's sizes: x's batch and channels, ref's spatial dims, both from Shape at run time
    graph = graph_of("inputs: {x: [N, 2, 3, 4], ref: [N, 1, 7, 9]}\nnodes: [{op: upsample, in: [x, ref]}]")
    model = onnx_model(graph)
    shapes = {n.output[0]: (n.input[0], {a.name: a.i for a in n.attribute})
              for n in model.graph.node if n.op_type == "Shape"}
    (concat,) = [n for n in model.graph.node if n.op_type == "Concat"]
    assert [shapes[i] for i in concat.input] == [("x", {"start": 0, "end": 2}), ("ref", {"start": 2})]
    assert not model.graph.initializer  # no size written as a number


@pytest.mark.parametrize("text,message", [
    ("{op: upsample, in: [x, ref], size: 6}", "give exactly one of scale_factor, size and a second input "
                                              "whose spatial size to take (in: [x, ref]); got size and a second input"),
    ("{op: upsample, in: [x, ref], scale_factor: 2}", "; got scale_factor and a second input"),
    ("{op: upsample, in: [x, flat]}", "the second input gives the output's spatial size, so it must have x's rank 4 "
                                      "(N, C, H, W), got 2-D (N, 7)"),
    ("{op: upsample, in: [x, ref], align_corners: true}",
     "align_corners applies only to the linear modes, not to 'nearest'"),
    ("{op: upsample, in: [x, ref, ref]}", "node 'upsample': op 'upsample' takes 1 to 2 input(s), got 3"),
])
def test_errors_of_the_second_input(text, message):
    msg = spec_error(f"inputs: {{x: [N, 2, 3, 4], ref: [N, 1, H, W], flat: [N, 7]}}\nnodes: [{text}]")
    assert message in msg and msg.startswith("<spec>:3:"), msg  # (located: the node's line)


def test_generated_code_reads_the_size_as_written_by_hand_and_traces():
    graph = graph_of("inputs: {x: [N, 2, H, W], ref: [N, 3, S, T]}\n"
                     "nodes: [{name: up, op: upsample, in: [x, ref], mode: bilinear}]")
    source = generate_source(graph)
    assert 'up = F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)' in source
    module = build_module(graph).eval()
    x, ref = torch.randn(3, 2, 5, 6), torch.randn(3, 3, 9, 4)
    want = F.interpolate(x, size=(9, 4), mode="bilinear", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(torch.fx.symbolic_trace(module)(x, ref), want)
        torch.testing.assert_close(torch.jit.script(module)(x, ref), want)
        dims = {name: torch.export.Dim(name, min=2, max=64) for name in ("N", "H", "W", "S", "T")}
        exported = torch.export.export(module, (torch.randn(2, 2, 3, 4), torch.randn(2, 3, 7, 8)),
                                       dynamic_shapes={"x": {0: dims["N"], 2: dims["H"], 3: dims["W"]},
                                                       "ref": {0: dims["N"], 2: dims["S"], 3: dims["T"]}})
        torch.testing.assert_close(exported.module()(x, ref), want)


# -- a tiny U-Net resizing its decoder to the skip's size ---------------------------------------

UNET = """name: tiny_unet
inputs: {{x: [N, 3, 9, 11]}}
nodes:
  - {{name: enc, op: conv, out_channels: 4, kernel_size: 3, padding: 1}}
  - {{name: enc_act, op: relu}}
  - {{name: down, op: maxpool, kernel_size: 2, ceil_mode: true}}
  - {{name: mid, op: conv, out_channels: 4, kernel_size: 3, padding: 1}}
  - {{name: mid_act, op: relu}}
  - {{name: up, op: upsample, {resize}, mode: bilinear}}
  - {{name: cat, op: concat, in: [up, enc_act]}}
  - {{name: dec, op: conv, out_channels: 2, kernel_size: 3, padding: 1}}
"""


class TinyUNet(torch.nn.Module):
    """UNET in plain torch, as such decoders are written: the skip's size read at run time."""

    def __init__(self):
        super().__init__()
        self.enc = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.mid = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.dec = torch.nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x):
        e = F.relu(self.enc(x))
        m = F.relu(self.mid(F.max_pool2d(e, 2, ceil_mode=True)))
        return self.dec(torch.cat([F.interpolate(m, size=e.shape[2:], mode="bilinear"), e], 1))


def _lint_table(tmp_path, capsys, resize: str) -> str:
    path = tmp_path / "unet.yaml"
    path.write_text(UNET.format(resize=resize))
    assert main(["lint", str(path)]) == 0
    return capsys.readouterr().out


def test_lint_sees_no_data_edge_from_the_size_input(tmp_path, capsys):
    # ref is read for its shape only: the skip is one long skip into the concat, exactly as with a
    # size fixed at build (read from it were a fork into the upsample: a branch, and twice the paths)
    like = _lint_table(tmp_path, capsys, "in: [mid_act, enc_act]")
    fixed = _lint_table(tmp_path, capsys, "size: [9, 11]")
    assert like == fixed
    assert "skips: residual 0, long_skip 1, dense 0, gated 0   (joins that are not skips: branch 0, sequential 0)" \
        in like
    analysis = analyze(graph_of(UNET.format(resize="in: [mid_act, enc_act]").split("\n", 1)[1]))
    (skip,) = analysis.connections
    assert (skip.kind, skip.fork, skip.merge) == ("long_skip", "enc_act", "cat")


def test_the_generated_unet_runs_at_any_input_size():
    # built at 9x11, it works at other sizes (an odd one the pooling rounds up) like the torch reference
    graph = graph_of(UNET.format(resize="in: [mid_act, enc_act]").split("\n", 1)[1])
    ours = build_module(graph).eval()
    reference = TinyUNet().eval()
    reference.load_state_dict(ours.state_dict())
    with torch.no_grad():
        for shape in ((2, 3, 9, 11), (1, 3, 13, 6)):
            x = torch.randn(*shape)
            torch.testing.assert_close(ours(x), reference(x))


# -- ONNX import of F.interpolate(x, size=ref.shape[2:]) ---------------------------------------

EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo", marks=pytest.mark.slow)]


def _export_dynamic(dynamo: bool) -> onnx.ModelProto:
    """TinyUNet exported with dynamic batch, height and width."""
    x = torch.randn(2, 3, 9, 11)
    if dynamo:
        dims = ({0: torch.export.Dim("N"), 2: torch.export.Dim("H"), 3: torch.export.Dim("W")},)
        return export_onnx(TinyUNet(), x, True, input_names=["x"], dynamic_shapes=dims)
    return export_onnx(TinyUNet(), x, False, input_names=["x"], dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}})


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_import_reads_the_size_from_the_tensor_the_file_takes_its_shape_of(dynamo):
    torch.manual_seed(0)
    model = _export_dynamic(dynamo)
    graph = from_onnx(model)
    (up,) = [n for n in graph.nodes() if registry.lookup(n.op).name == "upsample"]
    # the shape arithmetic is gone: the upsample reads the skip (TorchScript) or the input (dynamo,
    # which knows the skip has its size) for its size
    assert len(up.inputs) == 2 and up.inputs[1].node in ("x", "Relu")
    assert not [n for n in graph.nodes() if n.op == "onnx_node" and n.attrs["op_type"] != "MaxPool"]
    assert up.outputs[0].shape[2:] == ("H", "W")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    module = build_module(graph).eval()
    relowered = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in ((2, 3, 9, 11), (1, 3, 13, 6)):
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        want = session.run(None, {"x": x})[0]
        with torch.no_grad():
            np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(relowered.run(None, {"x": x})[0], want, rtol=1e-5, atol=1e-5)
    (skip,) = analyze(graph).connections
    assert skip.kind == "long_skip"


def test_archc_own_onnx_reads_back_as_the_second_input_form():
    graph = graph_of("inputs: {x: [N, 2, H, W], ref: [N, 1, S, T]}\n"
                     "nodes: [{name: up, op: upsample, in: [x, ref], mode: bilinear, align_corners: true}]")
    back = from_onnx(onnx_model(graph))
    (up,) = [n for n in back.nodes() if n.op not in ("input",)]
    assert (up.op, [v.node for v in up.inputs]) == ("upsample", ["x", "ref"])
    assert up.attrs["mode"] == "bilinear" and up.attrs["align_corners"] is True
    assert up.outputs[0].shape == ("N", 2, "S", "T")
