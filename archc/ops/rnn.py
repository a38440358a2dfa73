"""Recurrent layers: the LSTM and the GRU, as ``torch.nn.LSTM`` and ``torch.nn.GRU``."""
from __future__ import annotations

import math

import numpy as np

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, ParamSpec, concrete, expect_rank, py
from archc.ops.registry import register


class Recurrent(OpDef):
    """A gated recurrent layer in PyTorch's parameter layout and its ONNX node.

    ``gates`` blocks of H rows per weight; ``onnx_gates`` lists, in ONNX's gate order, the
    PyTorch block each ONNX block is (the ONNX frontend reads it backwards).
    """

    gates = 4
    onnx_gates: tuple[int, ...] = (0, 3, 1, 2)
    torch_class = "nn.LSTM"
    onnx_op = "LSTM"
    #: attributes the ONNX node needs to compute what the PyTorch module computes
    onnx_attrs: dict = {}
    inferred = {"input_size": "the input's last dim"}

    attrs = {
        "hidden_size": Attr("int", doc="H, the size of the hidden state", min=1),
        "num_layers": Attr("int", 1, doc="stacked layers", min=1),
        "bidirectional": Attr("bool", False, doc="also run backwards; output has 2 * H features"),
        "batch_first": Attr("bool", True, doc="input and output are (N, S, features), else (S, N, features)"),
        "bias": Attr("bool", True, doc="learn the input and hidden biases"),
        "dropout": Attr("float", 0.0, doc="dropout between layers (training only)", min=0, below=1),
    }
    role = "layer"
    feature_axis = -1
    always_learned = True  # the input-hidden and hidden-hidden weights, whatever the sizes
    #: (an abstract base: the registered ops below name themselves)
    name = ""

    def _check(self, node, x) -> tuple[int, int, int, int]:
        expect_rank(x, (3,), "(N, S, features)" if node.attrs["batch_first"] else "(S, N, features)")
        feats = concrete(x.shape[2], "input features (last dim)")
        a = node.attrs
        if a["hidden_size"] < 1 or a["num_layers"] < 1:
            raise ShapeError(f"hidden_size ({a['hidden_size']}) and num_layers ({a['num_layers']}) "
                             "must be positive")
        if not 0.0 <= a["dropout"] < 1.0:
            raise ShapeError(f"dropout {a['dropout']} must satisfy 0 <= dropout < 1")
        if not x.dtype.startswith("float"):
            raise ShapeError(f"{self.name} expects a floating-point input, got {x.dtype} {x}")
        return feats, a["hidden_size"], a["num_layers"], 2 if a["bidirectional"] else 1

    def infer(self, node, ins):
        x = ins[0]
        _, h, _, dirs = self._check(node, x)
        return [x.with_shape((x.shape[0], x.shape[1], dirs * h))]

    def params(self, node, ins):
        feats, h, layers, dirs = self._check(node, ins[0])
        bound = 1 / math.sqrt(h)  # nn.LSTM and nn.GRU draw every parameter from U(-1/sqrt(H), 1/sqrt(H))
        g = self.gates
        p: dict[str, ParamSpec] = {}
        for layer in range(layers):
            width = feats if layer == 0 else dirs * h
            for sfx in ("", "_reverse")[:dirs]:
                p[f"weight_ih_l{layer}{sfx}"] = ParamSpec((g * h, width), "uniform", bound)
                p[f"weight_hh_l{layer}{sfx}"] = ParamSpec((g * h, h), "uniform", bound)
                if node.attrs["bias"]:
                    p[f"bias_ih_l{layer}{sfx}"] = ParamSpec((g * h,), "uniform", bound)
                    p[f"bias_hh_l{layer}{sfx}"] = ParamSpec((g * h,), "uniform", bound)
        return p

    def macs(self, node, ins, outs):
        feats, h, layers, dirs = self._check(node, ins[0])
        steps = ins[0].shape[0] * ins[0].shape[1]  # batch x sequence, either layout
        per_step = sum(self.gates * h * ((feats if layer == 0 else dirs * h) + h) for layer in range(layers))
        return steps * dirs * per_step

    def torch_module(self, node, ins):
        feats, h, layers, dirs = self._check(node, ins[0])
        a = node.attrs
        return (f"{self.torch_class}({feats}, {h}, num_layers={layers}, bias={a['bias']}, batch_first={a['batch_first']}, "
                f"dropout={py(a['dropout'])}, bidirectional={a['bidirectional']})")

    def torch_forward(self, node, ins, args, module):
        return f"{module}({args[0]})[0]"

    def onnx(self, emit, node, inputs, ins):
        feats, h, layers, dirs = self._check(node, ins[0])
        bias, batch_first = node.attrs["bias"], node.attrs["batch_first"]

        def add(op, args, **attrs):
            return emit.add_node(op, args, **attrs)[0]

        # rows of PyTorch's gate blocks in ONNX's order
        order = emit.const(np.concatenate([np.arange(b * h, (b + 1) * h) for b in self.onnx_gates]).astype(np.int64),
                           "gate_order")
        lead = emit.const(np.array([0], dtype=np.int64), "axes")

        def stacked(names):
            parts = [add("Unsqueeze", [add("Gather", [emit.param(n), order], axis=0), lead]) for n in names]
            return parts[0] if len(parts) == 1 else add("Concat", parts, axis=0)

        seq = add("Transpose", [inputs[0]], perm=[1, 0, 2]) if batch_first else inputs[0]
        suffixes = ("", "_reverse")[:dirs]
        for layer in range(layers):
            w = stacked([f"weight_ih_l{layer}{s}" for s in suffixes])
            r = stacked([f"weight_hh_l{layer}{s}" for s in suffixes])
            args = [seq, w, r]
            if bias:
                per_dir = [add("Unsqueeze", [add("Concat", [
                    add("Gather", [emit.param(f"bias_ih_l{layer}{s}"), order], axis=0),
                    add("Gather", [emit.param(f"bias_hh_l{layer}{s}"), order], axis=0)], axis=0), lead])
                    for s in suffixes]
                args.append(per_dir[0] if dirs == 1 else add("Concat", per_dir, axis=0))
            y = add(self.onnx_op, args, hidden_size=h, direction="bidirectional" if dirs == 2 else "forward",
                    **self.onnx_attrs)
            # (S, D, N, H) -> (S, N, D * H)
            seq = add("Reshape", [add("Transpose", [y], perm=[0, 2, 1, 3]),
                                  emit.const(np.array([0, 0, -1], dtype=np.int64), "shape")])
        if batch_first:
            return emit.add_node("Transpose", [seq], perm=[1, 0, 2])
        return [seq]


@register
class LSTM(Recurrent):
    """A (multi-layer, optionally bidirectional) LSTM whose output is the output sequence.

    Input (N, S, I) with ``batch_first`` (the default) or (S, N, I); output
    (N, S, D * H) or (S, N, D * H), D = 2 when bidirectional. Parameters are named
    like ``nn.LSTM``'s state_dict: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, plus ``_reverse`` copies for the backward
    direction, with PyTorch's gate order i, f, g, o in blocks of H rows.

    ONNX lowering: one ONNX ``LSTM`` node per layer on time-major data. ONNX orders
    the gates i, o, f, c, so each weight and bias is reordered with a ``Gather`` of
    its rows (constant-folded by onnxruntime), the two biases are concatenated into
    ``B``, and directions are stacked on a leading axis. ONNX's output
    (S, D, N, H) is transposed and reshaped to (S, N, D * H) for the next layer.
    """

    name = "lstm"
    doc = "LSTM over a sequence (nn.LSTM); outputs the sequence of hidden states."


@register
class GRU(Recurrent):
    """A (multi-layer, optionally bidirectional) GRU whose output is the output sequence.

    Layouts and parameter names as :class:`LSTM` (``nn.GRU``'s state_dict), with three
    gate blocks in PyTorch's order r, z, n. ONNX lowering: one ONNX ``GRU`` node per
    layer with the rows reordered to ONNX's z, r, h and ``linear_before_reset=1``:
    PyTorch applies the reset gate after the hidden state's linear map (its bias
    included), which is ONNX's ``linear_before_reset`` form.
    """

    name = "gru"
    doc = "GRU over a sequence (nn.GRU); outputs the sequence of hidden states."
    gates = 3
    onnx_gates = (1, 0, 2)
    torch_class = "nn.GRU"
    onnx_op = "GRU"
    onnx_attrs = {"linear_before_reset": 1}
