"""User-facing diagnostics: where something is wrong and what was expected.

Every error a user can cause carries a :class:`Location` (file, line, column) or,
for graphs that did not come from a file, a node name. The CLI prints them as
``file:line:col: error: message`` and never shows a traceback for bad input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Location:
    """A 1-based position in a source file."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Note:
    """A place that explains an error found elsewhere: the instance of the block whose node failed."""

    message: str
    location: Location


@dataclass
class Diagnostic:
    """One error: message, optional location, optional node name and hint."""

    message: str
    location: Location | None = None
    node: str | None = None
    hint: str | None = None
    #: "error" or "warning" (a warning never stops a command)
    severity: str = "error"
    #: other nodes with the same error at the same place (other instances of one block)
    also: list[str] = field(default_factory=list)
    #: where the block holding the failing node was instantiated (innermost first)
    notes: list[Note] = field(default_factory=list)

    def format(self) -> str:
        """The one-line form ``file:line:col: error: node 'n': message (hint)``."""
        where, severity, body = self.parts()
        return f"{where}: {severity}: {body}"

    def parts(self) -> tuple[str, str, str]:
        """(where, severity, body) of :meth:`format`'s line, for a printer that styles each part."""
        where = str(self.location) if self.location else "archc"
        body = f"node '{self.node}'{_also(self.also)}: " if self.node else ""
        body += self.message
        if self.hint:
            body += f" ({self.hint})"
        return where, self.severity, body


def _also(others: list[str]) -> str:
    """`` (and 'b')`` after a node's name, for the other instances with its error."""
    if not others:
        return ""
    if len(others) == 1:
        return f" (and '{others[0]}')"
    return f" (and {len(others)} more instances, the last '{others[-1]}')"


class ArchcError(Exception):
    """Base of every error archc reports to a user; holds one or more diagnostics."""

    exit_code = 2

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic] | str, **kwargs) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, **kwargs)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.diagnostics)


class SpecError(ArchcError):
    """The spec (or a model file) is invalid. CLI exit code 2."""


class ShapeError(Exception):
    """Raised by an op's shape inference; the caller adds node and location."""


class GraphError(ArchcError):
    """The graph IR breaks one of its invariants (a node reading a missing value, a removed
    node still in use, a cycle, ...): a bug in a frontend, a pass or an op, named by node."""


class UsageError(ArchcError):
    """The command line asks for something that cannot be done (exit 2)."""


class RuntimeFailure(ArchcError):
    """Something needed at run time is missing (a device, a provider). Exit 1."""

    exit_code = 1


class ArchcWarning(UserWarning):
    """Something a user should know that does not stop the work (issued with :func:`warnings.warn`)."""


class PluginWarning(ArchcWarning):
    """An installed plug-in could not be loaded; its op is unavailable."""


@dataclass
class DiagnosticSink:
    """Collects diagnostics so a pass can report every error, not only the first."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, message: str, location: Location | None = None, node: str | None = None,
              hint: str | None = None) -> None:
        """Collect one error; one already collected at the same place with the same words for another
        node (a mistake in a block, met once per instance) names that node too instead."""
        if node is not None and location is not None and location.line > 0:
            for earlier in reversed(self.diagnostics):
                if earlier.location == location and earlier.message == message and earlier.hint == hint \
                        and earlier.node is not None and earlier.severity == "error":
                    earlier.also.append(node)
                    return
        self.diagnostics.append(Diagnostic(message, location, node, hint))

    def extend(self, error: ArchcError) -> None:
        self.diagnostics.extend(error.diagnostics)

    def raise_if_any(self, cls: type[ArchcError] = SpecError) -> None:
        if self.diagnostics:
            raise cls(self.diagnostics)

    def __bool__(self) -> bool:
        return bool(self.diagnostics)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a misspelled name most likely meant, or None."""
    import difflib  # (here: every command imports this module, few need a hint)

    names = sorted(set(candidates))
    matches = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    # (a shortened name: `k` for kernel_size, `out` for out_channels, where only one name begins so)
    begun = [name for name in names if name.startswith(word)] if word else []
    return begun[0] if len(begun) == 1 else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint for a misspelled name, or None."""
    return meant_hint(closest(word, candidates))


def meant_hint(match: str | None) -> str | None:
    """The hint naming the name a misspelled one meant (:func:`closest`'s answer), or None."""
    return f"did you mean '{match}'?" if match else None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type's name when it has none): a library's
    error folded into one line of an archc message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
