"""The YAML frontend: spec files to the graph IR."""
from __future__ import annotations

from typing import Any

from archc.ir import Graph
from archc.ir.graph import verify_in_debug
from archc.frontends.yaml.elaborate import elaborate
from archc.frontends.yaml.source import load_yaml, load_yaml_file
from archc.limits import DEFAULT_LIMITS, Limits


def load_spec(path: str, overrides: dict[str, Any] | None = None, profile: str | None = None,
              limits: Limits = DEFAULT_LIMITS) -> Graph:
    """Parse and elaborate a spec file into the IR (shapes inferred) within ``limits``; SpecError on bad input."""
    return verify_in_debug(elaborate(load_yaml_file(path, limits), path, overrides, profile, limits))


def loads_spec(text: str, filename: str = "<spec>", overrides: dict[str, Any] | None = None,
               profile: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """Like :func:`load_spec` for spec text held in memory."""
    return verify_in_debug(elaborate(load_yaml(text, filename, limits), filename, overrides, profile, limits))


__all__ = ["load_spec", "loads_spec", "elaborate"]
