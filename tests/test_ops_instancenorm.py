"""instancenorm: nn.InstanceNorm1d/2d/3d, against PyTorch's modules; its ONNX import from both exporters."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from archc.analysis.cost import costs
from archc.frontends.onnx import from_onnx
from archc.lowering.onnx import to_onnx
from archc.lowering.optimize import optimize_for_inference
from archc.lowering.torch import build_module, generate_source
from archc.ops import registry
from archc.ops.weights import total_params
from ops_harness import assert_same_state_dict_layout, export_onnx, feeds_for, graph_of, module_of, \
    parity_suite, randomize, run_onnx, spec_error
from weights_helpers import randomized

SHAPES = {1: "[N, 4, 7]", 2: "[N, 4, 5, 6]", 3: "[N, 3, 4, 2, 5]"}

CASES = [
    ("1d", "inputs: {x: [N, 4, 7]}\nnodes: [{op: instancenorm}]"),
    ("2d_affine_eps", "inputs: {x: [N, 4, 5, 6]}\nnodes: [{op: instancenorm, affine: true, eps: 0.001}]"),
    ("3d_affine", "inputs: {x: [N, 3, 4, 2, 5]}\nnodes: [{op: instance_norm, affine: true}]"),
    ("2d_running_stats", "inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: instancenorm, track_running_stats: true}]"),
    ("1d_affine_running_stats", "inputs: {x: [N, 4, 7]}\n"
     "nodes: [{op: instancenorm, affine: true, track_running_stats: true, momentum: 0.3}]"),
    ("symbolic_channels", "inputs: {x: [N, C, 4, 5]}\nnodes: [{op: instancenorm, eps: 0.01}]"),
    ("after_relu_symbolic_length", "inputs: {x: [N, 5, L]}\nnodes: [{op: relu}, {op: instancenorm, affine: true}]"),
]

test_parity, test_cases_cover_parity_ops = parity_suite(CASES, {"instancenorm"}, sizes={"C": 3})


def _spec(dim: int, **attrs) -> str:
    fields = "".join(f", {k}: {str(v).lower()}" for k, v in attrs.items())
    return f"inputs: {{x: {SHAPES[dim]}}}\nnodes: [{{name: inorm, op: instancenorm{fields}}}]"


def _reference(dim: int, channels: int, **attrs) -> nn.Module:
    return getattr(nn, f"InstanceNorm{dim}d")(channels, **attrs).eval()


VARIANTS = {"plain": {}, "affine": {"affine": True}, "running_stats": {"track_running_stats": True},
            "affine_running_stats": {"affine": True, "track_running_stats": True}}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_both_lowerings_match_pytorchs_module_whose_state_dict_loads_strictly(dim, variant):
    attrs = VARIANTS[variant]
    graph = randomize(graph_of(_spec(dim, **attrs)))
    ours = module_of(graph, "inorm")
    ref = _reference(dim, ours.num_features, **attrs)
    assert type(ours) is type(ref)
    assert_same_state_dict_layout(ours, ref)
    assert total_params(graph) == sum(p.numel() for p in ref.parameters())
    ref.load_state_dict(ours.state_dict())  # strict both ways
    ours.load_state_dict(randomized(_reference(dim, ours.num_features, **attrs)).state_dict())
    ref.load_state_dict(ours.state_dict())
    x = torch.from_numpy(feeds_for(graph)["x"])
    with torch.no_grad():
        expected = ref(x)
        torch.testing.assert_close(ours(x), expected)
    # onnxruntime runs the graph with archc's (randomised) weights, the reference with the same
    ref.load_state_dict(module_of(graph, "inorm").state_dict())
    with torch.no_grad():
        expected = ref(x).numpy()
    np.testing.assert_allclose(run_onnx(graph, {"x": x.numpy()})[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("text,line", [
    (_spec(2), "self.inorm = nn.InstanceNorm2d(4)"),
    (_spec(2, affine=True), "self.inorm = nn.InstanceNorm2d(4, affine=True)"),
    (_spec(2, eps=0.001, affine=True), "self.inorm = nn.InstanceNorm2d(4, eps=0.001, affine=True)"),
    (_spec(1, momentum=0.3, track_running_stats=True),
     "self.inorm = nn.InstanceNorm1d(4, momentum=0.3, track_running_stats=True)"),
    (_spec(3, affine=True, track_running_stats=True),
     "self.inorm = nn.InstanceNorm3d(3, affine=True, track_running_stats=True)"),
    ("inputs: {x: [N, C, 5]}\nnodes: [{name: inorm, op: instancenorm}]", "inorm = F.instance_norm(x)"),
])
def test_generated_pytorch_writes_the_arguments_that_differ_from_pytorchs_defaults(text, line):
    # as batchnorm's and conv's rarer arguments, and as CycleGAN's code writes nn.InstanceNorm2d(ngf)
    source = generate_source(graph_of(text))
    assert line in [s.strip() for s in source.splitlines()], source


CYCLEGAN_BLOCK = """inputs: {x: [N, 16, 6, 5]}
blocks:
  resnet_block:
    sequential: true
    params: {dim: null}
    nodes:
      - {op: pad, pads: [1, 1, 1, 1], mode: reflect}
      - {op: conv, out_channels: dim, kernel_size: 3}
      - {op: instancenorm}
      - {op: relu}
      - {op: pad, pads: [1, 1, 1, 1], mode: reflect}
      - {op: conv, out_channels: dim, kernel_size: 3}
      - {op: instancenorm}
nodes:
  - {name: block, block: resnet_block, dim: 16}
  - {name: add, op: add, in: [x, block], expect: residual}
"""


@pytest.mark.parametrize("affine", [False, True])
def test_the_generated_module_scripts_traces_and_exports(affine):
    norm = f"{{op: instancenorm, affine: {str(affine).lower()}}}"
    graph = randomize(graph_of(CYCLEGAN_BLOCK.replace("{op: instancenorm}", norm)))
    module = build_module(graph).eval()
    x = torch.randn(2, 16, 6, 5)
    with torch.no_grad():
        expected = module(x)
        torch.testing.assert_close(torch.jit.script(module)(x), expected)
        torch.testing.assert_close(torch.fx.symbolic_trace(module)(x), expected)
        torch.testing.assert_close(torch.export.export(module, (x,)).module()(x), expected)
    np.testing.assert_allclose(run_onnx(graph, {"x": x.numpy()})[0], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_the_symbolic_channel_form_scripts_traces_and_exports():
    graph = graph_of("inputs: {x: [N, C, L]}\nnodes: [{op: instancenorm, eps: 0.01}]")
    module = build_module(graph).eval()
    x = torch.randn(2, 3, 7)
    expected = nn.functional.instance_norm(x, eps=0.01)
    torch.testing.assert_close(module(x), expected)
    torch.testing.assert_close(torch.jit.script(module)(x), expected)
    torch.testing.assert_close(torch.fx.symbolic_trace(module)(x), expected)
    torch.testing.assert_close(torch.export.export(module, (x,)).module()(x), expected)


def test_onnx_writes_instance_normalization_with_literal_ones_and_zeros_without_affine():
    graph = randomize(graph_of(_spec(2)))
    model = to_onnx(graph)
    assert [n.op_type for n in model.graph.node] == ["Constant", "Constant", "InstanceNormalization"]
    assert not [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    affine = to_onnx(randomize(graph_of(_spec(2, affine=True))))
    assert [n.op_type for n in affine.graph.node] == ["InstanceNormalization"]
    assert sorted(i.name for i in affine.graph.initializer) == ["inorm.bias", "inorm.weight"]


@pytest.mark.parametrize("affine", [False, True])
def test_running_statistics_lower_as_batch_normalization_and_fold_into_the_conv_before(affine):
    # PyTorch's eval mode normalises by the running statistics: a per-channel affine, as batchnorm's
    text = ("inputs: {x: [N, 3, 6, 5]}\nnodes:\n  - {name: conv, op: conv, out_channels: 4, kernel_size: 3}\n"
            f"  - {{name: inorm, op: instancenorm, track_running_stats: true, affine: {str(affine).lower()}}}\n")
    graph = randomize(graph_of(text))
    assert [n.op_type for n in to_onnx(graph).graph.node][-1] == "BatchNormalization"
    folded = optimize_for_inference(graph)
    assert [n.op for n in folded.nodes()] == ["input", "conv"]
    x = feeds_for(graph)["x"]
    with torch.no_grad():
        expected = build_module(graph).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(folded, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_an_instance_norm_without_running_statistics_does_not_fold():
    text = ("inputs: {x: [N, 3, 6, 5]}\nnodes:\n  - {name: conv, op: conv, out_channels: 4, kernel_size: 3}\n"
            "  - {name: inorm, op: instancenorm, affine: true}\n")
    optimized = optimize_for_inference(randomize(graph_of(text)))
    assert [n.op for n in optimized.nodes()] == ["input", "conv", "instancenorm"]


def test_macs_and_role_as_the_other_norms():
    text = ("inputs: {x: [N, 4, 5, 6]}\nnodes:\n  - {name: a, op: instancenorm, affine: true}\n"
            "  - {name: g, op: groupnorm, num_groups: 4}\n  - {name: t, op: instancenorm, track_running_stats: true}\n"
            "  - {name: b, op: batchnorm}\n")
    graph = graph_of(text)
    per = {c.name: c for c in costs(graph, batch=3)}
    # the instance's own statistics: one multiply-add per element, as group norm; running ones fold, as batchnorm's
    assert per["a"].macs == per["g"].macs == 3 * 4 * 5 * 6
    assert per["t"].macs == per["b"].macs == 0
    assert (per["a"].params, per["t"].params) == (8, 0)
    for name in "at":
        node = graph.node(name)
        assert registry.lookup(node.op).role_of(node) == "norm"


@pytest.mark.parametrize("text,message", [
    ("inputs: {x: [N, 6]}\nnodes: [{name: inorm, op: instancenorm}]",
     "expected a 3-D, 4-D or 5-D input (N, C, L), (N, C, H, W) or (N, C, D, H, W), got 2-D (N, 6): an (N, C) "
     "input has one value per sample and channel, nothing to normalise over"),
    ("inputs: {x: [N, 2, 3, 4, 5, 6]}\nnodes: [{name: inorm, op: instancenorm}]", "got 6-D (N, 2, 3, 4, 5, 6)"),
    ("inputs: {x: [N, C, 8, 8]}\nnodes: [{name: inorm, op: instancenorm, affine: true}]",
     "with affine: true (one value per channel), the channels (dim 1) must be a known size, got symbolic 'C'"),
    ("inputs: {x: [N, C, 8]}\nnodes: [{name: inorm, op: instancenorm, track_running_stats: true}]",
     "with track_running_stats: true (one value per channel), the channels (dim 1) must be a known size"),
    ("inputs: {x: {shape: [N, 3, 8], dtype: int64}}\nnodes: [{name: inorm, op: instancenorm}]",
     "instancenorm expects a floating-point input, got int64"),
    ("inputs: {x: [N, 3, 8]}\nnodes: [{name: inorm, op: instancenorm, momentum: 2}]",
     "attribute 'momentum' of op 'instancenorm' must be at most 1, got 2"),
    ("inputs: {x: [N, 3, 8]}\nnodes: [{name: inorm, op: instancenorm, num_features: 3}]",
     "archc infers 'num_features' from the input's channels (dim 1): leave it out"),
])
def test_bad_input_says_where_and_what_was_expected(text, message):
    msg = spec_error(text)
    assert message in msg, msg
    assert msg.startswith("<spec>:3:") and "node 'inorm'" in msg, msg


# -- ONNX import -------------------------------------------------------------------------------------

class _ConvInstanceNorm(nn.Module):
    def __init__(self, dim: int, affine: bool) -> None:
        super().__init__()
        self.conv = getattr(nn, f"Conv{dim}d")(3, 4, 3)
        self.norm = getattr(nn, f"InstanceNorm{dim}d")(4, affine=affine, eps=1e-3)

    def forward(self, x):
        return self.norm(self.conv(x))


INPUTS = {1: (2, 3, 9), 2: (2, 3, 6, 5), 3: (2, 3, 4, 3, 5)}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("affine,fresh", [(False, True), (True, True), (True, False)],
                         ids=["no_affine", "affine_fresh", "affine_trained"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_exported_instance_norm_imports_as_the_native_op(dim, affine, fresh, dynamo):
    # TorchScript writes affine=False's scale and bias as Constant nodes, dynamo as initializers its graph
    # signature lists as no parameter; a fresh affine module's learned ones and zeros stay learned.
    torch.manual_seed(0)
    ref = _ConvInstanceNorm(dim, affine).eval()
    if not fresh:
        randomized(ref)
    x = torch.randn(*INPUTS[dim])
    graph = from_onnx(export_onnx(ref, x, dynamo))
    (norm,) = [n for n in graph.nodes() if n.op == "instancenorm"]
    assert [n.op for n in graph.nodes()][-1] == "instancenorm"  # (archc's conv is 1-D and 2-D: Conv3d stays ONNX)
    assert {k: norm.attrs[k] for k in ("eps", "affine", "track_running_stats")} == \
        {"eps": 1e-3, "affine": affine, "track_running_stats": False}
    assert total_params(graph) == sum(p.numel() for p in ref.parameters())
    ours = build_module(graph).eval()
    assert_same_state_dict_layout(ours.get_submodule(norm.name), ref.norm)
    ref.norm.load_state_dict(ours.get_submodule(norm.name).state_dict())  # strict
    with torch.no_grad():
        expected = ref(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
    (name,) = graph.inputs
    np.testing.assert_allclose(run_onnx(graph, {name: x.numpy()})[0], expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["plain", "affine"])
def test_archcs_own_onnx_reimports_as_the_spec(variant):
    graph = randomize(graph_of(_spec(2, **VARIANTS[variant])))
    back = from_onnx(to_onnx(graph))
    (norm,) = [n for n in back.nodes() if n.op == "instancenorm"]
    assert norm.attrs == graph.node("inorm").attrs
    assert total_params(back) == total_params(graph)
    x = feeds_for(graph)["x"]
    with torch.no_grad():
        expected = build_module(graph).eval()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(build_module(back).eval()(torch.from_numpy(x)).numpy(), expected,
                                   rtol=1e-5, atol=1e-5)


def test_a_groupnorm_export_still_fuses_to_groupnorm_over_the_imported_instance_norm():
    # both exporters write nn.GroupNorm around an InstanceNormalization of per-group ones and zeros
    for dynamo in (False, True):
        ref = randomized(nn.Sequential(nn.Conv2d(3, 6, 3), nn.GroupNorm(3, 6)))
        graph = from_onnx(export_onnx(ref, torch.randn(2, 3, 6, 5), dynamo))
        assert [n.op for n in graph.nodes()] == ["input", "conv", "groupnorm"], dynamo
        assert total_params(graph) == sum(p.numel() for p in ref.parameters())


class CycleGanResnetBlock(nn.Module):
    """CycleGAN's ResnetBlock (Zhu et al. 2017, pytorch-CycleGAN-and-pix2pix), its default instance norm."""

    def __init__(self, dim: int, affine: bool) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim, affine=affine), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim, affine=affine))

    def forward(self, x):
        return x + self.conv_block(x)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("affine", [False, True], ids=["no_affine", "affine"])
def test_archc_summary_and_lint_of_an_exported_cyclegan_block(dynamo, affine, run_archc, tmp_path):
    ref = randomized(CycleGanResnetBlock(8, affine))
    path = tmp_path / "block.onnx"
    path.write_bytes(export_onnx(ref, torch.randn(1, 8, 16, 16), dynamo).SerializeToString())
    summary = run_archc("summary", str(path), check=True).stdout
    # name, op, the shape's 4 dims, parameters
    rows = [line.split() for line in summary.splitlines() if " instancenorm " in line]
    assert [(row[1], row[6]) for row in rows] == [("instancenorm", "16" if affine else "0")] * 2, summary
    expected = sum(p.numel() for p in ref.parameters())
    assert expected == (1200 if affine else 1168)  # two 3x3 convs of 8 channels (+ 2 x 8 + 8 affine)
    assert f"{expected:,} parameters ({expected:,} trainable)" in summary
    assert "residual 1," in run_archc("lint", str(path), check=True).stdout
