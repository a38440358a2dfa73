"""Frontends besides the YAML spec language: models written by other tools, imported into the IR.

:func:`load_onnx` reads an ONNX file and :func:`from_onnx` converts an in-memory
``onnx.ModelProto`` (see :mod:`archc.frontends.onnx_import`).
"""
from archc.frontends.onnx_import import from_onnx, load_onnx

__all__ = ["from_onnx", "load_onnx"]
