"""The YAML frontend: spec files to the graph IR."""
from __future__ import annotations

from typing import Any

from archc.ir import Graph
from archc.ir.graph import verify_in_debug
from archc.frontends.yaml.elaborate import elaborate
from archc.frontends.yaml.source import load_yaml, load_yaml_file


def load_spec(path: str, overrides: dict[str, Any] | None = None, profile: str | None = None) -> Graph:
    """Parse and elaborate a spec file into the IR (shapes inferred); SpecError on bad input."""
    return verify_in_debug(elaborate(load_yaml_file(path), path, overrides, profile))


def loads_spec(text: str, filename: str = "<spec>", overrides: dict[str, Any] | None = None,
               profile: str | None = None) -> Graph:
    """Like :func:`load_spec` for spec text held in memory."""
    return verify_in_debug(elaborate(load_yaml(text, filename), filename, overrides, profile))


__all__ = ["load_spec", "loads_spec", "elaborate"]
