"""ONNX model -> graph IR: any exporter's model, seen through its export noise.

The importer walks the ONNX graph in its (topological) order:

1. ``onnx.checker`` (on a large model in a child process beside the import:
   :mod:`archc.frontends.onnx.checking`) and ``onnx.shape_inference`` (strict, with data
   propagation, where the model allows) run on a copy without the large weights (:func:`_skeleton`) and
   give every value a type; ``dim_param`` dims become str dims, unknown dims fresh
   symbols. Each node's output types are checked against what the IR op computes. A node
   ONNX's typing rules reject for its inputs' types, or whose declared output type contradicts
   the one it computes, is refused (:mod:`archc.frontends.onnx.wellformed`).
2. Initializers and ``Constant`` nodes are constants; nodes with only constant inputs
   are folded; ``Shape`` and the arithmetic on it are evaluated symbolically
   (:mod:`archc.frontends.onnx.values`). Such values never become IR nodes unless a node uses them
   as data: a Reshape reads its target, a Resize its scales, from them.
3. Every other node goes through :data:`CONVERTERS` (filled by :mod:`archc.frontends.onnx.convert`), one
   converter per ONNX op type, which maps it to a native IR op (conv, batchnorm,
   linear from MatMul + bias, scale from a multiplication by a literal, ...), or
   makes it disappear (Identity, Dropout, same-dtype Cast, a reshape that changes
   nothing); when a converter declines or the native op's shape inference disagrees
   with ONNX's, the node is kept as an ``onnx_node`` (:mod:`archc.ops.onnx_node`) with
   its constant inputs as weights.
4. Nodes no output depends on are dropped (:meth:`Draft.live`), and nodes are named after the ONNX
   names (:mod:`archc.frontends.onnx.naming`): a PyTorch-style name ``/layer1/layer1.0/conv1/Conv``
   becomes ``layer1.0.conv1`` when it is the only node left from that module, else
   ``layer1.0.conv1.Conv``.

The importer's parts: :mod:`~archc.frontends.onnx.state` (the records and the converters' read
API), :mod:`~archc.frontends.onnx.static` (step 2), :mod:`~archc.frontends.onnx.conversion` (step 3,
and the kinds of node replayed without their converter), :mod:`~archc.frontends.onnx.generic`
(``onnx_node``), :mod:`~archc.frontends.onnx.tensors` (initializers), :mod:`~archc.frontends.onnx.naming`,
:mod:`~archc.frontends.onnx.rows` (each node's fields, read at once).

Weights land in ``graph.weights`` under the native ops' parameter names, so parameter
counts equal those of the framework the model came from (initializers are parameters;
literals from ``Constant`` nodes are buffers, not counted). Errors a model can cause
are :class:`~archc.errors.SpecError` at the file's location, naming the ONNX node.
"""
from __future__ import annotations

import math
from itertools import chain, repeat
from operator import attrgetter, getitem, itemgetter
from typing import Any

import numpy as np
import onnx
import onnx.inliner
from onnx import helper

from archc.errors import Location, SpecError, first_line
from archc.frontends.onnx import limits as onnx_limits
from archc.limits import DEFAULT_LIMITS, Limits, known_elements
from archc.frontends.onnx.columns import Columns, initializer_columns
from archc.frontends.onnx.conversion import attribute_bytes, disagree, key_part as _key_part
from archc.frontends.onnx.converters import CONVERTERS, PURE, Converter, Fallback, converts
from archc.frontends.onnx.generic import GenericNodes
from archc.frontends.onnx.inference import OnnxTypes, otype
from archc.frontends.onnx.naming import clean, module_scopes, node_meta, split_name
from archc.frontends.onnx.rows import mirror_graph, node_rows
from archc.frontends.onnx.sharing import tie_shared_weights
from archc.frontends.onnx.signature import signature_parameters, torch_constants
from archc.frontends.onnx.state import DEFAULT_DOMAINS as _DEFAULT_DOMAINS
from archc.frontends.onnx.static import StaticValues, constant_value
from archc.frontends.onnx.tensors import contiguous, is_unread as _is_unread, read_tensor, read_tensors_grouped, unread
from archc.frontends.onnx.values import NONDETERMINISTIC, Const, Tensor
from archc.frontends.onnx.walk import Walk
from archc.ir.graph import Graph, Value, verify_in_debug
from archc.ops import registry
from archc.ops.nodes import build_node

__all__ = ["CONVERTERS", "PURE", "Converter", "Fallback", "Importer", "contiguous", "converts", "default_opset",
           "from_onnx", "load_onnx", "module_scopes", "node_meta", "read_onnx_model", "split_name"]

#: attribute types that hold subgraphs (control flow)
_SUBGRAPHS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def load_onnx(path: str, weights: bool = True, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """Read an ONNX file into the IR; SpecError (at ``path``) if it is missing or invalid.

    External data is read only from files inside the model's directory (see
    :mod:`archc.frontends.onnx.limits`), and only with ``weights``: lint, summary and check
    pass False and never read the weights' external data; tensors stored there get placeholders
    of their shape and dtype that take no memory (zero strides). Node attributes' tensors (a
    Constant's shape or axes) are read either way: the import computes with them. No graph
    input or value may have more elements than ``limits.max_tensor_elements``.
    """
    if weights:  # (external data read into the model: the file's bytes no longer encode it)
        return from_onnx(read_onnx_model(path), path, weights=True, limits=limits)
    model, data = onnx_limits.read_model_data(path, weights=False)
    # (a walk over every node's attributes costs a 100k-node model 0.2-0.4 s: where the file's bytes are at
    # hand, a search for the key every external data entry holds tells in milliseconds that there is none)
    if (data is None or b"location" in data) and onnx_limits.load_external_data(model, path, constants_only=True):
        data = None  # (the model read differs from the file's bytes now)
    return from_onnx(model, path, weights=False, data=data, limits=limits)


def read_onnx_model(path: str) -> onnx.ModelProto:
    """The model at ``path`` with its weights, external data included (read from inside the
    model's directory only, see :mod:`archc.frontends.onnx.limits`)."""
    model, _ = onnx_limits.read_model_data(path, weights=True)
    onnx_limits.load_external_data(model, path)
    return model


def from_onnx(model: onnx.ModelProto, filename: str = "<onnx>", weights: bool = True,
              data: bytes | None = None, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """The IR of an in-memory ONNX model (``filename`` is used in messages and as the graph name).

    ``weights=False``: the caller reads the weights' shapes and dtypes, never their values (lint,
    summary, graph): a weight already of its parameter's dtype is stored as the read-only array
    read from the model, not copied. ``data``: the model serialised, where the caller has it (the
    file it was read from), read instead of a new serialisation."""
    where = Location(filename)
    if not isinstance(model, onnx.ModelProto) or not model.HasField("graph"):
        raise SpecError("not an ONNX model (no graph)", location=where)
    if len(model.functions):
        model, data = inline_functions(model, where), None
    if default_opset(model) < UPGRADE_TO:
        onnx_limits.check_structure(model.graph, where)  # the version converter is given well-formed graphs only
        model, data = upgrade_opset(model), None
    # the model's bytes parsed once (the rows' mirror), its small initializers read from them
    mirrored = mirror_graph(data) if data is not None else None
    columns = initializer_columns(mirrored.initializer) if mirrored is not None else None
    skeleton = model if columns is not None and columns.most_elements is not None \
        and columns.most_elements <= _SKELETON_LIMIT else _skeleton(model)  # (no large initializer to leave out)
    if skeleton is not model:
        mirrored = columns = None  # (the checker's input is the skeleton's bytes, not these)
    # onnx.checker (on a large model in a child process, beside the import), check_structure's messages
    # (the mirror's parse of these bytes proved the nodes' strings text, and the columns decoded every
    # initializer's name where they read them all: the checks read only the other names)
    check = onnx_limits.start_check(model.graph, skeleton, where, data if skeleton is model else None,
                               nodes_text=mirrored is not None,
                               initializers_text=columns is not None and columns.most_elements is not None)
    try:
        importer = Importer(model, filename, skeleton, check, weights=weights, prepared=(mirrored, columns),
                            limits=limits)
        del mirrored, columns  # (the importer's now: it lets them go as soon as it has read them)
        graph = importer.run()
        from archc.frontends.onnx.arithmetic import learned_operands
        from archc.frontends.onnx.patterns import fuse

        fuse(graph)  # functions exporters write out (GELU, SiLU, layer norm) become native ops
        learned_operands(graph)  # (after the patterns, which read a norm's affine as the ONNX ops)
        # one initializer read by several nodes: one tensor
        tie_shared_weights(graph, importer.made_weights(), signature_parameters(model.graph))
    except Exception:
        check.settle()  # the checker's refusal comes first, as when it ran before the import
        raise
    except BaseException:
        check.verdict.cancel()
        raise
    check.settle()
    return graph


def inline_functions(model: onnx.ModelProto, where: Location) -> onnx.ModelProto:
    """The model with its local functions (``export_modules_as_functions``) inlined at every call by
    onnx's inliner: the import, the checker and both lowerings see the functions' nodes, as in a model
    exported without them."""
    count = onnx_limits.inlined_size(model)
    if count is None:
        raise SpecError("the model's local functions call each other too deeply to inline", location=where)
    if count > onnx_limits.MAX_INLINED_NODES:
        raise SpecError(f"the model's local functions expand to {count:,} nodes once inlined, over the limit of "
                        f"{onnx_limits.MAX_INLINED_NODES:,} (raise it with ARCHC_MAX_INLINED_NODES=N)", location=where)
    try:
        return onnx.inliner.inline_local_functions(model)
    except Exception as exc:  # noqa: BLE001 - the inliner raises several types for malformed functions
        raise SpecError(f"cannot inline the model's local functions: {first_line(exc)}", location=where) from None


#: models importing an older default-domain opset are first converted to this one
UPGRADE_TO = 13


def upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model converted by onnx's version converter to opset :data:`UPGRADE_TO` when it
    imports an older one (opsets 1-12), so converters and lowerings see today's operator
    signatures; the model itself where it is recent or the converter cannot convert it
    (the importer reads the old signatures too)."""
    if default_opset(model) >= UPGRADE_TO:
        return model
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(_per_channel_slopes(model), UPGRADE_TO)
    except Exception:  # noqa: BLE001 - the converter lacks adapters for some ops and raises several types
        return model
    # The converter keeps the file's IR version. Below IR 4 every initializer must also be a graph
    # input, and shape inference does not read Constant nodes' values: the converter's new inputs
    # (Pad's pads, Split's sizes) would make the converted model invalid or untyped.
    converted.ir_version = max(converted.ir_version, helper.find_min_ir_version_for(list(converted.opset_import)))
    return converted


def _per_channel_slopes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Before opset 7, PRelu's slope of C values applies per channel (dim 1); from opset 7 on it
    broadcasts from the right, like Add. The version converter leaves the slope as it is, so a slope
    initializer of shape [C] for an input of rank r > 2 is given shape [C, 1, ...] (r - 2 ones) here:
    the same values, the old meaning in the new rules. The model itself where nothing changes."""
    if default_opset(model) >= 7:
        return model
    inits = {t.name: t for t in model.graph.initializer}
    slopes = [n for n in model.graph.node if n.op_type == "PRelu" and n.domain in _DEFAULT_DOMAINS
              and len(n.input) == 2 and n.input[1] in inits and len(inits[n.input[1]].dims) == 1
              and inits[n.input[1]].dims[0] > 1]
    if not slopes:
        return model
    try:
        typed = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - an untyped model is converted as it is, and refused later if ill-typed
        return model
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in chain(typed.graph.input, typed.graph.value_info)
             if vi.type.tensor_type.HasField("shape")}
    model = _copy(model)
    inits = {t.name: t for t in model.graph.initializer}
    listed = {vi.name: vi for vi in model.graph.input}
    for node in slopes:
        rank = ranks.get(node.input[0], 0)
        slope = inits[node.input[1]]
        if rank > 2 and len(slope.dims) == 1:
            slope.dims.extend([1] * (rank - 2))
            if node.input[1] in listed:  # (IR 3 lists initializers as inputs too)
                shape = listed[node.input[1]].type.tensor_type.shape
                for _ in range(rank - 2):
                    shape.dim.add().dim_value = 1
    return model


def _shown(shape: Any) -> str:
    """A shape as an error shows it: ``[N, 2147483648]`` (an unnamed dim as ``?``)."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def default_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset the model imports (:data:`UPGRADE_TO` when it imports none)."""
    return next((o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), UPGRADE_TO)


#: initializers with more elements than this are left out of the copy that is checked and shape-inferred
_SKELETON_LIMIT = 256


_DIMS_LOCATION, _FIRST, _SECOND, _ALL = attrgetter("dims", "data_location"), itemgetter(0), itemgetter(1), slice(None)


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its large initializers turned into typed graph inputs.

    The checker and shape inference serialise the whole model; without the weights'
    bytes that is several times faster, and their shapes are all inference needs.
    Small initializers (shapes, axes, scalars) stay, for data propagation.
    """
    g = model.graph
    inits = g.initializer
    # (both fields of each tensor read at once, dims as a slice: iterating the field ends in an IndexError
    # protobuf formats; no Python frame per tensor)
    fields = list(map(_DIMS_LOCATION, inits))
    if max(map(math.prod, map(getitem, map(_FIRST, fields), repeat(_ALL))), default=0) <= _SKELETON_LIMIT \
            and onnx.TensorProto.EXTERNAL not in set(map(_SECOND, fields)):
        return model  # (the loop's answer below, read at C speed: a model of 100k small weights)
    listed = {vi.name for vi in g.input}
    small, extra = [], []
    for init in inits:
        # a name that is not text stays, for limits.check_model to refuse
        if math.prod(init.dims) <= _SKELETON_LIMIT and not _is_unread(init) or isinstance(init.name, bytes):
            small.append(init)
        elif init.name not in listed:
            extra.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    if len(small) == len(inits):
        return model  # nothing to leave out: the model is its own skeleton (neither reader changes it)
    graph = helper.make_graph(g.node, g.name, [*g.input, *extra], g.output, initializer=small,
                              value_info=g.value_info, sparse_initializer=g.sparse_initializer)
    out = onnx.ModelProto()
    out.ir_version = model.ir_version
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    out.graph.CopyFrom(graph)
    return out


class Importer(StaticValues, GenericNodes, Walk):
    """One import: the graph's values walked in order, each node folded, converted or kept."""

    def __init__(self, model: onnx.ModelProto, filename: str, skeleton: onnx.ModelProto | None = None,
                 check: onnx_limits.PendingCheck | None = None, weights: bool = True,
                 prepared: tuple[Any, Columns | None] = (None, None), limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(model, filename, skeleton if skeleton is not None else _skeleton(model))
        self.copy_weights = weights  # (see from_onnx)
        #: the bounds the graph's inputs and values are held to (max_tensor_elements)
        self.limits = limits
        self._stored_by_source = {}
        self._folded = {}
        #: the checker's verdict, where it may still be pending (see :mod:`archc.frontends.onnx.checking`)
        self.check = check
        #: the checker's input parsed by the rows' mirror, and the initializers read from it, where
        #: from_onnx made them already (it reads the initializers first to tell whether a skeleton is needed)
        self._prepared = prepared

    def run(self) -> Graph:
        """The IR of the model."""
        self.converters = CONVERTERS
        self.pure = PURE
        g = self.model.graph
        self.types = OnnxTypes(self.model, self.skeleton, self._fail, self._checked)
        self.symbols = self.types.symbols              # ONNX dim_param -> IR dim
        self.input_symbols = self.types.input_symbols  # dim_params of the graph inputs, kept as they are
        #: the types the file declares for values (value_info, graph outputs), by name
        self.declared = {vi.name: t for vi in [*g.value_info, *g.output] if (t := otype(vi.type)) is not None}
        # each node's fields, read once (reading a protobuf field costs what a dict lookup does, many times over)
        data = self.check.data if self.check is not None else None
        mirrored, columns = self._prepared
        self._prepared = (None, None)  # (the mirror is freed once read: the importer lives in a reference cycle)
        if mirrored is None and data is not None:
            mirrored = mirror_graph(data)  # (the model's bytes, parsed once)
        rows = node_rows(g, data, mirrored)
        self._consumers = None  # (counted where a converter asks)
        self._readers = lambda: chain(chain.from_iterable(row[3] for row in rows), (out.name for out in g.output))
        # (the initializers' bytes where the checker's input is the model itself, not a skeleton without its large ones)
        if columns is None and mirrored is not None and self.skeleton is self.model:
            columns = initializer_columns(mirrored.initializer)
        self._read_initializers(g, columns)
        for vi in g.input:
            if vi.name not in self.values:
                self._add_input(vi)
        self.walk(rows)  # each node by its kind's recipe where it has one, else the general way
        for out in g.output:
            self._add_output(out)
        return self._finish()

    def _read_initializers(self, g: onnx.GraphProto, columns: Columns | None) -> None:
        """Each initializer's record (``columns``: those read from the model's bytes, where read)."""
        values, kinds = self.values, self.kinds
        # Initializers are the model's parameters; integer ones are indices or shapes. What a kind key
        # holds of a parameter is its dtype and shape (see kinds.py): its tag, once per dtype and shape.
        facts: dict[object, tuple[bool, int | None]] = {}  # group, or (dtype, shape) -> (learnt, tag)
        # (a torch dynamo export's own constants and the module's buffers: float, but not learned)
        constants = torch_constants(g)
        for name, arr, group in zip(*self._initializer_arrays(g, columns)):
            if constants and name in constants:
                values[name] = Const(arr, False)
                continue
            fact = facts.get(group) if group is not None else None
            if fact is None:
                fact = facts.get((arr.dtype, arr.shape))
                if fact is None:
                    learned = arr.dtype.kind in "fc"
                    tag = kinds.part_tag(_key_part(Const(arr, True), False)) if learned else None
                    fact = facts[(arr.dtype, arr.shape)] = (learned, tag)
                if group is not None:
                    facts[group] = fact
            values[name] = Const(arr, fact[0], None, fact[1])
        for init in g.sparse_initializer:
            self._fail(f"sparse initializer '{init.values.name}' is not supported")

    def _initializer_arrays(self, g: onnx.GraphProto, columns: Columns | None) -> tuple[list, list, list]:
        """The initializers' names, arrays and groups (see :func:`read_tensors_grouped`): the small plain
        ones read in ``columns`` from the model's bytes (:mod:`~archc.frontends.onnx.columns`), the others
        through protobuf, in order (a tensor that cannot be read is reported as the first of the file's)."""
        def read(init: onnx.TensorProto) -> np.ndarray:
            try:
                return unread(init) if _is_unread(init) else read_tensor(init)
            except Exception as exc:  # noqa: BLE001 - data not matching the declared dims
                self._fail(f"initializer '{init.name}' cannot be read: {first_line(exc)}")
                raise AssertionError from exc  # unreachable: _fail raises

        inits = g.initializer
        if columns is None or len(columns.names) != len(inits):
            read_in = read_tensors_grouped(inits, read)
            return [r[0] for r in read_in], [r[1] for r in read_in], [r[2] for r in read_in]
        left = [i for i, arr in enumerate(columns.arrays) if arr is None]
        if left:  # (protobuf reads them, in the file's order)
            names, arrays, groups = columns.names, columns.arrays, columns.groups
            for i, (name, arr, group) in zip(left, read_tensors_grouped([inits[i] for i in left], read)):
                names[i], arrays[i], groups[i] = name, arr, group
        return columns.names, columns.arrays, columns.groups

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        t = otype(vi.type)
        if t is None or t.shape is None or t.dtype is None:
            self._fail(f"graph input '{vi.name}' needs a tensor type with a known rank")
        if any(isinstance(d, int) and d < 0 for d in t.shape):
            self._fail(f"graph input '{vi.name}' has a negative dim: {list(t.shape)}")
        too_big = self.limits.tensor_problem(t.shape, f"graph input '{vi.name}' of shape {_shown(t.shape)}")
        if too_big:
            self._fail(too_big)
        shape = tuple(self.fresh_symbol() if d is None else d for d in t.shape)
        self.input_symbols.update(d for d in shape if isinstance(d, str))
        name = self.unique_name(clean(vi.name) or "input")
        node = build_node(registry.get("input"), name, {"shape": shape, "dtype": t.dtype}, [], [],
                          location=self.where, meta={"onnx_name": vi.name})
        self.graph.add(node)
        self.bind(vi.name, Tensor(Value(name)))

    def _add_output(self, out: onnx.ValueInfoProto) -> None:
        rec = self.values.get(out.name)
        if rec is None:
            self._fail(f"graph output '{out.name}' is not computed by any node")
        if isinstance(rec, Const):
            self._fail(f"graph output '{out.name}' is a constant; archc graphs compute their outputs")
        if out.name in self.graph.outputs:  # (the IR names each output once: one would silently go)
            self._fail(f"graph output '{out.name}' is listed twice; archc names each output once: give the second "
                       "its own name (an Identity node)")
        self.graph.outputs[out.name] = self.tensor(out.name)
        if not self.types.has_whole and disagree(otype(out.type), self.graph.type_of(self.graph.outputs[out.name])):
            self.types.whole()  # a declared output type ONNX's inference checks against its own

    def _checked(self) -> None:
        """Wait for the checker's verdict; its refusal where it refuses the model."""
        if self.check is not None:
            self.check.settle()

    def _process(self, node: onnx.NodeProto, attributes: tuple[bytes, ...] | None = None) -> None:
        """Fold, evaluate, convert or keep one node (the general way; ``attributes``: their bytes, where
        read already, see :mod:`~archc.frontends.onnx.rows`)."""
        op_type = node.op_type
        default = node.domain in _DEFAULT_DOMAINS
        if self.check is not None and self.check.verdict.pending:  # (ONNX's C++ code reads only checked nodes)
            self.check.verdict.vet(node, (op_type, node.domain, attribute_bytes(node), tuple(map(bool, node.input)),
                                          tuple(map(bool, node.output))))
            if not self.check.verdict.pending:
                self.check.settle()
        if default and op_type in ("If", "Loop", "Scan"):
            from archc.frontends.onnx.control_flow import resolve

            if resolve(self, node):
                return
        if any(a.type in _SUBGRAPHS for a in node.attribute):
            self._fail(f"ONNX {op_type} has a subgraph that does not fold away; archc imports control "
                       "flow only where it becomes straight-line code (an If on a constant condition, a Loop "
                       "of a constant trip count, a Scan of a known length)", node=node)
        if default and "" in node.input and (problem := onnx_limits.absent_input_problem(node)):
            self._fail(problem, node=node)
        values = self.values
        recs = [values.get(name) if name else None for name in node.input]
        if None in recs:
            for name in node.input:
                if name and name not in values:
                    self._fail(f"input '{name}' is not defined before its use", node=node)
        if default and op_type == "Constant":
            self.bind(node.output[0], Const(constant_value(node, self)))
            return
        if default and op_type in ("Shape", "Size") and isinstance(recs[0], Tensor):
            self._shape_of(node, self.graph.type_of(recs[0].value).shape)
            return
        static = recs and default and op_type not in NONDETERMINISTIC and all(type(r) is not Tensor for r in recs)
        if static:
            self._evaluate(node, recs)
        else:
            self._convert(node, attributes)

    def _finish(self) -> Graph:
        """The graph of the nodes some output depends on, under their final names."""
        live = self.graph.live()  # nodes no output depends on are dropped
        self._check_sizes(live)
        names = self.names.final([n for n in live if n.op != "input"], self.origin, self.graph.inputs)
        return verify_in_debug(self.graph.build(live, names))

    def _check_sizes(self, live: list) -> None:
        """Refuse a value with more elements than ``max_tensor_elements`` (its known dims; a graph
        input's are checked as it is read), naming the ONNX node that computes it."""
        bound = self.limits.max_tensor_elements
        within: set[tuple] = set()  # shapes found within the bound (a model repeats a few shapes)
        for node in live:
            for k, t in enumerate(node.outputs):
                shape = t.shape
                if shape in within or node.op == "input":
                    continue
                if known_elements(shape) <= bound:
                    within.add(shape)
                    continue
                onnx_node = self.origin.get(node.name)
                value = onnx_node.output[k] if onnx_node is not None and k < len(onnx_node.output) else node.name
                self._fail(self.limits.tensor_problem(shape, f"value '{value}' of shape {_shown(shape)}"),
                           onnx_node)
