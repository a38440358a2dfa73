"""What one elaboration may spend: nodes, repetitions, tensor sizes, parameters.

The elaborator asks an :class:`ExpansionBudget` before it expands anything big, so a
``repeat: 1000000000`` or a block that instantiates itself twice per level is refused
as soon as the count passes the limit, not after the memory is gone. Each check returns
the message to report (naming the limit and how to raise it) or None.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from archc.errors import ShapeError
from archc.ir import TensorType
from archc.limits import Limits, known_elements

if TYPE_CHECKING:
    from archc.ir import Node
    from archc.ops.base import OpDef


def concrete_elements(t: TensorType) -> int:
    """Elements of a tensor counting symbolic dims as 1 (what is known before run time)."""
    return known_elements(t.shape)


class ExpansionBudget:
    """Counts what a spec has expanded to so far against :class:`Limits`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.nodes = 0
        self.edges = 0
        self.params = 0

    def add_node(self) -> str | None:
        """Count one node or block instance; a message once there are too many."""
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            return self.limits.exceeded("max_nodes", "the spec expands to too many nodes (a large 'repeat' "
                                        "or a block that instantiates itself?)")
        return None

    def add_edges(self, count: int) -> str | None:
        """Count a node's inputs; a message once the connections are too many. Nodes alone do not
        bound the graph: a node reading every earlier one (``in: [x, "l[*]"]`` repeated) makes
        n^2 / 2 connections from n nodes, and the analyses' work grows with them."""
        self.edges += count
        if self.edges > self.limits.max_edges:
            return self.limits.exceeded("max_edges", "the spec's nodes read too many inputs in all (a node "
                                        "reading every earlier repetition, 'NAME[*]'?)")
        return None

    def check_repeat(self, count: int) -> str | None:
        if count > self.limits.max_repeat:
            return self.limits.exceeded("max_repeat", f"repeat {count:,}")
        return None

    def check_depth(self, depth: int) -> str | None:
        if depth >= self.limits.max_block_depth:
            return self.limits.exceeded("max_block_depth", "blocks nest too deeply (is a recursive block "
                                        "missing an 'if' that ends it?)")
        return None

    def check_input(self, t: TensorType) -> str | None:
        n = concrete_elements(t)
        if n > self.limits.max_tensor_elements:
            return self.limits.exceeded("max_tensor_elements", f"shape {t} has {n:,} elements")
        return None

    def check_op(self, op: "OpDef", node: "Node", ins: list[TensorType]) -> tuple[str | None, bool]:
        """(message, fatal) for a node whose outputs or parameters are too big; (None, False) if fine.

        Parameters are counted without allocating them; passing the model's total is fatal.
        """
        for t in node.outputs:
            if any(isinstance(d, int) and d < 1 for d in t.shape):
                return f"output shape {t} has a dimension below 1", False
            n = concrete_elements(t)
            if n > self.limits.max_tensor_elements:
                return self.limits.exceeded("max_tensor_elements", f"output {t} has {n:,} elements"), False
        try:
            params = op.params(node, ins)
        except (ShapeError, ValueError, TypeError, ArithmeticError):
            return None, False  # the op's own checks report a bad configuration
        for pname, spec in params.items():
            n = spec.numel
            if n > self.limits.max_tensor_elements:
                shape = "x".join(map(str, spec.shape))
                return self.limits.exceeded("max_tensor_elements",
                                            f"parameter '{pname or node.name}' ({shape}) has {n:,} elements"), False
            if not spec.buffer:
                self.params += n
        if self.params > self.limits.max_params:
            return self.limits.exceeded("max_params", f"the model has over {self.params:,} parameters"), True
        return None, False
