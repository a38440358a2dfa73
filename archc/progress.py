"""Progress of long operations: a bar on a terminal, nothing anywhere else.

Library code reports progress without knowing where it goes::

    with task("writing weights", total=nbytes, unit=Unit.BYTES) as bar:
        for array in arrays:
            ...
            bar.advance(array.nbytes)

    with activity("finding skip connections"):   # no measure of the work: elapsed time only
        analysis = analyze(graph)

Nothing is drawn unless a front end turned drawing on for a stream (:func:`drawing_to`, which the
CLI does for stderr) and that stream is a terminal: piped or redirected output never holds
progress. ``ARCHC_PROGRESS=0`` turns it off, ``TERM=dumb`` too. A bar appears only once its
operation has run for :data:`DELAY` seconds (``ARCHC_PROGRESS_DELAY`` changes it), so quick
commands draw nothing; it redraws at most every :data:`INTERVAL` seconds and erases its line
when the operation ends (or fails: the error then starts on a clean line).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator, TextIO

#: seconds an operation runs before its bar appears
DELAY = 0.5
DELAY_ENV = "ARCHC_PROGRESS_DELAY"
#: set to 0 (or "never") to draw no progress even on a terminal
PROGRESS_ENV = "ARCHC_PROGRESS"
#: seconds between redraws
INTERVAL = 0.1
_SPINNER = "|/-\\"
_ERASE = "\r\033[K"


class Unit(str, Enum):
    """What a task counts; decides how amounts are written."""

    ITEMS = "items"
    BYTES = "bytes"

    def amount(self, value: float) -> str:
        if self is Unit.BYTES:
            return f"{value / 2 ** 20:,.1f} MiB"
        return f"{int(value):,}"


_lock = threading.Lock()
_stream: TextIO | None = None
#: whether a bar's line is on the screen now (another message must erase it first)
_visible = False


def should_draw(stream: TextIO) -> bool:
    """Whether progress goes to ``stream``: a terminal, not TERM=dumb, not ARCHC_PROGRESS=0."""
    if os.environ.get(PROGRESS_ENV, "").strip().lower() in ("0", "never", "no", "false"):
        return False
    return is_terminal(stream)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that can take control sequences (not TERM=dumb, not closed)."""
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


@contextlib.contextmanager
def drawing_to(stream: TextIO) -> Iterator[None]:
    """Within the block, tasks draw on ``stream`` where :func:`should_draw` allows it."""
    global _stream
    previous = _stream
    _stream = stream if should_draw(stream) else None
    try:
        yield
    finally:
        _stream = previous


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get(DELAY_ENV, DELAY)))
    except ValueError:
        return DELAY


@dataclass
class Bar:
    """One operation's progress; :meth:`advance` it, the context manager ends it."""

    label: str
    total: float | None = None
    unit: Unit = Unit.ITEMS
    stream: TextIO | None = None
    done: float = 0
    started: float = field(default_factory=time.monotonic)
    _drawn_at: float = 0.0
    _shown: bool = False

    def __post_init__(self) -> None:
        # labels name files; a file name must not drive the terminal
        self.label = "".join(c if c.isprintable() else "?" for c in self.label)

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        self.tick()

    def tick(self, force: bool = False) -> None:
        """Redraw if drawing and the delay and interval have passed."""
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self.started < _delay() or (not force and now - self._drawn_at < INTERVAL):
            return
        self._drawn_at = now
        global _visible
        with _lock:
            self.stream.write(_ERASE + self.line(now))
            self.stream.flush()
            self._shown = _visible = True

    def line(self, now: float) -> str:
        """The bar's text (no line end): label, bar or spinner, share, amounts, elapsed time."""
        elapsed = f"{now - self.started:.1f} s"
        width = shutil.get_terminal_size((80, 24)).columns
        if not self.total:
            spinner = _SPINNER[int((now - self.started) / INTERVAL) % len(_SPINNER)]
            return f"{self.label} {spinner} {elapsed}"[:width - 1]
        # the share shown is rounded down, and the bar drawn from it, so the two always agree
        percent = int(min(max(self.done / self.total, 0.0), 1.0) * 100)
        tail = f" {percent:3d}%  {self.unit.amount(self.done)} / {self.unit.amount(self.total)}  {elapsed}"
        cells = max(10, min(40, width - len(self.label) - len(tail) - 4))
        filled = int(percent / 100 * cells)
        return f"{self.label} [{'#' * filled}{'.' * (cells - filled)}]{tail}"[:width - 1]

    def close(self) -> None:
        if self.stream is not None and self._shown:
            clear_line()
        self.stream = None


def clear_line() -> None:
    """Erase a bar now on the screen, so that a message written next starts on a clean line
    (the bar comes back at its next redraw)."""
    global _visible
    with _lock:
        if _visible and _stream is not None:
            _stream.write(_ERASE)
            _stream.flush()
        _visible = False


@contextlib.contextmanager
def task(label: str, total: float | None = None, unit: Unit = Unit.ITEMS) -> Iterator[Bar]:
    """A measured operation: ``total`` units of work, :meth:`Bar.advance` as they are done."""
    bar = Bar(label, total, unit, _stream)
    try:
        yield bar
    finally:
        bar.close()


@contextlib.contextmanager
def activity(label: str) -> Iterator[Bar]:
    """An operation with no measure of its work (one library call): a spinner and the time spent,
    redrawn by a background thread while the block runs."""
    bar = Bar(label, None, Unit.ITEMS, _stream)
    if bar.stream is None:
        yield bar
        return
    stop = threading.Event()

    def spin() -> None:
        while not stop.wait(INTERVAL):
            bar.tick(force=True)

    spinner = threading.Thread(target=spin, name="archc-progress", daemon=True)
    spinner.start()
    try:
        yield bar
    finally:
        stop.set()
        spinner.join()
        bar.close()
