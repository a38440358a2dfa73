"""``archc check SPEC``: validate a spec, reporting every error found (and warnings, on stderr)."""
from __future__ import annotations

import argparse
import sys

from archc.cli.common import add_spec_arguments, load_graph
from archc.cli.display import DiagnosticPrinter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser)
    parser.add_argument("--print-ir", action="store_true", help="print the elaborated graph IR")


def run(args: argparse.Namespace) -> int:
    graph = load_graph(args, weights=False)
    printer = DiagnosticPrinter.to(sys.stderr)
    for warning in graph.warnings:
        printer.print(warning)
    if args.print_ir:
        print(graph.format())
    print(f"{args.spec}: ok: {graph.name}, {len(graph)} nodes, inputs "
          + ", ".join(f"{n} {graph.node(n).type}" for n in graph.inputs)
          + "; outputs " + ", ".join(f"{k} {graph.type_of(v)}" for k, v in graph.outputs.items()))
    return 0
