"""One node builder for both frontends: attributes completed in schema order, inputs counted,
types inferred by the op."""
from __future__ import annotations

import pytest

from archc.errors import ShapeError
from archc.ir import TensorType, Value
from archc.ops import registry
from archc.ops.nodes import NodeError, build_node

X = TensorType((1, 3, 8, 8))


def test_defaults_are_filled_in_schema_order_and_types_inferred():
    conv = registry.get("conv")
    node = build_node(conv, "c", {"kernel_size": 3, "out_channels": 4}, [Value("x")], [X])
    assert list(node.attrs) == list(conv.attrs)
    assert node.attrs["stride"] == conv.attrs["stride"].default
    assert node.outputs == [TensorType((1, 4, 6, 6))]


@pytest.mark.parametrize("attrs,inputs,message", [
    ({"kernel_size": 3, "out_channels": 4, "colour": 1}, 1, "has no attributes \\['colour'\\]"),
    ({"kernel_size": 3}, 1, "needs 'out_channels'"),
    ({"kernel_size": 3, "out_channels": 4}, 2, "takes 1..1 inputs, got 2"),
])
def test_bad_attributes_or_input_counts_are_node_errors(attrs, inputs, message):
    with pytest.raises(NodeError, match=message):
        build_node(registry.get("conv"), "c", attrs, [Value("x")] * inputs, [X] * inputs)


def test_the_ops_shape_errors_propagate():
    with pytest.raises(ShapeError):
        build_node(registry.get("conv"), "c", {"kernel_size": 3, "out_channels": 4}, [Value("x")],
                   [TensorType((1, 3))])
