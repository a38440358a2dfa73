"""``archc spec MODEL.onnx -o model.yaml [--weights-out model.pt]``: an existing model as a spec.

The ONNX model is imported, and its graph written back in archc's spec language
(:mod:`archc.lowering.spec_yaml`): repeated structure as blocks with ``repeat:``, shapes
left to inference, names from the model's module paths. The spec is checked by building
it again before anything is written. ``--weights-out`` saves the model's own weights as a
state_dict keyed by the spec's node names, so ``archc build model.yaml --target onnx
--weights model.pt`` computes what the original model computes.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Any

from archc.cli.common import STATE_DICT_EXTENSIONS, is_onnx_model, require_existing, require_extension
from archc.errors import Location, UsageError
from archc.fileio import check_output_path, require_regular_file, write_atomic
from archc.progress import activity


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="MODEL.onnx", help="an ONNX model")
    parser.add_argument("-o", "--output", required=True, help="the spec to write (.yaml or .yml)")
    parser.add_argument("--weights-out", metavar="OUT.pt",
                        help="also save the model's weights as a state_dict for the spec (.pt, .pth, .bin or "
                             ".ckpt; needs torch)")


def _read_back(text: str, args: argparse.Namespace) -> Any:
    """The graph of the spec ``text`` written for the model; where it does not read back (archc's
    own failure), a SpecError at the model naming the node, not at lines of a file never written."""
    from archc.errors import Diagnostic, SpecError
    from archc.frontends.yaml import loads_spec

    try:
        return loads_spec(text, filename=args.output)
    except SpecError as exc:
        raise SpecError([Diagnostic(f"archc cannot write a spec of this model that reads back, so it wrote "
                                    f"none ({d.message})", Location(args.spec), d.node)
                         for d in exc.diagnostics]) from None


def run(args: argparse.Namespace) -> int:
    from archc.frontends.onnx import load_onnx
    from archc.lowering.spec_yaml import dump_spec, to_spec

    _check_model_path(args.spec)
    _check_outputs(args)
    with activity(f"reading {os.path.basename(args.spec)}"):
        graph = load_onnx(args.spec)
    _check_input_types(graph, args.spec)
    spec, rename = to_spec(graph)
    text = dump_spec(spec, args.spec)
    rebuilt = _read_back(text, args)  # a spec archc cannot read back is never written
    state = _state_dict(graph, rename) if args.weights_out else None
    if state is not None:
        _check_keys(rebuilt, state, args.weights_out)
    write_atomic(args.output, text, option="-o")
    if state is not None:
        import torch

        buffer = io.BytesIO()
        with activity(f"writing {os.path.basename(args.weights_out)}"):
            torch.save(state, buffer)
        write_atomic(args.weights_out, buffer.getvalue(), option="--weights-out")
    blocks = len(spec.get("blocks", {}))
    print(f"wrote {args.output}: {len(text.splitlines())} lines, {blocks} block{'s' * (blocks != 1)}, "
          f"{len(rebuilt)} nodes" + (f"; weights in {args.weights_out}" if state is not None else ""),
          file=sys.stderr)
    return 0


def _check_model_path(path: str) -> None:
    """The MODEL.onnx argument must name an existing regular file ending in .onnx."""
    require_existing(path)
    require_regular_file(path, "ONNX model")
    if not is_onnx_model(path):
        already = "; a YAML spec is a spec already" if path.lower().endswith((".yaml", ".yml")) else ""
        raise UsageError(f"archc spec reads an ONNX model (a file ending in .onnx){already}", location=Location(path))


def _check_outputs(args: argparse.Namespace) -> None:
    """-o must name a .yaml file and --weights-out a state_dict file, each writable, before any work."""
    require_extension(args.output, "-o", "a spec is a YAML file", (".yaml", ".yml"))
    check_output_path(args.output, "-o")
    if args.weights_out:
        require_extension(args.weights_out, "--weights-out", "the weights are saved as a PyTorch state_dict "
                          "(torch.save)", STATE_DICT_EXTENSIONS)
        check_output_path(args.weights_out, "--weights-out")


def _check_input_types(graph, where: str) -> None:
    """A spec's inputs have one of the IR's dtypes: a model reading another (strings) has no spec."""
    from archc.errors import SpecError
    from archc.ir.types import DTYPES

    for name in graph.inputs:
        dtype = graph.node(name).type.dtype
        if dtype not in DTYPES:
            shown = "string" if dtype == "object" else dtype
            raise SpecError(f"input '{name}' has element type {shown}; a spec's inputs are one of "
                            f"{', '.join(DTYPES)}", location=Location(where))


def _state_dict(graph, rename: dict[str, str]) -> dict:
    """The model's weights as a torch state_dict under the spec's node names."""
    import torch

    from archc.ops.weights import param_entries
    from archc.lowering import graph_weights
    from archc.ops.base import param_key

    weights = graph_weights(graph)
    return {param_key(rename[e.node], e.param): torch.from_numpy(weights[e.node][e.param].copy())
            for e in param_entries(graph)}


def _check_keys(rebuilt, state: dict, where: str) -> None:
    """The spec's graph must take exactly these weights (else the writer has a bug: say so)."""
    from archc.errors import SpecError
    from archc.ops.weights import param_entries

    expected = {e.key: tuple(e.spec.shape) for e in param_entries(rebuilt)}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected.items()) ^ set(got.items()))[:3]
        raise SpecError(f"internal error: the written spec's parameters differ from the model's: {diff}",
                        location=Location(where))
