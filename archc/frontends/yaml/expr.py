"""A small, safe evaluator for the arithmetic written in specs.

Specs may compute values from parameters: ``channels * 2``, ``depth // 2``,
``stride != 1 or channels(x) != planes``, ``4 if wide else 2``. We parse with
:mod:`ast` and interpret a fixed whitelist of node types ourselves; Python's
``eval`` is never called, attribute access is impossible, and only the functions
in :data:`FUNCTIONS` (plus tensor queries the caller provides) can be called.

Every value an expression produces is bounded by :class:`archc.limits.Limits`
(integer bits, string and list sizes, nesting depth, evaluation steps), and an
operation whose result would break a bound is refused *before* it is computed
(``9 ** 64 ** 64``, ``[0] * 10**9``). Because the bound is on values, not on single
operations, a chain of ``let:`` names cannot build a huge value step by step either.
Complex and non-finite results are refused: no spec field means them.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
from typing import Any, Callable, Mapping

from archc.errors import did_you_mean
from archc.frontends.yaml.spelling import spelled
from archc.limits import DEFAULT_LIMITS, Limits


class ExprError(Exception):
    """An expression is invalid; ``offset`` is the 0-based column inside its text; ``unparsed``: the
    text is no expression at all (a syntax error); ``about``: the part of the text whose value is wrong
    (``widths`` of ``widths[4]``), whose parameters' places the message adds (Scope.origin_hint)."""

    def __init__(self, message: str, offset: int = 0, hint: str | None = None, unparsed: bool = False,
                 about: str | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.hint = hint
        self.unparsed = unparsed
        self.about = about


class UnknownValue(Exception):
    """An expression used a name whose own definition failed (that error is already reported)."""


class _Unknown:
    """The value of a name whose definition failed; using it raises :class:`UnknownValue`."""

    def __repr__(self) -> str:  # pragma: no cover
        return "<unknown>"


UNKNOWN = _Unknown()


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

#: Pure functions a spec may call (``range``, ``sum`` and ``round`` are bounded versions).
FUNCTIONS: tuple[str, ...] = ("min", "max", "abs", "round", "int", "float", "bool", "len", "sum",
                              "ceil", "floor", "sqrt", "log", "log2", "exp", "range")
_PLAIN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "int": int, "float": float, "bool": bool,
    "len": len, "ceil": math.ceil, "floor": math.floor, "sqrt": math.sqrt,
    "log": math.log, "log2": math.log2, "exp": math.exp,
}
#: The math functions defined on part of the numbers only -> (what goes wrong outside it, what they
#: take), for the message that replaces Python's bare "math domain error" / "math range error".
_MATH_DOMAINS: dict[str, tuple[str, str]] = {
    "sqrt": ("is undefined", "a number >= 0"),
    "log": ("is undefined", "a number > 0 and, as log(x, base), a base > 0 other than 1"),
    "log2": ("is undefined", "a number > 0"),
    "exp": ("is too large for a float", "a number up to about 709.78"),
}
#: what an unknown ``index`` is: bound only where a node is repeated
REPETITION_NUMBER_HINT = ("'index' is a repeated node's repetition number: a node's fields ('in:', its "
                          "attributes, 'instance_name') read it where the node has 'repeat:'")
CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_MAX_ROUND_DIGITS = 400  # round(x, -10**9) would compute 10**(10**9)


#: a module list's item written as in ``in:`` (``convs.0``)
_LIST_ITEM = re.compile(r"\b([A-Za-z_]\w*)\.(\d+)\b")


def parse(text: str) -> ast.expr:
    """Parse an expression, reporting syntax errors with their column."""
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        offset = max((exc.offset or 1) - 1, 0)
        item = _LIST_ITEM.search(text.strip())  # (`convs.0` is a name in `in:`, a syntax error in an expression)
        hint = f"a module list's item is {item[1]}[{item[2]}] in an expression" if item else None
        raise ExprError(f"invalid expression '{text.strip()}': {exc.msg}", offset, hint, unparsed=True) from None
    except (RecursionError, MemoryError):
        raise ExprError("expression nested too deeply to parse") from None


def value_size(value: Any) -> int:
    """Characters of a string, or items of a list counted through nested lists (shared ones
    once per use, memoised so ``[[0] * 10**5] * 10**5`` costs 10**5 steps, not 10**10)."""
    memo: dict[int, int] = {}

    def size(v: Any) -> int:
        if isinstance(v, str):
            return len(v)
        if not isinstance(v, (list, tuple)):
            return 1
        key = id(v)
        if key not in memo:
            memo[key] = len(v) + sum(size(item) for item in v if isinstance(item, (list, tuple, str)))
        return memo[key]

    return size(value)


@functools.lru_cache(maxsize=4096)
def names_in(text: str) -> frozenset[str]:
    """The names a well-formed expression reads, from its cached tree. Cached too: a spec repeats
    its few expressions at every block instance, and walking one again cost a third of loading
    ResNet-50."""
    return frozenset(n.id for n in ast.walk(_parsed(text)[0]) if isinstance(n, ast.Name))


def first_read(text: str, names: frozenset[str] | set[str]) -> tuple[str, int] | None:
    """The first of ``names`` that the expression ``text`` reads, with its column; None where it reads
    none of them or is no expression (evaluating it reports that)."""
    try:
        tree = _parsed(text)[0]
    except ExprError:
        return None
    found = [(n.col_offset, n.id) for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names]
    if not found:
        return None
    column, name = min(found)
    return name, column


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> tuple[ast.expr, int]:
    """An expression's tree and nesting depth; specs repeat the same few texts in every instance,
    and trees are never modified, so each text is parsed once."""
    tree = parse(text)
    return tree, _depth(tree)


def _depth(tree: ast.AST) -> int:
    """Nesting depth of an expression tree, measured without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


#: a spec's expressions together may take this many times ``max_expr_work`` steps
SPEC_WORK_FACTOR = 20


class WorkExhausted(ExprError):
    """The spec's expressions together took more steps than :class:`WorkMeter` allows: elaboration stops."""


class WorkMeter:
    """The evaluation steps of every expression of one spec, together: within the limit on one
    expression, a spec of many (a ``let`` in a block repeated 5,000 times, functions calling functions)
    could otherwise take minutes."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.total = SPEC_WORK_FACTOR * limits.max_expr_work
        self.spent = 0

    def spend(self, steps: int, col: int) -> None:
        self.spent += steps
        if self.spent > self.total:
            raise WorkExhausted(self.limits.exceeded(
                "max_expr_work", f"the spec's expressions together take over {self.total:,} steps, "
                f"{SPEC_WORK_FACTOR} times what one may take"), col)


class Evaluator:
    """Evaluates expressions against a mapping of names, within :class:`Limits`.

    ``tensor_functions`` are calls whose single argument names a tensor rather than
    a value, e.g. ``channels(x)``; they receive the name as a string.
    """

    def __init__(self, names: Mapping[str, Any],
                 tensor_functions: Mapping[str, Callable[[str], Any]] | None = None,
                 limits: Limits = DEFAULT_LIMITS,
                 spec_functions: Mapping[str, Callable[..., Any]] | None = None,
                 meter: WorkMeter | None = None) -> None:
        self.names = names
        #: the spec's steps in all, shared by its evaluators (None: this evaluator's expressions only)
        self.meter = meter
        self.tensor_functions = dict(tensor_functions or {})
        self.limits = limits
        self.functions: dict[str, Callable[..., Any]] = {
            **_PLAIN_FUNCTIONS, "range": self._range, "sum": self._sum, "round": _round}
        self._work = 0
        # -- spec-defined pure functions (archc.frontends.yaml.functions), called with values --
        self.spec_functions = dict(spec_functions or {})

    def evaluate(self, text: str) -> Any:
        leading = len(text) - len(text.lstrip())
        try:
            if len(text) > self.limits.max_value_size:
                raise ExprError(self.limits.exceeded("max_value_size", f"an expression of {len(text):,} characters"))
            tree, depth = _parsed(text)
            if depth > self.limits.max_expr_depth:
                raise ExprError(self.limits.exceeded("max_expr_depth", "the expression nests too deeply"))
            self._work = 0
            return self._eval(tree)
        except ExprError as exc:
            exc.offset += leading
            raise
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ExprError(f"cannot evaluate '{text.strip()}': {exc}", leading) from None

    # -- bounds ---------------------------------------------------------------------------
    def _spend(self, steps: int, node: ast.AST) -> None:
        self._work += steps
        if self._work > self.limits.max_expr_work:
            raise ExprError(self.limits.exceeded("max_expr_work", "the expression takes too long to evaluate"),
                            getattr(node, "col_offset", 0))
        if self.meter is not None:
            self.meter.spend(steps, getattr(node, "col_offset", 0))

    def _bounded(self, value: Any, node: ast.AST) -> Any:
        """``value`` if it is within the limits; ExprError naming the limit otherwise."""
        col = getattr(node, "col_offset", 0)
        if isinstance(value, complex):
            raise ExprError(f"'{ast.unparse(node)}' gives a complex number", col)
        if isinstance(value, float) and not math.isfinite(value):
            raise ExprError(f"'{ast.unparse(node)}' gives {value} (not a finite number)", col)
        if isinstance(value, int) and value.bit_length() > self.limits.max_int_bits:
            raise ExprError(self.limits.exceeded("max_int_bits", f"an integer of {value.bit_length():,} bits"), col)
        if isinstance(value, (str, list, tuple)):
            self._check_size(value_size(value), node)
        return value

    def _check_size(self, size: int, node: ast.AST) -> None:
        if size > self.limits.max_value_size:
            raise ExprError(self.limits.exceeded("max_value_size", f"a value of {size:,} characters or items"),
                            getattr(node, "col_offset", 0))
        self._spend(size, node)

    def _before_binop(self, op: ast.operator, left: Any, right: Any, node: ast.AST) -> None:
        """Refuse an operation whose result would break a limit, before computing it."""
        ints = all(isinstance(v, int) for v in (left, right))
        if isinstance(op, ast.Pow) and ints and right > 0 and \
                max(abs(left).bit_length() - 1, 0) * right >= self.limits.max_int_bits:
            raise ExprError(self.limits.exceeded("max_int_bits", "the power's result"), node.col_offset)
        if isinstance(op, ast.Mod) and isinstance(left, str):
            raise ExprError("'%' formatting of strings is not supported in a spec expression "
                            "(string fields take ${...})", node.col_offset)
        if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)) and isinstance(right, (int, float)) and right == 0:
            divisor = node.right  # type: ignore[attr-defined]
            # (a parameter's value is said with where it was given: Scope.origin_hint of `about`)
            named = "" if isinstance(divisor, (ast.Constant, ast.Name)) else f" ('{ast.unparse(divisor)}' is 0)"
            raise ExprError(f"cannot evaluate '{ast.unparse(node)}': division by zero{named}", divisor.col_offset,
                            about=ast.unparse(divisor))
        if isinstance(op, ast.Add) and all(isinstance(v, (list, tuple, str)) for v in (left, right)):
            self._check_size(value_size(left) + value_size(right), node)
        if isinstance(op, ast.Mult):
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (list, tuple, str)) and isinstance(n, int):
                    self._check_size(value_size(seq) * max(n, 0), node)

    # -- evaluation -----------------------------------------------------------------------
    def _eval(self, node: ast.AST) -> Any:
        self._spend(1, node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float, str, bool)) or node.value is None:
                return self._bounded(node.value, node)
            raise ExprError("unsupported constant", node.col_offset)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self._eval(node.left), self._eval(node.right)
            self._before_binop(node.op, left, right, node)
            return self._bounded(_BINOPS[type(node.op)](left, right), node)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return self._bounded(_UNARY[type(node.op)](self._eval(node.operand)), node)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node)
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
            return self._bounded([self._eval(e) for e in node.elts], node)
        if isinstance(node, ast.Subscript):
            container = self._eval(node.value)
            index = self._slice(node.slice) if isinstance(node.slice, ast.Slice) else self._eval(node.slice)
            return _item(container, index, node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            return self._call(node)
        queries = f", the tensor queries {', '.join(sorted(self.tensor_functions))}" if self.tensor_functions else ""
        raise ExprError(f"'{ast.unparse(node)}' is not allowed in a spec expression (numbers, strings, lists, "
                        "indexing and slices, arithmetic, comparisons, 'and'/'or'/'not', 'a if c else b', "
                        f"the functions {', '.join(sorted(FUNCTIONS))}{queries} and the spec's own functions "
                        "are)", getattr(node, "col_offset", 0))

    def _slice(self, node: ast.Slice) -> slice:
        """``a[lo:hi:step]``'s slice: integers or nothing (a slice is never longer than what it cuts)."""
        parts = [None if part is None else self._eval(part) for part in (node.lower, node.upper, node.step)]
        if not all(p is None or (isinstance(p, int) and not isinstance(p, bool)) for p in parts):
            raise ExprError(f"slice bounds must be integers, got '{ast.unparse(node)}'", node.col_offset)
        if parts[2] == 0:
            raise ExprError(f"a slice's step must not be 0, got '{ast.unparse(node)}'", node.col_offset)
        return slice(*parts)

    def _name(self, node: ast.Name) -> Any:
        if node.id in self.names:
            value = self.names[node.id]
            if value is UNKNOWN:
                raise UnknownValue(node.id)
            return value
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        known = list(self.names) + list(FUNCTIONS) + list(self.tensor_functions) + list(self.spec_functions)
        hint = REPETITION_NUMBER_HINT if node.id == "index" else did_you_mean(node.id, known)
        raise ExprError(f"unknown name '{node.id}'", node.col_offset, hint)

    def _boolop(self, node: ast.BoolOp) -> Any:
        stop_when = not isinstance(node.op, ast.And)  # 'and' stops at a false value, 'or' at a true one
        value: Any = not stop_when
        for v in node.values:
            value = self._eval(v)
            if bool(value) == stop_when:
                return value
        return value

    def _call(self, node: ast.Call) -> Any:
        fname = node.func.id  # type: ignore[attr-defined]
        if fname in self.tensor_functions:
            return self._tensor_call(fname, node)
        if fname in self.functions:
            args = [self._eval(a) for a in node.args]
            try:
                value = self.functions[fname](*args)
            except (ValueError, ArithmeticError) as exc:
                if fname not in _MATH_DOMAINS or not all(isinstance(a, (int, float)) for a in args):
                    raise
                # math.log(8, 1) divides by log(1) = 0; the others say "math domain/range error"
                problem, domain = _MATH_DOMAINS[fname]
                shown = ", ".join(repr(a) for a in args)
                raise ExprError(f"{fname}({shown}) {problem}: {fname} takes {domain}", node.col_offset) from None
            return self._bounded(value, node)
        if fname in self.spec_functions:  # a spec's own function; errors inside name it
            args = [self._eval(a) for a in node.args]
            try:
                return self._bounded(self.spec_functions[fname](*args), node)
            except ExprError as exc:
                raise ExprError(str(exc), node.col_offset, exc.hint) from None
        known = list(FUNCTIONS) + list(self.tensor_functions) + list(self.spec_functions)
        raise ExprError(f"unknown function '{fname}'", node.col_offset, did_you_mean(fname, known))

    def _tensor_call(self, fname: str, node: ast.Call) -> Any:
        if len(node.args) != 1:
            raise ExprError(f"{fname}() takes one tensor name", node.col_offset)
        arg = node.args[0]
        if isinstance(arg, ast.Name):
            ref = arg.id
        elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            ref = arg.value
        elif isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name) \
                and isinstance(arg.slice, ast.Constant) and type(arg.slice.value) is int:
            ref = f"{arg.value.id}.{arg.slice.value}"  # a module list's item, as PyTorch indexes it: convs[0]
        else:
            raise ExprError(f"{fname}() takes a tensor name, like {fname}(x)", arg.col_offset)
        try:
            return self.tensor_functions[fname](ref)
        except KeyError:
            raise ExprError(f"{fname}(): unknown tensor '{ref}'", arg.col_offset) from None

    # -- bounded versions of functions that can build big values ----------------------------
    def _range(self, *args: int) -> list[int]:
        r = range(*args)
        if len(r) > self.limits.max_value_size:
            raise ValueError(self.limits.exceeded("max_value_size", f"range of {len(r):,} items"))
        return list(r)

    def _sum(self, items: Any, start: Any = 0) -> Any:
        if isinstance(start, (list, tuple, str)):  # concatenation: size known before building
            total = value_size(start) + sum(value_size(i) for i in items)
            if total > self.limits.max_value_size:
                raise ValueError(self.limits.exceeded("max_value_size", f"a sum of {total:,} items"))
        return sum(items, start)


def _item(container: Any, index: Any, node: ast.Subscript) -> Any:
    """``container[index]``; an ExprError at the subscript saying what was indexed, and what it is,
    where the indexing is wrong."""
    indexed, at = ast.unparse(node.value), node.slice.col_offset
    if not isinstance(container, (list, tuple, str)):
        raise ExprError(f"cannot index '{indexed}': it is {_described(container)}, not a list or a string",
                        at, about=indexed)
    if isinstance(index, slice):
        return container[index]
    if not isinstance(index, int) or isinstance(index, bool):
        raise ExprError(f"an index of '{indexed}' must be an integer, got {spelled(index)}", at,
                        about=ast.unparse(node.slice))
    if not -len(container) <= index < len(container):
        items = f"a string of {len(container)} characters" if isinstance(container, str) \
            else f"a list of {len(container)} items"
        raise ExprError(f"index {index} is out of range for '{indexed}', {items}", at, about=ast.unparse(node))
    return container[index]


def _described(value: Any) -> str:
    """A value that is no list, with its type, for a message: ``the integer 2``, ``null``."""
    if value is None or isinstance(value, bool):
        return spelled(value)
    kind = "integer" if isinstance(value, int) else "number" if isinstance(value, float) else type(value).__name__
    return f"the {kind} {spelled(value)}"


def _round(number: Any, ndigits: Any = None) -> Any:
    if isinstance(ndigits, int) and abs(ndigits) > _MAX_ROUND_DIGITS:
        raise ValueError(f"round() takes at most {_MAX_ROUND_DIGITS} digits")
    return round(number) if ndigits is None else round(number, ndigits)
