"""Fusion of what exporters write out into archc's native ops, matched on structure.

After the importer has mapped single ONNX nodes, some functions are still spelled out as
several nodes (older opsets and hand-written modules): GELU as ``x * 0.5 * (1 + erf(x /
sqrt 2))`` or with the tanh formula, SiLU as ``x * sigmoid(x)``, Mish as ``x * tanh(softplus(x))``,
layer normalisation as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div, with or without a scale and
shift, a crop of two dims to another tensor's size as one Slice (``crop``) per dim, GLU as
``a * sigmoid(b)`` of a split's halves. :func:`fuse` rewrites each occurrence into the native op
(``gelu``, ``silu``, ``mish``, ``layernorm``, one ``crop``, ``glu``), keeping the name of the node
that computed the result. The larger patterns live
in their own modules and register here with :func:`matcher`: attention (:mod:`archc.frontends.onnx.attention`),
LSTM/GRU (:mod:`archc.frontends.onnx.recurrent`), max pooling with indices and unpooling
(:mod:`archc.frontends.onnx.pooling`), group normalisation (:mod:`archc.frontends.onnx.groupnorm`), rolls
(:mod:`archc.frontends.onnx.roll`).
A :class:`Match` may put movement adapters before
and after the fused op (a time-major source) and further nodes reading its outputs
(:class:`Follower`: the unpoolings of a pooling's indices).

Matching reads only ops, wiring and constant values, never node names. A product is read
as its factors (``scale``, ``mul`` and multiplications by a constant, in any order and
association), so ``0.5 * x * (1 + t)`` and ``x * (0.5 * (1 + t))`` match alike. A match
applies only where its inner nodes are used by nothing outside it. :func:`fuse` visits each
node once per pass and repeats passes while something fused (a fused node can complete a
larger pattern: stacked recurrent layers); matchers look only at a node's neighbourhood.
"""
from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from archc.errors import ShapeError
from archc.frontends.onnx.naming import clean
from archc.frontends.onnx.sharing import PARAMETER_MODULES_META
from archc.frontends.onnx.values import short_float
from archc.ir.graph import Graph, Node, Value
from archc.ir.names import Namespace
from archc.ops import registry


def kind(node: Node) -> str:
    """The op, with an imported ONNX node's op type: ``conv``, ``onnx:Erf``."""
    return f"onnx:{node.attrs['op_type']}" if node.op == "onnx_node" else node.op


def constant_operand(node: Node) -> str | None:
    """The name of the one constant operand of an onnx_node with one computed input (``x + c``), else None."""
    if node.op != "onnx_node" or len(node.inputs) != 1:
        return None
    names = [o for o in node.attrs["operands"] or [] if isinstance(o, str)]
    return names[0] if len(names) == 1 else None


def constant(graph: Graph, node: Node) -> np.ndarray | None:
    """The constant operand of an onnx_node with one computed input (``x + c``), else None."""
    name = constant_operand(node)
    return graph.weights.get(node.name, {}).get(name) if name is not None else None


def scalar(graph: Graph, node: Node) -> float | None:
    c = constant(graph, node)
    return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None


def close(a: float | None, b: float, rel: float = 1e-3) -> bool:
    return a is not None and abs(a - b) <= rel * abs(b)


@dataclass
class Product:
    """A value read as ``coefficient * factor_1 * ... * factor_n`` and the nodes that say so."""

    coefficient: float = 1.0
    factors: list[Value] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)


def product(graph: Graph, value: Value, top: bool = True) -> Product:
    """Factors of ``value`` through scale, mul and multiplication/division by a scalar constant;
    inner nodes are looked through only where this product is their sole use."""
    node = graph.node(value.node)
    if value.out != 0 or (not top and graph.uses(node.name) != 1):
        return Product(factors=[value])
    k = kind(node)
    if k == "scale":
        inner = product(graph, node.inputs[0], False)
        return Product(inner.coefficient * node.attrs["factor"], inner.factors, [node.name, *inner.nodes])
    if k == "mul" and len(node.inputs) == 2:
        a, b = (product(graph, v, False) for v in node.inputs)
        return Product(a.coefficient * b.coefficient, a.factors + b.factors, [node.name, *a.nodes, *b.nodes])
    c = scalar(graph, node)
    if c is not None and k in ("onnx:Mul", "onnx:Div") and isinstance(node.attrs["operands"][0], int):
        inner = product(graph, node.inputs[0], False)
        factor = c if k == "onnx:Mul" else 1.0 / c
        return Product(inner.coefficient * factor, inner.factors, [node.name, *inner.nodes])
    return Product(factors=[value])


@dataclass
class Match:
    """A fusion: the new op over ``inputs`` replacing ``root``; ``nodes`` all it replaces."""

    op: str
    attrs: dict[str, Any]
    inputs: list[Value]
    nodes: list[str]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    #: values of the replaced nodes the fused node's outputs stand for (default: the root's, output 0)
    replaced: list[tuple[Value, int]] | None = None
    #: the replaced node whose name the fused node takes (default: the root)
    name: str | None = None
    #: (op, attrs) applied, in order, to an input (by position) before the fused op reads it
    adapt_in: dict[int, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    #: (op, attrs) applied, in order, to the fused op's first output before it replaces the root's value
    adapt_out: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: further native nodes reading the fused node's outputs; their outputs follow the fused node's
    #: in the numbering of ``replaced``
    then: list[Follower] = field(default_factory=list)
    #: parameter name -> the modules (as ``MODULES_META``) of the replaced node that read the weight it
    #: is made of (an attention's ``in_proj_weight``: its q projection's), where not the fused node's own
    #: (see :data:`~archc.frontends.onnx.sharing.PARAMETER_MODULES_META`): the fused node takes one
    #: replaced node's name and modules, which differs between two calls of one layer
    parameter_modules: dict[str, Any] = field(default_factory=dict)


@dataclass
class Follower:
    """A further node of a match, such as an unpooling that reads the fused pooling's indices:
    ``inputs`` are graph values or ints (outputs of the fused node); it takes the name ``name``,
    one of the replaced nodes."""

    op: str
    attrs: dict[str, Any]
    inputs: list[Value | int]
    name: str


def module_name(graph: Graph, nodes: set[str], root: Node, fallback: str) -> str:
    """A name for a node fused from ``nodes``: the module path they all share (``/attn/...`` names
    from the TorchScript exporter), else ``root``'s module path (the default exporter's metadata),
    where that is free; else ``fallback``. A path that other nodes lie under is not free: a
    match that took in the next module's first node (an LSTM and the transpose of the LSTM after
    it: ``layers.0.lstm``, ``layers.1.lstm``) shares only their container's path, and a module
    cannot be both one node and the container of others."""
    parts = [_named_path(graph, n).split(".") for n in nodes]
    common: list[str] = []
    for segments in zip(*parts):
        if len(set(segments)) != 1:
            break
        common.append(segments[0])
    # all lie under the path, but one node may be the module's own (see _named_path)
    prefix = ".".join(common) if sum(len(p) == len(common) for p in parts) <= min(1, len(parts) - 1) else ""
    if prefix and _contains_others(graph, prefix, nodes):
        prefix = ""
    module_path = root.meta.get("module_path", "")
    if module_path and _contains_others(graph, module_path, nodes):
        module_path = ""  # (PVT's attention module, which also holds the spatial reduction's conv and norm)
    candidates = [c for c in (prefix, module_path) if c]
    for candidate in candidates:
        if candidate not in graph or candidate in nodes:
            return candidate
    if not _under_another(graph, fallback, nodes):
        return fallback
    # (a module called again, whose first call's node holds its path: the second is its path _1)
    return _free_variant(graph, candidates[0] if candidates else fallback, nodes)


def _under_another(graph: Graph, name: str, nodes: set[str]) -> bool:
    """Whether a node outside ``nodes`` holds a module path ``name`` lies under (``attn`` for ``attn.o``)."""
    parts = name.split(".")
    return any((path := ".".join(parts[:i])) in graph and path not in nodes for i in range(1, len(parts)))


def _free_variant(graph: Graph, base: str, nodes: set[str]) -> str:
    """``base_1``, ``base_2``, ...: the first that names no node and holds none."""
    k = 1
    while (name := f"{base}_{k}") in graph or _contains_others(graph, name, nodes) or _under_another(graph, name, nodes):
        k += 1
    return name


def _named_path(graph: Graph, name: str) -> str:
    """The path node ``name`` is named by: its name, or the ONNX name the import renamed it apart from.
    archc's own lowering names an op's last ONNX node after the op (``gn``) and the others under it
    (``gn/reshape``): one name cannot be both a node and the module of others, so the import named
    the node ``gn_1``; it is the node of module ``gn``."""
    onnx_name = graph.node(name).meta.get("onnx_name", "")
    if onnx_name and "/" not in onnx_name:
        path = clean(onnx_name)
        if path != name and re.fullmatch(re.escape(path) + r"_\d+", name):
            return path
    return name


def _contains_others(graph: Graph, path: str, nodes: set[str]) -> bool:
    """Whether a node outside ``nodes`` is named under module ``path``."""
    under = path + "."
    return any(name.startswith(under) and name not in nodes for name in graph.node_map())


Matcher = Callable[[Graph, Node], "Match | None"]
#: anchor kind (see :func:`kind`) -> the matchers rooted at a node of that kind, in registration order
MATCHERS: dict[str, list[Matcher]] = {}


def matcher(*anchors: str, table: dict[str, list[Matcher]] = MATCHERS) -> Callable[[Matcher], Matcher]:
    """Register a matcher that can match only at a root whose :func:`kind` is one of ``anchors``
    (it returns None at any other node): :func:`fuse` calls it at those nodes only, and skips a
    whole pass when a graph holds none of them (a convolutional network holds no anchor)."""

    def register(fn: Matcher) -> Matcher:
        for anchor in anchors:
            table.setdefault(anchor, []).append(fn)
        return fn

    return register


#: anchor kind -> matchers of one ONNX node that is a native op (``x ** 2`` is ``pow``), tried after every
#: pattern of :data:`MATCHERS` has been fused: before, they would take the nodes those patterns match
NATIVE: dict[str, list[Matcher]] = {}


def native(*anchors: str) -> Callable[[Matcher], Matcher]:
    """Register, as :func:`matcher` does, a matcher for :data:`NATIVE`."""
    return matcher(*anchors, table=NATIVE)


def _plus_one(graph: Graph, value: Value) -> Value | None:
    """``t`` where ``value`` is ``1 + t`` (an imported Add of the constant 1)."""
    node = graph.node(value.node)
    if kind(node) == "onnx:Add" and close(scalar(graph, node), 1.0):
        return node.inputs[0]
    return None


@matcher("scale", "mul", "onnx:Mul", "onnx:Div")  # the roots :func:`product` reads a coefficient from
def gelu(graph: Graph, root: Node) -> Match | None:
    """``0.5 * x * (1 + erf(x / sqrt 2))``, or ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``."""
    p = product(graph, Value(root.name))
    if not close(p.coefficient, 0.5) or len(p.factors) != 2:
        return None
    for x, other in (p.factors, p.factors[::-1]):
        inner = _plus_one(graph, other)
        if inner is None:
            continue
        fn = graph.node(inner.node)
        arg = product(graph, fn.inputs[0], False) if fn.inputs else None
        if arg is None or arg.factors == [] or len(arg.factors) != 1:
            continue
        nodes = [*p.nodes, other.node, inner.node, *arg.nodes]
        if kind(fn) == "onnx:Erf" and close(arg.coefficient, 1 / math.sqrt(2)) and arg.factors[0] == x:
            return Match("gelu", {"approximate": "none"}, [x], nodes)
        if kind(fn) == "tanh" and close(arg.coefficient, math.sqrt(2 / math.pi)):
            cubic = _x_plus_cubic(graph, arg.factors[0], x)
            if cubic is not None:
                return Match("gelu", {"approximate": "tanh"}, [x], nodes + cubic)
    return None


def _x_plus_cubic(graph: Graph, value: Value, x: Value) -> list[str] | None:
    """The nodes of ``x + 0.044715 * x^3`` (x^3 as Pow(x, 3) or x * x * x), or None."""
    add = graph.node(value.node)
    if kind(add) != "add" or len(add.inputs) != 2 or graph.uses(add.name) != 1 or x not in add.inputs:
        return None
    term = product(graph, add.inputs[1] if add.inputs[0] == x else add.inputs[0], False)
    nodes = [add.name, *term.nodes]
    if not close(term.coefficient, 0.044715):
        return None
    if term.factors == [x, x, x]:
        return nodes
    if len(term.factors) == 1:
        power = graph.node(term.factors[0].node)
        if kind(power) == "onnx:Pow" and close(scalar(graph, power), 3.0) and power.inputs == [x] \
                and graph.uses(power.name) == 1:
            return nodes + [power.name]
    return None


@matcher("mul")
def silu(graph: Graph, root: Node) -> Match | None:
    """``x * sigmoid(x)`` (SiLU, Swish)."""
    for x, g in _activated_factors(graph, root, "sigmoid"):
        if g.inputs == [x]:
            return Match("silu", {}, [x], [root.name, g.name])
    return None


def _activated_factors(graph: Graph, root: Node, activation: str) -> Iterator[tuple[Value, Node]]:
    """For a product of two values, (the other factor, the activation) where one factor is ``activation``
    (a :func:`kind`) of one input, read only by the product: each order of the factors."""
    if kind(root) != "mul" or len(root.inputs) != 2:
        return
    for other, value in (root.inputs, root.inputs[::-1]):
        node = graph.node(value.node)
        if kind(node) == activation and len(node.inputs) == 1 and graph.uses(node.name) == 1:
            yield other, node


@matcher("mul")
def glu(graph: Graph, root: Node) -> Match | None:
    """``a * sigmoid(b)`` for ``a, b`` the two equal halves of one split only they read (``F.glu``, as
    both torch exporters write it): ``glu`` over that dim."""
    for a, g in _activated_factors(graph, root, "sigmoid"):
        b = g.inputs[0]
        split = graph.node(a.node)
        if kind(split) != "split" or b.node != split.name or (a.out, b.out) != (0, 1) or graph.uses(split.name) != 2:
            continue
        sizes = graph.type_of(a).shape, graph.type_of(b).shape
        if len(split.outputs) == 2 and sizes[0] == sizes[1]:
            return Match("glu", {"dim": split.attrs["dim"]}, [split.inputs[0]], [root.name, g.name, split.name])
    return None


@matcher("mul")
def mish(graph: Graph, root: Node) -> Match | None:
    """``x * tanh(softplus(x))`` (Mish), as the TorchScript exporter writes ``F.mish``; ONNX's Softplus
    is torch's without its threshold, a difference below float precision where tanh has reached 1."""
    for x, t in _activated_factors(graph, root, "tanh"):
        soft = graph.node(t.inputs[0].node)
        if kind(soft) == "onnx:Softplus" and soft.inputs == [x] and graph.uses(soft.name) == 1:
            return Match("mish", {}, [x], [root.name, t.name, soft.name])
    return None


def _sole_user(graph: Graph, node: Node) -> Node | None:
    """The one node that reads ``node``'s result, where one node reads it once."""
    users = graph.users(node.name)
    return graph.node(users[0]) if len(users) == 1 and graph.uses(node.name) == 1 else None


def _affine_after(graph: Graph, user: Node | None) -> bool:
    """Whether ``user``, the one reader of a normalisation's division, is a scale, perhaps followed by
    a shift, that :func:`layernorm` matches as the module's affine."""
    if user is None or kind(user) != "onnx:Mul":
        return False
    after = _sole_user(graph, user)
    return layernorm(graph, user) is not None or (
        after is not None and kind(after) == "onnx:Add" and layernorm(graph, after) is not None)


@matcher("onnx:Add", "onnx:Mul", "div")  # the shift, the scale where there is no shift, or neither
def layernorm(graph: Graph, root: Node) -> Match | None:
    """``(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * w + b`` over the last dims; without the
    shift (nn.LayerNorm(D, bias=False)), or without both (elementwise_affine=False: the division
    is the root)."""
    nodes, weights = [], {}
    node = root
    user = _sole_user(graph, root)
    if kind(root) == "onnx:Mul" and user is not None and kind(user) == "onnx:Add" \
            and constant(graph, user) is not None:
        return None  # the shift after the scale is part of it: match from there
    if kind(root) == "div" and _affine_after(graph, user):
        return None  # the module's scale (and shift) follow the division: matched from there
    if kind(node) == "onnx:Add" and constant(graph, node) is not None:
        weights["bias"], node = constant(graph, node), graph.node(node.inputs[0].node)
        nodes.append(root.name)
    if kind(node) == "onnx:Mul" and constant(graph, node) is not None:
        weights["weight"] = constant(graph, node)
        nodes.append(node.name)
        node = graph.node(node.inputs[0].node)
    if kind(node) != "div" or ("bias" in weights and "weight" not in weights):
        return None
    centred, denominator = node.inputs
    sqrt = graph.node(denominator.node)
    eps_add = graph.node(sqrt.inputs[0].node) if kind(sqrt) == "onnx:Sqrt" else None
    var = graph.node(eps_add.inputs[0].node) if eps_add is not None and kind(eps_add) == "onnx:Add" else None
    power = graph.node(var.inputs[0].node) if var is not None and kind(var) == "mean" else None
    sub = graph.node(centred.node)
    if power is None or kind(power) != "onnx:Pow" or not close(scalar(graph, power), 2.0) \
            or power.inputs != [centred] or kind(sub) != "sub":
        return None
    x, mean = sub.inputs
    mean_node = graph.node(mean.node)
    if kind(mean_node) != "mean" or mean_node.inputs != [x]:
        return None
    rank = graph.type_of(x).rank
    dims = sorted(d % rank for d in mean_node.attrs["dims"])
    k = len(dims)
    if dims != list(range(rank - k, rank)) or sorted(d % rank for d in var.attrs["dims"]) != dims \
            or not (mean_node.attrs["keepdim"] and var.attrs["keepdim"]):
        return None
    eps_const = constant(graph, eps_add)
    eps = short_float(float(eps_const.reshape(-1)[0]), eps_const.dtype) if eps_const is not None \
        and eps_const.size == 1 else None
    shape = tuple(graph.type_of(x).shape[rank - k:])
    if eps is None or any(tuple(np.broadcast_shapes(w.shape, shape)) != shape or w.size != math.prod(shape)
                          for w in weights.values()):
        return None
    weights = {key: np.ascontiguousarray(w.reshape(shape)) for key, w in weights.items()}
    affine = {"elementwise_affine": True, "bias": "bias" in weights} if weights else {"elementwise_affine": False}
    return Match("layernorm", {"dims": k, "eps": eps, **affine},
                 [x], [*nodes, node.name, sqrt.name, eps_add.name, var.name, power.name, sub.name, mean_node.name],
                 weights)


@matcher("crop")
def crops(graph: Graph, root: Node) -> Match | None:
    """Two crops to one tensor's size in other dims, one after the other (the exporters' one Slice per
    dim of ``x[:, :, 5 : 5 + ref.shape[2], 5 : 5 + ref.shape[3]]``): one crop of both."""
    if kind(root) != "crop":
        return None
    inner = graph.node(root.inputs[0].node)
    if kind(inner) != "crop" or inner.inputs[1] != root.inputs[1] or graph.uses(inner.name) != 1 \
            or inner.attrs["center"] != root.attrs["center"]:
        return None
    op, ref = registry.lookup("crop"), graph.type_of(root.inputs[1])
    window: dict[int, int] = {}
    for node in (inner, root):
        dims, offsets = op.window(node, graph.type_of(node.inputs[0]), ref)
        if window.keys() & set(dims):
            return None
        window.update(zip(dims, offsets))
    dims = sorted(window)
    offsets = [window[d] for d in dims]
    attrs: dict[str, Any] = {"center": True} if root.attrs["center"] else {
        "offset": offsets[0] if len(set(offsets)) == 1 else offsets}
    if dims != list(range(2, ref.rank)):
        attrs["dims"] = dims
    return Match("crop", attrs, [inner.inputs[0], root.inputs[1]], [root.name, inner.name])


def _apply(graph: Graph, root: Node, match: Match) -> set[str] | None:
    """Rewrite ``match`` into the graph if its inner nodes are used only inside it (or through
    the values the fused node replaces) and the new nodes' types agree with the replaced ones;
    returns the names of the nodes it added, None where it did not apply."""
    replaced = match.replaced or [(Value(root.name), 0)]
    kept = {v for v, _ in replaced}
    inside = set(match.nodes)
    shape_readers: set[str] = set()
    for name in inside:
        readers = [u for u in graph.users(name) if u not in inside]
        shape_only = [u for u in readers if _reads_shape_for(graph, u, inside, shape_readers)]
        outside = [v for u in readers if u not in shape_only for v in graph.node(u).inputs if v.node == name]
        outside += [v for v in graph.outputs.values() if v.node == name]
        if not set(outside) <= kept:
            return None
    inside |= shape_readers
    name = match.name or root.name
    plan = _plan(graph, root, match, name)
    if plan is None:
        return None
    new, results = plan
    if any(k >= len(results) or not _refines(new_type(graph, new, results[k]), graph.type_of(old))
           for old, k in replaced):
        return None
    frontier = {v.node for n in inside for v in graph.node(n).inputs} - inside
    for node in new:
        graph.add(node)
    for old, k in replaced:
        graph.replace_all_uses_with(old, results[k])
    dead = set(inside)
    while dead:  # consumers before producers: erase refuses a node something still reads
        unused = {n for n in dead if not graph.users(n) and not _is_output(graph, n)}
        if not unused:
            break  # (cannot happen: every inner node's users are in the match)
        for name_ in unused:
            graph.erase(name_)
        dead -= unused
    # the fused node (and each follower) takes the name of the node whose result it computes
    for final in [name, *(f.name for f in match.then)]:
        rename(graph, f"{final}.fused", final)
    if match.weights:
        graph.weights[name] = match.weights
    if match.parameter_modules:
        fused = graph.node(name)
        fused.meta = {**fused.meta, PARAMETER_MODULES_META: dict(match.parameter_modules)}
    _sweep(graph, frontier)
    return {node.name for node in new} | {name, *(f.name for f in match.then)}


def _sweep(graph: Graph, names: set[str]) -> None:
    """Erase the nodes among ``names`` (and then their producers) that nothing reads any more:
    what only the replaced nodes read, such as a transpose before a projection."""
    while names:
        name = names.pop()
        if name in graph and graph.node(name).op != "input" and not graph.users(name) \
                and not _is_output(graph, name):
            names |= {v.node for v in graph.node(name).inputs}
            graph.erase(name)


def _reads_shape_for(graph: Graph, name: str, inside: set[str], found: set[str], limit: int = 16) -> bool:
    """Whether node ``name`` is an ONNX Shape whose result, through shape arithmetic only, feeds
    nothing but nodes ``inside`` the match (a Reshape target computed at run time, as dynamic
    exports write them): it then dies with the match. Adds the nodes it went through to ``found``."""
    if kind(graph.node(name)) not in ("onnx:Shape", "onnx:Size"):
        return False
    seen, todo = {name}, [name]
    while todo:
        node = todo.pop()
        if _is_output(graph, node) or len(seen) > limit:
            return False
        for user in graph.users(node):
            if user in inside or user in seen:
                continue
            if graph.node(user).op != "onnx_node" or not graph.node(user).outputs[0].dtype.startswith("int"):
                return False  # data computed from the shape: it outlives the match
            seen.add(user)
            todo.append(user)
    found |= seen
    return True


def _refines(new, old) -> bool:
    """Whether type ``new`` may stand for ``old``: equal, or known where ``old`` has a dim ONNX's
    inference could not name (an unpooling's size given as a constant input)."""
    return new.dtype == old.dtype and new.rank == old.rank and all(
        a == b or not isinstance(b, int) for a, b in zip(new.shape, old.shape))


def _is_output(graph: Graph, name: str) -> bool:
    return any(v.node == name for v in graph.outputs.values())


def new_type(graph: Graph, new: list[Node], value: Value):
    """The type of ``value``, an output of one of the ``new`` nodes or of the graph."""
    for node in new:
        if node.name == value.node:
            return node.outputs[value.out]
    return graph.type_of(value)


class _NamesKept:
    """The node names of ``graph`` except ``replaced`` (a container for :class:`Namespace`)."""

    def __init__(self, graph: Graph, replaced: set[str]) -> None:
        self.graph, self.replaced = graph, replaced

    def __contains__(self, name: object) -> bool:
        return name in self.graph and name not in self.replaced


def _plan(graph: Graph, root: Node, match: Match, name: str) -> tuple[list[Node], list[Value]] | None:
    """The new nodes (input adapters, the fused node ``name.fused``, output adapters), typed,
    and the values standing for the fused op's outputs; None where an op refuses its inputs."""
    new: list[Node] = []
    # names of the graph's nodes that stay (the matched ones are replaced), and of the new ones
    names = Namespace(also_taken=_NamesKept(graph, set(match.nodes)), suffix=lambda base, i: f"{base}_{i + 1}")
    fresh = names.take

    def add(node_name: str, op: str, attrs: dict[str, Any], inputs: list[Value]) -> Node | None:
        opdef = registry.lookup(op)
        meta = graph.node(name).meta if name in graph else root.meta
        node = Node(name=node_name, op=op, attrs={k: attrs.get(k, spec.default) for k, spec in opdef.attrs.items()},
                    inputs=list(inputs), location=root.location, meta=dict(meta))
        try:
            node.outputs = opdef.infer(node, [new_type(graph, new, v) for v in inputs])
        except ShapeError:
            return None
        new.append(node)
        names.reserve(node.name)
        return node

    inputs = []
    adapted: dict[tuple[Value, str], Value] = {}  # one adapter chain per value (q, k, v of self-attention)
    for i, value in enumerate(match.inputs):
        key = (value, repr(match.adapt_in.get(i, [])))
        if key in adapted:
            inputs.append(adapted[key])
            continue
        for op, attrs in match.adapt_in.get(i, []):
            node = add(fresh(f"{name}.in{i}"), op, attrs, [value])
            if node is None:
                return None
            value = Value(node.name)
        adapted[key] = value
        inputs.append(value)
    fused = add(f"{name}.fused", match.op, match.attrs, inputs)
    if fused is None:
        return None
    results = [Value(fused.name, k) for k in range(len(fused.outputs))]
    for op, attrs in match.adapt_out:
        node = add(fresh(f"{name}.out"), op, attrs, [results[0]])
        if node is None:
            return None
        results[0] = Value(node.name)
    for follower in match.then:
        reads = [Value(fused.name, v) if isinstance(v, int) else v for v in follower.inputs]
        node = add(f"{follower.name}.fused", follower.op, follower.attrs, reads)
        if node is None:
            return None
        results.append(Value(node.name))
    return new, results


#: what :func:`derived` made during one :func:`fuse`: key -> (the source arrays, kept alive so that
#: their ids stay theirs, and the array made of them); None outside a fuse
_DERIVED: ContextVar[dict[Hashable, tuple[tuple[Any, ...], np.ndarray]] | None] = ContextVar(
    "derived_weights", default=None)


def derived(how: Hashable, sources: Sequence[np.ndarray | None], make: Callable[[], np.ndarray]) -> np.ndarray:
    """``make()``, a weight a fusion computes from ``sources`` (the replaced nodes' weight arrays) as
    ``how`` says (with every other value ``make`` reads), made once per fuse for the same source
    arrays: a layer applied twice (one attention's q, k, v stacked into ``in_proj_weight`` per call,
    a missing bias made zeros per call) gets one array, which
    :func:`~archc.frontends.onnx.sharing.tie_shared_weights` then ties."""
    memo = _DERIVED.get()
    if memo is None:
        return make()
    key = (how, tuple(map(id, sources)))
    found = memo.get(key)
    if found is None:
        found = memo[key] = (tuple(sources), make())
    return found[1]


def fuse(graph: Graph) -> int:
    """Fuse every occurrence of the patterns in place; returns how many were fused.

    Each pass visits the nodes in order and tries, at each, the matchers anchored at its kind;
    a node a fusion put in place of a visited name later in the pass is visited too."""
    token = _DERIVED.set({})
    fused: set[str] = set()
    try:
        count = _fuse(graph, MATCHERS, fused) + _fuse(graph, NATIVE, fused)
    finally:
        _DERIVED.reset(token)
    _take_module_names(graph, fused)
    return count


#: a leaf the TorchScript exporter gives a node: an ONNX op type, perhaps numbered (``Gemm``, ``MatMul_2``)
_OP_TYPE_LEAF = re.compile(r"[A-Z][A-Za-z]*(_\d+)?")


def _take_module_names(graph: Graph, fused: set[str]) -> None:
    """A fused node named by an exporter's leaf under a module (``attn.Gemm``, ``attn.linear_1``: the output
    projection of a batch-first nn.MultiheadAttention, whose layout transposes under ``attn`` were still there while it
    was named) that is now the only node of that module takes the module's name (``attn``), as the import's
    final names give a lone node its scope's (:meth:`~archc.frontends.onnx.naming.NodeNames.final`)."""
    for name in sorted(fused):
        module, _, leaf = name.rpartition(".")
        if name not in graph or not module or module in graph \
                or _contains_others(graph, module, {name}) or _under_another(graph, module, {name}):
            continue
        node = graph.node(name)
        # (the leaf is the exporter's, not a child module's: an op type, or the default exporter's FX name
        # under the module its metadata says ran it)
        if _OP_TYPE_LEAF.fullmatch(leaf) or node.meta.get("module_path") == module:
            rename(graph, name, module)


def rename(graph: Graph, old: str, new: str) -> None:
    """Node ``old`` under the free name ``new``: its readers, the graph outputs and its weights follow."""
    node = graph.node(old)
    graph.add(Node(name=new, op=node.op, attrs=node.attrs, inputs=list(node.inputs), outputs=node.outputs,
                   location=node.location, meta=node.meta))
    for k in range(len(node.outputs)):
        graph.replace_all_uses_with(Value(old, k), Value(new, k))
    weights = graph.weights.pop(old, None)
    graph.erase(old)
    if weights is not None:
        graph.weights[new] = weights


def _fuse(graph: Graph, matchers: dict[str, list[Matcher]], fused: set[str]) -> int:
    count, changed = 0, True
    while changed:
        changed = False
        nodes = list(graph.nodes())
        ops = {n.op for n in nodes}
        if ops.isdisjoint(matchers) and ("onnx_node" not in ops or not any(
                kind(n) in matchers for n in nodes if n.op == "onnx_node")):
            break  # (no anchor: decided by the set of ops, without a kind per node)
        order = [(n.name, kind(n) in matchers) for n in nodes]
        added: set[str] = set()  # names (re)bound by this pass's fusions
        for name, anchored in order:
            if not (anchored or name in added) or name not in graph:
                continue
            node = graph.node(name)
            for match_fn in matchers.get(kind(node), ()) if node.op != "input" else ():
                match = match_fn(graph, node)
                names = _apply(graph, node, match) if match is not None else None
                if names:
                    added |= names
                    fused |= names
                    count, changed = count + 1, True
                    break
    return count
