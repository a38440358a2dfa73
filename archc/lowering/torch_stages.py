"""Stages of one block as one ``nn.Sequential`` class, as torchvision's RegNet writes ``AnyStage``.

A block whose children are the repetitions of one ``repeat:``, named by one pattern counting up
(RegNet's stage: ``instance_name: "block${stage_index}-${index}"``, the first repetition a
projection block, the others alike), is planned as one class per stage: each stage has another
number of blocks, other widths and other names (``block2-1`` in one, ``block3-1`` in the next).
:func:`fold_stages` writes the classes whose code is the same but for those as one::

    class Stage2(nn.Sequential):
        def __init__(self, in_channels: int, groups: int, squeeze: int, out: int, squeeze_2: int,
                     depth: int, stage_index: int) -> None:
            super().__init__()
            self.add_module(f"block{stage_index}-0", ResBottleneckBlockProj(in_channels=in_channels, ...))
            for i in range(1, depth):
                self.add_module(f"block{stage_index}-{i}", ResBottleneckBlock(groups=groups, ...))

Its arguments: the block parameter a number in the names is (``stage_index``); the number of
children (a block parameter it equals, plus a constant, or ``depth``); and one per number the
children's calls pass that differs between instances (named after the input size it equals,
``in_channels``, else after the call's keyword; one argument where two numbers are equal in every
instance). The repeated children must pass the same numbers within an instance. Module names,
and so state_dict keys, are unchanged.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from archc.lowering.torch_args import Arg
from archc.lowering.torch_folds import (
    CODE_FIELDS,
    HOLE_MARK,
    Added,
    Positions,
    block_groups,
    count_param,
    fresh,
    input_size_name,
    merged_into,
    natural,
    plainer_first,
    plus,
)
from archc.lowering.torch_plan import NUMBERED_NAME, RESERVED, Body, Leaf, counts_on
from archc.pysource import UnsafeValue, formatted_name, is_identifier, literal

__all__ = ["fold_stages"]

#: where the block parameter's value stands in a name's text, while names are compared
_PARAM = "\x08"


@dataclass
class _Stage:
    """A class whose children are one numbered repeat: the head (the first children, each its own
    call) and the run (the rest, one call), each call with its holes numbered by their places,
    and each child's holes; the names' text before the number (with the parameter's value as
    :data:`_PARAM`) and after it, and the first number."""

    planned: Any
    calls: tuple[str, ...]
    holes: list[list[int]]
    head: int
    name: tuple[str, str, str | None]
    first: int

    @property
    def short(self) -> bool:
        """Whether it has no run: a stage of its head alone (RegNet's first stage, one block)."""
        return self.head == len(self.holes)

    def positions(self) -> Iterator[tuple[int, int]]:
        """(the call, the place in it) of each number the children's calls pass: the head's, then the run's."""
        for k, call in enumerate(self.calls):
            for place in range(len(HOLE_MARK.findall(call))):
                yield k, place


def fold_stages(classes: Sequence[Any], root: Any, dims_of: Callable[[Body], tuple | None]) -> tuple[list[Any], Any]:
    """``classes`` and the model class ``root`` with the classes of each block's stages written as
    one (see the module's docstring); ``dims_of``: the sizes of an instance's first input."""
    while True:  # (a fold rewrites its callers: the classes are read again after each)
        for same in _groups(classes):
            folded = _folded(same, dims_of)
            if folded is None:
                continue
            merged, values = folded
            drops = {s.planned.name: {a.written for a in s.planned.args.args if a.source[:1] == ("hole",)}
                     for s in same}
            old = {body.instance.path: {a.written: body.holes[a.source[1]] for a in s.planned.args.args
                                        if a.source[:1] == ("hole",)} for s in same for body in s.planned.bodies}
            # (the folded class stands where the one it writes stood)
            rewritten = merged_into(classes, root, merged, same[0].planned.name, drops, values, old)
            if rewritten is not None:
                classes, root = rewritten
                break
        else:
            return list(classes), root


def _groups(classes: Sequence[Any]) -> Iterator[list[_Stage]]:
    """The stages to fold: those of equal code, at least one with several children (whose calls the
    folded class writes: it comes first). A stage of one child is read as a run of one, or, where
    it joins no such group so, as the head of a stage whose run is empty (RegNet's first stage, of
    one block, beside stages of a projection block and blocks alike)."""
    found = list(block_groups(classes, _stage, _key))
    full = [same for same in found if any(len(s.holes) > 1 for s in same)]
    for same in found:
        if not any(same is group for group in full):
            heads = [dataclasses.replace(s, head=1) for s in same]
            into = next((group for group in full if _key(group[0], head_only=True) == _key(heads[0])), None)
            if into is not None:
                into.extend(heads)
    for same in full:
        same.sort(key=lambda s: s.short)
    return (same for same in full if len(same) > 1)


def _stage(c: Any) -> _Stage | None:
    """``c`` as a :class:`_Stage`: an ``nn.Sequential`` class of numbered child instances only,
    whose arguments are its children's numbers (or the model's parameters handed down)."""
    body = c.bodies[0]
    items = list(body.tree.items())
    if not body.sequential or body.ties or body.containers or c.args.counts or not items or any(
            not isinstance(leaf, Leaf) or leaf.kind != "child" for _, leaf in items):
        return None
    segs = [seg for seg, _ in items]
    matches = [NUMBERED_NAME.match(seg) for seg in segs]
    if any(m is None for m in matches) or not all(counts_on(a, b) for a, b in itertools.pairwise(segs)):
        return None
    calls = [HOLE_MARK.sub(Positions(), leaf.source) for _, leaf in items]
    # (the run: the last children, written alike; the first ones differ, by class or by a number)
    written = [HOLE_MARK.sub(lambda m: c.args.text.get(int(m[1]), m[0]), leaf.source) for _, leaf in items]
    head = len(items) - 1
    while head > 0 and written[head - 1] == written[-1]:
        head -= 1
    before, number, _ = matches[0].groups()
    holes = [[int(k) for k in HOLE_MARK.findall(leaf.source)] for _, leaf in items]
    return _Stage(c, (*calls[:head], calls[-1]), holes, head, _name(before, body), int(number))


def _name(before: str, body: Body) -> tuple[str, str, str | None]:
    """The names' text before their number with the value of the first block parameter it shows
    once set aside, and that parameter (None where none shows)."""
    for param, value in body.instance.info.args:
        if type(value) is int and before.count(str(value)) == 1 and is_identifier(param):
            return before.replace(str(value), _PARAM), param, param
    return before, "", None


def _key(stage: _Stage, head_only: bool = False) -> tuple:
    """What stages folded into one class share; ``head_only``: as a short stage's would be."""
    args = stage.planned.args
    kept = [a for a in args.args if a.source[:1] != ("hole",)]
    return (stage.calls[:stage.head] if head_only else stage.calls, stage.head, stage.name[0], stage.name[2],
            stage.first, kept,
            NUMBERED_NAME.match(next(iter(stage.planned.bodies[0].tree))).group(3),
            *(getattr(args, f) for f in CODE_FIELDS))


#: one instance of a folded class: its class's :class:`_Stage` and its body
_Served = tuple[_Stage, Body]


def _folded(same: list[_Stage], dims_of: Callable[[Body], tuple | None]) -> tuple[Any, dict] | None:
    """The one class for ``same`` (the first class's, adding its children by computed names), and
    each instance's values of its arguments, by path; None where a number has no expression."""
    first = same[0].planned
    kept = [a for a in first.args.args if a.source[:1] != ("hole",)]
    taken = set(RESERVED) | {n for a in kept for n in (a.name, a.written)} | {n for n, _ in first.args.lets}
    served = sorted(((s, body) for s in same for body in s.planned.bodies),
                    key=lambda item: natural(item[1].instance.path))
    new: list[tuple[str, dict[str, int]]] = []  # (argument, each instance's value)
    texts = {}
    for k, place in same[0].positions():
        found = _number(served, k, place, taken | {n for n, _ in new}, new, dims_of)
        if found is None:
            return None
        texts[(k, place)] = found
    each = fresh("i", taken | {n for n, _ in new})
    param = same[0].name[2]
    counted = count_param([(len(s.holes), body) for s, body in served], taken | {n for n, _ in new} | {each},
                          {a.name for a in kept})
    if counted is None:  # (no parameter of the block is the number of children: an argument of its own)
        counted = (fresh("depth", taken | {n for n, _ in new} | {each, param}), 0)
        new.append((counted[0], {body.instance.path: len(s.holes) for s, body in served}))
    elif counted[0] not in taken and counted[0] != param:
        new.append((counted[0], {body.instance.path: dict(body.instance.info.args)[counted[0]] for _, body in served}))
    if param is not None and param not in taken:
        new.append((param, {body.instance.path: dict(body.instance.info.args)[param] for _, body in served}))
    added = _added(same[0], texts, each, counted)
    if added is None:
        return None
    values = {body.instance.path: {name: by_path[body.instance.path] for name, by_path in new
                                   if body.instance.path in by_path} for _, body in served}
    at = next((k for k, a in enumerate(kept) if not a.required), len(kept))
    kept[at:at] = [Arg(name, source=("stage",)) for name, by_path in new if len(by_path) == len(served)]
    # (what only the run's children read: None where a short stage has no run, which never reads it)
    kept += [Arg(name, None, source=("stage",)) for name, by_path in new if len(by_path) < len(served)]
    bodies = [dataclasses.replace(body, tree={}) for _, body in served]
    name = min((s.planned.name for s in same), key=plainer_first)  # (Stage, not Stage2)
    merged = dataclasses.replace(first, name=name, bodies=bodies, args=dataclasses.replace(first.args, args=kept),
                                 added=added)
    return merged, values


def _number(served: list[_Served], k: int, place: int, taken: set[str], new: list[tuple[str, dict[str, int]]],
            dims_of: Callable[[Body], tuple | None]) -> str | None:
    """The text of one number of call ``k`` (the head's, then the run's): its text where every class
    writes the same, else an argument (a new one appended to ``new``) or one number."""
    texts = {s.planned.args.text.get(_hole(s, k, place, j)) for s, _ in served for j in _children(s, k)}
    text = texts.pop() if len(texts) == 1 else None
    if text is not None and not _reads_hole_argument(text, served):
        return text
    by_path: dict[str, int] = {}
    for s, body in served:
        values = {body.holes[_hole(s, k, place, j)] for j in _children(s, k)}
        if not values:  # (a short stage has no run: it passes nothing there)
            continue
        value = values.pop() if len(values) == 1 else None
        if type(value) is not int:
            return None
        by_path[body.instance.path] = value
    if len(set(by_path.values())) == 1:
        return literal(next(iter(by_path.values())))
    same = next((name for name, values in new if by_path.items() <= values.items()), None)
    if same is not None:
        return same
    passing = [(s, body) for s, body in served if body.instance.path in by_path]
    name = input_size_name([body for _, body in passing], by_path, dims_of, "x") or _block_param(passing, by_path) \
        or _keyword(passing[0][0].calls[k], place)
    if name is None:
        return None
    name = fresh(name, taken)
    new.append((name, by_path))
    return name


def _children(stage: _Stage, k: int) -> range:
    """The children whose calls are call ``k``: one of the head, or every one of the run."""
    return range(k, k + 1) if k < stage.head else range(stage.head, len(stage.holes))


def _hole(stage: _Stage, k: int, place: int, child: int) -> int:
    return stage.holes[child][place]


def _reads_hole_argument(text: str, served: list[_Served]) -> bool:
    """Whether ``text`` reads an argument the folded class no longer takes (one its calls' numbers made)."""
    names = {a.written for s, _ in served for a in s.planned.args.args if a.source[:1] == ("hole",)}
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", text) for n in names)


def _block_param(served: list[_Served], by_path: dict[str, int]) -> str | None:
    """The block parameter whose value the number is in every instance (the first the spec declares)."""
    return next((name for name, _ in served[0][1].instance.info.args if is_identifier(name) and all(
        dict(body.instance.info.args).get(name) == by_path[body.instance.path] for _, body in served)), None)


def _keyword(call: str, place: int) -> str | None:
    """The keyword the call passes its ``place``-th number as (``squeeze=``)."""
    found = re.findall(rf"(\w+)={re.escape(chr(0))}[0-9]+{re.escape(chr(0))}", call)
    return found[place] if place < len(found) and is_identifier(found[place]) else None


def _added(stage: _Stage, texts: dict[tuple[int, int], str], each: str, counted: tuple[str, int]
           ) -> tuple[Added, ...] | None:
    """The children as the folded class adds them: the head's one by one, the run's in a loop."""
    before, param, _ = stage.name
    after = NUMBERED_NAME.match(next(iter(stage.planned.bodies[0].tree))).group(3)
    pieces_before = [piece for part in before.split(_PARAM) for piece in (part, (param, 0))][:-1] if param else [before]

    def call(k: int) -> str:
        return HOLE_MARK.sub(lambda m: texts[(k, int(m[1]))], stage.calls[k])

    try:
        added = [Added(formatted_name([*pieces_before, str(stage.first + k) + after]), call(k))
                 for k in range(stage.head)]
        name = formatted_name([*pieces_before, (each, 0), after])
    except UnsafeValue:
        return None
    # (the loop runs over the run's numbers: from the first after the head to the last child's)
    start, end = stage.first + stage.head, plus(counted[0], counted[1] + stage.first)
    return (*added, Added(name, call(stage.head), each, f"{start}, {end}" if start else end))
