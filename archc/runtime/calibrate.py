"""Batchnorm statistics calibrated on random inputs: archc's initialisation keeps the signal alive.

With PyTorch's default initialisation a deep network's activations shrink layer after
layer (a conv drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) keeps a third of its input's
variance), and batchnorm at inference with its initial statistics (mean 0, variance 1)
does not undo that, so the outputs of a 50-layer net hardly depend on its input and two
runtimes that agree on them prove nothing. :func:`calibrate_batchnorm` runs the network
once with every batchnorm in training mode (cumulative averages, from reset statistics)
on a seeded random batch, and stores the statistics it measured as the running ones: at
inference each batchnorm then normalises its input to mean 0 and variance 1 (times its
weight, plus its bias), as in a trained network. Layers without batchnorm keep PyTorch's
defaults. Both targets then use the calibrated weights.
"""
from __future__ import annotations

import numpy as np

from archc.ir import Graph
from archc.ir.weights import param_entries
from archc.runtime.inputs import input_types, random_inputs

#: samples in the calibration batch (batchnorm over (N, C) needs more than one)
CALIBRATION_BATCH = 4


def example_dims(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """The sizes ``feeds`` give the graph's symbolic input dims (symbol -> size)."""
    dims: dict[str, int] = {}
    for name in graph.inputs:
        for d, size in zip(graph.node(name).type.shape, feeds[name].shape):
            if isinstance(d, str):
                dims.setdefault(d, int(size))
    return dims


def calibration_inputs(graph: Graph, feeds: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Seeded random inputs shaped like ``feeds``, with a batch of at least CALIBRATION_BATCH."""
    dims = example_dims(graph, feeds)
    batch_symbols = {graph.node(n).type.shape[0] for n in graph.inputs if graph.node(n).type.rank}
    for symbol in batch_symbols:
        if isinstance(symbol, str):
            dims[symbol] = max(dims.get(symbol, 1), CALIBRATION_BATCH)
    return random_inputs(input_types(graph), dims, seed + 7919)


def calibrate_batchnorm(graph: Graph, feeds: dict[str, np.ndarray], seed: int = 0) -> int:
    """Set every batchnorm's running statistics to those of a random batch like ``feeds``
    (in ``graph.weights``, which must be filled); returns how many batchnorm layers there are."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    from archc.lowering.torch import build_module

    module = build_module(graph).eval()
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        m.train()
    batch = calibration_inputs(graph, feeds, seed)
    with torch.no_grad():
        module(*[torch.from_numpy(np.ascontiguousarray(batch[n])) for n in graph.inputs])
    state = module.state_dict()
    for key, node, pname, spec in param_entries(graph):
        if spec.buffer and key in state:
            graph.weights[node][pname] = state[key].numpy().astype(spec.dtype, copy=True)
    return len(norms)
