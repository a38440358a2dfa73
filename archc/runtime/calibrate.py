"""archc's initialisation for verification keeps the signal alive: weights calibrated on random inputs.

With PyTorch's default initialisation a deep network's activations shrink layer after
layer (a conv drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) keeps a third of its input's
variance), and batchnorm at inference with its initial statistics (mean 0, variance 1)
does not undo that, so the outputs of a 50-layer net hardly depend on its input and two
runtimes that agree on them prove nothing. :func:`calibrate` runs the network once on a
seeded random batch and, in that one pass, in graph order:

* scales every conv and linear layer's weight and bias so that its output has unit
  variance on the batch (layer-sequential unit variance, Mishkin & Matas, "All you need is
  a good init", ICLR 2016); a layer whose weight is tied to another's is left as it is;
* sets every batchnorm's running statistics to those the batch gives its input, so that at
  inference it normalises as in a trained network. The batch is large enough for every
  batchnorm to see at least MIN_VALUES_PER_CHANNEL values per channel
  (:func:`calibration_batch`): statistics of a few values are noisy, and their errors multiply
  through a deep stage at a small resolution until the network amplifies rounding differences
  exponentially (EfficientNetV2-S at 64 x 64: 15 blocks at 2 x 2, divergent with 4 samples).

The distributions stay PyTorch's defaults up to one factor per layer. Both targets then
use the calibrated weights.
"""
from __future__ import annotations

import numpy as np

from archc.errors import RuntimeFailure
from archc.ir import Graph
from archc.ir.dims import evaluate
from archc.ops.weights import param_entries
from archc.runtime.inputs import index_bounds, input_types, random_inputs

#: samples in the calibration batch at least (batchnorm over (N, C) needs more than one)
CALIBRATION_BATCH = 4
#: values per channel each batchnorm should see in the calibration batch, and the batch's cap
MIN_VALUES_PER_CHANNEL = 64
MAX_CALIBRATION_BATCH = 64


def calibration_batch(graph: Graph, dims: dict[str, int]) -> int:
    """Samples that give every node with running statistics (a buffer) MIN_VALUES_PER_CHANNEL
    values per channel: its input's size per sample and channel (dims 2..), symbols sized by ``dims``;
    between CALIBRATION_BATCH and MAX_CALIBRATION_BATCH."""
    smallest = None
    for entry in param_entries(graph):
        if not entry.spec.buffer:
            continue
        node = graph.node(entry.node)
        if not node.inputs:
            continue
        per_sample = 1
        for d in graph.type_of(node.inputs[0]).shape[2:]:
            per_sample *= d if isinstance(d, int) else max(1, evaluate(d, lambda symbol: dims.get(symbol, 1)))
        smallest = per_sample if smallest is None else min(smallest, per_sample)
    if smallest is None:
        return CALIBRATION_BATCH
    return min(MAX_CALIBRATION_BATCH, max(CALIBRATION_BATCH, -(-MIN_VALUES_PER_CHANNEL // max(smallest, 1))))


def example_dims(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """The sizes ``feeds`` give the graph's symbolic input dims (symbol -> size)."""
    dims: dict[str, int] = {}
    for name in graph.inputs:
        for d, size in zip(graph.node(name).type.shape, feeds[name].shape):
            if isinstance(d, str):
                dims.setdefault(d, int(size))
    return dims


def calibration_inputs(graph: Graph, feeds: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Seeded random inputs shaped like ``feeds``, with a batch of at least :func:`calibration_batch`.
    An integer input (token ids, indices) draws its values from its feed's own: what the inputs index
    (a token-type table of 2 rows) takes the values given (``--input``), not any drawn at random."""
    dims = example_dims(graph, feeds)
    batch = calibration_batch(graph, dims)
    batch_symbols = {graph.node(n).type.shape[0] for n in graph.inputs if graph.node(n).type.rank}
    for symbol in batch_symbols:
        if isinstance(symbol, str):
            dims[symbol] = max(dims.get(symbol, 1), batch)
    drawn = random_inputs(input_types(graph), dims, seed + 7919, index_bounds(graph))
    rng = np.random.default_rng(seed + 7919)
    for name, array in drawn.items():
        given = feeds.get(name)
        if given is not None and given.size and np.issubdtype(array.dtype, np.integer) \
                and np.issubdtype(given.dtype, np.integer):
            drawn[name] = rng.choice(given.reshape(-1), size=array.shape).astype(array.dtype)
    return drawn


def calibrate(graph: Graph, feeds: dict[str, np.ndarray], seed: int = 0) -> tuple[int, int]:
    """Calibrate ``graph.weights`` (filled) on a random batch like ``feeds``; returns
    (layers scaled to unit output variance, batchnorm layers whose statistics were set)."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.conv import _ConvNd

    from archc.lowering.torch import build_module
    from archc.runtime.torch_runner import forward

    module = build_module(graph).eval()
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        m.train()
    shared = _shared_parameters(module)
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, _ConvNd)) and id(m.weight) not in shared]
    hooks = [m.register_forward_hook(_unit_variance) for m in layers]
    hooks += [m.register_forward_pre_hook(_one_value_per_channel) for m in norms]
    try:  # (a module that fails on the batch fails as the comparison's own run would: a RuntimeFailure)
        forward(module, graph, calibration_inputs(graph, feeds, seed), "cpu")
    except RuntimeFailure as exc:
        raise RuntimeFailure(exc.diagnostics[0].message + _drawn_integers_hint(graph)) from None
    finally:
        for h in hooks:
            h.remove()
    state = module.state_dict()
    for key, node, pname, spec in param_entries(graph):
        if key in state and node in graph.weights:
            graph.weights[node][pname] = state[key].numpy().astype(spec.dtype, copy=True)
    return len(layers), sum(int(m.num_batches_tracked) > 0 for m in norms)


def _one_value_per_channel(norm, args) -> None:
    """Before a batchnorm's forward: where its input holds one value per channel (a BatchNorm1d over
    pooled (N, C) features of a model exported at batch 1, whose batch the calibration cannot grow), no
    statistics can be taken; it keeps its initial ones (PyTorch refuses such a batch in training)."""
    x = args[0]
    if x.dim() >= 2 and x.numel() // max(x.shape[1], 1) < 2:
        norm.eval()


def _drawn_integers_hint(graph: Graph) -> str:
    """Why a module with drawn weights may fail: integer constants (shapes, axes, indices a spec
    written back from a model keeps as parameters) hold random values until its weights are given."""
    ints = [f"{node}.{name}" for _, node, name, spec in param_entries(graph)
            if np.dtype(spec.dtype).kind in "iub" and spec.init != "values"]  # (values: data the spec holds)
    if not ints:
        return ""
    return (f"; its integer constants ({', '.join(repr(k) for k in ints[:3])}{', ...' * (len(ints) > 3)}) hold "
            "archc's random values: give the model's weights with --weights FILE.pt (`archc spec "
            "--weights-out` writes them)")


def _shared_parameters(module) -> set[int]:
    """ids of parameters reachable under two names (tied weights)."""
    seen: dict[int, int] = {}
    for _, p in module.named_parameters(remove_duplicate=False):
        seen[id(p)] = seen.get(id(p), 0) + 1
    return {i for i, count in seen.items() if count > 1}


def _unit_variance(layer, inputs, output):
    """Forward hook: scale the layer so that this output has unit variance, and pass it on scaled."""
    std = float(output.float().std()) if output.numel() > 1 else 0.0
    if not np.isfinite(std) or std < 1e-12:
        return output
    from torch.nn.utils import parametrize

    # A weight-normed layer's weight is computed (g * v / ||v||): its magnitude g scales it.
    scaled = layer.parametrizations.weight.original0 if parametrize.is_parametrized(layer, "weight") else layer.weight
    scaled.mul_(1.0 / std)
    if layer.bias is not None:
        layer.bias.mul_(1.0 / std)
    return output / std
