"""A model exported at a fixed batch (torch.onnx.export's default) comes back as a module that runs at
any batch where the ops allow: what the import writes for the exporters' index arithmetic names no
batch size."""
from __future__ import annotations

import contextlib
import io
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.lowering.torch import build_module  # noqa: E402


class LastStep(nn.Module):
    """A temporal convolutional network's head (Bai et al. 2018): a causal conv over (N, C, T), then
    a linear layer on the last time step, ``y[:, :, -1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=2)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)[:, :, :-2]
        return self.head(y[:, :, -1])


class FirstToken(nn.Module):
    """A classifier over tokens that reads the first one, ``x[:, 0]`` (BERT's pooler)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.proj(x))[:, 0])


class StackedSteps(nn.Module):
    """A recurrent decoder's outputs, one (N, D) per step, stacked over time (``torch.stack(outs, 1)``:
    an Unsqueeze of each, then a Concat), then a projection of each step."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = nn.ModuleList(nn.Linear(6, 6) for _ in range(3))
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [torch.tanh(step(x[:, t])) for t, step in enumerate(self.steps)]
        return self.head(torch.stack(outs, 1))


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("module,shape", [(LastStep, (1, 4, 12)), (FirstToken, (1, 7, 6)), (StackedSteps, (1, 3, 6))],
                         ids=["last_step", "first_token", "stacked_steps"])
def test_a_picked_position_of_an_export_at_batch_1_runs_at_other_batches(tmp_path, module, shape, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = module().eval()
    path = str(tmp_path / "model.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(*shape),), path, dynamo=dynamo, input_names=["x"])
    built = build_module(load_onnx(path)).eval()
    built.load_state_dict(model.state_dict())
    x = torch.randn(3, *shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(built(x), model(x), rtol=1e-5, atol=1e-6)
