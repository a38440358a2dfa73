"""Nodes kept as they are: an ONNX node no converter maps becomes an ``onnx_node``
(:mod:`archc.ops.onnx_node`), its computed inputs as IR inputs, its constants as weights named
after the op schema's inputs, its output types from ONNX's inference of the node (the whole
model's only where the node's own leaves a dim unknown)."""
from __future__ import annotations

from typing import Any, Container

import numpy as np
import onnx

from archc.frontends.onnx.converters import ON_DEMAND, Fallback
from archc.frontends.onnx.inference import OType, complete, infer_node, merge_types
from archc.frontends.onnx.naming import clean, node_meta
from archc.frontends.onnx.signature import lifted_names, lifted_parameter
from archc.frontends.onnx.state import DEFAULT_DOMAINS, ImportState
from archc.frontends.onnx.values import Const, Record, Sym, Tensor, as_symbolic
from archc.ir.graph import Node, Value
from archc.ir.names import Namespace
from archc.ir.types import Dim, TensorType
from archc.ops import onnx_node as _onnx_node  # (importing it registers the fallback op)

__all__ = ["KEYED_PRODUCERS", "PARAMETER_KEYS_META", "GenericNodes"]

#: ``Node.meta`` key of an onnx_node: constant operand -> the name of the initializer it holds, a learned
#: one, where that name is the model's state_dict key (:data:`KEYED_PRODUCERS`); a ``parameter`` made of
#: the operand later is named by it (:func:`archc.frontends.onnx.arithmetic.learned_operands`)
PARAMETER_KEYS_META = "parameter_keys"
#: the producers whose initializers are named by their state_dict keys, paths a module can hold (a name
#: from another tool may be anything, ``half`` too, which no nn.Module attribute may be)
KEYED_PRODUCERS = frozenset({"pytorch", "archc"})

#: ops whose output shape is the value of one input (by index), where one is given: the
#: importer reads it where ONNX's inference does not (ONNX's MaxUnpool never does, even for
#: a constant; archc's own lowering gives it ``Concat(Shape(x)[:2], size)``, symbolic in N)
_SHAPE_INPUTS = {"MaxUnpool": 2}


class GenericNodes(ImportState):
    """``onnx_node`` IR nodes, and IR tensors for values that so far were only symbolic."""

    def tensor(self, name: str) -> Value:
        """The IR value of a data input, computing shape values that so far were only symbolic."""
        rec = self.values[name]
        if isinstance(rec, Tensor):
            return rec.value
        if isinstance(rec, Const):
            raise Fallback(f"'{name}' is a constant")
        # A Sym or Lazy value, perhaps under another name (Identity): compute its producer once.
        key = (rec.node.op_type, *rec.node.output)
        if key not in self._computed:
            self._computed[key] = self._on_demand(rec.node) or self.generic(rec.node)
        return self._computed[key][rec.out]

    def state_dict_key(self, name: str) -> str | None:
        """The name of initializer ``name`` where it is the state_dict key of a learned tensor the node holding
        it is (a ``position_embedding``, a ``prepend_token``'s token, a ``parameter``): in a file of PyTorch's
        or archc's (:data:`KEYED_PRODUCERS`), a module path no node has yet."""
        rec = self.values.get(name)
        if self.model.producer_name not in KEYED_PRODUCERS or clean(name) != name or name.startswith("onnx") \
                or name in self.graph.named or not (isinstance(rec, Const) and rec.learned):
            return None
        return name

    def _on_demand(self, node: onnx.NodeProto) -> list[Value] | None:
        """``node`` as native IR nodes where its converter maps such nodes (:data:`ON_DEMAND`), else None."""
        convert = ON_DEMAND.get(node.op_type) if node.domain in DEFAULT_DOMAINS else None
        try:
            outs = convert(self, node) if convert is not None else None
        except Fallback:
            return None
        return outs if outs is not None and len(outs) == len(node.output) else None

    def generic(self, node: onnx.NodeProto, overrides: dict[int, Record] | None = None) -> list[Value]:
        """Keep ``node`` as an onnx_node: computed inputs as IR inputs, constants as weights.

        ``overrides`` replaces the records of some inputs (a converter that knows a
        static equivalent of a symbolic shape input passes it as a constant).
        """
        schema = _schema(node, self.opsets)
        operands: list[Any] = []
        ins: list[Value] = []
        weights: dict[str, np.ndarray] = {}
        learned: dict[str, bool] = {}
        typed: list[Any] = []
        known: dict[int, np.ndarray] = {}  # static (perhaps symbolic) values of inputs, before they become tensors
        for i, name in enumerate(node.input):
            if not name:
                operands.append(None)
                typed.append(None)
                continue
            rec = (overrides or {}).get(i) or self.values[name]
            if isinstance(rec, (Const, Sym)):
                known[i] = rec.array
            if isinstance(rec, Const):
                pname = _param_name(schema, i, weights)
                weights[pname] = rec.array
                learned[pname] = rec.learned
                operands.append(pname)
                typed.append(rec.array)
            else:
                v = self.tensor(name)
                operands.append(len(ins))
                ins.append(v)
                typed.append(self.graph.type_of(v))
        types = self._output_types(node, typed, known)
        return self._add_generic(node, operands, ins, weights, learned, types, self._parameter_keys(node, operands, learned))

    def _parameter_keys(self, node: onnx.NodeProto, operands: list[Any], learned: dict[str, bool]) -> dict[str, str] | None:
        """Each learned constant operand -> its state_dict key (see :data:`PARAMETER_KEYS_META`): its
        initializer's name where that is one (:meth:`state_dict_key`: not an exporter's ``onnx::Mul_11``), or,
        for one operand, the parameter the default exporter's metadata says the node read (an initializer it
        merged with others of equal values keeps only the first one's name)."""
        if self.model.producer_name not in KEYED_PRODUCERS:
            return None
        keys = {pname: key for i, pname in enumerate(operands) if isinstance(pname, str) and learned[pname]
                and (key := self.state_dict_key(node.input[i])) is not None}
        if len(keys) == 1 and len(node.metadata_props):
            if self._lifted is None:
                self._lifted = lifted_names(self.model.graph)
            read = lifted_parameter(node, self._lifted) if self._lifted else None
            if read is not None:
                keys = dict.fromkeys(keys, read)
        return keys or None

    def _add_generic(self, node: onnx.NodeProto, operands: list[Any], ins: list[Value], weights: dict[str, np.ndarray],
                     learned: dict[str, bool], types: list[TensorType], keys: dict[str, str] | None = None
                     ) -> list[Value]:
        domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
        attrs = {
            "op_type": node.op_type,
            "domain": domain,
            "opset": self.opsets.get(domain, 0),
            "attributes": {k: v for k, v in self.attrs(node).items()},
            "operands": operands,
            "params": _onnx_node.constant_params(weights, learned),
            "output_types": [[list(t.shape), t.dtype] for t in types],
        }
        name = self.unique_name(self.names.default(node))
        meta = node_meta(node)
        if keys:
            meta[PARAMETER_KEYS_META] = keys
        ir = Node(name=name, op="onnx_node", attrs=attrs, inputs=ins, outputs=types, location=self.where, meta=meta)
        self.graph.add(ir)
        if weights:
            self.graph.weights[name] = dict(weights)
        self.origin[name] = node
        values = [Value(name, k) for k in range(len(types))]
        for out, v in zip(node.output, values):
            if out:
                self.bind(out, Tensor(v))
        return values

    def _output_types(self, node: onnx.NodeProto, typed: list[Any], known: dict[int, np.ndarray]) -> list[TensorType]:
        local = infer_node(node, typed, self.model)
        types = []
        for k, out in enumerate(node.output):
            mine = local[k] if k < len(local) else None
            # the whole model's type only fills in what the node's own inference left unknown
            t = complete(merge_types(mine, None)) or merge_types(mine, self.otype(out) if out else None)
            if k == 0 and t is not None and t.shape is None and node.domain in DEFAULT_DOMAINS:
                t = OType(_shape_input(node, known), t.dtype)
            if t is None or t.shape is None or t.dtype is None:
                kind = _non_tensor_output(node, k, self.opsets.get(node.domain or ""))
                if kind is not None:
                    self._fail(f"output {k} ('{out}') of ONNX {node.op_type} is {kind}: archc imports models "
                               "of tensors only", node=node)
                if node.domain not in DEFAULT_DOMAINS:  # (no schema: only the file can say)
                    self._fail(f"cannot infer the type of output {k} ('{out}') of '{node.domain}' op {node.op_type}: "
                               "ONNX knows no schema for it; declare the output's type in the file's value_info "
                               "(onnxruntime's symbolic_shape_infer writes them for com.microsoft ops)", node=node)
                self._fail(f"cannot infer the type of output {k} ('{out}') of ONNX {node.op_type}", node=node)
            shape = tuple(self.fresh_symbol() if d is None else d for d in t.shape)
            types.append(TensorType(shape, t.dtype))
        return types


def _non_tensor_output(node: onnx.NodeProto, k: int, opset: int | None) -> str | None:
    """'a sequence' or 'an optional' where output ``k`` of the node's op is one by its schema."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset or onnx.defs.onnx_opset_version(), node.domain or "")
    except Exception:  # noqa: BLE001 - no schema (a custom domain): nothing to say
        return None
    if not schema.outputs:
        return None
    formal = schema.outputs[min(k, len(schema.outputs) - 1)]
    allowed = next((c.allowed_type_strs for c in schema.type_constraints if c.type_param_str == formal.type_str),
                   [formal.type_str])
    for prefix, kind in (("seq(", "a sequence"), ("optional(", "an optional")):
        if allowed and all(t.startswith(prefix) for t in allowed):
            return kind
    return None


def _shape_input(node: onnx.NodeProto, known: dict[int, np.ndarray]) -> tuple[Dim, ...] | None:
    """The output shape an op takes from an input's value (:data:`_SHAPE_INPUTS`), where that value
    is known (``known``: input index -> static value, perhaps symbolic: ``[N, 32, 2, 2]``)."""
    index = _SHAPE_INPUTS.get(node.op_type)
    value = known.get(index) if index is not None else None
    if value is None or np.ndim(value) != 1:
        return None
    dims = [v if isinstance(v, str) else int(v) for v in as_symbolic(np.asarray(value)).tolist()]
    return None if any(isinstance(v, int) and v < 0 for v in dims) else tuple(dims)


def _schema(node: onnx.NodeProto, opsets: dict[str, int]):
    domain = "" if node.domain in DEFAULT_DOMAINS else node.domain
    try:
        return onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except Exception:  # noqa: BLE001 - custom domains have no schema
        return None


def _param_name(schema, index: int, taken: Container[str]) -> str:
    """A weight's name from the op schema's input name (``w``, ``b``), else ``input{index}``."""
    base = f"input{index}"
    if schema is not None and schema.inputs:
        formal = schema.inputs[min(index, len(schema.inputs) - 1)]
        base = clean(formal.name).lower() or base
        if index >= len(schema.inputs):  # variadic tail
            base = f"{base}{index}"
    if not _onnx_node.usable_param_name(base):  # e.g. OneHot's 'values', a method of the torch module
        base = f"{base.strip('_') or 'input'}_{index}"
    return Namespace(also_taken=taken, suffix=lambda stem, i: f"{stem}{i}").free(base)
