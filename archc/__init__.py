"""archc: a neural-architecture graph compiler.

The pipeline, one package each, data flowing one way::

    spec (YAML) -> ir (graph) -> analysis (skip labels, paths) -> lowering (torch, onnx) -> runtime

Ops live in :mod:`archc.ops`, one definition per op holding its attributes,
shape inference, parameters and both lowerings.
"""
from __future__ import annotations

from typing import Any

from archc._version import __version__
from archc.errors import ArchcError, SpecError
from archc.ir import Graph

__all__ = ["ArchcError", "SpecError", "Graph", "from_onnx", "load_spec", "loads_spec", "__version__"]


def __getattr__(name: str) -> Any:
    """``load_spec`` and ``loads_spec`` load the YAML frontend on first use, so importing
    archc (or :mod:`archc.ir`) does not load YAML, the op registry or numpy-heavy modules."""
    if name in ("load_spec", "loads_spec"):
        from archc.frontends import yaml as frontend

        return getattr(frontend, name)
    raise AttributeError(f"module 'archc' has no attribute '{name}'")


def from_onnx(path: str):
    """An ONNX file as a ready PyTorch ``nn.Module`` (eval mode) carrying the file's own weights.

    The module is archc's generated source for the imported graph (what ``archc build
    MODEL.onnx --target torch`` writes), executed. torch is imported only when this is called.
    """
    from archc.frontends.onnx import load_onnx
    from archc.lowering.torch import build_module

    return build_module(load_onnx(path), seed=None).eval()
