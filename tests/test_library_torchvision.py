"""Library specs of torchvision models against references transcribed from torchvision's source
(tests/torchvision_models.py; torchvision itself is not installed here): the same state_dict keys and
shapes in the same order, the same parameter count in ``archc summary``, and archc's generated module
loads the reference's state_dict strictly and computes the same outputs.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archc import load_spec
from archc.lowering.torch import build_module
from archc.ops.weights import total_params
from weights_helpers import assert_same_layout, state_dict_specs

import torchvision_models as tv
from conftest import SPECS


def spec(name: str) -> str:
    return str(SPECS / f"{name}.yaml")


def summary_total(run_archc, *args: str) -> str:
    proc = run_archc("summary", *args, check=True)
    return next(line for line in proc.stdout.splitlines() if line.startswith("total:"))


def randomize_norm_statistics(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so a wrong norm shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.uniform_(-0.2, 0.2, generator=g)
    return module


def assert_loads_reference(graph, reference: nn.Module, x: torch.Tensor) -> None:
    """archc's module loads the reference's state_dict strictly and gives the same outputs (eval)."""
    randomize_norm_statistics(reference)
    ours = build_module(graph)
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        got, want = ours.eval()(x), reference.eval()(x)
    assert want.abs().max() > 0 and want.std() > 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# -- RegNet ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", [None, "regnet_y_800mf", "regnet_x_400mf"])
def test_regnet_layout_and_count_match_torchvision(profile):
    graph = load_spec(spec("regnet_y_400mf"), profile=profile)
    reference = tv.regnet(profile or "regnet_y_400mf")
    assert_same_layout(graph, reference)


def test_regnet_y_400mf_summary_reports_torchvisions_count(run_archc):
    assert " 4,344,144 parameters " in summary_total(run_archc, spec("regnet_y_400mf"))


def test_regnet_y_400mf_loads_the_reference_with_equal_outputs():
    graph = load_spec(spec("regnet_y_400mf"), profile="small")
    torch.manual_seed(0)
    reference = tv.regnet("regnet_y_400mf", num_classes=10)
    assert_loads_reference(graph, reference, torch.randn(2, 3, 64, 64))


# -- EfficientNetV2 -------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", [None, "efficientnet_v2_m", "efficientnet_v2_l"])
def test_efficientnet_v2_layout_and_count_match_torchvision(profile):
    graph = load_spec(spec("efficientnet_v2_s"), profile=profile)
    with torch.device("meta"):
        reference = tv.efficientnet_v2(profile or "efficientnet_v2_s")
    assert_same_layout(graph, reference)


def test_efficientnet_v2_s_summary_reports_torchvisions_count(run_archc):
    total = summary_total(run_archc, spec("efficientnet_v2_s"))
    assert " 21,458,488 parameters " in total
    assert "8.37 GMACs" in total  # torchvision's 8.37 GFLOPS at 384 x 384


def test_efficientnet_v2_s_loads_the_reference_with_equal_outputs():
    graph = load_spec(spec("efficientnet_v2_s"), profile="small")
    torch.manual_seed(0)
    reference = tv.efficientnet_v2("efficientnet_v2_s", num_classes=10)
    assert_loads_reference(graph, reference, torch.randn(2, 3, 64, 64))


# -- Swin Transformer ------------------------------------------------------------------------------

def test_swin_t_layout_and_count_match_torchvision():
    """Same keys and shapes; only the order inside PatchMerging differs (torchvision registers its
    `reduction` before the `norm` that runs first), which strict loading does not mind."""
    graph = load_spec(spec("swin_t"))
    with torch.device("meta"):
        reference = tv.swin_t()
    ours = sorted((k, tuple(s.shape), s.dtype) for k, s in state_dict_specs(graph))
    theirs = sorted((k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in reference.state_dict().items())
    assert ours == theirs
    assert total_params(graph) == sum(p.numel() for p in reference.parameters()) == 28_288_354


def test_swin_t_summary_reports_torchvisions_count(run_archc):
    total = summary_total(run_archc, spec("swin_t"))
    assert " 28,288,354 parameters " in total
    assert "4.49 GMACs" in total  # torchvision's 4.49 GFLOPS: the windows' N*64 batch dim counts 64 times


def test_swin_t_relative_position_index_is_torchvisions_buffer():
    graph = load_spec(spec("swin_t"))
    with torch.device("cpu"):
        want = tv.swin_t().features[1][0].attn.relative_position_index
    module = build_module(graph)
    got = module.state_dict()["features.1.0.attn.relative_position_index"]
    assert got.dtype == torch.int64 and torch.equal(got, want)
    assert "features.1.0.attn.relative_position_index" not in dict(module.named_parameters())


def test_swin_t_loads_the_reference_with_equal_outputs():
    """The small profile (128 x 128, 4 x 4 windows) shifts the windows of the first three stages."""
    graph = load_spec(spec("swin_t"), profile="small")
    torch.manual_seed(0)
    reference = tv.swin_t(window=4, num_classes=10)
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases, so a wrong one shows
        for name, p in reference.named_parameters():
            if "norm" in name or "bias_table" in name:
                p.add_(torch.rand_like(p) - 0.5)
    assert_loads_reference(graph, reference, torch.randn(2, 3, 128, 128))


# -- every spec of this file: both targets build, verify is meaningful -------------------------------

#: spec -> arguments that make it small (each builds and verifies in seconds)
SMALL = {
    "regnet_y_400mf": ["--profile", "small"],
    "efficientnet_v2_s": ["--profile", "small"],
    "swin_t": ["--profile", "small"],
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_builds_to_both_targets(name, run_archc, tmp_path):
    for target, suffix in (("torch", "py"), ("onnx", "onnx")):
        out = tmp_path / f"{name}.{suffix}"
        run_archc("build", spec(name), "--target", target, "-o", str(out), *SMALL[name], check=True)
        assert out.stat().st_size > 0


@pytest.mark.parametrize("name", sorted(SMALL))
def test_verify_passes_and_is_sensitive(name, run_archc):
    proc = run_archc("verify", spec(name), "--batch", "2", *SMALL[name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("PASSED")
    sensitivity = float(proc.stdout.split("sensitivity ")[1].split()[0])
    assert sensitivity > 0.1  # the outputs depend on the input: agreement proves something
