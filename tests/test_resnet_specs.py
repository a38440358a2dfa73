"""The shipped ResNet specs report torchvision's exact parameter counts."""
from __future__ import annotations

import pytest

from archc import load_spec
from archc.ops.weights import total_params
from weights_helpers import state_dict_specs

from conftest import SPECS

REFERENCE_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_counts_match_torchvision(name):
    g = load_spec(str(SPECS / f"{name}.yaml"))
    assert total_params(g) == REFERENCE_PARAMS[name]
    assert g.type_of(g.outputs["fc"]).shape == ("N", 1000)


def test_resnet50_state_dict_names_follow_torchvision():
    g = load_spec(str(SPECS / "resnet50.yaml"))
    keys = [k for k, _ in state_dict_specs(g)]
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert "layer1.0.downsample.0.weight" in keys
    assert "layer1.0.downsample.1.running_var" in keys
    assert "layer1.1.downsample.0.weight" not in keys
    assert "layer4.2.conv3.weight" in keys
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert len(keys) == 320  # torchvision resnet50().state_dict() has 320 entries


def test_smaller_input_and_width_via_overrides():
    g = load_spec(str(SPECS / "resnet18.yaml"), overrides={"image_size": 32, "width": 16, "num_classes": 10})
    assert g.node("layer4.1.relu2").type.shape == ("N", 128, 1, 1)
    assert g.node("fc").type.shape == ("N", 10)


# -- every classic classifier spec builds to both targets and agrees, at a small size ------------

SMALL = {
    "resnet18": ["--set", "image_size=32", "--set", "width=8"],
    "resnet34": ["--set", "image_size=32", "--set", "width=8"],
    "resnet50": ["--set", "image_size=32", "--set", "width=8"],
    "resnet101": ["--set", "image_size=32", "--set", "width=4"],
    "resnet152": ["--set", "image_size=32", "--set", "width=4"],
    "densenet121": ["--set", "image_size=32", "--set", "growth_rate=4", "--set", "init_features=8"],
    "googlenet": ["--set", "image_size=32", "--set", "num_classes=10"],
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_verify_torch_against_onnxruntime(name, capsys):
    from archc.cli import main

    code = main(["verify", str(SPECS / f"{name}.yaml"), "--batch", "2", *SMALL[name]])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().endswith("PASSED")


def test_densenet121_and_googlenet_reference_counts_and_names():
    dense = load_spec(str(SPECS / "densenet121.yaml"))
    assert total_params(dense) == 7_978_856
    keys = [k for k, _ in state_dict_specs(dense)]
    assert "features.denseblock1.denselayer1.norm1.weight" in keys
    assert "features.transition3.conv.weight" in keys and keys[-2:] == ["classifier.weight", "classifier.bias"]
    google = load_spec(str(SPECS / "googlenet.yaml"))
    assert total_params(google) == 6_624_904
    keys = [k for k, _ in state_dict_specs(google)]
    assert "inception3a.branch2.1.conv.weight" in keys and "inception5b.branch4.1.bn.running_var" in keys
