"""Specs transcribed from PyTorch code by reading only the README and docs/ (issues 10 and 13).

Each architecture is written here first as the PyTorch people publish it (torchvision's or timm's
module layout, nanoGPT's, the paper's), then as a spec in tests/data/specs_transcribed/, with names
chosen so that the state_dicts match. For each, through the real `archc` entry point and in-process:

- `archc build --target torch` and `--target onnx` write the files; the generated file is
  `ruff format`-clean, has no line over 100 characters, and its model class takes the spec's
  parameters as keyword arguments;
- archc's state_dict loads STRICTLY into the reference module, the parameter counts are equal,
  and with the same (random) weights both give the same outputs in eval mode; so does
  onnxruntime on archc's ONNX build of the same weights;
- the generated module composes: `torch.fx.symbolic_trace`, `torch.export.export` with a dynamic
  batch, `torch.jit.script`, `torch.onnx.export` keeping per-block scopes (`/features/features.1/...`);
- `archc lint` labels the connections as the paper means, and the spec, archc's ONNX and
  `torch.onnx.export` of archc's PyTorch module give the same skip counts and path figures.

Sizes are small (`--set`) so that each model takes seconds. By default three of the models run
(QUICK); the others, `archc verify` and `torch.compile` run in the slow tests.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import ROOT
from paper_models import PreActBlock  # the pre-activation block as kuangliu/pytorch-cifar writes it

SPECS = ROOT / "tests" / "data" / "specs_transcribed"


# -- reference modules, written as their authors' code is ------------------------------------------

class Permute(nn.Module):
    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return torch.permute(x, self.dims)


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    """torchvision.models.convnext.CNBlock (stochastic depth is the identity in eval)."""

    def __init__(self, dim: int, layer_scale: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim, bias=True),
            nn.GELU(),
            nn.Linear(4 * dim, dim, bias=True),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)
        self.stochastic_depth = nn.Identity()

    def forward(self, x):
        return self.stochastic_depth(self.layer_scale * self.block(x)) + x


class ConvNeXt(nn.Module):
    """torchvision.models.convnext.ConvNeXt's layout: features.0 stem, stages and downsamplings."""

    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), num_classes=1000, layer_scale=1e-6):
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4),
                                                 LayerNorm2d(dims[0], eps=1e-6))]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            layers.append(nn.Sequential(*[CNBlock(dim, layer_scale) for _ in range(depth)]))
            if i + 1 < len(dims):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6),
                                            nn.Conv2d(dim, dims[i + 1], kernel_size=2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1),
                                        nn.Linear(dims[-1], num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvNormActivation(nn.Sequential):
    """torchvision.ops.Conv2dNormActivation with MobileNetV3's batchnorm settings."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1, act=nn.Hardswish):
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout, eps=0.001, momentum=0.01)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation with MobileNetV3's hardsigmoid."""

    def __init__(self, cin: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(cin, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, cin, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class InvertedResidual(nn.Module):
    def __init__(self, cin, k, exp, out, se, act, stride) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and cin == out
        activation = nn.Hardswish if act == "HS" else nn.ReLU
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(ConvNormActivation(cin, exp, 1, act=activation))
        layers.append(ConvNormActivation(exp, exp, k, stride, groups=exp, act=activation))
        if se:
            layers.append(SqueezeExcitation(exp, make_divisible(exp // 4, 8)))
        layers.append(ConvNormActivation(exp, out, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        return result + x if self.use_res_connect else result


MOBILENET_V3_SMALL = [  # input, kernel, expanded, out, use_se, activation, stride (torchvision's table)
    (16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1), (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1),
]


class MobileNetV3Small(nn.Module):
    def __init__(self, num_classes: int = 1000, last_channel: int = 1024) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormActivation(3, 16, 3, 2)]
        layers += [InvertedResidual(*cfg) for cfg in MOBILENET_V3_SMALL]
        layers.append(ConvNormActivation(96, 576, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(576, last_channel), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(last_channel, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Mlp(nn.Module):
    """timm.layers.Mlp (no dropout, no norm)."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class MixerBlock(nn.Module):
    """timm.models.mlp_mixer.MixerBlock."""

    def __init__(self, dim: int, seq_len: int, mlp_ratio=(0.5, 4.0)) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_tokens = Mlp(seq_len, int(mlp_ratio[0] * dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = Mlp(dim, int(mlp_ratio[1] * dim))

    def forward(self, x):
        x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.mlp_channels(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class MlpMixer(nn.Module):
    def __init__(self, image_size=224, patch_size=16, dim=512, depth=8, num_classes=1000) -> None:
        super().__init__()
        self.stem = PatchEmbed(patch_size, dim)
        seq_len = (image_size // patch_size) ** 2
        self.blocks = nn.Sequential(*[MixerBlock(dim, seq_len) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.stem(x))).mean(dim=1))


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head, self.n_embd = n_head, n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class GptMLP(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class GptBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = GptMLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's GPT: transformer.{wte, wpe, h, ln_f}, lm_head tied to wte."""

    def __init__(self, vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd), wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([GptBlock(n_embd, n_head) for _ in range(n_layer)]), ln_f=nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        pos = torch.arange(0, idx.shape[1], dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class PreActResNet18(nn.Module):
    def __init__(self, width: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        planes, layers = width, []
        for i, stride in enumerate((1, 2, 2, 2)):
            out = width * 2 ** i
            layers.append(nn.Sequential(PreActBlock(planes, out, stride), PreActBlock(out, out)))
            planes = out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1)
        return self.linear(torch.flatten(out, 1))


class HighwayLayer(nn.Module):
    """y = H(x) T(x) + x (1 - T(x)) (Srivastava et al. 2015)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.H = nn.Linear(width, width)
        self.T = nn.Linear(width, width)

    def forward(self, x):
        t = torch.sigmoid(self.T(x))
        return torch.relu(self.H(x)) * t + x * (1 - t)


class Highway(nn.Module):
    def __init__(self, in_features=784, width=64, depth=3, num_classes=10) -> None:
        super().__init__()
        self.inp = nn.Linear(in_features, width)
        self.layers = nn.Sequential(*[HighwayLayer(width) for _ in range(depth)])
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.layers(torch.relu(self.inp(x))))


class Residual(nn.Module):
    """ConvMixer's residual wrapper, as the paper's listing writes it."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


def ConvMixer(dim, depth, kernel_size=9, patch_size=7, n_classes=1000) -> nn.Sequential:  # noqa: N802
    """The paper's listing: the whole model is one nn.Sequential."""
    return nn.Sequential(
        nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size), nn.GELU(), nn.BatchNorm2d(dim),
        *[nn.Sequential(
            Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"), nn.GELU(),
                                   nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, kernel_size=1), nn.GELU(), nn.BatchNorm2d(dim)) for _ in range(depth)],
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(dim, n_classes))


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class DecoderBlock(nn.Module):
    """LinkNet's decoder block: 1x1 conv to m/4, a 3x3 full convolution (x2), 1x1 conv to n."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin // 4
        self.conv1, self.norm1, self.relu1 = nn.Conv2d(cin, mid, 1), nn.BatchNorm2d(mid), nn.ReLU()
        self.deconv2 = nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1)
        self.norm2, self.relu2 = nn.BatchNorm2d(mid), nn.ReLU()
        self.conv3, self.norm3, self.relu3 = nn.Conv2d(mid, cout, 1), nn.BatchNorm2d(cout), nn.ReLU()

    def forward(self, x):
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.relu2(self.norm2(self.deconv2(x)))
        return self.relu3(self.norm3(self.conv3(x)))


class LinkNet(nn.Module):
    """LinkNet with a ResNet-18-style encoder, as the usual PyTorch ports write it."""

    def __init__(self, width: int = 64, num_classes: int = 1) -> None:
        super().__init__()
        w = [width, width * 2, width * 4, width * 8]
        self.firstconv = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.firstbn, self.firstrelu = nn.BatchNorm2d(width), nn.ReLU()
        self.firstmaxpool = nn.MaxPool2d(3, 2, 1)
        self.encoder1 = nn.Sequential(BasicBlock(w[0], w[0]))
        self.encoder2 = nn.Sequential(BasicBlock(w[0], w[1], 2))
        self.encoder3 = nn.Sequential(BasicBlock(w[1], w[2], 2))
        self.encoder4 = nn.Sequential(BasicBlock(w[2], w[3], 2))
        self.decoder4, self.decoder3 = DecoderBlock(w[3], w[2]), DecoderBlock(w[2], w[1])
        self.decoder2, self.decoder1 = DecoderBlock(w[1], w[0]), DecoderBlock(w[0], w[0])
        self.finaldeconv1, self.finalrelu1 = nn.ConvTranspose2d(w[0], 32, 3, stride=2), nn.ReLU()
        self.finalconv2, self.finalrelu2 = nn.Conv2d(32, 32, 3), nn.ReLU()
        self.finalconv3 = nn.Conv2d(32, num_classes, 2, padding=1)

    def forward(self, x):
        x = self.firstmaxpool(self.firstrelu(self.firstbn(self.firstconv(x))))
        e1 = self.encoder1(x)
        e2 = self.encoder2(e1)
        e3 = self.encoder3(e2)
        e4 = self.encoder4(e3)
        d4 = self.decoder4(e4) + e3
        d3 = self.decoder3(d4) + e2
        d2 = self.decoder2(d3) + e1
        d1 = self.decoder1(d2)
        out = self.finalrelu2(self.finalconv2(self.finalrelu1(self.finaldeconv1(d1))))
        return self.finalconv3(out)


# -- the cases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    spec: str
    sets: dict[str, str]
    reference: Callable[[], nn.Module]
    example: Callable[[], torch.Tensor]
    #: (residual, long_skip, dense, gated) and paths, as the paper means
    skips: tuple[int, int, int, int]
    paths: int
    #: keyword arguments the generated model class is built with (the spec's values)
    kwargs: dict = field(default_factory=dict)
    #: the generated file's model class and its (top-level) scope in torch.onnx.export's node names
    scope: str = ""


def image(size: int) -> Callable[[], torch.Tensor]:
    return lambda: torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


CASES = {
    "convnext": Case(
        "convnext.yaml", {"depths": "[1,1,2,1]", "dims": "[8,16,24,32]", "image_size": "32", "num_classes": "10"},
        lambda: ConvNeXt((1, 1, 2, 1), (8, 16, 24, 32), 10), image(32), (5, 0, 0, 0), 2 ** 5,
        {"num_classes": 7}, "/features/features.5/features.5.1/block/block.0/Conv"),
    "mobilenet_v3_small": Case(
        "mobilenet_v3_small.yaml", {"image_size": "32", "num_classes": "10"},
        lambda: MobileNetV3Small(10), image(32), (6, 0, 0, 0), 2 ** 6,
        {"num_classes": 7}, "/features/features.4/block/block.2/fc1/Conv"),
    "mlp_mixer": Case(
        "mlp_mixer.yaml", {"image_size": "32", "patch_size": "8", "dim": "24", "depth": "2", "num_classes": "10"},
        lambda: MlpMixer(32, 8, 24, 2, 10), image(32), (4, 0, 0, 0), 2 ** 4,
        {"num_classes": 7}, "/blocks/blocks.1/mlp_tokens/fc1/"),
    "gpt2": Case(
        "gpt2.yaml", {"vocab_size": "64", "block_size": "32", "n_layer": "2", "n_head": "2", "n_embd": "16"},
        lambda: GPT(64, 32, 2, 2, 16), lambda: torch.randint(0, 64, (2, 11), generator=torch.Generator().manual_seed(1)),
        (4, 0, 0, 0), 2 ** 4 * 4, {"vocab_size": 64}, "/transformer/h/h.1/attn/c_attn/"),
    "preact_resnet": Case(
        "preact_resnet.yaml", {"width": "8"}, lambda: PreActResNet18(8, 10), image(32), (8, 0, 0, 0), 2 ** 8,
        {"num_classes": 3}, "/layer2/layer2.0/shortcut/shortcut.0/Conv"),
    "linknet": Case(
        "linknet.yaml", {"width": "8", "blocks": "[1,1,1,1]", "image_size": "64", "num_classes": "2"},
        lambda: LinkNet(8, 2), image(64), (4, 3, 0, 0), 30, {"num_classes": 3},
        "/decoder3/deconv2/ConvTranspose"),
    "highway": Case(
        "highway.yaml", {"in_features": "20", "width": "16", "depth": "3", "num_classes": "5"},
        lambda: Highway(20, 16, 3, 5), lambda: torch.randn(2, 20, generator=torch.Generator().manual_seed(1)),
        (0, 0, 0, 3), 3 ** 3, {"num_classes": 4}, "/layers/layers.2/T/"),
    # a model that is one nn.Sequential: the spec's top level is `sequential: true`
    "convmixer": Case(
        "convmixer.yaml", {"dim": "8", "depth": "2", "kernel_size": "3", "patch_size": "2", "image_size": "16",
                           "num_classes": "10"},
        lambda: ConvMixer(8, 2, 3, 2, 10), image(16), (2, 0, 0, 0), 2 ** 2, {"num_classes": 7},
        "/4/4.0/fn/fn.0/Conv"),
}


#: run by default (a CNN with a language gap fixed, a transformer, a gated net); the others are slow
QUICK = {"convnext", "gpt2", "highway"}


def quick_or_slow(names) -> list:
    return [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in sorted(names)]


def set_args(case: Case) -> list[str]:
    return [a for k, v in case.sets.items() for a in ("--set", f"{k}={v}")]


def import_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_class(module) -> type[nn.Module]:
    """The generated file's model class: the last class it defines."""
    source = Path(module.__file__).read_text()
    return getattr(module, re.findall(r"^class (\w+)\(", source, re.M)[-1])


def random_state(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights in which everything matters (layer scale 1e-6 and batchnorm's identity would hide
    a mistake): each float tensor drawn afresh, variances kept positive."""
    g = torch.Generator().manual_seed(seed)
    state, drawn = {}, {}
    for key, value in model.state_dict().items():
        if value.data_ptr() in drawn:  # a tied parameter: one tensor under two keys
            state[key] = drawn[value.data_ptr()]
            continue
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=g) * 0.3
        drawn[value.data_ptr()] = state[key]
    return state


def lint_figures(run_archc, target: Path | str, extra: list[str] = ()) -> tuple:
    proc = run_archc("lint", str(target), "--format", "json", *extra)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    s, p = report["summary"], report["paths"]
    return (s["residual"], s["long_skip"], s["dense"], s["gated"]), (p["total"], p["shortest"], p["longest"])


def quiet_onnx_export(module: nn.Module, example: tuple, path: Path, **kw) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), dynamo=False, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory, request):
    """Each case built once to PyTorch (with --state-dict) and ONNX by the real entry point."""
    cache: dict[str, dict] = {}

    def build(name: str) -> dict:
        if name not in cache:
            case, out = CASES[name], tmp_path_factory.mktemp(name)
            spec = str(SPECS / case.spec)
            exe = Path(sys.executable).with_name("archc")
            cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "archc"]
            for target in ("model.py", "model.onnx"):
                extra = ["--state-dict", str(out / "archc.pt")] if target.endswith(".py") else []
                proc = subprocess.run(cmd + ["build", spec, "-o", str(out / target), *set_args(case), *extra],
                                      capture_output=True, text=True, cwd=ROOT, timeout=600)
                assert proc.returncode == 0, proc.stderr
            cache[name] = {"dir": out, "py": out / "model.py", "onnx": out / "model.onnx",
                           "module": import_file(out / "model.py")}
        return cache[name]

    return build


# -- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", quick_or_slow(CASES))
def test_state_dict_loads_strictly_into_the_reference_and_outputs_agree(name, built):
    case, files = CASES[name], built(name)
    ours = model_class(files["module"])().eval()
    ours.load_state_dict(torch.load(files["dir"] / "archc.pt"), strict=True)  # archc's own weights fit
    reference = case.reference().eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    assert list(ours.state_dict()) == list(reference.state_dict())
    state = random_state(ours)
    ours.load_state_dict(state, strict=True)
    reference.load_state_dict(state, strict=True)
    x = case.example()
    with torch.no_grad():
        want = reference(x)
        torch.testing.assert_close(ours(x), want, rtol=1e-4, atol=1e-5)
    # onnxruntime on archc's ONNX build of the same weights
    import onnxruntime as ort

    weights = files["dir"] / "random.pt"
    torch.save(state, weights)
    proc = subprocess.run([str(Path(sys.executable).with_name("archc")), "build", str(SPECS / case.spec), "-o",
                           str(files["dir"] / "random.onnx"), "--weights", str(weights), *set_args(case)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    session = ort.InferenceSession(str(files["dir"] / "random.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-3, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("name", quick_or_slow(CASES))
def test_generated_file_reads_as_written_by_hand(name, built):
    case, files = CASES[name], built(name)
    source = files["py"].read_text()
    assert max(map(len, source.splitlines())) <= 88  # ruff format's width (the README's promise)
    proc = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--diff", str(files["py"])],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cls = model_class(files["module"])
    out = cls(**case.kwargs).eval()(case.example())  # the spec's parameters as keyword arguments
    if "num_classes" in case.kwargs:
        assert out.shape[1 if out.dim() == 4 else -1] == case.kwargs["num_classes"]  # (a map's classes: dim 1)


@pytest.mark.parametrize("name", quick_or_slow(CASES))
def test_generated_module_composes_with_fx_export_and_onnx_scopes(name, built, tmp_path):
    case, files = CASES[name], built(name)
    model = model_class(files["module"])().eval()
    x = case.example()
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), want)
        batch = torch.export.Dim("batch", min=1, max=64)
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
        bigger = torch.cat([x, x, x])
        torch.testing.assert_close(program.module()(bigger), model(bigger))
        torch.testing.assert_close(torch.jit.script(model)(x), want)
    exported = tmp_path / "torch.onnx"
    quiet_onnx_export(model, (x,), exported)
    import onnx

    names = [n.name for n in onnx.load(str(exported)).graph.node]
    assert any(n.startswith(case.scope) for n in names), names[:20]


@pytest.mark.parametrize("name", quick_or_slow(CASES))
def test_lint_labels_as_the_paper_means_whatever_the_lowering(name, built, run_archc, tmp_path):
    case, files = CASES[name], built(name)
    from_spec = lint_figures(run_archc, SPECS / case.spec, set_args(case))
    assert from_spec[0] == case.skips and from_spec[1][0] == case.paths, from_spec
    assert lint_figures(run_archc, files["onnx"]) == from_spec
    exported = tmp_path / "torch.onnx"
    model = model_class(files["module"])().eval()
    quiet_onnx_export(model, (case.example(),), exported)
    assert lint_figures(run_archc, exported) == from_spec


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_archc_verify_passes(name, run_archc):
    case = CASES[name]
    proc = run_archc("verify", str(SPECS / case.spec), *set_args(case))
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow
def test_torch_compile_fullgraph(built):
    case, files = CASES["convnext"], built("convnext")
    model = model_class(files["module"])().eval()
    x = case.example()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True, backend="eager")(x), model(x))


def test_every_transcribed_spec_has_a_case():
    assert sorted(c.spec for c in CASES.values()) == sorted(p.name for p in SPECS.glob("*.yaml"))
