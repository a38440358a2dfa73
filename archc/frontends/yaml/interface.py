"""The spec's interface: its graph inputs (shapes, dtypes, symbolic dims), ``example_dims`` and
graph outputs.

:func:`declare_inputs` adds one ``input`` node per entry of ``inputs:`` (made by the one
node builder, :func:`archc.ops.nodes.build_node`) and binds its name in the top-level
scope; :func:`declare_example_dims` records example sizes of symbolic dims;
:func:`declare_outputs` names the graph's outputs once every node is made.
"""
from __future__ import annotations

from typing import Any

from archc.errors import did_you_mean
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.naming import repetition_values, resolve
from archc.frontends.yaml.params import MAX_NAME_LENGTH, NAME_RE, shown_name
from archc.frontends.yaml.scope import POISON, Abort, Binding, Scope
from archc.frontends.yaml.site import Site
from archc.frontends.yaml.source import SList, SMap
from archc.ir import TensorType, Value
from archc.ir.types import DTYPES
from archc.ops import registry
from archc.ops.nodes import build_node
from archc.frontends.yaml.spelling import spelled


def declare_inputs(ctx: Elaboration, doc: SMap, scope: Scope) -> None:
    """Add the graph inputs ``doc`` declares and bind their names in ``scope``."""
    inputs = doc.get("inputs")
    if not isinstance(inputs, SMap) or not inputs:
        ctx.error("a spec needs 'inputs': a mapping of input name -> shape, e.g. x: [N, 3, 224, 224]",
                  doc.where("inputs") if "inputs" in doc else doc.location)
        return
    for name in inputs:
        scope.declared.add(name)
        try:
            value = _input(ctx, name, Site(inputs, name), scope)
        except Abort:
            value = POISON  # users of a bad input stay quiet
        scope.bindings[name] = Binding([value])
        if scope.previous is None:
            scope.previous = value


def _input(ctx: Elaboration, name: str, site: Site, scope: Scope) -> Value:
    """One input, declared at ``site`` as a shape list or ``{shape, dtype}``."""
    if not NAME_RE.match(name):
        ctx.error(f"input name '{shown_name(name)}' must use letters, digits and '_', at most {MAX_NAME_LENGTH} "
                  "characters", site.key_location)
        raise Abort()
    decl, dtype = site.value, "float32"
    shape, shape_site = decl, site
    if isinstance(decl, SMap):
        for k in [k for k in decl if k not in ("shape", "dtype")]:  # in spec order: a stable report
            ctx.error(f"unknown key '{k}' in input '{name}'; expected 'shape' and 'dtype'",
                      decl.where_key(k), hint=did_you_mean(k, ["shape", "dtype"]))
        shape, shape_site = decl.get("shape"), Site(decl, "shape")
        dtype = decl.get("dtype", "float32")
        if dtype not in DTYPES:
            ctx.error(f"unknown dtype '{dtype}' for input '{name}'; expected one of {', '.join(DTYPES)}",
                      decl.where("dtype"), hint=did_you_mean(str(dtype), DTYPES))
            raise Abort()
    if not isinstance(shape, SList):
        ctx.report(f"input '{name}' needs a shape list like [N, 3, 224, 224]", shape_site)
        raise Abort()
    dims = tuple(_dim(ctx, Site(shape, i), scope) for i in range(len(shape)))
    # (a dim the spec computes is the input's attribute: a parameter read nowhere else stays a run-time
    # argument of the generated code where no code depends on the size, an image size of a pooled CNN)
    exprs = {f"shape[{i}]": str(written) for i, (written, dim) in enumerate(zip(shape, dims))
             if isinstance(written, str) and isinstance(dim, int)}
    too_big = ctx.budget.check_input(TensorType(dims, dtype))
    if too_big:
        ctx.report(f"input '{name}': {too_big}", shape_site)
        raise Abort()
    node = build_node(registry.get("input"), name, {"shape": dims, "dtype": dtype}, [], [],
                      location=site.key_location)
    node.attr_exprs = exprs
    ctx.graph.add(node)
    return Value(name)


def _dim(ctx: Elaboration, site: Site, scope: Scope) -> int | str:
    """One dimension of an input's shape: a positive int, an expression giving one, or a symbol."""
    d = site.value
    if isinstance(d, bool) or not isinstance(d, (int, str)):
        ctx.report(f"a dimension must be a positive int, a parameter expression or a symbol like N, "
                   f"got {spelled(d)}", site)
        raise Abort()
    if isinstance(d, str):
        if d.isidentifier() and d not in scope.env:
            return d  # a symbolic dimension
        d = ctx.evaluate(d, scope, site, attr=True)
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:  # (the hint: where its parameters were given)
        ctx.report(f"a dimension must be a positive int, got {spelled(d)}", site, scope.origin_hint(site.value))
        raise Abort()
    return d


def declare_example_dims(ctx: Elaboration, doc: SMap, scope: Scope) -> None:
    """``example_dims: {S: 16}``: sizes for symbolic input dims where a run gives none."""
    decl = doc.get("example_dims")
    if decl is None:
        return
    if not isinstance(decl, SMap):
        ctx.error("'example_dims' must map symbolic dims to sizes, e.g. {S: 16}", doc.where("example_dims"))
        return
    graph = ctx.graph
    symbols = {d for n in graph.inputs for d in graph.node(n).type.shape if isinstance(d, str)}
    for name, size in decl.items():
        if isinstance(size, str):
            try:
                size = ctx.evaluate(size, scope, Site(decl, name))
            except Abort:
                continue
        if name not in symbols:
            ctx.error(f"example_dims names '{name}', which is no symbolic dim of the inputs (they have: "
                      f"{', '.join(sorted(symbols)) or 'none'})", decl.where_key(name),
                      hint=did_you_mean(name, symbols))
        elif isinstance(size, bool) or not isinstance(size, int) or size < 1:
            ctx.error(f"example size of '{name}' must be a positive int, got {spelled(size)}", decl.where(name),
                      hint=scope.origin_hint(decl[name]))
        else:
            graph.example_dims[name] = size


def declare_outputs(ctx: Elaboration, doc: SMap, scope: Scope) -> None:
    """The graph outputs ``doc`` names (by default the last node's first output)."""
    decl = doc.get("outputs")
    if decl is None:
        if isinstance(last := scope.used_previous(ctx.sink), Value):
            ctx.graph.outputs["output"] = last
        return
    if isinstance(decl, str):
        refs = [(decl, decl, Site(doc, "outputs"))]
    elif isinstance(decl, SList):
        refs = [(str(r), str(r), Site(decl, i)) for i, r in enumerate(decl)]
    elif isinstance(decl, SMap):
        refs = [(k, str(v), Site(decl, k)) for k, v in decl.items()]
    else:
        ctx.error("'outputs' must be a node name, a list of names or a mapping", doc.where("outputs"))
        return
    if not refs:
        ctx.error("'outputs' names no output: a model computes at least one (leave 'outputs' out for the last "
                  "node's)", doc.where("outputs"))
        return
    empty = []  # (the entries that list no tensor: NAME[*] of a node repeated 0 times)
    for entry in refs:
        try:
            values = _output_values(ctx, entry, isinstance(decl, SMap), scope)
        except Abort:
            continue
        if not values:
            empty.append(entry)
        for name, value in values:
            if isinstance(value, Value):
                _add_output(ctx, name.replace(":", "_").replace(".", "_"), value, entry[2])
    if empty and len(empty) == len(refs):
        _, ref, site = empty[0]
        ctx.report(f"'outputs' names no tensor here: '{ref}' lists the outputs of no repetition (its node is "
                   "repeated 0 times); a model computes at least one output", site)


def _add_output(ctx: Elaboration, name: str, value: Value, site: Site) -> None:
    """Output ``name`` of the graph, unless another output or a model input has that name (the ONNX
    model's values would clash; a repeated output would silently be one)."""
    graph = ctx.graph
    if name in graph.outputs:
        ctx.report(f"output '{name}' is named twice; each output needs its own name (a mapping names them: "
                   f"{{{name}: ..., {name}_2: ...}})", site)
    elif name in graph.inputs:
        ctx.report(f"output '{name}' has the name of a model input; name it otherwise (a mapping names outputs: "
                   f"{{{name}_out: ...}})", site)
    else:
        graph.outputs[name] = value


def _output_values(ctx: Elaboration, entry: tuple[str, str, Site], numbered: bool,
                   scope: Scope) -> list[tuple[str, Any]]:
    """(output name, value) of one ``outputs`` entry (name, reference, site): one value, or one per
    repetition for ``NAME[*]``, named NAME0, NAME1, ... when ``numbered`` (a mapping), else
    INSTANCE_PORT."""
    out_name, ref, site = entry
    if "[*]" not in ref:
        return [(out_name, resolve(ctx, ref, scope, site))]
    named = repetition_values(ctx, ref, scope, site)
    port = ref.partition("[*]")[2]
    return [(f"{out_name}{i}" if numbered else f"{local}{port}", v) for i, (local, v) in enumerate(named)]
