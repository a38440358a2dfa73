"""Flatten over a symbolic size: the merged dim is the product (``T*4``), written by ONNX's reshape as
its one -1; a symbolic dim after the merged ones would need a second -1 and is refused."""
from __future__ import annotations

import pytest

from ops_harness import check_parity, graph_of, spec_error

TOKENS = "inputs: {x: [N, T, 4]}\nnodes:\n  - {name: flat, op: flatten}\n  - {op: relu}\n"


def test_a_symbolic_length_flattened_with_features_is_their_product():
    assert graph_of(TOKENS).node("flat").outputs[0].shape == ("N", "T*4")
    for steps in (3, 7):  # (one build, any length: torch and onnxruntime agree)
        check_parity(TOKENS, sizes={"N": 2, "T": steps})


def test_the_batch_flattened_with_the_rest_is_their_product():
    text = "inputs: {x: [N, 3, 4]}\nnodes:\n  - {name: flat, op: flatten, start_dim: 0, end_dim: 1}\n"
    assert graph_of(text).node("flat").outputs[0].shape == ("N*3", 4)
    check_parity(text, sizes={"N": 5})


def test_a_symbolic_dim_after_the_merged_ones_is_refused_with_the_reason():
    text = "inputs: {x: [N, T, 4, S]}\nnodes:\n  - {name: flat, op: flatten, start_dim: 1, end_dim: 2}\n"
    message = spec_error(text)
    assert "cannot flatten symbolic dim 'T' with others before another symbolic dim" in message
    assert "flat" in message


@pytest.mark.parametrize("shape", ["[N, 3, H, W]", "[N, C, 4, 4]"])
def test_an_image_of_symbolic_sizes_flattens_to_their_product(shape):
    text = f"inputs: {{x: {shape}}}\nnodes:\n  - {{name: flat, op: flatten}}\n"
    (dim,) = graph_of(text).node("flat").outputs[0].shape[1:]
    assert isinstance(dim, str) and "*" in dim
    check_parity(text, sizes={"N": 2, "H": 5, "W": 3, "C": 2})
