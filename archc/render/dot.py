"""A :class:`~archc.render.view.View` as Graphviz DOT, and DOT as SVG or PNG through the ``dot`` program.

Built with the :mod:`graphviz` package; every name and label goes through
:mod:`archc.render.escape`, and identifiers are the view's own (``n12``, ``cluster_3``).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import graphviz

from archc.errors import Location, RuntimeFailure, UsageError
from archc.render.escape import dot_lines, dot_text
from archc.render.view import EDGE_STYLES, Cluster, View

_FILL = {"node": "#ffffff", "box": "#e8eef7", "input": "#fff2cc", "output": "#e2f0d9"}
#: views with more edges than this are laid out with less effort (DenseNet-121 has ~1,000)
_BIG = 400
_SHAPE = {"node": "box", "box": "box3d", "input": "ellipse", "output": "ellipse"}


def to_dot(view: View, legend: bool = True, id_prefix: str = "") -> str:
    """The DOT source of ``view``: clusters for open block levels, edges styled by class, a legend.
    ``id_prefix`` starts every SVG element id (pages holding several pictures keep ids unique)."""
    g = graphviz.Digraph("archc", graph_attr={"id": f"{id_prefix}graph",
        "rankdir": "TB", "fontname": "Helvetica", "label": dot_text(f"{view.model}"), "labelloc": "t",
        "fontsize": "18", "newrank": "true", "ranksep": "0.35", "nodesep": "0.3"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "rounded,filled", "penwidth": "0.8"},
        edge_attr={"arrowsize": "0.6"})
    if len(view.edges) > _BIG:  # dot's crossing minimisation and ranking grow fast: bound their effort
        g.graph_attr.update(mclimit="0.1", nslimit="1", nslimit1="1", splines="line")
    children: dict[int | None, list[int]] = {}
    for k, c in enumerate(view.clusters):
        children.setdefault(c.parent, []).append(k)
    members: dict[int | None, list] = {}
    for item in view.items:
        members.setdefault(item.cluster, []).append(item)
    _fill(g, view, None, children, members, id_prefix)
    for k, e in enumerate(view.edges):
        style = EDGE_STYLES[e.cls]
        attrs = {"color": style.color, "style": style.style, "penwidth": str(style.width),
                 "id": f"{id_prefix}e{k}"}
        if e.count > 1:
            attrs["label"] = dot_text(f"x{e.count}")
            attrs["fontsize"] = "8"
        if e.cls != "main":
            attrs["tooltip"] = dot_text(style.legend)
        g.edge(e.source, e.target, **attrs)
    if legend and view.classes:
        _legend(g, view, id_prefix)
    return g.source


def _fill(g: graphviz.Digraph, view: View, cluster: int | None, children: dict, members: dict,
          id_prefix: str) -> None:
    for item in members.get(cluster, []):
        lines = [item.title, *item.lines] + ([item.skip] if item.skip else [])
        tooltip = [item.title, *item.info]
        g.node(item.id, label=dot_lines(lines), tooltip=dot_lines(tooltip), shape=_SHAPE[item.kind],
               fillcolor=_FILL[item.kind], id=id_prefix + item.id,
               **({"color": EDGE_STYLES[_merge_class(item.skip)].color, "penwidth": "1.6"} if item.skip else {}))
    for k in children.get(cluster, []):
        c: Cluster = view.clusters[k]
        with g.subgraph(name=f"cluster_{k}") as sub:
            sub.attr(label=dot_text(c.level.title), id=f"{id_prefix}c{k}", style="rounded,dashed,filled" if c.level.block is None
                     else "rounded,filled", fillcolor="#fafbfd", color="#8899aa", fontsize="10", tooltip=dot_text(c.level.title))
            _fill(sub, view, k, children, members, id_prefix)


def _merge_class(skip: str) -> str:
    """The edge class whose colour frames a merge node with this skip label (its first kind)."""
    word = skip.split(" ", 1)[0].split("/", 1)[0]
    return word if word in EDGE_STYLES else "main"


def _legend(g: graphviz.Digraph, view: View, id_prefix: str) -> None:
    with g.subgraph(name="cluster_legend") as sub:
        sub.attr(label="legend", id=f"{id_prefix}legend", style="rounded", color="#bbbbbb", fontsize="10")
        for k, cls in enumerate(view.classes):
            style = EDGE_STYLES[cls]
            sub.node(f"legend_{k}a", label="", shape="point", width="0.05", id=f"{id_prefix}legend_{k}a")
            sub.node(f"legend_{k}b", label=dot_text(style.legend), shape="plaintext", fontsize="9",
                     style="", id=f"{id_prefix}legend_{k}b")
            sub.edge(f"legend_{k}a", f"legend_{k}b", color=style.color, style=style.style,
                     penwidth=str(style.width), id=f"{id_prefix}legend_{k}e")


#: environment variable bounding how long one run of ``dot`` may take, in seconds
DOT_SECONDS_ENV = "ARCHC_DOT_SECONDS"
#: dot's default time bound: DenseNet-121's full picture takes about 10 s; a graph dot cannot lay out
#: in minutes would otherwise hang the command
DOT_SECONDS = 300


def dot_seconds() -> float:
    """How long one run of ``dot`` may take: :data:`DOT_SECONDS`, or the environment's override."""
    text = os.environ.get(DOT_SECONDS_ENV, "").strip()
    if not text:
        return DOT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise UsageError(f"{DOT_SECONDS_ENV} must be a positive number of seconds, got '{text}'",
                         location=Location("<environment>"))
    return seconds


#: how a complete picture of each format Graphviz draws begins and ends (a PNG ends with its IEND chunk)
_COMPLETE = {"svg": (b"<svg", b"</svg>"), "png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82")}


def render(source: str, fmt: str, output: str = "") -> bytes:
    """DOT source drawn by Graphviz's ``dot`` as ``fmt`` (svg, png).

    Raises :class:`RuntimeFailure` at ``<command line>`` unless ``dot`` exits 0 within
    :func:`dot_seconds`, reports no error on stderr and gives a complete picture of that format;
    ``output`` (``-o out.svg``) starts the message, naming the file that is then not written."""
    seconds = dot_seconds()
    program = shutil.which("dot")
    where = f"{output}: " if output else ""
    if program is None:
        raise RuntimeFailure(
            f"{where}drawing .{fmt} needs Graphviz's 'dot' program, which is not installed "
            "(Debian/Ubuntu: apt-get install graphviz); .dot and .mmd outputs work without it",
            location=Location("<command line>"))
    try:
        proc = subprocess.run([program, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
                              check=False, timeout=seconds)
    except subprocess.TimeoutExpired:  # run() has killed dot
        raise RuntimeFailure(
            f"{where}Graphviz's dot ({program}) did not finish drawing the .{fmt} picture in {seconds:g} s; "
            f"allow it longer ({DOT_SECONDS_ENV}=SECONDS), or draw fewer boxes with archc graph's "
            "--depth N or --collapse, or write .dot or .mmd, which need no dot", location=Location("<command line>")) from None
    except OSError as exc:
        raise RuntimeFailure(f"{where}cannot run Graphviz's dot ({program}): {exc.strerror or exc}",
                             location=Location("<command line>")) from None
    problem = _dot_problem(proc, fmt)
    if problem:
        raise RuntimeFailure(f"{where}Graphviz's dot ({program}) failed to draw the .{fmt} picture: {problem}",
                             location=Location("<command line>"))
    return proc.stdout


def _dot_problem(proc: subprocess.CompletedProcess, fmt: str) -> str | None:
    """What went wrong in one run of ``dot`` (its exit status, an error it printed, or an empty
    or cut-off picture), in words; None when it drew a complete picture."""
    messages = [line.strip() for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    errors = [line for line in messages if line.lower().startswith(("error", "fatal"))]
    detail = (errors or messages or [""])[0][:500]
    said = f" ({detail})" if detail else ""
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        return how + said
    if errors:
        return f"it reported an error{said}"
    head, tail = _COMPLETE.get(fmt, (b"", b""))
    if not proc.stdout:
        return "it wrote no picture" + said
    if head not in proc.stdout[:4096] or not proc.stdout.rstrip().endswith(tail):
        return f"its output is not a complete .{fmt} picture ({len(proc.stdout):,} bytes)" + said
    return None
