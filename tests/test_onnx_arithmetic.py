"""ONNX arithmetic that no fusion pattern takes comes back as the native ops a spec writes
(archc.frontends.onnx.arithmetic): RMSNorm as T5 and LLaMA write it, from modules exported by both
torch exporters, computing what onnxruntime computes on the file."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from archc.frontends.onnx import from_onnx  # noqa: E402
from archc.lowering.torch import build_module  # noqa: E402
from ops_harness import export_onnx  # noqa: E402


class RMSNorm(nn.Module):
    """T5's layer norm (Zhang & Sennrich 2019): no mean subtracted, no bias; ``x * rsqrt(mean(x^2) + eps) * w``
    (``reciprocal``: LLaMA's ``x / sqrt(...)``, as Hugging Face's T5 writes it with torch.rsqrt)."""

    def __init__(self, dim: int, reciprocal: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(dim) + 0.5)
        self.reciprocal = reciprocal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        if self.reciprocal:
            return self.weight * (x / torch.sqrt(variance + 1e-6))
        return self.weight * (x * torch.rsqrt(variance + 1e-6))


class NormedBlock(nn.Module):
    """A pre-norm feed-forward block around an RMSNorm, and a learned scalar shift a native op must
    not take (its one value is a parameter)."""

    def __init__(self, reciprocal: bool) -> None:
        super().__init__()
        self.norm = RMSNorm(8, reciprocal)
        self.ff = nn.Linear(8, 8)
        self.shift = nn.Parameter(torch.tensor([0.25]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ff(self.norm(x)) + self.shift


@pytest.mark.parametrize("reciprocal", [False, True], ids=["rsqrt", "div_sqrt"])
@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_rms_norm_imports_as_the_native_ops_a_spec_writes(dynamo, reciprocal):
    import onnxruntime as ort

    torch.manual_seed(0)
    module = NormedBlock(reciprocal).eval()
    x = torch.randn(2, 5, 8)
    model = export_onnx(module, x, dynamo, input_names=["x"])
    graph = from_onnx(model)
    ops = [n.op for n in graph.nodes()]
    assert {"pow", "mean", "add"} <= set(ops)
    assert {"sqrt", "div"} <= set(ops) if reciprocal else "rsqrt" in ops and "sqrt" not in ops
    assert "onnx_node" not in ops
    # (the norm's learned weight and the learned shift, a native op's value neither: parameters, each
    # named by its state_dict key, read by mul and add)
    assert sorted(n.name for n in graph.nodes() if n.op == "parameter") == ["norm.weight", "shift"]
    built = build_module(graph).eval()
    built.load_state_dict(module.state_dict())  # (strict: every key the module has, no other)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        got = built(x).numpy()
    np.testing.assert_allclose(got, session.run(None, {"x": x.numpy()})[0], rtol=1e-5, atol=1e-6)
