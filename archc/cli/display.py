"""How diagnostics look on stderr: read at a glance.

Each diagnostic keeps its one-line form (``file:line:col: error: message (hint)``, what scripts
and editors parse); where it points into a spec file, the offending line follows with a caret
under the column::

    model.yaml:6:25: error: node 'c': op 'conv' has no attribute 'in_channels' ...
       6 |   - {name: c, op: conv, in_channels: 3, out_channels: 4}
         |                         ^~~~~~~~~~~

An error inside a block's node is followed by a ``note:`` line (with its excerpt) for each block
instance it was met in, innermost first: the line that gave the block the arguments it failed on.

The source is read again at print time, by the same bounded, regular-file-only reader as
specs (a pipe or a file that changed into something else shows no excerpt). Colour only on
a terminal, never where ``NO_COLOR`` is set (https://no-color.org); ``FORCE_COLOR`` asks for
it elsewhere; ``TERM=dumb`` turns it off.
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from typing import TextIO

from archc.errors import ArchcError, Diagnostic, Location
from archc.progress import is_terminal
from archc.terminal import raw_stream, terminal_text, unsafe

#: an excerpt shows at most this many columns of the line, centred on the caret
EXCERPT_WIDTH = 100
#: a tab in the excerpt (and under it) takes this many columns
TAB_WIDTH = 4
#: where YAML starts a new line (its marks count these; str.splitlines also splits at \v, \f, ...)
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
#: characters that continue the token the caret points at (the ~ under it)
_TOKEN = re.compile(r"[\w.$\-]*")


class Paint(str, Enum):
    """ANSI styles of the parts of a diagnostic."""

    WHERE = "\033[1m"
    ERROR = "\033[1;31m"
    WARNING = "\033[1;35m"
    NOTE = "\033[1;36m"
    GUTTER = "\033[34m"
    CARET = "\033[1;32m"
    RESET = "\033[0m"


def wants_colour(stream: TextIO) -> bool:
    """Colour for ``stream``: never with NO_COLOR or TERM=dumb; always with FORCE_COLOR (not 0);
    else where the stream is a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force is not None and force.strip().lower() not in ("", "0", "false", "no"):
        return True
    return is_terminal(stream)


@dataclass
class DiagnosticPrinter:
    """Prints diagnostics with source excerpts; caches each file's lines for one command's errors."""

    stream: TextIO
    colour: bool = False
    _lines: dict[str, list[str] | None] = field(default_factory=dict)

    @classmethod
    def to(cls, stream: TextIO) -> "DiagnosticPrinter":
        return cls(stream, wants_colour(stream))

    def print(self, diag: Diagnostic) -> None:
        # render escapes the diagnostic's own text and adds the colours, which must pass
        print(self.render(diag), file=raw_stream(self.stream))

    def print_all(self, error: ArchcError) -> None:
        for diag in error.diagnostics:
            self.print(diag)

    def render(self, diag: Diagnostic) -> str:
        """The diagnostic's line, then (where it points into a readable file) the excerpt; control
        characters in the line are escaped (:func:`archc.terminal.terminal_text`)."""
        where, severity, body = (terminal_text(part) for part in diag.parts())
        paint = Paint.ERROR if severity == "error" else Paint.WARNING
        lines = [f"{self._paint(where, Paint.WHERE)}: {self._paint(severity + ':', paint)} {body}"]
        lines += self._excerpt_at(diag.location)
        for note in diag.notes:  # (where the block holding the node was instantiated)
            lines.append(f"{self._paint(terminal_text(str(note.location)), Paint.WHERE)}: "
                         f"{self._paint('note:', Paint.NOTE)} {terminal_text(note.message)}")
            lines += self._excerpt_at(note.location)
        return "\n".join(lines)

    def _excerpt_at(self, loc: Location | None) -> list[str]:
        """The excerpt of the source line at ``loc``; none where it is no line of a readable file."""
        if loc is None or loc.line <= 0:
            return []
        source = self._source_line(loc.file, loc.line)
        return self._excerpt(source, loc.line, loc.column) if source is not None else []

    def _excerpt(self, source: str, line: int, column: int) -> list[str]:
        shown, caret_at, token = excerpt_window(source, max(column, 1))
        gutter = " " * len(str(line))
        marker = "^" + "~" * max(token - 1, 0)
        return [f" {self._paint(str(line), Paint.GUTTER)} {self._paint('|', Paint.GUTTER)} {shown}".rstrip(),
                f" {gutter} {self._paint('|', Paint.GUTTER)} {' ' * caret_at}{self._paint(marker, Paint.CARET)}"]

    def _paint(self, text: str, style: Paint) -> str:
        return f"{style.value}{text}{Paint.RESET.value}" if self.colour else text

    def _source_line(self, path: str, line: int) -> str | None:
        if path not in self._lines:
            self._lines[path] = _read_lines(path)
        lines = self._lines[path]
        if lines is None or line > len(lines):
            return None
        return lines[line - 1]


def _read_lines(path: str) -> list[str] | None:
    """The lines of a spec file, or None where it is no readable file (``<command line>``, a pipe)."""
    from archc.fileio import UnreadableFile, max_spec_bytes, read_bounded_text

    if path.startswith("<") and path.endswith(">"):
        return None
    try:
        return _LINE_BREAK.split(read_bounded_text(path, max_spec_bytes()))
    except (UnreadableFile, ArchcError):
        return None


def excerpt_window(source: str, column: int) -> tuple[str, int, int]:
    """(the line as shown, the caret's display column (0-based), the width of the token at it).

    Control and format characters show as U+FFFD (a spec line must not drive the terminal), tabs
    as spaces, wide characters count two columns; a long line shows a window around the column."""
    chars = list(source)
    index = min(column - 1, len(chars))
    token = len(_TOKEN.match(source, index).group()) if index < len(chars) else 1
    start = 0
    if len(chars) > EXCERPT_WIDTH:
        start = max(0, min(index - EXCERPT_WIDTH // 2, len(chars) - EXCERPT_WIDTH))
    end = min(len(chars), start + EXCERPT_WIDTH)
    before = "…" if start > 0 else ""
    after = "…" if end < len(chars) else ""
    shown = before + "".join(_cell(c) for c in chars[start:end]) + after
    caret_at = len(before) + sum(_width(c) for c in chars[start:index])
    token_width = sum(_width(c) for c in chars[index:index + token]) if index < len(chars) else 1
    return shown, caret_at, max(token_width, 1)


def _cell(char: str) -> str:
    if char == "\t":
        return " " * TAB_WIDTH
    if unsafe(char):
        return "\ufffd"
    return char


def _width(char: str) -> int:
    """Columns ``char`` takes as :func:`_cell` shows it."""
    if char == "\t":
        return TAB_WIDTH
    if unsafe(char):
        return 1
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
