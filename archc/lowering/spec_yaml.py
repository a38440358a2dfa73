"""The graph IR written back as a spec in archc's language (``archc spec MODEL.onnx``).

Repeated segments (:mod:`archc.lowering.spec_blocks`) become ``blocks:`` instantiated with
``repeat:`` and ``overrides:``; the rest is written node by node. Shapes are left to
inference (no ``in_channels``), attributes at their op's default are left out, and names
follow the module paths the exporter kept (``layer1.0.conv1``), which are hints only:
unnamed structure gets names from its ops. Every scalar goes through ``yaml.safe_dump``,
so any string a model brings is quoted safely.

:func:`to_spec` returns the spec as data and the map from the graph's node names to the
names the spec's graph will have, so a state_dict can be renamed to load into it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from archc.ir.graph import Graph, Node, Value
from archc.ir.names import Namespace
from archc.lowering.spec_blocks import BlockType, Segment, block_types, segments, units
from archc.ops import registry
from archc.ops.onnx_node import tensor_attribute
from archc.ops.weights import TIE_META, tied_params

__all__ = ["to_spec", "dump_spec"]


def _ident(text: str, fallback: str) -> str:
    name = re.sub(r"\W+", "_", text).strip("_")
    if not name:
        name = fallback
    return "_" + name if name[0].isdigit() else name


def _hint(node: Node) -> str:
    """The module path the exporter recorded for a node, else its name."""
    return node.meta.get("module_path") or node.name


def _plain(value: Any) -> Any:
    """Attribute values as YAML data: tuples as lists, numpy scalars and arrays as Python values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _literal_attrs(node: Node) -> dict[str, Any]:
    """The node's attributes that differ from its op's defaults."""
    opdef = registry.lookup(node.op)
    out = {}
    for key, value in node.attrs.items():
        spec = opdef.attrs.get(key)
        if spec is not None and not spec.required and _plain(spec.default) == _plain(value):
            continue
        out[key] = _onnx_attributes(value) if node.op == "onnx_node" and key == "attributes" else _plain(value)
    return out


def _onnx_attributes(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    """An onnx_node's ONNX attributes as YAML data, its tensors with their dtype and shape."""
    if attributes is None:
        return None
    return {k: tensor_attribute(v) if type(v).__name__ == "ndarray" else _plain(v) for k, v in attributes.items()}


@dataclass
class _Block:
    """A block type as written: its name, local node names, parameters and flag."""

    name: str
    kind: BlockType
    local: list[str]
    slots: dict[tuple[int, str], str] = field(default_factory=dict)   # (template index, attr) -> param
    values: dict[str, list[Any]] = field(default_factory=dict)        # param -> value per instance
    flag: str | None = None


def _prefix(seg: Segment) -> str | None:
    """The longest dotted module path shared by the hints of a segment's nodes."""
    paths = [_hint(n).split(".") for n in seg.nodes]
    common: list[str] = []
    for parts in zip(*paths):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common) or None


def _instance_values(bt: BlockType, seg: Segment, mapping: dict[int, int]) -> dict[tuple[int, str], Any]:
    values = {}
    for t, tnode in enumerate(bt.template.nodes):
        if tnode.op == "onnx_node" or t not in mapping:
            continue
        for key, value in seg.nodes[mapping[t]].attrs.items():
            values[(t, key)] = _plain(value)
    return values


def _make_block(bt: BlockType, names: Namespace) -> _Block:
    prefix = _prefix(bt.template)
    local_names = Namespace({"x"})
    local = []
    for node in bt.template.nodes:
        hint = _hint(node)
        rest = hint[len(prefix) + 1:] if prefix and hint.startswith(prefix + ".") else ""
        local.append(local_names.take(_ident(rest, node.op)))
    block = _Block(names.take("block"), bt, local)
    # slots whose values differ between instances become parameters; equal columns share one
    vectors: dict[tuple[int, str], list[Any]] = {}
    for seg, mapping in bt.instances:
        values = _instance_values(bt, seg, mapping)
        for t, tnode in enumerate(bt.template.nodes):
            if tnode.op == "onnx_node":
                continue
            for key in tnode.attrs:
                vectors.setdefault((t, key), []).append(values.get((t, key)))
    params: list[tuple[str, list[Any]]] = []
    param_names = Namespace({"x", *local})
    for slot, vec in vectors.items():
        if len({repr(v) for v in vec if v is not None}) <= 1:
            continue
        for pname, pvec in params:
            if all(a is None or b is None or a == b for a, b in zip(vec, pvec)):
                block.slots[slot] = pname
                for i, v in enumerate(vec):
                    pvec[i] = pvec[i] if v is None else v
                break
        else:
            attr = slot[1]
            pname = param_names.take(attr if attr not in param_names else f"{local[slot[0]]}_{attr}")
            params.append((pname, list(vec)))
            block.slots[slot] = pname
    for pname, pvec in params:  # an instance without the slot's node still passes some value
        present = next(v for v in pvec if v is not None)
        block.values[pname] = [present if v is None else v for v in pvec]
    if bt.optional:
        names_opt = [local[i] for i in sorted(bt.optional)]
        stem = re.sub(r"[_\d]+$", "", os.path.commonprefix(names_opt)) or "shortcut"
        block.flag = param_names.take(f"with_{stem}")
    return block


def _ref(ref: tuple, local: list[str]) -> str:
    if ref[0] == "x":
        return "x"
    return local[ref[1]] if ref[2] == 0 else f"{local[ref[1]]}:{ref[2]}"


def _block_definition(block: _Block) -> dict[str, Any]:
    bt, nodes = block.kind, []
    params = {p: None for p in dict.fromkeys(block.slots.values())}
    if block.flag:
        params[block.flag] = False
    for t, node in enumerate(bt.template.nodes):
        entry: dict[str, Any] = {"name": block.local[t], "op": node.op}
        refs = bt.template.refs(node)
        previous = ("x",) if t == 0 else ("n", t - 1, 0)
        if not (len(refs) == 1 and refs[0] == previous):
            texts = [_ref(r, block.local) for r in refs]
            entry["in"] = texts[0] if len(texts) == 1 else texts
        attrs = _literal_attrs(node)
        opdef = registry.lookup(node.op)
        for key in node.attrs:
            pname = block.slots.get((t, key))
            if pname is not None:
                attrs[key] = f"${{{pname}}}" if opdef.attrs[key].kind == "str" else pname
        entry.update(attrs)
        if t in bt.optional:
            entry["if"] = block.flag
        nodes.append(entry)
    return {"params": params, "nodes": nodes}


def _arguments(block: _Block, k: int) -> dict[str, Any]:
    """The block arguments of instance ``k`` of the block type."""
    args = {pname: vec[k] for pname, vec in block.values.items()}
    if block.flag:
        args[block.flag] = len(block.kind.instances[k][1]) == len(block.kind.template.nodes)
    return args


@dataclass
class _Run:
    """Consecutive instances of one block, written as one (repeated) node."""

    block: _Block
    indexes: list[int]            # instance numbers within the block type
    segments: list[Segment]


def _runs(segs: list[Segment], blocks: list[_Block]) -> list[Segment | _Run]:
    """The segments in order, consecutive instances of a block joined into runs."""
    where: dict[int, tuple[_Block, int]] = {}
    for block in blocks:
        for k, (seg, _) in enumerate(block.kind.instances):
            where[id(seg)] = (block, k)
    items: list[Segment | _Run] = []
    for seg in segs:
        found = where.get(id(seg))
        if found is None:
            items.append(seg)
            continue
        block, k = found
        last = items[-1] if items else None
        if isinstance(last, _Run) and last.block is block and _continues(last, seg, k):
            last.indexes.append(k)
            last.segments.append(seg)
        else:
            items.append(_Run(block, [k], [seg]))
    return items


def _continues(run: _Run, seg: Segment, k: int) -> bool:
    """Whether instance ``k`` extends ``run``: the same parent module path where the exporter kept
    one (``layer1.1`` after ``layer1.0``), else the same arguments as the run's last instance
    (its first may differ: the first block of a stage)."""
    mine, theirs = _prefix(seg), _prefix(run.segments[-1])
    if mine and theirs and "." in mine and "." in theirs:
        return mine.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
    return len(run.indexes) == 1 or _arguments(run.block, k) == _arguments(run.block, run.indexes[-1])


def _run_name(run: _Run, names: Namespace) -> str:
    prefixes = [_prefix(seg) for seg in run.segments]
    if all(prefixes) and len(run.segments) > 1:
        parents = {p.rsplit(".", 1)[0] for p in prefixes if "." in p}
        numbered = [p.rsplit(".", 1)[-1] for p in prefixes]
        if len(parents) == 1 and numbered == [str(i) for i in range(len(prefixes))]:
            return names.take(_ident(parents.pop(), run.block.name))
    if len(run.segments) == 1 and prefixes[0]:
        return names.take(_ident(prefixes[0], run.block.name))
    return names.take(run.block.name)


def _run_entry(run: _Run, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "block": run.block.name}
    if len(run.indexes) > 1:
        entry["repeat"] = len(run.indexes)
    args = [_arguments(run.block, k) for k in run.indexes]
    base = args[1] if len(args) > 1 else args[0]
    entry.update(base)
    overrides = {i: {p: v for p, v in a.items() if base.get(p) != v} for i, a in enumerate(args)}
    overrides = {i: o for i, o in overrides.items() if o}
    if overrides:
        entry["overrides"] = overrides
    return entry


class _Writer:
    """Top-level entries in order, with the spec-side reference of every value written so far."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names = Namespace()
        self.refs: dict[str, str] = {}           # graph node -> its name in the spec
        self.rename: dict[str, str] = {}         # graph node -> node name in the spec's graph
        self.nodes: list[dict[str, Any]] = []
        self.previous: Value | None = None

    def ref(self, value: Value) -> str:
        name = self.refs[value.node]
        return name if value.out == 0 else f"{name}:{value.out}"

    def inputs(self, value_inputs: list[Value], entry: dict[str, Any]) -> None:
        if len(value_inputs) == 1 and value_inputs[0] == self.previous:
            return
        texts = [self.ref(v) for v in value_inputs]
        entry["in"] = texts[0] if len(texts) == 1 else texts

    def node(self, node: Node) -> None:
        name = self.names.take(_ident(_hint(node), node.op))
        entry: dict[str, Any] = {"name": name, "op": node.op}
        self.inputs(node.inputs, entry)
        entry.update(_literal_attrs(node))
        ties = tied_params(node)
        if ties:  # (the owner comes first: written already, under its name in the spec's graph)
            # (a parameter node's own tensor, key '', is named by the node: `tie: {gamma: other}`, as a spec writes it)
            entry["tie"] = {param or name: f"{self.rename[owner]}.{owned}" if owned else self.rename[owner]
                            for param, (owner, owned) in ties.items()}
        self.nodes.append(entry)
        self.refs[node.name] = self.rename[node.name] = name
        self.previous = Value(node.name, 0)

    def run(self, run: _Run) -> None:
        name = _run_name(run, self.names)
        entry = _run_entry(run, name)
        head = {"name": name, "block": entry.pop("block")}
        self.inputs([run.segments[0].entry], head)
        head.update(entry)
        self.nodes.append(head)
        repeated = len(run.segments) > 1
        for r, (seg, k) in enumerate(zip(run.segments, run.indexes)):
            instance = f"{name}.{r}" if repeated else name
            template_of = {i: t for t, i in run.block.kind.instances[k][1].items()}
            for i, node in enumerate(seg.nodes):
                self.rename[node.name] = f"{instance}.{run.block.local[template_of[i]]}"
        last = run.segments[-1].nodes[-1].name
        self.refs[last] = name
        self.previous = Value(last, 0)


def to_spec(graph: Graph) -> tuple[dict[str, Any], dict[str, str]]:
    """The graph as spec data, and graph node name -> node name in the graph the spec builds."""
    writer = _Writer(graph)
    spec: dict[str, Any] = {"archc": 1, "name": _ident(graph.name, "model")}
    if graph.doc.strip():
        spec["doc"] = graph.doc.strip()
    inputs: dict[str, Any] = {}
    for name in graph.inputs:
        t = graph.node(name).type
        spec_name = writer.names.take(_ident(name, "x"))
        shape = [d if isinstance(d, int) else _ident(str(d), "N") for d in t.shape]
        inputs[spec_name] = shape if t.dtype == "float32" else {"shape": shape, "dtype": t.dtype}
        writer.refs[name] = spec_name
        if writer.previous is None:  # (a spec's first node reads its first input by default)
            writer.previous = Value(name, 0)
    spec["inputs"] = inputs
    if _trusts_sizes(graph):
        spec["trust_sizes"] = True
    segs = segments(graph)
    segs = units(segs) if segs else segs
    blocks: list[_Block] = []
    if segs:
        block_names = Namespace()
        # (a block holding a tie stays flat: a block's definition cannot tie one instance to another)
        blocks = [_make_block(bt, block_names) for bt in block_types(segs)
                  if len(bt.instances) >= 2 and len(bt.template.nodes) >= 2
                  and not any(TIE_META in n.meta for seg, _ in bt.instances for n in seg.nodes)]
        items: list[Segment | _Run] = _runs(segs, blocks)
    else:  # no single-tensor cut: flat
        items = [Segment(Value(""), [n]) for n in graph.nodes() if n.op != "input"]
    if blocks:
        for b in blocks:
            writer.names.reserve(b.name)
        spec["blocks"] = {b.name: _block_definition(b) for b in blocks}
    for item in items:
        if isinstance(item, _Run):
            writer.run(item)
        else:
            for node in item.nodes:
                writer.node(node)
    spec["nodes"] = writer.nodes
    out_names = Namespace()
    spec["outputs"] = {out_names.take(k if k.isidentifier() else "output"): writer.ref(v)
                       for k, v in graph.outputs.items()}
    return spec, writer.rename


def _trusts_sizes(graph: Graph) -> bool:
    """Whether a node of the graph reads sizes that agree only as its file trusts them (an FCN's
    ``(H//4)*4`` added to ``H``), which a spec must then say (``trust_sizes: true``): its shape inference
    fails where sizes must be equal at every size (:func:`archc.ir.dims.strict_sizes`)."""
    from archc.errors import ShapeError
    from archc.ir import dims

    with dims.strict_sizes():
        for node in graph.nodes():
            ins = graph.input_types(node)  # (sizes meet where two inputs or more do: a merge, a matmul)
            if len(ins) < 2 or node.op == "onnx_node" or all(type(d) is int for t in ins for d in t.shape):
                continue
            try:
                registry.lookup(node.op).infer(node, ins)
            except ShapeError:
                return True
    return False


def dump_spec(spec: dict[str, Any], source: str = "") -> str:
    """The spec as YAML text: one line per node, every scalar quoted by yaml.safe_dump where needed."""
    header = "# archc spec" + (f" of {os.path.basename(source)}" if source else "") + \
        ", written by `archc spec`; shapes are inferred\n"
    spec = dict(spec, nodes=[_OneLine(n) for n in spec["nodes"]])
    if "blocks" in spec:
        spec["blocks"] = {k: dict(b, nodes=[_OneLine(n) for n in b["nodes"]]) for k, b in spec["blocks"].items()}
    return header + yaml.dump(spec, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120)


class _OneLine(dict):
    """A node: written as one flow mapping (``{name: conv1, op: conv, ...}``)."""


class _Dumper(yaml.SafeDumper):
    """yaml's safe dumper (plain data, scalars quoted as needed), nodes on one line each."""


_Dumper.add_representer(_OneLine, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data,
                                                                       flow_style=True))
