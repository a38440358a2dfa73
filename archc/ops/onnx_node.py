"""``onnx_node``: one ONNX node kept as it is, for ONNX ops archc has no native op for.

The ONNX importer (:mod:`archc.frontends.onnx.importer`) maps an ONNX node to a native
op where it can, and otherwise to this op. It records everything needed to re-emit
the node unchanged and to analyse it:

* ``op_type``, ``domain`` and ``opset`` (the version of the domain the model imported);
* ``attributes``: the node's ONNX attributes as plain Python values (ints, floats,
  strings, lists of them; tensor attributes as numpy arrays);
* ``operands``: one entry per ONNX input, in order: an int ``k`` (the node's IR input
  ``k``, a computed tensor), a str (the name of a constant input, held as a weight in
  ``graph.weights[node][name]``), or None (an omitted optional input);
* ``params``: name -> ``{"shape", "dtype", "learned"}`` for those constants. Constants
  from initializers are ``learned`` parameters; literals (``Constant`` nodes, index
  tensors) are buffers, so they travel with the model but are not counted;
* ``output_types``: ``[[shape, dtype], ...]``, the inferred type of every output; the
  op's shape inference returns them (the IR keeps every output as a port, e.g. the
  indices of a two-output MaxPool).

Roles (:meth:`OnnxNode.role_of`; the vocabulary is :data:`archc.ops.base.ROLES`), chosen
by ``op_type`` and by how many inputs are computed tensors (constants do not count):

* ``merge_add`` (Add, Sum), ``merge_mul`` (Mul), ``merge_sub`` (Sub), ``merge_concat``
  (Concat): two or more computed inputs meet;
* ``scale``: Mul or Div of one computed tensor by a constant (layer scale, residual
  scaling): a fixed per-element factor, not a merge;
* ``affine``: Add or Sub of one computed tensor and a constant (a bias, a positional
  embedding, an epsilon): a fixed offset, not a merge;
* ``layer``: a learned transform (Conv, ConvTranspose, Gemm, MatMul with a constant
  weight, LSTM, GRU, RNN, Attention, Einsum with a weight);
* ``matmul``: MatMul (or Einsum) of two computed tensors, like attention scores;
* ``norm``: normalisations (BatchNormalization, LayerNormalization, ...);
* ``activation``: element-wise functions of one tensor (Relu, Erf, Pow by a constant,
  Sqrt, a constant divided by the tensor, Softmax, ...);
* ``gate``: activations into (0, 1) (Sigmoid, HardSigmoid), what gates multiply by;
* ``pool``: window and global pooling; ``reduce``: ReduceMean, ReduceSum, ...;
* ``reshape``: data movement (Reshape, Transpose, Slice, Gather, Squeeze, Unsqueeze,
  Split, Pad, Expand, Tile, DepthToSpace, ...);
* ``upsample`` (Resize, Upsample), ``unpool`` (MaxUnpool);
* ``shape``: Shape and Size, which compute a shape rather than features; ``const``: values
  not computed from the inputs' contents (ConstantOfShape, Range, random generators);
  analyses leave both out of the data flow;
* ``other``: everything else (comparisons, Where, casts to another dtype, ...).

The ONNX lowering re-emits the node with its attributes. The PyTorch lowering writes a
faithful torch expression of the ONNX op (:mod:`archc.ops.onnx_torch`, one definition per
ONNX op type); the node's constants are an ``nn.ParameterDict`` (learned ones as
parameters, literals as frozen ones), so they travel in the state_dict under
``node.name``. An op of a custom domain, or one archc has no PyTorch code for, is an
error naming the op and the node.
"""
from __future__ import annotations

from typing import Any

from archc.errors import ShapeError, SpecError
from archc.ir.types import TensorType
from archc.ops.base import Attr, OpDef, ParamSpec
from archc.ops.registry import register

_MERGES = {"Add": "merge_add", "Sum": "merge_add", "Mul": "merge_mul", "Sub": "merge_sub",
           "Concat": "merge_concat"}
#: role of an arithmetic op with a single computed input (the other operand constant)
_WITH_CONSTANT = {"Add": "affine", "Sum": "affine", "Sub": "affine", "Mul": "scale", "Div": "scale",
                  "Concat": "reshape"}
_ROLES: dict[str, str] = {}
for _role, _ops in {
    "layer": "Conv ConvTranspose ConvInteger QLinearConv Gemm LSTM GRU RNN Attention MultiHeadAttention "
             "DeformConv",
    "norm": "BatchNormalization LayerNormalization InstanceNormalization GroupNormalization "
            "LpNormalization LRN MeanVarianceNormalization SimplifiedLayerNormalization "
            "SkipLayerNormalization RMSNormalization",
    "gate": "Sigmoid HardSigmoid",
    "shape": "Shape Size",
    "const": "Constant ConstantOfShape Range EyeLike RandomNormal RandomUniform RandomNormalLike "
             "RandomUniformLike",
    "activation": "Relu LeakyRelu PRelu Elu Selu Celu Tanh Softplus Softsign Mish Gelu "
                  "FastGelu BiasGelu HardSwish ThresholdedRelu Erf Exp Log Sqrt Reciprocal Neg Abs Sign "
                  "Ceil Floor Round Sin Cos Softmax LogSoftmax Hardmax Clip Shrink Pow IsNaN IsInf",
    "pool": "MaxPool AveragePool GlobalAveragePool GlobalMaxPool LpPool GlobalLpPool MaxRoiPool RoiAlign",
    "reduce": "ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum "
              "ReduceLogSumExp ReduceSumSquare ArgMax ArgMin CumSum TopK",
    "reshape": "Reshape Transpose Slice Gather GatherElements GatherND Squeeze Unsqueeze Split Pad Expand "
               "Tile DepthToSpace SpaceToDepth Flatten Identity Dropout Compress ReverseSequence "
               "ScatterElements ScatterND Trilu",
    "upsample": "Resize Upsample",
    "unpool": "MaxUnpool",
}.items():
    for _op in _ops.split():
        _ROLES[_op] = _role


def role_for(op_type: str, computed_inputs: int, constant_first: bool = False) -> str:
    """The analysis role of an ONNX op with this many computed (non-constant) inputs;
    ``constant_first`` when its first operand is a constant (``c / x`` is not a scaling)."""
    if op_type == "Div":
        return "other" if computed_inputs >= 2 else ("activation" if constant_first else "scale")
    if op_type in _MERGES:
        return _MERGES[op_type] if computed_inputs >= 2 else _WITH_CONSTANT[op_type]
    if op_type in ("MatMul", "Einsum", "MatMulInteger"):
        return "matmul" if computed_inputs >= 2 else "layer"
    return _ROLES.get(op_type, "other")


@register
class OnnxNode(OpDef):
    name = "onnx_node"
    doc = "An imported ONNX node archc has no native op for, kept as is (see the module docstring)."
    attrs = {
        "op_type": Attr("str", doc="the ONNX operator, e.g. 'Pow'"),
        "domain": Attr("str", "", doc="the operator's domain ('' is the default ONNX domain)"),
        "opset": Attr("int", 0, doc="the version of that domain the model imported (0: unknown)"),
        "attributes": Attr("any", None, doc="the node's ONNX attributes as plain values"),
        "operands": Attr("any", None, doc="per ONNX input: IR input index, weight name or None"),
        "params": Attr("any", None, doc="constant inputs: name -> {shape, dtype, learned}"),
        "output_types": Attr("any", doc="[[shape, dtype], ...] of every output"),
    }
    inputs = ("x",)
    variadic = True
    min_inputs = 0

    def role_of(self, node) -> str:
        operands = node.attrs["operands"] or [None]
        return role_for(node.attrs["op_type"], len(node.inputs), isinstance(operands[0], str))

    def output_names(self, node) -> tuple[str, ...]:
        n = len(node.attrs["output_types"] or ())
        return ("y",) if n == 1 else tuple(f"y{i}" for i in range(n))

    def infer(self, node, ins):
        operands = node.attrs["operands"] or []
        computed = sorted(k for k in operands if isinstance(k, int))
        if computed != list(range(len(ins))):
            raise ShapeError(f"ONNX {node.attrs['op_type']} node takes {len(computed)} computed input(s), "
                             f"got {len(ins)}")
        return [TensorType(tuple(shape), dtype) for shape, dtype in node.attrs["output_types"]]

    def params(self, node, ins):
        return {name: ParamSpec(tuple(p["shape"]), "zeros", dtype=p["dtype"], buffer=not p.get("learned", True))
                for name, p in (node.attrs["params"] or {}).items()}

    def torch_module(self, node, ins):
        params = node.attrs["params"] or {}
        if not params:
            return None
        from archc.ops.onnx_torch import Unsupported, torch_dtype

        entries = []
        for name, p in params.items():
            try:
                dtype = torch_dtype(p["dtype"])
            except Unsupported as exc:
                raise self._error(node, str(exc)) from None
            frozen = "" if p.get("learned", True) and p["dtype"].startswith("float") else ", requires_grad=False"
            entries.append(f"{name!r}: nn.Parameter(torch.zeros({tuple(p['shape'])!r}, dtype={dtype}){frozen})")
        return "nn.ParameterDict({" + ", ".join(entries) + "})"

    def torch_forward(self, node, ins, args, module):
        from archc.ops.onnx_torch import Call, Unsupported, lower

        a = node.attrs
        if a["domain"]:
            raise self._error(node, f"custom domain '{a['domain']}': only standard ONNX ops have a PyTorch "
                                    "lowering")
        operands, ranks = [], []
        for operand in a["operands"] or []:
            if operand is None:
                operands.append(None)
                ranks.append(None)
            elif isinstance(operand, int):
                operands.append(args[operand])
                ranks.append(ins[operand].rank)
            else:
                operands.append(f"{module}[{operand!r}]")
                ranks.append(len(a["params"][operand]["shape"]))
        call = Call(a["op_type"], dict(a["attributes"] or {}), operands, ranks, list(node.outputs),
                    a["opset"] or 21)
        try:
            return lower(call)
        except Unsupported as exc:
            raise self._error(node, str(exc)) from None

    @staticmethod
    def _error(node, why: str) -> SpecError:
        a = node.attrs
        where = f"'{a['domain']}' " if a["domain"] else ""
        return SpecError(f"imported ONNX {where}op '{a['op_type']}' cannot be written as PyTorch: {why}",
                         node=node.name, location=node.location)

    def onnx(self, emit, node, inputs, ins):
        import numpy as np
        from onnx import numpy_helper

        a = node.attrs
        if not a["domain"] and a["opset"] and a["opset"] != emit.opset \
                and not compatible_versions(a["op_type"], a["opset"], emit.opset):
            raise NotImplementedError(
                f"ONNX {a['op_type']} was imported from opset {a['opset']} and changed before opset "
                f"{emit.opset}; it cannot be re-emitted unchanged")
        args = []
        for operand in a["operands"] or []:
            if operand is None:
                args.append("")
            elif isinstance(operand, int):
                args.append(inputs[operand])
            else:
                args.append(emit.param(operand))
        while args and args[-1] == "":
            args.pop()
        attributes: dict[str, Any] = {}
        for key, value in (a["attributes"] or {}).items():
            if isinstance(value, np.ndarray):
                value = numpy_helper.from_array(value)
            elif isinstance(value, (list, tuple)):
                if not value:
                    continue  # onnx.helper cannot type an empty list; an empty list means the default
                value = list(value)
            attributes[key] = value
        if a["domain"]:
            attributes["domain"] = a["domain"]
        return emit.add_node(a["op_type"], args, outputs=len(a["output_types"]), **attributes)


#: ops whose meaning changed between versions while their signature stayed the same
_SEMANTICS_CHANGED = frozenset({"Softmax", "LogSoftmax", "Hardmax", "Upsample"})


def compatible_versions(op_type: str, old: int, new: int) -> bool:
    """Whether a default-domain node valid at opset ``old`` means the same at opset ``new``.

    Most version bumps only widen the accepted types; those keep the inputs, outputs
    and attributes, which is what is compared (with a short list of ops whose
    semantics changed under the same signature).
    """
    from onnx import defs

    try:
        a, b = defs.get_schema(op_type, old), defs.get_schema(op_type, new)
    except Exception:  # noqa: BLE001 - an op unknown to this onnx version
        return False
    if a.since_version == b.since_version:
        return True
    if op_type in _SEMANTICS_CHANGED:
        return False

    def signature(schema):
        return (sorted(schema.attributes), [(p.name, p.option) for p in schema.inputs],
                [(p.name, p.option) for p in schema.outputs])

    return signature(a) == signature(b)


#: attribute names of the ``nn.ParameterDict`` holding an onnx_node's constants in PyTorch
#: (mapping methods and nn.Module's own), which a constant cannot be called
_TAKEN_BY_THE_MODULE = frozenset("""
    add_module apply bfloat16 buffers children clear compile copy cpu cuda double eval extra_repr float
    forward fromkeys get half ipu items keys load_state_dict modules mtia named_buffers named_children
    named_modules named_parameters parameters pop popitem register_buffer register_module register_parameter
    requires_grad_ setdefault share_memory state_dict to to_empty train training type update values xpu
    zero_grad dump_patches call_super_init""".split())


def usable_param_name(name: str) -> bool:
    """Whether a constant of an onnx_node may have this name (it is a key of its PyTorch module)."""
    return name.isidentifier() and not name.startswith("_") and name not in _TAKEN_BY_THE_MODULE


def constant_params(weights: dict[str, Any], learned: dict[str, bool]) -> dict[str, dict[str, Any]]:
    """The ``params`` attribute for constants ``weights`` (name -> array)."""
    return {name: {"shape": list(arr.shape), "dtype": str(arr.dtype), "learned": bool(learned[name])}
            for name, arr in weights.items()}
