"""The CNN library specs (U-Net, FPN, SegNet, Stacked Hourglass, MobileNetV2, Inception-ResNet-v2,
Highway) against plain PyTorch references written here from the papers' descriptions.

For each spec: ``archc verify`` passes at a small size; a reference ``nn.Module`` with the same
module names has the same parameter count (at the spec's default size too, built on the meta
device so nothing is allocated) and, after loading the spec's weights with ``strict=True``,
computes the same outputs; ``archc lint`` finds the skip connections the architecture has.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archc import load_spec
from archc.cli import main
from archc.ops.weights import initialize, total_params
from weights_helpers import randomize_statistics, state_dict_specs
from archc.lowering.torch import build_module, state_dict_from_graph

from conftest import SPECS

# Small configurations: each spec builds, verifies and runs in well under a second or two.
SMALL = {
    "unet": (["--profile", "small"], {"profile": "small"}),
    "segnet": (["--set", "width=4", "--set", "height=45", "--set", "image_width=60"],
               {"overrides": {"width": 4, "height": 45, "image_width": 60}}),
    "fpn_resnet50": (["--set", "width=8", "--set", "channels=16", "--set", "image_size=64"],
                     {"overrides": {"width": 8, "channels": 16, "image_size": 64}}),
    "hourglass": (["--profile", "small"], {"profile": "small"}),
    "mobilenet_v2": (["--set", "image_size=32", "--set", "num_classes=10"],
                     {"overrides": {"image_size": 32, "num_classes": 10}}),
    "inception_resnet_v2": (["--profile", "small"], {"profile": "small"}),
    "highway": (["--profile", "small"], {"profile": "small"}),
}


def spec_path(name: str) -> str:
    return str(SPECS / f"{name}.yaml")


def small_graph(name: str):
    return load_spec(spec_path(name), **SMALL[name][1])


def outputs_match(graph, reference: nn.Module, x: torch.Tensor) -> None:
    """Load the spec's (seeded, non-trivial BN statistics) weights strictly into ``reference``
    and compare every output with the spec's own PyTorch build."""
    initialize(graph, seed=0)
    randomize_statistics(graph, seed=0)
    reference.load_state_dict(state_dict_from_graph(graph), strict=True)
    ours = build_module(graph).eval()
    reference.eval()
    with torch.no_grad():
        got = ours(x)
        want = reference(x)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want) == len(graph.outputs)
    for name, g, w in zip(graph.outputs, got, want):
        assert g.shape == w.shape, name
        assert w.abs().max() > 0, f"{name}: a zero output compares nothing"
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


def same_param_count(graph, reference: nn.Module) -> None:
    assert total_params(graph) == sum(p.numel() for p in reference.parameters())


def meta(factory, *args, **kwargs) -> nn.Module:
    """Build a reference at full size without allocating its weights."""
    with torch.device("meta"):
        return factory(*args, **kwargs)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- archc verify at a small size, through the real command line -------------------------------

@pytest.mark.parametrize("name", sorted(SMALL))
def test_verify_passes_at_small_size(name, capsys):
    code = main(["verify", spec_path(name), *SMALL[name][0]])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().endswith("PASSED")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_check_passes_at_default_size(name, capsys):
    assert main(["check", spec_path(name)]) == 0
    assert f"{name}.yaml: ok: {name}" in capsys.readouterr().out


# -- U-Net ---------------------------------------------------------------------------------------

class DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class UNetLevel(nn.Module):
    """Encoder convs; pool, the level below, 2x2/2 up-conv, concat with the encoder map; decoder convs."""

    def __init__(self, cin: int, ch: int, levels: int) -> None:
        super().__init__()
        self.encoder = DoubleConv(cin, ch)
        self.levels = levels
        if levels:
            self.inner = UNetLevel(ch, ch * 2, levels - 1)
            self.up = nn.ConvTranspose2d(ch * 2, ch, 2, stride=2)
            self.decoder = DoubleConv(ch * 2, ch)

    def forward(self, x):
        e = self.encoder(x)
        if not self.levels:
            return e
        return self.decoder(torch.cat([e, self.up(self.inner(F.max_pool2d(e, 2)))], 1))


class UNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=2, width=64, depth=4) -> None:
        super().__init__()
        self.net = UNetLevel(in_channels, width, depth)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        return self.classifier(self.net(x))


def test_unet_matches_reference():
    g = small_graph("unet")
    assert g.params["width"] == 8 and g.params["depth"] == 2
    ref = UNet(width=8, depth=2)
    same_param_count(g, ref)
    outputs_match(g, ref, torch.randn(2, 1, 32, 32))


def test_unet_default_and_profiles():
    g = load_spec(spec_path("unet"))
    assert total_params(g) == n_params(meta(UNet)) == 31_036_546
    assert g.type_of(g.outputs["classifier"]).shape == ("N", 2, 512, 512)
    large = load_spec(spec_path("unet"), profile="large")
    assert total_params(large) == n_params(meta(UNet, width=96, depth=5))
    assert large.node("net.inner.inner.inner.inner.inner.encoder.conv1").type.shape == ("N", 96 * 32, 16, 16)


# -- SegNet -------------------------------------------------------------------------------------

class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SegNetStage(nn.Module):
    """Encoder convs and a 2x2 pool with indices; the stages below; unpool with those indices; decoder."""

    def __init__(self, i: int, cin: int, width: int, convs, mults) -> None:
        super().__init__()
        ch, out = width * mults[i], width * mults[max(i - 1, 0)]
        self.encoder = nn.Sequential(*[ConvBNReLU(cin if j == 0 else ch, ch) for j in range(convs[i])])
        self.inner = SegNetStage(i + 1, ch, width, convs, mults) if i + 1 < len(convs) else None
        n = convs[i] - (1 if i == 0 else 0)   # the classifier is the first stage's last conv
        self.decoder = nn.Sequential(*[ConvBNReLU(ch, out if j == n - 1 else ch) for j in range(n)])

    def forward(self, x):
        e = self.encoder(x)
        y, indices = F.max_pool2d(e, 2, 2, return_indices=True)
        if self.inner is not None:
            y = self.inner(y)
        return self.decoder(F.max_unpool2d(y, indices, 2, 2, output_size=e.shape[2:]))


class SegNet(nn.Module):
    def __init__(self, num_classes=11, width=64, convs=(2, 2, 3, 3, 3), mults=(1, 2, 4, 8, 8)) -> None:
        super().__init__()
        self.net = SegNetStage(0, 3, width, convs, mults)
        self.classifier = nn.Conv2d(width, num_classes, 3, padding=1)

    def forward(self, x):
        return self.classifier(self.net(x))


def test_segnet_matches_reference():
    g = small_graph("segnet")
    ref = SegNet(width=4)
    same_param_count(g, ref)
    # 45 x 60 pools to odd sizes (22 x 30 -> 11 x 15 ...): the unpools need the pre-pool sizes
    outputs_match(g, ref, torch.randn(2, 3, 45, 60))


def test_segnet_default_size_and_vgg16_encoder():
    g = load_spec(spec_path("segnet"))
    assert total_params(g) == n_params(meta(SegNet)) == 29_441_419
    encoder_convs = [n for n in g.nodes() if n.op == "conv" and ".encoder." in n.name]
    decoder_convs = [n for n in g.nodes() if n.op == "conv" and ".decoder." in n.name]
    assert len(encoder_convs) == 13 and len(decoder_convs) == 12   # + the classifier = 13
    assert g.type_of(g.outputs["classifier"]).shape == ("N", 11, 360, 480)


# -- FPN on ResNet-50 ---------------------------------------------------------------------------

class Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNetBody(nn.Module):
    def __init__(self, width: int, layers) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, n in enumerate(layers):
            planes = width * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(cin, planes, 2 if j == 0 and i > 0 else 1))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        feats = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            feats.append(x)
        return feats


class FPNLevel(nn.Module):
    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        self.lateral = nn.Conv2d(cin, channels, 1)
        self.output = nn.Conv2d(channels, channels, 3, padding=1)


class FPN(nn.Module):
    """Lateral 1x1 on C2..C5, top-down nearest upsampling + add, 3x3 outputs P2..P5, P6 = maxpool(P5, 1, 2)."""

    def __init__(self, in_channels, channels: int) -> None:
        super().__init__()
        for i, cin in enumerate(in_channels):
            setattr(self, f"level{i + 2}", FPNLevel(cin, channels))

    def forward(self, feats):
        outs = {}
        merged = None
        for i in (5, 4, 3, 2):
            level = getattr(self, f"level{i}")
            lat = level.lateral(feats[i - 2])
            merged = lat if merged is None else lat + F.interpolate(merged, size=lat.shape[2:], mode="nearest")
            outs[i] = level.output(merged)
        return outs[2], outs[3], outs[4], outs[5], F.max_pool2d(outs[5], 1, 2)


class ResNetFPN(nn.Module):
    def __init__(self, width=64, layers=(3, 4, 6, 3), channels=256) -> None:
        super().__init__()
        self.body = ResNetBody(width, layers)
        self.fpn = FPN([width * 4 * 2 ** i for i in range(4)], channels)

    def forward(self, x):
        return self.fpn(self.body(x))


def test_fpn_matches_reference():
    g = small_graph("fpn_resnet50")
    ref = ResNetFPN(width=8, channels=16)
    same_param_count(g, ref)
    outputs_match(g, ref, torch.randn(1, 3, 64, 64))


def test_fpn_default_size_names_and_pyramid():
    g = load_spec(spec_path("fpn_resnet50"))
    # torchvision's resnet_fpn_backbone('resnet50'): ResNet-50 without fc (23,508,032) + FPN (3,344,384)
    assert total_params(g) == n_params(meta(ResNetFPN)) == 26_852_416
    keys = [k for k, _ in state_dict_specs(g)]
    assert keys[:2] == ["body.conv1.weight", "body.bn1.weight"]
    assert "body.layer1.0.downsample.0.weight" in keys and "body.layer4.2.conv3.weight" in keys
    assert not any(k.startswith("body.fc") for k in keys)
    shapes = {k: g.type_of(v).shape for k, v in g.outputs.items()}
    assert shapes == {"p2": ("N", 256, 56, 56), "p3": ("N", 256, 28, 28), "p4": ("N", 256, 14, 14),
                      "p5": ("N", 256, 7, 7), "p6": ("N", 256, 4, 4)}


def test_fpn_sizes_not_divisible_by_32():
    """The top-down upsampling goes to the lateral's size (as torchvision), so odd sizes work."""
    g = load_spec(spec_path("fpn_resnet50"), overrides={"width": 8, "channels": 16, "image_size": 72})
    assert g.type_of(g.outputs["p5"]).shape == ("N", 16, 3, 3)
    assert g.type_of(g.outputs["p4"]).shape == ("N", 16, 5, 5)
    outputs_match(g, ResNetFPN(width=8, channels=16), torch.randn(1, 3, 72, 72))


# -- Stacked Hourglass --------------------------------------------------------------------------

class Residual(nn.Module):
    """BN-ReLU-1x1 (out/2), BN-ReLU-3x3 (out/2), BN-ReLU-1x1 (out), plus identity or a 1x1 conv."""

    def __init__(self, cin: int, out: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, out // 2, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(out // 2), nn.Conv2d(out // 2, out // 2, 3, padding=1)
        self.bn3, self.conv3 = nn.BatchNorm2d(out // 2), nn.Conv2d(out // 2, out, 1)
        self.skip = nn.Conv2d(cin, out, 1) if cin != out else None

    def forward(self, x):
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return y + (x if self.skip is None else self.skip(x))


class Hourglass(nn.Module):
    def __init__(self, levels: int, f: int) -> None:
        super().__init__()
        self.up1, self.low1, self.low3 = Residual(f, f), Residual(f, f), Residual(f, f)
        if levels > 1:
            self.inner = Hourglass(levels - 1, f)
        else:
            self.bottom = Residual(f, f)

    def forward(self, x):
        low = self.low1(F.max_pool2d(x, 2, 2))
        low = self.inner(low) if hasattr(self, "inner") else self.bottom(low)
        return self.up1(x) + F.interpolate(self.low3(low), scale_factor=2, mode="nearest")


class HourglassStack(nn.Module):
    def __init__(self, f: int, depth: int, joints: int, last: bool) -> None:
        super().__init__()
        self.hg, self.res = Hourglass(depth, f), Residual(f, f)
        self.lin = nn.Module()
        self.lin.conv, self.lin.bn = nn.Conv2d(f, f, 1), nn.BatchNorm2d(f)
        self.heatmaps = nn.Conv2d(f, joints, 1)
        if not last:
            self.remap_features, self.remap_heatmaps = nn.Conv2d(f, f, 1), nn.Conv2d(joints, f, 1)

    def forward(self, x):
        ll = F.relu(self.lin.bn(self.lin.conv(self.res(self.hg(x)))))
        h = self.heatmaps(ll)
        if hasattr(self, "remap_features"):
            return x + self.remap_features(ll) + self.remap_heatmaps(h), h
        return None, h


class StackedHourglass(nn.Module):
    def __init__(self, width=256, depth=4, stacks=2, joints=16) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3), nn.BatchNorm2d(64)
        self.res1, self.res2, self.res3 = Residual(64, 128), Residual(128, 128), Residual(128, width)
        self.stacks = stacks
        for i in range(stacks):
            setattr(self, f"stack{i}", HourglassStack(width, depth, joints, i == stacks - 1))

    def forward(self, x):
        x = self.res1(F.relu(self.bn1(self.conv1(x))))
        x = self.res3(self.res2(F.max_pool2d(x, 2, 2)))
        heatmaps = []
        for i in range(self.stacks):
            x, h = getattr(self, f"stack{i}")(x)
            heatmaps.append(h)
        return tuple(heatmaps)


def test_hourglass_matches_reference():
    g = small_graph("hourglass")
    ref = StackedHourglass(width=16, depth=2)
    same_param_count(g, ref)
    outputs_match(g, ref, torch.randn(2, 3, 32, 32))
    assert list(g.outputs) == ["heatmaps0", "heatmaps1"]
    assert "stack1.remap_features" not in g and "stack0.remap_heatmaps" in g


def test_hourglass_default_size():
    g = load_spec(spec_path("hourglass"))
    assert total_params(g) == n_params(meta(StackedHourglass)) == 6_570_400
    assert all(g.type_of(v).shape == ("N", 16, 64, 64) for v in g.outputs.values())
    large = load_spec(spec_path("hourglass"), profile="large")
    assert total_params(large) == n_params(meta(StackedHourglass, width=512))


# -- MobileNetV2 ---------------------------------------------------------------------------------

def conv_bn_relu6(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = cin * t
        layers = [conv_bn_relu6(cin, hidden)] if t != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Structured as torchvision.models.mobilenet_v2, written from Table 2 of Sandler et al."""

    TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1)]

    def __init__(self, num_classes=1000) -> None:
        super().__init__()
        layers, cin = [conv_bn_relu6(3, 32, 3, 2)], 32
        for t, c, n, s in self.TABLE:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn_relu6(cin, 1280))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def test_mobilenet_v2_parameter_count_and_state_dict_match_torchvision_structure():
    g = load_spec(spec_path("mobilenet_v2"))
    assert total_params(g) == 3_504_872   # torchvision.models.mobilenet_v2()
    ref = meta(MobileNetV2)
    ours = {k: tuple(s.shape) for k, s in state_dict_specs(g)}
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert ours == theirs
    for key in ("features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
                "features.2.conv.3.weight", "features.17.conv.3.running_var", "features.18.1.bias",
                "classifier.1.weight"):
        assert key in ours
    assert ours["features.2.conv.1.0.weight"] == (96, 1, 3, 3)   # depthwise
    assert len(ours) == 314


def test_mobilenet_v2_matches_reference():
    g = small_graph("mobilenet_v2")
    outputs_match(g, MobileNetV2(num_classes=10), torch.randn(2, 3, 32, 32))
    adds = sorted(n.name for n in g.nodes() if n.op == "add")
    assert len(adds) == 10 and "features.3.add" in adds and "features.11.add" not in adds


# -- Inception-ResNet-v2 ------------------------------------------------------------------------

class BasicConv(nn.Module):
    def __init__(self, cin: int, out: int, k=1, stride=1, pad=0, mult: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, int(out * mult), k, stride, pad, bias=False)
        self.bn = nn.BatchNorm2d(int(out * mult), eps=0.001)
        self.out_channels = int(out * mult)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def add_chain(parent: nn.Module, cin: int, mult: float, **convs) -> tuple[list[str], int]:
    """Add BasicConvs to ``parent`` under the given names, each reading the previous one's output;
    return the names (the branch, in order) and the branch's output channels."""
    for name, args in convs.items():
        setattr(parent, name, BasicConv(cin, *args, mult=mult))
        cin = getattr(parent, name).out_channels
    return list(convs), cin


def run_chain(parent: nn.Module, names: list[str], x):
    for name in names:
        x = getattr(parent, name)(x)
    return x


class ResidualBlock(nn.Module):
    """Branches (each a chain of convs from x) -> concat -> linear 1x1 (tail.up) -> scale -> + x -> ReLU."""

    def __init__(self, cin: int, mult: float, factor: float, branches) -> None:
        super().__init__()
        self.branches, self.factor, width = [], factor, 0
        for convs in branches:
            names, cout = add_chain(self, cin, mult, **convs)
            self.branches.append(names)
            width += cout
        self.tail = nn.Module()
        self.tail.up = nn.Conv2d(width, cin, 1)

    def forward(self, x):
        y = torch.cat([run_chain(self, names, x) for names in self.branches], 1)
        return F.relu(x + self.tail.up(y) * self.factor)


def block_a(cin, mult):
    return ResidualBlock(cin, mult, 0.17, [
        {"branch0": (32,)}, {"branch1_0": (32,), "branch1_1": (32, 3, 1, 1)},
        {"branch2_0": (32,), "branch2_1": (48, 3, 1, 1), "branch2_2": (64, 3, 1, 1)}])


def block_b(cin, mult):
    return ResidualBlock(cin, mult, 0.10, [
        {"branch0": (192,)},
        {"branch1_0": (128,), "branch1_1": (160, (1, 7), 1, (0, 3)), "branch1_2": (192, (7, 1), 1, (3, 0))}])


def block_c(cin, mult):
    return ResidualBlock(cin, mult, 0.20, [
        {"branch0": (192,)},
        {"branch1_0": (192,), "branch1_1": (224, (1, 3), 1, (0, 1)), "branch1_2": (256, (3, 1), 1, (1, 0))}])


class Reduction(nn.Module):
    """A 3x3/2 max pool branch and conv branches, concatenated."""

    def __init__(self, cin: int, mult: float, branches) -> None:
        super().__init__()
        self.branches, self.out_channels = [], cin
        for convs in branches:
            names, cout = add_chain(self, cin, mult, **convs)
            self.branches.append(names)
            self.out_channels += cout

    def forward(self, x):
        return torch.cat([F.max_pool2d(x, 3, 2)] + [run_chain(self, names, x) for names in self.branches], 1)


class Stem(nn.Module):
    """Figure 3 of Szegedy et al. 2016."""

    def __init__(self, mult: float) -> None:
        super().__init__()
        self.first, c = add_chain(self, 3, mult, conv1=(32, 3, 2), conv2=(32, 3), conv3=(64, 3, 1, 1))
        self.conv4 = BasicConv(c, 96, 3, 2, mult=mult)
        c += self.conv4.out_channels
        self.b1, c1 = add_chain(self, c, mult, b1_1=(64,), b1_2=(96, 3))
        self.b2, c2 = add_chain(self, c, mult, b2_1=(64,), b2_2=(64, (7, 1), 1, (3, 0)),
                                b2_3=(64, (1, 7), 1, (0, 3)), b2_4=(96, 3))
        self.conv5 = BasicConv(c1 + c2, 192, 3, 2, mult=mult)
        self.out_channels = c1 + c2 + self.conv5.out_channels

    def forward(self, x):
        x = run_chain(self, self.first, x)
        x = torch.cat([F.max_pool2d(x, 3, 2), self.conv4(x)], 1)
        x = torch.cat([run_chain(self, self.b1, x), run_chain(self, self.b2, x)], 1)
        return torch.cat([self.conv5(x), F.max_pool2d(x, 3, 2)], 1)


class InceptionResNetV2(nn.Module):
    def __init__(self, mult=1.0, blocks=(5, 10, 5), num_classes=1000) -> None:
        super().__init__()
        self.stem = Stem(mult)
        c = self.stem.out_channels
        self.stage_a = nn.Sequential(*[block_a(c, mult) for _ in range(blocks[0])])
        self.reduction_a = Reduction(c, mult, [{"branch1": (384, 3, 2)},
                                               {"branch2_0": (256,), "branch2_1": (256, 3, 1, 1),
                                                "branch2_2": (384, 3, 2)}])
        c = self.reduction_a.out_channels
        self.stage_b = nn.Sequential(*[block_b(c, mult) for _ in range(blocks[1])])
        self.reduction_b = Reduction(c, mult, [{"branch1_0": (256,), "branch1_1": (384, 3, 2)},
                                               {"branch2_0": (256,), "branch2_1": (288, 3, 2)},
                                               {"branch3_0": (256,), "branch3_1": (288, 3, 1, 1),
                                                "branch3_2": (320, 3, 2)}])
        c = self.reduction_b.out_channels
        self.stage_c = nn.Sequential(*[block_c(c, mult) for _ in range(blocks[2])])
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.stage_a(self.stem(x))
        x = self.stage_c(self.reduction_b(self.stage_b(self.reduction_a(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_inception_resnet_v2_matches_reference():
    g = small_graph("inception_resnet_v2")
    ref = InceptionResNetV2(mult=0.0625, blocks=(1, 2, 1))
    same_param_count(g, ref)
    outputs_match(g, ref, torch.randn(2, 3, 75, 75))


def test_inception_resnet_v2_default_size():
    g = load_spec(spec_path("inception_resnet_v2"))
    assert total_params(g) == n_params(meta(InceptionResNetV2)) == 32_433_928
    assert g.node("stem.cat3").type.shape == ("N", 384, 35, 35)
    assert g.node("reduction_a.cat").type.shape == ("N", 1152, 17, 17)
    assert g.node("reduction_b.cat").type.shape == ("N", 2144, 8, 8)
    assert [g.node(f"stage_{s}.0.tail.scale").attrs["factor"] for s in "abc"] == [0.17, 0.10, 0.20]


# -- Highway ------------------------------------------------------------------------------------

class HighwayLayer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.plain, self.gate = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        t = torch.sigmoid(self.gate(x))
        return F.relu(self.plain(x)) * t + x * (1 - t)


class Highway(nn.Module):
    def __init__(self, in_features=784, width=50, depth=10, num_classes=10) -> None:
        super().__init__()
        self.input_layer = nn.Linear(in_features, width)
        self.layers = nn.Sequential(*[HighwayLayer(width) for _ in range(depth)])
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.layers(F.relu(self.input_layer(x))))


def test_highway_matches_reference():
    g = small_graph("highway")
    ref = Highway(in_features=16, width=8, depth=3)
    same_param_count(g, ref)
    outputs_match(g, ref, torch.randn(4, 16))


def test_highway_default_and_large_profile():
    assert total_params(load_spec(spec_path("highway"))) == n_params(meta(Highway)) == 90_760
    large = load_spec(spec_path("highway"), profile="large")
    assert total_params(large) == n_params(meta(Highway, depth=100))


# -- archc lint: the skip connections each architecture is known for -----------------------------

LINT = {
    # name: (extra args, summary counts, joins that are not skips)
    "unet": (["--set", "depth=4", "--set", "width=4", "--set", "image_size=32"],
             {"residual": 0, "long_skip": 4, "dense": 0, "gated": 0}, {"branch": 0, "sequential": 0}),
    "fpn_resnet50": ([], {"residual": 16, "long_skip": 3, "dense": 0, "gated": 0}, {"branch": 0, "sequential": 0}),
    "segnet": ([], {"residual": 0, "long_skip": 4, "dense": 0, "gated": 0}, {"branch": 0, "sequential": 0}),
    # 3 stem residuals + per stack (3 * depth + 1) in the hourglass and 1 after it; one long skip
    # per level per stack, plus the stack input carried around the first hourglass
    "hourglass": ([], {"residual": 31, "long_skip": 9, "dense": 0, "gated": 0}, {"branch": 1, "sequential": 0}),
    "mobilenet_v2": ([], {"residual": 10, "long_skip": 0, "dense": 0, "gated": 0}, {"branch": 0, "sequential": 0}),
    # 3 stem concats, 20 block concats, 2 reduction concats are branches
    "inception_resnet_v2": ([], {"residual": 20, "long_skip": 0, "dense": 0, "gated": 0},
                            {"branch": 25, "sequential": 0}),
    "highway": ([], {"residual": 0, "long_skip": 0, "dense": 0, "gated": 10}, {"branch": 10, "sequential": 10}),
}


def lint_json(capsys, name: str, *args: str) -> dict:
    code = main(["lint", spec_path(name), "--format", "json", "--strict", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


@pytest.mark.parametrize("name", sorted(LINT))
def test_lint_finds_the_architectures_skips(name, capsys):
    args, summary, joins = LINT[name]
    data = lint_json(capsys, name, *args)
    assert data["summary"] == summary
    assert data["joins_summary"] == joins
    assert data["ok"] and data["expectations"] == []


def test_lint_long_skips_sit_one_per_level(capsys):
    unet = lint_json(capsys, "unet", *LINT["unet"][0])
    merges = [s["merge"] for s in unet["skips"]]
    assert merges == ["net.inner.inner.inner.cat", "net.inner.inner.cat", "net.inner.cat", "net.cat"]
    assert {s["carries"] for s in unet["skips"]} == {"identity"}
    segnet = lint_json(capsys, "segnet")
    assert {(s["merge_op"], s["carries"], s["fork_output"]) for s in segnet["skips"]} == {("max_unpool", "indices", 1)}
    assert [s["fork"] for s in segnet["skips"]] == [
        "net.inner.inner.inner.pool", "net.inner.inner.pool", "net.inner.pool", "net.pool"]
    fpn = lint_json(capsys, "fpn_resnet50")
    long = [(s["merge"], s["carries"], s["fork"]) for s in fpn["skips"] if s["kind"] == "long_skip"]
    assert long == [("fpn.level4.merged", "projection", "body.layer3.5.relu_2"),
                    ("fpn.level3.merged", "projection", "body.layer2.3.relu_2"),
                    ("fpn.level2.merged", "projection", "body.layer1.2.relu_2")]
    hg = lint_json(capsys, "hourglass")
    long = sorted(s["merge"] for s in hg["skips"] if s["kind"] == "long_skip")
    levels = ["hg.add", "hg.inner.add", "hg.inner.inner.add", "hg.inner.inner.inner.add"]
    assert long == sorted([f"stack{i}.{m}" for i in range(2) for m in levels] + ["stack0.merge"])
