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

from archc.analysis.cost import by_depth, totals
from archc.analysis.summary import summarize
from archc.cli.common import add_spec_arguments, load_graph, positive_int, table_lines
from archc.cli.counting import (
    add_counting_arguments,
    batch_in_words,
    counted,
    sizes_in_words,
)

EXAMPLE = """example:
  archc summary specs/resnet50.yaml --depth 1 --batch 8"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_spec_arguments(parser, models=True)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    add_counting_arguments(parser)
    parser.add_argument("--depth", type=positive_int, metavar="N",
                        help="one row per block level N deep (its nodes added up), e.g. --depth 1 for ResNet stages")


def run(args: argparse.Namespace) -> int:
    graph = load_graph(args, weights=False)
    data = summarize(graph)
    count = counted(graph, args)
    per_node = count.per_node
    for row, cost in zip(data["nodes"], per_node):
        row.update(trainable=cost.trainable, macs=cost.macs, activation_bytes=cost.activation_bytes)
    data["batch"] = count.batch  # (a model that fixes it: its own; None where inputs differ)
    data["dims"] = count.dims
    data["totals"] = totals(per_node)
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
    out = [f"model {data['model']}   ({batch_in_words(data['batch'])})", *table, table[1]]
    out.append(f"total: {data['total_nodes']} nodes, {t['params']:,} parameters ({t['trainable']:,} trainable), "
               f"{_si(t['macs'])}MACs ({t['macs']:,})")
    out.append(f"memory: parameters {_mem(t['param_bytes'])}, activations {_mem(t['activation_bytes'])} "
               f"(one forward pass at {sizes_in_words(data['batch'], data['dims'])})")
    return "\n".join(out)


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
