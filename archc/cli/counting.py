"""The sizes ``archc summary`` and ``archc report`` count MACs and memory at: ``--batch`` and ``--dim``.

A model's symbolic dims (a sequence length, an imported model's H and W) have no size of their own;
both commands count at the sizes given (``--dim T=128``), else the spec's ``example_dims``, else 1,
and warn where those sizes leave a node's output empty, since everything after it would count zero.
"""
from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass

from archc.analysis.cost import Cost, costs
from archc.cli.common import effective_batch, parse_dims, positive_int
from archc.errors import ArchcWarning
from archc.ir.graph import Graph
from archc.runtime.inputs import input_types


@dataclass(frozen=True)
class Counted:
    """Per-node costs and the sizes they were counted at."""

    per_node: list[Cost]
    #: the batch counted at; None where the inputs fix different batches
    batch: int | None
    #: each symbolic input dim after the batch, with the size it was counted at, in input order
    dims: dict[str, int]

    def at(self) -> str:
        """``batch 8, T=128``: the sizes in words, for a line under a table."""
        return sizes_in_words(self.batch, self.dims)


def batch_in_words(batch: int | None) -> str:
    """``batch 8``; for None (inputs that fix different batches) what the figures are for instead."""
    return f"batch {batch}" if batch is not None else "batches as the inputs fix them"


def sizes_in_words(batch: int | None, dims: dict[str, int]) -> str:
    """``batch 8, T=128``: the batch and the symbolic dims' sizes the figures were counted at."""
    return batch_in_words(batch) + "".join(f", {name}={size}" for name, size in dims.items())


def add_counting_arguments(parser: argparse.ArgumentParser) -> None:
    """``--batch`` and ``--dim``, as the counting commands take them."""
    parser.add_argument("--batch", type=positive_int, default=1,
                        help="batch size for MACs and activation memory (default 1)")
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                        help="size of another symbolic dimension, e.g. a sequence length (repeatable, or "
                             "comma-separated: H=16,W=16; default: the spec's example_dims, else 1)")


def counted(graph: Graph, args: argparse.Namespace) -> Counted:
    """``graph``'s per-node costs at the sizes ``args`` gives; warns where they empty a node's output."""
    types = input_types(graph)
    sizes = parse_dims(args, types, graph.example_dims)
    result = Counted(costs(graph, args.batch, sizes), effective_batch(args, types, sizes),
                     _symbol_sizes(graph, sizes))
    _warn_empty(graph, result)
    return result


def _symbol_sizes(graph: Graph, sizes: dict[str, int]) -> dict[str, int]:
    """The size each symbolic input dim after the first (the batch) is counted at, in input order."""
    found: dict[str, int] = {}
    for name in graph.inputs:
        for d in graph.node(name).type.shape[1:]:
            if isinstance(d, str) and d not in found:
                found[d] = sizes.get(d, 1)
    return found


def _warn_empty(graph: Graph, result: Counted) -> None:
    """Warn at the first node whose output the sizes leave empty (an imported segmentation model's
    ``H//2`` at the default H=1): its MACs and memory count zero, not what the model costs."""
    for node, cost in zip(graph.nodes(), result.per_node):
        if any(size == 0 and not isinstance(d, int) for t, shape in zip(node.outputs, cost.shapes)
               for d, size in zip(t.shape, shape)):
            sizes = ", ".join(f"{name}={size}" for name, size in result.dims.items())
            shape = next(t for t in node.outputs).shape
            warnings.warn(f"at {sizes}, node '{node.name}' has an empty output ({', '.join(map(str, shape))}): "
                          "what follows counts zero MACs; give the sizes the model runs at with --dim NAME=SIZE",
                          ArchcWarning, stacklevel=3)
            return
