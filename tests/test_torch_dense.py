"""A dense block (each layer reads the block's input and every earlier layer's output) is one
``nn.ModuleDict`` class adding its layers in a loop, as torchvision's ``_DenseBlock``, whatever
each instance's number of layers; the state_dict keys stay the spec's."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from generated_modules import assert_runs_as, build_generated, class_names, class_text
from torch import nn


class _Layer(nn.Sequential):
    """torchvision's _DenseLayer, its forward concatenating what it is given."""

    def __init__(self, cin: int, growth: int, bn_size: int) -> None:
        super().__init__(OrderedDict([
            ("norm1", nn.BatchNorm2d(cin)), ("relu1", nn.ReLU()),
            ("conv1", nn.Conv2d(cin, bn_size * growth, 1, bias=False)),
            ("norm2", nn.BatchNorm2d(bn_size * growth)), ("relu2", nn.ReLU()),
            ("conv2", nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False))]))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return super().forward(torch.cat(features, 1))


class _Block(nn.ModuleDict):
    def __init__(self, layers: int, cin: int, growth: int, bn_size: int) -> None:
        super().__init__({f"denselayer{i + 1}": _Layer(cin + i * growth, growth, bn_size) for i in range(layers)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _DenseNet(nn.Module):
    """torchvision's DenseNet, written from the paper's table (block_config, growth rate, bn_size)."""

    def __init__(self, block_config=(2, 3, 4, 2), growth: int = 4, init: int = 8, bn_size: int = 2,
                 num_classes: int = 5) -> None:
        super().__init__()
        parts = [("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False)), ("norm0", nn.BatchNorm2d(init)),
                 ("relu0", nn.ReLU()), ("pool0", nn.MaxPool2d(3, 2, 1))]
        c = init
        for i, n in enumerate(block_config):
            parts.append((f"denseblock{i + 1}", _Block(n, c, growth, bn_size)))
            c += n * growth
            if i != len(block_config) - 1:
                parts.append((f"transition{i + 1}", nn.Sequential(OrderedDict([
                    ("norm", nn.BatchNorm2d(c)), ("relu", nn.ReLU()), ("conv", nn.Conv2d(c, c // 2, 1, bias=False)),
                    ("pool", nn.AvgPool2d(2, 2))]))))
                c //= 2
        parts.append(("norm5", nn.BatchNorm2d(c)))
        self.features = nn.Sequential(OrderedDict(parts))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.features(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))


def test_densenet_blocks_are_one_class_whatever_their_number_of_layers(run_archc, tmp_path):
    sets = ("num_classes=5", "growth_rate=4", "bn_size=2", "init_features=8", "block_config=[2, 3, 4, 2]",
            "image_size=64")
    module, source = build_generated(run_archc, tmp_path, "specs/densenet121.yaml", *sets)
    assert [n for n in class_names(source) if n.startswith("DenseBlock")] == ["DenseBlock"], class_names(source)
    block = class_text(source, "DenseBlock")
    assert block.startswith("nn.ModuleDict):")
    assert "for i in range(layers):" in block and 'f"denselayer{i + 1}",' in block
    assert "cat_channels=in_channels + i * growth," in block
    assert "features = [x]\n        for layer in self.values():\n            features.append(layer(features))\n" \
        "        # skip: dense merge\n        out = torch.cat(features, dim=1)\n" in block
    for k, (cin, layers) in enumerate([(8, 2), (8, 3), (10, 4), (13, 2)]):
        assert f"self.denseblock{k + 1} = DenseBlock(growth=4, bn_size=2, in_channels={cin}, layers={layers})" in source
    model = module.Densenet121().eval()
    reference = _DenseNet().eval()
    model.load_state_dict(reference.state_dict(), strict=True)  # the same names, the same shapes
    x = torch.randn(2, 3, 64, 64)
    assert_runs_as(model, reference, x)


_DENSE_1D = """\
archc: 1
name: dense_1d
params: {width: 6}
inputs:
  x: [N, 4, 32]
blocks:
  unit:
    params: {out: null}
    inputs: [parts...]
    nodes:
      - {name: cat, op: concat, in: parts}
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, padding: 1}
      - {name: act, op: relu}
  stack:
    params: {n: null}
    nodes:
      - {name: u, block: unit, repeat: n + 1, instance_name: "unit_${index}", in: [x, "u[*]"], out: width}
      - {name: merged, op: concat, in: MERGED}
nodes:
  - {name: first, block: stack, n: 1}
  - {name: mix, op: conv, out_channels: width, kernel_size: 1}
  - {name: second, block: stack, n: 3}
outputs: [second]
"""


def test_a_dense_run_counted_by_a_parameter_plus_one(run_archc, tmp_path):
    # a 1-D dense stack written apart from DenseNet: the count is `n + 1`, names count from 0, every
    # layer is as wide (its input grows by a number, not by an argument of the class)
    spec = tmp_path / "dense_1d.yaml"
    spec.write_text(_DENSE_1D.replace("MERGED", '[x, "u[*]"]'))
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert [n for n in class_names(source) if n.startswith("Stack")] == ["Stack"], source
    stack = class_text(source, "Stack")
    assert "for i in range(n + 1):" in stack and 'f"unit_{i}", Unit(cat_channels=in_channels + i * 6, out=6)' in stack
    assert "self.first = Stack(in_channels=4, n=1)" in source and "self.second = Stack(in_channels=6, n=3)" in source
    model = module.Dense1d().eval()
    keys = set(model.state_dict())
    assert "second.unit_3.conv.weight" in keys and "first.unit_2.conv.weight" not in keys
    x = torch.randn(2, 4, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))


@pytest.mark.parametrize("merged", ['[x, u]', '["u[*]"]'])
def test_a_merge_of_other_features_keeps_the_layers_written_out(run_archc, tmp_path, merged):
    # the block's result merges the last layer alone, or every layer but not the input: no list of
    # every feature to grow, so each layer stays an attribute and a statement
    spec = tmp_path / "dense_1d.yaml"
    spec.write_text(_DENSE_1D.replace("MERGED", merged))
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert "nn.ModuleDict" not in source and "self.unit_0 = Unit(" in source, source
    model = module.Dense1d().eval()
    x = torch.randn(2, 4, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_the_loop_takes_names_forward_has_not(run_archc, tmp_path):
    # the block's input is called `layer` and its merge `features`: the loop's names are others
    text = _DENSE_1D.replace("MERGED", '[layer, "u[*]"]') \
        .replace("params: {n: null}", "params: {n: null}\n    inputs: [layer]") \
        .replace('in: [x, "u[*]"], out: width', 'in: [layer, "u[*]"], out: width') \
        .replace("name: merged", "name: features")
    spec = tmp_path / "dense_names.yaml"
    spec.write_text(text)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    stack = class_text(source, "Stack")
    assert "features_2 = [layer]\n        for layer_2 in self.values():\n" \
        "            features_2.append(layer_2(features_2))\n" in stack, stack
    assert "features = torch.cat(features_2, dim=1)" in stack
    model = module.Dense1d().eval()
    x = torch.randn(2, 4, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))
