"""What the PyTorch backend writes, before it is written: block instances and their classes.

The YAML frontend records, on every node, the block instances it lies in
(:class:`~archc.ir.graph.BlockInstance`). This module rebuilds that tree (:class:`Instance`:
the root, then one per block instance, each holding its own nodes and child instances in
forward order) and lowers each instance to a :class:`Body`: its module tree (local names,
so state_dict keys stay the IR's names) and its forward statements, with every integer of
the generated source taken out as a *hole*. Instances of one block whose bodies are equal
but for their holes share one class (:func:`class_groups`); :mod:`.torch_args` then decides
which holes are literals and which are constructor arguments.

Graphs without block instances (ONNX imports, hand-built IR) are one instance, the root.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from archc.errors import SpecError
from archc.ir.graph import BlockInstance, Graph, Node, Value
from archc.ir.names import Namespace
from archc.ir.types import TensorType
from archc.ops import registry
from archc.ops.base import torch_init_source
from archc.pysource import BUILTIN_NAMES, identifier, is_identifier, literal, shortened

__all__ = ["Instance", "Body", "Leaf", "Stmt", "VarNames", "instance_tree", "with_holes", "numbers",
           "Lowered", "place", "attribute", "HOLE", "OMITTED", "split_numbers",
           "spread_at", "fill_resets", "bare", "NAME_LIMIT", "ARGUMENT_LIMIT", "ATTRIBUTE_LIMIT", "RESERVED",
           "NUMBERED_NAME", "RESET_OWN", "counts_on"]

#: a child's name with a number in it: (before, the number, after: no digit). Children of one
#: constructor named so, counting up, are added in a loop (``f"encoder_layer_{i}"``)
NUMBERED_NAME = re.compile(r"^(.*?)(0|[1-9][0-9]*)(\D*)$", re.DOTALL)


def counts_on(before: str, name: str) -> bool:
    """Whether child name ``name`` is ``before`` counted on by one (``block2-1``, ``block2-2``): the
    same text around a number one greater."""
    a, b = NUMBERED_NAME.match(before), NUMBERED_NAME.match(name)
    return a is not None and b is not None and a.group(1, 3) == b.group(1, 3) and int(b.group(2)) == int(a.group(2)) + 1


#: Marks a hole in generated text: HOLE + index + HOLE (no digit of it is ever read as a number).
HOLE = "\x00"
#: A child constructor's argument filled with its default: the writer leaves ``name=OMITTED`` out
#: of the call (its class is shared with instances that pass another value, so the body has it)
OMITTED = "\x04"
_NO_READERS: frozenset[str] = frozenset()
_MODULE_MARK = "\x03"  # stands for a module's expression in text asked of an op once for many
#: the reset of a layer that resets itself (its module's own ``reset_parameters()``)
RESET_OWN = (f"{_MODULE_MARK}.reset_parameters()",)
_NUMBER_OR_STRING = re.compile(
    r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|(?<![\w.\x01])\d+(?:\.\d*)?(?:[eE][-+]?\d+)?(?![\w.])"
    r"|(?<![\w.\x01])(?:True|False)(?![\w.])")
_BOOLS = {"True": True, "False": False}
_NUMBER_OR_STRING_SPLIT = re.compile(f"({_NUMBER_OR_STRING.pattern})")  # (its matches kept by re.split)
# Never a variable's name (one gets ``_`` after it, as a keyword does): the names generated code uses
# itself, Python's builtins, which a local would hide (``pow = torch.pow(x, 2)``), and the names
# pycodestyle calls ambiguous (E741: ``l``, ``O``, ``I``, read as 1 and 0).
RESERVED = frozenset({"self", "torch", "nn", "F", "math", "l", "O", "I"}) | BUILTIN_NAMES

# How long the names in a generated file may be, so that every statement fits in 100 columns
# (pyformat.MAX_LINE) whatever the spec's names (up to 128 characters; a block's, any length).
# A name archc chooses that is longer is shortened (pysource.shortened: its first and last words);
# a module's name, a state_dict key, is never changed: a longer one is written as a string.
#: a forward local or argument (``pool_dilated_causal_branch = ...``), a class name
NAME_LIMIT = 48
#: a constructor's argument, let or stored value: it stands twice in a line (``hidden=hidden,`` in
#: a call nested three deep)
ARGUMENT_LIMIT = 32
#: a module or parameter written as an attribute (``self.name``): a longer one is registered and
#: read by its name as a string (``self.add_module("...", ...)``, ``getattr(self, "...")``)
ATTRIBUTE_LIMIT = 64


@dataclass
class Instance:
    """The root (``path == ""``) or one block instance: its own nodes and child instances."""

    path: str
    info: BlockInstance | None
    items: list["Node | Instance"] = field(default_factory=list)
    inputs: list[list[Value]] = field(default_factory=list)   # per formal: its value(s)
    formals: list[str] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    #: per output, its index in the block's ``outputs`` (``PATH:k``): the caller names it ``PATH_k``
    spec_indices: list[int] = field(default_factory=list)
    members: set[str] = field(default_factory=set)            # every node name inside, nested too
    children: list["Instance"] = field(default_factory=list)  # the child instances among items

    def local(self, name: str) -> str:
        return name[len(self.path) + 1:] if self.path else name


@dataclass
class Leaf:
    """One entry of a module tree: a module constructor, a bare parameter, a child instance,
    or a chain of modules written as ``nn.Sequential``."""

    kind: str                  # "module" | "param" | "child" | "sequential"
    source: str = ""           # constructor or initial tensor source, with holes
    child: Instance | None = None
    node: Node | None = None
    buffer: bool = False       # a "param" leaf that is a buffer (register_buffer: in the state_dict, not learned)


@dataclass
class Stmt:
    """One forward statement: ``targets = expr``, with comment lines above it."""

    targets: list[str]
    expr: str
    comments: list[str] = field(default_factory=list)
    node: str | None = None    # the local node it computes (None: a child instance's call)
    #: a loop over the container ``expr`` (each child reads the one before's output, and the same
    #: other inputs): (the loop's name for a child, the first child's input, the other inputs)
    loop: tuple[str, str, tuple[str, ...]] | None = None
    #: a list of features grown by the container ``expr``'s children in a loop, each reading the
    #: list so far (a dense block): (the loop's name for a child, the first feature)
    grow: tuple[str, str] | None = None


@dataclass
class Body:
    """An instance lowered with holes: equal skeletons mean one class serves both instances."""

    instance: Instance
    tree: dict[str, Any]                      # seg -> Leaf | dict (a container)
    stmts: list[Stmt] = field(default_factory=list)
    args: list[str] = field(default_factory=list)       # forward's parameters
    returns: list[str] = field(default_factory=list)
    holes: list[Any] = field(default_factory=list)
    #: hole index -> (local node name, that node's output index in the text's numbers, forward?)
    sites: dict[int, tuple[str, int, bool]] = field(default_factory=dict)
    #: hole index -> (child path, class argument, its default or NO_DEFAULT) for arguments of a
    #: child's constructor
    child_args: dict[int, tuple[str, str, Any]] = field(default_factory=dict)
    #: hole index -> (formal input, dim) of a child's argument that is that dim of the child's input
    child_dims: dict[int, tuple[int, int]] = field(default_factory=dict)
    containers: dict[tuple[str, ...], str] = field(default_factory=dict)  # path -> seq | list | dict
    #: weight tying inside this instance: (module, parameter, source) of each
    #: ``self.lm_head.weight = self.wte.weight`` (see :func:`~archc.lowering.torch_reset.tie_lines`)
    ties: list[tuple[str, str, str]] = field(default_factory=list)
    #: local dotted name -> Python expression reaching that module, parameter or container
    access: dict[str, str] = field(default_factory=dict)
    skeleton: str = ""
    #: the class is an ``nn.Sequential`` subclass: its modules run in series, its forward is Sequential's
    sequential: bool = False

    def hole(self, value: Any) -> str:
        self.holes.append(value)
        return f"{HOLE}{len(self.holes) - 1}{HOLE}"


# -- the instance tree ---------------------------------------------------------------------------

def instance_tree(graph: Graph, nodes: list[Node] | None = None) -> Instance:
    """The root instance with its nested block instances; flat (one instance) where the graph has
    no block instances or a block's nodes are not consecutive in forward order. ``nodes``: the
    graph's nodes in forward order, if the caller has them."""
    nodes = list(graph.nodes()) if nodes is None else nodes
    root = Instance("", None, formals=list(graph.inputs), inputs=[[Value(n)] for n in graph.inputs])
    by_path: dict[str, Instance] = {"": root}
    scope: tuple[BlockInstance, ...] | None = None
    chain: list[Instance] = [root]
    add_item, add_member = root.items.append, root.members.add  # the innermost open instance's
    for node in nodes:
        if node.op == "input":
            continue
        if node.scope is not scope:  # else the previous node's instance (the common case)
            scope, previous, chain = node.scope, chain, [root]
            for info in scope:
                inst = by_path.get(info.path)
                if inst is None:
                    inst = Instance(info.path, info, formals=_formal_names(info), inputs=_formal_values(info))
                    by_path[info.path] = inst
                    chain[-1].items.append(inst)
                    chain[-1].children.append(inst)
                elif not (len(chain) < len(previous) and previous[len(chain)] is inst) \
                        and all(open_ is not inst for open_ in previous):  # its nodes are not consecutive
                    return _flat(graph, nodes)  # (an open instance is met at its own depth: no scan)
                chain.append(inst)
            add_item, add_member = chain[-1].items.append, chain[-1].members.add
        add_item(node)
        add_member(node.name)
    _set_members(by_path)
    _set_outputs(root, graph, nodes, by_path)
    if any(not inst.outputs for path, inst in by_path.items() if path):
        # an instance that hands on nothing it made (its result is its input: dead nodes only)
        # has no forward to write as a class: write the graph flat
        return _flat(graph, nodes)
    return root


def _set_members(by_path: dict[str, Instance]) -> None:
    """Each instance's members: its own nodes (added as the tree was built), then its children's
    members (children were made after their parents, so walking backwards meets every child
    first); set unions rather than one insertion per node and enclosing instance."""
    for inst in reversed(by_path.values()):
        members = inst.members
        for child in inst.children:
            members |= child.members


def _formal_names(info: BlockInstance) -> list[str]:
    return [f[:-3] if f.endswith("...") else f for f in info.formals] or ["x"]


def _formal_values(info: BlockInstance) -> list[list[Value]]:
    formals, values = list(info.formals) or ["x"], list(info.inputs)
    result = [[v] for v in values[:len(formals) - 1]] if formals[-1].endswith("...") else [[v] for v in values]
    if formals[-1].endswith("..."):
        result.append(values[len(formals) - 1:])
    return result


def _flat(graph: Graph, nodes: list[Node]) -> Instance:
    root = Instance("", None, formals=list(graph.inputs), inputs=[[Value(n)] for n in graph.inputs])
    root.items = [n for n in nodes if n.op != "input"]
    root.members = {n.name for n in root.items}
    root.outputs = list(graph.outputs.values())
    return root


def _set_outputs(root: Instance, graph: Graph, nodes: list[Node], by_path: dict[str, Instance]) -> None:
    """Each instance's outputs: values made inside and read outside (or by the graph's outputs),
    found in one pass over the edges, in the order its block's ``outputs`` names them."""
    root.outputs = list(graph.outputs.values())
    scopes = {n.name: n.scope for n in nodes}
    order = {name: i for i, name in enumerate(scopes)}
    # keyed by (node, output): a Value's own hash is a Python-level call
    found: dict[str, dict[tuple[str, int], Value]] = {p: {} for p in by_path if p}
    # an instance's scope is one tuple its nodes share: a read inside it is skipped at once,
    # and each scope's paths are listed once
    paths_of: dict[int, list[str]] = {}
    for user in nodes:
        user_scope, user_paths = user.scope, None
        for value in user.inputs:
            scope = scopes[value.node]
            if scope is user_scope or not scope:
                continue
            if user_paths is None:
                user_paths = paths_of.get(id(user_scope))
                if user_paths is None:
                    user_paths = paths_of[id(user_scope)] = [i.path for i in user_scope]
            for info in scope:
                if info.path not in user_paths:
                    found[info.path].setdefault((value.node, value.out), value)
    for value in graph.outputs.values():  # read outside every instance
        for info in scopes[value.node]:
            found[info.path].setdefault((value.node, value.out), value)
    _add_passed_in(by_path, scopes, found)
    for path, values in found.items():
        _set_in_declared_order(by_path[path], list(values.values()), order)


def _add_passed_in(by_path: dict[str, Instance], scopes: dict[str, tuple],
                   found: dict[str, dict[tuple[str, int], Value]]) -> None:
    """Values handed to an instance that no node inside reads (an input only ``shape()`` reads:
    SegNet's decoder given the encoder map whose size it unpools to) are still read outside the
    instances that make them: the call passes them."""
    for path, inst in by_path.items():
        for values in inst.inputs if path else ():
            for value in values:
                for info in scopes.get(value.node, ()):
                    if info.path != path and not path.startswith(info.path + "."):
                        found[info.path].setdefault((value.node, value.out), value)


def _set_in_declared_order(inst: Instance, values: list[Value], order: dict[str, int]) -> None:
    """The instance's outputs ``values`` in the order its block's ``outputs`` name them (what the
    spec's ``PATH:0``, ``PATH:1`` read, so its class returns them so), then any other value read
    outside it in its producer's order; each output's spec index in ``inst.spec_indices``."""
    info = inst.info
    named = [info.output_index(v) if info is not None else None for v in values]
    last = len(info.outputs) if info is not None else 0
    ranked = sorted(zip(named, values),
                    key=lambda pair: (last if pair[0] is None else pair[0], order[pair[1].node], pair[1].out))
    inst.outputs = [value for _, value in ranked]
    inst.spec_indices = [k if index is None else index for k, (index, _) in enumerate(ranked)]


# -- one instance, lowered with holes -----------------------------------------------------------

@functools.lru_cache(maxsize=8192)
def split_numbers(source: str, floats: bool = True) -> tuple[tuple[str, ...], tuple[int | float, ...]]:
    """``source`` cut at its number literals (not inside strings, not parts of names): the text pieces
    around them and the numbers, parsed once per distinct text. Without ``floats``, a float stays
    text (a tensor's initial values, which its reset statement repeats: one class cannot serve two)."""
    parts = _NUMBER_OR_STRING_SPLIT.split(source)  # text, a match, text, ..., text
    found = parts[1::2]
    if all(map(str.isdigit, found)):  # every match an integer (most texts): cut in C
        return tuple(parts[0::2]), tuple(map(int, found))
    pieces, values, text = [], [], parts[0]
    for i in range(1, len(parts), 2):
        if parts[i][0] in "'\"" or not (floats or parts[i].isdigit()):  # a string (or a float, a bool kept)
            text += parts[i] + parts[i + 1]
        else:
            pieces.append(text)
            values.append(int(parts[i]) if parts[i].isdigit() else _BOOLS[parts[i]] if parts[i][0] in "TF"
                          else float(parts[i]))
            text = parts[i + 1]
    pieces.append(text)
    return tuple(pieces), tuple(values)


def with_holes(body: Body, source: str, node: str | None = None, forward: bool = False, floats: bool = True) -> str:
    """``source`` with each number literal taken out as a hole (strings stay; floats too, without
    ``floats``: see :func:`split_numbers`); ``node``: the local node whose text this is (recorded as
    the holes' site)."""
    pieces, values = split_numbers(source, floats)
    if not values:
        return source
    holes = body.holes
    first = len(holes)
    holes += values
    if node is not None:
        sites = body.sites
        for position in range(len(values)):
            sites[first + position] = (node, position, forward)
    out = [pieces[0]]
    for index, piece in enumerate(pieces[1:], first):  # (Body.hole's marker, inline)
        out += (HOLE, str(index), HOLE, piece)
    return "".join(out)


def spread_at(inputs: list[Value], values: tuple[Value, ...]) -> int | None:
    """Where ``values`` (a variadic formal's) occur in a row in ``inputs`` (the first place), or None."""
    n = len(values)
    for i, value in enumerate(inputs[:len(inputs) - n + 1]):
        if value == values[0] and tuple(inputs[i:i + n]) == values:
            return i
    return None


def numbers(source: str, floats: bool = True) -> list[int | float]:
    """The number literals of ``source`` in order (what :func:`with_holes` takes out)."""
    return list(split_numbers(source, floats)[1])


class VarNames:
    """Python names for values inside one class: the spec's local names, made unique."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self.namespace = Namespace(RESERVED.union(taken) if taken else RESERVED)  # (Namespace copies it)
        #: (node, output) -> its name (a pair, not a Value: a Value's hash is a Python-level call)
        self.names: dict[tuple[str, int], str] = {}

    def fresh(self, wanted: str) -> str:
        base = shortened(identifier(wanted), NAME_LIMIT)
        if base in RESERVED:
            base += "_"
        return self.namespace.take(base)

    def bind(self, value: tuple[str, int], wanted: str) -> str:
        """A fresh name for the value (node, output)."""
        name = self.fresh(wanted)
        self.names[value] = name
        return name


class Lowered:
    """The graph read once: nodes in forward order, by name, their readers, and each node's op,
    input types, module constructor, parameter source, forward and reset texts, asked of the op
    once per text key (:meth:`text_key`: nodes with equal attributes and input types share them)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.order: list[Node] = list(graph.nodes())
        self.nodes: dict[str, Node] = {n.name: n for n in self.order}
        self._readers: dict[tuple[str, int], set[str]] | None = None
        #: results of whole-graph questions asked of this reading (the live parameters), keyed by
        #: what they depend on that changes: how many nodes are written as modules
        self.memo: dict[tuple[str, int], Any] = {}
        self._cache: dict[str, tuple[Any, list[TensorType], str | None, str | None]] = {}
        #: text key (:meth:`text_key`) -> the op's texts, shared by the nodes with that key
        self._texts: dict[int, tuple[Any, list[TensorType], str | None, str | None]] = {}
        self._text_numbers: dict[tuple, int] = {}
        self._text_keys: dict[str, int] = {}
        #: (text key, argument texts, module text) -> the op's forward text
        self._forwards: dict[tuple, str] = {}
        self._tree_pieces: dict[int, tuple[Any, tuple[int, ...]]] = {}
        #: (text key, has a module) -> a node's texts as relowering compares them (torch_reuse)
        self.replays: dict[tuple[int, bool], tuple] = {}
        self._resets: dict[int, tuple[str, ...]] = {}
        self._node_resets: dict[str, tuple[str, ...]] = {}
        #: (text key, attribute) -> where its value shows in the node's texts (torch_args' probes)
        self.probed: dict[tuple[str, str], Any] = {}
        #: (text key, attribute, output, dim) -> whether the attribute sets that dim (torch_args)
        self.dim_probed: dict[tuple[int, str, int, int], bool] = {}
        self._module_forms: dict[int, bool] = {}
        #: functional nodes written as their op's module form (links of an nn.Sequential class)
        self.as_module: set[str] = set()
        #: module-level functions the forward code calls (name -> def source), in first use order
        self.functions: dict[str, str] = {}
        #: module classes that nodes written in module form construct (name -> class source)
        self.classes: dict[str, str] = {}
        #: names no variable or block class takes: the functions, and the classes ops may need
        self.reserved: set[str] = set()
        for op in dict.fromkeys(n.op for n in self.order):
            self.functions.update(registry.lookup(op).torch_functions)
            self.reserved.update(registry.lookup(op).torch_classes)
        self.reserved.update(self.functions)

    def type_of(self, value: Value) -> TensorType:
        return self.nodes[value.node].outputs[value.out]

    def readers(self, value: tuple[str, int]) -> set[str]:
        """The nodes that read the value (node, output) (the graph's edges are its nodes' inputs:
        all read in one pass on first asking, keyed by (node, output) so that no look-up hashes a Value)."""
        if self._readers is None:
            readers: dict[tuple[str, int], set[str]] = {}
            for node in self.order:
                name = node.name
                for read in node.inputs:
                    key = (read.node, read.out)
                    found = readers.get(key)
                    if found is None:  # (not setdefault: a set made per edge otherwise)
                        readers[key] = {name}
                    else:
                        found.add(name)
            self._readers = readers
        return self._readers.get(value, _NO_READERS)

    def has_module_form(self, node: Node) -> bool:
        """Whether the op writes the functional ``node`` in a module form too (asked once per text key)."""
        key = self.text_key(node)
        found = self._module_forms.get(key)
        if found is None:
            op, ins, _, _ = self(node)
            found = self._module_forms[key] = op.torch_module_form(node, ins) is not None
        return found

    def users(self, name: str) -> list[str]:
        """Distinct nodes that read an output of ``name``."""
        return sorted(self.graph.users(name))

    def reset_texts(self, node: Node) -> tuple[str, ...]:
        """The op's reset statements for ``node`` (:meth:`OpDef.torch_reset`) with a marker for
        its module (:func:`fill_resets` puts the module's expression there), asked of the op once
        per text key (:meth:`text_key`), and looked up once per node."""
        found = self._node_resets.get(node.name)
        if found is None:
            op, ins, ctor, tensor = self(node)
            if op.always_learned and ctor is not None and op.torch_reset_is_default(node):
                found = self._node_resets[node.name] = RESET_OWN  # the default's answer, sizes unread
                return found
            key = self.text_key(node)
            found = self._resets.get(key)
            if found is None:
                found = self._resets[key] = tuple(self._reset_text(node, op, ins, ctor, tensor))
            self._node_resets[node.name] = found
        return found

    @staticmethod
    def _reset_text(node: Node, op: Any, ins: list[TensorType], ctor: str | None, tensor: str | None) -> list[str]:
        """:meth:`OpDef.torch_reset`; its default answered from the texts already asked of the op
        (the default asks for them again)."""
        if not op.torch_reset_is_default(node):
            return op.torch_reset(node, ins, _MODULE_MARK)
        if tensor is not None:
            return [torch_init_source(op.params(node, ins)[""], _MODULE_MARK)]
        if ctor is not None and op.params(node, ins):
            return [f"{_MODULE_MARK}.reset_parameters()"]
        return []

    def text_key(self, node: Node) -> int:
        """A number for what an op's texts for ``node`` depend on: its op, attributes (and which
        of them the spec computes), input types and whether it is written in module form. Nodes
        with equal numbers get the same texts, asked of the op once (a number: the attributes and
        types are hashed once per node, not on every look-up)."""
        found = self._text_keys.get(node.name)
        if found is None:
            nodes, attrs = self.nodes, node.attrs
            # the attributes with their types: 1, 1.0 and True are equal but are written differently
            # (torch_reuse.Signatures.add keys an instance's attributes by the same rule)
            values = attrs.values()
            key = [node.op, tuple(attrs), tuple(values), tuple(map(type, values)), tuple(node.attr_exprs),
                   node.name in self.as_module]
            for v in node.inputs:  # each type as its fields: a TensorType's hash is a Python-level call
                read = nodes[v.node].outputs[v.out]
                key += (read.shape, read.dtype)
            try:
                found = self._text_numbers.setdefault(tuple(key), len(self._text_numbers))
            except TypeError:  # an unhashable attribute value (a list): the attributes by their repr
                key[1:4] = repr(attrs), None, None
                found = self._text_numbers.setdefault(tuple(key), len(self._text_numbers))
            self._text_keys[node.name] = found
        return found

    def __call__(self, node: Node) -> tuple[Any, list[TensorType], str | None, str | None]:
        """(op, input types, module constructor or None, parameter tensor source or None)."""
        found = self._cache.get(node.name)
        if found is None:
            key = self.text_key(node)
            found = self._texts.get(key)
            if found is None:
                op, ins = registry.lookup(node.op), [self.type_of(v) for v in node.inputs]
                tensor = op.torch_parameter(node, ins)
                ctor = self.module(op, node, ins) if tensor is None else None
                found = self._texts[key] = (op, ins, ctor, tensor)
            self._cache[node.name] = found
        return found

    def tree_piece(self, node: Node) -> tuple[Any, tuple[int, ...]]:
        """What ``node`` puts in its instance's module tree, cut at its integers (:func:`split_numbers`):
        (("module", pieces) | ("param", pieces, is a buffer) | None, the integers); once per text key."""
        key = self.text_key(node)
        found = self._tree_pieces.get(key)
        if found is None:
            op, ins, ctor, tensor = self(node)
            if ctor is not None:
                cut, values = split_numbers(ctor)
                found = (("module", cut), values)
            elif tensor is not None:
                own = op.params(node, ins).get("")
                cut, values = split_numbers(tensor, False)  # (its initial values: as in _tree)
                found = (("param", cut, own is not None and own.buffer), values)
            else:
                found = (None, ())
            self._tree_pieces[key] = found
        return found

    def write_as_module(self, node: Node) -> None:
        """Write the functional ``node`` as its op's module form from now on."""
        self.as_module.add(node.name)
        self._cache.pop(node.name, None)
        self._text_keys.pop(node.name, None)
        self._node_resets.pop(node.name, None)
        self.classes.update(registry.lookup(node.op).torch_classes)

    def module(self, op: Any, node: Node, ins: list[TensorType]) -> str | None:
        """The node's module constructor: the op's, or its module form where the node is written so."""
        if node.name in self.as_module:
            return op.torch_module_form(node, ins)
        ctor = op.torch_module(node, ins)
        if ctor is not None and op.torch_classes:  # a module class of the file's own (LayerNorm2d)
            self.classes.update(op.torch_classes)
        return ctor

    def forward_text(self, node: Node, args: tuple[str, ...], module: str | None) -> str:
        """:meth:`forward` of ``node`` with these argument and module texts, asked of the op once
        per text key (:meth:`text_key`)."""
        key = (self.text_key(node), args, module)
        found = self._forwards.get(key)
        if found is None:
            op, ins, _, _ = self(node)
            found = self._forwards[key] = self.forward(op, node, ins, list(args), module)
        return found

    def targets(self, node: Node, names: list[str]) -> list[str]:
        """What the forward statement of ``node`` assigns to, from its outputs' variable names: those,
        grouped as the op's expression nests its tuple (:meth:`~archc.ops.base.OpDef.torch_targets`)."""
        return names if len(names) == 1 else self(node)[0].torch_targets(node, names)

    def forward(self, op: Any, node: Node, ins: list[TensorType], args: list[str], module: str | None) -> str:
        """The op's forward text; a node written as its op's module form calls that module."""
        if node.name in self.as_module:
            return f"{module}({args[0]})"
        return op.torch_forward(node, ins, args, module)


def fill_resets(texts: tuple[str, ...], module: str) -> list[str]:
    """Reset statements from :meth:`Lowered.reset_texts`: the module's expression in place of the marker."""
    return [statement.replace(_MODULE_MARK, module) for statement in texts]


def place(tree: dict[str, Any], segments: list[str], leaf: Leaf, node_name: str, location) -> None:
    """Put ``leaf`` at ``segments`` in a module tree, refusing a name that is both a leaf and a container."""
    level = tree
    for depth, seg in enumerate(segments):
        if seg.startswith("__"):
            raise SpecError(f"name segment '{seg}' cannot be a module name (it starts with '__'); "
                            "rename the node or block", node=node_name, location=location)
        existing = level.get(seg)
        if depth == len(segments) - 1:
            if existing is not None:
                what = "parameter" if leaf.kind == "param" else "module"
                raise SpecError(f"'{node_name}' is both a {what} and a container of modules",
                                node=node_name, location=location)
            level[seg] = leaf
        else:
            if existing is not None and not isinstance(existing, dict):
                what = "parameter" if existing.kind == "param" else "module"
                raise SpecError(f"'{'.'.join(segments[:depth + 1])}' is both a {what} and a container of "
                                "modules", node=node_name, location=location)
            level = level.setdefault(seg, {})


def place_local(tree: dict[str, Any], local: str, leaf: Leaf, node_name: str, location) -> None:
    """:func:`place` for a dotted local name; a new plain key (most nodes) is set without the walk."""
    if "." in local or local in tree or local.startswith("__"):
        place(tree, local.split("."), leaf, node_name, location)
    else:
        tree[local] = leaf


def bare(seg: str) -> bool:
    """Whether the module or parameter name ``seg`` is written as an attribute (``self.seg``): an
    identifier of at most :data:`ATTRIBUTE_LIMIT` characters; else by its name as a string."""
    return len(seg) <= ATTRIBUTE_LIMIT and is_identifier(seg)


def attribute(owner: str, seg: str) -> str:
    """``owner.seg``, or ``getattr(owner, "seg")`` where seg is not :func:`bare`."""
    return f"{owner}.{seg}" if bare(seg) else f"getattr({owner}, {literal(seg)})"
