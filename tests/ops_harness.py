"""Helpers shared by the per-family op tests (tests/test_ops_*.py).

A case is a tiny spec: it is elaborated, given weights in which every parameter
matters (constant-initialised ones perturbed), lowered with the real backends
(:func:`archc.lowering.torch.build_module`, :func:`archc.lowering.onnx.to_onnx`),
and both are run on one random input whose symbolic dims take the sizes in
``SIZES``. Outputs are compared with each other and with the IR's inferred shapes.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from archc import SpecError, loads_spec
from archc.ir import Graph
from archc.ops.weights import initialize, param_specs
from archc.lowering.onnx import to_onnx
from archc.lowering.torch import build_module
from archc.ops import registry
from archc.frontends.yaml.expr import Evaluator

#: sizes given to symbolic dims at run time (odd, distinct, so a mix-up shows)
SIZES = {"N": 2, "L": 5, "S": 3, "T": 7, "B": 3}


def graph_of(text: str) -> Graph:
    return loads_spec("name: case\n" + text)


def spec_error(text: str) -> str:
    """The message of the SpecError a spec raises (fails if it elaborates)."""
    with pytest.raises(SpecError) as info:
        graph_of(text)
    return str(info.value)


def randomize(graph: Graph, seed: int = 0) -> Graph:
    """archc's init, with constant (zeros/ones) float parameters made random so they matter."""
    initialize(graph, seed)
    rng = np.random.default_rng(seed + 100)
    for node in graph.nodes():
        for pname, spec in param_specs(graph, node).items():
            if spec.init in ("ones", "zeros") and spec.dtype.startswith("float"):
                base = 1.0 if spec.init == "ones" else 0.0
                graph.weights[node.name][pname] = (base + rng.uniform(-0.5, 0.5, spec.shape)).astype(spec.dtype)
    return graph


def randomized_module(module: torch.nn.Module, scale: float = 0.4, seed: int = 0) -> torch.nn.Module:
    """``module`` with every parameter drawn from N(0, scale²) (a fixed seed), in eval mode: recurrent
    layers' default init is too small to tell gates apart."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return module.eval()


def concrete(shape, sizes=None) -> tuple[int, ...]:
    """A shape with symbolic dims (also compound ones like 'N*4') evaluated at ``sizes``."""
    evaluator = Evaluator({**SIZES, **(sizes or {})})
    return tuple(d if isinstance(d, int) else int(evaluator.evaluate(d)) for d in shape)


def feeds_for(graph: Graph, sizes=None, seed: int = 0, high: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Random inputs: floats N(0, 1); integers in [0, high[name]); bools with p = 0.3."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name in graph.inputs:
        t = graph.node(name).type
        shape = concrete(t.shape, sizes)
        if t.dtype.startswith("int"):
            feeds[name] = rng.integers(0, (high or {}).get(name, 10), shape).astype(t.dtype)
        elif t.dtype == "bool":
            feeds[name] = rng.random(shape) < 0.3
        else:
            feeds[name] = rng.standard_normal(shape).astype(t.dtype)
    return feeds


def run_torch(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    module = build_module(graph).eval()
    with torch.no_grad():
        got = module(*[torch.from_numpy(feeds[n]) for n in graph.inputs])
    return [t.numpy() for t in (got if isinstance(got, tuple) else (got,))]


def onnx_model(graph: Graph) -> onnx.ModelProto:
    model = to_onnx(graph)
    # full_check runs strict shape inference: the declared output shapes must agree with ONNX's.
    onnx.checker.check_model(model, full_check=True)
    return model


def run_onnx(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(onnx_model(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(list(graph.outputs), feeds)


def check_parity(text: str, sizes=None, seed: int = 0, rtol: float = 1e-4, atol: float = 1e-5,
                 high: dict[str, int] | None = None) -> tuple[Graph, list[np.ndarray]]:
    """Torch (eval) and onnxruntime agree on a spec's outputs, and both match the inferred shapes."""
    graph = randomize(graph_of(text), seed)
    feeds = feeds_for(graph, sizes, seed, high)
    torch_out = run_torch(graph, feeds)
    ort_out = run_onnx(graph, feeds)
    assert len(torch_out) == len(ort_out) == len(graph.outputs)
    for (name, value), t, o in zip(graph.outputs.items(), torch_out, ort_out):
        declared = graph.type_of(value)
        assert t.shape == o.shape == concrete(declared.shape, sizes), \
            f"{name}: torch {t.shape}, onnxruntime {o.shape}, inferred {declared}"
        assert str(t.dtype) == str(o.dtype) == declared.dtype, f"{name}: dtypes {t.dtype}, {o.dtype}, {declared}"
        if declared.dtype.startswith("float"):
            np.testing.assert_allclose(o, t, rtol=rtol, atol=atol, err_msg=f"output {name}")
        else:
            np.testing.assert_array_equal(o, t, err_msg=f"output {name}")
    return graph, torch_out


def module_of(graph: Graph, node: str) -> torch.nn.Module:
    """The submodule the PyTorch backend built for ``node`` (weights loaded)."""
    return build_module(graph).eval().get_submodule(node)


def assert_same_state_dict_layout(ours: torch.nn.Module, reference: torch.nn.Module) -> None:
    """Same keys, in the same order, with the same shapes and dtypes."""
    a, b = ours.state_dict(), reference.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype, key


def parity_suite(cases: list[tuple[str, str]], parity_ops: set[str], **options):
    """The two tests every per-family module has: each case's parity, and that the cases
    use every op the module claims to cover. Use: ``test_parity, test_cases_cover_parity_ops =
    parity_suite(CASES, PARITY_OPS)``; ``options`` go to :func:`check_parity`."""

    @pytest.mark.parametrize("text", [c[1] for c in cases], ids=[c[0] for c in cases])
    def test_parity(text):
        check_parity(text, **options)

    def test_cases_cover_parity_ops():
        used = {registry.lookup(n.op).name for _, text in cases for n in graph_of(text).nodes()}
        assert parity_ops <= used

    return test_parity, test_cases_cover_parity_ops


def export_onnx(module: torch.nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...], dynamo: bool,
                **options) -> onnx.ModelProto:
    """``module`` (in eval mode) exported by torch's TorchScript exporter (``dynamo=False``) or its
    default one, quietly: a foreign model of the op to import (``x``: its input, or a tuple of its
    inputs; ``options``: the exporter's)."""
    if dynamo:
        pytest.importorskip("onnxscript")
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), x if isinstance(x, tuple) else (x,), buffer, dynamo=dynamo, **options)
    return onnx.load_from_string(buffer.getvalue())
