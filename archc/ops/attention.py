"""Multi-head attention, exactly as ``torch.nn.MultiheadAttention(batch_first=True)``."""
from __future__ import annotations

import math

import numpy as np

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, ParamSpec, concrete, expect_rank, py
from archc.ops.registry import register


def _same(a, b) -> bool:
    """Whether two dims may be equal: equal, or symbolic on either side."""
    return a == b or not isinstance(a, int) or not isinstance(b, int)


@register
class MultiHeadAttention(OpDef):
    """Multi-head scaled dot-product attention over (N, L, E) queries and (N, S, E) keys/values.

    Parameters are named as ``nn.MultiheadAttention``'s state_dict (``in_proj_weight``
    (3E, E) holding the q, k, v projections stacked, ``in_proj_bias``,
    ``out_proj.weight``, ``out_proj.bias``), so ``nn.Transformer`` weights load.
    The optional fourth input ``attn_mask`` is (L, S) or (N * num_heads, L, S),
    boolean (True = may not attend) or float (added to the scores); ``causal: true``
    masks future positions instead (the decoder's self-attention).

    PyTorch lowering: the ``nn.MultiheadAttention`` module called with
    ``need_weights=False``.

    ONNX lowering (opset 17 has no attention op), with H heads of size D = E / H::

        Wq, Wk, Wv = Split(in_proj_weight); bq, bk, bv = Split(in_proj_bias)
        q = Transpose(Reshape(query @ Wq^T + bq, [0, 0, H, D]), [0, 2, 1, 3])   # (N, H, L, D)
        k = Transpose(Reshape(key   @ Wk^T + bk, [0, 0, H, D]), [0, 2, 3, 1])   # (N, H, D, S)
        v = Transpose(Reshape(value @ Wv^T + bv, [0, 0, H, D]), [0, 2, 1, 3])   # (N, H, S, D)
        scores = (q * 1/sqrt(D)) @ k  (+ mask as 0 / -inf, reshaped to (N, H, L, S) if 3-D)
        ctx = Reshape(Transpose(Softmax(scores, -1) @ v, [0, 2, 1, 3]), [0, 0, E])
        y = ctx @ out_proj.weight^T + out_proj.bias

    Reshapes use 0 (copy) so symbolic batch and sequence lengths work; the causal
    mask is built at run time from the sequence lengths (Range, Greater, Where).
    """

    name = "multi_head_attention"
    aliases = ("mha", "attention")
    doc = "Multi-head attention like nn.MultiheadAttention(batch_first=True); inputs query, key, value[, attn_mask]."
    inputs = ("query", "key", "value", "attn_mask")
    min_inputs = 3
    inferred = {"embed_dim": "the query's last dim", "kdim": "the key's last dim", "vdim": "the value's last dim"}
    attrs = {
        "num_heads": Attr("int", doc="number of heads; must divide the embedding dim", min=1),
        "dropout": Attr("float", 0.0, doc="dropout on attention weights (training only)", min=0, below=1),
        "bias": Attr("bool", True, doc="learn biases for the input and output projections"),
        "causal": Attr("bool", False, doc="mask future positions (key j > query i)"),
    }
    role = "layer"
    feature_axis = -1

    def arity_hint(self, given: list[str]) -> str | None:
        if len(given) == 1:
            name = given[0]
            return f"for self-attention give the one input as query, key and value: in: [{name}, {name}, {name}]"
        return None

    def _dims(self, node, ins) -> tuple[int, int, int]:
        q, k, v = ins[:3]
        expect_rank(q, (3,), "query (N, L, E)")
        expect_rank(k, (3,), "key (N, S, E)")
        expect_rank(v, (3,), "value (N, S, E)")
        e = concrete(q.shape[2], "the embedding dim (last dim of query)")
        h = node.attrs["num_heads"]
        if h < 1 or e % h:
            raise ShapeError(f"num_heads={h} must divide the embedding dim {e}")
        for what, t in (("key", k), ("value", v)):
            if t.shape[2] != e:
                raise ShapeError(f"{what} {t} must have the query's embedding dim {e} as its last dim")
            if not _same(t.shape[0], q.shape[0]):
                raise ShapeError(f"{what} {t} and query {q} have different batch sizes")
        if not _same(k.shape[1], v.shape[1]):
            raise ShapeError(f"key {k} and value {v} have different sequence lengths")
        if not 0.0 <= node.attrs["dropout"] < 1.0:
            raise ShapeError(f"dropout {node.attrs['dropout']} must satisfy 0 <= dropout < 1")
        return e, h, e // h

    def infer(self, node, ins):
        q, k = ins[0], ins[1]
        e, h, _ = self._dims(node, ins)
        for i, t in enumerate(ins[:3]):
            if t.dtype != q.dtype or not t.dtype.startswith("float"):
                raise ShapeError(f"{self.inputs[i]} is {t.dtype}; expected floating-point query, key and "
                                 f"value of one dtype")
        if len(ins) > 3:
            if node.attrs["causal"]:
                raise ShapeError("give either causal: true or an attn_mask input, not both")
            m = ins[3]
            expect_rank(m, (2, 3), "attn_mask (L, S) or (N * num_heads, L, S)")
            if m.dtype != "bool" and m.dtype != q.dtype:
                raise ShapeError(f"attn_mask must be bool or {q.dtype} like the query, got {m.dtype}")
            if not (_same(m.shape[-2], q.shape[1]) and _same(m.shape[-1], k.shape[1])):
                raise ShapeError(f"attn_mask {m} must end in (L, S) = ({q.shape[1]}, {k.shape[1]})")
            if m.rank == 3 and isinstance(m.shape[0], int) and isinstance(q.shape[0], int) \
                    and m.shape[0] != q.shape[0] * h:
                raise ShapeError(f"a 3-D attn_mask {m} needs N * num_heads = {q.shape[0] * h} as its first dim")
        return [q.with_shape((q.shape[0], q.shape[1], e))]

    def params(self, node, ins):
        e, _, _ = self._dims(node, ins)
        bias = node.attrs["bias"]
        # nn.MultiheadAttention._reset_parameters: xavier_uniform_ in_proj, zero biases; out_proj
        # keeps nn.Linear's kaiming-uniform weight.
        p = {"in_proj_weight": ParamSpec((3 * e, e), "xavier_uniform")}
        if bias:
            p["in_proj_bias"] = ParamSpec((3 * e,), "zeros")
        p["out_proj.weight"] = ParamSpec((e, e), "uniform", 1 / math.sqrt(e))
        if bias:
            p["out_proj.bias"] = ParamSpec((e,), "zeros")
        return p

    def macs(self, node, ins, outs):
        e, _, _ = self._dims(node, ins)
        n, length, source = ins[0].shape[0], ins[0].shape[1], ins[1].shape[1]
        projections = n * (length + 2 * source) * e * e + n * length * e * e   # q, k, v in; out
        return projections + 2 * n * length * source * e                      # scores, weighted sum

    def torch_module(self, node, ins):
        e, h, _ = self._dims(node, ins)
        a = node.attrs
        return f"nn.MultiheadAttention({e}, {h}, dropout={py(a['dropout'])}, bias={a['bias']}, batch_first=True)"

    def torch_reset(self, node, ins, module):
        # what nn.MultiheadAttention's constructor runs: out_proj's Linear init, then its own
        return [f"{module}.out_proj.reset_parameters()", f"{module}._reset_parameters()"]

    def torch_forward(self, node, ins, args, module):
        q, k = args[0], args[1]
        if len(args) > 3:
            mask = args[3]
        elif node.attrs["causal"]:
            mask = f"torch.ones({q}.shape[1], {k}.shape[1], dtype=torch.bool, device={q}.device).triu(1)"
        else:
            mask = "None"
        return f"{module}({q}, {k}, {args[2]}, need_weights=False, attn_mask={mask})[0]"

    def onnx(self, emit, node, inputs, ins):
        e, h, d = self._dims(node, ins)
        dtype = ins[0].dtype
        bias = node.attrs["bias"]

        def c(values, hint, dt=np.int64):
            array = np.array(values, dtype=dt)
            # a float (the scale, the mask's fill) as a literal: readers take float initializers
            # for learned parameters; shapes and splits (integers) stay initializers
            return emit.literal(array, hint) if array.dtype.kind == "f" else emit.const(array, hint)

        def add(op, args, **attrs):
            return emit.add_node(op, args, **attrs)[0]

        thirds = c([e, e, e], "split")
        ws = emit.add_node("Split", [emit.param("in_proj_weight"), thirds], outputs=3, axis=0)
        bs = emit.add_node("Split", [emit.param("in_proj_bias"), thirds], outputs=3, axis=0) if bias else [None] * 3
        heads = c([0, 0, h, d], "heads")

        def project(x, w, b, perm):
            y = add("MatMul", [x, add("Transpose", [w], perm=[1, 0])])
            if b is not None:
                y = add("Add", [y, b])
            return add("Transpose", [add("Reshape", [y, heads])], perm=perm)

        q = project(inputs[0], ws[0], bs[0], [0, 2, 1, 3])
        k = project(inputs[1], ws[1], bs[1], [0, 2, 3, 1])
        v = project(inputs[2], ws[2], bs[2], [0, 2, 1, 3])
        q = add("Mul", [q, c(1.0 / math.sqrt(d), "scale", dtype)])
        scores = add("MatMul", [q, k])
        mask = self._onnx_mask(emit, node, inputs, ins, h, dtype, c, add)
        if mask is not None:
            scores = add("Add", [scores, mask])
        ctx = add("MatMul", [add("Softmax", [scores], axis=-1), v])
        ctx = add("Reshape", [add("Transpose", [ctx], perm=[0, 2, 1, 3]), c([0, 0, e], "shape")])
        y = add("MatMul", [ctx, add("Transpose", [emit.param("out_proj.weight")], perm=[1, 0])])
        if not bias:
            return [y]
        return emit.add_node("Add", [y, emit.param("out_proj.bias")])

    def _onnx_mask(self, emit, node, inputs, ins, h, dtype, c, add):
        """An additive float mask broadcastable to (N, H, L, S), or None."""
        def fill(where):  # -inf where masked, else 0 (the literals written only where a mask needs them)
            return add("Where", [where, c(-np.inf, "neg_inf", dtype), c(0.0, "zero", dtype)])

        if len(inputs) > 3:
            mask = inputs[3]
            if ins[3].dtype == "bool":
                mask = fill(mask)
            if ins[3].rank == 3:  # (N * H, L, S) -> (N, H, L, S)
                tail = add("Shape", [inputs[3]], start=1)
                mask = add("Reshape", [mask, add("Concat", [c([-1, h], "lead"), tail], axis=0)])
            return mask
        if not node.attrs["causal"]:
            return None

        def positions(x):
            length = add("Squeeze", [add("Shape", [x], start=1, end=2), c([0], "axes")])
            return add("Range", [c(0, "start"), length, c(1, "step")])

        rows = add("Unsqueeze", [positions(inputs[0]), c([1], "axes")])
        cols = add("Unsqueeze", [positions(inputs[1]), c([0], "axes")])
        return fill(add("Greater", [cols, rows]))
