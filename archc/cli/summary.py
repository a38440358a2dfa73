"""``archc summary SPEC|MODEL.onnx``: a per-node table in torchinfo's manner.

Columns: name, op, output shape, parameters, trainable parameters, multiply-accumulates,
activation memory, skip label; totals of parameters, MACs, parameter memory and activation
memory at ``--batch``. ``--depth N`` adds up block levels deeper than N into one row each.
MACs are counted per op (:meth:`archc.ops.base.OpDef.macs`) as torchvision's figures:
ResNet-50 at 224x224 is 4.09 GMACs.
"""
from __future__ import annotations

import argparse
import json

from archc.analysis.cost import by_depth, costs, totals
from archc.analysis.summary import summarize
from archc.cli.common import (
    add_spec_arguments,
    effective_batch,
    load_graph,
    parse_dims,
    positive_int,
    table_lines,
)
from archc.runtime.inputs import input_types

EXAMPLE = """example:
  archc summary specs/resnet50.yaml --depth 1 --batch 8"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_spec_arguments(parser, models=True)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--batch", type=positive_int, default=1,
                        help="batch size for MACs and activation memory (default 1)")
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                        help="size of another symbolic dimension, e.g. a sequence length (repeatable, or "
                             "comma-separated: H=16,W=16; default: the spec's example_dims, else 1)")
    parser.add_argument("--depth", type=positive_int, metavar="N",
                        help="one row per block level N deep (its nodes added up), e.g. --depth 1 for ResNet stages")


def run(args: argparse.Namespace) -> int:
    graph = load_graph(args, weights=False)
    data = summarize(graph)
    types = input_types(graph)
    sizes = parse_dims(args, types, graph.example_dims)
    per_node = costs(graph, args.batch, sizes)
    for row, cost in zip(data["nodes"], per_node):
        row.update(trainable=cost.trainable, macs=cost.macs, activation_bytes=cost.activation_bytes)
    data["batch"] = effective_batch(args, types, sizes)  # (a model that fixes it: its own; None where inputs differ)
    data["dims"] = _symbol_sizes(graph, sizes)
    data["totals"] = totals(per_node)
    _warn_empty(graph, per_node, data["dims"])
    if args.depth:
        skips = {r["name"]: r.get("skip", "") for r in data["nodes"]}
        data["depth"] = args.depth
        data["rows"] = [{"name": c.name, "op": c.op, "nodes": c.nodes, "shapes": [list(s) for s in c.shapes],
                         "params": c.params, "trainable": c.trainable, "macs": c.macs,
                         "activation_bytes": c.activation_bytes, **({"skip": skips[c.name]} if skips.get(c.name) else {})}
                        for c in by_depth(graph, per_node, args.depth)]
    if args.format == "json":
        print(json.dumps(data, indent=2))
        return 0
    print(format_table(data))
    return 0


def format_table(data: dict) -> str:
    headers = ("name", "op", "output shape", "params", "trainable", "MACs", "activations", "skip")
    rows = [(r["name"], r["op"] + (f" ({r['nodes']} nodes)" if r.get("nodes", 1) > 1 else ""),
             " ".join(_shape(s) for s in r["shapes"]), f"{r['params']:,}", f"{r['trainable']:,}",
             _si(r["macs"]), _mem(r["activation_bytes"]), r.get("skip", ""))
            for r in data.get("rows", data["nodes"])]
    table = table_lines(headers, rows, right=(3, 4, 5, 6))
    t = data["totals"]
    batch = f"batch {data['batch']}" if data["batch"] is not None else "batches as the inputs fix them"
    out = [f"model {data['model']}   ({batch})", *table, table[1]]
    out.append(f"total: {data['total_nodes']} nodes, {t['params']:,} parameters ({t['trainable']:,} trainable), "
               f"{_si(t['macs'])}MACs ({t['macs']:,})")
    at = "".join(f", {name}={size}" for name, size in data["dims"].items())
    out.append(f"memory: parameters {_mem(t['param_bytes'])}, activations {_mem(t['activation_bytes'])} "
               f"(one forward pass at {batch}{at})")
    return "\n".join(out)


def _symbol_sizes(graph, sizes: dict[str, int]) -> dict[str, int]:
    """The size each symbolic input dim after the first (the batch: ``--batch``) was counted at (--dim,
    the spec's example_dims, else 1), in the order the inputs name them."""
    found: dict[str, int] = {}
    for name in graph.inputs:
        for d in graph.node(name).type.shape[1:]:
            if isinstance(d, str) and d not in found:
                found[d] = sizes.get(d, 1)
    return found


def _warn_empty(graph, per_node, at: dict[str, int]) -> None:
    """A warning where the sizes counted at leave a node's output empty (an imported segmentation model's
    ``H//2`` at the default H=1): its MACs and memory count zero, not what the model costs."""
    for node, cost in zip(graph.nodes(), per_node):
        if any(size == 0 and not isinstance(d, int) for t, shape in zip(node.outputs, cost.shapes)
               for d, size in zip(t.shape, shape)):
            import warnings

            from archc.errors import ArchcWarning

            sizes = ", ".join(f"{name}={size}" for name, size in at.items())
            shape = next(t for t in node.outputs).shape
            warnings.warn(f"at {sizes}, node '{node.name}' has an empty output ({', '.join(map(str, shape))}): "
                          "what follows counts zero MACs; give the sizes the model runs at with --dim NAME=SIZE",
                          ArchcWarning, stacklevel=2)
            return


def _shape(shape: list) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _si(n: int) -> str:
    """Multiply-accumulates with an SI prefix, three significant decimals: ``4.09 G``."""
    for prefix, scale in (("T", 10 ** 12), ("G", 10 ** 9), ("M", 10 ** 6), ("k", 10 ** 3)):
        if n >= scale:
            return f"{n / scale:.2f} {prefix}"
    return f"{n} "


def _mem(n: int) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
