"""Arguments and helpers shared by several commands."""
from __future__ import annotations

import argparse
import os
import re
from itertools import repeat
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence


from archc.cli.limits import add_limit_arguments, limits_from
from archc.errors import Location, SpecError, UsageError
from archc.fileio import ALLOW_INCLUDE_ENV, require_regular_file
from archc.limits import DEFAULT_LIMITS, Limits
from archc.progress import activity
from archc.ir import Graph, TensorType

if TYPE_CHECKING:
    import numpy as np


#: --dtype choices: the values of archc.lowering.onnx_dtype.WeightDtype (not imported until a build needs it)
DTYPES = ("float32", "float16", "bfloat16")


def add_spec_arguments(parser: argparse.ArgumentParser, models: bool = False) -> None:
    """SPEC plus --set and --profile."""
    parser.add_argument("spec", metavar="SPEC|MODEL.onnx" if models else "SPEC",
                        help="a YAML spec" + (" or an ONNX model" if models else ""))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override a top-level parameter (repeatable), e.g. --set width=32")
    parser.add_argument("--profile", help="apply a named parameter profile from the spec's 'profiles'")
    parser.add_argument("--allow-include-anywhere", action="store_true",
                        default=os.environ.get(ALLOW_INCLUDE_ENV, "") not in ("", "0"),
                        help="let 'include:' read files outside the spec's folder and archc's library "
                             f"(default: refused; also set by {ALLOW_INCLUDE_ENV}=1)")
    add_limit_arguments(parser)


def parse_overrides(items: list[str], limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """``["width=32", "wide=true"]`` -> ``{"width": 32, "wide": True}`` (YAML scalars), read like
    spec values (safe, within ``limits``: no alias bombs or recursive aliases from a flag either)."""
    from archc.frontends.yaml.params import PLAIN_VALUE, plain_value
    from archc.frontends.yaml.source import load_yaml

    result: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got '{item}'", location=Location("<command line>"))
        try:
            value = load_yaml(text, "<command line>", limits) if text.strip() else ""
        except SpecError as exc:
            message = exc.diagnostics[0].message
            if not message.startswith("invalid YAML"):
                raise UsageError(f"--set {name}: {message}", location=Location("<command line>")) from None
            value = text  # not YAML: the text itself
        if not plain_value(value):
            raise UsageError(f"--set {name}: value must be {PLAIN_VALUE}", location=Location("<command line>"))
        result[name.strip()] = value  # (a later --set of a name overrides an earlier one, as options layer)
    return result


def load_graph(args: argparse.Namespace, weights: bool = True) -> Graph:
    """The IR for the command's SPEC (YAML spec, or an ONNX model where the command allows).

    ``weights=False``: an ONNX model's external data files are not read (commands that look
    at the structure only)."""
    path = args.spec
    limits = limits_from(args)
    require_existing(path)
    if is_onnx_model(path):
        reject_spec_options(args)
        from archc.frontends.onnx import load_onnx

        require_regular_file(path, "ONNX model")
        with activity(f"reading {os.path.basename(path)}"):
            return load_onnx(path, weights=weights, limits=limits)
    from archc.frontends.yaml import load_spec

    overrides = parse_overrides(args.overrides, limits)
    with activity(f"reading {os.path.basename(path)}"):
        return load_spec(path, overrides, args.profile, limits, allow_include_anywhere=args.allow_include_anywhere)


def spec_elaborator(args: argparse.Namespace, optimize: bool = False) -> Callable[[Mapping[str, Any]], Graph] | None:
    """The command's spec elaborated again with some parameters set otherwise (on top of its
    ``--set`` and ``--profile``), as :func:`load_graph` elaborated it: what the PyTorch backend
    tries other widths with. None where the spec is not a regular file (a pipe reads once).
    ``optimize``: the graphs are optimised for inference, as the command's own was."""
    path = args.spec
    if not os.path.isfile(path):
        return None
    limits = limits_from(args)
    overrides = parse_overrides(args.overrides, limits)

    def elaborate(params: Mapping[str, Any]) -> Graph:
        from archc.frontends.yaml import load_spec

        graph = load_spec(path, {**overrides, **params}, args.profile, limits,
                          allow_include_anywhere=args.allow_include_anywhere)
        if optimize:
            from archc.lowering.optimize import optimize_for_inference

            graph = optimize_for_inference(graph, inplace=True)
        return graph
    return elaborate


def require_existing(path: str) -> None:
    """SpecError at the command line unless the command's SPEC argument names something that exists."""
    if not os.path.exists(path):
        raise SpecError(f"no such file: '{path}'", location=Location("<command line>"))


#: the extensions of a PyTorch state_dict written with torch.save (build --state-dict, spec --weights-out)
#: (torch.save has no one extension: Hugging Face writes .bin, Lightning .ckpt)
STATE_DICT_EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt")


def require_extension(path: str, option: str, what: str, extensions: Sequence[str]) -> None:
    """UsageError at the command line unless the output ``path`` given by ``option`` ends in one of
    ``extensions`` (checked before any work); ``what`` says what the file is ("a spec is a YAML file")."""
    if not path.lower().endswith(tuple(extensions)):
        names = ", ".join(extensions[:-1]) + f" or {extensions[-1]}" if len(extensions) > 1 else extensions[0]
        raise UsageError(f"{option} {path}: {what}; give a name ending in {names}",
                         location=Location("<command line>"))


def is_onnx_model(path: str) -> bool:
    """Whether the command's SPEC argument names an ONNX model rather than a YAML spec."""
    return path.lower().endswith(".onnx")


def reject_spec_options(args: argparse.Namespace, *extra: str) -> None:
    """UsageError for options that only a YAML spec can take (an ONNX model is fixed: its
    shapes and weights are in the file). ``extra`` names further such options of the command."""
    given = []
    if getattr(args, "overrides", None):
        given.append(("--set", "an ONNX model has no spec parameters to override"))
    if getattr(args, "profile", None):
        given.append(("--profile", "an ONNX model has no parameter profiles"))
    for option in extra:
        if getattr(args, option.lstrip("-").replace("-", "_"), None) is not None:
            given.append((option, "an ONNX model brings its own weights; archc does not re-seed them"))
    if given:
        option, why = given[0]
        raise UsageError(f"{option} applies to YAML specs only: {why}", location=Location("<command line>"))


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = (),
                free_last: bool = False) -> list[str]:
    """A plain-text table: header, dashes, rows; columns padded to their widest cell.

    ``right`` lists right-aligned columns; with ``free_last`` the last column (free text such
    as a reason) is not padded and its dashes are as long as its header.
    """
    # (column by column: each padded by one C-level map, then the lines joined, a call per line and not
    # per cell; lint's table has a row per join, 14k on a 100k-node model)
    columns = list(zip(*rows)) if rows else [()] * len(headers)
    widths = [max([len(h), *map(len, cells)]) for h, cells in zip(headers, columns)]
    dashes = ["-" * w for w in widths]
    if free_last:
        widths[-1], dashes[-1] = 0, "-" * len(headers[-1])
    padded = [list(map(str.rjust if i in right else str.ljust, (h, d, *cells), repeat(w)))
              for i, (h, d, cells, w) in enumerate(zip(headers, dashes, columns, widths))]
    return list(map(str.rstrip, map("  ".join, zip(*padded))))


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """--input, --batch and --dim: where a command's input arrays come from."""
    parser.add_argument("--input", dest="inputs", action="append", default=[], metavar="[NAME=]FILE.npy",
                        help="an input array (.npy); default: seeded random inputs")
    parser.add_argument("--batch", type=positive_int, default=1, help="batch size for random inputs (default 1)")
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                        help="size of another symbolic dimension of the inputs (repeatable, or comma-separated: "
                             "H=16,W=16)")


def input_arrays(types: dict[str, TensorType], args: argparse.Namespace,
                 example_dims: dict[str, int] | None = None, graph: Graph | None = None) -> dict[str, "np.ndarray"]:
    """The command's inputs: the --input files, else seeded random arrays (--batch, --dim, --seed;
    other symbolic dims take the spec's ``example_dims``); refused before the run where ``graph`` cannot
    take their sizes (a position table shorter than the sequence)."""
    from archc.runtime.inputs import index_bounds, random_inputs, read_arrays, size_problem, sizes_of

    dims = parse_dims(args, types, example_dims)
    if args.inputs:
        arrays = read_arrays(types, input_files(types, args.inputs))
        missing = [n for n in types if n not in arrays]
        if missing:
            raise UsageError(f"no array given for input(s) {', '.join(missing)}", location=Location("<command line>"))
        _check_given_sizes(given_dims(args, types), sizes_of(types, arrays))
    else:
        _check_input_size(types, dims)
        effective_batch(args, types, dims)
        arrays = random_inputs(types, dims, args.seed, index_bounds(graph) if graph is not None else None)
    problem = size_problem(graph, sizes_of(types, arrays)) if graph is not None else None
    if problem is not None:
        raise UsageError(problem, location=Location("<command line>"))
    return arrays


def _check_given_sizes(given: dict[str, int], sizes: dict[str, int]) -> None:
    """A --dim given beside --input arrays must agree with their size (it sizes nothing then)."""
    for name, size in given.items():
        if name in sizes and sizes[name] != size:
            raise UsageError(f"--dim {name}={size}: the --input arrays have {name}={sizes[name]} (their sizes are "
                             "the model's; --dim sizes drawn inputs)", location=Location("<command line>"))


def effective_batch(args: argparse.Namespace, types: dict[str, TensorType], dims: dict[str, int]) -> int | None:
    """The batch the command runs or counts at: the size of the inputs' symbolic first dim (``--dim N=8``
    or ``--batch``), or, where every input fixes its first dim, that dim where they agree (None where
    they differ), with a warning where ``--batch`` asked for another."""
    symbolic = next((t.shape[0] for t in types.values() if t.shape and isinstance(t.shape[0], str)), None)
    if symbolic is not None:
        return dims.get(symbolic, args.batch)
    fixed = {t.shape[0] for t in types.values() if t.shape}
    if args.batch != 1 and args.batch not in fixed:
        import warnings

        from archc.errors import ArchcWarning

        shapes = ", ".join(f"{name} ({', '.join(map(str, t.shape))})" for name, t in list(types.items())[:3])
        warnings.warn(f"--batch {args.batch} has no effect: every input of the model fixes its first dim ({shapes})",
                      ArchcWarning, stacklevel=2)
    return fixed.pop() if len(fixed) == 1 else None


#: Largest total size of the random inputs a command draws, in bytes (raised by MAX_INPUT_BYTES_ENV).
MAX_INPUT_BYTES = 4 * 1024 ** 3
MAX_INPUT_BYTES_ENV = "ARCHC_MAX_INPUT_BYTES"


def _check_input_size(types: dict[str, TensorType], dims: dict[str, int]) -> None:
    """Refuse random inputs too large to allocate (an absurd --batch or --dim) before allocating them."""
    import numpy as np

    from archc.runtime.inputs import concrete_shape

    limit_text = os.environ.get(MAX_INPUT_BYTES_ENV, "").strip()
    limit = int(limit_text) if limit_text.isdigit() else MAX_INPUT_BYTES
    total = 0
    for name, t in types.items():
        count = 1
        for d in concrete_shape(t, dims, name):
            count *= d
        total += count * np.dtype(t.dtype).itemsize
    if total > limit:
        raise UsageError(f"the random inputs would take {total:,} bytes, over the limit of {limit:,} "
                         f"(check --batch and --dim, or raise {MAX_INPUT_BYTES_ENV})",
                         location=Location("<command line>"))


def input_files(types: dict[str, TensorType], items: list[str]) -> dict[str, str]:
    """Input name -> .npy path from ``NAME=FILE.npy`` items (or ``FILE.npy`` alone for a
    single-input model)."""
    names = list(types)
    files: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            if len(names) != 1:
                raise UsageError(f"the model has inputs {', '.join(names)}: use --input NAME=FILE.npy",
                                 location=Location("<command line>"))
            name, path = names[0], item
        if name not in names:
            raise UsageError(f"the model has no input '{name}'; its inputs are {', '.join(names)}",
                             location=Location("<command line>"))
        files[name] = path
    return files


def parse_dims(args: argparse.Namespace, types: dict[str, TensorType],
               example_dims: dict[str, int] | None = None) -> dict[str, int]:
    """Sizes for symbolic dims: --dim NAME=SIZE items (each naming a symbolic dim of the inputs
    ``types``), then the spec's example sizes for the dims --dim leaves out, plus --batch for the
    batch dimension."""
    return {**(example_dims or {}), "batch": args.batch, **given_dims(args, types)}


def given_dims(args: argparse.Namespace, types: dict[str, TensorType]) -> dict[str, int]:
    """The --dim NAME=SIZE items (several in one, comma-separated: ``--dim H=16,W=16``), each naming a
    symbolic dim of the inputs ``types``."""
    given: dict[str, int] = {}
    symbols = symbolic_dims(types)
    for item in (part for entry in args.dim for part in entry.split(",")):
        name, sep, size = item.partition("=")
        try:
            if not sep or not name.strip():
                raise argparse.ArgumentTypeError("")
            given[name.strip()] = positive_int(size)
        except argparse.ArgumentTypeError:
            raise UsageError(f"--dim expects NAME=SIZE with a size from 1 to {MAX_SIZE:,}, got '{item}'",
                             location=Location("<command line>")) from None
        _require_symbol(name.strip(), symbols)
    return given


def symbolic_dims(types: dict[str, TensorType]) -> list[str]:
    """The symbolic dims of the inputs ``types``, in the order they first appear."""
    return list(dict.fromkeys(d for t in types.values() for d in t.shape if isinstance(d, str)))


def _require_symbol(name: str, symbols: list[str]) -> None:
    """UsageError at --dim unless ``name`` is one of the model's symbolic input dims."""
    if name in symbols:
        return
    from archc.errors import closest, meant_hint

    have = f"its symbolic dims are {', '.join(symbols)}" if symbols else "its inputs have no symbolic dims"
    same_letters = next((s for s in symbols if s.lower() == name.lower()), None)  # (one-letter dims: n for N)
    raise UsageError(f"--dim {name}: the model has no symbolic dim '{name}'; {have}",
                     location=Location("<command line>"),
                     hint=meant_hint(same_letters or closest(name, symbols)))


#: Largest batch or dimension size accepted on the command line (ONNX dims are int64; 2^31 - 1 is
#: far beyond any input that fits in memory, and keeps every runtime's index arithmetic safe).
MAX_SIZE = 2 ** 31 - 1
#: Seeds are unsigned 64-bit numbers (numpy's and torch's generators take them).
MAX_SEED = 2 ** 64 - 1


def positive_int(text: str) -> int:
    """argparse type: a whole number from 1 to :data:`MAX_SIZE`."""
    return _bounded_int(text, 1, MAX_SIZE, "a whole number from 1")


def seed_int(text: str) -> int:
    """argparse type: a seed, a whole number from 0 to 2^64 - 1."""
    return _bounded_int(text, 0, MAX_SEED, "a whole number from 0")


def tolerance(text: str) -> float:
    """argparse type: a finite, non-negative number (a comparison tolerance)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got '{text}'")
    return value


def _bounded_int(text: str, low: int, high: int, expected: str) -> int:
    stripped = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,30}", stripped):
        raise argparse.ArgumentTypeError(f"expected {expected} to {high:,}, got '{text}'")
    value = int(stripped)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {expected} to {high:,}, got {value}")
    return value


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default cpu)")
    parser.add_argument("--allow-cpu-fallback", action="store_true",
                        help="when CUDA is asked for but missing, warn and run on the CPU instead of failing")
