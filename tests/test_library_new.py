"""Library specs written with the newer language features, against PyTorch references written here
in torchvision's / the original code's module structure: SqueezeNet 1.1 (flat nn.Sequential numbering)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from archc import load_spec
from archc.cli import main
from archc.ops.weights import total_params
from weights_helpers import assert_same_layout, assert_same_outputs, state_dict_specs

from conftest import SPECS


def spec(name: str) -> str:
    return str(SPECS / f"{name}.yaml")


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


# -- Llama (Meta's llama/model.py structure, written from the papers) ------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def precompute_freqs_cis(dim: int, end: int, theta: float = 10000.0) -> torch.Tensor:
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    return torch.polar(torch.ones(end, dim // 2), torch.outer(torch.arange(end).float(), freqs))


def apply_rotary_emb(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Meta's rotation: consecutive feature pairs as complex numbers times e^{i m theta}."""
    x_ = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(x_ * freqs_cis[None, :, None, :]).flatten(3).type_as(x)


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x, freqs_cis, mask):
        n, s, _ = x.shape
        q = apply_rotary_emb(self.wq(x).view(n, s, self.n_heads, self.head_dim), freqs_cis).transpose(1, 2)
        k = apply_rotary_emb(self.wk(x).view(n, s, self.n_heads, self.head_dim), freqs_cis).transpose(1, 2)
        v = self.wv(x).view(n, s, self.n_heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        out = torch.matmul(torch.softmax(scores.float(), dim=-1).type_as(q), v)
        return self.wo(out.transpose(1, 2).contiguous().view(n, s, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, multiple_of: int) -> None:
        super().__init__()
        hidden = int(2 * hidden / 3)
        hidden = multiple_of * ((hidden + multiple_of - 1) // multiple_of)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(torch.nn.functional.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, dim, n_heads, multiple_of, eps):
        super().__init__()
        self.attention = Attention(dim, n_heads)
        self.feed_forward = FeedForward(dim, 4 * dim, multiple_of)
        self.attention_norm = RMSNorm(dim, eps)
        self.ffn_norm = RMSNorm(dim, eps)

    def forward(self, x, freqs_cis, mask):
        h = x + self.attention(self.attention_norm(x), freqs_cis, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Llama(nn.Module):
    def __init__(self, vocab=32000, dim=4096, n_layers=32, n_heads=32, multiple_of=256, eps=1e-5, max_len=64):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([Block(dim, n_heads, multiple_of, eps) for _ in range(n_layers)])
        self.norm = RMSNorm(dim, eps)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.head_dim, self.max_len = dim // n_heads, max_len

    def forward(self, tokens):
        s = tokens.shape[1]
        h = self.tok_embeddings(tokens)
        freqs_cis = precompute_freqs_cis(self.head_dim, self.max_len)[:s]
        mask = torch.triu(torch.full((s, s), float("-inf")), diagonal=1)
        for layer in self.layers:
            h = layer(h, freqs_cis, mask)
        return self.output(self.norm(h)).float()


def test_llama2_7b_profile_counts_exactly():
    graph = load_spec(spec("llama"), profile="llama2_7b")
    assert total_params(graph) == 6_738_415_616
    with torch.device("meta"):
        reference = Llama()
    assert sorted((k, tuple(s.shape)) for k, s in state_dict_specs(graph)) == \
        sorted((k, tuple(v.shape)) for k, v in reference.state_dict().items())
    assert total_params(graph) == sum(p.numel() for p in reference.parameters())


def test_llama_summary_reports_the_7b_count(run_archc):
    proc = run_archc("summary", spec("llama"), "--profile", "llama2_7b", check=True)
    total = next(line for line in proc.stdout.splitlines() if line.startswith("total:"))
    assert " 6,738,415,616 parameters (6,738,415,616 trainable)" in total


@pytest.mark.parametrize("length", [1, 7, 16])
def test_llama_small_matches_reference(length):
    graph = load_spec(spec("llama"), profile="small")
    reference = Llama(vocab=100, dim=64, n_layers=2, n_heads=4, multiple_of=32)
    tokens = torch.randint(0, 100, (2, length), generator=torch.Generator().manual_seed(length))
    assert_same_outputs(graph, reference, tokens)


def test_llama_small_verifies(capsys):
    assert main(["verify", spec("llama"), "--profile", "small", "--batch", "2"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("PASSED")


def test_rotary_halves_match_the_rotate_half_formula():
    """GPT-NeoX / Hugging Face form: x * cos + rotate_half(x) * sin, frequencies repeated over both halves."""
    import numpy as np

    from ops_harness import graph_of, run_onnx, run_torch

    x = torch.randn(2, 7, 3, 8)
    inv = 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8))
    angles = torch.outer(torch.arange(7).float(), inv)
    emb = torch.cat([angles, angles], -1)[None, :, None, :]
    half = torch.cat([-x[..., 4:], x[..., :4]], -1)
    want = (x * emb.cos() + half * emb.sin()).numpy()
    graph = graph_of("inputs: {x: [N, S, 3, 8]}\nnodes: [{op: rotary_embedding, interleaved: false}]")
    for got in (run_torch(graph, {"x": x.numpy()})[0], run_onnx(graph, {"x": x.numpy()})[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_causal_mask_is_the_square_subsequent_mask():
    from ops_harness import graph_of, run_onnx, run_torch

    scores = torch.randn(2, 4, 6, 6)
    want = scores + nn.Transformer.generate_square_subsequent_mask(6)
    graph = graph_of("inputs: {x: [N, 4, S, S]}\nnodes: [{op: causal_mask}]")
    for got in (run_torch(graph, {"x": scores.numpy()})[0], run_onnx(graph, {"x": scores.numpy()})[0]):
        assert torch.equal(torch.from_numpy(got), want)
