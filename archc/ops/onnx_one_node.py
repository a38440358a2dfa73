"""One imported ONNX node (an ``onnx_node``) as a model of that node alone, for ONNX's own tools.

:func:`node_model` writes it: the node's computed operands and parameters as typed graph inputs
(integer parameters, where their values are given, as initializers). ONNX's shape inference runs
on it to check a node's declared output types (:func:`archc.ops.onnx_node.check_against_onnx`),
and onnx's version converter to re-write a node for the opset archc emits (:func:`downgraded`):
a node imported from a newer opset whose operator changed since (``ReduceMax`` at opset 18 took
its axes as an input instead of an attribute) cannot be written unchanged, but where the change
only moves constants between inputs and attributes the converter rewrites it. Its answer is
kept only where it is one node reading some of the same inputs (anything else is left to the
caller's refusal).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from archc.ir.types import TensorType

__all__ = ["DEFAULT_OPSET", "downgraded", "node_model", "tensor_type_code"]

#: the default domain's version for a node of another domain (and for one whose opset is unknown)
DEFAULT_OPSET = 17


def tensor_type_code(dtype: str) -> int:
    """ONNX's element type code of an IR dtype."""
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def node_model(a: Mapping[str, Any], ins: list[TensorType], attributes: dict[str, Any], opset: int,
               constant: Callable[[str], Any] | None = None) -> tuple[Any, list[str], list[str]]:
    """The onnx_node whose attributes are ``a`` as a one-node ModelProto at ``opset``, with the names
    of its inputs (``i{k}`` for operand k, "" for an absent one) and outputs (``o{k}``). ``ins``: the
    types of its computed operands; ``attributes``: ``a``'s attributes as ``helper.make_node`` takes
    them; ``opset``: the version of the node's domain (``a["domain"]``, the default one where empty); ``constant(name)``: the value of parameter ``name``, where integer parameters are to be
    initializers (the only inputs a version conversion folds) rather than graph inputs."""
    from onnx import helper, numpy_helper

    params = a["params"] or {}
    names, inputs, initializers = [], [], []
    for k, operand in enumerate(a["operands"] or []):
        names.append("" if operand is None else f"i{k}")
        if operand is None:
            continue
        if isinstance(operand, int):
            t = ins[operand]
        else:
            t = TensorType(tuple(params[operand]["shape"]), params[operand]["dtype"])
            if constant is not None and np.dtype(t.dtype).kind in "iu":
                initializers.append(numpy_helper.from_array(np.asarray(constant(operand)), names[-1]))
                continue
        inputs.append(helper.make_tensor_value_info(names[-1], tensor_type_code(t.dtype), list(t.shape)))
    while names and names[-1] == "":
        names.pop()
    outputs = [f"o{k}" for k in range(len(a["output_types"] or []))]
    domain = a.get("domain") or ""
    graph = helper.make_graph([helper.make_node(a["op_type"], names, outputs, domain=domain or None, **attributes)],
                              "node", inputs, [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializer=initializers)
    # (a node of another domain: ``opset`` is that domain's version, beside the default domain's)
    opsets = [helper.make_opsetid("", opset)] if not domain else \
        [helper.make_opsetid("", DEFAULT_OPSET), helper.make_opsetid(domain, opset)]
    return helper.make_model(graph, opset_imports=opsets), names, outputs


def downgraded(a: Mapping[str, Any], ins: list[TensorType], constant: Callable[[str], Any],
               attributes: dict[str, Any], opset: int) -> tuple[str, list[int | None], dict[str, Any]] | None:
    """The onnx_node whose attributes are ``a`` as onnx's version converter writes it for ``opset``:
    (op type, for each of its inputs the index of the node's operand it reads (None: none), its
    attributes); None where the converter fails or writes anything but one such node.
    ``constant`` and ``attributes`` as :func:`node_model` takes them."""
    from onnx import checker, helper, version_converter

    model, names, outputs = node_model(a, ins, attributes, a["opset"], constant)
    try:
        converted = version_converter.convert_version(model, opset)
    except Exception:  # noqa: BLE001 - no adapter for this change, or one that refuses these inputs
        by_hand = _BY_HAND.get(a["op_type"])
        return by_hand(a, ins, attributes, opset) if by_hand is not None else None
    nodes = converted.graph.node
    if len(nodes) != 1 or list(nodes[0].output) != outputs or any(i and i not in names for i in nodes[0].input):
        return None
    node = nodes[0]
    if not _drop_unknown_defaults(node, a["op_type"], a["opset"], opset):
        return None
    try:  # (the converter can leave a node its target opset rejects: checked, not trusted)
        checker.check_model(converted)
    except Exception:  # noqa: BLE001 - onnx's ValidationError
        return None
    reads = [names.index(i) if i else None for i in node.input]
    return node.op_type, reads, {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


def _drop_unknown_defaults(node: Any, op_type: str, old: int, new: int) -> bool:
    """Remove from the converted ``node`` each attribute its op at opset ``new`` does not have where it
    holds its default at opset ``old`` (it then changes nothing: ReduceMax's ``noop_with_empty_axes=0``,
    which onnx's converter keeps when it moves the axes back to an attribute); False where such an
    attribute holds another value (the node cannot be written at ``new``)."""
    from onnx import defs, helper

    known = defs.get_schema(node.op_type, new).attributes
    before = defs.get_schema(op_type, old).attributes
    kept = []
    for attr in node.attribute:
        if attr.name not in known:
            default = before[attr.name].default_value if attr.name in before else None
            if default is None or not default.type or \
                    helper.get_attribute_value(attr) != helper.get_attribute_value(default):
                return False
            continue
        kept.append(attr)
    if len(kept) != len(node.attribute):
        del node.attribute[:]
        node.attribute.extend(kept)
    return True


def _grid_sample_before_20(a: Mapping[str, Any], ins: list[TensorType], attributes: dict[str, Any],
                           opset: int) -> tuple[str, list[int | None], dict[str, Any]] | None:
    """GridSample-20 at opsets 16-19, which name its modes bilinear and bicubic (20: linear, cubic, and
    linear by default) and sample 4-D inputs only; None for what they cannot say."""
    modes = {"linear": "bilinear", "cubic": "bicubic", "nearest": "nearest"}
    mode = attributes.get("mode", "linear")
    if not 16 <= opset < 20 <= a["opset"] or ins[0].rank != 4 or mode not in modes:
        return None
    return "GridSample", list(range(len(a["operands"] or []))), {**attributes, "mode": modes[mode]}


#: down-versionings onnx's version converter has no adapter for: op type -> the rewrite
_BY_HAND: dict[str, Callable[..., tuple[str, list[int | None], dict[str, Any]] | None]] = {
    "GridSample": _grid_sample_before_20,
}
