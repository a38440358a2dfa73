"""``include:``: which files a spec may pull blocks from, and reading them safely.

A reference resolves relative to the file that names it (so an included file's own
``include:`` is relative to that file); a relative reference not found there is looked up
in archc's shipped library (the source tree's ``specs/`` folder, so ``lib/resnet_blocks.yaml``
works from any spec). The file found, after following links, must lie under the root
spec's folder or the library's ``specs/lib``; anywhere else is refused unless the user
allows it (``--allow-include-anywhere`` or ``ARCHC_ALLOW_INCLUDE_ANYWHERE=1``).

Included files are read by :func:`archc.fileio.read_bounded_text`: regular files only (a
device, FIFO or directory is never opened), bounded in size, one spec's files together
too. A file that is not an include file (a YAML mapping with ``blocks``) is reported by
its path and what was expected, never by quoting it: a spec must not be able to make
archc echo a file it has no business reading. Each file is included once, however many
references reach it, so diamonds and cycles are harmless.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from archc.errors import DiagnosticSink, SpecError, did_you_mean
from archc.fileio import MAX_SPEC_BYTES_ENV, UnreadableFile, max_spec_bytes, read_bounded_text
from archc.frontends.yaml import schema
from archc.frontends.yaml.source import SList, SMap, load_yaml
from archc.limits import DEFAULT_LIMITS, Limits

#: Environment variable that, set to anything but 0, allows includes from anywhere.
ALLOW_INCLUDE_ENV = "ARCHC_ALLOW_INCLUDE_ANYWHERE"
#: Where relative references are looked up after the including file's folder (source checkouts).
LIBRARY_SEARCH_DIR = Path(__file__).resolve().parents[3] / "specs"
#: The part of the library includes may read.
LIBRARY_DIR = LIBRARY_SEARCH_DIR / "lib"


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

    def read_all(self, doc: SMap, filename: str) -> list[SMap]:
        """Every file ``doc`` includes, transitively, each once, a file's includes before it."""
        result: list[SMap] = []
        for ref, holder, key in self._references(doc):
            try:
                path = self._resolve(ref, filename)
                if path in self.seen:
                    continue
                self.seen.add(path)
                included = self._load(path)
            except _Refused as exc:
                self.sink.error(f"cannot include '{ref}': {exc}", holder.where(key))
                continue
            result.extend(self.read_all(included, path))
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
        base = os.path.dirname(os.path.abspath(filename))
        candidates = [os.path.join(base, ref)]
        if not os.path.isabs(ref) and LIBRARY_SEARCH_DIR.is_dir():
            candidates.append(str(LIBRARY_SEARCH_DIR / ref))
        found = next((c for c in candidates if os.path.lexists(c)), None)
        if found is None:
            raise _Refused("no such file (looked in " + " and ".join(os.path.dirname(os.path.abspath(c))
                                                                     for c in candidates) + ")")
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
            text = read_bounded_text(path, self.budget)
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
        if not isinstance(doc, SMap) or "blocks" not in doc:
            raise _Refused(f"{path} is not an include file; expected a YAML mapping with 'blocks' "
                           f"(and optionally {', '.join(k for k in schema.INCLUDE_KEYS if k != 'blocks')})")
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


__all__ = ["ALLOW_INCLUDE_ENV", "LIBRARY_DIR", "IncludeReader", "read_includes"]
