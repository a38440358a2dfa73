"""Instances of one block that differ in how many equal children repeat: one class taking the count.

A stage written as a block (``{name: blocks, block: basic, repeat: n, overrides: {0: {stride:
stride}}}``, as torchvision's ``_make_layer``) and used with another ``n`` in each place is planned
as one class per count: the run of equal children is part of a class's code. :func:`fold_runs`
writes the classes whose code is the same but for the lengths of such runs as one, the length an
argument, as a PyTorch user writes it::

    class Stage(nn.Module):
        def __init__(self, in_channels: int, planes: int, n: int, stride: int = 1) -> None:
            super().__init__()
            self.blocks = nn.Sequential(
                BasicShortcut(in_channels=in_channels, planes=planes, stride=stride),
                *[Basic(planes=planes) for _ in range(n - 1)],
            )

A run's length is the block parameter it equals plus one constant in every instance (``n - 1``),
else an argument of its own (``num_blocks``). An instance whose container lacks the last run
altogether (a stage of one block), or another of its runs, is of the class too: the loop runs no
times. Classes that
hold their own block (a recursion), ``nn.Sequential`` classes (:mod:`.torch_stages`) and classes
whose runs follow the model's parameters already are left as they are. Module names, and so
state_dict keys, are unchanged: the same children at the same indices.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from archc.lowering.torch_args import Arg
from archc.lowering.torch_folds import count_param, fresh, merged_into, natural, plainer_first, plus, renamed
from archc.lowering.torch_plan import RESERVED, Leaf

__all__ = ["fold_runs"]

#: a run's length while classes' texts are compared (never a digit, never in a name)
_MASK = "\x05"

#: a class's text with the lengths of the given runs masked: (class, runs by (container, place),
#: the body to write, in place of its first) -> text
Render = Callable[[Any, Mapping[tuple, int], Any], str]
#: the runs of equal children in a class's containers: class -> length by (container, place)
RunsOf = Callable[[Any], Mapping[tuple, int]]


@dataclass
class _Read:
    """A class as the fold compares it: its runs' lengths (every body of a class has the same), its
    text with them masked, and that text without each run in turn (run -> text)."""

    planned: Any
    runs: dict[tuple, int]
    key: str
    trimmed: dict[tuple, str]
    #: the run this class lacks, where it joined a group as a stage without it
    missing: tuple | None = None


def fold_runs(classes: Sequence[Any], root: Any, render: Render, runs_of: RunsOf) -> tuple[list[Any], Any]:
    """``classes`` and the model class ``root`` with the classes of one block that differ only in
    their runs' lengths written as one (see the module's docstring); ``render`` and ``runs_of``:
    how the writer writes a class and reads its runs."""
    folded_blocks: set[str] = set()
    while True:  # (a fold rewrites its callers: the classes are read again after each)
        for same in _groups(classes, render, runs_of):
            folded = _folded(same)
            if folded is None:
                continue
            merged, values = folded
            # (the folded class stands where the one it writes stood)
            rewritten = merged_into(classes, root, merged, same[0].planned.name,
                                    {r.planned.name: () for r in same}, values)
            if rewritten is not None:
                classes, root = rewritten
                folded_blocks.add(merged.block)
                break
        else:
            *classes, root = renamed([*classes, root], _in_file_order(classes, folded_blocks))
            return classes, root


def _in_file_order(classes: Sequence[Any], blocks: set[str]) -> dict[str, str]:
    """New names (old -> new) that number the classes of each of ``blocks`` in the file's order
    without gaps (``Stage`` first, then ``Stage2``), as the planner numbers them before a fold takes
    some away; names another class holds are skipped."""
    names: dict[str, str] = {}
    for block in blocks:
        numbered: dict[str, list[str]] = {}  # (Stage, Stage2, ...; not BottleneckDownsample beside Bottleneck)
        for c in classes:
            if c.block == block:
                numbered.setdefault(c.name.rstrip("0123456789"), []).append(c.name)
        for base, own in numbered.items():
            if base not in own and f"{base}2" not in own:
                continue  # (no plain name among them: names the planner chose otherwise)
            others = {c.name for c in classes} - set(own)
            wanted = (name for name in (f"{base}{k if k > 1 else ''}" for k in itertools.count(1)) if name not in others)
            names.update({old: new for old, new in zip(own, wanted) if old != new})
    return names


def _groups(classes: Sequence[Any], render: Render, runs_of: RunsOf) -> Iterator[list[_Read]]:
    """Classes of one block whose texts are equal once their runs' lengths are masked, the first
    of each group with every run; a class whose text is another's without one of its runs joins
    that one's group, lacking that run."""
    by_block: dict[str, list[_Read]] = {}
    for c in classes:
        read = _read(c, render, runs_of)
        if read is not None:
            by_block.setdefault(c.block, []).append(read)
    for reads in by_block.values():
        groups: list[list[_Read]] = []
        for read in reads:
            group = next((g for g in groups if g[0].key == read.key), None)
            if group is None:
                groups.append([read])
            else:
                group.append(read)
        for group in groups:
            into = next(((g, run) for g in groups if g and g is not group and g[0].missing is None
                         for run, text in g[0].trimmed.items() if text == group[0].key), None)
            if into is not None:
                target, run = into
                target.extend(dataclasses.replace(read, missing=run) for read in group)
                group.clear()
        yield from (g for g in groups if len(g) > 1)


def _read(c: Any, render: Render, runs_of: RunsOf) -> _Read | None:
    """``c`` as the fold compares it; None where it is not a class to fold."""
    body = c.bodies[0]
    if c.block is None or body.sequential or c.args.counts or c.choices or c.added or _holds_own_block(c):
        return None
    runs = {key: count for key, count in runs_of(c).items() if key[0]}
    if not runs:
        return None
    trimmed = {}
    for seg in sorted({s for s, _ in runs}, key=natural):
        places = sorted(k for s, k in runs if s == seg)
        sub = body.tree[seg]
        if len(places) < 2 or any(isinstance(leaf, Leaf) and leaf.kind == "param" for leaf in sub.values()):
            continue
        items = list(sub.items())
        start = 0
        for k in places:  # (each run left out in turn: the text of a class lacking it)
            end = start + runs[(seg, k)]
            # (the runs after it move up one place)
            fewer = {(s, j - (s == seg and j > k)): n for (s, j), n in runs.items() if (s, j) != (seg, k)}
            tree = {**body.tree, seg: dict(items[:start] + items[end:])}
            trimmed[(seg, k)] = render(c, fewer, dataclasses.replace(body, tree=tree))
            start = end
    return _Read(c, runs, render(c, runs, body), trimmed)


def _holds_own_block(c: Any) -> bool:
    """Whether ``c`` builds an instance of its own block (a recursion: :mod:`.torch_recursion`'s)."""
    return any(leaf.kind == "child" and leaf.child is not None and leaf.child.info is not None
               and leaf.child.info.block == c.block for body in c.bodies for leaf in _leaves(body.tree))


def _leaves(tree: dict[str, Any]) -> Iterator[Leaf]:
    # (a function of the module: a closure calling itself would be a reference cycle, freed late)
    for sub in tree.values():
        yield from _leaves(sub) if isinstance(sub, dict) else [sub]


def _length(read: _Read, run: tuple) -> int:
    """The length in ``read``'s class of the first class's ``run`` (0 where it lacks it; a class
    lacking one has the runs after it one place earlier)."""
    if read.missing is None:
        return read.runs[run]
    (seg, k), (s, j) = read.missing, run
    return 0 if run == read.missing else read.runs[(s, j - (s == seg and j > k))]


def _folded(same: list[_Read]) -> tuple[Any, dict[str, dict[str, int]]] | None:
    """The one class for ``same`` (the first class's, its varying runs' lengths written as
    arguments) and each instance's values of the arguments it gained, by path; None where no run
    differs."""
    first = same[0].planned
    args = first.args
    taken = set(RESERVED) | {n for a in args.args for n in (a.name, a.written)} | {n for n, _ in args.lets}
    own = {a.name: a.written for a in args.args}
    served = sorted(((read, body) for read in same for body in read.planned.bodies),
                    key=lambda item: natural(item[1].instance.path))
    counts = dict(args.counts)
    new: dict[str, dict[str, int]] = {}  # argument -> each instance's value, by path
    for run in sorted(same[0].runs, key=lambda key: (natural(key[0]), key[1])):
        lengths = [(_length(read, run), body) for read, body in served]
        if len({n for n, _ in lengths}) == 1:
            continue
        found = count_param(lengths, taken | new.keys(), own)
        if found is None:  # (no parameter of the block counts it: an argument of its own)
            name = fresh(f"num_{run[0]}", taken | new.keys())
            new[name] = {body.instance.path: n for n, body in lengths}
            counts[run] = name
            continue
        name, constant = found
        if name not in own and name not in new:
            new[name] = {body.instance.path: dict(body.instance.info.args)[name] for _, body in lengths}
        counts[run] = plus(own.get(name, name), constant)
    if counts == args.counts:
        return None
    # (an argument only a run reads that a class lacks: its callers pass none, the loop never reads it)
    passed_by_all = set.intersection(*({a.name for a in read.planned.args.args} for read in same))
    kept = [a for a in args.args if a.name in passed_by_all or not a.required]
    at = next((k for k, a in enumerate(kept) if not a.required), len(kept))
    kept[at:at] = [Arg(name, source=("runs",)) for name in new]
    kept += [dataclasses.replace(a, default=None) for a in args.args if a.name not in passed_by_all and a.required]
    values = {body.instance.path: {name: by_path[body.instance.path] for name, by_path in new.items()}
              for _, body in served}
    name = min((read.planned.name for read in same), key=plainer_first)  # (Stage, not Stage2)
    # (the first body is the one the class is written from: one with every run)
    bodies = [*first.bodies, *(body for read, body in served if read.planned is not first)]
    merged = dataclasses.replace(first, name=name, bodies=bodies, shown=tuple(body.instance.path for _, body in served),
                                 args=dataclasses.replace(args, args=kept, counts=counts))
    return merged, values
