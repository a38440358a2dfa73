"""Symbolic sizes through ops that change a size (archc.ir.dims): a strided conv over ``H`` gives
``(H + 1)//2``, computed in one place, in one canonical text, evaluated by ``--dim``; specs keep a
symbolic H/W or T through convs, pools, transposed convs, resizing, padding and slicing, and run in
onnxruntime at any size; ONNX files exported with dynamic sizes import with archc's native ops and
lint as the static export of the same module does, from both exporters."""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archc.errors import ShapeError
from archc.ir import dims
from archc.lowering.onnx import to_onnx
from archc.ops.conv import conv_dim, conv_transpose_out
from archc.ops.pool import pool_out
from archc.ops.resize import scaled_size
from ops_harness import check_parity, graph_of, randomize, spec_error

# -- the arithmetic ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, canonical", [
    ("(((H - 1)//2)) + 1", "(H + 1)//2"),   # the dynamo exporter's strided conv; the same size as ...
    ("(H + 1)//2", "(H + 1)//2"),           # ... this one: one text
    ("H//2", "H//2"),
    ("2*H", "H*2"),                         # factors, then the coefficient (as reshapes wrote N*64)
    ("64*N", "N*64"),
    ("2*((H//2))", "(H//2)*2"),
    ("(H//2)//2", "H//4"),                  # nested divisions merged
    ("(2*H + 3)//2", "H + 1"),              # what divides, taken out
    ("(2*H)//4", "H//2"),                   # common factors divided through
    ("T + 1 - 1", "T"),
    ("H - H + 3", 3),                       # a constant is an int
    ("W*H", "H*W"),
    ("3*H//2", "H + H//2"),
    ("5 - H//2", "-(H//2) + 5"),            # (not -H//2, which is (-H)//2)
])
def test_one_size_has_one_text(text, canonical):
    assert dims.canonical(text) == canonical


def _random_expression(rng, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(["H", "W", "T", str(rng.randint(0, 9))])
    op = rng.choice(["+", "-", "*", "//"])
    if op == "//":
        return f"({_random_expression(rng, depth - 1)})//{rng.randint(1, 6)}"
    return f"({_random_expression(rng, depth - 1)}) {op} ({_random_expression(rng, depth - 1)})"


def test_the_canonical_text_reads_back_as_itself_and_computes_what_python_computes():
    """2000 random expressions of + - * and // (negative values on the way too): the canonical text is
    a fixed point, and its value at several sizes is the original text's value in Python."""
    import random

    rng = random.Random(7)
    for _ in range(2000):
        text = _random_expression(rng, 4)
        canonical = dims.canonical(text)
        assert dims.canonical(canonical) == canonical, text
        for sizes in ({"H": 1, "W": 2, "T": 3}, {"H": 7, "W": 5, "T": 16}, {"H": 32, "W": 9, "T": 11}):
            assert dims.evaluate(canonical, sizes) == eval(text, {}, dict(sizes)), (text, canonical, sizes)


@pytest.mark.parametrize("text", ["N", "unk__2", "Conv3_dim_2", "batch size", "Max(1, s0)", "H/2", "H % 2"])
def test_plain_symbols_and_text_that_is_no_expression_stay_as_they_are(text):
    assert dims.canonical(text) == text


def test_arithmetic_on_text_that_is_no_expression_is_refused_saying_why():
    with pytest.raises(ShapeError, match=r"symbolic size 'Max\(1, s0\)' is no name or expression archc computes "
                                         r"with \(names, whole numbers, \+ - \* and // by a positive whole number\)"):
        dims.add("Max(1, s0)", 1)


@pytest.mark.parametrize("k, s, p, d", [(k, s, p, d) for k in (1, 2, 3, 4, 7) for s in (1, 2, 3) for p in (0, 1, 3)
                                        for d in (1, 2)])
def test_a_window_formula_over_a_symbol_is_the_formula_at_every_size(k, s, p, d):
    """conv_dim, pool_out (both modes) and conv_transpose_out of ``H``, evaluated at H, are the integer
    formulas at H: the expression is exact, not an approximation."""
    formulas = [(conv_dim, (k, s, 2 * p, d)), (conv_transpose_out, (k, s, p, d, 0))]
    formulas += [(pool_out, (k, s, p, d, ceil)) for ceil in (False, True)
                 if p <= (d * (k - 1) + 1) // 2 and not (ceil and d * (k - 1) < p + s - 1)]
    for formula, args in formulas:
        expression = formula("H", *args)
        for size in range(1, 40):
            with contextlib.suppress(ShapeError):  # (sizes too small for the window: no output to compare)
                assert dims.evaluate(expression, {"H": size}) == formula(size, *args), (formula, size, expression)


@pytest.mark.parametrize("scale", [2.0, 3.0, 0.5, 0.25, 1.5])
def test_a_scaled_size_is_floor_of_the_product_at_every_size(scale):
    size = scaled_size("H", scale)
    assert [dims.evaluate(size, {"H": h}) for h in range(1, 40)] == [int(np.floor(h * scale)) for h in range(1, 40)]


def test_a_pool_in_ceil_mode_whose_last_window_may_start_in_the_padding_needs_a_known_size():
    with pytest.raises(ShapeError, match=r"ceil_mode over symbolic size 'H' passes only where no window can start "
                                         r"in the padding \(kernel extent - 1 >= padding \+ stride - 1; here kernel "
                                         r"extent 2, padding 1, stride 2\); give the input a known size"):
        pool_out("H", 2, 2, 1, 1, True)


@pytest.mark.parametrize("a, b, same", [
    ("(H - 1)//2 + 1", "(H + 1)//2", True),
    ("H//2 + (H + 1)//2", "H", True),       # equal at every size although written otherwise
    ("(H//4)*4", "H", False),
    ("T + 1", "T", False),
    ("H", "W", False),
    ("(H*W)//2", "(W*H)//2", True),
    (8, "H//2", False),
])
def test_equal_decides_every_size(a, b, same):
    assert dims.equal(a, b) is same


def test_a_mismatch_names_a_size_where_the_two_differ():
    assert dims.mismatch("(H//4)*4", "H") == ("'(H//4)*4' and 'H' differ where H=1 (0 and 1); archc needs sizes "
                                              "equal at every size")
    assert dims.mismatch("T + 1", "T").startswith("'T + 1' and 'T' differ where T=1 (2 and 1)")


def test_sizes_meet_strictly_in_a_spec_and_as_the_file_trusts_them_in_an_imported_model():
    assert dims.agree("(H//4)*4", "H")          # (an imported model's file adds them: one size at the probes)
    assert not dims.agree("H", "W") and not dims.agree("T + 1", "T")
    with dims.strict_sizes():
        assert not dims.agree("(H//4)*4", "H")
        assert dims.agree("H//2 + (H + 1)//2", "H")


def test_evaluate_divide_and_compare():
    assert dims.evaluate("(H + 1)//2", {"H": 15}) == 8
    assert dims.evaluate("N*64", lambda s: 3) == 192
    assert dims.divide("N*64", 64) == "N" and dims.divide("H*W*3", "W") == "H*3" and dims.divide("N*6", 4) is None
    assert dims.compare("H//2", "H") == -1 and dims.compare("(H//2)*2", "H") == 0 and dims.compare("H", "W") is None
    assert dims.symbols("(H + W)//2") == ("H", "W")


# -- specs --------------------------------------------------------------------------------------

#: a segmentation-style spec over symbolic H and W: every op that changes a spatial size, and a long
#: skip that meets the decoder through a resize to its size (which holds at any size)
ENCODER_DECODER = """
inputs: {x: [N, 3, H, W]}
nodes:
  - {name: stem, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: down, op: conv, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {name: pool, op: maxpool, kernel_size: 2}
  - {name: avg, op: avgpool, kernel_size: 3, stride: 2, ceil_mode: true}
  - {name: widen, op: pad, pads: [1, 2, 0, 1]}
  - {name: crop, op: slice, dim: 3, start: 1, end: -1}
  - {name: up, op: conv_transpose, out_channels: 8, kernel_size: 4, stride: 2, padding: 1}
  - {name: up2, op: upsample, scale_factor: 2}
  - {name: fit, op: upsample, in: [up2, stem]}
  - {name: skip, op: add, in: [fit, stem], expect: long_skip}
  - {name: head, op: conv, out_channels: 2, kernel_size: 1}
"""


def test_a_spec_keeps_symbolic_sizes_through_every_size_changing_op():
    graph = graph_of(ENCODER_DECODER)
    shapes = {n: graph.node(n).outputs[0].shape[2:] for n in ("down", "pool", "avg", "widen", "crop", "up", "up2")}
    assert shapes == {"down": ("(H + 1)//2", "(W + 1)//2"), "pool": ("(H + 1)//4", "(W + 1)//4"),
                      "avg": ("(H + 1)//8", "(W + 1)//8"), "widen": ("(H + 1)//8 + 1", "(W + 1)//8 + 3"),
                      "crop": ("(H + 1)//8 + 1", "(W + 1)//8 + 1"), "up": ("((H + 1)//8)*2 + 2", "((W + 1)//8)*2 + 2"),
                      "up2": ("((H + 1)//8)*4 + 4", "((W + 1)//8)*4 + 4")}
    assert graph.type_of(graph.outputs["output"]).shape == ("N", 2, "H", "W")


@pytest.mark.parametrize("size", [{"N": 2, "H": 32, "W": 24}, {"N": 1, "H": 45, "W": 19}])
def test_the_spec_runs_in_torch_and_onnxruntime_at_any_size(size):
    check_parity(ENCODER_DECODER, sizes=size)  # (one build, both lowerings, each size's shapes checked)


def test_the_onnx_build_writes_its_sizes_as_dim_params_the_checker_accepts():
    text = ENCODER_DECODER + "outputs: [down, up2, head]\n"
    model = to_onnx(randomize(graph_of(text)))
    onnx.checker.check_model(model, full_check=True)
    written = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert written == [["N", 8, "(H + 1)//2", "(W + 1)//2"], ["N", 8, "((H + 1)//8)*4 + 4", "((W + 1)//8)*4 + 4"],
                       ["N", 2, "H", "W"]]


def test_sizes_that_meet_must_be_equal_at_every_size_in_a_spec():
    message = spec_error("inputs: {x: [N, 3, H, W]}\nnodes:\n  - {name: p, op: maxpool, kernel_size: 4}\n"
                         "  - {name: u, op: upsample, scale_factor: 4}\n  - {op: add, in: [u, x]}")
    assert ("shapes do not broadcast: (N, 3, (H//4)*4, (W//4)*4), (N, 3, H, W) differ in dim 2: '(H//4)*4' and 'H' "
            "differ where H=1 (0 and 1); archc needs sizes equal at every size") in message
    message = spec_error("inputs: {x: [N, 3, T]}\nnodes:\n  - {name: c, op: conv, out_channels: 3, kernel_size: 2, "
                         "padding: 1}\n  - {op: concat, in: [c, x], axis: 1}")
    assert ("input 1 has shape (N, 3, T), which differs from input 0 (N, 3, T + 1) outside the concat axis 1: "
            "'T + 1' and 'T' differ where T=1 (2 and 1)") in message


def test_a_size_that_must_be_known_says_so_where_a_symbolic_one_arrives():
    """A product of symbolic sizes passes a reshape, and the layer that needs it known says what it got."""
    message = spec_error("inputs: {x: [N, 3, H, W]}\nnodes:\n  - {op: maxpool, kernel_size: 2}\n"
                         "  - {op: reshape, shape: [0, -1]}\n  - {op: linear, out_features: 4}")
    assert ("<spec>:6:5: error: node 'linear': linear: input features (last dim) must be a known size, got "
            "symbolic '(H//2)*(W//2)*3' [input: reshape (N, (H//2)*(W//2)*3)]") in message
    message = spec_error("inputs: {x: [N, 3, H, W]}\nnodes:\n  - {op: maxpool, kernel_size: 2}\n"
                         "  - {op: reshape, shape: [0, 4, -1]}")
    assert ("cannot reshape (N, 3, H//2, W//2) to [0, 4, -1]: its N*(H//2)*(W//2)*3 elements are not divisible by "
            "N*4, the size of the dims given") in message


#: Tacotron's CBHG over a symbolic number of steps T: k=2 and k=4 convs give T + 1 steps, cropped back
#: to T (conv(x)[:, :, :T]), as the max pooling's T + 1 are
CBHG = """
params: {in_dim: 8, K: 4}
inputs: {inputs: [N, T, in_dim]}
blocks:
  bank_conv:
    params: {kernel_size: null}
    nodes:
      - {name: conv1d, op: conv, out_channels: in_dim, kernel_size: kernel_size, padding: "kernel_size // 2",
         bias: false}
      - {op: relu}
      - {name: bn, op: batchnorm}
      - {name: crop, op: slice, dim: 2, end: -1, if: "kernel_size % 2 == 0"}
nodes:
  - {name: x, op: permute, perm: [0, 2, 1]}
  - {name: banks, block: bank_conv, repeat: K, parallel: true, in: x, kernel_size: "index + 1"}
  - {name: bank, op: concat, in: ["banks[*]"], axis: 1}
  - {name: max_pool1d, op: maxpool, kernel_size: 2, stride: 1, padding: 1}
  - {name: pool_crop, op: slice, dim: 2, end: -1}
  - {name: proj, op: conv, out_channels: in_dim, kernel_size: 3, padding: 1}
  - {name: back, op: permute, perm: [0, 2, 1]}
  - {name: residual, op: add, in: [back, inputs], expect: residual}
  - {name: gru, op: gru, hidden_size: in_dim, bidirectional: true, batch_first: true}
outputs: [gru:0]
"""


def test_cbhg_keeps_a_symbolic_length_through_its_even_kernels_and_crops():
    graph = graph_of(CBHG)
    assert graph.node("banks.1.conv1d").outputs[0].shape == ("N", 8, "T + 1")
    assert graph.node("bank").outputs[0].shape == ("N", 32, "T")
    assert graph.node("max_pool1d").outputs[0].shape == ("N", 32, "T + 1")
    for steps in (7, 12):
        check_parity(CBHG, sizes={"N": 2, "T": steps})


def test_summary_at_given_sizes_counts_what_the_static_model_counts(run_archc, spec_file):
    symbolic = spec_file(ENCODER_DECODER, "symbolic.yaml")
    static = spec_file(ENCODER_DECODER.replace("[N, 3, H, W]", "[N, 3, 32, 24]"), "static.yaml")
    counted = [json.loads(run_archc("summary", "--format", "json", *args, check=True).stdout)["totals"]
               for args in ((static,), (symbolic, "--dim", "H=32,W=24"), (symbolic, "--dim", "H=32", "--dim", "W=24"))]
    assert counted[0]["macs"] > 0 and counted[0] == counted[1] == counted[2]


# -- ONNX files exported with dynamic sizes ------------------------------------------------------

class StridedResidual(nn.Module):
    """A residual unit that halves the resolution: strided 3x3 conv body, strided 1x1 projection."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(),
                                  nn.Conv2d(2 * c, 2 * c, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * c))
        self.short = nn.Sequential(nn.Conv2d(c, 2 * c, 1, 2, bias=False), nn.BatchNorm2d(2 * c))

    def forward(self, x):
        x = self.stem(x)
        return F.relu(self.body(x) + self.short(x))


class FCN(nn.Module):
    """FCN-style: two max poolings, back up by a nearest upsampling and a transposed conv, and the score
    of the full-resolution features added: a long skip across a resolution round trip."""

    def __init__(self, c=8):
        super().__init__()
        self.stem, self.conv1, self.conv2 = (nn.Conv2d(i, c, 3, padding=1) for i in (3, c, c))
        self.up = nn.ConvTranspose2d(c, c, 4, stride=2, padding=1)
        self.score = nn.Conv2d(c, c, 1)

    def forward(self, x):
        f = torch.relu(self.stem(x))
        h = torch.relu(self.conv1(F.max_pool2d(f, 2)))
        h = torch.relu(self.conv2(F.max_pool2d(h, 2)))
        return self.up(F.interpolate(h, scale_factor=2.0, mode="nearest")) + self.score(f)


class CropConv(nn.Module):
    """Tacotron's ``conv(x)[:, :, :T]``: a k=2 conv gives T + 1 steps, cropped to the input's T read at run time."""

    def __init__(self, c=8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv1d(c, c, 2, padding=1, bias=False), nn.BatchNorm1d(c)
        self.conv2, self.bn2 = nn.Conv1d(c, c, 3, padding=1, bias=False), nn.BatchNorm1d(c)

    def forward(self, x):
        steps = x.size(2)
        h = torch.relu(self.bn1(self.conv1(x)[:, :, :steps]))
        return self.bn2(self.conv2(h)) + x


#: module, example input, its dynamic axes, the sizes --dim gives the dynamic export
MODULES = {
    "strided": (StridedResidual, (2, 3, 16, 16), {0: "N", 2: "H", 3: "W"}, "H=16,W=16"),
    "fcn": (FCN, (2, 3, 16, 16), {0: "N", 2: "H", 3: "W"}, "H=16,W=16"),
    "crop": (CropConv, (2, 8, 12), {0: "N", 2: "T"}, "T=12"),
}
EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo", marks=pytest.mark.slow)]


def _export(module: nn.Module, shape, dynamic, dynamo: bool, path) -> str:
    options: dict = {"input_names": ["x"], "dynamo": dynamo}
    if dynamic and dynamo:
        options["dynamic_shapes"] = ({axis: torch.export.Dim(name, min=2, max=1024) for axis, name in dynamic.items()},)
    elif dynamic:
        options["dynamic_axes"] = {"x": dynamic}
    torch.manual_seed(1)
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), str(path), **options)
    return str(path)


def _lint_figures(lint: dict) -> dict:
    """What lint says of a model but the exporter's node names (the dynamo exporter numbers them apart)."""
    joins = [{k: v for k, v in j.items() if k not in ("fork", "merge", "shortcut", "reason")}
             | {"span": {k: v for k, v in (j.get("span") or {}).items() if k != "nodes"}}
             for j in lint["skips"] + lint["joins"]]
    paths = dict(lint["paths"], chains=[{k: v for k, v in c.items() if k != "merges"} for c in lint["paths"]["chains"]])
    return {"joins": joins, "summary": lint["summary"], "joins_summary": lint["joins_summary"], "paths": paths}


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("case", list(MODULES))
def test_a_dynamic_export_imports_and_lints_as_the_static_one(case, dynamo, tmp_path, run_archc):
    cls, shape, dynamic, sizes = MODULES[case]
    torch.manual_seed(0)
    module = cls().eval()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):  # (trained statistics: no fold into zeros)
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    static = _export(module, shape, None, dynamo, tmp_path / "static.onnx")
    dynamic_file = _export(module, shape, dynamic, dynamo, tmp_path / "dynamic.onnx")
    summaries = [json.loads(run_archc("summary", "--format", "json", "--batch", "2", *args, check=True).stdout)
                 for args in ((static,), (dynamic_file, "--dim", sizes))]
    ops = [[n["op"] for n in s["nodes"]] for s in summaries]
    assert "onnx_node" not in ops[0] and ops[0] == ops[1]  # native conv, maxpool, conv_transpose, slice, batchnorm
    assert summaries[0]["totals"] == summaries[1]["totals"]  # MACs and parameters (batchnorm folded alike)
    lints = [_lint_figures(json.loads(run_archc("lint", "--format", "json", "--all", f, check=True).stdout))
             for f in (static, dynamic_file)]
    assert lints[0] == lints[1] and lints[0]["joins"]


def test_summary_warns_where_the_sizes_it_counts_at_leave_an_output_empty(run_archc, spec_file):
    path = spec_file("inputs: {x: [N, 3, H, W]}\nnodes:\n  - {name: pool, op: maxpool, kernel_size: 2}\n"
                     "  - {op: conv, out_channels: 4, kernel_size: 3, padding: 1}\n")
    quiet = run_archc("summary", path, "--dim", "H=8,W=8", check=True)
    warned = run_archc("summary", path, check=True)
    assert "warning" not in quiet.stderr
    assert ("archc: warning: at H=1, W=1, node 'pool' has an empty output (N, 3, H//2, W//2): what follows counts "
            "zero MACs; give the sizes the model runs at with --dim NAME=SIZE") in warned.stderr


#: an FCN's sizes: the pooled and upsampled (H//4)*4 added to H, which agree where H is a multiple of 4
FCN_SPEC = """
inputs: {x: [N, 3, H, W]}
nodes:
  - {name: stem, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {op: maxpool, kernel_size: 4}
  - {name: up, op: upsample, scale_factor: 4}
  - {op: add, in: [up, stem]}
"""


def test_a_spec_that_trusts_its_sizes_runs_where_they_agree():
    assert "'(H//4)*4' and 'H' differ where H=1 (0 and 1)" in spec_error(FCN_SPEC)
    graph = graph_of("trust_sizes: true" + FCN_SPEC)
    assert graph.type_of(graph.outputs["output"]).shape == ("N", 4, "H", "W")
    check_parity("trust_sizes: true" + FCN_SPEC, sizes={"N": 2, "H": 16, "W": 24})
    transposed = "nodes: [{op: permute, perm: [0, 1, 3, 2]}, {op: add, in: [prev, x]}]"
    assert "'H' and 'W' differ where H=1, W=2" in spec_error(f"trust_sizes: true\ninputs: {{x: [N, 3, H, W]}}\n{transposed}")


def test_trust_sizes_is_true_or_false():
    assert ("'trust_sizes' of the spec must be true or false, got 'yes' (text: write true or false without quotes)"
            in spec_error("trust_sizes: 'yes'\ninputs: {x: [N, 3]}\nnodes: [{op: relu}]"))


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_the_spec_of_a_dynamic_fcn_export_trusts_its_sizes_and_computes_what_the_file_computes(
        dynamo, tmp_path, run_archc):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = _export(FCN().eval(), (2, 3, 16, 16), {0: "N", 2: "H", 3: "W"}, dynamo, tmp_path / "fcn.onnx")
    spec, weights, again = (str(tmp_path / name) for name in ("fcn.yaml", "fcn.pt", "again.onnx"))
    run_archc("spec", model, "-o", spec, "--weights-out", weights, check=True)
    assert "\ntrust_sizes: true\n" in open(spec).read()
    run_archc("build", spec, "--weights", weights, "-o", again, check=True)
    ours, theirs = ort.InferenceSession(again), ort.InferenceSession(model)
    for height, width in ((16, 16), (24, 40)):
        x = np.random.default_rng(height).standard_normal((1, 3, height, width)).astype(np.float32)
        np.testing.assert_allclose(ours.run(None, {ours.get_inputs()[0].name: x})[0], theirs.run(None, {"x": x})[0],
                                   rtol=1e-5, atol=1e-5)
