"""glu: the gated linear unit's gate (Dauphin et al. 2017), ``a * sigmoid(b)`` where ``a, b =
x.chunk(2, dim)``: ``nn.GLU(dim)``, which halves ``dim``.

An activation (role ``activation``): like SiLU's ``x * sigmoid(x)`` it computes from one tensor and
holds no layer, so it is one step of the main path, and a residual around a block ending in it
stays a residual. (Written out as split, sigmoid and mul, as ONNX models spell it, lint labels the
product a ``sequential`` join, "element-wise arithmetic"; the learned GLU variants, ``a * f(W b)``
with a layer after the split, are branches: ``glu`` is the plain one.) ONNX: Split into halves
(``num_outputs`` from opset 18, equal halves of the axis before), Sigmoid, Mul, as both torch
exporters write ``nn.GLU``.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ops.activation import Activation
from archc.ops.base import Attr, checked_dim, py
from archc.ops.registry import register


@register
class Glu(Activation):
    name = "glu"
    doc = "a * sigmoid(b) for a, b = x.chunk(2, dim): nn.GLU(dim); the output is half as long along dim."
    attrs = {"dim": Attr("int", -1, doc="the dim split in halves, of even size (negative counts from the end)")}

    def _dim(self, node, x) -> int:
        """The split dim, counted from the front; a ShapeError where its size is odd or unknown."""
        dim = checked_dim(node.attrs["dim"], x)
        size = x.shape[dim]
        if not isinstance(size, int):
            raise ShapeError(f"glu needs a known size at dim {node.attrs['dim']} to halve, got symbolic '{size}' "
                             f"in {x}")
        if size % 2:
            raise ShapeError(f"glu halves dim {node.attrs['dim']}, which needs an even size, got {size} in {x}")
        return dim

    def infer(self, node, ins):
        (x,) = super().infer(node, ins)  # a floating-point input
        dim = self._dim(node, x)
        return [x.with_shape((*x.shape[:dim], x.shape[dim] // 2, *x.shape[dim + 1:]))]

    def torch_forward(self, node, ins, args, module):
        return f"F.glu({args[0]}, dim={py(node.attrs['dim'])})"

    def torch_module_form(self, node, ins):
        return f"nn.GLU(dim={py(node.attrs['dim'])})"

    def onnx(self, emit, node, inputs, ins):
        dim = self._dim(node, ins[0])
        halves = {"num_outputs": 2} if emit.opset >= 18 else {}  # required from 18; before, equal parts
        a, b = emit.add_node("Split", inputs, 2, axis=dim, **halves)
        return emit.add_node("Mul", [a, emit.add_node("Sigmoid", [b])[0]])
