"""Where each element of a tensor comes from, through the data-movement ops exporters chain.

Exporters move attention's heads and sequences around with long chains of Reshape,
Transpose, Squeeze, Gather/Slice and Split, which differ between exporters and between
layouts (batch-first or time-major). Rather than matching each spelling, a pattern asks
where every element came from: :func:`trace_back` walks from a value back through such
ops (and multiplications by a scalar, whose factor it collects) to the first other node,
and :func:`index_map` runs that chain on numpy index arrays, giving for each element of
the value its flat position in the chain's base. A pattern then compares the map with
the one its native op implies (:func:`canonical`): equal arrays mean the chain is that
layout, whatever ops spelt it.

Symbolic dims are given distinct concrete sizes (:class:`Sizes`), so a chain is checked
on a representative instance; the ops' attributes carry no symbol (0 copies a dim, -1
infers one), so the same chain works for every size.

Index maps are large (a BERT-base layer's are a million elements each) and a model repeats
the same chains in every layer, so what a pattern decides from them is remembered
(:func:`remembered`) under the chain's structure (:func:`signature`: what each op does to
the elements, and the types' shapes) and the sizes: the second identical layer costs a
dictionary look-up. The fixed layouts compared against (:func:`canonical`) are built once
per size.
"""
from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import numpy as np

from archc.frontends.onnx.patterns import kind, scalar
from archc.ir.graph import Graph, Node, Value

#: ops that only move elements (one tensor input)
MOVEMENT = frozenset({"reshape", "permute", "slice", "flatten", "split"})
#: imported ONNX ops that only move the elements of their first input (the others, such as a
#: Reshape's target computed from Shape at run time, say how): models exported with dynamic axes
_ONNX_RESHAPES = frozenset({"onnx:Reshape", "onnx:Squeeze", "onnx:Unsqueeze", "onnx:Flatten", "onnx:Identity"})


def is_movement(graph: Graph, node: Node) -> bool:
    """Whether ``node`` only moves the elements of its first input."""
    k = kind(node)
    if k in MOVEMENT:
        return len(node.inputs) == 1
    if k not in _ONNX_RESHAPES and k not in ("onnx:Transpose", "onnx:Gather"):
        return False
    operands = node.attrs["operands"] or []
    if not operands or operands[0] != 0 or len(node.outputs) != 1 or node.inputs[0] in node.inputs[1:]:
        return False
    if k == "onnx:Gather":  # a scalar constant index picks one slice and drops the axis
        index = graph.weights.get(node.name, {}).get(operands[1]) if len(operands) == 2 else None
        return index is not None and np.ndim(index) == 0
    return True
#: concrete sizes given to symbolic dims: distinct primes, larger than the small static dims
_PRIMES = (11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)
#: how many instances size the same symbols differently (:func:`on_two_instances`); instance k
#: takes every other prime from the k-th, so both instances' maps stay about as small
_INSTANCES = 2
#: index maps above this many elements are not built (a pattern then does not match)
MAX_ELEMENTS = 1 << 24
#: the dtype of index maps: positions stay below MAX_ELEMENTS (half the memory traffic of int64)
POSITION = np.int32


class Sizes:
    """Concrete sizes for the dims of one match: ints as they are, each symbol its own prime."""

    def __init__(self, instance: int = 0) -> None:
        self.symbols: dict[str, int] = {}
        self.primes = _PRIMES[instance::_INSTANCES]

    def dim(self, d: int | str) -> int | None:
        if isinstance(d, int):
            return d
        size = 1
        for part in str(d).split("*"):
            part = part.strip()
            if part.isdigit():
                size *= int(part)
                continue
            if part not in self.symbols:
                if len(self.symbols) == len(self.primes):
                    return None
                self.symbols[part] = self.primes[len(self.symbols)]
            size *= self.symbols[part]
        return size

    def shape(self, shape) -> tuple[int, ...] | None:
        """Concrete dims, or None where a symbol is left unsized or the tensor is too large to map."""
        dims = tuple(self.dim(d) for d in shape)
        if None in dims or math.prod(dims) > MAX_ELEMENTS:  # type: ignore[arg-type]
            return None
        return dims  # type: ignore[return-value]


T = TypeVar("T")


def on_two_instances(match: Callable[[Sizes], T | None]) -> T | None:
    """``match(sizes)`` where it holds with symbolic dims sized twice, by different primes: a chain
    that fits one choice only by coincidence (a size baked in at export equal to a prime) fails
    the other. Models without symbolic dims are checked once."""
    first = Sizes(0)
    found = match(first)
    if found is None or not first.symbols:
        return found
    return found if match(Sizes(1)) is not None else None


@dataclass
class Chain:
    """``value`` computed from ``base`` by the ``nodes`` (base side first) and a scalar ``factor``."""

    base: Value
    nodes: list[Node] = field(default_factory=list)
    factor: float = 1.0
    #: the output of each node the chain continues with (a split has several)
    outs: list[int] = field(default_factory=list)


def scalar_factor(graph: Graph, node: Node) -> float | None:
    """The factor of a multiplication (or division) of one tensor by a scalar constant."""
    k = kind(node)
    if k == "scale":
        return float(node.attrs["factor"])
    if k in ("onnx:Mul", "onnx:Div") and len(node.inputs) == 1:
        c = scalar(graph, node)
        operands = node.attrs["operands"]
        if c is None or c == 0 or (k == "onnx:Div" and operands[0] != 0):
            return None
        return c if k == "onnx:Mul" else 1.0 / c
    return None


def trace_back(graph: Graph, value: Value, scales: bool = True) -> Chain:
    """The chain of movement ops (and, with ``scales``, scalar multiplications) ending in ``value``."""
    nodes: list[Node] = []
    outs: list[int] = []
    factor = 1.0
    while True:
        node = graph.node(value.node)
        step = scalar_factor(graph, node) if scales else None
        if step is None and not is_movement(graph, node):
            break
        if step is not None:
            factor *= step
        nodes.append(node)
        outs.append(value.out)
        value = node.inputs[0]
    return Chain(value, nodes[::-1], factor, outs[::-1])


def trace_forward(graph: Graph, value: Value) -> list[Node]:
    """The movement nodes that follow ``value`` one after another, each the sole reader of the last
    (of that value: a recurrent layer's sequence read by one node while its final state is read too)."""
    nodes: list[Node] = []
    while (user := _sole_reader(graph, value)) is not None:
        node = graph.node(user)
        if not is_movement(graph, node) or kind(node) == "split" or node.inputs[0] != value:
            break  # (a split's several pieces are no single chain)
        nodes.append(node)
        value = Value(node.name, 0)
    return nodes


def _is_output(graph: Graph, value: Value) -> bool:
    return any(v.node == value.node for v in graph.outputs.values())


def _sole_reader(graph: Graph, value: Value) -> str | None:
    """The node reading ``value`` where it is the one input slot that does and the graph does not
    output it; None otherwise. (Of a node with one output: the node's one use.)"""
    if len(graph.node(value.node).outputs) == 1:
        return graph.users(value.node)[0] if graph.uses(value.node) == 1 and not _is_output(graph, value) else None
    readers = [user for user in graph.users(value.node) for v in graph.node(user).inputs if v == value]
    return readers[0] if len(readers) == 1 and value not in graph.outputs.values() else None


def step_signature(graph: Graph, node: Node, out: int) -> tuple:
    """What ``node`` (its output ``out``) does to the elements, as data read by :func:`_move`, with
    the output's shape: equal signatures move the elements of equally shaped inputs alike."""
    k = kind(node)
    shape = node.outputs[out].shape
    if not is_movement(graph, node):
        return k, out, shape, None  # (index_map passes over it)
    attributes = node.attrs.get("attributes") or {}
    if k in _ONNX_RESHAPES:
        detail: object = None  # the target is the output's shape
    elif k == "onnx:Transpose":
        perm = attributes.get("perm")
        detail = None if perm is None else tuple(int(p) for p in perm)
    elif k == "onnx:Gather":
        detail = int(graph.weights[node.name][node.attrs["operands"][1]]), int(attributes.get("axis", 0))
    else:  # archc's own movement ops: a few ints and lists
        detail = repr(sorted(node.attrs.items()))
    return k, out, shape, detail


def signature(graph: Graph, chain: Chain, end: list[Node] | None = None) -> tuple:
    """The structure of ``chain`` (and ``end`` after it) that its index maps depend on: the base's
    shape and each step's :func:`step_signature`."""
    steps = [*zip(chain.nodes, chain.outs), *((node, 0) for node in end or [])]
    return graph.type_of(chain.base).shape, tuple(step_signature(graph, node, out) for node, out in steps)


#: decisions taken on index maps, by (key, primes, symbols sized so far) -> (result, symbols after)
_REMEMBERED: dict[Hashable, tuple[object, dict[str, int]]] = {}
#: the memory of decisions is emptied when it holds this many (results are small tuples)
_REMEMBER_AT_MOST = 4096


def remembered(key: Hashable, sizes: Sizes, decide: Callable[[], T]) -> T:
    """``decide()``, or what it returned before for an equal ``key`` and equal sizes so far.

    ``key`` must hold everything ``decide`` reads (a :func:`signature` for each chain, the dims)
    and the result must not name graph nodes: it is shared between layers and graphs. The
    symbols ``decide`` sized are sized again, as if it had run."""
    full = (key, sizes.primes, tuple(sizes.symbols.items()))
    if full not in _REMEMBERED:
        if len(_REMEMBERED) >= _REMEMBER_AT_MOST:
            _REMEMBERED.clear()
        result = decide()
        _REMEMBERED[full] = (result, dict(sizes.symbols))
    result, symbols = _REMEMBERED[full]
    sizes.symbols = dict(symbols)
    return result  # type: ignore[return-value]


def _move(graph: Graph, node: Node, out: int, x: np.ndarray, sizes: Sizes) -> np.ndarray:
    """What movement ``node`` does to an array (output ``out`` of a split)."""
    a, k = node.attrs, kind(node)
    if k in _ONNX_RESHAPES:  # the target is the node's output type
        return _reshape_to(x, node.outputs[0].shape, sizes)
    if k == "onnx:Transpose":
        perm = (a.get("attributes") or {}).get("perm")
        return x.transpose(None if perm is None else [p % x.ndim for p in perm])
    if k == "onnx:Gather":
        index = graph.weights[node.name][a["operands"][1]]
        return np.take(x, int(index), axis=int((a.get("attributes") or {}).get("axis", 0)))
    if k == "reshape":
        raw = a["shape"]
        target = [raw] if isinstance(raw, int) else list(raw)
        return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(target)])
    if k == "permute":
        return x.transpose([p % x.ndim for p in a["perm"]])
    if k == "slice":
        index = [slice(None)] * x.ndim
        index[a["dim"] % x.ndim] = slice(a["start"], a["end"], a["step"])
        return x[tuple(index)]
    if k == "flatten":
        start, end = a["start_dim"] % x.ndim, a["end_dim"] % x.ndim
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1:])
    if k == "split":
        dim = a["dim"] % x.ndim
        pieces = a["sizes"]
        pieces = [pieces] * math.ceil(x.shape[dim] / pieces) if isinstance(pieces, int) else list(pieces)
        return np.split(x, np.cumsum(pieces)[:-1], axis=dim)[out]
    raise ValueError(f"not a movement op: {k}")


def _reshape_to(x: np.ndarray, shape, sizes: Sizes) -> np.ndarray:
    """``x`` reshaped to an output type's shape; one dim ONNX's inference made up (``unk__3``)
    is inferred."""
    made_up = [i for i, d in enumerate(shape) if isinstance(d, str) and d.startswith("unk")]
    if len(made_up) > 1:
        raise ValueError("more than one unknown dim")
    target = [-1 if i in made_up else sizes.dim(d) for i, d in enumerate(shape)]
    if None in target:
        raise ValueError("too many symbols")
    return x.reshape(target)


def index_map(graph: Graph, chain: Chain, sizes: Sizes, end: list[Node] | None = None) -> np.ndarray | None:
    """For each element of the chain's value, its flat position in the base (``end``: more
    movement nodes applied after the chain); None where sizes are unknown or too large."""
    shape = sizes.shape(graph.type_of(chain.base).shape)
    if shape is None or math.prod(shape) > MAX_ELEMENTS:
        return None
    x = np.arange(math.prod(shape), dtype=POSITION).reshape(shape)
    steps = [*zip(chain.nodes, chain.outs), *((node, 0) for node in end or [])]
    try:
        for node, out in steps:
            if is_movement(graph, node):
                x = _move(graph, node, out, x, sizes)
    except (ValueError, IndexError):
        return None  # a reshape that does not fit the representative sizes
    return x


def rows(layout: str, n: int, length: int) -> np.ndarray:
    """(n, length) -> flat row of a sequence tensor in ``layout``: ``"NL"`` batch-first, ``"LN"`` time-major."""
    grid = np.arange(n * length, dtype=POSITION)
    return grid.reshape(n, length) if layout == "NL" else grid.reshape(length, n).T


def canonical(layout: str, n: int, length: int, e: int) -> np.ndarray:
    """(n, length, e) -> flat position in an (n, length, e) or (length, n, e) tensor (or its 2-D view)."""
    return rows(layout, n, length)[:, :, None] * e + np.arange(e, dtype=POSITION)


def _sequence_layout(shape: tuple[int, ...] | None, found: np.ndarray | None, want: np.ndarray) -> str | None:
    """``"NL"`` or ``"LN"`` where a 3-D tensor of ``shape`` holds element (n, l, e) at ``found``'s
    position ``want[n, l, e]`` (``found``: each element's position in the tensor ``want`` indexes)."""
    n, length, e = want.shape
    if found is None or shape is None or len(shape) != 3 or found.size != want.size:
        return None
    for layout, expected in (("NL", (n, length, e)), ("LN", (length, n, e))):
        if shape == expected and np.array_equal(found.reshape(-1)[canonical(layout, n, length, e)], want):
            return layout
    return None


def find_source(graph: Graph, value: Value, layout: str, sizes: Sizes, dims: tuple[int, int, int]) -> \
        tuple[Value, str] | None:
    """The furthest 3-D value that ``value`` (a sequence (n, l, e) in ``layout``) is moved from, and
    that value's layout: through a transpose to batch-first, say; None where even ``value`` is not 3-D."""
    if math.prod(dims) > MAX_ELEMENTS:
        return None
    chain = trace_back(graph, value, scales=False)
    found = remembered(("source", signature(graph, chain), layout, dims), sizes,
                       lambda: _source_step(graph, chain, layout, sizes, dims))
    if found is None:
        return None
    k, base_layout = found
    return (chain.base if k == 0 else Value(chain.nodes[k - 1].name, chain.outs[k - 1])), base_layout


def _source_step(graph: Graph, chain: Chain, layout: str, sizes: Sizes, dims: tuple[int, int, int]) -> \
        tuple[int, str] | None:
    """(how many of the chain's nodes the source comes after, its layout) for :func:`find_source`."""
    mine = canonical(layout, *dims)
    for k in range(len(chain.nodes) + 1):
        base = chain.base if k == 0 else Value(chain.nodes[k - 1].name, chain.outs[k - 1])
        found = index_map(graph, Chain(base, chain.nodes[k:], 1.0, chain.outs[k:]), sizes)
        shape = sizes.shape(graph.type_of(base).shape)
        # element (n, l, e) of value sits at mine[n, l, e] of value, i.e. at found.flat[mine] of base
        if found is not None and found.size == mine.size:
            base_layout = _inverse_layout(shape, found.reshape(-1)[mine])
            if base_layout is not None:
                return k, base_layout
    return None


def _inverse_layout(shape: tuple[int, ...] | None, positions: np.ndarray) -> str | None:
    """The layout of a 3-D tensor of ``shape`` holding element (n, l, e) at ``positions[n, l, e]``."""
    n, length, e = positions.shape
    if shape is None or len(shape) != 3:
        return None
    for layout, expected in (("NL", (n, length, e)), ("LN", (length, n, e))):
        if shape == expected and np.array_equal(positions, canonical(layout, n, length, e)):
            return layout
    return None


def find_result(graph: Graph, value: Value, want: np.ndarray, sizes: Sizes, want_key: Hashable | None = None) -> \
        tuple[Value, str, list[Node]] | None:
    """The furthest value after ``value``, through movement nodes only it reads, that is a 3-D
    sequence: element (n, l, e) is ``value``'s flat element ``want[n, l, e]``; with its layout and
    the movement nodes up to it. None where no such value (``value`` included) exists. With a
    ``want_key`` that names ``want`` (equal keys, equal arrays) the decision is :func:`remembered`."""
    if want.size > MAX_ELEMENTS:
        return None
    after = trace_forward(graph, value)

    def decide() -> tuple[int, str] | None:
        for k in range(len(after), -1, -1):
            end = Value(after[k - 1].name) if k else value
            found = index_map(graph, Chain(value), sizes, after[:k])
            layout = _sequence_layout(sizes.shape(graph.type_of(end).shape), found, want)
            if layout is not None:
                return k, layout
        return None

    found = decide() if want_key is None else \
        remembered(("result", signature(graph, Chain(value), after), want_key), sizes, decide)
    if found is None:
        return None
    k, layout = found
    return (Value(after[k - 1].name) if k else value), layout, after[:k]
