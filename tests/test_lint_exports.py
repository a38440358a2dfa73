"""``archc lint`` on models nobody here wrote: torch modules written from their papers, exported with
both ``torch.onnx.export`` exporters (TorchScript, ``dynamo=False``; and the default, ``dynamo=True``),
each a regression test for one class of labelling error found on other libraries' exports (issue 10):

1. a projection shortcut of one strided k x k conv is a residual, not a branch;
2. the exporter's index arithmetic around max_pool2d(return_indices=True) is no 0-layer long skip;
3. an n-ary sum ``x + a + b`` is one merge: the shortcut x is counted once (also where a term comes
   back from a round trip that leaves from another term, as BiFPN's ``P4_in + P4_td + down(P3_out)``);
4. an additive attention gate's ``theta + phi`` is a branch; the gated skip is one long skip per level;
5. a residual around a pooling token mixer (PoolFormer) is a residual;
6. a depthwise + pointwise projection shortcut is a residual;
7. a concat merging several earlier nodes of its level (UNet++) counts each (fork, merge) pair;
8. a head summing pyramid levels that each went through their own layers is a branch join;
9. a conditioning value broadcast into every block (a diffusion U-Net's timestep embedding, adaLN's
   shift) is no shortcut: the blocks' adds of it are branch joins, their own residuals stay residuals;
10. integer values that are no max-pool indices (top-k routing's token indices) carry no indices: the
   scatter back is no long skip, and the block around it stays a residual;
11. a GLU written with ``chunk`` (one half times a function of the other) is a branch join whichever
   exporter wrote it (Slices, or one Split whose two outputs are two values), never a gate; a plain
   GLU (``nn.GLU``: no layer after the split) is an activation, a sequential join;
12. a softmax across branches (SKNet's selective kernel) gates as a sigmoid does: the join computing
   its logits is a gate computation, and the paths run through the branches it scales only;
13. a join's label reads the join and what leads to it, never what follows: FractalNet's join of three
   columns is a merge of computed levels whether another block or the output reads it;
14. zero channels set beside the fork's value (PyramidNet's ``cat(x, zeros)``, ResNet's option A) make an
   identity shortcut, "padded", whether the exporter folded the zeros or, for a dynamic batch, builds them
   from ``x.shape`` at run time;
15. beside a resolution round trip of one layer, a one-layer projection is a branch of its own (both paths
   compute alike); beside two, a long skip's shortcut; a pooling upsampled back, with no layer, carries a
   projection (not the fork's values), static or dynamic batch alike.
16. HRNet's fusion units sum parallel resolutions that each go on past the sum (every branch's output feeds
   every unit): branch joins however many blocks each branch holds, never a long skip of the high
   resolution's blocks across the low one's; an hourglass level of the same blocks, whose sides feed
   nothing else, stays a long skip.

The default exporter's runs are marked slow (each export takes seconds).
"""
from __future__ import annotations

import contextlib
import io
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from archc.analysis.skips import analyze  # noqa: E402
from archc.frontends.onnx import load_onnx  # noqa: E402

def cbr(i, o, k=3, s=1, g=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU())


class KxKShortcut(nn.Module):
    """Class 1: a residual unit whose shortcut is one strided 3x3 conv (+ BN)."""
    def __init__(self, c=8, norm=True):
        super().__init__()
        self.stem = cbr(3, c)
        self.body = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU(),
                                  nn.Conv2d(2 * c, 2 * c, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * c))
        self.short = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), *( [nn.BatchNorm2d(2 * c)] if norm else []))
        self.head = nn.Conv2d(2 * c, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(F.relu(self.body(x) + self.short(x)))


class PoolIndices(nn.Module):
    """Class 2: SegNet-style max_pool2d(return_indices=True) and max_unpool2d."""
    def __init__(self, c=8):
        super().__init__()
        self.e1, self.e2 = cbr(3, c), cbr(c, c)
        self.mid = cbr(c, c)
        self.d2, self.d1 = cbr(c, c), cbr(c, c)
        self.head = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        x = self.e1(x)
        x, i1 = F.max_pool2d(x, 2, 2, return_indices=True)
        x = self.e2(x)
        x, i2 = F.max_pool2d(x, 2, 2, return_indices=True)
        x = self.mid(x)
        x = F.max_unpool2d(x, i2, 2, 2)
        x = self.d2(x)
        x = F.max_unpool2d(x, i1, 2, 2)
        return self.head(self.d1(x))


class ThreeTermSum(nn.Module):
    """Class 3: x + a(x) + b(x), one merge: one residual, a and b a branch."""
    def __init__(self, c=8):
        super().__init__()
        self.stem = cbr(3, c)
        self.a = nn.Sequential(cbr(c, c), nn.Conv2d(c, c, 3, 1, 1))
        self.b = nn.Sequential(cbr(c, c, 1), nn.Conv2d(c, c, 1))
        self.head = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.a(x) + self.b(x))


class AttentionGate(nn.Module):
    def __init__(self, cg, cx, ci):
        super().__init__()
        self.theta = nn.Conv2d(cx, ci, 1)
        self.phi = nn.Conv2d(cg, ci, 1)
        self.psi = nn.Sequential(nn.Conv2d(ci, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, skip, g):
        return skip * self.psi(F.relu(self.theta(skip) + self.phi(g)))


class AttentionUNet(nn.Module):
    """Class 4: an attention-gated U-Net of 4 levels: one long skip per level."""
    def __init__(self, c=4, levels=4):
        super().__init__()
        self.enc = nn.ModuleList([cbr(3 if i == 0 else c * 2 ** (i - 1), c * 2 ** i) for i in range(levels)])
        self.bott = cbr(c * 2 ** (levels - 1), c * 2 ** levels)
        self.up = nn.ModuleList([nn.ConvTranspose2d(c * 2 ** (i + 1), c * 2 ** i, 2, 2) for i in range(levels)])
        self.gate = nn.ModuleList([AttentionGate(c * 2 ** i, c * 2 ** i, c * 2 ** i // 2 or 1) for i in range(levels)])
        self.dec = nn.ModuleList([cbr(c * 2 ** (i + 1), c * 2 ** i) for i in range(levels)])
        self.head = nn.Conv2d(c, 2, 1)

    def forward(self, x):
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bott(x)
        for i in reversed(range(len(self.enc))):
            g = self.up[i](x)
            s = self.gate[i](skips[i], g)
            x = self.dec[i](torch.cat([s, g], 1))
        return self.head(x)


class PoolFormerBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, c)
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.g1 = nn.Parameter(1e-5 * torch.ones(c, 1, 1))
        self.norm2 = nn.GroupNorm(1, c)
        self.mlp = nn.Sequential(nn.Conv2d(c, 4 * c, 1), nn.GELU(), nn.Conv2d(4 * c, c, 1))
        self.g2 = nn.Parameter(1e-5 * torch.ones(c, 1, 1))

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.g1 * (self.pool(y) - y)
        return x + self.g2 * self.mlp(self.norm2(x))


class PoolFormer(nn.Module):
    """Class 5: token mixing by pooling: 2 residuals per block."""
    def __init__(self, c=8, blocks=2):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, 2, 1)
        self.blocks = nn.Sequential(*[PoolFormerBlock(c) for _ in range(blocks)])
        self.head = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class TwoLayerShortcut(nn.Module):
    """Class 6: a shortcut of depthwise + pointwise conv (each with a norm) beside a longer main path."""
    def __init__(self, c=8):
        super().__init__()
        self.stem = cbr(3, c)
        self.body = nn.Sequential(cbr(c, c, 1), cbr(c, c, 3, 2, g=c), nn.Conv2d(c, 2 * c, 1, bias=False),
                                  nn.BatchNorm2d(2 * c))
        self.short = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1, groups=c, bias=False), nn.BatchNorm2d(c),
                                   nn.Conv2d(c, 2 * c, 1, bias=False), nn.BatchNorm2d(2 * c))
        self.head = nn.Conv2d(2 * c, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(F.relu(self.body(x) + self.short(x)))


class NestedUNet(nn.Module):
    """Class 7: UNet++ with 3 levels: X[i][j] = conv(cat(X[i][0..j-1], up(X[i+1][j-1])))."""
    def __init__(self, c=4, depth=3):
        super().__init__()
        self.depth = depth
        ch = [c * 2 ** i for i in range(depth)]
        self.ch = ch
        self.conv = nn.ModuleDict()
        for i in range(depth):
            self.conv[f"{i}_0"] = cbr(3 if i == 0 else ch[i - 1], ch[i])
        for j in range(1, depth):
            for i in range(depth - j):
                self.conv[f"{i}_{j}"] = cbr(ch[i] * j + ch[i + 1], ch[i])
        self.head = nn.Conv2d(ch[0], 2, 1)

    def forward(self, x):
        X = {}
        for i in range(self.depth):
            x = self.conv[f"{i}_0"](x if i == 0 else F.max_pool2d(x, 2))
            X[(i, 0)] = x
        for j in range(1, self.depth):
            for i in range(self.depth - j):
                up = F.interpolate(X[(i + 1, j - 1)], scale_factor=2.0, mode="nearest")
                X[(i, j)] = self.conv[f"{i}_{j}"](torch.cat([X[(i, k)] for k in range(j)] + [up], 1))
        return self.head(X[(0, self.depth - 1)])


class PyramidSumHead(nn.Module):
    """Class 8: a segmentation head summing all pyramid levels, each through its own layers."""
    def __init__(self, c=8, levels=4, concat=False):
        super().__init__()
        self.concat = concat
        self.down = nn.ModuleList([cbr(3 if i == 0 else c, c, 3, 1 if i == 0 else 2) for i in range(levels)])
        self.lat = nn.ModuleList([nn.Sequential(cbr(c, c), cbr(c, c)) for _ in range(levels)])
        self.head = nn.Conv2d(c * (levels if concat else 1), 2, 1)

    def forward(self, x):
        size = None
        feats = []
        for d in self.down:
            x = d(x)
            feats.append(x)
        size = feats[0].shape[-2:]
        outs = [F.interpolate(l(f), size=size, mode="bilinear", align_corners=False) if k else l(f)
                for k, (l, f) in enumerate(zip(self.lat, feats))]
        y = torch.cat(outs, 1) if self.concat else sum(outs[1:], outs[0])
        return self.head(y)


class AllMLPHead(nn.Module):
    """Class 8 with one layer per level: SegFormer's all-MLP decoder (Xie et al., 2021). Each stage
    (a strided patch embedding and a residual block) hands its tokens to a linear layer of its own;
    the levels are upsampled to the first one's size, concatenated and fused."""

    def __init__(self, c: int = 8, levels: int = 4, embed: int = 8) -> None:
        super().__init__()
        self.embeds = nn.ModuleList([nn.Conv2d(3 if i == 0 else c, c, 3, 1 if i == 0 else 2, 1) for i in range(levels)])
        self.blocks = nn.ModuleList([nn.Sequential(cbr(c, c), nn.Conv2d(c, c, 3, 1, 1)) for _ in range(levels)])
        self.linears = nn.ModuleList([nn.Linear(c, embed) for _ in range(levels)])
        self.fuse = nn.Conv2d(levels * embed, 2, 1)

    def forward(self, x):
        feats = []
        for embed, block in zip(self.embeds, self.blocks):
            x = embed(x)
            x = x + block(x)
            feats.append(x)
        size = feats[0].shape[-2:]
        outs = []
        for f, linear in zip(feats, self.linears):
            b, _, h, w = f.shape
            y = linear(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)
            outs.append(F.interpolate(y, size=size, mode="bilinear", align_corners=False) if (h, w) != size else y)
        return self.fuse(torch.cat(outs[::-1], 1))

class ClassAttention(nn.Module):
    """CaiT (Touvron et al., 2021): self-attention blocks over the patch tokens, then class-attention
    blocks in which the class token attends to ``cat(cls, patches)`` along the token axis; the head
    reads the class token of a last ``cat(cls, patches)``. Every block is a LayerScale residual."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 8, 8)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.sa = nn.ModuleList([nn.ModuleDict({"norm": nn.LayerNorm(dim), "mlp": nn.Linear(dim, dim)})
                                 for _ in range(2)])
        self.ca = nn.ModuleList([nn.ModuleDict({"norm": nn.LayerNorm(dim),
                                                "attn": nn.MultiheadAttention(dim, heads, batch_first=True)})
                                 for _ in range(2)])
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 4)

    def forward(self, img):
        x = self.embed(img).flatten(2).transpose(1, 2)
        for block in self.sa:
            x = x + self.gamma * block["mlp"](block["norm"](x))
        cls = self.cls.expand(x.shape[0], -1, -1)
        for block in self.ca:
            u = block["norm"](torch.cat([cls, x], dim=1))
            cls = cls + self.gamma * block["attn"](u[:, :1], u, u, need_weights=False)[0]
        return self.head(self.norm(torch.cat([cls, x], dim=1))[:, 0])

class OneWidthFPN(nn.Module):
    """FPN (Lin et al., 2017) over a plain backbone whose stages all have the pyramid's width, so each
    lateral 1x1 conv keeps its level's shape (as BiFPN's inputs, projected to one width)."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stages = nn.ModuleList([cbr(3 if i == 0 else c, c, 3, 2) for i in range(3)])
        self.laterals = nn.ModuleList([nn.Conv2d(c, c, 1) for _ in range(3)])
        self.out = nn.Conv2d(c, 2, 3, 1, 1)

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        top = self.laterals[2](feats[2])
        for level in (1, 0):
            top = self.laterals[level](feats[level]) + F.interpolate(top, scale_factor=2.0, mode="nearest")
        return self.out(top)


class SideOutputFusion(nn.Module):
    """U^2-Net's (Qin et al., 2020) output: a side map from each decoder stage, upsampled, concatenated,
    fused by a 1x1 conv and squashed by a sigmoid into probabilities (a sigmoid that gates nothing)."""

    def __init__(self, c: int = 8, levels: int = 3) -> None:
        super().__init__()
        self.down = nn.ModuleList([cbr(3 if i == 0 else c, c, 3, 1 if i == 0 else 2) for i in range(levels)])
        self.sides = nn.ModuleList([nn.Conv2d(c, 1, 3, 1, 1) for _ in range(levels)])
        self.fuse = nn.Conv2d(levels, 1, 1)

    def forward(self, x):
        maps = []
        for k, (down, side) in enumerate(zip(self.down, self.sides)):
            x = down(x)
            s = side(x)
            maps.append(F.interpolate(s, scale_factor=2.0 ** k, mode="bilinear", align_corners=False) if k else s)
        return torch.sigmoid(self.fuse(torch.cat(maps, 1)))


class OrderedSum(nn.Module):
    """Class 3 again: x, a(x) (two layers) and b(x) (one layer) summed in a given order."""
    def __init__(self, order="xab", c=8):
        super().__init__()
        self.order = order
        self.stem = cbr(3, c)
        self.a = nn.Sequential(cbr(c, c), nn.Conv2d(c, c, 3, 1, 1))
        self.b = nn.Conv2d(c, c, 1)
        self.head = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        terms = {"x": x, "a": self.a(x), "b": self.b(x)}
        first, second, third = (terms[k] for k in self.order)
        return self.head(first + second + third)


class TimeConditioned(nn.Module):
    """Residual blocks that each add a projection of a timestep embedding (Ho et al.'s DDPM ResnetBlock:
    ``h = conv1(act(x)); h = h + temb_proj(act(temb))[:, :, None, None]; x + conv2(act(h))``)."""

    def __init__(self, blocks: int = 3, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.embed = nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Linear(16, 16))
        self.conv1 = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(blocks))
        self.temb_proj = nn.ModuleList(nn.Linear(16, width) for _ in range(blocks))
        self.conv2 = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(blocks))

    def forward(self, x, t):
        x, temb = self.stem(x), self.embed(t)
        for conv1, proj, conv2 in zip(self.conv1, self.temb_proj, self.conv2):
            h = conv1(F.silu(x))
            h = h + proj(F.silu(temb))[:, :, None, None]
            x = x + conv2(F.silu(h))
        return x


class AdaLNBlocks(nn.Module):
    """DiT blocks with adaLN (Peebles & Xie): two sublayers per block, each
    ``x + gate * f(norm(x) * (1 + scale) + shift)``, their shifts, scales and gates regressed at once from
    a conditioning vector (the second sublayer's shift is read after the first sublayer's layers)."""

    def __init__(self, blocks: int = 2, dim: int = 16) -> None:
        super().__init__()
        self.tokens = nn.Linear(3, dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.ada = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim)) for _ in range(blocks))
        self.mixers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(blocks))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
                                  for _ in range(blocks))

    def forward(self, x, c):
        x = self.tokens(x)
        for ada, mixer, mlp in zip(self.ada, self.mixers, self.mlps):
            shift1, scale1, gate1, shift2, scale2, gate2 = ada(c).chunk(6, dim=1)
            x = x + gate1[:, None] * mixer(self.norm(x) * (1 + scale1[:, None]) + shift1[:, None])
            x = x + gate2[:, None] * mlp(self.norm(x) * (1 + scale2[:, None]) + shift2[:, None])
        return x


class FiLMBlock(nn.Module):
    """FiLM (Perez et al. 2018): ``out(gamma * relu(conv(x)) + beta)``, gamma and beta broadcast over H, W,
    regressed from a conditioning vector by one ``Linear(c).chunk(2)`` (``separate=False``) or by two
    linears (``separate=True``): the same block, so lint must tell the same story of both."""

    def __init__(self, separate: bool = False) -> None:
        super().__init__()
        self.separate = separate
        self.conv, self.out = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        if separate:
            self.gamma, self.beta = nn.Linear(4, 8), nn.Linear(4, 8)
        else:
            self.film = nn.Linear(4, 16)

    def forward(self, x, c):
        h = F.relu(self.conv(x))
        gamma, beta = (self.gamma(c), self.beta(c)) if self.separate else self.film(c).chunk(2, dim=1)
        return self.out(gamma[:, :, None, None] * h + beta[:, :, None, None])


class PerPositionFiLM(nn.Module):
    """FiLM with a conditioning vector per position (a map as wide as h: SPADE's or a per-token FiLM's
    layout): ``out(gamma * relu(conv(x)) + beta)`` with ``gamma, beta = conv1x1(c).chunk(2)``, each as large as
    h, so nothing is broadcast; the same block as :class:`FiLMBlock` otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.out = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.film = nn.Conv2d(4, 16, 1)

    def forward(self, x, c):
        gamma, beta = self.film(c).chunk(2, dim=1)
        return self.out(gamma * F.relu(self.conv(x)) + beta)


class TopKRouting(nn.Module):
    """Expert-choice routing (Zhou et al. 2022): the expert takes the top-k tokens by its router's score,
    and its outputs are scattered back to their places and added to the token stream."""

    def __init__(self, dim: int = 16, k: int = 4) -> None:
        super().__init__()
        self.k = k
        self.inp, self.router = nn.Linear(dim, dim), nn.Linear(dim, 1)
        self.expert = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.inp(x)
        scores, index = self.router(h).squeeze(-1).topk(self.k, dim=1)
        where = index[..., None].expand(-1, -1, h.shape[-1])
        out = self.expert(torch.gather(h, 1, where)) * torch.sigmoid(scores)[..., None]
        return h + torch.zeros_like(h).scatter(1, where, out)


class ChunkGLU(nn.Module):
    """A gated linear unit over one projection cut in two (Dauphin et al.; Mamba's in_proj): a * silu(b)."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.proj, self.out = nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        a, b = self.proj(x).chunk(2, dim=-1)
        return self.out(a * F.silu(self.out(b)))


class MaskedResidualStack(nn.Module):
    """Conv-TasNet's separator in small: residual blocks in series, the last one's output computing a mask
    (a sigmoid) that scales the encoder's output."""

    def __init__(self, c: int = 8, blocks: int = 3) -> None:
        super().__init__()
        self.enc = nn.Conv1d(1, c, 4, 2)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv1d(c, c, 3, 1, 1), nn.ReLU(), nn.Conv1d(c, c, 1))
                                    for _ in range(blocks))
        self.mask = nn.Conv1d(c, c, 1)

    def forward(self, x):
        w = r = torch.relu(self.enc(x))
        for block in self.blocks:
            r = r + block(r)
        return torch.sigmoid(self.mask(r)) * w


class PlainGLU(nn.Module):
    """A projection followed by ``nn.GLU`` (Conformer's convolution module): a * sigmoid(b), no layer after
    the split."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.proj, self.glu, self.out = nn.Linear(dim, 2 * dim), nn.GLU(dim=-1), nn.Linear(dim, dim)

    def forward(self, x):
        return self.out(self.glu(self.proj(x)))


class NasNetCell(nn.Module):
    """NASNet-A's normal cell (Zoph et al. 2018): five pairwise sums of separable convs, poolings and
    identities over the two previous hidden states, concatenated with one of them."""
    def __init__(self, c=8):
        super().__init__()
        self.stem0, self.stem1 = cbr(3, 16, s=2), cbr(16, 16)
        self.prev = nn.Sequential(nn.ReLU(), nn.Conv2d(16, c, 1, bias=False), nn.BatchNorm2d(c))
        self.cur = nn.Sequential(nn.ReLU(), nn.Conv2d(16, c, 1, bias=False), nn.BatchNorm2d(c))
        self.sep = nn.ModuleList(nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
                                               nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
                                 for k in (5, 3, 5, 3, 3))

    def forward(self, x):
        h0 = self.stem0(x)
        xl, xr = self.cur(self.stem1(h0)), self.prev(h0)
        pool = lambda t: F.avg_pool2d(t, 3, 1, 1, count_include_pad=False)  # noqa: E731
        c0 = self.sep[0](xl) + self.sep[1](xr)
        c1 = self.sep[2](xr) + self.sep[3](xr)
        c2 = pool(xl) + xr
        c3 = pool(xr) + pool(xr)
        c4 = self.sep[4](xl) + xl
        return torch.cat([xl, c0, c1, c2, c3, c4], 1)


class DetrEncoderLayer(nn.Module):
    """DETR's encoder layer (Carion et al. 2020): queries and keys read ``x + pos``, values ``x`` (the
    positional encoding added at every attention), post-norm, with torch's own nn.MultiheadAttention."""
    def __init__(self, d=16, tokens=16):
        super().__init__()
        self.stem = nn.Conv2d(3, d, 8, 8)
        self.pos = nn.Parameter(torch.randn(1, tokens, d))
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)
        q = k = x + self.pos
        x = self.n1(x + self.attn(q, k, x, need_weights=False)[0])
        return self.n2(x + self.ffn(x))


class C2f(nn.Module):
    """YOLOv8's C2f block (Jocher et al. 2023): a 1x1 conv, chunk(2); the second half through a residual
    bottleneck; the halves and the bottleneck's output concatenated (``bottleneck=False``: a conv pair)."""
    def __init__(self, c=8, bottleneck=True):
        super().__init__()
        self.cv1, self.cv2 = cbr(3, 2 * c, 1), cbr(3 * c, c, 1)
        self.m1, self.m2 = cbr(c, c), cbr(c, c)
        self.residual = bottleneck

    def forward(self, x):
        y0, y1 = self.cv1(x).chunk(2, 1)
        y2 = self.m2(self.m1(y1))
        return self.cv2(torch.cat((y0, y1, y1 + y2 if self.residual else y2), 1))


class AttentionRefinedFPN(nn.Module):
    """BiSeNet's context path (Yu et al. 2018): the /16 features refined by an attention refinement
    module (x · sigmoid(conv(gap(x)))) and added to the upsampled /32 features."""
    def __init__(self, c=8):
        super().__init__()
        self.s16, self.s32 = cbr(3, c, s=2), cbr(c, c, s=2)
        self.att = nn.Conv2d(c, c, 1)

    def forward(self, x):
        f16 = self.s16(x)
        f32 = self.s32(f16)
        refined = f16 * torch.sigmoid(self.att(F.adaptive_avg_pool2d(f16, 1)))
        return refined + F.interpolate(f32, scale_factor=2.0, mode="nearest")


class OctaveResidual(nn.Module):
    """A residual block of octave convolutions (Chen et al. 2019), reduced: each conv also reads a
    low-frequency path (pooled, convolved, upsampled back); the main path stays at full resolution."""
    def __init__(self, c=8):
        super().__init__()
        self.c1, self.c2, self.low = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)
        self.stem = nn.Conv2d(3, c, 3, 1, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        low = F.interpolate(self.low(F.avg_pool2d(x, 2)), scale_factor=2.0, mode="nearest")
        return torch.relu(x + self.c2(torch.relu(self.c1(x) + low)))


class BiFPNLayer(nn.Module):
    """One BiFPN layer (Tan et al., 2020) over three levels: laterals P3..P5 of one width, the top-down
    node P4_td, then the bottom-up outputs; P4_out sums three terms, P4_in + P4_td + down(P3_out), where
    P3_out is computed from an upsampled P4_td. ``weighted``: fast normalised fusion (each term scaled by
    relu(w_i) / (sum relu(w) + eps), learned), else plain sums."""

    def __init__(self, c: int = 8, weighted: bool = True) -> None:
        super().__init__()
        self.weighted = weighted
        self.c3, self.c4, self.c5 = cbr(3, 8, 3, 2), cbr(8, 16, 3, 2), cbr(16, 24, 3, 2)
        self.l3, self.l4, self.l5 = nn.Conv2d(8, c, 1), nn.Conv2d(16, c, 1), nn.Conv2d(24, c, 1)
        self.weights = nn.ParameterList([nn.Parameter(torch.ones(n)) for n in (2, 2, 3, 2)])
        self.convs = nn.ModuleList([nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
                                                  nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)) for _ in range(4)])

    def fuse(self, node: int, *terms):
        if self.weighted:
            w = F.relu(self.weights[node])
            w = w / (w.sum() + 1e-4)
            terms = [w[i] * t for i, t in enumerate(terms)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return self.convs[node](F.silu(total))

    def forward(self, x):
        c3 = self.c3(x)
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p3, p4, p5 = self.l3(c3), self.l4(c4), self.l5(c5)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        down = lambda t: F.max_pool2d(t, 3, 2, 1)  # noqa: E731
        p4_td = self.fuse(0, p4, up(p5))
        p3_out = self.fuse(1, p3, up(p4_td))
        p4_out = self.fuse(2, p4, p4_td, down(p3_out))
        p5_out = self.fuse(3, p5, down(p4_out))
        return p3_out, p4_out, p5_out


EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo", marks=pytest.mark.slow)]
_CACHE: dict = {}
_GRAPHS: dict = {}  # the imported graphs lint_export analysed, by the same key
_PATHS: dict = {}  # the files lint_export exported, by the same key


class UNet3Plus(nn.Module):
    """UNet 3+ (Huang et al., 2020): every decoder node concatenates, each through a conv of its own,
    the encoder levels at or above its depth (max-pooled down to its size), and the deeper decoder
    nodes and the bottom encoder level (upsampled to it)."""

    def __init__(self, c=4):
        super().__init__()
        self.e1, self.e2, self.e3, self.e4 = cbr(3, c), cbr(c, c), cbr(c, c), cbr(c, c)
        self.to2 = nn.ModuleList([cbr(c, c) for _ in range(4)])   # d2 <- e1 (pooled), e2, e3 (up), e4 (up)
        self.to1 = nn.ModuleList([cbr(c, c) for _ in range(4)])   # d1 <- e1, d2 (up), e3 (up), e4 (up)
        self.d2, self.d1 = cbr(4 * c, c), cbr(4 * c, c)
        self.out = nn.Conv2d(c, 2, 1)

    def forward(self, x):
        up = lambda t, f: F.interpolate(t, scale_factor=f, mode="bilinear", align_corners=False)  # noqa: E731
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        e4 = self.e4(F.max_pool2d(e3, 2))
        d2 = self.d2(torch.cat([self.to2[0](F.max_pool2d(e1, 2)), self.to2[1](e2), self.to2[2](up(e3, 2)),
                                self.to2[3](up(e4, 4))], 1))
        d1 = self.d1(torch.cat([self.to1[0](e1), self.to1[1](up(d2, 2)), self.to1[2](up(e3, 4)),
                                self.to1[3](up(e4, 8))], 1))
        return self.out(d1)


class SelectiveKernel(nn.Module):
    """Class 12: SKNet's selective kernel (Li et al., 2019): two conv branches stacked, their sum squeezed
    to z, one logit map per branch from z, a softmax across the branches (``gate="softmax"``) or a
    sigmoid (``gate="sigmoid"``), and the branches summed, each scaled by its weight."""

    def __init__(self, c=8, gate="softmax"):
        super().__init__()
        self.gate = gate
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.k3 = nn.Conv2d(c, c, 3, padding=1)
        self.k5 = nn.Conv2d(c, c, 3, padding=2, dilation=2)
        self.squeeze = nn.Conv2d(c, c // 2, 1)
        self.logits_a, self.logits_b = nn.Conv2d(c // 2, c, 1), nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        x = self.stem(x)
        feats = torch.stack([self.k3(x), self.k5(x)], dim=1)
        z = F.relu(self.squeeze(feats.sum(1).mean((2, 3), keepdim=True)))
        logits = torch.stack([self.logits_a(z), self.logits_b(z)], dim=1)
        weights = torch.softmax(logits, dim=1) if self.gate == "softmax" else torch.sigmoid(logits)
        return (feats * weights).sum(1)


class FractalBlock(nn.Module):
    """FractalNet (Larsson et al., 2017), C = 3 columns: ``a = join(c3b(c3a(z)), c2a(z))``, then
    ``join(c3d(c3c(a)), c2b(a), c1(z))``, a join the mean of its inputs (``stack`` = torch.stack(...).mean(0),
    or ``sum`` = sum(...) / n)."""

    def __init__(self, i, o, join="sum"):
        super().__init__()
        self.mean = (lambda t: torch.stack(t).mean(0)) if join == "stack" else (lambda t: sum(t) / len(t))
        self.c3a, self.c3b, self.c2a = cbr(i, o), cbr(o, o), cbr(i, o)
        self.c3c, self.c3d, self.c2b, self.c1 = cbr(o, o), cbr(o, o), cbr(o, o), cbr(i, o)

    def forward(self, z):
        a = self.mean([self.c3b(self.c3a(z)), self.c2a(z)])
        return self.mean([self.c3d(self.c3c(a)), self.c2b(a), self.c1(z)])


class FractalNet(nn.Module):
    """Two fractal blocks in series (3 -> 8 -> 16 channels), a max pooling between them or none."""

    def __init__(self, join="sum", pool=False):
        super().__init__()
        self.b1, self.b2, self.pool = FractalBlock(3, 8, join), FractalBlock(8, 16, join), pool

    def forward(self, x):
        y = self.b1(x)
        return self.b2(F.max_pool2d(y, 2) if self.pool else y)


class ZeroPaddedShortcut(nn.Module):
    """PyramidNet's basic block (Han et al., 2017; dyhan0920/PyramidNet-PyTorch), reduced: the shortcut
    widens x from 8 to 12 channels by zeros, ``cat(x, zeros(b, 4, h, w))`` (``how="cat"``, the zeros made
    from x's shape, as the reference code does) or ``F.pad`` (``how="pad"``); ``stride=2`` average-pools
    it first, as PyramidNet's downsampling blocks do (ResNet's option A across a stride)."""

    def __init__(self, how: str = "cat", stride: int = 1) -> None:
        super().__init__()
        self.how, self.stride = how, stride
        self.stem = cbr(3, 8)
        self.body = nn.Sequential(nn.Conv2d(8, 12, 3, stride, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
                                  nn.Conv2d(12, 12, 3, 1, 1, bias=False), nn.BatchNorm2d(12))

    def forward(self, x):
        x = self.stem(x)
        shortcut = F.avg_pool2d(x, 2) if self.stride == 2 else x
        if self.how == "cat":
            b, _, h, w = shortcut.shape
            shortcut = torch.cat((shortcut, torch.zeros(b, 4, h, w, dtype=shortcut.dtype)), 1)
        else:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, 4))
        return self.body(x) + shortcut


class PooledLevel(nn.Module):
    """An FPN-like level over a resolution round trip: ``up(mid(maxpool(f))) + lateral(f)`` with ``layers``
    3x3 convs in ``mid`` (0: the pooling and the upsampling alone) and a 1x1 lateral conv."""

    def __init__(self, layers: int = 1) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(layers)])
        self.lateral = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        f = torch.relu(self.stem(x))
        top = F.interpolate(self.mid(F.max_pool2d(f, 2)), scale_factor=2.0, mode="nearest")
        return top + self.lateral(f)


class BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convs + BN around an identity), as HRNet's branches stack them."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(cbr(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(self.body(x) + x)


class HRFusion(nn.Module):
    """Class 16: HRNet (Wang et al. 2019) reduced to two resolutions: a stem, a strided transition to half
    resolution, ``blocks`` basic blocks per branch, then a fusion unit whose every output sums both branches,
    resampled (HRNet's FuseLayer: a 1x1 conv + BN upsampled; a strided 3x3 conv + BN down); the head
    concatenates both resolutions."""

    def __init__(self, blocks: int = 1, c: int = 8) -> None:
        super().__init__()
        self.stem = cbr(3, c, s=2)
        self.transition = cbr(c, 2 * c, s=2)
        self.branches = nn.ModuleList([nn.Sequential(*[BasicBlock(w) for _ in range(blocks)]) for w in (c, 2 * c)])
        self.up = nn.Sequential(nn.Conv2d(2 * c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * c))
        self.head = nn.Conv2d(3 * c, 2, 1)

    def forward(self, x):
        x = self.stem(x)
        hi, lo = self.branches[0](x), self.branches[1](self.transition(x))
        y_hi = F.relu(hi + F.interpolate(self.up(lo), scale_factor=2.0, mode="nearest"))
        y_lo = F.relu(self.down(hi) + lo)
        return self.head(torch.cat([y_hi, F.interpolate(y_lo, scale_factor=2.0, mode="bilinear")], 1))


class BasicHourglassLevel(nn.Module):
    """An hourglass level of HRFusion's pieces at ``blocks=1``: a basic block at the fork's resolution beside
    a pooling, a strided conv, a basic block, a 1x1 conv and an upsampling; nothing else reads either side."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = cbr(3, c, s=2)
        self.up1 = BasicBlock(c)
        self.low = nn.Sequential(cbr(c, 2 * c, s=2), BasicBlock(2 * c), nn.Conv2d(2 * c, c, 1, bias=False),
                                 nn.BatchNorm2d(c))
        self.head = nn.Conv2d(c, 2, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(F.relu(self.up1(x) + F.interpolate(self.low(x), scale_factor=2.0, mode="nearest")))


class DilatedU(nn.Module):
    """U^2-Net's RSU-4F (Qin et al. 2020): an input conv, then a U of 3x3 convs at one resolution, dilations
    1, 2, 4 down and 8 at the bottom; the decoder concatenates each level's encoder output back, dilations
    4, 2, 1 up; the block adds its input conv's output (the paper's "residual U-block")."""

    def __init__(self, c: int = 8, mid: int = 4) -> None:
        super().__init__()

        def conv(i: int, o: int, d: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=d, dilation=d, bias=False), nn.BatchNorm2d(o),
                                 nn.ReLU())

        self.inp = conv(3, c, 1)
        self.enc = nn.ModuleList([conv(c, mid, 1), conv(mid, mid, 2), conv(mid, mid, 4)])
        self.bottom = conv(mid, mid, 8)
        self.dec = nn.ModuleList([conv(2 * mid, mid, 4), conv(2 * mid, mid, 2), conv(2 * mid, c, 1)])

    def forward(self, x):
        x = self.inp(x)
        levels, h = [], x
        for layer in self.enc:
            h = layer(h)
            levels.append(h)
        h = self.bottom(h)
        for layer, level in zip(self.dec, reversed(levels)):
            h = layer(torch.cat([h, level], 1))
        return h + x


def _batch_of_two():
    return (torch.randn(2, 3, 16, 16),)


class UnrolledLSTMCell(nn.Module):
    """GNMT's decoder as Luong et al. (2015) and most reimplementations write it: an ``nn.LSTMCell`` run step
    by step over the embedded target sequence, its outputs stacked over time, then a projection."""

    def __init__(self, d=8, steps=4):
        super().__init__()
        self.embed, self.cell, self.proj, self.steps = nn.Linear(d, d), nn.LSTMCell(d, d), nn.Linear(d, d), steps

    def forward(self, x):
        e = self.embed(x)
        h = c = torch.zeros(x.shape[0], e.shape[-1])
        outs = []
        for t in range(self.steps):
            h, c = self.cell(e[:, t], (h, c))
            outs.append(h)
        return self.proj(torch.stack(outs, 1))


def lint_export(model_cls, dynamo: bool, tmp_path_factory, example=None, dynamic_batch: bool = False, **kwargs):
    """Export ``model_cls(**kwargs)`` (eval mode; inputs ``example()``, by default one 1x3x32x32 tensor) and
    analyse the imported ONNX. ``dynamic_batch``: the batch dim of every input is symbolic (``dynamic_axes``
    for TorchScript, ``dynamic_shapes`` for the default exporter, which wants an example batch of 2 or more)."""
    key = export_key(model_cls, dynamo, dynamic_batch, **kwargs)
    if key not in _CACHE:
        if dynamo:
            pytest.importorskip("onnxscript")
        torch.manual_seed(0)
        model = model_cls(**kwargs).eval()
        path = tmp_path_factory.mktemp("exports") / f"{model_cls.__name__}.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            args = example() if example is not None else (torch.randn(1, 3, 32, 32),)
            torch.onnx.export(model, args, str(path), dynamo=dynamo, **_batch_options(dynamo, dynamic_batch, args))
        _PATHS[key] = path
        _GRAPHS[key] = load_onnx(str(path))
        _CACHE[key] = analyze(_GRAPHS[key])
    return _CACHE[key]


def export_key(model_cls, dynamo: bool, dynamic_batch: bool = False, **kwargs) -> tuple:
    """The key of one export of :func:`lint_export` in ``_CACHE``, ``_GRAPHS`` and ``_PATHS``."""
    return model_cls.__name__, dynamo, dynamic_batch, tuple(sorted(kwargs.items()))


def _batch_options(dynamo: bool, dynamic_batch: bool, args: tuple) -> dict:
    """``torch.onnx.export``'s options making the batch dim of each of ``args`` symbolic (none: static)."""
    if not dynamic_batch:
        return {}
    if dynamo:
        return {"dynamic_shapes": tuple({0: torch.export.Dim("N", min=2, max=1024)} for _ in args)}
    names = [f"x{i}" for i in range(len(args))]
    return {"input_names": names, "dynamic_axes": {name: {0: "N"} for name in names}}


def kinds(analysis) -> dict[str, int]:
    return {k: v for k, v in analysis.summary().items() if v}


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("norm", [True, False])
def test_class1_one_kxk_conv_shortcut_is_a_projection_residual(dynamo, norm, tmp_path_factory):
    a = lint_export(KxKShortcut, dynamo, tmp_path_factory, norm=norm)
    (skip,) = a.skips
    assert (skip.kind, skip.carries) == ("residual", "projection")
    assert len(skip.shortcut) == (2 if norm else 1) or skip.shortcut  # the exporter may fold the norm


@pytest.mark.parametrize("dynamo", [
    pytest.param(False, id="torchscript", marks=pytest.mark.skip(
        reason="torch 2.13's TorchScript tracer fails in F.max_unpool2d's output-size check "
               "('cond must be a bool, but got a Tensor'): nothing to export")),
    pytest.param(True, id="dynamo", marks=pytest.mark.slow)])
def test_class2_pooling_index_arithmetic_is_no_long_skip(dynamo, tmp_path_factory):
    a = lint_export(PoolIndices, dynamo, tmp_path_factory)
    long_skips = [s for s in a.skips if s.kind == "long_skip"]
    assert len(long_skips) == 2 and all(s.carries == "indices" for s in long_skips)
    assert all(s.span.depth > 0 for s in a.skips)  # a long skip that spans no layer is a contradiction
    assert sorted(s.span.depth for s in long_skips) == [1, 3]


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class3_a_three_term_sum_counts_its_shortcut_once(dynamo, tmp_path_factory):
    a = lint_export(ThreeTermSum, dynamo, tmp_path_factory)
    assert kinds(a).get("residual") == 1 and len(a.skips) == 1
    assert a.skips[0].carries == "identity" and "1 more branch" in a.skips[0].reason
    # the shortcut bypasses both computing terms: the span holds the four convs of a and b (RepVGG's
    # span listed one branch, the other in no skip's span)
    assert a.skips[0].span.layers == 4 and a.skips[0].span.depth == 2, a.skips[0].span


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("order", ["xab", "abx", "bxa"])
def test_class3_however_the_sum_is_associated(dynamo, order, tmp_path_factory):
    a = lint_export(OrderedSum, dynamo, tmp_path_factory, order=order)
    assert [(s.kind, s.carries, s.span.depth) for s in a.skips] == [("residual", "identity", 2)]


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_unet3plus_full_scale_links_are_long_skips_not_a_merge_of_computed_levels(dynamo, tmp_path_factory):
    # each decoder concat reads four inputs, each through a conv of its own, as a segmentation head's final
    # merge does; but one comes up from a decoder node and one is an encoder level never upsampled: a U-Net
    # decoder, whose encoder links are long skips (the README's UNet 3+ sentence), not class 8's branch join
    a = lint_export(UNet3Plus, dynamo, tmp_path_factory)
    assert kinds(a).get("long_skip") == 6 and kinds(a).get("branch", 0) == 0, kinds(a)
    assert {s.merge_op for s in a.skips} == {"concat"}


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class4_attention_gates_are_branches_and_each_level_one_long_skip(dynamo, tmp_path_factory):
    a = lint_export(AttentionUNet, dynamo, tmp_path_factory)
    assert kinds(a) == {"long_skip": 4, "branch": 4, "sequential": 4}
    assert all(s.merge_op == "concat" and s.carries == "identity" for s in a.skips)
    gate_adds = [c for c in a.joins if c.merge_op == "add"]
    assert len(gate_adds) == 4 and all(c.kind == "branch" for c in gate_adds)


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_residual_whose_output_computes_a_mask_stays_a_residual(dynamo, tmp_path_factory):
    # found on Conv-TasNet: the last of three alike blocks, the one a mask is computed from, was a
    # branch ("computes a gate (both sides compute)") though its shortcut is the identity
    a = lint_export(MaskedResidualStack, dynamo, tmp_path_factory, example=lambda: (torch.randn(2, 1, 64),))
    assert kinds(a).get("residual") == 3 and kinds(a).get("branch") is None
    assert all(s.carries == "identity" for s in a.skips)


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class5_a_pooling_token_mixer_is_a_residual(dynamo, tmp_path_factory):
    a = lint_export(PoolFormer, dynamo, tmp_path_factory, blocks=2)
    assert kinds(a).get("residual") == 4 and kinds(a).get("long_skip") is None
    assert [s.rule for s in a.skips] == ["token_mixer", "residual"] * 2


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class6_depthwise_pointwise_shortcut_is_a_projection_residual(dynamo, tmp_path_factory):
    a = lint_export(TwoLayerShortcut, dynamo, tmp_path_factory)
    (skip,) = a.skips
    assert (skip.kind, skip.carries) == ("residual", "projection")


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class7_a_concat_of_several_earlier_nodes_counts_each_pair(dynamo, tmp_path_factory):
    a = lint_export(NestedUNet, dynamo, tmp_path_factory)
    pairs = {(s.merge, s.fork) for s in a.skips}
    # X01 = H[X00, up(X10)], X11 = H[X10, up(X20)], X02 = H[X00, X01, up(X11)]: X00 -> X01, X10 -> X11,
    # X00 -> X02 span a resolution round trip. X01, which only X02 reads, forks nothing (round 12: it was
    # a dense pair, X01 -> X02, against the README's "a value only the concat reads forks nothing")
    assert len(a.skips) == len(pairs) == 3
    assert kinds(a) == {"long_skip": 3}
    assert a.paths.total == 5


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class7_a_node_later_nodes_of_its_level_reuse_is_a_dense_fork(dynamo, tmp_path_factory):
    # four levels: X01 is read by X02 and X03 (two concats: DenseNet's reuse, a pair at each), X11 by X12
    # and, upsampled, by X02 (a pair at X12); X02, which only X03 reads, forks nothing there: the newest
    # node of a level is no skip at the concat right after it, as a DenseNet layer's output is not
    a = lint_export(NestedUNet, dynamo, tmp_path_factory, depth=4)
    assert kinds(a) == {"long_skip": 6, "dense": 3}, [(s.merge, s.fork, s.kind) for s in a.skips]
    # each pair's layers are its fork's own longest path into the concat: X01 and X11 reach X02's and X12's
    # concats by their own edge alone (0), X01 reaches X03's through X02's conv (1). Round 15: 1, 1 and 3, the
    # differences of the depths from the input, counting up(X11)'s and up(X12)'s paths, which X01 never passes
    dense = sorted((s.rule, s.span.depth) for s in a.skips if s.kind == "dense")
    assert dense == [("concat_feature_reuse", 0), ("dense_reuse", 0), ("dense_reuse", 1)]


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("concat", [False, True])
def test_class8_a_sum_of_computed_pyramid_levels_is_a_branch_join(dynamo, concat, tmp_path_factory):
    a = lint_export(PyramidSumHead, dynamo, tmp_path_factory, concat=concat)
    assert a.skips == [] and kinds(a).get("branch", 0) >= 1


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class8_levels_each_through_one_linear_layer_are_a_branch_join(dynamo, tmp_path_factory):
    # a single layer per level is a projection; the concat still merges four computed levels, no U-Net skip
    a = lint_export(AllMLPHead, dynamo, tmp_path_factory)
    assert kinds(a).get("residual") == 4 and len(a.skips) == 4
    heads = [c for c in a.joins if c.merge_op == "concat"]
    assert len(heads) == 3 and all(c.kind == "branch" and c.rule == "computed_levels" for c in heads)
    assert all(c.reason.startswith("concat of 4 inputs from several forks") for c in heads)


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_concat_along_the_token_axis_is_no_feature_reuse(dynamo, tmp_path_factory):
    # the patch tokens read by two concats (class attention's keys and values, the head) are no DenseNet reuse
    a = lint_export(ClassAttention, dynamo, tmp_path_factory)
    assert kinds(a).get("dense") is None and kinds(a).get("residual") >= 2
    token_concats = [c for c in a.connections if c.merge_op == "concat"]
    assert len(token_concats) >= 2 and all(c.kind == "branch" for c in token_concats)
    assert "concat_of_positions" in {c.rule for c in token_concats}


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_an_fpn_lateral_that_keeps_the_shape_is_a_long_skip(dynamo, tmp_path_factory):
    a = lint_export(OneWidthFPN, dynamo, tmp_path_factory)
    assert kinds(a) == {"long_skip": 2}
    assert all(s.carries == "projection" and s.rule == "add_long_skip" for s in a.skips)


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_sigmoid_ending_the_model_is_no_gate(dynamo, tmp_path_factory):
    a = lint_export(SideOutputFusion, dynamo, tmp_path_factory)
    fusion = [c for c in a.connections if c.merge_op == "concat"]
    assert fusion and all(c.kind == "branch" and c.rule == "computed_levels" for c in fusion)


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class9_a_timestep_embedding_added_in_every_block_is_no_skip(dynamo, tmp_path_factory):
    a = lint_export(TimeConditioned, dynamo, tmp_path_factory,
                    example=lambda: (torch.randn(1, 3, 16, 16), torch.randn(1, 4)))
    assert kinds(a).get("residual") == 3 and kinds(a).get("long_skip") is None
    assert all(s.carries == "identity" for s in a.skips)
    injections = [c for c in a.joins if c.merge_op == "add"]
    assert len(injections) == 3 and all(c.kind == "branch" for c in injections)
    assert sorted(c.rule for c in injections) == ["broadcast_injection"] * 2 + ["no_common_fork"]


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class9_an_adaln_shift_is_no_skip(dynamo, tmp_path_factory):
    a = lint_export(AdaLNBlocks, dynamo, tmp_path_factory,
                    example=lambda: (torch.randn(1, 5, 3), torch.randn(1, 16)))
    assert kinds(a).get("residual") == 4 and len(a.skips) == 4
    assert all(s.carries == "identity" and s.rule == "residual" for s in a.skips)
    # every shift is broadcast into its sublayer: the first sublayer's too, though no layer lies between the
    # split and its add (the normalised tokens it meets never pass the split: no arithmetic on one value)
    shifts = [c for c in a.joins if c.merge_op == "add"]
    assert len(shifts) == 4 and all((c.kind, c.rule) == ("branch", "broadcast_injection") for c in shifts)


FILM_EXAMPLE = lambda: (torch.randn(1, 8, 6, 6), torch.randn(1, 4))  # noqa: E731


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_film_shift_is_a_broadcast_injection_from_one_chunk_or_two_linears(dynamo, tmp_path_factory):
    # round 13: from one chunk the shift add was no_layer_between (sequential, 2 paths); from two linears
    # broadcast_injection (branch, 3 paths): one operation, two stories
    forms = [lint_export(FiLMBlock, dynamo, tmp_path_factory, example=FILM_EXAMPLE, separate=separate)
             for separate in (False, True)]
    for a in forms:
        (shift,) = [c for c in a.joins if c.merge_op == "add"]
        assert (shift.kind, shift.rule) == ("branch", "broadcast_injection") and a.skips == []
        (scale,) = [c for c in a.joins if c.merge_op == "mul"]
        assert scale.kind == "branch"
    # x's path through the conv, c's through gamma, c's through beta; each 2 layers long either way
    figures = [(a.paths.total, a.paths.shortest, a.paths.longest) for a in forms]
    assert figures[0] == figures[1] == (3, 2, 2)
    assert "computed from other values" in [c for c in forms[0].joins if c.merge_op == "add"][0].reason


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_film_shift_as_wide_as_the_path_is_injected_as_a_broadcast_one_is(dynamo, tmp_path_factory):
    # round 15: with beta as wide as h (nothing broadcast) the shift add was no_layer_between (sequential,
    # beta's path dropped: 2 paths). beta is the part of the split that gamma * h never reads, and h never
    # passes the split: a branch join of its own, 3 paths as with a broadcast shift
    a = lint_export(PerPositionFiLM, dynamo, tmp_path_factory,
                    example=lambda: (torch.randn(1, 8, 6, 6), torch.randn(1, 4, 6, 6)))
    (shift,) = [c for c in a.joins if c.merge_op == "add"]
    assert (shift.kind, shift.rule) == ("branch", "shift_injection") and a.skips == []
    assert "computed from other values" in shift.reason
    (scale,) = [c for c in a.joins if c.merge_op == "mul"]
    assert scale.kind == "branch"
    broadcast = lint_export(FiLMBlock, dynamo, tmp_path_factory, example=FILM_EXAMPLE, separate=False)
    assert (a.paths.total, a.paths.shortest, a.paths.longest) == (broadcast.paths.total, broadcast.paths.shortest,
                                                                  broadcast.paths.longest) == (3, 2, 2)


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class10_top_k_routing_indices_are_no_pooling_indices(dynamo, tmp_path_factory):
    a = lint_export(TopKRouting, dynamo, tmp_path_factory, example=lambda: (torch.randn(1, 8, 16),))
    assert kinds(a).get("long_skip") is None and kinds(a).get("residual") == 1
    assert all(c.carries != "indices" for c in a.connections)


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class11_a_glu_of_one_split_projection_is_a_branch_join(dynamo, tmp_path_factory):
    a = lint_export(ChunkGLU, dynamo, tmp_path_factory, example=lambda: (torch.randn(1, 8, 16),))
    (glu,) = [c for c in a.joins if c.merge_op == "mul"]
    assert glu.kind == "branch" and a.skips == []


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class11_a_plain_glu_is_the_native_glu_an_activation(dynamo, tmp_path_factory):
    # (it was a split, a sigmoid and a mul, the mul a sequential join; now fused, as `op: glu` in a spec)
    a = lint_export(PlainGLU, dynamo, tmp_path_factory, example=lambda: (torch.randn(1, 8, 16),))
    assert not [c for c in a.joins if c.merge_op == "mul"] and a.skips == [] and a.paths.total == 1
    assert "glu" in {n.op for n in _GRAPHS[export_key(PlainGLU, dynamo)].nodes()}


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_cells_concat_of_its_sums_reuses_none_of_them(dynamo, tmp_path_factory):
    # found on NASNet-A (round 5): the concat of the cell's sums was labelled dense at the sum it alone reads
    a = lint_export(NasNetCell, dynamo, tmp_path_factory)
    assert "dense" not in kinds(a)
    # every skip's fork feeds two paths, the shortcut and the main path: a value read once forks nothing
    graph = _GRAPHS[export_key(NasNetCell, dynamo)]
    assert a.skips and all(len(graph.users(s.fork)) >= 2 for s in a.skips), a.skips


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_attention_reading_x_plus_pos_and_x_is_a_branch_join(dynamo, tmp_path_factory):
    # found on DETR (round 5): the attention joining x + pos (queries, keys) and x (values) was
    # "element-wise arithmetic" (sequential); a learned layer computes from each path
    a = lint_export(DetrEncoderLayer, dynamo, tmp_path_factory)
    assert kinds(a) == {"residual": 2, "branch": 1}
    (join,) = a.joins
    assert join.merge_op == "multi_head_attention" and join.rule == "learned_merge"


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("bottleneck, expected", [(True, {"residual": 1, "long_skip": 1}), (False, {"dense": 1})])
def test_a_chunked_value_gives_the_same_pairs_under_both_exporters(dynamo, bottleneck, expected, tmp_path_factory):
    # found on YOLOv8 (round 6): the TorchScript exporter writes chunk(2) as two Slices, the default one as
    # one Split; the Slices made two forks (two pairs where the Split makes one), and the residual on the
    # second half did not count as enclosed
    a = lint_export(C2f, dynamo, tmp_path_factory, bottleneck=bottleneck)
    assert kinds(a) == expected


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_an_attention_on_the_shortcut_is_no_highway_gate(dynamo, tmp_path_factory):
    # found on BiSeNet (round 6): x · att(x) + up(F(x)) was "gated" (Highway's H·T + x·(1 − T)), though
    # only the shortcut is scaled and nothing gates the transform; it is the FPN's long skip
    a = lint_export(AttentionRefinedFPN, dynamo, tmp_path_factory)
    assert kinds(a).get("gated", 0) == 0 and [s.kind for s in a.skips] == ["long_skip"]


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_side_path_that_resamples_makes_no_round_trip(dynamo, tmp_path_factory):
    # found on Octave convolutions (round 6): the identity shortcut around two layers was a long skip
    # "across layers that down- and upsample", though only a side path resamples
    a = lint_export(OctaveResidual, dynamo, tmp_path_factory)
    assert [s.kind for s in a.skips] == ["residual"]


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "plain"])
def test_class3_a_bifpn_three_term_sum_is_one_merge(dynamo, weighted, tmp_path_factory):
    # found on BiFPN (round 11): P4_out = P4_in + P4_td + down(P3_out) came out as two merges, a residual
    # from P4_in at the partial sum and a branch, because the third term's round trip (P3_out is computed
    # from an upsampled P4_td) was taken for a level merge around a complete residual unit (hourglass)
    a = lint_export(BiFPNLayer, dynamo, tmp_path_factory, weighted=weighted)
    assert kinds(a) == {"long_skip": 5} and not a.joins, [(c.merge, c.fork, c.kind) for c in a.connections]
    by_merge: dict[str, list] = {}
    for s in a.skips:
        by_merge.setdefault(s.merge, []).append(s)
    (p4_out,) = [skips for skips in by_merge.values() if len(skips) == 2]
    # one merge, each distinct shortcut once: P4_in across the whole P4_td -> P3_out -> down trip (4 layers
    # on its longest path), P4_td across conv_p3_out's 2 layers between the upsampling and the pooling
    assert sorted((s.carries, s.span.layers) for s in p4_out) == [("identity", 2), ("identity", 4)]
    assert len({s.fork for s in p4_out}) == 2
    assert a.paths.total == 16


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("gate", ["softmax", "sigmoid"])
def test_class12_a_softmax_across_branches_gates_as_a_sigmoid_does(dynamo, gate, tmp_path_factory):
    # found on SKNet (round 12): with the softmax the logits' stack was a branch by both_compute and the
    # paths ran through the gate side too (4 paths of 3 layers); a softmax's weights scale the branches
    # as a sigmoid's do, so both give the sigmoid's figures: the gate side's join computes a gate, the
    # product is a gate on the main path, and a path takes one of the two kernels (2 paths of 2 layers)
    a = lint_export(SelectiveKernel, dynamo, tmp_path_factory, gate=gate)
    assert a.skips == []
    joins = sorted((c.kind, c.rule) for c in a.joins)
    assert joins == [("branch", "both_compute"), ("branch", "gate_computation"),
                     ("sequential", "multiplicative_gate")], joins
    assert (a.paths.total, a.paths.shortest, a.paths.longest) == (2, 2, 2)


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("join", ["sum", "stack"])
@pytest.mark.parametrize("pool", [False, True], ids=["no_pool", "pool"])
def test_class13_a_joins_label_does_not_depend_on_what_follows(dynamo, join, pool, tmp_path_factory):
    # found on FractalNet (round 12): the first block's join of three columns came out a long skip from the
    # input and a branch (add_branch; concat_branch for the stacked form) while the second block's, the
    # model's last, was a merge of computed levels: that rule asked that the merge reach an output through
    # no other merge. Both blocks now give the same pairs, rules included
    a = lint_export(FractalNet, dynamo, tmp_path_factory, join=join, pool=pool)
    assert kinds(a).get("long_skip") is None, [(c.merge, c.fork, c.kind, c.rule) for c in a.connections]
    three_way = [c for c in a.connections if c.rule == "computed_levels"]
    assert len(three_way) == 4 and all(c.kind == "branch" for c in three_way), \
        [(c.merge, c.fork, c.kind, c.rule) for c in a.connections]
    by_block = [sorted((str(c.kind), c.rule, str(c.carries), c.span.depth) for c in a.connections
                       if c.merge.startswith(f"{b}.")) for b in ("b1", "b2")]
    if not dynamo:  # (TorchScript's names say the block; the default exporter's are numbered)
        assert by_block[0] == by_block[1] and by_block[0]
    assert a.paths.total == 25


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("dynamic_batch", [False, True], ids=["static", "dynamic_batch"])
@pytest.mark.parametrize("how", ["cat", "pad"])
def test_class14_zero_padded_channels_are_an_identity_shortcut_in_every_export(dynamo, dynamic_batch, how,
                                                                               tmp_path_factory):
    # found on PyramidNet (round 16): cat(x, zeros) was an identity shortcut in a static export, where the
    # exporter folds the zeros into a constant, and a projection "via Concat_1" with a dynamic batch, where
    # it builds them from x's shape at run time (Shape, Gather, Concat, ConstantOfShape or Expand): values
    # made from a shape alone hold no data, so the concat reads x beside a constant either way
    a = lint_export(ZeroPaddedShortcut, dynamo, tmp_path_factory, _batch_of_two, dynamic_batch, how=how)
    (skip,) = a.connections
    assert (skip.kind, skip.carries, skip.rule, skip.span.depth) == ("residual", "identity", "residual", 2)
    assert skip.reason == f"identity shortcut (padded) from {skip.fork} around 2 layers"
    assert len(skip.shortcut) == 1  # the concat or the pad, nothing of the zeros' shape arithmetic


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("dynamic_batch", [False, True], ids=["static", "dynamic_batch"])
@pytest.mark.parametrize("how", ["cat", "pad"])
def test_class14_zero_padding_after_a_strided_pooling_is_a_projection_in_every_export(dynamo, dynamic_batch, how,
                                                                                      tmp_path_factory):
    # PyramidNet's downsampling block: the shortcut resamples (README: "a strided pooling ... ResNet's option A
    # across a stride" carries a projection), its zeros from the pooled value's shape at run time or folded
    a = lint_export(ZeroPaddedShortcut, dynamo, tmp_path_factory, _batch_of_two, dynamic_batch, how=how, stride=2)
    (skip,) = a.connections
    assert (skip.kind, skip.carries, skip.rule, len(skip.shortcut)) == ("residual", "projection", "residual", 2)
    assert skip.reason == f"projection shortcut from {skip.fork} via {', '.join(skip.shortcut)} around 2 layers"


def test_class14_the_cli_says_padded_for_a_dynamic_batch_export(tmp_path_factory, capsys):
    # through the real entry point: the JSON of the export whose zeros come from x's shape at run time
    import json

    from archc.cli import main

    lint_export(ZeroPaddedShortcut, False, tmp_path_factory, _batch_of_two, True, how="cat")
    path = _PATHS[export_key(ZeroPaddedShortcut, False, True, how="cat")]
    assert main(["lint", "--format", "json", "--explain", str(path)]) == 0
    (skip,) = json.loads(capsys.readouterr().out)["skips"]
    assert (skip["kind"], skip["carries"], skip["rule"]) == ("residual", "identity", "residual")
    assert skip["reason"] == f"identity shortcut (padded) from {skip['fork']} around 2 layers"


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("dynamic_batch", [False, True], ids=["static", "dynamic_batch"])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_class15_a_one_layer_projection_beside_a_round_trip(dynamo, dynamic_batch, layers, tmp_path_factory):
    # found on an FPN-like level (round 16), ``up(mid(pool(f))) + lateral(f)``: beside two layers that down- and
    # upsample, the lateral is a long skip's shortcut; beside one, both paths compute alike (the structure of an
    # octave convolution, whose two frequencies are no skip: test_a_side_path_that_resamples_makes_no_round_trip):
    # a branch that says it saw the round trip. With no layer in mid, the pooled-and-upsampled path is the
    # lighter one: it carries a projection (its values are not the fork's), a same-shape one beside a conv
    a = lint_export(PooledLevel, dynamo, tmp_path_factory, _batch_of_two, dynamic_batch, layers=layers)
    (pair,) = a.connections
    fork = pair.fork
    assert pair.carries == "projection"
    if layers == 2:
        assert (pair.kind, pair.rule) == ("long_skip", "add_long_skip")
        assert pair.reason == f"add carries {fork} (projection) across 2 layers that down- and upsample"
    elif layers == 1:
        assert (pair.kind, pair.rule) == ("branch", "both_compute")
        assert pair.reason == f"both paths from {fork} compute (1 layer and 1 layer that down- and upsamples)"
    else:
        assert (pair.kind, pair.rule, len(pair.shortcut)) == ("branch", "add_branch", 2)  # the pooling, the upsampling
        assert pair.reason == f"both paths from {fork} compute (0 layers and 1 layer; a same-shape projection)"


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_an_unrolled_lstm_cell_makes_no_skip_through_time(dynamo, tmp_path_factory):
    # found on GNMT's decoder (round 17): the gate sum W_ih x_t + W_hh h_(t-1) was a residual at the first
    # step and a long skip at the later ones (x_t's linear taken for a projection shortcut of the embedding,
    # though the earlier steps read its other steps), and the stack of the steps' outputs a long skip and
    # dense reuse (the Unsqueeze before it hid that it stacks along time, not features)
    a = lint_export(UnrolledLSTMCell, dynamo, tmp_path_factory, lambda: (torch.randn(2, 4, 8),))
    # the cell state's f * c + i * g at each later step: LSTM's gated carry
    assert [s.kind for s in a.skips] == ["gated"] * 3
    rules = sorted(c.rule for c in a.joins if c.kind == "branch")
    assert rules == ["concat_of_positions"] * 3 + ["projected_part"] * 3, rules


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("blocks", [1, 2])
def test_class16_hrnet_fusion_sums_are_branch_joins_however_many_blocks(dynamo, blocks, tmp_path_factory):
    # found on HRNet (round 18): with one basic block per branch the high resolution's fusion sum was a long
    # skip (add_computed_long_skip: the high branch's 2 layers "light" beside the low one's 4 that down- and
    # upsample), with two a branch (4 layers beside 6). Both branches go on past the sum (hi into the low
    # resolution's sum through the strided conv, lo into it directly): parallel streams, whatever the depths
    a = lint_export(HRFusion, dynamo, tmp_path_factory, blocks=blocks)
    assert kinds(a) == {"residual": 2 * blocks, "branch": 3}
    sums = sorted((c.kind, c.rule) for c in a.joins if c.merge_op == "add")
    assert sums == [("branch", "both_compute"), ("branch", "parallel_streams")], sums
    (fusion,) = [c for c in a.joins if c.rule == "parallel_streams"]
    assert fusion.reason.startswith(f"add joins parallel streams from {fusion.fork} that both go on past it "
                                    f"({2 * blocks} layers and {2 * blocks + 2} layers that down- and upsample)")


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_class16_an_hourglass_level_of_the_same_blocks_stays_a_long_skip(dynamo, tmp_path_factory):
    # the control: HRFusion's high-resolution sum at one block, its sides read by nothing else: the low side
    # is a detour that comes back, the high side waits for it (an hourglass level): a long skip still
    a = lint_export(BasicHourglassLevel, dynamo, tmp_path_factory)
    assert kinds(a) == {"residual": 2, "long_skip": 1}
    (level,) = [s for s in a.skips if s.kind == "long_skip"]
    assert (level.carries, level.rule) == ("computed", "add_computed_long_skip")


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_u_of_concats_at_one_resolution_nests_its_links_as_a_u_net_does(dynamo, tmp_path_factory):
    # found on U^2-Net (round 19): RSU-4F's dilated U had its decoder concats called dense feature reuse and
    # the block's add a residual around 7 layers, where the pooled RSU-4 of the same shape gave long skips:
    # only a resolution round trip made a concat long, and a feature reused by one concat nested nothing.
    # The bottom concat (one layer across) is feature reuse; each level above it encloses it
    a = lint_export(DilatedU, dynamo, tmp_path_factory)
    assert kinds(a) == {"long_skip": 3, "dense": 1}
    concats = sorted((s.kind, s.rule) for s in a.skips if s.merge_op == "concat")
    assert concats == [("dense", "concat_feature_reuse")] + [("long_skip", "concat_long_skip")] * 2, concats
    (block,) = [s for s in a.skips if s.merge_op == "add"]
    assert (block.kind, block.rule) == ("long_skip", "add_long_skip")
