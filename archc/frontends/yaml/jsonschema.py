"""A JSON Schema of the spec format, generated from the definitions the loader uses.

Keys at each level come from :mod:`archc.frontends.yaml.schema` (the loader's own tables),
ops, their aliases and attributes (with kinds and choices) from the op registry, connection
kinds from :class:`archc.ir.vocab.Kind`. Editors read it through the first line of a spec,
``# yaml-language-server: $schema=...``; ``archc schema`` prints it, and the copy shipped in
the package (:data:`SHIPPED`) is tested to equal what this module generates. Numeric fields
also take an expression over parameters (a string), as the loader does.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archc.frontends.yaml import schema
from archc.ops import registry
from archc.ops.base import REQUIRED, Attr

#: the schema shipped with the package (regenerate: ``archc schema > archc/frontends/yaml/spec.schema.json``)
SHIPPED = Path(__file__).with_name("spec.schema.json")
SCHEMA_ID = "https://archc.invalid/spec.schema.json"

_EXPR = {"type": "string", "description": "an expression over parameters, e.g. 'width * 2'"}
_INT = {"anyOf": [{"type": "integer"}, _EXPR]}
_NUMBER = {"anyOf": [{"type": "number"}, _EXPR]}
_BOOL = {"anyOf": [{"type": "boolean"}, _EXPR]}


def _attr_schema(attr: Attr) -> dict[str, Any]:
    kind = attr.kind
    if kind == "int":
        out: dict[str, Any] = dict(_INT)
    elif kind == "float":
        out = dict(_NUMBER)
    elif kind == "bool":
        out = dict(_BOOL)
    elif kind == "str":
        out = {"type": "string"} | ({"enum": list(attr.choices)} if attr.choices else {})
    elif kind in ("ints", "floats"):
        item = _INT if kind == "ints" else _NUMBER
        out = {"anyOf": [item, {"type": "array", "minItems": 0 if attr.empty else 1, "items": item}]}
    elif kind == "int_or_str":
        out = {"anyOf": [_INT, {"type": "array", "items": _INT}]}
    else:
        out = {}
    doc = attr.doc + ("" if attr.default is REQUIRED else f" (default {attr.default!r})")
    return out | ({"description": doc.strip()} if doc.strip() else {})


def _op_rule(op) -> dict[str, Any]:
    names = [op.name, *op.aliases]
    allowed = sorted({*schema.NODE_KEYS, *op.attrs})
    return {"if": {"properties": {"op": {"enum": names}}, "required": ["op"]},
            "then": {"properties": {k: _attr_schema(a) for k, a in op.attrs.items()},
                     "propertyNames": {"enum": allowed}}}


def _keys(table: dict[str, str]) -> dict[str, Any]:
    return {k: {"description": v} for k, v in table.items()}


def spec_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec file (and of an include file: a subset of its keys)."""
    ops = list(registry.all_ops())
    op_names = sorted({n for op in ops for n in (op.name, *op.aliases)})
    node = {
        "type": "object",
        "properties": _keys(schema.NODE_KEYS) | {
            "op": {"enum": op_names, "description": schema.NODE_KEYS["op"]},
            "block": {"type": "string", "description": schema.NODE_KEYS["block"]},
            "name": {"type": "string", "description": schema.NODE_KEYS["name"]},
            "expect": {"enum": list(schema.EXPECT_KINDS), "description": schema.NODE_KEYS["expect"]},
            "repeat": _INT | {"description": schema.NODE_KEYS["repeat"]},
            "if": _BOOL | {"description": schema.NODE_KEYS["if"]},
        },
        "not": {"required": ["op", "block"]},
        "allOf": [_op_rule(op) for op in ops],
    }
    nodes = {"type": "array", "items": {"$ref": "#/$defs/node"}}
    block = {"type": "object", "additionalProperties": False, "properties": _keys(schema.BLOCK_KEYS) | {
        "nodes": nodes,
        "sequential": {"type": "boolean", "description": schema.BLOCK_KEYS["sequential"]}}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "archc spec",
        "description": "A neural architecture for archc (see docs/spec-language.md).",
        "type": "object",
        "properties": _keys(schema.TOP_KEYS) | {
            "name": {"type": "string", "description": schema.TOP_KEYS["name"]},
            "params": {"type": "object", "description": schema.TOP_KEYS["params"]},
            "blocks": {"type": "object", "additionalProperties": {"$ref": "#/$defs/block"},
                       "description": schema.TOP_KEYS["blocks"]},
            "nodes": nodes | {"description": schema.TOP_KEYS["nodes"]},
            "sequential": {"type": "boolean", "description": schema.TOP_KEYS["sequential"]},
            "trust_sizes": {"type": "boolean", "description": schema.TOP_KEYS["trust_sizes"]},
        },
        "additionalProperties": False,
        "$defs": {"node": node, "block": block},
    }


def schema_text() -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(spec_schema(), indent=1, ensure_ascii=False) + "\n"
