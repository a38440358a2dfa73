"""Blocks written from their papers (one layer or a tiny stack each), for exporting with torch.onnx and reading back (test_onnx_paper_exports).

None of them is in onnx_models.py: MobileNetV3's bottleneck (hardswish, squeeze-and-excite with a hard
sigmoid), ConvNeXt's block (7x7 depthwise conv, channels-last LayerNorm, layer scale), a GPT-2 block
(causal mask, tanh GELU), a Transformer decoder layer (causal self-attention, then cross-attention
over an encoder's memory), a GRU seq2seq encoder, a DCGAN generator (ConvTranspose), a style-transfer
residual net (reflection padding, InstanceNorm, GroupNorm).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcite(nn.Module):
    """MobileNetV3 (Howard et al. 2019, fig. 4): SE with ReLU and a hard sigmoid."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class MobileNetV3Block(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, SE, 1x1 project; hardswish; residual when shapes match."""

    def __init__(self, cin: int = 8, expand: int = 24, cout: int = 8, kernel: int = 5, stride: int = 1):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(cin, expand, 1, bias=False), nn.BatchNorm2d(expand), nn.Hardswish())
        self.depthwise = nn.Sequential(nn.Conv2d(expand, expand, kernel, stride, kernel // 2, groups=expand,
                                                 bias=False), nn.BatchNorm2d(expand), nn.Hardswish())
        self.se = SqueezeExcite(expand)
        self.project = nn.Sequential(nn.Conv2d(expand, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class MobileNetV3Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.blocks = nn.Sequential(MobileNetV3Block(), MobileNetV3Block(8, 32, 12, 3, 2))
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt (Liu et al. 2022): dwconv 7x7, LayerNorm over channels (channels last), 4x MLP with GELU,
    layer scale, residual."""

    def __init__(self, dim: int = 16, layer_scale: float = 0.5):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtTiny(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, 4)
        self.blocks = nn.Sequential(ConvNeXtBlock(dim), ConvNeXtBlock(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 4)

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.stem(x)).mean((2, 3))))


class CausalSelfAttention(nn.Module):
    """GPT-2's attention (Radford et al. 2019, as in minGPT): one c_attn projection split into q, k, v,
    scores masked by a lower-triangular buffer, softmax, c_proj."""

    def __init__(self, dim: int = 16, heads: int = 2, context: int = 8):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        self.register_buffer("bias", torch.tril(torch.ones(context, context)).view(1, 1, context, context))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class GPT2Block(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 2, context: int = 8):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, context)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Tiny(nn.Module):
    """Token and position embeddings, two blocks, final LayerNorm, tied LM head."""

    def __init__(self, vocab: int = 20, dim: int = 16, context: int = 8):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(context, dim)
        self.h = nn.Sequential(GPT2Block(dim, 2, context), GPT2Block(dim, 2, context))
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.h(self.wte(idx) + self.wpe(pos))
        return self.ln_f(x) @ self.wte.weight.t()


class DecoderLayer(nn.Module):
    """Vaswani et al. 2017, fig. 1 (post-norm): masked self-attention, cross-attention over the
    encoder's memory, feed-forward, each with a residual and LayerNorm."""

    def __init__(self, dim: int = 16, heads: int = 2, ff: int = 32, context: int = 16):
        super().__init__()
        self.register_buffer("causal", torch.triu(torch.full((context, context), float("-inf")), diagonal=1))
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.ReLU(), nn.Linear(ff, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, tgt, memory):
        t = tgt.shape[1]
        mask = self.causal[:t, :t]
        x = self.norm1(tgt + self.self_attn(tgt, tgt, tgt, attn_mask=mask, need_weights=False)[0])
        x = self.norm2(x + self.cross_attn(x, memory, memory, need_weights=False)[0])
        return self.norm3(x + self.ff(x))


class GRUEncoder(nn.Module):
    """The encoder of Cho et al. 2014 / Bahdanau et al. 2015: embedded tokens through a bidirectional
    GRU; the outputs, and the last states of both directions joined into the decoder's first state."""

    def __init__(self, vocab: int = 20, dim: int = 8, hidden: int = 12):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.gru = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)

    def forward(self, tokens):
        outputs, h = self.gru(self.embed(tokens))
        return outputs, torch.tanh(self.bridge(torch.cat([h[0], h[1]], dim=1)))


class DCGANGenerator(nn.Module):
    """Radford et al. 2016: a latent vector up to an image through ConvTranspose2d + BatchNorm + ReLU,
    Tanh at the end."""

    def __init__(self, latent: int = 8, width: int = 8):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(latent, width * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(width * 4), nn.ReLU(),
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(),
            nn.ConvTranspose2d(width * 2, 3, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class StyleResidualBlock(nn.Module):
    """Johnson et al. 2016 with Ulyanov et al.'s instance norm: reflection-padded 3x3 convs."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(), nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x):
        return x + self.body(x)


class StyleNet(nn.Module):
    """Down, two residual blocks, up by nearest upsampling; a GroupNorm (Wu & He 2018) in the stem."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(3, width, 5), nn.GroupNorm(2, width), nn.ReLU(),
                                  nn.Conv2d(width, 2 * width, 3, 2, 1), nn.InstanceNorm2d(2 * width, affine=True),
                                  nn.ReLU())
        self.res = nn.Sequential(StyleResidualBlock(2 * width), StyleResidualBlock(2 * width))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * width, 3, 3, padding=1))

    def forward(self, x):
        return torch.sigmoid(self.up(self.res(self.stem(x))))
