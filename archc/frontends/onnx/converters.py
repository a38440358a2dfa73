"""The table of converters: ONNX op type -> the function that maps such a node to native IR ops.

:mod:`archc.frontends.onnx.convert` (and the pattern modules) fill it with ``@converts``; the
importer reads it and never imports its converters. A converter gets the importer (its
converters' API: ``const``, ``tensor``, ``emit``...) and the ONNX node.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import onnx

__all__ = ["CONVERTERS", "PURE", "Converter", "Fallback", "converts", "of_kind"]


class Fallback(Exception):
    """A converter cannot map this node to a native op; the node becomes an onnx_node.

    The only exception a converter may use to decline: any other one is a bug and propagates.
    """


#: a converter: (importer, node) -> one entry per output it handles, or None to decline
Converter = Callable[[Any, onnx.NodeProto], Optional[list]]

#: ONNX op type (default domain) -> converter
CONVERTERS: dict[str, Converter] = {}

#: ONNX op type -> True, or a test of the node, where its converter is pure (see
#: :mod:`archc.frontends.onnx.replay`): one kind of node is converted once and replayed
PURE: dict[str, bool | Callable[[Any, onnx.NodeProto], bool]] = {}

#: ONNX op type -> converter that also maps a node of no tensor input whose value cannot be computed
#: when the model is read (a Slice of a learned table to a run-time length), when a tensor reads it
ON_DEMAND: dict[str, Converter] = {}


def converts(*op_types: str, pure: bool | Callable[[Any, onnx.NodeProto], bool] = False) -> Callable[[Converter], Converter]:
    """Register the decorated function as the converter of ``op_types``; ``pure`` (or, for the
    nodes it accepts, a test of the node) promises what :mod:`archc.frontends.onnx.replay` needs:
    the result depends only on the node's kind, constant inputs pass through unchanged."""
    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            CONVERTERS[op_type] = fn
            if pure:
                PURE[op_type] = pure
        return fn
    return register


def on_demand(*op_types: str) -> Callable[[Converter], Converter]:
    """Register the decorated function as the on-demand converter of ``op_types`` (:data:`ON_DEMAND`)."""
    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            ON_DEMAND[op_type] = fn
        return fn
    return register


def of_kind(test: Callable[[Any, onnx.NodeProto], bool]) -> Callable[[Any, onnx.NodeProto], bool]:
    """Mark a converter's test of purity as one that reads only what a node's kind holds (which
    inputs are tensors, constants or absent, their types): its verdict on a kind's first node
    holds for every node of the kind, so replaying a node of a recorded kind does not run it."""
    test.of_kind = True  # type: ignore[attr-defined]
    return test
