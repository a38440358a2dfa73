"""Arithmetic on dimensions: the one place where a size computed from symbolic sizes is made.

A dim is an ``int`` or a ``str``. A str is a plain symbol (``"N"``, ``"H"``), kept exactly as
written, or an integer expression over symbols made by an op's shape inference: ``+``, ``-``,
``*`` and floor division ``//`` by a positive integer, what sliding-window, transposed-conv,
padding, slicing and integer-scale resizing formulas need. Every expression is held in one
canonical text, so a size computed the same way prints the same:

* a sum of terms, highest degree first, the constant last (``T + 1``, ``H*W + 3``); a term is
  its factors and then its coefficient (``N*64``, ``(H//2)*2``), as reshapes wrote them before;
* a floor division keeps the remainder of every coefficient and of the constant in ``[0, k)``
  and takes out what divides (``((H - 1)//2) + 1`` is ``(H + 1)//2``, ``(2*H + 3)//2`` is
  ``H + 1``), divides through common factors (``(2*H)//4`` is ``H//2``) and merges nested
  divisions (``(H//2)//2`` is ``H//4``);
* an expression that is an int is that int.

Text that is no such expression (an exporter's ``Max(1, s0)``, a name with a space) stays an
opaque symbol: it passes ops that keep sizes, and arithmetic on it is a :class:`ShapeError`.

Two dims are :func:`equal` when they agree at every size, decided exactly: on each residue class
of the symbols modulo the divisions' period the expressions are polynomials, so agreeing on
(degree + 1) points per symbol and class proves it. Where two sizes meet (an ``add``, a ``concat``),
ops ask :func:`agree`: a spec elaboration (inside :func:`strict_sizes`) demands equality at every
size and :func:`mismatch` says where they differ; an imported model is trusted where they agree at
the probe sizes (:func:`probe`: each symbol its own large size with many factors of two, so an
encoder's ``(H//2)*2`` is the ``H`` it is added to, and ``H`` is not ``W``). Analyses that order
sizes (finer, coarser) compare probe values. Pure; no third-party imports.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import math
import zlib
from typing import Callable, Iterator, Mapping

from archc.errors import ShapeError
from archc.ir.types import Dim

#: a polynomial over atoms: monomial (sorted atom texts, repeated for powers) -> coefficient
_Poly = dict[tuple[str, ...], int]
#: the same, hashable: sorted (monomial, coefficient) pairs
_Frozen = tuple[tuple[tuple[str, ...], int], ...]

#: each floor-division atom's text -> (its dividend, divisor)
_FLOORS: dict[str, tuple[_Frozen, int]] = {}
#: longest text parsed as an expression (anything longer stays an opaque symbol)
MAX_TEXT = 2000
#: most evaluations :func:`equal` spends on one question before it answers "not shown equal"
MAX_CHECKS = 20000

_strict: contextvars.ContextVar[bool] = contextvars.ContextVar("archc_strict_sizes", default=False)


class _NotAnExpression(Exception):
    pass


# -- polynomials ---------------------------------------------------------------------------

def _add_into(out: _Poly, p: Mapping[tuple[str, ...], int], factor: int = 1) -> _Poly:
    for m, c in p.items():
        total = out.get(m, 0) + c * factor
        if total:
            out[m] = total
        else:
            out.pop(m, None)
    return out


def _times(a: Mapping[tuple[str, ...], int], b: Mapping[tuple[str, ...], int]) -> _Poly:
    out: _Poly = {}
    for (ma, ca), (mb, cb) in itertools.product(a.items(), b.items()):
        _add_into(out, {tuple(sorted(ma + mb, key=_atom_order)): ca * cb})
    return out


def _atom_order(atom: str) -> tuple[bool, str]:
    """Symbols before divisions in a product (``N*(H//2)*(W//2)``), each kind by its text."""
    return (atom in _FLOORS, atom)


def _floordiv(p: Mapping[tuple[str, ...], int], k: int) -> _Poly:
    """``p // k`` in normal form: what ``k`` divides taken out, the rest one floor atom."""
    if k == 1:
        return dict(p)
    whole: _Poly = {}
    rest: _Poly = {}
    for m, c in p.items():
        q, r = divmod(c, k)
        if q:
            whole[m] = q
        if r:
            rest[m] = r
    constant = rest.pop((), 0)
    if not rest:  # (a constant in [0, k) floors to nothing)
        return whole
    g = math.gcd(k, *rest.values())
    if g > 1:  # (g*x + r) // (g*m) == (x + r // g) // m for integer x
        rest = {m: c // g for m, c in rest.items()}
        constant, k = constant // g, k // g
    (m, c), = rest.items() if len(rest) == 1 else ((None, 0),)
    if c == 1 and m is not None and len(m) == 1 and m[0] in _FLOORS:
        inner, k2 = _FLOORS[m[0]]  # (p2 // k2 + c) // k == (p2 + c*k2) // (k2*k)
        return _add_into(whole, _floordiv(_add_into(dict(inner), {(): constant * k2}), k2 * k))
    if constant:
        rest[()] = constant
    atom = _floor_text(rest, k)
    _FLOORS.setdefault(atom, (_freeze(rest), k))
    return _add_into(whole, {(atom,): 1})


def _freeze(p: Mapping[tuple[str, ...], int]) -> _Frozen:
    return tuple(sorted(p.items()))


# -- text ----------------------------------------------------------------------------------

def _order(m: tuple[str, ...]) -> tuple:
    return (-len(m), m)


def _term(m: tuple[str, ...], c: int, leading: bool) -> str:
    """One term's text without its sign: factors, then the coefficient (``(H//2)*2``); a division alone
    in parentheses where a leading minus would bind to its dividend (``-(H//2)``, not ``-H//2``)."""
    if not m:
        return str(abs(c))
    alone = len(m) == 1 and (c == 1 or (c == -1 and not leading))
    factors = [a if alone or a not in _FLOORS else f"({a})" for a in m]
    return "*".join(factors) + ("" if abs(c) == 1 else f"*{abs(c)}")


def _text(p: Mapping[tuple[str, ...], int]) -> str:
    parts = []
    for i, m in enumerate(sorted(p, key=_order)):
        c = p[m]
        sign = ("-" if c < 0 else "") if i == 0 else (" - " if c < 0 else " + ")
        parts.append(sign + _term(m, c, i == 0))
    return "".join(parts)


def _floor_text(p: Mapping[tuple[str, ...], int], k: int) -> str:
    inner = _text(p)
    (m, c), = p.items() if len(p) == 1 else (((), 0),)
    plain = c == 1 and len(m) == 1 and m[0] not in _FLOORS  # (a lone symbol: H//2)
    return f"{inner}//{k}" if plain else f"({inner})//{k}"


@functools.lru_cache(maxsize=65536)
def _dim_of(frozen: _Frozen) -> Dim:
    p = dict(frozen)
    if not p:
        return 0
    if list(p) == [()]:
        return p[()]
    return _text(p)


def _dim(p: Mapping[tuple[str, ...], int]) -> Dim:
    return _dim_of(_freeze(p))


# -- parsing -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=65536)
def _parsed(text: str) -> _Frozen | None:
    """The polynomial a dim's text stands for; None for text that is no expression (opaque)."""
    if text.isidentifier():
        return (((text,), 1),)
    if len(text) > MAX_TEXT:
        return None
    import ast

    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _freeze(_from_ast(tree.body, ast))
    except (SyntaxError, ValueError, RecursionError, MemoryError, _NotAnExpression):
        return None


def _from_ast(node, ast) -> _Poly:
    if isinstance(node, ast.Name):
        return {(node.id,): 1}
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return {(): node.value} if node.value else {}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _from_ast(node.operand, ast)
        return inner if isinstance(node.op, ast.UAdd) else {m: -c for m, c in inner.items()}
    if isinstance(node, ast.BinOp):
        left, right = _from_ast(node.left, ast), _from_ast(node.right, ast)
        if isinstance(node.op, ast.Add):
            return _add_into(left, right)
        if isinstance(node.op, ast.Sub):
            return _add_into(left, right, -1)
        if isinstance(node.op, ast.Mult):
            return _times(left, right)
        if isinstance(node.op, ast.FloorDiv) and list(right) == [()] and right[()] > 0:
            return _floordiv(left, right[()])
    raise _NotAnExpression()


def _poly(d: Dim) -> _Poly:
    """The polynomial of a dim; a ShapeError for an opaque symbol, which archc cannot compute with."""
    if type(d) is int:
        return {(): d} if d else {}
    frozen = _parsed(d)
    if frozen is None:
        raise ShapeError(f"symbolic size '{d}' is no name or expression archc computes with (names, whole "
                         "numbers, + - * and // by a positive whole number)")
    return dict(frozen)


def canonical(d: Dim) -> Dim:
    """``d`` in canonical form (an int where it is constant); a plain symbol, or text that is no
    expression, as it is."""
    if type(d) is int or d.isidentifier():
        return d
    frozen = _parsed(d)
    return d if frozen is None else _dim_of(frozen)


def is_expression(d: Dim) -> bool:
    """Whether ``d`` is symbolic text archc computes with (a symbol or an expression, not opaque)."""
    return type(d) is not int and _parsed(d) is not None


# -- arithmetic ----------------------------------------------------------------------------

def add(a: Dim, b: Dim) -> Dim:
    """``a + b``."""
    if type(a) is int and type(b) is int:
        return a + b
    return _dim(_add_into(_poly(a), _poly(b)))


def sub(a: Dim, b: Dim) -> Dim:
    """``a - b``."""
    if type(a) is int and type(b) is int:
        return a - b
    return _dim(_add_into(_poly(a), _poly(b), -1))


def mul(a: Dim, b: Dim) -> Dim:
    """``a * b``."""
    if type(a) is int and type(b) is int:
        return a * b
    return _dim(_times(_poly(a), _poly(b)))


def product(dims) -> Dim:
    """The product of ``dims`` (1 for none)."""
    out: Dim = 1
    for d in dims:
        out = mul(out, d)
    return out


def floordiv(a: Dim, k: int) -> Dim:
    """``a // k`` for a positive int ``k``."""
    if k < 1:
        raise ValueError(f"floor division by {k}: the divisor must be a positive int")
    if type(a) is int:
        return a // k
    return _dim(_floordiv(_poly(a), k))


def ceildiv(a: Dim, k: int) -> Dim:
    """``ceil(a / k)`` for a positive int ``k``: ``(a + k - 1) // k``."""
    return floordiv(add(a, k - 1), k)


def divide(a: Dim, b: Dim) -> Dim | None:
    """``a / b`` where ``b`` divides ``a`` exactly (a monomial dividing every term: ``N*64 / 64`` is
    ``N``, ``H*W / W`` is ``H``); None where it does not."""
    if type(a) is int and type(b) is int:
        return a // b if b and a % b == 0 else None
    pa, pb = _poly(a), _poly(b)
    if pa == pb and pa:
        return 1
    if len(pb) != 1:
        return None
    (mb, cb), = pb.items()
    out: _Poly = {}
    for m, c in pa.items():
        left = list(m)
        for atom in mb:
            if atom not in left:
                return None
            left.remove(atom)
        if c % cb:
            return None
        out[tuple(left)] = c // cb
    return _dim(out)


# -- evaluation ----------------------------------------------------------------------------

def symbols(d: Dim) -> tuple[str, ...]:
    """The symbols ``d`` reads, sorted (an opaque dim is its own symbol)."""
    if type(d) is int:
        return ()
    frozen = _parsed(d)
    return (d,) if frozen is None else _symbols_of(frozen)


@functools.lru_cache(maxsize=65536)
def _symbols_of(frozen: _Frozen) -> tuple[str, ...]:
    found: set[str] = set()
    for m, _ in frozen:
        for atom in m:
            found.update(_symbols_of(_FLOORS[atom][0]) if atom in _FLOORS else (atom,))
    return tuple(sorted(found))


def evaluate(d: Dim, size: Callable[[str], int] | Mapping[str, int]) -> int:
    """The value of ``d`` with each symbol's size from ``size`` (a mapping, or a function of the
    symbol's name). An opaque dim is looked up whole."""
    if type(d) is int:
        return d
    lookup = size.__getitem__ if isinstance(size, Mapping) else size
    frozen = _parsed(d)
    return lookup(d) if frozen is None else _value(frozen, lookup)


def _value(frozen: _Frozen, lookup: Callable[[str], int]) -> int:
    total = 0
    for m, c in frozen:
        term = c
        for atom in m:
            if atom in _FLOORS:
                inner, k = _FLOORS[atom]
                term *= _value(inner, lookup) // k
            else:
                term *= lookup(atom)
        total += term
    return total


#: every probe size is this times a number from 1 to 65521: many factors of 2 (and 3, 5, 7), so that
#: sizes pooled down and brought back up meet again, as they do at the sizes a model is used at
PROBE_UNIT = 2 ** 12 * 3 ** 2 * 5 * 7


@functools.lru_cache(maxsize=4096)
def probe_size(symbol: str) -> int:
    """The probe size of one symbol: its own (a checksum of its name picks the multiple)."""
    return PROBE_UNIT * (1 + zlib.crc32(symbol.encode("utf-8", "replace")) % 65521)


def probe(d: Dim) -> int:
    """``d`` at the probe sizes: a representative value for analyses that order sizes."""
    return d if type(d) is int else evaluate(d, probe_size)


# -- equality ------------------------------------------------------------------------------

@contextlib.contextmanager
def strict_sizes(strict: bool = True) -> Iterator[None]:
    """Within: :func:`agree` demands sizes equal at every size (a spec's elaboration; ``strict=False``: a
    spec that says ``trust_sizes: true``, as an imported model's sizes agree)."""
    token = _strict.set(strict)
    try:
        yield
    finally:
        _strict.reset(token)


def agree(a: Dim, b: Dim) -> bool:
    """Whether two sizes that must meet do: equal ints, the same text, else, in a spec's
    elaboration (:func:`strict_sizes`), :func:`equal` at every size; elsewhere (an imported model,
    whose file says they meet) equal at the probe sizes."""
    if a == b:
        return True
    if type(a) is int and type(b) is int:
        return False
    if _strict.get():
        return equal(a, b)
    try:
        return probe(a) == probe(b)
    except ShapeError:
        return False


def equal(a: Dim, b: Dim) -> bool:
    """Whether ``a`` and ``b`` are equal at every size (False where that cannot be shown)."""
    return a == b or _counterexample(a, b) == {}


def mismatch(a: Dim, b: Dim) -> str:
    """Why sizes ``a`` and ``b`` are not one size, for a message: where they differ."""
    found = _counterexample(a, b)
    if found:
        at = ", ".join(f"{s}={v}" for s, v in found.items())
        return (f"'{a}' and '{b}' differ where {at} ({evaluate(a, found)} and {evaluate(b, found)}); "
                "archc needs sizes equal at every size")
    return f"'{a}' and '{b}' cannot be shown equal at every size"


def _counterexample(a: Dim, b: Dim) -> dict[str, int] | None:
    """Sizes (each >= 1) of the symbols of ``a`` and ``b`` where they differ; {} where they agree at
    every size; None where that is not decided within :data:`MAX_CHECKS` evaluations or a dim is
    opaque."""
    try:
        diff = _add_into(_poly(a), _poly(b), -1)
    except ShapeError:
        return None
    if not diff:
        return {}
    frozen = _freeze(diff)
    varying = _symbols_of(frozen)
    at = dict.fromkeys(sorted({*symbols(a), *symbols(b)}), 1)  # (those the difference does not read: 1)
    period, degree = _shape_of(frozen)
    values = [1 + r + period * j for j in range(degree + 1) for r in range(period)]  # (every class, from 1 up)
    if len(values) ** len(varying) > MAX_CHECKS:
        return None
    for chosen in itertools.product(values, repeat=len(varying)):
        at.update(zip(varying, chosen))
        if _value(frozen, at.__getitem__):
            return at
    return {}


def _shape_of(frozen: _Frozen) -> tuple[int, int]:
    """(a period of the expression's residue classes, its degree), divisions counted by their dividend."""
    period, degree = 1, 0
    for m, _ in frozen:
        term_degree = 0
        for atom in m:
            if atom in _FLOORS:
                inner, k = _FLOORS[atom]
                p, d = _shape_of(inner)
                period = math.lcm(period, p * k * math.factorial(d))
                term_degree += d
            else:
                term_degree += 1
        degree = max(degree, term_degree)
    return period, degree


# -- order, for analyses -------------------------------------------------------------------

def compare(a: Dim, b: Dim) -> int | None:
    """-1, 0 or 1 as ``a`` is smaller than, equal to or larger than ``b`` at the probe sizes; None where
    both are symbolic over different symbols (an exporter's ``unk__2`` beside ``H``: unrelated)."""
    if type(a) is int and type(b) is int:
        return (a > b) - (a < b)
    if a == b:
        return 0
    if type(a) is not int and type(b) is not int and symbols(a) != symbols(b):
        return None
    pa, pb = probe(a), probe(b)
    return (pa > pb) - (pa < pb)


def same_shape(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> bool:
    """Whether two shapes are one: equal, or their dims :func:`agree` (an analysis of an imported
    model sees ``(H//2)*2`` added to ``H`` as the file does, one size)."""
    return a == b or (len(a) == len(b) and all(x == y or agree(x, y) for x, y in zip(a, b)))
