"""An imported ONNX node re-written for the opset archc emits, by onnx's own version converter.

A node imported from a newer opset whose operator changed since the emitted one (``ReduceMax``
at opset 18 took its axes as an input instead of an attribute) cannot be written unchanged. Where
the change only moves constants between inputs and attributes, onnx's version converter rewrites
the node for the older opset; :func:`downgraded` asks it, on a model of that one node whose
integer parameters are its initializers, and keeps the answer only where it is one node reading
some of the same inputs (anything else is left to the caller's refusal).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from archc.ir.types import TensorType

__all__ = ["downgraded"]


def downgraded(a: Mapping[str, Any], ins: list[TensorType], constant: Callable[[str], Any],
               attributes: dict[str, Any], opset: int) -> tuple[str, list[int | None], dict[str, Any]] | None:
    """The onnx_node whose attributes are ``a`` as onnx's version converter writes it for ``opset``:
    (op type, for each of its inputs the index of the node's operand it reads (None: none), its
    attributes); None where the converter fails or writes anything but one such node.
    ``constant(name)``: the value of the parameter ``name`` (integer ones become initializers, the
    only inputs a conversion folds); ``attributes``: ``a``'s attributes as ``helper.make_node`` takes them."""
    from onnx import helper, numpy_helper, version_converter

    names, inputs, initializers = [], [], []
    for k, operand in enumerate(a["operands"] or []):
        names.append("" if operand is None else f"i{k}")
        if operand is None:
            continue
        if isinstance(operand, int):
            t = ins[operand]
        else:
            spec = a["params"][operand]
            t = TensorType(tuple(spec["shape"]), spec["dtype"])
            if np.dtype(t.dtype).kind in "iu":
                initializers.append(numpy_helper.from_array(np.asarray(constant(operand)), names[-1]))
                continue
        inputs.append(helper.make_tensor_value_info(names[-1], helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)),
                                                    list(t.shape)))
    outputs = [f"o{k}" for k in range(len(a["output_types"] or []))]
    graph = helper.make_graph([helper.make_node(a["op_type"], names, outputs, **attributes)], "node", inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", a["opset"])])
    try:
        nodes = version_converter.convert_version(model, opset).graph.node
    except Exception:  # noqa: BLE001 - no adapter for this change, or one that refuses these inputs
        return None
    if len(nodes) != 1 or list(nodes[0].output) != outputs or any(i and i not in names for i in nodes[0].input):
        return None
    node = nodes[0]
    reads = [names.index(i) if i else None for i in node.input]
    return node.op_type, reads, {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}
