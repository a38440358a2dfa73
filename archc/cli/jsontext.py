"""``json.dumps(value, indent=2)``, the same text made faster.

Python's ``json`` uses its C encoder only without ``indent``; with it, every token goes
through a chain of Python generators (a third of the time ``archc lint --format json``
spends on a 100k-node model). :func:`indented` writes the same characters with one
recursive call per container and the C string escaper, and hands anything it does not
know (a key that is not a string, a value of another type) back to ``json.dumps``, so the
text never differs from it.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote  # the C escaper json itself uses
from typing import Any

__all__ = ["indented"]

_INFINITY = float("inf")


class _Unknown(Exception):
    """A value :func:`_write` leaves to ``json.dumps``."""


def indented(value: Any) -> str:
    """``json.dumps(value, indent=2)``: the same text (keys in dict order, ASCII-escaped strings)."""
    out: list[str] = []
    try:
        _write(value, out.append, "\n")
    except _Unknown:
        return json.dumps(value, indent=2)
    return "".join(out)


def _write(value: Any, put, newline: str) -> None:
    """Append the JSON text of ``value`` to ``put``; ``newline`` starts a line at its depth.
    The tests of types follow ``json``'s encoder, in its order (bool before int)."""
    scalar = _scalar(value)
    if scalar is not None:
        put(scalar)
    elif isinstance(value, (list, tuple)):
        if not value:
            put("[]")
            return
        inner = newline + "  "
        texts = [_scalar(item) for item in value]
        if None not in texts:  # (most lists: names, counts)
            put("[" + inner + ("," + inner).join(texts) + newline + "]")
            return
        put("[" + inner)
        for k, (item, text) in enumerate(zip(value, texts)):
            if k:
                put("," + inner)
            if text is None:
                _write(item, put, inner)
            else:
                put(text)
        put(newline + "]")
    elif isinstance(value, dict):
        if not value:
            put("{}")
            return
        inner = newline + "  "
        put("{" + inner)
        comma = "," + inner
        first = True
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _Unknown
            text = _scalar(item)
            if text is None:
                put((_quote(key) if first else comma + _quote(key)) + ": ")
                _write(item, put, inner)
            else:
                put((_quote(key) if first else comma + _quote(key)) + ": " + text)
            first = False
        put(newline + "}")
    else:
        raise _Unknown


def _scalar(value: Any) -> str | None:
    """The text of a string, number, boolean or null; None for anything else."""
    kind = type(value)
    if kind is str:
        return _quote(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is float:
        return _float(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    return None


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)
