"""channel_shuffle: ShuffleNet's interleaving of channel groups, against torchvision's reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ops_harness import check_parity, feeds_for, graph_of, run_onnx, spec_error

CASES = {
    "image": "inputs: {x: [N, 6, 3, 5]}\nnodes: [{op: channel_shuffle, groups: 2}]",
    "three_groups": "inputs: {x: [N, 12, 4, 4]}\nnodes: [{op: channel_shuffle, groups: 3}]",
    "one_group": "inputs: {x: [N, 4, 2, 2]}\nnodes: [{op: channel_shuffle, groups: 1}]",
    "sequence": "inputs: {x: [N, 8, L]}\nnodes: [{op: channel_shuffle, groups: 4}]",
    "vector": "inputs: {x: [N, 6]}\nnodes: [{op: channel_shuffle, groups: 3}]",
}


def _reference(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision's channel_shuffle (ShuffleNet V2), written out as it is there."""
    batch, channels = x.shape[:2]
    x = x.view(batch, groups, channels // groups, *x.shape[2:])
    return torch.transpose(x, 1, 2).contiguous().view(batch, channels, *x.shape[3:])


@pytest.mark.parametrize("name", CASES)
def test_torch_and_onnxruntime_agree_with_torchvisions_shuffle(name):
    graph, (out,) = check_parity(CASES[name])
    feeds = feeds_for(graph)
    groups = next(n for n in graph.nodes() if n.op == "channel_shuffle").attrs["groups"]
    expected = _reference(torch.from_numpy(feeds["x"]), groups).numpy()
    np.testing.assert_array_equal(run_onnx(graph, feeds)[0], expected)
    np.testing.assert_array_equal(out, expected)


def test_it_interleaves_the_groups():
    graph = graph_of("inputs: {x: [1, 6]}\nnodes: [{op: channel_shuffle, groups: 2}]")
    (out,) = run_onnx(graph, {"x": np.arange(6, dtype=np.float32)[None]})
    assert out.tolist() == [[0, 3, 1, 4, 2, 5]]


@pytest.mark.parametrize("text, message", [
    ("inputs: {x: [N, 6, 4]}\nnodes: [{op: channel_shuffle, groups: 4}]", "6 channels do not divide into 4 groups"),
    ("inputs: {x: [N, C, 4]}\nnodes: [{op: channel_shuffle, groups: 2}]", "needs a known channel count (dim 1)"),
    ("inputs: {x: [N, 6, 4]}\nnodes: [{op: channel_shuffle, groups: 0}]",
     "attribute 'groups' of op 'channel_shuffle' must be at least 1, got 0"),
])
def test_bad_shuffles_say_what_was_expected(text, message):
    assert message in spec_error(text)
