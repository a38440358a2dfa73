"""`weight_norm: true` on linear, conv and conv_transpose: torch's weight_norm parametrization
(state_dict keys, parameter counts, init), its ONNX lowering, folding at eval, meta-device resets,
weight tying, and calibration."""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import archc.lowering.onnx as onnx_lowering
from archc.lowering.onnx import to_onnx
from archc.lowering.optimize import optimize_for_inference
from archc.lowering.torch import build_module, generate_source, module_class
from archc.ops.weight_norm import DIRECTION, MAGNITUDE
from archc.ops.weights import initialize, total_params
from ops_harness import assert_same_state_dict_layout, feeds_for, graph_of, module_of, run_onnx, spec_error
from weights_helpers import randomize_statistics

weight_norm = nn.utils.parametrizations.weight_norm


def _randomized(graph, seed: int = 0):
    """archc's init with each magnitude g away from ||v||, so that g matters."""
    initialize(graph, seed)
    randomize_statistics(graph, seed)
    rng = np.random.default_rng(seed + 5)
    for params in graph.weights.values():
        if MAGNITUDE in params:
            params[MAGNITUDE] = (params[MAGNITUDE] * rng.uniform(0.5, 2.0, params[MAGNITUDE].shape)).astype(np.float32)
    return graph


REFERENCES = [
    ("inputs: {x: [N, 5]}\nnodes: [{name: l, op: linear, out_features: 6, weight_norm: true}]",
     lambda: nn.Linear(5, 6), "nn.utils.parametrizations.weight_norm(nn.Linear(5, 6, bias=True))"),
    ("inputs: {x: [N, L, 5]}\nnodes: [{name: l, op: linear, out_features: 4, bias: false, weight_norm: true}]",
     lambda: nn.Linear(5, 4, bias=False), "weight_norm(nn.Linear(5, 4, bias=False))"),
    ("inputs: {x: [N, 3, 7, 6]}\nnodes: [{name: l, op: conv, out_channels: 4, kernel_size: 3, stride: 2, "
     "weight_norm: true}]", lambda: nn.Conv2d(3, 4, 3, stride=2), "nn.Conv2d(3, 4, kernel_size=3, stride=2"),
    ("inputs: {x: [N, 4, 9]}\nnodes: [{name: l, op: conv, out_channels: 6, kernel_size: 3, groups: 2, "
     "bias: false, weight_norm: true}]", lambda: nn.Conv1d(4, 6, 3, groups=2, bias=False), "nn.Conv1d(4, 6"),
    ("inputs: {x: [N, 4, 5, 5]}\nnodes: [{name: l, op: conv_transpose, out_channels: 2, kernel_size: 3, "
     "stride: 2, weight_norm: true}]", lambda: nn.ConvTranspose2d(4, 2, 3, stride=2), "nn.ConvTranspose2d("),
]


@pytest.mark.parametrize("text, layer, source", REFERENCES, ids=["linear", "linear_3d_nobias", "conv2d",
                                                                 "conv1d_grouped", "conv_transpose"])
def test_matches_torch_weight_norm_in_both_lowerings(text, layer, source):
    graph = _randomized(graph_of(text))
    ref = weight_norm(layer(), name="weight", dim=0).eval()
    ours = module_of(graph, "l")
    assert_same_state_dict_layout(ours, ref)  # bias, then parametrizations.weight.original0 / original1
    ref.load_state_dict(ours.state_dict())  # strict
    assert total_params(graph) == sum(p.numel() for p in ref.parameters())
    assert source in generate_source(graph)
    x = feeds_for(graph)["x"]
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours(torch.from_numpy(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run_onnx(graph, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_onnx_computes_the_weight_from_g_and_v_at_opset_18_too(monkeypatch):
    # ReduceL2 takes its axes as an input from opset 18 on (an attribute before)
    monkeypatch.setattr(onnx_lowering.Emitter, "opset", 18)
    monkeypatch.setattr(onnx_lowering, "OPSET", 18)
    graph = _randomized(graph_of(REFERENCES[2][0]))
    model = to_onnx(graph)
    assert [n.op_type for n in model.graph.node] == ["ReduceL2", "Div", "Mul", "Conv"]
    assert len(model.graph.node[0].input) == 2
    x = feeds_for(graph)["x"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = module_of(graph, "l")(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_seeded_init_is_torchs_v_as_the_plain_weight_and_g_its_norm():
    text = "inputs: {x: [N, 3, 6, 6]}\nnodes: [{name: l, op: conv, out_channels: 4, kernel_size: 3%s}]"
    normed, plain = initialize(graph_of(text % ", weight_norm: true"), 7), initialize(graph_of(text % ""), 7)
    v, g = normed.weights["l"][DIRECTION], normed.weights["l"][MAGNITUDE]
    np.testing.assert_array_equal(v, plain.weights["l"]["weight"])  # drawn as the plain layer's weight
    np.testing.assert_allclose(g, np.linalg.norm(v.reshape(4, -1), axis=1).reshape(4, 1, 1, 1), rtol=1e-6)
    assert g.dtype == np.float32
    x = torch.from_numpy(feeds_for(plain)["x"])
    with torch.no_grad():  # a fresh weight-normed layer computes what the plain one does, as in torch
        torch.testing.assert_close(build_module(normed)(x), build_module(plain)(x))
    torch.manual_seed(0)
    fresh = weight_norm(nn.Conv2d(3, 4, 3))
    torch.manual_seed(0)
    torch.testing.assert_close(fresh.weight, nn.Conv2d(3, 4, 3).weight)


def test_meta_device_reset_draws_v_from_the_layers_init_and_g_as_its_norm():
    graph = graph_of("inputs: {x: [N, 6, 5, 5]}\nnodes:\n"
                     "  - {name: conv, op: conv, out_channels: 8, kernel_size: 3, weight_norm: true}\n"
                     "  - {op: flatten}\n  - {name: fc, op: linear, out_features: 3, weight_norm: true}")
    cls = module_class(graph)
    with torch.device("meta"):
        model = cls()
    model.to_empty(device="cpu")
    with torch.no_grad():
        for t in model.parameters():
            t.fill_(math.nan)
    for block in model.block_instances():
        block.reset_parameters()
    for layer, fan_in in ((model.conv, 6 * 9), (model.fc, 8 * 9)):
        v, g = layer.parametrizations.weight.original1, layer.parametrizations.weight.original0
        bound = 1 / math.sqrt(fan_in)
        assert v.abs().max() <= bound and v.std() > bound / 3
        torch.testing.assert_close(g.flatten(), v.flatten(1).norm(dim=1))
        torch.testing.assert_close(layer.weight, v)  # g = ||v||: the plain layer's function
    assert model.conv.bias.abs().max() <= 1 / math.sqrt(54) and not model.conv.bias.isnan().any()
    assert torch.isfinite(model(torch.randn(2, 6, 5, 5))).all()


BLOCK_SIZES = """inputs: {x: [N, 8, 20]}
blocks:
  unit:
    params: {ks: 3, ch: 8}
    nodes:
      - {name: c, op: conv, out_channels: ch, kernel_size: ks, padding: "(ks - 1) // 2", weight_norm: true}
      - {name: t, op: conv_transpose, out_channels: 8, kernel_size: ks, padding: "(ks - 1) // 2",
         weight_norm: true}
nodes:
  - {name: a, block: unit, ks: 3}
  - {name: b, block: unit, ks: 5, ch: 6}
  - {name: fc, op: linear, out_features: 4, weight_norm: true}
"""


def test_block_instances_with_other_sizes_share_one_class_and_reset_each_its_own():
    """Weight-normed layers whose kernel size and channels are block parameters: one class, as plain
    layers get, whose reset reads each instance's fan-in at run time (no size written in it)."""
    graph = _randomized(graph_of(BLOCK_SIZES))
    source = generate_source(graph)
    assert source.count("class Unit(nn.Module)") == 1 and "self.b = Unit(ks=5, ch=6)" in source
    ours = build_module(graph).eval()
    fresh = module_class(graph)()
    fresh.load_state_dict(ours.state_dict())  # strict: the same keys and shapes per instance
    x = feeds_for(graph)["x"]
    with torch.no_grad():
        out = ours(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(fresh.eval()(torch.from_numpy(x)).numpy(), out)
    np.testing.assert_allclose(run_onnx(graph, {"x": x})[0], out, rtol=1e-5, atol=1e-5)

    with torch.device("meta"):
        model = module_class(graph)()
    model.to_empty(device="cpu")
    with torch.no_grad():
        for t in model.parameters():
            t.fill_(math.nan)
    for block in model.block_instances():
        block.reset_parameters()
    fan_ins = {"a.c": 8 * 3, "a.t": 8 * 3, "b.c": 8 * 5, "b.t": 8 * 5, "fc": 20}  # t: out/groups * k
    for name, fan_in in fan_ins.items():
        layer = model.get_submodule(name)
        v, g = layer.parametrizations.weight.original1, layer.parametrizations.weight.original0
        bound = 1 / math.sqrt(fan_in)
        assert v.abs().max() <= bound and v.std() > bound / 3, name
        assert layer.bias.abs().max() <= bound and layer.bias.abs().max() > bound / 10, name
        torch.testing.assert_close(g.flatten(), v.flatten(1).norm(dim=1))
    # the ks=5 instance's bound is not the ks=3 one's (1/sqrt(24)): each read its own fan-in
    assert model.b.c.parametrizations.weight.original1.abs().max() > 1 / math.sqrt(40) * 0.9
    assert model.b.c.parametrizations.weight.original1.abs().max() <= 1 / math.sqrt(40)
    assert torch.isfinite(model(torch.from_numpy(x))).all()


def test_hifigan_with_weight_normed_convs_in_blocks_builds_to_torch_and_matches_its_onnx(run_archc, tmp_path):
    """A user's HiFi-GAN piece (res_unit's kernel size and dilation are block parameters) through
    the real entry point: the PyTorch build and its saved weights load strictly and compute what
    the ONNX build of the same seed does."""
    import importlib.util

    from conftest import ROOT

    spec = str(ROOT / "tests" / "data" / "hifigan_weight_norm.yaml")
    py, weights, onnx_file = tmp_path / "hifigan.py", tmp_path / "hifigan.pt", tmp_path / "hifigan.onnx"
    run_archc("build", spec, "--target", "torch", "-o", str(py), "--state-dict", str(weights), check=True)
    run_archc("build", spec, "--target", "onnx", "-o", str(onnx_file), check=True)
    source = py.read_text()
    assert source.count("class ResUnit(nn.Module)") == 1  # ks 3 and 7, dilations 1, 3, 5: one class
    loaded = importlib.util.spec_from_file_location("hifigan_generated", py)
    generated = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(generated)
    model = generated.HifiganPiece().eval()
    model.load_state_dict(torch.load(weights), strict=True)
    x = np.random.default_rng(0).standard_normal((2, 80, 10)).astype(np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    assert out.shape == (2, 1, 80)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], out, rtol=1e-4, atol=1e-5)


FOLD = """inputs: {x: [N, 3, 6, 6]}
nodes:
  - {name: conv, op: conv, out_channels: 4, kernel_size: 3, bias: false, weight_norm: true}
  - {name: bn, op: batchnorm}
  - {op: flatten}
  - {name: fc, op: linear, out_features: 5, weight_norm: true}
"""


def test_eval_folds_the_norm_into_a_plain_weight_then_the_batchnorm():
    graph = _randomized(graph_of(FOLD))
    opt = optimize_for_inference(graph)
    assert [n.op for n in opt.nodes()] == ["input", "conv", "flatten", "linear"]
    assert not opt.node("conv").attrs["weight_norm"] and not opt.node("fc").attrs["weight_norm"]
    assert list(opt.weights["fc"]) == ["weight", "bias"] and graph.node("fc").attrs["weight_norm"]
    w = graph.weights["fc"]
    v = w[DIRECTION].astype(np.float64)
    np.testing.assert_allclose(opt.weights["fc"]["weight"],
                               v * w[MAGNITUDE] / np.linalg.norm(v, axis=1, keepdims=True), rtol=1e-6)
    x = feeds_for(graph)["x"]
    with torch.no_grad():
        expected = build_module(graph).eval()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(build_module(opt).eval()(torch.from_numpy(x)).numpy(), expected,
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_onnx(opt, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)
    assert "weight_norm" not in generate_source(opt)


TIED = """inputs: {x: [N, 6]}
nodes:
  - {name: a, op: linear, out_features: 6, weight_norm: true}
  - {name: b, op: linear, out_features: 6, weight_norm: true,
     tie: {parametrizations.weight.original1: a.parametrizations.weight.original1}}
"""


def test_a_tied_direction_is_one_tensor_and_stays_normed_at_eval():
    graph = _randomized(graph_of(TIED))
    assert total_params(graph) == 36 + 6 + 6 + 6 + 6  # v once; each layer's g and bias
    model = build_module(graph).eval()
    assert model.b.parametrizations.weight.original1 is model.a.parametrizations.weight.original1
    opt = optimize_for_inference(graph)  # folding either would change the other's weight
    assert opt.node("a").attrs["weight_norm"] and opt.node("b").attrs["weight_norm"]
    onnx_model = to_onnx(opt)
    assert sum(i.name.endswith(DIRECTION) for i in onnx_model.graph.initializer) == 1
    x = feeds_for(graph)["x"]
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(opt, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_tying_the_computed_weight_is_an_error_listing_the_parameters():
    msg = spec_error("inputs: {x: [N, 6]}\nnodes:\n  - {name: a, op: linear, out_features: 6}\n"
                     "  - {name: b, op: linear, out_features: 6, weight_norm: true, tie: {weight: a.weight}}")
    assert "op 'linear' has no parameter 'weight' to tie; it has: bias, parametrizations.weight.original0, " \
           "parametrizations.weight.original1" in msg


def test_weight_norm_must_be_a_bool():
    msg = spec_error("inputs: {x: [N, 6]}\nnodes: [{op: linear, out_features: 6, weight_norm: 2}]")
    assert "attribute 'weight_norm' of op 'linear' expects true or false" in msg


def test_calibration_scales_the_magnitude_so_the_output_has_unit_variance():
    # The computed weight cannot be scaled in place (each access recomputes it): g is.
    from archc.runtime.calibrate import calibrate, calibration_inputs

    graph = initialize(graph_of("inputs: {x: [N, 3, 6, 6]}\nnodes: [{name: conv, op: conv, out_channels: 4, "
                                "kernel_size: 3, weight_norm: true}]"))
    v_before = graph.weights["conv"][DIRECTION].copy()
    feeds = feeds_for(graph)
    assert calibrate(graph, feeds) == (1, 0)
    np.testing.assert_array_equal(graph.weights["conv"][DIRECTION], v_before)
    x = torch.from_numpy(calibration_inputs(graph, feeds, 0)["x"])
    with torch.no_grad():
        assert abs(float(build_module(graph).eval()(x).std()) - 1) < 1e-3


def test_archc_verify_checks_weight_normed_layers(run_archc, spec_file):
    proc = run_archc("verify", spec_file(FOLD), check=True)
    assert "2 layers scaled to unit output variance" in proc.stdout and "PASSED" in proc.stdout


def test_fx_and_torch_export_trace_the_parametrization_and_the_eval_build_scripts():
    graph = _randomized(graph_of(FOLD))
    model = build_module(graph).eval()
    x = torch.from_numpy(feeds_for(graph)["x"])
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), expected)
        torch.testing.assert_close(torch.export.export(model, (x,)).module()(x), expected)
        # torch's parametrizations are not scriptable: the eval build has plain weights, which are
        torch.testing.assert_close(torch.jit.script(build_module(optimize_for_inference(graph)).eval())(x),
                                   expected, rtol=1e-5, atol=1e-5)
