"""Layer and group normalisation: parity, agreement with nn.LayerNorm / nn.GroupNorm, errors."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from archc.frontends.onnx import from_onnx
from archc.lowering.onnx import to_onnx
from archc.lowering.torch import build_module, generate_source
from archc.ops import registry
from archc.ops.weights import total_params
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, randomize, \
    spec_error
from ops_harness import parity_suite, run_onnx
from weights_helpers import randomized

PARITY_OPS = {"layernorm", "groupnorm", "batchnorm"}

CASES = [
    ("layernorm_tokens", "inputs: {x: [N, L, 6]}\nnodes: [{op: layernorm}]"),
    ("layernorm_two_dims", "inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: layernorm, dims: 2, eps: 0.001}]"),
    ("layernorm_all_dims", "inputs: {x: [N, 3, 5]}\nnodes: [{op: layer_norm, dims: 2}]"),
    ("layernorm_no_affine", "inputs: {x: [N, 7]}\nnodes: [{op: layernorm, elementwise_affine: false}]"),
    ("layernorm_no_bias", "inputs: {x: [N, L, 6]}\nnodes: [{op: layernorm, bias: false}]"),
    ("groupnorm_2d", "inputs: {x: [N, 6, 3, 5]}\nnodes: [{op: groupnorm, num_groups: 3}]"),
    ("groupnorm_1d_eps", "inputs: {x: [N, 4, 7]}\nnodes: [{op: groupnorm, num_groups: 2, eps: 0.01}]"),
    ("groupnorm_no_affine", "inputs: {x: [N, 6, 2, 3]}\nnodes: [{op: group_norm, num_groups: 6, affine: false}]"),
    ("groupnorm_one_group_2d_input", "inputs: {x: [N, 5]}\nnodes: [{op: groupnorm, num_groups: 1}]"),
    ("batchnorm_no_affine", "inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: batchnorm, affine: false, eps: 0.01}]"),
    ("batchnorm1d_no_affine", "inputs: {x: [N, 6]}\nnodes: [{op: batchnorm1d, affine: false}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("text,reference", [
    ("inputs: {x: [N, 3, 4, 5]}\nnodes: [{name: ln, op: layernorm, dims: 2, eps: 0.001}]",
     lambda: torch.nn.LayerNorm((4, 5), eps=1e-3)),
    ("inputs: {x: [N, L, 6]}\nnodes: [{name: ln, op: layernorm, bias: false}]",
     lambda: torch.nn.LayerNorm(6, bias=False)),
    ("inputs: {x: [N, L, 6]}\nnodes: [{name: ln, op: layernorm, elementwise_affine: false}]",
     lambda: torch.nn.LayerNorm(6, elementwise_affine=False)),
    ("inputs: {x: [N, 6, 3, 5]}\nnodes: [{name: ln, op: groupnorm, num_groups: 3}]",
     lambda: torch.nn.GroupNorm(3, 6)),
    ("inputs: {x: [N, 3, 4, 2, 5]}\nnodes: [{name: ln, op: batchnorm, eps: 0.001}]",
     lambda: torch.nn.BatchNorm3d(3, eps=1e-3)),
    ("inputs: {x: [N, 3, 4, 5]}\nnodes: [{name: ln, op: batchnorm, affine: false}]",
     lambda: torch.nn.BatchNorm2d(3, affine=False)),
    ("inputs: {x: [N, 4, 7]}\nnodes: [{name: ln, op: batchnorm1d, affine: false, momentum: 0.3}]",
     lambda: torch.nn.BatchNorm1d(4, momentum=0.3, affine=False)),
])
def test_matches_reference_module(text, reference):
    graph = randomize(graph_of(text))
    ours, ref = module_of(graph, "ln"), reference().eval()
    assert_same_state_dict_layout(ours, ref)
    ref.load_state_dict(ours.state_dict())
    x = torch.from_numpy(feeds_for(graph)["x"])
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_default_init_is_identity_affine():
    graph = graph_of("inputs: {x: [N, L, 6]}\nnodes: [{name: ln, op: layernorm}]")
    from archc.ops.weights import initialize

    w = initialize(graph, 0).weights["ln"]
    assert (w["weight"] == 1).all() and (w["bias"] == 0).all() and w["weight"].shape == (6,)


def test_roles():
    for op in ("layernorm", "groupnorm, num_groups: 2"):
        graph = graph_of(f"inputs: {{x: [N, 4, 3]}}\nnodes: [{{op: {op}}}]")
        node = list(graph.nodes())[-1]
        assert registry.lookup(node.op).role_of(node) == "norm"


@pytest.mark.parametrize("text,message", [
    ("{op: layernorm, dims: 4}", "dims=4 must be between 1 and the input's rank 3 ((N, L, 6))"),
    ("{op: layernorm, dims: 2}", "a normalised dim must be a known size, got symbolic 'L'"),
    ("{op: groupnorm, num_groups: 4}", "channels must be a known size, got symbolic 'L'"),
])
def test_errors(text, message):
    msg = spec_error(f"inputs: {{x: [N, L, 6]}}\nnodes: [{text}]")
    assert message in msg


def test_groupnorm_groups_must_divide_channels():
    msg = spec_error("inputs: {x: [N, 6, 4]}\nnodes: [{op: groupnorm, num_groups: 4}]")
    assert "num_groups=4 must divide the number of channels 6" in msg


BN_NO_AFFINE = """inputs: {x: [N, 3, 4, 5]}
nodes:
  - {name: relu, op: relu}
  - {name: bn, op: batchnorm, affine: false}
"""


def test_batchnorm_without_affine_has_buffers_only():
    graph = graph_of(BN_NO_AFFINE)
    ref = torch.nn.BatchNorm2d(3, affine=False)
    assert total_params(graph) == sum(p.numel() for p in ref.parameters()) == 0
    assert "self.bn = nn.BatchNorm2d(3, affine=False)" in generate_source(graph)
    ours = build_module(graph).bn
    assert list(ours.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    ours.load_state_dict(randomized(ref).state_dict())  # strict: the reference's keys exactly


def test_batchnorm_without_affine_lowers_its_unit_scale_as_literals_and_reimports_without_parameters():
    graph = randomize(graph_of(BN_NO_AFFINE))
    model = to_onnx(graph)
    # ONNX BatchNormalization needs a scale and bias: Constant nodes, not initializers (parameters)
    assert sorted(i.name for i in model.graph.initializer) == ["bn.running_mean", "bn.running_var"]
    assert [n.op_type for n in model.graph.node] == ["Relu", "Constant", "Constant", "BatchNormalization"]
    back = from_onnx(model)
    (bn,) = [n for n in back.nodes() if n.op == "batchnorm"]
    assert bn.attrs["affine"] is False and total_params(back) == total_params(graph) == 0
    x = feeds_for(graph)["x"]
    with torch.no_grad():
        expected = build_module(graph).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(graph, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_onnx(back, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


class _ReluBatchNorm(torch.nn.Module):
    """A batchnorm after a ReLU (after a conv both exporters fold it into the conv's weights)."""

    def __init__(self, affine: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.relu = torch.nn.ReLU()
        self.bn = torch.nn.BatchNorm2d(4, affine=affine)

    def forward(self, x):
        return self.bn(self.relu(self.conv(x)))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("affine", [False, True], ids=["no_affine", "affine"])
@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "trained"])
def test_imported_batchnorm_is_affine_as_the_exported_module(dynamo, affine, fresh, tmp_path):
    # A fresh affine batchnorm's weight is all ones and its bias zeros, as the literals of an
    # affine=False export: the scale being a parameter of the module (an initializer; dynamo: one
    # its graph signature lists) keeps it affine. (A fresh module's statistics also equal its
    # ones and zeros, which the dynamo exporter then stores once and reads twice.)
    torch.manual_seed(0)
    ref = _ReluBatchNorm(affine).eval()
    if not fresh:
        randomized(ref)
    x = torch.randn(2, 3, 8, 8)
    path = tmp_path / "bn.onnx"
    torch.onnx.export(ref, (x,), str(path), dynamo=dynamo)
    graph = from_onnx(onnx.load(str(path)), str(path))
    (bn,) = [n for n in graph.nodes() if n.op == "batchnorm"]
    assert bn.attrs["affine"] is affine
    assert total_params(graph) == sum(p.numel() for p in ref.parameters())
    ours = build_module(graph).eval()
    assert_same_state_dict_layout(ours.get_submodule(bn.name), ref.bn)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_archc_summary_counts_an_exported_batchnorm_without_affine_as_torch_does(run_archc, tmp_path):
    ref = randomized(_ReluBatchNorm(affine=False))
    path = tmp_path / "bn.onnx"
    torch.onnx.export(ref, (torch.randn(1, 3, 8, 8),), str(path), dynamo=True)
    proc = run_archc("summary", str(path), check=True)
    assert "total: 4 nodes, 112 parameters (112 trainable)" in proc.stdout  # the conv's 4*3*3*3 + 4
    assert sum(p.numel() for p in ref.parameters()) == 112


def test_archc_verify_checks_a_batchnorm_without_affine_folded_or_not(run_archc, spec_file):
    spec = BN_NO_AFFINE.replace("{name: relu, op: relu}", "{name: conv, op: conv, out_channels: 3, kernel_size: 1}")
    for text in (BN_NO_AFFINE, spec):
        proc = run_archc("verify", spec_file(text), check=True)
        assert "PASSED" in proc.stdout


# -- operands an ONNX op requires that the module does not learn: literals, not parameters --------

@pytest.mark.parametrize("text,norm,attrs", [
    ("inputs: {x: [N, 4, 8]}\nnodes: [{name: ln, op: layernorm, elementwise_affine: false}]",
     "layernorm", {"elementwise_affine": False}),
    ("inputs: {x: [N, 4, 8]}\nnodes: [{name: ln, op: layernorm, bias: false}]",
     "layernorm", {"elementwise_affine": True, "bias": False}),
    # (imported as its transposes around a layernorm over the channels)
    ("inputs: {x: [N, 4, 3, 5]}\nnodes: [{name: ln, op: layernorm2d, elementwise_affine: false}]",
     "layernorm", {"elementwise_affine": False}),
    ("inputs: {x: [N, 6, 3, 5]}\nnodes: [{name: gn, op: groupnorm, num_groups: 3}]",
     "groupnorm", {"num_groups": 3, "affine": True}),
    ("inputs: {x: [N, 6, 3, 5]}\nnodes: [{name: gn, op: groupnorm, num_groups: 2, affine: false}]",
     "groupnorm", {"num_groups": 2, "affine": False}),
    (BN_NO_AFFINE, "batchnorm", {"affine": False}),
], ids=["layernorm_no_affine", "layernorm_no_bias", "layernorm2d_no_affine", "groupnorm", "groupnorm_no_affine",
        "batchnorm_no_affine"])
def test_a_norm_writes_only_its_state_dict_as_float_initializers_and_reimports_with_its_parameters(
        text, norm, attrs):
    # LayerNormalization's scale, BatchNormalization's scale and bias, and groupnorm's per-group
    # InstanceNormalization ones and zeros are required operands the module does not learn: an
    # initializer would be read back (by archc, as by other readers of the file) as a parameter.
    graph = randomize(graph_of(text))
    model = to_onnx(graph)
    floats = sorted(i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
    assert floats == sorted(build_module(graph).state_dict().keys() - {"bn.num_batches_tracked"})
    back = from_onnx(model)
    (node,) = [n for n in back.nodes() if n.op == norm]
    assert {key: node.attrs[key] for key in attrs} == attrs
    assert total_params(back) == total_params(graph)
    x = feeds_for(graph)["x"]
    with torch.no_grad():
        expected = build_module(graph).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(back, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_archc_summary_of_archc_onnx_counts_a_layernorm_without_affine_as_the_spec_does(run_archc, spec_file,
                                                                                       tmp_path):
    spec = spec_file("inputs: {x: [N, 4, 8]}\nnodes: [{op: layernorm, elementwise_affine: false}]")
    run_archc("build", spec, "--target", "onnx", "-o", str(tmp_path / "x.onnx"), check=True)
    proc = run_archc("summary", str(tmp_path / "x.onnx"), check=True)
    assert "total: 2 nodes, 0 parameters (0 trainable)" in proc.stdout
    assert sum(p.numel() for p in torch.nn.LayerNorm(8, elementwise_affine=False).parameters()) == 0


class _LayerNormResidual(torch.nn.Module):
    """``x + fc(norm(x))``: a pre-norm residual, lint's residual whatever the norm learns."""

    def __init__(self, **norm) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(8, **norm)
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x):
        return x + self.fc(self.norm(x))


LAYERNORM_VARIANTS = {"no_affine": {"elementwise_affine": False}, "no_bias": {"bias": False}, "affine": {}}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("variant", list(LAYERNORM_VARIANTS))
@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "trained"])
def test_imported_layernorm_learns_what_the_exported_module_learns(dynamo, variant, fresh, tmp_path):
    # nn.LayerNorm(8, elementwise_affine=False): TorchScript writes a Constant scale of ones and
    # bias of zeros, dynamo an initializer of ones its graph signature lists as no parameter;
    # bias=False: TorchScript writes a Constant bias of zeros, dynamo none. A fresh affine
    # layernorm's learned ones and zeros stay parameters.
    from archc.analysis.skips import analyze

    torch.manual_seed(0)
    ref = _LayerNormResidual(**LAYERNORM_VARIANTS[variant]).eval()
    if not fresh:
        randomized(ref)
    x = torch.randn(2, 4, 8)
    path = tmp_path / "ln.onnx"
    torch.onnx.export(ref, (x,), str(path), dynamo=dynamo)
    graph = from_onnx(onnx.load(str(path)), str(path))
    (ln,) = [n for n in graph.nodes() if n.op == "layernorm"]
    affine = ln.attrs["elementwise_affine"]
    assert (affine, affine and ln.attrs["bias"]) == (ref.norm.weight is not None, ref.norm.bias is not None)
    assert total_params(graph) == sum(p.numel() for p in ref.parameters())
    ours = build_module(graph).eval()
    ours.get_submodule(ln.name).load_state_dict(ref.norm.state_dict())  # strict: the reference's keys
    (name,) = graph.inputs
    with torch.no_grad():
        expected = ref(x).numpy()
        torch.testing.assert_close(ours(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_onnx(graph, {name: x.numpy()})[0], expected, rtol=1e-5, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    exported = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(exported.run(None, {exported.get_inputs()[0].name: x.numpy()})[0], expected,
                               rtol=1e-5, atol=1e-5)
    (skip,) = analyze(graph).skips
    assert skip.kind == "residual"


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_archc_summary_and_lint_of_an_exported_layernorm_without_affine(dynamo, run_archc, tmp_path):
    ref = randomized(_LayerNormResidual(elementwise_affine=False))
    path = tmp_path / "ln.onnx"
    torch.onnx.export(ref, (torch.randn(2, 4, 8),), str(path), dynamo=dynamo)
    summary = run_archc("summary", str(path), check=True).stdout
    assert sum(p.numel() for p in ref.parameters()) == 72  # the linear's 8*8 + 8
    assert "72 parameters (72 trainable)" in summary
    assert "residual 1," in run_archc("lint", str(path), check=True).stdout
