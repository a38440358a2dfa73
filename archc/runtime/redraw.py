"""An ONNX model with its weights drawn afresh, for ``archc verify MODEL.onnx --random-weights``.

Some models carry weights that make the output constant (onnx's 'light' test models: every weight
one value), so the PyTorch build and onnxruntime agree on a constant and the agreement proves
nothing about the import. Redrawn, the same graph computes an output that depends on the input, and
the comparison means something again. Only what a weight is redrawn (a ConstantOfShape fill of a constant shape counts as one): floating-point initializers of
two or more elements read by an input ONNX's schema does not name as a size, scale, region or
shape (Resize's ``scales``, ``roi``); matrices and kernels from He's normal, N(0, 2 / fan_in)
(fan_in: the elements per output row, dims 1...), vectors that must stay positive (variances, and
scales, where a sign flip tests nothing) from U(0.5, 1.5), other vectors (biases, means) from
N(0, 0.1^2).
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["redrawn"]

#: schema names of float inputs that are not weights
_NOT_WEIGHTS = frozenset({"scales", "roi", "sizes", "shape", "pads", "constant_value", "min", "max", "ratio", "?"})
#: schema names of vectors that stay positive: variances, and scales (a sign flip is no test)
_POSITIVE = frozenset({"var", "input_var", "scale"})


def redrawn(model: onnx.ModelProto, seed: int) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with its weights redrawn (seeded), and how many tensors were redrawn."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    _fills_as_initializers(out)
    rng = np.random.default_rng(seed)
    roles = _input_roles(out)
    count = 0
    for init in out.graph.initializer:
        role = roles.get(init.name, set())
        if init.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16) \
                or math.prod(init.dims) < 2 or role & _NOT_WEIGHTS or not role:
            continue
        dims = tuple(init.dims)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        if len(dims) >= 2:
            values = rng.standard_normal(dims) * math.sqrt(2.0 / max(math.prod(dims[1:]), 1))
        elif role & _POSITIVE:
            values = rng.uniform(0.5, 1.5, dims)
        else:
            values = rng.standard_normal(dims) * 0.1
        init.CopyFrom(numpy_helper.from_array(values.astype(dtype), init.name))
        count += 1
    return out, count


def _fills_as_initializers(model: onnx.ModelProto) -> None:
    """Weights written as ConstantOfShape of a constant shape (Caffe2's 'light' models fill every weight
    so) become initializers of that fill, to be redrawn like the others."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    keep = []
    for node in g.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if node.op_type != "ConstantOfShape" or node.domain not in ("", "ai.onnx") or len(node.input) != 1 \
                or node.input[0] not in inits or value is None:
            keep.append(node)
            continue
        shape = tuple(int(d) for d in numpy_helper.to_array(inits[node.input[0]]))
        fill = numpy_helper.to_array(value).ravel()
        g.initializer.append(numpy_helper.from_array(np.full(shape, fill[0], fill.dtype), node.output[0]))
        if model.ir_version < 4:  # (before IR 4 every initializer is also a graph input)
            g.input.append(onnx.helper.make_tensor_value_info(node.output[0], value.data_type, shape))
    del g.node[:]
    g.node.extend(keep)


def _input_roles(model: onnx.ModelProto) -> dict[str, set[str]]:
    """Value name -> the schema names of the inputs it is read as ('?' by a custom op, whose inputs
    are left as they are)."""
    opsets = {o.domain or "": o.version for o in model.opset_import}
    roles: dict[str, set[str]] = {}
    for node in model.graph.node:
        try:
            schema = onnx.defs.get_schema(node.op_type, opsets.get(node.domain or "", 1), node.domain or "")
            formals = [p.name for p in schema.inputs]
        except Exception:  # noqa: BLE001 - a custom op
            formals = []
        for k, name in enumerate(node.input):
            roles.setdefault(name, set()).add(formals[min(k, len(formals) - 1)] if formals else "?")
    return roles


def calibrated(model: onnx.ModelProto, graph, before: dict[str, dict[str, np.ndarray]]) -> onnx.ModelProto | None:
    """``model`` with the changes :func:`archc.runtime.calibrate.calibrate` made to the imported
    ``graph``'s weights (``before``: them as imported) carried back into its initializers, so that
    onnxruntime runs what the PyTorch build runs; None where a change cannot be carried back (a
    weight computed by nodes, not read from an initializer).

    A weight matches the initializer its ONNX node reads with the same values (in the same order,
    or transposed: a Gemm's weight); a weight scaled by one factor (a layer scaled to unit output
    variance) has its initializer scaled by it, whatever its layout; new statistics are copied."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {t.name: t for t in out.graph.initializer}
    by_name = {n.name: n for n in out.graph.node if n.name}
    holders = Counter(_content(a) for params in before.values() for a in params.values() if a.dtype.kind == "f")
    for node in graph.nodes():
        for pname, old in before.get(node.name, {}).items():
            new = graph.weights[node.name][pname]
            if np.array_equal(new, old) or old.dtype.kind != "f":  # (batchnorm's counter of batches seen)
                continue
            if holders[_content(old)] > 1:
                # another weight holds these values: the initializer found by them may be its too (an
                # exporter keeps one tensor for a batchnorm's weight and running variance, both ones)
                return None
            source = by_name.get(node.meta.get("onnx_name") or "")
            init = _reading(source, inits, old) if source is not None and new.shape == old.shape else None
            if init is None:
                return None
            values, factor = numpy_helper.to_array(init), _factor(old, new)
            dtype = values.dtype
            if factor is not None:
                values = values * factor
            elif np.array_equal(values.ravel(), old.ravel()):
                values = new.reshape(values.shape)
            else:
                return None
            init.CopyFrom(numpy_helper.from_array(values.astype(dtype), init.name))
    return out


def _content(values: np.ndarray) -> tuple:
    """What tells two weights' values apart (dtype, shape, bytes), hashed."""
    digest = hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=16).digest()
    return values.dtype.str, values.shape, digest


def _reading(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto], old: np.ndarray) -> onnx.TensorProto | None:
    """The initializer ``node`` reads whose values are ``old``'s (as laid out, or transposed)."""
    for name in node.input:
        init = inits.get(name)
        if init is None or math.prod(init.dims) != old.size:
            continue
        values = numpy_helper.to_array(init)
        if np.array_equal(values.ravel(), old.ravel()) or (values.ndim == 2 and np.array_equal(values.T, old)):
            return init
    return None


def _factor(old: np.ndarray, new: np.ndarray) -> float | None:
    """The one factor with ``new == old * factor``, or None."""
    nonzero = np.flatnonzero(old)
    if not nonzero.size:
        return None
    factor = float(new.ravel()[nonzero[0]] / old.ravel()[nonzero[0]])
    return factor if np.allclose(new, old * factor, rtol=1e-5, atol=0) else None
