"""A node's kind found again at the cost of a few dict lookups: the replay path's index of kinds.

A node kind's key (:meth:`~archc.frontends.onnx.conversion.Conversion.kind`) holds each input's IR
type and each constant's dtype, shape and learnt-ness; made and hashed for every node of a 100k-node
model, it costs more than replaying the node. :class:`KindIndex` finds a node's recipe by a
*tag key* instead: the node's op, domain, attributes' bytes, which outputs it names and the types
the file declares for them, as the kind key holds them, and per input a tag: the identity of a
tensor input's :class:`~archc.ir.types.TensorType` object, or a small number standing for a
constant's part of the kind key (one per distinct part).

A tag key names exactly one kind key (equal tag keys have equal inputs' types and constants'
parts, and the same rest), so a recipe found for it is the kind's. It may be finer than the kind
key (two equal types held by two objects): the first node under a new tag key looks its recipe up
by the kind key, the usual way, and files it under the tag key too. Every object whose identity a
tag key holds is kept alive while the index lives, so no identity is reused for another object.
"""
from __future__ import annotations

from typing import Any, Callable

from archc.frontends.onnx.replay import Recipe, Step
from archc.frontends.onnx.values import Const

__all__ = ["KindIndex", "Replayer"]


class Replayer:
    """A recipe made ready to replay: for a one-node recipe over the ONNX node's own inputs (most
    kinds), what each replay reads precomputed; ``test``: the converter's test of purity where it
    has one (run for each node: it may read more than the kind)."""

    __slots__ = ("recipe", "test", "pins", "one", "first", "op", "attrs", "outputs", "check", "suffix",
                 "weights", "single")

    def __init__(self, recipe: Recipe, test: Callable[[Any, Any], bool] | None, pins: tuple) -> None:
        self.recipe = recipe
        self.test = test
        self.pins = pins  # the objects whose identities the tag key holds
        self.one = recipe.one_node
        #: the one input index of a one-node recipe that reads one input (activations, convs, norms)
        self.first = self.one[0] if self.one is not None and len(self.one) == 1 else None
        step: Step = recipe.steps[0]
        template = step.template
        self.op, self.attrs, self.check, self.suffix = template.op, template.attrs, step.check, step.suffix
        self.outputs = template.outputs
        self.single = len(template.outputs) == 1
        self.weights = step.weight_dtypes


class KindIndex:
    """One import's recipes by tag key (see the module's docstring)."""

    def __init__(self) -> None:
        self.replayers: dict[tuple, Replayer] = {}
        self._const_tags: tuple[dict[int, int], dict[int, int]] = ({}, {})  # id(record) -> tag, by reads_float
        self._parts: dict[tuple, int] = {}   # a constant's part of a kind key -> its tag
        self._pinned: list[Const] = []       # the constants whose identities _const_tags holds

    def const_tag(self, rec: Const, reads_float: bool, part: Callable[[Const, bool], tuple]) -> int:
        """The tag of constant ``rec`` as an input of a node whose op reads float values or not;
        ``part(rec, reads_float)``: its part of the kind key (made once per record). (A constant
        read as no float data whose tag is known already is tagged by the caller, which tests that
        first in its loop.)"""
        tags = self._const_tags[reads_float]
        tag = tags.get(id(rec))
        if tag is None:
            tag = tags[id(rec)] = self.part_tag(part(rec, reads_float))
            self._pinned.append(rec)
        return tag

    def part_tag(self, part: tuple) -> int:
        """The tag of a constant's part of a kind key (one per distinct part)."""
        parts = self._parts
        return parts.setdefault(part, len(parts))
