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

__all__ = ["ArchcError", "SpecError", "Graph", "from_onnx", "load_spec", "loads_spec", "__version__"]


def from_onnx(path: str):
    """An ONNX file as a ready PyTorch ``nn.Module`` (eval mode) carrying the file's own weights.

    The module is archc's generated source for the imported graph (what ``archc build
    MODEL.onnx --target torch`` writes), executed. torch is imported only when this is called.
    """
    from archc.frontends.onnx import load_onnx
    from archc.lowering.torch import build_module

    return build_module(load_onnx(path), seed=None).eval()
