"""PyTorch modules written from their papers and reference code, as their authors write them (not shaped to
archc), small enough to export in a second or two: what ``archc lint`` is checked against in
tests/test_lint_papers.py. Each class names its paper; each factory in :data:`MODELS` gives the module
and an example input."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# -- ConvNeXt (Liu et al. 2022), facebookresearch/ConvNeXt models/convnext.py --------------------------
class LayerNorm2d(nn.Module):
    """ConvNeXt's channels_first LayerNorm (mean and variance over the channel axis, written out)."""

    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class DropPath(nn.Module):
    """Stochastic depth: identity in eval mode."""

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, drop_path=0.1, layer_scale_init_value=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        inp = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)
        x = self.norm(x)
        x = self.pwconv2(self.act(self.pwconv1(x)))
        x = self.gamma * x
        x = x.permute(0, 3, 1, 2)
        return inp + self.drop_path(x)


class ConvNeXt(nn.Module):
    def __init__(self, depths=(2, 2), dims=(8, 16), num_classes=5):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0]))]
            + [nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, 2)) for i in range(len(dims) - 1)])
        self.stages = nn.ModuleList(nn.Sequential(*[ConvNeXtBlock(d) for _ in range(n)]) for n, d in zip(depths, dims))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean([-2, -1])))


# -- ResNeXt (Xie et al. 2017) and SE-ResNet (Hu et al. 2018) -------------------------------------------
class ResNeXtBottleneck(nn.Module):
    """Aggregated transformations as one grouped 3x3 conv (the paper's form (c))."""

    def __init__(self, cin, width, cout, groups=4, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNeXt(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(ResNeXtBottleneck(16, 8, 16), ResNeXtBottleneck(16, 8, 16))
        self.layer2 = nn.Sequential(ResNeXtBottleneck(16, 16, 32, stride=2), ResNeXtBottleneck(32, 16, 32))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SELayer(nn.Module):
    def __init__(self, c, reduction=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, c // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(c // reduction, c, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SEBasicBlock(nn.Module):
    """SE-ResNet's basic block (moskomule/senet.pytorch): the SE gate scales the residual branch."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SELayer(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.relu(out + residual)


class SEResNet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.layers = nn.Sequential(SEBasicBlock(8, 8), SEBasicBlock(8, 16, 2), SEBasicBlock(16, 16))
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


# -- Pre-activation ResNet (He et al. 2016, "Identity Mappings"), kuangliu/pytorch-cifar preact_resnet.py
class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.layers = nn.Sequential(PreActBlock(8, 8), PreActBlock(8, 8), PreActBlock(8, 16, 2), PreActBlock(16, 16))
        self.bn = nn.BatchNorm2d(16)
        self.linear = nn.Linear(16, num_classes)

    def forward(self, x):
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


# -- PyramidNet (Han et al. 2017), dyhan0920/PyramidNet-PyTorch: zero-padded identity shortcut ----------
class PyramidBasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.AvgPool2d(2, 2, ceil_mode=True) if stride != 1 else None

    def forward(self, x):
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.relu(self.bn2(out))
        out = self.bn3(self.conv2(out))
        shortcut = self.downsample(x) if self.downsample is not None else x
        residual_channel = out.size()[1]
        shortcut_channel = shortcut.size()[1]
        if residual_channel != shortcut_channel:
            b, _, h, w = shortcut.size()
            padding = torch.zeros(b, residual_channel - shortcut_channel, h, w, dtype=out.dtype)
            out = out + torch.cat((shortcut, padding), 1)
        else:
            out = out + shortcut
        return out


class PyramidNet(nn.Module):
    def __init__(self, num_classes=5, alpha=12, blocks=4):
        super().__init__()
        c = 8
        self.conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        layers = []
        for i in range(blocks):
            cout = c + alpha // blocks
            layers.append(PyramidBasicBlock(c, cout, 2 if i == blocks // 2 else 1))
            c = cout
        self.layers = nn.Sequential(*layers)
        self.bn_final = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.layers(self.bn1(self.conv1(x)))
        x = F.relu(self.bn_final(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# -- ShuffleNet V2 (Ma et al. 2018), torchvision's shufflenetv2.py ----------------------------------------
def channel_shuffle(x, groups):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride):
        super().__init__()
        self.stride = stride
        branch_features = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, 1, bias=False), nn.BatchNorm2d(branch_features), nn.ReLU(inplace=True))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch_features, branch_features, 1, bias=False),
            nn.BatchNorm2d(branch_features), nn.ReLU(inplace=True),
            nn.Conv2d(branch_features, branch_features, 3, stride, 1, groups=branch_features, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, 1, bias=False), nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.stage2 = nn.Sequential(InvertedResidual(8, 16, 2), InvertedResidual(16, 16, 1), InvertedResidual(16, 16, 1))
        self.stage3 = nn.Sequential(InvertedResidual(16, 32, 2), InvertedResidual(32, 32, 1))
        self.conv5 = nn.Sequential(nn.Conv2d(32, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.conv5(self.stage3(self.stage2(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


# -- LinkNet (Chaurasia & Culurciello 2017): encoder -> decoder links merged by addition -----------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class LinkNetDecoder(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cin // 4, 1), nn.BatchNorm2d(cin // 4), nn.ReLU(inplace=True))
        self.tp_conv = nn.Sequential(nn.ConvTranspose2d(cin // 4, cin // 4, 3, 2, 1, output_padding=1),
                                     nn.BatchNorm2d(cin // 4), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv2d(cin // 4, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv2(self.tp_conv(self.conv1(x)))


class LinkNet(nn.Module):
    def __init__(self, classes=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.encoder1 = BasicBlock(8, 8)
        self.encoder2 = BasicBlock(8, 16, 2)
        self.encoder3 = BasicBlock(16, 32, 2)
        self.decoder3 = LinkNetDecoder(32, 16)
        self.decoder2 = LinkNetDecoder(16, 8)
        self.decoder1 = LinkNetDecoder(8, 8)
        self.final = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        x = self.stem(x)
        e1 = self.encoder1(x)
        e2 = self.encoder2(e1)
        e3 = self.encoder3(e2)
        d3 = e2 + self.decoder3(e3)
        d2 = e1 + self.decoder2(d3)
        return self.final(self.decoder1(d2))


# -- DeepLabV3+ (Chen et al. 2018): ASPP, and low-level features concatenated in the decoder ------------
class ASPP(nn.Module):
    def __init__(self, cin, cout, rates=(2, 4)):
        super().__init__()
        mods = [nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())]
        mods += [nn.Sequential(nn.Conv2d(cin, cout, 3, padding=r, dilation=r, bias=False), nn.BatchNorm2d(cout),
                               nn.ReLU()) for r in rates]
        self.convs = nn.ModuleList(mods)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(cout * (len(rates) + 2), cout, 1, bias=False), nn.BatchNorm2d(cout),
                                     nn.ReLU())

    def forward(self, x):
        res = [conv(x) for conv in self.convs]
        res.append(F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(res, dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, classes=2):
        super().__init__()
        self.low = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), BasicBlock(8, 8))
        self.high = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16, 2))
        self.aspp = ASPP(16, 16)
        self.reduce = nn.Sequential(nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.decoder = nn.Sequential(nn.Conv2d(20, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.classifier = nn.Conv2d(16, classes, 1)

    def forward(self, x):
        size = x.shape[-2:]
        low = self.low(x)
        out = self.aspp(self.high(low))
        out = F.interpolate(out, size=low.shape[-2:], mode="bilinear", align_corners=False)
        out = self.decoder(torch.cat([self.reduce(low), out], dim=1))
        return F.interpolate(self.classifier(out), size=size, mode="bilinear", align_corners=False)


# -- HRNet (Wang et al. 2019): parallel resolutions, exchanged by fusion units ---------------------------
class HRModule(nn.Module):
    """Two branches (full and half resolution), each of residual blocks (2 as in HRNet-W18-Small), then fusion: every output is the
    sum of all branches, resampled (HRNet's FuseLayer: strided 3x3 conv down, 1x1 conv + upsample up)."""

    def __init__(self, c=8, blocks=2):
        super().__init__()
        self.branches = nn.ModuleList([nn.Sequential(*[BasicBlock(w, w) for _ in range(blocks)]) for w in (c, 2 * c)])
        self.up = nn.Sequential(nn.Conv2d(2 * c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c))

    def forward(self, xs):
        hi, lo = self.branches[0](xs[0]), self.branches[1](xs[1])
        y_hi = F.relu(hi + F.interpolate(self.up(lo), scale_factor=2.0, mode="nearest"))
        y_lo = F.relu(self.down(hi) + lo)
        return [y_hi, y_lo]


class HRNet(nn.Module):
    def __init__(self, c=8, classes=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.transition = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU())
        self.modules_ = nn.ModuleList([HRModule(c), HRModule(c)])
        self.head = nn.Conv2d(3 * c, classes, 1)

    def forward(self, x):
        x = self.stem(x)
        xs = [x, self.transition(x)]
        for m in self.modules_:
            xs = m(xs)
        lo = F.interpolate(xs[1], scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.head(torch.cat([xs[0], lo], 1))


# -- Res2Net (Gao et al. 2019), Res2Net/Res2Net-PretrainedModels res2net.py Bottle2neck (stype 'normal')
class Bottle2neck(nn.Module):
    def __init__(self, cin, planes, base_width=16, scale=4):
        super().__init__()
        width = math.floor(planes * (base_width / 64.0))
        self.conv1 = nn.Conv2d(cin, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.nums = scale - 1
        self.convs = nn.ModuleList([nn.Conv2d(width, width, 3, 1, 1, bias=False) for _ in range(self.nums)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(width) for _ in range(self.nums)])
        self.conv3 = nn.Conv2d(width * scale, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.width = width

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        spx = torch.split(out, self.width, 1)
        sp = spx[0]
        for i in range(self.nums):
            if i > 0:
                sp = sp + spx[i]
            sp = self.relu(self.bns[i](self.convs[i](sp)))
            out = sp if i == 0 else torch.cat((out, sp), 1)
        out = torch.cat((out, spx[self.nums]), 1)
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class Bottle2neckSliced(Bottle2neck):
    """The same block with its groups taken by channel slices (``out[:, i*w:(i+1)*w]``), as many
    reimplementations write it: the exporters emit Slice nodes instead of one Split."""

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        w = self.width
        spx = [out[:, i * w:(i + 1) * w] for i in range(self.nums + 1)]
        sp = spx[0]
        for i in range(self.nums):
            if i > 0:
                sp = sp + spx[i]
            sp = self.relu(self.bns[i](self.convs[i](sp)))
            out = sp if i == 0 else torch.cat((out, sp), 1)
        out = torch.cat((out, spx[self.nums]), 1)
        return self.relu(self.bn3(self.conv3(out)) + residual)


class Res2Net(nn.Module):
    def __init__(self, num_classes=5, block=Bottle2neck):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer = nn.Sequential(block(16, 4), block(16, 4))
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layer(self.stem(x)), 1), 1))


# -- RDN (Zhang et al. 2018), EDSR-PyTorch's rdn.py: residual dense blocks ---------------------------------
class RDBConv(nn.Module):
    def __init__(self, cin, grow, k=3):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, grow, k, padding=(k - 1) // 2, stride=1), nn.ReLU())

    def forward(self, x):
        out = self.conv(x)
        return torch.cat((x, out), 1)


class RDB(nn.Module):
    """Densely connected convs, local feature fusion (1x1), local residual learning."""

    def __init__(self, g0, grow, layers):
        super().__init__()
        self.convs = nn.Sequential(*[RDBConv(g0 + c * grow, grow) for c in range(layers)])
        self.LFF = nn.Conv2d(g0 + layers * grow, g0, 1, padding=0, stride=1)

    def forward(self, x):
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    def __init__(self, g0=8, blocks=2, layers=3, grow=4):
        super().__init__()
        self.SFENet1 = nn.Conv2d(3, g0, 3, padding=1)
        self.SFENet2 = nn.Conv2d(g0, g0, 3, padding=1)
        self.RDBs = nn.ModuleList(RDB(g0, grow, layers) for _ in range(blocks))
        self.GFF = nn.Sequential(nn.Conv2d(blocks * g0, g0, 1), nn.Conv2d(g0, g0, 3, padding=1))
        self.out = nn.Conv2d(g0, 3, 3, padding=1)

    def forward(self, x):
        f__1 = self.SFENet1(x)
        x = self.SFENet2(f__1)
        rdbs_out = []
        for rdb in self.RDBs:
            x = rdb(x)
            rdbs_out.append(x)
        x = self.GFF(torch.cat(rdbs_out, 1))
        x += f__1
        return self.out(x)


# -- DPN (Chen et al. 2017), rwightman's dpn.py: a residual path and a densely connected path -------------
class DualPathBlock(nn.Module):
    def __init__(self, cin, num_1x1, num_3x3, res_c, inc, groups=4, first=False):
        super().__init__()
        self.res_c = res_c
        self.first = first
        if first:
            self.c1x1_w = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, res_c + 2 * inc, 1, bias=False))
        self.c1x1_a = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, num_1x1, 1, bias=False))
        self.c3x3_b = nn.Sequential(nn.BatchNorm2d(num_1x1), nn.ReLU(),
                                    nn.Conv2d(num_1x1, num_3x3, 3, 1, 1, groups=groups, bias=False))
        self.c1x1_c = nn.Sequential(nn.BatchNorm2d(num_3x3), nn.ReLU(), nn.Conv2d(num_3x3, res_c + inc, 1, bias=False))

    def forward(self, x):
        x_in = torch.cat(x, dim=1) if isinstance(x, tuple) else x
        if self.first:
            x_s = self.c1x1_w(x_in)
            x_s1, x_s2 = x_s[:, :self.res_c], x_s[:, self.res_c:]
        else:
            x_s1, x_s2 = x
        out = self.c1x1_c(self.c3x3_b(self.c1x1_a(x_in)))
        out1, out2 = out[:, :self.res_c], out[:, self.res_c:]
        return x_s1 + out1, torch.cat([x_s2, out2], dim=1)


class DPN(nn.Module):
    def __init__(self, num_classes=5, res_c=16, inc=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        blocks = [DualPathBlock(8, 8, 8, res_c, inc, first=True)]
        c = res_c + 3 * inc
        for _ in range(2):
            blocks.append(DualPathBlock(c, 8, 8, res_c, inc))
            c += inc
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        x = torch.cat(x, dim=1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# -- CSPNet (Wang et al. 2020), CSPDarknet's CSP stage as in YOLOv4 ----------------------------------------
class DarkResidual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.1))
        self.conv2 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.1))

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


class CSPStage(nn.Module):
    def __init__(self, cin, cout, blocks=2):
        super().__init__()
        h = cout // 2
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))
        self.split0 = nn.Sequential(nn.Conv2d(cout, h, 1, bias=False), nn.BatchNorm2d(h), nn.LeakyReLU(0.1))
        self.split1 = nn.Sequential(nn.Conv2d(cout, h, 1, bias=False), nn.BatchNorm2d(h), nn.LeakyReLU(0.1))
        self.blocks = nn.Sequential(*[DarkResidual(h) for _ in range(blocks)])
        self.transition = nn.Sequential(nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h), nn.LeakyReLU(0.1))
        self.fuse = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))

    def forward(self, x):
        x = self.down(x)
        x0 = self.split0(x)
        x1 = self.transition(self.blocks(self.split1(x)))
        return self.fuse(torch.cat([x1, x0], dim=1))


class CSPDarknet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.LeakyReLU(0.1))
        self.stages = nn.Sequential(CSPStage(8, 16), CSPStage(16, 32))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1))


# -- GPT-2 (Radford et al. 2019), nanoGPT's model.py: pre-norm blocks, causal self-attention --------------
class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head, self.n_embd = n_head, n_embd
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class GPTBlock(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * n_embd, n_embd))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, vocab=50, block_size=16, n_layer=2, n_head=2, n_embd=16):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(GPTBlock(n_embd, n_head, block_size) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, idx):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


# -- Transformer decoder with cross-attention (Vaswani et al. 2017), post-norm as nn.TransformerDecoderLayer
class DecoderLayer(nn.Module):
    def __init__(self, d=16, heads=2, ff=32):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x, memory):
        x = self.norm1(x + self.self_attn(x, x, x, need_weights=False)[0])
        x = self.norm2(x + self.cross_attn(x, memory, memory, need_weights=False)[0])
        return self.norm3(x + self.linear2(F.relu(self.linear1(x))))


class EncoderDecoder(nn.Module):
    """An encoder over the source, a decoder over the target reading the encoder's memory in every layer."""

    def __init__(self, d=16, layers=2):
        super().__init__()
        self.src_embed = nn.Linear(8, d)
        self.tgt_embed = nn.Linear(8, d)
        self.encoder = nn.ModuleList(nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
                                     for _ in range(layers))
        self.decoder = nn.ModuleList(DecoderLayer(d) for _ in range(layers))
        self.out = nn.Linear(d, 4)

    def forward(self, src, tgt):
        memory = self.src_embed(src)
        for layer in self.encoder:
            memory = layer(memory)
        x = self.tgt_embed(tgt)
        for layer in self.decoder:
            x = layer(x, memory)
        return self.out(x)


# -- MLP-Mixer (Tolstikhin et al. 2021) --------------------------------------------------------------------
class MixerBlock(nn.Module):
    def __init__(self, tokens, dim, tok_hidden=16, ch_hidden=32):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mix = nn.Sequential(nn.Linear(tokens, tok_hidden), nn.GELU(), nn.Linear(tok_hidden, tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mix = nn.Sequential(nn.Linear(dim, ch_hidden), nn.GELU(), nn.Linear(ch_hidden, dim))

    def forward(self, x):
        x = x + self.token_mix(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mix(self.norm2(x))


class MLPMixer(nn.Module):
    def __init__(self, patch=8, dim=16, depth=2, num_classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, patch, patch)
        self.blocks = nn.Sequential(*[MixerBlock((32 // patch) ** 2, dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))


# -- Highway network (Srivastava et al. 2015) --------------------------------------------------------------
class HighwayLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.H = nn.Linear(d, d)
        self.T = nn.Linear(d, d)
        self.T.bias.data.fill_(-1.0)

    def forward(self, x):
        h = F.relu(self.H(x))
        t = torch.sigmoid(self.T(x))
        return h * t + x * (1 - t)


class Highway(nn.Module):
    def __init__(self, n_in=10, d=16, layers=3, classes=5):
        super().__init__()
        self.inp = nn.Linear(n_in, d)
        self.layers = nn.Sequential(*[HighwayLayer(d) for _ in range(layers)])
        self.out = nn.Linear(d, classes)

    def forward(self, x):
        return self.out(self.layers(F.relu(self.inp(x))))


# -- GNMT encoder (Wu et al. 2016): stacked LSTMs, residual connections from the third layer on ----------
class GNMTEncoder(nn.Module):
    def __init__(self, n_in=8, hidden=16, layers=5, classes=4):
        super().__init__()
        self.bi = nn.LSTM(n_in, hidden // 2, batch_first=True, bidirectional=True)
        self.lstms = nn.ModuleList(nn.LSTM(hidden, hidden, batch_first=True) for _ in range(layers - 1))
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        x, _ = self.bi(x)
        for i, lstm in enumerate(self.lstms):
            y, _ = lstm(x)
            x = x + y if i >= 1 else y  # layer i + 2 of the stack: residuals from the third layer on
        return self.fc(x)


# -- ViT (Dosovitskiy et al. 2021): patch embedding, class token, learned positions, pre-norm encoder ------
class ViTBlock(nn.Module):
    def __init__(self, dim, heads, mlp_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image=32, patch=8, dim=16, depth=2, heads=2, num_classes=5):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.layers = nn.Sequential(*[ViTBlock(dim, heads, 2 * dim) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.class_token.shape[-1], -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = self.ln(self.layers(x + self.pos_embedding))
        return self.head(x[:, 0])


# -- DenseNet (Huang et al. 2017), torchvision's densenet.py: each layer concatenates every earlier feature
class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size=2):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, inputs):
        concated = torch.cat(inputs, 1)
        bottleneck = self.conv1(self.relu1(self.norm1(concated)))
        return self.conv2(self.relu2(self.norm2(bottleneck)))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers, cin, growth):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * growth, growth) for i in range(layers)})

    def forward(self, init):
        features = [init]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet(nn.Module):
    def __init__(self, blocks=(2, 3), growth=4, init=8, num_classes=5):
        super().__init__()
        mods = [nn.Conv2d(3, init, 3, 1, 1, bias=False), nn.BatchNorm2d(init), nn.ReLU(inplace=True)]
        c = init
        for i, n in enumerate(blocks):
            mods.append(DenseBlock(n, c, growth))
            c += n * growth
            if i != len(blocks) - 1:
                mods += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False),
                         nn.AvgPool2d(2, 2)]
                c //= 2
        mods += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*mods)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# -- MobileNetV3 (Howard et al. 2019): inverted residuals, hard-swish, hard-sigmoid squeeze-and-excitation
class MobileNetV3Block(nn.Module):
    def __init__(self, cin, exp, cout, k, stride, use_se):
        super().__init__()
        layers = [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), nn.Hardswish(),
                  nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=False), nn.BatchNorm2d(exp), nn.Hardswish()]
        self.use_res_connect = stride == 1 and cin == cout
        self.block = nn.Sequential(*layers)
        self.se = None
        if use_se:
            sq = max(exp // 4, 8)
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(exp, sq, 1), nn.ReLU(),
                                    nn.Conv2d(sq, exp, 1), nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.block(x)
        if self.se is not None:
            out = out * self.se(out)
        out = self.project(out)
        return out + x if self.use_res_connect else out


class MobileNetV3(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.blocks = nn.Sequential(MobileNetV3Block(8, 16, 8, 3, 1, True), MobileNetV3Block(8, 24, 16, 3, 2, False),
                                    MobileNetV3Block(16, 32, 16, 5, 1, True))
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


# -- YOLOv5's SPPF (Jocher et al.): three chained max-pools concatenated with their input -------------------
class SPPF(nn.Module):
    def __init__(self, cin, cout, k=5):
        super().__init__()
        h = cin // 2
        self.cv1 = nn.Sequential(nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.SiLU())
        self.cv2 = nn.Sequential(nn.Conv2d(h * 4, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class SPPFNet(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.SiLU())
        self.sppf = SPPF(16, 16)
        self.head = nn.Conv2d(16, num_classes, 1)

    def forward(self, x):
        return self.head(self.sppf(self.stem(x)))


# -- WaveNet (van den Oord et al. 2016): gated dilated causal convs, residual and skip connections ----------
class WaveNetLayer(nn.Module):
    def __init__(self, c, skip_c, dilation):
        super().__init__()
        self.dilation = dilation
        self.filter = nn.Conv1d(c, c, 2, dilation=dilation)
        self.gate = nn.Conv1d(c, c, 2, dilation=dilation)
        self.res = nn.Conv1d(c, c, 1)
        self.skip = nn.Conv1d(c, skip_c, 1)

    def forward(self, x):
        y = F.pad(x, (self.dilation, 0))
        z = torch.tanh(self.filter(y)) * torch.sigmoid(self.gate(y))
        return x + self.res(z), self.skip(z)


class WaveNet(nn.Module):
    def __init__(self, c=8, skip_c=8, dilations=(1, 2, 4, 1, 2, 4), classes=16):
        super().__init__()
        self.causal = nn.Conv1d(1, c, 1)
        self.layers = nn.ModuleList(WaveNetLayer(c, skip_c, d) for d in dilations)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_c, skip_c, 1), nn.ReLU(), nn.Conv1d(skip_c, classes, 1))

    def forward(self, x):
        x = self.causal(x)
        skips = 0
        for layer in self.layers:
            x, s = layer(x)
            skips = skips + s
        return self.out(skips)



# -- FPN (Lin et al. 2017), torchvision's FeaturePyramidNetwork over a small ResNet --------------------------
class FPNNet(nn.Module):
    """torchvision's FeaturePyramidNetwork over a small ResNet: lateral 1x1, nearest upsample + add, 3x3 out."""
    def __init__(self, c=8, out=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.layer1 = BasicBlock(c, c)
        self.layer2 = BasicBlock(c, 2 * c, 2)
        self.layer3 = BasicBlock(2 * c, 4 * c, 2)
        self.inner = nn.ModuleList([nn.Conv2d(w, out, 1) for w in (c, 2 * c, 4 * c)])
        self.layer_blocks = nn.ModuleList([nn.Conv2d(out, out, 3, padding=1) for _ in range(3)])

    def forward(self, x):
        x = self.stem(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        feats = [c1, c2, c3]
        last = self.inner[-1](feats[-1])
        results = [self.layer_blocks[-1](last)]
        for idx in range(len(feats) - 2, -1, -1):
            lat = self.inner[idx](feats[idx])
            td = F.interpolate(last, size=lat.shape[-2:], mode="nearest")
            last = lat + td
            results.insert(0, self.layer_blocks[idx](last))
        return tuple(results)


# -- CBAM (Woo et al. 2018): channel then spatial attention inside a residual block -------------------------
class CBAM(nn.Module):
    def __init__(self, c, r=2):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(c, c // r, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(c // r, c, 1, bias=False))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x):
        ca = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * ca
        sa = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
        return x * sa


class CBAMBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.cbam = CBAM(c)

    def forward(self, x):
        return F.relu(self.cbam(self.conv2(self.conv1(x))) + x)


class CBAMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.blocks = nn.Sequential(CBAMBlock(8), CBAMBlock(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


# -- GhostNet (Han et al. 2020): intrinsic features and their cheap "ghosts", concatenated -----------------
class GhostModule(nn.Module):
    def __init__(self, cin, cout, ratio=2, relu=True):
        super().__init__()
        self.oup = cout
        init = cout // ratio
        self.primary_conv = nn.Sequential(nn.Conv2d(cin, init, 1, bias=False), nn.BatchNorm2d(init),
                                          nn.ReLU() if relu else nn.Identity())
        self.cheap_operation = nn.Sequential(nn.Conv2d(init, init * (ratio - 1), 3, 1, 1, groups=init, bias=False),
                                             nn.BatchNorm2d(init), nn.ReLU() if relu else nn.Identity())

    def forward(self, x):
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)
        return out[:, :self.oup, :, :]


class GhostBottleneck(nn.Module):
    def __init__(self, c, mid):
        super().__init__()
        self.ghost1 = GhostModule(c, mid)
        self.ghost2 = GhostModule(mid, c, relu=False)

    def forward(self, x):
        return self.ghost2(self.ghost1(x)) + x


class GhostNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(GhostBottleneck(8, 16), GhostBottleneck(8, 16))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


# -- Non-local block (Wang et al. 2018): embedded-Gaussian self-attention over positions, a residual ---------
class NonLocal(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.inter = c // 2
        self.g = nn.Conv2d(c, self.inter, 1)
        self.theta = nn.Conv2d(c, self.inter, 1)
        self.phi = nn.Conv2d(c, self.inter, 1)
        self.W = nn.Sequential(nn.Conv2d(self.inter, c, 1), nn.BatchNorm2d(c))

    def forward(self, x):
        b = x.size(0)
        g_x = self.g(x).view(b, self.inter, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(b, self.inter, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(b, self.inter, -1)
        f = F.softmax(torch.matmul(theta_x, phi_x), dim=-1)
        y = torch.matmul(f, g_x).permute(0, 2, 1).contiguous().view(b, self.inter, *x.size()[2:])
        return self.W(y) + x


class NonLocalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.b1 = BasicBlock(8, 8)
        self.nl = NonLocal(8)
        self.b2 = BasicBlock(8, 8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.b2(self.nl(self.b1(self.stem(x)))), 1).flatten(1))


# -- EfficientDet's BiFPN (Tan et al. 2020): fast normalised weighted fusion of levels -----------------------
class BiFPNNode(nn.Module):
    def __init__(self, c, n):
        super().__init__()
        self.w = nn.Parameter(torch.ones(n))
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.Conv2d(c, c, 1), nn.BatchNorm2d(c))

    def forward(self, xs):
        w = F.relu(self.w)
        w = w / (w.sum() + 1e-4)
        return self.conv(F.silu(sum(w[i] * x for i, x in enumerate(xs))))


class BiFPN(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.p3 = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.ReLU())
        self.p4 = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), nn.ReLU())
        self.p5 = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), nn.ReLU())
        self.td4, self.out3 = BiFPNNode(c, 2), BiFPNNode(c, 2)
        self.out4, self.out5 = BiFPNNode(c, 3), BiFPNNode(c, 2)

    def forward(self, x):
        p3 = self.p3(x)
        p4 = self.p4(p3)
        p5 = self.p5(p4)
        td4 = self.td4([p4, F.interpolate(p5, scale_factor=2.0, mode="nearest")])
        o3 = self.out3([p3, F.interpolate(td4, scale_factor=2.0, mode="nearest")])
        o4 = self.out4([p4, td4, F.max_pool2d(o3, 2)])
        o5 = self.out5([p5, F.max_pool2d(o4, 2)])
        return o3, o4, o5


# -- Shake-Shake (Gastaldi 2017), xgastaldi/shake-shake; eval mode: the branches averaged -------------------
class ShakeBranch(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                  nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.body(x)


class ShakeShortcut(nn.Module):
    """The downsampling shortcut: two 1x1 convs of the input strided at offsets 0 and 1, concatenated."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(cin, cout // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(x)
        h1 = self.conv1(F.avg_pool2d(x, 1, self.stride))
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        h2 = self.conv2(F.avg_pool2d(shifted, 1, self.stride))
        return self.bn(torch.cat([h1, h2], 1))


class ShakeBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.branch1, self.branch2 = ShakeBranch(cin, cout, stride), ShakeBranch(cin, cout, stride)
        self.shortcut = None if cin == cout and stride == 1 else ShakeShortcut(cin, cout, stride)

    def forward(self, x):
        h = 0.5 * self.branch1(x) + 0.5 * self.branch2(x)  # (eval: alpha = 0.5)
        return h + (x if self.shortcut is None else self.shortcut(x))


class ShakeShakeNet(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.blocks = nn.Sequential(ShakeBlock(c, c), ShakeBlock(c, 2 * c, 2), ShakeBlock(2 * c, 2 * c))
        self.fc = nn.Linear(2 * c, 10)

    def forward(self, x):
        x = F.relu(self.blocks(self.stem(x)))
        return self.fc(x.mean((2, 3)))


# -- ResNeSt (Zhang et al. 2020), zhanghang1989/ResNeSt splat.py: split attention, radix 2 ----------------
class SplitAttention(nn.Module):
    def __init__(self, c, radix=2, sliced=False):
        super().__init__()
        self.radix, self.sliced = radix, sliced
        self.conv = nn.Conv2d(c, c * radix, 3, 1, 1, groups=radix, bias=False)
        self.bn = nn.BatchNorm2d(c * radix)
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c * radix, 1)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        c = x.shape[1] // self.radix
        # the reference sums torch.split's parts; the sliced variant writes the same sum with slices
        parts = [x[:, i * c:(i + 1) * c] for i in range(self.radix)] if self.sliced else torch.split(x, c, 1)
        gap = sum(parts)
        att = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(gap, 1))))
        att = F.softmax(att.view(x.shape[0], self.radix, c, 1, 1), 1)
        return sum(att[:, i] * parts[i] for i in range(self.radix))


class ResNeStBlock(nn.Module):
    def __init__(self, c, sliced=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)
        self.sa = SplitAttention(c, sliced=sliced)
        self.conv3, self.bn3 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        h = self.sa(F.relu(self.bn1(self.conv1(x))))
        return F.relu(x + self.bn3(self.conv3(h)))


class ResNeSt(nn.Module):
    def __init__(self, c=8, sliced=False):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, 1, 1)
        self.blocks = nn.Sequential(ResNeStBlock(c, sliced), ResNeStBlock(c, sliced))

    def forward(self, x):
        return self.blocks(F.relu(self.stem(x)))


# -- UNet 3+ (Huang et al. 2020): each skip passes a 3x3 conv-BN-ReLU before the decoder's concat -------------
class LinkedUNet(nn.Module):
    """A two-level U-Net whose encoder -> decoder link is one ``link_kernel`` conv with BN and ReLU."""

    def __init__(self, c=8, link_kernel=3):
        super().__init__()
        def cbr(cin, cout, k=3):
            return nn.Sequential(nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.enc, self.bottom = cbr(3, c), nn.Sequential(cbr(c, 2 * c), cbr(2 * c, c))
        self.link = cbr(c, c, link_kernel)
        self.dec, self.head = cbr(2 * c, c), nn.Conv2d(c, 1, 1)

    def forward(self, x):
        e = self.enc(x)
        d = F.interpolate(self.bottom(F.max_pool2d(e, 2)), scale_factor=2.0, mode="bilinear")
        return self.head(self.dec(torch.cat([self.link(e), d], 1)))


# -- DnCNN (Zhang et al. 2017), cszn/KAIR models/network_dncnn.py: residual learning, x - F(x) -------------
class DnCNN(nn.Module):
    """A conv-ReLU, conv-BN-ReLU layers and a conv estimate the noise; the output is the input minus it.
    ``noise_minus_input``: the same residual with the other sign, ``F(x) - x``."""

    def __init__(self, c=8, layers=5, noise_minus_input=False):
        super().__init__()
        body = [nn.Conv2d(1, c, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            body += [nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.model = nn.Sequential(*body, nn.Conv2d(c, 1, 3, 1, 1))
        self.noise_minus_input = noise_minus_input

    def forward(self, x):
        n = self.model(x)
        return n - x if self.noise_minus_input else x - n


# -- ENet (Paszke et al. 2016), as davidtvs/PyTorch-ENet writes its bottlenecks ------------------------------
def _cbp(cin, cout, k, stride=1, padding=0):
    return [nn.Conv2d(cin, cout, k, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.PReLU()]


class ENetInitial(nn.Module):
    """A strided 3x3 conv beside a max pool of the image, concatenated."""

    def __init__(self, c=16):
        super().__init__()
        self.main = nn.Conv2d(3, c - 3, 3, 2, 1, bias=False)
        self.ext = nn.MaxPool2d(3, 2, 1)
        self.out = nn.Sequential(nn.BatchNorm2d(c), nn.PReLU())

    def forward(self, x):
        return self.out(torch.cat((self.main(x), self.ext(x)), 1))


class ENetDown(nn.Module):
    """The downsampling bottleneck: a max pool (its indices kept for the decoder), zero-padded to the width,
    beside a 2x2 strided conv, a 3x3 and a 1x1."""

    def __init__(self, cin, cout):
        super().__init__()
        mid = cin // 4
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.ext = nn.Sequential(*_cbp(cin, mid, 2, 2), *_cbp(mid, mid, 3, 1, 1),
                                 nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.Dropout2d(0.01))
        self.pad, self.out = cout - cin, nn.PReLU()

    def forward(self, x):
        main, indices = self.pool(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.pad))
        return self.out(main + self.ext(x)), indices


class ENetRegular(nn.Module):
    def __init__(self, c):
        super().__init__()
        mid = c // 4
        self.ext = nn.Sequential(*_cbp(c, mid, 1), *_cbp(mid, mid, 3, 1, 1),
                                 nn.Conv2d(mid, c, 1, bias=False), nn.BatchNorm2d(c), nn.Dropout2d(0.1))
        self.out = nn.PReLU()

    def forward(self, x):
        return self.out(x + self.ext(x))


class ENetUp(nn.Module):
    """The upsampling bottleneck: a 1x1 conv unpooled with the downsampling bottleneck's indices, beside a
    1x1, a 2x2 transposed conv and a 1x1."""

    def __init__(self, cin, cout):
        super().__init__()
        mid = cin // 4
        self.main = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.unpool = nn.MaxUnpool2d(2)
        self.ext = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                                 nn.ConvTranspose2d(mid, mid, 2, 2, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                                 nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.Dropout2d(0.1))
        self.out = nn.ReLU()

    def forward(self, x, indices):
        return self.out(self.unpool(self.main(x), indices) + self.ext(x))


class ENet(nn.Module):
    def __init__(self, c=16, classes=2):
        super().__init__()
        self.initial, self.down, self.regular = ENetInitial(c), ENetDown(c, 2 * c), ENetRegular(2 * c)
        self.up, self.head = ENetUp(2 * c, c), nn.ConvTranspose2d(c, classes, 3, 2, 1, output_padding=1)

    def forward(self, x):
        x = self.initial(x)
        y, indices = self.down(x)
        return self.head(self.up(self.regular(y), indices))


# -- BigGAN (Brock et al. 2019), ajbrock/BigGAN-PyTorch layers.py GBlock, unconditional batchnorm ------------
class GBlock(nn.Module):
    """A generator block: BN-ReLU, upsample, 3x3 conv, BN-ReLU, 3x3 conv, beside the input upsampled and
    projected by a 1x1 conv to the new width."""

    def __init__(self, cin, cout):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.conv_sc = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2.0)
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2.0))


class BigGANGenerator(nn.Module):
    def __init__(self, z=16, c=16):
        super().__init__()
        self.c, self.linear = c, nn.Linear(z, 4 * 4 * c)
        self.blocks = nn.Sequential(GBlock(c, c // 2), GBlock(c // 2, c // 4))
        self.out = nn.Sequential(nn.BatchNorm2d(c // 4), nn.ReLU(), nn.Conv2d(c // 4, 3, 3, 1, 1), nn.Tanh())

    def forward(self, z):
        return self.out(self.blocks(self.linear(z).view(z.shape[0], self.c, 4, 4)))


# -- Glow (Kingma & Dhariwal 2018), openai/glow model.py affine coupling -----------------------------------
class GlowCoupling(nn.Module):
    """An affine coupling layer: ``x_a, x_b = x.chunk(2)``; ``log_s, t = NN(x_a).chunk(2)``; ``y_b = x_b *
    exp(log_s) + t``; out ``cat(x_a, y_b)`` (the paper's NN: 3x3 conv, ReLU, 1x1 conv, ReLU, 3x3 conv)."""

    def __init__(self, c=8, hidden=16):
        super().__init__()
        half = c // 2
        self.nn = nn.Sequential(nn.Conv2d(half, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                nn.Conv2d(hidden, 2 * (c - half), 3, 1, 1))

    def forward(self, x):
        xa, xb = x.chunk(2, 1)
        log_s, t = self.nn(xa).chunk(2, 1)
        return torch.cat([xa, xb * torch.exp(log_s) + t], 1)


class Glow(nn.Module):
    """Two couplings with a fixed channel permutation between (the paper's shuffle)."""

    def __init__(self, c=8):
        super().__init__()
        self.c1, self.c2 = GlowCoupling(c), GlowCoupling(c)
        self.register_buffer("perm", torch.randperm(c, generator=torch.Generator().manual_seed(3)))

    def forward(self, x):
        return self.c2(self.c1(x)[:, self.perm])


# -- Bahdanau et al. (2015), RNNsearch's decoder step -------------------------------------------------------
class BahdanauStep(nn.Module):
    """One decoder step of RNNsearch: additive attention over the encoder's states (``v tanh(W1 H + W2 s)``),
    the context ``c``, the previous word's embedding ``y``, the new state ``s' = GRU([y, c], s)`` (here a tanh
    RNN step, ``tanh(W [y, c] + U s)``: one layer as the GRU is, without its gates) and the deep output
    ``out([s', c, y])``. The encoder's states and the previous state are inputs."""

    def __init__(self, h=16, emb=8, vocab=10):
        super().__init__()
        self.W1, self.W2, self.v = nn.Linear(h, h, bias=False), nn.Linear(h, h), nn.Linear(h, 1, bias=False)
        self.emb, self.W, self.U = nn.Linear(vocab, emb), nn.Linear(emb + h, h), nn.Linear(h, h, bias=False)
        self.out = nn.Linear(h + h + emb, vocab)

    def forward(self, H, s, y_prev):
        e = self.v(torch.tanh(self.W1(H) + self.W2(s).unsqueeze(1)))
        c = torch.bmm(torch.softmax(e, dim=1).transpose(1, 2), H).squeeze(1)
        y = self.emb(y_prev)
        s1 = torch.tanh(self.W(torch.cat([y, c], -1)) + self.U(s))
        return self.out(torch.cat([s1, c, y], -1))


#: name -> (module factory, example inputs)

class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module (Zhao et al. 2017): the feature pooled to 1x1, 2x2, 3x3 and 6x6
    bins, each reduced by a 1x1 conv and upsampled back, concatenated with the feature, then fused."""

    def __init__(self, c: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(c, c // 4, 1, bias=False),
                                                   nn.BatchNorm2d(c // 4), nn.ReLU()) for b in bins])
        self.fuse = nn.Sequential(nn.Conv2d(c + len(bins) * (c // 4), c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        pooled = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False) for stage in self.stages]
        return self.fuse(torch.cat([x, *pooled], 1))


class PSPNet(nn.Module):
    """A small backbone (12x12 features from 48x48: every bin divides them, as the TorchScript exporter's
    adaptive pooling needs), the pyramid pooling module, a classifier upsampled to the input's size."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU())
        self.ppm = PyramidPooling(32)
        self.cls = nn.Conv2d(32, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cls(self.ppm(self.backbone(x)))
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


MODELS = {
    "convnext": (ConvNeXt, lambda: (torch.randn(1, 3, 32, 32),)),
    "resnext": (ResNeXt, lambda: (torch.randn(1, 3, 16, 16),)),
    "se_resnet": (SEResNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "preact_resnet": (PreActResNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "pyramidnet": (PyramidNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "shufflenet_v2": (ShuffleNetV2, lambda: (torch.randn(1, 3, 32, 32),)),
    "linknet": (LinkNet, lambda: (torch.randn(1, 3, 32, 32),)),
    "deeplabv3plus": (DeepLabV3Plus, lambda: (torch.randn(1, 3, 32, 32),)),
    "hrnet": (HRNet, lambda: (torch.randn(1, 3, 32, 32),)),
    "res2net": (Res2Net, lambda: (torch.randn(1, 3, 16, 16),)),
    "res2net_sliced": (lambda: Res2Net(block=Bottle2neckSliced), lambda: (torch.randn(1, 3, 16, 16),)),
    "rdn": (RDN, lambda: (torch.randn(1, 3, 16, 16),)),
    "dpn": (DPN, lambda: (torch.randn(1, 3, 16, 16),)),
    "cspnet": (CSPDarknet, lambda: (torch.randn(1, 3, 32, 32),)),
    "gpt2": (GPT2, lambda: (torch.randint(0, 50, (1, 8)),)),
    "encoder_decoder": (EncoderDecoder, lambda: (torch.randn(1, 6, 8), torch.randn(1, 5, 8))),
    "mlp_mixer": (MLPMixer, lambda: (torch.randn(1, 3, 32, 32),)),
    "highway": (Highway, lambda: (torch.randn(2, 10),)),
    "vit": (ViT, lambda: (torch.randn(1, 3, 32, 32),)),
    "densenet": (DenseNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "mobilenet_v3": (MobileNetV3, lambda: (torch.randn(1, 3, 32, 32),)),
    "sppf": (SPPFNet, lambda: (torch.randn(1, 3, 32, 32),)),
    "wavenet": (WaveNet, lambda: (torch.randn(1, 1, 32),)),
    "fpn": (FPNNet, lambda: (torch.randn(1, 3, 32, 32),)),
    "cbam": (CBAMNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "ghostnet": (GhostNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "nonlocal": (NonLocalNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "bifpn": (BiFPN, lambda: (torch.randn(1, 3, 32, 32),)),
    "gnmt": (GNMTEncoder, lambda: (torch.randn(1, 7, 8),)),
    "shake_shake": (ShakeShakeNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "resnest": (ResNeSt, lambda: (torch.randn(1, 3, 16, 16),)),
    "resnest_sliced": (lambda: ResNeSt(sliced=True), lambda: (torch.randn(1, 3, 16, 16),)),
    "unet_link3": (LinkedUNet, lambda: (torch.randn(1, 3, 16, 16),)),
    "unet_link1": (lambda: LinkedUNet(link_kernel=1), lambda: (torch.randn(1, 3, 16, 16),)),
    "dncnn": (DnCNN, lambda: (torch.randn(1, 1, 16, 16),)),
    "dncnn_negated": (lambda: DnCNN(noise_minus_input=True), lambda: (torch.randn(1, 1, 16, 16),)),
    "enet": (ENet, lambda: (torch.randn(1, 3, 32, 32),)),
    "biggan": (BigGANGenerator, lambda: (torch.randn(1, 16),)),
    "glow": (Glow, lambda: (torch.randn(1, 8, 8, 8),)),
    "bahdanau": (BahdanauStep, lambda: (torch.randn(1, 6, 16), torch.randn(1, 16), torch.randn(1, 10))),
    "pspnet": (PSPNet, lambda: (torch.randn(1, 3, 48, 48),)),
}
