"""``archc build SPEC --target torch|onnx -o OUT``: lower a spec to a PyTorch file or an ONNX model.

ONNX builds are for inference: they are optimised (batchnorm folded, identities
and dead nodes dropped) unless ``--no-optimize``. PyTorch builds keep the
training graph unless ``--eval`` asks for the same optimisation. Weights come
from archc's seeded initialiser (``--seed``) or a state_dict (``--weights``), so
the two targets compute the same function; an ONNX model brings its own weights, which
travel unchanged (no re-seeding, no folding unless ``--eval``). Building ONNX never imports torch
unless ``--weights`` needs to read a .pt file. Each merge node's skip-connection
label (from :mod:`archc.analysis`) travels into the output: the ONNX node's
doc_string, and a ``# skip:`` comment in the generated PyTorch code.
"""
from __future__ import annotations

import argparse
import io
import os
import sys

from archc.cli.common import (
    DTYPES,
    STATE_DICT_EXTENSIONS,
    add_spec_arguments,
    is_onnx_model,
    load_graph,
    reject_spec_options,
    require_extension,
    seed_int,
    spec_elaborator,
)
from archc.errors import Location, UsageError
from archc.fileio import check_output_path, overwrites_input_message, require_regular_file, write_atomic
from archc.ir import Graph
from archc.progress import activity

TARGETS = {"torch": ".py", "onnx": ".onnx"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser, models=True)
    parser.epilog = "example:\n  archc build specs/resnet18.yaml -o resnet18.onnx"
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--target", choices=sorted(TARGETS),
                        help="torch or onnx (default: from the output's extension, .py or .onnx)")
    parser.add_argument("-o", "--output", required=True, help="output file (.py for torch, .onnx for onnx)")
    parser.add_argument("--seed", type=seed_int, help="seed of archc's weight initialiser (default 0; "
                        "not for an ONNX model, which brings its weights)")
    parser.add_argument("--weights", metavar="FILE.pt", help="load this state_dict instead of initialising")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--eval", action="store_true", help="optimise for inference (default for onnx)")
    mode.add_argument("--no-optimize", action="store_true", help="keep the graph as written (no folding)")
    parser.add_argument("--state-dict", metavar="OUT.pt",
                        help="torch target: also save the weights (.pt, .pth, .bin or .ckpt), so the .py module "
                             "and the ONNX build match")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="store the weights in this float type, computing in float32 (ONNX: Cast back to "
                             "float32 in the graph; --state-dict: the saved tensors)")
    parser.add_argument("--external-data", action="store_true",
                        help="onnx target: write the weights to OUT.data beside the model (automatic over 2 GB)")
    parser.add_argument("--no-weights", action="store_true",
                        help="the structure only: ONNX parameters become graph inputs; torch target: no weights "
                             "drawn (the module builds on the meta device at any size either way)")


def load_weights_for(graph: Graph, args: argparse.Namespace, imported: bool = False) -> None:
    """Fill ``graph.weights``: loaded (``--weights``), initialised (``--seed``), or, for an
    imported ONNX model, its own initializers kept bit for bit (not re-seeded)."""
    from archc.ops.weights import deferred_weights

    if args.weights:
        from archc.lowering.torch import load_weights

        if os.path.exists(args.weights):  # a missing file is reported by load_weights
            require_regular_file(args.weights, "weights file")
        load_weights(graph, args.weights)
    elif args.target == "onnx":
        pass  # ONNX: build_onnx_parts defers them, drawn one at a time while the model is written
    elif not imported:
        # drawn only where written (--state-dict) or folded (--eval): the .py holds no weights,
        # so a spec of any size builds in seconds
        graph.weights = deferred_weights(graph, args.seed or 0)


def optimizes(args: argparse.Namespace, imported: bool = False) -> bool:
    """Whether the build is optimised for inference: ONNX builds of specs unless
    ``--no-optimize``, any build with ``--eval`` (an imported model only then, so its
    weights travel unchanged otherwise)."""
    return not args.no_optimize and (args.eval or (args.target == "onnx" and not imported))


def target_for(target: str | None, output: str) -> str:
    """The build target: ``--target`` if given, else the one whose extension ``output`` has; a
    given target whose extension differs from the output's is a UsageError."""
    ext = os.path.splitext(output)[1].lower()
    by_ext = {e: t for t, e in TARGETS.items()}
    if target is None:
        if ext not in by_ext:
            raise UsageError(f"-o {output}: cannot tell the target from the extension '{ext or '(none)'}'; "
                             "give --target torch|onnx or an output ending in .py or .onnx",
                             location=Location("<command line>"))
        return by_ext[ext]
    if ext in by_ext and by_ext[ext] != target:
        raise UsageError(f"--target {target} writes a {TARGETS[target]} file, but -o {output} ends in {ext}",
                         location=Location("<command line>"))
    return target


def run(args: argparse.Namespace) -> int:
    args.target = target_for(args.target, args.output)
    if args.state_dict and args.target != "torch":
        raise UsageError("--state-dict applies to --target torch", location=Location("<command line>"))
    if args.external_data and args.target != "onnx":
        raise UsageError("--external-data applies to --target onnx", location=Location("<command line>"))
    if args.no_weights and (args.state_dict or args.weights):
        raise UsageError(f"--no-weights writes no weights; it cannot be combined with "
                         f"{'--state-dict' if args.state_dict else '--weights'}", location=Location("<command line>"))
    if args.no_weights and args.dtype != "float32":
        raise UsageError("--dtype applies to weights, which --no-weights does not write",
                         location=Location("<command line>"))
    if args.dtype != "float32" and args.target == "torch" and not args.state_dict:
        raise UsageError("--dtype with --target torch applies to the --state-dict file; give one",
                         location=Location("<command line>"))
    from archc.analysis.skips import analyze, merge_labels

    imported = is_onnx_model(args.spec)
    if imported:
        reject_spec_options(args, "--seed")
    check_outputs(args)
    graph = load_graph(args)
    # The labels of the graph as written: both targets print them at the merge nodes.
    labels = merge_labels(analyze(graph, paths=False))
    load_weights_for(graph, args, imported)
    optimize = optimizes(args, imported)
    if args.target == "onnx":
        return write_onnx_model(graph, args, labels, optimize)
    from archc.lowering.torch import generate_source

    if optimize:
        from archc.lowering.optimize import optimize_for_inference

        graph = optimize_for_inference(graph, inplace=True)
    from archc.cli.common import parse_overrides

    source = generate_source(graph, labels=labels, spec=args.spec,
                             overrides=parse_overrides(args.overrides) or None,
                             seed=None if args.weights or args.no_weights else args.seed,
                             elaborate=None if imported else spec_elaborator(args, optimize))
    if args.state_dict:
        import torch

        from archc.lowering.torch import state_dict_from_graph

        buffer = io.BytesIO()
        state = state_dict_from_graph(graph)
        dtype = getattr(torch, args.dtype)
        with activity(f"writing {os.path.basename(args.state_dict)}"):
            torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, buffer)
        write_atomic(args.state_dict, buffer.getvalue(), option="--state-dict")
    write_atomic(args.output, source, option="-o")
    stored = "" if args.dtype == "float32" else f" as {args.dtype} (the module computes in float32 unless converted)"
    print(f"wrote {args.output}: PyTorch module, {len(graph)} nodes"
          + (f"; weights in {args.state_dict}{stored}" if args.state_dict else ""), file=sys.stderr)
    return 0


def write_onnx_model(graph: Graph, args: argparse.Namespace, labels: dict[str, str], optimize: bool) -> int:
    """Build the graph's ONNX parts and stream them to ``-o`` (and its external data file)."""
    import math

    import numpy as np

    from archc.lowering.onnx import OPSET, build_onnx_parts
    from archc.lowering.onnx_dtype import WeightDtype, store_weights_as, without_weights
    from archc.lowering.onnx_writer import write_onnx
    from archc.ops.weights import total_params

    declared = total_params(graph) if optimize else 0
    # The command owns this graph and its arrays: folding into them saves copying them.
    parts = build_onnx_parts(graph, seed=args.seed or 0, optimize=optimize, labels=labels, inplace=True,
                             draw_ahead=not args.no_weights)
    folded = declared - sum(math.prod(np.shape(a)) for name, a in parts.initializers if name in parts.parameters) \
        if optimize else 0
    parts = without_weights(parts) if args.no_weights else store_weights_as(parts, WeightDtype(args.dtype))
    written = write_onnx(parts, args.output, external_data=True if args.external_data else None, option="-o")
    where = f"; weights in {written.data_path}" if written.data_path else ""
    stored = f" stored as {args.dtype} (Cast to float32 in the graph: computed in float32)" \
        if args.dtype != "float32" and not args.no_weights else ""
    eval_mode = f"; optimised for inference: {folded:,} parameters folded into the layers before them, as " \
        "eval mode computes (--no-optimize keeps the graph as written)" if folded > 0 else ""
    print(f"wrote {args.output}: ONNX opset {OPSET}, {written.nodes} nodes, {written.initializers} initializers, "
          f"{written.weight_bytes / 2 ** 20:,.1f} MiB of weights{stored}{where}{eval_mode}", file=sys.stderr)
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before any work: devices, FIFOs, directories, the spec itself."""
    outputs = {"-o": args.output}
    if args.state_dict:
        require_extension(args.state_dict, "--state-dict", "the weights are saved as a PyTorch state_dict "
                          "(torch.save)", STATE_DICT_EXTENSIONS)
        outputs["--state-dict"] = args.state_dict
    for option, path in outputs.items():
        check_output_path(path, option)
        if _same_file(path, args.spec):
            raise UsageError(f"{option} {path}: {overwrites_input_message(args.spec, 'spec')}",
                             location=Location("<command line>"))
    if getattr(args, "external_data", False) or args.target == "onnx":
        from archc.lowering.onnx_writer import data_file_name

        data = os.path.join(os.path.dirname(args.output), data_file_name(args.output))
        if _same_file(data, args.spec):
            raise UsageError(f"-o {args.output}: its weights file {data} would overwrite the input",
                             location=Location("<command line>"))
    if args.state_dict and _same_file(args.output, args.state_dict):
        raise UsageError(f"-o and --state-dict name the same file ({args.output})", location=Location("<command line>"))


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (an existing file through any link, else the same absolute path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
