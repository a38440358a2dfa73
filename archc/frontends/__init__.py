"""Frontends: what reads a user's model into the IR.

- :mod:`archc.frontends.yaml`: the YAML spec language (``load_spec``, ``loads_spec``);
- :mod:`archc.frontends.onnx`: ONNX models written by other tools (``load_onnx``, ``from_onnx``).

Each frontend is imported only when used, so reading a spec never loads onnx and vice versa.
"""
