"""One instance lowered to a :class:`~archc.lowering.torch_plan.Body`: its module tree and forward.

The module tree keeps the IR's names (``layer1.0.conv1`` stays ``layer1[0].conv1``, state_dict
key ``layer1.0.conv1.weight``). Repeated block instances that feed each other in series become
an ``nn.Sequential`` called once (``layer1 = self.layer1(maxpool)``), other numbered ones an
``nn.ModuleList``, other containers an ``nn.ModuleDict``; a block instance whose nodes are
modules named 0, 1, ... applied in series is itself an ``nn.Sequential`` (torchvision's
``downsample``). Each op writes its own constructor and forward expression; nothing here
branches on op names.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import nn

from archc.errors import SpecError
from archc.ir.graph import Graph, Node, Value
from archc.lowering.torch_reset import GENERATED_METHODS
from archc.lowering.torch_plan import Body, Instance, Leaf, Lowered, Stmt, VarNames, attribute, place, with_holes
from archc.pysource import is_identifier, literal

__all__ = ["BodyWriter"]

# Names a child cannot take because the class or container already has such an attribute
# (torch's add_module refuses them, or the child would hide a method such as eval).
_CLASS_TAKEN = frozenset(dir(nn.Module())) | GENERATED_METHODS
_DICT_TAKEN = frozenset(dir(nn.ModuleDict()))
_ARG = "\x01"
_MODULE = "\x02"


def _placeholder(i: int) -> str:
    letters = ""
    while True:
        letters = chr(ord("a") + i % 26) + letters
        i //= 26
        if not i:
            return f"{_ARG}{letters}{_ARG}"


class BodyWriter:
    """Lowers instances of one graph; ``call_of(child)`` gives a child's class constructor call as
    (class name, [(argument, value)]) once that child's class is known."""

    def __init__(self, graph: Graph, labels: Mapping[str, str],
                 call_of: Callable[[Instance], tuple[str, list[tuple[str, Any]]]]) -> None:
        self.graph = graph
        self.lowered = Lowered(graph)
        self.labels = labels
        self.call_of = call_of
        self.users: dict[Value, set[str]] = {}
        for node in graph.nodes():
            for v in node.inputs:
                self.users.setdefault(v, set()).add(node.name)
        self.graph_outputs = set(graph.outputs.values())

    # -- what becomes an nn.Sequential ----------------------------------------------------------
    def as_sequential(self, inst: Instance) -> list[Node] | None:
        """The nodes of an instance that is a chain of modules named 0, 1, ... (else None)."""
        nodes = inst.items
        if len(inst.inputs) != 1 or len(inst.inputs[0]) != 1 or len(inst.outputs) != 1 or not nodes:
            return None
        previous = inst.inputs[0][0]
        for i, node in enumerate(nodes):
            if not isinstance(node, Node) or inst.local(node.name) != str(i) or node.inputs != [previous]:
                return None
            op, ins, ctor, _ = self.lowered(node)
            if ctor is None or len(node.outputs) != 1 or op.torch_forward(node, ins, ["a"], "m") != "m(a)":
                return None
            if i < len(nodes) - 1 and self._read_outside(Value(node.name), {nodes[i + 1].name}):
                return None
            previous = Value(node.name)
        return nodes if inst.outputs == [previous] else None

    def _read_outside(self, value: Value, allowed: set[str]) -> bool:
        return value in self.graph_outputs or bool(self.users.get(value, set()) - allowed)

    def chain(self, level: dict[str, Any]) -> list[Instance] | None:
        """Children of a container that run in series, each reading only the previous one's output."""
        keys = list(level)
        if not keys or keys != [str(i) for i in range(len(keys))]:
            return None
        children = [level[k].child if isinstance(level[k], Leaf) else None for k in keys]
        if any(c is None or len(c.inputs) != 1 or len(c.inputs[0]) != 1 or len(c.outputs) != 1 for c in children):
            return None
        for a, b in zip(children, children[1:]):
            if b.inputs[0][0] != a.outputs[0] or self._read_outside(a.outputs[0], b.members):
                return None
        return children

    # -- one instance ----------------------------------------------------------------------------
    def lower(self, inst: Instance) -> Body:
        body = Body(inst, tree={})
        names = VarNames()
        spread: dict[tuple[Value, ...], str] = {}
        variadic = bool(inst.info and inst.info.formals and inst.info.formals[-1].endswith("..."))
        for i, (formal, values) in enumerate(zip(inst.formals, inst.inputs)):
            if variadic and i == len(inst.formals) - 1:
                name = names.fresh(formal)
                if values:
                    spread[tuple(values)] = name
            else:
                name = names.bind(values[0], formal)
            body.args.append(name)
        self._tree(body, inst)
        access = body.access = self._access(body)
        chains = {id(c[0]): c for c in self._chains(body.tree)}
        skip: set[int] = set()
        for item in inst.items:
            if isinstance(item, Node):
                body.stmts.append(self._node_stmt(body, inst, item, names, access, spread))
            elif id(item) in chains:
                members = chains[id(item)]
                skip.update(id(c) for c in members[1:])
                container = inst.local(item.path).rsplit(".", 1)[0]
                arg = names.names[item.inputs[0][0]]
                target = names.bind(members[-1].outputs[0], container)
                body.stmts.append(Stmt([target], f"{access[container]}({arg})"))
            elif id(item) not in skip:
                body.stmts.append(self._child_stmt(inst, item, names, access, spread))
        body.returns = [names.names[v] for v in inst.outputs]
        return body

    def _tree(self, body: Body, inst: Instance) -> None:
        for item in inst.items:
            if isinstance(item, Node):
                _, _, ctor, tensor = self.lowered(item)
                local = inst.local(item.name)
                if ctor is not None:
                    leaf = Leaf("module", with_holes(body, ctor, local), node=item)
                elif tensor is not None:
                    leaf = Leaf("param", with_holes(body, tensor, local), node=item)
                else:
                    continue
                place(body.tree, local.split("."), leaf, item.name, item.location)
            else:
                local = inst.local(item.path)
                place(body.tree, local.split("."), self._child_leaf(body, item, local), item.path, None)

    def _child_leaf(self, body: Body, child: Instance, local: str) -> Leaf:
        nodes = self.as_sequential(child)
        if nodes is not None:
            parts = [with_holes(body, self.lowered(n)[2], f"{local}.{child.local(n.name)}")
                     for n in nodes]
            return Leaf("sequential", "nn.Sequential(" + ", ".join(parts) + ")", child=child)
        cls, args = self.call_of(child)
        rendered = []
        for arg, value in args:
            marker = body.hole(value)
            body.child_args[len(body.holes) - 1] = (local, arg)
            rendered.append(f"{arg}={marker}")
        return Leaf("child", f"{cls}({', '.join(rendered)})", child=child)

    def _chains(self, tree: dict[str, Any]) -> list[list[Instance]]:
        found = []
        for sub in tree.values():
            if isinstance(sub, dict):
                chain = self.chain(sub)
                if chain is not None and not any(isinstance(leaf, Leaf) and leaf.kind == "sequential"
                                                 for leaf in sub.values()):
                    found.append(chain)
                else:
                    found.extend(self._chains(sub))
        return found

    def _access(self, body: Body) -> dict[str, str]:
        """Local dotted name -> Python expression reaching that module, parameter or container;
        records each container's kind in ``body.containers``."""
        access: dict[str, str] = {}
        chained = {id(c[0]) for c in self._chains(body.tree)}

        def walk(level: dict[str, Any], expr: str, path: tuple[str, ...], kind: str) -> None:
            for seg, sub in level.items():
                here = path + (seg,)
                _check_name(seg, kind, sub, body.instance, here)
                if kind == "root" or (isinstance(sub, Leaf) and sub.kind == "param"):
                    sub_expr = attribute(expr, seg)
                elif kind in ("seq", "list"):
                    sub_expr = f"{expr}[{int(seg)}]"
                else:
                    sub_expr = f"{expr}[{literal(seg)}]"
                access[".".join(here)] = sub_expr
                if isinstance(sub, dict):
                    body.containers[here] = self._kind(sub, chained)
                    walk(sub, sub_expr, here, body.containers[here])

        walk(body.tree, "self", (), "root")
        return access

    def _kind(self, level: dict[str, Any], chained: set[int]) -> str:
        keys = list(level)
        numbered = keys == [str(i) for i in range(len(keys))]
        has_param = any(isinstance(v, Leaf) and v.kind == "param" for v in level.values())
        first = level.get("0")
        if numbered and isinstance(first, Leaf) and first.child is not None and id(first.child) in chained:
            return "seq"
        return "list" if numbered and not has_param else "dict"

    def _node_stmt(self, body: Body, inst: Instance, node: Node, names: VarNames, access: dict[str, str],
                   spread: dict[tuple[Value, ...], str]) -> Stmt:
        op, ins, _, _ = self.lowered(node)
        local = inst.local(node.name)
        args = [names.names.get(v) for v in node.inputs]
        sources = list(args)
        for values, name in spread.items():  # a variadic input passed whole: *features
            n = len(values)
            for i in range(len(node.inputs) - n + 1):
                if tuple(node.inputs[i:i + n]) == values:
                    sources[i:i + n] = [f"*{name}"]
                    break
        placeholders = [_placeholder(i) for i in range(len(sources))]
        raw = op.torch_forward(node, ins, placeholders, _MODULE if local in access else None)
        expr = with_holes(body, raw, local, forward=True)
        for ph, src in zip(placeholders, sources):
            expr = expr.replace(ph, src)
        expr = expr.replace(_MODULE, access.get(local, ""))
        targets = [names.bind(Value(node.name, k), local if k == 0 else f"{local}_{k}")
                   for k in range(len(node.outputs))]
        comments = []
        label = self.labels.get(node.name)
        if label:
            comments.append(f"skip: {label}")
        if not is_identifier(local.replace(".", "_")):
            comments.append(local)  # the variable's name hides the node's
        return Stmt(targets, expr, comments)

    def _child_stmt(self, inst: Instance, child: Instance, names: VarNames, access: dict[str, str],
                    spread: dict[tuple[Value, ...], str]) -> Stmt:
        local = inst.local(child.path)
        args = []
        declared = child.info.formals if child.info is not None and child.info.formals else ("x",)
        for formal, values in zip(declared, child.inputs):
            if not formal.endswith("..."):
                args.append(names.names[values[0]])
            else:
                whole = spread.get(tuple(values))
                args.append(whole if whole else "[" + ", ".join(names.names[v] for v in values) + "]")
        targets = [names.bind(v, local if len(child.outputs) == 1 else f"{local}_{k}")
                   for k, v in enumerate(child.outputs)]
        return Stmt(targets, f"{access[local]}({', '.join(args)})")


def _check_name(seg: str, kind: str, sub: Any, inst: Instance, path: tuple[str, ...]) -> None:
    taken = _CLASS_TAKEN if kind == "root" else _DICT_TAKEN if kind == "dict" else frozenset()
    if seg in taken:
        node = sub.node if isinstance(sub, Leaf) else None
        name = node.name if node is not None else ".".join(filter(None, (inst.path, *path)))
        owner = "the generated method" if seg in GENERATED_METHODS else \
            f"an attribute of torch.nn.{'Module' if kind == 'root' else 'ModuleDict'}"
        raise SpecError(f"name segment '{seg}' clashes with {owner}; rename the node or block",
                        node=name, location=node.location if node is not None else None)
