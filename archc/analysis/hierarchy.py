"""The block hierarchy of a graph: which block instances (and repeat groups) each node lies in.

A spec's ``block:`` node makes a block instance (``layer1.0``, ``denseblock1.denselayer2``);
with ``repeat:`` the instances ``layer1.0``, ``layer1.1`` ... form a repeat group ``layer1``.
Both are levels of the hierarchy that pictures draw as clusters (or, collapsed, as one box) and
that ``archc summary --depth N`` adds up. The levels come from the nodes' scopes
(:attr:`archc.ir.graph.Node.scope`), never from op names. Pure: reads the graph only.
"""
from __future__ import annotations

from dataclasses import dataclass

from archc.ir.graph import Node


@dataclass(frozen=True)
class Level:
    """One level a node lies in: a block instance (``block`` set) or a repeat group (``block`` None)."""

    path: str
    block: str | None

    @property
    def title(self) -> str:
        return f"{self.path} ({self.block})" if self.block else f"{self.path} (repeat)"


def levels(node: Node) -> tuple[Level, ...]:
    """The levels ``node`` lies in, outermost first.

    A block instance whose path ends in ``.K`` (an integer) inside a path not already a level
    is one repetition of a repeat group: the group (the path without ``.K``) comes first.
    """
    out: list[Level] = []
    for instance in node.scope:
        head, _, tail = instance.path.rpartition(".")
        if tail.isdigit() and head and (not out or head.startswith(out[-1].path + ".")):
            out.append(Level(head, None))
        out.append(Level(instance.path, instance.block))
    return tuple(out)


def box_level(node_levels: tuple[Level, ...], depth: int | None, collapse: bool) -> int | None:
    """Index of the level drawn as one box for a node with ``node_levels``, or None (drawn itself).

    ``depth``: levels from index ``depth`` on are folded into the box of level ``depth``;
    ``collapse``: every outermost block instance is a box (repeat groups stay open around it).
    """
    limit = len(node_levels)
    if depth is not None and depth < limit:
        limit = depth
    if collapse:
        first_block = next((i for i, lv in enumerate(node_levels) if lv.block is not None), None)
        if first_block is not None and first_block < limit:
            limit = first_block
    return limit if limit < len(node_levels) else None
