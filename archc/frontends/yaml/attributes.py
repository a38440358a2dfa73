"""An op node's attributes: from the fields written in a spec to values the op's schema accepts.

:func:`op_attributes` reads every field of a node that is not a node key (``name``, ``in``,
...) as an attribute of its op: a field naming a parameter stands for its value, ``${expr}``
is replaced inside text, other strings of numeric attributes are expressions (kept, for the
PyTorch backend's generated arguments, in the returned expressions), lists are read item by
item, and ``any`` attributes are plain data. Each value is checked against the op's
:class:`~archc.ops.base.Attr` (kind, choices, bounds) and reported at its field; missing
attributes take their defaults, and missing required ones are reported.
"""
from __future__ import annotations

import math
from typing import Any

from archc.errors import closest, did_you_mean, meant_hint
from archc.frontends.yaml import schema
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.expr import ExprError, names_in
from archc.frontends.yaml.params import interpolate, parameter_value
from archc.frontends.yaml.scope import TENSOR_QUERIES, Abort, Scope
from archc.frontends.yaml.site import Site
from archc.frontends.yaml.source import SList, SMap
from archc.ops.base import Attr, OpDef
from archc.frontends.yaml.spelling import spelled


def op_attributes(ctx: Elaboration, op: OpDef, fields: SMap, scope: Scope,
                  node: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(attributes in schema order, the expressions written for them) of node ``node`` of ``op``;
    Abort after reporting every bad or missing attribute."""
    return _AttrReader(ctx, op, scope, node).read(fields)


#: one meaning, two spellings: PyTorch's ``dim`` is ONNX's ``axis`` (softmax and concat say axis)
_SYNONYMS = {"dim": "axis", "axis": "dim"}


def _synonym_hint(key: str, op: OpDef) -> str | None:
    """'write axis' where the op names by another word what ``key`` means, else None."""
    other = _SYNONYMS.get(key)
    return f"op '{op.name}' calls it '{other}': write {other}" if other in op.attrs else None


#: attribute kinds that never give a tensor's width: a channels() query in their expressions (StyleGAN's
#: ``1 / sqrt(channels(x))`` scale) is no width for the unread-input warning of blocks.py to check
_NO_WIDTH_KINDS = frozenset({"float", "floats", "bool", "str"})


class _AttrReader:
    """Reads one node's attributes, remembering the expressions they were written as."""

    def __init__(self, ctx: Elaboration, op: OpDef, scope: Scope, node: str) -> None:
        self.ctx = ctx
        self.op = op
        self.scope = scope
        self.node = node
        self.exprs: dict[str, str] = {}

    def read(self, fields: SMap) -> tuple[dict[str, Any], dict[str, str]]:
        op, ctx = self.op, self.ctx
        attrs: dict[str, Any] = {}
        failed = False
        meant: set[str] = set()  # attributes a misspelt key was taken for: not reported missing as well
        for key in fields:
            if key in schema.NODE_KEYS:
                continue
            if key not in op.attrs:
                meant.update(self._unknown(key, fields))
                failed = True
                continue
            try:
                attrs[key] = self._coerce(Site(fields, key, self.node))
            except Abort:
                failed = True
        for key, spec in op.attrs.items():
            if key not in attrs and key not in fields and key not in meant:
                if spec.required:
                    ctx.error(f"op '{op.name}' needs attribute '{key}'" + (f" ({spec.doc})" if spec.doc else ""),
                              fields.location, self.node)
                    failed = True
                else:
                    attrs[key] = spec.default
        if failed:
            raise Abort()
        return {k: attrs[k] for k in op.attrs}, self.exprs  # schema order, so printing is stable

    def _unknown(self, key: str, fields: SMap) -> tuple[str, ...]:
        """Report ``key``, which ``op`` does not have; the attribute the hint takes it for, if any."""
        op = self.op
        hint = op.inferred_hint(key)
        meant = None if hint else _SYNONYMS.get(key) if _synonym_hint(key, op) else closest(key, op.attrs)
        has = f"it has: {', '.join(op.attrs)}" if op.attrs else "it takes no attributes"
        self.ctx.error(f"op '{op.name}' has no attribute '{key}'; {has}", fields.where_key(key), self.node,
                       hint or _synonym_hint(key, op) or meant_hint(meant))
        return (meant,) if meant else ()

    def _coerce(self, site: Site) -> Any:
        """The value of the attribute written at ``site``, checked against the op's schema."""
        spec: Attr = self.op.attrs[site.key]
        raw = site.value
        named = parameter_value(raw, self.scope.env)
        # A field naming a string parameter stands for its value (other values reach the same
        # result as an expression, which also records it for the generated code's arguments).
        if isinstance(named, str) and not (spec.choices and raw in spec.choices):
            raw = named
        if isinstance(raw, str) and spec.kind in ("str", "int_or_str") and "${" in raw:
            raw = interpolate(raw, self.ctx, self.scope, site)
        queried = len(self.scope.queried)
        value = self._value(spec, raw, site)
        if spec.kind in _NO_WIDTH_KINDS:  # (channels(x) in a scale or an epsilon sizes nothing: no width query)
            del self.scope.queried[queried:]
        self._check(spec, value, site)
        if spec.kind == "float" and isinstance(value, int):
            value = float(value)
        if isinstance(value, list):
            value = tuple(value)
        return value

    def _value(self, spec: Attr, raw: Any, site: Site) -> Any:
        """``raw`` read as the attribute's kind: text, an expression, plain data or a list."""
        kind = spec.kind
        if kind == "str" or (kind == "int_or_str" and isinstance(raw, str) and self._meant_choice(spec, raw)):
            return raw  # (a misspelt choice is refused by _check, which suggests the choice)
        if isinstance(raw, str) and kind != "any":
            value = self.ctx.evaluate(raw, self.scope, site, attr=True, expects=lambda: (
                f"attribute '{site.key}' of op '{self.op.name}' expects {spec.expected()}"))
            self._record(site.key, raw)
            return value
        if kind == "any":
            return _plain(raw)  # data (an imported ONNX node's attributes): never evaluated
        if kind == "types":
            return self._types(raw, site)
        if isinstance(raw, SList) and kind in ("ints", "floats", "int_or_str"):
            return [self._item(spec, raw, i, site) for i in range(len(raw))]
        return raw

    def _item(self, spec: Attr, raw: SList, i: int, site: Site) -> Any:
        """Item ``i`` of a list attribute; one written as an expression is recorded as the attribute's
        ``key[i]`` (``shape[1]: inplanes``: a block class writes it over its parameters). A model
        parameter read there still fixes the file (not ``attr=True``): the model class writes no item."""
        v = raw[i]
        if not isinstance(v, str) or (spec.kind == "int_or_str" and self._meant_choice(spec, v)):
            return v  # (a choice in a list is kept as written, for _check to refuse: not an unknown name)
        value = self.ctx.evaluate(v, self.scope, site.at(raw, i))
        self._record(f"{site.key}[{i}]", v)
        return value

    def _record(self, key: str, raw: str) -> None:
        """Record attribute ``key``'s expression as the node's class reads it (where it can: a node of
        an inline block is written in its caller's class)."""
        text = self.scope.as_written(raw)
        if text is not None:
            self.exprs[key] = text

    def _meant_choice(self, spec: Attr, raw: str) -> bool:
        """Whether text written for an attribute that takes a number or one of its choices is a choice
        (``padding: same``), or a bare word that names nothing in scope and is closer to a choice than to
        any parameter (``padding: sane``): read as an expression, it would only be an unknown name."""
        if not spec.choices or raw in spec.choices:
            return bool(spec.choices)
        word = raw.strip()
        if not word.isidentifier() or word in self.scope.env:
            return False
        return closest(word, [*spec.choices, *self.scope.env]) in spec.choices

    def _types(self, raw: Any, site: Site) -> Any:
        """Declared types (``[[shape, dtype], ...]``) with each dim read by :func:`_dim_value`; anything
        not of that form is returned as written, for the op to refuse."""
        if not isinstance(raw, SList) or not all(isinstance(t, SList) and len(t) == 2 and isinstance(t[0], SList)
                                                 for t in raw):
            return _plain(raw)
        return [[[_dim_value(self.ctx, self.scope, site.at(t[0], j)) for j in range(len(t[0]))], t[1]]
                for t in raw]

    def _check(self, spec: Attr, value: Any, site: Site) -> None:
        if not spec.accepts(value):
            meant = did_you_mean(str(value), spec.choices) if spec.choices and isinstance(value, str) else None
            # (a width computed with a float factor: DenseNet-BC's theta * channels(x))
            rounded = (f"an expression giving a float: round it, int({site.value})"
                       if isinstance(value, float) and math.isfinite(value) and isinstance(site.value, str)
                       and not site.value.strip().isidentifier() and spec.accepts(int(value))
                       else None)
            hint = "; ".join(filter(None, (meant, rounded, self.scope.origin_hint(site.value)))) or None
            self.ctx.report(f"attribute '{site.key}' of op '{self.op.name}' expects {spec.expected()}, "
                            f"got {spelled(value)}", site, hint)
            raise Abort()
        problem = spec.violation(value)
        if problem is not None:
            self.ctx.report(f"attribute '{site.key}' of op '{self.op.name}' {problem}", site,
                            self.scope.origin_hint(site.value))
            raise Abort()


def _dim_value(ctx: Elaboration, scope: Scope, site: Site) -> Any:
    """One dim of a declared type: a number, a parameter's value or an expression of parameters (``half``,
    ``3 * L``) or of tensor queries (``channels(x)``), else the text itself, a symbol (``N``, or what
    ``archc spec`` wrote: ``Min(16, seq)``)."""
    d = site.value
    if not isinstance(d, str):
        return d
    try:
        names = names_in(d)
    except ExprError:
        return d
    return ctx.evaluate(d, scope, site) if names and (names <= scope.env.keys() or names & TENSOR_QUERIES) else d


def _plain(value: Any) -> Any:
    """A spec value as plain Python data (dicts and lists, not the located SMap/SList)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
