"""Python source text from values and strings archc did not write: the one escaping path.

Everything that reaches a generated Python file (the PyTorch target) or a free-text field
of an output (ONNX doc_strings) comes through here, because its strings come from people
archc does not trust: spec files, ONNX files and their file names. Three kinds of text:

- **literals** (:func:`literal`): ``repr`` for strings, ints and bools; floats that are not
  finite as ``float("nan")``/``float("inf")`` (``repr`` gives the bare names ``nan``/``inf``);
  tuples and lists element by element. Nothing else is accepted.
- **identifiers** (:func:`is_identifier`, :func:`identifier`): ASCII identifiers that are not
  keywords, so that a name is never read differently (Python folds Unicode identifiers
  with NFKC, ``ﬁ`` becomes ``fi``); other names are mangled or reached through string keys.
- **one-line text** (:func:`one_line`, :func:`comment`): line breaks and every other control,
  format or separator character shown as an escape, so a comment ends where archc ends it.

This module is a leaf (standard library only): op definitions, which write PyTorch source
for their own op, and both lowerings use it.
"""
from __future__ import annotations

import ast
import builtins
import functools
import keyword
import math
import re
import unicodedata
from typing import Any

__all__ = ["literal", "expression", "is_identifier", "identifier", "shortened", "one_line", "plain_text", "comment",
           "UnsafeValue", "frozen", "BUILTIN_NAMES", "numbered_name", "formatted_name"]

#: The names Python binds before any code runs (``len``, ``sum``, ``pow``, ``input``, ``ValueError``):
#: a generated local variable of one of these names would hide the builtin from the code after it,
#: and linters flag it (ruff's A001). An attribute (``self.pow``) hides nothing.
BUILTIN_NAMES = frozenset(name for name in dir(builtins) if not name.startswith("_"))

_NOT_IDENTIFIER_CHAR = re.compile(r"[^0-9A-Za-z_]")
# Unicode categories that may not appear raw in a one-line text: controls (newlines, NUL,
# form feed), format characters (bidi overrides), line/paragraph separators, surrogates.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class UnsafeValue(TypeError):
    """A value that has no Python literal here (an object, a dict, a set...)."""


def literal(value: Any) -> str:
    """Python source that evaluates to ``value``: None, bool, int, float, str, or tuples/lists of them."""
    if type(value) is int:  # the common case (every hole of generated code), first
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise UnsafeValue(f"no Python literal for a {type(value).__name__}")


def frozen(value: Any) -> Any:
    """``value`` with every list, however nested, a tuple: a default argument that cannot be mutated
    (a list default is shared by every call)."""
    return tuple(map(frozen, value)) if isinstance(value, (list, tuple)) else value


def _string(value: str) -> str:
    """``repr`` of a string, in double quotes where that needs no more escapes (as ruff and
    black write strings, so generated files are already formatted)."""
    text = repr(value)
    if text[0] == '"':
        return text
    body, out, i = text[1:-1], [], 0
    if "\\" not in body and '"' not in body:  # nothing to re-escape (the common case): no loop
        return '"' + body + '"'
    while i < len(body):
        if body[i] == "\\":
            pair = body[i:i + 2]
            out.append("'" if pair == "\\'" else pair)
            i += 2
            continue
        out.append('\\"' if body[i] == '"' else body[i])
        i += 1
    if body.count('"') > body.count("\\'"):
        return text
    return '"' + "".join(out) + '"'


def numbered_name(prefix: str, variable: str, suffix: str, offset: int = 0) -> str:
    """An f-string that evaluates to ``prefix``, the value of the identifier ``variable`` (plus
    ``offset``: ``f"denselayer{i + 1}"``), then ``suffix`` (``f"encoder_layer_{i}"``): the texts'
    braces doubled, the rest escaped as :func:`literal` escapes a string."""
    return formatted_name([prefix, (variable, offset), suffix])


def formatted_name(pieces: list[str | tuple[str, int]]) -> str:
    """An f-string that evaluates to its ``pieces`` in turn: each text as it is, each (identifier,
    offset) as the identifier's value plus the offset (``f"block{stage_index}-{i}"``). The texts'
    braces are doubled, the rest escaped as :func:`literal` escapes a string."""
    variables, text = [], ""
    for piece in pieces:
        if isinstance(piece, str):
            if not piece.isprintable() or "\\" in piece:  # (no escape sequence to tell apart)
                raise UnsafeValue(f"a name with escapes: {piece!r}")
            text += piece.replace("{", "{{").replace("}", "}}")
            continue
        variable, offset = piece
        if not is_identifier(variable) or type(offset) is not int:
            raise UnsafeValue(f"not an identifier: {variable!r}")
        variables.append(variable if not offset else f"{variable} {'+' if offset > 0 else '-'} {abs(offset)}")
        text += "\x00"  # (never in a name: where the variable goes, once the texts are escaped)
    parts = _string(text).split("\\x00")
    return "f" + "".join(part + ("{" + variables[k] + "}" if k < len(variables) else "")
                         for k, part in enumerate(parts))


_EXPR_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call,
               ast.Name, ast.Load, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
               ast.Pow, ast.USub, ast.UAdd, ast.Not, ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
               ast.Gt, ast.GtE)
#: The spec's functions (archc.frontends.yaml.expr) that Python computes alike for every value the
#: spec accepts, as Python writes them: a builtin, or math's (the file then imports math). Not
#: round/sum/range/len: the spec bounds them (or they read lists), a class would not.
_FUNCTIONS = {"min": "min", "max": "max", "abs": "abs", "int": "int", "float": "float", "bool": "bool",
              "ceil": "math.ceil", "floor": "math.floor", "sqrt": "math.sqrt", "log": "math.log",
              "log2": "math.log2", "exp": "math.exp"}
#: The spec's constants (``true``, ``false``) as Python's
_CONSTANTS = {"true": True, "false": False, "True": True, "False": False}


def expression(text: str, names: set[str] | frozenset[str]) -> str | None:
    """A spec expression (``planes * expansion``, ``2 if downsample else 1``, ``int(c * ratio)``)
    as Python source over ``names`` that computes what the spec computes, or None where it uses
    anything else: arithmetic, comparisons, ``and``/``or``/``not``, ``a if c else b``, int, float
    and bool constants, those names and the functions Python computes alike (``sqrt`` written
    ``math.sqrt``). The source is regenerated from the checked syntax tree, never copied from the spec."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if not isinstance(node, _EXPR_NODES):
            return None
        if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.keywords
                                           or node.func.id not in _FUNCTIONS):
            return None
        if isinstance(node, ast.Name) and id(node) not in calls and node.id not in _CONSTANTS \
                and (node.id not in names or not is_identifier(node.id)):
            return None
        if isinstance(node, ast.Constant) and type(node.value) not in (int, float, bool):
            return None
    return ast.unparse(_Pythonic(calls).visit(tree))


class _Pythonic(ast.NodeTransformer):
    """The spec's function and constant names as Python writes them (``sqrt`` -> ``math.sqrt``)."""

    def __init__(self, calls: set[int]) -> None:
        self.calls = calls

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if id(node) in self.calls:
            return ast.Name(_FUNCTIONS[node.id], ast.Load())
        if node.id in _CONSTANTS:
            return ast.Constant(_CONSTANTS[node.id])
        return node


@functools.lru_cache(maxsize=65536)
def is_identifier(name: str) -> bool:
    """Whether ``name`` may be written bare as a Python name: ASCII, an identifier, not a keyword."""
    return name.isascii() and name.isidentifier() and not keyword.iskeyword(name)


def identifier(name: str, fallback: str = "v") -> str:
    """``name`` made into an ASCII identifier: other characters become ``_``, a leading digit
    gets ``_`` before it, a keyword ``_`` after it; an empty result becomes ``fallback``."""
    base = _NOT_IDENTIFIER_CHAR.sub("_", name)
    if not base:
        base = fallback
    if base[0].isdigit():
        base = "_" + base
    if keyword.iskeyword(base):
        base += "_"
    return base


_CAMEL_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def shortened(name: str, limit: int) -> str:
    """``name`` (an identifier) in at most ``limit`` characters, as a person shortens a long name:
    its first word and its last (what it is, and which one: ``pool_..._branch_1`` keeps ``_1``),
    then as many words after the first as fit. Words are ``_``-separated, or CamelCase words in a
    name without ``_`` (a class name). A name that fits is returned as it is."""
    if len(name) <= limit:
        return name
    camel = "_" not in name
    words = _CAMEL_WORD.findall(name) if camel else [w for w in name.split("_") if w]
    lead = "" if camel or not name.startswith("_") else "_"  # (``_0``: a name made from a number)
    joiner = "" if camel else "_"
    if not words:
        return name[:limit]
    first, last, middle = lead + words[0], words[-1] if len(words) > 1 else "", words[1:-1]
    if len(first) + len(joiner) + len(last) > limit:  # the two do not fit: one is cut
        if last and len(last) < limit // 2:  # a short last word (a number, ``query``) kept whole
            return first[:limit - len(joiner) - len(last)] + joiner + last
        return (first + joiner + last)[:limit].rstrip("_") or name[:limit]
    kept: list[str] = []
    size = len(first) + (len(joiner) + len(last) if last else 0)
    for word in middle:
        if size + len(joiner) + len(word) > limit:
            break
        kept.append(word)
        size += len(joiner) + len(word)
    return joiner.join([first, *kept, *([last] if last else [])])


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(text: str) -> str:
    """``text`` on one line: ``\\n``, ``\\r``, NUL, bidi overrides and other invisible or
    line-breaking characters are written as visible escapes (``\\x0a``), all else is kept."""
    text = str(text)
    if text.isascii() and text.isprintable():  # printable ASCII has none of those categories
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in str(text))


def plain_text(text: str) -> str:
    """Free text that keeps its line breaks (``\\n``) but nothing else invisible: each line
    through :func:`one_line` (for ONNX doc_strings, which other tools print or embed)."""
    return "\n".join(one_line(line) for line in str(text).replace("\r\n", "\n").split("\n"))


def comment(text: str) -> list[str]:
    """Comment lines (``# ...``) for free text: one comment line per line of ``text``, each made
    safe with :func:`one_line`, so nothing after a line break can become code."""
    return [("# " + one_line(line)).rstrip() for line in str(text).replace("\r\n", "\n").split("\n")]
