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

import functools
from typing import Any, Callable, Mapping

from torch import nn

from archc.errors import SpecError
from archc.ir.graph import FORMAL_INPUTS_META, Graph, Node, Value
from archc.lowering.pyformat import concatenated_lists
from archc.lowering.torch_reset import GENERATED_METHODS
from archc.lowering.torch_plan import (NAME_LIMIT, NUMBERED_NAME, Body, Instance, Leaf, Lowered, Stmt, VarNames,
                                       attribute, counts_on, place_local, spread_at, with_holes)
from archc.ops.weights import REUSE_META, TIE_META, reused_module, tied_params
from archc.pysource import is_identifier, literal

__all__ = ["BodyWriter"]

# Names a child cannot take because the class or container already has such an attribute
# (torch's add_module refuses them, or the child would hide a method such as eval).
_CLASS_TAKEN = frozenset(dir(nn.Module())) | GENERATED_METHODS
_DICT_TAKEN = frozenset(dir(nn.ModuleDict()))
_ARG = "\x01"
_MODULE = "\x02"


_NO_LABELS: Mapping[str, str] = {}


def _placeholder(i: int) -> str:
    letters = ""
    while True:
        letters = chr(ord("a") + i % 26) + letters
        i //= 26
        if not i:
            return f"{_ARG}{letters}{_ARG}"


@functools.lru_cache(maxsize=None)
def _placeholders(n: int) -> tuple[str, ...]:
    """Stand-ins for a node's input names in its op's forward text (replaced in one pass)."""
    return tuple(_placeholder(i) for i in range(n))


@functools.lru_cache(maxsize=256)
def _is_expression(text: str) -> bool:
    """Whether ``text`` is a Python expression (a few distinct texts, asked once per node that reads
    a variadic formal: compiling each costs more than the rest of the question)."""
    try:
        compile(text, "<forward>", "eval")
    except SyntaxError:
        return False
    return True


def _filled(sources: list[str]) -> dict[str, str]:
    """The letters of each placeholder (:func:`_placeholders`, without its marks) -> its input's name."""
    return dict(zip(_letters(len(sources)), sources))


@functools.lru_cache(maxsize=None)
def _letters(n: int) -> tuple[str, ...]:
    return tuple(p[1:-1] for p in _placeholders(n))


class _SequentialChoice:
    """Which instances of one graph become ``nn.Sequential`` (inline, or a subclass), decided once
    per instance and per signature; the tied parameters each instance's class assigns."""

    def __init__(self, graph: Graph, earlier: _SequentialChoice | None = None, lowered: Lowered | None = None) -> None:
        self.graph = graph
        # an earlier writer's reading of the graph, if any (or one given): it depends on the graph alone
        self.lowered = earlier.lowered if earlier is not None else lowered if lowered is not None else Lowered(graph)
        self._sequential: dict[int, tuple[list[Node | Instance] | None, bool]] = \
            earlier._sequential if earlier is not None else {}
        #: instance signature (:class:`~archc.lowering.torch_reuse.Signatures`) -> what was decided
        #: for an instance of it: (written inline?, a Sequential class?, the nodes written in module form)
        self._decided: dict[int, tuple[bool, bool, tuple[str, ...]]] = \
            earlier._decided if earlier is not None else {}
        #: (node, its parameter, owner node, owner's parameter) of every tied parameter
        # (the meta read inline, as tied_params does: a call per node otherwise)
        self.tied = [(n.name, p, owner, op) for n in self.lowered.order if TIE_META in n.meta
                     for p, (owner, op) in tied_params(n).items()]
        self.graph_outputs = {(v.node, v.out) for v in graph.outputs.values()}

    def as_sequential(self, inst: Instance, signature: int | None = None) -> list[Node | Instance] | None:
        """The items of an instance written where it is used as ``nn.Sequential(...)``: a chain
        of modules and block instances named 0, 1, ... (else None). ``signature``: the
        instance's, where known: an instance of a signature met before is decided alike."""
        return self._decide(inst, signature)[0]

    def sequential_class(self, inst: Instance) -> bool:
        """Whether the instance's class is an ``nn.Sequential`` subclass: a chain whose names
        are no Python identifiers (numbers where it needs an op's module form, ``nn.ReLU6()``;
        RegNet's ``block1-0``), which a module reaches as ``self[0]``, not ``getattr``."""
        return self._decide(inst)[1]

    def _decide(self, inst: Instance, signature: int | None = None) -> tuple[list[Node | Instance] | None, bool]:
        key = id(inst)
        found = self._sequential.get(key)
        if found is None:
            decided = self._decided.get(signature) if signature is not None else None
            if decided is None:
                items, sequential_class, forms = self._find_sequential(inst)
                if signature is not None:
                    cut = len(inst.path) + 1 if inst.path else 0
                    self._decided[signature] = (items is not None, sequential_class,
                                                tuple([n.name[cut:] for n in forms]))
            else:  # equal signatures: equal names, wiring and op texts, so the same decision
                inline, sequential_class, locals_ = decided
                prefix = inst.path + "." if inst.path else ""
                forms = [self.lowered.nodes[prefix + local] for local in locals_]
                items = inst.items if inline else None
            for node in forms:  # (only a Sequential class writes nodes in module form)
                self.lowered.write_as_module(node)
            found = self._sequential[key] = (items, sequential_class)
        return found

    def _find_sequential(self, inst: Instance) -> tuple[list[Node | Instance] | None, bool, list[Node]]:
        """Items each reading only the one before: modules called on one tensor, functional ops
        with a module form, block instances. Named 0, 1, ... and all modules or instances, they
        are written inline (torchvision's ``branch2 = nn.Sequential(BasicConv2d(...), ...)``);
        with a module form (torchvision's ``Conv2dNormActivation``) or other names that are no
        identifiers (RegNet's ``block1-0``), as an ``nn.Sequential`` class, whose nodes to write in
        module form come third. Chains named by identifiers stay classes with attributes
        (``self.conv1``). Else (None, False, [])."""
        items = inst.items
        none: tuple[None, bool, list[Node]] = (None, False, [])
        if len(inst.inputs) != 1 or len(inst.inputs[0]) != 1 or len(inst.outputs) != 1 or not items:
            return none
        cut = len(inst.path) + 1 if inst.path else 0  # the names first: most instances fail here, cheaply
        names = [(item.name if type(item) is Node else item.path)[cut:] for item in items]
        nested = any("." in name for name in names)
        if all(map(is_identifier, names)) and not _counting_up(items, names) or nested and not _numbered_groups(names):
            return none  # a class with attributes (self.conv1), or names nested in other containers
        forms = _links(self, inst, items)
        if forms is None:
            return none
        root = not inst.path  # (the model itself: a spec with `sequential: true` is one nn.Sequential)
        if names == [str(i) for i in range(len(items))] and not forms and not root:
            return items, False, []
        if (inst.info is None and not root) or self.own_ties(inst):
            return none
        return None, True, forms

    def read_outside(self, value: tuple[str, int], allowed: set[str]) -> bool:
        """Whether the value (node, output) is a graph output or read by a node not in ``allowed``."""
        return value in self.graph_outputs or not self.lowered.readers(value) <= allowed

    def chain(self, level: dict[str, Any]) -> list[Instance] | None:
        """Children of a container that run in series, each reading only the previous one's output."""
        children = self._numbered_children(level)
        if children is None or any(len(c.inputs) != 1 or len(c.inputs[0]) != 1 or len(c.outputs) != 1
                                   for c in children):
            return None
        return children if self._in_series(children) else None

    def threaded(self, level: dict[str, Any]) -> list[Instance] | None:
        """Children of a container that run in series with other inputs besides (a decoder layer's
        ``memory``): each reads the one before's output first, then the same values as the others."""
        children = self._numbered_children(level)
        if children is None or len(children) < 2 or any(
                c.info is None or c.info.variadic or c.info.formal_inputs or len(c.outputs) != 1
                or len(c.inputs) < 2 or any(len(values) != 1 for values in c.inputs) for c in children):
            return None
        if any(b.inputs[1:] != children[0].inputs[1:] for b in children[1:]):
            return None
        return children if self._in_series(children) else None

    @staticmethod
    def _numbered_children(level: dict[str, Any]) -> list[Instance] | None:
        """The child instances of a container numbered 0, 1, ...; None where it holds anything else."""
        keys = list(level)
        if not keys or keys != [str(i) for i in range(len(keys))]:
            return None
        children = [level[k].child if isinstance(level[k], Leaf) else None for k in keys]
        return None if any(c is None for c in children) else children

    def _in_series(self, children: list[Instance]) -> bool:
        """Whether each child's first input is the one before's output, which nothing else reads."""
        for a, b in zip(children, children[1:]):
            made = a.outputs[0]
            if b.inputs[0][0] != made or self.read_outside((made.node, made.out), b.members):
                return False
        return True

    def own_ties(self, inst: Instance) -> list[tuple[str, str, str, str]]:
        """Tied parameters whose node and owner both lie in ``inst`` but not both in one child:
        this instance's class assigns them (so a block that ties inside itself does it itself)."""
        if not self.tied:
            return []
        children = [c for c in inst.items if isinstance(c, Instance)]
        return [tie for tie in self.tied if tie[0] in inst.members and tie[2] in inst.members
                and not any(tie[0] in c.members and tie[2] in c.members for c in children)]



class BodyWriter(_SequentialChoice):
    """Lowers instances of one graph; ``call_of(child)`` gives a child's class constructor call as
    (class name, [(argument, value, default)]) once that child's class is known."""

    def __init__(self, graph: Graph, labels: Mapping[str, str],
                 call_of: Callable[[Instance], tuple[str, list[tuple[str, Any, Any]]]],
                 earlier: BodyWriter | None = None, lowered: Lowered | None = None) -> None:
        super().__init__(graph, earlier, lowered)
        self.labels = labels
        self.call_of = call_of
        self._labels_within: dict[str, dict[str, str]] | None = None

    # -- one instance ----------------------------------------------------------------------------
    def lower(self, inst: Instance) -> Body:
        body = Body(inst, tree={}, sequential=self.sequential_class(inst))
        names = VarNames(self.lowered.reserved)
        spread: dict[tuple[Value, ...], str] = {}
        variadic = inst.info is not None and inst.info.variadic
        whole = self.spread_values(inst) if variadic else None
        for i, (formal, values) in enumerate(zip(inst.formals, inst.inputs)):
            if variadic and i == len(inst.formals) - 1:
                name = names.fresh(formal)
                if whole:
                    spread[whole] = name
                for k, v in enumerate(values):  # (each tensor of it, where a node reads it on its own)
                    names.names.setdefault((v.node, v.out), f"{name}[{k}]")
            elif (values[0].node, values[0].out) in names.names:  # (one tensor passed again: read by name)
                name = names.fresh(formal)
            else:
                name = names.bind((values[0].node, values[0].out), formal)
            body.args.append(name)
        reused = self.reused(inst)
        self._tree(body, inst, reused)
        chains = {id(c[0]): c for c in self._chains(body.tree)}
        threads = {id(c[0]): c for c in self._threads(body.tree)}
        access = body.access = self._access(body, chains)
        for local, owner in reused.items():  # (a layer applied again calls its owner's module)
            access[local] = access[owner]
        skip: set[int] = set()
        unread = self.unread(inst)
        for item in inst.items:
            if (item.name if type(item) is Node else item.path) in unread:
                continue
            if isinstance(item, Node):
                stmt = self._node_stmt(body, inst, item, names, access, spread)
                if stmt is not None:
                    body.stmts.append(stmt)
            elif id(item) in chains:
                members = chains[id(item)]
                skip.update(id(c) for c in members[1:])
                container = inst.local(item.path).rsplit(".", 1)[0]
                read, made = item.inputs[0][0], members[-1].outputs[0]
                arg = names.names[(read.node, read.out)]
                target = names.bind((made.node, made.out), container)
                body.stmts.append(Stmt([target], f"{access[container]}({arg})"))
            elif id(item) in threads:
                members = threads[id(item)]
                skip.update(id(c) for c in members[1:])
                body.stmts.append(_loop_stmt(inst, members, names, access))
            elif id(item) not in skip:
                body.stmts.append(self._child_stmt(body, inst, item, names, access, spread))
        body.returns = [names.names[(v.node, v.out)] for v in inst.outputs]
        body.ties = [_tie(access, inst.local(node), param, inst.local(owner), owner_param)
                     for node, param, owner, owner_param in self.own_ties(inst) if inst.local(node) not in reused]
        return body

    def reused(self, inst: Instance) -> dict[str, str]:
        """The nodes of ``inst`` that apply an earlier node's layer again (:func:`reused_module`), local
        name -> the owner's: no module of their own."""
        if not self.tied:
            return {}
        graph, found = self.lowered.graph, {}
        for item in inst.items:
            if type(item) is Node and REUSE_META in item.meta:
                owner = reused_module(graph, item)
                if owner is not None and owner in inst.members:
                    found[inst.local(item.name)] = inst.local(owner)
        return found

    def unread(self, inst: Instance) -> set[str]:
        """The nodes and child instances (by name and path) of ``inst`` whose results nothing it
        returns depends on: a block output no one reads (WaveNet's last residual sum). forward does
        not compute them (an unused local, work thrown away); their modules stay in the tree, so
        the state_dict is the spec's whatever an instance's outputs."""
        needed = {v.node for v in inst.outputs}
        unread = set()
        for item in reversed(inst.items):
            if type(item) is Node:
                if item.name in needed or not item.outputs:
                    needed.update(v.node for v in item.inputs)
                else:
                    unread.add(item.name)
            elif any(v.node in needed for v in item.outputs):
                needed.update(v.node for values in item.inputs for v in values)
            else:
                unread.add(item.path)
        return unread

    def _tree(self, body: Body, inst: Instance, reused: Mapping[str, str]) -> None:
        tree, lowered = body.tree, self.lowered
        cut = len(inst.path) + 1 if inst.path else 0
        for item in inst.items:
            if type(item) is Node:
                op, ins, ctor, tensor = lowered(item)
                local = item.name[cut:]
                if local in reused:
                    continue
                if ctor is not None:
                    leaf = Leaf("module", with_holes(body, ctor, local), node=item)
                elif tensor is not None:
                    own = op.params(item, ins).get("")
                    # (a tensor's initial values stay text: its reset statement repeats them)
                    leaf = Leaf("param", with_holes(body, tensor, local, floats=False), node=item,
                                buffer=own is not None and own.buffer)
                else:
                    continue
                place_local(tree, local, leaf, item.name, item.location)
            else:
                local = item.path[cut:]
                place_local(tree, local, self._child_leaf(body, item, local), item.path, None)

    def _child_leaf(self, body: Body, child: Instance, local: str) -> Leaf:
        items = self.as_sequential(child)
        if items is not None:
            parts = [with_holes(body, self.lowered(n)[2], f"{local}.{child.local(n.name)}") if isinstance(n, Node)
                     else self._child_leaf(body, n, f"{local}.{child.local(n.path)}").source for n in items]
            return Leaf("sequential", "nn.Sequential(" + ", ".join(parts) + ")", child=child)
        cls, args = self.call_of(child)
        rendered = []
        for arg in args:
            marker = body.hole(arg.value)
            body.child_args[len(body.holes) - 1] = (local, arg.name, arg.default)
            if arg.dim_of is not None:
                body.child_dims[len(body.holes) - 1] = arg.dim_of
            rendered.append(f"{arg.keyword or arg.name}={marker}")
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

    def _threads(self, tree: dict[str, Any]) -> list[list[Instance]]:
        """The tree's containers of children that :meth:`threaded` runs in series (never a chain,
        which an ``nn.Sequential`` calls: a chain's children read one input, these two or more)."""
        found = []
        for sub in tree.values():
            if isinstance(sub, dict):
                thread = self.threaded(sub)
                found += [thread] if thread is not None else self._threads(sub)
        return found

    def _access(self, body: Body, chained: Mapping[int, Any]) -> dict[str, str]:
        """Local dotted name -> Python expression reaching that module, parameter or container;
        records each container's kind in ``body.containers``. ``chained``: the first children of
        the tree's chains (:meth:`_chains`), by id."""
        access: dict[str, str] = {}
        _walk_access(self, body, chained, access, body.tree, "self", (), "root")
        return access

    def _kind(self, level: dict[str, Any], chained: Mapping[int, Any]) -> str:
        keys = list(level)
        numbered = keys == [str(i) for i in range(len(keys))]
        has_param = any(isinstance(v, Leaf) and v.kind == "param" for v in level.values())
        first = level.get("0")
        if numbered and isinstance(first, Leaf) and first.child is not None and id(first.child) in chained:
            return "seq"
        return "list" if numbered and not has_param else "dict"

    def _node_stmt(self, body: Body, inst: Instance, node: Node, names: VarNames, access: dict[str, str],
                   spread: dict[tuple[Value, ...], str]) -> Stmt | None:
        """The node's forward statement; None for a parameter or buffer read once, which its reader
        reads as the attribute (``self.weight * normed``), not through an alias line before it."""
        local = inst.local(node.name)
        sources = [names.names.get((v.node, v.out)) for v in node.inputs]
        for slot, formal in node.meta.get(FORMAL_INPUTS_META, {}).items():  # a tensor passed in twice
            sources[slot] = _formal_arg(body, inst, formal)
        for values, name in spread.items():  # a variadic input passed whole: *features
            at = spread_at(node.inputs, values)
            if at is not None:
                sources[at:at + len(values)] = [f"*{name}"]
        raw = self.forward_text(node, local in access, next(iter(spread), None))
        if raw == _MODULE and self._read_once(inst, node.name):  # (an attribute is an atom: no brackets)
            names.names[(node.name, 0)] = access[local]
            return None
        expr = with_holes(body, raw, local, forward=True)
        if _ARG in expr:
            # each placeholder is _ARG, letters, _ARG (no other text has _ARG): every second
            # piece between the marks names an input
            parts = expr.split(_ARG)
            filled = _filled(sources)
            parts[1::2] = [filled[letters] for letters in parts[1::2]]
            expr = "".join(parts)
            if "[*" in expr or ", *" in expr:  # [x, *rest]: [x] + rest (TorchScript cannot size a starred list)
                expr = concatenated_lists(expr)
        expr = expr.replace(_MODULE, access.get(local, ""))
        ports = self.lowered(node)[0].output_names(node) if len(node.outputs) > 1 else ()
        targets = [names.bind((node.name, k), local if k == 0 else _output_local(local, k, ports))
                   for k in range(len(node.outputs))]
        return Stmt(self.lowered.targets(node, targets), expr, self.comments(node.name, local), local)

    def _read_once(self, inst: Instance, name: str) -> bool:
        """Whether the forward of ``inst`` reads node ``name``'s one output once: in one input slot
        of one node inside it (a child's call passes it once), or only in its return. Counted
        within the instance, so that every instance of a block decides alike."""
        nodes = self.lowered.nodes
        slots = sum(1 for reader in self.lowered.readers((name, 0)) if reader in inst.members
                    for value in nodes[reader].inputs if value.node == name)
        return slots + sum(1 for value in inst.outputs if value.node == name) == 1

    def spread_values(self, inst: Instance) -> tuple[Value, ...] | None:
        """The values of the instance's variadic formal, passed whole where a node reads them
        all in a row (``torch.cat(features)``); None if it has none."""
        variadic = inst.info is not None and inst.info.variadic
        last = len(inst.formals) - 1
        if not variadic or last >= len(inst.inputs) or not inst.inputs[last]:
            return None
        values = tuple(inst.inputs[last])
        # (passed whole only where every node reading them in a row can take them starred: an
        # `a + b` reads a tensor of them each, by its index)
        readers = [item for item in inst.items if type(item) is Node and spread_at(item.inputs, values) is not None]
        return values if all(self._takes_starred(node, values) for node in readers) else None

    def _takes_starred(self, node: Node, values: tuple[Value, ...]) -> bool:
        """Whether ``node``'s forward text is Python with ``values`` (read in a row) passed as ``*name``."""
        at = spread_at(node.inputs, values)
        parts = self.forward_text(node, True, values).replace(_MODULE, "m").split(_ARG)
        letters = _letters(len(node.inputs) - len(values) + 1)
        parts[1::2] = ["*s" if piece == letters[at] else "a" for piece in parts[1::2]]
        return _is_expression("".join(parts))

    def forward_text(self, node: Node, has_module: bool, spread: tuple[Value, ...] | None) -> str:
        """The op's forward text for ``node``, its inputs as placeholders (the variadic values,
        where it reads them all in a row, as one), its module as a marker."""
        count = len(node.inputs)
        if spread and spread_at(node.inputs, spread) is not None:
            count -= len(spread) - 1
        return self.lowered.forward_text(node, _placeholders(count), _MODULE if has_module else None)

    def labels_within(self, path: str) -> Mapping[str, str]:
        """The skip labels of the nodes inside the block instance at ``path`` (nested ones too),
        by their names local to it; worked out for every instance at once, on first asking."""
        if self._labels_within is None:
            self._labels_within = _labels_by_instance(self.labels, self.lowered.nodes)
        return self._labels_within.get(path, _NO_LABELS)

    def comments(self, name: str, local: str) -> list[str]:
        comments = []
        label = self.labels.get(name)
        if label:
            comments.append(f"skip: {label}")
        if not is_identifier(local.replace(".", "_")) and not local.isdigit() or len(local) > NAME_LIMIT:
            # the variable's name hides the node's (not a number's: `_3` is 3), or shortens it
            comments.append(local)
        return comments

    def _child_stmt(self, body: Body, inst: Instance, child: Instance, names: VarNames, access: dict[str, str],
                    spread: dict[tuple[Value, ...], str]) -> Stmt:
        local = inst.local(child.path)
        args = []
        declared = child.info.formals if child.info is not None and child.info.formals else ("x",)
        named = dict(child.info.formal_inputs) if child.info is not None else {}  # (a tensor passed in twice)
        for k, (formal, values) in enumerate(zip(declared, child.inputs)):
            if k in named:
                args.append(_formal_arg(body, inst, named[k]))
            elif not formal.endswith("..."):
                args.append(names.names[(values[0].node, values[0].out)])
            else:
                whole = spread.get(tuple(values))
                args.append(whole if whole else "[" + ", ".join([names.names[(v.node, v.out)] for v in values]) + "]")
        targets = [names.bind((v.node, v.out), local if len(child.outputs) == 1 else f"{local}_{k}")
                   for k, v in zip(child.spec_indices, child.outputs)]
        return Stmt(targets, f"{access[local]}({', '.join(args)})")


def _loop_stmt(inst: Instance, members: list[Instance], names: VarNames, access: Mapping[str, str]) -> Stmt:
    """A loop over ``members``, the children of one container threaded in series
    (:meth:`~_SequentialChoice.threaded`): ``layers = x``, then ``for layer in self.layers: layers =
    layer(layers, memory)``, as PyTorch's own ``TransformerDecoder`` runs its layers."""
    container = inst.local(members[0].path).rsplit(".", 1)[0]
    first = members[0].inputs[0][0]
    others = tuple(names.names[(values[0].node, values[0].out)] for values in members[0].inputs[1:])
    arg = names.names[(first.node, first.out)]
    made = members[-1].outputs[0]
    target = names.bind((made.node, made.out), container)
    return Stmt([target], access[container], loop=(names.fresh("layer"), arg, others))


def _output_local(local: str, k: int, ports: tuple[str, ...]) -> str:
    """The variable of output ``k`` (> 0) of node ``local``: after its port (``gru_h_n``, ``pool_indices``)
    where the op names its outputs by meaning, else its number (a split's ``y1``: ``out_1``)."""
    port = ports[k] if k < len(ports) else ""
    return f"{local}_{port}" if is_identifier(port) and not port[-1].isdigit() else f"{local}_{k}"


def _formal_arg(body: Body, inst: Instance, formal: str) -> str:
    """The argument name of the block input ``formal`` in the body's ``forward`` (where a tensor passed
    in twice is read by the block input the spec names, not by the tensor's first)."""
    return body.args[inst.formals.index(formal)]


def _walk_access(writer: BodyWriter, body: Body, chained: Mapping[int, Any], access: dict[str, str],
                 level: dict[str, Any], expr: str, path: tuple[str, ...], kind: str) -> None:
    """:meth:`BodyWriter._access` for one level of the module tree (a function, not a closure
    that calls itself: that would be a reference cycle, kept until a collection)."""
    for position, (seg, sub) in enumerate(level.items()):
        here = path + (seg,)
        _check_name(seg, kind, sub, body.instance, here)
        if kind == "root" and body.sequential:  # an nn.Sequential class: by position
            sub_expr = f"self[{position}]"
        elif kind == "root" or (isinstance(sub, Leaf) and sub.kind == "param"):
            sub_expr = attribute(expr, seg)
        elif kind in ("seq", "list"):
            sub_expr = f"{expr}[{int(seg)}]"
        else:
            sub_expr = f"{expr}[{literal(seg)}]"
        access[".".join(here)] = sub_expr
        if isinstance(sub, dict):
            body.containers[here] = writer._kind(sub, chained)
            _walk_access(writer, body, chained, access, sub, sub_expr, here, body.containers[here])


def _counting_up(items: list[Node | Instance], names: list[str]) -> bool:
    """Whether ``items`` are the repetitions of one ``repeat:`` named by one pattern counting up (ViT's
    ``encoder_layer_0``, ``encoder_layer_1``, ...): an ``nn.Sequential`` class adds them in a loop, as
    torchvision's ViT builds its encoder's layers."""
    if len(items) < 2 or any(type(item) is Node or item.info is None for item in items):
        return False
    # (one spec node made them all: `d1` and `d2` written apart stay attributes)
    made_by = {(item.info.block, item.info.location) for item in items}
    if len(made_by) != 1 or None in next(iter(made_by)):
        return False
    return NUMBERED_NAME.match(names[0]) is not None and all(map(counts_on, names, names[1:]))


def _numbered_groups(names: list[str]) -> bool:
    """Whether the local names number an ``nn.Sequential`` whose children are items or
    ``nn.Sequential``s of items in series: ``0``, ``1.0``, ``1.1``, ``2`` (ConvNeXt's features:
    its stem, a stage of blocks, a downsampling layer), each number once, in order."""
    groups: list[list[str]] = []
    for name in names:
        head, _, rest = name.partition(".")
        if not head.isdigit() or (rest and not rest.isdigit()):
            return False
        if groups and groups[-1][0] == head:
            groups[-1].append(rest)
        else:
            groups.append([head, rest])
    return [g[0] for g in groups] == [str(i) for i in range(len(groups))] and all(
        g[1:] == [""] or g[1:] == [str(i) for i in range(len(g) - 1)] for g in groups)


def _links(writer: _SequentialChoice, inst: Instance, items: list[Node | Instance]) -> list[Node] | None:
    """The functional nodes of ``items`` to write in their module form where each item reads
    only the one before it, and only the next reads it; else None. Values are compared as
    (node, output) pairs: a Value's own == is a Python-level call."""
    first = inst.inputs[0][0]
    previous, forms, last = (first.node, first.out), [], len(items) - 1
    for i, item in enumerate(items):
        if type(item) is Node:
            reads = item.inputs
            if len(reads) != 1 or (reads[0].node, reads[0].out) != previous or not _link(writer.lowered, item, forms):
                return None
            output = (item.name, 0)
        else:
            reads = [v for values in item.inputs for v in values]
            if len(reads) != 1 or (reads[0].node, reads[0].out) != previous or len(item.outputs) != 1 \
                    or len(item.inputs) != 1 \
                    or (item.info is not None and item.info.variadic):
                return None
            output = (item.outputs[0].node, item.outputs[0].out)
        if i < last:
            after = items[i + 1]
            if writer.read_outside(output, {after.name} if type(after) is Node else after.members):
                return None
        previous = output
    made = inst.outputs[0]
    return forms if (made.node, made.out) == previous else None


def _link(lowered: Lowered, node: Node, forms: list[Node]) -> bool:
    """Whether ``node`` can be a link of a chain of modules (noted in ``forms`` where that
    takes its op's module form): a module called on its one input, or a functional op
    with a module form."""
    _, _, ctor, tensor = lowered(node)
    if len(node.outputs) != 1 or tensor is not None:
        return False
    if node.name in lowered.as_module:
        return True
    if ctor is None:
        if not lowered.has_module_form(node):
            return False
        forms.append(node)
        return True
    return lowered.forward_text(node, ("a",), "m") == "m(a)"


def _labels_by_instance(labels: Mapping[str, str], nodes: Mapping[str, Node]) -> dict[str, dict[str, str]]:
    """Instance path -> {name local to it: skip label} of every labelled node inside it."""
    found: dict[str, dict[str, str]] = {}
    for name, label in labels.items():
        node = nodes.get(name)
        for info in node.scope if node is not None else ():
            found.setdefault(info.path, {})[name[len(info.path) + 1:]] = label
    return found


def _tie(access: Mapping[str, str], node: str, param: str, owner: str, owner_param: str) -> tuple[str, str, str]:
    """(module, parameter, source) of ``self.lm_head.weight = self.wte.weight``: the node's parameter is
    the owner's tensor (a parameter-only node is a parameter of its parent)."""
    source = _reach(access, owner) if not owner_param else _param_access(_reach(access, owner), owner_param)
    if param:  # a module's parameter (``out_proj.weight``: a parameter of the module's own child)
        within, _, leaf = param.rpartition(".")
        return (_param_access(_reach(access, node), within) if within else _reach(access, node)), leaf, source
    parent, _, leaf = node.rpartition(".")  # a parameter-only node: the parameter of its parent module
    return (_reach(access, parent) if parent else "self"), leaf, source


def _reach(access: Mapping[str, str], name: str) -> str:
    """The expression reaching local ``name``: its own, or (inside a child instance, whose own
    layout is its class's business) the nearest known owner's, then one attribute a segment."""
    segments = name.split(".")
    for cut in range(len(segments), -1, -1):
        expr = access.get(".".join(segments[:cut])) if cut else "self"
        if expr is not None:
            for seg in segments[cut:]:
                expr = attribute(expr, seg)
            return expr
    raise AssertionError("unreachable: the loop ends at 'self'")


def _param_access(module: str, param: str) -> str:
    """The expression for ``module``'s attribute at the dotted path ``param``, a segment at a time."""
    for part in param.split("."):
        module = attribute(module, part)
    return module


def _check_name(seg: str, kind: str, sub: Any, inst: Instance, path: tuple[str, ...]) -> None:
    taken = _CLASS_TAKEN if kind == "root" else _DICT_TAKEN if kind == "dict" else frozenset()
    if seg in taken:
        node = sub.node if isinstance(sub, Leaf) else None
        name = node.name if node is not None else ".".join(filter(None, (inst.path, *path)))
        owner = "the generated method" if seg in GENERATED_METHODS else \
            f"an attribute of torch.nn.{'Module' if kind == 'root' else 'ModuleDict'}"
        raise SpecError(f"name segment '{seg}' clashes with {owner}; rename the node or block",
                        node=name, location=node.location if node is not None else None)
