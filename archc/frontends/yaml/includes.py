"""``include:``: which files a spec may pull blocks from, and reading them safely.

A reference resolves relative to the file that names it (so an included file's own
``include:`` is relative to that file); a relative reference not found there is looked up
on the search path, :func:`include_search_path`: archc's block library shipped in the
package (``archc/library``). ``archc/NAME`` names a library file directly
(``include: archc/resnet_blocks``); ``.yaml`` may be left out. The file found, after
following links, must lie under the root spec's folder or the library; anywhere else is
refused unless the user allows it (``--allow-include-anywhere`` or
``ARCHC_ALLOW_INCLUDE_ANYWHERE=1``).

Included files are read by :func:`archc.fileio.read_bounded_text`: regular files only (a
device, FIFO or directory is never opened), bounded in size, one spec's files together
too. A file that is not an include file (a YAML mapping with ``blocks`` or ``functions``)
is reported by its path and what was expected, never by quoting it. Each file is included
once, however many references reach it (diamonds); a cycle is an error naming the chain.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from archc.errors import DiagnosticSink, SpecError, did_you_mean
from archc.fileio import ALLOW_INCLUDE_ENV, MAX_SPEC_BYTES_ENV, UnreadableFile, max_spec_bytes, read_bounded_text
from archc.frontends.yaml import schema
from archc.frontends.yaml.source import SList, SMap, load_yaml
from archc.limits import DEFAULT_LIMITS, Limits

#: archc's shipped block library (package data): ``include: archc/NAME`` reads ``LIBRARY_DIR/NAME.yaml``
LIBRARY_DIR = Path(__file__).resolve().parents[2] / "library"
#: the prefix of references to the shipped library
LIBRARY_PREFIX = "archc/"


def include_search_path(including_file: str) -> list[str]:
    """The directories an include of ``including_file`` is looked up in, in order: the including
    file's own directory, then the shipped block library. (The one place the search path is defined.)"""
    return [os.path.dirname(os.path.abspath(including_file)), str(LIBRARY_DIR)]


class _Refused(Exception):
    """An include that cannot be honoured; the message says why."""


class IncludeReader:
    """Reads the files a root spec includes, transitively, under one policy and one size budget."""

    def __init__(self, root_file: str, sink: DiagnosticSink, allow_anywhere: bool = False,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.root_dir = os.path.realpath(os.path.dirname(os.path.abspath(root_file)))
        self.sink = sink
        self.allow_anywhere = allow_anywhere
        self.limits = limits
        self.budget = max_spec_bytes()
        self.seen = {os.path.realpath(root_file)}

    def read_all(self, doc: SMap, filename: str, chain: tuple[str, ...] = ()) -> list[SMap]:
        """Every file ``doc`` includes, transitively, each once, a file's includes before it;
        ``chain`` is the files that include ``doc`` (for naming a cycle)."""
        chain = chain or (os.path.realpath(filename),)
        result: list[SMap] = []
        for ref, holder, key in self._references(doc):
            try:
                path = self._resolve(ref, filename)
                if path in chain:
                    raise _Refused("include cycle: " + " -> ".join([*chain[chain.index(path):], path]))
                if path in self.seen:
                    continue  # reached before through another include: its blocks are in already
                self.seen.add(path)
                included = self._load(path)
            except _Refused as exc:
                message = str(exc) if str(exc).startswith("include cycle") else f"cannot include '{ref}': {exc}"
                self.sink.error(message, holder.where(key))
                continue
            result.extend(self.read_all(included, path, (*chain, path)))
            result.append(included)
        return result

    def _references(self, doc: SMap) -> list[tuple[str, SMap | SList, Any]]:
        refs = doc.get("include")
        if refs is None:
            return []
        if isinstance(refs, str):
            pairs = [(refs, doc, "include")]
        elif isinstance(refs, SList):
            pairs = [(ref, refs, i) for i, ref in enumerate(refs)]
        else:
            self.sink.error("'include' must be a file name or a list of them", doc.where("include"))
            return []
        good = []
        for ref, holder, key in pairs:
            if isinstance(ref, str) and ref.strip():
                good.append((ref, holder, key))
            else:
                self.sink.error("an 'include' entry must be a file name", holder.where(key))
        return good

    def _resolve(self, ref: str, filename: str) -> str:
        """The real path ``ref`` names, seen from ``filename``, if the policy allows reading it."""
        if "\0" in ref:
            raise _Refused("a file name cannot contain a NUL byte")
        names = [ref] if ref.endswith((".yaml", ".yml")) else [ref + ".yaml", ref]
        if ref.startswith(LIBRARY_PREFIX):
            dirs, names = [str(LIBRARY_DIR)], [n[len(LIBRARY_PREFIX):] for n in names]
        else:
            dirs = include_search_path(filename)[:1 if os.path.isabs(ref) else None]
        candidates = [os.path.join(d, n) for d in dirs for n in names]
        found = next((c for c in candidates if os.path.lexists(c)), None)
        if found is None:
            raise _Refused(f"no such file (looked in {' and '.join(dirs)})")
        path = os.path.realpath(found)
        if not self.allow_anywhere and not any(_within(path, d) for d in self._allowed_dirs()):
            raise _Refused(f"{path} is outside the spec's folder ({self.root_dir}) and archc's library; "
                           "includes may read only there (--allow-include-anywhere lifts this)")
        return path

    def _allowed_dirs(self) -> list[str]:
        return [self.root_dir] + ([os.path.realpath(LIBRARY_DIR)] if LIBRARY_DIR.is_dir() else [])

    def _load(self, path: str) -> SMap:
        """Read and parse one include file; any problem is reported without its content."""
        if self.budget <= 0:
            raise _Refused(f"{path}: the spec's included files together are over the limit of "
                           f"{max_spec_bytes():,} bytes (raised by the environment variable {MAX_SPEC_BYTES_ENV})")
        try:
            text = read_bounded_text(path, self.budget, what="included file")
        except UnreadableFile as exc:
            raise _Refused(f"{path}: {exc}") from None
        self.budget -= len(text.encode("utf-8"))
        try:
            doc = load_yaml(text, path, self.limits)
        except SpecError as exc:
            loc = exc.diagnostics[0].location
            at = f" (at line {loc.line}, column {loc.column})" if loc and loc.line else ""
            raise _Refused(f"{path} is not valid YAML{at}; expected an include file: a mapping with "
                           "'blocks'") from None
        if not isinstance(doc, SMap) or not ("blocks" in doc or "functions" in doc):
            optional = ", ".join(k for k in schema.INCLUDE_KEYS if k not in ("blocks", "functions"))
            raise _Refused(f"{path} is not an include file; expected a YAML mapping with 'blocks' or 'functions' "
                           f"(and optionally {optional})")
        self._check_keys(doc)
        return doc

    def _check_keys(self, doc: SMap) -> None:
        allowed = schema.INCLUDE_KEYS
        for key in doc:
            if key not in allowed:
                self.sink.error(f"unknown key '{key}' in an included file; expected one of: {', '.join(allowed)}",
                                doc.where_key(key), hint=did_you_mean(key, allowed))


def _within(path: str, directory: str) -> bool:
    return os.path.commonpath([path, directory]) == directory


def read_includes(doc: SMap, filename: str, sink: DiagnosticSink, allow_anywhere: bool = False,
                  limits: Limits = DEFAULT_LIMITS) -> list[SMap]:
    """The include files a root spec ``doc`` (read from ``filename``) reaches; problems go to ``sink``."""
    return IncludeReader(filename, sink, allow_anywhere, limits).read_all(doc, filename)


__all__ = ["ALLOW_INCLUDE_ENV", "LIBRARY_DIR", "LIBRARY_PREFIX", "IncludeReader", "include_search_path",
           "read_includes"]
