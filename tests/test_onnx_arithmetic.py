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
    kept = [n.attrs["op_type"] for n in graph.nodes() if n.op == "onnx_node"]
    # (the norm's learned weight times the normalised value, and the learned shift, stay ONNX nodes)
    assert sorted(kept) == ["Add", "Mul"]
    held = sum(int(np.prod(w.shape)) for n in graph.nodes() if n.op != "onnx_node" or n.attrs["op_type"] != "Add"
               for w in graph.weights.get(n.name, {}).values())
    assert held + 1 == sum(p.numel() for p in module.parameters())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        got = build_module(graph).eval()(x).numpy()
    np.testing.assert_allclose(got, session.run(None, {"x": x.numpy()})[0], rtol=1e-5, atol=1e-6)
