"""``archc verify SPEC|MODEL.onnx``: PyTorch (eval) and onnxruntime builds from one seed must agree.

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser, models=True)
    add_input_arguments(parser)
    add_device_arguments(parser)
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the weights (specs) and of random inputs")
    parser.add_argument("--rtol", type=tolerance, default=1e-3, help="relative tolerance (default 1e-3)")
    parser.add_argument("--atol", type=tolerance, default=1e-5, help="absolute tolerance (default 1e-5)")
    parser.add_argument("--no-optimize", action="store_true", help="compare against the unoptimised ONNX build")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="ONNX weights stored in this type (as archc build --dtype); the tolerances are "
                             "raised to the type's precision")


def run(args: argparse.Namespace) -> int:
    from archc.runtime.inputs import input_types
    from archc.runtime.verify import verify, verify_model

    graph = load_graph(args)
    feeds = input_arrays(input_types(graph), args)
    if is_onnx_model(args.spec):
        if args.dtype != "float32":
            from archc.errors import Location, UsageError

            raise UsageError("--dtype applies to YAML specs: an ONNX model is compared with its own weights",
                             location=Location("<command line>"))
        results = verify_model(args.spec, graph, feeds, rtol=args.rtol, atol=args.atol, device=args.device,
                               allow_fallback=args.allow_cpu_fallback)
        print(f"verify {graph.name}: generated PyTorch (eval) vs onnxruntime on {args.spec}, "
              f"rtol {args.rtol:g}, atol {args.atol:g}")
    else:
        from archc.lowering.onnx_dtype import WeightDtype

        dtype = WeightDtype(args.dtype)
        rtol, atol = dtype.tolerances(args.rtol, args.atol)
        results = verify(graph, feeds, seed=args.seed, rtol=rtol, atol=atol, device=args.device,
                         optimize=not args.no_optimize, allow_fallback=args.allow_cpu_fallback, dtype=dtype)
        print(f"verify {graph.name}: torch (eval) vs onnxruntime, seed {args.seed}, rtol {rtol:g}, atol {atol:g}"
              + (f", ONNX weights in {dtype.value}" if dtype.value != "float32" else ""))
    for r in results:
        print(f"  {r.name}: shape {r.shape}  max abs err {r.max_abs:.3g}  max rel err {r.max_rel:.3g}  "
              + ("ok" if r.ok else "MISMATCH"))
    failed = [r.name for r in results if not r.ok]
    if failed:
        print(f"FAILED: {', '.join(failed)} beyond tolerance")
        return 1
    print("PASSED")
    return 0
