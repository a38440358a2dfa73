"""ONNX models whose layers share weights (a layer applied twice, ALBERT's one layer applied N times, a
siamese encoder): one initializer read by several nodes of one module stays one tensor through every
path: counted once by summary, one parameter under two keys in the PyTorch module, one initializer in
the rebuilt ONNX, a ``tie:`` in the written spec; layers of their own whose equal initial weights the
exporter merged stay layers of their own. Modules written here, exported by both exporters."""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.lowering.onnx import to_onnx  # noqa: E402
from archc.lowering.torch import build_module  # noqa: E402


class TwiceApplied(nn.Module):
    """One linear layer applied twice, around a tanh (weight sharing across depth)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.fc(torch.tanh(self.fc(x))))


class Siamese(nn.Module):
    """One conv encoder applied to two inputs; the difference of the two codes."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))

    def forward(self, a, b):
        return (self.enc(a) - self.enc(b)).mean((2, 3))


class Albert(nn.Module):
    """ALBERT (Lan et al. 2020): one transformer layer's weights applied at every depth; its two layer
    norms start equal (ones, zeros), which the exporters merge into one initializer."""

    def __init__(self, depth=3):
        super().__init__()
        self.depth = depth
        self.ln1, self.ln2 = nn.LayerNorm(8), nn.LayerNorm(8)
        self.ff1, self.ff2 = nn.Linear(8, 16), nn.Linear(16, 8)

    def forward(self, x):
        for _ in range(self.depth):
            x = self.ln1(x + self.ff2(torch.relu(self.ff1(x))))
            x = self.ln2(x + torch.tanh(x))
        return x


class Clones(nn.Module):
    """Two layers deep-copied from one (nn.TransformerEncoder's way), exported untrained: equal weights
    the TorchScript exporter merges into one initializer, yet two layers of their own."""

    def __init__(self):
        super().__init__()
        import copy

        layer = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(2)])

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


class LayerScales(nn.Module):
    """CaiT's and ResMLP's layer scales, two bare parameters of one fill (0.1) in one module, which both
    exporters merge into one initializer; beside them a layer norm applied twice, one parameter."""

    def __init__(self, d=8):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.f1, self.f2 = nn.Linear(d, d), nn.Linear(d, d)
        self.gamma_1 = nn.Parameter(0.1 * torch.ones(d))
        self.gamma_2 = nn.Parameter(0.1 * torch.ones(d))

    def forward(self, x):
        x = x + self.gamma_1 * self.f1(self.norm(x))
        return x + self.gamma_2 * self.f2(self.norm(x))


class ReZeroLayer(nn.Module):
    """ReZero (Bachlechner et al. 2020) as its authors' RZTXEncoderLayer writes it: one learned scalar
    alpha (``resweight``) scaling both residual branches of the layer."""

    def __init__(self, d=8):
        super().__init__()
        self.attn, self.ff = nn.Linear(d, d), nn.Linear(d, d)
        self.resweight = nn.Parameter(torch.full((1,), 0.5))

    def forward(self, x):
        x = x + torch.tanh(self.attn(x)) * self.resweight
        return x + torch.relu(self.ff(x)) * self.resweight


class ReZero(nn.Module):
    """Two ReZero layers, their alphas of one value (0.5), which the exporters merge across the layers."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(ReZeroLayer(), ReZeroLayer())

    def forward(self, x):
        return self.layers(x)


class SharedLayerScale(nn.Module):
    """One (C, 1, 1) layer scale (trained: values of its own per channel) scaling two conv branches."""

    def __init__(self, c=4):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 1)
        self.scale = nn.Parameter(torch.linspace(0.1, 0.4, c).reshape(c, 1, 1))

    def forward(self, x):
        x = x + self.scale * self.conv1(x)
        return x + self.scale * torch.tanh(self.conv2(x))


class SharedBias(nn.Module):
    """One learned bias vector added after two bias-free linear layers."""

    def __init__(self, d=8):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.bias = nn.Parameter(torch.randn(d))

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x) + self.bias)) + self.bias


class SeparateProjections(nn.Module):
    """Self-attention with q, k, v and output Linears of its own (fused into one multi_head_attention
    whose in_proj_weight stacks the three)."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.h = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        n, length, d = x.shape
        q, k, v = (lin(x).reshape(n, length, self.h, d // self.h).transpose(1, 2) for lin in (self.q, self.k, self.v))
        a = (q @ k.transpose(-2, -1) * (d // self.h) ** -0.5).softmax(-1)
        return self.o((a @ v).transpose(1, 2).reshape(n, length, d))


class PackedProjection(nn.Module):
    """Self-attention with one qkv Linear (timm's ViT)."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.h = heads
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        n, length, d = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1) * (d // self.h) ** -0.5).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, length, d))


class MultiheadAttention(nn.Module):
    def __init__(self, d=16, heads=2):
        super().__init__()
        self.mha = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


def _attention_applied_twice(attention: type[nn.Module]) -> type[nn.Module]:
    """One attention layer applied twice with residuals (ALBERT, a Perceiver's latent block repeated):
    each call's fused multi_head_attention is made of the same weights, and holds the same tensors."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = attention()

        def forward(self, x):
            x = x + self.attn(x)
            return x + self.attn(x)

    return Twice


class AttentionClones(nn.Module):
    """Two attention layers deep-copied from one, exported untrained: equal weights an exporter may
    merge into one initializer, yet layers of their own (and two parameters each)."""

    def __init__(self):
        super().__init__()
        import copy

        self.layers = nn.ModuleList([copy.deepcopy(SeparateProjections()) for _ in range(2)])

    def forward(self, x):
        for layer in self.layers:
            x = x + layer(x)
        return x


CASES = {"twice": (TwiceApplied, lambda: (torch.randn(2, 8),)),
         "rezero": (ReZero, lambda: (torch.randn(2, 5, 8),)),
         "shared_layer_scale": (SharedLayerScale, lambda: (torch.randn(1, 4, 5, 5),)),
         "shared_bias": (SharedBias, lambda: (torch.randn(2, 8),)),
         "layer_scales": (LayerScales, lambda: (torch.randn(2, 3, 8),)),
         "siamese": (Siamese, lambda: (torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6))),
         "albert": (Albert, lambda: (torch.randn(2, 5, 8),)),
         "clones": (Clones, lambda: (torch.randn(2, 8),)),
         "attention_twice": (_attention_applied_twice(SeparateProjections), lambda: (torch.randn(1, 5, 16),)),
         "packed_attention_twice": (_attention_applied_twice(PackedProjection), lambda: (torch.randn(1, 5, 16),)),
         "mha_twice": (_attention_applied_twice(MultiheadAttention), lambda: (torch.randn(1, 5, 16),)),
         "attention_clones": (AttentionClones, lambda: (torch.randn(1, 5, 16),))}
#: cases whose layers are their own, however equal their weights: nothing tied
UNSHARED = {"clones", "attention_clones"}


def _export(tmp_path, name: str, dynamo: bool):
    if dynamo:
        pytest.importorskip("onnxscript")
    factory, inputs = CASES[name]
    torch.manual_seed(0)
    model = factory().eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs(), str(path), dynamo=dynamo)
    return model, inputs(), path


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_shared_weight_stays_one_tensor(tmp_path, run_archc, name, dynamo):
    model, inputs, path = _export(tmp_path, name, dynamo)
    expected = sum(p.numel() for p in model.parameters())  # torch counts a shared parameter once
    summary = json.loads(run_archc("summary", str(path), "--format", "json", check=True).stdout)
    assert summary["totals"]["params"] == expected
    graph = load_onnx(str(path))
    built = build_module(graph).eval()
    assert sum(p.numel() for p in built.parameters()) == expected
    fused = [n for n in graph.nodes() if n.op == "multi_head_attention"]
    if name.endswith("attention_twice") or name == "mha_twice":
        # both calls fused, the second's every parameter one tensor with the first's
        assert len(fused) == 2
        first, second = fused
        assert second.meta.get("tie") == {pname: (first.name, pname) for pname in graph.weights[second.name]}
    want = model(*inputs).detach().numpy()
    feeds = [t.numpy() for t in inputs]
    np.testing.assert_allclose(built(*map(torch.from_numpy, feeds)).detach().numpy(), want, rtol=1e-5, atol=1e-6)
    rebuilt = to_onnx(graph)
    assert sum(int(np.prod(t.dims)) for t in rebuilt.graph.initializer if t.data_type == onnx.TensorProto.FLOAT) \
        == expected
    import onnxruntime as ort

    session = ort.InferenceSession(rebuilt.SerializeToString())
    got = session.run(None, dict(zip([i.name for i in session.get_inputs()], feeds)))[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the spec written from the model ties the later use to the first, and builds the same count
    spec = tmp_path / f"{name}.yaml"
    run_archc("spec", str(path), "-o", str(spec), check=True)
    assert ("tie: {" in spec.read_text()) == (name not in UNSHARED)
    rebuilt_summary = json.loads(run_archc("summary", str(spec), "--format", "json", check=True).stdout)
    assert rebuilt_summary["totals"]["params"] == expected


def test_layers_of_equal_shape_that_read_their_own_initializers_are_not_tied(tmp_path):
    # two linear layers of one shape, each its own initializer: nothing shared, nothing tied
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))

    torch.manual_seed(0)
    path = tmp_path / "two.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Two().eval(), (torch.randn(2, 8),), str(path), dynamo=False)
    graph = load_onnx(str(path))
    assert not [n for n in graph.nodes() if "tie" in n.meta]
    assert len(onnx.load(str(path)).graph.initializer) == len(to_onnx(graph).graph.initializer) == 4


def test_rezero_alpha_is_one_tensor_under_both_keys(tmp_path):
    # each layer's alpha, read by both residual branches' Mul, is one tensor of the built module
    _, _, path = _export(tmp_path, "rezero", dynamo=False)
    built = build_module(load_onnx(str(path)))
    scalars = [(key, p) for key, p in built.named_parameters(remove_duplicate=False) if p.numel() == 1]
    assert len(scalars) == 4 and len({id(p) for _, p in scalars}) == 2, [k for k, _ in scalars]


class ScalarGates(nn.Module):
    """Two scalar gates of one initial value in one module (Flamingo's attn_gate and ff_gate), which
    both exporters merge into one tensor: two parameters where the dynamo signature lists both."""

    def __init__(self, d=8):
        super().__init__()
        self.attn, self.ff = nn.Linear(d, d), nn.Linear(d, d)
        self.attn_gate, self.ff_gate = nn.Parameter(torch.full((1,), 0.5)), nn.Parameter(torch.full((1,), 0.5))

    def forward(self, x):
        x = x + self.attn(x) * self.attn_gate
        return x + self.ff(x) * self.ff_gate


@pytest.mark.slow
def test_scalar_gates_the_dynamo_export_merged_stay_two_parameters(tmp_path, run_archc):
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model, x = ScalarGates().eval(), torch.randn(2, 8)
    path = tmp_path / "gates.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path))
    assert len([t for t in onnx.load(str(path)).graph.initializer if tuple(t.dims) == (1,)]) == 1  # merged
    summary = json.loads(run_archc("summary", str(path), "--format", "json", check=True).stdout)
    assert summary["totals"]["params"] == sum(p.numel() for p in model.parameters()) == 146
    built = build_module(load_onnx(str(path))).eval()
    assert sum(p.numel() for p in built.parameters()) == 146
    np.testing.assert_allclose(built(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["twice", "siamese", "albert", "mha_twice"])
def test_a_layer_applied_twice_is_one_module_called_again_with_the_sources_keys(tmp_path, name):
    # one nn.Linear applied twice imported as two tied copies (fc and fc_1): the state_dict had keys the
    # source has not, so its strict load failed; the second call now calls the first's module
    from archc.lowering.torch import generate_source

    model, inputs, path = _export(tmp_path, name, dynamo=False)
    graph = load_onnx(str(path))
    again = [n.name for n in graph.nodes() if "reuses" in n.meta]
    assert again
    built = build_module(graph).eval()
    built.load_state_dict(model.state_dict(), strict=True)
    np.testing.assert_allclose(built(*inputs).detach().numpy(), model(*inputs).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    source = generate_source(graph)
    for node in again:  # (no module of its own, its owner's called)
        assert f"self.{node} = " not in source
    assert sum(p.numel() for p in built.parameters()) == sum(p.numel() for p in model.parameters())
