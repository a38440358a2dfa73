"""The graph an ONNX import builds before it knows the nodes' final names.

Nodes are named after the ONNX nodes, and a node's final name depends on which nodes of
its module survive to the end (:meth:`Importer._final_names`), so the importer collects
nodes here, under provisional names, and builds the :class:`~archc.ir.graph.Graph` once at
the end, with final names (:meth:`Draft.build`): building the networkx graph is most of
what a graph costs, and a 100k-node model would otherwise pay it twice.

A draft guards what the importer relies on while it works: a node reads only outputs of
nodes added before it, names are unique. The graph it builds checks every invariant again
as it adds each node (:meth:`Graph.add`).
"""
from __future__ import annotations

from typing import Any, Iterator

from archc.errors import GraphError
from archc.ir.graph import Graph, Node, Value
from archc.ir.types import TensorType

__all__ = ["Draft"]


class Draft:
    """Nodes in the order added (a topological order), their weights, and how often each is read."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.doc = ""
        self.properties: dict[str, str] = {}
        self.inputs: list[str] = []
        self.outputs: dict[str, Value] = {}
        self.weights: dict[str, dict[str, Any]] = {}
        self._nodes: dict[str, Node] = {}
        #: the nodes by name (read it, never change it: add through :meth:`add` and :meth:`append`)
        self.named = self._nodes
        self._order: list[Node] = []       # the nodes in the order added
        self._reads: dict[str, int] = {}   # producer -> input slots reading it, over _order[:_counted]
        self._counted = 0                  # (counted only when asked: most imports never ask)

    def add(self, node: Node) -> Node:
        """Add ``node``, whose inputs must be outputs of nodes already added."""
        if node.name in self._nodes:
            raise GraphError(f"duplicate node name '{node.name}'", node=node.name)
        for value in node.inputs:
            producer = self._nodes.get(value.node)
            if producer is None or not 0 <= value.out < len(producer.outputs):
                raise GraphError(f"node '{node.name}' reads '{value}', which no earlier node produces",
                                 node=node.name)
        self._nodes[node.name] = node
        self._order.append(node)
        if node.op == "input":
            self.inputs.append(node.name)
        return node

    def append(self, node: Node) -> None:
        """Add a node that :meth:`add` would take without a look: its name was made unique by the
        import's names, its inputs are IR values the import bound to outputs of nodes added before
        (a node replayed from its kind's recipe). The graph built at the end checks it again."""
        self._nodes[node.name] = node
        self._order.append(node)

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def nodes(self) -> Iterator[Node]:
        return iter(list(self._nodes.values()))

    def type_of(self, value: Value) -> TensorType:
        return self._nodes[value.node].outputs[value.out]

    def uses(self, name: str) -> int:
        """How many input slots (plus graph outputs) read any output of ``name``."""
        reads = self._reads
        for node in self._order[self._counted:]:
            for value in node.inputs:
                reads[value.node] = reads.get(value.node, 0) + 1
        self._counted = len(self._order)
        return reads.get(name, 0) + sum(1 for v in self.outputs.values() if v.node == name)

    def live(self) -> list[Node]:
        """The nodes some graph output depends on, and the graph inputs, in the order added."""
        needed = {v.node for v in self.outputs.values()}
        add = needed.add
        for node in reversed(self._nodes.values()):  # users before producers: one sweep
            if node.name in needed:
                for v in node.inputs:
                    add(v.node)
        if needed.issuperset(self._nodes):  # (most models: every node is live)
            return list(self._nodes.values())
        return [n for n in self._nodes.values() if n.name in needed or n.op == "input"]

    def build(self, nodes: list[Node], names: dict[str, str]) -> Graph:
        """The graph of ``nodes`` (the live ones, see :meth:`live`), node ``k`` renamed
        ``names.get(k, k)``; the nodes are moved into it (the draft is not used afterwards)."""
        graph = Graph(self.name)
        graph.doc = self.doc
        graph.properties = dict(self.properties)
        renamed = {old: new for old, new in names.items() if old != new}  # most names stay
        weights = self.weights
        if not renamed and len(nodes) == len(self._nodes):  # every node kept, under its name: nothing to move
            graph.weights.update(weights)
            nodes_to_rename: list[Node] = []
        else:
            nodes_to_rename = nodes
        for node in nodes_to_rename:
            old = node.name
            if old in renamed:
                node.name = renamed[old]
            if old in weights:
                graph.weights[node.name] = weights[old]
            if renamed and any(v.node in renamed for v in node.inputs):
                node.inputs = [Value(renamed.get(v.node, v.node), v.out) for v in node.inputs]
        graph.add_all(nodes)
        graph.outputs = {k: Value(names.get(v.node, v.node), v.out) for k, v in self.outputs.items()}
        return graph
