"""Unique names: one namespace object for every place that makes names up (IR node names in
the ONNX importer, Python identifiers in the PyTorch backend, ONNX value and node names)."""
from __future__ import annotations

from typing import Callable, Container, Iterable

__all__ = ["Namespace"]


def underscore_suffix(base: str, i: int) -> str:
    """``conv``, ``conv_1``, ``conv_2``...: PyTorch's and ONNX exporters' convention."""
    return f"{base}_{i}"


class Namespace:
    """Names made unique from bases: a free base is used as it is, a taken one gets the first
    free ``suffix(base, i)`` for i = 1, 2, ...

    ``taken`` are names reserved from the start; ``also_taken`` is a live container (such
    as a graph) whose names are avoided without being copied. A name once taken stays taken
    (nothing is released, and ``also_taken`` only grows), so each base remembers how far its
    suffixes are known to be taken: making n names of one base costs O(n) lookups, not O(n²).
    """

    def __init__(self, taken: Iterable[str] = (), *, suffix: Callable[[str, int], str] = underscore_suffix,
                 also_taken: Container[str] = ()) -> None:
        self.taken: set[str] = set(taken)
        self._suffix = suffix
        self._also_taken = also_taken
        #: base -> the first suffix index not yet seen taken (0: the base itself)
        self._next_index: dict[str, int] = {}

    def __contains__(self, name: object) -> bool:
        return name in self.taken or name in self._also_taken

    def free(self, base: str) -> str:
        """The name :meth:`take` would give, without reserving it."""
        i = self._next_index.get(base, 0)
        name = base if i == 0 else self._suffix(base, i)
        while name in self:
            i += 1
            name = self._suffix(base, i)
        self._next_index[base] = i
        return name

    def take(self, base: str) -> str:
        """A unique name from ``base``, reserved."""
        if base not in self.taken and base not in self._also_taken and base not in self._next_index:
            self.taken.add(base)  # (free's index for it stays 0, the default: nothing to note)
            return base
        name = self.free(base)
        self.taken.add(name)
        return name

    def reserve(self, name: str) -> None:
        """Mark ``name`` as used (a name chosen elsewhere)."""
        self.taken.add(name)
