"""ONNX LSTM and GRU nodes -> archc's native ``lstm`` / ``gru`` (``nn.LSTM`` / ``nn.GRU``).

An exported ``nn.LSTM`` is one ONNX ``LSTM`` node per layer, each between a transpose of
the batch-first input (or the previous layer's output) and a Transpose/Reshape (or
Squeeze) that turns ONNX's (S, D, N, H) output into the (S, N, D * H) sequence. The
importer keeps each node as an ``onnx_node`` holding W, R and B; :func:`recurrent` turns one
into a one-layer native op, reading the sequence layouts before and after it by where elements
come from (:mod:`archc.frontends.onnx.layout`), so ``batch_first`` follows the model's own input.
Initial states that start at zero are dropped; one computed at run time (``gru(x, h0)``: the
exporters slice each layer's D rows of h0) becomes the op's ``h0`` (and ``c0``) input. Where the
final states Y_h (Y_c) are read (``out, h_n = gru(x)``), the op gets ``return_state`` and they
are its outputs after the sequence. :func:`stacked` then merges a layer fed only by the previous
one into ``num_layers``, their state slices into one slice of the model's h0, and the Concat of
their final states (the exporters' h_n, layer-major) into the merged op's own.

Weights are the file's values bit for bit, in PyTorch's layout: ONNX orders the gate
blocks i, o, f, c (LSTM) and z, r, h (GRU), PyTorch i, f, g, o and r, z, n (the op's
``onnx_gates``); B holds the input and hidden biases one after the other. A GRU fuses
only with ``linear_before_reset=1``, the form PyTorch computes.
"""
from __future__ import annotations

import numpy as np

from archc.frontends.onnx.layout import (
    MAX_ELEMENTS,
    Sizes,
    find_result,
    find_source,
    on_two_instances,
)
from archc.frontends.onnx.patterns import Follower, Match, kind, matcher, module_name
from archc.ir.graph import Graph, Node, Value
from archc.ops import registry

_OPS = {"onnx:LSTM": "lstm", "onnx:GRU": "gru"}
#: ONNX's default activations per direction, the functions PyTorch's cells use
_ACTIVATIONS = {"lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"]}
#: operand positions of the initial states (initial_h, initial_c), the native op's inputs after x
_STATE_OPERANDS = {"lstm": (5, 6), "gru": (5,)}
#: operand positions that must be absent or zero: LSTM's peepholes (PyTorch has none)
_ZERO_OPERANDS = {"lstm": (7,), "gru": ()}
_SWAP = [("permute", {"perm": [1, 0, 2]})]


@matcher(*_OPS)
def recurrent(graph: Graph, root: Node) -> Match | None:
    """One ONNX LSTM or GRU node -> a one-layer native op over the sequence it reads."""
    op = _OPS.get(kind(root))
    if op is None:
        return None
    attrs = root.attrs.get("attributes") or {}
    directions = {"forward": 1, "bidirectional": 2}.get(attrs.get("direction", "forward"))
    if directions is None or not _plain(op, attrs, directions):
        return None
    params, states = _params(graph, root, op), _initial_states(graph, root, op)
    if params is None or states is None:
        return None
    return on_two_instances(lambda sizes: _fused(graph, root, op, attrs, directions, params, states, sizes))


def _fused(graph: Graph, root: Node, op: str, attrs: dict, directions: int, params: dict[str, np.ndarray],
           states: list[Value], sizes: Sizes) -> Match | None:
    """The native op for ``root`` if the sequences before and after it are batch-first or time-major."""
    x = graph.type_of(root.inputs[0])
    shape = sizes.shape(x.shape)
    if shape is None or len(shape) != 3:
        return None
    batch_major = attrs.get("layout", 0) == 1
    n, length = (shape[0], shape[1]) if batch_major else (shape[1], shape[0])
    h = int(attrs["hidden_size"])
    if h < 1 or n * length * directions * h > MAX_ELEMENTS:
        return None
    finals = [k for k in range(1, len(root.outputs)) if _is_read(graph, Value(root.name, k))]
    if finals and batch_major:
        return None  # (layout=1's Y_h is (N, D, H), which no exporter writes: it stays an onnx_node)
    source = find_source(graph, root.inputs[0], "NL" if batch_major else "LN", sizes, (n, length, shape[2]))
    if source is None:
        return None
    value, layout = source
    nodes, replaced, out_layout = {root.name}, [(Value(root.name, k), k) for k in finals], layout
    if _is_read(graph, Value(root.name)) or not finals:  # (only h_n read: the sequence is no one's)
        result = find_result(graph, Value(root.name), _output_positions(batch_major, n, length, directions, h),
                             sizes)
        if result is None:
            return None
        out, out_layout, after = result
        nodes |= {n.name for n in after}
        replaced.insert(0, (out, 0))
    # ONNX's states are (D, N, H), or (N, D, H) with layout=1; PyTorch's always (D, N, H)
    adapt_in = {1 + k: _SWAP for k in range(len(states))} if batch_major else {}
    return Match(op, {"hidden_size": h, "bidirectional": directions == 2, "batch_first": layout == "NL",
                      "bias": "B" in params, "return_state": bool(finals)},
                 [value, *states], sorted(nodes), _weights(registry.lookup(op), params, directions, h),
                 replaced=replaced, name=module_name(graph, nodes, root, root.name), adapt_in=adapt_in,
                 adapt_out=[] if out_layout == layout else _SWAP)


def _is_read(graph: Graph, value: Value) -> bool:
    """Whether a node or the graph's outputs read ``value``."""
    return value in graph.outputs.values() or any(
        value in graph.node(user).inputs for user in graph.users(value.node))


def _plain(op: str, attrs: dict, directions: int) -> bool:
    """Whether the node computes what PyTorch's module does: default activations, no clip, coupled
    input and forget gates off, and for a GRU the reset gate applied after the hidden linear map."""
    activations = attrs.get("activations")
    if activations is not None and [str(a) for a in activations] != _ACTIVATIONS[op] * directions:
        return False
    if any(key in attrs for key in ("clip", "activation_alpha", "activation_beta")):
        return False
    if op == "lstm":
        return not attrs.get("input_forget", 0)
    return attrs.get("linear_before_reset", 0) == 1


def _params(graph: Graph, root: Node, op: str) -> dict[str, np.ndarray] | None:
    """W, R and B (when given) of a node whose first input is X, with no sequence lengths and no
    peepholes (absent or zero); the initial states are :func:`_initial_states`'. None otherwise."""
    operands = list(root.attrs["operands"] or [])
    held = graph.weights.get(root.name, {})
    if not operands or operands[0] != 0:
        return None
    for i, operand in enumerate(operands[1:], 1):
        if i in _STATE_OPERANDS[op]:
            continue
        if isinstance(operand, int) and (i not in _ZERO_OPERANDS[op] or not _zeros(graph, root.inputs[operand])):
            return None  # weights or lengths computed at run time
        if isinstance(operand, str) and i in _ZERO_OPERANDS[op] and np.any(held[operand]):
            return None
    named = {i: held.get(o) if isinstance(o, str) else None for i, o in enumerate(operands)}
    if named.get(1) is None or named.get(2) is None or named.get(4) is not None:
        return None
    params = {"W": np.asarray(named[1]), "R": np.asarray(named[2])}
    if named.get(3) is not None:
        params["B"] = np.asarray(named[3])
    return params


def _initial_states(graph: Graph, root: Node, op: str) -> list[Value] | None:
    """The native op's state inputs: none where every state starts at zero (absent, a zero constant,
    or zeros expanded to the batch); else the values ONNX reads as initial_h (and initial_c), which
    must all be values of the graph (a state held as a nonzero constant has no value to pass)."""
    operands = list(root.attrs["operands"] or [])
    positions = [operands[i] if i < len(operands) else None for i in _STATE_OPERANDS[op]]
    held = graph.weights.get(root.name, {})

    def zero(operand) -> bool:
        if isinstance(operand, int):
            return _zeros(graph, root.inputs[operand])
        return operand is None or not np.any(held[operand])

    if all(zero(o) for o in positions):
        return []
    if not all(isinstance(o, int) for o in positions):
        return None  # e.g. h0 at run time with c0 absent: the native lstm takes both or neither
    return [root.inputs[o] for o in positions]


#: ops whose output is all zeros where their data input is (slices, reshapes, broadcasts of it)
_KEEP_ZEROS = frozenset({"onnx:Slice", "onnx:Expand", "onnx:Tile", "onnx:Reshape", "onnx:Squeeze", "onnx:Unsqueeze",
                         "onnx:Transpose", "onnx:Identity", "onnx:Gather", "slice", "reshape", "permute", "flatten"})


def _zeros(graph: Graph, value: Value, depth: int = 8) -> bool:
    """Whether ``value`` is all zeros by construction: a zero constant expanded, sliced or reshaped."""
    node = graph.node(value.node)
    k = kind(node)
    if depth == 0 or k not in _KEEP_ZEROS:
        return False
    data = node.attrs["operands"][0] if node.op == "onnx_node" else 0
    if isinstance(data, str):
        return not np.any(graph.weights.get(node.name, {}).get(data, 1))
    return _zeros(graph, node.inputs[data], depth - 1)


def _output_positions(batch_major: bool, n: int, length: int, directions: int, h: int) -> np.ndarray:
    """(n, s, d * H + j) -> flat position in ONNX's Y: (S, D, N, H), or (N, S, D, H) with layout=1."""
    if batch_major:
        y = np.arange(n * length * directions * h).reshape(n, length, directions, h)
        return y.reshape(n, length, directions * h)
    y = np.arange(length * directions * n * h).reshape(length, directions, n, h)
    return y.transpose(2, 0, 1, 3).reshape(n, length, directions * h)


def _weights(opdef, params: dict[str, np.ndarray], directions: int, h: int) -> dict[str, np.ndarray]:
    """nn.LSTM / nn.GRU's one-layer state_dict from W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H)."""
    gates = opdef.gates
    rows = np.concatenate([np.arange(b * h, (b + 1) * h) for b in np.argsort(opdef.onnx_gates)])
    weights: dict[str, np.ndarray] = {}
    for d, suffix in enumerate(("", "_reverse")[:directions]):
        weights[f"weight_ih_l0{suffix}"] = np.ascontiguousarray(params["W"][d][rows])
        weights[f"weight_hh_l0{suffix}"] = np.ascontiguousarray(params["R"][d][rows])
        if "B" in params:
            weights[f"bias_ih_l0{suffix}"] = np.ascontiguousarray(params["B"][d][:gates * h][rows])
            weights[f"bias_hh_l0{suffix}"] = np.ascontiguousarray(params["B"][d][gates * h:][rows])
    return weights


@matcher(*_OPS.values())
def stacked(graph: Graph, root: Node) -> Match | None:
    """A recurrent layer whose input is only the previous layer of the same kind -> ``num_layers`` more."""
    if kind(root) not in _OPS.values():
        return None
    below = graph.node(root.inputs[0].node)
    same = ("hidden_size", "bidirectional", "batch_first", "bias", "dropout", "return_state")
    if kind(below) != kind(root) or _reads(graph, Value(below.name)) != [root.name] \
            or any(below.attrs[k] != root.attrs[k] for k in same):
        return None
    states = _stacked_states(graph, below, root)
    finals = _stacked_finals(graph, below, root)
    if states is None or finals is None:
        return None
    layers = below.attrs["num_layers"]
    weights = dict(graph.weights.get(below.name, {}))
    for key, arr in graph.weights.get(root.name, {}).items():
        stem, _, rest = key.rpartition("_l")
        index, _, suffix = rest.partition("_")
        weights[f"{stem}_l{int(index) + layers}{'_' + suffix if suffix else ''}"] = arr
    layer_nodes = {root.name, below.name}
    values, adapt_in = states
    concats, replaced, followers = finals
    return Match(kind(root), {**root.attrs, "num_layers": layers + root.attrs["num_layers"]},
                 [below.inputs[0], *values], sorted(layer_nodes | concats), weights,
                 replaced=[(Value(root.name), 0), *replaced], then=followers,
                 name=module_name(graph, layer_nodes, below, below.name), adapt_in=adapt_in)


def _reads(graph: Graph, value: Value) -> list[str]:
    """The nodes reading ``value``, once per input slot, and ``""`` for each graph output that is it."""
    slots = [user for user in graph.users(value.node) for v in graph.node(user).inputs if v == value]
    return slots + [""] * sum(1 for v in graph.outputs.values() if v == value)


def _stacked_finals(graph: Graph, below: Node, root: Node
                    ) -> tuple[set[str], list[tuple[Value, int]], list[Follower]] | None:
    """The final states of two stacked layers as the merged op's: each pair must be read only by one
    Concat along the layers' axis, one after the other (the exporters' ``torch.cat`` of each layer's
    Y_h into h_n), which the merged op's state replaces; where that Concat reads more layers (a third
    one), a Concat of the merged state and the rest takes its place. ``(concats replaced, values
    replaced with the fused outputs' numbers, the new Concats)``; nothing where neither layer gives
    its state, None where their states cannot merge."""
    concats: set[str] = set()
    replaced: list[tuple[Value, int]] = []
    followers: list[Follower] = []
    outputs = len(root.outputs)  # (1 without return_state)
    for k in range(1, outputs):
        lower, upper = Value(below.name, k), Value(root.name, k)
        readers = _reads(graph, lower) + _reads(graph, upper)
        if not readers:
            continue  # (an LSTM's c_n that nobody reads)
        concat = graph.node(readers[0]) if readers[0] else None
        if readers != [readers[0]] * 2 or concat is None or kind(concat) != "concat" \
                or concat.attrs["axis"] % 3 != 0:
            return None
        at = concat.inputs.index(lower)
        if concat.inputs[at + 1:at + 2] != [upper]:
            return None
        concats.add(concat.name)
        if len(concat.inputs) == 2:
            replaced.append((Value(concat.name), k))
            continue
        reads = [*concat.inputs[:at], k, *concat.inputs[at + 2:]]
        replaced.append((Value(concat.name), outputs + len(followers)))
        followers.append(Follower("concat", dict(concat.attrs), reads, concat.name))
    return concats, replaced, followers


def _stacked_states(graph: Graph, below: Node, root: Node) -> tuple[list[Value], dict] | None:
    """The initial states of two stacked layers as one: each pair must be consecutive rows of one
    tensor (the exporters slice h0[0:D] and h0[D:2D] of the module's h0), which the merged layer
    reads whole, or sliced to those rows. ([], {}) where neither layer has a state; None where
    they cannot merge (one layer starts at zero, the other does not)."""
    if len(below.inputs) != len(root.inputs):
        return None
    values: list[Value] = []
    adapt_in: dict[int, list] = {}
    for k, (lower, upper) in enumerate(zip(below.inputs[1:], root.inputs[1:]), 1):
        (source, start, middle), (other, middle_again, end) = _rows(graph, lower), _rows(graph, upper)
        if source != other or middle != middle_again:
            return None
        values.append(source)
        if (start, end) != (0, graph.type_of(source).shape[0]):
            adapt_in[k] = [("slice", {"dim": 0, "start": start, "end": end})]
    return values, adapt_in


def _rows(graph: Graph, state: Value) -> tuple[Value, int, int]:
    """(tensor, first row, end row) that ``state`` is: a slice of the rows of another tensor (as
    exporters take each layer's), else all of its own."""
    node = graph.node(state.node)
    rows = graph.type_of(state).shape[0]
    if node.op == "slice" and node.attrs["dim"] == 0 and node.attrs["step"] == 1:
        source = node.inputs[0]
        total = graph.type_of(source).shape[0]
        if isinstance(total, int):
            start, _, _ = slice(node.attrs["start"], node.attrs["end"]).indices(total)
            return source, start, start + rows
    return state, 0, rows
