"""Element-wise activation functions (role 'activation'), and softmax over one axis."""
from __future__ import annotations

import math

import numpy as np

from archc.ops.base import Attr, OpDef, checked_dim, expect_float, py
from archc.ops.registry import register


def scalar(emit, value: float, like) -> str:
    """A 0-D constant of the input's dtype (ONNX arithmetic needs equal dtypes)."""
    return emit.literal(np.array(value, dtype=like.dtype), "c")  # a literal: no learned parameter


class Activation(OpDef):
    """An element-wise function: output type = input type."""

    role = "activation"
    #: whether it is defined on integer tensors too (relu, abs)
    takes_integers = False

    def infer(self, node, ins):
        if not self.takes_integers:
            expect_float(ins[0], self.name)
        return [ins[0]]


class Direct(Activation):
    """An activation that is one torch function and one ONNX op of the same meaning."""

    torch_function: str = ""
    onnx_op: str = ""
    #: the ``nn`` module class computing the same (``nn.ReLU``)
    torch_module_class: str = ""

    def torch_forward(self, node, ins, args, module):
        return f"{self.torch_function}({args[0]})"

    def torch_module_form(self, node, ins):
        return f"{self.torch_module_class}()" if self.torch_module_class else None

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node(self.onnx_op, inputs)


@register
class Relu(Direct):
    name = "relu"
    doc = "max(x, 0), element-wise."
    torch_function, onnx_op = "torch.relu", "Relu"
    torch_module_class = "nn.ReLU"
    takes_integers = True

    def onnx(self, emit, node, inputs, ins):
        if ins[0].dtype.startswith("float"):
            return emit.add_node("Relu", inputs)
        # ONNX's Relu takes integers from opset 14, but onnxruntime has no integer kernel for it
        return emit.add_node("Max", [inputs[0], scalar(emit, 0, ins[0])])


@register
class Gelu(Activation):
    name = "gelu"
    doc = "Gaussian error linear unit x * Phi(x); approximate 'tanh' uses the tanh formula."
    attrs = {"approximate": Attr("str", "none", choices=("none", "tanh"),
                                 doc="'none' (exact, with erf) or 'tanh' (GPT-2's approximation)")}

    def torch_forward(self, node, ins, args, module):
        return f"F.gelu({args[0]}, approximate={py(node.attrs['approximate'])})"

    def torch_module_form(self, node, ins):
        approximate = node.attrs["approximate"]
        return "nn.GELU()" if approximate == "none" else f"nn.GELU(approximate={py(approximate)})"

    def onnx(self, emit, node, inputs, ins):
        x, t = inputs[0], ins[0]
        approx = node.attrs["approximate"]
        if emit.opset >= 20:
            return emit.add_node("Gelu", [x], approximate=approx)
        half = emit.add_node("Mul", [x, scalar(emit, 0.5, t)])[0]
        if approx == "none":
            # 0.5 x (1 + erf(x / sqrt 2))
            inner = emit.add_node("Erf", [emit.add_node("Div", [x, scalar(emit, math.sqrt(2.0), t)])[0]])[0]
        else:
            # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            cube = emit.add_node("Mul", [x, emit.add_node("Mul", [x, x])[0]])[0]
            poly = emit.add_node("Add", [x, emit.add_node("Mul", [cube, scalar(emit, 0.044715, t)])[0]])[0]
            inner = emit.add_node("Tanh", [emit.add_node("Mul", [poly, scalar(emit, math.sqrt(2 / math.pi), t)])[0]])[0]
        one_plus = emit.add_node("Add", [inner, scalar(emit, 1.0, t)])[0]
        return emit.add_node("Mul", [half, one_plus])


@register
class Silu(Activation):
    name = "silu"
    aliases = ("swish",)
    doc = "x * sigmoid(x), element-wise."

    def torch_forward(self, node, ins, args, module):
        return f"F.silu({args[0]})"

    def torch_module_form(self, node, ins):
        return "nn.SiLU()"

    def onnx(self, emit, node, inputs, ins):
        sig = emit.add_node("Sigmoid", inputs)[0]
        return emit.add_node("Mul", [inputs[0], sig])


@register
class Sigmoid(Direct):
    name = "sigmoid"
    doc = "1 / (1 + exp(-x)), element-wise."
    role = "gate"  # values in (0, 1): a product with it gates (Highway, LSTM, squeeze-and-excitation)
    torch_function, onnx_op = "torch.sigmoid", "Sigmoid"
    torch_module_class = "nn.Sigmoid"


@register
class Tanh(Direct):
    name = "tanh"
    doc = "Hyperbolic tangent, element-wise."
    torch_function, onnx_op = "torch.tanh", "Tanh"
    torch_module_class = "nn.Tanh"


@register
class Exp(Direct):
    name = "exp"
    doc = "e ** x, element-wise."
    torch_function, onnx_op = "torch.exp", "Exp"


@register
class Log(Direct):
    name = "log"
    doc = "Natural logarithm, element-wise (-inf at 0, NaN below, as torch and ONNX give)."
    torch_function, onnx_op = "torch.log", "Log"


@register
class Abs(Direct):
    name = "abs"
    doc = "|x|, element-wise; integers too (T5's relative-position buckets)."
    torch_function, onnx_op = "torch.abs", "Abs"
    takes_integers = True


@register
class Relu6(Activation):
    name = "relu6"
    doc = "min(max(x, 0), 6), element-wise (MobileNet)."

    def torch_forward(self, node, ins, args, module):
        return f"F.relu6({args[0]})"

    def torch_module_form(self, node, ins):
        return "nn.ReLU6()"

    def onnx(self, emit, node, inputs, ins):
        t = ins[0]
        return emit.add_node("Clip", [inputs[0], scalar(emit, 0.0, t), scalar(emit, 6.0, t)])


@register
class Hardswish(Direct):
    name = "hardswish"
    doc = "x * relu6(x + 3) / 6, element-wise (MobileNetV3)."
    torch_function, onnx_op = "F.hardswish", "HardSwish"
    torch_module_class = "nn.Hardswish"


@register
class LeakyRelu(Activation):
    name = "leaky_relu"
    doc = "x if x >= 0 else negative_slope * x, element-wise."
    attrs = {"negative_slope": Attr("float", 0.01, doc="slope for negative inputs")}

    def torch_forward(self, node, ins, args, module):
        return f"F.leaky_relu({args[0]}, negative_slope={py(node.attrs['negative_slope'])})"

    def torch_module_form(self, node, ins):
        return f"nn.LeakyReLU(negative_slope={py(node.attrs['negative_slope'])})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("LeakyRelu", inputs, alpha=float(node.attrs["negative_slope"]))


@register
class Softmax(Activation):
    name = "softmax"
    doc = "exp(x) / sum(exp(x)) along one axis (default the last)."
    attrs = {"axis": Attr("int", -1, doc="the axis that sums to 1")}
    # values in (0, 1): a product with it gates, as with a sigmoid (SKNet's and ResNeSt's attention
    # over branches scales each branch by its softmax weight); attention's scores @ values is a matmul
    role = "gate"
    #: the torch function, nn module class and ONNX op of the same meaning (along one axis)
    torch_function, torch_module_class, onnx_op = "torch.softmax", "nn.Softmax", "Softmax"

    def infer(self, node, ins):
        x = ins[0]
        expect_float(x, self.name)
        checked_dim(node.attrs["axis"], x, "axis")
        return [x]

    def torch_forward(self, node, ins, args, module):
        return f"{self.torch_function}({args[0]}, dim={node.attrs['axis']})"

    def torch_module_form(self, node, ins):
        return f"{self.torch_module_class}(dim={node.attrs['axis']})"

    def onnx(self, emit, node, inputs, ins):
        # Since opset 13 ONNX (Log)Softmax normalises along one axis, exactly like torch.
        return emit.add_node(self.onnx_op, inputs, axis=node.attrs["axis"])


@register
class LogSoftmax(Softmax):
    name = "log_softmax"
    doc = "log(softmax(x)) along one axis (default the last), computed stably (a CTC or NLL head)."
    attrs = {"axis": Attr("int", -1, doc="the axis the probabilities sum over")}
    role = "activation"  # log-probabilities (<= 0): nothing a product gates with
    torch_function, torch_module_class, onnx_op = "torch.log_softmax", "nn.LogSoftmax", "LogSoftmax"
