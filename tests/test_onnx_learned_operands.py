"""A learned tensor that is no layer's parameter, read by one element-wise op (a layer scale, ResMLP's
affine, ReZero's and NFNet's scalar gates), imports as a ``parameter`` node and the native op: the
generated module loads the original's state_dict strictly (the parameter is named by its key), runs
at any batch, and lint sees the residual around it. Learned tables (class tokens, position
embeddings) are named by their keys too."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from archc.analysis.skips import analyze  # noqa: E402
from archc.frontends.onnx import from_onnx  # noqa: E402
from archc.ir.vocab import Kind  # noqa: E402
from archc.lowering.torch import build_module  # noqa: E402
from ops_harness import export_onnx  # noqa: E402


class Affine(nn.Module):
    """ResMLP's replacement for a norm (Touvron et al. 2021): ``alpha * x + beta``, per channel."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.rand(dim) + 0.5)
        self.beta = nn.Parameter(torch.randn(dim) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x + self.beta


class ResMLPBlock(nn.Module):
    """ResMLP's layer: a cross-patch linear over the transposed tokens, then a per-token MLP, each
    between an Affine and a per-channel layer scale, each with its residual."""

    def __init__(self, tokens: int = 6, dim: int = 8) -> None:
        super().__init__()
        self.affine_1, self.affine_2 = Affine(dim), Affine(dim)
        self.cross_patch = nn.Linear(tokens, tokens)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.gamma_1 = nn.Parameter(torch.rand(dim) * 0.1)
        self.gamma_2 = nn.Parameter(torch.rand(dim) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma_1 * self.cross_patch(self.affine_1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.gamma_2 * self.mlp(self.affine_2(x))


class ScalarGates(nn.Module):
    """ReZero's residual weight (Bachlechner et al. 2020, shape (1,)) and NFNet's skip gain (Brock et
    al. 2021, a 0-d tensor) on the residual branches of two conv blocks."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.resweight = nn.Parameter(torch.full((1,), 0.3))
        self.skip_gain = nn.Parameter(torch.tensor(0.7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.resweight * torch.relu(self.conv_1(x))
        return x + torch.relu(self.conv_2(x)) * self.skip_gain


CASES = {
    "resmlp": (lambda: nn.Sequential(ResMLPBlock(), ResMLPBlock()), (1, 6, 8), 4),
    "scalar_gates": (ScalarGates, (1, 4, 5, 5), 2),
}


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_learned_operand_is_a_parameter_named_by_its_key(name, dynamo):
    make, shape, residuals = CASES[name]
    torch.manual_seed(0)
    module = make().eval()
    graph = from_onnx(export_onnx(module, torch.randn(*shape), dynamo, input_names=["x"]))
    assert [n.name for n in graph.nodes() if n.op == "onnx_node"] == []
    bare = {k for k, _ in module.named_parameters()} - {k for m_name, m in module.named_modules()
                                                      if isinstance(m, (nn.Linear, nn.Conv2d))
                                                      for k in (f"{m_name}.weight", f"{m_name}.bias")}
    assert {n.name for n in graph.nodes() if n.op == "parameter"} == bare
    built = build_module(graph).eval()
    built.load_state_dict(module.state_dict())  # strict: the keys are the module's own
    x = torch.randn(3, *shape[1:])  # (exported at batch 1)
    with torch.no_grad():
        torch.testing.assert_close(built(x), module(x), rtol=1e-5, atol=1e-6)
    kinds = [c.kind for c in analyze(graph, paths=False).connections]
    assert kinds.count(Kind.RESIDUAL) == residuals, kinds


class FoldedGain(nn.Module):
    """A layer scale computed from a parameter, ``(gamma * 2) * fc(x)``: the TorchScript exporter folds the
    product into an initializer of its own, ``onnx::Mul_11``, which is no state_dict key."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.gamma = nn.Parameter(torch.rand(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.gamma * 2) * self.fc(x)


def test_an_exporter_s_own_initializer_names_no_parameter():
    graph = from_onnx(export_onnx(FoldedGain().eval(), torch.randn(1, 3, 4), False, input_names=["x"]))
    (param,) = [n.name for n in graph.nodes() if n.op == "parameter"]
    assert param.endswith("_param") and "onnx" not in param, param


def test_a_learned_operand_of_another_tool_s_file_is_named_after_its_node():
    # (an initializer's name in a file not from PyTorch may be no module path: `half` is a method of
    # nn.Module, which no parameter's key may be)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "half"], ["y"], name="scaled")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[numpy_helper.from_array(np.full(3, 0.5, np.float32), "half")])
    imported = from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [(n.op, n.name) for n in imported.nodes()] == [("input", "x"), ("parameter", "scaled_param"),
                                                         ("mul", "scaled")]
    x = torch.randn(2, 3)
    with torch.no_grad():
        torch.testing.assert_close(build_module(imported)(x), x * 0.5)


class TokensAndPositions(nn.Module):
    """DeiT's stem (Touvron et al. 2021): patches, a class and a distillation token put before them, a
    learned position table added; and a table cut to the sequence's length (GPT's ``pos[:, :T]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, 4)
        self.cls_token, self.dist_token = nn.Parameter(torch.randn(1, 1, 8)), nn.Parameter(torch.randn(1, 1, 8))
        self.pos_embed = nn.Parameter(torch.randn(1, 18, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), self.dist_token.expand(x.shape[0], -1, -1), x], 1)
        return self.head((x + self.pos_embed)[:, 0])


def test_learned_tables_are_named_by_their_keys():
    # found on UNETR and DeiT (round 17): the tables were named after the ONNX nodes that read them (Add,
    # Concat_1), so the source's state_dict did not load; an export at a fixed batch folds each token's expand
    # into a constant, which still knows the token it was folded from
    torch.manual_seed(0)
    module = TokensAndPositions().eval()
    graph = from_onnx(export_onnx(module, torch.randn(2, 3, 16, 16), False, input_names=["x"]))
    assert {n.name: n.op for n in graph.nodes() if n.op in ("prepend_token", "position_embedding")} == {
        "cls_token": "prepend_token", "dist_token": "prepend_token", "pos_embed": "position_embedding"}
    built = build_module(graph).eval()
    built.load_state_dict(module.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(built(x), module(x), rtol=1e-5, atol=1e-6)


class SharedGain(nn.Module):
    """ReZero's layer as its authors' RZTXEncoderLayer writes it: one learned alpha scaling both residual
    branches, read by two nodes of the file."""

    def __init__(self) -> None:
        super().__init__()
        self.attn, self.ff = nn.Linear(8, 8), nn.Linear(8, 8)
        self.resweight = nn.Parameter(torch.full((1,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + torch.tanh(self.attn(x)) * self.resweight
        return x + torch.relu(self.ff(x)) * self.resweight


def test_a_parameter_read_twice_writes_a_spec_that_ties_it(tmp_path, run_archc):
    # found on DETR (round 17): the spec written from an import tied a parameter node as
    # `tie: {? '' : layers_1_Add.}` (its tensor's key, '', and a dangling dot); it reads `tie: {alpha: other}`
    torch.manual_seed(0)
    module = SharedGain().eval()
    path = tmp_path / "rezero.onnx"
    path.write_bytes(export_onnx(module, torch.randn(1, 4, 8), False, input_names=["x"]).SerializeToString())
    spec = tmp_path / "rezero.yaml"
    run_archc("spec", str(path), "-o", str(spec), check=True)
    text = spec.read_text()
    assert "tie:" in text and "''" not in text and ".}" not in text, text
    summary = run_archc("summary", str(spec), "--format", "json", check=True).stdout
    assert json.loads(summary)["totals"]["params"] == sum(p.numel() for p in module.parameters())


class GainsAtInit(nn.Module):
    """Three ReZero blocks as they are initialised: every gain 0 (Bachlechner et al. 2020), one parameter each."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ScalarGates() for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_gains_merged_by_the_exporter_keep_their_own_keys(dynamo):
    # found on ReZero (round 17): exported at initialisation, where every gain holds 0, the default exporter
    # merges them into one initializer named after the first; the others were named mul_1_param..., so a
    # trained state_dict loaded only the first. The exporter's metadata still names the parameter each read.
    torch.manual_seed(0)
    module = GainsAtInit().eval()
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("resweight", "skip_gain")):
                p.zero_()
    graph = from_onnx(export_onnx(module, torch.randn(1, 4, 5, 5), dynamo, input_names=["x"]))
    built = build_module(graph).eval()
    trained = GainsAtInit().eval()  # (other values, every gain its own)
    built.load_state_dict(trained.state_dict())
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(built(x), trained(x), rtol=1e-5, atol=1e-6)

