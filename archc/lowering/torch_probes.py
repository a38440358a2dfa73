"""Parameters the model class takes although the shapes of its layers follow them (a width).

:func:`~archc.lowering.torch_args.live_params` makes live the parameters that only node
attributes read and whose value no later code depends on (``num_classes``, a dropout rate). A
width is not one of them: every later layer's constructor takes the channels it makes, and
which block instance gets a projection shortcut depends on it. Here the spec is elaborated
again at other values of each remaining parameter (by the caller's function: the lowering
never reads a spec) and planned as the file is. A parameter is live when, at every value
tried:

- every block class, helper function and the model class's skeleton and ``reset_parameters``
  come out the same text (the same structure: no ``if:`` went the other way, no ``repeat:``
  changed), and
- each integer of the model class that changes (a conv's channels, a child's ``planes``, the
  head's ``in_features``) is, at the file's value and at every value tried, what one of the
  spec's own expressions gives: a node attribute's or a block argument's, written over the
  model's parameters (``width * 8``).

The model class then writes those expressions. A parameter that fails either test stays fixed
(the file refuses another value and names the ``--set`` that rebuilds it).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping

from archc.errors import ArchcError
from archc.ir.graph import Graph
from archc.lowering.torch_args import (attr_value, child_argument_at_model_level, descendant, expression,
                                      hole_place, model_exprs, sized, with_values)
from archc.lowering.torch_plan import Body, Instance, Lowered
from archc.lowering.torch_sizes import evaluated, size_texts

__all__ = ["Elaborate", "Plan", "PlanOf", "Probed", "probe_params", "probe_values"]

#: the spec elaborated again with some parameters set otherwise (the caller's frontend), or an ArchcError
Elaborate = Callable[[Mapping[str, Any]], Graph]


@dataclass(frozen=True)
class Plan:
    """What one elaboration's plan of the file reads: the model class's body, the graph as lowered,
    every text but the model class's holes (block classes, functions, the model's skeleton and
    ``reset_parameters``: two elaborations with equal ``texts`` differ only in those holes), each
    block instance's body by path, and the writer's own plan (opaque here)."""

    root: Body
    lowered: Lowered
    texts: tuple[str, ...]
    bodies: Mapping[str, Body]
    planned: Any = None


#: a plan of an elaboration of the spec, block classes resolved with the given holes following a
#: parameter (:func:`~archc.lowering.torch_args.resolve`'s ``follows``)
PlanOf = Callable[[Graph, frozenset], Plan]


@dataclass
class Probed:
    """The parameters found live, the plan to write (its block classes resolved with ``follows``)
    and the expression of each of its model-class holes that follows them."""

    params: list[str] = field(default_factory=list)
    plan: Plan | None = None
    texts: dict[int, str] = field(default_factory=dict)
    follows: frozenset = frozenset()


#: one source of an expression: (spec expression at model level, reads its value from a plan, where
#: it is written: ("argument", child, name) or ("node", node name))
_Source = tuple[str, Callable[[Plan], Any], tuple]


def probe_params(graph: Graph, live: Collection[str], elaborate: Elaborate, plan_of: PlanOf) -> Probed:
    """The parameters of ``graph`` outside ``live`` that the model class can take (see the module's
    docstring), with the plan to write and the expressions of its model-class holes they change.
    Those whose block classes stay as they are first, together; then each of the others whose
    classes take the widths that move (:func:`_follows`), one at a time, kept where all of them
    together still give one file."""
    found: dict[str, tuple[list[Graph], frozenset]] = {}
    for param in _candidates(graph, live):
        graphs = _elaborations(graph, param, elaborate)
        follows = _follows(graph, graphs, plan_of) if graphs else None
        if follows is not None:
            found[param] = (graphs, follows)
    best = _verified(graph, live, {p: f for p, f in found.items() if not f[1]}, plan_of)
    for param, (graphs, follows) in found.items():
        if follows:
            tried = _verified(graph, live, {**{p: found[p] for p in best.params}, param: (graphs, follows)},
                              plan_of)
            if param in tried.params:
                best = tried
    return best


def _verified(graph: Graph, live: Collection[str], found: Mapping[str, tuple[list[Graph], frozenset]],
              plan_of: PlanOf) -> Probed:
    """Those of the ``found`` parameters (their elaborations and moving holes) that the model class
    can take together: every plan with all their holes following writes the same block classes, and
    each model-class hole that moves is a spec expression at every value; dropping those for whom
    a hole is not, until the others hold (the classes differing: none)."""
    found = dict(found)
    while found:  # (each round drops a parameter at least)
        follows = frozenset().union(*(f for _, f in found.values()))
        plan = plan_of(graph, follows)
        points = {param: [plan_of(g, follows) for g in graphs] for param, (graphs, _) in found.items()}
        if any(p.texts != plan.texts or len(p.root.holes) != len(plan.root.holes)
               for found_at in points.values() for p in found_at):
            return Probed()
        texts, failed = _hole_texts(graph, plan, live, points, _sources(graph, plan))
        if not failed:
            return Probed(list(found), plan, texts, follows)
        found = {param: f for param, f in found.items() if param not in failed}
    return Probed()


def _candidates(graph: Graph, live: Collection[str]) -> list[str]:
    """The parameters worth elaborating again: numbers (not flags or lists) the file fixes."""
    return [p for p, value in graph.params.items() if p not in live and type(value) in (int, float)]


def probe_values(value: int | float, structural: bool, taken: Collection[Any] = ()) -> list[int | float]:
    """The other values a parameter is tried at: above it (twice it, one more: a width that stays
    divisible, one that does not) and below it (half, where a clamp such as ``max(width, 16)`` or a
    condition such as ``image_size >= 64`` turns); one less too for a parameter a ``repeat:``,
    ``if:`` or ``let:`` reads (a condition turning at the file's own value). Each of the first three
    avoids the values ``taken`` (other parameters'): an MLP's width halved to the model's width
    would be read as that width, and the classes would differ by that coincidence alone."""
    if type(value) is float:
        return [value * 2, value / 2] if value else [0.5, 1e-3]
    choices = [(value * 2, value * 3), (value + 1, value + 2), (value // 2, value // 2 + 1, value // 2 - 1)]
    tried = [next((v for v in vs if v not in taken and v != value), vs[0]) for vs in choices]
    tried += [value - 1] if structural else []
    return [v for v in dict.fromkeys(tried) if v >= 1 and v != value]


def _elaborations(graph: Graph, param: str, elaborate: Elaborate) -> list[Graph]:
    """The spec elaborated at each of :func:`probe_values` it accepts; none where one of them has
    other nodes (the structure follows the parameter)."""
    found = []
    taken = {v for p, v in graph.params.items() if p != param and type(v) is int}
    for value in probe_values(graph.params[param], param in graph.structural_params, taken):
        try:
            graph_at = elaborate({param: value})
        except ArchcError:  # a value the spec refuses (a width its groups do not divide): no point
            continue
        if graph_at.node_map().keys() != graph.node_map().keys():
            return []
        found.append(graph_at)
    return found


def _follows(graph: Graph, graphs: list[Graph], plan_of: PlanOf) -> frozenset | None:
    """The block-class holes that follow the parameter ``graphs`` were elaborated with another value
    of, such that the plans of ``graph`` and of ``graphs`` with those holes resolved as arguments write
    the same block classes; None where no such set is found. Each round, the arguments a block class
    gained move its callers' numbers (an MLP's, then its Transformer block's, ... then the model's):
    one round per level of nesting, and one to find the classes alike."""
    follows: frozenset = frozenset()
    base = plan_of(graph, follows)
    for _ in range(_depth(base.root.instance) + 1):
        if follows:
            base = plan_of(graph, follows)
        plans = [plan_of(g, follows) for g in graphs]
        differing = [p for p in plans if p.texts != base.texts or len(p.root.holes) != len(base.root.holes)]
        if not differing:
            return follows
        more = follows | _moved(base, differing)
        if more == follows:
            return None
        follows = more
    return None


def _depth(instance: Instance) -> int:
    """How many levels of block instances ``instance`` holds (none: 0)."""
    return max((1 + _depth(child) for child in instance.children), default=0)


def _moved(base: Plan, plans: list[Plan]) -> frozenset:
    """Each block-class hole (instance path, :func:`hole_place`) whose value differs between ``base``
    and one of ``plans``."""
    moved = set()
    for path, body in base.bodies.items():
        places = {hole_place(body, i): repr(value) for i, value in enumerate(body.holes)}
        for plan in plans:
            other = plan.bodies.get(path)
            if other is None:
                continue
            for i, value in enumerate(other.holes):
                place = hole_place(other, i)
                if place in places and places[place] != repr(value):
                    moved.add((path, *place))
    return frozenset(moved)


def _hole_texts(graph: Graph, base: Plan, live: Collection[str], points: Mapping[str, list[Plan]],
                sources: list[_Source]) -> tuple[dict[int, str], set[str]]:
    """Each model-class hole that differs at some point -> the first source's expression that gives
    its value at every point; and the parameters under which a hole differs that no source gives."""
    names = set(live) | set(points)
    fixed = {p: v for p, v in graph.params.items() if p not in names}  # (read as their values)
    ints = {p for p, v in graph.params.items() if type(v) is int}
    plans = [base] + [plan for found in points.values() for plan in found]
    owners = [""] + [param for param, found in points.items() for _ in found]
    written: list[tuple[str, tuple[str, ...], tuple]] = []
    for source, read, where in sources:
        valued = with_values(source, fixed)
        text = expression(valued, names) if valued is not None else None
        if text is not None:
            written.append((_tidy(text, ints), tuple(repr(read(plan)) for plan in plans), where))
    texts: dict[int, str] = {}
    failed: set[str] = set()
    for i in range(len(base.root.holes)):
        values = tuple(repr(plan.root.holes[i]) for plan in plans)
        if all(v == values[0] for v in values):
            continue
        # (the hole's own expression first: a conv's `max(width, 16)`, not an equal `width` elsewhere)
        own = _where(base.root, i)
        text = next((t for t, given, where in sorted(written, key=lambda w: w[2] != own) if given == values), None)
        if text is None:
            failed.update(owner for owner, v in zip(owners, values) if v != values[0])
        else:
            texts[i] = text
    return texts, failed


def _tidy(text: str, ints: Collection[str]) -> str:
    """``text`` in the canonical form of a size (``width * 4 * 4`` is ``width * 16``) where it is
    integer arithmetic over integer parameters alone, which that form computes alike."""
    try:
        tree = _Folded().visit(ast.parse(text, mode="eval"))
    except (SyntaxError, ValueError, RecursionError):
        return text
    text = ast.unparse(tree)  # (a fixed flag's branch taken: `base * 8 // (2 if False else 1)` is `base * 8 // 1`)
    if any(isinstance(n, ast.Name) and n.id not in ints for n in ast.walk(tree)) \
            or any(isinstance(n, ast.Constant) and type(n.value) is not int for n in ast.walk(tree)):
        return text
    return sized(text, {})


class _Folded(ast.NodeTransformer):
    """A conditional on a constant as the branch it takes (a fixed parameter's value written in)."""

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.test, ast.Constant):
            return node.body if node.test.value else node.orelse
        return node


def _sources(graph: Graph, base: Plan) -> list[_Source]:
    """The spec's expressions that can give a model-class hole, at model level: each child block's
    arguments as the model passes them, then every node attribute written as an expression (a
    block's written with the arguments its callers passed), in graph order."""
    found: list[_Source] = []
    for child, arg, _ in base.root.child_args.values():
        source = child_argument_at_model_level(base.lowered, base.root.instance, child, arg)
        if source is not None:
            found.append((source, _child_arg_reader(child, arg), ("argument", child, arg)))
    for node in base.lowered.order:
        for attr, source in model_exprs(node):
            found.append((source, _attr_reader(node.name, attr), ("node", node.name)))
    return found + _size_sources(base)


def _size_sources(base: Plan) -> list[_Source]:
    """The sizes of every value, as the model class would compute them
    (:func:`~archc.lowering.torch_sizes.size_texts`: a top-level concat's channels, a flatten's
    features, the concat a dense layer makes of what it is given), each read at a plan by computing
    it at that plan's parameters."""
    return [(text, _size_reader(text), ("size",)) for text in size_texts(base.lowered)]


def _where(root: Body, hole: int) -> tuple:
    """Where the model class's hole is written, as :data:`_Source` says it (its :func:`hole_place`,
    a node's number by the node alone)."""
    place = hole_place(root, hole)
    return place if place[0] == "argument" else ("node", place[1])


def _child_arg_reader(child: str, arg: str) -> Callable[[Plan], Any]:
    def read(plan: Plan) -> Any:
        info = descendant(plan.root.instance, child).info
        return dict(info.args).get(arg) if info is not None else None
    return read


def _size_reader(text: str) -> Callable[[Plan], Any]:
    def read(plan: Plan) -> Any:
        return evaluated(text, plan.lowered.graph.params)
    return read


def _attr_reader(node: str, attr: str) -> Callable[[Plan], Any]:
    def read(plan: Plan) -> Any:
        found = plan.lowered.nodes.get(node)
        return attr_value(found.attrs, attr) if found is not None else None
    return read
