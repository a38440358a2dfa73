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

import heapq
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from archc.errors import GraphError, Location
from archc.ir.scopes import ScopeBindings
from archc.ir.types import TensorType

if TYPE_CHECKING:
    import networkx as nx


#: environment variable that makes frontends and passes verify every graph they return
#: (the test suite sets it; a release run skips the linear-time check)
VERIFY_ENV = "ARCHC_VERIFY_GRAPHS"


def verify_in_debug(graph: "Graph") -> "Graph":
    """``graph.verify()`` when :data:`VERIFY_ENV` is set to anything but ``""``/``0``; returns ``graph``."""
    if os.environ.get(VERIFY_ENV, "") not in ("", "0"):
        graph.verify()
    return graph


@dataclass(frozen=True, slots=True)
class Value:
    """A reference to one output of a node."""

    node: str
    out: int = 0

    # (dataclass keeps this __init__: it sets the slots through their descriptors, where the frozen
    # dataclass's own calls object.__setattr__ per field, a third of the cost of making a Value)
    def __init__(self, node: str, out: int = 0) -> None:
        _SET_NODE(self, node)
        _SET_OUT(self, out)

    def __str__(self) -> str:
        return self.node if self.out == 0 else f"{self.node}:{self.out}"


_SET_NODE, _SET_OUT = Value.node.__set__, Value.out.__set__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BlockInstance:
    """One block instantiation a node lies in: instance path and block type.

    Instances compare by path and block; the rest records what the spec said, for backends
    that write one class per block (``archc.lowering.torch``): the block's declared
    parameters with their defaults (None: required), this instance's values of them, its
    ``let:`` definitions as (name, expression source), the arguments the caller wrote as
    expressions as (name, expression source), its formal input names and the values bound to
    them (a variadic formal ``xs...`` takes the remaining values), and the values its ``outputs``
    name.
    """

    path: str
    block: str
    defaults: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    args: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    lets: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    #: (parameter, the expression the caller wrote for it: ``dil: dil``, ``out: planes * 4``), in
    #: the caller's scope: what a class written for the caller passes its child, not the value
    arg_exprs: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    formals: tuple[str, ...] = field(default=(), compare=False)
    inputs: tuple[Value, ...] = field(default=(), compare=False)
    #: (input slot, the caller's block input the spec named) where that one holds the tensor of an
    #: earlier block input of the caller (see :data:`FORMAL_INPUTS_META`)
    formal_inputs: tuple[tuple[int, str], ...] = field(default=(), compare=False)
    #: where the spec instantiates it (the instance's node), for errors about the instance as a whole
    location: Location | None = field(default=None, compare=False)
    #: the values the block's ``outputs`` name, in that order (what ``PATH:0``, ``PATH:1`` read): a
    #: backend writing one class per block returns them so. Filled in once the block's nodes are made
    #: (the instance is on its nodes' scopes before they exist), hence a list in a frozen record.
    outputs: list[Value] = field(default_factory=list, compare=False)

    @property
    def variadic(self) -> bool:
        """Whether the last formal input is variadic (``xs...``)."""
        return bool(self.formals) and self.formals[-1].endswith("...")

    def output_index(self, value: Value) -> int | None:
        """The ``k`` of the spec's ``PATH:k`` that reads ``value`` (its first place in the block's
        ``outputs``), or None where those do not name it."""
        for index, named in enumerate(self.outputs):
            if named.node == value.node and named.out == value.out:
                return index
        return None


#: ``Node.meta`` key: the PyTorch modules an imported node ran in, outermost first, as
#: ``(path, class name or None)`` pairs (the ONNX frontend reads them from the exporter's names
#: and metadata; :func:`archc.analysis.hierarchy.graph_levels` frames block instances with them)
MODULES_META = "modules"

#: ``Node.meta`` key: input slot -> the block input (formal) the spec named for it, where that block
#: input holds the same tensor as an earlier one (``in: [x, h, h]`` for formals ``a, b, c``): what
#: a backend writing one class per block reads instead of the tensor's first formal
FORMAL_INPUTS_META = "formal_inputs"


@dataclass(slots=True)
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
    """A computation graph: nodes in insertion (topological) order, inputs and outputs.

    The graph guards its invariants, as torch.fx's ``Graph`` does: a node's ``inputs``
    are the one record of what it reads, and the graph keeps an index of each node's
    readers from them, so change inputs only through :meth:`set_inputs` or
    :meth:`replace_all_uses_with`. Adding a node that reads a value no node produces,
    erasing a node something still reads, or pointing a graph output at a missing value
    raises :class:`~archc.errors.GraphError` naming the node; :meth:`verify` checks every
    invariant at once.

    The nodes and the readers' index are plain dicts, so building and reading a graph of
    100k nodes costs a dict entry per node and edge; :attr:`nx`, the networkx MultiDiGraph
    of the same nodes and edges (``port``, ``out``) that graph algorithms read, is made on
    first use and kept up to date from then on (lint never needs it).
    """

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self._nodes: dict[str, Node] = {}     # name -> node, in the order added
        #: producer -> its readers, each with the number of input slots it reads the producer in
        #: (readers in the order they started reading it, as networkx lists successors); None
        #: until first needed after :meth:`add_all` (see :meth:`_reader_index`)
        self._readers: dict[str, dict[str, int]] | None = {}
        self._nx: nx.MultiDiGraph | None = None  # made by the nx property on first use
        self.inputs: list[str] = []           # names of nodes with op 'input', kept by add/erase
        self._outputs = _Outputs(self._nodes)  # graph output name -> value
        self.params: dict[str, Any] = {}      # top-level spec parameters used to build it
        #: top-level parameters that shaped more than a top-level node's attribute expression
        #: (input dims, repeat counts, conditions, block arguments, lets, block internals):
        #: a backend cannot turn these into run-time arguments without re-elaborating
        self.structural_params: set[str] = set()
        #: each ``repeat:`` (its node's path: the owner's children) -> the parameters its count reads
        self.repeat_counts: dict[str, frozenset[str]] = {}
        #: weights by node name, then parameter name (numpy arrays); filled by init or loading
        self.weights: dict[str, dict[str, Any]] = {}
        self.doc: str = ""
        #: the model's own metadata (an imported ONNX model's metadata_props: author, license...),
        #: written back by the ONNX lowering beside archc's own
        self.properties: dict[str, str] = {}
        #: warnings the frontend found (archc.errors.Diagnostic, severity "warning"); `archc check` prints them
        self.warnings: list[Any] = []
        #: example sizes of symbolic dims (spec's example_dims), used where a run gives none
        self.example_dims: dict[str, int] = {}
        self._topo: list[str] | None = None  # cached topological order; reset by every mutation
        #: node -> when it was added: every node reads only earlier nodes until set_inputs makes
        #: one read a later node, so insertion order is a topological order while _in_order holds.
        #: None until first needed after :meth:`add_all` (see :meth:`_added_index`)
        self._added: dict[str, int] | None = {}
        self._adds = 0
        self._in_order = True
        #: which block instances bind which values (see archc.ir.scopes): made on the first rewiring
        self._bindings: ScopeBindings | None = None

    @property
    def outputs(self) -> dict[str, Value]:
        """Graph output name -> value; setting an entry to a value no node produces is an error."""
        return self._outputs

    @outputs.setter
    def outputs(self, outputs: dict[str, Value]) -> None:
        checked = _Outputs(self._nodes)
        checked.update(outputs)
        self._outputs = checked

    @property
    def nx(self) -> nx.MultiDiGraph:
        """The graph as a networkx MultiDiGraph: node key = name with attribute ``node`` (the
        :class:`Node`), one edge ``producer -> reader`` per input slot with ``port`` and ``out``.
        Made on first use (nodes in the order added, each one's edges in port order), then kept
        up to date by every change; read it, never change it."""
        if self._nx is None:
            import networkx

            g = networkx.MultiDiGraph()
            g.add_nodes_from((name, {"node": node}) for name, node in self._nodes.items())
            g.add_edges_from((v.node, name, {"port": port, "out": v.out})
                             for name, node in self._nodes.items() for port, v in enumerate(node.inputs))
            self._nx = g
        return self._nx

    # -- building -------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        """Add ``node``, whose inputs must already be in the graph."""
        name = node.name
        if name in self._nodes:
            raise GraphError(f"duplicate node name '{name}'", node=name)
        for value in node.inputs:
            _check_value(self._nodes, value, f"node '{name}' reads")
        self._topo = None
        # (the indexes first, made from the other nodes if add_all left them unmade)
        self._added_index()[name] = self._adds
        self._adds += 1
        self._reader_index()[name] = {}
        self._nodes[name] = node
        self._link(node)
        if self._nx is not None:
            self._nx.add_node(name, node=node)
            self._add_nx_edges(node)
        if node.op == "input":
            self.inputs.append(name)
        if self._bindings is not None:
            self._bindings.add(node)
        return node

    def add_all(self, nodes: Iterable[Node]) -> None:
        """:meth:`add` each of ``nodes`` in turn (the same checks, in one loop: a frontend that
        builds a graph of 100k nodes at once pays a dict entry per node and a lookup per edge).

        The readers' index and the insertion numbers are not extended here: they are made from
        the nodes on first use (:meth:`_reader_index`, :meth:`_added_index`), in the same order
        and content, so a graph only read in order (``archc lint``) never pays for them."""
        if self._nx is not None or (self._readers or self._added):  # (indexed: kept up to date node by node)
            for node in nodes:
                self.add(node)
            return
        self._readers = self._added = self._bindings = None
        known, inputs = self._nodes, self.inputs
        self._topo = None
        for node in nodes:
            name = node.name
            if name in known:
                raise GraphError(f"duplicate node name '{name}'", node=name)
            for value in node.inputs:
                producer = known.get(value.node)
                out = value.out  # (output 0, most reads: in range wherever the producer is)
                if producer is None or out and not 0 <= out < (len(producer.outputs) or out + 1):
                    _check_value(known, value, f"node '{name}' reads")
            known[name] = node
            if node.op == "input":
                inputs.append(name)

    def _reader_index(self) -> dict[str, dict[str, int]]:
        """The readers' index (see ``_readers``), made from the nodes' inputs when :meth:`add_all`
        left it unmade. (No rewiring happened since, so the nodes' order is the order readers
        started reading.)"""
        if self._readers is None:
            self._readers = _readers_of(self._nodes)
        return self._readers

    def _added_index(self) -> dict[str, int]:
        """Node -> insertion number (see ``_added``), made when :meth:`add_all` left it unmade:
        numbers in the nodes' order, which is the order they were added in."""
        if self._added is None:
            self._added = {name: k for k, name in enumerate(self._nodes)}
            self._adds = len(self._added)
        return self._added

    def set_inputs(self, name: str, inputs: list[Value]) -> None:
        """Rewire a node's inputs (used by passes); every input must be in the graph."""
        node = self.node(name)
        for value in inputs:
            _check_value(self._nodes, value, f"node '{name}' reads")
        self._topo = None
        added = self._added_index()
        if any(added[v.node] >= added[name] for v in inputs):
            self._in_order = False
        self._unlink(node)
        if self._nx is not None:
            for u, _, k in list(self._nx.in_edges(name, keys=True)):
                self._nx.remove_edge(u, name, k)
        node.inputs = list(inputs)
        self._link(node)
        if self._nx is not None:
            self._add_nx_edges(node)

    def erase(self, name: str, replace_with: Value | None = None) -> None:
        """Remove node ``name`` and its weights. It must be unused (no node and no graph
        output reads it) unless ``replace_with`` is given: then its single output's users
        read ``replace_with`` first, in the same call."""
        if name not in self._nodes:
            raise GraphError("cannot erase a node that is not in the graph", node=name)
        if replace_with is not None:
            self.replace_all_uses_with(Value(name), replace_with)
        users = self.users(name)
        outputs = [k for k, v in self._outputs.items() if v.node == name]
        if users or outputs:
            readers = [f"node '{u}'" for u in users] + [f"graph output '{k}'" for k in outputs]
            raise GraphError(f"cannot erase a node still in use by {', '.join(readers)}; "
                             "rewire them first (replace_all_uses_with)", node=name)
        self._topo = None
        node = self._nodes.pop(name)
        self._unlink(node)
        if self._bindings is not None:
            self._bindings.discard(node)
        del self._reader_index()[name]
        if self._nx is not None:
            self._nx.remove_node(name)
        del self._added_index()[name]
        self.weights.pop(name, None)
        if name in self.inputs:
            self.inputs.remove(name)

    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        """Make every consumer of ``old``, graph outputs and block instances bound to it
        (:attr:`BlockInstance.inputs` and ``outputs``) read ``new`` instead."""
        _check_value(self._nodes, new, f"uses of '{old}' cannot be rewired: replacement")
        for user in list(self.users(old.node)):
            node = self.node(user)
            if any(v == old for v in node.inputs):
                self.set_inputs(user, [new if v == old else v for v in node.inputs])
        for k, v in self._outputs.items():
            if v == old:
                self._outputs[k] = new
        if self._bindings is None:
            self._bindings = ScopeBindings(self._nodes.values())
        self._bindings.rebind(self._nodes, old, new)

    def eliminate_dead_code(self) -> int:
        """Erase the nodes no graph output depends on (graph inputs stay); returns how many."""
        live = {v.node for v in self._outputs.values()}
        order = [n for n in self.nodes()]
        for node in reversed(order):  # users before producers: one sweep marks every ancestor
            if node.name in live:
                live.update(v.node for v in node.inputs)
        dead = [n.name for n in order if n.name not in live and n.op != "input"]
        for name in reversed(dead):  # users before producers, so each is unused when erased
            self.erase(name)
        return len(dead)

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
        g.repeat_counts = dict(self.repeat_counts)
        g.weights = {k: dict(v) for k, v in self.weights.items()}
        g.doc = self.doc
        g.properties = dict(self.properties)
        g.warnings = list(self.warnings)
        g.example_dims = dict(self.example_dims)
        return g

    def _link(self, node: Node) -> None:
        """Record ``node`` as a reader of its inputs' producers."""
        readers, name = self._reader_index(), node.name
        for value in node.inputs:
            of = readers[value.node]
            of[name] = of.get(name, 0) + 1

    def _unlink(self, node: Node) -> None:
        readers, name = self._reader_index(), node.name
        for value in node.inputs:
            of = readers[value.node]
            if of[name] == 1:
                del of[name]
            else:
                of[name] -= 1

    def _add_nx_edges(self, node: Node) -> None:
        for port, value in enumerate(node.inputs):
            self._nx.add_edge(value.node, node.name, port=port, out=value.out)

    # -- checking -------------------------------------------------------------------
    def verify(self) -> None:
        """Check every invariant; GraphError naming the first node that breaks one.

        Node keys match node names (so names are unique); every node has output types;
        every input and graph output is an existing output of an existing node; while no
        rewiring made a node read a later one, every node reads only nodes added before it
        (:meth:`nodes` lists them in that order); the readers' index (and the networkx
        graph, once made) agrees with the nodes' inputs; ``inputs`` lists exactly the input
        nodes; weights belong to nodes of the graph; the graph is acyclic. Linear time.
        """
        _verify(self)

    # -- reading --------------------------------------------------------------------
    def node(self, name: str) -> Node:
        return self._nodes[name]

    def node_map(self) -> Mapping[str, Node]:
        """Every node by name, in the order added (a read-only view)."""
        return MappingProxyType(self._nodes)

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def nodes(self) -> Iterator[Node]:
        """Nodes in a topological order (stable: insertion order where possible)."""
        if self._in_order:  # the order nodes were added in (what the sort below gives then)
            return iter(list(self._nodes.values()))
        if self._topo is None:
            self._topo = _earliest_first_order(self._nodes, self._reader_index(), self._added_index())
        nodes = self._nodes
        return iter([nodes[name] for name in self._topo])

    def type_of(self, value: Value) -> TensorType:
        return self._nodes[value.node].outputs[value.out]

    def input_types(self, node: Node) -> list[TensorType]:
        """The types of a node's inputs, in port order (what op definitions receive as ``ins``)."""
        return [self.type_of(v) for v in node.inputs]

    def users(self, name: str) -> list[str]:
        """Distinct nodes that consume any output of ``name``."""
        return list(self._reader_index()[name])

    def uses(self, name: str) -> int:
        """How many input slots (plus graph outputs) read any output of ``name``."""
        n = sum(self._reader_index()[name].values())
        return n + sum(1 for v in self.outputs.values() if v.node == name)

    # -- printing -------------------------------------------------------------------
    def format(self) -> str:
        """One line per node, like torch.fx's graph printer."""
        return format_graph(self)

    __str__ = format


def format_graph(graph: Graph) -> str:
    """The graph as text, one line per node (``%name : type = op(inputs, attrs)``), like
    torch.fx's graph printer."""
    lines = [f"graph {graph.name}("
             + ", ".join(f"%{n}: {graph.node(n).type}" for n in graph.inputs) + "):"]
    for node in graph.nodes():
        if node.op == "input":
            continue
        outs = ", ".join(str(t) for t in node.outputs)
        args = ", ".join(f"%{v}" for v in node.inputs)
        # unset optional attributes (None: e.g. add's constant operand) are left out
        attrs = ", ".join(f"{k}={_fmt(v)}" for k, v in node.attrs.items() if v is not None)
        call = f"{node.op}({args}{', ' if args and attrs else ''}{attrs})"
        lines.append(f"  %{node.name} : {outs} = {call}")
    lines.append("  return " + ", ".join(f"{k}=%{v}" for k, v in graph.outputs.items()))
    return "\n".join(lines)


def _readers_of(nodes: Mapping[str, Node]) -> dict[str, dict[str, int]]:
    """Producer -> {reader: number of input slots reading it}, readers in the nodes' order."""
    readers: dict[str, dict[str, int]] = {name: {} for name in nodes}
    for name, node in nodes.items():
        for value in node.inputs:
            of = readers[value.node]
            of[name] = of.get(name, 0) + 1
    return readers

def _earliest_first_order(nodes: Mapping[str, Node], readers: Mapping[str, Mapping[str, int]],
                          added: Mapping[str, int]) -> list[str]:
    """``networkx.lexicographical_topological_sort(graph.nx, key=added order)`` from the graph's own
    dicts (an ONNX import would otherwise import networkx for it, a fifth of a ViT-B/16 lint): Kahn's
    algorithm taking the earliest-added ready node each time, so the order is the same (unique).
    networkx's NetworkXUnfeasible, as before, when the nodes form a cycle."""
    waiting = {name: len(node.inputs) for name, node in nodes.items()}  # one edge per input slot
    ready = [(added[name], name) for name, count in waiting.items() if not count]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for reader, slots in readers[name].items():
            waiting[reader] -= slots
            if not waiting[reader]:
                heapq.heappush(ready, (added[reader], reader))
    if len(order) != len(nodes):
        import networkx

        raise networkx.NetworkXUnfeasible("Graph contains a cycle or graph changed during iteration")
    return order


def _verify(graph: Graph) -> None:
    """:meth:`Graph.verify`: each check in one pass over the nodes or their inputs."""
    nodes = graph._nodes
    for key, node in nodes.items():
        if not isinstance(node, Node):
            raise GraphError("a graph entry without a node record", node=key)
        if node.name != key:
            raise GraphError(f"node record named '{node.name}' is stored under '{key}'", node=key)
        if not node.outputs or not all(isinstance(t, TensorType) for t in node.outputs):
            raise GraphError(f"node has no output types (op '{node.op}')", node=key)
        for value in node.inputs:
            _check_value(nodes, value, f"node '{key}' reads")
    added = graph._added_index()
    if added.keys() != nodes.keys():
        raise GraphError("the graph's record of when nodes were added disagrees with its nodes "
                         "(nodes added or removed outside add/erase?)",
                         node=next(iter(added.keys() ^ nodes.keys()), None))
    if graph._in_order:  # nodes() lists the nodes in the order they were added: it must be topological
        for key, node in nodes.items():
            late = next((v.node for v in node.inputs if added[v.node] >= added[key]), None)
            if late is not None:
                raise GraphError(f"node '{key}' reads '{late}', added after it, but the graph "
                                 "takes the order nodes were added in as its topological order", node=key)
    _verify_index(graph)
    _verify_bindings(nodes)
    for name, value in graph._outputs.items():
        _check_value(nodes, value, f"graph output '{name}' is")
    inputs = [k for k, n in nodes.items() if n.op == "input"]
    if sorted(inputs) != sorted(graph.inputs) or len(set(graph.inputs)) != len(graph.inputs):
        raise GraphError(f"the graph's inputs {graph.inputs} are not its input nodes {inputs}",
                         node=next(iter(set(inputs) ^ set(graph.inputs)), None))
    for name in graph.weights:
        if name not in nodes:
            raise GraphError("weights for a node that is not in the graph", node=name)
    if not graph._in_order:  # (in insertion order, every edge runs forward: no cycle)
        import networkx

        if not networkx.is_directed_acyclic_graph(graph.nx):
            cycle = networkx.find_cycle(graph.nx)
            raise GraphError("the graph has a cycle: " + " -> ".join(str(e[0]) for e in cycle),
                             node=str(cycle[0][0]))


def _verify_index(graph: Graph) -> None:
    """GraphError naming a node whose inputs disagree with the readers' index (or, once made, with
    the networkx edges): its inputs were changed outside :meth:`Graph.set_inputs`."""
    expected: dict[str, dict[str, int]] = {name: {} for name in graph._nodes}
    for name, node in graph._nodes.items():
        for value in node.inputs:
            of = expected[value.node]
            of[name] = of.get(name, 0) + 1
    culprit = None
    readers = graph._reader_index()
    if expected != readers:
        wrong = {reader for producer in expected.keys() | readers.keys() for reader, _ in
                 expected.get(producer, {}).items() ^ readers.get(producer, {}).items()}
        culprit = next((key for key in graph._nodes if key in wrong), next(iter(wrong), None))
    elif graph._nx is not None:
        culprit = next((key for key, node in graph._nodes.items()
                        if sorted((d["port"], u, d["out"]) for u, _, d in graph._nx.in_edges(key, data=True))
                        != [(port, v.node, v.out) for port, v in enumerate(node.inputs)]), None)
    if culprit is not None:
        node = graph._nodes.get(culprit)
        recorded = [p for p, of in readers.items() if culprit in of]
        raise GraphError(f"the graph's edges into the node (from {recorded}) disagree with its inputs "
                         f"{[str(v) for v in node.inputs] if node else []} (inputs changed outside set_inputs?)",
                         node=culprit)


def _verify_bindings(nodes: Mapping[str, Node]) -> None:
    """GraphError naming a node whose block instance binds a formal input to a missing value
    (its producer was bypassed or removed without :meth:`Graph.replace_all_uses_with`)."""
    seen: set[int] = set()
    for key, node in nodes.items():
        if id(node.scope) in seen:  # (the nodes of one instance share their scope tuple)
            continue
        seen.add(id(node.scope))
        for inst in node.scope:
            for value in inst.inputs:
                _check_value(nodes, value, f"block instance '{inst.path}' (of node '{key}') binds an input to")


def _check_value(nodes: Mapping[str, Node], value: Value, what: str) -> None:
    """GraphError unless ``value`` is an output of a node among ``nodes``."""
    producer = nodes.get(value.node)
    if producer is None:
        raise GraphError(f"{what} '{value}', which names no node in the graph", node=value.node)
    outputs = producer.outputs
    if outputs and not 0 <= value.out < len(outputs):
        raise GraphError(f"{what} '{value}', but '{value.node}' has {len(outputs)} output(s)",
                         node=value.node)


class _Outputs(dict):
    """A graph's outputs: a dict that refuses a value no node of the graph produces. (It holds
    the graph's nodes, not the graph: no reference cycle, so a graph is freed when unused.)"""

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        super().__init__()
        self._nodes = nodes

    def __setitem__(self, name: str, value: Value) -> None:
        _check_value(self._nodes, value, f"graph output '{name}' is")
        super().__setitem__(name, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, value in dict(*args, **kwargs).items():
            self[name] = value

    def setdefault(self, name: str, value: Value) -> Value:  # type: ignore[override]
        if name not in self:
            self[name] = value
        return self[name]


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)
