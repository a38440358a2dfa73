#!/usr/bin/env python3
"""Benchmark: spec -> ONNX with archc against torch.onnx.export of the same PyTorch module.

Run:  python tools/bench_onnx.py [--spec specs/resnet50.yaml] [--repeat 3]

In-process: archc (load spec, initialise weights, optimise, emit, serialise, as
`archc build` does) vs torch.onnx.export of archc's own nn.Module for the same spec,
with the TorchScript exporter (dynamo=False) and, if onnxscript is installed, the
default exporter; archc's figure is also split into its stages. Whole-process, as a
user runs it: `archc build --target onnx` vs a Python script that imports the
generated PyTorch module and calls torch.onnx.export. Also times spec -> nn.Module.
Prints each figure and the ratios; best of --repeat.
"""
from __future__ import annotations

import argparse
import compileall
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=os.path.join(ROOT, "specs", "resnet50.yaml"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from archc import load_spec
    from archc.ops.weights import initialize
    from archc.lowering.onnx import to_onnx
    from archc.lowering.optimize import optimize_for_inference

    stages = {"load spec": [], "init weights": [], "optimise": [], "to_onnx": [], "serialise": []}

    def archc_onnx() -> bytes:
        # As `archc build` does: the graph and its fresh arrays are ours, so folding is in place.
        marks = [time.perf_counter()]
        g = load_spec(args.spec)
        marks.append(time.perf_counter())
        initialize(g, 0)
        marks.append(time.perf_counter())
        g = optimize_for_inference(g, inplace=True)
        marks.append(time.perf_counter())
        model = to_onnx(g, 0)
        marks.append(time.perf_counter())
        data = model.SerializeToString()
        marks.append(time.perf_counter())
        for times, start, end in zip(stages.values(), marks, marks[1:]):
            times.append(end - start)
        return data

    t_archc = best(archc_onnx, args.repeat)
    print(f"in-process  archc spec->ONNX:                 {t_archc:8.3f} s   ("
          + ", ".join(f"{k} {min(v):.3f}" for k, v in stages.items()) + ")")

    import torch

    from archc.lowering.torch import build_module

    t_module = best(lambda: build_module(load_spec(args.spec), seed=0), args.repeat)
    print(f"in-process  archc spec->nn.Module (+weights): {t_module:8.3f} s")

    graph = load_spec(args.spec)
    module = build_module(graph, seed=0).eval()
    example = tuple(torch.randn(1, *[d for d in graph.node(n).type.shape[1:]]) for n in graph.inputs)

    exporters = {}

    def ts_export():
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, buf, dynamo=False, opset_version=17)

    exporters["torch.onnx.export(dynamo=False)"] = ts_export
    try:
        import onnxscript  # noqa: F401

        def dynamo_export():
            with tempfile.TemporaryDirectory() as d, warnings.catch_warnings(), \
                    contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
                warnings.simplefilter("ignore")
                torch.onnx.export(module, example, os.path.join(d, "m.onnx"), dynamo=True)

        exporters["torch.onnx.export(dynamo=True)"] = dynamo_export
    except ImportError:
        print("(onnxscript not installed: the default dynamo exporter is skipped)")

    fastest = None
    for label, fn in exporters.items():
        try:
            t = best(fn, args.repeat)
        except Exception as exc:  # report an exporter that fails here instead of dying
            print(f"in-process  {label}: failed ({type(exc).__name__}: {str(exc)[:100]})")
            continue
        print(f"in-process  {label:34s}{t:8.3f} s   ratio {t / t_archc:6.1f}x")
        fastest = t if fastest is None else min(fastest, t)
    if fastest:
        print(f"in-process  archc vs the faster exporter: {fastest / t_archc:.1f}x faster (goal >= 10x)")
        # Any spec -> ONNX bytes pays at least for serialising the model once (the onnx library's
        # SerializeToString), which caps the ratio whatever the rest costs.
        ser = min(stages["serialise"])
        print(f"in-process  serialising the model alone (SerializeToString) takes {ser:.3f} s, which caps "
              f"this ratio at {fastest / ser:.1f}x")

    # Whole process: what a user waits for. An installed package has its modules compiled; with
    # PYTHONDONTWRITEBYTECODE set (as in some sandboxes) an editable checkout would otherwise
    # compile archc's modules at every start, so both sides get their bytecode up front.
    compileall.compile_dir(os.path.join(ROOT, "archc"), quiet=1)
    with tempfile.TemporaryDirectory() as d:
        py = os.path.join(d, "model.py")
        subprocess.run([sys.executable, "-m", "archc", "build", args.spec, "--target", "torch", "-o", py],
                       check=True, capture_output=True)
        compileall.compile_file(py, quiet=1)
        script = os.path.join(d, "export.py")
        shape = ", ".join(str(s) for s in example[0].shape)
        with open(script, "w") as fh:
            fh.write(
                "import sys, warnings, torch\n"
                f"sys.path.insert(0, {d!r})\n"
                "import model\n"
                "cls = [v for k, v in vars(model).items() if isinstance(v, type) and issubclass(v, torch.nn.Module)"
                " and v.__module__ == 'model'][0]\n"
                "m = cls().eval()\n"
                "warnings.simplefilter('ignore')\n"
                f"torch.onnx.export(m, (torch.randn({shape}),), {os.path.join(d, 'ref.onnx')!r}, dynamo=False,"
                " opset_version=17)\n")
        out = os.path.join(d, "archc.onnx")
        t_cli = best(lambda: subprocess.run([sys.executable, "-m", "archc", "build", args.spec, "--target", "onnx",
                                             "-o", out], check=True, capture_output=True), args.repeat)
        t_script = best(lambda: subprocess.run([sys.executable, script], check=True, capture_output=True),
                        args.repeat)
    print(f"process     archc build --target onnx:        {t_cli:8.3f} s")
    print(f"process     torch script + onnx.export:       {t_script:8.3f} s   ratio {t_script / t_cli:6.1f}x"
          " (goal >= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
