"""ONNX model -> graph IR: any exporter's model, seen through its export noise.

The importer walks the ONNX graph in its (topological) order:

1. ``onnx.checker`` and ``onnx.shape_inference`` (strict, with data propagation, where
   the model allows) run on a copy without the large weights (:func:`_skeleton`) and
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
   names: a PyTorch-style name ``/layer1/layer1.0/conv1/Conv`` becomes
   ``layer1.0.conv1`` when it is the only node left from that module, else
   ``layer1.0.conv1.Conv``.

Weights land in ``graph.weights`` under the native ops' parameter names, so parameter
counts equal those of the framework the model came from (initializers are parameters;
literals from ``Constant`` nodes are buffers, not counted). Errors a model can cause
are :class:`~archc.errors.SpecError` at the file's location, naming the ONNX node.
"""
from __future__ import annotations

import math
import os
import re
import sys
from collections import Counter
from itertools import chain
from operator import attrgetter
from typing import Any, Callable, Container, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from archc.errors import Location, SpecError
from archc.frontends.onnx import limits
from archc.frontends.onnx.draft import Draft
from archc.frontends.onnx.inference import (READS_FLOAT_DATA, VALUE_LIMIT, IllTyped, OnnxTypes, OType, complete, infer_node,
                                            merge_types, otype)
from archc.frontends.onnx.replay import Recipe, Recorder
from archc.frontends.onnx.templates import Template, Templates
from archc.frontends.onnx.values import (NONDETERMINISTIC, Const, Lazy, Record, ShapeArithmeticError, Sym, Tensor,
                                         as_symbolic, attributes, evaluate_symbolic, fold, is_static_int)
from archc.ir.graph import MODULES_META, Graph, Node, Value, verify_in_debug
from archc.ir.names import Namespace
from archc.ir.types import Dim, TensorType
from archc.ops import onnx_node as _onnx_node  # (importing it registers the fallback op)
from archc.ops import registry
from archc.ops.nodes import build_node

__all__ = ["CONVERTERS", "Fallback", "Importer", "contiguous", "converts", "from_onnx", "load_onnx"]

_DEFAULT_DOMAINS = ("", "ai.onnx")
_SUBGRAPHS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
#: ops that pass their first input through unchanged at inference
_PASS_THROUGH = ("Identity", "Dropout")
#: ops whose output shape is the value of one input (by index), where one is given: the
#: importer reads it where ONNX's inference does not (ONNX's MaxUnpool never does, even for
#: a constant; archc's own lowering gives it ``Concat(Shape(x)[:2], size)``, symbolic in N)
_SHAPE_INPUTS = {"MaxUnpool": 2}


class Fallback(Exception):
    """A converter cannot map this node to a native op; the node becomes an onnx_node.

    The only exception a converter may use to decline: any other one is a bug and propagates.
    """


Converter = Callable[["Importer", onnx.NodeProto], Optional[list]]

#: ONNX op type (default domain) -> converter; :mod:`archc.frontends.onnx.convert` fills it
#: (the package imports it), so the importer never imports its converters.
CONVERTERS: dict[str, Converter] = {}


#: ONNX op type -> True, or a test of the node, where its converter is pure (see
#: :mod:`archc.frontends.onnx.replay`): one kind of node is converted once and replayed
PURE: dict[str, bool | Callable[["Importer", onnx.NodeProto], bool]] = {}


def converts(*op_types: str, pure: bool | Callable[["Importer", onnx.NodeProto], bool] = False
             ) -> Callable[[Converter], Converter]:
    """Register the decorated function as the converter of ``op_types``; ``pure`` (or, for the
    nodes it accepts, a test of the node) promises what :mod:`archc.frontends.onnx.replay` needs:
    the result depends only on the node's kind, constant inputs pass through unchanged."""
    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            CONVERTERS[op_type] = fn
            if pure:
                PURE[op_type] = pure
        return fn
    return register


def load_onnx(path: str, weights: bool = True) -> Graph:
    """Read an ONNX file into the IR; SpecError (at ``path``) if it is missing or invalid.

    External data is read only from files inside the model's directory (see
    :mod:`archc.frontends.onnx.limits`), and only with ``weights``: lint, summary and check
    pass False and never read external data files; tensors stored there get placeholders
    of their shape and dtype that take no memory (zero strides).
    """
    model = limits.read_model(path, weights=weights)
    if weights:
        limits.load_external_data(model, path)
    return from_onnx(model, path)


def _is_unread(tensor: onnx.TensorProto) -> bool:
    """An initializer whose data lives in an external file that was not loaded."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL and not tensor.HasField("raw_data")


def _unread(tensor: onnx.TensorProto) -> np.ndarray:
    """A stand-in for unloaded external data: zeros of the tensor's shape and dtype as a
    read-only zero-stride view, so it takes no memory whatever its size."""
    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(tensor.dims))


#: TensorProto data types whose raw_data is the numpy array's bytes (little-endian)
_RAW_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
               onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.INT64: np.int64,
               onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT16: np.int16, onnx.TensorProto.INT8: np.int8,
               onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.UINT16: np.uint16,
               onnx.TensorProto.UINT32: np.uint32, onnx.TensorProto.UINT64: np.uint64,
               onnx.TensorProto.BOOL: np.bool_}


def _read_tensor(tensor: onnx.TensorProto) -> np.ndarray:
    """``numpy_helper.to_array(tensor)``, with its commonest case (raw bytes of a plain numeric
    type, no segment) done directly: a model of many small weights calls it once per weight."""
    dtype = _RAW_DTYPES.get(tensor.data_type)
    if dtype is not None and sys.byteorder == "little" and tensor.HasField("raw_data") \
            and not tensor.HasField("segment"):
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tensor.dims)
    return numpy_helper.to_array(tensor)


def _is_placeholder(arr: np.ndarray) -> bool:
    return arr.size > 1 and not any(arr.strides)


def contiguous(arr: np.ndarray) -> np.ndarray:
    """``arr`` as a C-contiguous array, except that a placeholder (see :func:`_unread`) stays a
    placeholder of the new shape: rearranging unread weights must not allocate them."""
    if _is_placeholder(arr):
        return np.broadcast_to(np.zeros((), dtype=arr.dtype), arr.shape)
    return np.ascontiguousarray(arr)


def from_onnx(model: onnx.ModelProto, filename: str = "<onnx>") -> Graph:
    """The IR of an in-memory ONNX model (``filename`` is used in messages and as the graph name)."""
    where = Location(filename)
    if not isinstance(model, onnx.ModelProto) or not model.HasField("graph"):
        raise SpecError("not an ONNX model (no graph)", location=where)
    if _default_opset(model) < UPGRADE_TO:
        limits.check_structure(model.graph, where)  # the version converter is given well-formed graphs only
        model = upgrade_opset(model)
    skeleton = _skeleton(model)
    limits.check_model(model.graph, skeleton, where)  # onnx.checker, and check_structure's messages
    graph = Importer(model, filename, skeleton).run()
    from archc.frontends.onnx.patterns import fuse

    fuse(graph)  # functions exporters write out (GELU, SiLU, layer norm) become native ops
    return graph


#: models importing an older default-domain opset are first converted to this one
UPGRADE_TO = 13


def upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model converted by onnx's version converter to opset :data:`UPGRADE_TO` when it
    imports an older one (opsets 7-12), so converters and lowerings see today's operator
    signatures; the model itself where it is recent or the converter cannot convert it
    (the importer reads the old signatures too)."""
    if _default_opset(model) >= UPGRADE_TO:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, UPGRADE_TO)
    except Exception:  # noqa: BLE001 - the converter lacks adapters for some ops and raises several types
        return model


def _default_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset the model imports (:data:`UPGRADE_TO` when it imports none)."""
    return next((o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), UPGRADE_TO)


#: initializers with more elements than this are left out of the copy that is checked and shape-inferred
_SKELETON_LIMIT = 256
_DIMS, _DATA_LOCATION = attrgetter("dims"), attrgetter("data_location")


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its large initializers turned into typed graph inputs.

    The checker and shape inference serialise the whole model; without the weights'
    bytes that is several times faster, and their shapes are all inference needs.
    Small initializers (shapes, axes, scalars) stay, for data propagation.
    """
    g = model.graph
    inits = g.initializer
    if max(map(math.prod, map(_DIMS, inits)), default=0) <= _SKELETON_LIMIT \
            and onnx.TensorProto.EXTERNAL not in set(map(_DATA_LOCATION, inits)):
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


def node_meta(node: onnx.NodeProto) -> dict[str, Any]:
    """What an IR node remembers of its ONNX node: the name, and the PyTorch module path the
    exporter recorded (``module_path``, from the default exporter's ``name_scopes`` metadata),
    a hint for naming (:mod:`archc.lowering.spec_yaml`), never needed."""
    meta: dict[str, Any] = {"onnx_name": node.name}
    if not len(node.metadata_props) and "/" not in node.name:
        return meta  # no exporter metadata, no module path in the name: nothing more to read
    props = {prop.key: prop.value for prop in node.metadata_props}
    if "pkg.torch.onnx.name_scopes" in props:
        scopes = [s for s in re.findall(r"'([^']*)'", props["pkg.torch.onnx.name_scopes"]) if s]
        if len(scopes) >= 2:  # the last entry names the op, the one before its module
            meta["module_path"] = scopes[-2]
    modules = module_scopes(node.name, props)
    if modules:
        meta[MODULES_META] = modules
    return meta



def module_scopes(name: str, props: dict[str, str]) -> tuple[tuple[str, str | None], ...]:
    """The modules a node ran in, from the default exporter's ``name_scopes`` and ``class_hierarchy``
    metadata (paths and classes), else from a TorchScript-exporter name such as
    ``/layer1/layer1.0/conv1/Conv`` (paths only). The root module and the op itself are left out."""
    scopes = re.findall(r"'([^']*)'", props.get("pkg.torch.onnx.name_scopes", ""))
    classes = re.findall(r"'([^']*)'", props.get("pkg.torch.onnx.class_hierarchy", ""))
    if len(scopes) >= 3:
        named = classes if len(classes) == len(scopes) else [None] * len(scopes)
        return tuple((path, cls.rpartition(".")[2] if cls else None)
                     for path, cls in zip(scopes[1:-1], named[1:-1]) if path)
    segments = [s for s in (_clean(p) for p in name.split("/")) if s][:-1]
    paths: list[str] = []
    for i, seg in enumerate(segments):
        # A container's children are named from the container's parent: /layer1/layer1.0/downsample/downsample.0
        # is layer1 > layer1.0 > layer1.0.downsample > layer1.0.downsample.0.
        if i and seg.startswith(segments[i - 1] + "."):
            base = paths[-2] if len(paths) >= 2 else ""
        else:
            base = paths[-1] if paths else ""
        paths.append(f"{base}.{seg}" if base else seg)
    return tuple((path, None) for path in paths)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


_SEGMENT = re.compile(r"[^A-Za-z0-9_.]+")


def split_name(onnx_name: str) -> tuple[str | None, str]:
    """(module scope, leaf) of an ONNX node name, e.g. ``/layer1/layer1.0/conv1/Conv`` ->
    (``layer1.0.conv1``, ``Conv``); scope None for a name without ``/``."""
    if "/" not in onnx_name:
        return None, _clean(onnx_name)
    segments = [s for s in (_clean(p) for p in onnx_name.split("/")) if s]
    if not segments:
        return None, ""
    parts: list[str] = []
    for seg in segments[:-1]:
        joined = ".".join(parts)
        if parts and seg.startswith(joined + "."):
            parts = [seg]            # PyTorch repeats the parent's path: layer1/layer1.0
        elif parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    scope = ".".join(parts) if parts else None
    return scope, segments[-1]


_DOTS = re.compile(r"\.{2,}")
#: a name _clean leaves as it is: alphanumeric runs joined by single dots or underscores
_CLEAN = re.compile(r"[A-Za-z0-9]+(?:[._][A-Za-z0-9]+)*")


def _clean(text: str) -> str:
    if _CLEAN.fullmatch(text):
        return text
    return _DOTS.sub(".", _SEGMENT.sub("_", text)).strip("._")


class Importer:
    """One import: ONNX value records, the IR under construction and the converters' API."""

    def __init__(self, model: onnx.ModelProto, filename: str, skeleton: onnx.ModelProto | None = None) -> None:
        self.model = model
        self.skeleton = skeleton if skeleton is not None else _skeleton(model)
        self.filename = filename
        self.where = Location(filename)
        stem = os.path.splitext(os.path.basename(filename))[0]
        self.graph = Draft(stem if filename != "<onnx>" and stem else (model.graph.name or "model"))
        self.graph.doc = model.doc_string or model.graph.doc_string or ""
        self.opsets = {("" if i.domain in _DEFAULT_DOMAINS else i.domain): i.version for i in model.opset_import}
        self.values: dict[str, Record] = {}
        self.consumers: dict[str, int] = {}
        self.origin: dict[str, onnx.NodeProto] = {}  # IR node -> the ONNX node it came from
        self.bound: dict[Value, list[str]] = {}  # IR value -> ONNX names bound to it
        self.passed: dict[Value, int] = {}      # uses of an IR value by nodes that only alias it
        self._attrs: dict[tuple, dict[str, Any]] = {}
        self._computed: dict[tuple, list[Value]] = {}  # static nodes turned into IR nodes
        self.templates = Templates()             # native ops' answers, once per kind of node
        self._recipes: dict[tuple, Recipe] = {}  # pure converters' work, once per kind of node
        self._recorder: Recorder | None = None   # notes the conversion of a kind's first node
        self._fresh = 0
        self._names = Namespace()                # IR node names given so far
        self._splits: dict[str, tuple[str | None, str]] = {}  # ONNX node name -> split_name's answer
        self._index: dict[tuple, int] | None = None  # (op type, outputs) -> index in graph.node, made by _fail

    # -- driver -------------------------------------------------------------------------
    def run(self) -> Graph:
        self.converters = CONVERTERS
        g = self.model.graph
        self.types = OnnxTypes(self.model, self.skeleton, self._fail)
        self.symbols = self.types.symbols              # ONNX dim_param -> IR dim
        self.input_symbols = self.types.input_symbols  # dim_params of the graph inputs, kept as they are
        #: the types the file declares for values (value_info, graph outputs), by name
        self.declared = {vi.name: t for vi in [*g.value_info, *g.output] if (t := otype(vi.type)) is not None}
        self.consumers = Counter(chain.from_iterable(node.input for node in g.node))
        for out in g.output:
            self.consumers[out.name] = self.consumers.get(out.name, 0) + 1
        for init in g.initializer:
            try:
                arr = _unread(init) if _is_unread(init) else _read_tensor(init)
            except Exception as exc:  # noqa: BLE001 - data not matching the declared dims
                self._fail(f"initializer '{init.name}' cannot be read: {_first_line(exc)}")
            # Initializers are the model's parameters; integer ones are indices or shapes.
            self.values[init.name] = Const(arr, learned=arr.dtype.kind in "fc")
        for init in g.sparse_initializer:
            self._fail(f"sparse initializer '{init.values.name}' is not supported")
        for vi in g.input:
            if vi.name not in self.values:
                self._add_input(vi)
        for node in g.node:
            self._process(node)
        for out in g.output:
            rec = self.values.get(out.name)
            if rec is None:
                self._fail(f"graph output '{out.name}' is not computed by any node")
            if isinstance(rec, Const):
                self._fail(f"graph output '{out.name}' is a constant; archc graphs compute their outputs")
            self.graph.outputs[out.name] = self.tensor(out.name)
            if not self.types.has_whole and _disagree(otype(out.type), self.graph.type_of(self.graph.outputs[out.name])):
                self.types.whole()  # a declared output type ONNX's inference checks against its own
        return self._finish()

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        t = otype(vi.type)
        if t is None or t.shape is None or t.dtype is None:
            self._fail(f"graph input '{vi.name}' needs a tensor type with a known rank")
        if any(isinstance(d, int) and d < 0 for d in t.shape):
            self._fail(f"graph input '{vi.name}' has a negative dim: {list(t.shape)}")
        shape = tuple(self.fresh_symbol() if d is None else d for d in t.shape)
        self.input_symbols.update(d for d in shape if isinstance(d, str))
        name = self.unique_name(_clean(vi.name) or "input")
        node = build_node(registry.get("input"), name, {"shape": shape, "dtype": t.dtype}, [], [],
                          location=self.where, meta={"onnx_name": vi.name})
        self.graph.add(node)
        self.bind(vi.name, Tensor(Value(name)))

    def _process(self, node: onnx.NodeProto) -> None:
        op_type = node.op_type
        default = node.domain in _DEFAULT_DOMAINS
        if default and op_type in ("If", "Loop", "Scan"):
            from archc.frontends.onnx.control_flow import resolve

            if resolve(self, node):
                return
        if any(a.type in _SUBGRAPHS for a in node.attribute):
            self._fail(f"ONNX {op_type} has a subgraph that does not fold away; archc imports control "
                       "flow only where it becomes straight-line code (an If on a constant condition, a Loop "
                       "of a constant trip count, a Scan of a known length)", node=node)
        values = self.values
        recs = [values.get(name) if name else None for name in node.input]
        if None in recs:
            for name in node.input:
                if name and name not in values:
                    self._fail(f"input '{name}' is not defined before its use", node=node)
        if default and op_type == "Constant":
            self.bind(node.output[0], Const(_constant_value(node, self)))
            return
        if default and op_type in ("Shape", "Size") and isinstance(recs[0], Tensor):
            self._shape_of(node, self.graph.type_of(recs[0].value).shape)
            return
        static = recs and default and op_type not in NONDETERMINISTIC and all(type(r) is not Tensor for r in recs)
        if static:
            self._evaluate(node, recs)
        else:
            self._convert(node)

    # -- static values --------------------------------------------------------------------
    def _evaluate(self, node: onnx.NodeProto, recs: list[Record | None]) -> None:
        """Fold a node over constants, or evaluate it over symbolic shape data."""
        if node.op_type in _PASS_THROUGH and (len(node.output) == 1 or not self.consumers.get(node.output[1])):
            self.bind(node.output[0], recs[0])
            return
        if self.node_types(node) is None and not self.types.has_whole:
            self.types.whole()  # a node the per-node inference cannot vouch for: ONNX checks the whole model
        if node.op_type in ("Shape", "Size") and isinstance(recs[0], Sym):
            self._shape_of(node, recs[0].array.shape)
            return
        if node.op_type in ("Shape", "Size"):
            t = self.otype(node.input[0])
            if t is not None and t.shape is not None:
                self._shape_of(node, tuple(self.fresh_symbol() if d is None else d for d in t.shape))
                return
        if all(r is None or isinstance(r, Const) for r in recs):
            arrays = self._fold(node, [None if r is None else r.array for r in recs])
            if arrays is not None:
                learned = any(isinstance(r, Const) and r.learned for r in recs)
                for name, arr in zip(node.output, arrays):
                    self.bind(name, Const(arr, learned))
                return
        ins = [None if r is None else r.array for r in recs] if not any(isinstance(r, Lazy) for r in recs) else None
        if ins is not None and limits.symbolic_allowed(ins):
            try:
                outs = evaluate_symbolic(node, ins)
            except ShapeArithmeticError as exc:
                self._fail(str(exc), node=node)
            if outs is not None:
                for k, (name, arr) in enumerate(zip(node.output, outs)):
                    self.bind(name, self._static_record(name, arr, node, k))
                return
        for k, name in enumerate(node.output):
            self.bind(name, Lazy(node, k))

    def _fold(self, node: onnx.NodeProto, arrays: list[np.ndarray | None]) -> list[np.ndarray] | None:
        """The node's outputs over constant inputs; None (it stays symbolic) when the reference
        implementation cannot run it or the result would be too large to make."""
        if limits.fold_refusal(node, arrays, self.opsets) is not None:
            return None
        if limits.is_integer_arithmetic(node, arrays):
            # numpy wraps int64 overflow and turns a division by zero into 0: check in Python ints first
            try:
                evaluate_symbolic(node, arrays)
            except ShapeArithmeticError as exc:
                self._fail(str(exc), node=node)
        try:
            return fold(node, arrays, self.opsets)
        except Exception:  # noqa: BLE001 - the reference implementation lacks some ops
            return None

    def _static_record(self, name: str, arr: np.ndarray, node: onnx.NodeProto, out: int = 0) -> Record:
        if not limits.fits_int64(np.asarray(arr, dtype=object).ravel()):
            self._fail(f"shape arithmetic gives a value beyond int64: {_short(arr)}", node=node)
        if is_static_int(arr):
            t = self.types.whole().get(name)
            dtype = t.dtype if t is not None and t.dtype else "int64"
            try:
                return Const(np.array(arr.tolist(), dtype=dtype).reshape(arr.shape))
            except (OverflowError, TypeError, ValueError):
                self._fail(f"shape value {_short(arr)} does not fit its declared type {dtype}", node=node)
        return Sym(arr, node, out)

    def _shape_of(self, node: onnx.NodeProto, shape: tuple[Dim, ...]) -> None:
        a = self.attrs(node)
        if node.op_type == "Size":
            size: Dim = 1
            for d in shape:
                size = size * d if isinstance(size, int) and isinstance(d, int) else f"{size}*{d}"
            arr = np.array(size, dtype=object)
        else:
            arr = np.array(list(shape)[slice(a.get("start", 0), a.get("end"))], dtype=object)
        self.bind(node.output[0], self._static_record(node.output[0], arr, node))

    # -- conversion -----------------------------------------------------------------------
    def _convert(self, node: onnx.NodeProto) -> None:
        fn = self.converters.get(node.op_type) if node.domain in _DEFAULT_DOMAINS else None
        if fn is not None:
            key = self.recipe_key(node)
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
            if outs is not None and all(not self.consumers.get(name) for name in node.output[len(outs):]):
                for name, out in zip(node.output, outs):
                    self.bind(name, Tensor(out) if isinstance(out, Value) else out)
                return
        else:
            self._check_declared(node, self.node_types(node))  # an ill-typed node is refused
        self.generic(node)

    def _check_declared(self, node: onnx.NodeProto, local: list[OType | None] | None) -> None:
        """Refuse the node when the file declares a type for an output (value_info, graph output)
        that contradicts the one ONNX's rules give it over its inputs' types (``local``)."""
        if local is None or not self.declared:
            return
        for name, mine in zip(node.output, local):
            declared = self.declared.get(name) if name else None
            if mine is not None and declared is not None and _disagree(declared, TensorType(mine.shape, mine.dtype)):
                self._fail(f"output '{name}' is declared {_otext(declared)}, but the node computes "
                           f"{_otext(mine)} from its inputs", node=node)

    def recipe_key(self, node: onnx.NodeProto) -> tuple | None:
        """The kind of a node whose converter is pure (see :mod:`archc.frontends.onnx.replay`): op,
        attributes, each input's IR type or constant's dtype, shape, learnt-ness (and value, where
        the per-node inference reads it); None when the node has no kind: an impure converter, a
        symbolic input, an output whose type the file declares (its check depends on its name)."""
        pure = PURE.get(node.op_type)
        if pure is None:
            return None
        parts = self._input_parts(node, [self.values.get(name) if name else None for name in node.input],
                                  learned=True)
        if parts is None:
            return None
        declared = self.declared
        if (declared and any(out in declared for out in node.output)) or (pure is not True and not pure(self, node)):
            return None
        return (node.op_type, tuple(map(bool, node.output)), tuple(a.SerializeToString() for a in node.attribute),
                parts)

    def _new_recorder(self, node: onnx.NodeProto) -> Recorder:
        tensors, constants = {}, {}
        for i, name in enumerate(node.input):
            rec = self.values.get(name) if name else None
            if isinstance(rec, Tensor):
                tensors[i] = rec.value
            elif isinstance(rec, Const):
                constants[i] = rec.array
        return Recorder(tensors, constants)

    def _replay(self, node: onnx.NodeProto, recipe: Recipe) -> list[Value]:
        """The native nodes ``recipe`` made for the first node of this one's kind, made for this one."""
        made: list[list[Value]] = []

        def tensor(source: tuple) -> Value:  # ("in", i): a Tensor input (the kind says so); ("emit", j, k)
            return self.values[node.input[source[1]]].value if source[0] == "in" else made[source[1]][source[2]]

        for step in recipe.steps:
            weights = {k: (self.values[node.input[s[1]]].array if s[0] == "in" else s[1]) for k, s in step.weights}
            outputs = list(step.template.outputs)
            if step.check:
                self.types.learn(node, outputs)  # the check passed for this kind; the symbols are this node's
            made.append(self._add_native(node, step.template, [tensor(s) for s in step.inputs], weights,
                                         step.suffix, outputs))
        return [tensor(s) for s in recipe.outputs]

    def generic(self, node: onnx.NodeProto, overrides: dict[int, Record] | None = None) -> list[Value]:
        """Keep ``node`` as an onnx_node: computed inputs as IR inputs, constants as weights.

        ``overrides`` replaces the records of some inputs (a converter that knows a
        static equivalent of a symbolic shape input passes it as a constant).
        """
        schema = _schema(node, self.opsets)
        operands: list[Any] = []
        ins: list[Value] = []
        weights: dict[str, np.ndarray] = {}
        learned: dict[str, bool] = {}
        typed: list[Any] = []
        known: dict[int, np.ndarray] = {}  # static (perhaps symbolic) values of inputs, before they become tensors
        for i, name in enumerate(node.input):
            if not name:
                operands.append(None)
                typed.append(None)
                continue
            rec = (overrides or {}).get(i) or self.values[name]
            if isinstance(rec, (Const, Sym)):
                known[i] = rec.array
            if isinstance(rec, Const):
                pname = _param_name(schema, i, weights)
                weights[pname] = rec.array
                learned[pname] = rec.learned
                operands.append(pname)
                typed.append(rec.array)
            else:
                v = self.tensor(name)
                operands.append(len(ins))
                ins.append(v)
                typed.append(self.graph.type_of(v))
        types = self._output_types(node, typed, known)
        attrs = {
            "op_type": node.op_type,
            "domain": "" if node.domain in _DEFAULT_DOMAINS else node.domain,
            "opset": self.opsets.get("" if node.domain in _DEFAULT_DOMAINS else node.domain, 0),
            "attributes": {k: v for k, v in self.attrs(node).items()},
            "operands": operands,
            "params": _onnx_node.constant_params(weights, learned),
            "output_types": [[list(t.shape), t.dtype] for t in types],
        }
        name = self.unique_name(self._default_name(node))
        ir = Node(name=name, op="onnx_node", attrs=attrs, inputs=ins, outputs=types, location=self.where,
                  meta=node_meta(node))
        self.graph.add(ir)
        if weights:
            self.graph.weights[name] = dict(weights)
        self.origin[name] = node
        values = [Value(name, k) for k in range(len(types))]
        for out, v in zip(node.output, values):
            if out:
                self.bind(out, Tensor(v))
        return values

    def _output_types(self, node: onnx.NodeProto, typed: list[Any], known: dict[int, np.ndarray]) -> list[TensorType]:
        local = infer_node(node, typed, self.model)
        types = []
        for k, out in enumerate(node.output):
            mine = local[k] if k < len(local) else None
            # the whole model's type only fills in what the node's own inference left unknown
            t = complete(merge_types(mine, None)) or merge_types(mine, self.otype(out) if out else None)
            if k == 0 and t is not None and t.shape is None and node.domain in _DEFAULT_DOMAINS:
                t = OType(_shape_input(node, known), t.dtype)
            if t is None or t.shape is None or t.dtype is None:
                self._fail(f"cannot infer the type of output {k} ('{out}') of ONNX {node.op_type}", node=node)
            shape = tuple(self.fresh_symbol() if d is None else d for d in t.shape)
            types.append(TensorType(shape, t.dtype))
        return types

    # -- the converters' API ---------------------------------------------------------------
    def attrs(self, node: onnx.NodeProto) -> dict[str, Any]:
        """The node's attributes as plain Python values."""
        key = (node.op_type, *node.output)  # outputs are unique; proto wrappers are not stable objects
        if key not in self._attrs:
            self._attrs[key] = attributes(node)
        return self._attrs[key]

    def record(self, name: str) -> Record | None:
        return self.values[name] if name else None

    def const(self, name: str) -> np.ndarray | None:
        """The value of a constant input, or None (absent, or computed)."""
        rec = self.record(name)
        return rec.array if isinstance(rec, Const) else None

    def learned(self, name: str) -> bool:
        rec = self.record(name)
        return isinstance(rec, Const) and rec.learned

    def static(self, name: str) -> np.ndarray | None:
        """A shape-type input: its constant value, symbolic entries as str dims; None if unknown."""
        rec = self.record(name)
        if isinstance(rec, Const):
            return rec.array
        if isinstance(rec, Sym):
            return rec.array
        return None

    def static_ints(self, name: str) -> list[Dim] | None:
        arr = self.static(name)
        if arr is None:
            return None
        return [v if isinstance(v, str) else int(v) for v in as_symbolic(np.asarray(arr)).ravel().tolist()]

    def is_tensor(self, name: str) -> bool:
        return bool(name) and not isinstance(self.values[name], Const)

    def tensor(self, name: str) -> Value:
        """The IR value of a data input, computing shape values that so far were only symbolic."""
        rec = self.values[name]
        if isinstance(rec, Tensor):
            return rec.value
        if isinstance(rec, Const):
            raise Fallback(f"'{name}' is a constant")
        # A Sym or Lazy value, perhaps under another name (Identity): compute its producer once.
        key = (rec.node.op_type, *rec.node.output)
        if key not in self._computed:
            self._computed[key] = self.generic(rec.node)
        return self._computed[key][rec.out]

    def itype(self, value: Value) -> TensorType:
        return self.graph.type_of(value)

    def otype(self, name: str) -> OType | None:
        """ONNX's inferred type of a value (the whole model's inference), its symbols translated
        to IR dims where known."""
        return self.types.otype(name)

    def emit(self, node: onnx.NodeProto, op: str, attrs: dict[str, Any], inputs: list[Value],
             weights: dict[str, np.ndarray] | None = None, check: bool = True, suffix: str = "") -> list[Value]:
        """Add a native IR node for ONNX ``node``; Fallback if the op's inference or params disagree.

        ``check`` compares the outputs with ONNX's types (off for the inner nodes of a
        node mapped to several); ``suffix`` tells such inner nodes' names apart.
        """
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
        values = self._add_native(node, template, inputs, weights, suffix, outputs)
        if self._recorder is not None:
            self._recorder.emitted(template, inputs, weights, check, suffix, values)
        return values

    def _add_native(self, node: onnx.NodeProto, template: Template, inputs: list[Value],
                    weights: dict[str, np.ndarray] | None, suffix: str, outputs: list[TensorType]) -> list[Value]:
        """Add the native node ``template`` describes, named after ONNX ``node``; its output values."""
        weights = dict(weights or {})
        for key, spec in template.specs.items():
            if key in weights:
                arr = np.asarray(weights[key])
                if not _is_placeholder(arr):  # a placeholder stays one (see _unread)
                    weights[key] = np.array(arr, dtype=spec.dtype, order="C")  # (ascontiguousarray makes 0-D 1-D)
        name = self.unique_name(self._default_name(node) + suffix)
        ir = Node(name=name, op=template.op, attrs=dict(template.attrs), inputs=list(inputs), outputs=outputs,
                  location=self.where, meta=node_meta(node))
        self.graph.add(ir)
        if weights:
            self.graph.weights[name] = weights
        self.origin[name] = node
        return [Value(name, k) for k in range(len(outputs))]

    def check_types(self, node: onnx.NodeProto, types: list[TensorType]) -> None:
        """Fallback unless ``types`` agree with ONNX's output types: the per-node inference's where
        it knows them (:meth:`node_types`), else the whole model's, whose symbols are learnt."""
        local = self.node_types(node)
        for k, (name, t) in enumerate(zip(node.output, types)):
            if not name:
                continue
            if local is not None and local[k] is not None:
                # the whole model's type would be this one, merged with the type the file declares
                _agree(t, local[k])
                _agree(t, self.declared.get(name))
            else:
                if self._recorder is not None:
                    self._recorder.spoilt = True  # checked against this value's own type: not the kind's
                _agree(t, self.otype(name))
        # Symbols ONNX made up for dims it could not name stand for what the IR computed.
        self.types.learn(node, types)

    def node_types(self, node: onnx.NodeProto) -> list[OType | None] | None:
        """ONNX's complete output types of ``node`` by inference of the node alone over its inputs'
        IR types (and the values of the inputs whose values shape inference reads), once per
        signature (:class:`~archc.frontends.onnx.inference.OnnxTypes`); None when an input is a
        symbolic shape value, which only the whole model's inference types."""
        names = node.input
        records = [self.values.get(name) if name else None for name in names]
        inputs = self._input_parts(node, records, learned=False)
        if inputs is None:
            return None
        signature = (node.op_type, node.domain, tuple(map(bool, node.output)),
                     tuple(a.SerializeToString() for a in node.attribute), inputs)
        try:
            return self.types.of_node(node, signature, lambda: self._typed(node, records))
        except IllTyped as exc:
            self._fail(str(exc), node=node)
            raise AssertionError from exc  # unreachable: _fail raises

    def _input_parts(self, node: onnx.NodeProto, records: list[Record | None], learned: bool) -> tuple | None:
        """Each input as a node kind's key holds it: a data input's IR type; a constant's dtype and
        shape (with whether it is learnt, if ``learned``) and its bytes where the per-node
        inference reads its value; None for an absent input. None when an input is symbolic."""
        parts: list[Any] = []
        for rec in records:
            if rec is None:
                parts.append(None)
            elif type(rec) is Tensor:
                parts.append(self.graph.type_of(rec.value))
            elif type(rec) is Const:
                a = rec.array
                data = a.tobytes() if self._by_value(a, node) else None
                parts.append((a.dtype.str, a.shape, rec.learned, data) if learned else (a.dtype.str, a.shape, data))
            else:
                return None
        return tuple(parts)

    @staticmethod
    def _by_value(a: np.ndarray, node: onnx.NodeProto) -> bool:
        """Whether the per-node inference gets a constant input's value (else only its type)."""
        return (a.dtype.kind not in "fc" or node.op_type in READS_FLOAT_DATA) and a.size <= VALUE_LIMIT \
            and not _is_placeholder(a)

    def _typed(self, node: onnx.NodeProto, records: list[Record | None]) -> list[Any]:
        """The node's inputs as the per-node inference takes them: TensorTypes, constant values."""
        typed: list[Any] = []
        for rec in records:
            if isinstance(rec, Tensor):
                typed.append(self.graph.type_of(rec.value))
            elif isinstance(rec, Const):
                a = rec.array
                typed.append(a if self._by_value(a, node) else TensorType(a.shape, a.dtype.name))
            else:
                typed.append(None)
        return typed

    def sole_use(self, value: Value) -> bool:
        """Whether one ONNX node (or graph output) in all reads this IR value."""
        uses = sum(self.consumers.get(n, 0) for n in self.bound.get(value, ())) - self.passed.get(value, 0)
        return uses == 1 and self.graph.uses(value.node) == 0

    def alias(self, out: str, source: str) -> Record:
        """Bind ``out`` to whatever ``source`` is (a pass-through node)."""
        rec = self.values[source]
        if isinstance(rec, Tensor):
            self.passed[rec.value] = self.passed.get(rec.value, 0) + 1
        return rec

    def bind(self, name: str, rec: Record) -> None:
        self.values[name] = rec
        if isinstance(rec, Tensor):
            self.bound.setdefault(rec.value, []).append(name)

    def fresh_symbol(self) -> str:
        self._fresh += 1
        return f"unk{self._fresh}"

    def unique_name(self, base: str) -> str:
        return self._names.take(base)

    def _split_name(self, onnx_name: str) -> tuple[str | None, str]:
        """:func:`split_name`, once per name (a node's name is split again for its final name)."""
        if onnx_name not in self._splits:
            self._splits[onnx_name] = split_name(onnx_name)
        return self._splits[onnx_name]

    def _default_name(self, node: onnx.NodeProto) -> str:
        scope, leaf = self._split_name(node.name) if node.name else (None, "")
        leaf = leaf or node.op_type
        return f"{scope}.{leaf}" if scope else leaf

    def _fail(self, message: str, node: onnx.NodeProto | None = None) -> None:
        if node is None:
            raise SpecError(message, location=self.where)
        if self._index is None:
            self._index = {_node_key(n): i for i, n in reversed(list(enumerate(self.model.graph.node)))}
        raise limits.node_error(message, node, self._index.get(_node_key(node)), self.where)

    # -- the end: dead nodes, names ---------------------------------------------------------
    def _finish(self) -> Graph:
        live = self.graph.live()  # nodes no output depends on are dropped
        names = self._final_names([n for n in live if n.op != "input"])
        return verify_in_debug(self.graph.build(live, names))

    def _final_names(self, nodes: list[Node]) -> dict[str, str]:
        """Final node names: a node that is the only one left from a module scope takes the
        scope's name, when its own name is just its op type as PyTorch writes them
        (``/layer1/conv1/Conv`` -> ``layer1.conv1``)."""
        scopes: dict[str, int] = {}
        prefixes: dict[str, int] = {}
        parsed = {}
        for node in nodes:
            src = self.origin.get(node.name)
            scope, leaf = self._split_name(src.name) if src is not None else (None, "")
            # Only exporter-made leaves (PyTorch's "Conv", "Conv_1") give way to the scope.
            if scope and not re.fullmatch(re.escape(src.op_type) + r"(_\d+)?", leaf):
                scope = None
            parsed[node.name] = scope
            if scope:
                scopes[scope] = scopes.get(scope, 0) + 1
            parts = node.name.split(".")
            for i in range(1, len(parts)):
                p = ".".join(parts[:i])
                prefixes[p] = prefixes.get(p, 0) + 1
        taken = Namespace(self.graph.inputs)
        result: dict[str, str] = {}
        for node in nodes:
            scope = parsed[node.name]
            base = node.name
            if scope and scopes[scope] == 1 and prefixes.get(scope, 0) == 1 and scope not in taken:
                base = scope
            result[node.name] = taken.take(base)
        return result


def _agree(t: TensorType, o: OType | None) -> None:
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


def _disagree(declared: OType | None, computed: TensorType) -> bool:
    """Whether a declared type contradicts a computed one (dtype, rank or a fixed dim)."""
    if declared is None:
        return False
    if declared.dtype is not None and declared.dtype != computed.dtype:
        return True
    if declared.shape is None:
        return False
    return len(declared.shape) != computed.rank or any(
        isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(declared.shape, computed.shape))


def _otext(t: OType) -> str:
    dims = "?" if t.shape is None else ", ".join("?" if d is None else str(d) for d in t.shape)
    return f"{t.dtype or '?'}[{dims}]"


def _shape_input(node: onnx.NodeProto, known: dict[int, np.ndarray]) -> tuple[Dim, ...] | None:
    """The output shape an op takes from an input's value (:data:`_SHAPE_INPUTS`), where that value
    is known (``known``: input index -> static value, perhaps symbolic: ``[N, 32, 2, 2]``)."""
    index = _SHAPE_INPUTS.get(node.op_type)
    value = known.get(index) if index is not None else None
    if value is None or np.ndim(value) != 1:
        return None
    dims = [v if isinstance(v, str) else int(v) for v in as_symbolic(np.asarray(value)).tolist()]
    return None if any(isinstance(v, int) and v < 0 for v in dims) else tuple(dims)


def _node_key(node: onnx.NodeProto) -> tuple:
    return (node.op_type, *node.output)


def _short(arr: np.ndarray) -> str:
    text = str(np.asarray(arr, dtype=object).tolist())
    return text if len(text) <= 120 else text[:117] + "..."


def _schema(node: onnx.NodeProto, opsets: dict[str, int]):
    domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
    try:
        return onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except Exception:  # noqa: BLE001 - custom domains have no schema
        return None


def _param_name(schema, index: int, taken: Container[str]) -> str:
    """A weight's name from the op schema's input name (``w``, ``b``), else ``input{index}``."""
    base = f"input{index}"
    if schema is not None and schema.inputs:
        formal = schema.inputs[min(index, len(schema.inputs) - 1)]
        base = _clean(formal.name).lower() or base
        if index >= len(schema.inputs):  # variadic tail
            base = f"{base}{index}"
    if not _onnx_node.usable_param_name(base):  # e.g. OneHot's 'values', a method of the torch module
        base = f"{base.strip('_') or 'input'}_{index}"
    return Namespace(also_taken=taken, suffix=lambda stem, i: f"{stem}{i}").free(base)


def _constant_value(node: onnx.NodeProto, importer: Importer) -> np.ndarray:
    a = importer.attrs(node)
    for key, cast in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
        if key in a:
            return np.asarray(a[key]) if cast is None else np.asarray(a[key], dtype=cast)
    importer._fail("Constant node without a supported value attribute", node=node)
    raise AssertionError  # unreachable
