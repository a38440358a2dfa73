"""The C library through ctypes, loaded once, on first use (ctypes costs start-up time that only
the few callers that reach libc directly should pay): :func:`libc` and :func:`last_errno`.

Its users are the file writers' Linux paths (``fallocate``, ``linkat``, the ``cachestat`` system
call); each checks the platform before it asks.
"""
from __future__ import annotations

from typing import Any

__all__ = ["last_errno", "libc"]

_LIBC: list = []


def libc() -> Any:
    """The process's C library (``ctypes.CDLL(None)``, errno kept for :func:`last_errno`)."""
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def last_errno() -> int:
    """The errno the last call through :func:`libc` left on this thread."""
    import ctypes

    return ctypes.get_errno()
