"""Each ONNX node's fields, read once for the import's walk.

Reading a protobuf field from Python costs what several dict lookups do, and serialising a
node's attributes (what a node kind's key holds of them) costs more than reading all its other
fields. The model's bytes are at hand (the checker's input, serialised once): a mirror of
ONNX's ``NodeProto`` that declares ``attribute`` as ``repeated bytes`` parses them into each
node's attributes as the bytes the file holds, without an ``AttributeProto`` per attribute.

Equal bytes are equal attributes, so a key made of them names one kind; bytes that differ
from what protobuf writes for the same attributes (another writer's field order) only make
a kind that never matches a recorded one, and its nodes take the general way.
"""
from __future__ import annotations

from typing import Any

import onnx

from archc.frontends.onnx.mirror import PRESENCE, Fields, mirror_class
from archc.frontends.onnx.naming import path_name

__all__ = ["mirror_graph", "node_rows"]

#: a row: (node, op_type, domain, inputs (a list), outputs (a list), attributes' bytes or None where not
#: read, the name it is named by (:func:`~archc.frontends.onnx.naming.path_name`), whether it has metadata_props)
Row = tuple

#: the mirror's messages and fields: message -> (field, element type: None for a string, "bytes")
_FIELDS: Fields = {
    "ModelProto": (("graph", "GraphProto"),),
    "GraphProto": (("node", "NodeProto"), ("initializer", "bytes")),
    "NodeProto": (("input", None), ("output", None), ("name", None), ("op_type", None), ("domain", None),
                  ("attribute", "bytes"), ("metadata_props", PRESENCE)),
}
_mirror: Any = None


def mirror_graph(data: bytes) -> Any:
    """The mirror's graph of the serialised model ``data``: its nodes' fields and each initializer's
    bytes; None where it does not parse (a name that is not UTF-8)."""
    global _mirror
    if _mirror is None:
        _mirror = mirror_class("archc_onnx_rows", _FIELDS)
    try:
        return _mirror.FromString(data).graph
    except Exception:  # noqa: BLE001 - protobuf's DecodeError
        return None


def node_rows(graph: onnx.GraphProto, data: bytes | None, mirrored: Any = None) -> list[Row]:
    """Each node of ``graph`` with its fields; the attributes' bytes from ``data`` (a serialised
    model whose graph has these nodes, in order; ``mirrored``: its :func:`mirror_graph`, where parsed
    already) where it parses, else None for each node."""
    nodes = list(graph.node)
    mirrored = _mirrored_nodes(data, len(nodes), mirrored) if data is not None else None
    # (a repeated field read as a slice: iterating it ends in an IndexError protobuf formats, per field)
    if mirrored is None:
        rows = [(node, node.op_type, node.domain, node.input[:], node.output[:], None, node.name,
                 len(node.metadata_props) > 0) for node in nodes]
    else:
        rows = [(node, m.op_type, m.domain, m.input[:], m.output[:], tuple(m.attribute[:]), m.name,
                 m.HasField("metadata_props")) for node, m in zip(nodes, mirrored)]
    # (a node with metadata is named by its module path where the exporter recorded one there)
    return [(*row[:6], path_name(row[0]), True) if row[7] else row for row in rows] \
        if any(row[7] for row in rows) else rows


def _mirrored_nodes(data: bytes, count: int, mirrored: Any = None) -> Any:
    """The mirror's nodes of the serialised model ``data`` (``mirrored``: its graph, where parsed);
    None where it does not parse or holds another number of nodes."""
    graph = mirrored if mirrored is not None else mirror_graph(data)
    nodes = graph.node if graph is not None else None
    return nodes if nodes is not None and len(nodes) == count else None
