"""Exact counts in JSON that every reader takes without loss.

Path counts are exact Python integers and grow as 2^n with depth. JSON readers lose such
numbers: JavaScript's ``JSON.parse`` rounds anything beyond 2^53 (and reads a 300-digit number
as ``Infinity``), Python's ``json.loads`` refuses integers of more than 4,300 digits by default.
So a count is written as a JSON number up to :data:`SAFE_MAX` = 2^53 and as a decimal string
beyond it, always beside its base-2 logarithm (a float every reader takes).
"""
from __future__ import annotations

import math

#: the largest integer a double (JavaScript's only number) holds exactly: 2^53
SAFE_MAX = 2 ** 53
#: digits converted per piece: under Python's default int -> str limit (4,300 digits)
_PIECE_DIGITS = 4000


def json_count(n: int) -> int | str:
    """``n`` as a JSON number when it is at most 2^53, else its exact decimal string."""
    return n if -SAFE_MAX <= n <= SAFE_MAX else decimal_string(n)


def log2_count(n: int) -> float | None:
    """log2 of a count (exact for powers of two, any size); None for no paths."""
    return math.log2(n) if n > 0 else None


def decimal_string(n: int) -> str:
    """The decimal digits of any integer, without raising Python's int -> str digit limit
    (a process-wide setting library code must not change): long numbers are cut into
    pieces of :data:`_PIECE_DIGITS` digits by divmod and converted piece by piece."""
    if n < 0:
        return "-" + decimal_string(-n)
    base = 10 ** _PIECE_DIGITS
    pieces = []
    while n >= base:
        n, low = divmod(n, base)
        pieces.append(str(low).rjust(_PIECE_DIGITS, "0"))
    pieces.append(str(n))
    return "".join(reversed(pieces))
