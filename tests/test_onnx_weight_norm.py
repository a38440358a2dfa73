"""A weight-normed layer from the TorchScript exporter (which keeps ``g`` and ``v`` and writes out
``g * v / ||v||``) imports as the layer with ``weight_norm: true``: the file's parameters, under
PyTorch's keys, not one plain weight folded from them."""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils.parametrizations import weight_norm  # noqa: E402

from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.lowering.torch import build_module  # noqa: E402


class TemporalBlock(nn.Module):
    """A TCN's residual block (Bai et al. 2018): two weight-normed dilated causal convs (padded, then
    chomped back to the input's length), each followed by ReLU, and a 1x1 conv on the shortcut where
    the channels change."""

    def __init__(self, c_in: int, c_out: int, dilation: int) -> None:
        super().__init__()
        self.pad = 2 * dilation
        self.conv1 = weight_norm(nn.Conv1d(c_in, c_out, 3, padding=self.pad, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(c_out, c_out, 3, padding=self.pad, dilation=dilation))
        self.downsample = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x)[:, :, :-self.pad])
        h = torch.relu(self.conv2(h)[:, :, :-self.pad])
        return torch.relu(h + (x if self.downsample is None else self.downsample(x)))


class TCN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(TemporalBlock(3, 6, 1), TemporalBlock(6, 6, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def test_a_weight_normed_conv_keeps_g_and_v_under_pytorchs_keys(tmp_path, run_archc):
    torch.manual_seed(0)
    model, x = TCN().eval(), torch.randn(1, 3, 12)
    path = tmp_path / "tcn.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False)
    graph = load_onnx(str(path))
    normed = [n.name for n in graph.nodes() if n.op == "conv" and n.attrs.get("weight_norm")]
    assert len(normed) == 4, normed
    built = build_module(graph).eval()
    built.load_state_dict(model.state_dict(), strict=True)  # g and v, every key the source has
    np.testing.assert_allclose(built(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    summary = json.loads(run_archc("summary", str(path), "--format", "json", check=True).stdout)
    assert summary["totals"]["params"] == sum(p.numel() for p in model.parameters())


def test_a_product_of_learned_tensors_that_is_no_weight_norm_stays_one_weight(tmp_path):
    # a weight scaled by a learned per-unit gain without the division by its norm: folded, as before
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.v = nn.Parameter(torch.randn(4, 3, 3))
            self.g = nn.Parameter(torch.rand(4, 1, 1) + 0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.conv1d(x, self.v / self.v.abs().amax() * self.g)

    torch.manual_seed(0)
    model, x = Scaled().eval(), torch.randn(1, 3, 8)
    path = tmp_path / "scaled.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False)
    graph = load_onnx(str(path))
    assert not [n.name for n in graph.nodes() if n.attrs.get("weight_norm")]
    np.testing.assert_allclose(build_module(graph).eval()(x).detach().numpy(), model(x).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
