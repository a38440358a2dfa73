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

from archc.cli.common import add_spec_arguments, is_onnx_model, load_graph, reject_spec_options, seed_int
from archc.errors import Location, UsageError
from archc.fileio import check_output_path, require_regular_file, write_atomic
from archc.ir import Graph

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
                        help="torch target: also save the weights, so the .py module and the ONNX build match")


def load_weights_for(graph: Graph, args: argparse.Namespace, imported: bool = False) -> None:
    """Fill ``graph.weights``: loaded (``--weights``), initialised (``--seed``), or, for an
    imported ONNX model, its own initializers kept bit for bit (not re-seeded)."""
    from archc.ops.weights import initialize

    if args.weights:
        from archc.lowering.torch import load_weights

        if os.path.exists(args.weights):  # a missing file is reported by load_weights
            require_regular_file(args.weights, "weights file")
        load_weights(graph, args.weights)
    elif not imported:
        initialize(graph, args.seed or 0)


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
        from archc.lowering.onnx import OPSET, build_onnx

        # The command owns this graph and its freshly made arrays: folding into them saves
        # copying most of the weights.
        model = build_onnx(graph, seed=args.seed or 0, optimize=optimize, labels=labels, inplace=True)
        write_atomic(args.output, model.SerializeToString(), option="-o")
        print(f"wrote {args.output}: ONNX opset {OPSET}, {len(model.graph.node)} nodes, "
              f"{len(model.graph.initializer)} initializers", file=sys.stderr)
        return 0
    from archc.lowering.torch import generate_source

    if optimize:
        from archc.lowering.optimize import optimize_for_inference

        graph = optimize_for_inference(graph, inplace=True)
    from archc.cli.common import parse_overrides

    source = generate_source(graph, labels=labels, spec=args.spec,
                             overrides=parse_overrides(args.overrides) or None,
                             seed=None if args.weights else args.seed)
    if args.state_dict:
        import torch

        from archc.lowering.torch import state_dict_from_graph

        buffer = io.BytesIO()
        torch.save(state_dict_from_graph(graph), buffer)
        write_atomic(args.state_dict, buffer.getvalue(), option="--state-dict")
    write_atomic(args.output, source, option="-o")
    print(f"wrote {args.output}: PyTorch module, {len(graph)} nodes"
          + (f"; weights in {args.state_dict}" if args.state_dict else ""), file=sys.stderr)
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before any work: devices, FIFOs, directories, the spec itself."""
    outputs = {"-o": args.output}
    if args.state_dict:
        outputs["--state-dict"] = args.state_dict
    for option, path in outputs.items():
        check_output_path(path, option)
        if _same_file(path, args.spec):
            raise UsageError(f"{option} {path}: the output would overwrite the spec",
                             location=Location("<command line>"))
    if args.state_dict and _same_file(args.output, args.state_dict):
        raise UsageError(f"-o and --state-dict name the same file ({args.output})", location=Location("<command line>"))


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (an existing file through any link, else the same absolute path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
