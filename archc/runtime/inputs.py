"""Concrete input arrays for a model: random (seeded) or read from .npy files.

Both work on the model's input types (name -> TensorType), so a spec's graph and an
ONNX file given to ``archc run`` share them; :func:`input_types` gives a graph's. They take
values (sizes, paths by input name); the CLI parses its ``--input``/``--dim`` syntax.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from archc.errors import Location, UsageError
from archc.fileio import require_regular_file
from archc.ir import Dim, Graph, TensorType
from archc.ir.dims import evaluate as evaluate_dim


def concrete_shape(t: TensorType, dims: dict[str, int], where: str) -> tuple[int, ...]:
    """Replace symbolic dims by values from ``dims`` (the batch symbol defaults to 1)."""
    shape = []
    for i, d in enumerate(t.shape):
        if isinstance(d, int):
            shape.append(d)
        elif d in dims:
            shape.append(dims[d])
        elif i == 0:
            shape.append(dims.get("batch", 1))
        else:
            raise UsageError(f"input '{where}' has symbolic dim '{d}': give its size with --dim {d}=SIZE",
                             location=Location("<command line>"))
    return tuple(shape)


def input_types(graph: Graph) -> dict[str, TensorType]:
    """A graph's inputs, in order, with their types."""
    return {name: graph.node(name).type for name in graph.inputs}


#: the range random integer inputs are drawn from, [low, high): small enough to index any table of 10 rows
RANDOM_INT_RANGE = (0, 10)


def random_inputs(types: dict[str, TensorType], dims: dict[str, int] | None = None,
                  seed: int = 0, bounds: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """One seeded random array per input (ints in :data:`RANDOM_INT_RANGE` for integer inputs, below
    ``bounds`` where given: :func:`index_bounds`)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in types.items():
        shape = concrete_shape(t, dims or {}, name)
        if t.dtype.startswith("int"):
            low, high = RANDOM_INT_RANGE
            out[name] = rng.integers(low, min(high, (bounds or {}).get(name, high)), size=shape).astype(t.dtype)
        elif t.dtype == "bool":
            out[name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            out[name] = rng.standard_normal(size=shape).astype(t.dtype)
    return out


def index_bounds(graph: Graph) -> dict[str, int]:
    """Each integer graph input that a node reads as indices (an embedding's ids) -> the smallest bound
    of those reads (:meth:`~archc.ops.base.OpDef.index_bounds`): BERT's token types index a table of
    2 rows, which random ids in [0, 10) would overrun."""
    from archc.ops import registry

    found: dict[str, int] = {}
    for node in graph.nodes():
        for slot, bound in registry.lookup(node.op).index_bounds(node).items():
            value = node.inputs[slot] if slot < len(node.inputs) else None
            if value is not None and value.node in graph.inputs:
                found[value.node] = min(bound, found.get(value.node, bound))
    return found


def other_inputs(feeds: dict[str, np.ndarray], types: dict[str, TensorType], dims: dict[str, int] | None = None,
                 seed: int = 1) -> dict[str, np.ndarray]:
    """A second input, different from ``feeds``, for measuring how much the outputs depend on the
    input: new random floats; the integer and bool inputs drawn from their own values, because those
    index tables or give shapes, and only values the model was given are known to be ones it accepts:
    integers drawn again from those (not only reordered: a model that pools its tokens, a bag of
    words, ignores their order), a mask's values reordered (one all False may mask every position)."""
    fresh = random_inputs(types, dims, seed)
    rng = np.random.default_rng(seed)
    return {name: (_redrawn(arr, rng) if arr.dtype.kind in "iu" else _rearranged(arr, rng))
            if arr.dtype.kind in "iub" else fresh[name] for name, arr in feeds.items()}


def _redrawn(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``arr``'s shape filled with values drawn from its own (with replacement), differing from it where
    its values are not all equal; its values reordered where the draws come out equal."""
    values = np.unique(arr)
    if values.size > 1:
        for _ in range(64):  # (two values, two draws: the same multiset half the time)
            drawn = rng.choice(values, size=arr.shape).astype(arr.dtype)
            if not np.array_equal(np.sort(drawn, axis=None), np.sort(arr, axis=None)):
                return drawn
    return _rearranged(arr, rng)


def _rearranged(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``arr``'s values in another order, one that differs from ``arr`` wherever its values are not all
    equal (a shuffle of 2-4 tokens often leaves them in place: then a rotation)."""
    flat = arr.ravel()
    moved = rng.permutation(flat)
    for shift in range(1, flat.size):
        if not np.array_equal(moved, flat):
            break
        moved = np.roll(flat, shift)
    return moved.reshape(arr.shape)


def read_arrays(types: dict[str, TensorType], files: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The arrays of ``files`` (input name -> .npy path), each checked against its input's type."""
    result: dict[str, np.ndarray] = {}
    for name, path in files.items():
        if not os.path.exists(path):
            raise UsageError("no such file", location=Location(path))
        require_regular_file(path, "input array")
        arr = read_npy(path, name)
        t = types[name]
        if arr.ndim != t.rank or any(isinstance(d, int) and d != s for d, s in zip(t.shape, arr.shape)):
            raise UsageError(f"input '{name}' expects shape {t}, the file holds {tuple(arr.shape)}",
                             location=Location(path))
        result[name] = arr.astype(t.dtype, copy=False)
    return result


_NPY_MAGIC = b"\x93NUMPY"
_NPZ_MAGIC = b"PK\x03\x04"
#: the .npy header readers numpy makes public, by format version (3.0, for non-ASCII field names, has none)
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npy(path: str, name: str) -> np.ndarray:
    """The array in the .npy file at ``path``, given for input ``name``; never unpickled. A file
    that is not a .npy array, or holds Python objects, is a UsageError at ``path`` naming --input."""
    def refuse(what: str = "not a .npy array") -> UsageError:
        return UsageError(f"--input {name}: {what} (expected an array written by numpy.save)", location=Location(path))

    try:
        with open(path, "rb") as fh:
            start = fh.read(len(_NPY_MAGIC))
            if start.startswith(_NPZ_MAGIC):
                raise refuse("a .npz archive, not a .npy array")
            if start != _NPY_MAGIC:
                raise refuse()
            fh.seek(0)
            header = _NPY_HEADERS.get(np.lib.format.read_magic(fh))
            if header is not None and header(fh)[2].hasobject:
                raise refuse("an array of Python objects (dtype object), not of numbers")
            fh.seek(0)
            return np.lib.format.read_array(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise refuse("a damaged or truncated .npy file") from None


def input_hint(feeds: dict[str, np.ndarray]) -> str:
    """Why inputs a model refuses may be the inputs' fault: integer inputs index tables or give shapes."""
    ints = [n for n, v in feeds.items() if v.dtype.kind in "iub"]
    if not ints:
        return ""
    return (f" (integer input{'s' * (len(ints) > 1)} {', '.join(repr(n) for n in ints)} may index a table or give a "
            "shape: give values the model accepts with --input NAME=FILE.npy; random integer inputs are drawn "
            f"in [{RANDOM_INT_RANGE[0]}, {RANDOM_INT_RANGE[1]}), and below the rows of an embedding that reads them)")


def sizes_of(types: Mapping[str, TensorType], arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The size each symbolic input dim has in ``arrays`` (the inputs a command was given)."""
    return {d: int(arrays[name].shape[i]) for name, t in types.items() if name in arrays
            for i, d in enumerate(t.shape) if isinstance(d, str) and i < arrays[name].ndim}


def _size_at(dim: Dim, sizes: Mapping[str, int]) -> int | None:
    """A symbolic dim's size at ``sizes`` (an expression an op computed, ``T + 1``, evaluated); None for a
    known dim or one whose symbols ``sizes`` leaves out."""
    if isinstance(dim, int):
        return None
    try:
        return evaluate_dim(dim, sizes)
    except KeyError:
        return None


def size_problem(graph: Graph, sizes: Mapping[str, int]) -> str | None:
    """Why ``graph`` cannot run at ``sizes`` (symbolic dim -> size), said before it runs: a node whose op
    takes at most some size along a symbolic input dim (:meth:`~archc.ops.base.OpDef.size_limits`, a
    position table's length); None where no node limits them."""
    from archc.ops import registry

    for node in graph.nodes():
        ins = graph.input_types(node)
        for limit in registry.lookup(node.op).size_limits(node, ins):
            dim = ins[limit.input].shape[limit.dim]
            size = _size_at(dim, sizes)
            where = f"node '{node.name}' ({node.op}) takes along dim {limit.dim} of its input"
            if size is not None and limit.most is not None and size > limit.most:
                return f"{dim}={size} is more than {where}: at most {limit.most} ({limit.what})"
            if size is not None and limit.multiple and size % limit.multiple:
                return f"{dim}={size} is not what {where}: a multiple of {limit.multiple} ({limit.what})"
    return None
