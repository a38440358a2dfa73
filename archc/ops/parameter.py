"""A learned tensor that is not a layer: layer scale, class tokens, position and bias tables.

``op: parameter`` takes no input and outputs its own tensor, of the declared shape; other
nodes use it in arithmetic (``mul``, ``add``, ``concat``, ...). Like a bare ``nn.Parameter``
attribute of a PyTorch module, its state_dict key is the node's own name
(``blocks.0.gamma_1``, ``cls_token``), so checkpoints of the usual implementations load.
For the analyses it is a constant (role ``const``): it is not computed from the input, so
adding or multiplying it never joins two data paths.
"""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir.types import DTYPES, TensorType
from archc.ops.base import Attr, OpDef, ParamSpec, py
from archc.ops.registry import register

#: initialisations a spec may ask for, and what each means
INITS = {
    "zeros": "all 0", "ones": "all 1", "constant": "all 'value'", "normal": "N(mean 0, std)",
    "trunc_normal": "N(0, std) truncated to [a, b] (torch.nn.init.trunc_normal_)",
}


@register
class Parameter(OpDef):
    name = "parameter"
    aliases = ("param",)
    doc = "A learned tensor of a given shape (no input), e.g. layer scale, class token, bias table."
    inputs = ()
    attrs = {
        "shape": Attr("ints", doc="the tensor's shape, e.g. [1, 1, dim] (expressions allowed; [] a single "
                      "number, NFNet's skip gain)", min=1, empty=True),
        "init": Attr("str", "zeros", choices=tuple(INITS), doc="initial values: " + "; ".join(
            f"{k}: {v}" for k, v in INITS.items())),
        "value": Attr("float", 0.0, doc="the value of init 'constant' (layer scale: 1e-6)"),
        "std": Attr("float", 0.02, doc="standard deviation of init 'normal' and 'trunc_normal'", min=0),
        "a": Attr("float", -2.0, doc="lower bound of init 'trunc_normal' (absolute, as in PyTorch)"),
        "b": Attr("float", 2.0, doc="upper bound of init 'trunc_normal' (absolute, as in PyTorch)"),
        "dtype": Attr("str", "float32", choices=tuple(d for d in DTYPES if d.startswith("float"))),
    }
    role = "const"

    def _spec(self, node) -> ParamSpec:
        a = node.attrs
        shape = (a["shape"],) if isinstance(a["shape"], int) else tuple(a["shape"])
        if any(d < 1 for d in shape):
            raise ShapeError(f"shape {list(shape)} must have positive dims")
        if a["std"] < 0:
            raise ShapeError(f"std {a['std']} must be >= 0")
        if a["init"] == "trunc_normal" and not a["a"] < 0 < a["b"]:
            raise ShapeError(f"trunc_normal bounds a={a['a']}, b={a['b']} must satisfy a < 0 < b")
        _check_fits(a)
        return ParamSpec(shape, a["init"], std=a["std"], dtype=a["dtype"], value=a["value"],
                         low=a["a"], high=a["b"])

    def infer(self, node, ins):
        spec = self._spec(node)
        return [TensorType(spec.shape, spec.dtype)]

    def params(self, node, ins):
        return {"": self._spec(node)}

    def torch_parameter(self, node, ins):
        spec = self._spec(node)
        empty = f"torch.empty({py(spec.shape)}, dtype=torch.{spec.dtype})"
        if spec.init in ("zeros", "ones"):
            return f"torch.{spec.init}({py(spec.shape)}, dtype=torch.{spec.dtype})"
        if spec.init == "constant":
            return f"torch.full({py(spec.shape)}, {spec.value!r}, dtype=torch.{spec.dtype})"
        if spec.init == "normal":
            return f"{empty}.normal_(std={spec.std!r})"
        return f"nn.init.trunc_normal_({empty}, std={spec.std!r}, a={spec.low!r}, b={spec.high!r})"

    def torch_forward(self, node, ins, args, module):
        return module

    def onnx(self, emit, node, inputs, ins):
        return [emit.param("")]


#: the numbers each init puts into the tensor (or draws its values with)
_INIT_NUMBERS = {"constant": ("value",), "normal": ("std",), "trunc_normal": ("std", "a", "b")}


def _check_fits(a: dict) -> None:
    """ShapeError where a number the init uses does not fit the parameter's dtype (float16's range
    ends at 65504; float attributes already fit float32): it would become infinity."""
    import numpy as np

    top = float(np.finfo(a["dtype"]).max)
    for name in _INIT_NUMBERS.get(a["init"], ()):
        if abs(a[name]) > top:
            raise ShapeError(f"{name} {a[name]:g} does not fit the parameter's dtype {a['dtype']} "
                             f"(magnitude at most {top:g})")
