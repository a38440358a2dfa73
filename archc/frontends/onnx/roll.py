"""``torch.roll`` as both torch exporters write it -> the native ``roll``.

ONNX has no roll: the exporters write ``torch.roll(x, s, d)`` as the concat of two slices of x along d
(``cat(x[-s:], x[:-s])``), one such pair per rolled dim. :func:`roll` fuses a pair back, :func:`rolls`
a roll of a roll along other dims into one (Swin's cyclic shift of its windows comes back as
``torch.roll(x, shifts=(-2, -2), dims=(1, 2))``, not four slices and two concats).
"""
from __future__ import annotations

from archc.frontends.onnx.patterns import Match, kind, matcher
from archc.ir.graph import Graph, Node


@matcher("concat")
def roll(graph: Graph, root: Node) -> Match | None:
    """``cat(x[a:], x[:a])`` along one dim, each slice read only here: ``torch.roll`` of x by -a along
    it (by n - a where that is the smaller shift), as both torch exporters write ``torch.roll`` (Swin's
    cyclic shift of the windows)."""
    if kind(root) != "concat" or len(root.inputs) != 2 or any(v.out for v in root.inputs):
        return None
    head, tail = (graph.node(v.node) for v in root.inputs)
    if kind(head) != "slice" or kind(tail) != "slice" or head.inputs != tail.inputs or head.name == tail.name \
            or graph.uses(head.name) != 1 or graph.uses(tail.name) != 1:
        return None
    x = head.inputs[0]
    shape = graph.type_of(x).shape
    dim = root.attrs["axis"] % len(shape)
    n = shape[dim]
    if not isinstance(n, int) or any(s.attrs["dim"] % len(shape) != dim or s.attrs["step"] != 1 for s in (head, tail)):
        return None
    cut = head.attrs["start"] % n if head.attrs["start"] is not None else 0
    ends = (head.attrs["end"], tail.attrs["start"] or 0, tail.attrs["end"])
    if not 0 < cut < n or (ends[0] is not None and ends[0] < n) or ends[1] != 0 or ends[2] is None \
            or ends[2] % n != cut:
        return None
    shift = -cut if cut <= n - cut else n - cut
    return Match("roll", {"shifts": [shift], "dims": [dim]}, [x], [root.name, head.name, tail.name])


@matcher("roll")
def rolls(graph: Graph, root: Node) -> Match | None:
    """A roll of a roll along other dims, the inner one read only here: one roll of both (the exporters
    write ``torch.roll(x, (-s, -s), (1, 2))`` a dim at a time)."""
    if kind(root) != "roll":
        return None
    inner = graph.node(root.inputs[0].node)
    if kind(inner) != "roll" or graph.uses(inner.name) != 1:
        return None
    rank = graph.type_of(root.inputs[0]).rank
    dims = [d % rank for d in (*inner.attrs["dims"], *root.attrs["dims"])]
    if len(set(dims)) != len(dims):
        return None
    return Match("roll", {"shifts": [*inner.attrs["shifts"], *root.attrs["shifts"]], "dims": dims}, list(inner.inputs),
                 [root.name, inner.name])
