"""The sequence-model specs (Transformer, ViT-B/16, GNMT encoder) against PyTorch references.

Each spec passes ``archc check`` and ``archc verify`` (torch vs onnxruntime) at a small size;
its full-size parameter count and state_dict layout equal the reference's (built on the meta
device: shapes without memory); and with the reference's weights loaded through
:func:`archc.lowering.torch.load_weights`, both archc backends compute the reference's outputs.
References: ``torch.nn.Transformer``; a ViT written here with torchvision's module structure
(torchvision is not installed); a GNMT encoder written here from the paper.
"""
from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from archc import load_spec
from archc.cli import main
from archc.ops.weights import total_params
from weights_helpers import state_dict_specs
from archc.lowering.torch import build_module, load_weights
from ops_harness import run_onnx

from conftest import SPECS

TRANSFORMER = str(SPECS / "transformer.yaml")
VIT = str(SPECS / "vit_b16.yaml")
GNMT = str(SPECS / "gnmt_encoder.yaml")


def _specs(graph) -> dict[str, tuple[int, ...]]:
    return {k: tuple(s.shape) for k, s in state_dict_specs(graph)}


def _layout(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _outputs_with_reference_weights(graph, reference: nn.Module, feeds: dict[str, np.ndarray], tmp_path
                                    ) -> list[np.ndarray]:
    """The reference's state_dict saved and loaded into the graph; archc's torch and ONNX outputs."""
    path = tmp_path / "reference.pt"
    torch.save(reference.state_dict(), path)
    load_weights(graph, str(path))
    with torch.no_grad():
        ours = build_module(graph).eval()(*[torch.from_numpy(feeds[n]) for n in graph.inputs])
    return [ours.numpy(), run_onnx(graph, feeds)[0]]


def _randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- the CLI at small sizes ------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [TRANSFORMER, "--profile", "small", "--dim", "S=5", "--dim", "T=4", "--batch", "2"],
    [TRANSFORMER, "--profile", "small", "--set", "norm_first=true", "--dim", "S=3", "--dim", "T=6"],
    [VIT, "--profile", "small", "--batch", "2"],
    [GNMT, "--profile", "small", "--dim", "S=7", "--batch", "3"],
], ids=["transformer", "transformer_pre_norm", "vit_b16", "gnmt_encoder"])
def test_check_and_verify_pass_at_small_size(args, capsys):
    assert main(["check", *args[:3]]) == 0
    assert main(["verify", *args]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "MISMATCH" not in out


# -- Transformer -----------------------------------------------------------------------------

def test_transformer_base_has_nn_transformers_parameters_and_state_dict_layout():
    graph = load_spec(TRANSFORMER)
    assert total_params(graph) == 44_140_544
    with torch.device("meta"):
        reference = nn.Transformer(batch_first=True)
    assert sum(p.numel() for p in reference.parameters()) == 44_140_544
    assert _specs(graph) == _layout(reference)
    assert graph.type_of(graph.outputs["output"]).shape == ("N", "T", 512)


def test_transformer_big_profile_count():
    # Vaswani et al. Table 3 "big" without embeddings: 6+6 layers of width 1024, 16 heads, FFN 4096
    with torch.device("meta"):
        reference = nn.Transformer(d_model=1024, nhead=16, dim_feedforward=4096, batch_first=True)
    assert total_params(load_spec(TRANSFORMER, profile="big")) == sum(p.numel() for p in reference.parameters())


# nn.Transformer notes that a pre-norm encoder cannot use its nested-tensor fast path.
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_transformer_computes_nn_transformer_with_its_weights(norm_first, tmp_path):
    graph = load_spec(TRANSFORMER, profile="small", overrides={"norm_first": norm_first})
    torch.manual_seed(0)
    reference = nn.Transformer(d_model=32, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                               dim_feedforward=64, batch_first=True, norm_first=norm_first).eval()
    # LayerNorms start at (1, 0) in both; make them matter
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if "norm" in name:
                p.add_(torch.rand_like(p) - 0.5)
    assert _specs(graph) == _layout(reference)
    src, tgt = _randn(2, 5, 32, seed=1), _randn(2, 7, 32, seed=2)
    mask = nn.Transformer.generate_square_subsequent_mask(7)
    with torch.no_grad():
        want = reference(torch.from_numpy(src), torch.from_numpy(tgt), tgt_mask=mask, tgt_is_causal=True).numpy()
    for got in _outputs_with_reference_weights(graph, reference, {"src": src, "tgt": tgt}, tmp_path):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    # the mask matters: without it the reference computes something else
    with torch.no_grad():
        unmasked = reference(torch.from_numpy(src), torch.from_numpy(tgt)).numpy()
    assert np.abs(unmasked - want).max() > 1e-3


def test_transformer_norm_first_moves_the_norms():
    post = load_spec(TRANSFORMER, profile="small")
    pre = load_spec(TRANSFORMER, profile="small", overrides={"norm_first": True})
    assert _specs(pre) == _specs(post)
    # post-norm: the norm reads the residual sum; pre-norm: it reads the layer input
    assert post.node("encoder.layers.0.norm1").inputs[0].node == "encoder.layers.0.add1"
    assert pre.node("encoder.layers.0.norm1").inputs[0].node == "src"
    assert pre.node("encoder.layers.0.self_attn").inputs[0].node == "encoder.layers.0.norm1"
    assert pre.node("decoder.layers.1.multihead_attn").inputs[0].node == "decoder.layers.1.norm2"
    assert [v.node for v in pre.node("decoder.layers.1.multihead_attn").inputs[1:]] == ["encoder.norm"] * 2


# -- ViT-B/16 --------------------------------------------------------------------------------

class _MLP(nn.Sequential):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0))


class _Block(nn.Module):
    """Pre-norm block of Dosovitskiy et al. (eqs. 2-3), with torchvision's module names."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _MLP(dim, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.dropout(self.self_attention(h, h, h, need_weights=False)[0])
        return x + self.mlp(self.ln_2(x))


class _Encoder(nn.Module):
    def __init__(self, seq: int, dim: int, layers: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq, dim).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", _Block(dim, heads, mlp)) for i in range(layers)))
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class ReferenceViT(nn.Module):
    """ViT with torchvision.models.VisionTransformer's module structure and state_dict keys."""

    def __init__(self, image: int = 224, patch: int = 16, layers: int = 12, heads: int = 12, dim: int = 768,
                 mlp: int = 3072, classes: int = 1000) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = _Encoder((image // patch) ** 2 + 1, dim, layers, heads, mlp)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(dim, classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])


VIT_SMALL = {"image": 32, "patch": 8, "layers": 2, "heads": 2, "dim": 32, "mlp": 64, "classes": 10}


def test_vit_b16_has_torchvisions_parameters_and_state_dict_layout():
    graph = load_spec(VIT)
    assert total_params(graph) == 86_567_656
    with torch.device("meta"):
        reference = ReferenceViT()
    assert sum(p.numel() for p in reference.parameters()) == 86_567_656
    specs = _specs(graph)
    assert specs == _layout(reference)
    for key in ("class_token", "conv_proj.weight", "encoder.pos_embedding",
                "encoder.layers.encoder_layer_0.ln_1.weight",
                "encoder.layers.encoder_layer_11.self_attention.in_proj_weight",
                "encoder.layers.encoder_layer_0.mlp.0.weight", "encoder.layers.encoder_layer_0.mlp.3.weight",
                "encoder.ln.weight", "heads.head.weight"):
        assert key in specs
    assert specs["encoder.pos_embedding"] == (1, 197, 768)
    assert graph.type_of(graph.outputs["logits"]).shape == ("N", 1000)


@pytest.mark.parametrize("profile,count", [("b32", 88_224_232), ("l16", 304_326_632)])
def test_vit_profiles_match_torchvisions_published_counts(profile, count):
    assert total_params(load_spec(VIT, profile=profile)) == count


def test_vit_computes_the_reference_with_its_weights(tmp_path):
    graph = load_spec(VIT, profile="small")
    torch.manual_seed(0)
    reference = ReferenceViT(**VIT_SMALL).eval()
    with torch.no_grad():
        reference.class_token.normal_()   # zero in a fresh model; make it matter
        for name, p in reference.named_parameters():
            if ".ln" in name:
                p.add_(torch.rand_like(p) - 0.5)
    # the generated module's state_dict is torchvision's, in torchvision's order
    assert list(build_module(graph).state_dict()) == list(reference.state_dict())
    x = _randn(2, 3, 32, 32, seed=3)
    with torch.no_grad():
        want = reference(torch.from_numpy(x)).numpy()
    for got in _outputs_with_reference_weights(graph, reference, {"x": x}, tmp_path):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


# -- GNMT encoder ----------------------------------------------------------------------------

class ReferenceGNMTEncoder(nn.Module):
    """Wu et al. 2016, section 3: embeddings, a bidirectional bottom LSTM layer (directions
    concatenated), unidirectional LSTM layers above, residual connections from the third layer."""

    def __init__(self, vocab: int, hidden: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.embedder = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            layer = nn.Module()
            layer.lstm = nn.LSTM(2 * hidden if i == 1 else hidden, hidden, batch_first=True,
                                 bidirectional=i == 0)
            self.layers.append(layer)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedder(tokens)
        for i, layer in enumerate(self.layers):
            y = layer.lstm(self.dropout(x))[0]
            x = x + y if i >= 2 else y
        return x


def test_gnmt_encoder_has_the_references_parameters_and_layout():
    graph = load_spec(GNMT)
    with torch.device("meta"):
        reference = ReferenceGNMTEncoder(32000, 1024, 8, 0.2)
    assert total_params(graph) == sum(p.numel() for p in reference.parameters()) == 112_533_504
    assert _specs(graph) == _layout(reference)
    assert _specs(graph)["layers.0.lstm.weight_ih_l0_reverse"] == (4096, 1024)
    assert _specs(graph)["layers.1.lstm.weight_ih_l0"] == (4096, 2048)
    assert graph.type_of(graph.outputs["memory"]).shape == ("N", "S", 1024)


def test_gnmt_encoder_computes_the_reference_with_its_weights(tmp_path):
    graph = load_spec(GNMT, profile="small")
    torch.manual_seed(0)
    reference = ReferenceGNMTEncoder(50, 16, 4, 0.2).eval()
    tokens = np.random.default_rng(4).integers(0, 50, (3, 9)).astype(np.int64)
    with torch.no_grad():
        want = reference(torch.from_numpy(tokens)).numpy()
    for got in _outputs_with_reference_weights(graph, reference, {"tokens": tokens}, tmp_path):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_gnmt_residuals_start_at_the_third_layer():
    graph = load_spec(GNMT)
    adds = [n.name for n in graph.nodes() if n.op == "add"]
    assert adds == [f"layers.{i}.add" for i in range(2, 8)]


# -- skip-connection counts (archc lint) -------------------------------------------------------

@pytest.mark.parametrize("args,residuals", [
    ([TRANSFORMER], 6 * 2 + 6 * 3),
    ([TRANSFORMER, "--set", "norm_first=true"], 6 * 2 + 6 * 3),
    ([TRANSFORMER, "--profile", "small"], 2 * 2 + 2 * 3),
    ([TRANSFORMER, "--set", "num_encoder_layers=3", "--set", "num_decoder_layers=1"], 3 * 2 + 1 * 3),
    ([VIT], 12 * 2),
    ([VIT, "--profile", "l16"], 24 * 2),
    ([GNMT], 8 - 2),
    ([GNMT, "--set", "num_layers=5"], 5 - 2),
], ids=["transformer", "transformer_pre_norm", "transformer_small", "transformer_3_1", "vit_b16", "vit_l16",
        "gnmt", "gnmt_5"])
def test_lint_counts_the_residuals_the_papers_describe(args, residuals, capsys):
    assert main(["lint", *args, "--format", "json", "--strict"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"] == {"residual": residuals, "long_skip": 0, "dense": 0, "gated": 0}
    assert report["ok"] and report["expectations"] == []
    assert all(s["carries"] == "identity" for s in report["skips"])
