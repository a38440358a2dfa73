"""The graph IR every stage shares: a networkx MultiDiGraph in a small class.

Nodes are keyed by their hierarchical name (``layer1.0.conv1``, PyTorch's
convention, since names become module and parameter names). Each node holds a
:class:`Node` record: op, attributes, the block instances it came from, its
inferred output types and its source location. An edge ``u -> v`` carries
``port`` (which input of ``v``) and ``out`` (which output of ``u``); it is a
*multi* graph because ``x + x`` consumes one value twice.

Frontends (YAML, ONNX import) build it; analyses read it; backends consume it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx

from archc.errors import Location
from archc.ir.types import TensorType


@dataclass(frozen=True)
class Value:
    """A reference to one output of a node."""

    node: str
    out: int = 0

    def __str__(self) -> str:
        return self.node if self.out == 0 else f"{self.node}:{self.out}"


@dataclass(frozen=True)
class BlockInstance:
    """One block instantiation a node lies in: instance path and block type.

    Instances compare by path and block; the rest records what the spec said, for backends
    that write one class per block (``archc.lowering.torch``): the block's declared
    parameters with their defaults (None: required), this instance's values of them, its
    ``let:`` definitions as (name, expression source), its formal input names and the values
    bound to them (a variadic formal ``xs...`` takes the remaining values).
    """

    path: str
    block: str
    defaults: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    args: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    lets: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    formals: tuple[str, ...] = field(default=(), compare=False)
    inputs: tuple[Value, ...] = field(default=(), compare=False)


@dataclass
class Node:
    """One operation of the IR."""

    name: str
    op: str
    attrs: dict[str, Any] = field(default_factory=dict)
    inputs: list[Value] = field(default_factory=list)
    outputs: list[TensorType] = field(default_factory=list)
    scope: tuple[BlockInstance, ...] = ()
    location: Location | None = None
    #: free-form facts later stages attach (e.g. ``expect`` from the spec, skip labels)
    meta: dict[str, Any] = field(default_factory=dict)
    #: attribute -> the spec expression it was computed from (``out_channels: planes * 4``),
    #: for attributes written as an expression; backends may write it instead of the value
    attr_exprs: dict[str, str] = field(default_factory=dict)

    @property
    def type(self) -> TensorType:
        """The type of the first output."""
        return self.outputs[0]


class Graph:
    """A computation graph: nodes in insertion (topological) order, inputs and outputs."""

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.nx = nx.MultiDiGraph()
        self.inputs: list[str] = []           # names of nodes with op 'input'
        self.outputs: dict[str, Value] = {}   # graph output name -> value
        self.params: dict[str, Any] = {}      # top-level spec parameters used to build it
        #: top-level parameters that shaped more than a top-level node's attribute expression
        #: (input dims, repeat counts, conditions, block arguments, lets, block internals):
        #: a backend cannot turn these into run-time arguments without re-elaborating
        self.structural_params: set[str] = set()
        #: weights by node name, then parameter name (numpy arrays); filled by init or loading
        self.weights: dict[str, dict[str, Any]] = {}
        self.doc: str = ""
        self._topo: list[str] | None = None  # cached topological order; reset by every mutation

    # -- building -------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        if node.name in self.nx:
            raise ValueError(f"duplicate node name '{node.name}'")
        self._topo = None
        self.nx.add_node(node.name, node=node)
        for port, value in enumerate(node.inputs):
            self.nx.add_edge(value.node, node.name, port=port, out=value.out)
        if node.op == "input":
            self.inputs.append(node.name)
        return node

    def set_inputs(self, name: str, inputs: list[Value]) -> None:
        """Rewire a node's inputs (used by passes)."""
        node = self.node(name)
        self._topo = None
        for u, _, k in list(self.nx.in_edges(name, keys=True)):
            self.nx.remove_edge(u, name, k)
        node.inputs = list(inputs)
        for port, value in enumerate(node.inputs):
            self.nx.add_edge(value.node, name, port=port, out=value.out)

    def remove(self, name: str) -> None:
        self._topo = None
        self.nx.remove_node(name)
        self.weights.pop(name, None)
        if name in self.inputs:
            self.inputs.remove(name)

    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every consumer of ``old`` (and graph outputs) read ``new`` instead."""
        for user in list(self.users(old.node)):
            node = self.node(user)
            if any(v == old for v in node.inputs):
                self.set_inputs(user, [new if v == old else v for v in node.inputs])
        for k, v in self.outputs.items():
            if v == old:
                self.outputs[k] = new

    def copy(self) -> "Graph":
        """An independent copy: nodes, edges, outputs and weights (arrays are shared, not copied)."""
        g = Graph(self.name)
        for node in self.nodes():
            g.add(Node(
                name=node.name, op=node.op, attrs=dict(node.attrs), inputs=list(node.inputs),
                outputs=list(node.outputs), scope=node.scope, location=node.location, meta=dict(node.meta),
                attr_exprs=dict(node.attr_exprs)))
        g.outputs = dict(self.outputs)
        g.params = dict(self.params)
        g.structural_params = set(self.structural_params)
        g.weights = {k: dict(v) for k, v in self.weights.items()}
        g.doc = self.doc
        return g

    # -- reading --------------------------------------------------------------------
    def node(self, name: str) -> Node:
        return self.nx.nodes[name]["node"]

    def __contains__(self, name: str) -> bool:
        return name in self.nx

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def nodes(self) -> Iterator[Node]:
        """Nodes in a topological order (stable: insertion order where possible)."""
        if self._topo is None:
            order = {n: i for i, n in enumerate(self.nx.nodes)}
            self._topo = list(nx.lexicographical_topological_sort(self.nx, key=order.__getitem__))
        for name in self._topo:
            yield self.node(name)

    def type_of(self, value: Value) -> TensorType:
        return self.node(value.node).outputs[value.out]

    def input_types(self, node: Node) -> list[TensorType]:
        """The types of a node's inputs, in port order (what op definitions receive as ``ins``)."""
        return [self.type_of(v) for v in node.inputs]

    def users(self, name: str) -> list[str]:
        """Distinct nodes that consume any output of ``name``."""
        return list(dict.fromkeys(self.nx.successors(name)))

    def uses(self, name: str) -> int:
        """How many input slots (plus graph outputs) read any output of ``name``."""
        n = self.nx.out_degree(name)
        return n + sum(1 for v in self.outputs.values() if v.node == name)

    # -- printing -------------------------------------------------------------------
    def format(self) -> str:
        """One line per node, like torch.fx's graph printer."""
        lines = [f"graph {self.name}("
                 + ", ".join(f"%{n}: {self.node(n).type}" for n in self.inputs) + "):"]
        for node in self.nodes():
            if node.op == "input":
                continue
            outs = ", ".join(str(t) for t in node.outputs)
            args = ", ".join(f"%{v}" for v in node.inputs)
            attrs = ", ".join(f"{k}={_fmt(v)}" for k, v in node.attrs.items())
            call = f"{node.op}({args}{', ' if args and attrs else ''}{attrs})"
            lines.append(f"  %{node.name} : {outs} = {call}")
        lines.append("  return " + ", ".join(f"{k}=%{v}" for k, v in self.outputs.items()))
        return "\n".join(lines)

    __str__ = format


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)
