"""``json.dumps(value, indent=2)``, the same text made faster.

Python's ``json`` uses its C encoder only without ``indent``; with it, every token goes
through a chain of Python generators (a third of the time ``archc lint --format json``
spends on a 100k-node model). :func:`indented` writes the same characters with one
recursive call per container: a container's scalars are written by the C functions ``json``
itself uses (the string escaper, ``int.__repr__``, ``float.__repr__``), found by a lookup on
their type, and keys are escaped once per distinct key. Anything it does not know (a key
that is not a string, a value of another type) goes back to ``json.dumps``, so the text
never differs from it.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote  # the C escaper json itself uses
from collections.abc import Callable
from typing import Any

__all__ = ["indented"]

_INFINITY = float("inf")


class _Unknown(Exception):
    """A value :func:`_write` leaves to ``json.dumps``."""


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


#: type -> its JSON text, for scalars; a subclass of str, int or float (an enum) is added on first sight
_TEXT: dict[type, Callable[[Any], str]] = {str: _quote, int: int.__repr__, float: _float, bool: _bool,
                                           type(None): _null}
#: key -> its quoted text followed by ": " (lint's keys repeat in every record), up to _KEYS_KEPT keys
_KEYS: dict[str, str] = {}
_KEYS_KEPT = 4096


def _scalar_writer(kind: type) -> Callable[[Any], str] | None:
    """The writer of a scalar type (``json``'s tests in its order: str, then int, then float), or None."""
    writer = _TEXT.get(kind)
    if writer is None:
        if issubclass(kind, str):
            writer = _quote
        elif issubclass(kind, int):
            writer = int.__repr__
        elif issubclass(kind, float):
            writer = _float
        else:
            return None
        _TEXT[kind] = writer
    return writer


def indented(value: Any) -> str:
    """``json.dumps(value, indent=2)``: the same text (keys in dict order, ASCII-escaped strings)."""
    out: list[str] = []
    try:
        _write(value, out, "\n")
    except _Unknown:
        return json.dumps(value, indent=2)
    return "".join(out)


def _write(value: Any, out: list[str], newline: str) -> None:
    """Append the JSON text of ``value`` to ``out``; ``newline`` starts a line at its depth."""
    writer = _TEXT.get(type(value)) or _scalar_writer(type(value))
    if writer is not None:
        out.append(writer(value))
    elif isinstance(value, (list, tuple)):
        _write_list(value, out, newline)
    elif isinstance(value, dict):
        _write_dict(value, out, newline)
    else:
        raise _Unknown


def _write_list(value: list | tuple, out: list[str], newline: str) -> None:
    if not value:
        out.append("[]")
        return
    inner = newline + "  "
    comma = "," + inner
    text = _TEXT.get
    put = out.append
    put("[" + inner)
    first = True
    for item in value:
        if not first:
            put(comma)
        first = False
        writer = text(type(item))
        if writer is not None:
            put(writer(item))
        else:
            _write(item, out, inner)
    put(newline + "]")


def _write_dict(value: dict, out: list[str], newline: str) -> None:
    if not value:
        out.append("{}")
        return
    inner = newline + "  "
    comma = "," + inner
    text = _TEXT.get
    keys = _KEYS
    put = out.append
    put("{" + inner)
    first = True
    for key, item in value.items():
        quoted = keys.get(key)
        if quoted is None:
            if not isinstance(key, str):
                raise _Unknown
            quoted = _quote(key) + ": "
            if len(keys) < _KEYS_KEPT:
                keys[key] = quoted
        writer = text(type(item))
        if writer is not None:
            put(quoted + writer(item) if first else comma + quoted + writer(item))
        else:
            put(quoted if first else comma + quoted)
            _write(item, out, inner)
        first = False
    put(newline + "}")
