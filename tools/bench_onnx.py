#!/usr/bin/env python3
"""Benchmark: spec -> ONNX with archc against torch.onnx.export of the same PyTorch module.

Run:  python tools/bench_onnx.py [--spec specs/resnet50.yaml] [--repeat 5]

In-process, as tools/bench.py's export section and `archc build` do: archc loads the spec,
defers the seeded weights, folds, emits and writes the file (drawing the weights in pieces on
threads while the calling thread writes what they drew), against torch.onnx.export of archc's own nn.Module for the
same spec, with the TorchScript exporter (dynamo=False) and, if onnxscript is installed, the
default exporter; the runs interleaved, median wall and CPU seconds (this process's, all
threads), archc's also split into its stages. Whole-process, as a user runs it: tools/bench.py's
process section (`archc build --target onnx` vs a Python script that imports the generated
PyTorch module and calls torch.onnx.export). Also times spec -> nn.Module.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from bench_common import interleaved_cpu  # noqa: E402


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
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import torch

    from archc import load_spec
    from archc.lowering.onnx import build_onnx_parts
    from archc.lowering.onnx_writer import write_onnx
    from archc.lowering.torch import build_module

    workdir = tempfile.mkdtemp(prefix="bench_onnx_")
    out = os.path.join(workdir, "archc.onnx")
    stages: dict[str, list[tuple[float, float]]] = {"load spec": [], "defer, fold, emit": [], "draw and write": []}

    def archc_onnx() -> None:
        marks = [(time.perf_counter(), time.process_time())]
        graph = load_spec(args.spec)
        marks.append((time.perf_counter(), time.process_time()))
        parts = build_onnx_parts(graph, seed=0, inplace=True)  # the graph is ours: fold in place
        marks.append((time.perf_counter(), time.process_time()))
        write_onnx(parts, out)
        marks.append((time.perf_counter(), time.process_time()))
        for times, (w0, c0), (w1, c1) in zip(stages.values(), marks, marks[1:]):
            times.append((w1 - w0, c1 - c0))

    t_module = best(lambda: build_module(load_spec(args.spec), seed=0), args.repeat)
    print(f"in-process  archc spec->nn.Module (+weights): {t_module:8.3f} s")

    graph = load_spec(args.spec)
    module = build_module(graph, seed=0).eval()
    example = tuple(torch.randn(1, *[d for d in graph.node(n).type.shape[1:]]) for n in graph.inputs)

    def ts_export():
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, os.path.join(workdir, "ts.onnx"), dynamo=False, opset_version=17)

    exporters = {"torch.onnx.export(dynamo=False)": ts_export}
    try:
        import onnxscript  # noqa: F401

        def dynamo_export():
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
                warnings.simplefilter("ignore")
                torch.onnx.export(module, example, os.path.join(workdir, "dynamo.onnx"), dynamo=True)

        exporters["torch.onnx.export(dynamo=True)"] = dynamo_export
    except ImportError:
        print("(onnxscript not installed: the default dynamo exporter is skipped)")

    load = os.getloadavg()[0]
    archc_onnx()  # warm: imports and first-use set-up are the whole-process figure's
    for stage in stages.values():
        stage.clear()
    for label, fn in exporters.items():
        try:
            fn()  # warm, as archc was
            t = interleaved_cpu({"archc": archc_onnx, label: fn}, args.repeat)
        except Exception as exc:  # report an exporter that fails here instead of dying
            print(f"in-process  {label}: failed ({type(exc).__name__}: {str(exc)[:100]})")
            continue
        (a_wall, a_cpu), (e_wall, e_cpu) = t["archc"], t[label]
        print(f"in-process  archc spec->ONNX file:            {a_wall:8.3f} s wall, {a_cpu:.3f} s CPU")
        print(f"in-process  {label:34s}{e_wall:8.3f} s wall, {e_cpu:.3f} s CPU   "
              f"ratio {e_wall / a_wall:5.1f}x wall, {e_cpu / a_cpu:5.1f}x CPU (goal >= 10x)")
    print("in-process  archc's stages, median wall / CPU s: " + ", ".join(
        f"{k} {statistics.median(w for w, _ in v):.3f} / {statistics.median(c for _, c in v):.3f}"
        for k, v in stages.items()))
    print(f"(load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)")

    # Whole process, what a user waits for: tools/bench.py's process section (median, peak RSS).
    from bench_process import section_process

    print("\n".join(section_process(args.repeat, workdir)))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
