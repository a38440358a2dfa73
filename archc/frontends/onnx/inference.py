"""ONNX's own types of an import's values: per node where the node's inputs tell, the whole
model's shape inference only where they do not.

The importer checks each native op's output types against ONNX's (a converter that maps a
node wrongly must not pass). ONNX's whole-model shape inference serialises the model and
infers every node; on a 100k-node model that is a second or two, and the types it finds are
the ones the importer already computed for the node's inputs. So :class:`OnnxTypes` infers
one node at a time, over the IR types of its inputs, once per *signature* (op, attributes,
input types, the values of inputs whose values shape inference reads): a residual chain or a
transformer repeats a handful of signatures thousands of times.

The whole-model inference (:meth:`OnnxTypes.whole`, strict first, then lenient, then with
data propagation where that is safe) still runs, once, as soon as any node needs it: its
inputs are symbolic shape values the per-node inference cannot type, the per-node inference
cannot run, leaves a dim unknown, or a converter asks for a value's type directly.

A node ONNX's typing rules reject for its inputs' types (strict inference's ``InferenceError``,
or :mod:`archc.frontends.onnx.wellformed`'s rules for what that leaves unchecked) is
:class:`IllTyped`, once per signature; the importer refuses it naming the node. A model that declares
``value_info`` types gets it at once (those declarations are checked by it), and graph outputs
declared with a type that disagrees with the computed one get it at the end.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from archc.errors import first_line
from archc.frontends.onnx import limits, wellformed
from archc.ir.dims import agree
from archc.ir.dims import canonical as canonical_dim
from archc.ir.types import Dim, TensorType

__all__ = ["IllTyped", "OType", "OnnxTypes", "infer_node", "merge_types", "otype", "complete"]

#: ops whose shape inference reads the values of floating-point inputs (scales, range bounds);
#: for every other op only integer inputs' values matter (shapes, axes, sizes)
READS_FLOAT_DATA = frozenset({"Resize", "Upsample", "Range"})
#: constant inputs of more elements than this are given to the per-node inference by their type
#: only (the whole model's inference sees the same: the skeleton leaves them out)
VALUE_LIMIT = 256


@dataclass(frozen=True, slots=True)
class OType:
    """An ONNX-inferred type: shape None when the rank is unknown, dims None when unknown."""

    shape: tuple[Dim | None, ...] | None
    dtype: str | None


#: ONNX elem_type -> numpy dtype name (or ONNX's own name for types numpy lacks; None when unknown)
_DTYPE_NAMES: dict[int, str | None] = {}


def dtype_name(elem_type: int) -> str | None:
    if elem_type not in _DTYPE_NAMES:
        try:
            name: str | None = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
        except Exception:  # noqa: BLE001 - types numpy lacks (bfloat16, float8), or no type at all
            try:
                name = helper.tensor_dtype_to_string(elem_type).replace("TensorProto.", "").lower()
            except KeyError:
                name = None
        _DTYPE_NAMES[elem_type] = name
    return _DTYPE_NAMES[elem_type]


def otype(tp: onnx.TypeProto) -> OType | None:
    """The OType of an ONNX TypeProto (None: not a tensor)."""
    if not tp.HasField("tensor_type"):
        return None
    tt = tp.tensor_type
    dtype = dtype_name(tt.elem_type) if tt.elem_type else None
    if not tt.HasField("shape"):
        return OType(None, dtype)
    dims: list[Dim | None] = []
    for d in tt.shape.dim:
        kind = d.WhichOneof("value")
        if kind == "dim_value":
            dims.append(int(d.dim_value))
        elif kind == "dim_param" and d.dim_param:
            dims.append(canonical_dim(d.dim_param))  # (an exporter's '(((H - 1)//2)) + 1' as archc writes it)
        else:
            dims.append(None)
    return OType(tuple(dims), dtype)


def otypes(graph: onnx.GraphProto) -> dict[str, OType]:
    """The tensor types of an inferred graph's values, by name."""
    found: dict[str, OType] = {}
    seen: dict[bytes, OType | None] = {}  # most values share their type with many others
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        key = vi.type.SerializeToString()
        if key not in seen:
            seen[key] = otype(vi.type)
        t = seen[key]
        if t is not None:
            found[vi.name] = t
    return found


def _made_up(d: Any) -> bool:
    """A symbol ONNX's inference invented for a dim it could not name."""
    return type(d) is str and d.startswith("unk__")


def complete(t: OType | None) -> OType | None:
    """``t`` when its dtype and every dim are known (an invented symbol is not), else None."""
    if t is None or t.shape is None or t.dtype is None:
        return None
    return None if any(d is None or _made_up(d) for d in t.shape) else t


def fully_typed(graph: onnx.GraphProto, types: dict[str, OType]) -> bool:
    """Whether inference gave every node output a tensor type with every dim known or named
    (so data propagation has nothing to add); made-up ``unk__`` symbols count as unknown."""
    return all(complete(types.get(name)) is not None for node in graph.node for name in node.output if name)


def merge_types(mine: OType | None, theirs: OType | None) -> OType | None:
    """Per-node inference (over the IR's types) first, filled in from the whole-model inference.

    Symbols a per-node inference makes up (``unk__0``) restart in every call, so they
    name nothing; the whole-model inference's own are unique in the model.
    """
    if mine is not None and mine.shape is not None:
        mine = OType(tuple(None if _made_up(d) else d for d in mine.shape), mine.dtype)
    if mine is None:
        return theirs
    if theirs is None or theirs.shape is None:
        return OType(mine.shape, mine.dtype or (theirs.dtype if theirs else None))
    if mine.shape is None or len(mine.shape) != len(theirs.shape):
        return OType(theirs.shape if mine.shape is None else mine.shape, mine.dtype or theirs.dtype)
    shape = tuple(t if m is None else m for m, t in zip(mine.shape, theirs.shape))
    return OType(shape, mine.dtype or theirs.dtype)


def _single(node: onnx.NodeProto, typed: Sequence[Any], model: onnx.ModelProto) -> onnx.ModelProto:
    """A model of ``node`` alone, its inputs typed by ``typed`` (TensorType, or an array: a constant)."""
    inputs, inits, seen = [], [], set()
    for name, t in zip(node.input, typed):
        if not name or name in seen:
            continue
        seen.add(name)
        if isinstance(t, np.ndarray):
            inits.append(numpy_helper.from_array(t, name))
        elif isinstance(t, TensorType):
            elem = helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype))
            inputs.append(helper.make_tensor_value_info(name, elem, list(t.shape)))
    graph = helper.make_graph([node], "node", inputs, [], initializer=inits)
    single = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    single.functions.extend(model.functions)
    return single


def infer_node(node: onnx.NodeProto, typed: list[Any], model: onnx.ModelProto) -> list[OType | None]:
    """Output types of one node given its inputs' IR types (and constant values), inferred
    leniently, with data propagation where it is safe (an empty list when inference fails)."""
    single = _single(node, typed, model)
    lengths = [t.shape[0] for t in typed if isinstance(t, TensorType) and len(t.shape) == 1
               and isinstance(t.shape[0], int)]
    prop = limits.data_propagation_safe([node], {name: t for name, t in zip(node.input, typed)
                                                 if isinstance(t, np.ndarray)}, lengths)
    try:
        inferred = onnx.shape_inference.infer_shapes(single, data_prop=prop)
    except Exception:  # noqa: BLE001 - fall back to the whole-model inference
        return []
    found = {vi.name: otype(vi.type) for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    return [found.get(out) for out in node.output]


class IllTyped(Exception):
    """A node ONNX's typing rules reject for its inputs' types; the message says what was expected."""


def _infer_strict(node: onnx.NodeProto, typed: list[Any],
                  model: onnx.ModelProto) -> list[OType | None] | IllTyped | None:
    """The node's complete output types (None for each output not fully known) by strict inference
    without data propagation, as the whole model's first inference runs; None when it cannot run,
    :class:`IllTyped` when ONNX's rules for a standard op reject the node's input types."""
    try:
        single = _single(node, typed, model)
    except Exception:  # noqa: BLE001 - a dtype ONNX cannot write: the whole model decides
        return None
    standard = node.domain in ("", "ai.onnx") and not any(f.domain == node.domain for f in model.functions)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    problem = wellformed.problem(node, typed, opset) if standard else None
    if problem is not None:
        return IllTyped(problem)
    try:
        inferred = onnx.shape_inference.infer_shapes(single, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as exc:
        if standard and _has_own_inference(node, opset):
            return IllTyped(f"{_onnx_reason(exc)} (inputs: {_describe(node, typed)})")
        return None  # (an op defined by a function body: ONNX infers through its body, not always right)
    except Exception:  # noqa: BLE001 - the whole model decides
        return None
    found = {vi.name: otype(vi.type) for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    for out in node.output:
        t = found.get(out) if out else None
        if t is not None and t.shape is not None and any(type(d) is int and d < 0 for d in t.shape):
            return IllTyped(f"ONNX's rules give output '{out}' the shape {list(t.shape)}, with a negative dim "
                            f"(inputs: {_describe(node, typed)})")
    return [complete(found.get(out)) if out else None for out in node.output]


def _has_own_inference(node: onnx.NodeProto, opset: int) -> bool:
    """Whether ONNX types the node by its op's own inference function (whose errors are the op's
    rules), not by inferring through a function body."""
    try:
        return onnx.defs.get_schema(node.op_type, opset, "").has_type_and_shape_inference_function
    except Exception:  # noqa: BLE001 - no schema
        return False


#: the parts of an InferenceError's text that locate it (the archc error names the node itself)
_ONNX_PREFIX = re.compile(r"\[(?:Shape|Type)InferenceError\]\s*|Inference error\(s\):\s*|\(op_type:[^)]*\):\s*")


def _onnx_reason(exc: BaseException) -> str:
    """ONNX's reason for rejecting a node, without its own prefixes."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return "ONNX's type rules reject it: " + (_ONNX_PREFIX.sub("", text).strip() or type(exc).__name__)


def _describe(node: onnx.NodeProto, typed: Sequence[Any]) -> str:
    """The node's inputs as ``name dtype[dims]``."""
    parts = []
    for name, t in zip(node.input, typed):
        if not name:
            continue
        if isinstance(t, np.ndarray):
            parts.append(f"'{name}' {t.dtype.name}[{', '.join(map(str, t.shape))}]")
        elif isinstance(t, TensorType):
            parts.append(f"'{name}' {t.dtype}[{', '.join(map(str, t.shape))}]")
        else:
            parts.append(f"'{name}' (not known statically)")
    return ", ".join(parts)


_MISSING: Any = object()


class OnnxTypes:
    """ONNX's types for one import: per-node inference by signature, the whole model's on demand.

    ``fail(message)`` raises the import's located error (whole-model inference that fails).
    ``symbols`` maps the whole model's symbols to IR dims, learnt as the importer checks nodes
    (:meth:`learn`); ``input_symbols`` are the graph inputs' own, which stay as they are.
    """

    def __init__(self, model: onnx.ModelProto, skeleton: onnx.ModelProto, fail: Callable[[str], None],
                 checked: Callable[[], None] = lambda: None) -> None:
        self.model = model
        self.skeleton = skeleton
        self._fail = fail
        self._checked = checked  # waits for onnx.checker's verdict (the whole model's inference reads all of it)
        self.symbols: dict[str, Dim] = {}
        self.input_symbols: set[str] = set()
        self._whole: dict[str, OType] | None = None
        self._by_signature: dict[Hashable, list[OType | None] | None] = {}
        self._unlearnt: list[tuple[onnx.NodeProto, list[TensorType]]] = []  # checked before whole() ran
        if len(model.graph.value_info):
            self.whole()  # declared types: the whole model's inference checks them against its own

    @property
    def has_whole(self) -> bool:
        return self._whole is not None

    def whole(self) -> dict[str, OType]:
        """The whole model's inferred types by value name (inferred on the first call)."""
        if self._whole is None:
            self._checked()
            self._whole = self._infer_whole()
            pending, self._unlearnt = self._unlearnt, []
            for node, types in pending:
                self.learn(node, types)
        return self._whole

    def otype(self, name: str) -> OType | None:
        """The whole model's type of a value, its symbols translated to IR dims where known."""
        t = self.whole().get(name)
        if t is None or t.shape is None or not self.symbols or all(type(d) is int for d in t.shape):
            return t
        return OType(tuple(self.symbols.get(d, d) if isinstance(d, str) else d for d in t.shape), t.dtype)

    def of_node(self, node: onnx.NodeProto, key: Hashable,
                typed: Callable[[], list[Any]]) -> list[OType | None] | None:
        """The node's complete output types by per-node inference over ``typed()`` (its inputs:
        TensorTypes, constant values; see :func:`_infer_strict`), once per ``key`` (the node's
        signature). :class:`IllTyped` when ONNX's typing rules reject the node's inputs."""
        found = self._by_signature.get(key, _MISSING)
        if found is _MISSING:
            found = self._by_signature[key] = _infer_strict(node, typed(), self.model)
        if type(found) is IllTyped:
            raise IllTyped(str(found))
        return found

    def learn(self, node: onnx.NodeProto, types: list[TensorType]) -> None:
        """Take the IR dims ``types`` (checked against ONNX's) as the meaning of the symbols the
        whole model's inference invented for the node's outputs; remembered until it has run."""
        if self._whole is None:
            self._unlearnt.append((node, types))
            return
        learnt: dict[str, Dim] = {}
        for name, t in zip(node.output, types):
            o = self.otype(name) if name else None
            if o is None or o.shape is None or len(o.shape) != t.rank:
                continue
            for mine, theirs in zip(t.shape, o.shape):
                if isinstance(theirs, str) and theirs != mine and theirs not in self.symbols \
                        and theirs not in self.input_symbols and (theirs.isidentifier() or agree(theirs, mine)):
                    learnt[theirs] = mine  # (a name it invented; an expression only where the file trusts it one)
        self.symbols.update(learnt)

    def _infer_whole(self) -> dict[str, OType]:
        """One whole-model inference, and a second one with data propagation only where the first
        left a dim or rank unknown (and propagating is safe)."""
        model = self.skeleton
        inferred = self._inferred(model, data_prop=False)
        found = otypes(inferred.graph)
        if not fully_typed(model.graph, found):
            g = model.graph
            ranges = {name for n in g.node if n.op_type == "Range" for name in n.input}
            if limits.data_propagation_safe(g.node, _literal_constants(g, ranges), limits.vector_lengths(inferred)):
                found = otypes(self._inferred(model, data_prop=True).graph)
        return found

    def _inferred(self, model: onnx.ModelProto, data_prop: bool) -> onnx.ModelProto:
        try:
            return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=data_prop)
        except Exception:  # noqa: BLE001 - strict inference rejects some valid models; retry leniently
            try:
                return onnx.shape_inference.infer_shapes(model, data_prop=data_prop)
            except Exception as exc:  # noqa: BLE001
                self._fail(f"ONNX shape inference failed: {first_line(exc)}")
                raise AssertionError from exc  # unreachable: fail raises


def _literal_constants(graph: onnx.GraphProto, names: set[str]) -> dict[str, np.ndarray]:
    """The values of the small initializers and Constant nodes among ``names`` (unreadable ones left out)."""
    found: dict[str, np.ndarray] = {}
    tensors = [(t.name, t) for t in graph.initializer if t.name in names and math.prod(t.dims) <= VALUE_LIMIT]
    tensors += [(n.output[0], a.t) for n in graph.node if n.op_type == "Constant" and n.output
                and n.output[0] in names for a in n.attribute if a.name == "value" and a.HasField("t")]
    for name, tensor in tensors:
        try:
            found[name] = numpy_helper.to_array(tensor)
        except Exception:  # noqa: BLE001 - a corrupt tensor is reported where it is used
            continue
    return found
