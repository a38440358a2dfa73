"""Text shown on a terminal: control characters from specs and models, escaped.

Strings that reach archc's messages and tables come from files it is given (a YAML string in a
message, a model's ``name:``, node and graph names of a foreign ONNX model, paths on the command
line). Printed raw, an escape sequence (``ESC [ 2 K``), a carriage return or a bidirectional
override (U+202E) in one of them could erase or rewrite what the terminal shows, or make an error
look like an ``ok``. :func:`terminal_text` escapes each such character to a visible form
(``\\x1b``, ``\\r``, ``\\u202e``); the CLI writes everything through :class:`EscapingStream`,
and the two writers that style their own output (the diagnostic printer's colours, the progress
bar) escape what they were given with the same function and write to :func:`raw_stream`.
"""
from __future__ import annotations

import re
import unicodedata
from typing import TextIO

#: characters that may need escaping: everything but printable ASCII and the line end (the
#: rest of a text passes without a Python-level look at each character)
_SUSPECT = re.compile(r"[^\n\x20-\x7e]")
#: Unicode categories a terminal acts on or shows as nothing: controls, formats (bidi overrides,
#: zero-width characters), line and paragraph separators, lone surrogates (undecodable bytes of a
#: file name, which a UTF-8 terminal stream could not even encode)
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAMED = {"\t": "\\t", "\r": "\\r"}
#: the bytes ASCII text may hold unescaped: the printable ones and the line end
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\n"


def unsafe(char: str) -> bool:
    """Whether a terminal acts on ``char`` or shows it as nothing (its Unicode category is one of
    :data:`_UNSAFE_CATEGORIES`): what is escaped here, and what a source excerpt shows as U+FFFD."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if not unsafe(char):
        return char
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def terminal_text(text: str) -> str:
    """``text`` with every control, format and separator character but the line end (``\\n``)
    written as a visible escape; printable text, non-ASCII letters included, is unchanged."""
    if text.isascii():
        # (ASCII text, such as lint's JSON of a 100k-node model, 8 MB: deleting the printable bytes
        # in C leaves the controls, in a quarter of the time of the pattern's search)
        if not text.encode("ascii").translate(None, _PRINTABLE_ASCII):
            return text
    elif _SUSPECT.search(text) is None:
        return text
    return _SUSPECT.sub(_escaped, text)


class EscapingStream:
    """A text stream that writes :func:`terminal_text` of everything written to it to
    ``stream``; everything else (``isatty``, ``fileno``, ``encoding``, ...) is ``stream``'s."""

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream

    def write(self, text: str) -> int:
        self.wrapped.write(terminal_text(text))
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):  # (whatever the wrapped stream has)
        if name == "wrapped":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.wrapped, name)


def raw_stream(stream: TextIO) -> TextIO:
    """The stream under an :class:`EscapingStream` (else ``stream`` itself): for a writer that
    escapes the text it was given itself and adds control sequences of its own (colours)."""
    return stream.wrapped if isinstance(stream, EscapingStream) else stream
