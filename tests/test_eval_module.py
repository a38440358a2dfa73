"""The inference module (``archc build --target torch --eval``) of every shipped spec: written,
importable, loading its own state_dict strictly, and computing what the training graph's module
computes in eval mode.

``--eval`` bypasses nodes (dropout) and folds batch norms into their convolutions. Where such a
node's output is what a block instance was called with, the instance must be called with the
replacement: the graph rebinds it (``Graph.replace_all_uses_with``) and verifies the binding.
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from archc import load_spec, loads_spec
from archc.lowering.optimize import optimize_for_inference
from archc.lowering.torch import build_module
from archc.ops.weights import initialize

from conftest import ROOT, SPECS
from small_specs import SMALL, set_args
from weights_helpers import randomize_statistics

TRANSCRIBED = ROOT / "tests" / "data" / "specs_transcribed"
#: run by default: the families whose bypassed or folded nodes feed a block instance (dropout
#: before a transformer encoder, a batch norm ending an inverted residual), and a plain ResNet
QUICK = {"vit_b16", "mobilenet_v2", "resnet18", "transformer"}


def _inputs(graph) -> list[torch.Tensor]:
    rng = np.random.default_rng(0)
    out = []
    for name in graph.inputs:
        t = graph.node(name).type
        shape = [2 if isinstance(d, str) else d for d in t.shape]
        if t.dtype.startswith("float"):
            out.append(torch.from_numpy(rng.standard_normal(shape).astype(np.float32)))
        else:
            out.append(torch.from_numpy(rng.integers(0, 10, shape)))
    return out


def _outputs(module: torch.nn.Module, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    with torch.no_grad():
        out = module.eval()(*inputs)
    return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]


def _assert_same_function(graph) -> None:
    initialize(graph, 0)
    randomize_statistics(graph, 0)
    inference = optimize_for_inference(graph)
    inference.verify()
    inputs = _inputs(graph)
    for got, want in zip(_outputs(build_module(inference), inputs), _outputs(build_module(graph), inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in sorted(SMALL)])
def test_inference_module_of_every_shipped_spec_computes_the_training_graphs_function(name):
    _assert_same_function(load_spec(str(SPECS / f"{name}.yaml"), overrides=SMALL[name]))


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(TRANSCRIBED.glob("*.yaml")), ids=lambda p: p.stem)
def test_inference_module_of_transcribed_specs(path):
    _assert_same_function(load_spec(str(path)))


BLOCK_AFTER_DROPOUT = """\
archc: 1
name: after_dropout
inputs: {x: [N, 6]}
blocks:
  mlp:
    inputs: [h, skip]
    nodes:
      - {name: fc, op: linear, in: h, out_features: 6}
      - {name: add, op: add, in: [fc, skip]}
nodes:
  - {name: fc0, op: linear, out_features: 6}
  - {name: drop, op: dropout, p: 0.5}
  - {name: block, block: mlp, in: [drop, drop]}
  - {name: block2, block: mlp, in: [block, drop]}
"""


def test_a_block_called_with_a_dropped_node_is_called_with_its_input():
    graph = loads_spec(BLOCK_AFTER_DROPOUT)
    inference = optimize_for_inference(graph)
    assert "drop" not in inference.node_map()
    bound = {inst.path: [str(v) for v in inst.inputs] for n in inference.nodes() for inst in n.scope}
    assert bound == {"block": ["fc0", "fc0"], "block2": ["block.add", "fc0"]}
    # the original graph keeps its own binding
    assert {str(v) for n in graph.nodes() for inst in n.scope for v in inst.inputs} >= {"drop"}
    _assert_same_function(graph)


def test_eval_build_through_the_cli_loads_its_state_dict_and_matches(run_archc, tmp_path):
    py, pt = tmp_path / "vit_eval.py", tmp_path / "vit_eval.pt"
    run_archc("build", str(SPECS / "vit_b16.yaml"), "--target", "torch", "--eval", "-o", str(py),
              "--state-dict", str(pt), *set_args("vit_b16"), check=True)
    spec = importlib.util.spec_from_file_location("vit_eval", py)
    module = importlib.util.module_from_spec(spec)
    sys.modules["vit_eval"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["vit_eval"]
    model = module.VitB16()
    model.load_state_dict(torch.load(pt, weights_only=True), strict=True)
    graph = load_spec(str(SPECS / "vit_b16.yaml"), overrides=SMALL["vit_b16"])
    inputs = _inputs(graph)
    want = _outputs(build_module(graph, seed=0), inputs)
    np.testing.assert_allclose(_outputs(model, inputs)[0], want[0], rtol=1e-4, atol=1e-4)
