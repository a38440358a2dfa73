"""``archc run SPEC|MODEL.onnx``: run one input through PyTorch or onnxruntime and summarise the outputs."""
from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np

from archc.cli.common import (add_device_arguments, add_input_arguments, add_spec_arguments, load_graph,
                              parse_dims, write_atomic)
from archc.errors import Location, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser, models=True)
    parser.add_argument("--runtime", choices=("torch", "ort"), default="ort", help="default: ort (onnxruntime)")
    add_device_arguments(parser)
    add_input_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and random inputs")
    parser.add_argument("--save", metavar="DIR", help="write each output as DIR/NAME.npy")


def run(args: argparse.Namespace) -> int:
    from archc.runtime.inputs import random_inputs, read_inputs

    if args.spec.endswith(".onnx"):
        if args.runtime != "ort":
            raise UsageError("an ONNX model runs on --runtime ort; the torch runtime takes a spec",
                             location=Location(args.spec))
        names, outputs, used, feeds_info, elapsed = _run_onnx_file(args)
    else:
        graph = load_graph(args)
        feeds = read_inputs(graph, args.inputs) or random_inputs(graph, parse_dims(args), args.seed)
        feeds_info = {k: v.shape for k, v in feeds.items()}
        start = time.perf_counter()
        if args.runtime == "torch":
            from archc.runtime.torch_runner import run_torch

            outputs, used = run_torch(graph, feeds, args.device, args.seed, args.allow_cpu_fallback)
            used = f"torch on {used}"
        else:
            from archc.ir.weights import initialize
            from archc.lowering.onnx import to_onnx
            from archc.lowering.optimize import optimize_for_inference
            from archc.runtime.ort import run_onnx

            # run owns this graph and its fresh weights, so batchnorm is folded in place
            model = to_onnx(optimize_for_inference(initialize(graph, args.seed), inplace=True), args.seed)
            outputs, providers = run_onnx(model.SerializeToString(), feeds, args.device, args.allow_cpu_fallback)
            used = f"onnxruntime with {providers[0]}"
        elapsed = time.perf_counter() - start
        names = list(graph.outputs)
    print(f"ran on {used} in {elapsed * 1000:.1f} ms; inputs: "
          + ", ".join(f"{k} {tuple(s)}" for k, s in feeds_info.items()))
    for name, out in zip(names, outputs):
        print(f"  {name}: shape {tuple(out.shape)} {out.dtype}  " + _stats(out))
    if args.save:
        save_outputs(args.save, names, outputs)
    return 0


def save_outputs(directory: str, names: list[str], outputs: list[np.ndarray]) -> None:
    """Each output as DIRECTORY/NAME.npy, every file written whole or not at all."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output directory: {exc.strerror}", location=Location(directory)) \
            from None
    for name, out in zip(names, outputs):
        buffer = io.BytesIO()
        np.save(buffer, out)
        write_atomic(os.path.join(directory, f"{name}.npy"), buffer.getvalue())


def _stats(a: np.ndarray) -> str:
    if a.size == 0 or not np.issubdtype(a.dtype, np.number):
        return ""
    f = a.astype(np.float64)
    return f"mean {f.mean():.6g}  std {f.std():.6g}  min {f.min():.6g}  max {f.max():.6g}"


def _run_onnx_file(args: argparse.Namespace):
    import onnx

    from archc.runtime.ort import run_onnx

    try:
        model = onnx.load(args.spec, load_external_data=False)
    except Exception as exc:  # onnx raises several types for unreadable files
        raise UsageError(f"not a readable ONNX model: {exc}", location=Location(args.spec)) from None
    dims = parse_dims(args)
    rng = np.random.default_rng(args.seed)
    init_names = {i.name for i in model.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    given = {}
    for item in args.inputs:
        name, sep, path = item.partition("=")
        given[name if sep else ""] = path if sep else name
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        t = inp.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if inp.name in given or (len(given) == 1 and "" in given):
            feeds[inp.name] = np.load(given.get(inp.name, given.get("")), allow_pickle=False).astype(dtype)
            continue
        shape = []
        for i, d in enumerate(t.shape.dim):
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            elif d.dim_param in dims:
                shape.append(dims[d.dim_param])
            elif i == 0:
                shape.append(dims["batch"])
            else:
                raise UsageError(f"input '{inp.name}' has symbolic dim '{d.dim_param or '?'}': give it with "
                                 f"--dim {d.dim_param or 'NAME'}=SIZE", location=Location(args.spec))
        feeds[inp.name] = (rng.integers(0, 10, size=shape) if np.issubdtype(dtype, np.integer)
                           else rng.standard_normal(size=shape)).astype(dtype)
    start = time.perf_counter()
    outputs, providers = run_onnx(args.spec, feeds, args.device, args.allow_cpu_fallback)
    elapsed = time.perf_counter() - start
    names = [o.name for o in model.graph.output]
    return names, outputs, f"onnxruntime with {providers[0]}", {k: v.shape for k, v in feeds.items()}, elapsed
