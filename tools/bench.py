#!/usr/bin/env python3
"""archc's benchmark entry point: writes BENCHMARKS.md (machine, versions, date, figures).

Run:  python tools/bench.py [--repeat 5]
      [--sections export,process,vgg,inference,lint,lint-onnx,scale,resnet-scale,meta] [--big] [-o BENCHMARKS.md]

Sections (each figure the median of --repeat runs; compared runs are interleaved, A B A B ...,
so a machine's changing load hits both sides alike and the ratios stay meaningful):

- export: ResNet-50 spec -> ONNX file in-process as `archc build` does (load, deferred weights,
  fold, emit, stream to disk) against torch.onnx.export(dynamo=False) of the same nn.Module to a
  file (module built beforehand, outside the timing); one warm-up call of each, then at least 7
  interleaved rounds, median wall and CPU seconds. Each writes a new file just after its old one
  went (the exporter truncates it; archc's is removed, inside its timing); a third row times archc
  replacing the output it wrote a moment before.
- process: the same as whole processes, as a user runs them: `archc build --target onnx` against a
  script that imports archc's generated PyTorch module, builds it and exports it (tools/bench_process.py).
- vgg: VGG-16 (tools/specs/vgg16.yaml, 528 MiB) -> ONNX, MB/s against dd writing as many bytes.
- inference: ResNet-50 at batch 1 with the same weights: onnxruntime on archc's ONNX vs on
  torch.onnx.export's; archc's `--eval` module vs its training graph vs a hand-written
  torchvision-style module (tools/reference_resnet.py), eager (tools/bench_inference.py).
- lint: the skip analysis of ResNet-50, and of residual chains of 10/100/1,000/10,000 blocks
  (time and the growth exponent of time against size).
- lint-onnx: ``archc lint FILE.onnx`` as a whole process on archc-written residual chains of
  1k/10k/100k nodes and a ViT-B/16 exported by torch.onnx.export (wall and CPU seconds, least
  of 3, growth exponents; tools/bench_lint.py --onnx).
- scale: spec -> ONNX in a child process for transformers of growing size: wall time, peak RSS
  (the child's own, from wait4), MB/s written against `dd` writing as many bytes with fdatasync.
- resnet-scale: ResNets of 10/100/1,000/10,000 basic blocks (tools/specs/resnet_chain.yaml):
  `archc build --target onnx` and `archc lint`, whole process: time, peak RSS, growth exponents.
- meta: the llama spec's 7B profile as PyTorch without weights, built on the meta device.
- big (with --big only): a Llama-2-7B-sized model (specs/llama.yaml profile llama2_7b if present,
  else specs/transformer.yaml at d_model 4096, 30 decoder layers: 6.73 B parameters), float32
  (27 GB) and bfloat16 (13.5 GB) with external data; the output is deleted after each run. Needs
  ~30 GB of free disk beside --workdir.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import warnings
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

SPECS = os.path.join(ROOT, "specs")

from bench_common import dd_speed, interleaved, interleaved_samples, run_child, run_child_output
from bench_inference import section_inference
from bench_process import section_process, section_resnet_scale, section_vgg


def section_export(repeat: int, workdir: str) -> list[str]:
    import torch

    from archc import load_spec
    from archc.lowering.onnx import build_onnx_parts
    from archc.lowering.onnx_writer import write_onnx
    from archc.lowering.torch import build_module

    spec = os.path.join(SPECS, "resnet50.yaml")
    graph = load_spec(spec)
    module = build_module(graph, seed=0).eval()
    example = tuple(torch.randn(1, *graph.node(n).type.shape[1:]) for n in graph.inputs)
    out_archc, out_torch = os.path.join(workdir, "archc.onnx"), os.path.join(workdir, "torch.onnx")

    def archc_replace() -> None:
        parts = build_onnx_parts(load_spec(spec), seed=0, inplace=True)
        write_onnx(parts, out_archc)

    def archc_build() -> None:
        # (torch.onnx.export truncates its output as it opens it, freeing the old file's pages just
        # before it writes; archc's rename keeps them to the end: removed first, timed, like for like)
        if os.path.exists(out_archc):
            os.unlink(out_archc)
        archc_replace()

    def torch_export() -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, out_torch, dynamo=False, opset_version=17)

    archc_build()  # warm-up of both sides: first-use costs (imports inside calls, caches, the
    torch_export()  # exporter's own set-up, archc's memory pool) are the whole-process figure's
    rounds = max(repeat, 7)  # the page cache and a shared machine make single runs noisy
    load = os.getloadavg()[0]
    samples = interleaved_samples({"archc": archc_build, "torch": torch_export, "replace": archc_replace}, rounds)
    size = os.path.getsize(out_archc) / 2 ** 20
    (a_wall, a_cpu), (t_wall, t_cpu) = (tuple(statistics.median(x) for x in zip(*samples[k])) for k in ("archc", "torch"))
    (a_least, a_least_cpu), (t_least, t_least_cpu) = (tuple(min(x) for x in zip(*samples[k])) for k in ("archc", "torch"))
    r_wall, r_cpu = (statistics.median(x) for x in zip(*samples["replace"]))
    return ["## export: ResNet-50 spec -> ONNX file, in-process", "",
            f"Median of {rounds} after a warm-up of each, interleaved; CPU is the process's (all threads); "
            f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. On a loaded "
            "machine the CPU ratio is the steadier figure.", "",
            "| what | median s | ratio | median CPU s | CPU ratio |", "|---|---:|---:|---:|---:|",
            f"| archc (load spec, fold, emit, stream {size:.0f} MiB; its previous output removed first, as "
            f"the exporter truncates its own) | {a_wall:.3f} | 1.0x | {a_cpu:.3f} | 1.0x |",
            f"| torch.onnx.export(dynamo=False) of the same module | {t_wall:.3f} | "
            f"{t_wall / a_wall:.1f}x slower | {t_cpu:.3f} | {t_cpu / a_cpu:.1f}x |",
            f"| archc replacing the output it wrote a moment before (still in memory only: see the vgg "
            f"section) | {r_wall:.3f} | {r_wall / a_wall:.2f}x | {r_cpu:.3f} | {r_cpu / a_cpu:.2f}x |", "",
            f"Least of the {rounds} (each side's least disturbed run): archc {a_least:.3f} s, {a_least_cpu:.3f} s CPU; "
            f"the exporter {t_least:.3f} s, {t_least_cpu:.3f} s CPU: {t_least / a_least:.1f}x wall, "
            f"{t_least_cpu / a_least_cpu:.1f}x CPU.", ""]


def section_lint(repeat: int) -> list[str]:
    from bench_lint import residual_chain

    from archc import load_spec
    from archc.analysis.skips import analyze

    graph = load_spec(os.path.join(SPECS, "resnet50.yaml"))
    lines = ["## lint: skip analysis", "", "| graph | nodes | median s |", "|---|---:|---:|"]
    t = interleaved({"r50": lambda: analyze(graph)}, repeat)["r50"]
    lines.append(f"| ResNet-50 (spec) | {len(graph)} | {t:.3f} |")
    points = []
    for blocks in (10, 100, 1000, 10000):
        chain = residual_chain(blocks)
        t = interleaved({"c": lambda: analyze(chain, paths=False)}, repeat if blocks < 10000 else 1)["c"]
        points.append((len(chain), t))
        lines.append(f"| residual chain of {blocks:,} nodes | {len(chain):,} | {t:.3f} |")
    (n0, t0), (n1, t1) = points[1], points[-1]
    lines += ["", f"Growth exponent of time against nodes (100 -> 10,000 nodes): "
              f"{math.log(t1 / t0) / math.log(n1 / n0):.2f}", ""]
    return lines


def section_lint_onnx(repeat: int) -> list[str]:
    """``archc lint`` on ONNX files as a user runs it (whole process): tools/bench_lint.py --onnx."""
    from bench_lint import bench_onnx_files

    runs = min(repeat, 3)
    rows = bench_onnx_files([1000, 10000, 100000], runs, [])
    return ["## lint-onnx: `archc lint FILE.onnx --format json`, whole process", "",
            f"Least of {runs} run(s) (`python tools/bench_lint.py --onnx` writes the same table); CPU seconds are "
            "user + system of the child, the figure that stays meaningful on a shared machine. "
            "Goals: under 2 s at 100k nodes, under 1 s for the ViT-B/16.", "",
            "| ONNX file | nodes | MB | wall s | CPU s | growth exponent (wall / CPU) |", "|---|---:|---:|---:|---:|---|",
            *rows, ""]


#: a child that imports a generated file and builds its model on the meta device, twice (the first
#: build pays PyTorch's one-time set-up of the meta device)
_META_CHILD = """
import importlib.util, json, sys, time, torch
spec = importlib.util.spec_from_file_location("generated", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
times = []
for _ in range(2):
    start = time.perf_counter()
    with torch.device("meta"):
        model = getattr(module, sys.argv[2])()
    times.append(time.perf_counter() - start)
print(json.dumps({"times": times, "params": sum(p.numel() for p in model.parameters())}))
"""


def section_meta(workdir: str) -> list[str]:
    """The llama spec's 7B profile as PyTorch: archc build --no-weights, then the model built on meta."""
    out = os.path.join(workdir, "llama7b.py")
    build_wall, build_rss = run_child([sys.executable, "-m", "archc", "build", os.path.join(SPECS, "llama.yaml"),
                                       "--profile", "llama2_7b", "--target", "torch", "--no-weights", "-o", out])
    wall, rss, text = run_child_output([sys.executable, "-c", _META_CHILD, out, "Llama"])
    figures = json.loads(text)
    return ["## meta: Llama-2-7B (specs/llama.yaml llama2_7b) as PyTorch, no weights", "",
            "| step | wall s | peak RSS |", "|---|---:|---:|",
            f"| `archc build --target torch --no-weights` (child process) | {build_wall:.1f} | "
            f"{build_rss / 2 ** 20:,.0f} MiB |",
            f"| python: import torch and the file, build on meta twice (child process) | {wall:.1f} | "
            f"{rss / 2 ** 20:,.0f} MiB |",
            f"| first build on meta (PyTorch's one-time meta set-up included) | {figures['times'][0]:.2f} | |",
            f"| second build on meta | {figures['times'][1]:.3f} | |", "",
            f"{figures['params']:,} parameters, none allocated.", ""]


def build_figures(label: str, spec_args: list[str], workdir: str, extra: list[str]) -> str:
    out = os.path.join(workdir, "model.onnx")
    wall, rss = run_child([sys.executable, "-m", "archc", "build", *spec_args, "--target", "onnx",
                           "-o", out, "--external-data", *extra])
    written = sum(os.path.getsize(p) for p in (out, out + ".data") if os.path.exists(p))
    for p in (out, out + ".data"):
        if os.path.exists(p):
            os.unlink(p)
    dd = dd_speed(workdir, min(written, 2 ** 30))
    return (f"| {label} | {written / 1e9:.2f} GB | {wall:.1f} | {rss / 2 ** 20:,.0f} MiB | "
            f"{written / wall / 1e6:.0f} | {dd:.0f} |")


SCALE_HEADER = ["| model | written | wall s | peak RSS | MB/s | dd MB/s (fdatasync) |", "|---|---:|---:|---:|---:|---:|"]


def _transformer(d_model: int, layers: int, ffn: int) -> list[str]:
    return [os.path.join(SPECS, "transformer.yaml"), "--set", f"d_model={d_model}", "--set", f"nhead={d_model // 128}",
            "--set", f"dim_feedforward={ffn}", "--set", "num_encoder_layers=0", "--set", f"num_decoder_layers={layers}"]


def section_scale(workdir: str) -> list[str]:
    lines = ["## scale: spec -> ONNX with external data, one child process each", "", *SCALE_HEADER]
    for layers in (2, 8, 16):
        lines.append(build_figures(f"transformer d_model 1024, {layers} decoder layers",
                                   _transformer(1024, layers, 4096), workdir, []))
    return lines + [""]


def section_big(workdir: str) -> list[str]:
    llama = os.path.join(SPECS, "llama.yaml")
    if os.path.exists(llama):
        spec_args, what = [llama, "--profile", "llama2_7b"], "Llama-2-7B (specs/llama.yaml llama2_7b)"
    else:
        spec_args, what = _transformer(4096, 30, 11008), "transformer 4096 x 30 decoder layers (6.73 B)"
    lines = ["## big: a Llama-2-7B-sized model", "", *SCALE_HEADER]
    for dtype in ("float32", "bfloat16"):
        lines.append(build_figures(f"{what}, {dtype}", spec_args, workdir, ["--dtype", dtype]))
    return lines + [""]


def header() -> list[str]:
    import numpy
    import onnx
    import onnxruntime

    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return ["# archc benchmarks", "",
            f"Written by `tools/bench.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
            f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {mem:.0f} GiB memory, "
            f"load average {os.getloadavg()[0]:.1f} at the start; {platform.platform()}",
            f"- Python {platform.python_version()}, torch {torch_version}, onnx {onnx.__version__}, "
            f"onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}",
            "- compared runs interleaved; figures are medians; a loaded machine makes the absolute times "
            "noisy, the ratios less so", ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sections", default="export,process,vgg,inference,lint,lint-onnx,scale,resnet-scale,meta")
    ap.add_argument("--big", action="store_true", help="also build the 7B model (27 GB + 13.5 GB written, deleted)")
    ap.add_argument("--workdir", default=None, help="where models are written (default: a temporary folder)")
    ap.add_argument("-o", "--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = ap.parse_args()
    sections = [s for s in args.sections.split(",") if s] + (["big"] if args.big else [])
    lines = header()
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        sections_by_name = {
            "export": lambda: section_export(args.repeat, workdir),
            "process": lambda: section_process(args.repeat, workdir),
            "vgg": lambda: section_vgg(args.repeat, workdir),
            "inference": lambda: section_inference(args.repeat),
            "lint": lambda: section_lint(args.repeat),
            "lint-onnx": lambda: section_lint_onnx(args.repeat),
            "scale": lambda: section_scale(workdir),
            "resnet-scale": lambda: section_resnet_scale(workdir),
            "meta": lambda: section_meta(workdir),
            "big": lambda: section_big(workdir),
        }
        unknown = [name for name in sections if name not in sections_by_name]
        if unknown:
            ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(sections_by_name)}")
        for name in sections:
            print(f"running {name} ...", file=sys.stderr)
            if name == "big" and shutil.disk_usage(workdir).free < 30e9:
                lines += ["## big: skipped (under 30 GB free disk)", ""]
                continue
            lines += sections_by_name[name]()
    text = "\n".join(lines) + "\n"
    with open(args.output, "w") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
