"""rotary_embedding: rotary position embeddings (Su et al., RoFormer, 2021), as in Llama.

The input is (N, S, H, D) (queries or keys split into heads, sequence dim 1). Position m
rotates each pair of features by m * theta_i, theta_i = base ** (-2i / D). ``interleaved``
pairs are (2i, 2i + 1), as Meta's Llama code (complex multiplication); otherwise the pairs
are (i, i + D/2), the "rotate half" form of GPT-NeoX and Hugging Face. The angles are computed
from the input's length at run time (no table in the state_dict, like Llama's ``freqs_cis``),
in float32, so S may be symbolic.
"""
from __future__ import annotations

import numpy as np

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, concrete, py
from archc.ops.registry import register


@register
class RotaryEmbedding(OpDef):
    name = "rotary_embedding"
    aliases = ("rope",)
    doc = "Rotary position embedding of (N, S, H, D) queries or keys (RoFormer; Llama): pairs rotated by position."
    attrs = {"base": Attr("float", 10000.0, doc="theta: frequencies base ** (-2i / D)"),
             "interleaved": Attr("bool", True, doc="pairs (2i, 2i+1) as Meta's Llama; false: (i, i + D/2)")}
    role = "activation"  # position-dependent but element-wise in features: no learned weight, no merge

    def _dim(self, x) -> int:
        if x.rank != 4 or not x.dtype.startswith("float"):
            raise ShapeError(f"expected floating-point (N, S, heads, head_dim), got {x.dtype} {x}")
        d = concrete(x.shape[3], "head_dim")
        if d % 2:
            raise ShapeError(f"head_dim {d} must be even")
        return d

    def infer(self, node, ins):
        self._dim(ins[0])
        return [ins[0]]

    def _freqs(self, node, d: int) -> np.ndarray:
        return (1.0 / (node.attrs["base"] ** (np.arange(0, d, 2, dtype=np.float32)[: d // 2] / d))).astype(np.float32)

    torch_functions = {"apply_rotary_embedding": '''\
def apply_rotary_embedding(
    x: torch.Tensor, head_dim: int, base: float, interleaved: bool
) -> torch.Tensor:
    """Rotary position embedding of (N, S, heads, head_dim) queries or keys."""
    positions = torch.arange(x.shape[1], device=x.device).float()
    exponents = torch.arange(0, head_dim, 2, device=x.device).float() / head_dim
    angles = torch.outer(positions, 1.0 / (base**exponents))[None, :, None, :]
    cos, sin = torch.cos(angles), torch.sin(angles)
    if interleaved:  # pairs (2i, 2i + 1), as Meta's Llama
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    # pairs (i, i + head_dim / 2), as GPT-NeoX ("rotate half")
    a, b = x[..., : head_dim // 2], x[..., head_dim // 2 :]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
'''}

    def torch_forward(self, node, ins, args, module):
        d, base = self._dim(ins[0]), py(float(node.attrs["base"]))
        return f"apply_rotary_embedding({args[0]}, {d}, {base}, {py(bool(node.attrs['interleaved']))})"

    def onnx(self, emit, node, inputs, ins):
        x, t = inputs[0], ins[0]
        d = self._dim(t)

        def i64(*v):
            return emit.const(np.array(v, dtype=np.int64), "i")

        length = emit.add_node("Squeeze", [emit.add_node("Shape", [x], start=1, end=2)[0], i64(0)])[0]
        zero, one = emit.const(np.array(0, dtype=np.int64), "zero"), emit.const(np.array(1, dtype=np.int64), "step")
        positions = emit.add_node("Cast", [emit.add_node("Range", [zero, length, one])[0]], to=1)[0]  # float32
        column = emit.add_node("Unsqueeze", [positions, i64(1)])[0]                       # (S, 1)
        angles = emit.add_node("Mul", [column, emit.literal(self._freqs(node, d)[None, :], "freqs")])[0]  # (S, D/2)
        shaped = emit.add_node("Unsqueeze", [angles, i64(0, 2)])[0]                      # (1, S, 1, D/2)
        cos, sin = emit.add_node("Cos", [shaped])[0], emit.add_node("Sin", [shaped])[0]
        if t.dtype != "float32":
            cos, sin = (emit.add_node("Cast", [v], to=_onnx_dtype(t.dtype))[0] for v in (cos, sin))
        if node.attrs["interleaved"]:
            a = emit.add_node("Slice", [x, i64(0), i64(d), i64(3), i64(2)])[0]
            b = emit.add_node("Slice", [x, i64(1), i64(d), i64(3), i64(2)])[0]
        else:
            a = emit.add_node("Slice", [x, i64(0), i64(d // 2), i64(3)])[0]
            b = emit.add_node("Slice", [x, i64(d // 2), i64(d), i64(3)])[0]
        first = emit.add_node("Sub", [emit.add_node("Mul", [a, cos])[0], emit.add_node("Mul", [b, sin])[0]])[0]
        second = emit.add_node("Add", [emit.add_node("Mul", [a, sin])[0], emit.add_node("Mul", [b, cos])[0]])[0]
        if not node.attrs["interleaved"]:
            return emit.add_node("Concat", [first, second], axis=3)
        pairs = emit.add_node("Concat", [emit.add_node("Unsqueeze", [first, i64(4)])[0],
                                         emit.add_node("Unsqueeze", [second, i64(4)])[0]], axis=4)[0]
        return emit.add_node("Reshape", [pairs, emit.add_node("Shape", [x])[0]])


def _onnx_dtype(dtype: str) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
