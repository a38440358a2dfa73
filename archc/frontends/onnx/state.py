"""What one ONNX import knows as it goes: each ONNX value's record, the IR under construction,
and the read side of the converters' API.

:class:`ImportState` is the base of the importer's parts (:mod:`~archc.frontends.onnx.static`,
:mod:`~archc.frontends.onnx.generic`, :mod:`~archc.frontends.onnx.conversion`), which the
:class:`~archc.frontends.onnx.importer.Importer` puts together. Every ONNX value name is bound to
a record (:mod:`archc.frontends.onnx.values`): a constant, a symbolic shape value, a value
computed later if used, or an IR tensor.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import onnx

from archc.errors import Location, SpecError
from archc.frontends.onnx import limits
from archc.frontends.onnx.draft import Draft
from archc.frontends.onnx.inference import OnnxTypes, OType
from archc.frontends.onnx.kinds import KindIndex
from archc.frontends.onnx.naming import NodeNames
from archc.frontends.onnx.replay import Recipe, Recorder
from archc.frontends.onnx.templates import Templates
from archc.frontends.onnx.values import Const, Record, Sym, Tensor, UnreadableAttribute, as_symbolic, attributes
from archc.ir.graph import Value
from archc.ir.types import Dim, TensorType

__all__ = ["DEFAULT_DOMAINS", "ImportState", "node_key"]

DEFAULT_DOMAINS = ("", "ai.onnx")


def node_key(node: onnx.NodeProto) -> tuple:
    """A node's identity: its op type and outputs (outputs are unique; proto wrappers are not
    stable objects)."""
    return (node.op_type, *node.output)


class ImportState:
    """One import's records, draft graph and names; the converters' read API."""

    types: OnnxTypes
    symbols: dict[str, Dim]
    declared: dict[str, OType]
    #: whether weights are stored as copies the graph owns (else arrays of the parameter's dtype are
    #: stored as read: an import whose caller never reads weight values)
    copy_weights: bool = True

    def __init__(self, model: onnx.ModelProto, filename: str, skeleton: onnx.ModelProto) -> None:
        self.model = model
        self.skeleton = skeleton
        self.filename = filename
        self.where = Location(filename)
        stem = os.path.splitext(os.path.basename(filename))[0]
        self.graph = Draft(stem if filename != "<onnx>" and stem else (model.graph.name or "model"))
        self.graph.doc = model.doc_string or model.graph.doc_string or ""
        self.graph.properties = {p.key: p.value for p in model.metadata_props}
        self.opsets = {("" if i.domain in DEFAULT_DOMAINS else i.domain): i.version for i in model.opset_import}
        self.values: dict[str, Record] = {}
        #: ONNX value name -> how many node inputs and graph outputs read it; counted on first use
        #: (most imports never ask) from :attr:`_readers`, the names each node reads and the graph outputs
        self._consumers: dict[str, int] | None = {}
        self._readers: Callable[[], Iterable[str]] | None = None
        #: IR node -> the ONNX node it came from (what final names read; a replayed node whose ONNX name
        #: has no scope is left out: no final name reads its origin)
        self.origin: dict[str, onnx.NodeProto] = {}
        #: (ONNX name, IR value) of each binding to a tensor, in order; indexed by IR value only
        #: where a converter asks :meth:`sole_use` (most imports never do)
        self.tensor_bindings: list[tuple[str, Value]] = []
        self._bound: dict[Value, list[str]] = {}  # IR value -> ONNX names bound to it (the index)
        self._indexed = 0                          # how many tensor_bindings the index holds
        self.passed: dict[Value, int] = {}      # uses of an IR value by nodes that only alias it
        self._attrs: dict[tuple, dict[str, Any]] = {}
        self._computed: dict[tuple, list[Value]] = {}  # static nodes turned into IR nodes
        self._lifted: dict[str, str] | None = None  # a dynamo export's parameter placeholders (made on first use)
        self.templates = Templates()             # native ops' answers, once per kind of node
        self._recipes: dict[tuple, Recipe] = {}  # pure converters' work, once per kind of node
        self.kinds = KindIndex()                 # the recipes by tag key, for the replay path
        self._recorder: Recorder | None = None   # notes the conversion of a kind's first node
        self._fresh = 0
        self.names = NodeNames()                 # IR node names given so far
        self._index: dict[tuple, int] | None = None  # (op type, outputs) -> index in graph.node, made by _fail

    @property
    def consumers(self) -> dict[str, int]:
        """How many node inputs and graph outputs read each ONNX value (see ``_consumers``)."""
        if self._consumers is None:
            self._consumers = Counter(self._readers())
        return self._consumers

    # -- records ---------------------------------------------------------------------------
    def bind(self, name: str, rec: Record) -> None:
        self.values[name] = rec
        if isinstance(rec, Tensor):
            self.tensor_bindings.append((name, rec.value))

    def alias(self, out: str, source: str) -> Record:
        """Bind ``out`` to whatever ``source`` is (a pass-through node)."""
        rec = self.values[source]
        if isinstance(rec, Tensor):
            self.passed[rec.value] = self.passed.get(rec.value, 0) + 1
        return rec

    def sole_use(self, value: Value) -> bool:
        """Whether one ONNX node (or graph output) in all reads this IR value."""
        bindings, bound = self.tensor_bindings, self._bound
        for name, bound_value in bindings[self._indexed:]:
            bound.setdefault(bound_value, []).append(name)
        self._indexed = len(bindings)
        uses = sum(self.consumers.get(n, 0) for n in bound.get(value, ())) - self.passed.get(value, 0)
        return uses == 1 and self.graph.uses(value.node) == 0

    def fresh_symbol(self) -> str:
        self._fresh += 1
        return f"unk{self._fresh}"

    def unique_name(self, base: str) -> str:
        return self.names.take(base)

    # -- the converters' read API ------------------------------------------------------------
    def attrs(self, node: onnx.NodeProto) -> dict[str, Any]:
        """The node's attributes as plain Python values."""
        key = node_key(node)
        if key not in self._attrs:
            try:
                self._attrs[key] = attributes(node)
            except UnreadableAttribute as exc:
                self._fail(str(exc), node=node)
        return self._attrs[key]

    def record(self, name: str) -> Record | None:
        return self.values[name] if name else None

    def const(self, name: str) -> np.ndarray | None:
        """The value of a constant input, or None (absent, or computed)."""
        rec = self.record(name)
        return rec.array if isinstance(rec, Const) else None

    def learned(self, name: str) -> bool:
        """Whether a constant input is a learned parameter of the model: a float initializer (a Constant
        node's literal is none), except those a torch dynamo export's graph signature says are not
        (buffers, constants; see :mod:`~archc.frontends.onnx.signature`)."""
        rec = self.record(name)
        return isinstance(rec, Const) and rec.learned

    def static(self, name: str) -> np.ndarray | None:
        """A shape-type input: its constant value, symbolic entries as str dims; None if unknown."""
        rec = self.record(name)
        if isinstance(rec, (Const, Sym)):
            return rec.array
        return None

    def static_ints(self, name: str) -> list[Dim] | None:
        arr = self.static(name)
        if arr is None:
            return None
        return [v if isinstance(v, str) else int(v) for v in as_symbolic(np.asarray(arr)).ravel().tolist()]

    def is_tensor(self, name: str) -> bool:
        return bool(name) and not isinstance(self.values[name], Const)

    def itype(self, value: Value) -> TensorType:
        return self.graph.type_of(value)

    def otype(self, name: str) -> OType | None:
        """ONNX's inferred type of a value (the whole model's inference), its symbols translated
        to IR dims where known."""
        return self.types.otype(name)

    # -- errors ------------------------------------------------------------------------------
    def _fail(self, message: str, node: onnx.NodeProto | None = None) -> None:
        """Raise the SpecError of ``message``, naming ``node`` (and its index in the graph)."""
        if node is None:
            raise SpecError(message, location=self.where)
        if self._index is None:
            self._index = {node_key(n): i for i, n in reversed(list(enumerate(self.model.graph.node)))}
        raise limits.node_error(message, node, self._index.get(node_key(node)), self.where)
