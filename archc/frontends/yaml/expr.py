"""A small, safe evaluator for the arithmetic written in specs.

Specs may compute values from parameters: ``channels * 2``, ``depth // 2``,
``stride != 1 or channels(x) != planes``, ``4 if wide else 2``. We parse with
:mod:`ast` and interpret a fixed whitelist of node types ourselves; Python's
``eval`` is never called, attribute access is impossible, and only the functions
in :data:`FUNCTIONS` (plus tensor queries the caller provides) can be called.
"""
from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable, Mapping

from archc.errors import did_you_mean


class ExprError(Exception):
    """An expression is invalid; ``offset`` is the 0-based column inside its text."""

    def __init__(self, message: str, offset: int = 0, hint: str | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.hint = hint


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}

#: Pure functions a spec may call.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "round": round, "int": int, "float": float, "bool": bool,
    "len": len, "sum": sum, "ceil": math.ceil, "floor": math.floor, "sqrt": math.sqrt,
    "range": lambda *a: _bounded_range(*a),
}
_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_MAX_POW = 64  # keeps `2 ** 10**9` from freezing the tool
_MAX_LEN = 100_000  # keeps `[0] * 10**9` and `range(10**9)` from exhausting memory


def _sequence_times_big(a: Any, b: Any) -> bool:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (list, str)) and isinstance(n, int) and n * max(len(seq), 1) > _MAX_LEN:
            return True
    return False


def _bounded_range(*args: int) -> list[int]:
    r = range(*args)
    if len(r) > _MAX_LEN:
        raise ValueError(f"range of {len(r)} items is longer than {_MAX_LEN}")
    return list(r)


def parse(text: str) -> ast.expr:
    """Parse an expression, reporting syntax errors with their column."""
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        offset = max((exc.offset or 1) - 1, 0)
        raise ExprError(f"invalid expression '{text.strip()}': {exc.msg}", offset) from None


class Evaluator:
    """Evaluates expressions against a mapping of names.

    ``tensor_functions`` are calls whose single argument names a tensor rather than
    a value, e.g. ``channels(x)``; they receive the name as a string.
    """

    def __init__(self, names: Mapping[str, Any],
                 tensor_functions: Mapping[str, Callable[[str], Any]] | None = None) -> None:
        self.names = names
        self.tensor_functions = dict(tensor_functions or {})

    def evaluate(self, text: str) -> Any:
        leading = len(text) - len(text.lstrip())
        try:
            return self._eval(parse(text))
        except ExprError as exc:
            exc.offset += leading
            raise
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ExprError(f"cannot evaluate '{text.strip()}': {exc}", leading) from None

    def _eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float, str, bool)) or node.value is None:
                return node.value
            raise ExprError("unsupported constant", node.col_offset)
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            known = list(self.names) + list(FUNCTIONS) + list(self.tensor_functions)
            raise ExprError(f"unknown name '{node.id}'", node.col_offset, did_you_mean(node.id, known))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self._eval(node.left), self._eval(node.right)
            if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > _MAX_POW:
                raise ExprError("exponent too large", node.col_offset)
            if isinstance(node.op, ast.Mult) and _sequence_times_big(left, right):
                raise ExprError(f"repeating a list or string more than {_MAX_LEN} times", node.col_offset)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self._eval(node.operand))
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                value = True
                for v in node.values:
                    value = self._eval(v)
                    if not value:
                        return value
                return value
            value = False
            for v in node.values:
                value = self._eval(v)
                if value:
                    return value
            return value
        if isinstance(node, ast.Compare):
            left = self._eval(node.left)
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self._eval(node.body) if self._eval(node.test) else self._eval(node.orelse)
        if isinstance(node, (ast.Tuple, ast.List)):
            return [self._eval(e) for e in node.elts]
        if isinstance(node, ast.Subscript):
            container = self._eval(node.value)
            index = self._eval(node.slice)
            try:
                return container[index]
            except (IndexError, KeyError, TypeError) as exc:
                raise ExprError(f"bad index: {exc}", node.col_offset) from None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            fname = node.func.id
            if fname in self.tensor_functions:
                if len(node.args) != 1:
                    raise ExprError(f"{fname}() takes one tensor name", node.col_offset)
                arg = node.args[0]
                if isinstance(arg, ast.Name):
                    ref = arg.id
                elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    ref = arg.value
                else:
                    raise ExprError(f"{fname}() takes a tensor name, like {fname}(x)", arg.col_offset)
                try:
                    return self.tensor_functions[fname](ref)
                except KeyError:
                    raise ExprError(f"{fname}(): unknown tensor '{ref}'", arg.col_offset) from None
            if fname in FUNCTIONS:
                return FUNCTIONS[fname](*[self._eval(a) for a in node.args])
            known = list(FUNCTIONS) + list(self.tensor_functions)
            raise ExprError(f"unknown function '{fname}'", node.col_offset, did_you_mean(fname, known))
        raise ExprError(f"'{ast.unparse(node)}' is not allowed in a spec expression "
                        "(arithmetic, comparisons, 'and'/'or'/'not', 'a if c else b' and "
                        f"the functions {', '.join(sorted(FUNCTIONS))} are)", getattr(node, "col_offset", 0))
