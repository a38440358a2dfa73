"""The ONNX frontend: models written by other tools, imported into the IR.

:func:`load_onnx` reads an ONNX file and :func:`from_onnx` converts an in-memory
``onnx.ModelProto`` (see :mod:`archc.frontends.onnx.importer`).
"""
from archc.frontends.onnx import arithmetic as _arithmetic  # noqa: F401 - registers its native ops
from archc.frontends.onnx import attention as _attention  # noqa: F401 - registers its pattern
from archc.frontends.onnx import convert as _convert  # noqa: F401 - registers the converters
from archc.frontends.onnx import groupnorm as _groupnorm  # noqa: F401 - registers its pattern
from archc.frontends.onnx import pooling as _pooling  # noqa: F401 - registers its patterns
from archc.frontends.onnx import recurrent as _recurrent  # noqa: F401 - registers its patterns
from archc.frontends.onnx import roll as _roll  # noqa: F401 - registers its patterns
from archc.frontends.onnx.importer import from_onnx, load_onnx

__all__ = ["from_onnx", "load_onnx"]
