"""Safe YAML reading that remembers where every value came from.

Specs are data: we compose the YAML node tree with PyYAML's *safe* loader and
convert it ourselves, so no tag can construct a Python object. Mappings become
:class:`SMap` and sequences :class:`SList`; both remember the location of the
container, of each key and of each value, so later stages can point a user to
``file:line:col``. Duplicate keys are an error rather than a silent overwrite.

Before anything is converted, one walk over the composed node graph refuses what would
blow up: alias expansions beyond :attr:`Limits.max_yaml_nodes` nodes (an alias bomb is
a small graph with a huge expansion; its size is counted without expanding it), a
recursive alias (``&a [*a]``), nesting deeper than :data:`MAX_YAML_DEPTH`, and tags
other than plain data. Scalars that a tag cannot construct (``!!int abc``) and integers
wider than :attr:`Limits.max_int_bits` are located errors.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from archc.errors import Location, SpecError
from archc.limits import DEFAULT_LIMITS, Limits

from archc.frontends.yaml.numbers import SpecLoader as _Loader  # libyaml's safe loader where built


class SMap(dict):
    """A mapping from a spec, with the locations of itself, its keys and values."""

    location: Location
    key_locations: dict[str, Location]
    value_locations: dict[str, Location]
    quoted: dict[str, bool]

    def where(self, key: str) -> Location:
        return self.value_locations.get(key, self.location)

    def where_key(self, key: str) -> Location:
        return self.key_locations.get(key, self.location)


class SList(list):
    """A sequence from a spec, with the location of itself and of each item."""

    location: Location
    item_locations: list[Location]
    quoted: list[bool]

    def where(self, index: int) -> Location:
        if 0 <= index < len(self.item_locations):
            return self.item_locations[index]
        return self.location


#: Nesting of mappings and lists in a spec; real specs nest fewer than 10 levels, and
#: conversion recurses once per level.
MAX_YAML_DEPTH = 200

_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}


def _loc(filename: str, mark: yaml.Mark) -> Location:
    return Location(filename, mark.line + 1, mark.column + 1)


def _is_quoted(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')


def _convert(node: yaml.Node, filename: str, constructor: yaml.constructor.SafeConstructor,
             limits: Limits = DEFAULT_LIMITS) -> Any:
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result = SMap()
        result.location = _loc(filename, node.start_mark)
        result.key_locations, result.value_locations, result.quoted = {}, {}, {}
        for key_node, value_node in node.value:
            key = _convert(key_node, filename, constructor, limits)
            if isinstance(key, (int, float, bool)) or key is None:
                key = str(key) if not isinstance(key, bool) else str(key).lower()
            if not isinstance(key, str):
                raise SpecError("mapping keys must be plain names", location=_loc(filename, key_node.start_mark))
            if key in result:
                first = result.key_locations[key]
                raise SpecError(f"duplicate key '{key}' (first given at line {first.line})",
                                location=_loc(filename, key_node.start_mark))
            result[key] = _convert(value_node, filename, constructor, limits)
            result.key_locations[key] = _loc(filename, key_node.start_mark)
            result.value_locations[key] = _loc(filename, value_node.start_mark)
            result.quoted[key] = _is_quoted(value_node)
        return result
    if isinstance(node, yaml.SequenceNode):
        result = SList(_convert(item, filename, constructor, limits) for item in node.value)
        result.location = _loc(filename, node.start_mark)
        result.item_locations = [_loc(filename, item.start_mark) for item in node.value]
        result.quoted = [_is_quoted(item) for item in node.value]
        return result
    return _scalar(node, filename, constructor, limits)


def _scalar(node: yaml.Node, filename: str, constructor: yaml.constructor.SafeConstructor, limits: Limits) -> Any:
    """A plain scalar; the safe constructor only knows plain data types (str, int, float, bool, null)."""
    where = _loc(filename, node.start_mark)
    try:
        value = constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise SpecError(f"unsupported YAML value: {exc.problem}", location=where) from None
    except (ValueError, KeyError, TypeError, ArithmeticError):  # e.g. `!!int abc`, `!!bool maybe`
        kind = str(node.tag).rpartition(":")[2]
        raise SpecError(f"'{str(node.value)[:40]}' is not a valid {kind} (tag !!{kind})", location=where) from None
    if isinstance(value, int) and value.bit_length() > limits.max_int_bits:
        raise SpecError(limits.exceeded("max_int_bits", f"an integer of {value.bit_length():,} bits"),
                        location=where)
    return value


def load_yaml(text: str, filename: str = "<spec>", limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse YAML text safely into SMap/SList/scalars; raise SpecError with a location."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise SpecError("the spec is empty", location=Location(filename, 1, 1))
        _check_graph(root, filename, limits)
        return _convert(root, filename, yaml.constructor.SafeConstructor(), limits)
    except yaml.reader.ReaderError as exc:  # a NUL byte or another character YAML forbids
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        raise SpecError(f"invalid YAML: {exc.reason} (character {char})",
                        location=Location(filename, line, column)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _loc(filename, mark) if mark else Location(filename, 1, 1)
        raise SpecError(f"invalid YAML: {exc.problem or exc.context}", location=loc,
                        hint=_bracket_reference_hint(text, exc) or _unclosed_hint(exc) or _indent_hint(text, mark)
                        ) from None
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked YAML errors are rare
        raise SpecError(f"invalid YAML: {exc}", location=Location(filename, 1, 1)) from None
    finally:
        loader.dispose()


#: a ``NAME[*]`` (or ``NAME[*]:PORT``) reference written without quotes
_BRACKET_REFERENCE = re.compile(r"(?<![\w'\"])[A-Za-z_][\w.]*\[\*\](:\w+)?")


def _bracket_reference_hint(text: str, exc: yaml.MarkedYAMLError) -> str | None:
    """Inside YAML's ``[...]``/``{...}``, ``[`` and ``*`` are syntax: ``in: [layer[*]]`` fails with
    an alias or flow error far from what the user meant. Where the failing line holds such a
    reference, the hint says to quote it."""
    if "alias" not in str(exc.context) and "flow" not in str(exc.context):
        return None
    for mark in (exc.problem_mark, exc.context_mark):
        if mark is None:
            continue
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        found = _BRACKET_REFERENCE.search(line)
        if found:
            return (f"write '{found.group()}' in quotes: inside [ ] or {{ }}, YAML reads an unquoted "
                    "'[' as a list and '*' as an alias")
    return None


def _unclosed_hint(exc: yaml.MarkedYAMLError) -> str | None:
    """YAML notices an unclosed ``{``/``[`` where the next line starts: the hint names the opening."""
    opened, found = exc.context_mark, exc.problem_mark
    if "flow" not in str(exc.context) or opened is None or found is None or opened.line >= found.line:
        return None
    bracket = "{" if "mapping" in str(exc.context) else "["
    return f"the '{bracket}' at line {opened.line + 1}, column {opened.column + 1} is not closed before this line"


def _indent_hint(text: str, mark: yaml.Mark | None) -> str | None:
    """YAML notices a line indented unlike its siblings at the line after it: the hint names both
    lines and their indentations, where the line before this one opens with its parent's key."""
    if mark is None:
        return None
    lines = [(i, line) for i, line in enumerate(text.splitlines()[:mark.line + 1])
             if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) < 3 or lines[-1][0] != mark.line:
        return None
    (_, parent), (i, sibling), (_, here) = lines[-3:]

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    if parent.rstrip().endswith(":") and indent(parent) < min(indent(sibling), indent(here)) \
            and indent(sibling) != indent(here):
        return (f"line {i + 1} is indented by {indent(sibling)} spaces and line {mark.line + 1} by {indent(here)}: "
                "the keys of one mapping line up")
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_graph(root: yaml.Node, filename: str, limits: Limits) -> None:
    """Refuse disallowed tags, recursive aliases, deep nesting and big expansions, without expanding.

    One iterative depth-first walk over the composed graph (aliases are shared nodes in it):
    each node's expanded size and depth are computed once from its children's.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(key)
            where = _loc(filename, node.start_mark)
            if size[key] > limits.max_yaml_nodes:
                raise SpecError(limits.exceeded("max_yaml_nodes", f"this YAML value expands to {size[key]:,} nodes"),
                                location=where)
            if depth[key] > MAX_YAML_DEPTH:
                raise SpecError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels", location=where)
            continue
        if key in size:
            continue
        if key in on_path:
            raise SpecError("recursive YAML alias: this value contains itself", location=_loc(filename, node.start_mark))
        if node.tag not in _PLAIN_TAGS:
            raise SpecError(f"YAML tag '{node.tag}' is not allowed in a spec (specs are plain data)",
                            location=_loc(filename, node.start_mark))
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def load_yaml_file(path: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Read and parse a spec file; unreadable files are reported, not raised raw."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", location=Location(path, 1, 1)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # point at the first byte that is not UTF-8
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(f"the spec is not UTF-8 text (byte 0x{data[exc.start]:02x})",
                        location=Location(path, line, column)) from None
    return load_yaml(text, path, limits)
