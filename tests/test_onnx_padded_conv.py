"""A conv after an uneven ``F.pad`` (a causal conv, TensorFlow's SAME padding at a stride): the
default exporter folds the pad into the Conv's ``pads`` (``[1, 0]``), which no symmetric
``padding`` can say. It imports as a ``pad`` node and a native ``conv`` without padding, as the
source wrote it, so the conv keeps its state_dict keys and its MACs are counted."""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.lowering.torch import build_module  # noqa: E402


class WaveNetLayers(nn.Module):
    """WaveNet (van den Oord et al. 2016): a causal conv, then dilated causal convs with the gated
    activation tanh(W_f x) * sigmoid(W_g x), each with a 1x1 residual and a 1x1 skip output."""

    def __init__(self, channels: int = 6, dilations: tuple[int, ...] = (1, 2)) -> None:
        super().__init__()
        self.dilations = dilations
        self.causal = nn.Conv1d(1, channels, 2)
        self.filters = nn.ModuleList(nn.Conv1d(channels, channels, 2, dilation=d) for d in dilations)
        self.gates = nn.ModuleList(nn.Conv1d(channels, channels, 2, dilation=d) for d in dilations)
        self.residuals = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in dilations)
        self.skips = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.causal(F.pad(x, (1, 0)))
        total = 0
        for d, f, g, res, skip in zip(self.dilations, self.filters, self.gates, self.residuals, self.skips):
            padded = F.pad(h, (d, 0))
            z = torch.tanh(f(padded)) * torch.sigmoid(g(padded))
            total = total + skip(z)
            h = h + res(z)
        return total + h


class SamePadded(nn.Module):
    """TensorFlow's SAME padding at stride 2 (EfficientNet ports): one more row and column after."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


def _export(tmp_path, model: nn.Module, x: torch.Tensor, dynamo: bool) -> str:
    if dynamo:
        pytest.importorskip("onnxscript")
    path = tmp_path / f"{type(model).__name__}_{dynamo}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=dynamo)
    return str(path)


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("module,shape", [(WaveNetLayers, (1, 1, 16)), (SamePadded, (1, 3, 9, 9))])
def test_a_conv_after_an_uneven_pad_is_a_native_conv_with_the_sources_keys(tmp_path, run_archc, module, shape,
                                                                            dynamo):
    torch.manual_seed(0)
    model, x = module().eval(), torch.randn(*shape)
    path = _export(tmp_path, model, x, dynamo)
    graph = load_onnx(path)
    assert not [n.name for n in graph.nodes() if n.op == "onnx_node"]
    convs = [n for n in graph.nodes() if n.op == "conv"]
    assert len(convs) == sum(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in model.modules())
    built = build_module(graph).eval()
    built.load_state_dict(model.state_dict(), strict=True)  # the source's keys, every one
    np.testing.assert_allclose(built(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    # every conv's MACs counted: the kernel's work at each output position
    summary = json.loads(run_archc("summary", path, "--format", "json", check=True).stdout)
    expected = sum(m.weight.numel() * int(np.prod(out.shape[2:])) for m, out in _conv_outputs(model, x))
    assert sum(row["macs"] for row in summary["nodes"] if row["op"] == "conv") == expected


def _conv_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each conv of ``model`` with its output on ``x``."""
    found: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda m, _, out: found.append((m, out)))
             for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    model(x)
    for hook in hooks:
        hook.remove()
    return found
