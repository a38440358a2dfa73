"""Drawing a model's first weights on a spare core while the build goes on.

An in-process build is serial until its file is laid out: the spec is loaded, the seeded
weights are deferred, folded into and emitted, and only then does
:func:`archc.lowering.onnx_draw.draw_and_write` start its drawing threads. On two cores one of
them idles through the folding, emitting and laying out (a third of ResNet-50's build before
drawing). :func:`draw_ahead` starts drawing on one of the process's drawing threads
(:func:`~archc.lowering.onnx_draw.drawing_executor`) as soon as the deferred weights exist; it draws
the leading arrays of a megabyte or more (in state_dict order, which is the order they are
written in) into pooled memory, up to :data:`AHEAD_BYTES`. Whoever draws such an array later
(the writer's jobs, a ``--dtype`` conversion, ``np.asarray``) takes the values drawn ahead through
:meth:`DrawAhead.deliver`, scaling them by the factors folding added since
(:class:`archc.ops.weights.DeferredArray` applies them as it would to values it drew itself), so
the values are exactly the same. An array not yet started when it is asked for is drawn by the
asker, as without this module.

The drawing thread needs the interpreter lock for a moment between numpy calls (a few per array),
while the calling thread runs Python the whole time; with the interpreter's default switch
interval (5 ms) each of those moments waits up to 5 ms, and the thread draws next to nothing
(measured: about a tenth of what it draws beside an idle caller). So while it draws, the switch
interval is lowered to :data:`SWITCH_INTERVAL` (and put back when the last drawer is done).

Only arrays drawn whole into a given vector are drawn ahead (one piece, see
:meth:`~archc.ops.weights.DeferredArray.pieces`): folding changes how a large array splits into
pieces, never a small one's single piece. The scan stops at the first large array, which the
writer needs before anything after it.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import Future, wait
from typing import Any, Callable, Mapping

import numpy as np

from archc.ir.graph import Graph
from archc.lowering.onnx_draw import BLOCK_BYTES, PIECE_ALIGNMENT, POOL, BufferPool, aligned_offset, drawing_executor
from archc.ops.weights import RANDOM_INITS, DeferredArray, drawing_threads, tied_params

__all__ = ["DrawAhead", "draw_ahead", "AHEAD_BYTES", "AHEAD_MIN_BYTES"]

#: Bytes of values drawn ahead at most: about what one core draws while ResNet-50's graph is
#: folded, emitted and laid out (more would wait in memory for the writer).
AHEAD_BYTES = 16 * 2 ** 20
#: Smaller arrays are left to the writer's threads: each array costs the drawer about six waits
#: for the interpreter lock, whatever its size, and each wait delays the caller's Python too.
AHEAD_MIN_BYTES = 2 ** 20
#: The interpreter's thread switch interval while a drawer runs (see the module's docstring).
SWITCH_INTERVAL = 1e-4
#: States of an array to draw ahead that holds no values yet.
_WAITING, _DRAWING = "waiting", "drawing"


class DrawAhead:
    """Draws ``arrays`` (unscaled, in order) on one thread into blocks from ``pool``; each block
    goes back to the pool once all its arrays are delivered. An array asked for before its
    turn is dropped from the queue (the asker draws it); one that fails to draw is dropped too
    (the asker then meets the error itself)."""

    def __init__(self, arrays: list[DeferredArray], pool: BufferPool) -> None:
        self.pool = pool
        self._queue = [(a.key, a) for a in arrays]
        self._numel = {a.key: a.spec.numel for a in arrays}
        self._state: dict[str, Any] = {key: _WAITING for key, _ in self._queue}  # or (values, block)
        self._holds: dict[int, int] = {}  # id(block) -> its arrays not yet delivered (+1 while carved from)
        self._changed = threading.Condition()
        self._done: Future | None = None

    def start(self) -> "DrawAhead":
        """Start drawing, on one of the process's drawing threads (kept between files, so nothing
        waits for a new thread to start)."""
        _SWITCH.lower()
        try:
            self._done = drawing_executor(drawing_threads()).submit(self._run)
        except BaseException:
            _SWITCH.restore()
            raise
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait until the drawing is over (the build itself never waits for it, only for arrays)."""
        if self._done is not None:
            wait([self._done], timeout)

    def deliver(self, key: str, start: int, stop: int, use: Callable[[np.ndarray], None]) -> bool:
        """See :class:`archc.ops.weights.DrawnAhead`; ``use`` must not keep the values."""
        with self._changed:
            state = self._state.get(key)
            if state is None:
                return False
            if state is _WAITING or (start, stop) != (0, self._numel[key]):
                del self._state[key]  # the asker draws it
                return False
            self._changed.wait_for(lambda: self._state.get(key) is not _DRAWING)
            drawn = self._state.pop(key, None)
        if drawn is None:  # drawing it failed
            return False
        values, block = drawn
        try:
            use(values)
        finally:
            self._release(block)
        return True

    def _run(self) -> None:
        try:
            self._draw_all()
        except Exception:  # noqa: BLE001 - (no memory, say) the askers draw what is left and meet it
            pass
        finally:
            with self._changed:  # nobody may wait for an array this thread will not draw
                for key in [k for k, state in self._state.items() if state is _WAITING or state is _DRAWING]:
                    del self._state[key]
                self._changed.notify_all()
            _SWITCH.restore()

    def _draw_all(self) -> None:
        arena = _Carver(self)
        try:
            for key, array in self._queue:
                with self._changed:
                    if self._state.get(key) is not _WAITING:
                        continue  # asked for already: its asker draws it
                    self._state[key] = _DRAWING
                values, block = arena.carve(array.nbytes)
                try:
                    array.fill_unscaled(values.view(array.dtype), 0)
                    result: Any = (values.view(array.dtype), block)
                except Exception:  # noqa: BLE001 - the asker draws it again and meets the error itself
                    self._release(block)
                    result = None
                with self._changed:
                    if result is None:
                        del self._state[key]
                    else:
                        self._state[key] = result
                    self._changed.notify_all()
        finally:
            arena.close()

    def _hold(self, block: np.ndarray) -> None:
        with self._changed:
            self._holds[id(block)] = self._holds.get(id(block), 0) + 1

    def _release(self, block: np.ndarray) -> None:
        with self._changed:
            self._holds[id(block)] -= 1
            done = not self._holds[id(block)]
            if done:
                del self._holds[id(block)]
        if done:
            self.pool.give([block])


class _Carver:
    """Memory for one drawer's arrays, carved in order from pooled blocks: each block is held once
    per array in it (released as the array is delivered) and once by the carver while it carves."""

    def __init__(self, drawer: DrawAhead) -> None:
        self.drawer = drawer
        self.block: np.ndarray | None = None
        self.used = 0

    def carve(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` bytes at a 64-byte-aligned address, and the block they are in (held once more)."""
        block = self.block
        if block is None or self.used + size + PIECE_ALIGNMENT > len(block):
            self.close()
            block = self.block = self.drawer.pool.take(max(size + PIECE_ALIGNMENT, BLOCK_BYTES))
            self.used = 0
            self.drawer._hold(block)
        offset = aligned_offset(block, self.used)
        self.used = offset + size
        self.drawer._hold(block)
        return block[offset:offset + size], block

    def close(self) -> None:
        """Let go of the block being carved from (it returns to the pool once its arrays are taken)."""
        if self.block is not None:
            self.drawer._release(self.block)
            self.block = None


class _SwitchInterval:
    """The interpreter's switch interval lowered to :data:`SWITCH_INTERVAL` while any drawer runs,
    then set back to what it was (drawers of several builds may overlap)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0.0

    def lower(self) -> None:
        with self._lock:
            if not self._users:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_INTERVAL))
            self._users += 1

    def restore(self) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                sys.setswitchinterval(self._saved)


_SWITCH = _SwitchInterval()


def draw_ahead(graph: Graph, weights: Mapping[str, Mapping[str, Any]], limit: int = AHEAD_BYTES,
               pool: BufferPool | None = None) -> DrawAhead | None:
    """Start drawing the leading deferred arrays of ``weights`` (node -> parameter -> array, in
    state_dict order) on a thread, up to ``limit`` bytes, and point those arrays at it; returns
    the drawer, or None when nothing qualifies. Tied parameters are skipped (the emitter writes
    their owners'), and so are fills (as cheap as copying them), arrays under
    :data:`AHEAD_MIN_BYTES` and arrays not drawn into a vector; the first array drawn in pieces
    ends the scan."""
    chosen: list[DeferredArray] = []
    total = 0
    for node, params in weights.items():
        tied = tied_params(graph.node(node)) if node in graph else {}
        for name, array in params.items():
            if not isinstance(array, DeferredArray) or name in tied or array.spec.init not in RANDOM_INITS \
                    or not array.fills_vector() or array.nbytes < AHEAD_MIN_BYTES:
                continue
            if len(array.pieces()) > 1 or total + array.nbytes > limit:
                return _started(chosen, pool)
            chosen.append(array)
            total += array.nbytes
    return _started(chosen, pool)


def _started(arrays: list[DeferredArray], pool: BufferPool | None) -> DrawAhead | None:
    if not arrays:
        return None
    ahead = DrawAhead(arrays, POOL if pool is None else pool)
    for array in arrays:
        array.ahead = ahead
    return ahead.start()
