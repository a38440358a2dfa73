"""Learned parameters of a graph, as its ops declare them: specs, counts and archc's own
seeded initialiser. (Here, not in :mod:`archc.ir`, because the op definitions say what a
node's parameters are, and the IR imports no op.)

One initialiser feeds both backends: the ONNX emitter writes these arrays as
initializers and the PyTorch backend loads them as the module's state_dict, so
both targets compute the same function for a given seed, without importing torch.
Each array is drawn from its own generator seeded by (seed, parameter name), so a
parameter's values do not depend on which other nodes exist.
"""
from __future__ import annotations

import os
import zlib
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from archc.ir.graph import Graph, Node
from archc.ops import registry
from archc.ops.base import ParamSpec, param_key, xavier_bound


def param_specs(graph: Graph, node: Node) -> dict[str, ParamSpec]:
    """The parameters and buffers of one node, in state_dict order."""
    return registry.lookup(node.op).params(node, graph.input_types(node))


#: ``node.meta`` key of a node's tied parameters: parameter name -> (source node, source parameter)
TIE_META = "tie"


def tied_params(node: Node) -> dict[str, tuple[str, str]]:
    """Parameters of ``node`` that are another node's tensor (weight tying): name -> (node, param)."""
    return node.meta.get(TIE_META, {})


def count_params(graph: Graph, node: Node) -> int:
    """Learned parameters of one node (buffers excluded, like torch's parameters()); a tied
    parameter is counted once, at the node that owns it, as PyTorch's parameters() counts it."""
    tied = tied_params(node)
    return sum(p.numel for name, p in param_specs(graph, node).items() if not p.buffer and name not in tied)


def total_params(graph: Graph) -> int:
    return sum(count_params(graph, n) for n in graph.nodes())


class ParamEntry(NamedTuple):
    """One state_dict entry: its key, node and parameter name (which may contain dots)."""

    key: str
    node: str
    param: str
    spec: ParamSpec


def param_entries(graph: Graph) -> Iterator[ParamEntry]:
    """Every parameter and buffer in state_dict order (keys cannot be split at the last dot:
    ``attn.out_proj.weight`` is parameter ``out_proj.weight`` of node ``attn``)."""
    for node in graph.nodes():
        for pname, spec in param_specs(graph, node).items():
            yield ParamEntry(param_key(node.name, pname), node.name, pname, spec)


def init_array(key: str, spec: ParamSpec, seed: int) -> np.ndarray:
    """The initial value of one parameter (distribution as PyTorch's defaults)."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    shape = spec.shape
    if spec.init == "zeros":
        return np.zeros(shape, dtype=spec.dtype)
    if spec.init == "ones":
        return np.ones(shape, dtype=spec.dtype)
    if spec.init == "uniform":
        return _uniform(rng, shape, spec.bound, spec.dtype)
    if spec.init == "normal":
        arr = rng.standard_normal(size=shape, dtype=np.float32)
        arr *= np.float32(spec.std)
        return arr.astype(spec.dtype, copy=False)
    if spec.init == "constant":
        return np.full(shape, spec.value, dtype=spec.dtype)
    if spec.init == "trunc_normal":
        return _trunc_normal(rng, shape, spec).astype(spec.dtype, copy=False)
    if spec.init == "values":
        return np.asarray(spec.values, dtype=spec.dtype).reshape(shape)
    if spec.init == "xavier_uniform":
        return _uniform(rng, shape, xavier_bound(shape), spec.dtype)
    raise ValueError(f"unknown init '{spec.init}' for {key}")


class DeferredArray:
    """A parameter's seeded initial value, drawn only when something asks for the array
    (``np.asarray``), and then drawn again each time rather than kept: a streaming writer
    holds one parameter at a time, whatever the model's size. Shape and dtype are known
    without drawing."""

    __slots__ = ("key", "spec", "seed")

    def __init__(self, key: str, spec: ParamSpec, seed: int) -> None:
        self.key, self.spec, self.seed = key, spec, seed

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.spec.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.spec.dtype)

    @property
    def ndim(self) -> int:
        return len(self.spec.shape)

    @property
    def nbytes(self) -> int:
        return self.spec.numel * self.dtype.itemsize

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = init_array(self.key, self.spec, self.seed)
        return array if dtype is None else array.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"DeferredArray({self.key!r}, shape={self.shape}, dtype={self.dtype})"


def deferred_weights(graph: Graph, seed: int = 0) -> dict[str, dict[str, DeferredArray]]:
    """Like :func:`initial_weights`, but nothing is drawn yet: node -> parameter -> DeferredArray."""
    weights: dict[str, dict[str, DeferredArray]] = {}
    for e in param_entries(graph):
        weights.setdefault(e.node, {})[e.param] = DeferredArray(e.key, e.spec, seed)
    return weights


def materialized(params: dict) -> dict:
    """A node's parameters with every deferred array drawn (for code that computes with them)."""
    return {k: np.asarray(v) if isinstance(v, DeferredArray) else v for k, v in params.items()}


#: Redraws of out-of-range values before the rest are clipped (the interval is checked to
#: hold a fair share of the distribution, so this is reached with negligible probability).
_TRUNC_REDRAWS = 64


def _trunc_normal(rng: np.random.Generator, shape: tuple[int, ...], spec: ParamSpec) -> np.ndarray:
    """N(0, std) restricted to [low, high] by redrawing the values outside (rejection sampling)."""
    arr = rng.standard_normal(size=shape, dtype=np.float32) * np.float32(spec.std)
    for _ in range(_TRUNC_REDRAWS):
        outside = (arr < spec.low) | (arr > spec.high)
        count = int(outside.sum())
        if not count:
            break
        arr[outside] = rng.standard_normal(size=count, dtype=np.float32) * np.float32(spec.std)
    return np.clip(arr, spec.low, spec.high)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], bound: float, dtype: str) -> np.ndarray:
    """U(-bound, bound), drawn directly in float32 (several times faster than float64 + cast)."""
    arr = rng.random(size=shape, dtype=np.float32)
    arr *= np.float32(2 * bound)
    arr -= np.float32(bound)
    return arr.astype(dtype, copy=False)


#: Below this many values in all, drawing on threads costs more than it saves.
_PARALLEL_NUMEL = 1 << 20


def init_arrays(items: Sequence[tuple[str, ParamSpec]], seed: int) -> list[np.ndarray]:
    """:func:`init_array` of every ``(key, spec)``, in order; large sets are drawn on threads.

    numpy's generators release the GIL while they fill an array, so big models are drawn
    on all cores, largest arrays first. The values are the same as one at a time: each
    array has its own generator, whichever thread draws it.
    """
    workers = min(4, os.cpu_count() or 1)
    if workers < 2 or sum(spec.numel for _, spec in items) < _PARALLEL_NUMEL:
        return [init_array(key, spec, seed) for key, spec in items]
    from concurrent.futures import ThreadPoolExecutor

    order = sorted(range(len(items)), key=lambda i: -items[i][1].numel)
    with ThreadPoolExecutor(workers) as pool:
        drawn = dict(zip(order, pool.map(lambda i: init_array(*items[i], seed), order)))
    return [drawn[i] for i in range(len(items))]


def initial_weights(graph: Graph, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Seeded initial values of every parameter and buffer: node -> parameter -> array.
    A tied parameter is the very array of the parameter it shares (one tensor, two keys)."""
    entries = list(param_entries(graph))
    owned = [e for e in entries if e.param not in tied_params(graph.node(e.node))]
    drawn = {(e.node, e.param): a for e, a in zip(owned, init_arrays([(e.key, e.spec) for e in owned], seed))}
    weights: dict[str, dict[str, np.ndarray]] = {}
    for e in entries:
        source = tied_params(graph.node(e.node)).get(e.param, (e.node, e.param))
        weights.setdefault(e.node, {})[e.param] = drawn[source]
    return weights


def initialize(graph: Graph, seed: int = 0) -> Graph:
    """Fill ``graph.weights`` with seeded initial values (in place; returns the graph)."""
    graph.weights = initial_weights(graph, seed)
    return graph
