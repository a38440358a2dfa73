"""Module paths of imported nodes: a model exported by either torch exporter comes back with the
names of the modules that ran each node, so its state_dict keys are the original model's.

The TorchScript exporter writes the path into each node's name (``/blocks.0/fn/conv/Conv``); the
default exporter names nodes after their FX nodes (``node_conv2d``) and records the path in the
``pkg.torch.onnx.name_scopes`` metadata, which the import reads instead."""
from __future__ import annotations

import contextlib
import io
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import archc  # noqa: E402
from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.lowering.torch import build_module  # noqa: E402


class Residual(nn.Module):
    """ConvMixer's residual wrapper (Trockman & Kolter 2022): fn(x) + x."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class ConvMixer(nn.Module):
    """A patch embedding, then depthwise mixing around a residual and pointwise mixing, then a head."""

    def __init__(self, dim: int = 16, depth: int = 2, kernel_size: int = 3, classes: int = 5) -> None:
        super().__init__()
        self.patch_embed = nn.Sequential(nn.Conv2d(3, dim, 4, stride=4), nn.GELU(), nn.BatchNorm2d(dim))
        self.blocks = nn.Sequential(*[nn.Sequential(
            Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"), nn.GELU(),
                                   nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, 1), nn.GELU(), nn.BatchNorm2d(dim)) for _ in range(depth)])
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.patch_embed(x))
        return self.head(x.mean(dim=(2, 3)))


class SharedLayer(nn.Module):
    """One linear layer called twice: the second call is a node of its own, named apart."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.proj(self.proj(x)) + x)


def _export(module: nn.Module, shape: tuple[int, ...], path, dynamo: bool) -> str:
    if dynamo:
        pytest.importorskip("onnxscript")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), str(path), dynamo=dynamo, input_names=["x"])
    return str(path)


EXPORTERS = [False, pytest.param(True, marks=pytest.mark.slow)]


@pytest.mark.parametrize("dynamo", EXPORTERS, ids=["torchscript", "dynamo"])
def test_state_dict_keys_are_the_exported_modules(tmp_path, dynamo):
    torch.manual_seed(0)
    model = ConvMixer().eval()
    path = _export(model, (2, 3, 16, 16), tmp_path / "convmixer.onnx", dynamo)
    built = archc.from_onnx(path)
    assert set(built.state_dict()) == set(model.state_dict())
    built.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(built(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dynamo", EXPORTERS, ids=["torchscript", "dynamo"])
def test_a_module_called_twice_names_its_second_node_apart(tmp_path, run_archc, dynamo):
    torch.manual_seed(0)
    model = SharedLayer().eval()
    path = _export(model, (4, 8), tmp_path / "shared.onnx", dynamo)
    names = [n.name for n in load_onnx(path).nodes() if n.op == "linear"]
    # (the TorchScript exporter tells the calls apart, proj.0 and proj.0_1; the default one gives both
    # calls one scope, so both are named under it)
    assert [name.startswith("proj.0") for name in names] == [True, True, False] and names[-1] == "out"
    assert len(set(names)) == 3 and not any(b.startswith(a + ".") for a in names for b in names)
    out = tmp_path / "shared.py"
    run_archc("build", path, "-o", str(out), check=True)
    assert "self.proj" in out.read_text()


class ConvBNStem(nn.Module):
    """A stem as ResNet-style code writes it, ``nn.Sequential(conv, batch norm, ReLU)``, twice."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)


@pytest.mark.parametrize("dynamo", EXPORTERS, ids=["torchscript", "dynamo"])
def test_a_conv_with_its_batch_norm_folded_in_keeps_the_conv_s_name(tmp_path, dynamo):
    # found on DLA, VoVNet and MaxViT (round 17): the default exporter's optimizer folds an eval-mode batch norm
    # into the conv before it, and the one Conv left keeps the batch norm's metadata: it was named stem.1, and
    # its weight took the key stem.1.weight, of the batch norm's shape (8,): loading the model's own
    # state_dict failed on the shapes even with strict=False
    torch.manual_seed(0)
    model = ConvBNStem().eval()
    graph = load_onnx(_export(model, (1, 3, 8, 8), tmp_path / "stem.onnx", dynamo))
    assert [n.name for n in graph.nodes() if n.op == "conv"] == ["stem.0", "stem.3"]
    built = build_module(graph)
    assert {"stem.0.weight", "stem.3.weight"} <= set(built.state_dict())
    built.load_state_dict(model.state_dict(), strict=False)  # (the folded weights differ: no error is the test)

