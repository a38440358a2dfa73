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

Nothing changes for anyone else: the name already belongs to the new output, a reader that
opened the old file keeps reading it as before, and the old file is never written or
truncated, only no longer held by archc. The held file's disk space is given back at the
close, at most :data:`HOLD_SECONDS` later. Linux only (``O_PATH``); elsewhere nothing is held.
"""
from __future__ import annotations

import os
import threading
import time

__all__ = ["ReplacedFiles", "REPLACED", "HOLD_SECONDS"]

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

    def release(self) -> None:
        """Close every held descriptor now (freeing what only they kept)."""
        with self._changed:
            fds, self._fds = self._fds, []
        _close_all(fds)

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


#: The replaced outputs of this process.
REPLACED = ReplacedFiles(HOLD_SECONDS)
