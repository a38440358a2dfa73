"""The import's walk over the nodes: each node replayed by its kind's recipe where its kind has one,
else taken the general way.

Most nodes of a large model are of a kind seen before (:mod:`~archc.frontends.onnx.replay`). For
each, the walk reads its inputs' records once, makes its tag key
(:mod:`~archc.frontends.onnx.kinds`) and, where the key names a recipe, makes the recipe's native
node(s) for it, with the lookups a recipe of one native node needs made once per kind (its
:class:`~archc.frontends.onnx.kinds.Replayer`). A node whose key names no recipe (yet) takes
:meth:`~archc.frontends.onnx.importer.Importer._process`, the general way, which records one for
its kind where its converter is pure.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import onnx

from archc.frontends.onnx.conversion import Conversion, attribute_bytes, key_part
from archc.frontends.onnx.inference import READS_FLOAT_DATA
from archc.frontends.onnx.kinds import Replayer
from archc.frontends.onnx.naming import node_meta
from archc.frontends.onnx.state import DEFAULT_DOMAINS
from archc.frontends.onnx.values import Const, Record, Tensor
from archc.ir.graph import Node, Value

__all__ = ["Walk"]


class Walk(Conversion):
    """The walk over the model's nodes (:meth:`walk`) and the replay of a node by its kind's recipe."""

    #: the general way for one node (:meth:`~archc.frontends.onnx.importer.Importer._process`)
    _process: Callable[[onnx.NodeProto, tuple[bytes, ...] | None], None]

    def walk(self, rows: Iterable[tuple]) -> int:
        """Import the node of each row (its fields, see :mod:`~archc.frontends.onnx.rows`), in order:
        by its kind's recipe where the node's tag key names one, else the general way. How many
        nodes were replayed."""
        values, drafted, replayers = self.values, self.graph.named, self.kinds.replayers
        const_tag, declared, process, replay = self.kinds.const_tag, self.declared, self._process, self._replay_as
        replayed = 0
        for row in rows:
            node, op_type, domain, inputs, outputs, attributes = row[0], row[1], row[2], row[3], row[4], row[5]
            recs: list[Record | None] = []
            tags: list[Any] = []
            for name in inputs:
                if not name:
                    recs.append(None)
                    tags.append(None)
                    continue
                try:
                    rec = values[name]  # (a subscript: a cheaper lookup than a call of get)
                except KeyError:
                    break  # undefined: the general way says so
                kind = type(rec)
                if kind is Tensor:
                    value = rec.value
                    tags.append(id(drafted[value.node].outputs[value.out]))
                elif kind is Const:
                    tag = rec.tag
                    reads_float = op_type in READS_FLOAT_DATA
                    tags.append(tag if tag is not None and not reads_float else const_tag(rec, reads_float, key_part))
                else:
                    break  # symbolic: no kind
                recs.append(rec)
            else:
                if attributes is None:
                    attributes = attribute_bytes(node)
                # (the types declared for the outputs: one output's alone, not in a tuple; the key's
                # outputs part tells the numbers of outputs apart)
                tag_key = (op_type, domain, attributes, tuple(tags), len(outputs) if all(outputs) else
                           tuple(map(bool, outputs)), None if not declared else declared.get(outputs[0])
                           if len(outputs) == 1 else tuple(map(declared.get, outputs)))
                replayer = replayers.get(tag_key)
                if replayer is None:
                    replayer = self._new_replayer(node, op_type, domain, recs, outputs, attributes, tag_key)
                elif replayer.test is not None and not replayer.test(self, node):
                    replayer = None
                if replayer is not None:
                    replay(replayer, node, op_type, recs, outputs, row[6], row[7])
                    replayed += 1
                    continue
            process(node, attributes)
        return replayed

    def _new_replayer(self, node: onnx.NodeProto, op_type: str, domain: str, recs: list[Record | None],
                      outputs: Any, attributes: tuple[bytes, ...], tag_key: tuple) -> Replayer | None:
        """The replayer of the recipe of ``node``'s kind, filed under its tag key; None where its kind
        has no recipe (yet) or it has no kind."""
        pure = self.pure.get(op_type)
        if pure is None or not self._recipes or domain not in DEFAULT_DOMAINS:
            return None
        key = self.kind(node, pure, recs, op_type, outputs, attributes)  # (runs the test of purity)
        recipe = self._recipes.get(key) if key is not None else None
        if recipe is None:
            return None
        pins = tuple(self.graph.type_of(rec.value) for rec in recs if type(rec) is Tensor)
        test = None if pure is True or getattr(pure, "of_kind", False) else pure  # (its verdict was this kind's)
        replayer = self.kinds.replayers[tag_key] = Replayer(recipe, test, pins)
        return replayer

    def _replay_as(self, replayer: Replayer, node: onnx.NodeProto, op_type: str, recs: list[Record | None],
                   outputs: Any, onnx_name: str | None, has_metadata: bool) -> None:
        """Replay ``replayer``'s recipe for ``node`` (``recs``: its inputs' records; ``onnx_name`` and
        ``has_metadata``: read already, where not None) and bind its outputs."""
        one = replayer.one
        scoped = onnx_name is None or "/" in onnx_name
        # (node_meta reads the node only for metadata or scopes)
        meta = node_meta(node) if scoped or has_metadata else {"onnx_name": onnx_name}
        if one is None or onnx_name is None:
            base = self.names.default(node) if onnx_name is None else self.names.base(onnx_name, op_type)
            self._bind_replayed(self._replay(node, replayer.recipe, recs, (base, meta)), node, outputs)
            return
        # one native node over the node's own inputs: what _replay does, with its lookups made once
        types = list(replayer.outputs)
        if replayer.check:
            self.types.learn(node, types)  # the check passed for this kind; the symbols are this node's
        name = self.names.take_for(onnx_name, op_type, replayer.suffix)
        first = replayer.first
        self.graph.append(Node(name, replayer.op, dict(replayer.attrs),
                               [recs[first].value] if first is not None else [recs[i].value for i in one], types,
                               (), self.where, meta))
        if replayer.weights:
            self.graph.weights[name] = self._replayed_weights(replayer.weights, recs)
        if scoped:
            self.origin[name] = node  # (final names read the origin of scoped names only)
        if replayer.single and len(outputs) == 1:
            out = Value(name)
            self.values[outputs[0]] = Tensor(out)
            self.tensor_bindings.append((outputs[0], out))
            return
        self._bind_replayed([Value(name)] if replayer.single else [Value(name, k) for k in range(len(types))],
                            node, outputs)

    def _bind_replayed(self, outs: list[Value], node: onnx.NodeProto, outputs: Any) -> None:
        """Bind ``outputs`` (the node's output names) to a recipe's IR values ``outs``."""
        if len(outs) != len(outputs):
            self._bind_outputs(node, outs, outputs)
            return
        values, bindings = self.values, self.tensor_bindings  # (a recipe's outputs are IR values)
        for name, out in zip(outputs, outs):
            values[name] = Tensor(out)
            bindings.append((name, out))
