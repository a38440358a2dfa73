"""Library specs written with the newer language features, against PyTorch references written here
in torchvision's / the original code's module structure: SqueezeNet 1.1 (flat nn.Sequential numbering)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archc import load_spec
from archc.cli import main
from archc.ir.weights import initialize, randomize_statistics, state_dict_specs, total_params
from archc.lowering.torch import build_module, state_dict_from_graph

from conftest import SPECS


def spec(name: str) -> str:
    return str(SPECS / f"{name}.yaml")


def assert_same_layout(graph, reference: nn.Module) -> None:
    """The spec's state_dict keys and shapes are the reference's, in order; parameters counted alike."""
    ours = [(k, tuple(s.shape)) for k, s in state_dict_specs(graph)]
    theirs = [(k, tuple(v.shape)) for k, v in reference.state_dict().items()]
    assert ours == theirs
    assert total_params(graph) == sum(p.numel() for p in reference.parameters())


def assert_same_outputs(graph, reference: nn.Module, *inputs: torch.Tensor) -> None:
    initialize(graph, seed=0)
    randomize_statistics(graph, seed=0)
    reference.load_state_dict(state_dict_from_graph(graph), strict=True)
    with torch.no_grad():
        got, want = build_module(graph).eval()(*inputs), reference.eval()(*inputs)
    assert want.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# -- SqueezeNet 1.1 ---------------------------------------------------------------------------

class Fire(nn.Module):
    def __init__(self, inplanes: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet11(nn.Module):
    """torchvision.models.squeezenet1_1's structure, from the paper's v1.1 configuration."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(), pool(),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def test_squeezenet_layout_and_count_match_torchvision():
    graph = load_spec(spec("squeezenet1_1"))
    with torch.device("meta"):
        reference = SqueezeNet11()
    assert_same_layout(graph, reference)
    assert total_params(graph) == 1_235_496


def test_squeezenet_outputs_match_reference():
    graph = load_spec(spec("squeezenet1_1"), profile="small")
    assert_same_outputs(graph, SqueezeNet11(num_classes=10), torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("args", [["squeezenet1_1", "--profile", "small", "--batch", "2"]])
def test_verify_passes(args, capsys):
    assert main(["verify", spec(args[0]), *args[1:]]) == 0
    assert capsys.readouterr().out.rstrip().endswith("PASSED")
