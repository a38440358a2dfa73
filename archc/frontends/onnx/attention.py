"""Multi-head attention written out as MatMul/Softmax/MatMul between projections -> the native op.

Exporters write ``nn.MultiheadAttention`` and hand-written attention modules (Vaswani et
al. 2017, section 3.2) as: input projection(s) (one packed linear of 3E outputs, or one per
q/k/v), a chain of Reshape/Transpose/Slice splitting the heads, ``softmax(q k^T * s (+
mask)) v`` with the scale ``s`` applied to q, to k, to both (as square roots) or to the
scores, a chain merging the heads, and the output projection. The chains differ with the
exporter and with the layout (batch-first or time-major), so :func:`multi_head_attention`
reads them by where their elements come from (:mod:`archc.frontends.onnx.layout`), not by
their ops: a match is exact by construction, and anything else (another scale, heads
in another order, a mask the native op cannot take) stays unfused and builds generically.

The fused ``multi_head_attention`` carries the projections' weights bit for bit in
``nn.MultiheadAttention``'s layout: ``in_proj_weight`` is the q, k and v rows stacked (the
packed projection's own tensor when it is one), a missing bias is zeros when the other
projection has one. A time-major source gets a permute before the op and after it.
"""
from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import Any

import numpy as np

from archc.frontends.onnx.layout import (
    MAX_ELEMENTS,
    POSITION,
    Chain,
    Sizes,
    canonical,
    find_result,
    find_source,
    index_map,
    on_two_instances,
    remembered,
    rows,
    scalar_factor,
    signature,
    trace_back,
    trace_forward,
)
from archc.frontends.onnx.patterns import (
    Match,
    constant,
    derived,
    kind,
    matcher,
    module_name,
)
from archc.frontends.onnx.sharing import parameter_modules
from archc.ir.graph import Graph, Node, Value

_LAYOUTS = ("NL", "LN")
_SWAP = [("permute", {"perm": [1, 0, 2]})]


@dataclass(frozen=True)
class Dims:
    """Concrete sizes of one attention: batch, heads, head size, embedding, query and key lengths."""

    n: int
    h: int
    d: int
    e: int
    length: int
    source: int


@dataclass
class Projection:
    """One of q, k, v: a slice of columns of a linear layer's output, in a layout."""

    linear: Node
    offset: int
    layout: str
    chain: Chain


@matcher("matmul")
def multi_head_attention(graph: Graph, root: Node) -> Match | None:
    """``softmax(q k^T / sqrt(d) (+ mask)) v`` between projections, rooted at the last MatMul."""
    # The cheap first stages with the second choice of sizes first: a size baked in at export
    # fails there, before the full match builds every index map with the first choice (a
    # TorchScript ViT-B/16 export with a symbolic batch: 2.75 s of its lint, for no fusion).
    # Without symbolic dims both choices are the same sizes, so this is the match's own start.
    if _heads(graph, root, Sizes(1)) is None:
        return None
    return on_two_instances(lambda sizes: _attention(graph, root, sizes))


def _heads(graph: Graph, root: Node, sizes: Sizes) -> tuple | None:
    """The match's first stages: (softmax, the scores, the chains to q, k, v, the dims, the
    projections), or None."""
    if kind(root) != "matmul" or len(root.inputs) != 2:
        return None
    soft = graph.node(root.inputs[0].node)
    if kind(soft) != "softmax" or soft.attrs["axis"] % graph.type_of(soft.inputs[0]).rank \
            != graph.type_of(soft.inputs[0]).rank - 1:
        return None
    scores = _scores(graph, soft.inputs[0])
    if scores is None:
        return None
    qk, factor, mask, score_nodes = scores
    chains = [trace_back(graph, v) for v in (*qk.inputs, root.inputs[1])]
    dims = _dims(graph, chains, sizes)
    if dims is None or chains[2].factor != 1.0 \
            or not math.isclose(factor * chains[0].factor * chains[1].factor, 1 / math.sqrt(dims.d), rel_tol=1e-5):
        return None
    projections = [_projection(graph, c, sizes, dims, length, transposed)
                   for c, length, transposed in zip(chains, (dims.length, dims.source, dims.source),
                                                    (False, True, False))]
    if None in projections:
        return None
    return soft, scores, dims, projections


def _attention(graph: Graph, root: Node, sizes: Sizes) -> Match | None:
    heads = _heads(graph, root, sizes)
    if heads is None:
        return None
    soft, (qk, factor, mask, score_nodes), dims, projections = heads
    out = _output(graph, root, sizes, dims)
    if out is None:
        return None
    out_linear, replaced, out_layout, out_nodes = out
    sources = [_source(graph, p, sizes, dims, length) for p, length in
               zip(projections, (dims.length, dims.source, dims.source))]
    mask_input = _mask(graph, mask, sizes, dims) if mask is not None else (None, False)
    if None in sources or mask_input is None:
        return None
    weights, bias = _weights(graph, projections, out_linear, dims.e)
    inputs = [s[0] for s in sources]
    adapt_in = {i: _SWAP for i, s in enumerate(sources) if s[1] == "LN"}
    if mask_input[0] is not None:
        inputs.append(mask_input[0])
    nodes = {n.name for p in projections for n in [p.linear, *p.chain.nodes]}
    nodes |= {qk.name, soft.name, root.name, out_linear.name, *score_nodes, *out_nodes}
    return Match("multi_head_attention", {"num_heads": dims.h, "bias": bias, "causal": mask_input[1]},
                 inputs, sorted(nodes), weights, replaced=[(replaced, 0)], name=module_name(graph, nodes, root, out_linear.name),
                 adapt_in=adapt_in, adapt_out=_SWAP if out_layout == "LN" else [],
                 parameter_modules=_parameter_modules(projections, out_linear))


def _scores(graph: Graph, value: Value) -> tuple[Node, float, Node | None, list[str]] | None:
    """(the q k^T MatMul, the scale after it, the mask Add or None, the nodes between) of softmax's input."""
    factor, mask, nodes = 1.0, None, []
    while True:
        node = graph.node(value.node)
        k = kind(node)
        if k == "matmul" and len(node.inputs) == 2:
            return node, factor, mask, nodes
        step = scalar_factor(graph, node)
        if step is not None:
            factor *= step
        elif mask is None and factor == 1.0 and (k == "add" and len(node.inputs) == 2
                                                  or k == "onnx:Add" and constant(graph, node) is not None):
            mask = node  # (a scale after the mask would scale the mask too: factor must still be 1)
        else:
            return None
        nodes.append(node.name)
        value = _scores_side(graph, node) if node is mask else node.inputs[0]


def _scores_side(graph: Graph, add: Node) -> Value:
    """The input of a mask Add that carries the scores (the one computed by a MatMul or a scale)."""
    if len(add.inputs) == 1:
        return add.inputs[0]
    first = kind(graph.node(add.inputs[0].node))
    return add.inputs[0] if first in ("matmul", "scale", "onnx:Mul", "onnx:Div") else add.inputs[1]


def _dims(graph: Graph, chains: list[Chain], sizes: Sizes) -> Dims | None:
    """The sizes read from q (B.., L, D), k^T (B.., D, S), v (B.., S, D) and the q projection."""
    q, kt, v = (sizes.shape(graph.type_of(Value(c.nodes[-1].name, c.outs[-1]) if c.nodes else c.base).shape)
                for c in chains)
    if q is None or kt is None or v is None or len(q) < 3 or not (len(q) == len(kt) == len(v)):
        return None
    if q[:-2] != kt[:-2] or q[:-2] != v[:-2] or q[-1] != kt[-2] or kt[-1] != v[-2] or v[-1] != q[-1]:
        return None
    linears = [graph.node(c.base.node) for c in chains]
    if any(kind(lin) != "linear" or c.base.out != 0 for lin, c in zip(linears, chains)):
        return None
    widths = {sizes.dim(graph.type_of(lin.inputs[0]).shape[-1]) for lin in linears}
    if len(widths) != 1:
        return None
    (e,) = widths
    d = q[-1]
    if e is None or e % d:
        return None
    h, batch = e // d, math.prod(q[:-2])
    if batch % h or batch // h * max(q[-2], kt[-1]) * e > MAX_ELEMENTS:
        return None
    return Dims(batch // h, h, d, e, q[-2], kt[-1])


def _head_positions(dims: Dims, layout: str, length: int, width: int, offset: int) -> np.ndarray:
    """(N * H, length, D) -> flat position in a projection's (rows, width) output, heads in columns."""
    r = rows(layout, dims.n, length)[:, None, :, None] * width
    h, d = np.arange(dims.h, dtype=POSITION), np.arange(dims.d, dtype=POSITION)
    cols = offset + h[None, :, None, None] * dims.d + d[None, None, None, :]
    return (r + cols).reshape(dims.n * dims.h, length, dims.d)


def _projection(graph: Graph, chain: Chain, sizes: Sizes, dims: Dims, length: int,
                transposed: bool) -> Projection | None:
    """How q (or k^T, or v) is cut from its linear's output: the column offset and the layout."""
    cut = remembered(("projection", signature(graph, chain), astuple(dims), length, transposed), sizes,
                     lambda: _cut(graph, chain, sizes, dims, length, transposed))
    return None if cut is None else Projection(graph.node(chain.base.node), cut[0], cut[1], chain)


def _cut(graph: Graph, chain: Chain, sizes: Sizes, dims: Dims, length: int,
         transposed: bool) -> tuple[int, str] | None:
    """(column offset, layout) of :func:`_projection`, read from the chain's index map."""
    shape = sizes.shape(graph.type_of(chain.base).shape)
    found = index_map(graph, chain, sizes)
    if shape is None or found is None or math.prod(shape[:-1]) != dims.n * length:
        return None
    found = found.reshape(dims.n * dims.h, *found.shape[-2:])
    if transposed:
        found = found.transpose(0, 2, 1)
    width = shape[-1]
    offset = int(found.flat[0]) % width
    if offset + dims.e > width:
        return None
    for layout in _LAYOUTS:
        if np.array_equal(found, _head_positions(dims, layout, length, width, offset)):
            return offset, layout
    return None


def _output(graph: Graph, root: Node, sizes: Sizes, dims: Dims) -> tuple[Node, Value, str, list[str]] | None:
    """(out projection, the value the op replaces, its layout, the nodes to it) after the heads merge."""
    ctx = Value(root.name)
    merge = trace_forward(graph, ctx)
    end = Value(merge[-1].name) if merge else ctx
    users = graph.users(end.node)
    if graph.uses(end.node) != 1 or len(users) != 1 or kind(graph.node(users[0])) != "linear":
        return None
    out_linear = graph.node(users[0])
    if out_linear.attrs["out_features"] != dims.e:
        return None
    layout = remembered(("merge", signature(graph, Chain(ctx), merge), astuple(dims)), sizes,
                        lambda: _merge_layout(graph, ctx, merge, sizes, dims))
    if layout is None:
        return None
    want = canonical(layout, dims.n, dims.length, dims.e)
    result = find_result(graph, Value(out_linear.name), want, sizes,
                         want_key=("canonical", layout, dims.n, dims.length, dims.e))
    if result is None:
        return None
    value, out_layout, after = result
    return out_linear, value, out_layout, [*(n.name for n in merge), *(n.name for n in after)]


def _merge_layout(graph: Graph, ctx: Value, merge: list[Node], sizes: Sizes, dims: Dims) -> str | None:
    """The layout of the heads merged by the ``merge`` nodes after ``ctx``, or None where they do
    not merge the heads."""
    found = index_map(graph, Chain(ctx), sizes, merge)
    heads = np.arange(dims.n * dims.h * dims.length * dims.d, dtype=POSITION).reshape(dims.n, dims.h, dims.length, dims.d)
    merged = heads.transpose(0, 2, 1, 3).reshape(dims.n, dims.length, dims.e)
    if found is None or found.shape[-1] != dims.e or found.size != merged.size:
        return None
    return next((lay for lay in _LAYOUTS
                 if np.array_equal(found.reshape(-1)[canonical(lay, dims.n, dims.length, dims.e)], merged)), None)


def _source(graph: Graph, projection: Projection, sizes: Sizes, dims: Dims, length: int) -> tuple[Value, str] | None:
    """The furthest 3-D value before the projection that holds its input, and that value's layout."""
    return find_source(graph, projection.linear.inputs[0], projection.layout, sizes, (dims.n, length, dims.e))


def _mask(graph: Graph, add: Node, sizes: Sizes, dims: Dims) -> tuple[Value | None, bool] | None:
    """(the attn_mask input, causal) of a mask Add: a constant causal mask, or a (L, S) float tensor."""
    if len(add.inputs) == 1:
        c = constant(graph, add)
        if c is None or c.ndim < 2 or any(d != 1 for d in c.shape[:-2]) or c.shape[-2:] != (dims.length, dims.source):
            return None
        c = c.reshape(dims.length, dims.source)
        future = np.triu(np.ones_like(c, dtype=bool), 1)
        blocked = c <= np.finfo(c.dtype).min if c.dtype.kind == "f" else np.zeros_like(future)
        return (None, True) if np.array_equal(blocked, future) and not np.any(c[~future]) else None
    scores = _scores_side(graph, add)
    mask = add.inputs[1] if scores == add.inputs[0] else add.inputs[0]
    t = graph.type_of(mask)
    if t.rank != 2 or sizes.shape(t.shape) != (dims.length, dims.source) or t.dtype != graph.type_of(scores).dtype:
        return None
    return mask, False


def _placeholder_safe_concat(parts: list[np.ndarray]) -> np.ndarray:
    if any(p.size > 1 and not any(p.strides) for p in parts):  # weights not read (lint): stay placeholders
        return np.broadcast_to(np.zeros((), parts[0].dtype), (sum(len(p) for p in parts), *parts[0].shape[1:]))
    return np.ascontiguousarray(np.concatenate(parts))


def _weights(graph: Graph, projections: list[Projection], out_linear: Node, e: int) -> tuple[dict, bool]:
    """nn.MultiheadAttention's parameters from the projections' weights, and whether it has biases.
    What is made of them (q, k and v rows stacked, a missing bias of zeros) is made once per fuse for
    the same arrays (:func:`~archc.frontends.onnx.patterns.derived`): an attention applied twice holds
    one tensor of each, tied as the file's shared weights are."""
    linears = [p.linear for p in projections] + [out_linear]
    bias = any(lin.attrs["bias"] for lin in linears)
    held = [graph.weights.get(lin.name, {}) for lin in linears]
    dtype = np.asarray(held[-1]["weight"]).dtype
    offsets = tuple(p.offset for p in projections)
    # (a missing bias's zeros are the layer's own: its projections' weights are among the sources)
    weight_sources = [w["weight"] for w in held[:3]]

    def stacked(key: str) -> np.ndarray:
        parts = [w.get(key) for w in held[:3]]
        return derived(("in_proj", key, offsets, e, dtype.str), [*parts, *weight_sources],
                       lambda: _placeholder_safe_concat([np.zeros(e, dtype) if a is None else np.asarray(a)[o:o + e]
                                                         for a, o in zip(parts, offsets)]))

    same = len({p.linear.name for p in projections}) == 1 and list(offsets) == [0, e, 2 * e] \
        and projections[0].linear.attrs["out_features"] == 3 * e
    weights = {"in_proj_weight": np.asarray(held[0]["weight"]) if same else stacked("weight")}
    if bias:
        weights["in_proj_bias"] = np.asarray(held[0]["bias"]) if same and "bias" in held[0] else stacked("bias")
    weights["out_proj.weight"] = np.asarray(held[-1]["weight"])
    if bias:
        out_bias = held[-1].get("bias")
        weights["out_proj.bias"] = np.asarray(out_bias) if out_bias is not None else \
            derived(("zero bias", e, dtype.str), [held[-1]["weight"]], lambda: np.zeros(e, dtype))
    return weights, bias


def _parameter_modules(projections: list[Projection], out_linear: Node) -> dict[str, Any]:
    """The modules that read each fused parameter's weights (see ``Match.parameter_modules``): the
    in-projection's those of the q projection, the out-projection's the output linear's."""
    q = projections[0].linear
    modules = {"in_proj_weight": parameter_modules(q, "weight"), "in_proj_bias": parameter_modules(q, "bias"),
               "out_proj.weight": parameter_modules(out_linear, "weight"),
               "out_proj.bias": parameter_modules(out_linear, "bias")}
    return {pname: found for pname, found in modules.items() if found}
