"""The constants torch's exporters write are no learned parameters of the imported model.

The dynamo exporter writes the Python scalars of a forward (``/ math.sqrt(d)``, ``* 0.5``, GELU's
0.044715), the tensors the forward computes from literals and the module's buffers as float
initializers, beside the parameters (some folded: a Linear's weight transposed, ``self.w * 3``). Its
graph signature and the optimizer's ``folded_from`` records tell them apart
(:mod:`archc.frontends.onnx.signature`): ``archc summary`` counts what ``m.parameters()`` holds, and
a scalar factor is the ``scale`` the TorchScript export's Constant node imports as, so lint labels
both exports alike. The TorchScript exporter writes literals as Constant nodes, but its file says
nothing of which initializer is a buffer: a buffer there still counts as a parameter.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
from torch import nn  # noqa: E402

from archc.cli import main  # noqa: E402
from archc.frontends.onnx.signature import torch_constants  # noqa: E402


class HandAttention(nn.Module):
    """Scaled dot-product attention written out, with a constant factor on its result."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.d = d

    def forward(self, x):
        scores = self.q(x) @ self.k(x).transpose(-1, -2) / math.sqrt(self.d)
        return (scores.softmax(-1) @ self.v(x)) * 0.5


class HandGelu(nn.Module):
    """A linear and GELU's tanh approximation written out (four scalar constants)."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        x = self.fc(x)
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


class BufferAndConstant(nn.Module):
    """A registered buffer (a fixed position table) and a tensor the forward makes from literals."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.register_buffer("pos", torch.randn(4, d))

    def forward(self, x):
        ramp = torch.arange(8, dtype=torch.float32) * 0.1
        return self.fc(x + self.pos) + ramp


MODULES = [HandAttention, HandGelu, BufferAndConstant]
EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo")]


def archc(*argv: object) -> str:
    """Run one archc command in-process (the CLI's entry point); what it printed. It must succeed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert code == 0, out.getvalue() + err.getvalue()
    return out.getvalue()


_EXPORTS: dict = {}


def export(module_cls: type, dynamo: bool, tmp_path_factory) -> tuple[nn.Module, Path]:
    """``module_cls()`` (seeded, eval mode) and its export by one exporter (made once per test run)."""
    key = (module_cls.__name__, dynamo)
    if key not in _EXPORTS:
        if dynamo:
            pytest.importorskip("onnxscript")
        torch.manual_seed(0)
        module = module_cls().eval()
        path = tmp_path_factory.mktemp("exports") / f"{module_cls.__name__}_{'dynamo' if dynamo else 'ts'}.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.randn(2, 4, 8),), str(path), dynamo=dynamo)
        _EXPORTS[key] = module, path
    return _EXPORTS[key]


def buffer_elements(module: nn.Module) -> int:
    return sum(b.numel() for b in module.buffers())


def labels(path: Path) -> dict:
    """What ``archc lint`` labels: the counts, and each skip's and join's kind, merge op and what it carries."""
    data = json.loads(archc("lint", path, "--format", "json"))
    connections = sorted((c["kind"], c["merge_op"], c["carries"]) for c in data["skips"] + data["joins"])
    return {"summary": data["summary"], "joins": data["joins_summary"], "connections": connections}


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("module_cls", MODULES, ids=[m.__name__ for m in MODULES])
def test_archc_summary_counts_the_parameters_torch_counts(module_cls, dynamo, tmp_path_factory):
    module, path = export(module_cls, dynamo, tmp_path_factory)
    totals = json.loads(archc("summary", path, "--format", "json"))["totals"]
    expected = sum(p.numel() for p in module.parameters())
    if not dynamo:
        # the TorchScript export of a buffer is an initializer like a parameter's, and the file says
        # no more: counted (the forward's literals are Constant nodes, no parameters)
        expected += buffer_elements(module)
    assert totals["params"] == totals["trainable"] == expected


@pytest.mark.parametrize("module_cls", MODULES, ids=[m.__name__ for m in MODULES])
def test_lint_labels_both_exports_alike(module_cls, tmp_path_factory):
    pytest.importorskip("onnxscript")
    _, torchscript = export(module_cls, False, tmp_path_factory)
    _, dynamo = export(module_cls, True, tmp_path_factory)
    assert labels(dynamo) == labels(torchscript)


def test_a_scalar_factor_imports_as_scale_from_both_exporters(tmp_path_factory):
    # the dynamo export's 1/sqrt(d) and 0.5 were onnx_nodes with a one-element parameter each
    pytest.importorskip("onnxscript")
    for dynamo in (False, True):
        _, path = export(HandAttention, dynamo, tmp_path_factory)
        ops = [n["op"] for n in json.loads(archc("summary", path, "--format", "json"))["nodes"]]
        assert ops.count("scale") == 2 and "onnx_node" not in ops, ops


def load_generated(py: Path, pt: Path) -> nn.Module:
    """The last module class a generated PyTorch file defines, with the saved weights (strictly)."""
    spec = importlib.util.spec_from_file_location(f"generated_{py.stem}", py)
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)
    classes = [v for v in vars(source).values()
               if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == source.__name__]
    model = classes[-1]().eval()
    model.load_state_dict(torch.load(pt, weights_only=True))
    return model


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("module_cls", MODULES, ids=[m.__name__ for m in MODULES])
def test_archc_build_computes_what_onnxruntime_computes_on_the_export(module_cls, dynamo, tmp_path_factory,
                                                                      tmp_path):
    module, path = export(module_cls, dynamo, tmp_path_factory)
    x = torch.randn(2, 4, 8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(expected, module(x).numpy(), rtol=1e-5, atol=1e-5)
    rebuilt = tmp_path / "again.onnx"
    archc("build", path, "--target", "onnx", "-o", rebuilt)
    again = ort.InferenceSession(str(rebuilt), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(again.run(None, {again.get_inputs()[0].name: x.numpy()})[0], expected,
                               rtol=1e-5, atol=1e-5)
    py, pt = tmp_path / "m.py", tmp_path / "m.pt"
    archc("build", path, "--target", "torch", "-o", py, "--state-dict", pt)
    with torch.no_grad():
        np.testing.assert_allclose(load_generated(py, pt)(x).numpy(), expected, rtol=1e-5, atol=1e-5)


class FoldedParameter(nn.Module):
    """A parameter the exporter folds into a new initializer with a literal (``self.w * 3``), a
    buffer folded likewise, and a parameter no forward reads."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.w = nn.Parameter(torch.randn(d))
        self.unused = nn.Linear(d, 3)
        self.register_buffer("shift", torch.randn(d))

    def forward(self, x):
        return self.fc(x) * (self.w * 3) + self.shift.exp()


def test_an_initializer_folded_from_a_parameter_is_learned_one_folded_from_a_buffer_is_not(tmp_path_factory):
    module, path = export(FoldedParameter, True, tmp_path_factory)
    model = onnx.load(str(path))
    floats = {i.name for i in model.graph.initializer}
    constants = torch_constants(model.graph)
    # fc.weight transposed, w * 3 (named after the nodes that made them), fc.bias as it is
    assert len(floats - constants) == 3 and "fc.bias" in floats - constants
    assert len(constants) == 1 and not constants & {"fc.bias", "fc.weight"}
    totals = json.loads(archc("summary", path, "--format", "json"))["totals"]
    used = sum(p.numel() for name, p in module.named_parameters() if not name.startswith("unused."))
    assert totals["params"] == used == 8 * 8 + 8 + 8


def test_a_file_without_a_signature_has_no_torch_constants(tmp_path_factory):
    _, path = export(HandAttention, False, tmp_path_factory)
    graph = onnx.load(str(path)).graph
    assert graph.initializer and torch_constants(graph) == frozenset()
