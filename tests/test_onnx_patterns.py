"""Functions exporters write out (GELU in its erf and tanh forms, SiLU, Mish, layer normalisation) come
back as archc's native ops, from modules written here and exported by both torch.onnx exporters
(TorchScript at opset 14, before LayerNormalization and Gelu existed, and the default dynamo=True),
computing what onnxruntime computes on the file."""
from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
from torch import nn  # noqa: E402

from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.ir.graph import Value  # noqa: E402
from archc.runtime.inputs import input_types, random_inputs  # noqa: E402
from archc.runtime.verify import verify_model  # noqa: E402


class Written(nn.Module):
    """A linear layer, then a function spelled out with tensor arithmetic."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.form = form
        self.weight = nn.Parameter(torch.rand(8) + 0.5)
        self.bias = nn.Parameter(torch.rand(8))

    def forward(self, x):
        x = self.fc(x)
        if self.form == "gelu_tanh":  # Hendrycks & Gimpel's approximation
            return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
        if self.form == "gelu_erf":
            return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
        if self.form == "silu":
            return x * torch.sigmoid(x)
        if self.form == "mish":  # (found on CSPDarknet: the TorchScript exporter writes F.mish out so)
            return nn.functional.mish(x)
        centred = x - x.mean(-1, keepdim=True)  # layer norm (Ba et al. 2016)
        return centred / torch.sqrt(centred.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight + self.bias


EXPECTED = {"gelu_tanh": ("gelu", {"approximate": "tanh"}), "gelu_erf": ("gelu", {"approximate": "none"}),
            "silu": ("silu", {}), "mish": ("mish", {}),
            "layernorm": ("layernorm", {"dims": 1, "eps": 1e-5, "bias": True})}


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("form", list(EXPECTED))
def test_written_out_function_becomes_the_native_op(tmp_path, form, dynamo):
    torch.manual_seed(0)
    path = str(tmp_path / f"{form}.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Written(form).eval(), (torch.randn(2, 4, 8),), path, dynamo=dynamo,
                          opset_version=None if dynamo else 14)
    graph = load_onnx(path)
    op, attrs = EXPECTED[form]
    nodes = [n for n in graph.nodes() if n.op != "input"]
    assert [n.op for n in nodes] == ["linear", op]
    assert {k: nodes[1].attrs[k] for k in attrs} == attrs
    results = verify_model(path, graph, random_inputs(input_types(graph), {}, 0), rtol=1e-4, atol=1e-5)
    assert all(r.ok for r in results.outputs)


class GroupNormed(nn.Module):
    """nn.GroupNorm after a Conv2d (affine, trained-looking weights) and after a Conv1d (no affine), as a
    diffusion U-Net's blocks and a speech model's encoder hold them."""

    def __init__(self, affine_1d: bool = False) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(4, 8)
        self.conv1d, self.norm1d = nn.Conv1d(8, 6, 3, padding=1), nn.GroupNorm(2, 6, eps=1e-3, affine=affine_1d)
        with torch.no_grad():
            self.norm.weight.normal_()
            self.norm.bias.normal_()

    def forward(self, x):
        h = torch.relu(self.norm(self.conv(x)))
        return self.norm1d(self.conv1d(h.flatten(2)))


@pytest.mark.parametrize("dynamo, affine_1d", [(False, False), (True, True)])
def test_group_norm_written_out_becomes_the_native_op(tmp_path, dynamo, affine_1d):
    """Both exporters write nn.GroupNorm as reshape, InstanceNormalization of ones and zeros, reshape and
    the affine: fused back, it holds the module's 2C parameters under its own keys (the default
    exporter's per-group ones and zeros were counted as parameters too). Without an affine, the
    TorchScript exporter multiplies and adds Constant ones and zeros; the default exporter stores them
    as initializers, as it stores an untrained affine's: that file reads as an affine norm."""
    import archc

    torch.manual_seed(0)
    model = GroupNormed(affine_1d).eval()
    x = torch.randn(2, 3, 4, 4)
    path = str(tmp_path / "gn.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), path, dynamo=dynamo, opset_version=None if dynamo else 17)
    graph = load_onnx(path)
    norms = [n for n in graph.nodes() if n.op == "groupnorm"]
    assert [(n.attrs["num_groups"], n.attrs["affine"]) for n in norms] == [(4, True), (2, affine_1d)]
    assert not [n for n in graph.nodes() if n.op == "onnx_node"]
    assert norms[1].attrs["eps"] == pytest.approx(1e-3)
    imported = archc.from_onnx(path)
    assert sum(p.numel() for p in imported.parameters()) == sum(p.numel() for p in model.parameters())
    if not dynamo:  # (the default exporter names layers node_conv2d...: only its norms keep module paths)
        imported.load_state_dict(model.state_dict())  # strict: the torch module's own keys
    assert {"norm.weight", "norm.bias"} <= set(imported.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(imported(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_archcs_own_group_norm_comes_back_as_the_native_op(tmp_path):
    from archc import loads_spec
    from archc.lowering.onnx import to_onnx

    spec = loads_spec("inputs: {x: [N, 4, 6, 6]}\nnodes:\n  - {op: conv, out_channels: 8, kernel_size: 3}\n"
                      "  - {name: gn, op: groupnorm, num_groups: 2}\n")
    path = tmp_path / "gn.onnx"
    path.write_bytes(to_onnx(spec, seed=0).SerializeToString())
    assert [n.op for n in load_onnx(str(path)).nodes()] == ["input", "conv", "groupnorm"]


def test_a_shared_inner_value_blocks_the_fusion(tmp_path):
    """x * sigmoid(x) where sigmoid(x) is also an output: fusing would lose it."""

    class Shared(nn.Module):
        def forward(self, x):
            gate = torch.sigmoid(x)
            return x * gate, gate

    path = str(tmp_path / "shared.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Shared(), (torch.randn(2, 3),), path, dynamo=False)
    graph = load_onnx(path)
    assert sorted(n.op for n in graph.nodes()) == ["input", "mul", "sigmoid"]
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    assert all(r.ok for r in verify_model(path, graph, {graph.inputs[0]: x}).outputs)


def test_segnet_pooling_indices_become_native_maxpool_and_max_unpool(tmp_path):
    """The default exporter writes max_pool2d_with_indices as MaxPool plus plane-origin arithmetic,
    and max_unpool2d as a ScatterND into zeros: they come back as the native pair."""
    import onnx_models as M

    torch.manual_seed(0)
    path = str(tmp_path / "segnet.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(M.SegNet().eval(), (torch.randn(2, 3, 16, 16),), path, dynamo=True)
    graph = load_onnx(path)
    assert not [n for n in graph.nodes() if n.op == "onnx_node"]
    pools = [n for n in graph.nodes() if n.op == "maxpool"]
    unpools = [n for n in graph.nodes() if n.op == "max_unpool"]
    assert len(pools) == 2 and all(p.attrs["return_indices"] for p in pools) and len(unpools) == 2
    # each unpool reads the indices of the pool at its level (the decoder mirrors the encoder)
    assert [u.inputs[1] for u in unpools] == [Value(pools[1].name, 1), Value(pools[0].name, 1)]
    results = verify_model(path, graph, random_inputs(input_types(graph), {}, 0), rtol=1e-4, atol=1e-5)
    assert all(r.ok for r in results.outputs)


@pytest.mark.parametrize("form", list(EXPECTED))
def test_matchers_match_only_at_their_anchor_kinds(tmp_path, monkeypatch, form):
    """fuse tries a matcher only at nodes of the kinds it registered: every matcher, asked at every
    node of an unfused import, matches nowhere else (and one of them matches the written function)."""
    from archc.frontends.onnx import patterns

    path = str(tmp_path / f"{form}.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Written(form).eval(), (torch.randn(2, 4, 8),), path, dynamo=False, opset_version=14)
    monkeypatch.setattr(patterns, "fuse", lambda graph: 0)  # the import as the importer leaves it
    graph = load_onnx(path)
    monkeypatch.undo()
    matchers = {fn: {k for k, fns in patterns.MATCHERS.items() if fn in fns}
                for fns in patterns.MATCHERS.values() for fn in fns}
    matched = []
    for node in graph.nodes():
        for fn, anchors in matchers.items():
            if fn(graph, node) is not None:
                assert patterns.kind(node) in anchors, (fn.__name__, node.name, patterns.kind(node))
                matched.append(fn.__name__)
    assert EXPECTED[form][0] in matched  # (the matchers are named after the ops they make)
    assert patterns.fuse(graph) == 1
