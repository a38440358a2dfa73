"""How a string written in a spec becomes a value: parameters of any type flow through blocks.

A field that names a parameter in scope stands for that parameter's value, whatever its
type, so a string parameter (an activation, an op or block name) passed two levels down
arrives as its value and not as the parameter's name. Everything else keeps its meaning:
``${expr}`` is replaced inside text, other strings of text fields are literal, and strings
of numeric fields are expressions.
"""
from __future__ import annotations

from typing import Any, Mapping

#: Marks "this text names no parameter in scope".
NOT_A_PARAMETER = object()


def parameter_value(raw: Any, env: Mapping[str, Any]) -> Any:
    """The value of the parameter that ``raw`` names, or :data:`NOT_A_PARAMETER`."""
    if isinstance(raw, str) and raw.isidentifier() and raw in env:
        return env[raw]
    return NOT_A_PARAMETER


def takes_literal_text(raw: str, default: Any) -> bool:
    """Whether a block argument ``raw`` (naming no parameter) is literal text, not an expression.

    Text is literal where the parameter's default is text, and for a required parameter
    (default null) when it is a bare word (``act: relu``): such a word names no value in
    scope, so as an expression it could only fail.
    """
    return isinstance(default, str) or (default is None and raw.isidentifier())


def chosen_kind(kind: str, env: Mapping[str, Any], known: Any) -> str:
    """The op or block a node's ``op:``/``block:`` names: itself if ``known(kind)``, else the
    value of a string parameter of that name (``op: act`` with ``act: gelu``)."""
    if known(kind):
        return kind
    value = env.get(kind) if kind.isidentifier() else None
    return value if isinstance(value, str) else kind
