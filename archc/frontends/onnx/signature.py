"""Which of a torch dynamo export's float initializers are the module's learned parameters.

torch's dynamo exporter writes the ExportedProgram's graph signature on the graph (metadata
``pkg.torch.export.ExportedProgram.graph_signature``), one line per lifted input::

    p_fc_weight: PARAMETER target='fc.weight'
    b_pos: BUFFER target='pos' persistent=True
    c_lifted_tensor_0: CONSTANT_TENSOR target='lifted_tensor_0'

An initializer that holds a parameter or buffer as it is bears its target's name (``fc.bias``). Where
the exporter's optimizer (onnxscript) folds a computation on constants into a new initializer (a
Linear's weight transposed for its MatMul, ``self.w * 3``, ``torch.arange(8) * 0.1``), it records on
the new value's value_info every name it was folded from, transitively
(``pkg.onnxscript.optimizer.folded_from``: ``"['fc.weight']"``). (Optimizers older than that record,
of 2025, folded into Constant nodes, never initializers.) Every other float initializer is a constant
the exporter made: a Python scalar of the forward (``x * 0.5``, ``/ math.sqrt(d)``, an eps), a tensor
the forward computed from literals, the ones and zeros standing for an absent ``affine``.

So in a file with a signature, a float initializer is a learned parameter exactly where it is one
of the signature's parameters or was folded from one; buffers, the forward's constants and the
exporter's own are not (they stay in the model, as buffers, but are not counted or trained). A file
without a signature (the TorchScript exporter, other tools) says nothing: all its float initializers
are taken to be parameters.
"""
from __future__ import annotations

import ast
import re

import onnx

__all__ = ["lifted_names", "lifted_parameter", "signature_parameters", "torch_constants"]

_SIGNATURE = "pkg.torch.export.ExportedProgram.graph_signature"
_PARAMETER_LINE = re.compile(r": PARAMETER target='([^']*)'")
_FOLDED_FROM = "pkg.onnxscript.optimizer.folded_from"
_FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                          onnx.TensorProto.BFLOAT16, onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128})


def torch_constants(graph: onnx.GraphProto) -> frozenset[str]:
    """The float initializers of ``graph`` that torch's dynamo exporter says are no learned parameter
    of the exported module (see the module's docstring); none where the graph has no signature."""
    parameters = signature_parameters(graph)
    if parameters is None:
        return frozenset()
    origins = _folded_from(graph)
    constants = set()
    for init in graph.initializer:
        if init.data_type not in _FLOAT_TYPES or init.name in parameters:
            continue
        if not parameters.intersection(origins.get(init.name, ())):
            constants.add(init.name)
    return frozenset(constants)


def signature_parameters(graph: onnx.GraphProto) -> frozenset[str] | None:
    """The parameters' targets in the graph signature (``fc.weight``), or None where the graph has none."""
    for prop in graph.metadata_props:
        if prop.key == _SIGNATURE:
            return frozenset(_PARAMETER_LINE.findall(prop.value))
    return None


def _folded_from(graph: onnx.GraphProto) -> dict[str, tuple[str, ...]]:
    """Value name -> the names it was folded from, where the optimizer recorded them (a list's repr)."""
    origins: dict[str, tuple[str, ...]] = {}
    for vi in graph.value_info:
        for prop in vi.metadata_props:
            if prop.key != _FOLDED_FROM:
                continue
            try:
                names = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                names = None  # (not the list of names this exporter writes: no provenance)
            if isinstance(names, (list, tuple, set)):
                origins[vi.name] = tuple(str(n) for n in names)
    return origins


#: a placeholder of a lifted parameter among an FX node's arguments (``%p_convs_1_resweight``)
_LIFTED = re.compile(r"%(p_\w+)")
_FX_NODE = "pkg.torch.onnx.fx_node"


def lifted_parameter(node: onnx.NodeProto, parameters: dict[str, str]) -> str | None:
    """The one parameter ``node``'s FX node read, by its target (``convs.1.resweight``), where its metadata
    names exactly one placeholder that is a parameter (``parameters``: placeholder name -> target, see
    :func:`lifted_names`); else None. The default exporter's optimizer merges initializers of equal values
    into the first one's name: the metadata still tells which parameter each reader read."""
    for prop in node.metadata_props:
        if prop.key == _FX_NODE:
            found = {parameters[p] for p in _LIFTED.findall(prop.value) if p in parameters}
            return found.pop() if len(found) == 1 else None
    return None


def lifted_names(graph: onnx.GraphProto) -> dict[str, str]:
    """Placeholder name -> target of each parameter in the graph signature (``p_fc_weight`` -> ``fc.weight``,
    as torch.export lifts them); empty where the graph has no signature."""
    return {"p_" + target.replace(".", "_"): target for target in signature_parameters(graph) or ()}

