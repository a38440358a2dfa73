"""Turns a parsed spec into the graph IR: blocks, repeat, conditions, names and shapes.

Elaboration walks the spec's nodes in order. Each node either applies an op
(validated against the op registry's attribute schema, then shape-inferred at
once, so later expressions may ask ``channels(x)``) or instantiates a block,
which recurses into the block's nodes under a hierarchical name prefix
(``layer1.0.conv1``). Errors are collected, not raised one by one, so
``archc check`` reports every problem it can find; a failed node poisons only
the names that depend on it.
"""
from __future__ import annotations

import ast
import re
from typing import Any

from archc.errors import Diagnostic, DiagnosticSink, Location, ShapeError, SpecError, did_you_mean
from archc.ir import BlockInstance, Graph, Node, TensorType, Value
from archc.ir.types import DTYPES
from archc.ops.weights import TIE_META, param_specs, tied_params
from archc.limits import DEFAULT_LIMITS, Limits
from archc.ops import registry
from archc.ops.base import Attr, OpDef
from archc.ops.nodes import build_node
from archc.frontends.yaml import schema
from archc.frontends.yaml.params import NOT_A_PARAMETER, chosen_kind, parameter_value, takes_literal_text
from archc.frontends.yaml.budget import ExpansionBudget
from archc.frontends.yaml.expr import FUNCTIONS, UNKNOWN, ExprError, UnknownValue, parse
from archc.frontends.yaml.functions import FunctionError, define_functions
from archc.frontends.yaml.includes import read_includes
from archc.frontends.yaml.scope import POISON, PREVIOUS, Abort, Binding, Poison, Scope
from archc.frontends.yaml.source import SList, SMap

_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
#: node and instance names are PyTorch module names: '-' too (torchvision's RegNet has 'block1-0');
#: never '.', which separates the levels of the hierarchy
_MODULE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def elaborate(doc: Any, filename: str, overrides: dict[str, Any] | None = None,
              profile: str | None = None, limits: Limits = DEFAULT_LIMITS, *,
              allow_include_anywhere: bool = False) -> Graph:
    """Build the IR for a parsed spec within ``limits``; raise SpecError listing every problem found.

    ``allow_include_anywhere`` lets ``include:`` read files outside the spec's folder
    (see :mod:`archc.frontends.yaml.includes`).
    """
    return _Elaborator(filename, limits, allow_include_anywhere).run(doc, overrides or {}, profile)


class _Elaborator:
    def __init__(self, filename: str, limits: Limits = DEFAULT_LIMITS, allow_include_anywhere: bool = False) -> None:
        self.filename = filename
        self.limits = limits
        self.budget = ExpansionBudget(limits)
        self.allow_include_anywhere = allow_include_anywhere
        self.sink = DiagnosticSink()
        self.blocks: dict[str, SMap] = {}
        self.graph = Graph()
        self.globals: dict[str, Any] = {}
        self.functions: dict[str, Any] = {}   # the spec's own pure functions (functions.py)

    # -- entry -----------------------------------------------------------------------
    def run(self, doc: Any, overrides: dict[str, Any], profile: str | None) -> Graph:
        if not isinstance(doc, SMap):
            raise SpecError("a spec is a mapping with 'inputs' and 'nodes' at its top level",
                            location=Location(self.filename, 1, 1))
        self._check_keys(doc, schema.TOP_KEYS, "at the top level of a spec")
        self.graph.name = str(doc.get("name", "model"))
        if "name" in doc and (not isinstance(doc["name"], (str, int)) or isinstance(doc["name"], bool)
                             or not self.graph.name.strip()):
            self._error("'name' must be a non-empty string", doc.where("name"))
        self.graph.doc = str(doc.get("doc", "") or "")
        params = self._params(doc, overrides, profile)
        self.graph.params = dict(params)
        self.sink.raise_if_any()

        for included in read_includes(doc, self.filename, self.sink, self.allow_include_anywhere, self.limits):
            self._blocks(included)
            self._functions(included)
        self._blocks(doc)
        self._functions(doc)

        scope = Scope(prefix="", env=dict(params))
        self._let(doc, scope)
        self.globals = dict(scope.env)
        self._inputs(doc, scope)
        self._example_dims(doc, scope)
        nodes = doc.get("nodes")
        if not isinstance(nodes, SList) or not nodes:
            self._error("a spec needs a non-empty 'nodes' list", doc.where("nodes") if "nodes" in doc
                        else doc.location)
        else:
            self._node_list(nodes, scope)
        self._outputs(doc, scope)
        self.sink.raise_if_any()
        return self.graph

    def _warn_unread_widths(self, inner: Scope) -> None:
        """Warn where a node's width comes from the block input (``channels(x)``) while the block
        reads that input only as its first node's input: most likely ``prev`` was meant."""
        for node, ref, location in inner.width_queries:
            value = inner.bindings[ref].values[0]
            readers = [n for n in self.graph.nx.successors(value.node)
                       if n.startswith(inner.prefix) and value in self.graph.node(n).inputs]
            if len(readers) <= 1:
                self.graph.warnings.append(Diagnostic(
                    f"its width is computed from {ref}, the block's input, which it does not read (the block "
                    f"reads '{ref}' only in its first node); for the node before this one write '{PREVIOUS}', "
                    f"e.g. channels({PREVIOUS})", location, node, severity="warning"))

    def _functions(self, doc: SMap) -> None:
        if "functions" in doc:
            try:
                define_functions(doc["functions"], doc.where("functions"), self.functions, set(FUNCTIONS))
            except FunctionError as exc:
                self._error(str(exc), exc.location)

    def _blocks(self, doc: SMap) -> None:
        blocks = doc.get("blocks")
        if blocks is None:
            return
        if not isinstance(blocks, SMap):
            self._error("'blocks' must be a mapping of block name -> definition", doc.where("blocks"))
            return
        for bname, bdef in blocks.items():
            if not isinstance(bdef, SMap):
                self._error(f"block '{bname}' must be a mapping with 'nodes'", blocks.where(bname))
                continue
            self._check_keys(bdef, schema.BLOCK_KEYS, f"in block '{bname}'")
            if registry.get(bname) is not None:
                self._error(f"block '{bname}' has the name of an op; choose another name",
                            blocks.where_key(bname))
            if bname in self.blocks:
                first = self.blocks[bname].location
                self._error(f"block '{bname}' is defined twice (first at {first})", blocks.where_key(bname))
            self.blocks[bname] = bdef

    # -- diagnostics -------------------------------------------------------------------
    def _error(self, message: str, location: Location | None, node: str | None = None,
               hint: str | None = None) -> None:
        self.sink.error(message, location, node, hint)

    def _fatal(self, message: str | None, location: Location | None, node: str | None = None) -> None:
        """Stop elaborating (a resource limit was hit), reporting what was found so far."""
        if message is not None:
            self._error(message, location, node)
            raise SpecError(self.sink.diagnostics)

    def _check_keys(self, m: SMap, allowed: dict[str, str], where: str) -> None:
        for key in m:
            if key not in allowed:
                self._error(f"unknown key '{key}' {where}; expected one of: {', '.join(allowed)}",
                            m.where_key(key), hint=did_you_mean(key, allowed))

    def _expr_location(self, container: SMap | SList, key: Any, offset: int) -> Location:
        loc = container.where(key)
        quoted = container.quoted.get(key, False) if isinstance(container, SMap) else \
            (container.quoted[key] if 0 <= key < len(container.quoted) else False)
        return Location(loc.file, loc.line, loc.column + offset + (1 if quoted else 0))

    def _eval(self, text: str, scope: Scope, container: SMap | SList, key: Any, node: str | None,
              attr: bool = False) -> Any:
        """Evaluate an expression; ``attr``: it is one op attribute's whole value (see below)."""
        try:
            value = scope.evaluator(self.graph, self.limits, self.functions).evaluate(text)
        except ExprError as exc:
            self._error(str(exc), self._expr_location(container, key, exc.offset), node, exc.hint)
            raise Abort() from None
        except UnknownValue:  # uses a 'let' whose error was reported: stay quiet
            raise Abort() from None
        # Only a top-level node's attribute keeps a parameter a run-time argument of the
        # generated code (Node.attr_exprs); any other use fixes it when the graph is built.
        if not (attr and not scope.stack):
            self.graph.structural_params |= _names_in(text) & self.graph.params.keys()
        return value

    # -- top level ---------------------------------------------------------------------
    def _params(self, doc: SMap, overrides: dict[str, Any], profile: str | None) -> dict[str, Any]:
        declared = doc.get("params")
        if declared is None:
            declared = {}
        elif not isinstance(declared, SMap):
            self._error("'params' must be a mapping of name -> default value", doc.where("params"))
            declared = {}
        params = dict(declared)
        for name in params:
            if not _NAME_RE.match(name) or name[0].isdigit():
                self._error(f"parameter name '{name}' must be an identifier", declared.where_key(name))
        if profile is not None:
            profiles = doc.get("profiles")
            if not isinstance(profiles, SMap) or profile not in profiles:
                names = list(profiles) if isinstance(profiles, dict) else []
                self._error(f"unknown profile '{profile}'; the spec defines: {', '.join(names) or 'none'}",
                            doc.where("profiles") if "profiles" in doc else doc.location,
                            hint=did_you_mean(profile, names))
            else:
                chosen = profiles[profile]
                if not isinstance(chosen, SMap):
                    self._error(f"profile '{profile}' must be a mapping of parameter -> value",
                                profiles.where(profile))
                else:
                    for key, value in chosen.items():
                        if key not in params:
                            self._error(f"profile '{profile}' sets unknown parameter '{key}'",
                                        chosen.where_key(key), hint=did_you_mean(key, params))
                        params[key] = value
        for key, value in overrides.items():
            if key not in params:
                self._error(f"--set names unknown parameter '{key}'; the spec's parameters are: "
                            f"{', '.join(params) or 'none'}", Location("<command line>"),
                            hint=did_you_mean(key, params))
                continue
            default = params[key]
            if isinstance(default, bool) != isinstance(value, bool) or (
                    isinstance(default, (int, float)) and not isinstance(value, (int, float))):
                self._error(f"--set {key}={value!r}: expected a value like the default {default!r}",
                            Location("<command line>"))
                continue
            params[key] = value
        return params

    def _let(self, m: SMap, scope: Scope) -> None:
        lets = m.get("let")
        if lets is None:
            return
        if not isinstance(lets, SMap):
            self._error("'let' must be a mapping of name -> expression", m.where("let"))
            return
        for name, expr in lets.items():
            try:
                scope.env[name] = self._eval(expr, scope, lets, name, None) if isinstance(expr, str) else expr
            except Abort:
                scope.env[name] = UNKNOWN

    def _inputs(self, doc: SMap, scope: Scope) -> None:
        inputs = doc.get("inputs")
        if not isinstance(inputs, SMap) or not inputs:
            self._error("a spec needs 'inputs': a mapping of input name -> shape, e.g. x: [N, 3, 224, 224]",
                        doc.where("inputs") if "inputs" in doc else doc.location)
            return
        for name, decl in inputs.items():
            scope.declared.add(name)
            try:
                value = self._input(name, decl, inputs, scope)
            except Abort:
                value = POISON  # users of a bad input stay quiet
            scope.bindings[name] = Binding([value])
            if scope.previous is None:
                scope.previous = value

    def _input(self, name: str, decl: Any, inputs: SMap, scope: Scope) -> Value:
        if not _NAME_RE.match(name):
            self._error(f"input name '{name}' must use letters, digits and '_'", inputs.where_key(name))
            raise Abort()
        dtype = "float32"
        shape, holder, key = decl, inputs, name
        if isinstance(decl, SMap):
            for k in set(decl) - {"shape", "dtype"}:
                self._error(f"unknown key '{k}' in input '{name}'; expected 'shape' and 'dtype'",
                            decl.where_key(k), hint=did_you_mean(k, ["shape", "dtype"]))
            shape, holder, key = decl.get("shape"), decl, "shape"
            dtype = decl.get("dtype", "float32")
            if dtype not in DTYPES:
                self._error(f"unknown dtype '{dtype}' for input '{name}'; expected one of {', '.join(DTYPES)}",
                            decl.where("dtype"), hint=did_you_mean(str(dtype), DTYPES))
                raise Abort()
        if not isinstance(shape, SList):
            self._error(f"input '{name}' needs a shape list like [N, 3, 224, 224]", holder.where(key))
            raise Abort()
        dims = tuple(self._dim(d, shape, i, scope) for i, d in enumerate(shape))
        too_big = self.budget.check_input(TensorType(dims, dtype))
        if too_big:
            self._error(f"input '{name}': {too_big}", holder.where(key))
            raise Abort()
        node = Node(name=name, op="input", attrs={"shape": dims, "dtype": dtype},
                    outputs=[TensorType(dims, dtype)], location=inputs.where_key(name))
        self.graph.add(node)
        return Value(name)

    def _dim(self, d: Any, shape: SList, i: int, scope: Scope) -> int | str:
        if isinstance(d, bool) or not isinstance(d, (int, str)):
            self._error(f"a dimension must be a positive int, a parameter expression or a symbol like N, "
                        f"got {d!r}", shape.where(i))
            raise Abort()
        if isinstance(d, str):
            if d.isidentifier() and d not in scope.env:
                return d  # a symbolic dimension
            d = self._eval(d, scope, shape, i, None)
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            self._error(f"a dimension must be a positive int, got {d!r}", shape.where(i))
            raise Abort()
        return d

    def _example_dims(self, doc: SMap, scope: Scope) -> None:
        """``example_dims: {S: 16}``: sizes for symbolic input dims where a run gives none."""
        decl = doc.get("example_dims")
        if decl is None:
            return
        if not isinstance(decl, SMap):
            self._error("'example_dims' must map symbolic dims to sizes, e.g. {S: 16}", doc.where("example_dims"))
            return
        symbols = {d for n in self.graph.inputs for d in self.graph.node(n).type.shape if isinstance(d, str)}
        for name, size in decl.items():
            if isinstance(size, str):
                try:
                    size = self._eval(size, scope, decl, name, None)
                except Abort:
                    continue
            if name not in symbols:
                self._error(f"example_dims names '{name}', which is no symbolic dim of the inputs (they have: "
                            f"{', '.join(sorted(symbols)) or 'none'})", decl.where_key(name),
                            hint=did_you_mean(name, symbols))
            elif isinstance(size, bool) or not isinstance(size, int) or size < 1:
                self._error(f"example size of '{name}' must be a positive int, got {size!r}", decl.where(name))
            else:
                self.graph.example_dims[name] = size

    def _outputs(self, doc: SMap, scope: Scope) -> None:
        decl = doc.get("outputs")
        refs: list[tuple[str, str, SMap | SList, Any]] = []
        if decl is None:
            if isinstance(scope.previous, Value):
                self.graph.outputs["output"] = scope.previous
            return
        if isinstance(decl, str):
            refs = [(decl, decl, doc, "outputs")]
        elif isinstance(decl, SList):
            refs = [(str(r), str(r), decl, i) for i, r in enumerate(decl)]
        elif isinstance(decl, SMap):
            refs = [(k, str(v), decl, k) for k, v in decl.items()]
        else:
            self._error("'outputs' must be a node name, a list of names or a mapping", doc.where("outputs"))
            return
        for out_name, ref, holder, key in refs:
            try:
                if "[*]" in ref:  # one output per repetition: NAME0, NAME1, ... (or INSTANCE_PORT)
                    named = self._repetition_values(ref, scope, holder, key, None)
                    port = ref.partition("[*]")[2]
                    values = [(f"{out_name}{i}" if isinstance(decl, SMap) else f"{local}{port}", v)
                              for i, (local, v) in enumerate(named)]
                else:
                    values = [(out_name, self._resolve(ref, scope, holder, key, None))]
            except Abort:
                continue
            for name, value in values:
                if isinstance(value, Value):
                    self.graph.outputs[name.replace(":", "_").replace(".", "_")] = value

    # -- node lists --------------------------------------------------------------------
    def _node_list(self, nodes: SList, scope: Scope) -> None:
        for i, item in enumerate(nodes):
            if isinstance(item, SMap) and "name" in item:
                scope.declared.add(str(item["name"]))
        for i, item in enumerate(nodes):
            if not isinstance(item, SMap):
                self._error("each node must be a mapping like {name: conv1, op: conv, ...}", nodes.where(i))
                continue
            try:
                self._node(item, scope)
            except Abort:
                name = item.get("name")
                if name is not None:
                    scope.bindings[str(name)] = Binding([POISON])
                scope.previous = POISON

    def _known_kind(self, kind: str) -> bool:
        return registry.get(kind) is not None or kind in self.blocks

    def _node_name(self, item: SMap, scope: Scope, kind: str) -> str:
        if "name" in item:
            name = str(item["name"])
            if not _MODULE_NAME_RE.match(name):
                self._error(f"node name '{name}' must use only letters, digits, '_' and '-' "
                            "(hierarchy comes from blocks)", item.where("name"))
                raise Abort()
            # Alternatives switched by `if` may share a name: only two kept nodes clash.
            if name in scope.bindings and name not in scope.left_out and "if" not in item:
                self._error(f"duplicate node name '{name}'", item.where("name"), scope.prefix + name)
                raise Abort()
            return name
        base = kind
        k = scope.auto_names.get(base, 0)
        while True:
            name = base if k == 0 else f"{base}_{k}"
            k += 1
            if name not in scope.declared and name not in scope.bindings:
                break
        scope.auto_names[base] = k
        return name

    def _node(self, item: SMap, scope: Scope) -> None:
        self._fatal(self.budget.add_node(), item.location)
        self._check_node_keys(item)
        has_op, has_block = "op" in item, "block" in item
        if has_op == has_block:
            self._error("a node needs exactly one of 'op' or 'block'", item.location,
                        str(item.get("name", "")) or None)
            raise Abort()
        field_name = "op" if has_op else "block"
        kind = str(item[field_name])
        if "${" in kind:  # an op or block chosen by a parameter; still only registered ones exist
            kind = _interpolate(kind, lambda e: self._eval(e, scope, item, field_name, item.get("name")))
        else:  # `op: act` where the parameter act holds an op or block name
            kind = chosen_kind(kind, scope.env, self._known_kind)
        if kind in self.blocks and registry.get(kind) is None:
            has_op = False  # `op:` may name a block (chosen by a parameter), and `block:` an op
        elif registry.get(kind) is not None and kind not in self.blocks:
            has_op = True
        name = self._node_name(item, scope, kind)
        full = scope.prefix + name
        name_taken = name in scope.bindings and name not in scope.left_out

        if "if" in item:
            cond = item["if"]
            if isinstance(cond, str):
                cond = self._eval(cond, scope, item, "if", full)
            if not cond:
                target = item.get("else")
                if target is not None:
                    value = self._resolve(str(target), scope, item, "else", full)
                    binding = Binding([value])
                else:
                    binding = Binding([self._inputs_of(item, scope, full)[0]])
                if not name_taken:  # a kept alternative of the same name keeps it
                    scope.bindings[name] = binding
                    scope.left_out.add(name)
                scope.previous = binding.values[0]
                return
            if name_taken:
                self._error(f"duplicate node name '{name}' (two nodes of this name are both kept)",
                            item.where("name"), full)
                raise Abort()
        scope.left_out.discard(name)
        inline = self._inline(item, scope, has_op)
        if scope.counter is not None and not inline:
            full = scope.prefix + scope.next_index()  # nn.Sequential numbering; `name` is the handle

        count, overrides = 1, None
        if "repeat" in item:
            count = item["repeat"]
            if isinstance(count, str):
                count = self._eval(count, scope, item, "repeat", full)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                self._error(f"'repeat' must be a non-negative int, got {count!r}", item.where("repeat"), full)
                raise Abort()
            self._fatal(self.budget.check_repeat(count), item.where("repeat"), full)
            overrides = self._overrides(item, count, full)

        # An op without inputs (a learned tensor) is declared, not chained: it is no one's
        # default input and the previous node stays what it was.
        source = has_op and "in" not in item and _takes_no_input(kind)
        if "repeat" not in item:
            inputs = [] if source else self._inputs_of(item, scope, full)
            binding = self._instance(item, scope, full, inputs, kind, has_op, item, env_extra={}, inline=inline)
        else:
            binding = self._repeat(item, scope, name, full, kind, has_op, count, overrides, inline)
        scope.bindings[name] = binding
        if not source:
            scope.previous = binding.values[0]

    def _inline(self, item: SMap, scope: Scope, has_op: bool) -> bool:
        """Whether a node is ``inline: true``: a block instance (or repetitions) without a name level."""
        inline = item.get("inline", False)
        if not isinstance(inline, bool):
            self._error(f"'inline' must be true or false, got {inline!r}", item.where("inline"))
            raise Abort()
        if inline and has_op and ("repeat" not in item or scope.counter is None):
            self._error("'inline' applies to block instances (and to repeated ops inside a sequential block, "
                        "which number each repetition)", item.where_key("inline"))
            raise Abort()
        return inline

    def _repeat(self, item: SMap, scope: Scope, name: str, full: str, kind: str, has_op: bool, count: int,
                overrides: dict[int, SMap], inline: bool = False) -> Binding:
        """Instantiate a node ``count`` times in series (or densely, when ``in`` names ``NAME[*]``);
        ``inline`` repetitions add no name level (numbered children of a sequential block)."""
        dense = _mentions(item.get("in"), f"{name}[*]")
        scope.repetitions[name] = []
        inputs = None if dense else self._inputs_of(item, scope, full)
        binding = Binding([inputs[0]]) if inputs else Binding([scope.previous])
        for index in range(count):
            env = {"index": index}
            if dense:  # each repetition sees every earlier repetition's output
                inputs = self._inputs_of(item, scope, full)
            fields = _merged(item, overrides[index]) if index in overrides else item
            local = f"{name}.{index}"
            if "instance_name" in item:
                pattern = item["instance_name"]
                local = _interpolate(str(pattern), lambda e: self._eval(
                    e, Scope(prefix=scope.prefix, env={**scope.env, **env}), item, "instance_name", full))
                if not _MODULE_NAME_RE.match(local) or local in scope.bindings:
                    self._error(f"instance_name gives '{local}' for repetition {index}: names must be unique and "
                                "use letters, digits, '_' and '-'", item.where("instance_name"), full)
                    raise Abort()
            if inline:
                path = scope.prefix + scope.next_index() if has_op else full
            elif "instance_name" in item:
                path = scope.prefix + local
            else:
                path = f"{full}.{index}"
            binding = self._instance(fields, scope, path, inputs, kind, has_op, item, env, inline)
            if "instance_name" in item:
                scope.bindings[local] = binding
            scope.repetitions[name].append((local, binding))
            if not dense:
                inputs = [binding.values[0], *inputs[1:]]
        return binding

    def _check_node_keys(self, item: SMap) -> None:
        if "else" in item and "if" not in item:
            self._error("'else' needs an 'if'", item.where_key("else"))
        for key in ("overrides", "instance_name"):
            if key in item and "repeat" not in item:
                self._error(f"'{key}' needs a 'repeat'", item.where_key(key))
        if "expect" in item and item["expect"] not in schema.EXPECT_KINDS:
            self._error(f"unknown connection kind '{item['expect']}'; expected one of "
                        f"{', '.join(schema.EXPECT_KINDS)}", item.where("expect"),
                        hint=did_you_mean(str(item["expect"]), schema.EXPECT_KINDS))

    def _overrides(self, item: SMap, count: int, full: str) -> dict[int, SMap]:
        raw = item.get("overrides")
        if raw is None:
            return {}
        if not isinstance(raw, SMap):
            self._error("'overrides' must map a repetition index to fields, e.g. {0: {stride: 2}}",
                        item.where("overrides"), full)
            raise Abort()
        result: dict[int, SMap] = {}
        for key, fields in raw.items():
            try:
                index = int(key)
            except ValueError:
                self._error(f"override key '{key}' must be a repetition index", raw.where_key(key), full)
                continue
            if not -count <= index < count:
                self._error(f"override index {index} is outside repeat count {count}", raw.where_key(key), full)
                continue
            if not isinstance(fields, SMap):
                self._error("an override must be a mapping of field -> value", raw.where(key), full)
                continue
            for k in fields:
                if k in ("name", "op", "block", "in", "repeat", "overrides", "instance_name"):
                    self._error(f"'{k}' cannot be overridden per repetition", fields.where_key(k), full)
            result[index % count] = fields
        return result

    def _inputs_of(self, item: SMap, scope: Scope, full: str) -> list[Value | Poison]:
        if "in" not in item:
            if scope.previous is None:
                self._error("this node has no input: give 'in:' (there is no previous node)", item.location, full)
                raise Abort()
            return [scope.previous]
        refs = item["in"]
        if isinstance(refs, (str, int)):
            refs_list, holder, keys = [str(refs)], item, ["in"]
        elif isinstance(refs, SList):
            refs_list, holder, keys = [str(r) for r in refs], refs, list(range(len(refs)))
        else:
            self._error("'in' must be a name or a list of names", item.where("in"), full)
            raise Abort()
        values: list[Value | Poison] = []
        for r, k in zip(refs_list, keys):
            try:
                values.extend(self._resolve_all(r, scope, holder, k, full))
            except Abort:
                values.append(POISON)  # reported (or already reported); keep checking this node
        if not values:
            self._error("'in' names no tensor here (an empty NAME[*] or variadic input)", item.where("in"), full)
            raise Abort()
        return values

    def _resolve_all(self, ref: str, scope: Scope, holder: SMap | SList, key: Any,
                     full: str | None) -> list[Value | Poison]:
        """What one ``in`` entry stands for: one value, or several for ``NAME[*]`` and variadic inputs."""
        if "[*]" in ref:
            return [v for _, v in self._repetition_values(ref, scope, holder, key, full)]
        binding = scope.bindings.get(ref)
        if binding is not None and binding.spread:
            return list(binding.values)
        return [self._resolve(ref, scope, holder, key, full)]

    def _repetition_values(self, ref: str, scope: Scope, holder: SMap | SList, key: Any,
                           full: str | None) -> list[tuple[str, Value | Poison]]:
        """``NAME[*]`` or ``NAME[*]:port``: (instance name, value) of each repetition so far."""
        base, star, port = ref.partition("[*]")
        if port and not port.startswith(":") or base not in scope.repetitions:
            self._error(f"'{ref}': '{base}' is not a repeated node in this scope (NAME[*] lists the outputs of "
                        "a node's repetitions so far; NAME[*]:PORT one output of each)", holder.where(key), full,
                        did_you_mean(base, scope.repetitions))
            raise Abort()
        return [(local, self._port(binding, local, port[1:], holder, key, full))
                for local, binding in scope.repetitions[base]]

    def _resolve(self, ref: str, scope: Scope, holder: SMap | SList, key: Any, full: str | None) -> Value | Poison:
        name, _, port = ref.partition(":")
        binding = scope.bindings.get(name)
        if binding is None and name == PREVIOUS and scope.previous is not None and not port:
            return scope.previous  # `prev`: the node before this one
        if binding is None:
            if name in scope.declared:
                self._error(f"'{name}' is used before it is defined (list nodes after their inputs)",
                            holder.where(key), full)
            else:
                self._error(f"unknown node or input '{name}'", holder.where(key), full,
                            did_you_mean(name, scope.bindings))
            raise Abort()
        if binding.spread:
            self._error(f"'{name}' is a variadic input: use it in 'in', where it stands for all its tensors",
                        holder.where(key), full)
            raise Abort()
        return self._port(binding, name, port, holder, key, full)

    def _port(self, binding: Binding, name: str, port: str, holder: SMap | SList, key: Any,
              full: str | None) -> Value | Poison:
        """One output of a binding: the first, or ``port`` by index or output name."""
        if binding.poisoned:
            return POISON
        if not port:
            return binding.values[0]
        if port.isdigit() and int(port) < len(binding.values):
            return binding.values[int(port)]
        if port in binding.ports:
            return binding.values[binding.ports.index(port)]
        self._error(f"'{name}' has no output '{port}'; it has "
                    f"{', '.join(binding.ports) or str(len(binding.values)) + ' output(s)'}",
                    holder.where(key), full, did_you_mean(port, binding.ports))
        raise Abort()

    # -- one instance: an op application or a block instantiation ---------------------------
    def _instance(self, fields: SMap, scope: Scope, full: str, inputs: list, kind: str,
                  is_op: bool, item: SMap, env_extra: dict[str, Any], inline: bool = False) -> Binding:
        inner = Scope(prefix=scope.prefix, env={**scope.env, **env_extra}, stack=scope.stack,
                      bindings=scope.bindings, declared=scope.declared, repetitions=scope.repetitions,
                      counter=scope.counter, previous=scope.previous, block_inputs=scope.block_inputs,
                      width_queries=scope.width_queries)
        if is_op:
            return self._apply_op(fields, inner, full, inputs, kind, item)
        return self._apply_block(fields, inner, full, inputs, kind, item, inline)

    def _apply_op(self, fields: SMap, scope: Scope, full: str, inputs: list[Value], kind: str,
                  item: SMap) -> Binding:
        op = registry.get(kind)
        if op is None:
            self._error(f"unknown op '{kind}'", item.where("op"), full,
                        did_you_mean(kind, registry.names() + list(self.blocks)))
            raise Abort()
        exprs: dict[str, str] = {}
        attrs = self._attrs(op, fields, scope, full, exprs)
        lo, hi = op.arity()
        if len(inputs) < lo or (hi is not None and len(inputs) > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            self._error(f"op '{op.name}' takes {want} input(s), got {len(inputs)}",
                        fields.where("in") if "in" in fields else fields.location, full,
                        op.arity_hint([str(v).removeprefix(scope.prefix) for v in inputs if v is not POISON]))
            raise Abort()
        if any(v is POISON for v in inputs):
            raise Abort()
        if full in self.graph:
            self._error(f"two nodes are named '{full}' (inline blocks and their repetitions add no name "
                        "level: number them in a sequential block, or give the nodes distinct names)",
                        item.location, full)
            raise Abort()
        in_types = [self.graph.type_of(v) for v in inputs]
        try:
            node = build_node(op, full, attrs, inputs, in_types, scope=scope.stack, location=item.location,
                              meta={"expect": item["expect"]} if "expect" in item else None)
        except ShapeError as exc:
            shapes = ", ".join(str(t) for t in in_types)
            self._error(f"{op.name}: {exc} [input shape{'s' if len(in_types) > 1 else ''}: {shapes}]",
                        item.location, full)
            raise Abort() from None
        too_big, fatal = self.budget.check_op(op, node, in_types)
        if fatal:
            self._fatal(too_big, item.location, full)
        if too_big:
            self._error(too_big, item.location, full)
            raise Abort()
        node.attr_exprs = exprs  # for backends that write the spec's expressions (PyTorch classes)
        self.graph.add(node)
        if "tie" in item:
            self._tie(node, item, scope, full)
        scope.width_queries.extend((full, ref, item.location) for ref in dict.fromkeys(scope.queried)
                                   if ref in scope.block_inputs and scope.bindings[ref].values[0] not in inputs)
        ports = op.output_names(node)
        return Binding([Value(full, i) for i in range(len(node.outputs))], ports)

    def _tie(self, node: Node, item: SMap, scope: Scope, full: str) -> None:
        """``tie: {weight: wte.weight}``: this node's parameter is another node's tensor (weight tying)."""
        decl = item["tie"]
        if not isinstance(decl, SMap) or not decl:
            self._error("'tie' maps this node's parameters to other nodes', e.g. {weight: wte.weight}",
                        item.where("tie"), full)
            raise Abort()
        own = param_specs(self.graph, node)
        ties: dict[str, tuple[str, str]] = {}
        for pname, ref in decl.items():
            param = "" if pname == node.name.rpartition(".")[2] else pname
            if param not in own:
                self._error(f"op '{node.op}' has no parameter '{pname}' to tie; it has: "
                            f"{', '.join(p or node.name for p in own) or 'none'}", decl.where_key(pname), full)
                raise Abort()
            target, _, tparam = str(ref).partition(".")
            value = self._resolve(target, scope, decl, pname, full)
            if value is POISON:
                raise Abort()
            source = self.graph.node(value.node)
            theirs = param_specs(self.graph, source)
            if tparam not in theirs or source.name == node.name:
                self._error(f"'{ref}' is no parameter of another node ('{source.name}' has: "
                            f"{', '.join(p or source.name for p in theirs) or 'none'})", decl.where(pname), full)
                raise Abort()
            if own[param].shape != theirs[tparam].shape or own[param].dtype != theirs[tparam].dtype:
                self._error(f"cannot tie '{pname}' {own[param].shape} to '{ref}' {theirs[tparam].shape}: tied "
                            "parameters need one shape and dtype", decl.where(pname), full)
                raise Abort()
            ties[param] = tied_params(source).get(tparam, (source.name, tparam))  # chains end at the owner
        node.meta[TIE_META] = ties

    def _attrs(self, op: OpDef, fields: SMap, scope: Scope, full: str, exprs: dict[str, str]) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        failed = False
        for key in fields:
            if key in schema.NODE_KEYS:
                continue
            if key not in op.attrs:
                self._error(f"op '{op.name}' has no attribute '{key}'; it has: "
                            f"{', '.join(op.attrs) or 'none'}", fields.where_key(key), full,
                            op.inferred_hint(key) or did_you_mean(key, op.attrs))
                failed = True
                continue
            try:
                attrs[key] = self._coerce(op.attrs[key], fields[key], fields, key, scope, full, op.name, exprs)
            except Abort:
                failed = True
        for key, spec in op.attrs.items():
            if key not in attrs and key not in fields:
                if spec.required:
                    self._error(f"op '{op.name}' needs attribute '{key}'"
                                + (f" ({spec.doc})" if spec.doc else ""), fields.location, full)
                    failed = True
                else:
                    attrs[key] = spec.default
        if failed:
            raise Abort()
        return {k: attrs[k] for k in op.attrs}  # schema order, so printing is stable

    def _coerce(self, spec: Attr, raw: Any, holder: SMap, key: str, scope: Scope, full: str, opname: str,
                exprs: dict[str, str]) -> Any:
        kind = spec.kind
        named = parameter_value(raw, scope.env)
        # A field naming a string parameter stands for its value (other values reach the same
        # result as an expression, which also records it for the generated code's arguments).
        if isinstance(named, str) and not (spec.choices and raw in spec.choices):
            raw = named
        if isinstance(raw, str) and kind in ("str", "int_or_str") and "${" in raw:
            raw = _interpolate(raw, lambda e: self._eval(e, scope, holder, key, full))
        if kind == "str" or (kind == "int_or_str" and isinstance(raw, str) and spec.choices
                             and raw in spec.choices):
            value = raw
        elif isinstance(raw, str) and kind != "any":
            value = self._eval(raw, scope, holder, key, full, attr=True)
            exprs[key] = raw
        elif kind == "any":
            value = _plain(raw)  # data (an imported ONNX node's attributes): never evaluated
        elif isinstance(raw, SList) and kind in ("ints", "floats", "int_or_str"):
            value = [self._eval(v, scope, raw, i, full) if isinstance(v, str) else v for i, v in enumerate(raw)]
        else:
            value = raw
        if not spec.accepts(value):
            self._error(f"attribute '{key}' of op '{opname}' expects {spec.expected()}, got {value!r}",
                        holder.where(key), full,
                        did_you_mean(str(value), spec.choices) if spec.choices and isinstance(value, str) else None)
            raise Abort()
        problem = spec.violation(value)
        if problem is not None:
            self._error(f"attribute '{key}' of op '{opname}' {problem}", holder.where(key), full)
            raise Abort()
        if kind == "float" and isinstance(value, int):
            value = float(value)
        if isinstance(value, list):
            value = tuple(value)
        return value

    def _apply_block(self, fields: SMap, scope: Scope, full: str, inputs: list[Value], kind: str,
                     item: SMap, inline: bool = False) -> Binding:
        bdef = self.blocks.get(kind)
        if bdef is None:
            self._error(f"unknown block '{kind}'", item.where("block"), full,
                        did_you_mean(kind, list(self.blocks) + registry.names()))
            raise Abort()
        self._fatal(self.budget.check_depth(len(scope.stack)), item.location, full)
        declared = bdef.get("params")
        if declared is None:
            declared = {}
        elif not isinstance(declared, SMap):
            self._error(f"'params' of block '{kind}' must be a mapping", bdef.where("params"))
            raise Abort()
        env = dict(self.globals)  # top-level params and lets stay visible inside blocks
        failed = False
        for key in fields:
            if key in schema.NODE_KEYS:
                continue
            if key not in declared:
                self._error(f"block '{kind}' has no parameter '{key}'; it has: {', '.join(declared) or 'none'}",
                            fields.where_key(key), full, did_you_mean(key, declared))
                failed = True
                continue
            raw, default = fields[key], declared[key]
            try:
                named = parameter_value(raw, scope.env)
                if named is not NOT_A_PARAMETER:
                    env[key] = named  # parameters of any type flow through nested blocks
                elif isinstance(raw, str) and "${" in raw:
                    env[key] = _interpolate(raw, lambda e: self._eval(e, scope, fields, key, full))
                elif isinstance(raw, str) and not takes_literal_text(raw, default):
                    env[key] = self._eval(raw, scope, fields, key, full)
                elif isinstance(raw, SList):
                    env[key] = [self._eval(v, scope, raw, i, full) if isinstance(v, str) else v
                                for i, v in enumerate(raw)]
                else:
                    env[key] = raw
            except Abort:
                failed = True
        for key, default in declared.items():
            if key in fields:
                continue
            if default is None:
                self._error(f"block '{kind}' needs parameter '{key}'", fields.location, full)
                failed = True
            else:
                env[key] = default
        if failed:
            raise Abort()
        formal = bdef.get("inputs", ["x"])
        if isinstance(formal, str):
            formal = [formal]
        if not isinstance(formal, list) or not all(isinstance(f, str) for f in formal):
            self._error(f"block '{kind}': 'inputs' must be a name or a list of names", bdef.where("inputs"), full)
            raise Abort()
        formal = [str(f) for f in formal]
        variadic = bool(formal) and formal[-1].endswith("...")
        fixed = formal[:-1] if variadic else formal
        if len(inputs) < len(fixed) or (not variadic and len(inputs) != len(fixed)) or not inputs:
            want = f"at least {len(fixed)}" if variadic else str(len(fixed))
            self._error(f"block '{kind}' takes {want} input(s) ({', '.join(formal)}), got {len(inputs)}",
                        fields.where("in") if "in" in fields else fields.location, full,
                        None if variadic or len(inputs) <= len(fixed) else "for any number of inputs, end the "
                        f"block's inputs with a variadic one, inputs: [{', '.join(fixed + ['rest...'])}], "
                        "and pass them on with in: rest")
            raise Abort()
        if any(v is POISON for v in inputs):
            raise Abort()
        if inline:  # the block's nodes join the caller's names (and its numbering, if sequential)
            inner = Scope(prefix=scope.prefix, env=env, stack=scope.stack, counter=scope.counter)
        else:
            lets = bdef.get("let") if isinstance(bdef.get("let"), SMap) else {}
            instance = BlockInstance(full, kind, defaults=tuple(declared.items()),
                                     args=tuple((k, env.get(k)) for k in declared),
                                     lets=tuple((k, v) for k, v in lets.items() if isinstance(v, str)),
                                     formals=tuple(formal), inputs=tuple(inputs))
            inner = Scope(prefix=full + ".", env=env, stack=scope.stack + (instance,),
                          counter=[0] if bdef.get("sequential") is True else None)
        for fname, value in zip(fixed, inputs):
            inner.bindings[fname] = Binding([value])
            inner.declared.add(fname)
        if variadic:
            rest = formal[-1][:-3]
            inner.bindings[rest] = Binding(list(inputs[len(fixed):]), spread=True)
            inner.declared.add(rest)
        inner.previous = inputs[0]
        inner.block_inputs = tuple(fixed)
        self._let(bdef, inner)
        nodes = bdef.get("nodes")
        if not isinstance(nodes, SList) or not nodes:
            self._error(f"block '{kind}' needs a non-empty 'nodes' list", bdef.location)
            raise Abort()
        errors_before = len(self.sink.diagnostics)
        self._node_list(nodes, inner)
        if len(self.sink.diagnostics) > errors_before:
            raise Abort()
        self._warn_unread_widths(inner)
        outs = bdef.get("outputs")
        if outs is None:
            return Binding([inner.previous])
        if not isinstance(outs, (str, list)):
            self._error(f"block '{kind}': 'outputs' must be a node name or a list of them", bdef.where("outputs"), full)
            raise Abort()
        refs = [outs] if isinstance(outs, str) else list(outs)
        holder = bdef if isinstance(outs, str) else outs
        keys = ["outputs"] if isinstance(outs, str) else list(range(len(refs)))
        values = [self._resolve(str(r), inner, holder, k, full) for r, k in zip(refs, keys)]
        return Binding(values, tuple(str(r).replace(":", "_") for r in refs))


_INTERP = re.compile(r"\$\{([^}]*)\}")


def _interpolate(text: str, evaluate) -> str:
    """Replace ``${expr}`` inside a string field with the expression's value."""
    return _INTERP.sub(lambda m: str(evaluate(m.group(1))), text)


def _takes_no_input(kind: str) -> bool:
    op = registry.get(kind)
    return op is not None and op.arity() == (0, 0)


def _names_in(text: str) -> set[str]:
    """The names an expression (already evaluated, so well-formed) reads."""
    return {n.id for n in ast.walk(parse(text)) if isinstance(n, ast.Name)}


def _mentions(refs: Any, ref: str) -> bool:
    """Whether an ``in`` field names ``ref``."""
    if isinstance(refs, list):
        return any(str(r) == ref for r in refs)
    return refs is not None and str(refs) == ref


def _merged(item: SMap, extra: SMap) -> SMap:
    """A node's fields with one repetition's overrides applied (locations kept)."""
    merged = SMap({**item, **extra})
    merged.location = item.location
    merged.key_locations = {**item.key_locations, **extra.key_locations}
    merged.value_locations = {**item.value_locations, **extra.value_locations}
    merged.quoted = {**item.quoted, **extra.quoted}
    return merged


def _plain(value: Any) -> Any:
    """A spec value as plain Python data (dicts and lists, not the located SMap/SList)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
