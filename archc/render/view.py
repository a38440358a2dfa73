"""What a picture shows, independent of the drawing format: items, clusters and classified edges.

:func:`build_view` turns a graph and its skip analysis into a :class:`View`: one item per
drawn node (an op, or a collapsed block instance drawn as a box), the clusters (block instances
and repeat groups left open) each item lies in, and the edges between items, each with its
:data:`EdgeClass` -- the connection kind of :class:`archc.ir.vocab.Kind` it belongs to, pooling
indices (:attr:`archc.ir.vocab.Carries.INDICES`), or the main path. The backends in this package
(DOT, Mermaid, HTML) only lay out and style a view. Pure: the graph is not changed.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import networkx as nx

from archc.analysis.hierarchy import Level, box_level, graph_levels, leaf_blocks
from archc.analysis.report import Analysis
from archc.ir import Graph
from archc.ir.graph import Node
from archc.ir.vocab import SKIP_KINDS, Carries, Kind
from archc.ops.weights import count_params

#: an edge's class: the main path, a skip kind, or pooling indices
MAIN = "main"
EdgeClass = str


@dataclass(frozen=True)
class EdgeStyle:
    """How one edge class is drawn, and its legend text."""

    color: str
    style: str        # Graphviz style: solid, dashed, dotted, bold
    width: float
    legend: str


#: one entry per edge class, in legend order: the main path, the skip kinds, pooling indices
EDGE_STYLES: dict[EdgeClass, EdgeStyle] = {
    MAIN: EdgeStyle("#404040", "solid", 1.0, "main path"),
    Kind.RESIDUAL: EdgeStyle("#1f77b4", "bold", 2.0, "residual"),
    Kind.LONG_SKIP: EdgeStyle("#d62728", "dashed", 2.0, "long skip"),
    Kind.DENSE: EdgeStyle("#2ca02c", "solid", 1.5, "dense"),
    Kind.GATED: EdgeStyle("#9467bd", "dashed", 2.0, "gated"),
    Carries.INDICES: EdgeStyle("#ff7f0e", "dotted", 2.0, "pooling indices"),
}
assert all(k in EDGE_STYLES for k in SKIP_KINDS), "every skip kind needs an edge style"


@dataclass
class Item:
    """One drawn node: an op node, a graph output, or a block instance collapsed into a box."""

    id: str                      # archc's own identifier (n12, b3, o0), never a name
    title: str                   # the node's name, the box's block path, the output's name
    lines: list[str]             # label lines under the title
    info: list[str]              # what a tooltip shows
    kind: str                    # "node", "box", "input", "output"
    cluster: int | None = None   # index into View.clusters of the innermost open cluster
    skip: str = ""               # the skip label of a merge node
    members: int = 1             # nodes it shows (more than one for a box)
    params: int = 0              # learned parameters of those nodes


@dataclass
class Cluster:
    """An open block instance or repeat group, drawn as a frame around its items."""

    level: Level
    parent: int | None


@dataclass
class Edge:
    source: str
    target: str
    cls: EdgeClass
    count: int = 1


@dataclass
class View:
    model: str
    items: list[Item]
    clusters: list[Cluster]
    edges: list[Edge]
    depth: int | None
    collapse: bool
    max_depth: int = 0
    classes: list[EdgeClass] = field(default_factory=list)   # edge classes present, legend order


def edge_classes(graph: Graph, analysis: Analysis) -> dict[tuple[str, str], EdgeClass]:
    """(producer, consumer) -> class, for the edges that carry a skip: every hop from the fork
    along the shortcut to the merge. Where the analysis saw through element-wise steps (a
    Highway carry ``x * (1 - T)``), a hop that is no edge is drawn along the shortest path."""
    out: dict[tuple[str, str], EdgeClass] = {}
    for c in analysis.connections:
        if c.kind not in SKIP_KINDS or c.fork is None:
            continue
        cls = Carries.INDICES if c.carries == Carries.INDICES else c.kind
        hops = [c.fork, *c.shortcut, c.merge]
        for a, b in itertools.pairwise(hops):
            path = [a, b] if graph.nx.has_edge(a, b) else _shortest(graph, a, b)
            for u, v in itertools.pairwise(path):
                out.setdefault((u, v), cls)
    return out


def _shortest(graph: Graph, a: str, b: str) -> list[str]:
    try:
        return nx.shortest_path(graph.nx, a, b)
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return []


def build_view(graph: Graph, analysis: Analysis, labels: dict[str, str] | None = None,
               depth: int | None = None, collapse: bool = False) -> View:
    """The picture of ``graph``: levels below ``depth`` (or every block instance with ``collapse``)
    drawn as single boxes; ``labels`` are the merge nodes' skip labels (node name -> text)."""
    labels = labels or {}
    view = View(graph.name, [], [], [], depth, collapse)
    cluster_ids: dict[str, int] = {}
    boxes: dict[str, Item] = {}
    where: dict[str, str] = {}  # node name -> id of the item that shows it
    by_node = graph_levels(graph)
    leaves = leaf_blocks(by_node.values()) if collapse else None
    for node in graph.nodes():
        node_levels = by_node[node.name]
        view.max_depth = max(view.max_depth, len(node_levels))
        cut = box_level(node_levels, depth, leaves)
        open_levels = node_levels if cut is None else node_levels[:cut]
        cluster = _cluster(view, cluster_ids, open_levels)
        if cut is None:
            item = _node_item(graph, node, f"n{len(where)}", cluster, labels.get(node.name, ""))
            view.items.append(item)
        else:
            item = _add_to_box(graph, view, boxes, node, node_levels[cut], cluster)
        where[node.name] = item.id
    for k, name in enumerate(graph.outputs):
        value = graph.outputs[name]
        out = Item(f"o{k}", str(name), ["output", format_shape(graph.type_of(value).shape)],
                   [f"graph output {name}", f"value {value}"], "output")
        view.items.append(out)
        where[f"\0output:{k}"] = out.id
    _edges(graph, analysis, view, where)
    return view


def format_shape(shape: tuple) -> str:
    """``(N, 64, 56, 56)``: a shape as people write it."""
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _cluster(view: View, ids: dict[str, int], open_levels: tuple[Level, ...]) -> int | None:
    parent = None
    for level in open_levels:
        if level.path not in ids:
            ids[level.path] = len(view.clusters)
            view.clusters.append(Cluster(level, parent))
        parent = ids[level.path]
    return parent


def _node_item(graph: Graph, node: Node, ident: str, cluster: int | None, skip: str) -> Item:
    shapes = " ".join(format_shape(t.shape) for t in node.outputs)
    params = count_params(graph, node)
    info = [f"op {node.op}", f"output {shapes}", f"parameters {params:,}"]
    attrs = ", ".join(f"{k}={v}" for k, v in node.attrs.items())
    if attrs:
        info.append(f"attributes {attrs}")
    if skip:
        info.append(f"skip: {skip}")
    kind = "input" if node.op == "input" else "node"
    return Item(ident, node.name, [node.op, shapes], info, kind, cluster, skip, params=params)


def _add_to_box(graph: Graph, view: View, boxes: dict[str, Item], node: Node, level: Level,
                cluster: int | None) -> Item:
    box = boxes.get(level.path)
    if box is None:
        box = Item(f"b{len(boxes)}", level.path, [], [], "box", cluster, members=0)
        boxes[level.path] = box
        view.items.append(box)
    box.members += 1
    box.params += count_params(graph, node)
    shape = format_shape(node.type.shape)  # the last node's output: the box's output (topological order)
    box.lines = [level.block or "repeat", f"{box.members} nodes, {box.params:,} params", shape]
    box.info = [level.title, f"{box.members} nodes", f"parameters {box.params:,}", f"output {shape}"]
    return box


def _edges(graph: Graph, analysis: Analysis, view: View, where: dict[str, str]) -> None:
    classes = edge_classes(graph, analysis)
    seen: dict[tuple[str, str, EdgeClass], Edge] = {}
    pairs: list[tuple[str, str, EdgeClass]] = []
    for node in graph.nodes():
        for value in dict.fromkeys(node.inputs):
            pairs.append((where[value.node], where[node.name], classes.get((value.node, node.name), MAIN)))
    for k, value in enumerate(graph.outputs.values()):
        pairs.append((where[value.node], where[f"\0output:{k}"], MAIN))
    for src, dst, cls in pairs:
        if src == dst:
            continue  # inside one box
        key = (src, dst, cls)
        if key in seen:
            seen[key].count += 1
        else:
            seen[key] = Edge(src, dst, cls)
            view.edges.append(seen[key])
    present = {e.cls for e in view.edges}
    view.classes = [c for c in EDGE_STYLES if c in present]
