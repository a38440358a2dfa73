"""What the ONNX importer refuses to do with a hostile or broken model, checked before doing it.

* **Reading**: the file must be a regular file; protobuf decode errors name the file;
  external data is read only from regular files inside the model's directory
  (:func:`load_external_data`), with offsets and lengths inside those files.
* **Structure**: every node input is produced by an earlier node, an initializer or a
  graph input; no value is produced twice; no cycles (:func:`check_structure`). Errors
  name the node and its index in ``graph.node``. :func:`check_model` runs ``onnx.checker``
  and reads the names through protobuf only when something is wrong (see there).
* **Constant folding is bounded**: before the reference evaluator runs a node whose
  inputs are all constant, :func:`fold_refusal` computes the size of its outputs (and
  the work of a matrix product) from ONNX shape inference over the inputs' shapes; a
  node beyond :data:`MAX_FOLD_ELEMENTS` is not folded and stays symbolic. Symbolic
  shape arithmetic runs over small arrays only (:func:`symbolic_allowed`), and its
  results must fit in int64 (:func:`fits_int64`).

The limits are environment variables, so a user who trusts a model can raise them:
``ARCHC_MAX_FOLD_ELEMENTS`` (default 2^24 elements per folded tensor).
"""
from __future__ import annotations

import math
import os
import stat
from itertools import chain
from typing import Any, Iterable, Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from archc.errors import Location, SpecError, first_line
from archc.fileio import note_input
from archc.frontends.onnx.checking import Verdict, checker_context
from archc.frontends.onnx.mirror import Fields, mirror_class

__all__ = [
    "MAX_FOLD_ELEMENTS",
    "MAX_INLINED_NODES",
    "PendingCheck",
    "check_model",
    "check_structure",
    "checker_culprit",
    "data_propagation_safe",
    "fits_int64",
    "inlined_size",
    "fold_refusal",
    "is_integer_arithmetic",
    "load_external_data",
    "native_refusal",
    "node_error",
    "node_label",
    "node_position",
    "range_count",
    "read_model",
    "read_model_data",
    "start_check",
    "symbolic_allowed",
    "vector_lengths",
]


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


#: most elements one constant-folded tensor may have (env ARCHC_MAX_FOLD_ELEMENTS)
MAX_FOLD_ELEMENTS = _env_int("ARCHC_MAX_FOLD_ELEMENTS", 1 << 24)
#: most multiply-adds a folded matrix product may take
MAX_FOLD_WORK = 64 * MAX_FOLD_ELEMENTS
#: most nodes a model's local functions may expand to once inlined (env ARCHC_MAX_INLINED_NODES)
MAX_INLINED_NODES = _env_int("ARCHC_MAX_INLINED_NODES", 1 << 20)
#: symbolic shape arithmetic runs over object arrays of at most this many entries
MAX_SYMBOLIC_ELEMENTS = 4096
#: ops whose output can be far larger than their inputs: never folded without a known output shape
_GROWING = frozenset({"ConstantOfShape", "Tile", "Expand", "Range", "Resize", "Upsample", "Pad", "OneHot",
                      "MatMul", "Gemm", "Einsum", "MatMulInteger", "Conv", "ConvTranspose", "EyeLike",
                      "RandomNormal", "RandomUniform", "Col2Im", "CenterCropPad", "DFT", "STFT",
                      "MelWeightMatrix", "BlackmanWindow", "HannWindow", "HammingWindow", "Trilu",
                      "Compress", "NonZero", "Unique", "TopK", "Multinomial", "GatherND", "GatherElements",
                      "Gather", "ScatterND", "ScatterElements", "Concat", "Sequence", "SplitToSequence",
                      "ConcatFromSequence", "StringSplit", "RegexFullMatch", "Split"})
#: ops whose output length comes from their inputs' values: a 1-D output of unknown length may be huge
_VALUE_SHAPED = frozenset({"Range", "ConstantOfShape", "Expand", "Tile", "Resize", "Upsample", "Pad", "OneHot",
                           "Reshape", "EyeLike", "Compress", "NonZero"})
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def node_label(node: onnx.NodeProto) -> str:
    """How an error names an ONNX node: its name, or its op and outputs when it has none."""
    return node.name or f"{node.op_type} -> {', '.join(node.output) or '(no outputs)'}"


def node_position(node: onnx.NodeProto, index: int | None) -> str | None:
    """Where the node is in the model (an error's hint): its index in ``graph.node`` and op."""
    return None if index is None else f"ONNX node #{index}, {node.op_type or 'no op type'}"


def node_error(message: str, node: onnx.NodeProto, index: int | None, where: Location) -> SpecError:
    """An error about one ONNX node, naming it and its index."""
    return SpecError(message, location=where, node=node_label(node), hint=node_position(node, index))


def inlined_size(model: onnx.ModelProto) -> int | None:
    """How many nodes the model's graph has once every call of a local function is inlined, counted
    without inlining (a function calling the previous one twice, 30 deep, is 2^30 nodes): each
    function's size once, a call of one of unknown size (a cycle) counted as one node; None where the
    functions call each other a thousand deep."""
    functions = {(f.domain, f.name): f for f in model.functions}
    sizes: dict[tuple[str, str], int] = {}

    def size(nodes: Iterable[onnx.NodeProto], seen: frozenset) -> int:
        total = 0
        for node in nodes:
            key = (node.domain, node.op_type)
            if key in functions and key not in seen:
                if key not in sizes:
                    sizes[key] = size(functions[key].node, seen | {key})
                total += sizes[key]
            else:
                total += 1
        return total

    try:
        return size(model.graph.node, frozenset())
    except RecursionError:
        return None


# -- reading ---------------------------------------------------------------------------------

def read_model(path: str, weights: bool = True) -> onnx.ModelProto:
    """Decode an ONNX file without its external data; SpecError naming the file otherwise.

    ``weights=False``: large initializers' bytes stay in the file too, marked as external
    data (:mod:`archc.frontends.onnx.skim`), for commands that need only their shapes."""
    return read_model_data(path, weights)[0]


def read_model_data(path: str, weights: bool = True) -> tuple[onnx.ModelProto, bytes | None]:
    """:func:`read_model`, and the file's bytes where the model is exactly what they encode (a
    binary file read whole; None where the model was skimmed or the file is in a text format):
    the import's readers of the serialised model read them instead of a new serialisation."""
    where = Location(path)
    try:
        info = os.stat(path)
    except OSError:
        raise SpecError("no such file", location=where) from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError("not a regular file (an ONNX model is read from a file)", location=where)
    if not weights:
        from archc.frontends.onnx.skim import read_structure

        model = read_structure(path)
        if model is not None:
            return model, None
    data = None
    try:
        if onnx.serialization.registry.get_format_from_file_extension(os.path.splitext(path)[1]) \
                in (None, "protobuf"):  # (onnx.load's choice of format)
            with open(path, "rb") as fh:
                data = fh.read()
            model = onnx.load_model_from_string(data)
        else:
            model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for corrupt files
        raise SpecError(f"cannot read an ONNX model: {first_line(exc)}", location=where) from None
    if not model.HasField("graph"):
        raise SpecError("not an ONNX model (no graph)", location=where)
    return model, data


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    yield from _attribute_tensors(graph)


def _attribute_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The tensors of a graph's node attributes, subgraphs (their initializers too) included."""
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def load_external_data(model: onnx.ModelProto, path: str, constants_only: bool = False) -> bool:
    """Read the external data of ``model`` (loaded from ``path``), refusing any location that
    is absolute, leaves the model's directory (``..``, a symbolic link), or is not a regular
    file, and any offset or length outside the file. ``constants_only``: only the tensors of node
    attributes (a Constant's value, saved with ``convert_attribute=True``), which the import reads as
    values (shapes, axes), never the initializers. Whether any was read."""
    where = Location(path)
    base = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    external = [t for t in (_attribute_tensors(model.graph) if constants_only else _tensors(model.graph))
                if t.HasField("data_location") and t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        _check_external(tensor, base, where)
    try:
        for tensor in external:
            onnx.external_data_helper.load_external_data_for_tensor(tensor, base)  # (and marks it in memory)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types for unreadable data
        raise SpecError(f"cannot read the model's external data: {first_line(exc)}", location=where) from None
    return bool(external)


def _check_external(tensor: onnx.TensorProto, base: str, where: Location) -> None:
    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")

    def refuse(why: str) -> None:
        shown = location.replace("\0", "\\0")
        raise SpecError(f"tensor '{tensor.name}': external data '{shown}' {why}", location=where)

    if not location:
        refuse("has no location")
    if "\0" in location:  # (no file name holds one; os.path would raise)
        refuse("holds a NUL character")
    if os.path.isabs(location) or os.path.normpath(location).split(os.sep)[0] == "..":
        refuse("is outside the model's directory (external data must be a relative path below it)")
    target = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([base, target]) != base:
        refuse("leads outside the model's directory")
    try:
        info = os.stat(target)
    except OSError:
        refuse("does not exist")
    if not stat.S_ISREG(info.st_mode):
        refuse("is not a regular file")
    note_input(info, target, "external data file")  # (no output of this command may replace it)
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries["length"]) if "length" in entries else info.st_size - offset
    except ValueError:
        refuse("has a non-integer offset or length")
    if offset < 0 or length < 0 or offset + length > info.st_size:
        refuse(f"asks for bytes {offset}..{offset + length} of a {info.st_size}-byte file")


# -- structure -------------------------------------------------------------------------------

def check_structure(graph: onnx.GraphProto, where: Location) -> None:
    """Every node input defined before its use, every value produced once, no cycle, some output.

    ONNX requires a topologically sorted graph; a model that is not is refused naming the
    first node that reads a value before (or without) its producer, and, when the reason
    is a cycle, the nodes on it. Names must be text (:func:`_check_text`).
    """
    # each node's value names, read from protobuf once (every read makes new str objects)
    names = [(list(node.input), list(node.output)) for node in graph.node]
    _check_text(graph, names, where)
    defined = {vi.name for vi in graph.input} | {t.name for t in graph.initializer} \
        | {t.values.name for t in graph.sparse_initializer}
    producer: dict[str, int] = {}
    for index, (_, outputs) in enumerate(names):
        for out in outputs:
            if not out:
                continue
            if out in defined or out in producer:
                _refuse(f"output '{out}' is already produced by "
                        f"{_producer_text(graph, producer.get(out))}", graph.node[index], index, where)
            producer[out] = index
    for index, (inputs, outputs) in enumerate(names):
        for name in inputs:
            if not name or name in defined:
                continue
            later = producer.get(name)
            node = graph.node[index]
            if later is None:
                _refuse(f"input '{name}' is not produced by any node, initializer or graph input",
                        node, index, where)
            if later >= index:
                cycle = _cycle_through(graph, producer, index)
                if cycle:
                    text = " -> ".join(f"{node_label(graph.node[k])} (#{k})" for k in cycle)
                    _refuse(f"input '{name}' closes a cycle ({text}); ONNX graphs are acyclic", node, index, where)
                _refuse(f"input '{name}' is produced later, by {node_label(graph.node[later])} (#{later}); "
                        "ONNX nodes must be in topological order", node, index, where)
        defined.update(o for o in outputs if o)
    if not graph.output:
        raise SpecError("the model has no graph outputs", location=where)


def absent_input_problem(node: onnx.NodeProto) -> str | None:
    """An empty input name stands for an absent *optional* input (``onnx.checker`` lets one stand
    anywhere): what is wrong where it stands for an input the op's schema requires (a Concat's)."""
    try:
        formals = onnx.defs.get_schema(node.op_type, node.domain).inputs
    except onnx.defs.SchemaError:
        return None  # an op ONNX does not define: its own rules apply
    for position, name in enumerate(node.input):
        if name or not formals:
            continue
        formal = formals[min(position, len(formals) - 1)]
        if formal.option != onnx.defs.OpSchema.FormalParameterOption.Optional:
            return (f"input {position} ('{formal.name}') is empty (''), but {node.op_type} requires it: only an "
                    "optional input may be left out")
    return None


def _check_text(graph: onnx.GraphProto, names: list[tuple[list, list]], where: Location) -> None:
    """Names are text: protobuf hands back a string field that is not UTF-8 as bytes.
    ``names``: each node's (inputs, outputs)."""
    # the common case first, over all nodes at once: no field is bytes
    value_types = set(map(type, chain.from_iterable(chain.from_iterable(names))))
    node_types = {type(text) for node in graph.node
                  for text in (node.name, node.op_type, node.domain, *[a.name for a in node.attribute])}
    if bytes in value_types or bytes in node_types:
        _name_bytes(graph, names, where)
    for kind, items in (("graph input", graph.input), ("graph output", graph.output),
                        ("initializer", graph.initializer), ("value_info", graph.value_info)):
        for item in items:
            if isinstance(item.name, bytes):
                raise SpecError(f"the name of a {kind} is not valid UTF-8: {item.name[:40]!r}", location=where)


def _name_bytes(graph: onnx.GraphProto, names: list[tuple[list, list]], where: Location) -> None:
    """Refuse the first node with a field that is not text, naming the node's index and the field."""
    for index, (node, (inputs, outputs)) in enumerate(zip(graph.node, names)):
        if bytes not in {type(node.name), type(node.op_type), type(node.domain), *map(type, inputs),
                         *map(type, outputs), *(type(a.name) for a in node.attribute)}:
            continue
        fields = [("name", node.name), ("op_type", node.op_type), ("domain", node.domain),
                  *(("input", n) for n in inputs), *(("output", n) for n in outputs),
                  *(("attribute name", a.name) for a in node.attribute)]
        for field, value in fields:
            if isinstance(value, bytes):
                raise SpecError(f"the {field} of ONNX node #{index} is not valid UTF-8: {value[:40]!r}",
                                location=where)


def check_model(graph: onnx.GraphProto, skeleton: onnx.ModelProto, where: Location) -> None:
    """``onnx.checker`` on ``skeleton`` (the model without its large weights) and
    :func:`check_structure` on the model's ``graph``, with check_structure's messages first
    (:func:`start_check`, its verdict awaited)."""
    start_check(graph, skeleton, where).settle()


class PendingCheck:
    """The checks of :func:`start_check`: the checker's :class:`~archc.frontends.onnx.checking.Verdict`
    and how to refuse the model where it refuses."""

    def __init__(self, graph: onnx.GraphProto, skeleton: onnx.ModelProto, where: Location, verdict: Verdict,
                 structure_checked: bool, data: bytes | None = None) -> None:
        self.graph, self.skeleton, self.where = graph, skeleton, where
        self.verdict = verdict
        self.data = data  # the skeleton serialised (None where protobuf cannot write it)
        self._structure_checked = structure_checked

    def settle(self) -> None:
        """Wait for the checker's verdict; where it refuses, the SpecError check_structure names
        (node, index, cycle), else the checker's message naming the node it rejects."""
        message = self.verdict.message()
        if message is None:
            return
        if not self._structure_checked:  # (it passed before the checker ran otherwise)
            check_structure(self.graph, self.where)
        unshaped = _unshaped_value(self.graph)
        if unshaped is not None:
            raise SpecError(f"invalid ONNX model: graph {unshaped} declares no shape (onnx.checker requires a "
                            "'shape' field on the graph's inputs and outputs, [] for a scalar); write its shape, "
                            "e.g. with onnx.helper.make_tensor_value_info", location=self.where) from None
        culprit = checker_culprit(self.skeleton)
        message = f"invalid ONNX model: {message}"
        if culprit is None:
            raise SpecError(message, location=self.where) from None
        raise node_error(message, culprit[1], culprit[0], self.where) from None


def _unshaped_value(graph: onnx.GraphProto) -> str | None:
    """The first graph input or output (``input 'x'``) whose tensor type has no shape field, or None."""
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for vi in values:
            if vi.type.HasField("tensor_type") and not vi.type.tensor_type.HasField("shape"):
                return f"{kind} '{vi.name}'"
    return None


def start_check(graph: onnx.GraphProto, skeleton: onnx.ModelProto, where: Location,
                data: bytes | None = None, nodes_text: bool = False, initializers_text: bool = False) -> PendingCheck:
    """Start ``onnx.checker`` on ``skeleton`` (on a large model in a child process, see
    :mod:`archc.frontends.onnx.checking`); run :func:`check_structure` where it must run.

    Where the checker accepts a model, it has proved what check_structure proves but its
    messages: every node input is defined before its use (topological order) and no value is
    produced twice, graph inputs and initializers included (SSA); ``tests/test_onnx_limits.py``
    holds it to that for every defect check_structure names. So check_structure, which reads
    every name through protobuf (on a 100k-node model as long as the checker itself), runs
    only when something is wrong: the checker refuses (:meth:`PendingCheck.settle`), the graph
    has no outputs, or a name is not text (:func:`_names_are_text`, protobuf's own UTF-8 check,
    on the bytes the checker reads). ``nodes_text``: the caller has proved the nodes' own strings
    of ``data`` text already (a proto3 mirror of them parsed it); ``initializers_text``: the
    initializers' names (it decoded them): only the other names are read.
    """
    # (said of the caller's bytes, not of a new serialisation)
    nodes_text, initializers_text = nodes_text and data is not None, initializers_text and data is not None
    if data is None:  # (``data``: the skeleton serialised already, where the caller has it)
        try:
            data = skeleton.SerializeToString()  # once, for both readers
        except Exception:  # noqa: BLE001 - a message protobuf cannot write (over 2 GB): the checker says why
            data = None
    structure_checked = data is None or not graph.output or not _names_are_text(data, nodes_text, initializers_text)
    if structure_checked:
        check_structure(graph, where)
    verdict = Verdict(skeleton if data is None else data, len(graph.node), skeleton.opset_import,
                      skeleton.ir_version)
    return PendingCheck(graph, skeleton, where, verdict, structure_checked, data)


#: the names :func:`_check_text` reads: ONNX message -> its fields to mirror, each with the message
#: type of its elements (None: a string)
_TEXT_FIELDS: Fields = {
    "ModelProto": (("graph", "GraphProto"),),
    "GraphProto": (("node", "NodeProto"), ("initializer", "TensorProto"), ("input", "ValueInfoProto"),
                   ("output", "ValueInfoProto"), ("value_info", "ValueInfoProto")),
    "NodeProto": (("input", None), ("output", None), ("name", None), ("op_type", None), ("domain", None),
                  ("attribute", "AttributeProto")),
    "AttributeProto": (("name", None),),
    "TensorProto": (("name", None),),
    "ValueInfoProto": (("name", None),),
}
#: the same without the nodes' own strings (for a caller that has proved those text)
_OTHER_TEXT_FIELDS: Fields = {**_TEXT_FIELDS, "NodeProto": (("attribute", "AttributeProto"),)}
_text_mirrors: dict[tuple[bool, bool], Any] = {}  # (nodes_text, initializers_text) -> the mirror


def _names_are_text(data: bytes, nodes_text: bool = False, initializers_text: bool = False) -> bool:
    """Whether every name :func:`_check_text` reads is UTF-8 in the serialised model ``data``.

    ONNX's schema is proto2, whose strings protobuf does not validate (Python then hands back
    bytes). A proto3 mirror of the messages, holding only those string fields under ONNX's
    own field numbers, is parsed from the same bytes: proto3 strings are validated in C while
    parsing, every other field is skipped. False also when the mirror cannot read the bytes
    for another reason; the caller then reads the names one by one. ``nodes_text``: the nodes'
    inputs, outputs, names, op types and domains are known to be text (not read again);
    ``initializers_text``: the initializers' names."""
    mirror = _text_mirrors.get((nodes_text, initializers_text))
    if mirror is None:
        fields = dict(_OTHER_TEXT_FIELDS if nodes_text else _TEXT_FIELDS)
        if initializers_text:  # (no TensorProto parsed for each initializer)
            fields["GraphProto"] = tuple(f for f in fields["GraphProto"] if f[0] != "initializer")
        package = f"archc_onnx_text{'_other' * nodes_text}{'_no_initializers' * initializers_text}"
        mirror = _text_mirrors[(nodes_text, initializers_text)] = mirror_class(package, fields)
    try:
        mirror.FromString(data)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError: a string that is not UTF-8
        return False
    return True


def checker_culprit(model: onnx.ModelProto) -> tuple[int, onnx.NodeProto] | None:
    """The first node the ONNX checker rejects on its own (attributes, input counts, opsets),
    with its index; None when the model's problem is not one node's."""
    ctx = checker_context(model.opset_import, model.ir_version)
    scope = onnx.checker.C.LexicalScopeContext()
    for index, node in enumerate(model.graph.node):
        try:
            onnx.checker.check_node(node, ctx, scope)
        except Exception:  # noqa: BLE001 - ValidationError or ValueError: this node is the culprit
            return index, node
    return None


def _producer_text(graph: onnx.GraphProto, index: int | None) -> str:
    return "an initializer or graph input" if index is None else f"{node_label(graph.node[index])} (#{index})"


def _cycle_through(graph: onnx.GraphProto, producer: dict[str, int], start: int) -> list[int]:
    """Node indices of a cycle through node ``start`` (empty if none)."""
    import networkx as nx

    g = nx.DiGraph()
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name in producer:
                g.add_edge(producer[name], index)
    if start not in g:
        return []
    try:
        edges = nx.find_cycle(g, source=start)
    except nx.NetworkXNoCycle:
        return []
    nodes = [u for u, _ in edges]
    return nodes + [nodes[0]] if start in nodes else []


def _refuse(message: str, node: onnx.NodeProto, index: int, where: Location) -> None:
    raise node_error(message, node, index, where)


# -- bounded evaluation ----------------------------------------------------------------------

#: ONNX's data propagation makes one dim per element of a 1-D tensor: it runs only while
#: every such tensor (and every Range) has at most this many elements
MAX_PROPAGATED_ELEMENTS = 1 << 16


def data_propagation_safe(nodes: Iterable[onnx.NodeProto], constants: dict[str, np.ndarray],
                          lengths: Iterable[int | None] = ()) -> bool:
    """Whether ONNX shape inference may propagate data through ``nodes``.

    ONNX's data propagation (C++, uninterruptible) turns every 1-D integer tensor into a
    list of dims: a Range of 10^18 elements or a Cast of a 2^62-element vector hangs it.
    It is used only when every Range's count is known from ``constants`` and small, and
    every known length of a 0-D/1-D value (``lengths``) is small.
    """
    if any(n is None or n > MAX_PROPAGATED_ELEMENTS for n in lengths):
        return False
    for node in nodes:
        if node.op_type != "Range":
            continue
        count = range_count([constants.get(name) for name in node.input])
        if count is None or count > MAX_PROPAGATED_ELEMENTS:
            return False
    return True


def vector_lengths(inferred: onnx.ModelProto) -> list[int | None]:
    """Lengths of the 1-D values of a model ONNX inferred without data propagation
    (None for one whose length is unknown but could be large: produced by a growing op)."""
    g = inferred.graph
    grown = {o for n in g.node if n.op_type in _VALUE_SHAPED for o in n.output}
    lengths: list[int | None] = [int(d) for t in g.initializer if len(t.dims) == 1 for d in t.dims]
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not tt.HasField("shape") or len(tt.shape.dim) != 1:
            continue
        dim = tt.shape.dim[0]
        if dim.HasField("dim_value"):
            lengths.append(int(dim.dim_value))
        elif vi.name in grown:
            lengths.append(None)
    return lengths


def range_count(arrays: list[np.ndarray | None]) -> int | None:
    """Elements of Range(start, limit, delta) over constant scalars, None when not known."""
    if len(arrays) != 3 or any(a is None or np.size(a) != 1 for a in arrays):
        return None
    try:
        start, limit, delta = (float(np.asarray(a).ravel()[0]) for a in arrays)
        if delta == 0 or not all(math.isfinite(v) for v in (start, limit, delta)):
            return None
        return max(0, math.ceil((limit - start) / delta))
    except (TypeError, ValueError, OverflowError):
        return None


def fits_int64(values: Iterable[Any]) -> bool:
    """Whether every int among ``values`` fits in int64 (str dims are symbolic, always fine)."""
    return all(not isinstance(v, (int, np.integer)) or _INT64[0] <= int(v) <= _INT64[1] for v in values)


def is_integer_arithmetic(node: onnx.NodeProto, arrays: list[np.ndarray | None]) -> bool:
    """Whether ``node`` is integer Add/Sub/Mul/Div over small constant arrays (shape arithmetic)."""
    return node.op_type in ("Add", "Sub", "Mul", "Div") and node.domain in ("", "ai.onnx") \
        and all(a is not None and np.asarray(a).dtype.kind in "iu" for a in arrays) and symbolic_allowed(arrays)


def native_refusal(ins: list[Any], outs: list[Any], weights: dict[str, np.ndarray] | None) -> str | None:
    """Why a node is kept as an onnx_node rather than mapped to a native op, or None.

    Native ops describe layers: an empty tensor (a zero dim: a layer with no inputs has
    no initialisation bound), or a dim beyond int64 (ONNX cannot even write the type)
    is left to the onnx_node, which keeps ONNX's own semantics and types.
    """
    for t in [*ins, *outs]:
        for d in t.shape:
            if isinstance(d, int) and not 0 < d <= _INT64[1]:
                return f"a tensor of shape {t.shape} (a dim not positive or beyond int64)"
    for name, w in (weights or {}).items():
        if (w.size if isinstance(w, np.ndarray) else np.size(w)) == 0:
            return f"the weight '{name}' is empty"
    return None


def symbolic_allowed(arrays: list[np.ndarray | None]) -> bool:
    """Symbolic shape arithmetic is for shape vectors: small inputs only."""
    return all(a is None or np.size(a) <= MAX_SYMBOLIC_ELEMENTS for a in arrays)


def fold_refusal(node: onnx.NodeProto, arrays: list[np.ndarray | None], opsets: dict[str, int]) -> str | None:
    """Why folding ``node`` over these constant inputs is not attempted (too large), or None.

    The output sizes come from ONNX shape inference over the inputs' shapes (small
    inputs with their values, for the ops whose output shape depends on data), before
    any output is computed. Ops that can grow their output are not folded when the
    inference cannot say how large it will be.
    """
    shapes = _inferred_output_shapes(node, arrays, opsets)
    known = shapes is not None and all(s is not None for s in shapes)
    if not known:
        if node.op_type in _GROWING:
            return "the size of its output is unknown"
        total = sum(int(np.size(a)) for a in arrays if a is not None)
        return None if total <= MAX_FOLD_ELEMENTS else f"its inputs have {total} elements"
    for shape in shapes:
        size = math.prod(shape)
        if size > MAX_FOLD_ELEMENTS:
            return (f"its output would have {_dims_text(shape)} = {size} elements, over the limit of "
                    f"{MAX_FOLD_ELEMENTS} (ARCHC_MAX_FOLD_ELEMENTS)")
    work = _matmul_work(node, arrays, shapes)
    if work > MAX_FOLD_WORK:
        return f"the product would take {work} multiply-adds, over the limit of {MAX_FOLD_WORK}"
    return None


def _dims_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape) if shape else "a scalar"


def _matmul_work(node: onnx.NodeProto, arrays: list[np.ndarray | None], shapes: list[tuple[int, ...]]) -> int:
    if node.op_type not in ("MatMul", "Gemm", "MatMulInteger") or not arrays or arrays[0] is None \
            or not shapes or np.ndim(arrays[0]) == 0:
        return 0
    inner = np.shape(arrays[0])[0 if node.op_type == "Gemm" and _attr(node, "transA") else -1]
    return math.prod(shapes[0]) * int(inner)


def _attr(node: onnx.NodeProto, name: str) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


#: initializers up to this many elements carry their values into the fold's shape inference
_DATA_ELEMENTS = 1024


def _inferred_output_shapes(node: onnx.NodeProto, arrays: list[np.ndarray | None],
                            opsets: dict[str, int]) -> list[tuple[int, ...] | None] | None:
    inputs, inits, seen = [], [], set()
    try:
        for name, arr in zip(node.input, arrays):
            if not name or arr is None or name in seen:
                continue
            seen.add(name)
            if np.size(arr) <= _DATA_ELEMENTS:
                inits.append(numpy_helper.from_array(np.asarray(arr), name))
            else:
                inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype),
                                                            list(arr.shape)))
        graph = helper.make_graph([node], "fold", inputs, [], initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
        safe = data_propagation_safe([node], dict(zip(node.input, arrays)),
                                     [np.size(a) for a in arrays if a is not None and np.ndim(a) <= 1])
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=safe)
    except Exception:  # noqa: BLE001 - inference rejects some nodes; then the size is unknown
        return None
    found = {vi.name: vi.type for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    shapes: list[tuple[int, ...] | None] = []
    for out in node.output:
        if not out:
            continue
        tp = found.get(out)
        if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
            shapes.append(None)
            continue
        dims = tp.tensor_type.shape.dim
        shapes.append(tuple(int(d.dim_value) for d in dims)
                      if all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims) else None)
    return shapes


