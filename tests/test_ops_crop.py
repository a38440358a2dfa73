"""crop: x cut to a second input's size read at run time (FCN-8s' ``h[:, :, 5:5 + ref.size(2), ...]``, the
valid-convolution U-Net's centred crop): parity with the slicing written in torch at static and symbolic
sizes, one build run at two sizes, the generated code under fx/export/script, errors, lint's view of the
size input, and ONNX import of the slicing from both torch exporters."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archc.analysis.skips import analyze
from archc.cli import main
from archc.frontends.onnx import from_onnx
from archc.lowering.onnx import to_onnx
from archc.lowering.torch import build_module, generate_source
from ops_harness import check_parity, export_onnx, feeds_for, graph_of, onnx_model, spec_error


def fcn_crop(x: torch.Tensor, ref: torch.Tensor, offset: int) -> torch.Tensor:
    """FCN-8s' crop (wkentaro/pytorch-fcn), as written there."""
    return x[:, :, offset:offset + ref.size()[2], offset:offset + ref.size()[3]]


def unet_crop(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The valid-convolution U-Net's centred crop of an encoder map to the decoder's."""
    top, left = (x.size(2) - ref.size(2)) // 2, (x.size(3) - ref.size(3)) // 2
    return x[:, :, top:top + ref.size(2), left:left + ref.size(3)]


#: (case, spec, the reference on (x, ref))
CASES = [
    ("fcn_offset", "inputs: {x: [N, 3, 11, 9], ref: [N, 5, 4, 6]}\nnodes: [{op: crop, in: [x, ref], offset: 2}]",
     lambda x, r: fcn_crop(x, r, 2)),
    ("offset_0", "inputs: {x: [N, 3, 11, 9], ref: [N, 1, 11, 2]}\nnodes: [{op: crop, in: [x, ref]}]",
     lambda x, r: x[:, :, :r.shape[2], :r.shape[3]]),
    ("per_dim", "inputs: {x: [N, 3, 11, 9], ref: [N, 5, 4, 6]}\nnodes: [{op: crop, in: [x, ref], offset: [7, 0]}]",
     lambda x, r: x[:, :, 7:7 + r.shape[2], :r.shape[3]]),
    ("center_even", "inputs: {x: [N, 2, 12, 10], ref: [N, 4, 8, 4]}\nnodes: [{op: crop, in: [x, ref], center: true}]",
     unet_crop),
    ("center_odd", "inputs: {x: [N, 2, 11, 10], ref: [N, 4, 8, 3]}\nnodes: [{op: crop, in: [x, ref], center: true}]",
     unet_crop),
    ("center_symbolic", "inputs: {x: [N, 2, 12, 13], ref: [N, 4, S, T]}\n"
     "nodes: [{op: crop, in: [x, ref], center: true}]", unet_crop),
    ("one_dim_1d", "inputs: {x: [N, 2, 13], ref: [N, 4, T]}\nnodes: [{op: crop, in: [x, ref], offset: 3}]",
     lambda x, r: x[:, :, 3:3 + r.shape[2]]),
    ("last_dim", "inputs: {x: [N, 2, 5, 13], ref: [N, 4, 1, T]}\nnodes: [{op: crop, in: [x, ref], dims: -1}]",
     lambda x, r: x[..., :r.shape[3]]),
    ("sequence", "inputs: {x: [N, 9, 4], ref: [N, S, 2]}\nnodes: [{op: crop, in: [x, ref], dims: 1, offset: 1}]",
     lambda x, r: x[:, 1:1 + r.shape[1]]),
    ("volume", "inputs: {x: [N, 2, 6, 7, 8], ref: [N, 1, 3, 4, 5]}\nnodes: [{op: crop, in: [x, ref], offset: 1}]",
     lambda x, r: x[:, :, 1:4, 1:5, 1:6]),
    ("int64", "inputs: {x: {shape: [N, 2, 6, 7], dtype: int64}, ref: [N, 1, 3, 4]}\n"
     "nodes: [{op: crop, in: [x, ref], offset: 2}]", lambda x, r: fcn_crop(x, r, 2)),
]


@pytest.mark.parametrize("text, reference", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_torch_and_onnxruntime_agree_with_the_slicing_written_in_torch(text, reference):
    graph, (out,) = check_parity(text)
    feeds = feeds_for(graph)
    want = reference(torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["ref"])).numpy()
    np.testing.assert_array_equal(out, want)


#: two sizes for the symbolic dims of one build (x larger than ref in each)
RUN_SIZES = ({"N": 2, "H": 13, "W": 9, "S": 5, "T": 4}, {"N": 3, "H": 8, "W": 17, "S": 3, "T": 10})


@pytest.mark.parametrize("attrs, reference", [
    ("offset: 2", lambda x, r: fcn_crop(x, r, 2)),
    ("offset: [3, 1]", lambda x, r: x[:, :, 3:3 + r.shape[2], 1:1 + r.shape[3]]),
    ("center: true", unet_crop),
])
def test_the_window_follows_the_sizes_given_at_run_time(attrs, reference):
    # one build (a torch module, an onnxruntime session) run at two sizes: nothing is fixed at build
    graph = graph_of(f"inputs: {{x: [N, 3, H, W], ref: [N, 5, S, T]}}\nnodes: [{{op: crop, in: [x, ref], {attrs}}}]")
    assert graph.type_of(graph.outputs["output"]).shape == ("N", 3, "S", "T")
    module = build_module(graph).eval()
    session = ort.InferenceSession(onnx_model(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    for sizes in RUN_SIZES:
        feeds = feeds_for(graph, sizes)
        want = reference(torch.from_numpy(feeds["x"]), torch.from_numpy(feeds["ref"])).numpy()
        assert want.shape == (sizes["N"], 3, sizes["S"], sizes["T"])
        with torch.no_grad():
            np.testing.assert_array_equal(module(*map(torch.from_numpy, feeds.values())).numpy(), want)
        np.testing.assert_array_equal(session.run(None, feeds)[0], want)


def test_the_onnx_window_is_computed_from_the_shapes():
    model = onnx_model(graph_of("inputs: {x: [N, 3, 9, 9], ref: [N, 1, 4, 4]}\n"
                                "nodes: [{op: crop, in: [x, ref], offset: 2}]"))
    assert [n.op_type for n in model.graph.node] == ["Shape", "Gather", "Add", "Slice"]
    assert model.graph.node[0].input == ["ref"]


@pytest.mark.parametrize("text, message", [
    ("{op: crop, in: [x, small], offset: 2}", "dim 2: the crop is larger than x: offset 2 + ref's size 8 = 10 > "
                                              "x's size 9"),
    ("{op: crop, in: [x, small], offset: [0, 5]}", "dim 3: the crop is larger than x: offset 5 + ref's size 5 = "
                                                   "10 > x's size 9"),
    ("{op: crop, in: [small, x], center: true}", "dim 2: the crop is larger than x: ref's size 9 > x's size 8"),
    ("{op: crop, in: [x, flat]}", "the second input gives the crop's size, so it must have x's rank 4, got 2-D "
                                  "(N, 7)"),
    ("{op: crop, in: [x, small], offset: -1}", "attribute 'offset' of op 'crop' must be at least 0, got -1"),
    ("{op: crop, in: [x, small], offset: [1, 2, 3]}", "offset needs 1 or 2 values, got 3"),
    ("{op: crop, in: [x, small], center: true, offset: 1}", "center: true places the window itself, in the "
                                                            "middle; leave offset out (got offset 1)"),
    ("{op: crop, in: [x, small], dims: [2, -2]}", "dims [2, -2] must name each dim to crop once"),
    ("{op: crop, in: [x, small], dims: 4}", "dims entry 4 is out of range for a 4-D input"),
    ("{op: crop, in: [flat, flat]}", "crop cuts the dims after the first two (N, C, ...), and a 2-D input (N, 7) "
                                     "has none; give 'dims' to crop others"),
    ("{op: crop, in: x}", "op 'crop' takes 2 input(s), got 1"),
])
def test_errors_say_what_was_expected_at_the_node(text, message):
    msg = spec_error(f"inputs: {{x: [N, 2, 9, 9], small: [N, 1, 8, 5], flat: [N, 7]}}\nnodes: [{text}]")
    assert message in msg and msg.startswith("<spec>:3:"), msg


def test_the_generated_code_is_the_slicing_by_hand_and_traces_exports_and_scripts():
    graph = graph_of("inputs: {x: [N, 3, 20, 21], ref: [N, 5, 7, 9]}\nnodes:\n"
                     "  - {name: score_pool4c, op: crop, in: [x, ref], offset: 5}\n"
                     "  - {name: centred, op: crop, in: [x, ref], center: true}\n"
                     "  - {name: both, op: add, in: [score_pool4c, centred]}")
    source = generate_source(graph)
    assert "score_pool4c = x[:, :, 5 : 5 + ref.shape[2], 5 : 5 + ref.shape[3]]" in source
    assert "centred = center_crop(x, ref, [2, 3])" in source
    module = build_module(graph).eval()
    x, ref = torch.randn(2, 3, 20, 21), torch.randn(2, 5, 7, 9)
    want = fcn_crop(x, ref, 5) + unet_crop(x, ref)
    batch = torch.export.Dim("N", min=1, max=64)
    with torch.no_grad():
        torch.testing.assert_close(module(x, ref), want)
        torch.testing.assert_close(torch.fx.symbolic_trace(module)(x, ref), want)
        torch.testing.assert_close(torch.jit.script(module)(x, ref), want)
        exported = torch.export.export(module, (x, ref), dynamic_shapes={"x": {0: batch}, "ref": {0: batch}})
        torch.testing.assert_close(exported.module()(x[:1], ref[:1]), want[:1])


def test_the_centring_function_is_written_only_where_a_crop_is_centred():
    source = generate_source(graph_of("inputs: {x: [N, 3, 9, 9], ref: [N, 1, 4, 4]}\n"
                                      "nodes: [{op: crop, in: [x, ref], offset: 2}]"))
    assert "center_crop" not in source


def test_with_symbolic_sizes_the_module_exports_with_dynamic_sizes():
    graph = graph_of("inputs: {x: [N, 3, H, W], ref: [N, 5, S, T]}\nnodes:\n"
                     "  - {name: a, op: crop, in: [x, ref], offset: 2}\n"
                     "  - {name: b, op: crop, in: [x, ref], center: true}\n"
                     "  - {name: both, op: add, in: [a, b]}")
    module = build_module(graph).eval()
    sizes = {n: torch.export.Dim(n, min=8, max=64) for n in "HW"} | {n: torch.export.Dim(n, min=2, max=32)
                                                                       for n in "ST"}
    batch = torch.export.Dim("N", min=1, max=64)
    exported = torch.export.export(module, (torch.randn(2, 3, 20, 21), torch.randn(2, 5, 7, 9)),
                                   dynamic_shapes={"x": {0: batch, 2: sizes["H"], 3: sizes["W"]},
                                                   "ref": {0: batch, 2: sizes["S"], 3: sizes["T"]}})
    x, ref = torch.randn(3, 3, 30, 17), torch.randn(3, 5, 11, 6)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x, ref), fcn_crop(x, ref, 2) + unet_crop(x, ref))


# -- FCN-8s and the valid-convolution U-Net, built at one size and run at another ----------------

FCN = """
inputs: {x: [N, 3, 16, 16]}
nodes:
  - {name: conv1, op: conv, out_channels: 4, kernel_size: 3, padding: 10}
  - {op: relu}
  - {op: maxpool, kernel_size: 2, stride: 2, ceil_mode: true}
  - {name: score, op: conv, out_channels: 2, kernel_size: 1}
  - {name: up, op: conv_transpose, out_channels: 2, kernel_size: 4, stride: 2, bias: false}
  - {name: out, op: crop, in: [up, x], offset: 9}
"""


class TinyFCN(nn.Module):
    """FCN's head in plain torch: upsampled scores cropped to the image's size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=10)
        self.score = nn.Conv2d(4, 2, 1)
        self.up = nn.ConvTranspose2d(2, 2, 4, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(self.score(F.max_pool2d(F.relu(self.conv1(x)), 2, 2, ceil_mode=True)))
        return fcn_crop(h, x, 9)


UNET = """
inputs: {x: [N, 1, 28, 28]}
nodes:
  - {name: enc1, op: conv, out_channels: 4, kernel_size: 3}
  - {op: relu}
  - {name: enc2, op: conv, out_channels: 4, kernel_size: 3}
  - {name: skip, op: relu}
  - {op: maxpool, kernel_size: 2}
  - {name: mid, op: conv, out_channels: 8, kernel_size: 3}
  - {op: relu}
  - {name: up, op: conv_transpose, out_channels: 4, kernel_size: 2, stride: 2}
  - {name: cropped, op: crop, in: [skip, up], center: true}
  - {name: cat, op: concat, in: [cropped, up], expect: long_skip}
  - {name: dec, op: conv, out_channels: 2, kernel_size: 3}
"""


class ValidUNet(nn.Module):
    """A one-level U-Net of unpadded convs (Ronneberger et al.): the skip centre-cropped to the decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1, self.enc2 = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3)
        self.mid = nn.Conv2d(4, 8, 3)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.dec = nn.Conv2d(8, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.relu(self.enc2(F.relu(self.enc1(x))))
        up = self.up(F.relu(self.mid(F.max_pool2d(skip, 2))))
        return self.dec(torch.cat([unet_crop(skip, up), up], 1))


@pytest.mark.parametrize("text, reference, sizes", [
    (FCN, TinyFCN, [(2, 3, 16, 16), (1, 3, 24, 19)]),
    (UNET, ValidUNet, [(2, 1, 28, 28), (1, 1, 29, 36)]),  # 29: an odd margin, floored as (x - ref) // 2
])
def test_a_model_built_at_one_size_crops_right_at_another(text, reference, sizes):
    graph = graph_of(text)
    ours = build_module(graph).eval()
    theirs = reference().eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        for shape in sizes:
            x = torch.randn(*shape)
            torch.testing.assert_close(ours(x), theirs(x))
    check_parity(text)


def test_lint_reads_no_data_from_the_size_input():
    # the U-Net's skip is one long skip into the concat; the crop's reading of up's size adds no fork
    analysis = analyze(graph_of(UNET))
    (skip,) = analysis.connections
    assert (skip.kind, skip.fork, skip.merge) == ("long_skip", "skip", "cat")


# -- ONNX import of the slicing, from both torch exporters --------------------------------------

class Crops(nn.Module):
    def __init__(self, center: bool) -> None:
        super().__init__()
        self.center = center

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return unet_crop(x, ref) if self.center else fcn_crop(x, ref, 19)


EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo", marks=pytest.mark.slow)]


def _export(center: bool, dynamo: bool):
    args = (torch.randn(2, 3, 40, 41), torch.randn(2, 5, 12, 13))
    names = {"input_names": ["x", "ref"]}
    if dynamo:
        dims = {n: torch.export.Dim(n) for n in ("N", "H", "W", "S", "T")}
        shapes = {"x": {0: dims["N"], 2: dims["H"], 3: dims["W"]}, "ref": {0: dims["N"], 2: dims["S"], 3: dims["T"]}}
        return export_onnx(Crops(center), args, True, dynamic_shapes=shapes, **names)
    axes = {"x": {0: "N", 2: "H", 3: "W"}, "ref": {0: "N", 2: "S", 3: "T"}}
    return export_onnx(Crops(center), args, False, dynamic_axes=axes, **names)


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("center", [False, True], ids=["fcn_offset", "unet_center"])
def test_import_reads_the_slicing_back_as_one_crop(center, dynamo):
    model = _export(center, dynamo)
    graph = from_onnx(model)
    (crop,) = [n for n in graph.nodes() if n.op != "input"]
    expected = {"offset": 0, "center": True, "dims": None} if center else {"offset": 19, "center": False,
                                                                           "dims": None}
    assert (crop.op, crop.attrs, [v.node for v in crop.inputs]) == ("crop", expected, ["x", "ref"])
    assert crop.outputs[0].shape == ("N", 3, "S", "T")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    module = build_module(graph).eval()
    relowered = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for x_shape, ref_shape in (((2, 3, 40, 41), (2, 5, 12, 13)), ((1, 3, 50, 33), (1, 5, 21, 8))):
        feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
                 "ref": rng.standard_normal(ref_shape).astype(np.float32)}
        want = session.run(None, feeds)[0]
        with torch.no_grad():
            np.testing.assert_array_equal(module(*map(torch.from_numpy, feeds.values())).numpy(), want)
        np.testing.assert_array_equal(relowered.run(None, feeds)[0], want)


def test_archc_own_onnx_reads_back_as_the_crop():
    graph = graph_of("inputs: {x: [N, 2, H, W], ref: [N, 1, S, T]}\nnodes:\n"
                     "  - {name: a, op: crop, in: [x, ref], offset: [4, 1]}\n"
                     "  - {name: b, op: crop, in: [x, ref], center: true}\n"
                     "  - {name: c, op: crop, in: [x, ref], dims: 3}\n"
                     "outputs: [a, b, c]")
    back = {n.name: n for n in from_onnx(onnx_model(graph)).nodes() if n.op == "crop"}
    assert {name: (n.attrs, [v.node for v in n.inputs]) for name, n in back.items()} == {
        "a": ({"offset": (4, 1), "center": False, "dims": None}, ["x", "ref"]),
        "b": ({"offset": 0, "center": True, "dims": None}, ["x", "ref"]),
        "c": ({"offset": 0, "center": False, "dims": (3,)}, ["x", "ref"]),
    }


def test_a_window_that_is_not_the_other_tensors_size_stays_a_slice():
    # x[:, :, 2 : ref.shape[2] * 2]: computed from ref's shape, but not its size from an offset
    class Twice(nn.Module):
        def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
            return x[:, :, 2:ref.shape[2] * 2]

    model = export_onnx(Twice(), (torch.randn(2, 3, 40, 5), torch.randn(2, 5, 12, 13)), False,
                        input_names=["x", "ref"], dynamic_axes={"x": {0: "N", 2: "H"}, "ref": {0: "N", 2: "S"}})
    ops = [n.attrs.get("op_type", n.op) for n in from_onnx(model).nodes()]
    assert "crop" not in ops and "slice" not in ops and "Slice" in ops


def test_lint_and_build_through_the_command_line(tmp_path, capsys):
    spec = tmp_path / "unet.yaml"
    spec.write_text("name: valid_unet\n" + UNET)
    assert main(["lint", str(spec)]) == 0
    assert "skips: residual 0, long_skip 1, dense 0, gated 0" in capsys.readouterr().out
    exported = tmp_path / "crop.onnx"
    exported.write_bytes(_export(True, False).SerializeToString())
    assert main(["build", str(exported), "-o", str(tmp_path / "crop.py")]) == 0
    assert "= center_crop(x, ref, [2, 3])" in (tmp_path / "crop.py").read_text()


class PositionTable(nn.Module):
    """A learned position table cut to the input's length (ViT's, GPT's ``pos[:, :T]``), then a layer."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, 32, 8))
        self.proj = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x + self.pos[:, : x.shape[1]])


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_learned_table_cut_to_the_input_length_imports_as_a_parameter_and_a_crop(dynamo):
    """Found importing position tables: the Slice of an initializer by a run-time length stayed an
    onnx_node (with the TorchScript export, of unknown shape, and the add after it too)."""
    torch.manual_seed(0)
    x = torch.randn(2, 10, 8)
    if dynamo:
        shapes = {"x": {0: torch.export.Dim("N"), 1: torch.export.Dim("T", max=32)}}
        model = export_onnx(PositionTable(), x, True, input_names=["x"], dynamic_shapes=shapes)
    else:
        model = export_onnx(PositionTable(), x, False, input_names=["x"], dynamic_axes={"x": {0: "N", 1: "T"}})
    graph = from_onnx(model)
    ops = {n.op for n in graph.nodes()}
    assert "onnx_node" not in ops and {"parameter", "crop", "add", "linear"} <= ops
    (crop,) = [n for n in graph.nodes() if n.op == "crop"]
    assert crop.outputs[0].shape == (1, "T", 8) and graph.node(crop.inputs[1].node).op == "input"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    module = build_module(graph).eval()
    relowered = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    for length in (10, 3, 32):
        feeds = {"x": np.random.default_rng(length).standard_normal((2, length, 8)).astype(np.float32)}
        want = session.run(None, feeds)[0]
        with torch.no_grad():
            np.testing.assert_allclose(module(torch.from_numpy(feeds["x"])).numpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(relowered.run(None, feeds)[0], want, rtol=1e-5, atol=1e-6)
