"""The generated PyTorch file: a header, one class per block definition, the model class.

Instances are lowered deepest first (:mod:`.torch_body`), grouped by block and body
skeleton (instances of one block that differ in structure, such as a bottleneck with and
without a projection shortcut, become separate classes; never one per instance), given
their constructor arguments (:mod:`.torch_args`) and written out, split like ``ruff
format`` would (:mod:`.pyformat`). Instances without nested blocks are lowered first, at
every depth, so that such a block used at several depths (U-Net's ``double_conv``) is one
class resolved over all its instances in the one plan; only a block with nested blocks that
depths still split is planned a second time.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping

from archc._version import __version__
from archc.errors import ArchcError
from archc.ir.vocab import SKIP_KINDS
from archc.ir.graph import Graph
from archc.ir.names import Namespace
from archc.lowering.pyformat import LINE_LENGTH, spaced_slices, split_statement
from archc.lowering.torch_args import (CallArg, ClassArgs, carried_by, child_argument_at_model_level, hole_place,
                                      live_params, names_read, resolve, root_args, unwritten)
from archc.lowering.torch_body import BodyWriter
from archc.lowering.torch_counts import MASKED, Counted, Written, probe_counts
from archc.lowering.torch_probes import Elaborate, Plan, Probed, probe_params
from archc.lowering.torch_plan import (HOLE, NAME_LIMIT, NUMBERED_NAME, OMITTED, Body, Instance, Leaf, Lowered, Stmt,
                                       attribute, bare, counts_on, instance_tree)
from archc.lowering.torch_dense import fold_dense
from archc.lowering.torch_folds import Added, renamed
from archc.lowering.torch_recursion import fold_recursion, model_calls, recursion_names
from archc.lowering.torch_runs import fold_runs
from archc.lowering.torch_stages import fold_stages
from archc.lowering.torch_reuse import Signatures, relower, reuse
from archc.lowering.torch_reset import block_instances_method, reset_key, reset_method, reset_statements, tie_lines
from archc.pysource import UnsafeValue, comment, frozen, literal, numbered_name, one_line, shortened

__all__ = ["Provenance", "write_source", "class_name_for"]

_I = "    "
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_LITERAL = re.compile(r"-?\d+")  # a hole filled by its number
# ``, name=OMITTED`` after another argument, else ``name=OMITTED, `` before one (or alone)
_OMITTED_ARG = re.compile(f", \\w+={OMITTED}|\\w+={OMITTED}(?:, )?")


@dataclass
class Provenance:
    """What the header says produced the file."""

    spec: str | None = None
    overrides: Mapping[str, Any] | None = None
    seed: int | None = None


def class_name_for(name: str) -> str:
    """``resnet18`` -> ``Resnet18``, ``my-net_v2`` -> ``MyNetV2`` (a valid class name), shortened
    to :data:`~archc.lowering.torch_plan.NAME_LIMIT` characters where longer."""
    parts = [p for p in _NOT_ALNUM.split(name) if p]
    result = "".join(p[0].upper() + p[1:] for p in parts) or "Model"
    return shortened("Model" + result if result[0].isdigit() else result, NAME_LIMIT)


@dataclass
class _Class:
    name: str
    block: str | None
    bodies: list[Body]
    args: ClassArgs
    #: attribute -> (condition, constructor if it holds, constructor if not): a recursive class's
    #: inner instance (:mod:`~archc.lowering.torch_recursion`)
    choices: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    #: children added by names it computes, after its attributes (:mod:`~archc.lowering.torch_dense`):
    #: an ``nn.ModuleDict`` class where it has no ``forward`` of ``nn.Sequential``'s
    added: tuple[Added, ...] = ()
    #: the instances its comment names, in this order, where not its bodies' (the first body is the
    #: one the class is written from: :mod:`~archc.lowering.torch_runs` puts one with every run there)
    shown: tuple[str, ...] = ()


def _depths(root: Instance) -> list[list[Instance]]:
    levels: list[list[Instance]] = []
    todo = [(root, 0)]
    while todo:
        inst, depth = todo.pop()
        while len(levels) <= depth:
            levels.append([])
        levels[depth].append(inst)
        todo.extend([(c, depth + 1) for c in reversed(inst.children)])
    return levels


def _tree_text(level: dict[str, Any]) -> str:
    return "{" + ",".join(f"{k!r}:" + (_tree_text(v) if isinstance(v, dict) else f"{v.kind}:{v.source}")
                          for k, v in level.items()) + "}"


#: in a body's skeleton, what its resets require of its class follows this (:func:`reset_key`)
_RESETS = "\x0e"


def _folding_skeleton(body: Body) -> str:
    """What a fold compares of a class's code (:func:`_skeleton`), with what its resets require: the
    classes of a recursion whose layers reset otherwise stay apart."""
    return f"{_skeleton(body)}{_RESETS}{body.skeleton.partition(_RESETS)[2]}"


def _skeleton(body: Body) -> str:
    stmts = ";".join(f"{','.join(s.targets)}={s.expr}" + (f"@{s.loop}" if s.loop else "") for s in body.stmts)
    skeleton = f"{body.args}|{_tree_text(body.tree)}|{sorted(body.containers.items())}|{stmts}|{body.returns}|{body.ties}"
    return skeleton + "|sequential" if body.sequential else skeleton


class _Planner:
    """Lowers every instance, deepest first, and groups them into classes."""

    def __init__(self, graph: Graph, labels: Mapping[str, str], root_name: str,
                 premerged: Mapping[tuple[str, str], list[Body]] | None = None,
                 earlier: _Planner | None = None, live: Mapping[str, Any] | None = None,
                 follows: Collection[tuple] = frozenset(), lowered: Lowered | None = None,
                 counts: Mapping[str, Mapping[tuple, str]] | None = None) -> None:
        self.graph = graph
        #: instance path -> the lengths of its runs of children written over live parameters (a class
        #: of that instance alone writes them: :mod:`~archc.lowering.torch_counts`)
        self.counts = counts if counts is not None else earlier.counts if earlier is not None else {}
        #: holes that follow a live parameter in other elaborations (see :func:`resolve`)
        self.follows = follows
        #: (block, skeleton) -> the bodies of every instance with it, at any depth: one class
        self.premerged = dict(premerged or {})
        #: the earlier plan: its bodies serve where an instance's children are called alike
        self.earlier = earlier
        self.by_key: dict[tuple[str, str], _Class] = {}
        self.classes: list[_Class] = []
        self.class_of: dict[int, _Class] = {}
        self.body_of: dict[int, Body] = {}
        #: the bodies of a class (by identity) -> its resolved arguments
        self.resolved: dict[tuple[int, ...], ClassArgs] = {}
        # (the class and body maps, not the planner: a bound method would make a reference cycle)
        self.writer = BodyWriter(graph, labels, functools.partial(_call_of, self.class_of, self.body_of),
                                 earlier.writer if earlier is not None else None, lowered)
        #: instance keys read the graph alone: an earlier plan's serve this one
        self.keys = earlier.keys if earlier is not None else Signatures(self.writer)
        # class names: Bottleneck, Bottleneck2, ... (the number counts the classes of that name)
        self.class_names = Namespace({root_name, "nn", "torch", "F", "Module", *self.writer.lowered.reserved},
                                     suffix=lambda base, i: f"{base}{i + 1}")
        self.root_name = root_name
        #: the top-level parameters the model takes at run time, and their values: block classes
        #: that read one take it as an argument, handed down from the model
        self.live = dict(live) if live is not None else earlier.live if earlier is not None else {
            p: graph.params[p] for p in live_params(graph, self.writer.lowered)}

    def _call(self, child: Instance) -> tuple[str, list[CallArg]]:
        return _call_of(self.class_of, self.body_of, child)

    def plan(self, root: Instance) -> Body:
        """Lower every instance and group them into classes; the root's body.

        Instances without child instances come first, at every depth: their bodies depend on
        no class, so a block of them used at several depths is known whole before any class is
        named, and where resolving it depth by depth would give several classes it gets one,
        resolved over all its instances (one plan, not a second). Then depth by depth, deepest
        first: an instance's children's classes are named before it is lowered."""
        levels = list(reversed(_depths(root)[1:]))
        memo = _Memo()
        leaf_groups: dict[tuple[str, str], list[list[Body]]] = {}
        for level in levels:
            groups: dict[tuple[str, str], list[Body]] = {}
            for inst in level:
                if _is_leaf(inst) and (body := self._body(inst, memo)) is not None:
                    groups.setdefault((inst.info.block, body.skeleton), []).append(body)
            for key, bodies in groups.items():
                leaf_groups.setdefault(key, []).append(bodies)
        self._premerge_leaves(leaf_groups)
        for level in levels:
            groups = {}
            for inst in level:
                body = self.body_of.get(id(inst)) if _is_leaf(inst) else self._body(inst, memo)
                if body is not None:
                    groups.setdefault((inst.info.block, body.skeleton), []).append(body)
            self._name_groups(groups)
        return self.writer.lower(root)

    def _body(self, inst: Instance, memo: _Memo) -> Body | None:
        """``inst`` lowered (reused or re-lowered from an instance lowered alike where it can
        be); None for an instance written inline as ``nn.Sequential(...)``."""
        shape, signature = self.keys.of.get(id(inst)) or self.keys.add(inst)
        if self.writer.as_sequential(inst, signature) is not None:
            return None
        known = memo.lowered.get(signature)
        if known is not None:
            body = reuse(self.writer, known, inst)
        elif (body := self._as_earlier(inst)) is not None:
            memo.lowered[signature] = body
        else:
            template = memo.first.get(shape)
            body = relower(self.writer, template, inst, memo.texts) if template is not None else None
            if body is None:
                body = self.writer.lower(inst)
                body.skeleton = _skeleton(body)
                memo.first.setdefault(shape, body)
            else:  # (its numbers are its own, and so may be its resets)
                body.skeleton = body.skeleton.partition(_RESETS)[0]
            memo.lowered[signature] = body
        if _RESETS not in body.skeleton:  # (a body reused whole has its original's)
            # instances whose layers reset otherwise cannot share a class: a buffer's reset writing its size
            body.skeleton += _RESETS + reset_key(body, self.writer.lowered, self.writer.as_sequential)
        self.body_of[id(inst)] = body
        return body

    def _premerge_leaves(self, leaf_groups: dict[tuple[str, str], list[list[Body]]]) -> None:
        """Premerge each (block, skeleton) of instances without children met at several depths:
        one class, resolved over all its instances (where its instances at each depth resolve
        alike, that is the class each depth would give; where not, one class rather than one
        per depth)."""
        for key, groups in leaf_groups.items():
            if key not in self.premerged and len(groups) > 1:
                self.premerged[key] = [b for bodies in groups for b in bodies]

    def _as_earlier(self, inst: Instance) -> Body | None:
        """The earlier plan's body of ``inst`` if its children are built by the same calls
        in both plans (lowering reads nothing else that the plans can differ in)."""
        body = self.earlier.body_of.get(id(inst)) if self.earlier is not None else None
        if body is None:
            return None
        for child in self._called(inst):
            if self._call(child) != self.earlier._call(child):
                return None
        return body

    def _called(self, inst: Instance) -> list[Instance]:
        """The child instances ``inst`` constructs by their classes (through ``nn.Sequential``
        children, which have none)."""
        found = []
        for item in inst.items:
            if isinstance(item, Instance):
                found.extend(self._called(item) if self.writer.as_sequential(item) is not None else [item])
        return found

    def _resolve(self, key: tuple[str, str], bodies: list[Body]) -> ClassArgs:
        """:func:`resolve` for the class of ``bodies``, or the earlier plan's for the same bodies."""
        if key in self.premerged:
            bodies = self.premerged[key]
            return resolve(self.writer.lowered, bodies, self.live, self.follows, self._counts(bodies))
        ids = tuple(map(id, bodies))
        found = self.resolved.get(ids)
        if found is None and self.earlier is not None:
            found = self.earlier.resolved.get(ids)
        if found is None:
            found = resolve(self.writer.lowered, bodies, self.live, self.follows, self._counts(bodies))
        self.resolved[ids] = found
        return found

    def _counts(self, bodies: list[Body]) -> Mapping[tuple, str] | None:
        return self.counts.get(bodies[0].instance.path) if len(bodies) == 1 else None

    def _name_groups(self, groups: dict[tuple[str, str], list[Body]]) -> None:
        by_block: dict[str, list[list[Body]]] = {}
        for (block, _), bodies in groups.items():
            by_block.setdefault(block, []).append(bodies)
        for block, variants in by_block.items():
            base = class_name_for(block)
            if base == self.root_name:  # (a block named as the model: Hourglass's hourglass, not Hourglass2)
                base = shortened(f"{base}Block", NAME_LIMIT)
            common: set[str] = set()  # the nodes every variant has (one variant, the usual case: not named)
            if len(variants) > 1:
                # the plainest is the base (a node left uncomputed, its output unread, still counts:
                # WaveNet's last layer is no plainer than the others)
                variants.sort(key=lambda v: (len(_locals(v[0])) + len(self.writer.unread(v[0].instance)), -len(v)))
                common = set.intersection(*(set(_locals(v[0])) for v in variants))
            for i, bodies in enumerate(variants):
                key = (block, bodies[0].skeleton)
                if key in self.by_key:  # deeper instances of this key made the class: join it
                    self._join(self.by_key[key], bodies)
                    continue
                args = self._resolve(key, bodies)
                same = next((c for c in self.classes if c.block == block
                             and c.bodies[0].skeleton == bodies[0].skeleton and c.args == args), None)
                if same is not None:  # the class written for instances nested deeper: the same code
                    self._join(same, bodies)
                    continue
                # named after the nodes only it has (BottleneckDownsample), unless those are
                # numbered repetitions (denselayer10): then a number (DenseBlock2)
                wanted = base if i == 0 else \
                    base + "".join(class_name_for(e) for e in _extra_locals(bodies[0], common)[:2])
                name = self.class_names.take(shortened(wanted, NAME_LIMIT))
                cls = _Class(name, block, bodies, args)
                self.classes.append(cls)
                for body in bodies:
                    self.class_of[id(body.instance)] = cls
                if key in self.premerged:
                    self.by_key[key] = cls

    def _join(self, cls: _Class, bodies: list[Body]) -> None:
        cls.bodies.extend(bodies)
        for body in bodies:
            self.class_of[id(body.instance)] = cls

    def split_keys(self) -> dict[tuple[str, str], list[Body]]:
        """Bodies of every (block, skeleton) that several classes serve (one block used at
        several depths, whose instances differ in different values at each depth)."""
        classes: dict[tuple[str, str], list[_Class]] = {}
        for cls in self.classes:
            classes.setdefault((cls.block, cls.bodies[0].skeleton), []).append(cls)
        return {key: [b for c in found for b in c.bodies] for key, found in classes.items() if len(found) > 1}

    def premerged_held(self) -> bool:
        """Whether this plan lowered every premerged instance as the earlier plan did (same
        skeleton, same values) into its key's one class: then that class fits them all."""
        for key, bodies in self.premerged.items():
            cls = self.by_key.get(key)
            for earlier in bodies:
                now = self.body_of.get(id(earlier.instance))
                if cls is None or now is None or self.class_of.get(id(earlier.instance)) is not cls \
                        or now.skeleton != key[1] or list(map(repr, now.holes)) != list(map(repr, earlier.holes)):
                    return False
        return True


def _call_of(class_of: dict[int, _Class], body_of: dict[int, Body], child: Instance) -> tuple[str, list[CallArg]]:
    """A child's class constructor call: (class name, its arguments)."""
    cls = class_of[id(child)]
    return cls.name, cls.args.call(body_of[id(child)])


class _Memo:
    """One plan's instances lowered so far: by signature, the first of each shape (the template
    others re-lower from) and the templates' text pieces."""

    def __init__(self) -> None:
        self.lowered: dict[int, Body] = {}
        self.first: dict[int, Body] = {}
        self.texts: dict[int, list] = {}


def _is_leaf(inst: Instance) -> bool:
    """Whether ``inst`` has no child instances (its body depends on no class)."""
    return not inst.children


def _locals(body: Body) -> list[str]:
    return [s.targets[0] for s in body.stmts] + [s.loop[0] for s in body.stmts if s.loop]


def _extra_locals(body: Body, common: set[str]) -> list[str]:
    """The body's local names not in ``common``, but numbered repetitions (``denselayer10``), sorted."""
    return sorted(e for e in set(_locals(body)) - common if not e[0].isdigit() and not e[-1].isdigit())


def _fill(text: str, args: ClassArgs) -> str:
    parts = text.split(HOLE)
    if len(parts) == 1:
        return text
    filled = args.text  # (every second part is a hole's number)
    parts[1::2] = values = [filled[int(p)] for p in parts[1::2]]
    text = "".join(parts)
    if OMITTED in text:  # a child's argument given its default: left out of the call, with its comma
        text = _OMITTED_ARG.sub("", text)
    # a hole filled by an argument of the class (self.half) makes a slice's bound an expression
    return spaced_slices(text) if ":" in text and not all(map(_LITERAL.fullmatch, values)) else text


# -- writing ---------------------------------------------------------------------------------------

def _statement(text: str, depth: int) -> list[str]:
    return split_statement(text, _I * depth)


def _comment_lines(text: str, depth: int) -> list[str]:
    width = LINE_LENGTH - len(_I * depth) - 2
    lines = []
    for line in comment(text):
        body = line[2:]
        if body and len(body) <= width and body.isascii() and body.isprintable() and body[0] != " " != body[-1]:
            lines.append(_I * depth + line)  # what textwrap gives a line that fits and has no odd spaces
            continue
        # (rstrip: textwrap keeps the space after a word that ends a line exactly full where a word too
        # long for a line is broken; ruff format strips it)
        lines += [_I * depth + "# " + w.rstrip() for w in textwrap.wrap(body, width, break_on_hyphens=False)] \
            or [_I * depth + "#"]
    return lines


def _container(level: dict[str, Any], kind: str, args: ClassArgs, path: tuple[str, ...],
               containers: dict[tuple[str, ...], str]) -> str:
    items = _items(level, kind, args, path, containers)
    if kind not in ("seq", "list"):
        return "nn.ModuleDict({" + ", ".join(items) + ("," if len(items) > 1 else "") + "})"
    runs = _runs(items)
    lengths = _lengths(runs, args, path)
    if kind == "list" and len(runs) == 1 and lengths[0] is not None:  # (one run: the comprehension is the list)
        return f"nn.ModuleList({_loop(runs[0][0], lengths[0])})"
    written = _starred(runs, lengths)
    inner = ", ".join(written) + ("," if len(written) > 1 else "")
    return f"nn.Sequential({inner})" if kind == "seq" else f"nn.ModuleList([{inner}])"


def _items(level: dict[str, Any], kind: str, args: ClassArgs, path: tuple[str, ...],
           containers: dict[tuple[str, ...], str]) -> list[str]:
    """Each child's constructor text of the container at ``path`` (a dict's as ``key: value``)."""
    items = []
    for seg, sub in level.items():
        if isinstance(sub, Leaf) and sub.kind == "param":
            continue
        value = _container(sub, containers[path + (seg,)], args, path + (seg,), containers) \
            if isinstance(sub, dict) else _fill(sub.source, args)
        items.append(value if kind in ("seq", "list") else f"{literal(seg)}: {value}")
    return items


def _runs(items: list[str]) -> list[tuple[str, int]]:
    """Runs of equal children: (constructor text, how many in a row)."""
    return [(item, len(list(run))) for item, run in itertools.groupby(items)]


def _lengths(runs: list[tuple[str, int]], args: ClassArgs, path: tuple[str, ...]) -> list[int | str | None]:
    """What each run of the container at ``path`` loops over: its length as written over the
    model's parameters where it follows them (a loop however long it is here), else its length
    where it has :data:`RUN` children or more; None where its children are written one by one."""
    return [args.counts.get(path + (k,)) or (count if count >= RUN else None) for k, (_, count) in enumerate(runs)]


def _starred(runs: list[tuple[str, int]], lengths: list[int | str | None]) -> list[str]:
    """The runs' children as a container's items: each loop written once, starred among the others."""
    written: list[str] = []
    for (item, count), length in zip(runs, lengths):
        written += [f"*{_loop(item, length)}"] if length is not None else [item] * count
    return written


def class_runs(body: Body, args: ClassArgs) -> dict[tuple, int]:
    """The length of each run of equal children in ``body``'s top-level containers, by (container,
    run's place), and of an ``nn.Sequential`` class's runs added by name, by ("", run's place): the
    counts :mod:`~archc.lowering.torch_counts` may write over parameters."""
    found: dict[tuple, int] = {}
    for seg, sub in body.tree.items():
        kind = body.containers.get((seg,))
        if isinstance(sub, dict) and kind in ("seq", "list"):
            for k, (_, count) in enumerate(_runs(_items(sub, kind, args, (seg,), body.containers))):
                found[(seg, k)] = count
    modules = _sequential_modules(body, args) if body.sequential else []
    if modules and [seg for seg, _ in modules] != [str(i) for i in range(len(modules))]:
        # (an nn.Sequential class's children added by name: runs the loop of add_module can count)
        for k, run in enumerate(_numbered_runs(modules)):
            if _numbered_name(run, "i") is not None:
                found[("", k)] = len(run)
    return found


def _loop(item: str, count: int | str) -> str:
    """``count`` equal children written once in a loop (``[Bottleneck(...) for _ in range(22)]``, as
    torchvision's ``_make_layer`` appends them): the same modules at the same indices."""
    return f"[{item} for _ in range({count})]"


#: how many equal children in a row are written as a loop (two too: a stage's blocks read alike
#: whether it has two or six)
RUN = 2


def _init_lines(body: Body, args: ClassArgs, choices: Mapping[str, tuple[str, str, str]]) -> list[str]:
    lines: list[str] = []
    for name, source in args.lets:
        lines += _statement(f"{name} = {source}", 2)
    params: list[tuple[str, str, str, bool]] = []

    for seg, sub in body.tree.items():
        if isinstance(sub, Leaf) and sub.kind == "param":
            continue
        if seg in choices:
            condition, built, otherwise = choices[seg]
            lines += _statement(f"if {condition}:", 2) + _child_line(seg, _fill(built, args), 3) \
                + [_I * 2 + "else:"] + _child_line(seg, _fill(otherwise, args), 3)
            continue
        value = _container(sub, body.containers[(seg,)], args, (seg,), body.containers) \
            if isinstance(sub, dict) else _fill(sub.source, args)
        lines += _child_line(seg, value, 2)
    _tree_params(body, args, body.tree, "self", (), params)
    for owner, seg, tensor, buffer in params:
        if buffer:  # in the state_dict, not learned (a relative position index)
            lines += _statement(f"{owner}.register_buffer({literal(seg)}, {tensor})", 2)
        else:
            lines += _statement(f"{owner}.{seg} = nn.Parameter({tensor})" if bare(seg)
                                else f"{owner}.register_parameter({literal(seg)}, nn.Parameter({tensor}))", 2)
    if body.ties:
        lines += _comment_lines("weight tying: one tensor under both names", 2)
        lines += tie_lines(body.ties, _I * 2, {a.written for a in args.args} | {name for name, _ in args.lets})
    for attr, source in args.stored.items():
        lines += _statement(f"self.{attr} = {source}", 2)
    return lines


def _child_line(seg: str, value: str, depth: int) -> list[str]:
    return _statement(f"self.{seg} = {value}" if bare(seg) else f"self.add_module({literal(seg)}, {value})", depth)


def _tree_params(body: Body, args: ClassArgs, level: dict[str, Any], owner: str, path: tuple[str, ...],
                 params: list[tuple[str, str, str, bool]]) -> None:
    """(owner expression, name, initial tensor, a buffer?) of each bare parameter of the module tree."""
    for seg, sub in level.items():
        if isinstance(sub, dict):
            sub_owner = attribute(owner, seg) if not path else \
                (f"{owner}[{int(seg)}]" if body.containers[path] in ("seq", "list") else f"{owner}[{literal(seg)}]")
            _tree_params(body, args, sub, sub_owner, path + (seg,), params)
        elif sub.kind == "param":
            params.append((owner, seg, _fill(sub.source, args), sub.buffer))


def _forward_lines(body: Body, args: ClassArgs, comments: list[list[str]], types: list[str]) -> list[str]:
    params = ", ".join(["self", *(f"{a}: {t}" for a, t in zip(body.args, types))])
    returns = "torch.Tensor" if len(body.returns) == 1 else \
        "tuple[" + ", ".join(["torch.Tensor"] * len(body.returns)) + "]"
    lines = _statement(f"def forward({params}) -> {returns}:", 1)
    for stmt, notes in zip(body.stmts, comments):
        for note in notes:
            lines += _comment_lines(note, 2)
        lines += _loop_lines(stmt, args) if stmt.loop else _grow_lines(stmt) if stmt.grow else \
            _statement(f"{', '.join(stmt.targets)} = {_fill(stmt.expr, args)}", 2)
    lines += _statement("return " + ", ".join(body.returns), 2)
    return lines


def _loop_lines(stmt: Stmt, args: ClassArgs) -> list[str]:
    """A container's children run in series with the same other inputs, as a loop over it."""
    each, first, others = stmt.loop
    target = stmt.targets[0]
    return _statement(f"{target} = {first}", 2) + _statement(f"for {each} in {_fill(stmt.expr, args)}:", 2) \
        + _statement(f"{target} = {each}({', '.join((target, *others))})", 3)


def _grow_lines(stmt: Stmt) -> list[str]:
    """A dense block's children, each reading every feature so far, as a loop growing their list."""
    each, first = stmt.grow
    target = stmt.targets[0]
    return _statement(f"{target} = [{first}]", 2) + _statement(f"for {each} in {stmt.expr}:", 2) \
        + _statement(f"{target}.append({each}({target}))", 3)


def _added_lines(added: tuple[Added, ...]) -> list[str]:
    lines = []
    for child in added:
        call = _OMITTED_ARG.sub("", child.call) if OMITTED in child.call else child.call
        add = f"self.add_module({child.name}, {call})"
        lines += _statement(f"for {child.each} in range({child.span}):", 2) + _statement(add, 3) if child.each \
            else _statement(add, 2)
    return lines


def _class_comments(cls: _Class) -> list[list[str]]:
    """Per statement: the comments every instance agrees on; a skip label's kind where they differ."""
    result = []
    for i, stmt in enumerate(cls.bodies[0].stmts):
        notes = []
        for k, note in enumerate(stmt.comments):
            variants = {b.stmts[i].comments[k] if k < len(b.stmts[i].comments) else "" for b in cls.bodies}
            notes.append(note if len(variants) == 1 else note.split(" (")[0])
        result.append(notes)
    return result


def _sequential_init_lines(body: Body, args: ClassArgs) -> list[str]:
    """An ``nn.Sequential`` class's ``__init__`` body: its modules handed to ``super().__init__``
    (named 0, 1, ... by their places), or added by their names where those are others."""
    lines: list[str] = []
    for name, source in args.lets:
        lines += _statement(f"{name} = {source}", 2)
    modules = _sequential_modules(body, args)
    if [seg for seg, _ in modules] == [str(i) for i in range(len(modules))]:
        runs = _runs([source for _, source in modules])
        return lines + _statement(f"super().__init__({', '.join(_starred(runs, _lengths(runs, args, ())))})", 2)
    lines += [_I * 2 + "super().__init__()"]
    taken = {a.written for a in args.args} | {name for name, _ in args.lets}
    each = next(name for name in ("i", "index", "k", "position") if name not in taken)
    for k, run in enumerate(_numbered_runs(modules)):
        seg, source = run[0]
        counted = args.counts.get(("", k))  # (a length that follows the model's parameters)
        named = _numbered_name(run, each) if counted is not None or len(run) >= RUN else None
        if named is None:
            for seg, source in run:
                lines += _statement(f"self.add_module({literal(seg)}, {source})", 2)
            continue
        span = _span(int(NUMBERED_NAME.match(seg).group(2)), counted if counted is not None else len(run))
        lines += _statement(f"for {each} in range({span}):", 2) + _statement(f"self.add_module({named}, {source})", 3)
    return lines


def _sequential_modules(body: Body, args: ClassArgs) -> list[tuple[str, str]]:
    """Each module of an ``nn.Sequential`` class: its name and constructor text."""
    return [(seg, _container(sub, body.containers[(seg,)], args, (seg,), body.containers)
             if isinstance(sub, dict) else _fill(sub.source, args)) for seg, sub in body.tree.items()]


#: a run's length as written over parameters: the parameter (or its item), then a constant or none
_LENGTH = re.compile(r"^(.*?)(?: ([+-]) ([0-9]+))?$", re.DOTALL)


def _span(first: int, length: int | str) -> str:
    """``range``'s arguments for ``length`` numbers from ``first`` (``1, depth``, not ``1, 1 + depth - 1``)."""
    if not first:
        return str(length)
    if type(length) is int:
        return f"{first}, {first + length}"
    read, sign, constant = _LENGTH.match(length).groups()
    end = first + (int(constant) if sign == "+" else -int(constant) if sign else 0)
    return f"{first}, {read}" + (f" + {end}" if end > 0 else f" - {-end}" if end < 0 else "")


def _numbered_runs(modules: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Consecutive children with the same constructor text whose names count up by one
    (``block2-1``, ``block2-2``, ...); every other child a run of its own."""
    runs: list[list[tuple[str, str]]] = []
    for seg, source in modules:
        if runs and runs[-1][-1][1] == source and counts_on(runs[-1][-1][0], seg):
            runs[-1].append((seg, source))
        else:
            runs.append([(seg, source)])
    return runs


def _numbered_name(run: list[tuple[str, str]], each: str) -> str | None:
    """The f-string naming each child of ``run`` from the loop's ``each``; None where a name has
    escapes or no number (its children are added one by one)."""
    numbered = NUMBERED_NAME.match(run[0][0])
    if numbered is None:  # (a run of one child named without a number: ``head`` after ``block1-0``)
        return None
    before, _, after = numbered.groups()
    try:
        return numbered_name(before, each, after)
    except UnsafeValue:
        return None


def _class_text(cls: _Class, root_guards: bool = False, methods: list[str] = ()) -> list[str]:
    body = cls.bodies[0]
    base = "nn.Sequential" if body.sequential else "nn.ModuleDict" if cls.added else "nn.Module"
    lines = split_statement(f"class {cls.name}({base}):", "")
    if cls.block is not None:
        paths = list(cls.shown) or [b.instance.path for b in cls.bodies]
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        lines += _comment_lines(f"The spec's block '{cls.block}': {shown}.", 1)
    signature = ", ".join(["self"] + [a.signature() for a in cls.args.args])
    lines += _statement(f"def __init__({signature}) -> None:", 1)
    guards = _guard_lines(cls.args.guards) if root_guards and cls.args.guards else []
    guards += _count_guard_lines(cls.args.checks) if root_guards and cls.args.checks else []
    if body.sequential:  # nn.Sequential's forward calls the modules in order (the guards come first)
        return lines + guards + _sequential_init_lines(body, cls.args) + _added_lines(cls.added) + list(methods)
    lines += [_I * 2 + "super().__init__()", *guards]
    lines += _init_lines(body, cls.args, cls.choices) + _added_lines(cls.added)
    variadic = body.instance.info is not None and body.instance.info.variadic
    types = ["torch.Tensor"] * len(body.args)
    if variadic:
        types[-1] = "list[torch.Tensor]"
    return lines + [""] + _forward_lines(body, cls.args, _class_comments(cls), types) + list(methods)


def _guard_lines(guards: list[tuple[str, Any]]) -> list[str]:
    pairs = ", ".join(f"{literal(name)}: ({name}, {literal(frozen(value))})" for name, value in guards)
    # (a sequence, given as a list or a tuple, compared as tuples: its default is written as one)
    given = f"{_AS_TUPLES}(value)" if _guards_a_sequence(guards) else "value"
    return _refusal_lines("fixed", pairs, "built", f"{given} != built",
                          ['f"{name}={value!r}: this file was generated for {name}={built!r}; "',
                           'f"regenerate it with archc build --set {name}={value!r}"'])


def _refusal_lines(table: str, pairs: str, second: str, refused: str, message: list[str]) -> list[str]:
    """``__init__``'s check of the model's parameters: the dict ``table`` of ``pairs`` (each
    parameter's name -> its value and ``second``), and a ValueError of ``message`` (lines of
    string literals) for the first one where ``refused`` holds."""
    return _statement(f"{table} = {{{pairs}}}", 2) + [
        _I * 2 + f"for name, (value, {second}) in {table}.items():",
        _I * 3 + f"if {refused}:",
        _I * 4 + "raise ValueError(",
        *(_I * 5 + line for line in message),
        _I * 4 + ")",
    ]


def _header(graph: Graph, cls: str, labels: Mapping[str, str], provenance: Provenance,
            arguments: list[str]) -> list[str]:
    spec = provenance.spec or next((n.location.file for n in graph.nodes() if n.location), None)
    params = ", ".join(f"{k}={v!r}" for k, v in graph.params.items())
    counts = {str(k.value): 0 for k in SKIP_KINDS}
    for label in labels.values():
        kind = label.split()[0] if label.split() else ""
        if kind in counts:
            counts[kind] += 1
    lines = [f"{cls}: the '{graph.name}' model as PyTorch, generated by archc {__version__}."]
    if spec:
        lines.append(f"spec: {spec}")
    if params:
        lines.append(f"parameters: {params}")
    if provenance.overrides:
        lines.append("--set " + " ".join(f"{k}={v!r}" for k, v in provenance.overrides.items()))
    if arguments:
        fixed = len(arguments) < len(graph.params)
        lines.append("run-time arguments: " + ", ".join(arguments) + ("; the others are fixed in this file"
                                                                      if fixed else " (every parameter)"))
    if provenance.seed is not None:
        lines.append(f"seed: {provenance.seed} (archc's initial weights; this file holds none)")
    lines.append("skips: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    lines.append("Regenerate it from the spec rather than editing it; it needs only PyTorch.")
    out = []
    for line in lines:
        out += _comment_lines(one_line(line), 0)
    if graph.doc.strip():
        out += ["#"] + [c for line in graph.doc.strip().splitlines() for c in _comment_lines(line, 0)]
    return out


def _probed(graph: Graph, cls: str, labels: Mapping[str, str], elaborate: Elaborate, planner: _Planner,
            root_body: Body, root: _Class, live: dict[str, Any]
            ) -> tuple[_Planner, _Class, dict[str, Any], dict[str, str]]:
    """The plan, the model class and its run-time parameters once the spec elaborated at other values
    has shown which more parameters the classes can take (widths, repeat counts, a recursion's
    depth), and the parameter each recursion the model builds takes its depth from, by path."""
    depths: dict[str, str] = {}
    # (each elaboration, this one too, read afresh on its first plan: a reading keeps what plans
    # made of it, which the next plan of that graph starts from; so every graph's plans start alike)
    plan_of = functools.partial(_plan_elaborated, labels=labels, cls=cls, live=planner.live, read={})
    probed = probe_params(graph, planner.live, elaborate, plan_of)
    written_of = functools.partial(_count_written, cls=cls, live=planner.live)
    counted = probe_counts(graph, {*planner.live, *probed.params}, elaborate, written_of)
    deep = _probe_depths(graph, cls, planner, root, elaborate, {*probed.params, *counted.params})
    if probed.params or counted.params or deep:
        if probed.params:
            planner, root_body = probed.plan.planned  # (its block classes take what follows the parameters)
        hole_texts = probed.texts
        if any(path for path, *_ in counted.texts):
            planner, root_body, hole_texts, counted = _with_counted_classes(
                graph, labels, cls, planner, root_body, probed, counted)
        lowered = planner.writer.lowered
        live = {p: s for p, s in live_params(graph, lowered).items() if p in planner.live}
        taken = [*probed.params, *counted.params, *deep]
        # (the model's own runs by container and place; every counted run's length for its check)
        counts = {key[1:] if not key[0] else key: text for key, text in counted.texts.items()}
        args = root_args(graph, lowered, root_body, live, _GUARD_LOCALS, (taken, hole_texts), counts,
                         {**counted.checks, **{p: [check] for p, (_, check) in deep.items()}})
        root = _Class(cls, None, [root_body], args)
        live = {**live, **{p: [] for p in taken}}
        written = {a.name: a.written for a in args.args}
        depths = {path: written[p] for p, (paths, _) in deep.items() for path in paths}
    return planner, root, live, depths


def _plan(graph: Graph, labels: Mapping[str, str], cls: str, live: Mapping[str, Any] | None,
          follows: Collection[tuple] = frozenset(), lowered: Lowered | None = None,
          counts: Mapping[str, Mapping[tuple, str]] | None = None) -> tuple[_Planner, Body, _Class, dict[str, Any]]:
    """Every instance lowered and grouped into classes, the model class last, and where each live
    parameter is read (its sites); ``live``: the parameters the model takes at run time (None: all
    that :func:`live_params` finds); ``follows``: see :func:`resolve`; ``lowered``: an earlier plan's
    reading of the graph."""
    planner = _Planner(graph, labels, cls, live=live, follows=follows, lowered=lowered, counts=counts)
    tree = instance_tree(graph, planner.writer.lowered.order)
    root_body = planner.plan(tree)
    split = planner.split_keys()
    if split:  # a block with nested blocks split by depth: plan again with one class for it
        again = _Planner(graph, labels, cls, {**planner.premerged, **split}, planner, follows=follows)
        again_body = again.plan(tree)
        if again.premerged_held():
            planner, root_body = again, again_body
    live_sites = {p: s for p, s in live_params(graph, planner.writer.lowered).items() if p in planner.live}
    args = root_args(graph, planner.writer.lowered, root_body, live_sites, _GUARD_LOCALS)
    return planner, root_body, _Class(cls, None, [root_body], args), live_sites


def _written_throughout(lowered: Lowered, expressed: set[tuple[str, str]], passed: set[tuple[str, str]],
                        param: str, sites: list[tuple[str, str]]) -> bool:
    """Whether the plan wrote every attribute a live parameter reaches from it: each site as the
    spec's expression (``expressed``, or one the code shows nowhere), and each block argument carrying
    it there as the caller's expression (``passed``: a literal anywhere on the way would ignore the
    model's argument)."""
    unshown = unwritten(lowered, [site for site in sites if site not in expressed])
    return all((site in expressed or site in unshown) and carried_by(lowered, *site, param) <= passed
               for site in sites)


def _input_dims(lowered: Lowered, body: Body) -> tuple | None:
    """The sizes of an instance's first input."""
    inputs = body.instance.inputs
    if not inputs or len(inputs[0]) != 1:
        return None
    return tuple(lowered.type_of(inputs[0][0]).shape)


def _methods(planner: _Planner, c: _Class, classes: list[_Class] | None = None) -> list[str]:
    """The methods after ``forward`` of class ``c``: ``reset_parameters``, and the model's
    ``block_instances`` (of ``classes``, default the plan's)."""
    resets = reset_statements(c.bodies, planner.writer.lowered, planner.writer.as_sequential)
    methods = [""] + reset_method(resets, c.bodies[0].ties)  # each class re-ties its own ties
    if c.block is None:
        blocks: dict[str, list[str]] = {}
        for other in planner.classes if classes is None else classes:
            blocks.setdefault(other.block, []).append(other.name)
        methods += [""] + block_instances_method(blocks)
    return methods


def _masked_text(planner: _Planner, c: _Class, runs: Mapping[tuple, int], body: Body) -> str:
    """Class ``c``'s text as written from ``body``, nameless, with the lengths of ``runs`` masked
    (:func:`~archc.lowering.torch_runs.fold_runs` compares classes so); the arguments nothing but
    the signature reads left out (``body`` may lack children that read some)."""
    masked = dataclasses.replace(c, name="\x07", block=None, bodies=[body],
                                 args=dataclasses.replace(c.args, counts={key: "\x05" for key in runs}))
    lines = _class_text(masked, methods=_methods(planner, c))
    end = next(k for k, line in enumerate(lines) if line.endswith(") -> None:"))  # (the signature's last)
    rest = "\n".join(lines[end + 1:])
    read = [a for a in c.args.args if re.search(rf"(?<![\w.]){re.escape(a.written)}(?!\w)", rest)]
    if len(read) < len(c.args.args):
        masked = dataclasses.replace(masked, args=dataclasses.replace(masked.args, args=read))
        lines = _class_text(masked, methods=_methods(planner, c))
    # (not its comments: a skip's label is one instance's, the class's are over all its instances)
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _block_class_texts(planner: _Planner, classes: list[_Class] | None = None) -> list[list[str]]:
    """The lines of each block class (of ``classes``, default the plan's), in the file's order."""
    classes = planner.classes if classes is None else classes
    return [_class_text(c, methods=_methods(planner, c, classes)) for c in classes]


def _probe_plan(planner: _Planner, root_body: Body) -> Plan:
    """What :mod:`~archc.lowering.torch_probes` compares of one plan: every text but the model
    class's holes."""
    lowered = planner.writer.lowered
    resets = reset_statements([root_body], lowered, planner.writer.as_sequential)
    texts = ["\n".join(text) for text in _block_class_texts(planner)]
    texts += [_skeleton(root_body), "\n".join(reset_method(resets, root_body.ties))]
    bodies = {body.instance.path: body for c in planner.classes for body in c.bodies}
    return Plan(root_body, lowered, (*texts, *lowered.functions.values(), *lowered.classes.values()), bodies,
                (planner, root_body))


def _count_written(graph: Graph, cls: str, live: Mapping[str, Any]) -> Written:
    """What :mod:`~archc.lowering.torch_counts` compares of one elaboration: every class's code, the
    model class's and those of one instance with their runs' lengths and the count parameters'
    defaults masked; those lengths by (instance, container, run); and those instances (no skip
    labels or comments: an elaboration's new nodes have no label, and comments change no code)."""
    planner, root_body, root, _ = _plan(graph, {}, cls, live)
    params = set().union(*graph.repeat_counts.values())
    texts, runs, owners = [], {}, set()
    for c in [*planner.classes, root]:
        if len(c.bodies) == 1:
            body = c.bodies[0]
            owners.add(body.instance.path)
            runs.update({(body.instance.path, *key): n for key, n in class_runs(body, c.args).items()})
            args = [dataclasses.replace(a, default=None) if a.name in params else a for a in c.args.args]
            c = _Class(c.name, c.block, c.bodies, dataclasses.replace(c.args, counts=MASKED, args=args))
        texts.append(_class_text(c, methods=_methods(planner, c)))
    # (comments left out: a class's comment counts the instances it serves)
    code = ("\n".join(line for line in text if not line.lstrip().startswith("#")) for text in texts)
    lowered = planner.writer.lowered
    return (*code, *lowered.functions.values(), *lowered.classes.values()), runs, frozenset(owners)


def _plan_elaborated(graph: Graph, follows: frozenset, labels: Mapping[str, str], cls: str,
                     live: Mapping[str, Any], read: dict[Any, Any]) -> Plan:
    """:func:`_probe_plan` of an elaboration of the spec, planned with the same live parameters and
    these holes following other parameters (see :func:`resolve`). ``read``: each graph's reading by
    its id, kept from its first plan (it depends on the graph alone), and each plan made, by graph
    and ``follows`` (asked again when parameters are tried together)."""
    key = (id(graph), follows)
    if key not in read:
        planner, root_body, _, _ = _plan(graph, labels, cls, live, follows, read.get(id(graph)))
        read.setdefault(id(graph), planner.writer.lowered)
        read[key] = _probe_plan(planner, root_body)
    return read[key]


def _probe_depths(graph: Graph, cls: str, planner: _Planner, root: _Class, elaborate: Elaborate,
                  taken: Collection[str]) -> dict[str, tuple[list[str], str]]:
    """The model's parameters (outside ``taken`` and the live ones) that a recursion the model class
    builds takes as its depth (``net: {block: level, levels: depth}``), each with the paths of
    those instances and the condition under which the recursion is as deep as one checked. One is
    taken where the spec elaborated one deeper, and at the least depth the folded class builds,
    writes the same classes (:mod:`~archc.lowering.torch_recursion`): the depth changed nothing else.
    That least depth is two folded levels: one has nothing folded to compare."""
    _, folded_root, applied = fold_recursion(planner.classes, root, _folding_skeleton, _fill)
    candidates: dict[str, list[tuple[str, Any]]] = {}
    for path, recursion in model_calls(folded_root, applied):
        param = child_argument_at_model_level(planner.writer.lowered, root.bodies[0].instance, path, recursion.param)
        if param in graph.params and type(graph.params[param]) is int and param not in planner.live \
                and param not in taken and recursion.step > 0:
            candidates.setdefault(param, []).append((path, recursion))
    found: dict[str, tuple[list[str], str]] = {}
    for param, calls in candidates.items():
        # (the least a chain of two folded classes: one less has nothing to fold, so nothing to compare)
        value, least = graph.params[param], max(r.value(r.kept) + r.step for _, r in calls)
        given = {path: param for path, _ in calls}
        base = _folded_texts(graph, cls, planner.live, given)
        try:
            same = all(_folded_texts(elaborate({param: v}), cls, planner.live, given) == base
                       for v in {value + 1, least if least < value else value + 2})
        except ArchcError:  # (a value the spec refuses)
            same = False
        if same:
            found[param] = (list(given), f"{param} >= {least}")
    return found


def _folded_texts(graph: Graph, cls: str, live: Mapping[str, Any], given: Mapping[str, str]) -> tuple[str, ...]:
    """Every class's code once folded, comments left out, and the model class's skeleton."""
    planner, _, root, _ = _plan(graph, {}, cls, live)
    classes, root, _ = fold_recursion(planner.classes, root, _folding_skeleton, _fill, given)
    texts = ["\n".join(line for line in _class_text(c, methods=_methods(planner, c, classes))
                       if not line.lstrip().startswith("#")) for c in classes]
    return (*texts, _skeleton(root.bodies[0]))


def _count_guard_lines(checks: list[tuple[str, str]]) -> list[str]:
    """The check that every run a class counts is as long as one checked (below, the structure may
    differ: a condition on the repetition's index turning): per parameter, its value and whether
    its conditions hold."""
    by_param: dict[str, list[str]] = {}
    for name, text in checks:
        by_param.setdefault(name, []).append(text)
    held = {name: texts[0] if len(texts) == 1 else "all([" + ", ".join(texts) + "])" for name, texts in by_param.items()}
    pairs = ", ".join(f"{literal(name)}: ({name}, {condition})" for name, condition in held.items())
    return _refusal_lines("repeats", pairs, "checked", "not checked",
                          ['f"{name}={value!r}: a loop or a recursion of this file would be "',
                           '"shorter than built; regenerate it with archc build --set "',
                           'f"{name}={value!r}"'])


def _with_counted_classes(graph: Graph, labels: Mapping[str, str], cls: str, planner: _Planner, root_body: Body,
                          probed: Probed, counted: Counted) -> tuple[_Planner, Body, dict[int, str], Counted]:
    """The file planned again so that the block classes holding counted runs write their lengths, each
    taking the parameters from the model (they are live); the model class's hole texts moved to the
    new plan's holes, by what each fills. Where a class cannot (a block parameter hides the model's)
    or a hole has no place in the new plan, the plan as it was and the model's own counts alone."""
    nested: dict[str, dict[tuple, str]] = {}
    for (path, *key), text in counted.texts.items():
        if path:
            nested.setdefault(path, {})[tuple(key)] = text
    live = {**planner.live, **{p: graph.params[p] for p in counted.params}}
    # (from the plan's own reading of the graph: a reading keeps what earlier plans made of it)
    again, body, _, _ = _plan(graph, labels, cls, live, probed.follows, planner.writer.lowered, nested)
    # (a hole known by its index alone has no place of its own: another plan's index may be another hole)
    places = {hole_place(root_body, i): text for i, text in probed.texts.items()}
    moved = {i: places[hole_place(body, i)] for i in range(len(body.holes)) if hole_place(body, i) in places}
    held = {c.bodies[0].instance.path for c in again.classes if len(c.bodies) == 1 and c.args.counts}
    if nested.keys() <= held and len(moved) == len(probed.texts) and all(place[1] for place in places):
        return again, body, moved, counted
    kept = {k: t for k, t in counted.texts.items() if not k[0]}
    nested_params = {name for path, texts in nested.items() for text in texts.values() for name in names_read(text)}
    if any(names_read(text) & nested_params for text in kept.values()):
        return planner, root_body, probed.texts, Counted()
    params = [p for p in counted.params if p not in nested_params]
    checks = {p: c for p, c in counted.checks.items() if p in params}
    return planner, root_body, probed.texts, Counted(params, kept, checks)


#: the generated module's function that compares a sequence argument with the one the file was built for
_AS_TUPLES = "_as_tuples"
#: the names the check of the fixed parameters (:func:`_guard_lines`) assigns or calls in ``__init__``
_GUARD_LOCALS = frozenset({"fixed", "name", "value", "built", _AS_TUPLES, "repeats", "checked"})
_AS_TUPLES_SOURCE = [
    f"def {_AS_TUPLES}(value):",
    '    """``value`` with its lists, however nested, as tuples."""',
    f"    return tuple(map({_AS_TUPLES}, value)) if isinstance(value, (list, tuple)) else value",
]


def _guards_a_sequence(guards: list[tuple[str, Any]]) -> bool:
    """Whether a fixed parameter is a list (compared through :data:`_AS_TUPLES`, which the file then defines)."""
    return any(isinstance(value, list) for _, value in guards)


#: a use of ``F`` (torch.nn.functional) in generated code
_CALLS_FUNCTIONAL = re.compile(r"(?<![\w.])F\.")
#: a use of ``math`` (a spec expression's ``sqrt`` a class computes from its arguments)
_CALLS_MATH = re.compile(r"(?<![\w.])math\.")


def write_source(graph: Graph, cls: str, labels: Mapping[str, str], provenance: Provenance,
                 elaborate: Elaborate | None = None) -> str:
    """The whole file. ``elaborate``: the spec elaborated again at other parameter values (the
    caller's frontend), where the model class may take parameters its widths follow
    (:mod:`~archc.lowering.torch_probes`)."""
    return _write_source(graph, cls, labels, provenance, elaborate)


def _write_source(graph: Graph, cls: str, labels: Mapping[str, str], provenance: Provenance,
                  elaborate: Elaborate | None) -> str:
    planner, root_body, root, live = _plan(graph, labels, cls, None)
    depths: dict[str, str] = {}  # (a recursion the model builds: the parameter its depth follows, by path)
    # A parameter stays live where the plan wrote every attribute it reaches from it (not one that
    # a class reaches another way) and nothing the plan wrote after it depends on its value.
    lowered, planned = planner.writer.lowered, [root, *planner.classes]
    found = live_params(graph, lowered)
    expressed = set().union(*(c.args.expressed for c in planned))
    passed = set().union(*(c.args.passed for c in planned))
    kept = {p: v for p, v in planner.live.items()
            if p in found and _written_throughout(lowered, expressed, passed, p, found[p])}
    if kept.keys() != planner.live.keys():
        planner, root_body, root, live = _plan(graph, labels, cls, kept)
    if elaborate is not None:
        planner, root, live, depths = _probed(graph, cls, labels, elaborate, planner, root_body, root, live)
    classes: list[str] = []
    written, root, applied = fold_recursion(planner.classes, root, _folding_skeleton, _fill, depths)
    *written, root = renamed([*written, root], recursion_names(written, applied, [c.name for c in (*written, root)]))
    dims_of = functools.partial(_input_dims, planner.writer.lowered)
    written, root = fold_dense(written, root, _fill, dims_of)
    written, root = fold_stages(written, root, dims_of)
    written, root = fold_runs(written, root, functools.partial(_masked_text, planner),
                              lambda c: class_runs(c.bodies[0], c.args))
    for text in _block_class_texts(planner, written) + [
            _class_text(root, root_guards=True, methods=_methods(planner, root, written))]:
        classes += ["", ""] + text
    out: list[str] = []
    # (an op's functions where its nodes call them: crop's center_crop only for a centred crop)
    called = "\n".join(classes)
    functions = [source for name, source in planner.writer.lowered.functions.items()
                 if re.search(rf"(?<![\w.]){name}\(", called)]
    for function in [*functions, *planner.writer.lowered.classes.values()]:
        out += ["", ""] + function.rstrip("\n").splitlines()
    if _guards_a_sequence(root.args.guards):
        out += ["", ""] + _AS_TUPLES_SOURCE
    code = "\n".join(out + classes)
    # (math and torch.nn.functional imported only where the code calls them: an unused import is a lint error)
    imports = (["import math", ""] if _CALLS_MATH.search(code) else []) + ["import torch"] \
        + (["import torch.nn.functional as F"] if _CALLS_FUNCTIONAL.search(code) else []) + ["from torch import nn"]
    arguments = [a.written for a in root.args.args if a.name in live]  # (as the model takes them)
    return "\n".join(_header(graph, cls, labels, provenance, arguments) + imports) + "\n" + code + "\n"
