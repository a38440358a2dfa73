"""``archc report SPEC|MODEL.onnx -o report.html``: one offline page about a model.

The page holds the picture (every depth, expand and collapse as ``archc graph``'s HTML), the
summary table with MACs and memory, the lint table with each label's reason and rule, and the
path-length charts: a histogram of input -> output path lengths and, per chain of residual
blocks, the Binomial(n, 1/2) distribution of residual branches taken.
"""
from __future__ import annotations

import argparse

from archc.analysis.cost import totals
from archc.analysis.skips import analyze
from archc.cli.common import add_spec_arguments, load_graph
from archc.cli.counting import add_counting_arguments, counted
from archc.errors import Location, UsageError
from archc.fileio import check_output_path, write_atomic
from archc.progress import activity

EXAMPLE = """example:
  archc report specs/resnet18.yaml -o resnet18_report.html
  archc report specs/gnmt_encoder.yaml --dim S=64 -o gnmt_report.html"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_spec_arguments(parser, models=True)
    parser.add_argument("-o", "--output", required=True, help="the page to write (.html)")
    add_counting_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from archc.render import dot, html, report, views_by_depth

    if not args.output.lower().endswith((".html", ".htm")):
        raise UsageError(f"-o {args.output}: a report is an HTML page; give a name ending in .html",
                         location=Location("<command line>"))
    check_output_path(args.output, "-o")
    graph = load_graph(args, weights=False)  # the page shows shapes, counts and costs, never weight values
    with activity("finding skip connections and counting paths"):
        analysis = analyze(graph)
    count = counted(graph, args)
    per_node = count.per_node
    t = totals(per_node)
    labels = {c.merge: c.kind for c in analysis.connections}
    summary = report.table(
        ("name", "op", "output shape", "params", "MACs", "activation bytes", "skip"),
        [(c.name, c.op, " ".join(str(s) for s in c.shapes), f"{c.params:,}", f"{c.macs:,}",
          f"{c.activation_bytes:,}", labels.get(c.name, "")) for c in per_node], (3, 4, 5))
    totals_line = (f"<p>{t['params']:,} parameters, {t['macs'] / 1e9:.2f} GMACs, parameter memory "
                   f"{t['param_bytes']:,} bytes, activations {t['activation_bytes']:,} bytes at {count.at()}</p>")
    sections = [
        f"<section><h2>Summary</h2>{totals_line}{summary}</section>",
        f"<section><h2>Connections</h2>{report.lint_table(analysis)}</section>",
        f"<section><h2>Paths</h2>{report.path_charts(analysis.paths)}</section>",
    ]
    views = views_by_depth(graph, analysis)
    with activity(f"drawing {len(views)} pictures"):
        page = html.graph_page(f"{graph.name} report", views, len(views) - 1,
                               lambda v, prefix: dot.render(dot.to_dot(v, id_prefix=prefix), "svg", f"-o {args.output}"),
                               sections)
    write_atomic(args.output, page, "-o")
    return 0
