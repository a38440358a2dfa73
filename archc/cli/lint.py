"""``archc lint SPEC|MODEL.onnx``: find and label the skip connections of a model.

Prints one row per join of the data flow (merge node, op, label, fork, what the
shortcut carries, layers spanned, stage, reason), the counts of each skip kind, the
path analysis (Veit et al. 2016) and any disagreement with the spec's ``expect:``
declarations. ``--strict`` exits 1 when a declaration disagrees; otherwise lint exits 0
(2 for a spec it cannot read). ``--explain`` adds the classification rule that decided
each label (a ``rule`` column, a ``"rule"`` field in JSON; the rules are in
:mod:`archc.analysis.rules`). ``--kinds`` prints the labels and what they mean. ``--band LO:HI`` asks for the share of input -> output
paths whose length, in parametric layers, lies in LO..HI (default: the central band
holding 95% of them).

JSON output (``--format json``), schema ``archc.lint/2``. It parses with the default settings
of Python's ``json`` and JavaScript's ``JSON.parse`` without loss: a count beyond 2^53 (the
largest integer a double holds exactly) is written as its decimal string, next to its log2::

    Count = int | str          # a JSON number up to 2^53 = 9007199254740992, else exact decimal digits

    {
      "schema": "archc.lint/2",
      "model": str,
      "summary": {"residual": int, "long_skip": int, "dense": int, "gated": int},
      "joins_summary": {"branch": int, "sequential": int},
      "skips": [Connection, ...],        # the skip connections, topological order of merge
      "joins": [Connection, ...],        # joins that are not skips (branch, sequential)
      "paths": Paths | null,             # null with --no-paths
      "expectations": [Mismatch, ...],   # empty when every declared expect holds
      "ok": bool                         # no expectation mismatch
    }

    Connection = {
      "fork": str | null,      # node whose value is forked (null: the inputs share no fork)
      "fork_output": int,      # which output of the fork
      "merge": str, "merge_op": str,
      "kind": "residual" | "long_skip" | "dense" | "gated" | "branch" | "sequential",
      "carries": "identity" | "projection" | "indices" | "computed" | null,  # on a join that is no skip:
                               # what its lightest input from the fork is (the table prints -: it is carried
                               # around nothing)
      "shortcut": [str],       # nodes on the shortcut, fork side first ([] for identity)
      "span": {"layers": int | null,   # parametric layers in the bypassed region (null: not walked: a
                                       # dense pair, a join that is no skip, or a region too large to walk)
               "ops": int | null,      # all ops in that region
               "depth": int,           # parametric layers on the longest bypassed path (from the fork)
               "depth_ops": int,       # ops on that path
               "nodes": [str]},        # the region's nodes when it is small, else []
      "stage": int | null,     # chain of residual blocks in series it belongs to (residual only)
      "position": int | null,  # its place in that chain
      "reason": str,           # one line saying why it got its label
      "rule": str              # with --explain only: the rule that decided it (archc.analysis.rules)
    }

    Paths = {
      "total": Count,          # exact number of input -> output paths
      "total_log2": float | null,                       # log2 of total (null: no paths)
      "shortest": int | null, "longest": int | null,   # in parametric layers
      "mean": float | null, "std": float | null,
      "band": {"lo": int, "hi": int, "share": float, "source": "given" | "central95"} | null,
      "histogram": {"<length>": share} | null,          # when lengths span at most 64 values
      "chains": [{"stage": int, "blocks": int, "merges": [str],
                  "paths": Count, "paths_log2": float,  # 2^blocks, and blocks
                  "mean": float, "std": float,          # of Binomial(blocks, 1/2)
                  "distribution": [Count] | null}]      # paths taking k residual branches, k = 0..blocks
    }

    Mismatch = {"node": str, "expected": str, "found": str, "reason": str, "location": str | null}

Changes from ``archc.lint/1``: ``total``, ``paths`` and ``distribution`` entries beyond 2^53
are strings; ``total_log2`` and ``paths_log2`` are new.

Counts in ``summary`` follow one skip = one (fork, merge) pair; a DenseNet concat
reading L earlier features holds L - 1 pairs (the most recent input is the main path).
"""
from __future__ import annotations

import argparse
import math
from functools import partial
from typing import Callable

from archc.analysis.report import Analysis, Skip
from archc.analysis.skips import analyze
from archc.cli.common import add_spec_arguments, load_graph, table_lines
from archc.cli import jsontext
from archc.cli.jsontext import quote as _quote
from archc.errors import Location, UsageError
from archc.ir.vocab import JOIN_KINDS, SKIP_KINDS, kinds_table
from archc.progress import activity


class _PrintKinds(argparse.Action):
    """``--kinds``: print the label table (generated from :class:`archc.ir.vocab.Kind`) and exit."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(kinds_table())
        parser.exit(0)


#: what the table's columns hold, and an example: the end of ``archc lint --help``
TABLE_COLUMNS = """\
columns: merge (the join), op, kind, fork (where the shortcut leaves the main path), carries (identity,
projection, indices or computed; - on a join that is no skip, which carries nothing around anything),
layers (learned layers in the region the skip bypasses, side paths such as channel attention included;
~N where no region was walked, N then the layers on the longest path from the fork: on dense pairs (into
the concat), on every join that is no skip (it bypasses nothing, whatever region the analysis walked to
measure it), and where a region is too large to walk), stage (residual blocks in series), reason (it
counts the layers on the longest bypassed path)

example:
  archc lint specs/unet.yaml --explain"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = TABLE_COLUMNS
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_spec_arguments(parser, models=True)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a node's declared 'expect' disagrees with the analysis")
    parser.add_argument("--band", metavar="LO:HI",
                        help="report the share of paths with LO..HI parametric layers "
                             "(default: the central band holding 95%% of paths)")
    parser.add_argument("--explain", action="store_true",
                        help="name the classification rule that decided each label (column 'rule', JSON 'rule')")
    parser.add_argument("--kinds", action=_PrintKinds, help="print the connection labels and what they mean, then exit")
    parser.add_argument("--all", dest="show_all", action="store_true",
                        help="table: also list joins that are not skips (branch, sequential)")
    parser.add_argument("--no-paths", dest="paths", action="store_false",
                        help="skip the path analysis (its length distribution dominates on huge dense graphs)")


def run(args: argparse.Namespace) -> int:
    band = _band(args.band)
    graph = load_graph(args, weights=False)
    with activity("finding skip connections" + (" and counting paths" if args.paths else "")):
        analysis = analyze(graph, band=band, paths=args.paths)
    if args.format == "json":
        print(json_text(analysis, explain=args.explain))
    else:
        print(format_table(analysis, show_all=args.show_all, explain=args.explain))
    return 1 if args.strict and analysis.expectations else 0


def json_text(analysis: Analysis, explain: bool = False) -> str:
    """The JSON form of ``analysis`` (schema above): ``json.dumps(data, indent=2)`` of its
    :meth:`~archc.analysis.report.Analysis.to_dict` with ``"ok"`` added, the same characters made
    faster (each connection written from its record, not from a dict made for it)."""
    write = _connection_writer(explain)
    plain = partial(Skip.to_dict, explain=explain)
    # (the module's names looked up at the call: the writer and its record type must be one module's)
    data = analysis.to_dict(explain=explain, connections=lambda records: jsontext.Rows(records, write, plain))
    data["ok"] = not analysis.expectations
    return jsontext.indented(data)


def _connection_writer(explain: bool) -> Callable[[Skip, str], str]:
    """A function writing one connection's JSON text at a depth, as ``indented(skip.to_dict(explain))``
    writes it there: a template per depth (keys, separators, indentation) filled with the fields' texts."""
    layouts: dict[str, tuple[str, _ListText, _ListText]] = {}

    def write(c: Skip, newline: str) -> str:
        layout = layouts.get(newline)
        if layout is None:
            layout = layouts[newline] = _connection_layout(newline, explain)
        template, (s_open, s_between, s_close), (n_open, n_between, n_close) = layout
        span = c.span
        # (each field as json writes it; conditionals and lists inline: one call per record, lint writes 14k at
        # 100k nodes, most with a list of names)
        fields = (
            "null" if c.fork is None else _quote(c.fork), _int(c.fork_output), _quote(c.merge), _quote(c.merge_op),
            _quote(c.kind), "null" if c.carries is None else _quote(c.carries),
            f"{s_open}{s_between.join(map(_quote, c.shortcut))}{s_close}" if c.shortcut else "[]",
            "null" if span.layers is None else _int(span.layers), "null" if span.ops is None else _int(span.ops),
            _int(span.depth), _int(span.depth_ops),
            f"{n_open}{n_between.join(map(_quote, span.nodes))}{n_close}" if span.nodes else "[]",
            "null" if c.stage is None else _int(c.stage), "null" if c.position is None else _int(c.position),
            _quote(c.reason))
        return template % (fields + (_quote(c.rule),) if explain else fields)
    return write


def _connection_layout(newline: str, explain: bool) -> tuple[str, _ListText, _ListText]:
    """A connection's text at a depth with a ``%s`` for each field's text (the keys are fixed here
    and hold no ``%``), and the texts around the items of its lists of names (``shortcut``, span ``nodes``)."""
    inner, deeper = newline + "  ", newline + "    "
    keys = ["fork", "fork_output", "merge", "merge_op", "kind", "carries", "shortcut"]
    span_keys = ["layers", "ops", "depth", "depth_ops", "nodes"]
    tail = ["stage", "position", "reason"] + (["rule"] if explain else [])
    template = ("{" + "".join(f'{inner}"{k}": %s,' for k in keys)
                + f'{inner}"span": {{' + ",".join(f'{deeper}"{k}": %s' for k in span_keys) + f"{inner}}},"
                + ",".join(f'{inner}"{k}": %s' for k in tail) + newline + "}")
    return template, _list_text(deeper), _list_text(deeper + "  ")


#: an int's JSON text (a value of another type raises: no field written here holds one)
_int = int.__repr__
#: the text before, between and after the items of a non-empty list of strings
_ListText = tuple[str, str, str]


def _list_text(items: str) -> _ListText:
    """How ``indented`` writes a non-empty list of strings whose items start lines with ``items``."""
    return "[" + items, "," + items, items[:-2] + "]"


def _band(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        band = (int(lo), int(hi))
    except ValueError:
        band = None
    if not sep or band is None or band[0] > band[1] or band[0] < 0:
        raise UsageError(f"--band expects LO:HI with 0 <= LO <= HI, got '{text}'",
                         location=Location("<command line>"))
    return band


def format_table(analysis: Analysis, show_all: bool = False, explain: bool = False) -> str:
    rows = [c for c in analysis.connections if show_all or c.is_skip]
    headers = ("merge", "op", "kind", "fork", "carries", "layers", "stage") + (("rule",) if explain else ()) \
        + ("reason",)
    cells = [(c.merge, c.merge_op, c.kind, c.fork or "-", (c.carries if c.is_skip else None) or "-",
              str(c.span.layers) if c.is_skip and c.span.layers is not None else f"~{c.span.depth}",
              str(c.stage) if c.stage is not None else "-") + ((c.rule,) if explain else ()) + (c.reason,)
             for c in rows]
    out = [f"model {analysis.model}"]
    if cells:
        out += table_lines(headers, cells, free_last=True)
    else:
        out.append("no skip connections" if not show_all else "no joins")
    counts = analysis.summary()
    out.append("skips: " + ", ".join(f"{k} {counts[k]}" for k in SKIP_KINDS)
               + "   (joins that are not skips: " + ", ".join(f"{k} {counts[k]}" for k in JOIN_KINDS) + ")")
    if analysis.paths is not None:
        out += _paths_lines(analysis)
    if analysis.expectations:
        out.append(f"expectations: {len(analysis.expectations)} mismatch"
                   f"{'es' if len(analysis.expectations) != 1 else ''}")
        for m in analysis.expectations:
            where = f"{m.location}: " if m.location else ""
            out.append(f"  {where}node '{m.node}': expected {m.expected}, found {m.found} ({m.reason})")
    elif analysis.declared_expectations:
        count = analysis.declared_expectations
        out.append(f"expectations: {count} declared, {'all hold' if count != 1 else 'it holds'}")
    else:
        out.append("expectations: none declared (an 'expect: residual' on a merge node asks lint to check it)")
    return "\n".join(out)


def _paths_lines(analysis: Analysis) -> list[str]:
    p = analysis.paths
    out = [f"paths: {_big(p.total)} input->output path{'s' if p.total != 1 else ''}"]
    if p.total == 1:
        out[-1] += f" of {p.shortest} layer{'s' if p.shortest != 1 else ''}"
    elif p.total:
        band = p.band
        out[-1] += (f"; length in layers {p.shortest}..{p.longest}, mean {p.mean:.1f} (sd {p.std:.1f}); "
                    f"{p.band_share:.1%} of paths have {band[0]}..{band[1]} layers"
                    + (" (central 95% band)" if p.band_source == "central95" else ""))
    for c in p.chains:
        out.append(f"  stage {c.stage}: {c.blocks} residual block{'s' if c.blocks != 1 else ''} in series -> "
                   f"2^{c.blocks} = {_big(c.paths)} paths, residual branches taken ~ Binomial({c.blocks}, 1/2)")
        if c.paths > p.total:  # (a stage computing a mask: a gate passes the scaled value's paths only)
            out[-1] += "; none of them reaches the output (the stage computes a value such as a gate's scale)"
    return out


def _big(n: int) -> str:
    if n < 10 ** 15:
        return f"{n:,}"
    exp = math.log10(n)  # exact enough for any int: math.log10 accepts arbitrarily large ints
    return f"~{10 ** (exp - math.floor(exp)):.3f}e{math.floor(exp)}"
