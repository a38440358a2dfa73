"""Inference rewrites: folding, identity removal and dead-node removal keep the computed function."""
from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest
import torch

from archc import load_spec, loads_spec
from archc.ops.weights import initialize
from weights_helpers import randomize_statistics
from archc.lowering.onnx import to_onnx
from archc.lowering.optimize import optimize_for_inference
from archc.lowering.torch import build_module
from archc.ops import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _random_weights(graph, seed: int = 0):
    """archc's init, then batchnorm statistics and affine parameters that are not identities."""
    initialize(graph, seed)
    randomize_statistics(graph, seed)
    rng = np.random.default_rng(seed + 10)
    for params in graph.weights.values():
        if "running_var" in params:
            for name in ("weight", "bias") if "weight" in params else ():  # (none without affine)
                params[name] = rng.uniform(0.5, 1.5, params[name].shape).astype(np.float32)
    return graph


def _torch(graph, *inputs: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = build_module(graph).eval()(*[torch.from_numpy(x) for x in inputs])
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def _ort(graph, *inputs: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(graph.inputs, inputs)))


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_resnet18_folds_every_batchnorm_and_computes_the_same():
    graph = _random_weights(load_spec(os.path.join(ROOT, "specs", "resnet18.yaml"), {"image_size": 32}))
    conv1_weight = graph.weights["conv1"]["weight"]
    opt = optimize_for_inference(graph)

    ops = [n.op for n in opt.nodes()]
    assert "batchnorm" not in ops
    assert len(opt) == len(graph) - 20  # ResNet-18 has 20 batchnorms, all after a conv
    assert all(n.attrs["bias"] for n in opt.nodes() if n.op == "conv")
    # the original graph is untouched: its nodes, attributes and arrays
    assert sum(n.op == "batchnorm" for n in graph.nodes()) == 20
    assert graph.node("conv1").attrs["bias"] is False and "bias" not in graph.weights["conv1"]
    assert graph.weights["conv1"]["weight"] is conv1_weight

    x = _x(2, 3, 32, 32)
    (before,) = _torch(graph, x)
    (after,) = _torch(opt, x)
    (onnx_after,) = _ort(opt, x)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(onnx_after, before, rtol=1e-4, atol=1e-5)
    assert not np.allclose(before, _torch(load_spec(os.path.join(ROOT, "specs", "resnet18.yaml"),
                                                    {"image_size": 32}), x)[0], atol=1e-3)


def test_no_fold_when_the_producer_has_another_use():
    graph = _random_weights(loads_spec("""
name: shared
inputs: {x: [N, 3, 6, 6]}
nodes:
  - {name: conv, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: bn, op: batchnorm}
  - {name: side, op: relu, in: conv}
  - {name: sum, op: add, in: [bn, side]}
  - {name: conv2, op: conv, out_channels: 4, kernel_size: 1}
  - {name: bn2, op: batchnorm}
outputs: {y: sum, raw: conv2, normed: bn2}
"""))
    opt = optimize_for_inference(graph)
    assert [n.name for n in opt.nodes()] == [n.name for n in graph.nodes()]  # conv is shared, conv2 an output
    x = _x(2, 3, 6, 6)
    for a, b in zip(_torch(opt, x), _torch(graph, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_linear_absorbs_batchnorm_only_on_the_feature_axis():
    graph = _random_weights(loads_spec("""
name: mlp
inputs: {x: [N, 5], s: [N, 4, 5]}
nodes:
  - {name: fc, op: linear, out_features: 6, bias: false, in: x}
  - {name: bn, op: batchnorm}
  - {name: seq, op: linear, out_features: 3, in: s}
  - {name: seq_bn, op: batchnorm}
outputs: [bn, seq_bn]
"""))
    opt = optimize_for_inference(graph)
    # (N, 6): channels are the features; (N, 4, 3): batchnorm's channels are dim 1, not the features
    assert [n.name for n in opt.nodes()] == ["x", "s", "fc", "seq", "seq_bn"]
    assert opt.node("fc").attrs["bias"] is True and opt.weights["fc"]["bias"].shape == (6,)
    assert list(opt.outputs.values())[0].node == "fc"
    x, s = _x(3, 5), _x(3, 4, 5)
    for a, b, c in zip(_torch(opt, x, s), _torch(graph, x, s), _ort(opt, x, s)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c, b, rtol=1e-5, atol=1e-5)


def test_chained_batchnorms_fold_one_after_another():
    graph = _random_weights(loads_spec("""
name: chain
inputs: {x: [N, 2, 5, 5]}
nodes:
  - {op: conv, out_channels: 3, kernel_size: 3}
  - {name: bn_a, op: batchnorm}
  - {name: bn_b, op: batchnorm, eps: 0.01}
"""))
    opt = optimize_for_inference(graph)
    assert [n.op for n in opt.nodes()] == ["input", "conv"]
    x = _x(2, 2, 5, 5)
    np.testing.assert_allclose(_torch(opt, x)[0], _torch(graph, x)[0], rtol=1e-5, atol=1e-5)


def test_batchnorm_without_affine_folds_as_a_unit_scale_and_zero_shift():
    graph = _random_weights(loads_spec("""
name: plain
inputs: {x: [N, 2, 5, 5]}
nodes:
  - {name: conv, op: conv, out_channels: 3, kernel_size: 3, bias: false}
  - {name: bn, op: batchnorm, affine: false, eps: 0.01}
"""))
    opt = optimize_for_inference(graph)
    assert [n.op for n in opt.nodes()] == ["input", "conv"] and opt.node("conv").attrs["bias"] is True
    stats = graph.weights["bn"]
    scale = 1 / np.sqrt(stats["running_var"].astype(np.float64) + 0.01)
    np.testing.assert_allclose(opt.weights["conv"]["weight"],
                               graph.weights["conv"]["weight"] * scale[:, None, None, None], rtol=1e-6)
    np.testing.assert_allclose(opt.weights["conv"]["bias"], -stats["running_mean"] * scale, rtol=1e-6)
    x = _x(2, 2, 5, 5)
    expected = _torch(graph, x)[0]
    np.testing.assert_allclose(_torch(opt, x)[0], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_ort(opt, x)[0], expected, rtol=1e-5, atol=1e-5)


def test_identities_and_dead_nodes_are_removed():
    graph = loads_spec("""
name: cleanup
inputs: {x: [N, 4], unused: [N, 2]}
nodes:
  - {name: keep, op: identity}
  - {name: again, op: identity}
  - {name: fc, op: linear, out_features: 3}
  - {name: dead_fc, op: linear, in: x, out_features: 2}
  - {name: dead_relu, op: relu}
  - {name: passthrough, op: identity, in: x}
outputs: {y: fc, same: passthrough}
""")
    opt = optimize_for_inference(graph)
    assert [n.name for n in opt.nodes()] == ["x", "unused", "fc"]  # graph inputs stay, even unused
    assert opt.node("fc").inputs[0].node == "x"
    assert dict(opt.outputs) == {"y": graph.outputs["y"], "same": opt.outputs["same"]}
    assert opt.outputs["same"].node == "x"
    assert "dead_fc" not in opt.weights and set(opt.weights) == {"fc"}
    assert len(graph) == 8 and graph.weights == {}  # the original is unchanged

    x, u = _x(2, 4), _x(2, 2)
    (y_ref, same_ref), (y, same), (y_onnx, same_onnx) = _torch(graph, x, u), _torch(opt, x, u), _ort(opt, x, u)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6)
    np.testing.assert_allclose(y_onnx, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(same, x)
    np.testing.assert_array_equal(same_ref, x)
    np.testing.assert_array_equal(same_onnx, x)


def test_dropout_is_dropped_as_an_identity():
    if registry.get("dropout") is None:
        pytest.skip("no dropout op registered")
    graph = loads_spec("""
name: drop
inputs: {x: [N, 4]}
nodes:
  - {name: fc, op: linear, out_features: 4}
  - {name: drop, op: dropout, p: 0.5}
  - {name: fc2, op: linear, out_features: 2}
""")
    opt = optimize_for_inference(graph)
    assert [n.name for n in opt.nodes()] == ["x", "fc", "fc2"]
    x = _x(3, 4)
    np.testing.assert_allclose(_ort(opt, x)[0], _torch(graph, x)[0], rtol=1e-5, atol=1e-6)


def test_a_graph_without_weights_is_optimised_with_seed_0_weights():
    graph = loads_spec("""
name: noweights
inputs: {x: [N, 3, 6, 6]}
nodes:
  - {op: conv, out_channels: 4, kernel_size: 3, bias: false}
  - {op: batchnorm}
""")
    opt = optimize_for_inference(graph)
    assert graph.weights == {} and set(opt.weights) == {"conv"}
    x = _x(1, 3, 6, 6)
    np.testing.assert_allclose(_torch(opt, x)[0], _torch(graph, x)[0], rtol=1e-5, atol=1e-6)
