"""In-place inference rewrites and threaded initialisation give the same model as the copying,
one-at-a-time paths (what ``archc build`` relies on to skip copying the weights)."""
from __future__ import annotations

import os

import numpy as np

from archc import load_spec, loads_spec
from archc.ops.weights import init_array, init_arrays, initialize
from weights_helpers import randomize_statistics
from archc.ops.weights import param_entries
from archc.lowering.onnx import to_onnx
from archc.lowering.optimize import optimize_for_inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESNET18 = os.path.join(ROOT, "specs", "resnet18.yaml")


def _graph(seed: int = 3):
    return randomize_statistics(initialize(load_spec(RESNET18, {"image_size": 32}), seed), seed)


def test_inplace_fold_gives_the_same_model_and_reuses_the_arrays():
    copied = to_onnx(optimize_for_inference(_graph()), 3).SerializeToString()
    graph = _graph()
    conv1_weight = graph.weights["conv1"]["weight"]
    before = conv1_weight.copy()
    opt = optimize_for_inference(graph, inplace=True)
    assert opt is graph and "batchnorm" not in {n.op for n in graph.nodes()}
    # the weight was scaled where it is (bn1's randomised statistics make scale != 1)
    assert opt.weights["conv1"]["weight"] is conv1_weight and not np.array_equal(conv1_weight, before)
    assert to_onnx(opt, 3).SerializeToString() == copied


def test_inplace_fold_copies_read_only_weights():
    graph = _graph()
    weight = graph.weights["conv1"]["weight"]
    weight.flags.writeable = False
    before = weight.copy()
    opt = optimize_for_inference(graph, inplace=True)
    np.testing.assert_array_equal(weight, before)
    assert opt.weights["conv1"]["weight"] is not weight
    assert to_onnx(opt, 3).SerializeToString() == to_onnx(optimize_for_inference(_graph()), 3).SerializeToString()


def test_threaded_init_draws_what_one_at_a_time_draws():
    # ResNet-18 at full size is well above the size from which init_arrays uses threads.
    entries = [(e.key, e.spec) for e in param_entries(load_spec(RESNET18))]
    assert sum(s.numel for _, s in entries) > 10_000_000
    for (key, spec), array in zip(entries, init_arrays(entries, seed=7)):
        expected = init_array(key, spec, 7)
        assert array.dtype == expected.dtype and np.array_equal(array, expected), key


def test_uninitialised_graph_lowers_with_the_same_weights_as_initialize():
    spec = """
name: tiny
inputs: {x: [N, 3, 8, 8]}
nodes:
  - {name: conv, op: conv, out_channels: 4, kernel_size: 3}
  - {name: bn, op: batchnorm}
outputs: {y: bn}
"""
    assert to_onnx(loads_spec(spec), 5).SerializeToString() == \
        to_onnx(initialize(loads_spec(spec), 5), 5).SerializeToString()
