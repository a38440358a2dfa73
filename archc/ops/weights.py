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

import math
import os
import sys
import zlib
from typing import Any, Callable, Iterator, NamedTuple, Protocol, Sequence

import numpy as np

from archc.ir.graph import Graph, Node
from archc.ops import registry
from archc.ops.base import ParamSpec, param_key, xavier_bound
from archc.ops.weight_norm import unit_norms


def param_specs(graph: Graph, node: Node) -> dict[str, ParamSpec]:
    """The parameters and buffers of one node, in state_dict order."""
    return registry.lookup(node.op).params(node, graph.input_types(node))


#: ``node.meta`` key of a node's tied parameters: parameter name -> (source node, source parameter)
TIE_META = "tie"


def tied_params(node: Node) -> dict[str, tuple[str, str]]:
    """Parameters of ``node`` that are another node's tensor (weight tying): name -> (node, param)."""
    return node.meta.get(TIE_META, {})


#: ``node.meta`` key of a node that applies an earlier node's layer again: that node's name (see
#: :func:`reused_module`)
REUSE_META = "reuses"


def reused_module(graph: Graph, node: Node) -> str | None:
    """The earlier node whose layer ``node`` applies again (``node.meta[REUSE_META]``), as PyTorch
    calls one module twice (an unrolled cell's step, ALBERT's layer): such a node has no state_dict
    entries of its own, its module is the owner's. None for any other node, and where the owner is
    no longer one it could reuse (:func:`whole_layer_tie`)."""
    owner = node.meta.get(REUSE_META)
    return owner if owner is not None and whole_layer_tie(graph, node) == owner else None


def whole_layer_tie(graph: Graph, node: Node) -> str | None:
    """The node ``node`` is tied to as a whole: every parameter and buffer of ``node`` is the
    same-named one of that node, of the same op and attributes, in the same block instance; None
    otherwise, and for a bare tensor (a ``parameter`` node tied to another)."""
    tied = tied_params(node)
    if not tied:
        return None
    owners = {owner for owner, _ in tied.values()}
    if len(owners) != 1 or any(pname != theirs for pname, (_, theirs) in tied.items()):
        return None
    (owner,) = owners
    specs = param_specs(graph, node)
    other = graph.node(owner)
    if set(specs) != set(tied) or "" in specs or other.op != node.op or other.attrs != node.attrs:
        return None
    same_instance = (node.scope[-1].path if node.scope else "") == (other.scope[-1].path if other.scope else "")
    return owner if same_instance else None


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

    @property
    def draw_key(self) -> str:
        """The key whose random stream draws the initial values (:attr:`ParamSpec.drawn_as`)."""
        return param_key(self.node, self.spec.drawn_as) if self.spec.drawn_as else self.key


def param_entries(graph: Graph) -> Iterator[ParamEntry]:
    """Every parameter and buffer in state_dict order (keys cannot be split at the last dot:
    ``attn.out_proj.weight`` is parameter ``out_proj.weight`` of node ``attn``)."""
    for node in graph.nodes():
        if REUSE_META in node.meta and reused_module(graph, node) is not None:
            continue  # (a layer applied again: the module is its owner's, under the owner's keys)
        for pname, spec in param_specs(graph, node).items():
            yield ParamEntry(param_key(node.name, pname), node.name, pname, spec)


def _generator(key: str, seed: int, skip: int = 0) -> np.random.Generator:
    """The generator of parameter ``key``: PCG64 seeded by (seed, crc32 of the key), advanced
    past its first ``skip`` 64-bit draws."""
    bits = np.random.PCG64([seed, zlib.crc32(key.encode())])
    if skip:
        bits.advance(skip)
    return np.random.Generator(bits)


def init_array(key: str, spec: ParamSpec, seed: int) -> np.ndarray:
    """The initial value of one parameter (distribution as PyTorch's defaults)."""
    rng = _generator(key, seed)
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
    if spec.init == "unit_norms" and spec.source is not None:
        return unit_norms(init_array(key, spec.source, seed).astype(np.float64)).reshape(shape).astype(spec.dtype)
    if spec.init == "xavier_uniform":
        return _uniform(rng, shape, xavier_bound(shape), spec.dtype)
    raise ValueError(f"unknown init '{spec.init}' for {key}")


#: Elements in one piece of a large array drawn piecewise (see :meth:`DeferredArray.pieces`):
#: the set-up of a piece (a generator advanced to it) costs about what drawing a few thousand
#: values does, and a piece stays in the processor's cache while it is scaled and written.
PIECE_ELEMENTS = 1 << 20
#: Inits each of whose values depends on its position alone (one uniform stream, or a constant),
#: so that any run of them can be drawn by itself.
#: Inits drawn from the random generator (the others are fills).
RANDOM_INITS = frozenset({"uniform", "xavier_uniform"})
_DIVISIBLE = frozenset({"zeros", "ones", "constant"}) | RANDOM_INITS
_FILLS = {"zeros": 0, "ones": 1}


class DrawnAhead(Protocol):
    """Values of some deferred arrays drawn before anything asks for them (by
    :class:`archc.lowering.onnx_ahead.DrawAhead`)."""

    def deliver(self, key: str, start: int, stop: int, use: Callable[[np.ndarray], None]) -> bool:
        """Call ``use`` with the unscaled values ``start:stop`` of parameter ``key`` and return True,
        if they are drawn ahead (waiting while they are being drawn); else False."""


class DeferredArray:
    """A parameter's seeded initial value, drawn only when something asks for the array
    (``np.asarray``), and then drawn again each time rather than kept: a streaming writer
    holds one parameter at a time, whatever the model's size. Shape and dtype are known
    without drawing.

    ``unit_scales`` are factors per output unit (the first axis) that folding a following
    affine layer multiplies the weight by (:meth:`scaled`); they are applied as the values are
    drawn. A large array can be drawn in pieces (:meth:`pieces`, :meth:`draw`), on several
    threads, with exactly the values of drawing it whole. ``ahead``, where set, may hold the
    values already drawn (see :class:`DrawnAhead`); the scales are applied to them as they are
    taken, so the values are the same."""

    __slots__ = ("key", "spec", "seed", "unit_scales", "ahead")

    def __init__(self, key: str, spec: ParamSpec, seed: int, unit_scales: tuple[np.ndarray, ...] = (),
                 ahead: DrawnAhead | None = None) -> None:
        self.key, self.spec, self.seed, self.unit_scales, self.ahead = key, spec, seed, unit_scales, ahead

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

    def scaled(self, factor: np.ndarray) -> "DeferredArray":
        """These values with output unit i multiplied by ``factor[i]`` (in this array's dtype),
        as ``array *= factor.reshape(-1, 1, ...)`` would, when drawn."""
        factor = np.asarray(factor, dtype=self.dtype).reshape(-1)
        return DeferredArray(self.key, self.spec, self.seed, (*self.unit_scales, factor), self.ahead)

    def pieces(self) -> list[tuple[int, int]]:
        """``(start, stop)`` ranges of the flattened array, in order, that :meth:`draw` can draw
        independently: one range unless the init is divisible and the array large. A piece starts
        at an even element (PCG64 gives two float32 values per 64-bit draw, so a generator can be
        advanced to it) and, with unit scales, at a whole output unit."""
        n = self.spec.numel
        if n <= PIECE_ELEMENTS or not self.fills_vector():
            return [(0, n)]
        step = math.lcm(2, n // self.spec.shape[0]) if self.unit_scales else 2
        size = max(step, PIECE_ELEMENTS // step * step)
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    def draw(self, start: int, stop: int, allocate: Callable[[int, np.dtype], np.ndarray] = np.empty) -> np.ndarray:
        """Values ``start:stop`` of the flattened array (a range from :meth:`pieces`) as a vector.
        Values drawn piecewise are written into ``allocate(count, dtype)`` (a caller may hand out
        reused memory); an array that is drawn whole comes from :func:`init_array` itself."""
        if (start, stop) == (0, self.spec.numel) and not self.fills_vector():
            flat = init_array(self.key, self.spec, self.seed).reshape(-1)
            self._scale(flat, flat, start)
            return flat
        flat = allocate(stop - start, self.dtype)
        if self.ahead is None or not self.ahead.deliver(self.key, start, stop,
                                                        lambda drawn: self._scale(drawn, flat, start)):
            self.fill_unscaled(flat, start)
            self._scale(flat, flat, start)
        return flat

    def fill_unscaled(self, flat: np.ndarray, start: int) -> None:
        """Fill ``flat`` with values ``start:start + len(flat)`` of the flattened array, before the
        unit scales (only where :meth:`fills_vector`)."""
        spec = self.spec
        if spec.init in _FILLS or spec.init == "constant":
            flat[...] = _FILLS.get(spec.init, spec.value)
        else:
            bound = spec.bound if spec.init == "uniform" else xavier_bound(spec.shape)
            _uniform_into(_generator(self.key, self.seed, start // 2), flat, bound)

    def _scale(self, drawn: np.ndarray, flat: np.ndarray, start: int) -> None:
        """``flat`` := ``drawn`` (values from ``start``) times the unit scales, each factor applied as
        ``rows *= factor`` would (in place when ``drawn`` is ``flat``)."""
        if not self.unit_scales:
            if drawn is not flat:
                flat[...] = drawn
            return
        row = self.spec.numel // self.spec.shape[0]
        source, rows = drawn.reshape(-1, row), flat.reshape(-1, row)
        first = start // row
        for factor in self.unit_scales:
            np.multiply(source, factor[first:first + len(rows), None], out=rows)
            source = rows

    def fills_vector(self) -> bool:
        """Whether the values are made straight into a given vector, position by position (a
        divisible init, in the array's own dtype: uniform draws are float32 values), so that any
        run of them can be drawn by itself (:meth:`fill_unscaled`)."""
        return self.spec.init in _DIVISIBLE and (
            self.spec.init not in RANDOM_INITS or self.dtype == np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        pieces = self.pieces()
        if len(pieces) == 1:
            array = self.draw(0, self.spec.numel)
        else:
            array = np.empty(self.spec.numel, self.dtype)
            for start, stop in pieces:
                self.draw(start, stop, lambda count, dtype, start=start: array[start:start + count])
        array = array.reshape(self.shape)
        return array if dtype is None else array.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"DeferredArray({self.key!r}, shape={self.shape}, dtype={self.dtype})"


def deferred_weights(graph: Graph, seed: int = 0) -> dict[str, dict[str, DeferredArray]]:
    """Like :func:`initial_weights`, but nothing is drawn yet: node -> parameter -> DeferredArray (a tied
    parameter the very DeferredArray of the parameter it shares)."""
    entries = list(param_entries(graph))
    return _shared_by_ties(graph, entries, {(e.node, e.param): DeferredArray(e.draw_key, e.spec, seed)
                                            for e in _owned(graph, entries)})


def _owned(graph: Graph, entries: list[ParamEntry]) -> list[ParamEntry]:
    """The entries that own their tensor: not tied to another node's parameter."""
    return [e for e in entries if e.param not in tied_params(graph.node(e.node))]


def _shared_by_ties(graph: Graph, entries: list[ParamEntry],
                    owned: dict[tuple[str, str], Any]) -> dict[str, dict[str, Any]]:
    """node -> parameter -> its value in ``owned`` ((node, parameter) -> value of each owned entry): a tied
    parameter is the very value of the parameter it shares (one tensor, two keys)."""
    weights: dict[str, dict[str, Any]] = {}
    for e in entries:
        source = tied_params(graph.node(e.node)).get(e.param, (e.node, e.param))
        weights.setdefault(e.node, {})[e.param] = owned[source]
    return weights


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
    """U(-bound, bound), drawn directly in float32 (several times faster than float64 + cast);
    ``rng`` is fresh (nothing drawn from it yet)."""
    arr = np.empty(shape, np.float32)
    _uniform_into(rng, arr.reshape(-1), bound)
    return arr.astype(dtype, copy=False)


#: Whether :func:`_uniform_into` may compute numpy's float32 values from raw PCG64 output: the
#: two 32-bit halves of each 64-bit output are read in memory order, low half first.
_RAW_HALVES = sys.byteorder == "little"


def _uniform_into(rng: np.random.Generator, out: np.ndarray, bound: float) -> None:
    """Fill the float32 vector ``out`` with U(-bound, bound) values: ``rng.random(dtype=float32)``
    scaled by ``2 * bound``, then shifted by ``-bound``. ``rng`` must be fresh (or just advanced).

    numpy makes a float32 in [0, 1) from a 32-bit draw u as ``(u >> 8) * 2**-24``, and PCG64 gives
    two 32-bit draws per 64-bit output, its low half first. Those steps are done here on whole
    vectors of raw outputs, about a fifth faster than numpy's value-by-value loop; the scale is
    folded into the power-of-two factor, which changes no rounding while the product stays a
    normal float. So the values are bit for bit numpy's (a test compares them)."""
    scale = np.float32(2 * bound)
    if not _RAW_HALVES or not isinstance(rng.bit_generator, np.random.PCG64) or 0 < abs(scale) < 2.0 ** -100:
        rng.random(out=out, dtype=np.float32)
        out *= scale
    else:
        factor = scale * np.float32(2.0 ** -24)
        for start in range(0, len(out), PIECE_ELEMENTS):  # PIECE_ELEMENTS is even: no half left over
            piece = out[start:start + PIECE_ELEMENTS]
            halves = rng.bit_generator.random_raw((len(piece) + 1) // 2).view(np.uint32)[:len(piece)]
            halves >>= 8  # now under 2**24: read as int32, whose conversion to float32 is vectorised
            piece[...] = halves.view(np.int32)
            piece *= factor
    out -= np.float32(bound)


#: Below this many values in all, drawing on threads costs more than it saves.
_PARALLEL_NUMEL = 1 << 20


def drawing_threads() -> int:
    """Threads to draw weights on: one per core this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def drawn_arrays(sources: Sequence[Any]) -> Iterator[Any]:
    """Each source in order, deferred arrays drawn (others as they are). Large sets are drawn in
    their pieces on a pool of threads (numpy's generators and arithmetic release the GIL), so
    all cores work even on one large tensor; the values are those of drawing each array whole:
    a piece comes from its array's own generator advanced to it, whichever thread draws it."""
    sources = list(sources)
    workers = drawing_threads()
    if workers < 2 or sum(s.spec.numel for s in sources if isinstance(s, DeferredArray)) < _PARALLEL_NUMEL:
        yield from (np.asarray(s) if isinstance(s, DeferredArray) else s for s in sources)
        return
    from concurrent.futures import ThreadPoolExecutor

    def draw_into(flat: np.ndarray, source: DeferredArray, start: int, stop: int) -> np.ndarray:
        return source.draw(start, stop, lambda count, dtype: flat[start:start + count])

    pool = ThreadPoolExecutor(workers)
    try:
        planned: list[tuple[Any, list]] = []  # (the result, or None for a whole draw's; its draws)
        for source in sources:
            pieces = source.pieces() if isinstance(source, DeferredArray) else []
            if len(pieces) == 1:
                planned.append((None, [pool.submit(np.asarray, source)]))
            elif pieces:
                flat = np.empty(source.spec.numel, source.dtype)
                planned.append((flat.reshape(source.shape),
                                [pool.submit(draw_into, flat, source, start, stop) for start, stop in pieces]))
            else:
                planned.append((source, []))
        for result, futures in planned:
            drawn = [f.result() for f in futures]
            yield drawn[0] if result is None else result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def init_arrays(items: Sequence[tuple[str, ParamSpec]], seed: int) -> list[np.ndarray]:
    """:func:`init_array` of every ``(key, spec)``, in order; large sets are drawn in pieces on
    threads (:func:`drawn_arrays`), with the same values."""
    return list(drawn_arrays([DeferredArray(key, spec, seed) for key, spec in items]))


def initial_weights(graph: Graph, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Seeded initial values of every parameter and buffer: node -> parameter -> array.
    A tied parameter is the very array of the parameter it shares (one tensor, two keys)."""
    entries = list(param_entries(graph))
    owned = _owned(graph, entries)
    drawn = {(e.node, e.param): a for e, a in zip(owned, init_arrays([(e.draw_key, e.spec) for e in owned], seed))}
    return _shared_by_ties(graph, entries, drawn)


def initialize(graph: Graph, seed: int = 0) -> Graph:
    """Fill ``graph.weights`` with seeded initial values (in place; returns the graph)."""
    graph.weights = initial_weights(graph, seed)
    return graph
