"""``archc summary SPEC``: a per-node table with shapes and parameter counts."""
from __future__ import annotations

import argparse
import json

from archc.analysis.summary import summarize
from archc.cli.common import add_spec_arguments, load_graph, table_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser, models=True)
    parser.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    graph = load_graph(args, weights=False)
    data = summarize(graph)
    if args.format == "json":
        print(json.dumps(data, indent=2))
        return 0
    print(format_table(data))
    return 0


def format_table(data: dict) -> str:
    headers = ("name", "op", "output shape", "params", "skip")
    rows = [(r["name"], r["op"], " ".join(_shape(s) for s in r["shapes"]), f"{r['params']:,}", r.get("skip", ""))
            for r in data["nodes"]]
    table = table_lines(headers, rows, right=(3,))
    out = [f"model {data['model']}", *table, table[1]]
    out.append(f"total: {data['total_nodes']} nodes, {data['total_params']:,} parameters")
    return "\n".join(out)


def _shape(shape: list) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"
