"""Ops that only rearrange data."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir import dims
from archc.ir.types import Dim
from archc.ops.base import INT64_MAX, Attr, OpDef, checked_dim, py
from archc.ops.registry import register


@register
class Flatten(OpDef):
    name = "flatten"
    doc = "Merges dims start_dim..end_dim into one (torch.flatten)."
    attrs = {"start_dim": Attr("int", 1), "end_dim": Attr("int", -1)}
    role = "reshape"

    def _range(self, node, x):
        r = x.rank
        start, end = node.attrs["start_dim"] % r if r else 0, node.attrs["end_dim"] % r if r else 0
        if start > end:
            raise ShapeError(f"start_dim {node.attrs['start_dim']} comes after end_dim {node.attrs['end_dim']}"
                             f" for a {r}-D input")
        return start, end

    def infer(self, node, ins):
        x = ins[0]
        start, end = self._range(node, x)
        flattened = x.shape[start:end + 1]
        # (a symbolic size merged with others is their product, `T*C`, where no symbolic dim follows:
        # the ONNX reshape then takes it as its one -1)
        if end > start and any(not isinstance(d, int) for d in flattened) \
                and any(not isinstance(d, int) for d in x.shape[end + 1:]):
            symbolic = next(d for d in flattened if not isinstance(d, int))
            raise ShapeError(f"cannot flatten symbolic dim '{symbolic}' with others before another symbolic dim")
        merged = dims.product(flattened)
        return [x.with_shape((*x.shape[:start], merged, *x.shape[end + 1:]))]

    def torch_forward(self, node, ins, args, module):
        return f"torch.flatten({args[0]}, {node.attrs['start_dim']}, {node.attrs['end_dim']})"

    def torch_module_form(self, node, ins):
        return f"nn.Flatten({node.attrs['start_dim']}, {node.attrs['end_dim']})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        x = ins[0]
        start, end = self._range(node, x)
        if start == 1 and end == x.rank - 1:
            return emit.add_node("Flatten", inputs, axis=1)
        out = node.outputs[0].shape
        # 0 copies the input dim (keeps the symbolic batch), -1 takes what is left.
        target = [0 if i < start and not isinstance(d, int) else d for i, d in enumerate(out)]
        target = [d if isinstance(d, int) else -1 for d in target]
        return emit.add_node("Reshape", [inputs[0], emit.const(np.array(target, dtype=np.int64), "shape")])


def _unit_dim_at(shape: tuple, longer: tuple, target: list[int], inserted: bool) -> int | None:
    """The position of the one dim of size 1 that ``longer`` has beside ``shape``'s dims, in order, where a
    reshape to ``target`` puts it in (``inserted``: ``longer`` is the output) or takes it out: a literal 1
    there, and no 0 (a copy of the input's dim at that index) at or after it, whatever the batch; None
    where no position, or more than one, fits (a batch of 1 beside it: ``(1, 6)`` -> ``(1, 1, 6)``)."""
    if len(longer) != len(shape) + 1:
        return None
    fits = [k for k, d in enumerate(longer) if d == 1 and longer[:k] + longer[k + 1:] == tuple(shape)
            and (not inserted or target[k] == 1) and 0 not in target[k:]]
    return fits[0] if len(fits) == 1 else None


@register
class Reshape(OpDef):
    name = "reshape"
    aliases = ("view",)
    doc = "Reshapes to `shape`: -1 takes the remaining size, 0 copies the input's dim (keeps a symbolic batch)."
    attrs = {"shape": Attr("ints", doc="target shape; one -1 may be inferred, 0 copies the input dim", min=-1)}
    role = "reshape"

    def _target(self, node, x) -> list[int]:
        raw = node.attrs["shape"]
        target = [raw] if isinstance(raw, int) else list(raw)
        if sum(1 for d in target if d == -1) > 1:
            raise ShapeError(f"shape {target} has more than one -1; expected at most one inferred dim")
        for i, d in enumerate(target):
            if d < -1:
                raise ShapeError(f"shape {target} has {d} at position {i}; expected a size, -1 or 0")
            if d == 0 and i >= x.rank:
                raise ShapeError(f"shape {target} has 0 (copy) at position {i} but the input {x} has only "
                                 f"{x.rank} dims")
        return target

    def infer(self, node, ins):
        x = ins[0]
        target = self._target(node, x)
        for i, d in enumerate(target):
            written = node.attr_exprs.get(f"shape[{i}]")
            if d == 0 and written is not None:  # (0 copies a dim: a computed 0 is a size too small, not a copy)
                raise ShapeError(f"shape[{i}] = {written} is 0 here, and a reshape reads 0 as 'copy dim {i} of "
                                 "the input': the sizes it is computed from are too small for it (a feature map "
                                 "smaller than a window or a patch?)")
        out = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
        # the element counts as expressions (archc.ir.dims): a compound dim an earlier reshape wrote
        # (N*64: N times 64 windows) gives its 64 back to a later one (Swin's window reverse)
        total = dims.product(x.shape)
        given = dims.product(d for d in out if d != -1)
        if -1 in out:
            inferred = dims.divide(total, given)
            if inferred is None:
                raise ShapeError(f"cannot reshape {x} to {target}: its {total} elements are not divisible by "
                                 f"{given}, the size of the dims given")
            out[out.index(-1)] = inferred
        elif not dims.equal(total, given):
            fixed = [d for d in dims.symbols(total) if d not in dims.symbols(given)]
            if fixed:
                raise ShapeError(f"cannot reshape {x} to {target}: the target fixes the symbolic dim "
                                 f"'{fixed[0]}'; copy it with 0 or let -1 absorb it")
            raise ShapeError(f"cannot reshape {x} ({total} elements) to {target} ({given} elements)")
        return [x.with_shape(tuple(out))]

    def torch_forward(self, node, ins, args, module):
        target = self._target(node, ins[0])
        # (a dim of size 1 put in or taken out, as an exporter's Unsqueeze or Squeeze: said as such, for any batch)
        shape, out = ins[0].shape, self.infer(node, ins)[0].shape
        if (k := _unit_dim_at(shape, out, target, inserted=True)) is not None:
            return f"{args[0]}.unsqueeze({k})"
        if (k := _unit_dim_at(out, shape, target, inserted=False)) is not None:
            return f"{args[0]}.squeeze({k})"
        # torch.reshape has no 0 = copy; read the copied dims from the tensor at run time.
        dims = [f"{args[0]}.shape[{i}]" if d == 0 else str(d) for i, d in enumerate(target)]
        return f"{args[0]}.reshape({', '.join(dims)}{',' if len(dims) == 1 else ''})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        target = self._target(node, ins[0])
        # ONNX Reshape's 0 copies the input dim (allowzero=0), exactly our meaning.
        return emit.add_node("Reshape", [inputs[0], emit.const(np.array(target, dtype=np.int64), "shape")])


@register
class Permute(OpDef):
    name = "permute"
    aliases = ("transpose",)
    doc = ("Reorders dims: output dim i is input dim perm[i] (torch.permute, ONNX Transpose); or swaps two, "
           "dim0 and dim1 (x.transpose(1, 2)).")
    attrs = {"perm": Attr("ints", None, doc="a permutation of the input's dims, e.g. [0, 2, 1]"),
             "dim0": Attr("int", None, doc="with dim1 instead of perm: the two dims to swap, as torch.transpose takes "
                                           "them (negative count from the end)"),
             "dim1": Attr("int", None, doc="the other dim to swap (see dim0)")}
    role = "reshape"

    def _perm(self, node, x) -> list[int]:
        raw, swap = node.attrs["perm"], (node.attrs["dim0"], node.attrs["dim1"])
        if not (raw is not None and swap == (None, None) or raw is None and None not in swap):
            raise ShapeError("expected either perm (a permutation of every dim) or both dim0 and dim1 (the two "
                             f"dims to swap, as torch.transpose takes them); got perm={raw}, dim0={swap[0]}, "
                             f"dim1={swap[1]}")
        if raw is None:
            a, b = swap
            if not (-x.rank <= a < x.rank and -x.rank <= b < x.rank):
                raise ShapeError(f"dim0={a}, dim1={b}: expected dims of {x} (-{x.rank}..{x.rank - 1})")
            raw = list(range(x.rank))
            raw[a % x.rank], raw[b % x.rank] = raw[b % x.rank], raw[a % x.rank]
        perm = [raw] if isinstance(raw, int) else list(raw)
        norm = [p % x.rank if -x.rank <= p < x.rank else None for p in perm] if x.rank else []
        if len(perm) != x.rank or None in norm or sorted(norm) != list(range(x.rank)):
            raise ShapeError(f"perm {perm} is not a permutation of the {x.rank} dims of {x}; expected "
                             f"{x.rank} distinct values in 0..{x.rank - 1}")
        return norm

    def infer(self, node, ins):
        x = ins[0]
        perm = self._perm(node, x)
        return [x.with_shape(tuple(x.shape[p] for p in perm))]

    torch_classes = {"Permute": '''\
class Permute(nn.Module):
    """x.permute(*dims) as a module, for nn.Sequential (torchvision.ops.Permute)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)
'''}

    def torch_forward(self, node, ins, args, module):
        perm = self._perm(node, ins[0])
        swapped = [k for k, p in enumerate(perm) if p != k]
        if len(swapped) == 2:  # (two dims swapped: as PyTorch code says it)
            return f"{args[0]}.transpose({swapped[0]}, {swapped[1]})"
        return f"{args[0]}.permute({', '.join(map(str, perm))})"

    def torch_module_form(self, node, ins):
        return f"Permute([{', '.join(map(str, self._perm(node, ins[0])))}])"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Transpose", inputs, perm=self._perm(node, ins[0]))


def _symbolic_length(size: Dim, start: int, end: int | None, step: int) -> Dim | None:
    """The length of ``start:end:step`` along a dim of symbolic ``size``, the dim taken long enough to
    hold the bounds (as F.pad takes it): known where both bounds count from one end (``2:5``, ``-3:``),
    an expression where they count from both (``:-1`` of ``T + 1`` is ``T``); None where it would
    shrink as the size grows (a start from the end, an end from the start)."""
    if start >= 0:
        if end is not None and end >= 0:
            span: Dim = end - start
        else:
            span = dims.add(size, (0 if end is None else end) - start)
    else:
        if end is not None and end >= 0:
            return None
        span = (0 if end is None else end) - start  # (-k: runs to the end, -k:0 from the end's count)
    if isinstance(span, int) and span <= 0:
        return None
    return dims.ceildiv(span, step)


@register
class Slice(OpDef):
    name = "slice"
    doc = "x[start:end:step] along one dim (Python slice rules; step > 0)."
    attrs = {
        "dim": Attr("int", doc="the dim to slice (negative counts from the end)"),
        "start": Attr("int", 0, doc="first index (negative counts from the end)"),
        "end": Attr("int", None, doc="one past the last index; null: to the end"),
        "step": Attr("int", 1, doc="stride, at least 1", min=1),
    }
    role = "reshape"
    keeps_layout = True

    def _dim(self, node, x) -> int:
        return checked_dim(node.attrs["dim"], x)

    def infer(self, node, ins):
        x = ins[0]
        dim = self._dim(node, x)
        a = node.attrs
        if a["step"] < 1:
            raise ShapeError(f"step {a['step']} must be at least 1")
        size = x.shape[dim]
        if a["start"] == 0 and a["end"] is None and a["step"] == 1:
            length: int | str = size  # the whole dim, symbolic or not
        elif not isinstance(size, int):
            length = _symbolic_length(size, a["start"], a["end"], a["step"])
            if length is None:
                raise ShapeError(f"slice {a['start']}:{'' if a['end'] is None else a['end']}:{a['step']} of dim {dim} "
                                 f"(symbolic '{size}') is empty or shorter the longer '{size}' is; archc needs "
                                 "a start from the beginning (x[:, 2:5], x[:, 1:-1]) or both bounds from the end "
                                 "(x[:, -3:], x[:, -4:-1])")
        else:
            length = len(range(size)[slice(a["start"], a["end"], a["step"])])
            if length == 0:
                raise ShapeError(f"slice {a['start']}:{a['end']}:{a['step']} of dim {dim} (size {size}) is empty")
        shape = list(x.shape)
        shape[dim] = length
        return [x.with_shape(tuple(shape))]

    def torch_forward(self, node, ins, args, module):
        dim = self._dim(node, ins[0])
        a = node.attrs
        end = "" if a["end"] is None else str(a["end"])
        # start 0 and step 1 left out, as people write a slice, unless the spec computes them (a
        # block class then takes the parameter)
        written = {key.partition("[")[0] for key in node.attr_exprs}
        start = "" if a["start"] == 0 and "start" not in written else str(a["start"])
        step = "" if a["step"] == 1 and "step" not in written else f":{a['step']}"
        index = [":"] * dim + [f"{start}:{end}{step}"]
        return f"{args[0]}[{', '.join(index)}]"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        a = node.attrs
        dim = self._dim(node, ins[0])
        end = INT64_MAX if a["end"] is None else a["end"]

        def c(v, hint):
            return emit.const(np.array([v], dtype=np.int64), hint)

        return emit.add_node("Slice", [inputs[0], c(a["start"], "starts"), c(end, "ends"), c(dim, "axes"),
                                       c(a["step"], "steps")])


@register
class Split(OpDef):
    name = "split"
    doc = ("Splits along `dim` into pieces (outputs y0, y1, ...): `sizes` is a list of piece sizes, "
           "or one int, the size of every piece (the last may be smaller), like torch.split: "
           "`sizes: 2` cuts 16 channels into 8 pieces; halves are `sizes: \"channels(x) // 2\"`.")
    attrs = {
        "sizes": Attr("ints", doc="a list of piece sizes summing to the dim, or one piece size", min=1),
        "dim": Attr("int", 1, doc="the dim to split"),
    }
    role = "reshape"
    keeps_layout = True

    def _pieces(self, node, x) -> tuple[int, list[int]]:
        dim = checked_dim(node.attrs["dim"], x)
        total = x.shape[dim]
        if not isinstance(total, int):
            raise ShapeError(f"splitting dim {dim} needs a known size, got symbolic '{total}'")
        sizes = node.attrs["sizes"]
        if isinstance(sizes, int):
            if sizes < 1:
                raise ShapeError(f"piece size {sizes} must be at least 1")
            pieces = [min(sizes, total - i) for i in range(0, total, sizes)]
        else:
            pieces = list(sizes)
            if any(s < 1 for s in pieces) or sum(pieces) != total:
                raise ShapeError(f"sizes {pieces} must be positive and sum to the size of dim {dim}, {total}")
        return dim, pieces

    def output_names(self, node):
        sizes = node.attrs["sizes"]
        n = len(node.outputs) if node.outputs else (1 if isinstance(sizes, int) else len(sizes))
        return tuple(f"y{i}" for i in range(n))

    def infer(self, node, ins):
        x = ins[0]
        dim, pieces = self._pieces(node, x)
        out = []
        for p in pieces:
            shape = list(x.shape)
            shape[dim] = p
            out.append(x.with_shape(tuple(shape)))
        return out

    def torch_forward(self, node, ins, args, module):
        dim, pieces = self._pieces(node, ins[0])
        # a tuple, unpacked where it is used (tuple(...) around it would stop torch.fx, which
        # traces an unpacking but not an iteration)
        return f"torch.split({args[0]}, {py(pieces)}, dim={dim})"

    def onnx(self, emit, node, inputs, ins):
        import numpy as np

        dim, pieces = self._pieces(node, ins[0])
        split = emit.const(np.array(pieces, dtype=np.int64), "split")
        return emit.add_node("Split", [inputs[0], split], outputs=len(pieces), axis=dim)
