"""Stages of one block (the repetitions of one ``repeat:`` named by a pattern counting up, the
first ones their own calls, the rest alike) are one ``nn.Sequential`` class, as torchvision's RegNet
writes ``AnyStage``: it takes the stage's number of children, its widths and the parameter its
names show; the state_dict keys stay the spec's."""
from __future__ import annotations

import pytest
import torch
from generated_modules import assert_runs_as, build_generated, class_names, class_text
from torch import nn

_STAGED = """\
archc: 1
name: staged
params: {num_classes: 5}
inputs:
  x: [N, 3, 32, 32]
blocks:
  unit:
    params: {out: null, stride: 1}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, stride: stride, padding: 1}
      - {name: relu, op: relu}
  stage:
    params: {s: null, n: null, w: null}
    nodes:
      - {name: u, block: unit, repeat: n + 1, instance_name: "unit${s}_${index + 1}", out: w,
         overrides: {0: {stride: 2}}}
nodes:
  - {name: stage1, block: stage, s: 1, n: 2, w: 4}
  - {name: stage2, block: stage, s: 2, n: 1, w: 8}
  - {name: stage3, block: stage, s: 3, n: 3, w: 16}
  - {name: pool, op: global_avgpool}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out_features: num_classes}
outputs: [fc]
"""


class _Unit(nn.Module):
    def __init__(self, cin: int, out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, out, 3, stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class _Stage(nn.Sequential):
    """A stage as a PyTorch user writes one: a strided unit, then ``depth`` units alike."""

    def __init__(self, cin: int, out: int, depth: int, s: int, sep: str = "_") -> None:
        super().__init__()
        for i in range(depth + 1):
            self.add_module(f"unit{s}{sep}{i + 1}", _Unit(cin if i == 0 else out, out, 2 if i == 0 else 1))


class _Staged(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage1, self.stage2, self.stage3 = _Stage(3, 4, 2, 1), _Stage(4, 8, 1, 2), _Stage(8, 16, 3, 3)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(torch.flatten(x.mean(dim=(2, 3), keepdim=True), 1))


def test_stages_with_other_depths_widths_and_names_are_one_class(run_archc, tmp_path):
    spec = tmp_path / "staged.yaml"
    spec.write_text(_STAGED)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert [n for n in class_names(source) if n.startswith("Stage") and n != "Staged"] == ["Stage"], source
    stage = class_text(source, "Stage")
    assert stage.startswith("nn.Sequential):")
    # the block's own parameters where their values are the numbers: n + 1 children, w wide
    assert 'f"unit{s}_1", Unit(in_channels=in_channels, out=w, stride=2)' in stage, stage
    assert 'for i in range(2, n + 2):\n            self.add_module(f"unit{s}_{i}", Unit(in_channels=w, out=w))' \
        in stage, stage
    assert "self.stage3 = Stage(w=16, in_channels=8, n=3, s=3)" in source
    # (a number beside the parameter's value is text around it: unit10_1, unit20_1, ... from s)
    spec.write_text(_STAGED.replace('"unit${s}_${index + 1}"', '"unit${s * 10}_${index + 1}"'))
    _, tens = build_generated(run_archc, tmp_path, str(spec))
    assert 'f"unit{s}0_{i}"' in class_text(tens, "Stage") and "class Stage2(" not in tens
    model = module.Staged().eval()
    reference = _Staged().eval()
    model.load_state_dict(reference.state_dict(), strict=True)  # the same names, the same shapes
    x = torch.randn(2, 3, 32, 32)
    assert_runs_as(model, reference, x)


def test_a_stage_of_one_child_is_the_class_with_an_empty_loop(run_archc, tmp_path):
    # a stage of the strided unit alone (n = 0) is the others' class, its loop running no times:
    # not a class of its own, used once (RegNet-400MF's first stage has one block; its names, as
    # these, are no identifiers: a chain of one is an nn.Sequential only so)
    spec = tmp_path / "staged.yaml"
    spec.write_text(_STAGED.replace("s: 2, n: 1, w: 8", "s: 2, n: 0, w: 8").replace("${s}_$", "${s}-$"))
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert [n for n in class_names(source) if n.startswith("Stage") and n != "Staged"] == ["Stage"], source
    assert "self.stage2 = Stage(w=8, in_channels=4, n=0, s=2)" in source, source
    model = module.Staged().eval()
    reference = _Staged().eval()
    reference.stage1, reference.stage2, reference.stage3 = (
        _Stage(3, 4, 2, 1, "-"), _Stage(4, 8, 0, 2, "-"), _Stage(8, 16, 3, 3, "-"))
    model.load_state_dict(reference.state_dict(), strict=True)
    assert_runs_as(model, reference, torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("names", ['"unit${s}_${index + 1}${\'x\' if s == 2 else \'\'}"',
                                   '"unit${\'abc\'[s - 1]}_${index + 1}"'])
def test_names_that_differ_otherwise_keep_a_class_each(run_archc, tmp_path, names):
    # names whose text differs by more than a parameter's value (a suffix in one stage; a letter per
    # stage): no pattern to compute them from, so each stage keeps its class
    spec = tmp_path / "staged.yaml"
    spec.write_text(_STAGED.replace('"unit${s}_${index + 1}"', names))
    module, source = build_generated(run_archc, tmp_path, str(spec))
    stages = [n for n in class_names(source) if n.startswith("Stage") and n != "Staged"]
    assert len(stages) >= 2, source
    model = module.Staged().eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))
