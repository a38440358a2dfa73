"""positions: the int64 ids 0 .. S-1 of an input's dim (GPT-2's wpe input): parity of both
lowerings with a symbolic length, nanoGPT's position embedding layout, analysis role, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from archc.ops import registry
from ops_harness import feeds_for, graph_of, parity_suite, run_onnx, spec_error

PARITY_OPS = {"positions"}

CASES = [
    ("positions_tokens", "inputs: {x: {shape: [N, S], dtype: int64}}\nnodes: [{op: positions}]"),
    ("positions_last_dim", "inputs: {x: [N, 3, L]}\nnodes: [{op: position_ids, dim: -1}]"),
    ("positions_embedded", "inputs: {x: {shape: [N, S], dtype: int64}}\nnodes:\n"
     "  - {name: ids, op: positions}\n  - {op: embedding, num_embeddings: 9, embedding_dim: 4}"),
]

test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


class NanoGptEmbeddings(nn.Module):
    """nanoGPT's token and position embeddings, as written there."""

    def __init__(self, vocab: int = 20, block_size: int = 9, dim: int = 4) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(block_size, dim)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(0, idx.shape[1], dtype=torch.long, device=idx.device)
        return self.wte(idx) + self.wpe(pos)


SPEC = """inputs: {idx: {shape: [N, S], dtype: int64}}
nodes:
  - {name: wte, op: embedding, num_embeddings: 20, embedding_dim: 4}
  - {name: pos, op: positions, in: idx}
  - {name: wpe, op: embedding, num_embeddings: 9, embedding_dim: 4}
  - {name: out, op: add, in: [wte, wpe]}
"""


def test_nanogpt_position_embedding_loads_strictly_and_agrees():
    graph = graph_of(SPEC)
    from archc.lowering.torch import build_module

    ours, ref = build_module(graph, seed=0).eval(), NanoGptEmbeddings().eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    idx = np.random.default_rng(0).integers(0, 20, (2, 7))
    with torch.no_grad():
        want = ref(torch.from_numpy(idx)).numpy()
        np.testing.assert_allclose(ours(torch.from_numpy(idx)).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(run_onnx(graph, {"idx": idx})[0], want, rtol=1e-6)


def test_the_ids_follow_the_input_length_and_are_a_shape_computation():
    graph = graph_of("inputs: {x: {shape: [N, S], dtype: int64}}\nnodes: [{name: p, op: positions}]")
    assert graph.node("p").outputs[0].shape == ("S",) and graph.node("p").outputs[0].dtype == "int64"
    assert registry.lookup("positions").role == "shape"
    x = torch.from_numpy(feeds_for(graph)["x"])
    from archc.lowering.torch import build_module

    assert build_module(graph)(x).tolist() == list(range(x.shape[1]))


@pytest.mark.parametrize("text,expected", [
    ("inputs: {x: [N, 3]}\nnodes: [{op: positions, dim: 2}]",
     "dim 2 is out of range for a 2-D input (N, 3); expected -2 <= dim < 2"),
    ("inputs: {x: [N, 3]}\nnodes: [{op: positions, axis: 1}]",
     "op 'positions' has no attribute 'axis'; it has: dim (op 'positions' calls it 'dim': write dim)"),
])
def test_errors_name_the_place_and_what_was_expected(text, expected):
    message = spec_error(text)
    assert expected in message and message.startswith("<spec>:"), message
