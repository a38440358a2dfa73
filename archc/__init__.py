"""archc: a neural-architecture graph compiler.

The pipeline, one package each, data flowing one way::

    spec (YAML) -> ir (graph) -> analysis (skip labels, paths) -> lowering (torch, onnx) -> runtime

Ops live in :mod:`archc.ops`, one definition per op holding its attributes,
shape inference, parameters and both lowerings.
"""
from __future__ import annotations

__version__ = "0.1.0"

from archc.errors import ArchcError, SpecError  # noqa: E402
from archc.ir import Graph  # noqa: E402
from archc.frontends.yaml import load_spec, loads_spec  # noqa: E402

__all__ = ["ArchcError", "SpecError", "Graph", "load_spec", "loads_spec", "__version__"]
