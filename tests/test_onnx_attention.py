"""Attention written out by the exporters (MatMul/Softmax/MatMul between projections, heads split and
merged by Reshape/Transpose chains) comes back as archc's native multi_head_attention, its weights
bit for bit in nn.MultiheadAttention's layout, computing what onnxruntime computes on the file.
Modules are written here (nn.MultiheadAttention both layouts, cross-attention, a causal mask, and
attention written from Vaswani et al. 2017, section 3.2.2), exported by both torch.onnx exporters."""
from __future__ import annotations

import contextlib
import io
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
from torch import nn  # noqa: E402

from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.lowering.spec_yaml import dump_spec, to_spec  # noqa: E402
from conftest import check_against_onnxruntime  # noqa: E402
from weights_helpers import randomized  # noqa: E402

E, HEADS, N, L, S = 16, 4, 2, 5, 3


class TorchMHA(nn.Module):
    """nn.MultiheadAttention over x (self-attention), or x attending to memory (cross-attention)."""

    def __init__(self, batch_first: bool, causal: bool = False) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(E, HEADS, batch_first=batch_first)
        self.causal = causal

    def forward(self, x, memory=None):
        kv = x if memory is None else memory
        mask = None
        if self.causal:
            length = x.shape[1] if self.attn.batch_first else x.shape[0]
            mask = torch.triu(torch.full((length, length), float("-inf")), 1)
        return self.attn(x, kv, kv, need_weights=False, attn_mask=mask)[0]


class PaperAttention(nn.Module):
    """Multi-head attention as the paper writes it: separate projections, softmax(QK^T / sqrt(d_k)) V."""

    def __init__(self, scale_power: float = 0.5, return_weights: bool = False, heads: int = HEADS) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(E, E) for _ in range(4))
        self.heads, self.d_k = heads, E // heads
        self.scale_power = scale_power
        self.return_weights = return_weights

    def forward(self, x):
        n, length, _ = x.shape

        def heads(t):
            return t.view(n, length, self.heads, self.d_k).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        weights = torch.softmax(q @ k.transpose(-2, -1) / self.d_k ** self.scale_power, dim=-1)
        out = self.o((weights @ v).transpose(1, 2).reshape(n, length, E))
        return (out, weights) if self.return_weights else out


def _export(module: nn.Module, args: tuple, path: str, dynamo: bool, dynamic: bool = False) -> str:
    """Export; ``dynamic``: batch and sequence length are symbolic (dynamic_axes / dynamic_shapes)."""
    options = {}
    if dynamic and dynamo:
        options["dynamic_shapes"] = tuple({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")} for _ in args)
    elif dynamic:
        names = [f"in{k}" for k in range(len(args))]
        options.update(input_names=names, dynamic_axes={name: {0: "batch", 1: "seq"} for name in names})
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, path, dynamo=dynamo, **options)
    return path


def _fused(path: str):
    graph = load_onnx(path)
    attention = [n for n in graph.nodes() if n.op == "multi_head_attention"]
    return graph, attention


CASES = [(layout, dynamo) for layout in ("batch_first", "time_major") for dynamo in (False, True)]


@pytest.mark.parametrize("layout,dynamo", CASES)
def test_multihead_attention_comes_back_native_with_its_weights(tmp_path, layout, dynamo):
    torch.manual_seed(0)
    source = randomized(TorchMHA(layout == "batch_first"))
    shape = (N, L, E) if layout == "batch_first" else (L, N, E)
    path = _export(source, (torch.randn(*shape),), str(tmp_path / "mha.onnx"), dynamo)
    graph, attention = _fused(path)
    assert len(attention) == 1 and {n.op for n in graph.nodes()} <= {"input", "multi_head_attention", "permute"}
    assert attention[0].attrs["num_heads"] == HEADS and attention[0].attrs["bias"]
    # named after the module (found on Perceiver and DETR, round 17: a batch-first one from the TorchScript
    # exporter was attn.Gemm, its keys attn.Gemm.in_proj_weight...), so the source's state_dict loads as it is
    assert attention[0].name == "attn"
    built = check_against_onnxruntime(path)
    assert set(built.state_dict()) == set(source.state_dict())
    for key, original in source.state_dict().items():
        assert built.state_dict()[key].numpy().tobytes() == original.numpy().tobytes(), key


def test_symbolic_batch_and_length_still_fuse(tmp_path):
    """Exported with dynamic shapes, the head reshapes read their targets from Shape at run time: the
    chains are still read, the shape arithmetic dies with them, other sizes run. (The TorchScript
    exporter's dynamic_axes export computes the scale from shapes at run time and bakes the traced
    length into some reshapes: it stays unfused.)"""
    path = _export(randomized(TorchMHA(batch_first=True)), (torch.randn(N, L, E),), str(tmp_path / "dyn.onnx"),
                   True, dynamic=True)
    graph, attention = _fused(path)
    assert len(attention) == 1 and [n.op for n in graph.nodes()] == ["input", "multi_head_attention"]
    assert not all(isinstance(d, int) for d in attention[0].outputs[0].shape)
    check_against_onnxruntime(path)


@pytest.mark.parametrize("dynamo", [False, True])
def test_cross_attention_reads_query_and_memory(tmp_path, dynamo):
    source = randomized(TorchMHA(batch_first=True))
    path = _export(source, (torch.randn(N, L, E), torch.randn(N, S, E)), str(tmp_path / "cross.onnx"), dynamo)
    graph, attention = _fused(path)
    assert len(attention) == 1
    assert [graph.node(v.node).op for v in attention[0].inputs] == ["input"] * 3
    assert attention[0].inputs[1] == attention[0].inputs[2] != attention[0].inputs[0]
    check_against_onnxruntime(path)


@pytest.mark.parametrize("dynamo", [False, True])
def test_a_constant_causal_mask_becomes_causal(tmp_path, dynamo):
    path = _export(randomized(TorchMHA(batch_first=True, causal=True)), (torch.randn(N, L, E),),
                   str(tmp_path / "causal.onnx"), dynamo)
    _, attention = _fused(path)
    assert len(attention) == 1 and attention[0].attrs["causal"]
    check_against_onnxruntime(path)


@pytest.mark.parametrize("dynamo", [False, True])
def test_attention_written_from_the_paper_stacks_its_projections(tmp_path, dynamo):
    source = randomized(PaperAttention())
    path = _export(source, (torch.randn(N, L, E),), str(tmp_path / "paper.onnx"), dynamo)
    graph, attention = _fused(path)
    assert [n.op for n in graph.nodes() if n.op != "input"] == ["multi_head_attention"]
    weights = graph.weights[attention[0].name]
    stacked = torch.cat([source.q.weight, source.k.weight, source.v.weight]).detach().numpy()
    assert weights["in_proj_weight"].tobytes() == stacked.tobytes()
    assert weights["out_proj.bias"].tobytes() == source.o.bias.detach().numpy().tobytes()
    check_against_onnxruntime(path)
    spec, _ = to_spec(graph)
    assert "op: multi_head_attention" in dump_spec(spec, path)


@pytest.mark.parametrize("dynamo", [False, True])
def test_another_scale_stays_unfused_and_still_builds(tmp_path, dynamo):
    """softmax(QK^T / d_k) V is not the native op's 1/sqrt(d_k): no fusion, same outputs."""
    path = _export(randomized(PaperAttention(scale_power=1.0)), (torch.randn(N, L, E),),
                   str(tmp_path / "scaled.onnx"), dynamo)
    graph, attention = _fused(path)
    assert not attention and any(n.op == "softmax" for n in graph.nodes())
    check_against_onnxruntime(path)


@pytest.mark.parametrize("dynamo", [False, True])
def test_layers_alike_but_for_their_heads_each_fuse_with_their_own(tmp_path, dynamo):
    """Decisions on index maps are remembered per chain structure: layers that differ only in their
    head count (the same shapes around them) must not share one."""
    source = randomized(nn.Sequential(PaperAttention(heads=4), PaperAttention(heads=2), PaperAttention(heads=4)))
    path = _export(source, (torch.randn(N, L, E),), str(tmp_path / "mixed.onnx"), dynamo)
    graph, attention = _fused(path)
    assert [n.attrs["num_heads"] for n in attention] == [4, 2, 4]
    check_against_onnxruntime(path)


class TimmAttention(nn.Module):
    """ViT's attention as timm writes it: one qkv projection, heads split by reshape and permute."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(((q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1) @ v)
                         .transpose(1, 2).reshape(n, t, c))


def test_vit_b_width_attention_with_a_symbolic_batch_fuses(tmp_path):
    """ViT-B/16's attention (width 768, 12 heads, 197 tokens), TorchScript export with a symbolic
    batch: the matcher sizes the batch twice, and both choices keep the qkv map within bounds (a
    batch of 41 would make it 18.6 M elements, over the limit: it stayed unfused)."""
    path = str(tmp_path / "vit_attention.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(TimmAttention(768, 12).eval(), (torch.randn(1, 197, 768),), path, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "N"}})
    graph, attention = _fused(path)
    assert [n.op for n in graph.nodes()] == ["input", "multi_head_attention"]
    assert attention[0].attrs["num_heads"] == 12
    check_against_onnxruntime(path)


def test_attention_weights_used_outside_block_the_fusion(tmp_path):
    path = _export(randomized(PaperAttention(return_weights=True)), (torch.randn(N, L, E),),
                   str(tmp_path / "weights_out.onnx"), False)
    graph, attention = _fused(path)
    assert not attention and any(n.op == "softmax" for n in graph.nodes())
    check_against_onnxruntime(path)


def test_spec_command_shows_the_fused_attention(tmp_path, run_archc):
    path = _export(randomized(TorchMHA(batch_first=True)), (torch.randn(N, L, E),), str(tmp_path / "m.onnx"),
                   True)
    out = tmp_path / "m.yaml"
    run_archc("spec", path, "-o", str(out), check=True)
    text = out.read_text()
    assert "op: multi_head_attention" in text and "num_heads: 4" in text and "softmax" not in text


class SpatialReductionAttention(nn.Module):
    """PVT's attention (Wang et al. 2021): the keys and values read the token map reduced by a strided conv
    and a layer norm, children of the attention module beside its q, kv and proj."""

    def __init__(self, dim: int = 16, heads: int = 2, ratio: int = 2, side: int = 4) -> None:
        super().__init__()
        self.heads, self.side = heads, side
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.sr = nn.Conv2d(dim, dim, ratio, ratio)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        b, n, c = x.shape
        d = c // self.heads
        q = self.q(x).reshape(b, n, self.heads, d).permute(0, 2, 1, 3)
        reduced = self.norm(self.sr(x.permute(0, 2, 1).reshape(b, c, self.side, self.side)).reshape(b, c, -1)
                            .permute(0, 2, 1))
        k, v = self.kv(reduced).reshape(b, -1, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * d ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class PVTBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = SpatialReductionAttention()

    def forward(self, x):
        return x + self.attn(x)


@pytest.mark.parametrize("dynamo", [False, True])
def test_an_attention_module_holding_other_layers_names_its_fused_node_apart(tmp_path, dynamo):
    # found on PVT and SegFormer (round 17): the default exporter's file named the fused attention after
    # its module, `attn`, which also holds the reduction's `attn.sr` and `attn.norm`: "'attn' is both a
    # module and a container of modules", and nothing built. Both exporters' files now name it alike.
    path = _export(randomized(PVTBlock()), (torch.randn(1, 16, 16),), str(tmp_path / "pvt.onnx"), dynamo)
    graph, attention = _fused(path)
    assert [n.name for n in attention] == ["attn.proj"]
    assert {"attn.sr", "attn.norm"} <= {n.name for n in graph.nodes()}
    check_against_onnxruntime(path)  # (builds the module and compares it with onnxruntime on the file)

