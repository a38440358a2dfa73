"""Safe YAML reading that remembers where every value came from.

Specs are data: we compose the YAML node tree with PyYAML's *safe* loader and
convert it ourselves, so no tag can construct a Python object. Mappings become
:class:`SMap` and sequences :class:`SList`; both remember the location of the
container, of each key and of each value, so later stages can point a user to
``file:line:col``. Duplicate keys are an error rather than a silent overwrite.
"""
from __future__ import annotations

from typing import Any

import yaml

from archc.errors import Location, SpecError

try:  # libyaml is much faster on big specs; the pure-Python loader is identical in behaviour
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader


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


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}


def _loc(filename: str, mark: yaml.Mark) -> Location:
    return Location(filename, mark.line + 1, mark.column + 1)


def _is_quoted(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')


def _convert(node: yaml.Node, filename: str, constructor: yaml.constructor.SafeConstructor) -> Any:
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result = SMap()
        result.location = _loc(filename, node.start_mark)
        result.key_locations, result.value_locations, result.quoted = {}, {}, {}
        for key_node, value_node in node.value:
            key = _convert(key_node, filename, constructor)
            if isinstance(key, (int, float, bool)) or key is None:
                key = str(key) if not isinstance(key, bool) else str(key).lower()
            if not isinstance(key, str):
                raise SpecError("mapping keys must be plain names", location=_loc(filename, key_node.start_mark))
            if key in result:
                first = result.key_locations[key]
                raise SpecError(f"duplicate key '{key}' (first given at line {first.line})",
                                location=_loc(filename, key_node.start_mark))
            result[key] = _convert(value_node, filename, constructor)
            result.key_locations[key] = _loc(filename, key_node.start_mark)
            result.value_locations[key] = _loc(filename, value_node.start_mark)
            result.quoted[key] = _is_quoted(value_node)
        return result
    if isinstance(node, yaml.SequenceNode):
        result = SList(_convert(item, filename, constructor) for item in node.value)
        result.location = _loc(filename, node.start_mark)
        result.item_locations = [_loc(filename, item.start_mark) for item in node.value]
        result.quoted = [_is_quoted(item) for item in node.value]
        return result
    # Scalars: the safe constructor only knows plain data types (str, int, float, bool, null).
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise SpecError(f"unsupported YAML value: {exc.problem}", location=_loc(filename, node.start_mark)) from None


def load_yaml(text: str, filename: str = "<spec>") -> Any:
    """Parse YAML text safely into SMap/SList/scalars; raise SpecError with a location."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise SpecError("the spec is empty", location=Location(filename, 1, 1))
        for n in _walk(root):
            if n.tag not in _PLAIN_TAGS:
                raise SpecError(f"YAML tag '{n.tag}' is not allowed in a spec (specs are plain data)",
                                location=_loc(filename, n.start_mark))
        return _convert(root, filename, yaml.constructor.SafeConstructor())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _loc(filename, mark) if mark else Location(filename)
        raise SpecError(f"invalid YAML: {exc.problem or exc.context}", location=loc) from None
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked YAML errors are rare
        raise SpecError(f"invalid YAML: {exc}", location=Location(filename)) from None
    finally:
        loader.dispose()


def _walk(node: yaml.Node):
    stack = [node]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        yield n
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.extend((k, v))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def load_yaml_file(path: str) -> Any:
    """Read and parse a spec file; unreadable files are reported, not raised raw."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror}", location=Location(path)) from None
    except UnicodeDecodeError:
        raise SpecError("the spec is not UTF-8 text", location=Location(path)) from None
    return load_yaml(text, path)
