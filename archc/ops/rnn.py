"""Recurrent layers: the LSTM and the GRU, as ``torch.nn.LSTM`` and ``torch.nn.GRU``."""
from __future__ import annotations

import math

import numpy as np

from archc.errors import ShapeError
from archc.ops.base import Attr, OpDef, ParamSpec, concrete, expect_rank, py
from archc.ops.registry import register


def _same(a, b) -> bool:
    """Whether two dims may be equal: equal, or symbolic on either side."""
    return a == b or not isinstance(a, int) or not isinstance(b, int)


class Recurrent(OpDef):
    """A gated recurrent layer in PyTorch's parameter layout and its ONNX node.

    ``gates`` blocks of H rows per weight; ``onnx_gates`` lists, in ONNX's gate order, the
    PyTorch block each ONNX block is (the ONNX frontend reads it backwards).

    Inputs after the sequence are the initial states (``states``: GRU's h0, LSTM's h0 and c0),
    all given or none (zeros then, as in PyTorch). Each is laid out as PyTorch's
    (D * num_layers, N, H), layer-major, whatever ``batch_first`` says: the module's own
    ``self.rnn(x, h0)``. ONNX's ``initial_h``/``initial_c`` are (D, N, H) per layer, a slice.

    With ``return_state`` the final states follow the sequence as outputs (``final_states``: GRU's
    h_n, LSTM's h_n and c_n), in the same layout: ``out, h_n = self.rnn(x)``. In ONNX they are each
    layer's ``Y_h``/``Y_c``, (D, N, H), concatenated over the layers.
    """

    gates = 4
    onnx_gates: tuple[int, ...] = (0, 3, 1, 2)
    torch_class = "nn.LSTM"
    onnx_op = "LSTM"
    #: attributes the ONNX node needs to compute what the PyTorch module computes
    onnx_attrs: dict = {}
    #: the initial states, as the inputs after x (ONNX's initial_h, initial_c)
    states: tuple[str, ...] = ("h0", "c0")
    #: the final states, the outputs after the sequence with ``return_state`` (ONNX's Y_h, Y_c)
    final_states: tuple[str, ...] = ("h_n", "c_n")
    inputs = ("x", "h0", "c0")
    min_inputs = 1
    inferred = {"input_size": "the input's last dim"}

    attrs = {
        "hidden_size": Attr("int", doc="H, the size of the hidden state", min=1),
        "num_layers": Attr("int", 1, doc="stacked layers", min=1),
        "bidirectional": Attr("bool", False, doc="also run backwards; output has 2 * H features"),
        "batch_first": Attr("bool", True, doc="input and output are (N, S, features), else (S, N, features)"),
        "bias": Attr("bool", True, doc="learn the input and hidden biases"),
        "dropout": Attr("float", 0.0, doc="dropout between layers (training only)", min=0, below=1),
        "return_state": Attr("bool", False, doc="also output the final states (a GRU's h_n, an LSTM's h_n "
                             "and c_n), each (D * num_layers, N, H) as PyTorch returns them"),
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

    def _check_states(self, node, ins) -> None:
        """The initial states: none, or every one of :attr:`states`, each (D * num_layers, N, H)
        in x's dtype (PyTorch's layout, which ``batch_first`` does not change)."""
        given = ins[1:]
        if not given:
            return
        _, h, layers, dirs = self._check(node, ins[0])
        names = ", ".join(self.states)
        if len(given) != len(self.states):
            raise ShapeError(f"{self.name} takes its initial state as {names} after x (in: [x, {names}]), all of "
                             f"them or none; got {len(given)} of {len(self.states)}")
        x = ins[0]
        batch = x.shape[0] if node.attrs["batch_first"] else x.shape[1]
        expected = (dirs * layers, batch, h)
        for name, t in zip(self.states, given):
            if t.rank != 3 or not all(_same(a, b) for a, b in zip(t.shape, expected)):
                raise ShapeError(f"initial state {name} must be (D * num_layers, N, H) = "
                                 f"({', '.join(map(str, expected))}) like nn.{type(self).__name__}'s, got {t}")
            if t.dtype != x.dtype:
                raise ShapeError(f"initial state {name} must be {x.dtype} like x, got {t.dtype}")

    def output_names(self, node) -> tuple[str, ...]:
        return ("y", *self.final_states) if node.attrs.get("return_state") else ("y",)

    def port_hint(self, node, port: str) -> str | None:
        if node.attrs.get("return_state"):
            return None
        finals = self.final_states
        positions = [str(k) for k in range(1, 1 + len(finals))]
        if port not in (*finals, *positions):
            return None
        many = "s" if len(finals) > 1 else ""
        return (f"set 'return_state: true' to get {self.name}'s final state{many} {', '.join(finals)} as "
                f"output{many} {', '.join(positions)}")

    def infer(self, node, ins):
        x = ins[0]
        _, h, layers, dirs = self._check(node, x)
        self._check_states(node, ins)
        sequence = x.with_shape((x.shape[0], x.shape[1], dirs * h))
        if not node.attrs.get("return_state"):
            return [sequence]
        batch = x.shape[0] if node.attrs["batch_first"] else x.shape[1]
        return [sequence, *[x.with_shape((dirs * layers, batch, h))] * len(self.final_states)]

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
        # nn.LSTM takes its state as the tuple (h0, c0), nn.GRU h0 alone
        state = args[1:] if len(args) <= 2 else [f"({', '.join(args[1:])})"]
        call = f"{module}({', '.join([args[0], *state])})"
        # with return_state (output, h_n) whole, an LSTM's (output, (h_n, c_n)); else the output alone
        return call if node.attrs.get("return_state") else f"{call}[0]"

    def onnx(self, emit, node, inputs, ins):
        _, h, layers, dirs = self._check(node, ins[0])
        batch_first = node.attrs["batch_first"]
        # rows of PyTorch's gate blocks in ONNX's order, and the leading axis directions stack on
        order = emit.const(np.concatenate([np.arange(b * h, (b + 1) * h) for b in self.onnx_gates]).astype(np.int64),
                           "gate_order")
        lead = emit.const(np.array([0], dtype=np.int64), "axes")
        seq = emit.add_node("Transpose", [inputs[0]], perm=[1, 0, 2])[0] if batch_first else inputs[0]
        finals = len(self.final_states) if node.attrs.get("return_state") else 0
        per_layer: list[list[str]] = []  # each layer's Y_h (and Y_c), (D, N, H)
        for layer in range(layers):
            y, *states = emit.add_node(self.onnx_op,
                                       self._onnx_layer_inputs(emit, node, inputs, layer, seq, order, lead),
                                       outputs=1 + finals, hidden_size=h,
                                       direction="bidirectional" if dirs == 2 else "forward", **self.onnx_attrs)
            per_layer.append(states)
            # (S, D, N, H) -> (S, N, D * H)
            seq = emit.add_node("Reshape", [emit.add_node("Transpose", [y], perm=[0, 2, 1, 3])[0],
                                            emit.const(np.array([0, 0, -1], dtype=np.int64), "shape")])[0]
        if batch_first:
            seq = emit.add_node("Transpose", [seq], perm=[1, 0, 2])[0]
        # PyTorch's h_n (c_n) is layer-major: layer 0's D rows, then layer 1's, ...
        finished = [rows[0] if len(rows) == 1 else emit.add_node("Concat", list(rows), axis=0)[0]
                    for rows in zip(*per_layer)]
        return [seq, *finished]

    def _onnx_layer_inputs(self, emit, node, inputs, layer: int, seq: str, order: str, lead: str) -> list[str]:
        """X, W, R, B, sequence_lens, initial states of one layer's ONNX node. W, R and B are
        PyTorch's parameters with their gate blocks gathered into ONNX's order (constant-folded by
        onnxruntime), directions stacked on a leading axis; each state is its layer's D rows."""
        dirs = 2 if node.attrs["bidirectional"] else 1

        def add(op, args, **attrs):
            return emit.add_node(op, args, **attrs)[0]

        suffixes = ("", "_reverse")[:dirs]

        def per_direction(part):
            """``part(suffix)`` of each direction, stacked on a leading axis."""
            parts = [add("Unsqueeze", [part(s), lead]) for s in suffixes]
            return parts[0] if len(parts) == 1 else add("Concat", parts, axis=0)

        def gathered(name):
            return add("Gather", [emit.param(name), order], axis=0)

        args = [seq, per_direction(lambda s: gathered(f"weight_ih_l{layer}{s}")),
                per_direction(lambda s: gathered(f"weight_hh_l{layer}{s}"))]
        if node.attrs["bias"]:
            args.append(per_direction(lambda s: add("Concat", [gathered(f"bias_ih_l{layer}{s}"),
                                                               gathered(f"bias_hh_l{layer}{s}")], axis=0)))
        if len(inputs) > 1:
            rows = [emit.const(np.array([layer * dirs + k], dtype=np.int64), "rows") for k in (0, dirs)]
            args += [""] * (5 - len(args))  # B (absent without bias), sequence_lens (never)
            args += [add("Slice", [state, *rows, lead]) for state in inputs[1:]]
        return args


@register
class LSTM(Recurrent):
    """A (multi-layer, optionally bidirectional) LSTM whose output is the output sequence, with
    ``return_state`` followed by the final hidden and cell states h_n and c_n.

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
    doc = ("LSTM over a sequence (nn.LSTM); outputs the sequence of hidden states (with return_state "
           "also h_n, c_n); optional initial state inputs h0, c0.")

    def torch_targets(self, node, names: list[str]) -> list[str]:
        if len(names) == 1:
            return names
        # nn.LSTM returns (output, (h_n, c_n)): lstm, (lstm_1, lstm_2) = self.lstm(x)
        return [names[0], f"({', '.join(names[1:])})"]


@register
class GRU(Recurrent):
    """A (multi-layer, optionally bidirectional) GRU whose output is the output sequence, with
    ``return_state`` followed by the final hidden state h_n.

    Layouts and parameter names as :class:`LSTM` (``nn.GRU``'s state_dict), with three
    gate blocks in PyTorch's order r, z, n. ONNX lowering: one ONNX ``GRU`` node per
    layer with the rows reordered to ONNX's z, r, h and ``linear_before_reset=1``:
    PyTorch applies the reset gate after the hidden state's linear map (its bias
    included), which is ONNX's ``linear_before_reset`` form.
    """

    name = "gru"
    doc = ("GRU over a sequence (nn.GRU); outputs the sequence of hidden states (with return_state "
           "also h_n); optional initial state input h0.")
    states = ("h0",)
    final_states = ("h_n",)
    inputs = ("x", "h0")
    gates = 3
    onnx_gates = (1, 0, 2)
    torch_class = "nn.GRU"
    onnx_op = "GRU"
    onnx_attrs = {"linear_before_reset": 1}
