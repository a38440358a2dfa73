"""A :class:`~archc.render.view.View` as a Mermaid flowchart (for Markdown pages that render Mermaid).

Identifiers are the view's own (``n12``, ``c3``); every label goes through
:func:`archc.render.escape.mermaid_lines`. Edge classes are styled with ``linkStyle``.
"""
from __future__ import annotations

from archc.render.escape import mermaid_lines, mermaid_text
from archc.render.view import EDGE_STYLES, View

_SHAPES = {"node": ('["', '"]'), "box": ('[["', '"]]'), "input": ('(["', '"])'), "output": ('(["', '"])')}


def to_mermaid(view: View, legend: bool = True) -> str:
    lines = ["flowchart TB"]
    children: dict[int | None, list[int]] = {}
    for k, c in enumerate(view.clusters):
        children.setdefault(c.parent, []).append(k)
    members: dict[int | None, list] = {}
    for item in view.items:
        members.setdefault(item.cluster, []).append(item)
    _fill(lines, view, None, children, members, "  ")
    styles: list[str] = []
    for k, e in enumerate(view.edges):
        arrow = "-->" if EDGE_STYLES[e.cls].style in ("solid", "bold") else "-.->"
        count = f"|{mermaid_text(f'x{e.count}')}|" if e.count > 1 else ""
        lines.append(f"  {e.source} {arrow}{count} {e.target}")
        styles.append(_link_style(k, e.cls))
    if legend and view.classes:
        lines.append('  subgraph legend["legend"]')
        for k, cls in enumerate(view.classes):
            arrow = "-->" if EDGE_STYLES[cls].style in ("solid", "bold") else "-.->"
            lines.append(f'    legend_{k}a[" "] {arrow} legend_{k}b["{mermaid_text(EDGE_STYLES[cls].legend)}"]')
            styles.append(_link_style(len(view.edges) + k, cls))
        lines.append("  end")
    lines += styles
    return "\n".join(lines) + "\n"


def _link_style(index: int, cls: str) -> str:
    style = EDGE_STYLES[cls]
    return f"  linkStyle {index} stroke:{style.color},stroke-width:{style.width + 0.5:g}px"


def _fill(lines: list[str], view: View, cluster: int | None, children: dict, members: dict, pad: str) -> None:
    for item in members.get(cluster, []):
        opening, closing = _SHAPES[item.kind]
        text = mermaid_lines([item.title, *item.lines] + ([item.skip] if item.skip else []))
        lines.append(f"{pad}{item.id}{opening}{text}{closing}")
    for k in children.get(cluster, []):
        lines.append(f'{pad}subgraph c{k}["{mermaid_text(view.clusters[k].level.title)}"]')
        _fill(lines, view, k, children, members, pad + "  ")
        lines.append(f"{pad}end")
