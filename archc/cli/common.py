"""Arguments and helpers shared by several commands."""
from __future__ import annotations

import argparse
import os
import tempfile
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from archc.errors import Location, SpecError, UsageError
from archc.ir import Graph, TensorType

if TYPE_CHECKING:
    import numpy as np


def add_spec_arguments(parser: argparse.ArgumentParser, models: bool = False) -> None:
    """SPEC plus --set and --profile."""
    parser.add_argument("spec", metavar="SPEC|MODEL.onnx" if models else "SPEC",
                        help="a YAML spec" + (" or an ONNX model" if models else ""))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override a top-level parameter (repeatable), e.g. --set width=32")
    parser.add_argument("--profile", help="apply a named parameter profile from the spec's 'profiles'")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["width=32", "wide=true"]`` -> ``{"width": 32, "wide": True}`` (YAML scalars)."""
    result: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set expects NAME=VALUE, got '{item}'", location=Location("<command line>"))
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, (dict, list)) and not isinstance(value, list):
            raise UsageError(f"--set {name}: value must be a number, boolean, string or list",
                             location=Location("<command line>"))
        result[name.strip()] = value
    return result


def load_graph(args: argparse.Namespace) -> Graph:
    """The IR for the command's SPEC (YAML spec, or an ONNX model where the command allows)."""
    path = args.spec
    if is_onnx_model(path):
        reject_spec_options(args)
        from archc.frontends.onnx import load_onnx

        return load_onnx(path)
    if not os.path.exists(path):
        raise SpecError("no such file", location=Location(path))
    from archc.frontends.yaml import load_spec

    return load_spec(path, parse_overrides(args.overrides), args.profile)


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
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    dashes = ["-" * w for w in widths]
    if free_last:
        widths[-1], dashes[-1] = 0, "-" * len(headers[-1])

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers), line(dashes)] + [line(r) for r in rows]


def write_atomic(path: str, data: bytes | str) -> None:
    """Write a file completely or not at all (no partial output on failure)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"output directory does not exist: {directory}", location=Location(path))
    if os.path.isdir(path):
        raise UsageError("the output is a directory; give a file name", location=Location(path))
    mode = "wb" if isinstance(data, bytes) else "w"
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".archc-", suffix=".tmp")
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # permissions, a full disk: say so, leave nothing behind
        raise UsageError(f"cannot write the output: {exc.strerror or exc}", location=Location(path)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """--input, --batch and --dim: where a command's input arrays come from."""
    parser.add_argument("--input", dest="inputs", action="append", default=[], metavar="[NAME=]FILE.npy",
                        help="an input array (.npy); default: seeded random inputs")
    parser.add_argument("--batch", type=int, default=1, help="batch size for random inputs (default 1)")
    parser.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                        help="size of another symbolic dimension of the inputs (repeatable)")


def input_arrays(types: dict[str, TensorType], args: argparse.Namespace) -> dict[str, "np.ndarray"]:
    """The command's inputs: the --input files, else seeded random arrays (--batch, --dim, --seed)."""
    from archc.runtime.inputs import random_inputs, read_inputs

    return read_inputs(types, args.inputs) or random_inputs(types, parse_dims(args), args.seed)


def parse_dims(args: argparse.Namespace) -> dict[str, int]:
    """Sizes for symbolic dims: --dim NAME=SIZE items plus --batch for the batch dimension."""
    dims: dict[str, int] = {"batch": args.batch}
    for item in args.dim:
        name, sep, size = item.partition("=")
        if not sep or not size.strip().isdigit() or int(size) < 1:
            raise UsageError(f"--dim expects NAME=SIZE with a positive size, got '{item}'",
                             location=Location("<command line>"))
        dims[name.strip()] = int(size)
    return dims


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default cpu)")
    parser.add_argument("--allow-cpu-fallback", action="store_true",
                        help="when CUDA is asked for but missing, warn and run on the CPU instead of failing")
