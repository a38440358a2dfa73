"""Nodes mapped to native IR ops by their converters, checked against ONNX's types; one kind of
node converted once and replayed for the others.

A node whose converter is pure (:mod:`archc.frontends.onnx.replay`) has a *kind*
(:meth:`Conversion.kind`): its op, attributes, which outputs it names, and each input's IR type
or constant's dtype and shape. The first node of a kind runs its converter while a recorder notes
what it emits; every later node of the kind replays that recipe (:meth:`Conversion.replayed`),
with the same checks the converter's run passed. Other nodes run their converter each time;
a converter that declines (:class:`~archc.frontends.onnx.converters.Fallback`) leaves the node to
:meth:`~archc.frontends.onnx.generic.GenericNodes.generic`.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx

from archc.frontends.onnx.converters import Converter, Fallback
from archc.frontends.onnx.inference import READS_FLOAT_DATA, VALUE_LIMIT, IllTyped, OType
from archc.frontends.onnx.naming import node_meta
from archc.frontends.onnx.replay import Recipe, Recorder
from archc.frontends.onnx.state import DEFAULT_DOMAINS, ImportState
from archc.frontends.onnx.templates import Template
from archc.frontends.onnx.tensors import contiguous, is_placeholder
from archc.frontends.onnx.values import Const, Record, Tensor
from archc.ir.graph import Node, Value
from archc.ir.types import TensorType
from archc.ops import registry

__all__ = ["Conversion", "agree", "attribute_bytes", "disagree", "key_part", "otext"]


class Conversion(ImportState):
    """Converters, recipes and the native nodes they emit (the converters' ``emit``)."""

    converters: dict[str, Converter]
    #: (address, shape, strides, dtype, stored dtype or None) of each weight stored or made contiguous ->
    #: (the source, the array made of it)
    _stored_by_source: dict[tuple, tuple[np.ndarray, np.ndarray]]
    #: ONNX op type -> True, or a test of the node, where its converter is pure
    pure: dict[str, bool | Callable[[Any, onnx.NodeProto], bool]]

    # -- one node ----------------------------------------------------------------------------
    def _convert(self, node: onnx.NodeProto, attributes: tuple[bytes, ...] | None = None) -> None:
        fn = self.converters.get(node.op_type) if node.domain in DEFAULT_DOMAINS else None
        if fn is None:
            self._check_declared(node, self.node_types(node))  # an ill-typed node is refused
            self.generic(node)
            return
        key = self.recipe_key(node, attributes)
        recipe = self._recipes.get(key) if key is not None else None
        if recipe is not None:  # (its kind's first node passed the check below)
            outs: list | None = self._replay(node, recipe)
        else:
            self._check_declared(node, self.node_types(node))  # an ill-typed node is refused
            self._recorder = self._new_recorder(node) if key is not None else None
            try:
                outs = fn(self, node)
            except Fallback:  # the one signal that keeps the node as it is; anything else is a bug
                outs = None
            recorder, self._recorder = self._recorder, None
            if outs is not None and recorder is not None:
                made = recorder.recipe(outs)
                if made is not None:
                    self._recipes[key] = made
        self._bind_outputs(node, outs)

    def _bind_outputs(self, node: onnx.NodeProto, outs: list | None, outputs: Any = None) -> None:
        """Bind the node's outputs (``outputs``: their names, where read already) to what its
        conversion returned; an onnx_node where it declined or left a used output unaccounted for."""
        if outs is None:
            self.generic(node)
            return
        if outputs is None:
            outputs = node.output
        if len(outs) < len(outputs) and any(self.consumers.get(name) for name in outputs[len(outs):]):
            self.generic(node)
            return
        values, bindings = self.values, self.tensor_bindings
        for name, out in zip(outputs, outs):
            if isinstance(out, Value):
                values[name] = Tensor(out)
                bindings.append((name, out))
            else:
                self.bind(name, out)

    def recipe_key(self, node: onnx.NodeProto, attributes: tuple[bytes, ...] | None = None) -> tuple | None:
        """The kind of ``node`` (see :meth:`kind`), or None."""
        pure = self.pure.get(node.op_type)
        if pure is None:
            return None
        return self.kind(node, pure, [self.values.get(name) if name else None for name in node.input],
                         node.op_type, tuple(node.output), attributes)

    def kind(self, node: onnx.NodeProto, pure: Any, records: list[Record | None], op_type: str,
             outputs: tuple[str, ...], attributes: tuple[bytes, ...] | None = None) -> tuple | None:
        """The kind of a node whose converter is pure (see :mod:`archc.frontends.onnx.replay`): op,
        attributes, which outputs it names, each input's IR type or constant's dtype, shape,
        learnt-ness (and value, where the per-node inference reads it), the types the file declares
        for its outputs (the conversion checks against them); None when the node has no kind: a
        symbolic input, a node the converter's test of purity refuses. ``attributes``: the attributes'
        bytes as the file holds them, where read (:mod:`~archc.frontends.onnx.rows`)."""
        parts = self._input_parts(op_type, records, learned=True)
        if parts is None or (pure is not True and not pure(self, node)):
            return None
        declared = self.declared
        if attributes is None:
            attributes = attribute_bytes(node)
        return (op_type, tuple(map(bool, outputs)), attributes, parts,
                tuple(map(declared.get, outputs)) if declared else ())

    def _new_recorder(self, node: onnx.NodeProto) -> Recorder:
        tensors, constants = {}, {}
        for i, name in enumerate(node.input):
            rec = self.values.get(name) if name else None
            if isinstance(rec, Tensor):
                tensors[i] = rec.value
            elif isinstance(rec, Const):
                constants[i] = rec.array
        return Recorder(tensors, constants)

    def _replay(self, node: onnx.NodeProto, recipe: Recipe, recs: list[Record | None] | None = None,
                named: tuple[str, dict[str, Any]] | None = None) -> list[Value]:
        """The native nodes ``recipe`` made for the first node of this one's kind, made for this one
        (``recs``: the records of its inputs, ``named``: its names' base and its meta, where known)."""
        if recs is None:
            recs = [self.values[name] if name else None for name in node.input]
        base, meta = named if named is not None else (self.names.default(node), node_meta(node))
        one = recipe.one_node
        if one is not None:  # one native node over the node's inputs: nothing to look up per source
            step = recipe.steps[0]
            outputs = list(step.template.outputs)
            if step.check:
                self.types.learn(node, outputs)  # the check passed for this kind; the symbols are this node's
            return self._add_node(node, step.template, [recs[i].value for i in one],
                                  self._replayed_weights(step.weight_dtypes, recs), outputs,
                                  (base + step.suffix, meta), replayed=True)
        # a source: ("in", i), the node's input i (a Tensor: the kind says so); ("emit", j, k), output k of step j
        made: list[list[Value]] = []
        for step in recipe.steps:
            outputs = list(step.template.outputs)
            if step.check:
                self.types.learn(node, outputs)
            inputs = [recs[s[1]].value if s[0] == "in" else made[s[1]][s[2]] for s in step.inputs]
            made.append(self._add_node(node, step.template, inputs, self._replayed_weights(step.weight_dtypes, recs),
                                       outputs, (base + step.suffix, dict(meta) if made else meta), replayed=True))
        return [recs[s[1]].value if s[0] == "in" else made[s[1]][s[2]] for s in recipe.outputs]

    def _replayed_weights(self, specs: tuple, recs: list[Record | None]) -> dict[str, Any]:
        """A replayed step's weights (its ``weight_dtypes``): the node's constant inputs (or the
        kind's literals), stored as the op's parameter specs say (what :meth:`_add_native` does)."""
        weights = {}
        copy = self.copy_weights
        for key, s, dtype in specs:
            arr = recs[s[1]].array if s[0] == "in" else s[1]
            # (without copies, an array of the parameter's dtype is stored as it is; read here, inline)
            weights[key] = arr if dtype is None or not copy and type(arr) is np.ndarray and arr.dtype is dtype \
                and arr.flags.c_contiguous else self._store(arr, dtype)
        return weights

    def _store(self, weight: Any, dtype: Any) -> np.ndarray:
        """:func:`_stored` of ``weight``, once per source: nodes reading one initializer (a layer applied
        twice, an embedding tied to the output projection) store one array, which the import's
        :func:`~archc.frontends.onnx.sharing.tie_shared_weights` then ties. A source is its memory and
        view (a transpose made per node of one initializer is one source)."""
        arr = weight if type(weight) is np.ndarray else np.asarray(weight)
        return self._once(arr, np.dtype(dtype).str, lambda: _stored(arr, dtype, self.copy_weights))

    def made_weights(self) -> set[int]:
        """The ids of the weight arrays this import made rather than read from the file: the kinds'
        literals (one array for every node of a kind) and what was stored of them."""
        literals = {id(source[1]) for recipe in self._recipes.values() for step in recipe.steps
                    for _, source, _ in step.weight_dtypes if source[0] == "literal"}
        return literals | {id(made) for source, made in self._stored_by_source.values() if id(source) in literals}

    def contiguous(self, arr: np.ndarray) -> np.ndarray:
        """:func:`~archc.frontends.onnx.tensors.contiguous` of a weight's view (``w.T``), once per view of
        one initializer, as :meth:`_store` stores it (a shared weight stays one array)."""
        return self._once(arr, None, lambda: contiguous(arr))

    def _once(self, arr: np.ndarray, made_as: str | None, make: Callable[[], np.ndarray]) -> np.ndarray:
        """``make()`` of ``arr`` (stored as dtype ``made_as``, or made contiguous: None), once per view of
        memory; the source is kept alive while the import runs, so that no other array takes its address."""
        key = (*_view(arr), made_as)
        found = self._stored_by_source.get(key)
        if found is None:
            found = self._stored_by_source[key] = (arr, make())
        return found[1]

    # -- native nodes --------------------------------------------------------------------------
    def emit(self, node: onnx.NodeProto, op: str, attrs: dict[str, Any], inputs: list[Value],
             weights: dict[str, np.ndarray] | None = None, check: bool = True, suffix: str = "",
             key: str | None = None, replayable: bool = True) -> list[Value]:
        """Add a native IR node for ONNX ``node``; Fallback if the op's inference or params disagree.

        ``check`` compares the outputs with ONNX's types (off for the inner nodes of a
        node mapped to several); ``suffix`` tells such inner nodes' names apart. ``key``: the node's
        name, its state_dict key (a learned table's initializer's), which the final names leave as it is;
        not ``replayable`` (or with a ``key``): this node's alone, no recipe for its kind."""
        opdef = registry.get(op)
        if opdef is None:
            raise Fallback(f"no op '{op}'")
        ins = [self.graph.type_of(v) for v in inputs]
        template = self.templates.get(opdef, {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()},
                                      ins, weights)
        if template.refusal is not None:
            raise Fallback(template.refusal)
        outputs = list(template.outputs)
        if check:
            self.check_types(node, outputs)
        if template.param_refusal is not None:
            raise Fallback(template.param_refusal)
        values = self._add_native(node, template, inputs, weights, outputs,
                                  (self.names.default(node) + suffix if key is None else key, node_meta(node)))
        if key is not None:  # (the final names give a lone node its module's name: see naming.NodeNames.final)
            del self.origin[values[0].node]
        if self._recorder is not None:  # (a name of its own is this node's: no recipe for the kind)
            self._recorder.emitted(template, inputs, weights, check, suffix, values,
                                   replayable=replayable and key is None)
        return values

    def _add_native(self, node: onnx.NodeProto, template: Template, inputs: list[Value],
                    weights: dict[str, np.ndarray] | None, outputs: list[TensorType],
                    named: tuple[str, dict[str, Any]]) -> list[Value]:
        """Add the native node ``template`` describes for ONNX ``node`` (``named``: its name's base
        and its meta), its weights stored as the op's parameter specs say; its output values."""
        if weights:
            weights = dict(weights)
            for key, spec in template.specs.items():
                if key in weights:
                    weights[key] = self._store(weights[key], spec.dtype)
        return self._add_node(node, template, inputs, weights, outputs, named)

    def _add_node(self, node: onnx.NodeProto, template: Template, inputs: list[Value],
                  weights: dict[str, np.ndarray] | None, outputs: list[TensorType],
                  named: tuple[str, dict[str, Any]], replayed: bool = False) -> list[Value]:
        """Add the native node of :meth:`_add_native`, its weights already stored (``replayed``: by a
        recipe, whose inputs are the node's own tensors and the recipe's earlier nodes)."""
        name = self.names.take(named[0])
        # (name, op, attrs, inputs, outputs, scope, location, meta; a replay's inputs are a list of its own)
        node_ir = Node(name, template.op, dict(template.attrs), inputs if replayed else list(inputs), outputs, (),
                       self.where, named[1])
        if replayed:
            self.graph.append(node_ir)
        else:
            self.graph.add(node_ir)
        if weights:
            self.graph.weights[name] = weights
        self.origin[name] = node
        return [Value(name)] if len(outputs) == 1 else [Value(name, k) for k in range(len(outputs))]

    # -- ONNX's types --------------------------------------------------------------------------
    def _check_declared(self, node: onnx.NodeProto, local: list[OType | None] | None) -> None:
        """Refuse the node when the file declares a type for an output (value_info, graph output)
        that contradicts the one ONNX's rules give it over its inputs' types (``local``)."""
        if local is None or not self.declared:
            return
        for name, mine in zip(node.output, local):
            declared = self.declared.get(name) if name else None
            if mine is not None and declared is not None and disagree(declared, TensorType(mine.shape, mine.dtype)):
                self._fail(f"output '{name}' is declared {otext(declared)}, but the node computes "
                           f"{otext(mine)} from its inputs", node=node)

    def check_types(self, node: onnx.NodeProto, types: list[TensorType]) -> None:
        """Fallback unless ``types`` agree with ONNX's output types: the per-node inference's where
        it knows them (:meth:`node_types`), else the whole model's, whose symbols are learnt."""
        local = self.node_types(node)
        for k, (name, t) in enumerate(zip(node.output, types)):
            if not name:
                continue
            if local is not None and local[k] is not None:
                # the whole model's type would be this one, merged with the type the file declares
                agree(t, local[k])
                agree(t, self.declared.get(name))
            else:
                if self._recorder is not None:
                    self._recorder.spoilt = True  # checked against this value's own type: not the kind's
                agree(t, self.otype(name))
        # Symbols ONNX made up for dims it could not name stand for what the IR computed.
        self.types.learn(node, types)

    def node_types(self, node: onnx.NodeProto) -> list[OType | None] | None:
        """ONNX's complete output types of ``node`` by inference of the node alone over its inputs'
        IR types (and the values of the inputs whose values shape inference reads), once per
        signature (:class:`~archc.frontends.onnx.inference.OnnxTypes`); None when an input is a
        symbolic shape value, which only the whole model's inference types."""
        names = node.input
        records = [self.values.get(name) if name else None for name in names]
        inputs = self._input_parts(node.op_type, records, learned=False)
        if inputs is None:
            return None
        signature = (node.op_type, node.domain, tuple(map(bool, node.output)), attribute_bytes(node), inputs)
        try:
            return self.types.of_node(node, signature, lambda: self._typed(node, records))
        except IllTyped as exc:
            self._fail(str(exc), node=node)
            raise AssertionError from exc  # unreachable: _fail raises

    def _input_parts(self, op_type: str, records: list[Record | None], learned: bool) -> tuple | None:
        """Each input as a node kind's key holds it: a data input's IR type; a constant's dtype and
        shape (with whether it is learnt, if ``learned``) and its bytes where the per-node
        inference reads its value; None for an absent input. None when an input is symbolic."""
        parts: list[Any] = []
        type_of = self.graph.type_of
        for rec in records:
            if rec is None:
                parts.append(None)
            elif type(rec) is Tensor:
                parts.append(type_of(rec.value))
            elif type(rec) is Const:
                how = (op_type in READS_FLOAT_DATA, learned)
                cached = rec.parts
                part = cached.get(how) if cached is not None else None
                if part is None:
                    part = _const_part(rec, *how)
                parts.append(part)
            else:
                return None
        return tuple(parts)

    def _typed(self, node: onnx.NodeProto, records: list[Record | None]) -> list[Any]:
        """The node's inputs as the per-node inference takes them: TensorTypes, constant values."""
        typed: list[Any] = []
        reads_float = node.op_type in READS_FLOAT_DATA
        for rec in records:
            if isinstance(rec, Tensor):
                typed.append(self.graph.type_of(rec.value))
            elif isinstance(rec, Const):
                a = rec.array
                typed.append(a if _by_value(a, reads_float) else TensorType(a.shape, a.dtype.name))
            else:
                typed.append(None)
        return typed


def attribute_bytes(node: onnx.NodeProto) -> tuple[bytes, ...]:
    """The node's attributes, serialised: what a key of the node's kind holds of them (attribute
    values compare exactly, whatever their type)."""
    return tuple(map(_SERIALIZE, node.attribute))


_SERIALIZE = onnx.AttributeProto.SerializeToString  # (mapped over a node's attributes: no Python frame per one)


def _view(arr: np.ndarray) -> tuple:
    """What tells one view of memory from another: its address, shape, strides and dtype."""
    return arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str


def _stored(weight: Any, dtype: Any, copy: bool = True) -> np.ndarray:
    """A weight as a parameter of ``dtype`` stores it: a C-ordered copy (a placeholder, see
    :func:`~archc.frontends.onnx.tensors.unread`, stays one); without ``copy``, an array already
    of ``dtype`` and C-ordered is stored as it is."""
    arr = weight if type(weight) is np.ndarray else np.asarray(weight)
    if arr.size > 1 and not any(arr.strides):  # (is_placeholder, inline: once per weight)
        return arr
    if not copy and arr.dtype == dtype and arr.flags.c_contiguous:
        return arr
    return np.array(arr, dtype=dtype, order="C")  # (ascontiguousarray makes 0-D 1-D)


def _const_part(rec: Const, reads_float: bool, learned: bool) -> tuple:
    """What a kind's key holds of a constant input (see :meth:`Conversion._input_parts`; ``reads_float``:
    whether the node's op is one whose inference reads float values), cached on the record."""
    a = rec.array
    dtype = a.dtype
    data = a.tobytes() if _by_value(a, reads_float) else None  # (most weights: float, not read by value)
    # (a weight computed from learned ones, a weight norm's g * v / ||v||, is its own kind: its converter
    # reads how it was computed)
    part = (dtype.str, a.shape, rec.learned, data, rec.made_by is not None) if learned else (dtype.str, a.shape, data)
    if rec.parts is None:
        rec.parts = {}
    rec.parts[(reads_float, learned)] = part
    return part


def key_part(rec: Const, reads_float: bool) -> tuple:
    """A constant input's part of a kind key (:func:`_const_part`, learnt-ness included), cached on it."""
    cached = rec.parts
    part = cached.get((reads_float, True)) if cached is not None else None
    return part if part is not None else _const_part(rec, reads_float, True)


def _by_value(a: np.ndarray, reads_float: bool) -> bool:
    """Whether the per-node inference gets a constant input's value (else only its type);
    ``reads_float``: whether the node's op reads float values (``READS_FLOAT_DATA``)."""
    return (a.dtype.kind not in "fc" or reads_float) and a.size <= VALUE_LIMIT and not is_placeholder(a)


def agree(t: TensorType, o: OType | None) -> None:
    """Fallback unless the IR type ``t`` agrees with ONNX's ``o`` (dtype, rank, fixed dims)."""
    if o is None:
        return
    if o.dtype is not None and o.dtype != t.dtype:
        raise Fallback(f"dtype {t.dtype} differs from ONNX's {o.dtype}")
    if o.shape is None:
        return
    if len(o.shape) != t.rank:
        raise Fallback(f"rank {t.rank} differs from ONNX's {len(o.shape)}")
    for mine, theirs in zip(t.shape, o.shape):
        if isinstance(mine, int) and isinstance(theirs, int) and mine != theirs:
            raise Fallback(f"shape {t} differs from ONNX's {o.shape}")


def disagree(declared: OType | None, computed: TensorType) -> bool:
    """Whether a declared type contradicts a computed one (dtype, rank or a fixed dim)."""
    if declared is None:
        return False
    if declared.dtype is not None and declared.dtype != computed.dtype:
        return True
    if declared.shape is None:
        return False
    return len(declared.shape) != computed.rank or any(
        isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(declared.shape, computed.shape))


def otext(t: OType) -> str:
    """A type for a message: ``float32[N, 3, ?]``."""
    dims = "?" if t.shape is None else ", ".join("?" if d is None else str(d) for d in t.shape)
    return f"{t.dtype or '?'}[{dims}]"
