"""Methods of the generated classes for models built without memory and sharded per block.

A generated model can be constructed on PyTorch's meta device (``with torch.device("meta"):
model = Model()``: every layer and declared tensor gets its shape and no storage) and
materialised with ``model.to_empty(device=...)``, whose tensors then hold whatever memory held.
Each generated class draws its *own* parameters and buffers afresh with ``reset_parameters()``:
those of its layers and declared tensors, not those of its child blocks, which are classes with
their own (each op says how: :meth:`archc.ops.base.OpDef.torch_reset`). Each class first
re-ties the shared weights it holds (``to_empty`` separates them). The model's ``block_instances()`` lists the
spec's block instances innermost first, then the model itself: the units to reset, and the
units FSDP2's ``fully_shard`` shards (inner ones before the modules holding them).
"""
from __future__ import annotations

import functools
import re
from typing import Callable, Collection, Sequence

from archc.ir.graph import Node
from archc.ir.names import Namespace
from archc.lowering.pyformat import LINE_LENGTH, MAX_LINE, split_statement
from archc.lowering.torch_plan import ARGUMENT_LIMIT, RESERVED, RESET_OWN, Body, Instance, Lowered, bare, fill_resets
from archc.pysource import identifier, is_identifier, literal, shortened

__all__ = ["GENERATED_METHODS", "reset_key", "reset_statements", "reset_method", "block_instances_method", "tie_lines"]

#: methods every generated class has: no module or parameter of a class may take these names
GENERATED_METHODS = frozenset({"reset_parameters", "block_instances"})
_I = "    "
_NAME = re.compile(r"[A-Za-z_]\w*")
#: per module that resets: (its op's reset statements with a marker for the module, its expression)
Resets = list[tuple[tuple[str, ...], str]]


def _body_resets(body: Body, lowered: Lowered, sequential: Callable[[Instance], list[Node | Instance] | None],
                 leaves: dict[int, list[tuple[bool, str, str]]]) -> Resets:
    """The reset statements of one instance's own modules and tensors, in module-tree order, as
    (the op's texts with a marker for the module, the module's expression) pairs. The module
    tree may be another instance's of the same shape (a body reused with other numbers): the
    nodes and children are this instance's, found by their local names. ``leaves``: each
    module tree's leaves that reset, by ``id(tree)``, filled on first use."""
    out: Resets = []
    inst = body.instance
    prefix = inst.path + "." if inst.path else ""
    found = leaves.get(id(body.tree))
    if found is None:
        found = leaves[id(body.tree)] = _resetting_leaves(body)
    nodes, reset_texts = lowered.nodes, lowered.reset_texts
    for in_sequential, local, access in found:
        if not in_sequential:
            out.append((reset_texts(nodes[prefix + local]), access))
        else:  # a block instance written as nn.Sequential: no class
            child = next(c for c in inst.children if c.path == prefix + local)
            _sequential_resets(child, access, lowered, sequential, out)
    return out


def _resetting_leaves(body: Body) -> list[tuple[bool, str, str]]:
    """(an nn.Sequential child?, local name, module expression) of each leaf of the body's module
    tree that resets, in tree order: its modules and tensors, and its nn.Sequential children."""
    found: list[tuple[bool, str, str]] = []
    _walk_leaves(body.tree, (), body.access, found)
    return found


def _walk_leaves(level: dict, path: tuple[str, ...], access: dict[str, str], found: list[tuple[bool, str, str]]) -> None:
    for seg, sub in level.items():
        here = path + (seg,)
        if isinstance(sub, dict):
            _walk_leaves(sub, here, access, found)
        elif sub.kind in ("module", "param", "sequential"):
            local = ".".join(here)
            found.append((sub.kind == "sequential", local, access[local]))


def _sequential_resets(instance: Instance, access: str, lowered: Lowered,
                       sequential: Callable[[Instance], list[Node | Instance] | None],
                       out: Resets) -> None:
    for i, item in enumerate(sequential(instance) or ()):
        if isinstance(item, Node):
            out.append((lowered.reset_texts(item), f"{access}[{i}]"))
        else:  # a block instance: a class resets itself, a nested nn.Sequential has no class
            _sequential_resets(item, f"{access}[{i}]", lowered, sequential, out)


def reset_key(body: Body, lowered: Lowered, sequential: Callable[[Instance], list[Node | Instance] | None]) -> str:
    """What an instance's resets require of its class: its statements, a layer that resets itself and
    one that holds nothing to reset (a flag left its parameters out) written alike, since one
    ``reset_parameters()`` call serves both (:func:`reset_statements`). Instances with other keys
    cannot share a class (a buffer's reset that writes its window's size)."""
    return "\n".join(f"{module}.*" if _own_or_none(texts) else "\n".join(fill_resets(texts, module))
                     for texts, module in _body_resets(body, lowered, sequential, {}))


def _own_or_none(texts: tuple[str, ...]) -> bool:
    """Whether a layer's reset is its own ``reset_parameters()`` or nothing: one call serves both."""
    return texts in ((), RESET_OWN)


def _statements(texts: Resets) -> list[str]:
    return [statement for node_texts, module in texts for statement in fill_resets(node_texts, module)]


def reset_statements(bodies: Sequence[Body], lowered: Lowered,
                     sequential: Callable[[Instance], list[Node | Instance] | None]) -> Resets:
    """The statements of one class's ``reset_parameters``, serving every instance it serves (the
    planner gives instances one class only where their :func:`reset_key` is the same), as (an op's
    statements with a marker for its module, the module's expression) pairs."""
    leaves: dict[int, list[tuple[bool, str, str]]] = {}
    texts = _body_resets(bodies[0], lowered, sequential, leaves)
    first = _statements(texts)
    seen = {id(bodies[0].holes)}
    for body in bodies[1:]:
        if id(body.holes) in seen:  # a body reused whole: an instance of the same signature
            continue
        seen.add(id(body.holes))
        other = _body_resets(body, lowered, sequential, leaves)
        if other != texts and _statements(other) != first:  # equal pairs: equal statements
            merged = _either_resets(texts, other)
            assert merged is not None, f"{body.instance.path} resets otherwise than its class (see reset_key)"
            texts, first = merged, _statements(merged)
    return [(node_texts, module) for node_texts, module in texts if node_texts]


def _either_resets(ours: Resets, theirs: Resets) -> Resets | None:
    """Two instances' resets, the same module by module, where they differ only in layers that reset
    themselves in one instance and hold nothing to reset in the other (a flag left a layer's
    parameters out: a LayerNorm without ``elementwise_affine``): such a layer's own
    ``reset_parameters()`` serves both. None where they differ otherwise."""
    if len(ours) != len(theirs):
        return None
    merged: Resets = []
    for (mine, module), (other, their_module) in zip(ours, theirs):
        if module != their_module:
            return None
        if mine != other and fill_resets(mine, module) != fill_resets(other, module):
            if not (_own_or_none(mine) and _own_or_none(other)):
                return None
            mine = RESET_OWN
        merged.append((mine, module))
    return merged


def tie_lines(ties: Sequence[tuple[str, str, str]], indent: str, taken: Collection[str] = ()) -> list[str]:
    """The lines at ``indent`` of weight-tying statements ``module.param = source`` (``setattr`` where
    the name is a number). One too long for a line reads its source into a local first (ruff would
    split it inside a subscript, ``self.layer[0]`` over three lines), and its module into another
    where that is still too long (:func:`aliased`); ``taken``: names those locals must not clobber
    (the constructor's arguments)."""
    lines: list[str] = []
    local = next(n for n in ("tied", *(f"tied_{k}" for k in range(1, len(taken) + 2))) if n not in taken)
    looped = _repetition_loop(ties, indent, taken)
    if looped is not None:
        return looped
    names = Namespace({*taken, local, *RESERVED})
    for module, leaf, source in ties:
        if bare(leaf) and len(indent) + len(f"{module}.{leaf} = {source}") > LINE_LENGTH:
            lines += split_statement(f"{local} = {source}", indent)
            source = local
        lines += aliased(module, functools.partial(_tie_assignment, leaf=leaf, source=source), indent, names,
                         target=True)
    return lines


def _tie_assignment(module: str, leaf: str, source: str) -> list[str]:
    """``module.leaf = source``, or ``setattr`` where ``leaf`` is no bare attribute (a number)."""
    return [f"{module}.{leaf} = {source}" if bare(leaf) else f"setattr({module}, {literal(leaf)}, {source})"]


_ATTRIBUTES = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")  # self.a.b: no call, no subscript
_MODULE_WORD = re.compile(r'\.([A-Za-z_]\w*)|"([^"\\]*)"')  # an attribute, or a name given as a string


def aliased(module: str, statements: Callable[[str], list[str]], indent: str, names: Namespace,
            target: bool = False) -> list[str]:
    """The lines at ``indent`` of ``statements(module)`` (``module``: the expression reaching a
    module), or those of ``statements(alias)`` after ``alias = module`` where a local is needed: a
    line would pass MAX_LINE columns (ruff splits no attribute chain: ``self.<a long name>.
    parametrizations.weight.original0``), or ``module`` holds brackets (``getattr(self, "<a long
    name>")``, ``self.layer[1]``) and would be split or stand in a line too long, or, ``target``
    (the statements assign to an attribute of ``module``), in a statement split at all: ruff then
    writes the chain after it one link a line, or splits the target's brackets before the value's,
    which archc does not. The alias is named after the module's first word (``conv``), taken from
    ``names`` (every name the method reads)."""
    texts = statements(module)
    lines = [line for statement in texts for line in split_statement(statement, indent)]
    bracketed = not _ATTRIBUTES.fullmatch(module)
    if all(len(line) <= (LINE_LENGTH if bracketed else MAX_LINE) for line in lines) and (
            len(lines) == len(texts)  # (each statement a line: the module whole in it)
            or not (target and bracketed)
            and sum(line.count(module) for line in lines) == sum(text.count(module) for text in texts)):
        return lines
    words = [a or b for a, b in _MODULE_WORD.findall(module)]
    word = identifier(words[-1]).strip("_").split("_")[0] if words else ""
    alias = names.take(word if len(word) > 1 and word not in RESERVED else "module")
    return split_statement(f"{alias} = {module}", indent) + [
        line for statement in statements(alias) for line in split_statement(statement, indent)]


def reset_method(statements: Resets, ties: Sequence[tuple[str, str, str]]) -> list[str]:
    """``def reset_parameters(self)`` at class depth: its docstring, re-tying ``ties``, then
    ``statements`` (:func:`reset_statements`' pairs, each split as ruff formats it, a long-named
    module read through a local where it must be: :func:`aliased`). A class with nothing of its own
    to draw keeps the method, which block_instances() callers call on every block, with one line
    saying so."""
    if not statements and not ties:
        return [_I + "def reset_parameters(self) -> None:",
                _I * 2 + '"""Nothing to draw: this block holds no parameters or buffers of its own."""']
    lines = [_I + "def reset_parameters(self) -> None:",
             _I * 2 + '"""Draw this block\'s own parameters and buffers afresh, as construction does',
             _I * 2 + "(not its child blocks': each has its own). After to_empty() on a model built",
             _I * 2 + 'on the meta device, call it on every module of block_instances()."""']
    if ties:
        lines.append(_I * 2 + "# to_empty() gave each name of a tied weight its own tensor: one again")
    lines += tie_lines(ties, _I * 2)
    # (an alias takes no name the statements read, ``bound``, ``fan_in``, nor one the ties wrote)
    names = Namespace({*RESERVED, *_NAME.findall(" ".join([*lines, *(t for texts, _ in statements for t in texts)]))})
    for texts, module in statements:
        lines += aliased(module, functools.partial(fill_resets, texts), _I * 2, names)
    return lines


def block_instances_method(classes: dict[str, list[str]]) -> list[str]:
    """The model's ``def block_instances(self, *blocks)`` at class depth; ``classes``: spec
    block -> the classes written for it."""
    body = ["classes: dict[str, list[type[nn.Module]]] = {}"]
    body += [f"classes[{literal(block)}] = [{', '.join(names)}]" for block, names in classes.items()]
    body += [
        "unknown = [b for b in blocks if b not in classes]",
        "if unknown:",
        '    raise ValueError(f"no block {unknown[0]!r}; the blocks are {sorted(classes)}")',
        "wanted = tuple(c for b in blocks or classes for c in classes[b])",
        "found = [(name, m) for name, m in self.named_modules() if isinstance(m, wanted)]",
        'found.sort(key=lambda item: -item[0].count("."))  # deeper first, else in order',
        "return [m for _, m in found] + [self]",
    ]
    lines = [_I + "def block_instances(self, *blocks: str) -> list[nn.Module]:",
             _I * 2 + '"""The instances of the spec\'s blocks (those named, default all), innermost',
             _I * 2 + "first, then the model itself: reset_parameters() each after to_empty(), or",
             _I * 2 + 'shard each with FSDP2: for m in model.block_instances(): fully_shard(m)"""']
    for statement in body:
        indent = len(statement) - len(statement.lstrip())
        lines += split_statement(statement.lstrip(), _I * 2 + " " * indent)
    return lines


#: a tied module inside a repetition of a module list: ``self.layer[2].attention``
_IN_REPETITION = re.compile(r"^(?P<container>.+?)\[(?P<index>\d+)\](?P<rest>.*)$")


def _repetition_loop(ties: Sequence[tuple[str, str, str]], indent: str, taken: Collection[str]) -> list[str] | None:
    """The ties of ``repeat: n, tie: layer.0`` as one loop over the repetitions after the first
    (``for layer in self.layer[1:]: layer.ffn.weight = self.layer[0].ffn.weight``), where ``ties``
    are exactly that: every repetition 1..n-1 of one list tied, parameter for parameter, to repetition
    0; None otherwise (each tie is then a line of its own)."""
    per_index: dict[int, list[tuple[str, str]]] = {}
    container = None
    for module, leaf, source in ties:
        found = _IN_REPETITION.match(module)
        if found is None or not bare(leaf) or container not in (None, found["container"]):
            return None
        container, rest = found["container"], found["rest"]
        if source != f"{container}[0]{rest}.{leaf}":
            return None
        per_index.setdefault(int(found["index"]), []).append((rest, leaf))
    if container is None or sorted(per_index) != list(range(1, len(per_index) + 1)) or len(per_index) < 2 \
            or any(pairs != per_index[1] for pairs in per_index.values()):
        return None
    name = container.rpartition(".")[2]
    item = shortened(name, ARGUMENT_LIMIT) if is_identifier(name) else "repetition"
    item = "repetition" if item in taken or item in RESERVED else item
    body = [f"{item}{rest}.{leaf} = {container}[0]{rest}.{leaf}" for rest, leaf in per_index[1]]
    if any(len(indent + _I + statement) > LINE_LENGTH for statement in body):
        return None  # (ruff would split one inside a subscript: each tie gets its own line and local)
    lines = split_statement(f"for {item} in {container}[1:]:", indent)
    for statement in body:
        lines += split_statement(statement, indent + _I)
    return lines
