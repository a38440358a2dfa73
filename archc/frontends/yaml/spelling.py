"""Values in messages spelled as a spec writes them: ``true``, ``false``, ``null``, not Python's
``True``, ``False``, ``None``."""
from __future__ import annotations

from typing import Any


def spelled(value: Any) -> str:
    """``value`` as YAML spells it, for a message: true, false, null, numbers, lists in brackets,
    strings quoted ('gelu') so that text is told apart from a number or a name."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(spelled, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{spelled(k)}: {spelled(v)}" for k, v in value.items()) + "}"
    return repr(value)
