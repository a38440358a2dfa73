"""The YAML frontend: spec files to the graph IR."""
from __future__ import annotations

from typing import Any

from archc.fileio import read_text
from archc.ir import Graph
from archc.ir.graph import verify_in_debug
from archc.frontends.yaml.elaborate import elaborate
from archc.frontends.yaml.source import load_yaml
from archc.limits import DEFAULT_LIMITS, Limits


def load_spec(path: str, overrides: dict[str, Any] | None = None, profile: str | None = None,
              limits: Limits = DEFAULT_LIMITS, *, allow_include_anywhere: bool = False) -> Graph:
    """Parse and elaborate a spec file into the IR (shapes inferred) within ``limits``; SpecError on bad input.

    The file must be a regular file or a pipe of bounded size (:func:`archc.fileio.read_text`);
    ``include:`` reads only under the spec's folder and archc's library unless
    ``allow_include_anywhere``.
    """
    text = read_text(path, what="spec", allow_pipe=True)
    return verify_in_debug(elaborate(load_yaml(text, path, limits), path, overrides, profile, limits,
                                     allow_include_anywhere=allow_include_anywhere))


def loads_spec(text: str, filename: str = "<spec>", overrides: dict[str, Any] | None = None,
               profile: str | None = None, limits: Limits = DEFAULT_LIMITS, *,
               allow_include_anywhere: bool = False) -> Graph:
    """Like :func:`load_spec` for spec text held in memory (includes resolve from ``filename``'s folder)."""
    return verify_in_debug(elaborate(load_yaml(text, filename, limits), filename, overrides, profile, limits,
                                     allow_include_anywhere=allow_include_anywhere))


__all__ = ["load_spec", "loads_spec", "elaborate"]
