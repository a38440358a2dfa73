"""Test-only helpers over a graph's weights (kept out of the archc package)."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from archc.ir import Graph
from archc.ops.base import ParamSpec
from archc.ops.weights import param_entries


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
