"""A dense block written as the loop torchvision writes: one class however many layers it holds.

A block whose children are the repetitions of one block, named counting up, each reading the
block's input and every earlier child's output, whose result merges them all (DenseNet's
``{name: layer, block: dense_layer, repeat: layers, in: [x, "layer[*]"]}``, then a concat of
``[x, "layer[*]"]``), is planned as one attribute and one statement per layer. Instances with
another number of layers are other classes: DenseNet-121's four blocks were four classes of 6,
12, 24 and 16 attributes. :func:`fold_dense` writes them as torchvision's ``_DenseBlock``::

    class DenseBlock(nn.ModuleDict):
        def __init__(self, growth: int, in_channels: int, layers: int, bn_size: int = 4) -> None:
            super().__init__()
            for i in range(layers):
                self.add_module(
                    f"denselayer{i + 1}",
                    DenseLayer(cat_channels=in_channels + i * growth, growth=growth, bn_size=bn_size),
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = [x]
            for layer in self.values():
                features.append(layer(features))
            out = torch.cat(features, dim=1)
            return out

The classes of one block are one such class where their code is the same but for the number of
layers, and for arguments of the layers' calls that grow by the same step from one layer to the
next (the step an argument every instance passes, or one number; the first value one number, or
an argument the class takes: named after the input size it equals, ``in_channels``). The count is
the block parameter whose value is the number of layers (plus one constant) in every instance.
Module names, and so state_dict keys, are unchanged.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from archc.lowering.torch_args import NO_DEFAULT, Arg, ClassArgs, TopParam
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
    plus,
)
from archc.lowering.torch_plan import (
    NUMBERED_NAME,
    RESERVED,
    Body,
    Leaf,
    Stmt,
    counts_on,
)
from archc.pysource import UnsafeValue, is_identifier, literal, numbered_name

__all__ = ["fold_dense"]

_INT = re.compile(r"-?[0-9]+")
#: the list of every feature in the last statements, while they are compared
_ALL = "\x07"


@dataclass
class _Dense:
    """A class whose children are one dense run: its layers' attribute names, their call (holes
    numbered by their places in it) and each layer's holes there, the block input's name, and what
    else decides its code (its last statements filled, the list of every feature as :data:`_ALL`;
    its other arguments, their holes numbered as if the layers' were not there)."""

    planned: Any
    segs: list[str]
    call: str
    holes: list[list[int]]
    first: str
    #: the arguments the layers' calls alone read (the folded class computes those numbers itself)
    dropped: frozenset[str]
    code: tuple


def fold_dense(classes: Sequence[Any], root: Any, fill: Callable[[str, ClassArgs], str],
               dims_of: Callable[[Body], tuple | None]) -> tuple[list[Any], Any]:
    """``classes`` and the model class ``root`` with the classes of each dense block written as one
    (see the module's docstring); ``fill``: a text with holes as a class writes it; ``dims_of``:
    the sizes of an instance's first input. New classes are made, the planned ones never changed."""
    while True:  # (a fold rewrites its callers: the classes are read again after each)
        for same in _groups(classes, fill):
            folded = _folded(same, dims_of)
            if folded is None:
                continue
            merged, values = folded
            drops = {d.planned.name: {a.written for a in d.planned.args.args if a.name in d.dropped} for d in same}
            rewritten = merged_into(classes, root, merged, merged.name, drops, values)
            if rewritten is not None:
                classes, root = rewritten
                break
        else:
            return list(classes), root


def _groups(classes: Sequence[Any], fill: Callable[[str, ClassArgs], str]) -> Iterator[list[_Dense]]:
    """The dense classes of each block whose code is the same but for the number of layers and the
    numbers their calls pass, deepest first (a dense block's layers before it)."""
    return block_groups(classes, functools.partial(_dense, fill=fill), _key)


def _dense(c: Any, fill: Callable[[str, ClassArgs], str]) -> _Dense | None:
    """``c`` as a :class:`_Dense` where its children are one dense run (see the module's docstring)."""
    body = c.bodies[0]
    items = list(body.tree.items())
    if body.sequential or body.ties or body.containers or len(items) < 2 or any(
            not isinstance(leaf, Leaf) or leaf.kind != "child" for _, leaf in items):
        return None
    segs = [seg for seg, _ in items]
    calls = [HOLE_MARK.sub(Positions(), leaf.source) for _, leaf in items]
    first = _first_input(body, segs[0])
    if not all(counts_on(a, b) for a, b in itertools.pairwise(segs)) or len(set(calls)) != 1 or first is None \
            or len(body.stmts) <= len(segs):
        return None
    features = [first]
    for seg, stmt in zip(segs, body.stmts):
        if stmt.loop or stmt.comments or len(stmt.targets) != 1 or \
                stmt.expr != f"{body.access[seg]}([{', '.join(features)}])":
            return None
        features.append(stmt.targets[0])
    every = "[" + ", ".join(features) + "]"
    tail = [(tuple(s.targets), fill(s.expr, c.args).replace(every, _ALL), bool(s.loop)) for s in body.stmts[len(segs):]]
    rest = " ".join([*(expr for _, expr, _ in tail), *body.returns])
    if sum(expr.count(_ALL) for _, expr, _ in tail) != 1 or any(loop for *_, loop in tail) or any(
            re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", rest) for name in features[1:]):
        return None
    holes = [[int(k) for k in HOLE_MARK.findall(leaf.source)] for _, leaf in items]
    inside = {k for ks in holes for k in ks}
    dropped = frozenset(a.name for a in c.args.args if a.source[:1] == ("hole",) and a.source[1] in inside)
    rank = {k: i for i, k in enumerate(k for k in range(len(body.holes)) if k not in inside)}
    args = [dataclasses.replace(a, source=("hole", rank[a.source[1]])) if a.source[:1] == ("hole",) else a
            for a in c.args.args if a.name not in dropped]
    code = (tuple(tail), tuple(body.args), tuple(body.returns), {rank[k]: v for k, v in c.args.text.items()
            if k in rank}, args, *(getattr(c.args, f) for f in CODE_FIELDS))
    return _Dense(c, segs, calls[0], holes, first, dropped, code)


def _first_input(body: Body, seg: str) -> str | None:
    """The block input the first layer reads alone (``self.denselayer1([x])``: ``x``)."""
    stmt = body.stmts[0] if body.stmts else None
    start = f"{body.access[seg]}(["
    if stmt is None or not stmt.expr.startswith(start) or not stmt.expr.endswith("])"):
        return None
    name = stmt.expr[len(start):-2]
    return name if is_identifier(name) else None


def _key(dense: _Dense) -> tuple:
    name, _, after = NUMBERED_NAME.match(dense.segs[0]).groups()
    return dense.call, dense.first, name, after, dense.code


#: one instance of a folded class: its class's :class:`_Dense` and its body
_Served = tuple[_Dense, Body]


def _folded(same: list[_Dense], dims_of: Callable[[Body], tuple | None]) -> tuple[Any, dict] | None:
    """The one class for ``same`` (the first class's, with the loop and the new arguments), and each
    instance's values of the arguments it gained, by its path; None where a count or a number of
    the layers' calls has no expression."""
    first = same[0].planned
    kept = [a for a in first.args.args if a.name not in same[0].dropped]
    taken = RESERVED | {n for a in first.args.args for n in (a.name, a.written)} | {n for n, _ in first.args.lets}
    served = sorted(((d, body) for d in same for body in d.planned.bodies),
                    key=lambda item: natural(item[1].instance.path))
    lengths = {len(d.segs) for d in same}
    counted = count_param([(len(d.segs), body) for d, body in served], taken, {a.name for a in kept}) \
        if len(lengths) > 1 else None
    count = (plus(*counted), counted[0]) if counted is not None else None
    if count is None and len(lengths) > 1:
        return None
    each = next(name for name in ("i", "k", "index", "position") if name not in taken)
    expressions, added = [], []
    for position in range(len(same[0].holes[0])):
        found = _position(served, position, each, kept, taken | {a.name for a in added}, dims_of)
        if found is None:
            return None
        expressions.append(found[0])
        added += found[1]
    before, number, after = NUMBERED_NAME.match(same[0].segs[0]).groups()
    try:
        name = numbered_name(before, each, after, int(number))
    except UnsafeValue:
        return None
    new_args = [Arg(count[1], source=("param", count[1]))] if count is not None and count[1] not in taken else []
    # (each instance's values of the arguments its class gained, in the signature's order)
    values: dict[str, dict[str, Any]] = {body.instance.path: {} for _, body in served}
    for arg in added:
        for path, value in arg.source[1].items():
            values[path][arg.name] = value
    for arg in new_args:
        for _, body in served:
            values[body.instance.path][arg.name] = _param(body, arg.name)
    at = next((k for k, a in enumerate(kept) if not a.required), len(kept))
    kept[at:at] = [dataclasses.replace(a, source=("grown",)) for a in added] + new_args
    call = HOLE_MARK.sub(lambda m: expressions[int(m[1])], same[0].call)
    grown = Added(name, call, each, count[0] if count is not None else str(len(same[0].segs)))
    merged = dataclasses.replace(first, bodies=[_grown_body(d, b) for d, b in served],
                                 args=dataclasses.replace(first.args, args=kept), added=(grown,))
    return merged, values


def _param(body: Body, name: str) -> Any:
    return dict(body.instance.info.args).get(name)


def _position(served: list[_Served], position: int, each: str, kept: list[Arg], taken: set[str],
              dims_of: Callable[[Body], tuple | None]) -> tuple[str, list[Arg]] | None:
    """The expression of one argument of the layers' calls over the loop's ``each``, and the
    arguments the class takes for it (each instance's value by its path, in ``source[1]``)."""
    texts = {d.planned.args.text.get(ks[position]) for d, _ in served for ks in d.holes}
    dropped = {a.written for d, _ in served for a in d.planned.args.args if a.name in d.dropped}
    if len(texts) == 1 and None not in texts and not any(re.search(rf"(?<![\w.]){n}(?!\w)", t)
                                                         for t in texts for n in dropped):
        return texts.pop(), []
    starts, steps = {}, {}
    for dense, body in served:
        values = [body.holes[ks[position]] for ks in dense.holes]
        if any(type(v) is not int for v in values):
            return None
        step = values[1] - values[0]
        if any(v != values[0] + step * k for k, v in enumerate(values)):
            return None
        starts[body.instance.path], steps[body.instance.path] = values[0], step
    step = _step(served, steps, kept)
    if step is None:
        return None
    added: list[Arg] = []
    if len(set(starts.values())) == 1:
        start = literal(next(iter(starts.values())))
    else:
        # (the size of the block's input it is in every instance: ``in_channels``)
        start = input_size_name([body for _, body in served], starts, dims_of, served[0][0].first)
        start = start if start is not None and start not in taken and is_identifier(start) else None
        if start is None:
            return None
        added.append(Arg(start, source=("grown", starts)))
    grown = each if step == "1" else f"{each} * {step}"
    return (grown if start == "0" else f"{start} + {grown}"), added


def _step(served: list[_Served], steps: dict[str, int], kept: list[Arg]) -> str | None:
    """The step as written: an argument of the class every instance passes it as, else one number."""
    for arg in kept:
        if all(_value(d.planned.args, body, arg.name) == steps[body.instance.path] for d, body in served):
            return arg.written
    values = set(steps.values())
    return literal(values.pop()) if len(values) == 1 and min(steps.values()) > 0 else None


def _value(args: ClassArgs, body: Body, name: str) -> Any:
    found = next((c.value for c in args.call(body) if c.name == name), None)
    return None if isinstance(found, TopParam) or found is NO_DEFAULT else found


def _grown_body(dense: _Dense, body: Body) -> Body:
    """``body`` as the folded class writes it: no attributes (the loop adds the layers), its
    forward growing the list of features, then its last statements reading that list."""
    # (names no argument or statement of forward has: the loop runs before the last statements)
    taken = {*body.args, *(t for s in body.stmts for t in s.targets)}
    features, layer = fresh("features", taken), fresh("layer", taken)
    every = "[" + ", ".join([dense.first, *(s.targets[0] for s in body.stmts[:len(dense.segs)])]) + "]"
    tail = [dataclasses.replace(s, expr=s.expr.replace(every, features)) for s in body.stmts[len(dense.segs):]]
    grow = Stmt([features], "self.values()", grow=(layer, dense.first))
    return dataclasses.replace(body, tree={}, stmts=[grow, *tail], access={})
