"""What the folds of planned classes into one share (:mod:`.torch_recursion`, :mod:`.torch_dense`):
grouping classes whose code compares equal, and rewriting the calls of folded classes in the
classes that build them.

A fold happens after planning, on the classes as they are written: the planned classes and bodies
are never changed (a later plan may reuse them), new ones are made where a call changes.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from archc.lowering.torch_args import size_name
from archc.lowering.torch_plan import HOLE, Body, Leaf
from archc.pysource import is_identifier, literal

__all__ = ["CODE_FIELDS", "HOLE_MARK", "Added", "Positions", "equal_groups", "fresh", "merged_into", "natural",
           "plainer_first", "renamed", "rewritten_callers"]

#: the ClassArgs fields that decide a class's code besides its holes' texts and its arguments (the
#: others record which instances it serves)
CODE_FIELDS = ("lets", "stored", "guards", "counts", "checks")
#: a hole in a text, and its number
HOLE_MARK = re.compile(f"{HOLE}([0-9]+){HOLE}")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Added:
    """A child a folded class adds by a name it computes: ``self.add_module({name}, {call})``, in a
    loop ``for {each} in range({span}):`` where ``each`` is given."""

    name: str
    call: str
    each: str = ""
    span: str = ""


class Positions:
    """Numbers a call's holes by their places in it (``re.sub``'s replacement): calls of one class
    compare equal whatever their holes' numbers in their bodies."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, match: re.Match) -> str:
        self.seen += 1
        return f"{HOLE}{self.seen - 1}{HOLE}"


def natural(path: str) -> list:
    """A path's sort key, its numbers as numbers (``block2`` before ``block10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"([0-9]+)", path)]


def plainer_first(name: str) -> tuple:
    """A class name's sort key: the plainer first (``Stage`` before ``Stage2``, ``Stage2`` before ``Stage10``)."""
    return len(name), natural(name)


def fresh(wanted: str, taken: Collection[str]) -> str:
    """``wanted``, or ``wanted_2``, ``wanted_3``, ..., the first not ``taken``."""
    return next(name for name in itertools.chain([wanted], (f"{wanted}_{k}" for k in itertools.count(2)))
                if name not in taken)


def equal_groups(items: Iterable[_T], key: Callable[[_T], Any]) -> list[list[_T]]:
    """``items`` grouped by equal keys (which need not be hashable), in their order."""
    groups: list[tuple[Any, list[_T]]] = []
    for item in items:
        k = key(item)
        group = next((members for seen, members in groups if seen == k), None)
        if group is None:
            groups.append((k, [item]))
        else:
            group.append(item)
    return [members for _, members in groups]


def block_groups(classes: Iterable[Any], read: Callable[[Any], _T | None], key: Callable[[_T], Any]
                 ) -> Iterator[list[_T]]:
    """Per block, in the classes' order: what ``read`` makes of each of its classes (None: nothing
    to fold), grouped by equal ``key``."""
    found: dict[str, list[_T]] = {}
    for c in classes:
        item = read(c) if c.block is not None else None
        if item is not None:
            found.setdefault(c.block, []).append(item)
    for items in found.values():
        yield from equal_groups(items, key)


def rewritten_callers(classes: list[Any], folded: Collection[str], rewrite: Callable[[Leaf, str], str | None]
                      ) -> list[Any] | None:
    """Each class (those named in ``folded`` as they are) with each call of a folded class
    rewritten: ``rewrite(leaf, class name)`` gives the call's new text, or None where it cannot be
    written. None where a class calls a folded class other than directly (inside an inline
    ``nn.Sequential``'s text), a call cannot be rewritten, or the instances of one class would
    call differently (they share its text; a folded class's instances may differ elsewhere)."""
    result = []
    for c in classes:
        if c.name in folded:
            result.append(c)
            continue
        trees = [_rewritten_tree(body.tree, folded, rewrite) for body in c.bodies]
        if any(tree is None for tree in trees):
            return None
        if all(tree is body.tree for tree, body in zip(trees, c.bodies)):  # (it calls none)
            result.append(c)
            continue
        if len({_changes(body.tree, tree) for tree, body in zip(trees, c.bodies)}) != 1:
            return None
        result.append(dataclasses.replace(c, bodies=[dataclasses.replace(c.bodies[0], tree=trees[0]), *c.bodies[1:]]))
    return result


def merged_into(classes: list[Any], root: Any, merged: Any, at: str, drops: Mapping[str, Collection[str]],
                values: Mapping[str, Mapping[str, Any]], old: Mapping[str, Mapping[str, Any]] | None = None
                ) -> tuple[list[Any], Any] | None:
    """``classes`` and the model class ``root`` with the classes ``drops`` names folded into ``merged``,
    which stands where class ``at`` stood, and every call of them rewritten to it (:func:`kept_call`,
    with ``drops``, ``values`` and ``old``); None where a caller cannot be rewritten."""
    names = set(drops)
    everyone = rewritten_callers([*classes, root], names, functools.partial(
        kept_call, kept=merged.name, drops=drops, values=values, old=old))
    if everyone is None:
        return None
    return [merged if c.name == at else c for c in everyone[:-1] if c.name not in names or c.name == at], everyone[-1]


def _changes(before: dict[str, Any], after: dict[str, Any]) -> tuple:
    """(segment, new text) of each call ``after`` rewrote, nested containers' as their own tuples."""
    return tuple((seg, _changes(before[seg], sub) if isinstance(sub, dict) else sub.source)
                 for seg, sub in after.items() if sub is not before[seg])


def _rewritten_tree(tree: dict[str, Any], folded: Collection[str], rewrite: Callable[[Leaf, str], str | None]
                    ) -> dict[str, Any] | None:
    """``tree`` (the same object where nothing changes) with each call of a folded class rewritten."""
    changed: dict[str, Any] = {}
    for seg, sub in tree.items():
        if isinstance(sub, dict):
            new = _rewritten_tree(sub, folded, rewrite)
            if new is None:
                return None
            if new is not sub:
                changed[seg] = new
            continue
        called = [name for name in folded if re.search(rf"(?<![\w.]){re.escape(name)}\(", sub.source)]
        if not called:
            continue
        name = sub.source.partition("(")[0]
        source = rewrite(sub, name) if sub.kind == "child" and called == [name] and sub.child is not None else None
        if source is None:
            return None
        changed[seg] = dataclasses.replace(sub, source=source)
    return {**tree, **changed} if changed else tree


def renamed(classes: list[Any], names: Mapping[str, str]) -> list[Any]:
    """``classes`` with those ``names`` names (old -> new, all at once: two may swap names) renamed,
    and every constructor call of one in their code (their trees' texts and recursive choices); a
    class that neither is renamed nor calls one is the same object."""
    if not names:
        return list(classes)
    called = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, names)) + r")(?=\()")
    text = functools.partial(called.sub, lambda m: names[m[1]])
    result = []
    for c in classes:
        trees = [_renamed_tree(b.tree, called, text) for b in c.bodies]
        choices = {seg: tuple(map(text, choice)) for seg, choice in c.choices.items()}
        added = tuple(dataclasses.replace(a, call=text(a.call)) for a in c.added)
        if c.name not in names and all(t is b.tree for t, b in zip(trees, c.bodies)) and choices == c.choices \
                and added == c.added:
            result.append(c)
            continue
        result.append(dataclasses.replace(
            c, name=names.get(c.name, c.name), choices=choices, added=added,
            bodies=[b if t is b.tree else dataclasses.replace(b, tree=t) for t, b in zip(trees, c.bodies)]))
    return result


def _renamed_tree(tree: dict[str, Any], called: re.Pattern, text: Callable[[str], str]) -> dict[str, Any]:
    """``tree`` with ``text`` applied to each leaf's source that ``called`` finds a call in (the same
    object where none; a closure calling itself would be a reference cycle, freed late)."""
    changed: dict[str, Any] = {}
    for seg, sub in tree.items():
        if isinstance(sub, dict):
            new = _renamed_tree(sub, called, text)
            if new is not sub:
                changed[seg] = new
        elif called.search(sub.source):
            changed[seg] = dataclasses.replace(sub, source=text(sub.source))
    return {**tree, **changed} if changed else tree


def plus(text: str, constant: int) -> str:
    """``text`` plus ``constant``, as a person writes it (``n + 2``, ``n - 1``, ``n``)."""
    return text if not constant else f"{text} {'+' if constant > 0 else '-'} {abs(constant)}"


def count_param(counted: list[tuple[int, Body]], taken: Collection[str], own: Collection[str]
                ) -> tuple[str, int] | None:
    """(the block parameter, the constant) where one of the instances' parameters plus the constant
    is every instance's number of children (``counted``: that number and the instance's body);
    the first the spec declares, one the class takes already (``own``) or one it can take (not
    ``taken``)."""
    number, body = counted[0]
    for name, value in body.instance.info.args:
        if type(value) is not int or not is_identifier(name) or (name in taken and name not in own):
            continue
        constant = number - value
        if all(type(given := dict(b.instance.info.args).get(name)) is int and n - given == constant
               for n, b in counted):
            return name, constant
    return None


def kept_call(leaf: Leaf, name: str, kept: str, drops: Mapping[str, Collection[str]],
              values: Mapping[str, Mapping[str, Any]], old: Mapping[str, Mapping[str, Any]] | None = None
              ) -> str | None:
    """A caller's call of folded class ``name`` (a :func:`rewritten_callers` rewrite): the kept
    class's, without the keywords ``drops`` names for ``name`` (arguments the folded class no
    longer takes), with those it gained, each with its value for the instance called (``values``
    by path); None where that instance has none. A keyword dropped and gained with the value it
    had (``old``: the dropped ones' values, by path) keeps the caller's text (``in_channels=in_channels``)."""
    path = leaf.child.path
    if path not in values:
        return None
    gained = dict(values[path])
    same = {k for k, v in (old or {}).get(path, {}).items() if k in gained and _typed_equal(gained[k], v)}
    # (a child's call passes each argument as keyword=hole: no comma inside one)
    passed = [a for a in leaf.source[len(name) + 1:-1].split(", ") if a]
    text = {a.partition("=")[0]: a for a in passed}
    given = [a for a in passed if a.partition("=")[0] not in drops[name]]
    return f"{kept}({', '.join(given + [text[k] if k in same else f'{k}={literal(v)}' for k, v in gained.items()])})"


def _typed_equal(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def input_size_name(bodies: list[Body], values: Mapping[str, int], dims_of: Callable[[Body], tuple | None],
                    formal: str) -> str | None:
    """The argument name (``in_channels``) for numbers, one per instance by path (``values``), that
    are one size of each instance's first input, the same dim in every instance; None where they
    are not. ``dims_of``: the sizes of an instance's first input; ``formal``: that input's name."""
    dims = [dims_of(body) for body in bodies]
    if any(d is None for d in dims) or len({len(d) for d in dims}) != 1:
        return None
    for d in range(1, len(dims[0])):
        if all(ds[d] == values[body.instance.path] for ds, body in zip(dims, bodies)):
            return size_name(formal, d, len(dims[0]))
    return None
