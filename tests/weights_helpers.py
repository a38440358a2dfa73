"""Test-only helpers over a graph's weights (kept out of the archc package)."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from archc.ir import Graph
from archc.ops.base import ParamSpec
from archc.lowering.torch import build_module, state_dict_from_graph
from archc.ops.weights import initialize, param_entries, total_params


def state_dict_specs(graph: Graph) -> Iterator[tuple[str, ParamSpec]]:
    """(state_dict key, spec) for every parameter and buffer, in graph order."""
    return ((e.key, e.spec) for e in param_entries(graph))


def randomize_statistics(graph: Graph, seed: int = 0) -> Graph:
    """Give normalisation buffers non-trivial values (for testing folding and parity)."""
    rng = np.random.default_rng(seed + 1)
    for name, params in graph.weights.items():
        for pname, arr in params.items():
            if pname == "running_mean":
                params[pname] = rng.uniform(-0.5, 0.5, arr.shape).astype(arr.dtype)
            elif pname == "running_var":
                params[pname] = rng.uniform(0.5, 1.5, arr.shape).astype(arr.dtype)
    return graph


def randomized(module: nn.Module, scale: float = 0.3, around_init: bool = False) -> nn.Module:
    """``module`` in eval mode with seeded random parameters (``scale`` x N(0, 1); added to the
    initial values with ``around_init``) and batchnorm statistics away from 0 and 1, so a
    re-seeding, a dropped scale or a folding mistake shows in the outputs."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen) * scale
            p.add_(noise) if around_init else p.copy_(noise)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return module.eval()


def assert_same_layout(graph: Graph, reference: nn.Module) -> None:
    """The spec's state_dict keys and shapes are the reference's, in order; parameters counted alike."""
    ours = [(k, tuple(s.shape)) for k, s in state_dict_specs(graph)]
    theirs = [(k, tuple(v.shape)) for k, v in reference.state_dict().items()]
    assert ours == theirs
    assert total_params(graph) == sum(p.numel() for p in reference.parameters())


def assert_same_outputs(graph: Graph, reference: nn.Module, *inputs: torch.Tensor) -> None:
    """The reference loads archc's (seeded, statistics randomised) weights strictly; equal outputs in eval."""
    initialize(graph, seed=0)
    randomize_statistics(graph, seed=0)
    reference.load_state_dict(state_dict_from_graph(graph), strict=True)
    with torch.no_grad():
        got, want = build_module(graph).eval()(*inputs), reference.eval()(*inputs)
    assert want.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
