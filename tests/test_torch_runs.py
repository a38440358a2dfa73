"""Instances of one block that differ in how many equal children repeat (a stage block used with
another number of blocks in each place, as torchvision's ``_make_layer`` is called) are one class
taking the count, not a class per count; the state_dict keys stay the spec's."""
from __future__ import annotations

import re

import torch
from generated_modules import assert_runs_as, build_generated, class_names, class_text
import torch.nn.functional as F
from torch import nn

# ResNet's layers written as a `stage` block (what a user transcribing torchvision writes first)
_STAGES = """\
archc: 1
name: tiny_resnet
params: {num_classes: 10}
inputs:
  x: [N, 3, 32, 32]
blocks:
  basic:
    params: {planes: null, stride: 1}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 3, stride: stride, padding: 1, bias: false}
      - {name: bn1, op: batchnorm}
      - {name: relu1, op: relu}
      - {name: conv2, op: conv, out_channels: planes, kernel_size: 3, padding: 1, bias: false}
      - {name: bn2, op: batchnorm}
      - {name: downsample, op: conv, in: x, out_channels: planes, kernel_size: 1, stride: stride, bias: false,
         if: "stride != 1 or channels(x) != planes", else: x}
      - {name: add, op: add, in: [bn2, downsample]}
      - {name: relu, op: relu}
  stage:
    params: {planes: null, n: null, stride: 1}
    nodes:
      - {name: blocks, block: basic, repeat: n, planes: planes, overrides: {0: {stride: stride}}}
nodes:
  - {name: stem, op: conv, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: layer1, block: stage, planes: 16, n: 2}
  - {name: layer2, block: stage, planes: 32, n: 1, stride: 2}
  - {name: layer3, block: stage, planes: 64, n: 3, stride: 2}
  - {name: layer4, block: stage, planes: 128, n: 2, stride: 2}
  - {name: pool, op: global_avgpool}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out_features: num_classes}
outputs: [fc]
"""


class _Basic(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = nn.Conv2d(cin, planes, 1, stride, bias=False) if stride != 1 or cin != planes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (self.downsample(x) if self.downsample is not None else x))


class _Stage(nn.Module):
    def __init__(self, cin: int, planes: int, n: int, stride: int = 1) -> None:
        super().__init__()
        self.blocks = nn.Sequential(_Basic(cin, planes, stride), *[_Basic(planes, planes) for _ in range(n - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class _TinyResnet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 1, 1)
        self.layer1, self.layer2 = _Stage(16, 16, 2), _Stage(16, 32, 1, 2)
        self.layer3, self.layer4 = _Stage(32, 64, 3, 2), _Stage(64, 128, 2, 2)
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(x.mean(dim=(2, 3), keepdim=True), 1))


def test_stages_with_other_numbers_of_blocks_are_one_class(run_archc, tmp_path):
    spec = tmp_path / "tiny_resnet.yaml"
    spec.write_text(_STAGES)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    # layer1's first block has no projection (another class of block): a class of its own; layers
    # 2-4 (one, three and two blocks) one class, the count the block's parameter
    assert [n for n in class_names(source) if n.startswith("Stage")] == ["Stage", "Stage2"], source
    stage = class_text(source, "Stage2")
    assert "def __init__(self, in_channels: int, planes: int, n: int, stride: int = 1) -> None:" in stage, stage
    assert "*[Basic(planes=planes) for _ in range(n - 1)]," in stage, stage
    assert "The spec's block 'stage': layer2, layer3, layer4." in stage
    model_class = class_text(source, "TinyResnet")
    assert "self.layer2 = Stage2(in_channels=16, planes=32, stride=2, n=1)" in model_class, model_class
    assert "self.layer3 = Stage2(in_channels=32, planes=64, stride=2, n=3)" in model_class
    model, reference = module.TinyResnet().eval(), _TinyResnet().eval()
    model.load_state_dict(reference.state_dict(), strict=True)  # the same names, the same shapes
    assert_runs_as(model, reference, torch.randn(2, 3, 32, 32))


def test_a_count_no_parameter_gives_is_an_argument_of_its_own(run_archc, tmp_path):
    # 2n - 1 blocks: the repeated blocks' count is no block parameter plus a constant, so the class
    # takes it as an argument named after the container
    spec = tmp_path / "tiny_resnet.yaml"
    text = _STAGES.replace("repeat: n,", "repeat: 2 * n - 1,")
    for layer, n in (("layer1", 1), ("layer2", 1), ("layer3", 2), ("layer4", 1)):
        text = re.sub(rf"(name: {layer}, .*?n: )[0-9]+", rf"\g<1>{n}", text)
    spec.write_text(text)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert [n for n in class_names(source) if n.startswith("Stage")] == ["Stage", "Stage2"], source
    stage = class_text(source, "Stage2")
    assert "*[Basic(planes=planes) for _ in range(num_blocks)]," in stage, stage
    # (layer1's class first in the file and in the numbering: Stage, then Stage2)
    assert "self.layer3 = Stage2(in_channels=32, planes=64, stride=2, num_blocks=2)" in source
    model, reference = module.TinyResnet().eval(), _TinyResnet().eval()
    reference.layer1, reference.layer3 = _Stage(16, 16, 1), _Stage(32, 64, 3, 2)
    reference.layer4 = _Stage(64, 128, 1, 2)
    reference.eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(model(x), reference(x))


# SegNet written flat, as its PyTorch ports are: encoder stages returning the pool's indices, decoder
# stages unpooling with them; a decoder's convs narrow at the last one, so its repeated middle run is
# empty in a stage of two convs
_FLAT_SEGNET = """\
archc: 1
name: flat_segnet
params: {num_classes: 5}
inputs:
  x: [N, 3, 32, 48]
blocks:
  conv_bn_relu:
    params: {out: null}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, padding: 1, bias: false}
      - {name: bn, op: batchnorm}
      - {name: relu, op: relu}
  encoder:
    params: {out: null, n: null}
    nodes:
      - {name: convs, block: conv_bn_relu, repeat: n, out: out}
      - {name: pool, op: maxpool, kernel_size: 2, stride: 2, return_indices: true}
    outputs: [pool, "pool:indices"]
  decoder:
    params: {out: null, n: null, last: null}
    inputs: [x, indices]
    nodes:
      - {name: unpool, op: max_unpool, in: [x, indices], kernel_size: 2, stride: 2}
      - {name: convs, block: conv_bn_relu, repeat: n, out: out, overrides: {-1: {out: last}}}
nodes:
  - {name: enc1, block: encoder, out: 8, n: 2}
  - {name: enc2, block: encoder, in: "enc1:0", out: 16, n: 2}
  - {name: enc3, block: encoder, in: "enc2:0", out: 32, n: 3}
  - {name: dec3, block: decoder, in: ["enc3:0", "enc3:1"], out: 32, n: 3, last: 16}
  - {name: dec2, block: decoder, in: [dec3, "enc2:1"], out: 16, n: 2, last: 8}
  - {name: dec1, block: decoder, in: [dec2, "enc1:1"], out: 8, n: 4, last: 8}
  - {name: classifier, op: conv, out_channels: num_classes, kernel_size: 3, padding: 1}
outputs: [classifier]
"""


def _convs(cin: int, out: int, last: int, n: int) -> nn.Sequential:
    widths = [cin] + [out] * (n - 1) + [last]
    return nn.Sequential(*[_Cbr(widths[i], widths[i + 1]) for i in range(n)])


class _Cbr(nn.Module):
    def __init__(self, cin: int, out: int) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(cin, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class _FlatSegnet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc1, self.enc2, self.enc3 = (nn.Module() for _ in range(3))
        for enc, cin, out, n in ((self.enc1, 3, 8, 2), (self.enc2, 8, 16, 2), (self.enc3, 16, 32, 3)):
            enc.convs = _convs(cin, out, out, n)
        self.dec3, self.dec2, self.dec1 = (nn.Module() for _ in range(3))
        for dec, cin, out, last, n in ((self.dec3, 32, 32, 16, 3), (self.dec2, 16, 16, 8, 2), (self.dec1, 8, 8, 8, 4)):
            dec.convs = _convs(cin, out, last, n)
        self.classifier = nn.Conv2d(8, 5, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for enc in (self.enc1, self.enc2, self.enc3):
            x, i = F.max_pool2d(enc.convs(x), 2, 2, return_indices=True)
            indices.append(i)
        for dec in (self.dec3, self.dec2, self.dec1):
            x = dec.convs(F.max_unpool2d(x, indices.pop(), 2, 2))
        return self.classifier(x)


def test_a_run_left_out_in_the_middle_is_a_loop_that_runs_no_times(run_archc, tmp_path):
    spec = tmp_path / "flat_segnet.yaml"
    spec.write_text(_FLAT_SEGNET)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert [n for n in class_names(source) if n.startswith(("Encoder", "Decoder"))] == ["Encoder", "Decoder"], source
    decoder = class_text(source, "Decoder")
    assert "ConvBnRelu(in_channels=in_channels, out=out),\n" \
           "            *[ConvBnRelu(in_channels=out, out=out) for _ in range(n - 2)],\n" \
           "            ConvBnRelu(in_channels=out, out=last),\n" in decoder, decoder
    # (an unpool to the default size leaves it to PyTorch: the class serves any input size)
    assert "output_size" not in decoder
    model, reference = module.FlatSegnet().eval(), _FlatSegnet().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        for shape in ((2, 3, 32, 48), (1, 3, 16, 24)):
            x = torch.randn(shape)
            torch.testing.assert_close(model(x), reference(x))


def test_an_argument_only_the_loop_reads_is_optional_where_a_stage_has_no_loop(run_archc, tmp_path):
    # an SE-ResNeXt written as a user would (tests/data/se_resnext_stages.yaml): with stages of one
    # block, the repeated bottlenecks' input width is an argument the one-block stages never pass
    spec = "tests/data/se_resnext_stages.yaml"
    module, source = build_generated(run_archc, tmp_path, spec, "layers=[1,2,3,1]")
    assert [n for n in class_names(source) if n.startswith("Stage")] == ["Stage"], source
    stage = class_text(source, "Stage")
    assert "        blocks: int,\n        stride: int = 1,\n        in_channels_1: int | None = None,\n" in stage, stage
    assert "self.layer1 = Stage(in_channels=base, groups=groups, planes=base, blocks=1)" in source, source
    model = module.SeResnext().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    run_archc("verify", spec, "--set", "layers=[1,2,3,1]", check=True)
