"""Instances that lower alike are lowered once: exact reuse, and reuse with other numbers.

Two keys are computed per instance in one walk (:class:`Signatures`). The *shape* is what
:meth:`~archc.lowering.torch_body.BodyWriter.lower` reads of an instance but for its numbers:
the block, its formals, the wiring with local names, each node's op, attribute names and
output count, the children's shapes and the ties. The *signature* adds the numbers: each
node's attribute values (type-exact, so ``1``, ``1.0`` and ``True`` never match), the
input types and the children's signatures. Output types need no place in either: each op
infers them from its attributes and input types.

- Equal signatures lower to equal bodies but for their skip comments: :func:`reuse` copies
  the body (ResNet-152's 50 bottlenecks are 8 distinct ones).
- Equal shapes lower to bodies equal but for their holes where every op writes the same text
  around its integers: :func:`relower` asks each op for its text only (the lowering's own
  calls, in its order), checks the text between the integers against the first body of that
  shape and takes the new integers as the holes (GoogLeNet's 57 BasicConvs, DenseNet's 58
  layers). Where an op writes other text (``groups=`` appears) the instance is lowered in full.
"""
from __future__ import annotations

from typing import Any, Callable

from archc.ir.graph import Node, Value
from archc.lowering.torch_plan import Body, Instance, Stmt, split_numbers, spread_at

__all__ = ["Signatures", "relower", "reuse"]


class Signatures:
    """Numbers instances by shape and by signature, as they are met (so a parent's key holds
    its children's numbers, not their tuples); children first."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self._shapes: dict[tuple, int] = {}
        self._signatures: dict[tuple, int] = {}
        self.of: dict[int, tuple[int, int]] = {}  # id(instance) -> (shape, signature)

    def add(self, inst: Instance) -> tuple[int, int]:
        """``inst``'s (shape, signature); its child instances must have been added."""
        nodes = self.writer.lowered.nodes
        members = inst.members
        formal = {(v.node, v.out): (i, j) for i, values in enumerate(inst.inputs) for j, v in enumerate(values)}
        cut = len(inst.path) + 1 if inst.path else 0
        info = inst.info
        # a variadic formal read only whole (torch.cat(features)) is one name whatever its length
        variadic = info is not None and info.variadic
        spread = self.writer.spread_values(inst) if variadic else None
        refs = _refs(members, formal, cut, spread)
        shape: list[Any] = [info.block if info else None, tuple(inst.formals),
                            tuple(map(refs, inst.inputs)), refs(inst.outputs)]
        # the numbers in one flat list: the shape fixes where each one stands. Each type as
        # its fields (a TensorType's hash is a Python-level call); each attribute value with
        # its type (1, 1.0 and True are equal but are written differently)
        numbers: list[Any] = []
        for values in inst.inputs:
            for v in values:
                read = nodes[v.node].outputs[v.out]
                numbers += (read.shape, read.dtype)
        kinds: list[type] = []
        of = self.of
        add_shape, add_number = shape.append, numbers.append
        for item in inst.items:
            if type(item) is Node:
                inputs, attrs = item.inputs, item.attrs
                if len(inputs) == 1 and not spread:  # refs, inline for the common case
                    node, out = inputs[0].node, inputs[0].out
                    read = ((node[cut:], out),) if node in members else (formal.get((node, out)) or ("", node, out),)
                else:
                    read = refs(inputs)
                add_shape((item.name[cut:], item.op, tuple(attrs), len(item.outputs), read))
                numbers += attrs.values()
                kinds += map(type, attrs.values())
            else:
                child_shape, child_signature = of[id(item)]
                add_shape((item.path[cut:], child_shape, tuple(map(refs, item.inputs)), refs(item.outputs)))
                add_number(child_signature)
        if self.writer.tied:
            shape.append(tuple((n[cut:], p, o[cut:], q) for n, p, o, q in self.writer.own_ties(inst)))
        shape_id = self._shapes.setdefault(tuple(shape), len(self._shapes))
        try:
            signature = self._signatures.setdefault((shape_id, tuple(numbers), tuple(kinds)), len(self._signatures))
        except TypeError:  # an unhashable attribute value (a list): the values by their repr (as Lowered.text_key)
            signature = self._signatures.setdefault((shape_id, repr(numbers), tuple(kinds)), len(self._signatures))
        of[id(inst)] = (shape_id, signature)
        return shape_id, signature


def _refs(members: set[str], formal: dict[tuple[str, int], tuple[int, int]], cut: int,
          spread: tuple[Value, ...] | None) -> Callable[[list[Value]], tuple]:
    """How an instance's key names the values it reads or makes: one made inside by its local
    name; a formal's by its place; one read from outside by its full name (the same value, of
    the same type, in every instance); each run of the variadic values read whole as "*".
    (Closures that do not call themselves: no reference cycle left for a collection.)"""

    def plain(values: list[Value]) -> tuple:
        out = []
        for v in values:
            node = v.node
            if node in members:
                out.append((node[cut:], v.out))
            else:
                where = (node, v.out)
                out.append(formal.get(where) or ("", *where))
        return tuple(out)

    if not spread:
        return plain

    def refs(values: list[Value]) -> tuple:
        found: list[Any] = []
        while (at := spread_at(values, spread)) is not None:
            found += (*plain(values[:at]), "*")
            values = values[at + len(spread):]
        return (*found, *plain(values)) if found else plain(values)

    return refs


def reuse(writer: Any, body: Body, inst: Instance, holes: list[Any] | None = None) -> Body:
    """``body`` as ``inst``'s (an instance of the same signature, or of the same shape with
    ``holes`` for its numbers): its own skip comments."""
    changes: dict[str, Any] = {"instance": inst}
    if holes is not None:
        changes["holes"] = holes
    if writer.labels:  # else comments depend on the local names alone: the same
        # the statements of the nodes labelled otherwise in the two instances (by local name)
        mine, theirs = writer.labels_within(inst.path), writer.labels_within(body.instance.path)
        differ = {local for local in (*mine, *theirs) if mine.get(local) != theirs.get(local)}
        if differ:
            changes["stmts"] = [
                Stmt(stmt.targets, stmt.expr, writer.comments(f"{inst.path}.{stmt.node}", stmt.node), stmt.node)
                if stmt.node in differ else stmt for stmt in body.stmts]
    copy = Body.__new__(Body)  # dataclasses.replace without its per-call introspection
    copy.__dict__.update(body.__dict__, **changes)
    return copy


def relower(writer: Any, template: Body, inst: Instance, texts: dict[int, list[Any]]) -> Body | None:
    """``inst`` lowered as ``template`` (the first body of its shape) with its own numbers, or
    None where one of its ops writes other text around them. ``texts``: the templates' text
    pieces, by ``id(template)``, filled on first use."""
    known = texts.get(id(template))
    if known is None:
        pieces, numbers = _texts(writer, template.instance, template.access)
        # the replay must give the template's own holes, in its order; else it never serves
        known = texts[id(template)] = pieces if numbers == template.holes else []
    if not known:
        return None
    pieces, numbers = _texts(writer, inst, template.access)
    if pieces != known:
        return None
    return reuse(writer, template, inst, numbers)


def _texts(writer: Any, inst: Instance, access: dict[str, str]) -> tuple[list[Any], list[Any]]:
    """The text pieces and the numbers of every hole-making text :meth:`lower` writes for
    ``inst``, in its order: the module tree (constructors, parameters, child constructor calls
    and ``nn.Sequential`` children), then each node's forward expression."""
    lowered = writer.lowered
    text_key, replays = lowered.text_key, lowered.replays
    spread = writer.spread_values(inst)
    cut = len(inst.path) + 1 if inst.path else 0
    pieces: list[Any] = []
    numbers: list[Any] = []
    forwards: list[Any] = []
    forward_numbers: list[Any] = []
    unread = writer.unread(inst)
    for item in inst.items:
        if type(item) is Node:
            if item.name in unread:  # (its module is in the tree; lower writes no forward for it)
                piece, values = lowered.tree_piece(item)
                pieces.append(piece)
                numbers += values
                continue
            has_module = item.name[cut:] in access
            if spread:  # the forward text depends on where the variadic values stand
                piece, values = lowered.tree_piece(item)
                found = (piece, values, *split_numbers(writer.forward_text(item, has_module, spread)))
            else:  # what a node of this text key writes, looked up once
                key = (text_key(item), has_module)
                found = replays.get(key)
                if found is None:
                    piece, values = lowered.tree_piece(item)
                    found = replays[key] = (piece, values, *split_numbers(writer.forward_text(item, has_module, None)))
            pieces.append(found[0])
            numbers += found[1]
            forwards.append(found[2])
            forward_numbers += found[3]
        else:
            _child_texts(writer, item, pieces, numbers)
    return pieces + forwards, numbers + forward_numbers


def _child_texts(writer: Any, child: Instance, pieces: list[Any], numbers: list[Any]) -> None:
    items = writer.as_sequential(child)
    if items is None:
        cls, args = writer.call_of(child)
        pieces.append(("call", cls, tuple((arg.name, arg.keyword) for arg in args)))
        numbers.extend(arg.value for arg in args)
        return
    pieces.append(("sequential", len(items)))
    for item in items:
        if isinstance(item, Node):
            cut, values = split_numbers(writer.lowered(item)[2])
            pieces.append(("module", cut))
            numbers.extend(values)
        else:
            _child_texts(writer, item, pieces, numbers)
