"""Outputs archc replaced, held open for a moment so that their memory is freed where it helps.

Renaming a new output over an old one (:func:`archc.fileio.write_atomic_files`) drops the old
file's last name; when nothing else holds it, Linux frees its page cache inside the rename.
For ResNet-50's 102 MB that is 7-10 ms of kernel time at the end of every rebuild. Holding the
old file by a descriptor (``O_PATH``: nothing is read, no permission is needed) moves that work
to the descriptor's close, which happens

- at the start of the next large output this process writes (:meth:`ReplacedFiles.release`,
  called by the writer before it writes). The pages freed then are the first ones the new
  file's page cache gets. That matters on virtual machines that hand freed guest memory back to
  their host (free page reporting, as here): a page freed more than a moment ago costs a host
  fault on its first touch, measured at about 2 ms per MB, ten times the copy into it. A rebuild
  in-process then alternated between about 25 and 200 ms of system time; recycling the pages it
  just freed keeps it at the lower figure;
- after :data:`HOLD_SECONDS` without such a write, on a background thread;
- when the process exits (the kernel closes it).

An output about to be replaced in a new process has no such pages at hand: the old file stays
whole until the new one is complete. Where the old file's data is on disk already (none of its
cached pages dirty or being written, as Linux's ``cachestat`` tells), :meth:`ReplacedFiles.release`
drops its cached pages first (``posix_fadvise(DONTNEED)``: the file is not changed, only no longer
cached), so the new file reuses those pages. Rebuilding VGG-16's 553 MB over a written-back copy
took 2.9-3.7 s there, 0.6-1.0 s with the pages dropped. A file still dirty is left alone (dropping
would write back data about to be replaced), as is one with other names (it outlives the rename).

Nothing changes for anyone else: the name already belongs to the new output, a reader that
opened the old file keeps reading it as before, and the old file is never written or
truncated, only no longer held by archc. The held file's disk space is given back at the
close, at most :data:`HOLD_SECONDS` later. Linux only (``O_PATH``); elsewhere nothing is held.
"""
from __future__ import annotations

import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from archc.libc import libc

__all__ = ["ReplacedFiles", "REPLACED", "HOLD_SECONDS", "drop_written_back"]

#: Longest a replaced output is held when no other output follows. Below the kernel's default
#: dirty expiry (30 s), so a file replaced soon after it was written is still never written
#: back to disk, as without the hold.
HOLD_SECONDS = 5.0


class ReplacedFiles:
    """Descriptors of replaced outputs, closed together by :meth:`release`: by the next large
    write, or by a background thread once the oldest has been held ``hold_seconds``. That thread
    is started once, with the first descriptor kept (starting one per file would cost the
    writer a wait for the new thread each time). Thread-safe."""

    def __init__(self, hold_seconds: float) -> None:
        self.hold_seconds = hold_seconds
        self._fds: list[int] = []
        self._replacing: list[str] = []  # outputs about to be replaced (see :meth:`replacing`)
        self._since = 0.0              # when the oldest held descriptor was kept (monotonic)
        self._changed = threading.Condition()
        self._closer: threading.Thread | None = None

    @staticmethod
    def open(path: str) -> int | None:
        """A descriptor holding the file at ``path`` (a link itself, not its target), taken just
        before it is replaced; None where nothing can be held (no ``O_PATH``, no file)."""
        o_path = getattr(os, "O_PATH", 0)
        if not o_path:
            return None
        try:
            return os.open(path, o_path | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None

    def keep(self, fd: int) -> None:
        """Hold ``fd`` (from :meth:`open`, its file now replaced) until the next :meth:`release`."""
        with self._changed:
            if not self._fds:
                self._since = time.monotonic()
            self._fds.append(fd)
            if self._closer is None or not self._closer.is_alive():  # first use, or a forked child
                self._closer = threading.Thread(target=self._close_when_due, name="archc-replaced", daemon=True)
                self._closer.start()
            self._changed.notify()

    def replacing(self, paths: Iterable[str]) -> None:
        """Note the files at ``paths`` (in place of those noted before) as about to be replaced by
        large outputs: the next :meth:`release` drops their cached pages where their data is on disk
        (:func:`drop_written_back`)."""
        with self._changed:
            self._replacing = list(paths)  # (a write's own list: one that failed leaves nothing behind)

    def release(self) -> None:
        """Close every held descriptor now (freeing what only they kept), and drop the cached pages
        of the files noted by :meth:`replacing`."""
        with self._changed:
            fds, self._fds = self._fds, []
            paths, self._replacing = self._replacing, []
        _close_all(fds)
        for path in paths:
            drop_written_back(path)

    def held(self) -> int:
        """How many replaced files are held now."""
        with self._changed:
            return len(self._fds)

    def _close_when_due(self) -> None:
        """The background thread: releases the held descriptors ``hold_seconds`` after the
        oldest of them was kept (unless a write released them before)."""
        while True:
            with self._changed:
                while True:
                    if not self._fds:
                        self._changed.wait()
                        continue
                    left = self._since + self.hold_seconds - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
                fds, self._fds = self._fds, []
            _close_all(fds)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:  # pragma: no cover - closing an O_PATH descriptor does not fail
            pass


#: Files with fewer cached pages than this are not worth the system calls.
DROP_MIN_PAGES = 256


def drop_written_back(path: str) -> bool:
    """Drop the cached pages of the regular file at ``path`` (not following a link) where every one
    is on disk already, the file has no other name and at least :data:`DROP_MIN_PAGES` are cached;
    whether it did. The file itself is not changed. False wherever that cannot be told (no
    ``cachestat``, which is Linux 6.5 and later; no permission to read it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):  # (no O_NOFOLLOW: not a POSIX system)
        return False  # (and elsewhere than Linux, _cachestat below is None)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            return False
        cached = _cachestat(fd)
        if cached is None or cached.cache < DROP_MIN_PAGES or cached.dirty or cached.writeback:
            return False
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


#: Linux's ``cachestat`` system call: one number on every architecture (the generic table's)
_CACHESTAT = 451
_CALL: list = []  # (a function of a descriptor, made on first use: ctypes is imported only then)


def _cachestat(fd: int) -> Any:
    """The page cache's counts for the whole file ``fd`` (``cache``, ``dirty``, ``writeback``:
    pages); None where the kernel has no cachestat."""
    if not _CALL:
        _CALL.append(_cachestat_function() if sys.platform.startswith("linux") and hasattr(os, "posix_fadvise")
                     else None)
    return _CALL[0](fd) if _CALL[0] is not None else None


def _cachestat_function() -> Callable[[int], Any]:
    import ctypes

    class Range(ctypes.Structure):
        _fields_ = [("offset", ctypes.c_uint64), ("length", ctypes.c_uint64)]  # length 0: to the end

    class Counts(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]

    syscall = libc().syscall
    syscall.restype = ctypes.c_long

    def cachestat(fd: int) -> Counts | None:
        counts = Counts()
        whole = Range(0, 0)
        if syscall(ctypes.c_long(_CACHESTAT), ctypes.c_int(fd), ctypes.byref(whole), ctypes.byref(counts),
                   ctypes.c_uint(0)) != 0:
            return None
        return counts

    return cachestat


#: The replaced outputs of this process.
REPLACED = ReplacedFiles(HOLD_SECONDS)
