"""Ops whose only weight is a learned tensor added to the data: a prepended token and a position embedding.

Both are *parameter-only* nodes (:meth:`OpDef.torch_parameter`): the tensor is a bare
``nn.Parameter`` whose state_dict key is the node's own name, as torchvision's ViT keeps
``class_token`` and ``encoder.pos_embedding``. For the analyses they are unary ops with
learned weights, role ``layer`` (like ``embedding``): they add a parameter to one input,
which is not a join of two data paths and so never a skip connection.
"""
from __future__ import annotations

import numpy as np

from archc.errors import ShapeError
from archc.ir import dims
from archc.ir.types import TensorType
from archc.ops.base import Attr, OpDef, ParamSpec, SizeLimit, concrete, expect_rank, py
from archc.ops.registry import register


def _init(std: float, dtype: str) -> ParamSpec:
    """Zeros for std 0, else N(0, std)."""
    if std < 0:
        raise ShapeError(f"init_std {std} must be >= 0")
    return ParamSpec((), "zeros", dtype=dtype) if std == 0 else ParamSpec((), "normal", std=std, dtype=dtype)


def _tensor_source(spec: ParamSpec) -> str:
    """PyTorch source of a tensor drawn like ``spec`` (values are replaced when weights load)."""
    dtype = "" if spec.dtype == "float32" else f", dtype=torch.{spec.dtype}"
    if spec.init == "zeros":
        return f"torch.zeros({py(spec.shape)}{dtype})"
    return f"torch.empty({py(spec.shape)}{dtype}).normal_(std={py(spec.std)})"


def _float_input(x: TensorType, op: str) -> None:
    if not x.dtype.startswith("float"):
        raise ShapeError(f"{op} expects a floating-point input, got {x.dtype} {x}")


@register
class PrependToken(OpDef):
    """Learned tokens prepended along the sequence dim of a (N, S, D) input: (N, k + S, D).

    The tensor, of shape (1, k, D), is the node itself (state_dict key = node name), expanded
    over the batch: ``torch.cat([token.expand(N, -1, -1), x], dim=1)`` as in torchvision's
    ViT. ONNX: ``Concat(Expand(token, [N, k, D]), x, axis=1)``, N read from ``Shape(x)``.
    """

    name = "prepend_token"
    aliases = ("class_token", "cls_token")
    doc = "Prepends k learned tokens to a (N, S, D) sequence, giving (N, k + S, D) (ViT's class token)."
    attrs = {
        "num_tokens": Attr("int", 1, doc="k, how many learned tokens to prepend", min=1),
        "init_std": Attr("float", 0.0, min=0, doc="initial values N(0, init_std); 0 gives zeros (torchvision's ViT)"),
    }
    role = "layer"
    feature_axis = -1

    def _spec(self, node, x: TensorType) -> ParamSpec:
        expect_rank(x, (3,), "(N, S, D)")
        _float_input(x, self.name)
        k = node.attrs["num_tokens"]
        if k < 1:
            raise ShapeError(f"num_tokens={k} must be at least 1")
        d = concrete(x.shape[2], "the embedding dim (last dim)")
        base = _init(node.attrs["init_std"], x.dtype)
        return ParamSpec((1, k, d), base.init, std=base.std, dtype=x.dtype)

    def infer(self, node, ins):
        x = ins[0]
        self._spec(node, x)
        k, s = node.attrs["num_tokens"], x.shape[1]
        return [x.with_shape((x.shape[0], dims.add(s, k), x.shape[2]))]

    def params(self, node, ins):
        return {"": self._spec(node, ins[0])}

    def torch_parameter(self, node, ins):
        return _tensor_source(self._spec(node, ins[0]))

    def torch_forward(self, node, ins, args, module):
        x = args[0]
        return f"torch.cat([{module}.expand({x}.shape[0], -1, -1), {x}], dim=1)"

    def onnx(self, emit, node, inputs, ins):
        spec = self._spec(node, ins[0])
        batch = emit.add_node("Shape", [inputs[0]], start=0, end=1)[0]
        rest = emit.const(np.array(spec.shape[1:], dtype=np.int64), "token_shape")
        shape = emit.add_node("Concat", [batch, rest], axis=0)[0]
        tokens = emit.add_node("Expand", [emit.param(""), shape])[0]
        return emit.add_node("Concat", [tokens, inputs[0]], axis=1)


@register
class PositionEmbedding(OpDef):
    """A learned tensor of the input's shape without its batch dim, added to every sample.

    With ``max_len`` the table holds ``max_len`` positions along dim 1 and the first S of
    them are added to an input of length S (GPT-2's learned positions), so S may be symbolic:
    PyTorch ``x + p[:, :x.shape[1]]``; ONNX ``Add(x, Slice(p, 0, Shape(x)[1], axis 1))``.

    For (N, S, D) tokens the tensor is (1, S, D) (ViT's ``pos_embedding``), so S must be a
    known size; any rank works, e.g. (1, C, H, W) for a learned map. The tensor is the
    node itself (state_dict key = node name). PyTorch ``x + p``; ONNX ``Add(x, p)``.
    """

    name = "position_embedding"
    aliases = ("pos_embedding", "learned_position")
    doc = "Adds a learned (1, *dims) tensor to an (N, *dims) input, e.g. ViT's (1, S, D) position embedding."
    attrs = {
        "init_std": Attr("float", 0.02, min=0, doc="initial values N(0, init_std) (torchvision's ViT: 0.02); 0: zeros"),
        "max_len": Attr("int", None, min=1, doc="a table of max_len positions along dim 1, sliced to the input's "
                                         "length (GPT-2's wpe); the input's dim 1 may then be symbolic"),
    }
    role = "layer"
    feature_axis = -1

    def _spec(self, node, x: TensorType) -> ParamSpec:
        if x.rank < 2:
            raise ShapeError(f"expected an input (N, ...) of at least 2 dims, got {x}")
        _float_input(x, self.name)
        max_len = node.attrs.get("max_len")
        first = 2 if max_len is not None else 1
        dims = tuple(concrete(d, f"dim {i + first} (a learned embedding has a fixed size)")
                     for i, d in enumerate(x.shape[first:]))
        if max_len is not None:
            if max_len < 1:
                raise ShapeError(f"max_len={max_len} must be at least 1")
            if isinstance(x.shape[1], int) and x.shape[1] > max_len:
                raise ShapeError(f"the input has {x.shape[1]} positions along dim 1, more than max_len={max_len}")
            dims = (max_len, *dims)
        base = _init(node.attrs["init_std"], x.dtype)
        return ParamSpec((1, *dims), base.init, std=base.std, dtype=x.dtype)

    def infer(self, node, ins):
        self._spec(node, ins[0])
        return [ins[0]]

    def params(self, node, ins):
        return {"": self._spec(node, ins[0])}

    def size_limits(self, node, ins):
        max_len = node.attrs.get("max_len")
        return [SizeLimit(0, 1, f"its table holds max_len={max_len} positions", most=max_len)] if max_len else []

    def torch_parameter(self, node, ins):
        return _tensor_source(self._spec(node, ins[0]))

    def torch_forward(self, node, ins, args, module):
        if node.attrs.get("max_len") is not None:
            return f"{args[0]} + {module}[:, : {args[0]}.shape[1]]"  # (spaced as ruff format writes it)
        return f"{args[0]} + {module}"

    def onnx(self, emit, node, inputs, ins):
        table = emit.param("")
        if node.attrs.get("max_len") is not None:  # the first S rows, S read from the input's shape
            length = emit.add_node("Shape", [inputs[0]], start=1, end=2)[0]
            zero = emit.const(np.array([0], dtype=np.int64), "start")
            axis = emit.const(np.array([1], dtype=np.int64), "axis")
            table = emit.add_node("Slice", [table, zero, length, axis])[0]
        return emit.add_node("Add", [inputs[0], table])
