"""One class for a block that holds itself: a U-Net level, an hourglass, written as recursion.

A recursive block (``{name: inner, block: level, levels: levels - 1, if: "levels > 0"}``) has one
instance per depth, each holding the next. Planned depth by depth, each depth's class calls the
class below it, so those classes differ in that one name (``Level3`` builds ``Level2``, which
builds ``Level``) though their code is the same: a copy per depth. :func:`fold_recursion` writes
them as one class that builds itself, as a PyTorch user writes recursion::

    if levels > 1:
        self.inner = Level2(in_channels=ch, ch=ch * 2, levels=levels - 1)
    else:
        self.inner = Level(in_channels=ch, ch=ch * 2)

The class takes the block parameter that counts the depth (by one step in each inner instance,
down or up; the first such parameter the spec declares, and never one the class takes already). The class
the recursion ends in (the bottom, whose nodes differ: ``levels == 0`` leaves the inner level
out) stays a class of its own. Module names, and so state_dict keys, are unchanged: the same
attribute holds the same module in every instance.

Classes are folded only where nothing but this is lost: their code is the same once the inner
class's name is set aside (same skeleton, same resolved arguments), the chain ends in one bottom
class, the parameter is the chain's depth plus a constant in every instance, and every other
caller builds a folded class directly (not inside an inline ``nn.Sequential``).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import keyword
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from archc.lowering.torch_args import Arg, ClassArgs
from archc.lowering.torch_folds import (
    CODE_FIELDS,
    HOLE_MARK,
    block_groups,
    plainer_first,
    rewritten_callers,
)
from archc.lowering.torch_plan import HOLE, RESERVED, Body, Leaf
from archc.pysource import is_identifier, literal

__all__ = ["Recursion", "fold_recursion", "model_calls", "recursion_names"]

#: stands for the inner class's name where two classes' skeletons are compared
_SELF = "\x06"


class _PlannedClass(Protocol):
    name: str
    block: str | None
    bodies: list[Body]
    args: ClassArgs


@dataclass(frozen=True)
class Recursion:
    """Classes of one block that differ only in the class of their inner instance, folded."""

    kept: str                   #: the folded class's name (the chain's deepest class)
    depths: dict[str, int]      #: each folded class -> how many folded instances it holds, itself included
    bottom: str                 #: the class the deepest folded instance's inner instance has
    seg: str                    #: the attribute holding the inner instance
    param: str                  #: the block parameter counting the depth
    step: int                   #: how much it grows with each level of depth (-1: it counts up inwards)
    constant: int               #: its value less step times the depth, in every folded instance

    def value(self, name: str) -> int:
        """The parameter's value in an instance of folded class ``name``."""
        return self.step * self.depths[name] + self.constant

    def condition(self) -> str:
        """Whether an instance's inner instance is of the folded class too (it is not the deepest)."""
        return f"{self.param} {'>' if self.step > 0 else '<'} {self.value(self.kept)}"

    def inner_value(self) -> str:
        """The parameter's value for the inner instance, over the instance's own."""
        return f"{self.param} {'-' if self.step > 0 else '+'} {abs(self.step)}"


def fold_recursion(classes: Sequence[Any], root: Any, skeleton: Callable[[Body], str],
                   fill: Callable[[str, ClassArgs], str], given: Mapping[str, str] | None = None
                   ) -> tuple[list[Any], Any, list[Recursion]]:
    """``classes`` (deepest first) and the model class ``root`` with each recursive chain folded
    into one class (see the module's docstring), and the chains folded; ``skeleton``: a body's
    skeleton; ``fill``: a text with holes as a class writes it; ``given``: the depth parameter's
    text in the call of the instance at each path (the model's parameter it follows), where not
    its value. The classes are dataclasses (``name``, ``block``, ``bodies``, ``args``,
    ``choices``); new ones are made where they change, never the planned ones changed."""
    applied = []
    while True:  # (a fold rewrites its callers: the classes are read again after each)
        for recursion, outermost, kept in _recursions(classes, skeleton):
            callers = rewritten_callers([*classes, root], recursion.depths,
                                        functools.partial(_caller_call, recursion=recursion, given=given or {}))
            if callers is None:
                continue
            applied.append(recursion)
            classes, root = callers[:-1], callers[-1]
            by_name = {c.name: c for c in classes}  # (the folded classes as rewritten, if they called others)
            folded = sorted((by_name[name] for name in recursion.depths), key=lambda c: -recursion.depths[c.name])
            kept = by_name[kept.name]
            merged = _folded_class(by_name[outermost.name], fill(kept.bodies[0].tree[recursion.seg].source, kept.args),
                                   [b for c in folded for b in c.bodies], recursion)
            classes = [merged if c.name == recursion.kept else c for c in classes
                       if c.name not in recursion.depths or c.name == recursion.kept]
            break
        else:
            return list(classes), root, applied


def model_calls(root: Any, applied: list[Recursion]) -> list[tuple[str, Recursion]]:
    """(path, chain) of each folded instance the model class builds directly (once folded)."""
    found = []
    for leaf in _leaves(root.bodies[0].tree):
        for recursion in applied:
            if leaf.kind == "child" and leaf.child is not None and leaf.source.startswith(f"{recursion.kept}("):
                found.append((leaf.child.path, recursion))
    return found


def recursion_names(classes: Sequence[Any], applied: list[Recursion], taken: Collection[str]) -> dict[str, str]:
    """New names (old -> new) for the classes of a recursion, as a reader looks for them: the class
    that builds the innermost level takes the plainer of its own and the innermost class's names
    (``Level`` where the planner gave the innermost the block's name and the outer class ``Level2``),
    and the innermost class the block's name with ``Innermost`` (``LevelInnermost``). For each
    folded chain (``applied``), and for a recursion of two levels (``classes``: one class building
    the innermost, built by no class of its block), which has nothing to fold. ``taken``: the
    names of the file's classes."""
    names: dict[str, str] = {}
    taken = set(taken)
    for outer, innermost in [(r.kept, r.bottom) for r in applied] + _two_levels(classes, applied):
        kept = min(outer, innermost, key=plainer_first)
        base = kept.rstrip("0123456789")
        renamed = next(name for name in (f"{base}Innermost{k or ''}" for k in itertools.count()) if name not in taken)
        names.update({outer: kept, innermost: renamed} if kept == innermost else {innermost: renamed})
        taken.add(renamed)
    return names


def _two_levels(classes: Sequence[Any], applied: list[Recursion]) -> list[tuple[str, str]]:
    """(outer, innermost) of each recursion of two classes: a class building one instance of its own
    block, whose class builds none, where no class of the block builds the outer one and the
    innermost class is built by no other (a longer chain unfolded keeps its numbers)."""
    folded = {name for r in applied for name in (*r.depths, r.bottom)}
    builds = {c.name: [leaf.source.partition("(")[0] for leaf in _leaves(c.bodies[0].tree) if _of_block(leaf, c.block)]
              for c in classes if c.block is not None}
    built_by: dict[str, list[str]] = {}
    for name, targets in builds.items():
        for target in targets:
            built_by.setdefault(target, []).append(name)
    return [(name, targets[0]) for name, targets in builds.items()
            if len(targets) == 1 and not builds.get(targets[0]) and targets[0] in builds
            and built_by[targets[0]] == [name] and name not in built_by and not {name, targets[0]} & folded]


def _of_block(leaf: Leaf, block: str | None) -> bool:
    """Whether ``leaf`` builds an instance of ``block`` (a class's own block: the recursion's next level)."""
    return leaf.kind == "child" and leaf.child is not None and leaf.child.info is not None \
        and leaf.child.info.block == block


def _leaves(tree: dict[str, Any]) -> Iterator[Leaf]:
    for sub in tree.values():
        if isinstance(sub, dict):
            yield from _leaves(sub)
        else:
            yield sub


@dataclass
class _Candidate:
    """A class building one instance of its own block, as its code reads with that instance's
    constructor call set aside (the other holes renumbered as if the call's were not there)."""

    planned: Any
    seg: str
    target: str
    skeleton: str
    code: tuple
    #: the texts of the call's holes (the classes in the middle of a chain must pass the same)
    call_texts: tuple


def _recursions(classes: Sequence[_PlannedClass], skeleton: Callable[[Body], str]
                ) -> Iterator[tuple[Recursion, Any, Any]]:
    """Each chain found, with its outermost class (whose code the folded class writes) and its
    deepest (whose call of the bottom class the folded class writes)."""
    for group in block_groups(classes, functools.partial(_candidate, skeleton=skeleton),
                              lambda candidate: (candidate.skeleton, candidate.code)):
        found = _chain(group) if len(group) > 1 else None
        if found is not None:
            yield found


def _candidate(c: _PlannedClass, skeleton: Callable[[Body], str]) -> _Candidate | None:
    """``c`` as a :class:`_Candidate` where it builds one child instance of its own block
    directly (and is not an ``nn.Sequential`` class); None otherwise."""
    body = c.bodies[0]
    if body.sequential:
        return None
    found = [(seg, leaf) for seg, leaf in body.tree.items() if isinstance(leaf, Leaf) and _of_block(leaf, c.block)]
    if len(found) != 1:
        return None
    seg, leaf = found[0]
    inside = [int(k) for k in HOLE_MARK.findall(leaf.source)]
    rank = {k: i for i, k in enumerate(k for k in range(len(body.holes)) if k not in inside)}
    tree = {**body.tree, seg: dataclasses.replace(leaf, source=_SELF)}
    text = HOLE_MARK.sub(lambda m: f"{HOLE}{rank[int(m[1])]}{HOLE}", skeleton(dataclasses.replace(body, tree=tree)))
    args = c.args
    written = [a if a.source[:1] != ("hole",) else dataclasses.replace(
        a, source=("call", inside.index(a.source[1])) if a.source[1] in inside else ("hole", rank[a.source[1]]))
        for a in args.args]
    code = ({rank[k]: v for k, v in args.text.items() if k in rank}, written,
            *(getattr(args, name) for name in CODE_FIELDS))
    return _Candidate(c, seg, leaf.source.partition("(")[0], text, code, tuple(args.text.get(k) for k in inside))


def _chain(group: list[_Candidate]) -> tuple[Recursion, Any, Any] | None:
    """The recursion of classes that each build one of the group or, the deepest, one class
    outside it, with the outermost and the deepest class; None where the group is not one such
    chain, the classes above the deepest call the next with different arguments, or no parameter
    counts the depth."""
    targets = {c.planned.name: c.target for c in group}
    outside = {target for target in targets.values() if target not in targets}
    if len(outside) != 1:
        return None
    bottom = outside.pop()
    if len({c.call_texts for c in group if c.target != bottom}) != 1:
        return None
    depths = {name: _depth(name, targets, bottom) for name in targets}
    found = _counting_param([c.planned for c in group], depths)
    if found is None:
        return None
    kept = next(c.planned for c in group if c.target == bottom)
    outermost = max((c.planned for c in group), key=lambda planned: depths[planned.name])
    return Recursion(kept.name, depths, bottom, group[0].seg, *found), outermost, kept


def _depth(name: str, targets: dict[str, str], bottom: str) -> int:
    """How many classes of the chain an instance of ``name`` holds, itself included (a closure
    calling itself would be a reference cycle, freed late: ``archc build`` pauses the collector)."""
    depth = 1
    while targets[name] != bottom:
        name, depth = targets[name], depth + 1
    return depth


def _counting_param(classes: list[_PlannedClass], depths: dict[str, int]) -> tuple[str, int, int] | None:
    """The block parameter that counts the depth (its value in every folded instance the same
    step times the depth, plus one constant: ``levels - 1`` counts down by 1, ``level + 1`` up),
    with that step and constant; the first the spec declares, among those the class can take."""
    first = classes[0]
    taken = RESERVED | {name for a in first.args.args for name in (a.name, a.written)} \
        | {name for name, _ in first.args.lets}
    seen: dict[str, dict[int, int]] = {}  # parameter -> depth -> its value there
    for c in classes:
        for body in c.bodies:
            for name, value in body.instance.info.args:
                if type(value) is int and name not in taken and is_identifier(name) and not keyword.iskeyword(name):
                    seen.setdefault(name, {}).setdefault(depths[c.name], value)
    for name, values in seen.items():
        if len(values) < len(set(depths.values())) or 1 not in values or 2 not in values:
            continue
        step = values[2] - values[1]
        constant = values[1] - step
        if step and all(values[d] == step * d + constant for d in values) and all(
                dict(b.instance.info.args).get(name) == step * depths[c.name] + constant
                for c in classes for b in c.bodies):
            return name, step, constant
    return None


def _caller_call(leaf: Leaf, name: str, recursion: Recursion, given: Mapping[str, str]) -> str:
    """A caller's call of folded class ``name``: the kept class's, with the depth parameter's value
    (or the text ``given`` for that instance)."""
    value = given.get(leaf.child.path) or literal(recursion.value(name))
    return _call(recursion.kept, _arguments(leaf.source), recursion.param, value)


def _arguments(source: str) -> str:
    """The arguments' text of a constructor call ``Name(...)``."""
    return source[source.index("(") + 1:-1]


def _call(name: str, arguments: str, param: str | None = None, value: str = "") -> str:
    extra = f"{param}={value}" if param is not None else ""
    return f"{name}({', '.join(part for part in (arguments, extra) if part)})"


def _folded_class(outermost: Any, bottom_call: str, bodies: list[Body], recursion: Recursion) -> Any:
    """The class serving every folded instance, written as the outermost one's class: it takes the
    depth parameter and builds itself, or (``bottom_call``, as the deepest class writes it) the
    bottom class at the deepest level."""
    param, arguments = recursion.param, _arguments(outermost.bodies[0].tree[recursion.seg].source)
    choice = (recursion.condition(), _call(recursion.kept, arguments, param, recursion.inner_value()), bottom_call)
    args = list(outermost.args.args)
    at = next((k for k, a in enumerate(args) if not a.required), len(args))
    args.insert(at, Arg(param, source=("param", param)))
    return dataclasses.replace(outermost, name=recursion.kept, bodies=bodies,
                               args=dataclasses.replace(outermost.args, args=args),
                               choices={**outermost.choices, recursion.seg: choice})
