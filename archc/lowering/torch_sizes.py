"""The sizes of a planned graph's values written over the model's parameters, as the model class
would compute them: where a layer's attribute sets a size, the spec's expression of it
(``out_channels: c2`` is ``c2``); elsewhere what the node's op infers from its inputs' sizes so
written (a concat's channels are the sum of its inputs', a flatten's features their product:
``c2 * (image_size // 4) * (image_size // 4)``). A size no expression reaches is None (the number
of the file). :mod:`~archc.lowering.torch_probes` offers these where no expression of the spec
gives a number of the model class, and keeps one only where it computes that number at every value
the parameters were tried at.
"""
from __future__ import annotations

from typing import Any, Mapping

from archc.ir import dims
from archc.ir.graph import Node, Value
from archc.ir.types import TensorType
from archc.ir.vocab import SHAPE_KEEPING
from archc.lowering.torch_args import model_exprs, sets_dim, sized, symbolic_infer, symbolic_size
from archc.lowering.torch_plan import Lowered
from archc.ops import registry

__all__ = ["evaluated", "size_texts"]

#: each dim of one value: its Python text over the model's parameters, or None (the file's number)
Texts = tuple["str | None", ...]
#: where a reading keeps its sizes (they depend on the graph alone: every plan of it asks again)
_MEMO_KEY = ("model size texts", 0)


def size_texts(lowered: Lowered) -> list[str]:
    """Every distinct size of ``lowered``'s values written over the model's parameters, in forward
    order (see the module's docstring); worked out once per reading."""
    if _MEMO_KEY not in lowered.memo:
        sizes = _ModelSizes(lowered)
        lowered.memo[_MEMO_KEY] = list(dict.fromkeys(
            text for texts in sizes.texts.values() for text in texts if text is not None))
    return lowered.memo[_MEMO_KEY]


class _ModelSizes:
    """The sizes of ``lowered``'s values, in forward order (a value's depend on those before it)."""

    def __init__(self, lowered: Lowered) -> None:
        self.lowered = lowered
        self.texts: dict[tuple[str, int], Texts] = {}
        for node in lowered.order:
            for k, texts in enumerate(self._node_texts(node)):
                self.texts[(node.name, k)] = texts

    def _node_texts(self, node: Node) -> list[Texts]:
        if registry.lookup(node.op).role_of(node) in SHAPE_KEEPING and node.inputs:
            return [self._texts_of(node.inputs[0])] * len(node.outputs)  # (a norm, an activation)
        inferred = self._inferred(node)
        exprs = model_exprs(node)
        found = []
        for k, out in enumerate(node.outputs):
            texts = []
            for d in range(len(out.shape)):
                # (an attribute that sets the dim first: conv's out_channels, an input's shape[1])
                text = next((expr for attr, expr in exprs if sets_dim(self.lowered, node, attr, k, d)), None)
                texts.append(_tidy(text) if text is not None else inferred[k][d] if inferred else None)
            found.append(tuple(texts))
        return found

    def _inferred(self, node: Node) -> list[Texts] | None:
        """What the op infers from its inputs' sizes with each written one a symbol, each dim
        written back over the parameters; None where the op needs the numbers. Where it needs some
        (a conv its channels), each dim index is tried alone (its height and width)."""
        given = [self._texts_of(value) for value in node.inputs]
        if not any(text is not None for texts in given for text in texts):
            return None
        found = self._inferred_at(node, given, None)
        if found is not None:
            return found
        alone = [f for d in range(max(map(len, given))) if (f := self._inferred_at(node, given, d)) is not None]
        if not alone:
            return None
        return [tuple(next((f[k][i] for f in alone if f[k][i] is not None), None) for i in range(len(out)))
                for k, out in enumerate(alone[0])]

    def _inferred_at(self, node: Node, given: list[Texts], only: int | None) -> list[Texts] | None:
        symbols: dict[str, str] = {}  # text -> symbol (equal texts are one size: an add's two terms)
        ins = []
        for value, texts in zip(node.inputs, given):
            concrete = self.lowered.type_of(value)
            shape = [symbols.setdefault(text, f"size{len(symbols)}") if text is not None and only in (None, d)
                     else dim for d, (dim, text) in enumerate(zip(concrete.shape, texts))]
            ins.append(TensorType(tuple(shape), concrete.dtype))
        if not symbols:
            return None
        outs = symbolic_infer(node, ins)
        if outs is None:
            return None
        texts = {symbol: text for text, symbol in symbols.items()}
        return [tuple(symbolic_size(dim, texts.keys(), texts.get) for dim in out.shape) for out in outs]

    def _texts_of(self, value: Value) -> Texts:
        shape = self.lowered.type_of(value).shape
        return self.texts.get((value.node, value.out), (None,) * len(shape))


def _tidy(text: str) -> str | None:
    """A spec expression of a size, in the simplest form where it is integer arithmetic."""
    return sized(text, {}) if dims.is_expression(text) else text


def evaluated(text: str, params: Mapping[str, Any]) -> int | None:
    """What the size ``text`` is at ``params``; None where it reads anything but integer parameters."""
    if not dims.is_expression(text):
        return None
    read = dims.symbols(text)
    if not all(type(params.get(name)) is int for name in read):
        return None
    return dims.evaluate(dims.canonical(text), {name: params[name] for name in read})
