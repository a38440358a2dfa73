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
* ``params``: name -> ``{"shape", "dtype", "learned"}`` for those constants, plus ``values``
  (row-major) for a small one (at most :data:`SMALL_CONSTANT` elements: axes, exponents,
  epsilons, scales), which are then its initial data everywhere (the seeded weights, the
  generated PyTorch module and its ``reset_parameters``), not zeros. Constants
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
ONNX op type); the node's constants are an ``OnnxConstants`` module (learned ones as
parameters, the model's literals as buffers), so they travel in the state_dict under
``node.name`` and ``parameters()`` counts what ``summary`` counts. An op of a custom domain, or one archc has no PyTorch code for, is an
error naming the op and the node.
"""
from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

from archc.errors import ShapeError, SpecError, first_line
from archc.ir.types import DTYPES, TensorType
from archc.ir.vocab import WITH_CONSTANT, Role
from archc.ops.base import Attr, OpDef, ParamSpec, py, torch_init_source, values_source
from archc.ops.onnx_one_node import DEFAULT_OPSET, downgraded, node_model, tensor_type_code
from archc.ops.registry import register

_MERGES = {"Add": "merge_add", "Sum": "merge_add", "Mul": "merge_mul", "Sub": "merge_sub",
           "Concat": "merge_concat"}
#: role of an arithmetic op with a single computed input (the other operand constant)
_WITH_CONSTANT = {op: str(WITH_CONSTANT[Role(role)]) for op, role in _MERGES.items()}
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


#: the module holding an onnx_node's constants in generated PyTorch (written once into the file)
_CONSTANTS_CLASS = '''\
class OnnxConstants(nn.Module):
    """An imported ONNX node's constant inputs, by name: the learned ones parameters,
    the model's literals buffers (in the state_dict, not among the parameters)."""

    def __init__(
        self,
        learned: dict[str, torch.Tensor] | None = None,
        fixed: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        for name, tensor in (learned or {}).items():
            grad = tensor.is_floating_point()
            self.register_parameter(name, nn.Parameter(tensor, requires_grad=grad))
        for name, tensor in (fixed or {}).items():
            self.register_buffer(name, tensor)
'''


@register
class OnnxNode(OpDef):
    name = "onnx_node"
    doc = "An imported ONNX node archc has no native op for, kept as is (see the module docstring)."
    torch_classes = {"OnnxConstants": _CONSTANTS_CLASS}
    attrs = {
        "op_type": Attr("str", doc="the ONNX operator, e.g. 'Pow'"),
        "domain": Attr("str", "", doc="the operator's domain ('' is the default ONNX domain)"),
        "opset": Attr("int", 0, doc="the version of that domain the model imported (0: unknown)", min=0),
        "attributes": Attr("any", None, doc="the node's ONNX attributes as plain values"),
        "operands": Attr("any", None, doc="per ONNX input: IR input index, weight name or None"),
        "params": Attr("any", None, doc="constant inputs: name -> {shape, dtype, learned, values (a small one)}"),
        "output_types": Attr("types", doc="[[shape, dtype], ...] of every output; a dim is a number, a "
                                          "parameter or an expression of them, or a symbol like N"),
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
        check_fields(node.attrs)
        operands = node.attrs["operands"] or []
        computed = sorted(k for k in operands if isinstance(k, int))
        if computed != list(range(len(ins))):
            raise ShapeError(f"operands {list(operands)} must name each of the node's {len(ins)} input(s) "
                             f"once, by index 0..{len(ins) - 1}")
        declared = [TensorType(tuple(shape), dtype) for shape, dtype in node.attrs["output_types"]]
        if not node.attrs["domain"]:
            check_against_onnx(node.attrs, ins, declared)
        check_in_onnxruntime(node.attrs, ins)
        return declared

    def params(self, node, ins):
        # (a constant with its values is that data; any other is drawn as zeros: a weight to load. A
        # checkpoint may leave out a constant that is not learned and whose values the node holds)
        return {name: ParamSpec(tuple(p["shape"]), "values" if "values" in p else "zeros", dtype=p["dtype"],
                                buffer=not p.get("learned", True), values=tuple(p.get("values", ())),
                                optional="values" in p and not p.get("learned", True))
                for name, p in (node.attrs["params"] or {}).items()}

    def torch_module(self, node, ins):
        params = node.attrs["params"] or {}
        if not params:
            return None
        from archc.ops.onnx_torch import Unsupported, torch_dtype

        groups: dict[str, list[str]] = {"learned": [], "fixed": []}
        for name, p in params.items():
            try:
                dtype = torch_dtype(p["dtype"])
            except Unsupported as exc:
                raise self._error(node, str(exc)) from None
            data = values_source(p["values"], p["shape"], dtype) if "values" in p else \
                f"torch.zeros({tuple(p['shape'])!r}, dtype={dtype})"
            groups["learned" if p.get("learned", True) else "fixed"].append(f"{py(name)}: {data}")
        return "OnnxConstants(" + ", ".join(f"{kind}={{{', '.join(entries)}}}" for kind, entries in groups.items()
                                            if entries) + ")"

    def torch_reset(self, node, ins, module):
        # the module is an OnnxConstants (no reset_parameters of its own): as constructed
        return [torch_init_source(spec, f"{module}.{name}") for name, spec in self.params(node, ins).items()]

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
                operands.append(f"{module}.{operand}")
                ranks.append(len(a["params"][operand]["shape"]))
        call = Call(a["op_type"], attribute_values(a["attributes"]), operands, ranks, list(node.outputs),
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
        a = node.attrs
        operands = a["operands"] or []
        reads: list[int | None] = list(range(len(operands)))
        op_type, attributes = a["op_type"], _node_attributes(a["attributes"])
        if not a["domain"] and a["opset"] and a["opset"] != emit.opset \
                and not compatible_versions(a["op_type"], a["opset"], emit.opset, _used(a)):
            rewritten = downgraded(a, ins, lambda name: emit.weights[node.name][name], attributes, emit.opset)
            if rewritten is None:
                between = f"after opset {emit.opset}" if a["opset"] > emit.opset else f"before opset {emit.opset}"
                raise NotImplementedError(
                    f"ONNX {a['op_type']} was imported from opset {a['opset']} and its definition changed "
                    f"{between} (archc writes opset {emit.opset}); it cannot be re-emitted unchanged")
            op_type, reads, attributes = rewritten
        # (a parameter becomes an initializer only where the node reads it: a rewritten node may not)
        args = ["" if k is None or operands[k] is None else inputs[operands[k]] if isinstance(operands[k], int)
                else emit.param(operands[k]) for k in reads]
        while args and args[-1] == "":
            args.pop()
        if a["domain"]:
            attributes["domain"] = a["domain"]
        return emit.add_node(op_type, args, outputs=len(a["output_types"]), **attributes)


_PLAIN = (bool, int, float, str)


def check_fields(a: dict[str, Any]) -> None:
    """ShapeError naming the first malformed field of an ``onnx_node`` (one written in a spec by
    hand is checked like everything else; the importer's always pass)."""
    op_type = a["op_type"]
    if not op_type.isidentifier():
        raise ShapeError(f"op_type '{op_type}' must be an ONNX operator name like 'Pow'")
    if not a["domain"]:
        from onnx import defs

        if not defs.has(op_type):
            raise ShapeError(f"'{op_type}' is not an operator of the default ONNX domain")
    attributes = a["attributes"] or {}
    if not isinstance(attributes, dict):
        raise ShapeError("attributes must be a mapping of ONNX attribute name -> value")
    for key, value in attributes.items():
        if isinstance(key, str) and isinstance(value, dict):
            _check_tensor(key, value)
        elif not isinstance(key, str) or not (isinstance(value, _PLAIN) or type(value).__name__ == "ndarray" or (
                isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value))):
            raise ShapeError(f"attribute '{key}' must be a number, a string, a list of them or a tensor "
                             "{tensor: DTYPE, shape: [ints], values: [numbers]}")
        elif isinstance(value, (float, list, tuple)):  # an ONNX float attribute is a float32
            problem = _dtype_problem(value if isinstance(value, (list, tuple)) else [value], "float32",
                                     floats_only=True)
            if problem:
                raise ShapeError(f"attribute '{key}' {problem}")
    params = a["params"] or {}
    if not isinstance(params, dict):
        raise ShapeError("params must be a mapping of constant name -> {shape, dtype, learned}")
    for name, spec in params.items():
        if not isinstance(spec, dict) or set(spec) - {"shape", "dtype", "learned", "values"} or \
                not _is_shape(spec.get("shape"), symbols=False) or spec.get("dtype") not in DTYPES or \
                not _fits_values(spec):
            raise ShapeError(f"params '{name}' must be {{shape: [ints >= 0], dtype: one of {', '.join(DTYPES)}, "
                             "learned: true or false}, and optionally values: [one number per element]")
        problem = _dtype_problem(spec.get("values") or [], spec["dtype"])
        if problem:
            raise ShapeError(f"params '{name}' {problem}")
    operands = a["operands"] or []
    if not isinstance(operands, (list, tuple)) or not all(
            o is None or (isinstance(o, int) and not isinstance(o, bool) and o >= 0) or o in params
            for o in operands):
        raise ShapeError("operands must list, per ONNX input, an input index (int >= 0), the name of one "
                         "of 'params', or null")
    types = a["output_types"]
    if not isinstance(types, (list, tuple)) or not types or not all(
            isinstance(t, (list, tuple)) and len(t) == 2 and _is_shape(t[0], symbols=True) and t[1] in DTYPES
            for t in types):
        raise ShapeError(f"output_types must be a non-empty list of [shape, dtype] pairs, dtype one of "
                         f"{', '.join(DTYPES)}")
    if not a["domain"]:
        _check_schema(op_type, a["opset"], len(operands), len(types), attributes)


#: the keys of a tensor attribute as a spec writes it (ConstantOfShape's ``value``)
TENSOR_KEYS = frozenset({"tensor", "shape", "values"})


def tensor_attribute(arr: Any) -> dict[str, Any]:
    """A tensor attribute as spec data: its dtype, shape and values in row-major order (a plain list
    would lose the dtype, which the op's output type follows)."""
    return {"tensor": arr.dtype.name, "shape": list(arr.shape), "values": arr.ravel().tolist()}


def attribute_values(attributes: dict[str, Any] | None) -> dict[str, Any]:
    """An onnx_node's attributes with the tensors a spec writes (:func:`tensor_attribute`) as
    numpy arrays, as the importer gives them."""
    import numpy as np

    return {k: np.array(v["values"], dtype=v["tensor"]).reshape(v["shape"]) if isinstance(v, dict) else v
            for k, v in (attributes or {}).items()}


def _fits_values(spec: dict[str, Any]) -> bool:
    """Whether a param's optional ``values`` are numbers, one per element of its ``shape``."""
    import math

    values = spec.get("values")
    if values is None:
        return "values" not in spec
    return isinstance(values, list) and all(isinstance(v, _PLAIN) and not isinstance(v, str) for v in values) \
        and len(values) == math.prod(spec["shape"])


def _check_tensor(key: str, value: dict[str, Any]) -> None:
    import math

    shape, values = value.get("shape"), value.get("values")
    if set(value) != TENSOR_KEYS or value.get("tensor") not in DTYPES or not _is_shape(shape, symbols=False) \
            or not isinstance(values, list) or not all(isinstance(v, _PLAIN) for v in values) \
            or len(values) != math.prod(shape) or any(isinstance(v, str) for v in values):
        raise ShapeError(f"attribute '{key}' as a tensor must be {{tensor: one of {', '.join(DTYPES)}, "
                         "shape: [ints >= 0], values: [one number per element]}")
    problem = _dtype_problem(values, value["tensor"])
    if problem:
        raise ShapeError(f"attribute '{key}' {problem}")


def _dtype_problem(values: Any, dtype: str, floats_only: bool = False) -> str | None:
    """Why the numbers in ``values`` cannot be stored as ``dtype`` as written (a finite number past
    a float type's range would become infinity, one past an integer type's range is no such
    integer), or None. ``floats_only``: look at float numbers only (the integers of an ONNX
    attribute are int64 attributes, held to that by ONNX itself)."""
    import math

    import numpy as np

    if dtype == "bool":
        return None
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
               and (isinstance(v, float) or not floats_only)]
    kind = np.dtype(dtype)
    if kind.kind == "f":
        top = float(np.finfo(kind).max)
        bad = next((v for v in numbers if math.isfinite(v) and abs(v) > top), None)
        return None if bad is None else f"must fit in {dtype} (magnitude at most {top:.8g}), got {bad:g}"
    limits = np.iinfo(kind)
    bad = next((v for v in numbers if not (math.isfinite(v) and limits.min <= v <= limits.max)), None)
    return None if bad is None else f"must fit in {dtype} ({limits.min} to {limits.max}), got {bad:g}"


def _node_attributes(attributes: dict[str, Any] | None) -> dict[str, Any]:
    """An onnx_node's attributes as ``helper.make_node`` takes them: tensors as TensorProtos (an
    array would be read as a list of numbers), tuples as lists, empty lists left out (their type
    cannot be told)."""
    import numpy as np
    from onnx import numpy_helper

    return {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else (list(v) if isinstance(v, tuple) else v)
            for k, v in attribute_values(attributes).items() if not (isinstance(v, (list, tuple)) and not v)}


def _check_schema(op_type: str, opset: int, n_in: int, n_out: int, attributes: dict[str, Any]) -> None:
    """The node against its ONNX schema (attribute names and types, input and output counts), so that
    ``build`` never writes a node the ONNX checker rejects."""
    from onnx import checker, helper

    values = _node_attributes(attributes)
    context = checker.C.CheckerContext()
    context.ir_version, context.opset_imports = 8, {"": opset or 17}
    try:
        node = helper.make_node(op_type, [f"i{k}" for k in range(n_in)], [f"o{k}" for k in range(n_out)], **values)
        checker.check_node(node, context)
    except (checker.ValidationError, ValueError, TypeError) as exc:
        first = first_line(exc)
        raise ShapeError(f"not a valid ONNX {op_type} node: {first}") from None


def check_against_onnx(a: dict[str, Any], ins: list[TensorType], declared: list[TensorType]) -> None:
    """ShapeError where ONNX's own shape inference of the node contradicts ``output_types``
    (a dtype, a rank or a known dim), so a hand-written type cannot make ``build`` write a
    model that the ONNX checker rejects. What ONNX cannot infer (e.g. from constants whose
    values it does not see here) is taken as declared."""
    from onnx import TensorProto, helper, shape_inference

    model, _, outs = node_model(a, ins, _node_attributes(a["attributes"]), a["opset"] or 17)
    try:
        inferred = {v.name: v.type.tensor_type for v in shape_inference.infer_shapes(model).graph.output}
    except Exception:  # noqa: BLE001 - ONNX's inference gives up; the schema check above passed
        return
    for k, (o, want) in enumerate(zip(outs, declared)):
        got = inferred.get(o)
        if got is None or got.elem_type == TensorProto.UNDEFINED:
            continue
        if got.elem_type != tensor_type_code(want.dtype):
            raise ShapeError(f"output {k} is declared {want.dtype}, ONNX infers "
                             f"{helper.tensor_dtype_to_np_dtype(got.elem_type)}")
        if not got.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in got.shape.dim]
        if len(dims) != want.rank or any(g is not None and isinstance(w, int) and g != w
                                         for g, w in zip(dims, want.shape)):
            shown = "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
            raise ShapeError(f"output {k} is declared {want}, ONNX infers {shown}")


def check_in_onnxruntime(a: dict[str, Any], ins: list[TensorType]) -> None:
    """ShapeError where onnxruntime refuses the node: what ONNX's schemas leave open (attribute
    values such as DepthToSpace's ``mode``, which its checker and shape inference never read) and
    ops of a domain onnxruntime does not have (``com.microsoft`` ones it has pass). onnxruntime
    loads a model of the node alone and creates its kernel; a refusal only for want of a kernel
    for these types on this machine's CPU, or of support for a newer opset, is not an error here
    (another provider or the opset archc writes may have it). An op of another domain that ONNX
    itself defines (``ai.onnx.preview.training``'s Gradient) is valid ONNX whether or not onnxruntime
    runs it: its schema has checked it. No check where onnxruntime is missing."""
    if a["domain"]:
        from onnx import defs

        if defs.has(a["op_type"], a["domain"]):
            return
    model, _, _ = node_model(a, ins, _node_attributes(a["attributes"]), a["opset"] or
                             (1 if a["domain"] else DEFAULT_OPSET))
    reason = _onnxruntime_refusal(model.SerializeToString())
    if reason is None:
        return
    if a["domain"]:
        raise ShapeError(f"op '{a['op_type']}' of domain '{a['domain']}' is not one onnxruntime has ({reason}); "
                         "only standard ONNX ops and onnxruntime's own (com.microsoft, ai.onnx.ml) can run")
    raise ShapeError(f"onnxruntime cannot run this {a['op_type']} node: {reason}")


@functools.lru_cache(maxsize=4096)
def _onnxruntime_refusal(model: bytes) -> str | None:
    """onnxruntime's reason for refusing the one-node ``model`` (in one line, without its source
    file and C++ function), or None where it loads it (or cannot say: see above)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.log_severity_level = 4  # (its reasons come back in the exception; nothing on stderr)
    ort.set_default_logger_severity(3)  # kernels warn through the default logger (a deprecated attribute)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors share no base class of their own
        text = str(exc)
        if type(exc).__name__ == "NotImplemented" or "ValidateOpsetForDomain" in text:
            return None
        text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text).replace("Exception during initialization: ", "")
        text = re.sub(r"\S*onnxruntime_src/\S+:\d+ [^()]*\([^)]*\)(?: const)?(?: \[with [^\]]*\])? ?", "", text)
        return first_line(text)
    return None


#: a symbolic dim as ONNX's shape inference writes them: a name, or arithmetic of names and
#: numbers (``N*64`` after a reshape folds the batch into another dim)
_SYMBOLIC_DIM = re.compile(r"(?=.*[A-Za-z_])[A-Za-z0-9_ ()*+/%,.-]+")


def _is_shape(shape: Any, symbols: bool) -> bool:
    return isinstance(shape, (list, tuple)) and all(
        (isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**63)
        or (symbols and isinstance(d, str) and _SYMBOLIC_DIM.fullmatch(d) is not None) for d in shape)


#: ops whose meaning changed between versions while their signature stayed the same
_SEMANTICS_CHANGED = frozenset({"Softmax", "LogSoftmax", "Hardmax", "Upsample",
                                "GridSample"})  # (20 renamed its modes: bilinear is linear)


class UsedSignature(NamedTuple):
    """What one node uses of its op's signature: the attributes it sets, how many inputs and outputs."""

    attributes: frozenset[str]
    inputs: int
    outputs: int


def _used(a: dict[str, Any]) -> UsedSignature:
    return UsedSignature(frozenset(a["attributes"] or {}), len(a["operands"] or []), len(a["output_types"] or []))


def compatible_versions(op_type: str, old: int, new: int, used: UsedSignature | None = None) -> bool:
    """Whether a default-domain node valid at opset ``old`` means the same at opset ``new``.

    Most version bumps only widen the accepted types; those keep the inputs, outputs
    and attributes, which is what is compared (with a short list of ops whose
    semantics changed under the same signature). Given what the node ``used``, a bump that adds
    an attribute with a default (GRU's ``layout``: ONNX keeps the old behaviour as the default) or
    an optional input or output the node leaves out (Pad's ``axes``), either way, is compatible too.
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

    if signature(a) == signature(b):
        return True
    if used is None or not (_fits_both(a, used) and _fits_both(b, used)):
        return False
    names = [[p.name for p in formals[:count]] for formals, count in
             ((a.inputs, used.inputs), (b.inputs, used.inputs), (a.outputs, used.outputs), (b.outputs, used.outputs))]
    return names[0] == names[1] and names[2] == names[3]  # (each position the node uses means the same)


def _fits_both(schema, used: UsedSignature) -> bool:
    """Whether a node using ``used`` is written the same way under ``schema``: the attributes it sets
    exist, every other attribute is optional, its inputs and outputs are there and all that follow
    them are optional."""
    from onnx.defs import OpSchema

    Option = OpSchema.FormalParameterOption  # (an op without inputs has outputs to check all the same)

    def formals_fit(formals, count: int) -> bool:
        if formals and formals[-1].option == Option.Variadic:
            return True
        return count <= len(formals) and all(p.option == Option.Optional for p in formals[count:])

    return used.attributes <= set(schema.attributes) \
        and all(not attr.required for name, attr in schema.attributes.items() if name not in used.attributes) \
        and formals_fit(list(schema.inputs), used.inputs) and formals_fit(list(schema.outputs), used.outputs)


#: attribute names of the module holding an onnx_node's constants in PyTorch (nn.Module's own, and
#: the mapping methods of the nn.ParameterDict that held them before), which a constant cannot be called
_TAKEN_BY_THE_MODULE = frozenset("""
    add_module apply bfloat16 buffers children clear compile copy cpu cuda double eval extra_repr float
    forward fromkeys get half ipu items keys load_state_dict modules mtia named_buffers named_children
    named_modules named_parameters parameters pop popitem register_buffer register_module register_parameter
    requires_grad_ setdefault share_memory state_dict to to_empty train training type update values xpu
    zero_grad dump_patches call_super_init""".split())


def usable_param_name(name: str) -> bool:
    """Whether a constant of an onnx_node may have this name (it is a key of its PyTorch module)."""
    return name.isidentifier() and not name.startswith("_") and name not in _TAKEN_BY_THE_MODULE


#: constants of at most this many elements keep their values in the node (``params``' ``values``):
#: axes, exponents, epsilons and scales are the op's meaning, not weights to load or redraw
SMALL_CONSTANT = 64


def constant_params(weights: dict[str, Any], learned: dict[str, bool]) -> dict[str, dict[str, Any]]:
    """The ``params`` attribute for constants ``weights`` (name -> array): shape, dtype, whether learned,
    and the values of a small one (:data:`SMALL_CONSTANT`)."""
    params = {}
    for name, arr in weights.items():
        p = {"shape": list(arr.shape), "dtype": str(arr.dtype), "learned": bool(learned[name])}
        if arr.size <= SMALL_CONSTANT and arr.dtype.kind in "biuf":
            p["values"] = arr.ravel().tolist()
        params[name] = p
    return params
