"""Which integers (and flags) of a block class are literals and which are constructor arguments.

All instances of a class have the same body but for their holes (the integers, floats and
``True``/``False`` of the generated source, and the arguments of its child blocks' constructor
calls); a flag is compared with its type (``True`` is not the parameter that is 1). A hole the spec
writes as an expression over the block's parameters and lets is that expression, even where
no instance differs, as a hand-written class would take it:

- a node attribute (``stride: stride``) whose value the hole shows (found by lowering the node
  once more with the attribute changed); for a node of a block instance written inside this
  class (an ``nn.Sequential`` child), its expression with each of that instance's parameters
  replaced by what this block passed for it;
- a child block's argument (``{block: cba, dil: dil}``): the expression passed, never a
  parameter that happens to have equal values (``dil=pad`` where every instance has pad == dil).

An expression is what :func:`archc.pysource.expression` writes as Python (arithmetic, ``int()``,
``sqrt``, ``a if c else b``) over the block's parameters, its lets and the model's live parameters;
a model parameter the file fixes reads as its value. An item of a list attribute written as an
expression (``shape: [0, inplanes, -1]``) is an attribute of its own, ``shape[1]`` (:func:`attr_value`).

Another hole equal in every instance stays a literal. One that differs becomes an expression,
found in this order:

1. the spec expression of the node attribute it equals in every instance, if that is
   an expression as above (``planes * expansion``) and the
   hole follows the attribute: lowered (or, for a width, inferred) once more with the attribute
   changed, the hole shows the new value. An attribute of equal value that does not set the hole
   (a conv's ``groups: groups`` of 8 beside its 8 channels) is a coincidence, not its source;
2. a dimension of one of the node's inputs that already has an expression (``in_channels``:
   the block input's channels; ``width``: what conv1 made);
3. for a child's argument the spec passed as what the class cannot compute (``out: internal``,
   a let of ``channels(x)``): an argument of its own named after that text, one per text;
4. the source of a hole resolved before with the same values in every instance (a width read on
   from the layer that made it), else a block parameter equal to it in every instance (``stride``);
5. a new argument named after what it is (``cat_channels``, or the node and position).

So a class reproduces every instance in the file exactly, by construction; values that no
instance changes are literals. ``forward`` reads what ``__init__`` took as attributes of the
names it took (``self.n_heads * self.head_dim``).
The Python names a class takes are the spec's where they fit: a name longer than
:data:`~archc.lowering.torch_plan.ARGUMENT_LIMIT` (or one that would hide what ``__init__`` reads: a
parameter named ``nn``) is written shortened (:func:`python_names`), in the class's signature,
its expressions and its callers' keyword arguments alike.
A child's call passes every argument its class takes, so that instances passing a default and
instances passing another value share a class; the caller leaves out those it fills with the
default (:func:`omit_defaults`).
The root class is one instance: it takes the spec's top-level parameters as keyword
arguments, writing the expression where a parameter reaches only node attributes and
nothing downstream depends on its value (``num_classes``), see :func:`live_params`; a block
class whose node reads one takes it as an argument (source ``("top", name)``), and every
class between it and the model hands it down by name (:class:`TopParam`). Other parameters
are fixed in the file and refused if changed.
"""
from __future__ import annotations

import ast
import functools
import math
import re
from dataclasses import dataclass, field
from itertools import compress, count, repeat
from operator import is_not, itemgetter, ne, or_
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping, NamedTuple

from archc.errors import ArchcError, ShapeError
from archc.ir import dims
from archc.ir.graph import Graph, Node, Value
from archc.ir.names import Namespace
from archc.ir.types import TensorType
from archc.ir.vocab import SHAPE_KEEPING
from archc.lowering.torch_plan import ARGUMENT_LIMIT, OMITTED, RESERVED, Body, Instance, Lowered, numbers
from archc.ops import registry
from archc.pysource import expression as _expression, frozen, identifier, is_identifier, literal, shortened

__all__ = ["Arg", "CallArg", "ClassArgs", "NO_DEFAULT", "TopParam", "at_model_level", "attr_value", "carried_by",
           "child_argument_at_model_level", "descendant", "expression", "live_params", "model_exprs",
           "hole_place", "names_read", "python_names", "resolve", "root_args", "sets_dim", "sized", "symbolic_infer",
           "symbolic_size", "unwritten", "with_values"]

#: an argument without a default: always written
NO_DEFAULT = object()
_SENTINEL = 1_000_003


@dataclass
class Arg:
    """One constructor argument of a generated class."""

    name: str
    default: Any = NO_DEFAULT
    #: where its value comes from per instance: ("param", name), ("hole", index), or ("top", name):
    #: a top-level parameter the model class takes at run time, handed down through each class
    source: tuple = ()
    #: the name the class's Python code writes, where it is not ``name`` (see :func:`python_names`)
    python: str = ""
    #: the type every instance passes, for an argument without a default (``int`` where not one type)
    kind: str = "int"
    #: (formal input, dim) where the argument is that dim of one of the class's inputs (``in_channels``):
    #: a caller computes it from what it passes there
    dim_of: tuple[int, int] | None = None

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT

    @property
    def written(self) -> str:
        """The argument's name in the generated code."""
        return self.python or self.name

    def signature(self) -> str:
        if self.default is None:  # (an argument some instances need not pass: never read there)
            return f"{self.written}: {self.kind} | None = None"
        kind = type(self.default).__name__ if not self.required else self.kind
        if kind not in ("int", "float", "bool", "str"):  # (a list default as a tuple: never shared mutable)
            return self.written + ("" if self.required else f"={literal(frozen(self.default))}")
        return f"{self.written}: {kind}" + ("" if self.required else f" = {literal(self.default)}")


@dataclass
class ClassArgs:
    """A class's resolved holes, constructor arguments and ``__init__`` preamble."""

    text: dict[int, str] = field(default_factory=dict)        # hole -> source
    args: list[Arg] = field(default_factory=list)
    lets: list[tuple[str, str]] = field(default_factory=list)
    stored: dict[str, str] = field(default_factory=dict)      # self attribute -> expression
    guards: list[tuple[str, Any]] = field(default_factory=list)  # root: fixed parameters
    #: root: a run of equal children (container path, run's place) -> its length as an expression of
    #: the model's parameters (``num_layers - 2``: :mod:`~archc.lowering.torch_counts`)
    counts: Mapping[tuple, str] = field(default_factory=dict)
    #: root: (parameter, condition on it) under which each counted run is as long as one checked
    checks: list[tuple[str, str]] = field(default_factory=list)
    #: (node, attribute) of every instance whose attribute this class writes as the spec's expression
    expressed: set[tuple[str, str]] = field(default_factory=set)
    #: (child instance, block parameter) of every child argument this class writes as the spec's expression
    passed: set[tuple[str, str]] = field(default_factory=set)

    def call(self, body: Body) -> list[CallArg]:
        """The keyword arguments that build ``body``'s instance, every one: the caller's class
        leaves out those it fills with their default (:data:`~archc.lowering.torch_plan.OMITTED`),
        so that instances passing the default and instances passing another value share a class."""
        result = []
        given = None
        for arg in self.args:
            kind, key = arg.source
            if kind == "top":  # always passed: the caller's value of the model's parameter
                result.append(CallArg(arg.name, TopParam(key, arg.default), keyword=arg.written))
                continue
            if kind != "hole" and given is None:
                given = dict(body.instance.info.args)
            result.append(CallArg(arg.name, body.holes[key] if kind == "hole" else given[key], arg.default,
                                  arg.written, arg.dim_of))
        return result


class CallArg(NamedTuple):
    """One keyword argument of a child class's constructor call: its value in this instance, and
    the default the caller may leave it out for (:data:`NO_DEFAULT`: always written). ``name`` is
    the argument as the spec names it (the block parameter), ``keyword`` as the call writes it."""

    name: str
    value: Any
    default: Any = NO_DEFAULT
    keyword: str = ""
    #: (formal input, dim) of the child where the argument is that dim of its input (:attr:`Arg.dim_of`)
    dim_of: tuple[int, int] | None = None


@dataclass(frozen=True)
class TopParam:
    """A top-level parameter's value handed to a child class (``Classifier(num_classes=...)``):
    the caller writes the parameter's name, not the value (see :func:`live_params`)."""

    name: str
    value: Any

    def __repr__(self) -> str:  # (the source a caller's hole holds where nothing names it)
        return literal(self.value)


def python_names(names: Iterable[str], reserved: Collection[str]) -> dict[str, str]:
    """The names one class's code writes for the spec's ``names`` (its arguments and lets) that it
    cannot write as they are: longer than :data:`ARGUMENT_LIMIT` (shortened: a name stands twice in a
    line, ``hidden=hidden,``), or ``reserved`` (what ``__init__`` reads: ``nn``, ``int``, the file's
    functions; a ``_`` after it), each made unique; name -> written name, only for those."""
    names = list(names)
    kept = [n for n in names if len(n) <= ARGUMENT_LIMIT and n not in reserved]
    if len(kept) == len(names):
        return {}
    space = Namespace({*kept, *reserved})
    renamed = {}
    for name in names:
        if name not in renamed and (len(name) > ARGUMENT_LIMIT or name in reserved):
            base = shortened(name, ARGUMENT_LIMIT)
            renamed[name] = space.take(base + "_" if base in reserved else base)
    return renamed


#: a string literal, or a name that is neither an attribute nor called (``math.sqrt``, ``int(``)
_READ_NAME = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|(?<![\w.])[A-Za-z_]\w*(?![\w.(])""")


def renamed_source(text: str, renamed: Mapping[str, str]) -> str:
    """``text`` (Python over a class's names) with each name read renamed (strings left alone)."""
    if not renamed:
        return text
    return _READ_NAME.sub(lambda m: renamed.get(m.group(), m.group()), text)


def rename_python(result: ClassArgs, args: Iterable[Arg], renamed: Mapping[str, str]) -> None:
    """Write a class's arguments, lets and expressions under the names :func:`python_names` gave."""
    if not renamed:
        return
    for arg in args:
        arg.python = renamed.get(arg.name, "")
    result.lets = [(renamed.get(name, name), renamed_source(source, renamed)) for name, source in result.lets]
    result.text = {i: renamed_source(text, renamed) for i, text in result.text.items()}
    result.stored = {attr: renamed_source(source, renamed) for attr, source in result.stored.items()}
    result.guards = [(renamed.get(name, name), value) for name, value in result.guards]
    result.counts = {key: renamed_source(text, renamed) for key, text in result.counts.items()}
    result.checks = [(renamed.get(name, name), renamed_source(text, renamed)) for name, text in result.checks]


@functools.lru_cache(maxsize=4096)
def _cached_expression(text: str, names: frozenset[str]) -> str | None:
    return _expression(text, names)


def expression(text: str, names: set[str] | frozenset[str]) -> str | None:
    """:func:`archc.pysource.expression`, parsed once per text and names."""
    return _cached_expression(text, frozenset(names))


@functools.lru_cache(maxsize=4096)
def names_read(source: str) -> frozenset[str]:
    """The names the expression ``source`` reads; none where it is no expression (a parameter's
    default that is text: ``n(ll``)."""
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return frozenset()
    return frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))


class _InstanceValues:
    """The values of a class's representative instance (its first body's), mapped to every instance
    of the class: shapes, attributes and block arguments, each read once for all instances."""

    def __init__(self, graph: Lowered, bodies: list[Body]) -> None:
        self.graph, self.bodies = graph, bodies
        self.rep = bodies[0].instance
        self._args = [dict(b.instance.info.args) if b.instance.info else {} for b in bodies]
        self._instances = [b.instance for b in bodies]
        self._paths = [inst.path for inst in self._instances]
        self._dims: dict[tuple, tuple | None] = {}
        self._value_shapes: dict[tuple, list[tuple]] = {}
        self._param_vectors: dict[str, tuple] = {}
        self._attr_vectors: dict[tuple[str, str], tuple] = {}
        #: (id(a node's scope), an instance's path) -> the block instances between that one and the node's
        self._between: dict[tuple, tuple] = {}
        #: node -> its attribute expressions every instance writes alike (see own_exprs)
        self._own_exprs: dict[str, list[tuple[str, str]]] = {}

    def path(self, local: str) -> str:
        """The full name of the representative instance's node or child ``local``."""
        return f"{self.rep.path}.{local}" if self.rep.path else local

    def node(self, local: str) -> Node | None:
        """The representative instance's node ``local`` (None for a child block or nothing)."""
        return self.graph.nodes.get(self.path(local)) if local else None

    def key(self, value: Value) -> tuple | None:
        if value.node in self.rep.members:
            return ("node", self.rep.local(value.node), value.out)
        for i, values in enumerate(self.rep.inputs):
            if values == [value]:
                return ("formal", i)
        return None

    def dims(self, key: tuple, d: int) -> tuple | None:
        """Dimension ``d`` of a value (by its key) in every instance; None where not an int."""
        found = self._dims.get((key, d), self)
        if found is self:
            found = self._dims[(key, d)] = self._read_dims(key, d)
        return found

    def _read_dims(self, key: tuple, d: int) -> tuple | None:
        try:  # the column of every instance's shape at once, in C (a shape without it: None)
            vector = tuple(map(itemgetter(d), self._shapes(key)))
        except IndexError:
            return None
        return vector if all(map(isinstance, vector, repeat(int))) else None

    def _shapes(self, key: tuple) -> list[tuple]:
        """The shape of a value (by its key) in every instance, read once for all its dimensions."""
        found = self._value_shapes.get(key)
        if found is None:
            nodes = self.graph.nodes  # the types read straight from the nodes (no Value made per body)
            if key[0] == "node":
                _, local, out = key
                found = [nodes[f"{path}.{local}" if path else local].outputs[out].shape for path in self._paths]
            else:
                firsts = [inst.inputs[key[1]][0] for inst in self._instances]
                found = [nodes[value.node].outputs[value.out].shape for value in firsts]
            self._value_shapes[key] = found
        return found

    def attr_vector(self, local: str, attr: str) -> tuple:
        found = self._attr_vectors.get((local, attr))
        if found is None:
            nodes = self.graph.nodes
            found = self._attr_vectors[(local, attr)] = tuple([  # (a list first: no generator frame)
                attr_value(nodes[f"{b.instance.path}.{local}" if b.instance.path else local].attrs, attr)
                for b in self.bodies])
        return found

    def own_exprs(self, node: Node) -> list[tuple[str, str]]:
        """A node's attribute expressions over this block's parameters and lets: as written where
        the node is written in this block; for a node of a block instance inside it, as written
        with each parameter of the instances between replaced by the expression their callers
        passed (a child's ``out_channels: out`` where this block wrote ``{block: c, out: width}``
        is ``width`` here). An attribute whose names cannot all be traced so is left out, and one
        whose expression another instance of the class writes otherwise (``mid`` where one instance
        passed it, its default ``out // 2`` where another did not)."""
        found = self._own_exprs.get(node.name)
        if found is None:
            mine = self._exprs_in(node, self.rep.path)
            if mine and len(self.bodies) > 1:
                local = self.rep.local(node.name)
                for body in self.bodies[1:]:
                    path = body.instance.path
                    other = self.graph.nodes.get(f"{path}.{local}" if path else local)
                    theirs = dict(self._exprs_in(other, path)) if other is not None else {}
                    mine = [(attr, text) for attr, text in mine if theirs.get(attr) == text]
            found = self._own_exprs[node.name] = mine
        return found

    def _exprs_in(self, node: Node, path: str) -> list[tuple[str, str]]:
        """:meth:`own_exprs` of ``node`` in the instance at ``path`` alone."""
        if not node.attr_exprs:
            return []
        scope = node.scope
        if (scope[-1].path if scope else "") == path:
            return list(node.attr_exprs.items())
        key = (id(scope), path)
        between = self._between.get(key)
        if between is None:
            between = self._between[key] = _instances_between(scope, path)
        if not between:
            return []
        return [(attr, found) for attr, source in node.attr_exprs.items()
                if (found := at_model_level(source, between)) is not None]

    def param_vector(self, name: str) -> tuple:
        found = self._param_vectors.get(name)
        if found is None:
            found = self._param_vectors[name] = tuple([args.get(name) for args in self._args])
        return found



class _Widths(_InstanceValues):
    """The widths a class computes: where a hole is a dim of a value of the class (its input's, or
    what a layer of it made), the expression or argument that gives it. A part of :class:`_Resolver`,
    whose naming (``fresh``, ``dim_expr``, ``used``, ``dim_exprs``) and attribute reading
    (``_attr_expressions``, ``_sets_dim``) it uses."""

    def _written_input_dim(self, body: Body, hole: int, value: Any) -> str | None:
        """For a hole every instance fills alike: the expression of the input width it equals, where
        the layer making that width writes it over the class's parameters (DenseNet's norm2 after
        conv1 of ``bn_size * growth`` channels). A class taking ``growth`` then computes every width
        from it: a literal 48 there would break ``DenseLayer(growth=32)``. Never a number that
        shows one of the node's own attributes (a concat's axis of 1 beside an input of 1 channel)."""
        local, position, forward = body.sites.get(hole, ("", 0, False))
        node = self.node(local)
        if node is None or type(value) is not int or any(
                (forward, position) in (_attr_positions(self.graph, node, attr) or ()) for attr in node.attrs):
            return None
        alike = (value,) * len(self.bodies)  # (the width must equal it in every instance, not the first only)
        for v in node.inputs:
            key, shape = self.key(v), self.graph.type_of(v).shape
            for d in dict.fromkeys((1, len(shape) - 1)) if key is not None and len(shape) >= 2 else ():
                if shape[d] == value and self.dims(key, d) == alike and (found := self._written_dim(key, d)):
                    return found
        return None

    def _written_dim(self, key: tuple, d: int) -> str | None:
        """The spec expression (over the class's parameters) of dim ``d`` of the value ``key``: the
        attribute of its node that sets it, or the argument that attribute's hole became (an MLP's
        hidden width, which the next layer's input reads), looked for back through ops that keep
        every dim."""
        while key[0] == "node":
            node = self.node(key[1])
            vector = self.dims(key, d)
            if node is None or vector is None:
                return None
            sets = self._sets_dim(node, key[2], d)
            for _, text in self._attr_expressions(node, key[1], vector, sets):
                if text is not None and names_read(text):
                    return text
            resolved = self._resolved_attr(node, key[1], vector, sets)
            if resolved is not None:
                return resolved
            if not node.inputs:
                return None
            if registry.lookup(node.op).role_of(node) not in SHAPE_KEEPING:
                return self._derived_dim(node, key, d)
            key = self.key(node.inputs[0])
            if key is None or self.dims(key, d) != vector:
                return None
        return None

    def _derived_dim(self, node: Node, key: tuple, d: int) -> str | None:
        """Dim ``d`` of what ``node`` makes, as its op infers it from dim ``d`` of each input written as
        the expression :meth:`_written_dim` finds there (a concat's channels, the sum of its inputs':
        ``ch * 2`` in a U-Net level); None where an input's has none or the op needs the number."""
        sizes: dict[str, tuple] = {}
        ins = []
        for j, value in enumerate(node.inputs):
            shape, input_key = list(self.graph.type_of(value).shape), self.key(value)
            if input_key is not None and -len(shape) <= d < len(shape) and type(shape[d]) is int:
                shape[d] = f"in{j}_dim"
                sizes[shape[d]] = input_key
            ins.append(TensorType(tuple(shape)))
        outs = symbolic_infer(node, ins)
        if outs is None:
            return None
        return symbolic_size(outs[key[2]].shape[d], sizes.keys(), lambda name: self._input_written_dim(sizes[name], d))

    def _input_written_dim(self, key: tuple, d: int) -> str | None:
        """:meth:`_written_dim`, once per value and dim (a dense block's concats read each other's)."""
        if (key, d) not in self.written_dims:
            self.written_dims[(key, d)] = self._written_dim(key, d)
        return self.written_dims[(key, d)]

    def _resolved_attr(self, node: Node, local: str, vector: tuple, sets: Callable[[str], bool]) -> str | None:
        """What a hole of this class resolved before was written as, where it is an attribute of
        ``node`` (local name ``local``) that takes the values ``vector`` and ``sets`` the dim looked for."""
        for attr, _ in self.own_exprs(node):
            if self.attr_vector(local, attr) == vector and sets(attr):
                for forward, position in _attr_positions(self.graph, node, attr) or ():
                    text = self.result.text.get(self._hole_at.get((local, position, forward)))
                    if text is not None and names_read(text):
                        return text
        return None

    @functools.cached_property
    def _hole_at(self) -> dict[tuple, int]:
        """Each hole site of the class's bodies (node, position, forward) -> its hole."""
        return {site: i for i, site in self.bodies[0].sites.items()}

    def _input_dim(self, node: Node, vector: tuple, hole: int) -> str | None:
        for v in node.inputs:
            key = self.key(v)
            if key is None:
                continue
            for d in range(len(self.graph.type_of(v).shape)):
                if self.dims(key, d) == vector:
                    found = self.dim_expr(key, d)
                    if found is None:
                        found = self._name_dim(key, d, hole)
                    return found
        return None

    def _name_dim(self, key: tuple, d: int, hole: int) -> str:
        given, key = key, self._kept_from(key, d)
        named = self.dim_exprs.get((key, d))
        if named is not None:  # (one input's width read at two places: one argument)
            self.dim_exprs[(given, d)] = named
            return named
        rank = len(self._shapes(key)[0])
        reader = self.node(self.bodies[0].sites.get(hole, ("",))[0])  # (the layer whose number it is)
        last = reader is not None and registry.lookup(reader.op).feature_axis == -1
        if key[0] == "formal":
            wanted = size_name(self.rep.formals[key[1]], d, rank, features_last=last)
        else:  # (a child block's output: after the child, not the node deep inside it that made it)
            path = self.path(key[1])
            child = next((c.path for c in self.rep.children if path in c.members), path)
            wanted = size_name(self.rep.local(child).replace('.', '_'), d, rank, formal=False, features_last=last)
        name = self.fresh(wanted, hole)
        self.dim_exprs[(key, d)] = self.dim_exprs[(given, d)] = name
        if key[0] == "formal":
            self.used[name].dim_of = (key[1], d)
        return name

    def _kept_from(self, key: tuple, d: int) -> tuple:
        """The value dim ``d`` of the value ``key`` passes on unchanged in every instance: back through
        the nodes whose first input has it alike and no attribute of which sets it (a pooling keeps
        the channels, a stack of Transformer blocks the features however many; a conv of as many
        channels as it reads makes its own), to the class's input."""
        while key[0] == "node":
            node = self.node(key[1])
            source = self.key(node.inputs[0]) if node is not None and node.inputs else None
            if source is None or self.dims(source, d) != self.dims(key, d):
                break
            sets = self._sets_dim(node, key[2], d)
            if any(sets(attr) for attr in node.attrs):
                break
            key = source
        return key

    def _child_width(self, body: Body, hole: int, value: Any) -> str | None:
        """For a child's argument every instance passes alike that is a dim of the child's input (its
        ``in_channels``): the expression of that dim here (a width the layer making it writes over the
        class's parameters, or the class's own input's: ``Gate(in_channels=planes)``, never ``Gate(8)``
        that ``Basic(planes=16)`` would break)."""
        dim_of = body.child_dims.get(hole)
        if dim_of is None or type(value) is not int:
            return None
        inst = descendant(self.rep, self.path(body.child_args[hole][0]))
        formal, d = dim_of
        values = inst.inputs[formal] if formal < len(inst.inputs) else []
        key = self.key(values[0]) if len(values) == 1 else None
        if key is None or self.dims(key, d) != (value,) * len(self.bodies):
            return None
        origin = self._kept_from(key, d)  # (through a pooling: the layer that made the width)
        found = self._written_dim(key, d) or (self._written_dim(origin, d) if origin != key else None)
        if found is None and origin[0] == "formal":
            found = self._name_dim(key, d, hole)  # (the class's own input's: it takes that width too)
        return found

    def _child_arg(self, child: str, arg: str, vector: tuple) -> str | None:
        inst = descendant(self.rep, self.path(child))
        for i, formal in enumerate(inst.formals):
            key = self.key(inst.inputs[i][0]) if i < len(inst.inputs) and len(inst.inputs[i]) == 1 else None
            if key is None:
                continue
            rank = len(self._shapes(key)[0])
            for d in range(1, rank):
                if arg in (size_name(formal, d, rank), size_name(formal, d, rank, features_last=True)) \
                        and self.dims(key, d) == vector:
                    return self.dim_expr(key, d)
        return None


class _Resolver(_Widths):
    """Resolves the holes of one class's bodies to literals, expressions and arguments (see the
    module's docstring); what it reads of the instances is :class:`_InstanceValues`'."""

    def __init__(self, graph: Lowered, bodies: list[Body], live: Mapping[str, Any] | None = None,
                 follows: Collection[tuple] = frozenset(), counts: Mapping[tuple, str] | None = None) -> None:
        super().__init__(graph, bodies)
        self.follows = follows
        self.counts = counts or {}
        info = self.rep.info
        self.params = [k for k, _ in info.args] if info else []
        self.defaults = dict(info.defaults) if info else {}
        #: live top-level parameters this block does not shadow: taken as arguments where it reads them
        let_names = {k for k, _ in info.lets} if info else set()
        self.top = {p: v for p, v in (live or {}).items() if p not in self.params and p not in let_names}
        #: model parameters the file fixes (refused if changed) that this block reads: their values
        self.fixed = {p: literal(v) for p, v in graph.graph.params.items()
                      if p not in self.params and p not in let_names and p not in (live or {})
                      and type(v) in (int, float, bool)}
        self.lets: dict[str, str] = {}
        for name, source in (info.lets if info else ()):
            text = self.python(source, set(self.params) | set(self.lets))
            if text is not None:
                self.lets[name] = text
        #: the names an attribute's or a child argument's expression may read in the class
        self.readable = {*self.params, *self.lets, *self.top}
        self.result = ClassArgs()
        self.used: dict[str, Arg] = {}
        #: values of a resolved hole -> its source, and the node whose hole it was
        self.by_vector: dict[tuple, tuple[str, str]] = {}
        #: spec text the class cannot compute -> the argument that stands for it
        self.by_source: dict[str, str] = {}
        self.dim_exprs: dict[tuple, str | None] = {}
        #: (value, dim) -> the expression :meth:`_written_dim` found for it, where a size derives from it
        self.written_dims: dict[tuple, str | None] = {}
        self.namespace = Namespace({*self.params, *self.lets, "self"})

    def python(self, source: str, names: set[str]) -> str | None:
        """The spec expression ``source`` as Python over ``names`` (:func:`expression`), a model
        parameter the file fixes written as its value (ECA's ``let: t: (log2(channel) + b) / gamma``
        is computed by the class, with the model's b and gamma); None where it reads anything else,
        or model parameters alone (a value of the file: a literal, ``2304`` rather than ``3 * 768``)."""
        text = expression(source, names | self.fixed.keys())
        if text is None or not names_read(text) & self.fixed.keys():
            return text
        if not names_read(text) & names:
            return None
        text = _substituted(text, tuple((n, self.fixed.get(n, n)) for n in sorted(names_read(text))))
        return _without_identities(text, self._int_params()) if text is not None else None

    def _int_params(self) -> frozenset[str]:
        """The block parameters every instance (and the default) gives an int."""
        return frozenset(p for p in self.params if all(
            type(a.get(p, self.defaults.get(p))) is int for a in self._args))

    # -- naming -----------------------------------------------------------------------------------
    def use(self, source: str) -> str:
        """Mark the names an expression reads as used (parameters become arguments, lets lines)."""
        for name in sorted(names_read(source)):
            if name in self.lets and name not in dict(self.result.lets):
                self.use(self.lets[name])
                self.result.lets.append((name, self.lets[name]))
            elif name in self.params and name not in self.used:
                default = self.defaults.get(name)
                self.used[name] = Arg(name, NO_DEFAULT if default is None else default, ("param", name),
                                      kind=_one_kind(self.param_vector(name)))
            elif name in self.top and name not in self.used:
                self.used[name] = Arg(name, self.top[name], ("top", name))
        return source

    def fresh(self, wanted: str, hole: int) -> str:
        name = self.namespace.take(identifier(wanted))
        self.used[name] = Arg(name, source=("hole", hole), kind=_one_kind([b.holes[hole] for b in self.bodies]))
        return name

    def _named(self, source: str, wanted: str, hole: int) -> str:
        """The argument for holes written as ``source`` (one per text: ``out: internal`` passed to
        two children is one ``internal``), named after it where it is a name."""
        found = self.by_source.get(source)
        if found is None:
            found = self.by_source[source] = self.fresh(source if is_identifier(source) else wanted, hole)
        return found

    def dim_expr(self, key: tuple, d: int) -> str | None:
        if (key, d) in self.dim_exprs:
            return self.dim_exprs[(key, d)]
        self.dim_exprs[(key, d)] = None  # no cycles
        vector = self.dims(key, d)
        found = None
        if vector is not None and len(set(vector)) > 1:
            if key[0] == "node":
                found = self._node_dim(key, d, vector)
            found = found or self._param_for(vector)
        self.dim_exprs[(key, d)] = found
        return found

    def _attr_expressions(self, node: Node, local: str, vector: tuple,
                          follows: Callable[[str], bool]) -> Iterator[tuple[str, str | None]]:
        """Each spec expression of ``node`` (local name ``local``) whose attribute takes the values
        ``vector`` in the class's instances and ``follows(attr)``: the value looked for changes with
        the attribute (an equal value alone is a coincidence: ``groups: groups`` of 8 does not set
        the conv's 8 channels), with its source over the class's parameters and lets (None where
        the class cannot compute it)."""
        names = set(self.params) | set(self.lets)
        for attr, source in self.own_exprs(node):
            if self.attr_vector(local, attr) == vector and follows(attr):
                yield source, self.python(source, names)

    def _sets_dim(self, node: Node, out: int, d: int) -> Callable[[str], bool]:
        """Whether an attribute of ``node`` sets dim ``d`` of its output ``out`` (see :func:`sets_dim`)."""
        return functools.partial(sets_dim, self.graph, node, out=out, d=d)

    def _node_dim(self, key: tuple, d: int, vector: tuple) -> str | None:
        node = self.node(key[1])
        if node is None:
            return None
        for _, text in self._attr_expressions(node, key[1], vector, self._sets_dim(node, key[2], d)):
            if text is not None:
                return text
        for v in node.inputs:
            k = self.key(v)
            if k is not None and self.dims(k, d) == vector:
                return self.dim_expr(k, d)
        return None

    def _param_for(self, vector: tuple, local: str = "") -> str | None:
        """The source of a hole no spec expression gives: that of a hole of this class resolved
        before with the same values (a width read on from a layer that wrote it), else a block
        parameter of the same values. Never another hole of the node ``local`` itself: two of one
        node's numbers that are equal in every instance (an upsample's H and W) are so by chance."""
        found = self.by_vector.get(_typed(vector))
        if found is not None and not (local and found[1] == local):
            return found[0]
        for p in self.params:
            if self.param_vector(p) == vector and _types(self.param_vector(p)) == _types(vector):
                return p
        return None

    # -- holes ------------------------------------------------------------------------------------
    def resolve(self) -> ClassArgs:
        rep_body = self.bodies[0]
        written = self._written(rep_body)
        varying = _varying(rep_body.holes, {id(b.holes): b.holes for b in self.bodies}.values())
        # holes every instance fills alike that move in other elaborations: resolved as the others
        # that differ, once the width they equal has no expression of its own (below)
        alike = self._following(rep_body) - varying
        calls, sites = rep_body.child_args, rep_body.sites
        for i, value in enumerate(rep_body.holes):
            # what the spec wrote (kernel_size: k; a child's dil: dil), even where no instance differs
            source = self._passed_text(*calls[i][:2]) if i in calls else written.get(sites.get(i))
            if source is not None:
                self.result.text[i] = self.use(source)
                if i in calls:
                    self.result.passed.update((_child_path(b, calls[i][0]), calls[i][1]) for b in self.bodies)
                continue
            if type(value) is TopParam:  # a model parameter handed down (a literal where shadowed)
                self.result.text[i] = self.use(value.name) if value.name in self.top else literal(value.value)
                continue
            if i not in varying:
                found = self._child_width(rep_body, i, value) if i in calls else \
                    self._written_input_dim(rep_body, i, value)
                if found or i not in alike:
                    self.result.text[i] = self.use(found) if found else literal(value)
                    continue
            vector = tuple([b.holes[i] for b in self.bodies])
            source = self._expr(rep_body, i, vector)
            # (a hole may hold a list: stride [2])
            self.by_vector.setdefault(_typed(vector), (source, sites.get(i, ("",))[0]))
            self.result.text[i] = self.use(source)
        # (runs whose lengths follow model parameters: the class takes them from the model, unless a
        # block parameter of the same name hides one)
        if all(names_read(text) <= self.top.keys() for text in self.counts.values()):
            self.result.counts = {key: self.use(text) for key, text in self.counts.items()}
        rename_python(self.result, self.used.values(), python_names(
            [*self.used, *(name for name, _ in self.result.lets)], RESERVED | self.graph.reserved))
        _store_forward_holes(self.result, rep_body)
        omit_defaults(rep_body, self.result)
        args = list(self.used.values())
        order = {p: i for i, p in enumerate(self.params)}
        args.sort(key=lambda a: (not a.required, a.source[0] != "hole", order.get(a.name, 0)))
        self.result.args = args
        return self.result

    def _following(self, body: Body) -> set[int]:
        """The holes of ``body`` that :attr:`follows` names for one of the class's instances."""
        if not self.follows:
            return set()
        paths = [b.instance.path for b in self.bodies]
        return {i for i in range(len(body.holes)) if any((path, *hole_place(body, i)) in self.follows for path in paths)}

    def _written(self, body: Body) -> dict[tuple[str, int, bool], str]:
        """Hole sites that are a node attribute the block writes as an expression of its
        parameters and lets (``stride: stride``), found by lowering the node once more with
        that attribute changed: the class takes the parameter even where every instance
        passes the same value, as a hand-written class would."""
        found: dict[tuple[str, int, bool], str] = {}
        for local in dict.fromkeys(site[0] for site in body.sites.values()):
            node = self.node(local)
            if node is None:
                continue
            for attr, source in self.own_exprs(node):
                text = self.python(source, self.readable)
                positions = (_attr_positions(self.graph, node, attr) or ()) if text else ()
                for forward, position in positions:
                    found.setdefault((local, position, forward), text)
                for site, read in _shape_reads(self.graph, node, attr, source, body):
                    found.setdefault((local, *site), read)
                if positions:
                    self.result.expressed.update(
                        (f"{b.instance.path}.{local}" if b.instance.path else local, attr) for b in self.bodies)
        return found

    def _passed(self, child: str, arg: str) -> str | None:
        """The spec's expression this block passes its child ``child`` (a local path) for the
        child class's argument ``arg`` (a parameter of the child's block), as written; None where
        the spec gave none or the call is written in another block (a child of an nn.Sequential
        child reads that block's parameters)."""
        return _argument_expression(self.rep, self.path(child), arg)

    def _passed_text(self, child: str, arg: str) -> str | None:
        """:meth:`_passed` as Python over the class's parameters and lets; None where it is no such
        expression (``channels(x)``)."""
        source = self._passed(child, arg)
        return self.python(source, self.readable) if source else None

    def _expr(self, body: Body, hole: int, vector: tuple) -> str:
        if hole in body.child_args:
            child, arg, _ = body.child_args[hole]
            found = self._child_arg(child, arg, vector)
            if found:
                return found
            source = self._passed(child, arg)
            if source is not None:  # written over what the class cannot compute (a let of channels(x)):
                return self._named(source, arg, hole)  # its own argument, never a parameter of equal values
            return self._param_for(vector) or self.fresh(arg, hole)
        local, position, forward = body.sites.get(hole, ("", 0, False))
        node = self.node(local)
        wanted, named = f"{local.replace('.', '_')}_{position}", False
        if node is not None:
            shows = functools.partial(_shows_at, self.graph, node, (forward, position))
            for source, text in self._attr_expressions(node, local, vector, shows):
                if text is not None:
                    return text
                if source.isidentifier():  # a let the class cannot compute (channels(x) // 4): its name
                    wanted, named = source, True
            found = self._input_dim(node, vector, hole)
            if found:
                return found
        found = self._param_for(vector, local)
        if found:
            return found
        if node is not None and not named:  # (after the attribute it fills, `out_channels`, not its place)
            others = [self.node(other) for other, _, _ in body.sites.values() if other != local]
            wanted = _attr_name(self.graph, node, local, (forward, position), others) or wanted
        return self.fresh(wanted, hole)


def _instances_between(scope: tuple, path: str) -> tuple:
    """The block instances of a node's ``scope`` inside the instance at ``path`` (none where the node
    does not lie in it)."""
    if not path:
        return scope
    depth = next((i + 1 for i, info in enumerate(scope) if info.path == path), None)
    return scope[depth:] if depth is not None else ()


def size_name(name: str, d: int, rank: int, formal: bool = True, features_last: bool = False) -> str:
    """The argument for dim ``d`` of a value of rank ``rank`` named ``name``, by what that size is:
    channels of an image or of a sequence a Conv1d reads, the tokens and features of a sequence
    (N, T, C) a layer over its last axis reads (``features_last``), as nn.Conv2d and nn.Linear call
    them; the class's input ``x`` gives ``in_channels``."""
    sequence = rank == 3
    what = {1: "tokens" if sequence and features_last else "channels", 2: "features" if sequence else None}.get(d)
    if what is None:
        return f"{name}_dim{d}"
    return f"in_{what}" if formal and name == "x" else f"{name}_{what}"


def symbolic_infer(node: Node, ins: list[TensorType]) -> list[TensorType] | None:
    """What ``node``'s op infers from ``ins``, some of whose sizes are symbols standing for sizes
    written over parameters; None where the op needs the numbers (a conv its channels)."""
    try:
        return registry.lookup(node.op).infer(node, ins)
    except (ArchcError, ShapeError, TypeError, ValueError, ZeroDivisionError):
        return None


def symbolic_size(dim: Any, symbols: Collection[str], text_of: Callable[[str], str | None]) -> str | None:
    """The size :func:`symbolic_infer` gave, each of the ``symbols`` it reads written as
    ``text_of`` gives it (:func:`sized`); None where it is a number, reads none of them or anything
    else, or a symbol has no text."""
    if type(dim) is int or not dims.is_expression(dim):
        return None
    read = dims.symbols(dim)
    if not read or not set(read) <= set(symbols):
        return None
    texts = {name: text_of(name) for name in read}
    return None if None in texts.values() else sized(dim, texts)


def sized(size: str, texts: Mapping[str, str]) -> str:
    """The size expression ``size`` with each symbol written as its Python text, in its simplest
    form where every text is integer arithmetic over names (``ch + ch`` is ``ch * 2``)."""
    tree = ast.parse(size, mode="eval")
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    tree = _Substitute({name: ast.parse(texts[name], mode="eval").body if name in texts else ast.Name(name, ast.Load())
                        for name in names}, set()).visit(tree)
    text = ast.unparse(tree)
    simplest = dims.canonical(text) if dims.is_expression(text) else text
    return ast.unparse(ast.parse(str(simplest), mode="eval"))


_SHAPE_ITEM = re.compile(r"shape\(\s*(\w+)\s*\)\s*\[\s*(-?\d+)\s*(:?)\s*\]")


def _shape_reads(lowered: Lowered, node: Node, attr: str, source: str, body: Body) -> list[tuple[tuple[int, bool], str]]:
    """The ``forward`` holes of attribute ``attr`` where the spec writes it as sizes of one of the
    block's inputs (``shape(ref)[2]``; ``shape(ref)[2:]``, item by item), each as ``forward`` reads
    that size (``ref.shape[2]``): the class serves any input size, as the spec does. ((position,
    True), text) for each; none where it reads anything else or a size shows elsewhere."""
    match = _SHAPE_ITEM.fullmatch(source.strip())
    formals = dict(zip(body.instance.formals, body.args)) if len(body.instance.formals) == len(body.args) else {}
    arg = formals.get(match[1]) if match else None
    if arg is None or not is_identifier(arg) or match[3] and int(match[2]) < 0:
        return []
    value = attr_value(node.attrs, attr)
    items = [(attr, int(match[2]))] if not match[3] else \
        [(f"{attr}[{k}]", int(match[2]) + k) for k in range(len(value))] if isinstance(value, tuple) else []
    found = []
    for key, dim in items:
        positions = _attr_positions(lowered, node, key) or ()
        if [forward for forward, _ in positions] != [True]:
            return []
        found.append(((positions[0][1], True), f"{arg}.shape[{dim}]"))
    return found


def _store_forward_holes(result: ClassArgs, body: Body) -> None:
    """``forward`` reads what ``__init__`` took as ``self.NAME``: each argument or let an
    expression reads is stored under its own name, and the expression is written over those
    (``self.n_heads * self.head_dim``), so that no attribute gets a name the spec never wrote."""
    tensors = set(body.args)
    for i, (_, _, forward) in body.sites.items():
        source = result.text[i]
        if not forward or source == literal(body.holes[i]) or names_read(source) & tensors:
            continue  # (a size read off an input tensor: forward's own)
        tree = ast.parse(source, mode="eval")
        functions = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)} | {  # (int, math.sqrt)
            id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        for read in ast.walk(tree):
            if isinstance(read, ast.Name) and id(read) not in functions:
                result.stored.setdefault(read.id, read.id)
        result.text[i] = ast.unparse(_OnSelf(functions).visit(tree))


class _OnSelf(ast.NodeTransformer):
    """An expression over ``__init__``'s names read in ``forward``: each name as ``self.name``."""

    def __init__(self, functions: set[int]) -> None:
        self.functions = functions

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if id(node) in self.functions:
            return node
        return ast.Attribute(ast.Name("self", ast.Load()), node.id, ast.Load())


@functools.lru_cache(maxsize=4096)
def _substituted(source: str, passed: tuple[tuple[str, str], ...]) -> str | None:
    """``source`` with each name replaced by its expression in ``passed``; None where it reads
    another name or is no expression."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
        exprs = {name: ast.parse(text.strip(), mode="eval").body for name, text in passed}
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    functions = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}  # (sqrt, int: kept)
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in functions]
    if any(n.id not in exprs for n in names):
        return None
    return ast.unparse(_Substitute(exprs, functions).visit(tree))


class _Substitute(ast.NodeTransformer):
    """Replaces each name (not a called function's) by its expression. (A class of the module: one
    defined per call would leave a reference cycle per call, which the paused collector keeps.)"""

    def __init__(self, exprs: dict[str, ast.expr], functions: set[int]) -> None:
        self.exprs, self.functions = exprs, functions

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return node if id(node) in self.functions else self.exprs[node.id]


def _without_identities(source: str, ints: frozenset[str]) -> str:
    """``source`` with what a fixed model parameter's value made an identity left out, inside
    ``int()``: ``int(out * width_mult)`` with the file's width_mult of 1.0 is ``out`` where every
    instance passes an int (``ints``), not ``int(out * 1.0)``. Elsewhere a ``* 1.0`` keeps the
    float it makes."""
    return ast.unparse(_Tidy(ints).visit(ast.parse(source, mode="eval")))


class _Tidy(ast.NodeTransformer):
    """:func:`_without_identities`' rewriting of ``int()`` calls."""

    def __init__(self, ints: frozenset[str]) -> None:
        self.ints = ints

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if not (isinstance(node.func, ast.Name) and node.func.id == "int" and len(node.args) == 1):
            return node
        inner = node.args[0]
        while isinstance(inner, ast.BinOp) and (isinstance(inner.op, (ast.Mult, ast.Div)) and _is_one(inner.right)
                                                or isinstance(inner.op, ast.Mult) and _is_one(inner.left)):
            inner = inner.left if _is_one(inner.right) else inner.right
        if isinstance(inner, ast.Name) and inner.id in self.ints:
            return inner
        node.args[0] = inner
        return node


def _is_one(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == 1


def _types(vector: tuple) -> tuple:
    """The types of a vector's values: a bool is not the int it equals (``True == 1``)."""
    return tuple(map(type, vector))


def _typed(vector: tuple) -> tuple:
    """A vector as a key that tells ``(True, False)`` from ``(1, 0)`` (its values may be lists)."""
    return frozen(vector), _types(vector)


def _child_path(body: Body, child: str) -> str:
    """The full path of ``body``'s child instance ``child`` (a local path)."""
    return f"{body.instance.path}.{child}" if body.instance.path else child


def _one_kind(values: Iterable[Any]) -> str:
    """The type name of ``values`` where they are all floats (or all bools), else ``int``: what a
    required argument's annotation says (holes and widths are ints)."""
    kinds = {type(v) for v in values}
    return kinds.pop().__name__ if kinds in ({float}, {bool}) else "int"


def at_model_level(source: str, scope: Iterable[Any], valued: bool = False) -> str | None:
    """A spec expression written in the innermost block instance of ``scope`` (outermost first) as
    the outermost instance's caller would write it: each step, innermost first, reads the caller's
    names (:func:`_passed_through`). None where a step reads anything but parameters passed as
    expressions; ``valued``: what this one instance computes instead (:func:`_valued_through`)."""
    step = _valued_through if valued else _passed_through
    for info in reversed(tuple(scope)):
        source = step(source, info)
        if source is None:
            return None
    return source


def model_exprs(node: Node) -> list[tuple[str, str]]:
    """What the node's attribute expressions compute in its instances, as the model would write it
    (see :func:`at_model_level`, ``valued``)."""
    return [(attr, found) for attr, source in (node.attr_exprs or {}).items()
            if (found := at_model_level(source, node.scope, valued=True)) is not None]


def child_argument_at_model_level(lowered: Lowered, root: Instance, path: str, arg: str) -> str | None:
    """What the expression the spec passes the block instance at ``path`` for its parameter ``arg``
    computes, as the model would write it; None where the spec passed a value."""
    inst = descendant(root, path)
    source = dict(inst.info.arg_exprs).get(arg) if inst.info is not None else None
    if source is None or not inst.members:
        return None
    scope = lowered.nodes[next(iter(inst.members))].scope
    depth = next((i for i, info in enumerate(scope) if info is inst.info or info == inst.info), None)
    return at_model_level(source, scope[:depth], valued=True) if depth is not None else None


def _valued_through(source: str, info: Any) -> str | None:
    """:func:`_passed_through` of what the expression computes in this one instance: a ``let`` reads
    as its expression, a parameter the caller gave a value (or left at its default) as that value."""
    lets = dict(info.lets)
    try:
        for _ in range(len(lets) + 1):  # (a let may read earlier lets)
            names = names_read(source)
            if not names & lets.keys():
                break
            expanded = _substituted(source, tuple((n, f"({lets[n]})" if n in lets else n) for n in names))
            if expanded is None:
                return None
            source = expanded
        values, passed = {**dict(info.defaults), **dict(info.args)}, dict(info.arg_exprs)
        return _substituted(source, tuple(
            (n, passed[n] if n in passed else literal(values[n]) if n in values else n) for n in names_read(source)))
    except (SyntaxError, ValueError, RecursionError):
        return None


def with_values(source: str, values: Mapping[str, Any]) -> str | None:
    """``source`` with each name of ``values`` replaced by its value's literal, the others kept."""
    try:
        passed = tuple((name, literal(values[name]) if name in values else name) for name in names_read(source))
    except (SyntaxError, ValueError, RecursionError):
        return None
    return _substituted(source, passed)


def _passed_through(source: str, info: Any) -> str | None:
    """A spec expression written in the block instance ``info`` as its caller's: each of the
    instance's parameters replaced by the expression the caller passed for it, a model-level name
    (a block sees the model's parameters) kept. None where it reads anything else (a let, a parameter
    given a value rather than an expression: another instance of the same class may have been given
    another)."""
    declared = {name for name, _ in info.defaults} | {name for name, _ in info.lets}
    try:
        model_level = tuple((name, name) for name in names_read(source) if name not in declared)
    except (SyntaxError, ValueError, RecursionError):
        return None
    return _substituted(source, (*info.arg_exprs, *model_level))


def omit_defaults(body: Body, args: ClassArgs) -> None:
    """Leave out of ``body``'s child constructor calls each argument the class fills with the
    child's default, as a hand-written call does (:data:`~archc.lowering.torch_plan.OMITTED`)."""
    for hole, (_, _, default) in body.child_args.items():
        if default is not NO_DEFAULT and args.text[hole] == literal(default):
            args.text[hole] = OMITTED


def _varying(first: list[Any], others: Any) -> set[int]:
    """The hole positions where one of ``others`` (hole lists of one class's bodies, each
    once: reused bodies share theirs) differs from ``first`` in value or type (``1``, ``1.0``
    and ``True`` differ): compared list against list in C, not hole by hole in Python."""
    found: set[int] = set()
    types = list(map(type, first))
    for holes in others:
        if holes is not first:
            found.update(compress(count(), map(or_, map(ne, first, holes), map(is_not, types, map(type, holes)))))
    return found


def descendant(inst: Instance, path: str) -> Instance:
    """The instance at ``path`` inside ``inst`` (a child, or a child of an ``nn.Sequential`` child)."""
    for item in inst.items:
        if isinstance(item, Instance):
            if item.path == path:
                return item
            if path.startswith(item.path + "."):
                return descendant(item, path)
    raise KeyError(path)


def resolve(graph: Lowered, bodies: list[Body], live: Mapping[str, Any] | None = None,
            follows: Collection[tuple] = frozenset(), counts: Mapping[tuple, str] | None = None) -> ClassArgs:
    """Literals and arguments for the class shared by ``bodies`` (instances of one block);
    ``graph``: the graph as read by :class:`~archc.lowering.torch_plan.Lowered`; ``live``: the
    top-level parameters the model takes at run time (:func:`live_params`) and their values;
    ``follows``: the holes (by :func:`hole_place`, with the instance path) that follow a live parameter
    in other elaborations of the spec (:mod:`~archc.lowering.torch_probes`): resolved as holes that
    differ between instances are, though every instance here has the same value; ``counts``: the
    lengths of the class's runs of children written over live parameters (:attr:`ClassArgs.counts`)."""
    return _Resolver(graph, bodies, live, follows, counts).resolve()


def hole_place(body: Body, hole: int) -> tuple:
    """What hole ``hole`` of ``body`` fills, the same in another elaboration of the spec whatever the
    other holes: a node's number (local node, position, forward?) or a child's argument (child, name)."""
    if hole in body.child_args:
        return ("argument", *body.child_args[hole][:2])
    return ("number", *body.sites.get(hole, ("", hole, False)))


# -- the root class: the spec's parameters --------------------------------------------------------

def live_params(graph: Graph, lowered: Lowered) -> dict[str, list[tuple[str, str]]]:
    """Top-level parameters a generated file can take at run time: parameter -> [(node, attr)]
    it reaches. A parameter is live when nothing but node attributes read it (inside a block,
    one the block does not shadow, with no block between that takes a parameter of its name)
    and no node downstream of those writes a different source for a different value."""
    # asked before and after planning and again by the writer: the answer changes only where
    # planning wrote another node as a module (its constructor then matters downstream)
    key = ("live_params", len(lowered.as_module))
    found = lowered.memo.get(key)
    if found is None:
        found = lowered.memo[key] = _live_params(graph, lowered)
    return found


def _scope_names(scope: Any) -> frozenset[str]:
    """The parameter and let names a block instance's scope defines (they shadow the model's)."""
    return frozenset(k for k, _ in scope.args) | frozenset(k for k, _ in scope.lets)


#: the memo's key for :func:`_parameter_uses`'s result
_PARAMETER_USES = ("parameter uses", 0)


def _live_params(graph: Graph, lowered: Lowered) -> dict[str, list[tuple[str, str]]]:
    # which parameters reach which attributes reads the graph alone: read once per reading of it
    # (the planning asks again after writing nodes as modules, which changes only what is downstream)
    found = lowered.memo.get(_PARAMETER_USES)
    if found is None:
        found = lowered.memo[_PARAMETER_USES] = _parameter_uses(graph, lowered)
    uses, blocked, _ = found
    return {p: sites for p, sites in uses.items()
            if sites and p not in blocked and not _code_follows(lowered, sites)}


def carried_by(lowered: Lowered, node: str, attr: str, param: str) -> frozenset:
    """The (instance path, block parameter) links that carry the model parameter ``param`` to the
    attribute ``attr`` of ``node`` (see :func:`_parameter_uses`; asked after :func:`live_params`)."""
    return lowered.memo[_PARAMETER_USES][2].get((node, attr, param), frozenset())


def _parameter_uses(graph: Graph, lowered: Lowered) -> tuple[dict[str, list[tuple[str, str]]], set[str],
                                                            dict[tuple[str, str, str], frozenset]]:
    """Each top-level parameter (not structural) -> the (node, attribute) sites that read it, directly
    or through the block arguments that carry it (:func:`_model_reads`); the parameters some block
    between the model and a node reading one by name takes by the same name; and each site's links
    ((site node, attribute, parameter) -> the (instance, block parameter) pairs that carried it)."""
    uses: dict[str, list[tuple[str, str]]] = {p: [] for p in graph.params if p not in graph.structural_params}
    blocked: set[str] = set()
    links: dict[tuple[str, str, str], frozenset] = {}
    params = frozenset(uses)
    levels: dict[int, tuple[dict[str, Any], dict[str, str], set[str]]] = {}  # (read once per instance)
    for node in lowered.order:
        if not params or not node.attr_exprs:
            continue
        scope = node.scope
        for attr, source in node.attr_exprs.items():
            for p, (carried, depth) in (_model_reads(source, scope, levels) or {}).items():
                if p not in params:
                    continue
                uses[p].append((node.name, attr))
                if carried:
                    links[(node.name, attr, p)] = carried
                # a block between the model and the class reading it by name that takes a parameter of
                # this name could not hand the model's value down
                if any(p in _scope_names(outer) for outer in scope[:max(depth, 0)]):
                    blocked.add(p)
    return uses, blocked, links


def _model_reads(source: str, scope: tuple, levels: dict[int, tuple[dict[str, Any], dict[str, str], set[str]]]
                 ) -> dict[str, tuple[frozenset, int]] | None:
    """The model-level names a node attribute's spec expression ``source`` reads, written in the
    innermost block instance of ``scope``: each block parameter replaced by the expression its caller
    passed for it (a value passed carries no name), level by level up to the model. Each name with the
    (instance path, parameter) links that carried it and the depth of the instance whose code reads
    it by name (-1: the model's). None where it reads a ``let`` (whose parameters are fixed) or no
    expression. ``levels``: each instance's declared parameters, passed expressions and lets, by id,
    filled as read."""
    try:
        pending = {name: frozenset() for name in names_read(source)}
    except (SyntaxError, ValueError, RecursionError):
        return None
    found: dict[str, tuple[frozenset, int]] = {}
    for depth in range(len(scope) - 1, -1, -1):
        info = scope[depth]
        level = levels.get(id(info))
        if level is None:
            level = levels[id(info)] = (dict(info.defaults), dict(info.arg_exprs), {name for name, _ in info.lets})
        declared, passed, lets = level
        carried: dict[str, frozenset] = {}
        todo, steps = list(pending.items()), 0
        while todo and steps < 64:  # (a default naming another parameter: `mid: out`)
            (name, links), steps = todo.pop(), steps + 1
            if name in lets:
                return None
            if name not in declared:
                found.setdefault(name, (links, depth))  # the model's, read by name in this block
            elif name in passed:
                for read in names_read(passed[name]):
                    carried[read] = carried.get(read, frozenset()) | links | {(info.path, name)}
            elif isinstance(declared[name], str):
                todo.extend((read, links) for read in names_read(declared[name]))
        pending = carried
    for name, links in pending.items():
        found.setdefault(name, (links, -1))
    return found


def _code_follows(lowered: Lowered, sites: list[tuple[str, str]]) -> bool:
    """Whether the code written for a node other than ``sites`` (a parameter's (node, attribute)
    sites) changes with the parameter's value: every site's attribute is given another value at
    once (:func:`_probe_attrs`), the output types that makes are carried forward through the
    graph, and each node reading a changed type is lowered again with it. A dropout rate or an
    epsilon changes no type, an input's image size only those that no later code reads (a conv's
    constructor does not name its input's height), a width the constructors that take it."""
    probes: dict[str, dict[str, Any]] = {}
    for name, attr in sites:
        attrs = _probe_attrs(lowered, lowered.nodes[name], probes.get(name), attr)
        if attrs is None:
            return True  # (no other value the op takes: taken to matter)
        probes[name] = attrs
    changed: dict[tuple[str, int], TensorType] = {}
    for node in lowered.order:
        attrs = probes.get(node.name)
        if attrs is None and not any((v.node, v.out) in changed for v in node.inputs):
            continue
        ins = lowered(node)[1]
        new_ins = [changed.get((v.node, v.out), t) for v, t in zip(node.inputs, ins)]
        outs = _reread(lowered, node, new_ins) if attrs is None else _reread_probe(lowered, node, attrs, ins, new_ins)
        if outs is None:
            return True
        for k, (new, old) in enumerate(zip(outs, node.outputs)):
            if new != old:
                changed[(node.name, k)] = new
    return False


def _reread(lowered: Lowered, node: Node, new_ins: list[TensorType]) -> list[TensorType] | None:
    """``node``'s output types for the input types ``new_ins``; None where its code changes with them
    or it cannot take them. Once per text key and types (a network's repeated layers see the same)."""
    key = ("reread", lowered.text_key(node), *((t.shape, t.dtype) for t in new_ins))
    if key not in lowered.memo:
        op, ins, ctor, tensor = lowered(node)
        try:
            same = new_ins == ins or _texts(lowered, op, node, new_ins) == (ctor, tensor, _forward(lowered, op, node, ins))
            lowered.memo[key] = op.infer(node, new_ins) if same else None
        except Exception:  # noqa: BLE001 - an op that cannot lower or infer the other types depends on them
            lowered.memo[key] = None
    return lowered.memo[key]


def _reread_probe(lowered: Lowered, node: Node, attrs: dict[str, Any], ins: list[TensorType],
                  new_ins: list[TensorType]) -> list[TensorType] | None:
    """:func:`_reread` of a site: its code must not change with other input types (its own attribute's
    change shows where the class writes its expression), and its output types under ``attrs``."""
    if new_ins != ins and _reread(lowered, node, new_ins) is None:
        return None
    try:
        return registry.lookup(node.op).infer(_with_attrs(node, attrs), new_ins)
    except Exception:  # noqa: BLE001 - an op that cannot infer the other value depends on it
        return None


def unwritten(lowered: Lowered, sites: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The ``sites`` (node, attribute) whose value the code shows nowhere: the node's texts are the
    same with another value (an input's size: the module takes any). Such a site needs no expression."""
    found = set()
    for name, attr in sites:
        node = lowered.nodes[name]
        attrs = _probe_attrs(lowered, node, None, attr)
        if attrs is None:
            continue
        op, ins, ctor, tensor = lowered(node)
        try:  # (the probe's texts asked of the op: the memo's keys are the graph's nodes')
            if _node_texts(lowered, op, _with_attrs(node, attrs), ins) == (ctor, tensor, _forward(lowered, op, node, ins)):
                found.add((name, attr))
        except Exception:  # noqa: BLE001 - an op refusing the value shows it
            continue
    return found


def _with_attrs(node: Node, attrs: Mapping[str, Any]) -> Node:
    """``node`` with the attributes ``attrs`` instead of its own: a probe, never added to a graph."""
    return Node(name=node.name, op=node.op, attrs=dict(attrs), inputs=node.inputs, outputs=node.outputs,
                attr_exprs=node.attr_exprs)


def _probe_attrs(lowered: Lowered, node: Node, attrs: dict[str, Any] | None, attr: str) -> dict[str, Any] | None:
    """``attrs`` (the node's own where None) with ``attr`` given the first other value the node's op
    infers types for (:func:`_other_values`); None where it takes none."""
    if attrs is None:  # (the node's own attributes: once per text key, a network's repeated layers alike)
        key = ("probe attrs", lowered.text_key(node), attr)
        if key not in lowered.memo:
            lowered.memo[key] = _probe_attrs(lowered, node, node.attrs, attr)
        return lowered.memo[key]
    ins = lowered(node)[1]
    for value in _other_values(attr_value(attrs, attr)):
        probed = with_attr_value(attrs, attr, value)
        try:
            registry.lookup(node.op).infer(_with_attrs(node, probed), ins)
        except Exception:  # noqa: BLE001 - a value the op refuses (a dropout rate of 1): the next
            continue
        return probed
    return None


def _other_values(value: Any) -> tuple:
    """Values other than ``value`` of its type to probe with, likeliest valid first (twice it: a width
    stays divisible by its groups, an image size by its patch; half a rate below 1 stays below 1)."""
    if type(value) is int:
        return (value * 2, value + 1) if value else (1, 2)
    if type(value) is float:
        return (value * 2, value / 2) if value else (0.5, 1e-3)
    return (not value,) if type(value) is bool else ()


def _texts(lowered: Lowered, op: Any, node: Node, ins: list[TensorType]) -> tuple:
    """The node's constructor, parameter source and forward text for input types ``ins``, once per
    text key and types (a network's repeated layers see the same other shapes)."""
    key = ("texts", lowered.text_key(node), *((t.shape, t.dtype) for t in ins))
    found = lowered.memo.get(key)
    if found is None:
        found = lowered.memo[key] = _node_texts(lowered, op, node, ins)
    return found


def _node_texts(lowered: Lowered, op: Any, node: Node, ins: list[TensorType]) -> tuple:
    """:func:`_texts` asked of the op (``node`` may be a probe, whose name is the graph node's)."""
    tensor = op.torch_parameter(node, ins)
    ctor = lowered.module(op, node, ins) if tensor is None else None
    return ctor, tensor, _forward(lowered, op, node, ins)


def _forward(lowered: Lowered, op: Any, node: Node, ins: list[TensorType]) -> str:
    return lowered.forward(op, node, ins, [f"a{i}" for i in range(len(ins))], "m")


def root_args(graph: Graph, lowered: Lowered, body: Body, live: dict[str, list[tuple[str, str]]],
              guard_locals: Collection[str] = (), probed: tuple[Collection[str], Mapping[int, str]] = ((), {}),
              counts: Mapping[tuple, str] | None = None, checks: Mapping[str, list[str]] | None = None
              ) -> ClassArgs:
    """The root class: every hole a literal, but a live parameter's attribute holes its expression.
    ``guard_locals``: the names the check of the fixed parameters assigns in ``__init__`` (no
    argument the code reads after it may take one). ``probed``: parameters found live by elaborating
    the spec again (:mod:`~archc.lowering.torch_probes`), and the expression of each hole they change;
    ``counts``: the lengths of runs of children written over parameters (their parameters are in
    ``probed``'s), and ``checks`` the conditions on those parameters the class checks."""
    also_live, probed_texts = probed
    result = ClassArgs(counts=dict(counts or {}),
                       checks=[(name, text) for name, texts in (checks or {}).items() for text in texts])
    for i, value in enumerate(body.holes):
        if type(value) is TopParam:  # a child class's argument: the model's parameter, by name
            result.text[i] = value.name if value.name in live or value.name in also_live else literal(value.value)
        else:
            result.text[i] = literal(value)
    expressions: dict[tuple[str, int, bool], str] = {}
    attrs: dict[tuple[str, int, bool], str] = {}
    for p, sites in live.items():
        for node_name, attr in sites:
            node = lowered.nodes[node_name]
            # (a node of a block instance written inline, nn.Sequential(...): its expression as the model writes it)
            source = at_model_level(node.attr_exprs[attr], node.scope)
            text = expression(source, set(live)) if source is not None else None
            positions = _attr_positions(lowered, node, attr) if text is not None else None
            for forward, pos in positions or ():
                expressions[(node_name, pos, forward)] = text
                attrs[(node_name, pos, forward)] = attr
    _pass_live_arguments(body, live, result)
    stored = Namespace(body.tree)  # (an attribute beside the modules)
    for i, site in body.sites.items():
        if site in expressions:
            result.expressed.add((site[0], attrs[site]))
    written = {i: expressions[site] for i, site in body.sites.items() if site in expressions}
    for i, text in {**written, **probed_texts}.items():
        site = body.sites.get(i)
        result.text[i] = text
        if site is not None and site[2]:  # in forward: the value is an attribute set in __init__
            attr = stored.take(shortened(identifier(f"{site[0]}_{site[1]}"), ARGUMENT_LIMIT))
            result.stored[attr] = text
            result.text[i] = f"self.{attr}"
    omit_defaults(body, result)
    for p, value in graph.params.items():
        result.args.append(Arg(p, value, ("param", p)))
        if p not in live and p not in also_live:
            result.guards.append((p, value))
    guarded = result.guards or result.checks
    reserved = RESERVED | lowered.reserved | (frozenset(guard_locals) if guarded else frozenset())
    rename_python(result, result.args, python_names(graph.params, reserved))
    return result


def _pass_live_arguments(body: Body, live: Mapping[str, Any], result: ClassArgs) -> None:
    """The model's child arguments the spec writes over live parameters alone (``{block: layer, p:
    dropout}``), written so: ``Layer(p=dropout)``, the child class computing from it."""
    for i, (child, arg, _) in body.child_args.items():
        source = _argument_expression(body.instance, child, arg)
        text = expression(source, set(live)) if source is not None else None
        if text is not None and names_read(text) & live.keys():
            result.text[i] = text
            result.passed.add((child, arg))  # (the model's child: its local path is its path)


def _argument_expression(parent: Instance, path: str, arg: str) -> str | None:
    """The spec's expression ``parent`` passes its child instance at ``path`` for the block parameter
    ``arg``, as written; None where the spec gave none or the call is written in another block (a
    child of an nn.Sequential child reads that block's parameters)."""
    inst = descendant(parent, path)
    if inst.info is None or not any(c is inst for c in parent.children):
        return None
    return dict(inst.info.arg_exprs).get(arg)


def attr_value(attrs: Mapping[str, Any], key: str) -> Any:
    """The value of an :attr:`~archc.ir.graph.Node.attr_exprs` key: an attribute (``stride``) or
    an item of a list attribute (``shape[1]``: each item written as an expression is its own)."""
    name, bracket, index = key.partition("[")
    value = attrs.get(name)
    if bracket and isinstance(value, (tuple, list)):
        i = int(index[:-1])
        return value[i] if i < len(value) else None
    return value


def with_attr_value(attrs: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``attrs`` with the attribute or list item ``key`` (see :func:`attr_value`) set to ``value``."""
    name, bracket, index = key.partition("[")
    if not bracket:
        return {**attrs, name: value}
    items = list(attrs[name])
    items[int(index[:-1])] = value
    return {**attrs, name: type(attrs[name])(items)}


def _attr_positions(lowered: Lowered, node: Node, attr: str) -> list[tuple[bool, int]] | None:
    """Which integers of a node's source (constructor, then forward) are the attribute's value,
    found by lowering it once more with the value replaced; None if the value shows otherwise.
    Probed once per node and attribute (classes and plans resolve the same nodes again)."""
    key = (lowered.text_key(node), attr)  # the probe reads what the node's texts read
    if key not in lowered.probed:
        lowered.probed[key] = _probe_positions(lowered, node, attr)
    return lowered.probed[key]


def _attr_name(lowered: Lowered, node: Node, local: str, site: tuple[bool, int],
               others: Iterable[Node | None]) -> str | None:
    """A name for the argument filling the integer at ``site`` of ``node``'s source: the attribute
    it is (``out_channels``), after the node's name where another node the class writes (``others``)
    has that attribute too (``qkv_out_features``); None where no one attribute shows there."""
    keys = [key for a, value in node.attrs.items()
            for key in ([a] if type(value) is int else [f"{a}[{i}]" for i in range(len(value))]
                        if isinstance(value, (tuple, list)) and all(type(v) is int for v in value) else [])]
    key = next((key for key in keys if _shows_at(lowered, node, site, key)), None)
    if key is None:
        return None
    shared = any(key.partition("[")[0] in n.attrs for n in others if n is not None)
    name = key.replace("[", "_").rstrip("]")  # (an item: kernel_size_0)
    return f"{local.replace('.', '_')}_{name}" if shared else name


def _shows_at(lowered: Lowered, node: Node, site: tuple[bool, int], attr: str) -> bool:
    """Whether the integer at ``site`` (in forward, position) of ``node``'s source is its attribute
    ``attr``'s value (see :func:`_attr_positions`)."""
    return site in (_attr_positions(lowered, node, attr) or ())


def sets_dim(lowered: Lowered, node: Node, attr: str, out: int, d: int) -> bool:
    """Whether dim ``d`` of ``node``'s output ``out`` is the value of its attribute ``attr``: the op
    infers that dim as the attribute once more with the attribute changed (conv's out_channels does,
    its groups does not). An op that refuses every changed value does not show it. Once per text key."""
    key = (lowered.text_key(node), attr, out, d)
    found = lowered.dim_probed.get(key)
    if found is None:
        found = lowered.dim_probed[key] = _probe_dim(lowered, node, attr, out, d)
    return found


def _probe_dim(lowered: Lowered, node: Node, attr: str, out: int, d: int) -> bool:
    value = attr_value(node.attrs, attr)
    shape = node.outputs[out].shape if out < len(node.outputs) else ()
    # (the dim is the attribute's value as it is, and once more changed: a conv's 32 rows are not its
    # out_channels because 16 channels doubled are 32)
    if type(value) is not int or not -len(shape) <= d < len(shape) or shape[d] != value:
        return False
    probed = _probe_attrs(lowered, node, None, attr)  # (a multiple first: it keeps a width divisible by groups)
    if probed is None:
        return False  # (the op refuses every other value: groups of 16 on 8 channels)
    outs = registry.lookup(node.op).infer(_with_attrs(node, probed), lowered(node)[1])
    if out >= len(outs):
        return False  # (an attribute that sets how many outputs there are: a split's)
    shape = outs[out].shape
    return -len(shape) <= d < len(shape) and shape[d] == attr_value(probed, attr)


def _probe_positions(lowered: Lowered, node: Node, attr: str) -> list[tuple[bool, int]] | None:
    value = attr_value(node.attrs, attr)
    if type(value) not in (int, float, bool) or not value >= 0 or value == math.inf:
        # (a negative value shows as '-' before its digits, and a hole holds the digits only: the
        # expression would lose its sign there, `end: "-dilation"` written as `-(-dilation)`)
        return None
    op, ins, ctor, tensor = lowered(node)
    args = [f"a{i}" for i in range(len(ins))]
    module = "m" if ctor is not None or tensor is not None else None
    try:
        before = (numbers(ctor or tensor or "", ctor is not None),
                  numbers(lowered.forward(op, node, ins, args, module)))
    except Exception:  # noqa: BLE001 - a node without code of its own (an input)
        return None
    # a value never in other text first (0 included); where the op refuses it (num_heads must divide
    # the width), a valid neighbour: a position that changes to it holds the attribute, and one that
    # changes to anything else (a head dim computed from it) is one the class cannot write as it
    for probed in _probe_values(value):
        probe = _with_attrs(node, with_attr_value(node.attrs, attr, probed))
        try:
            ctor2, tensor2 = lowered.module(op, probe, ins), op.torch_parameter(probe, ins)
            after = (numbers(ctor2 or tensor2 or "", ctor2 is not None),
                     numbers(lowered.forward(op, probe, ins, args, module)))
        except Exception:  # noqa: BLE001 - the op refuses the probe value: try the next
            continue
        return _changed_positions(before, after, value, probed)
    return None


def _probe_values(value: int | float | bool) -> tuple:
    """The values an attribute is probed with, in order: a flag's other value; for a number, one never
    in other text first, then its neighbours (:func:`_other_values`, half), each of its type and
    not below 1 where it is at least 1."""
    if type(value) is bool:
        return (not value,)
    return tuple(probed for probed in ((value + 1) * _SENTINEL, *_other_values(value), value // 2)
                 if probed != value and not (probed < 1 <= value) and type(probed) is type(value))


def _changed_positions(before: tuple[list[int], list[int]], after: tuple[list[int], list[int]], value: int,
                       probed: int) -> list[tuple[bool, int]] | None:
    """The (forward?, position) of each integer that is ``value`` in ``before`` and ``probed`` in
    ``after`` (a node's constructor and forward numbers); None where another changed, or none did."""
    positions = []
    for forward in (False, True):
        b, a = before[forward], after[forward]
        if len(b) != len(a):
            return None
        for i, (x, y) in enumerate(zip(b, a)):
            if x != y or type(x) is not type(y):
                # (type-exact: a flag's True is not the 1 beside it, nor False the 0)
                if x != value or y != probed or type(x) is not type(value) or type(y) is not type(probed):
                    return None
                positions.append((forward, i))
    return positions or None
