"""The block hierarchy of a graph: which block instances (and repeat groups) each node lies in.

A spec's ``block:`` node makes a block instance (``layer1.0``, ``denseblock1.denselayer2``);
with ``repeat:`` the instances ``layer1.0``, ``layer1.1`` ... form a repeat group ``layer1``.
Both are levels of the hierarchy that pictures draw as clusters (or, collapsed, as one box) and
that ``archc summary --depth N`` adds up. The levels come from the nodes' scopes
(:attr:`archc.ir.graph.Node.scope`), never from op names. Pure: reads the graph only.

An imported ONNX model has no spec blocks; its nodes carry the PyTorch modules they ran in
(:data:`~archc.ir.graph.MODULES_META`, from the exporter's hierarchical names such as
``/layer1/layer1.0/conv1/Conv`` or its metadata). :func:`graph_levels` makes a level of each
module that holds another module with nodes (``layer1.0``, not the leaf ``layer1.0.conv1``): a
container of numbered children only (``nn.Sequential``'s ``layer1``) is a repeat group, any other
a block instance whose type is the module's class where the exporter recorded it, else the
container it is numbered in (``layer1[*]``) or its own name.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from archc.ir.graph import MODULES_META, Graph, Node


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


def graph_levels(graph: Graph) -> dict[str, tuple[Level, ...]]:
    """Every node's levels: from its block scope (specs), else from the modules it ran in (imports)."""
    modules = {node.name: node.meta.get(MODULES_META, ()) for node in graph.nodes() if not node.scope}
    holders: set[str] = set()       # module paths that hold another module with nodes
    children: dict[str, set[str]] = {}
    for chain in modules.values():
        for (outer, _), (inner, _) in zip(chain, chain[1:]):
            holders.add(outer)
            children.setdefault(outer, set()).add(inner.rpartition(".")[2])
    out: dict[str, tuple[Level, ...]] = {}
    for node in graph.nodes():
        if node.scope or not modules.get(node.name):
            out[node.name] = levels(node)
            continue
        out[node.name] = tuple(_module_level(path, cls, children[path]) for path, cls in modules[node.name]
                               if path in holders)
    return out


def _module_level(path: str, cls: str | None, children: set[str]) -> Level:
    if all(child.isdigit() for child in children):
        return Level(path, None)   # nn.Sequential / nn.ModuleList of numbered blocks: a repeat group
    parent, _, own = path.rpartition(".")
    return Level(path, cls or (f"{parent}[*]" if own.isdigit() and parent else own))


def leaf_blocks(all_levels: Iterable[tuple[Level, ...]]) -> set[str]:
    """Block types of which some instance holds no other block instance (ResNet's basic block,
    even where an instance holds a projection block; U-Net's double conv; DenseNet's dense
    layer), given every node's levels. A type whose every instance holds blocks (U-Net's
    recursive level, DenseNet's dense block) is not one."""
    holders: dict[str, str] = {}   # instance path -> its block type
    holding: set[str] = set()      # instance paths that hold another block instance
    for node_levels in all_levels:
        inner = [lv for lv in node_levels if lv.block is not None]
        holders.update((lv.path, lv.block) for lv in inner)
        holding.update(lv.path for lv in inner[:-1])
    return {block for path, block in holders.items() if path not in holding}


def box_level(node_levels: tuple[Level, ...], depth: int | None, leaves: set[str] | None = None) -> int | None:
    """Index of the level drawn as one box for a node with ``node_levels``, or None (drawn itself).

    ``depth``: levels from index ``depth`` on are folded into the box of level ``depth``;
    ``leaves`` (for ``--collapse``, from :func:`leaf_blocks`): a node inside an instance of one of
    these block types is drawn as the outermost such instance's box; the levels around it stay open.
    """
    limit = len(node_levels)
    if depth is not None and depth < limit:
        limit = depth
    if leaves:
        leaf = next((i for i, lv in enumerate(node_levels) if lv.block in leaves), None)
        if leaf is not None and leaf < limit:
            limit = leaf
    return limit if limit < len(node_levels) else None
