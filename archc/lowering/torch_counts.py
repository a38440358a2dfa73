"""Repeat counts the generated classes take: ``range(depth)`` where the spec repeats a block ``depth`` times.

A numbered ``repeat:`` (``{name: layers, block: layer, repeat: depth}``: children ``layers.0``,
``layers.1``, ...) makes a run of equal children in one of its owner's containers, which the file
writes as a loop (``*[Layer(...) for _ in range(10)]``). Where the owner is the model or a block
instance with a class of its own (a Transformer's encoder), the run's length may follow the
parameter. The spec is elaborated again with the parameters such counts read
(:attr:`~archc.ir.graph.Graph.repeat_counts`; by the caller's function: the lowering never reads a
spec) each moved up by its own step, then each one less (:func:`count_changes`), and each
elaboration is written with the lengths of those runs masked. A parameter is taken where, at
every value tried,

- every text comes out the same (every class, but for those runs' lengths): the value changed how
  many children repeat, nothing else, and
- every run whose length moved is one expression at every value: the parameter, or one of its
  items (``layers[0]``), plus a constant (``num_layers - 2``: the first two layers differ).

The classes holding those runs then write their lengths (a block class takes the parameter from
the model, handed down as the model's other run-time parameters are), and the model class refuses
a value that makes a counted run shorter than checked (:func:`_least`): below, the structure may
differ (a condition on ``index`` turning, a class of one child).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from archc.errors import ArchcError
from archc.ir.graph import Graph

__all__ = ["Counted", "MASKED", "Written", "count_changes", "probe_counts"]

#: a run's length in a masked text (never a digit, never in a name)
_MASK = "\x05"

#: one plan of an elaboration: its texts with the lengths of the runs of the model class and of each
#: class of one instance masked (see :data:`MASKED`), each such run's length by (instance path,
#: container, run's place), and the paths of those instances ("" the model's)
Written = tuple[tuple[str, ...], Mapping[tuple, int], frozenset]


class _EveryTopRun(Mapping):
    """Counts that mask the length of every run in a top-level container (keys ``(container, k)``)."""

    def __getitem__(self, key: tuple) -> str:
        if len(key) != 2:
            raise KeyError(key)
        return _MASK

    def get(self, key: tuple, default: Any = None) -> Any:
        return _MASK if len(key) == 2 else default

    def __iter__(self) -> Iterator[tuple]:
        return iter(())

    def __len__(self) -> int:
        return 0


#: the ``counts`` a class writes its masked text with (:attr:`~archc.lowering.torch_args.ClassArgs.counts`)
MASKED: Mapping[tuple, str] = _EveryTopRun()


@dataclass
class Counted:
    """The parameters the classes take as repeat counts, and each counted run's length text by
    (instance path, container, run's place)."""

    params: list[str] = field(default_factory=list)
    texts: dict[tuple, str] = field(default_factory=dict)
    #: each parameter -> the conditions on it under which every run it counts is as long as one
    #: checked (``num_layers >= 3``): the model class refuses other values
    checks: dict[str, list[str]] = field(default_factory=dict)


def count_changes(params: Mapping[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """The values the count parameters ``names`` are tried at together: each int, and each item of a
    list, moved up by its own step (the first one more, the next two more, ...: a run that follows
    ``layers[2]`` is told from one that follows ``layers[0]`` or ``depth``), then each one less, not
    below 1 (a condition turning right below the file's values), where that is another value."""
    step = itertools.count(1)
    more: dict[str, Any] = {}
    less: dict[str, Any] = {}
    for name in names:
        value = params[name]
        if _is_int(value):
            more[name], less[name] = value + next(step), max(value - 1, 1)
        else:
            more[name], less[name] = [item + next(step) for item in value], [max(item - 1, 1) for item in value]
    return [more] + ([less] if any(less[name] != params[name] for name in names) else [])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _countable(value: Any) -> bool:
    """An int, or a list of ints (the spec's lists are list subclasses that know where they were written)."""
    return _is_int(value) or (isinstance(value, list) and bool(value) and all(_is_int(v) for v in value))


def probe_counts(graph: Graph, live: Mapping[str, Any] | set[str], elaborate: Callable[[Mapping[str, Any]], Graph],
                 written_of: Callable[[Graph], Written]) -> Counted:
    """The parameters outside ``live`` that the model's repeat counts follow (see the module's
    docstring), with the text of each run length they move. All of them are tried together first
    (two elaborations however many there are); one at a time where that finds none."""
    if not _candidates(graph, live, None):
        return Counted()
    base_texts, base_runs, owners = written_of(graph)
    # (an owner none of whose runs could be counted: DenseNet's blocks, each layer an attribute)
    candidates = _candidates(graph, live, owners & {key[0] for key in base_runs})
    if not candidates:
        return Counted()

    def tried(names: list[str]) -> _Tried | None:
        return _tried(graph.params, names, base_texts, elaborate, written_of)

    together = tried(candidates)
    found = _solve(graph.params, base_runs, {tuple(candidates): together}) if together is not None else Counted()
    if found.params or len(candidates) == 1:
        return found
    return _solve(graph.params, base_runs, {(p,): t for p in candidates if (t := tried([p])) is not None})


#: the elaborations with some parameters changed whose texts are the file's, each as (its parameter
#: values, its runs' lengths); and the parameter values of those whose texts differ
_Tried = tuple[list[tuple[Mapping[str, Any], Mapping[tuple, int]]], list[Mapping[str, Any]]]


def _candidates(graph: Graph, live: Mapping[str, Any] | set[str], owners: frozenset | None) -> list[str]:
    """The parameters outside ``live`` (ints, lists of ints) that a numbered repeat's count reads, where
    the repeat's container is the model's or an instance in ``owners`` (None: any)."""
    read: set[str] = set()
    for container, params in graph.repeat_counts.items():
        if owners is None or container.rpartition(".")[0] in owners:
            read |= params
    return [p for p, v in graph.params.items() if p in read and p not in live and _countable(v)]


def _tried(params: Mapping[str, Any], names: list[str], base_texts: tuple[str, ...],
           elaborate: Callable[[Mapping[str, Any]], Graph], written_of: Callable[[Graph], Written]) -> _Tried | None:
    """The spec elaborated at :func:`count_changes` of ``names``; None where more repeats changed
    more than the repeats (or no value was accepted)."""
    same, other = [], []
    for k, change in enumerate(count_changes(params, names)):
        try:
            texts, runs, _ = written_of(elaborate(change))
        except ArchcError:  # a value the spec refuses: no point
            continue
        values = {**params, **change}
        if texts == base_texts:
            same.append((values, runs))
        elif k == 0:
            return None
        else:
            other.append(values)
    return (same, other) if same else None


def _solve(params: Mapping[str, Any], base_runs: Mapping[tuple, int], groups: Mapping[tuple[str, ...], _Tried]
           ) -> Counted:
    """The parameters of those ``groups`` (each tried together) whose runs' lengths a guess gives at
    every value tried, and refused where the texts differ; dropping the groups under which one does
    not, until the rest hold."""
    groups = dict(groups)
    while groups:  # (each round drops a group at least)
        names = [name for group in groups for name in group]
        guesses, failed = _solved(params, base_runs, names, groups)
        least = _least(base_runs, guesses, groups)
        # (a value whose structure differs is one the file must refuse: a run it counts shorter than checked)
        failed |= {group for group, (_, others) in groups.items()
                   if not all(_refused(guesses, least, values) for values in others)}
        if not failed:
            used = [n for n in names if n in {guess[0] for guess in guesses.values()}]
            return Counted(used, {key: _text(guess) for key, guess in guesses.items()},
                           {n: c for n in used if (c := _checks(params, n, guesses, least))})
        groups = {group: t for group, t in groups.items() if group not in failed}
    return Counted()


def _least(base_runs: Mapping[tuple, int], guesses: Mapping[tuple, _Guess],
           groups: Mapping[tuple[str, ...], _Tried]) -> dict[tuple, int]:
    """Each counted run's shortest length the file is taken to hold for: one where every value tried
    had the file's structure (it holds from one up, as it did one below the file's values), else the
    shortest length that had it."""
    if not any(others for _, others in groups.values()):
        return {key: 1 for key in guesses}
    seen = [runs for same, _ in groups.values() for _, runs in same]
    return {key: min([base_runs[key], *(runs[key] for runs in seen if key in runs)]) for key in guesses}


#: a guess at a run's length: (parameter, its item's index or None, constant added)
_Guess = tuple[str, "int | None", int]


def _solved(params: Mapping[str, Any], base_runs: Mapping[tuple, int], names: list[str],
            groups: Mapping[tuple[str, ...], _Tried]) -> tuple[dict[tuple, _Guess], set[tuple[str, ...]]]:
    """Each run whose length moves -> the guess over ``names`` that gives it at every value tried; the
    groups under which one moves that no guess gives."""
    every = [(group, values, runs) for group, (same, _) in groups.items() for values, runs in same]
    guesses: dict[tuple, _Guess] = {}
    failed: set[tuple[str, ...]] = set()
    for key, count in base_runs.items():
        moved = {group for group, _, runs in every if runs.get(key) != count}
        if not moved:
            continue
        guess = next((g for g in _guesses(params, names, count)
                      if all(_length(g, values) == runs.get(key) for _, values, runs in every)), None)
        if guess is None:
            failed |= moved
        else:
            guesses[key] = guess
    return guesses, failed


def _guesses(params: Mapping[str, Any], names: list[str], count: int) -> list[_Guess]:
    """Every way one of the parameters ``names`` gives ``count`` at the file's values, the smallest
    constant first."""
    found: list[_Guess] = []
    for param in names:
        value = params[param]
        items = [(None, value)] if _is_int(value) else list(enumerate(value))
        found += [(param, index, count - item) for index, item in items]
    return sorted(found, key=lambda g: abs(g[2]))


def _refused(guesses: Mapping[tuple, _Guess], least: Mapping[tuple, int], values: Mapping[str, Any]) -> bool:
    """Whether the model class refuses ``values``: a counted run would be shorter than checked."""
    return any((length := _length(guess, values)) is not None and length < least[key]
               for key, guess in guesses.items())


def _checks(params: Mapping[str, Any], param: str, guesses: Mapping[tuple, _Guess], least: Mapping[tuple, int]
            ) -> list[str]:
    """The conditions on ``param`` under which each run it counts has as many children as checked
    (``layers[0] - 1`` at least 1: ``layers[0] >= 2``), the strongest per item, items of one bound
    together (``min(convs) >= 2`` where that is every item)."""
    bounds: dict[int | None, int] = {}
    for key, (name, index, constant) in guesses.items():
        if name == param and least[key] - constant > 0:
            bounds[index] = max(bounds.get(index, 0), least[key] - constant)
    by_bound: dict[int, list[int | None]] = {}
    for index, bound in sorted(bounds.items(), key=lambda item: -1 if item[0] is None else item[0]):
        by_bound.setdefault(bound, []).append(index)
    value = params[param]
    checks = []
    for bound, indices in by_bound.items():
        if indices == [None]:
            checks.append(f"{param} >= {bound}")
        elif len(indices) == 1:
            checks.append(f"{param}[{indices[0]}] >= {bound}")
        elif indices == list(range(len(value))):
            checks.append(f"min({param}) >= {bound}")
        else:
            checks.append(f"min({', '.join(f'{param}[{i}]' for i in indices)}) >= {bound}")
    return checks


def _length(guess: _Guess, values: Mapping[str, Any]) -> int | None:
    param, index, constant = guess
    value = values[param]
    if index is not None:
        if not isinstance(value, list) or index >= len(value):
            return None
        value = value[index]
    return value + constant if _is_int(value) else None


def _text(guess: _Guess) -> str:
    param, index, constant = guess
    read = param if index is None else f"{param}[{index}]"
    return read if not constant else f"{read} {'+' if constant > 0 else '-'} {abs(constant)}"
