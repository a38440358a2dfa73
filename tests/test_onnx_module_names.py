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
