"""The op definition interface: everything about one op in one class.

An :class:`OpDef` subclass declares an op's attributes (with types and defaults),
its inputs and outputs, its shape inference, its learned parameters and their
initialisation, and its two lowerings: to PyTorch source code and to ONNX nodes.
Adding an op means writing one subclass in ``archc/ops/`` and registering it with
:func:`archc.ops.registry.register`; nothing else in archc branches on op names.

Op definitions never import torch: the PyTorch lowering produces *source text*,
which the torch backend writes to a file or executes, so building ONNX (and
analysing a graph) does not pay for importing torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence

from archc.errors import ShapeError
from archc.pysource import literal
from archc.ir import dims
from archc.ir.types import Dim, TensorType
from archc.ir.vocab import Role

if TYPE_CHECKING:
    import numpy as np

    from archc.ir.graph import Node

REQUIRED = object()
"""Marks an attribute that has no default and must be given."""

ATTR_KINDS = ("int", "float", "bool", "str", "ints", "floats", "int_or_str", "types", "any")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_KIND_CHECKS = {
    "int": _is_int,
    "float": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "ints": lambda v: _is_int(v) or (isinstance(v, (list, tuple)) and len(v) > 0 and all(map(_is_int, v))),
    "floats": lambda v: _is_number(v) or (isinstance(v, (list, tuple)) and len(v) > 0 and all(map(_is_number, v))),
    "int_or_str": lambda v: isinstance(v, str) or _is_int(v) or (
        isinstance(v, (list, tuple)) and all(map(_is_int, v))),
    "types": lambda v: isinstance(v, (list, tuple)),
    "any": lambda v: True,
}
_KIND_WORDS = {
    "int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
    "ints": "an integer or a list of integers", "floats": "a number or a list of numbers",
    "int_or_str": "an integer, a list of integers or a keyword", "any": "a value",
    "types": "a list of [shape, dtype] pairs",
}


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: the largest finite float32 (``numpy.finfo(numpy.float32).max``): every float attribute ends up
#: as a float32, in a tensor (a constant operand, a parameter's initial value, a norm's eps) or an
#: ONNX float attribute, where a larger number would silently become infinity
FLOAT32_MAX = 3.4028234663852886e38


def _numbers(value: Any) -> list[int | float]:
    """The numbers in an attribute value: itself, or the items of a list (strings skipped)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in items if _is_number(v)]


@dataclass(frozen=True)
class Attr:
    """One attribute of an op: its kind, default, allowed values and bounds.

    Kinds: ``int``, ``float``, ``bool``, ``str``, ``ints`` (an int or a list of ints),
    ``floats`` (a number or a list of numbers), ``int_or_str`` (an int, a list of ints, or one of ``choices``), ``any``.

    Bounds apply to every number of the value (each item of a list): ``min`` and ``max``
    are inclusive, ``below`` and ``above`` are exclusive (``p < 1``, ``scale > 0``). Integers always fit
    int64 (what ONNX and PyTorch store), and the numbers of ``float``/``floats`` attributes are
    finite unless ``finite=False`` and fit a float32 (at most :data:`FLOAT32_MAX` in magnitude):
    a value ``check`` accepts is one ``build`` can honour.
    """

    kind: str
    default: Any = REQUIRED
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    min: float | None = None
    max: float | None = None
    below: float | None = None
    above: float | None = None
    finite: bool = True
    #: an ``ints`` attribute whose empty list is a value too (a 0-d tensor's shape)
    empty: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (already evaluated) is of this attribute's kind and choices."""
        if self.empty and isinstance(value, (list, tuple)) and not value:
            return True
        if not _KIND_CHECKS[self.kind](value):
            return False
        # (an int_or_str attribute's text, too, is one of its choices)
        return not (self.choices and isinstance(value, str) and value not in self.choices)

    def violation(self, value: Any) -> str | None:
        """What is wrong with a value of the right kind (out of bounds, non-finite), or None."""
        if self.kind in ("any", "types"):
            return None
        for v in _numbers(value):
            if isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX:
                return f"must fit in a 64-bit integer, got {v}"
            if isinstance(v, float) and self.finite and not math.isfinite(v):
                return f"must be a finite number, got {v}"
            if self.min is not None and v < self.min:
                return f"must be at least {_num(self.min)}, got {v}"
            if self.max is not None and v > self.max:
                return f"must be at most {_num(self.max)}, got {v}"
            if self.below is not None and v >= self.below:
                return f"must be less than {_num(self.below)}, got {v}"
            if self.above is not None and v <= self.above:
                return f"must be greater than {_num(self.above)}, got {v}"
            # (after the declared bounds, which say more)
            if self.kind in ("float", "floats") and math.isfinite(v) and abs(v) > FLOAT32_MAX:
                return f"must fit in float32 (magnitude at most {FLOAT32_MAX:.8g}), got {v:g}"
        return None

    def expected(self) -> str:
        """What this attribute takes, in words, for error messages."""
        if not self.choices:
            return _KIND_WORDS[self.kind] + (" (or [])" if self.empty else "") + self.bounds()
        choices = "one of " + ", ".join(map(repr, self.choices))
        if self.kind == "int_or_str":  # (the bounds are the integers')
            return f"an integer or a list of integers{self.bounds()}, or {choices}"
        return choices + self.bounds()  # (text, or a number of a fixed few: it is one of them)

    def bounds(self) -> str:
        """The bounds in words (``, >= 1``), or ''."""
        parts = [f">= {_num(self.min)}" if self.min is not None else "",
                 f"<= {_num(self.max)}" if self.max is not None else "",
                 f"< {_num(self.below)}" if self.below is not None else "",
                 f"> {_num(self.above)}" if self.above is not None else ""]
        text = " and ".join(p for p in parts if p)
        return f", {text}" if text else ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class SizeLimit:
    """What a node takes along dim ``dim`` of input ``input``: at most ``most``, a multiple of ``multiple``
    (``what``: why, for the message)."""

    input: int
    dim: int
    what: str
    most: int | None = None
    multiple: int | None = None


@dataclass(frozen=True)
class ParamSpec:
    """A learned parameter or buffer, named as in the PyTorch module's state_dict.

    ``init`` is one of ``uniform`` (U(-bound, bound) with ``bound``), ``ones``,
    ``zeros``, ``constant`` (every value ``value``), ``normal`` (N(0, std)),
    ``trunc_normal`` (N(0, std) redrawn outside [``low``, ``high``], absolute bounds as in
    ``torch.nn.init.trunc_normal_``), ``xavier_uniform``, ``values`` (the fixed data ``values``,
    row-major: a computed buffer such as a relative position index), ``unit_norms`` (the L2 norm
    of each unit, along dim 0, of the values ``source`` draws: a weight-normed layer's magnitude g,
    of shape (units, 1, ...)). Buffers (running
    statistics) are in the state_dict but not counted as parameters. ``optional`` ones
    may be absent from a loaded checkpoint and then keep their initial value. The name
    ``""`` is the node itself (see :func:`param_key`). ``drawn_as`` names another parameter of
    the node whose random stream draws this one's values (a weight-normed layer's direction v is
    drawn as the plain layer's ``weight``, so a seed gives both forms one function); by default
    each parameter has its own.
    """

    shape: tuple[int, ...]
    init: str = "zeros"
    bound: float = 0.0
    std: float = 1.0
    dtype: str = "float32"
    buffer: bool = False
    optional: bool = False
    value: float = 0.0
    low: float = -2.0
    high: float = 2.0
    values: tuple[float, ...] = ()
    source: "ParamSpec | None" = None
    drawn_as: str = ""

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def xavier_bound(shape: tuple[int, ...]) -> float:
    """Glorot's U(-b, b) bound for a weight of ``shape`` (fan_out first, as torch.nn.init computes it)."""
    fan_out, fan_in = shape[0], math.prod(shape[1:])
    return math.sqrt(6.0 / (fan_in + fan_out))


def torch_init_source(spec: ParamSpec, target: str) -> str:
    """PyTorch source drawing ``target`` (an existing tensor) in place from :func:`init_array`'s
    distribution for ``spec``, through ``torch.nn.init`` (which also fills sharded DTensors)."""
    if spec.init in ("zeros", "ones"):
        return f"nn.init.{spec.init}_({target})"
    if spec.init == "constant":
        return f"nn.init.constant_({target}, {py(float(spec.value))})"
    if spec.init in ("uniform", "xavier_uniform"):
        bound = spec.bound if spec.init == "uniform" else xavier_bound(spec.shape)
        return f"nn.init.uniform_({target}, {py(-float(bound))}, {py(float(bound))})"
    if spec.init == "normal":
        return f"nn.init.normal_({target}, std={py(float(spec.std))})"
    if spec.init == "trunc_normal":
        return (f"nn.init.trunc_normal_({target}, std={py(float(spec.std))}, a={py(float(spec.low))}, "
                f"b={py(float(spec.high))})")
    if spec.init == "unit_norms":  # (of the tensor the caller has just drawn: its own init is the source's)
        raise ValueError(f"init 'unit_norms' of {target} is computed from its source tensor, not drawn")
    if spec.init == "values" and _one_value(spec.values):  # (a layer scale's 1e-5 in each of 768 places)
        return f"nn.init.constant_({target}, {py(spec.values[0])})"
    if spec.init == "values":  # (fixed data, written again in place; detached, as nn.init writes without grad)
        return f"{target}.detach().copy_({values_source(spec.values, spec.shape, f'torch.{spec.dtype}')})"
    raise ValueError(f"unknown init '{spec.init}' for {target}")


def values_source(values: Sequence[Any], shape: Sequence[int], dtype: str) -> str:
    """Python making a tensor of ``shape`` and ``dtype`` (its torch name) holding ``values`` (row-major):
    ``torch.full`` where they are one value, else the list reshaped."""
    if _one_value(values):
        return f"torch.full({py(tuple(shape))}, {py(values[0])}, dtype={dtype})"
    return f"torch.tensor({py(list(values))}, dtype={dtype}).reshape({py(tuple(shape))})"


def _one_value(values: Sequence[Any]) -> bool:
    return len(values) > 1 and all(v == values[0] and type(v) is type(values[0]) for v in values)


#: The vocabulary analyses see (``OpDef.role_of``), defined by :class:`archc.ir.vocab.Role`:
#: role -> what it means. Analyses decide from these, never from op names.
ROLES: dict[str, str] = {role.value: role.doc for role in Role}


class OnnxEmitter(Protocol):
    """What an op's ONNX lowering may call (implemented in :mod:`archc.lowering.onnx`)."""

    opset: int

    def add_node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | int = 1,
                 **attrs: Any) -> list[str]: ...
    def param(self, name: str) -> str: ...            # initializer holding this node's parameter
    # an initializer: for integer shapes, axes and indices (a float initializer reads as learned)
    def const(self, array: "np.ndarray", hint: str = "const") -> str: ...
    # a Constant node: for fixed float operands (factors, bounds, masks), which no reader counts
    def literal(self, array: "np.ndarray", hint: str = "literal") -> str: ...
    def output_names(self) -> list[str]: ...          # names of the current node's outputs


class OpDef:
    """Base class of op definitions. Subclasses override what differs."""

    #: the name written in specs (``op: conv``)
    name: ClassVar[str] = ""
    #: other accepted spellings (``conv2d``)
    aliases: ClassVar[tuple[str, ...]] = ()
    #: other libraries' names of what this op is with some attributes, lower case without '_' -> those
    #: attributes as a spec writes them (``dropout2d`` -> ``channelwise: true``): a spec that uses such a
    #: name as an op is told how to write it
    spelled_with: ClassVar[dict[str, str]] = {}
    #: one-line description for docs and ``archc ops``
    doc: ClassVar[str] = ""
    attrs: ClassVar[dict[str, Attr]] = {}
    #: names of the inputs; with ``variadic`` the last may repeat (at least ``min_inputs``)
    inputs: ClassVar[tuple[str, ...]] = ("x",)
    variadic: ClassVar[bool] = False
    min_inputs: ClassVar[int | None] = None
    outputs: ClassVar[tuple[str, ...]] = ("y",)
    #: how analyses see the op (a :class:`~archc.ir.vocab.Role`; its text also works)
    role: ClassVar[str] = Role.OTHER
    #: input slots read for their shape only, never their values (``upsample``'s ``ref``, whose
    #: spatial size it takes): analyses drop those edges from the data flow, as they drop the
    #: ``Shape`` nodes of an exported graph, so a decoder resizing to a skip's size makes no fork
    #: of it. Never slot 0: the first input is the data the op computes from.
    shape_only_inputs: ClassVar[frozenset[int]] = frozenset()
    #: module-level functions this op's PyTorch forward calls: name -> source of the ``def``
    #: (as ``ruff format`` writes it). A lowering that would be one long expression calls a
    #: function instead, which the generated file defines once, above its classes (as people
    #: write ``apply_rotary_emb``); its name is never given to a variable or class there.
    torch_functions: ClassVar[dict[str, str]] = {}
    #: ``nn.Module`` classes this op's :meth:`torch_module` or :meth:`torch_module_form`
    #: constructs where torch has none (``LayerNorm2d``, ``Permute``): name -> source of the
    #: ``class``, as ``ruff format`` writes it. The generated file defines each once, above its
    #: block classes, where a node is written with that constructor.
    torch_classes: ClassVar[dict[str, str]] = {}
    #: PyTorch constructor arguments archc takes from the input instead (``in_channels``) ->
    #: where from; a spec that gives one is told so, not only that the attribute is unknown
    inferred: ClassVar[dict[str, str]] = {}
    #: the axis of the output that holds features: 1 for layers over (N, C, ...) (conv, batchnorm), -1 for
    #: layers over the last axis (linear, layernorm, attention); None where the op keeps its input's
    #: layout or rearranges it. Analyses tell a concat of features (DenseNet) from a concat of positions
    #: (a class token and the patch tokens) by it.
    feature_axis: ClassVar[int | None] = None
    #: True where each output keeps the first input's rank and the order of its dims, each only cut or
    #: padded (slice, split, crop, pad): the axis features are on stays where it was
    keeps_layout: ClassVar[bool] = False
    #: True where :meth:`params` is never empty, whatever the attributes and input types (a
    #: conv's weight): the default :meth:`torch_reset` of its module is then always the module's
    #: own ``reset_parameters()``, which a backend may write without asking for the sizes
    always_learned: ClassVar[bool] = False

    # -- structure ------------------------------------------------------------------
    def role_of(self, node: "Node") -> str:
        """The op's role for analyses; ops whose role depends on attributes override this."""
        return self.role

    def arity(self) -> tuple[int, int | None]:
        """(minimum, maximum) number of inputs; maximum None for variadic ops."""
        if self.variadic:
            lo = self.min_inputs if self.min_inputs is not None else len(self.inputs)
            return lo, None
        lo = self.min_inputs if self.min_inputs is not None else len(self.inputs)
        return lo, len(self.inputs)

    def inferred_hint(self, attr: str) -> str | None:
        """The hint for an attribute archc infers (:attr:`inferred`), or None."""
        source = self.inferred.get(attr)
        return f"archc infers '{attr}' from {source}: leave it out" if source else None

    def index_bounds(self, node: "Node") -> dict[int, int]:
        """Input slot -> the exclusive bound of the integer ids it reads as indices (an embedding's
        ``num_embeddings``): what a drawn random input must stay below. None by default."""
        return {}

    def arity_hint(self, given: list[str]) -> str | None:
        """A hint for a node given the wrong number of inputs (``given``: their names as the
        spec refers to them); None where the counts say it all."""
        return None

    def output_names(self, node: "Node") -> tuple[str, ...]:
        return self.outputs

    def port_hint(self, node: "Node", port: str) -> str | None:
        """A hint for a reference to an output ``port`` (name or index) that ``node`` does not have,
        where other attributes would give it (a recurrent layer's final state); None otherwise."""
        return None

    # -- semantics ------------------------------------------------------------------
    def infer(self, node: "Node", ins: list[TensorType]) -> list[TensorType]:
        """Output types from input types; raise ShapeError saying what was expected."""
        return [ins[0]]

    def params(self, node: "Node", ins: list[TensorType]) -> dict[str, ParamSpec]:
        """Learned parameters and buffers, in state_dict order."""
        return {}

    def size_limits(self, node: "Node", ins: list[TensorType]) -> list[SizeLimit]:
        """What sizes the node takes along input dims that may be symbolic (at most a position table's
        ``max_len`` rows, a multiple of a window count), checked against the sizes a command runs at."""
        return []

    def macs(self, node: "Node", ins: list[TensorType], outs: list[TensorType]) -> int:
        """Multiply-accumulates of one forward pass, from *concrete* input and output types
        (symbolic dims already given sizes). Counted as torchvision's and torchinfo's figures do:
        the products of weighted layers (conv, linear, matmul, attention, recurrent); element-wise
        ops, activations, pooling and data movement count 0."""
        return 0

    # -- lowering -------------------------------------------------------------------
    def torch_module(self, node: "Node", ins: list[TensorType]) -> str | None:
        """Source of an ``nn`` constructor for this node, or None if it is functional."""
        return None

    def torch_module_form(self, node: "Node", ins: list[TensorType]) -> str | None:
        """Source of a parameter-free ``nn`` module computing what :meth:`torch_forward` computes
        on the node's one input (``nn.ReLU6()``, ``nn.MaxPool2d(...)``), or None where torch has
        none. A functional op is written so where a chain of modules holds it (an
        ``nn.Sequential``, as torchvision's ``Conv2dNormActivation`` holds its activation); it
        adds no state_dict key."""
        return None

    def torch_parameter(self, node: "Node", ins: list[TensorType]) -> str | None:
        """Source of the initial tensor of a *parameter-only* node, or None (most ops).

        Such a node holds one learned tensor and no module: :meth:`params` declares it under
        the empty name ``""``, so its state_dict key is the node's own name (``class_token``,
        not ``class_token.weight``), like a bare ``nn.Parameter`` attribute of the parent
        module. The backend registers it there and passes its access expression to
        :meth:`torch_forward` as ``module``; :meth:`torch_module` is not consulted.
        """
        return None

    def torch_reset(self, node: "Node", ins: list[TensorType], module: str) -> list[str]:
        """Statements drawing the node's parameters and buffers afresh, in place, as construction
        does: what a generated class's ``reset_parameters()`` runs after ``to_empty()`` on a
        model built on the meta device. ``module`` reaches the node's module (its tensor, for a
        parameter-only node).

        Default: a parameter-only node's tensor from its :class:`ParamSpec` (whose values are
        in :meth:`torch_parameter`'s source); a module with parameters or buffers, its own
        ``reset_parameters()``, which reads its sizes at run time. Nothing for other nodes.
        """
        if self.torch_parameter(node, ins) is not None:
            return [torch_init_source(self.params(node, ins)[""], module)]
        if self.params(node, ins) and self.torch_module(node, ins) is not None:
            return [f"{module}.reset_parameters()"]
        return []

    def torch_reset_is_default(self, node: "Node") -> bool:
        """Whether :meth:`torch_reset` of ``node`` gives the default's answer, which a backend may
        then work out from the texts it already has (an op that overrides it for some nodes only
        says which)."""
        return type(self).torch_reset is OpDef.torch_reset

    def torch_forward(self, node: "Node", ins: list[TensorType], args: list[str], module: str | None) -> str:
        """Source of a forward expression; a tuple expression for several outputs."""
        if module is None:
            raise NotImplementedError(f"op '{self.name}' has no PyTorch lowering")
        return f"{module}({', '.join(args)})"

    def torch_targets(self, node: "Node", names: list[str]) -> list[str]:
        """The targets the forward statement assigns :meth:`torch_forward`'s value to, from the
        names of the node's outputs: those names (``y, indices = F.max_pool2d(...)``), or grouped
        where the expression's tuple nests (nn.LSTM's ``out, (h_n, c_n) = self.lstm(x)``)."""
        return names

    def onnx(self, emit: OnnxEmitter, node: "Node", inputs: list[str], ins: list[TensorType]) -> list[str]:
        """Emit ONNX nodes computing this node; return the output value names."""
        raise NotImplementedError(f"op '{self.name}' has no ONNX lowering")

    # -- inference rewrites (archc.lowering.optimize) -------------------------------------
    def fold_parametrization(self, node: "Node", weights: dict[str, Any]
                             ) -> tuple[dict[str, Any], dict[str, "np.ndarray"]] | None:
        """The node without a training-time parametrization of its weights (weight
        normalisation): ``(attribute updates, new weights)`` of the plain node computing the same
        in eval mode, or None where there is none. ``weights`` may hold deferred arrays."""
        return None

    def affine_params(self, node: "Node", weights: dict[str, "np.ndarray"]
                      ) -> tuple["np.ndarray", "np.ndarray"] | None:
        """``(scale, shift)`` if at inference this node is ``y = x * scale + shift`` per channel
        (axis 1), so that the producer of ``x`` may absorb it; None otherwise."""
        return None

    def absorb_affine(self, node: "Node", weights: dict[str, "np.ndarray"], scale: "np.ndarray",
                      shift: "np.ndarray", inplace: bool = False
                      ) -> tuple[dict[str, Any], dict[str, "np.ndarray"]] | None:
        """Fold ``y * scale + shift`` (per channel, axis 1 of this node's output) into this node:
        ``(attribute updates, new weights)``, or None if the op cannot absorb it. With ``inplace``
        the caller owns the arrays in ``weights`` and they may be overwritten instead of copied.
        ``weights`` may hold deferred arrays (:class:`archc.ops.weights.DeferredArray`), which
        ``np.asarray`` draws; :func:`scale_output_units` keeps a deferred weight undrawn."""
        return None


# -- helpers shared by op definitions ------------------------------------------------

def param_key(node: str, param: str) -> str:
    """The state_dict key of parameter ``param`` of node ``node``: ``node.param``, or the node's
    name alone for the unnamed (``""``) tensor of a parameter-only node (:meth:`OpDef.torch_parameter`)."""
    return f"{node}.{param}" if param else node


def expect_rank(t: TensorType, ranks: Sequence[int], what: str) -> None:
    if t.rank not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ShapeError(f"expected a {want} input {what}, got {t.rank}-D {t}")


def expect_float(x: TensorType, op: str) -> None:
    """ShapeError unless ``x`` holds floating-point values (what an op's float weights multiply)."""
    if not x.dtype.startswith("float"):
        raise ShapeError(f"{op} expects a floating-point input, got {x.dtype} {x}")


def checked_dim(dim: int, x: TensorType, name: str = "dim") -> int:
    """``dim`` of ``x`` counted from 0 (negative counts from the end); a ShapeError, naming the
    attribute ``name``, where it is out of range."""
    if not -x.rank <= dim < x.rank:
        raise ShapeError(f"{name} {dim} is out of range for a {x.rank}-D input {x}; expected "
                         f"{-x.rank} <= {name} < {x.rank}")
    return dim % x.rank


def spatial_dims(given: Any, x: TensorType, op: str, verb: str, does: str) -> list[int]:
    """The dims an op such as ``crop`` or ``pad_to`` works on: ``given`` (an int or a list, negative counting
    from the end), in order, each once; by default (None) every dim after the first two, the spatial ones of
    (N, C, ...). ShapeErrors say what was expected (``verb``, ``does``: what the op does to them, "crop",
    "cuts")."""
    if given is None:
        if x.rank < 3:
            raise ShapeError(f"{op} {does} the dims after the first two (N, C, ...), and a {x.rank}-D input {x} "
                             f"has none; give 'dims' to {verb} others")
        return list(range(2, x.rank))
    given = [given] if isinstance(given, int) else list(given)
    dims = sorted(checked_dim(d, x, "dims entry") for d in given)
    if not dims or len(set(dims)) != len(dims):
        raise ShapeError(f"dims {given} must name each dim to {verb} once")
    return dims


def concrete(d: Dim, what: str) -> int:
    if not isinstance(d, int):
        raise ShapeError(f"{what} must be a known size, got symbolic '{d}'")
    return d


def numel(t: TensorType) -> int:
    """Elements of a tensor type whose dims are all known (0 if one is symbolic)."""
    return t.numel() or 0


def expand(value: Any, n: int, what: str) -> tuple[int, ...]:
    """An int or a list of ints, as an n-tuple."""
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ShapeError(f"{what} needs 1 or {n} values, got {len(value)}")
    return value


def broadcast(shapes: Sequence[tuple[Dim, ...]]) -> tuple[Dim, ...]:
    """NumPy broadcasting of shapes with symbolic dims; ShapeError if incompatible."""
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for i in range(rank):
        found = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0}
        found.discard(1)
        if len(found) > 1:
            found = {_one_size(found, shapes, i)}
        out.append(found.pop() if found else 1)
    return tuple(out)


def _one_size(found: set[Dim], shapes: Sequence[tuple[Dim, ...]], dim: int) -> Dim:
    """The one size that differently written sizes meeting in a broadcast at ``dim`` are
    (:func:`archc.ir.dims.agree`: a spec's at every size, an imported model's as its file trusts them),
    the simplest text of them; a ShapeError saying where they differ otherwise."""
    first, *others = sorted(found, key=lambda d: (type(d) is not int, len(str(d)), str(d)))
    for d in others:
        if not dims.agree(first, d):
            a, b = sorted((first, d), key=lambda v: next(i for i, s in enumerate(shapes) if v in s))  # (inputs' order)
            why = f" ({a} and {b})" if type(a) is int and type(b) is int else f": {dims.mismatch(a, b)}"
            raise ShapeError("shapes do not broadcast: " + ", ".join(
                "(" + ", ".join(str(d) for d in s) + ")" for s in shapes) + f" differ in dim {dim}{why}")
    return first


def scale_output_units(weights: dict[str, "np.ndarray"], scale: "np.ndarray", shift: "np.ndarray",
                       inplace: bool = False) -> tuple[dict[str, Any], dict[str, "np.ndarray"]]:
    """:meth:`OpDef.absorb_affine` for a layer whose ``weight`` has output units first (conv,
    linear): unit i's weights times ``scale[i]``, bias ``b * scale + shift`` (added if absent).
    With ``inplace`` a writeable weight is scaled where it is (same values, no new array); a
    deferred weight (:class:`archc.ops.weights.DeferredArray`) stays deferred, scaled when drawn."""
    import numpy as np

    w = weights["weight"]
    b = np.asarray(weights["bias"], dtype=np.float64) if weights.get("bias") is not None else np.zeros(w.shape[0])
    # The weight is scaled in its own dtype: a float64 round trip of every weight costs more
    # than the whole rest of the build and changes the result by at most one rounding.
    factor = scale.astype(w.dtype).reshape(-1, *([1] * (w.ndim - 1)))
    if hasattr(w, "scaled"):  # a deferred weight (not drawn yet) is scaled as it is drawn
        new_w = w.scaled(factor)
    elif inplace and w.flags.writeable:
        w *= factor  # no copy: the weights are most of a model's bytes
        new_w = w
    else:
        new_w = w * factor
    return {"bias": True}, {"weight": new_w, "bias": (b * scale + shift).astype(w.dtype)}


def py(value: Any) -> str:
    """Python source for a literal attribute value (:func:`archc.pysource.literal`: non-finite
    floats as ``float("inf")``, strings quoted), the one way op lowerings write values."""
    return literal(value)


def torch_keywords(node: Node, defaults: Mapping[str, Any], texts: Mapping[str, str] | None = None) -> str:
    """``, name=value`` for each of a PyTorch constructor's keyword arguments in ``defaults`` (name ->
    PyTorch's default, in the constructor's order) whose value is not the default or that the spec
    computes (a block class then takes the parameter): what people write (``nn.BatchNorm2d(64)``).
    The value is written ``py(node.attrs[name])``, or as ``texts[name]`` where given (per-dim values:
    ``py_dims``); it is the default where it reads as the default's ``py``."""
    written = {key.partition("[")[0] for key in node.attr_exprs}  # (an item, dilation[0], counts)
    shown = {name: (texts or {}).get(name) or py(node.attrs[name]) for name in defaults}
    return "".join(f", {name}={shown[name]}" for name, default in defaults.items()
                   if name in written or shown[name] != py(default))


def py_dims(values: Sequence[int]) -> str:
    """Python source for a per-spatial-dim value (kernel, stride, padding, dilation): a single
    int where every dim has the same value (``kernel_size=3``, as PyTorch code is written)."""
    values = tuple(values)
    return py(values[0]) if values and len(set(values)) == 1 else py(values)
