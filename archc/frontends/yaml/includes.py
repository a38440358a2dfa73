"""Where ``include:`` finds files, and the closure of a spec's includes.

A reference is looked up relative to the file that names it, then on the search path
(:func:`include_search_path`); ``archc/NAME`` names a file of the block library shipped in
the package (``include: archc/resnet_blocks``). ``.yaml`` may be left out. Included files
may include others; a file reached twice is read once, and a cycle is an error naming
the chain.
"""
from __future__ import annotations

import os
from typing import Callable, NamedTuple

from archc.errors import Location, SpecError
from archc.frontends.yaml.source import SList, SMap, load_yaml_file

#: the block library shipped with archc: ``include: archc/NAME`` reads ``LIBRARY_DIR/NAME.yaml``
LIBRARY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "library")
#: the prefix of references to the shipped library
LIBRARY_PREFIX = "archc/"


def include_search_path(including_file: str) -> list[str]:
    """The directories an include of ``including_file`` is looked up in, in order: the
    including file's own directory, then the shipped block library."""
    return [os.path.dirname(os.path.abspath(including_file)), LIBRARY_DIR]


def resolve_include(ref: str, including_file: str) -> str | None:
    """The file an ``include`` reference names, or None if no file on the search path matches."""
    names = [ref] if ref.endswith((".yaml", ".yml")) else [ref + ".yaml", ref]
    if ref.startswith(LIBRARY_PREFIX):
        dirs, names = [LIBRARY_DIR], [n[len(LIBRARY_PREFIX):] for n in names]
    else:
        dirs = include_search_path(including_file)
    for directory in dirs:
        for name in names:
            path = os.path.normpath(os.path.join(directory, name))
            if os.path.isfile(path):
                return path
    return None


class Included(NamedTuple):
    """One included file's parsed content and where it was included from."""

    path: str
    doc: SMap


ErrorFn = Callable[[str, Location], None]


def collect_includes(doc: SMap, filename: str, error: ErrorFn, check_keys: Callable[[SMap], None]) -> list[Included]:
    """Every file ``doc`` includes, directly or through other includes, each once, depth first."""
    result: list[Included] = []
    seen = {os.path.realpath(filename)}
    _visit(doc, filename, [filename], seen, result, error, check_keys)
    return result


def _references(doc: SMap, error: ErrorFn) -> list[tuple[str, SMap | SList, object]]:
    refs = doc.get("include")
    if refs is None:
        return []
    if isinstance(refs, str):
        return [(refs, doc, "include")]
    if isinstance(refs, SList):
        return [(str(r), refs, i) for i, r in enumerate(refs)]
    error("'include' must be a file name or a list of them", doc.where("include"))
    return []


def _visit(doc: SMap, filename: str, chain: list[str], seen: set[str], result: list[Included],
           error: ErrorFn, check_keys: Callable[[SMap], None]) -> None:
    for ref, holder, key in _references(doc, error):
        where = holder.where(key)
        path = resolve_include(ref, filename)
        if path is None:
            places = ", ".join(include_search_path(filename)) if not ref.startswith(LIBRARY_PREFIX) else LIBRARY_DIR
            error(f"cannot include '{ref}': no such file (looked in {places})", where)
            continue
        real = os.path.realpath(path)
        reals = [os.path.realpath(c) for c in chain]
        if real in reals:
            error(f"include cycle: {' -> '.join([*chain[reals.index(real):], path])}", where)
            continue
        if real in seen:
            continue  # reached before through another include: its blocks are in already
        seen.add(real)
        try:
            included = load_yaml_file(path)
        except SpecError as exc:
            error(f"cannot include '{ref}': {exc.diagnostics[0].message}", where)
            continue
        if not isinstance(included, SMap):
            error(f"included file '{ref}' must be a mapping with 'blocks'", where)
            continue
        check_keys(included)
        _visit(included, path, [*chain, path], seen, result, error, check_keys)
        result.append(Included(path, included))
