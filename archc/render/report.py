"""The parts of ``archc report``'s page: summary and lint tables, path-length charts (inline SVG).

Every cell goes through :func:`archc.render.escape.html_text`; charts are drawn here as plain
SVG (bars and a polyline), so the page needs nothing from outside.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from archc.analysis.paths import PathStats
from archc.analysis.report import Analysis
from archc.render.escape import html_text


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{html_text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{html_text(c)}</td>' if i in numeric else f"<td>{html_text(c)}</td>"
        for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def lint_table(analysis: Analysis) -> str:
    rows = [(c.merge, c.merge_op, c.kind, c.fork or "-", c.carries or "-",
             c.span.layers if c.span.layers is not None else f"~{c.span.depth}",
             c.stage if c.stage is not None else "-", c.rule, c.reason) for c in analysis.connections]
    if not rows:
        return "<p>no joins: the data flow is a chain</p>"
    return table(("merge", "op", "kind", "fork", "carries", "layers", "stage", "rule", "reason"), rows, (5, 6))


def bar_chart(title: str, values: dict[int, float], xlabel: str, curve: dict[int, float] | None = None,
              width: int = 520, height: int = 180) -> str:
    """An SVG bar chart of ``values`` (x -> share), with an optional polyline ``curve`` over it."""
    if not values:
        return ""
    xs = sorted(values)
    lo, hi = xs[0], xs[-1]
    top = max([*values.values(), *(curve or {}).values()]) or 1.0
    pad, span = 30, max(1, hi - lo + 1)
    step = (width - 2 * pad) / span

    def px(x: float) -> float:
        return pad + (x - lo) * step

    def py(v: float) -> float:
        return height - pad - v / top * (height - 2 * pad)

    bars = "".join(f'<rect x="{px(x):.1f}" y="{py(v):.1f}" width="{max(step - 1, 1):.1f}" '
                   f'height="{height - pad - py(v):.1f}" fill="#8fb3d9"><title>{html_text(f"{x}: {v:.3%}")}</title></rect>'
                   for x, v in values.items())
    line = ""
    if curve:
        points = " ".join(f"{px(x) + step / 2:.1f},{py(v):.1f}" for x, v in sorted(curve.items()))
        line = f'<polyline points="{points}" fill="none" stroke="#d62728" stroke-width="2"/>'
    axis = (f'<text x="{pad}" y="{height - 8}" font-size="10">{lo}</text>'
            f'<text x="{width - pad}" y="{height - 8}" font-size="10" text-anchor="end">{hi}</text>'
            f'<text x="{width / 2}" y="{height - 8}" font-size="10" text-anchor="middle">{html_text(xlabel)}</text>'
            f'<text x="{pad}" y="14" font-size="11">{html_text(title)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{bars}{line}{axis}</svg>')


def path_charts(paths: PathStats | None) -> str:
    """The histogram of input -> output path lengths, and per chain of n residual blocks the
    Binomial(n, 1/2) distribution of residual branches taken (bars) with its curve."""
    if paths is None or not paths.total:
        return "<p>no path analysis</p>"
    parts = []
    if paths.histogram:
        parts.append(bar_chart(f"{paths.total:,} input->output paths: share by length", paths.histogram,
                               "length in parametric layers"))
    else:
        parts.append("<p>path lengths span too many values for a histogram</p>")
    for chain in paths.chains:
        if chain.distribution is None:
            continue
        total = 2 ** chain.blocks
        shares = {k: n / total for k, n in enumerate(chain.distribution)}
        mean, sd = chain.mean, max(chain.std, 1e-9)
        normal = {k: math.exp(-((k - mean) / sd) ** 2 / 2) / (sd * math.sqrt(2 * math.pi)) for k in shares}
        parts.append(bar_chart(f"stage {chain.stage}: {chain.blocks} residual blocks, 2^{chain.blocks} paths, "
                               f"Binomial({chain.blocks}, 1/2) (bars; curve: its normal approximation)", shares, "residual branches taken", normal))
    return "".join(f"<div>{p}</div>" for p in parts)
