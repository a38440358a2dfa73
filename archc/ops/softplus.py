"""softplus: log(1 + exp(beta x)) / beta, linear above a threshold (PyTorch's definition)."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.activation import Activation, scalar
from archc.ops.base import Attr
from archc.ops.registry import register


def onnx_softplus(emit, x: str, t, beta: float, threshold: float) -> str:
    """PyTorch's softplus as ONNX: Softplus(beta x) / beta where beta x <= threshold, else x."""
    scaled = x if beta == 1.0 else emit.add_node("Mul", [x, scalar(emit, beta, t)])[0]
    soft = emit.add_node("Softplus", [scaled])[0]
    if beta != 1.0:
        soft = emit.add_node("Div", [soft, scalar(emit, beta, t)])[0]
    above = emit.add_node("Greater", [scaled, scalar(emit, threshold, t)])[0]
    return emit.add_node("Where", [above, x, soft])[0]


@register
class Softplus(Activation):
    name = "softplus"
    doc = ("log(1 + exp(beta x)) / beta, and x where beta x > threshold: torch.nn.functional.softplus; "
           "ONNX Softplus with the same threshold (Where).")
    attrs = {"beta": Attr("float", 1.0, doc="sharpness"),
             "threshold": Attr("float", 20.0, doc="above beta x > threshold the result is x")}

    def infer(self, node, ins):
        if node.attrs["beta"] <= 0:
            raise ShapeError(f"beta {node.attrs['beta']} must be > 0")
        return super().infer(node, ins)

    def torch_forward(self, node, ins, args, module):
        a = node.attrs
        return f"F.softplus({args[0]}, beta={float(a['beta'])!r}, threshold={float(a['threshold'])!r})"

    def onnx(self, emit, node, inputs, ins):
        a = node.attrs
        return [onnx_softplus(emit, inputs[0], ins[0], float(a["beta"]), float(a["threshold"]))]
