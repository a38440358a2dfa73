"""The ONNX backend: the graph IR emitted directly as an ``onnx.ModelProto`` (never via torch).

Each op lowers itself through :class:`Emitter`, the :class:`~archc.ops.base.OnnxEmitter`
of this module. The model keeps the IR's names: ONNX node names are the spec's node names
(helper nodes an op adds get derived names such as ``fc/matmul``), a node's output
value is named after it, initializers are the state_dict keys (``layer1.0.conv1.weight``),
graph inputs and outputs are named as in the graph (an output value takes the
output's name), and symbolic dims become
``dim_param``. Output is byte-identical for the same graph and seed: no timestamps,
every list in graph order.

This module must not import torch; the weights come from ``graph.weights`` or from
archc's own seeded initialiser, the same arrays the PyTorch backend loads.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from archc._version import __version__
from archc.errors import SpecError
from archc.fileio import write_atomic
from archc.progress import Unit, task
from archc.ir.graph import Graph, Node, Value
from archc.ir.names import Namespace
from archc.ir.types import TensorType
from archc.lowering import check_parameter_dtypes, graph_weights
from archc.lowering.optimize import optimize_for_inference
from archc.ops import registry
from archc.ops.weights import deferred_weights, tied_params
from archc.ops.base import param_key
from archc.pysource import one_line, plain_text

if TYPE_CHECKING:
    from archc.lowering.onnx_writer import OnnxParts

__all__ = ["OPSET", "IR_VERSION", "Emitter", "to_onnx", "build_onnx", "save_onnx", "value_name"]

#: The ONNX opset archc targets (ONNX 1.12+, onnxruntime 1.12+).
OPSET = 17
#: The IR version matching opset 17, so that older runtimes load the models too.
IR_VERSION = 8


def value_name(value: Value) -> str:
    """The ONNX name of an IR value: the node's name, ``name:k`` for its output k > 0."""
    return value.node if value.out == 0 else f"{value.node}:{value.out}"


def _value_info(name: str, t: TensorType) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype))
    return helper.make_tensor_value_info(name, elem, list(t.shape))


def _make_node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str,
               doc: str | None, attrs: Mapping[str, Any]) -> onnx.NodeProto:
    """``helper.make_node`` with the same attributes, in the same order, each attribute of plain
    values made once per process (:func:`_attribute`): ResNet-50 makes 270 attributes per build
    from a dozen distinct ones."""
    attrs = dict(attrs)
    domain, overload = attrs.pop("domain", None), attrs.pop("overload", None)
    node = helper.make_node(op_type, inputs, outputs, name=name, doc_string=doc, domain=domain, overload=overload)
    node.attribute.extend(_attribute(key, value) for key, value in sorted(attrs.items()) if value is not None)
    return node


_PLAIN = (int, float, str, bool)


def _attribute(key: str, value: Any) -> onnx.AttributeProto:
    """``helper.make_attribute(key, value)``; values of plain types (or short sequences of them)
    come from a cache keyed by their types as well, so ``1`` and ``1.0`` stay apart. The node's
    ``attribute.extend`` copies the cached message."""
    if type(value) in _PLAIN:
        return _cached_attribute(key, type(value), value)
    if type(value) in (list, tuple) and len(value) <= 16 and all(type(v) in _PLAIN for v in value):
        return _cached_attribute(key, tuple(type(v) for v in value), tuple(value))
    return helper.make_attribute(key, value)


@functools.lru_cache(maxsize=1024)
def _cached_attribute(key: str, kinds: Any, value: Any) -> onnx.AttributeProto:
    return helper.make_attribute(key, value)


class Emitter:
    """Collects ONNX nodes and initializers while ops lower themselves, one IR node at a time."""

    opset = OPSET

    def __init__(self, graph: Graph, weights: dict[str, dict[str, Any]], names: dict[Value, str],
                 labels: Mapping[str, str] | None = None) -> None:
        self.graph = graph
        self.labels = labels or {}               # merge node -> skip label, written as its doc_string
        self.weights = weights
        self.names = names                       # IR value -> ONNX value name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}   # written into the model once, at the end
        self.param_names: dict[str, str] = {}            # state_dict key -> initializer name
        self.taken_values = Namespace(names.values())
        self.taken_nodes = Namespace(also_taken=graph)  # ONNX node names: avoid the IR's own
        self.current: Node | None = None
        self._pending: list[dict[str, Any]] = []
        #: opset versions of non-default domains; a node of another domain (``domain=`` in
        #: add_node) imports version 1 unless its op sets the version here
        self.domains: dict[str, int] = {}

    # -- the OnnxEmitter protocol -------------------------------------------------------
    def add_node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | int = 1,
                 **attrs: Any) -> list[str]:
        """Add one ONNX node for the current IR node; returns its output names."""
        base = f"{self._node().name}/{op_type.lower()}"
        if isinstance(outputs, int):
            names = [self._unique_value(base if outputs == 1 else f"{base}:{i}") for i in range(outputs)]
        else:
            names = [self._unique_value(n) for n in outputs]
        self._pending.append({"op_type": op_type, "inputs": list(inputs), "outputs": names, "attrs": attrs})
        return names

    def param(self, name: str) -> str:
        """The initializer holding parameter ``name`` of the current node, named by its state_dict key
        (``node.name``; a parameter-only node's key is its own name, which its output value
        therefore does not take, see :func:`_value_names`)."""
        node = self._node()
        owner, name = tied_params(node).get(name, (node.name, name))  # a tied weight: its owner's initializer
        key = param_key(owner, name)
        if key not in self.param_names:
            try:
                array = self.weights[owner][name]
            except KeyError:
                raise SpecError(f"the ONNX lowering asks for parameter '{name}', which the op does not declare",
                                node=node.name, location=node.location) from None
            # Only a graph output named like the key can hold the name already: ONNX has one
            # namespace, so the initializer then gets a derived name.
            init = key if key not in self.taken_values else self._unique_value(f"{key}/param")
            self.taken_values.reserve(init)
            self.param_names[key] = init
            # kept as given: a deferred array is drawn only when the writer reaches it
            self.initializers[init] = array if hasattr(array, "dtype") else np.asarray(array)
        return self.param_names[key]

    def const(self, array: np.ndarray, hint: str = "const") -> str:
        """A constant initializer for the current node, named ``node/hint``: for integer shapes, axes
        and indices, which readers take for constants. A fixed float operand is a :meth:`literal`:
        a float initializer reads as a learned parameter."""
        name = self._unique_value(f"{self._node().name}/{hint}")
        self.initializers[name] = np.asarray(array)
        return name

    def literal(self, array: np.ndarray, hint: str = "literal") -> str:
        """A constant of the current node as a ``Constant`` node's output named ``node/hint``, not an
        initializer: readers of the file (archc's importer among them) take a float initializer for a
        learned parameter, so a fixed operand an ONNX op requires where the module learns none (the
        unit scale of a norm without affine) is written as a literal."""
        name = f"{self._node().name}/{hint}"
        return self.add_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array)))[0]

    def output_names(self) -> list[str]:
        """The final names of the current IR node's outputs."""
        node = self._node()
        return [self.names[Value(node.name, k)] for k in range(len(node.outputs))]

    # -- driving ------------------------------------------------------------------------
    def lower(self, node: Node) -> None:
        """Emit one IR node: run its op's lowering, then name its nodes and outputs."""
        self.current, self._pending = node, []
        op = registry.lookup(node.op)
        ins = self.graph.input_types(node)
        try:
            results = op.onnx(self, node, [self.names[v] for v in node.inputs], ins)
        except NotImplementedError as exc:
            raise SpecError(str(exc), node=node.name, location=node.location) from None
        finals = self.output_names()
        if len(results) != len(finals):
            raise SpecError(f"the ONNX lowering of op '{node.op}' returned {len(results)} values for "
                            f"{len(finals)} outputs", node=node.name, location=node.location)
        produced = {o for p in self._pending for o in p["outputs"]}
        renamed: dict[str, str] = {}
        for result, final in zip(results, finals):
            if result in produced and result not in renamed:
                # Give the value its final name (a no-op if the lowering already used it).
                self._rename(result, final)
                renamed[result] = final
            else:
                # An existing value (an input, a constant) or one returned twice: copy it.
                source = renamed.get(result, result)
                self._pending.append({"op_type": "Identity", "inputs": [source], "outputs": [final], "attrs": {}})
        for p in self._pending:
            main = finals[0] in p["outputs"]
            name = node.name if main else self._unique_node(f"{node.name}/{p['op_type'].lower()}")
            self.taken_nodes.reserve(name)
            label = self.labels.get(node.name) if main else None
            doc = one_line(f"skip: {label}") if label else None
            self.nodes.append(_make_node(p["op_type"], p["inputs"], p["outputs"], name, doc, p["attrs"]))
        self.current, self._pending = None, []

    def _rename(self, old: str, new: str) -> None:
        for p in self._pending:
            p["inputs"] = [new if i == old else i for i in p["inputs"]]
            p["outputs"] = [new if o == old else o for o in p["outputs"]]

    def _node(self) -> Node:
        if self.current is None:
            raise RuntimeError("the emitter is used outside an op's lowering")
        return self.current

    def _unique_value(self, base: str) -> str:
        return self.taken_values.take(base)

    def _unique_node(self, base: str) -> str:
        return self.taken_nodes.free(base)


def _value_names(graph: Graph, param_keys: set[str] = frozenset()) -> dict[Value, str]:
    """ONNX names for every IR value: a graph output's name where it is one, else the node's.

    Naming an output value after the graph output saves an Identity node; a node name
    that a graph output already took for another value, or that names an initializer
    (``param_keys``: a parameter-only node's key is its own name), gets ``/value`` appended.
    """
    names: dict[Value, str] = {}
    for out_name, value in graph.outputs.items():
        if value not in names and graph.node(value.node).op != "input":
            names[value] = out_name
    taken = Namespace([*names.values(), *graph.outputs, *param_keys],
                      suffix=lambda base, i: f"{base}/value" if i == 1 else f"{base}/value_{i - 1}")
    for node in graph.nodes():
        for k in range(len(node.outputs)):
            v = Value(node.name, k)
            if node.op == "input":
                names[v] = node.name  # graph inputs keep their names
            elif v not in names:
                names[v] = taken.free(value_name(v))
            taken.reserve(names[v])
    return names


def to_onnx(graph: Graph, seed: int = 0, *, labels: Mapping[str, str] | None = None) -> onnx.ModelProto:
    """The graph as an ONNX model (opset :data:`OPSET`), weights from the graph or ``seed``.

    ``labels`` (node name -> skip label, from :func:`archc.analysis.skips.merge_labels`) go into
    the merge nodes' doc_strings."""
    from archc.lowering.onnx_writer import assemble

    return assemble(emit_onnx(graph, seed, labels=labels))


def emit_onnx(graph: Graph, seed: int = 0, *, labels: Mapping[str, str] | None = None) -> "OnnxParts":
    """The graph as an ONNX model without its initializers, plus the initializers (arrays, or
    deferred arrays drawn only when written) for :mod:`archc.lowering.onnx_writer` to stream.

    Initializers no node reads (a constant an op made but did not use) are left out."""
    from archc.lowering.onnx_writer import OnnxParts

    check_parameter_dtypes(graph)
    weights = graph_weights(graph, seed)
    names = _value_names(graph, {param_key(n, p) for n, params in weights.items() for p in params})
    emit = Emitter(graph, weights, names, labels)
    with task("lowering to ONNX", total=len(graph), unit=Unit.ITEMS) as bar:
        for node in graph.nodes():
            if node.op != "input":
                emit.lower(node)
            bar.advance()
    for out_name, value in graph.outputs.items():
        if names[value] != out_name:
            # A graph input, or a value output twice: an Identity gives it the output's name.
            node_name = out_name if out_name not in graph and out_name not in emit.taken_nodes \
                else emit._unique_node(f"{out_name}/output")
            emit.taken_nodes.reserve(node_name)
            emit.nodes.append(helper.make_node("Identity", [names[value]], [out_name], name=node_name))
    # The model is filled in place rather than through helper.make_graph/make_model, which
    # copy every initializer twice; the initializers are not put into it at all.
    model = onnx.ModelProto()
    model.ir_version = IR_VERSION
    model.producer_name, model.producer_version = "archc", __version__
    domains = sorted({n.domain for n in emit.nodes if n.domain and n.domain != "ai.onnx"})
    model.opset_import.extend([helper.make_opsetid("", OPSET)]
                              + [helper.make_opsetid(d, emit.domains.get(d, 1)) for d in domains])
    body = model.graph
    body.name = graph.name or "model"  # the checker requires a non-empty graph name
    if graph.doc:
        body.doc_string = model.doc_string = plain_text(graph.doc)
    body.node.extend(emit.nodes)
    body.input.extend(_value_info(n, graph.node(n).type) for n in graph.inputs)
    body.output.extend(_value_info(k, graph.type_of(v)) for k, v in graph.outputs.items())
    # (the model's own metadata kept, an imported model's license or author; archc's keys beside them)
    helper.set_model_props(model, {**graph.properties, "archc_version": __version__, "graph_name": graph.name})
    read = _read_values(model)
    return OnnxParts(model, [(name, array) for name, array in emit.initializers.items() if name in read],
                     frozenset(emit.param_names.values()))


def _read_values(model: onnx.ModelProto) -> set[str]:
    """Every value a node or a graph output reads (subgraphs included)."""
    read = {o.name for o in model.graph.output}
    for node in model.graph.node:
        read.update(node.input)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                inner = onnx.ModelProto()
                inner.graph.CopyFrom(sub)
                read |= _read_values(inner)
    return read


def build_onnx(graph: Graph, weights: Mapping[str, Mapping[str, Any]] | None = None, *, seed: int = 0,
               optimize: bool = True, labels: Mapping[str, str] | None = None,
               inplace: bool = False) -> onnx.ModelProto:
    """The one way from a graph to an ONNX model (``archc build``, ``run`` and ``verify``):
    weights, then the inference rewrites, then emission.

    The weights are ``weights`` if given, else ``graph.weights`` if filled, else archc's
    seeded init for ``seed``. ``optimize`` applies :func:`optimize_for_inference`;
    ``labels`` go to :func:`to_onnx`. The graph and its arrays are left unchanged unless
    ``inplace``: a caller that owns them (a command's freshly loaded graph) lets the weights
    be stored in the graph and folded into, saving a copy of most of them.
    """
    from archc.lowering.onnx_writer import assemble

    return assemble(build_onnx_parts(graph, weights, seed=seed, optimize=optimize, labels=labels,
                                     inplace=inplace))


def build_onnx_parts(graph: Graph, weights: Mapping[str, Mapping[str, Any]] | None = None, *, seed: int = 0,
                     optimize: bool = True, labels: Mapping[str, str] | None = None,
                     inplace: bool = False, draw_ahead: bool = True) -> "OnnxParts":
    """:func:`build_onnx` before the initializers are filled in: :func:`emit_onnx`'s parts, for
    :func:`archc.lowering.onnx_writer.write_onnx` to stream. Seeded weights are deferred
    (drawn when written, one at a time), except the layers folding changes. With
    ``draw_ahead`` the first seeded weights are drawn on a spare core meanwhile
    (:mod:`archc.lowering.onnx_ahead`: the same values, sooner); leave it off when the weights
    will not be written (``--no-weights``)."""
    owned = inplace
    if weights is not None or not graph.weights:
        if not inplace:
            graph = graph.copy()
        graph.weights = {k: dict(v) for k, v in weights.items()} if weights is not None \
            else deferred_weights(graph, seed)
        owned = inplace or weights is None  # fresh arrays in a private copy may be folded into
        if weights is None and draw_ahead:
            from archc.lowering.onnx_ahead import draw_ahead as start_drawing

            start_drawing(graph, graph.weights)
    if optimize:
        graph = optimize_for_inference(graph, inplace=owned)
    return emit_onnx(graph, seed, labels=labels)


def save_onnx(model: onnx.ModelProto, path: str) -> None:
    """Write a model completely or not at all."""
    write_atomic(path, model.SerializeToString())
