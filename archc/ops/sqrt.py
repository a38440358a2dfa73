"""sqrt: the square root, element-wise."""
from __future__ import annotations

from archc.ops.activation import Direct
from archc.ops.registry import register


@register
class Sqrt(Direct):
    name = "sqrt"
    doc = "Square root, element-wise: torch.sqrt, ONNX Sqrt."
    torch_function, onnx_op = "torch.sqrt", "Sqrt"
