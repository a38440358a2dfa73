"""Files archc writes: whole or not at all.

Below every layer that writes (the ONNX backend's ``save_onnx``, the CLI's outputs), so
no library module imports the CLI for it.
"""
from __future__ import annotations

import os
import tempfile

from archc.errors import Location, UsageError

__all__ = ["write_atomic"]


def write_atomic(path: str, data: bytes | str) -> None:
    """Write a file completely or not at all (no partial output on failure)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"output directory does not exist: {directory}", location=Location(path))
    if os.path.isdir(path):
        raise UsageError("the output is a directory; give a file name", location=Location(path))
    mode = "wb" if isinstance(data, bytes) else "w"
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".archc-", suffix=".tmp")
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # permissions, a full disk: say so, leave nothing behind
        raise UsageError(f"cannot write the output: {exc.strerror or exc}", location=Location(path)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
