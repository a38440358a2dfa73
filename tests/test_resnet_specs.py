"""The shipped ResNet specs report torchvision's exact parameter counts."""
from __future__ import annotations

import pytest

from archc import load_spec
from archc.ir.weights import total_params, state_dict_specs

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
