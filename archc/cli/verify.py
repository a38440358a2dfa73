"""``archc verify SPEC|MODEL.onnx``: PyTorch (eval) and onnxruntime builds with one set of weights must
agree, at the outputs and at every block's output, on outputs that depend on the input.

For an ONNX model the reference is onnxruntime on the original file, compared with the
PyTorch module archc generates from it (with the file's own weights).
"""
from __future__ import annotations

import argparse

from archc.cli.common import (
    DTYPES,
    add_device_arguments,
    add_input_arguments,
    add_spec_arguments,
    input_arrays,
    is_onnx_model,
    load_graph,
    seed_int,
    tolerance,
)
from archc.cli.limits import limits_from
from archc.limits import Limits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser, models=True)
    add_input_arguments(parser)
    add_device_arguments(parser)
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the weights (specs) and of random inputs")
    parser.add_argument("--weights", metavar="FILE.pt", help="verify with this state_dict instead of archc's init")
    parser.add_argument("--random-weights", action="store_true",
                        help="an ONNX model: verify its import with the file's weights drawn afresh (seeded by "
                             "--seed), in the PyTorch build and in the model onnxruntime runs: for a file whose "
                             "own weights make the output constant")
    parser.add_argument("--rtol", type=tolerance, default=1e-3,
                        help="tolerance relative to each tensor's size, max |value| (default 1e-3)")
    parser.add_argument("--atol", type=tolerance, default=1e-5, help="absolute tolerance (default 1e-5)")
    parser.add_argument("--no-optimize", action="store_true", help="compare against the unoptimised ONNX build")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="ONNX weights stored in this type (as archc build --dtype; computed in float32); "
                             "the tolerances are raised to the type's precision")


def run(args: argparse.Namespace) -> int:
    from archc.runtime.inputs import input_types
    from archc.runtime.verify import verify, verify_model

    if is_onnx_model(args.spec) and args.weights:
        from archc.errors import Location, UsageError

        raise UsageError("--weights applies to YAML specs: an ONNX model is compared with onnxruntime running the "
                         "file, with the file's own weights", location=Location("<command line>"))
    if args.random_weights and not is_onnx_model(args.spec):
        from archc.errors import Location, UsageError

        raise UsageError("--random-weights applies to ONNX models: a spec is verified with weights archc draws "
                         "already (--seed)", location=Location("<command line>"))
    model, redrawn = _redrawn_model(args) if args.random_weights else (None, 0)
    graph = load_graph(args) if model is None else _imported(model, args.spec, limits_from(args))
    if args.weights:
        from archc.lowering.torch import load_weights

        load_weights(graph, args.weights)
    feeds = input_arrays(input_types(graph), args, graph.example_dims, graph)
    if model is not None:
        model = _calibrate(model, graph, feeds, args.seed)
    if is_onnx_model(args.spec):
        if args.dtype != "float32":
            from archc.errors import Location, UsageError

            raise UsageError("--dtype applies to YAML specs: an ONNX model is compared with its own weights",
                             location=Location("<command line>"))
        report = verify_model(args.spec, graph, feeds, rtol=args.rtol, atol=args.atol, device=args.device,
                              allow_fallback=args.allow_cpu_fallback, model=model)
        print(f"verify {graph.name}: generated PyTorch (eval) vs onnxruntime on {args.spec}, "
              f"rtol {args.rtol:g}, atol {args.atol:g}")
        if report.reference_note:
            print(f"  reference: {report.reference_note}")
    else:
        from archc.lowering.onnx_dtype import WeightDtype

        dtype = WeightDtype(args.dtype)
        args.rtol, args.atol = dtype.tolerances(args.rtol, args.atol)  # raised to the stored type's precision
        report = verify(graph, feeds, seed=args.seed, rtol=args.rtol, atol=args.atol, device=args.device,
                        optimize=not args.no_optimize, allow_fallback=args.allow_cpu_fallback, dtype=dtype)
        print(f"verify {graph.name}: torch (eval) vs onnxruntime, rtol {args.rtol:g}, atol {args.atol:g}"
              + (f", ONNX weights stored in {dtype.value} (computed in float32)"
                 if dtype is not WeightDtype.float32 else ""))
    layers, norms = report.calibrated
    calibrated = f", calibrated on random inputs: {layers} layers scaled to unit output variance, {norms} " \
        "batchnorm statistics set" if layers or norms else ""
    if redrawn:
        print(f"  weights: those of {args.spec} with {redrawn} tensors redrawn at random, seed {args.seed} "
              "(--random-weights)")
    else:
        print("  weights: " + (args.weights or (f"those of {args.spec}" if is_onnx_model(args.spec) else
                                                f"archc's init, seed {args.seed}{calibrated}")))
    return _print_report(report, args)


def _redrawn_model(args: argparse.Namespace):
    """The ONNX model with its weights redrawn (:mod:`archc.runtime.redraw`), and how many were."""
    from archc.cli.common import reject_spec_options
    from archc.fileio import require_regular_file
    from archc.frontends.onnx.importer import read_onnx_model
    from archc.runtime.redraw import redrawn

    reject_spec_options(args)
    require_regular_file(args.spec, "ONNX model")
    return redrawn(read_onnx_model(args.spec), args.seed)


def _calibrate(model, graph, feeds, seed: int):
    """Redrawn weights calibrated as a spec's are (unit-variance layers, batchnorm statistics from a
    random batch), in the import and in the model onnxruntime runs alike; both left as drawn where
    a change cannot be carried back to the model."""
    from archc.runtime.calibrate import calibrate
    from archc.runtime.redraw import calibrated

    before = {node: {p: a.copy() for p, a in params.items()} for node, params in graph.weights.items()}
    calibrate(graph, feeds, seed)
    carried = calibrated(model, graph, before)
    if carried is None:
        for node, params in before.items():
            graph.weights[node].update(params)
        return model
    return carried


def _imported(model, path: str, limits: Limits):
    from archc.frontends.onnx.importer import from_onnx

    return from_onnx(model, path, limits=limits)


def verdict(r, rtol: float, atol: float) -> str:
    """``ok``/``MISMATCH`` and which tolerance decided: agreement is max abs err <= atol + rtol *
    max |reference|, so an err/size above rtol can still agree (on the atol share), and says so."""
    if not r.ok:
        if r.max_abs == float("inf"):
            return "MISMATCH (shapes or non-finite values differ)"
        return f"MISMATCH (max abs err {r.max_abs:.3g} > atol + rtol x size = {r.allowed:.3g})"
    if r.max_rel <= rtol:
        return f"ok (err/size <= rtol {rtol:g})"
    if r.rounding is not None and r.max_abs > atol:
        from archc.runtime.verify import ROUNDING_SLACK

        return (f"ok (err/size within {ROUNDING_SLACK:g} x the reference's own float32 rounding, {r.rounding:.3g} "
                "of its size against float64)")
    if r.max_abs <= atol:
        return f"ok (err/size is above rtol {rtol:g}, but max abs err <= atol {atol:g} decides)"
    return f"ok (max abs err <= atol + rtol x size = {r.allowed:.3g})"


def _print_report(report, args: argparse.Namespace) -> int:
    for r in report.outputs:
        sens = "n/a" if r.sensitivity is None else f"{r.sensitivity:.3g}"
        print(f"  {r.name}: shape {r.shape}  max abs err {r.max_abs:.3g}  err/size {r.max_rel:.3g}  "
              f"sensitivity {sens}  " + verdict(r, args.rtol, args.atol))
    first = report.first_divergent_block
    if report.blocks:
        worst = max(report.blocks, key=lambda b: b.max_abs)
        print(f"  block outputs: {len(report.blocks)} compared, "
              + (f"all agree (largest max abs err {worst.max_abs:.3g} at {worst.name})"
                 if first is None else f"{sum(not b.ok for b in report.blocks)} differ"))
    failures = []
    if first is not None:
        failures.append(f"the targets first diverge at block '{first.name}' (max abs err {first.max_abs:.3g}, "
                        f"err/size {first.max_rel:.3g})")
    failures += [f"output '{r.name}' differs beyond tolerance" for r in report.outputs if not r.ok]
    failures += [f"output '{r.name}' barely depends on the input: a different input changes it by "
                 f"{r.sensitivity:.3g} of its size, below the tolerance {args.rtol:g}, so agreement proves nothing "
                 "(the weights let the signal die, or the output is constant)" for r in report.insensitive]
    if failures:
        for f in failures:
            print(f"FAILED: {f}")
        return 1
    print("PASSED")
    return 0
