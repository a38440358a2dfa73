"""Pictures of a model: DOT, SVG, PNG (Graphviz), Mermaid and a self-contained HTML page.

``graph + skip analysis -> View`` (:mod:`archc.render.view`), then one backend per format;
every string is escaped by :mod:`archc.render.escape`. Pure functions of the graph and its
analysis; only :func:`archc.render.dot.render` runs a program (Graphviz's ``dot``).
"""
from __future__ import annotations

from archc.analysis.report import Analysis
from archc.analysis.skips import merge_labels
from archc.ir import Graph
from archc.render.view import View, build_view

#: output formats by file extension
FORMATS = ("dot", "svg", "png", "mmd", "html")


def views_by_depth(graph: Graph, analysis: Analysis) -> list[View]:
    """The picture at every depth: 0 (outermost block levels as boxes) up to every level open."""
    labels = merge_labels(analysis)
    full = build_view(graph, analysis, labels)
    return [build_view(graph, analysis, labels, depth=d) for d in range(full.max_depth)] + [full]


def draw(graph: Graph, analysis: Analysis, fmt: str, depth: int | None = None,
         collapse: bool = False, output: str = "") -> bytes | str:
    """The picture of ``graph`` in ``fmt`` (one of :data:`FORMATS`): text for dot/mmd/html,
    bytes for svg/png. ``depth``/``collapse`` as :func:`archc.render.view.build_view`; for html
    they choose the picture shown first. ``output`` (``-o out.svg``) names the file in the
    message when Graphviz fails (:func:`archc.render.dot.render`)."""
    from archc.render import dot, html, mermaid

    if fmt == "html":
        views = views_by_depth(graph, analysis)
        start = len(views) - 1 if depth is None else min(depth, len(views) - 1)
        if collapse and depth is None:
            start = _collapsed_depth(views)
        return html.graph_page(graph.name, views, start, lambda v, prefix: dot.render(dot.to_dot(v, id_prefix=prefix), "svg", output))
    view = build_view(graph, analysis, merge_labels(analysis), depth=depth, collapse=collapse)
    if fmt == "mmd":
        return mermaid.to_mermaid(view)
    source = dot.to_dot(view)
    return source if fmt == "dot" else dot.render(source, fmt, output)


def _collapsed_depth(views: list[View]) -> int:
    """The deepest depth whose picture still draws some block instance as a box (the html
    page's nearest picture to ``--collapse``)."""
    boxed = [d for d, view in enumerate(views) if any(it.kind == "box" for it in view.items)]
    return boxed[-1] if boxed else len(views) - 1
