"""``json.dumps(value, indent=2)``, the same text made faster.

Python's ``json`` uses its C encoder only without ``indent``; with it, every token goes
through a chain of Python generators (a third of the time ``archc lint --format json``
spends on a 100k-node model). :func:`indented` writes the same characters with one call per
container: each value's writer is looked up by its exact type in a table per depth (json's own C
functions for scalars: the string escaper, ``int.__repr__``, ``float.__repr__``), and applied by
C-level maps. A dict's layout (its keys quoted with their separators and indentation, a writer
per value) is made once per set of keys, value types and depth: lint writes thousands of records
of one layout. Anything it does not know (a key that is not a string, a value of another type)
goes back to ``json.dumps``, so the text never differs from it.

A list of many records of one shape can be given as :class:`Rows`: each record is written by its
own function (a template filled from the record's fields, no dict made per record), and
``json.dumps`` is given the records' plain values when the writer falls back.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from itertools import repeat
from json.encoder import (
    encode_basestring_ascii as _quote,  # the C escaper json itself uses
)
from typing import Any

try:
    from operator import call  # Python 3.11+
except ImportError:  # Python 3.10, which archc supports
    def call(function: Callable[..., Any], /, *args: Any) -> Any:
        return function(*args)

__all__ = ["Rows", "indented", "quote"]

#: a string's JSON text (json's own C escaper, ASCII output)
quote = _quote

_INFINITY = float("inf")
#: dict layouts and depth tables kept, at most (lint uses a handful)
_KEPT = 1024

Writer = Callable[[Any], str]


class _Unknown(Exception):
    """A value this module leaves to ``json.dumps``."""


class Rows:
    """A JSON list of records, each written by ``write(record, newline)``: the record's text as a
    value on a line that starts with ``newline`` (the same characters :func:`indented` writes for
    ``plain(record)`` there). ``plain(record)`` is the record as dicts, lists and scalars."""

    __slots__ = ("plain", "records", "write")

    def __init__(self, records: list, write: Callable[[Any, str], str], plain: Callable[[Any], Any]) -> None:
        self.records = records
        self.write = write
        self.plain = plain


def _rows(value: Rows, newline: str, inner: str) -> str:
    if not value.records:
        return "[]"
    return "[" + inner + ("," + inner).join(map(value.write, value.records, repeat(inner))) + newline + "]"


def _plain(value: Any) -> Any:
    """``json.dumps``'s ``default``: :class:`Rows` as the list of its records' plain values."""
    if type(value) is Rows:
        return list(map(value.plain, value.records))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _null(value: None) -> str:
    return "null"


#: scalar type -> its writer (a subclass of str, int or float, an enum, is added to the depth's
#: table in _TABLES on first sight)
_SCALARS: dict[type, Writer] = {str: _quote, int: int.__repr__, float: _float, bool: _bool, type(None): _null}
#: newline of a depth -> exact type -> writer of a value at that depth (containers write deeper)
_TABLES: dict[str, dict[type, Writer]] = {}
#: (keys, value types, newline) -> (the texts around the values, a writer per value): see _layout
_LAYOUTS: dict[tuple, tuple[list[str], list[Writer]]] = {}


def indented(value: Any) -> str:
    """``json.dumps(value, indent=2)``: the same text (keys in dict order, ASCII-escaped strings)."""
    try:
        return _writer(type(value), "\n")(value)
    except _Unknown:
        return json.dumps(value, indent=2, default=_plain)


def _table(newline: str) -> dict[type, Writer]:
    """The writers of values whose container's line starts with ``newline``."""
    table = _TABLES.get(newline)
    if table is None:
        inner = newline + "  "
        table = {**_SCALARS, list: partial(_list, newline=newline, inner=inner),
                 tuple: partial(_list, newline=newline, inner=inner),
                 dict: partial(_dict, newline=newline), Rows: partial(_rows, newline=newline, inner=inner)}
        if len(_TABLES) < _KEPT:
            _TABLES[newline] = table
    return table


def _writer(kind: type, newline: str) -> Writer:
    """The writer of a value of type ``kind`` at a depth, tested as ``json`` tests (str, int, float,
    then list or tuple, then dict: a bool is never taken for an int); _Unknown for other types."""
    table = _table(newline)
    writer = table.get(kind)
    if writer is None:
        for base in (str, int, float, list, tuple, dict):  # (no class derives from two of the last three)
            if issubclass(kind, base):
                writer = table[base]
                break
        else:
            raise _Unknown
        table[kind] = writer
    return writer


def _list(value: list | tuple, newline: str, inner: str) -> str:
    if not value:
        return "[]"
    get = _table(inner).get
    writers = list(map(get, map(type, value)))
    if None in writers:
        writers = [w or _writer(type(v), inner) for w, v in zip(writers, value)]
    return "[" + inner + ("," + inner).join(map(call, writers, value)) + newline + "]"


def _dict(value: dict, newline: str) -> str:
    if not value:
        return "{}"
    values = value.values()
    key = (tuple(value), tuple(map(type, values)), newline)
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _layout(key[0], key[1], newline)
        if len(_LAYOUTS) < _KEPT:
            _LAYOUTS[key] = layout
    parts, writers = layout
    parts = parts.copy()  # separators and keys at even places, each value's text after its key
    parts[1::2] = map(call, writers, values)
    return "".join(parts)


def _layout(keys: tuple, types: tuple, newline: str) -> tuple[list[str], list[Writer]]:
    """A dict's texts around its values (the text before each value, a place for it, the closing
    text) and each value's writer, for these keys and value types."""
    if not all(isinstance(k, str) for k in keys):
        raise _Unknown
    inner = newline + "  "
    parts = []
    for k, key in enumerate(keys):
        parts += [("{" if k == 0 else ",") + inner + _quote(key) + ": ", ""]
    parts.append(newline + "}")
    return parts, [_writer(kind, inner) for kind in types]
