"""Which block instances bind a value to one of their formal inputs or outputs, so that a pass
that rewires the value's readers rebinds those instances too.

A :class:`~archc.ir.graph.BlockInstance` records the values its formal inputs were bound to
(the PyTorch backend calls the instance's module with them) and those its ``outputs`` name (in
the order its module returns them). A pass that bypasses a node (``--eval`` drops a dropout,
folds a batch norm into its conv) rewires the node's readers; an instance bound to the node's
output must then be bound to the replacement, or it would name a node that no longer exists.
Made by the graph on its first rewiring, then kept up to date by every add and erase: nothing is
paid by a graph that is never rewired.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

# (archc.ir.graph's Node, Value and BlockInstance, which import this module: named here as Any)
Node = Value = BlockInstance = Any

__all__ = ["ScopeBindings"]


class ScopeBindings:
    """Per producer node, the instance paths that bind one of its outputs (as an input or an
    output of theirs); per instance path, the nodes inside it (nested instances' nodes too)."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self._bound: dict[str, set[str]] = {}
        self._members: dict[str, dict[str, None]] = {}
        for node in nodes:
            self.add(node)

    def add(self, node: Node) -> None:
        for inst in node.scope:
            members = self._members.get(inst.path)
            if members is None:
                members = self._members[inst.path] = {}
                self._bind(inst)
            members[node.name] = None

    def discard(self, node: Node) -> None:
        for inst in node.scope:
            members = self._members.get(inst.path)
            if members is not None:
                members.pop(node.name, None)

    def rebind(self, nodes: Mapping[str, Node], old: Value, new: Value) -> None:
        """Bind every instance that binds ``old`` to ``new`` instead: each member node's scope
        gets the instance with its inputs rewritten (scope tuples that nodes shared stay shared)."""
        paths = self._bound.get(old.node)
        if not paths:
            return
        for path in list(paths):
            # old scope's id -> (old scope, kept alive so its id is not reused; new scope)
            replaced: dict[int, tuple[tuple, tuple[BlockInstance, ...]]] = {}
            for name in self._members[path]:
                node = nodes[name]
                pair = replaced.get(id(node.scope))
                if pair is None:
                    pair = replaced[id(node.scope)] = (node.scope, tuple(
                        _rebound(inst, old, new) if inst.path == path else inst for inst in node.scope))
                node.scope = pair[1]
            if not any(v.node == old.node for _, scope in replaced.values() for inst in scope
                       if inst.path == path for v in (*inst.inputs, *inst.outputs)):
                paths.discard(path)
            self._bound.setdefault(new.node, set()).add(path)

    def _bind(self, inst: BlockInstance) -> None:
        for value in (*inst.inputs, *inst.outputs):
            self._bound.setdefault(value.node, set()).add(inst.path)


def _rebound(inst: BlockInstance, old: Value, new: Value) -> BlockInstance:
    return dataclasses.replace(inst, inputs=tuple(new if v == old else v for v in inst.inputs),
                               outputs=[new if v == old else v for v in inst.outputs])
