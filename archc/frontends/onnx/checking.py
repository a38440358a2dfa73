"""``onnx.checker``'s verdict on a model, reached on a second core while the import runs.

The checker exists so that an invalid model gets ONNX's own clean message. On a model of 100k
nodes it takes 0.5-1 s, holding the GIL, before the import can start. A :class:`Verdict` on a
model of at least :data:`FORK_NODES` nodes runs it in a forked child process instead, while the
parent imports; the import then waits for the verdict before it returns, and an import that
fails waits for it before its own error is shown, so a model the checker refuses is refused
with the checker's message exactly as when the checker ran first (never accepted, never a
partial result). Where ``os.fork`` is missing or fails, the process runs other threads, or the
child dies without a verdict, the checker runs here.

Until the verdict is in, the import runs ONNX's C++ inference only on what the checker has
vouched for: :meth:`Verdict.vet` checks each kind of node the importer converts the general way
with ``onnx.checker.check_node`` (the checker's per-node part) and waits for the verdict on a
node it rejects; the whole model's inference waits for the verdict (:meth:`Verdict.message`).
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from typing import Any

import onnx

from archc.errors import first_line

__all__ = ["FORK_NODES", "Verdict", "checker_context"]

def _fork_nodes(default: int = 2000) -> int:
    try:
        value = int(os.environ.get("ARCHC_CHECKER_FORK_NODES", default))
    except ValueError:
        return default
    return value if value >= 0 else default


#: models of at least this many nodes are checked in a forked child (the checker takes about
#: 5-10 us per node; below this, forking costs more than it overlaps); env ARCHC_CHECKER_FORK_NODES
FORK_NODES = _fork_nodes()

_ACCEPTED, _REFUSED = b"\x00", b"\x01"


def _single_threaded() -> bool:
    """Whether this process runs one OS thread (Linux's ``/proc/self/task``; False where it cannot
    tell). Only such a process forks: a child forked beside other threads may wait forever on a
    lock one of them held (Python 3.12+ warns), e.g. in a program that imported torch and ran an op."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def checker_context(opset_import: Iterable[Any], ir_version: int) -> Any:
    """``onnx.checker``'s context for checking single nodes of a model with these opset imports
    and IR version (0: the current one)."""
    context = onnx.checker.C.CheckerContext()
    context.ir_version = ir_version or onnx.IR_VERSION
    context.opset_imports = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in opset_import}
    return context


def _check(model: bytes | onnx.ModelProto) -> str | None:
    """``onnx.checker.check_model`` here: None where it accepts, else its message's first line."""
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - checker errors are ValidationError or ValueError
        return first_line(exc)
    return None


class Verdict:
    """The checker's verdict on ``model`` (its serialised bytes, or the message itself where it
    cannot be serialised); ``opsets``/``ir_version``: the model's, for :meth:`vet`."""

    def __init__(self, model: bytes | onnx.ModelProto, nodes: int, opsets: Any = (), ir_version: int = 0) -> None:
        self._model = model
        self._message: str | None = None
        self._pid: int | None = None
        self._pipe = -1
        self._opsets, self._ir_version = tuple(opsets), ir_version
        self._context: Any = None  # the checker's context for vet, made on its first use
        self._vetted: set[tuple] = set()
        if not (nodes >= FORK_NODES and isinstance(model, bytes) and self._fork()):
            self._message = _check(model)

    @property
    def pending(self) -> bool:
        """Whether the checker is still running in a child."""
        return self._pid is not None

    def message(self) -> str | None:
        """The checker's message where it refuses the model, None where it accepts (waits for the
        child where it runs in one)."""
        if self._pid is not None:
            self._message = self._collect()
        return self._message

    def cancel(self) -> None:
        """Stop a child still running (the import was interrupted)."""
        if self._pid is not None:
            pid, self._pid = self._pid, None
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(pid, 0)
            os.close(self._pipe)

    def vet(self, node: onnx.NodeProto, key: tuple) -> None:
        """While the verdict is pending: the checker's test of ``node`` alone (once per ``key``, what
        the test depends on: op, domain, attributes, which inputs and outputs it names); where it
        fails, the verdict is awaited (the caller raises the checker's refusal)."""
        if self._pid is None or key in self._vetted:
            return
        if self._context is None:
            self._context = checker_context(self._opsets, self._ir_version)
        try:
            onnx.checker.check_node(node, self._context, onnx.checker.C.LexicalScopeContext())
        except Exception:  # noqa: BLE001 - ValidationError or ValueError: maybe the model is invalid
            self.message()
            return
        self._vetted.add(key)

    def _fork(self) -> bool:
        """Start the child that runs the checker; False where this platform or process cannot."""
        if not hasattr(os, "fork") or not _single_threaded():
            return False
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            return False
        if pid == 0:  # the child: the verdict down the pipe, then out without any of the parent's exit work
            code = 70
            try:
                os.close(read)
                message = _check(self._model)
                payload = _ACCEPTED if message is None else _REFUSED + message.encode("utf-8", "replace")
                while payload:
                    payload = payload[os.write(write, payload):]
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        self._pid, self._pipe = pid, read
        return True

    def _collect(self) -> str | None:
        """The child's verdict; the checker run here where the child gave none."""
        chunks = []
        try:
            while chunk := os.read(self._pipe, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(self._pipe)
            pid, self._pid = self._pid, None
            _, status = os.waitpid(pid, 0)
        payload = b"".join(chunks)
        if status != 0 or not payload or payload[:1] not in (_ACCEPTED, _REFUSED):
            return _check(self._model)  # (killed, out of memory...): never accept without a verdict
        return None if payload[:1] == _ACCEPTED else payload[1:].decode("utf-8")
