"""``archc run SPEC|MODEL.onnx``: run one input through PyTorch or onnxruntime and summarise the outputs.

An ONNX model runs as it is on onnxruntime, or with ``--runtime torch`` as the PyTorch module
archc generates from it, with the model's own weights.
"""
from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np

from archc.cli.common import (add_device_arguments, add_input_arguments, add_spec_arguments, input_arrays,
                              load_graph, reject_spec_options, require_existing, seed_int)
from archc.errors import Location, UsageError
from archc.fileio import check_output_directory, require_regular_file, safe_file_stems, write_atomic
from archc.ir import TensorType
from archc.runtime.inputs import input_types


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_spec_arguments(parser, models=True)
    parser.add_argument("--runtime", choices=("torch", "ort"), default="ort", help="default: ort (onnxruntime)")
    add_device_arguments(parser)
    add_input_arguments(parser)
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of weights and random inputs")
    parser.add_argument("--save", metavar="DIR", help="write each output as DIR/NAME.npy")


def run(args: argparse.Namespace) -> int:
    if args.save:
        check_output_directory(args.save, "--save")  # before the model runs
    if args.spec.endswith(".onnx") and args.runtime == "ort":
        require_existing(args.spec)  # (as every command reports a missing file)
        reject_spec_options(args)  # (--set, --profile: as load_graph refuses them for an ONNX model)
        model, types, names = _read_onnx_file(args.spec)
        graph = None
    else:
        graph = load_graph(args)
        types, names = input_types(graph), list(graph.outputs)
    feeds = input_arrays(types, args, graph.example_dims if graph is not None else None, graph)
    start = time.perf_counter()
    if args.runtime == "torch":
        from archc.runtime.torch_runner import build_on_device, forward

        module, device = build_on_device(graph, args.device, args.seed, args.allow_cpu_fallback)
        built = time.perf_counter()
        outputs = forward(module, graph, feeds, device)
        used, what = f"torch on {device}", "building the module"
    else:
        from archc.runtime.ort import load_session, run_session

        if graph is not None:
            from archc.lowering.onnx import build_onnx

            # run owns this graph and its fresh weights, so batchnorm is folded in place
            model = build_onnx(graph, seed=args.seed, inplace=True).SerializeToString()
        session = load_session(model, args.device, args.allow_cpu_fallback)
        built = time.perf_counter()
        outputs = run_session(session, feeds, model)
        used = f"onnxruntime with {session.get_providers()[0]}"
        what = "loading the session" if graph is None else "building the ONNX model and loading the session"
    done = time.perf_counter()
    print(f"ran on {used}: one run {(done - built) * 1000:.1f} ms ({what} took {(built - start) * 1000:.1f} ms "
          "before it); inputs: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in feeds.items()))
    for name, out in zip(names, outputs):
        shown = name if name.isprintable() else repr(name)  # a model's names may hold control characters
        print(f"  {shown}: shape {tuple(out.shape)} {out.dtype}  " + _stats(out))
    if args.save:
        for name, path in zip(names, save_outputs(args.save, names, outputs)):
            print(f"saved {name!r} to {path}")
    return 0


def save_outputs(directory: str, names: list[str], outputs: list[np.ndarray]) -> list[str]:
    """Each output as DIRECTORY/NAME.npy, every file written whole or not at all; the paths written.

    Output names come from the model and may hold any text (``../x``, ``/abs``, NUL): each
    becomes a plain, distinct file name inside DIRECTORY (:func:`archc.fileio.safe_file_stems`).
    """
    check_output_directory(directory, "--save")
    try:
        os.makedirs(directory, exist_ok=True)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a valid directory name"
        raise UsageError(f"--save {directory}: cannot create the directory: {reason}",
                         location=Location("<command line>")) from None
    written = []
    for stem, out in zip(safe_file_stems(names), outputs):
        buffer = io.BytesIO()
        np.save(buffer, out)
        path = os.path.join(directory, f"{stem}.npy")
        write_atomic(path, buffer.getvalue(), option="--save")
        written.append(path)
    return written


def _stats(a: np.ndarray) -> str:
    if a.size == 0 or not np.issubdtype(a.dtype, np.number):
        return ""
    f = a.astype(np.float64)
    return f"mean {f.mean():.6g}  std {f.std():.6g}  min {f.min():.6g}  max {f.max():.6g}"


def _read_onnx_file(path: str) -> tuple[str, dict[str, TensorType], list[str]]:
    """An ONNX model's path, its input types (an unnamed symbolic dim gets a name to give with
    --dim) and its output names."""
    import onnx

    require_regular_file(path, "ONNX model")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # onnx raises several types for unreadable files
        raise UsageError(f"not a readable ONNX model: {exc}", location=Location(path)) from None
    constants = {i.name for i in model.graph.initializer}
    types: dict[str, TensorType] = {}
    for inp in model.graph.input:
        if inp.name in constants:
            continue
        t = inp.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or f"{inp.name}_dim{i}")
                      for i, d in enumerate(t.shape.dim))
        types[inp.name] = TensorType(shape, str(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)))
    return path, types, [o.name for o in model.graph.output]
