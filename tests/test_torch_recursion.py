"""A block that holds itself (a U-Net level, an hourglass) is one class that builds itself, as a
PyTorch user writes recursion, not a copy per depth; module names and state_dict keys stay the spec's."""
from __future__ import annotations

import textwrap

import pytest
import torch
from generated_modules import (
    assert_as_rebuilt,
    assert_runs_as,
    build_generated,
    class_names,
    class_text,
    run_time_arguments,
)
from torch import nn


class _Level(nn.Module):
    """One U-Net level as the paper draws it and people write it: recursion on the depth."""

    def __init__(self, in_channels: int, ch: int, levels: int) -> None:
        super().__init__()
        self.encoder = _double_conv(in_channels, ch)
        self.levels = levels
        if levels > 0:
            self.inner = _Level(ch, ch * 2, levels - 1)
            self.up = nn.ConvTranspose2d(ch * 2, ch, kernel_size=2, stride=2)
            self.decoder = _double_conv(ch * 2, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoder = self.encoder(x)
        if self.levels == 0:
            return encoder
        up = self.up(self.inner(nn.functional.max_pool2d(encoder, 2)))
        return self.decoder(torch.cat([encoder, up], dim=1))


class _DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def _double_conv(in_channels: int, out: int) -> nn.Module:
    return _DoubleConv(in_channels, out)


class _UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 8, depth: int = 3) -> None:
        super().__init__()
        self.net = _Level(in_channels, width, depth)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.net(x))


def test_a_u_net_of_one_level_names_its_levels_as_a_deeper_one_does(run_archc, tmp_path):
    # one level above the bottom: nothing to fold, the same two names
    module, source = build_generated(run_archc, tmp_path, "specs/unet.yaml", "width=8", "depth=1", "image_size=32")
    assert [name for name in class_names(source) if name.startswith("Level")] == ["LevelInnermost", "Level"]
    assert "self.inner = LevelInnermost(in_channels=ch, ch=ch * 2)" in class_text(source, "Level")
    assert module.Unet()(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_u_net_levels_are_one_class_that_builds_itself(run_archc, tmp_path):
    module, source = build_generated(run_archc, tmp_path, "specs/unet.yaml", "width=8", "depth=3",
                                     "image_size=32")
    levels = [name for name in class_names(source) if name.startswith("Level")]
    # every level above the bottom, and the bottom (the recursion's innermost level)
    assert levels == ["LevelInnermost", "Level"], class_names(source)
    level = class_text(source, "Level")
    assert "def __init__(self, in_channels: int, ch: int, levels: int) -> None:" in level
    assert textwrap.indent(textwrap.dedent("""\
        if levels > 1:
            self.inner = Level(in_channels=ch, ch=ch * 2, levels=levels - 1)
        else:
            self.inner = LevelInnermost(in_channels=ch, ch=ch * 2)
        """), " " * 8) in level
    assert "Level(in_channels=in_channels, ch=width, levels=depth)" in source
    assert 'classes["level"] = [LevelInnermost, Level]' in source
    model = module.Unet().eval()
    reference = _UNet().eval()
    # the same modules under the same names: the hand-written U-Net's weights load strictly
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 1, 32, 32)
    assert_runs_as(model, reference, x)


_HOURGLASS = """\
archc: 1
name: hourglass_net
params: {depth: 4, width: 4}
inputs:
  x: [N, 3, 32, 32]
blocks:
  nest:
    params: {level: null}
    nodes:
      - {name: skip, op: conv, in: x, out_channels: width, kernel_size: 1}
      - {name: pool, op: maxpool, in: x, kernel_size: 2, stride: 2}
      - {name: down, op: conv, out_channels: width, kernel_size: 3, padding: 1}
      - {name: inner, block: nest, level: level + 1, if: "level < depth"}
      - {name: bottom, op: conv, in: down, out_channels: width, kernel_size: 3, padding: 1,
         if: "level == depth", else: inner}
      - {name: up, op: upsample, scale_factor: 2, mode: nearest}
      - {name: add, op: add, in: [skip, up]}
nodes:
  - {name: stem, op: conv, out_channels: width, kernel_size: 1}
  - {name: hg, block: nest, level: 1}
  - {name: head, op: conv, out_channels: 2, kernel_size: 1}
outputs: [head]
"""


def test_a_level_counting_up_is_one_class_too(run_archc, tmp_path):
    # an hourglass whose level counts up from the model (level + 1 inwards), ending in other nodes
    spec = tmp_path / "nest.yaml"
    spec.write_text(_HOURGLASS)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert [name for name in class_names(source) if name.startswith("Nest")] == ["NestInnermost", "Nest"], class_names(source)
    # (the bottom class takes its own arguments: the deepest level's call of it is written as is)
    assert textwrap.indent(textwrap.dedent("""\
        if level < 3:
            self.inner = Nest(in_channels=in_channels, level=level + 1)
        else:
            self.inner = NestInnermost(
                in_channels=in_channels, down_channels=in_channels
            )
        """), " " * 8) in class_text(source, "Nest")
    assert "self.hg = Nest(in_channels=width, level=1)" in source
    model = module.HourglassNet().eval()
    keys = set(model.state_dict())
    assert "hg.inner.inner.inner.bottom.weight" in keys and "hg.inner.inner.down.weight" in keys
    assert not any(k.startswith("hg.inner.inner.inner.inner.") for k in keys)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))
        exported = torch.export.export(model, (x,))
        torch.testing.assert_close(exported.module()(x), model(x))


_GROUPED = """\
archc: 1
name: grouped_net
params: {width: 16}
inputs:
  x: [N, 16, 32, 32]
blocks:
  nest:
    params: {level: 1, groups: 16}
    nodes:
      - {name: skip, op: conv, in: x, out_channels: width, kernel_size: 1}
      - {name: pool, op: maxpool, in: x, kernel_size: 2, stride: 2}
      - {name: down, op: conv, out_channels: width, kernel_size: 3, padding: 1, groups: groups}
      - {name: inner, block: nest, INNER, if: "groups > 2"}
      - {name: bottom, op: conv, in: down, out_channels: width, kernel_size: 1, if: "groups <= 2", else: inner}
      - {name: up, op: upsample, scale_factor: 2, mode: nearest}
      - {name: add, op: add, in: [skip, up]}
nodes:
  - {name: hg, block: nest}
outputs: [hg]
"""


@pytest.mark.parametrize("inner", ["groups: groups // 2, level: level + 1", "groups: groups // 2"])
def test_without_a_parameter_counting_the_depth_each_depth_keeps_its_class(run_archc, tmp_path, inner):
    # the inner level halves `groups`, which its conv reads (an argument of the class), and the level,
    # where the spec has it, counts up: without it nothing says how deep an instance is
    spec = tmp_path / "grouped.yaml"
    spec.write_text(_GROUPED.replace("INNER", inner))
    module, source = build_generated(run_archc, tmp_path, str(spec))
    nests = [name for name in class_names(source) if name.startswith("Nest")]
    if "level" in inner:
        assert nests == ["NestInnermost", "Nest"], source
        assert "if level < 3:\n            self.inner = Nest(groups=groups // 2, level=level + 1)" in source
    else:
        assert nests == ["Nest", "Nest2", "Nest3", "Nest4"] and " if " not in source.split("class Grouped")[0], source
    model = module.GroupedNet().eval()
    assert "hg.inner.inner.inner.bottom.weight" in model.state_dict()
    x = torch.randn(1, 16, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_the_model_takes_the_depth_its_recursion_follows(run_archc, tmp_path):
    # U-Net's depth is the recursion's: a deeper U-Net from the same file is the one the spec elaborates
    sets = ("width=4", "depth=3", "image_size=32")
    module, source = build_generated(run_archc, tmp_path, "specs/unet.yaml", *sets)
    assert "depth" in run_time_arguments(source)
    assert_as_rebuilt(run_archc, tmp_path, "specs/unet.yaml", sets, module, "Unet", {"depth": 4},
                      torch.randn(1, 1, 32, 32))
    assert_as_rebuilt(run_archc, tmp_path, "specs/unet.yaml", sets, module, "Unet", {"depth": 2},
                      torch.randn(1, 1, 32, 32))
    # one level has nothing folded: a structure the file was not checked at, refused with the rebuild
    with pytest.raises(ValueError, match=r"depth=1: a loop or a recursion of this file would be shorter than built; "
                                         r"regenerate it with archc build --set depth=1"):
        module.Unet(depth=1)


def test_a_depth_that_also_moves_a_number_in_a_class_stays_fixed(run_archc, tmp_path):
    # the level counts up inwards and ends where it reaches `depth`: the folded class's condition reads
    # the model's depth as a number, so another depth is another file
    spec = tmp_path / "nest.yaml"
    spec.write_text(_HOURGLASS)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert "depth" not in run_time_arguments(source)
    with pytest.raises(ValueError, match="depth=5: this file was generated for depth=4"):
        module.HourglassNet(depth=5)


_NESTED = """\
archc: 1
name: nested_net
params: {depth: 3, width: 4}
inputs:
  x: [N, 4, 32, 32]
blocks:
  twig:
    params: {levels: null}
    nodes:
      - {name: conv, op: conv, out_channels: width, kernel_size: 3, padding: 1}
      - {name: inner, block: twig, levels: levels - 1, if: "levels > 0"}
      - {name: add, op: add, in: [conv, inner], if: "levels > 0", else: conv}
  branch:
    params: {levels: null}
    nodes:
      - {name: twig, block: twig, levels: 2}
      - {name: pool, op: maxpool, kernel_size: 2, stride: 2}
      - {name: inner, block: branch, levels: levels - 1, if: "levels > 0"}
      - {name: up, op: upsample, scale_factor: 2, mode: nearest, if: "levels > 0"}
      - {name: add, op: add, in: [twig, up], if: "levels > 0", else: twig}
nodes:
  - {name: net, block: branch, levels: depth}
outputs: [net]
"""


def test_a_recursion_inside_another_folds_too(run_archc, tmp_path):
    # each branch level holds a twig, itself recursive: folding the twigs rewrites the branch classes'
    # calls, and the branches then fold as well (their classes read again after the first fold)
    spec = tmp_path / "nested.yaml"
    spec.write_text(_NESTED)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    # each folded class takes its block's name, each bottom is named as the innermost level
    assert class_names(source) == ["TwigInnermost", "Twig", "BranchInnermost", "Branch", "NestedNet"], source
    assert "self.twig = Twig(levels=2)" in class_text(source, "Branch")
    assert "self.net = Branch(levels=depth)" in source
    assert_as_rebuilt(run_archc, tmp_path, str(spec), (), module, "NestedNet", {"depth": 4},
                      torch.randn(1, 4, 32, 32))
    model = module.NestedNet().eval()
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))


@pytest.mark.parametrize("depth", [2, 3])
def test_a_block_named_as_the_model_is_the_model_s_block(run_archc, tmp_path, depth):
    # the hourglass spec's block `hourglass` beside the model `Hourglass`: HourglassBlock, not Hourglass2;
    # at depth 2 nothing folds (one class holds the innermost level), and the names are the same
    module, source = build_generated(run_archc, tmp_path, "specs/hourglass.yaml", "width=16", f"depth={depth}",
                                     "image_size=32")
    names = class_names(source)
    assert names[-1] == "Hourglass" and "HourglassBlock" in names and "HourglassBlockInnermost" in names, names
    assert not any(name[-1].isdigit() for name in names if name.startswith("Hourglass")), names
    assert ("self.hg = HourglassBlock(levels=3)" if depth == 3 else "self.hg = HourglassBlock()") in source
    heatmaps = module.Hourglass().eval()(torch.randn(1, 3, 32, 32))
    assert [tuple(h.shape) for h in heatmaps] == [(1, 16, 8, 8)] * 2  # (stride 4, both stacks)
