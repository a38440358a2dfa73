"""Converting one kind of node once: a pure converter's work recorded and replayed.

A model repeats a few kinds of node thousands of times: a residual chain's convs, norms,
activations and adds; a transformer's projections, norms and GELUs. A converter registered
as *pure* (``@converts(..., pure=True)``) promises that what it emits depends only on the
node's attributes, its inputs' kinds, IR types and constants' shapes (and the values of the
constants whose values the signature holds, and the types the file declares for its outputs:
see :meth:`~archc.frontends.onnx.conversion.Conversion.kind`), and that it
passes constant inputs through as weights unchanged (other weights it emits are the same
for every node of the kind). The first node of a kind is converted by its converter while a
:class:`Recorder` notes each native node it emits: the op's :class:`~archc.frontends.onnx.templates.Template`,
where each input and weight came from (an input of the ONNX node, or an earlier emitted
node), whether its types were checked against ONNX's. Every later node of the kind replays
that :class:`Recipe` with its own inputs, weights and names: the same nodes the converter
would have emitted, without running it.

A conversion is recorded only when every piece is accounted for: an input or weight from
anywhere else, or from a value or array the node reads at two inputs (which of them, the record
cannot tell), a type check that needed the whole model's inference (it depends on the value's
name, not the kind), or a converter that declined, leaves the kind to its converter, node after
node.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from archc.frontends.onnx.templates import Template
from archc.ir.graph import Value

__all__ = ["Recipe", "Recorder", "Step"]

#: where a value comes from: ("in", i) the ONNX node's input i; ("emit", j, k) output k of step j;
#: for weights also ("literal", array), the same array for every node of the kind
Source = tuple


@dataclass(frozen=True)
class Step:
    """One native node a converter emitted."""

    template: Template
    inputs: tuple[Source, ...]
    weights: tuple[tuple[str, Source], ...]
    check: bool
    suffix: str

    @cached_property
    def weight_dtypes(self) -> tuple[tuple[str, Source, Any], ...]:
        """Each weight's key and source, with the dtype the op's parameter spec stores it in (None
        for a weight the op has no spec for, stored as it is)."""
        specs = self.template.specs
        return tuple((key, source, np.dtype(specs[key].dtype) if key in specs else None)
                     for key, source in self.weights)


@dataclass(frozen=True)
class Recipe:
    """What a pure converter did with one kind of node: its steps and where its outputs came from."""

    steps: tuple[Step, ...]
    outputs: tuple[Source, ...]

    @cached_property
    def one_node(self) -> tuple[int, ...] | None:
        """For a recipe of one native node that reads only the ONNX node's inputs and whose outputs
        are the node's, in order (most kinds: a conv, a norm, an activation, an add), the input index
        of each of its inputs; None otherwise."""
        if len(self.steps) != 1 or any(s[0] != "in" for s in self.steps[0].inputs):
            return None
        if self.outputs != tuple(("emit", 0, k) for k in range(len(self.steps[0].template.outputs))):
            return None
        return tuple(s[1] for s in self.steps[0].inputs)


class Recorder:
    """Notes what a converter emits for one node (``tensors``: the IR value of each tensor input, by
    input index; ``constants``: each constant input's array, by input index)."""

    def __init__(self, tensors: dict[int, Value], constants: dict[int, np.ndarray]) -> None:
        self._tensors = {value: i for i, value in tensors.items()}
        self._constants = {id(arr): i for i, arr in constants.items()}
        # A value or array at two inputs (x * x) does not say which input an emitted node read: a
        # recipe from this node would read the same input twice in a node of the kind whose two
        # inputs differ. Such a conversion is not recorded (a later node of the kind records one).
        self._ambiguous = {value for i, value in tensors.items() if self._tensors[value] != i} | \
            {id(arr) for i, arr in constants.items() if self._constants[id(arr)] != i}
        self._made: dict[Value, tuple[int, int]] = {}
        self._steps: list[Step] = []
        self.spoilt = False

    def _source(self, value: Value) -> Source | None:
        if value in self._made:
            return ("emit", *self._made[value])
        if value in self._tensors and value not in self._ambiguous:
            return ("in", self._tensors[value])
        return None

    def emitted(self, template: Template, inputs: list[Value], weights: dict[str, Any] | None, check: bool,
                suffix: str, outputs: list[Value], replayable: bool = True) -> None:
        """Note one emitted native node (``outputs``: its IR values; not ``replayable``: named for this
        node alone, so its kind has no recipe)."""
        sources = [self._source(v) for v in inputs]
        if not replayable or any(s is None for s in sources):
            self.spoilt = True  # an input from outside the node: not a recipe
            return
        weight_sources = []
        for key, arr in (weights or {}).items():
            if id(arr) in self._ambiguous:
                self.spoilt = True  # one array at two inputs: which one this weight is, is not known
                return
            index = self._constants.get(id(arr))
            weight_sources.append((key, ("in", index) if index is not None else ("literal", arr)))
        for k, value in enumerate(outputs):
            self._made[value] = (len(self._steps), k)
        self._steps.append(Step(template, tuple(sources), tuple(weight_sources), check, suffix))

    def recipe(self, outs: list[Any]) -> Recipe | None:
        """The recipe of the conversion that returned ``outs``, or None where it is not one."""
        if self.spoilt or not self._steps:
            return None
        sources = [self._source(v) if isinstance(v, Value) else None for v in outs]
        if any(s is None for s in sources):
            return None
        return Recipe(tuple(self._steps), tuple(sources))
