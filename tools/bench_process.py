"""tools/bench.py's whole-process sections: `archc build` as a user runs it, against a Python script
that builds the same PyTorch module and exports it; VGG-16 against the disk's own write speed; and
ResNets of 10 to 10,000 blocks (time, peak RSS, growth exponents)."""
from __future__ import annotations

import compileall
import math
import os
import statistics
import subprocess
import sys

from bench_common import dd_speed, run_child

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = os.path.join(ROOT, "specs")
BENCH_SPECS = os.path.join(ROOT, "tools", "specs")
ARCHC = [sys.executable, "-m", "archc"]

#: what a user without archc writes: import the model file, build the module, export it
_EXPORT_SCRIPT = """
import sys, warnings, torch
sys.path.insert(0, {folder!r})
import model
cls = [v for k, v in vars(model).items()
       if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == "model"][-1]
m = cls().eval()
warnings.simplefilter("ignore")
torch.onnx.export(m, (torch.randn(1, 3, 224, 224),), {out!r}, dynamo=False, opset_version=17)
"""


def _interleaved_children(commands: dict[str, list[str]], repeat: int,
                          outputs: dict[str, str] | None = None) -> dict[str, tuple[float, int]]:
    """Median wall seconds and peak RSS of each command, run as child processes A B A B ...
    ``outputs``: a command's output file, removed before each of its runs (so that it writes a new
    file just after its old one was removed, as a writer that truncates its output does)."""
    runs: dict[str, list[tuple[float, int]]] = {k: [] for k in commands}
    for _ in range(repeat):
        for name, args in commands.items():
            if outputs and name in outputs and os.path.exists(outputs[name]):
                os.unlink(outputs[name])
            runs[name].append(run_child(args))
    return {k: (statistics.median(w for w, _ in v), max(r for _, r in v)) for k, v in runs.items()}


def section_process(repeat: int, workdir: str) -> list[str]:
    """ResNet-50: `archc build --target onnx` against build-the-module-and-export, whole process."""
    spec = os.path.join(SPECS, "resnet50.yaml")
    # An installed package has its modules compiled; both sides get their bytecode up front.
    compileall.compile_dir(os.path.join(ROOT, "archc"), quiet=1)
    subprocess.run([*ARCHC, "build", spec, "--target", "torch", "-o", os.path.join(workdir, "model.py")],
                   check=True, capture_output=True)
    compileall.compile_file(os.path.join(workdir, "model.py"), quiet=1)
    script = os.path.join(workdir, "export.py")
    with open(script, "w") as fh:
        fh.write(_EXPORT_SCRIPT.format(folder=workdir, out=os.path.join(workdir, "ref.onnx")))
    # (torch.onnx.export truncates its output as it opens it; archc replaces its output by a rename, which
    # keeps the old file's pages until the end: removed before each run, both write into freed pages.
    # See the vgg section for what replacing costs on this machine.)
    out = os.path.join(workdir, "archc.onnx")
    t = _interleaved_children({"archc": [*ARCHC, "build", spec, "--target", "onnx", "-o", out],
                               "script": [sys.executable, script]}, repeat, outputs={"archc": out})
    (a, a_rss), (s, s_rss) = t["archc"], t["script"]
    return ["## process: ResNet-50 spec -> ONNX file, whole process as a user runs it", "",
            "| what | median s | peak RSS | ratio |", "|---|---:|---:|---:|",
            f"| `archc build specs/resnet50.yaml --target onnx -o m.onnx` (m.onnx removed before, as the "
            f"script's export truncates its own) | {a:.2f} | {a_rss / 2**20:,.0f} MiB | 1.0x |",
            f"| `python export.py`: import torch and archc's generated module, build it, "
            f"torch.onnx.export(dynamo=False) | {s:.2f} | {s_rss / 2**20:,.0f} MiB | {s / a:.1f}x slower |", ""]


def section_vgg(repeat: int, workdir: str) -> list[str]:
    """VGG-16 (528 MiB of weights) -> ONNX against dd writing as many bytes, interleaved round by round:
    the whole build writing a new file (as dd writes one), the same build without weights (what is not
    drawing and writing), dd into the page cache (as archc writes: no fdatasync), dd with fdatasync, and
    two builds replacing the file the one before wrote: once it is on disk, and a moment after."""
    spec = os.path.join(BENCH_SPECS, "vgg16.yaml")
    out = os.path.join(workdir, "vgg16.onnx")
    build = [*ARCHC, "build", spec, "--target", "onnx", "-o", out]
    run_child(build)  # (warm-up; the file's size for dd)
    written = os.path.getsize(out)
    full, bare, cache, disk, over_synced, over_dirty, rss = [], [], [], [], [], [], 0
    for _ in range(max(repeat, 5)):
        os.unlink(out)  # (a new file just after the old one was removed, as dd's: see _VGG_PAGES)
        wall, peak = run_child(build)
        full.append(wall)
        rss = max(rss, peak)
        bare.append(run_child([*build[:-2], "--no-weights", "-o", os.path.join(workdir, "bare.onnx")])[0])
        cache.append(dd_speed(workdir, written, sync=False, name="dd-cache.bin", keep=True))
        disk.append(dd_speed(workdir, written, name="dd-disk.bin", keep=True))
        os.sync()  # (the rebuild of a file written a while ago: its pages are on disk)
        over_synced.append(run_child(build)[0])
        over_dirty.append(run_child(build)[0])  # (the file the build before wrote, still in memory only)
    for name in (out, "dd-cache.bin", "dd-disk.bin"):
        os.unlink(os.path.join(workdir, name))
    wall, without = statistics.median(full), statistics.median(bare)
    # (each round's difference, then the median: the rounds ran side by side)
    weights_mb_s = statistics.median(written / max(f - b, 1e-6) / 1e6 for f, b in zip(full, bare))
    cache_mb_s, disk_mb_s = statistics.median(cache), statistics.median(disk)
    synced, dirty = statistics.median(over_synced), statistics.median(over_dirty)
    return ["## vgg: VGG-16 (tools/specs/vgg16.yaml, 138,357,544 parameters) -> ONNX, whole process", "",
            f"Median of {len(full)} rounds, each running the six commands below one after the other.", "",
            "| what | median wall s | MB/s |", "|---|---:|---:|",
            f"| `archc build tools/specs/vgg16.yaml --target onnx` to a new file ({written / 1e6:,.0f} MB, peak RSS "
            f"{rss / 2**20:,.0f} MiB) | {wall:.2f} | {written / wall / 1e6:.0f} |",
            f"| the same with `--no-weights` (start-up, spec, graph: all but the weights) | {without:.2f} | |",
            f"| the weights alone: drawn and written, the difference of the two, round by round | {wall - without:.2f} "
            f"| {weights_mb_s:.0f} |",
            f"| `dd` writing as many bytes to a new file, into the page cache (as archc writes: no fdatasync) | "
            f"{written / cache_mb_s / 1e6:.2f} | {cache_mb_s:.0f} |",
            f"| `dd` writing as many bytes to disk, `conv=fdatasync` | {written / disk_mb_s / 1e6:.2f} | "
            f"{disk_mb_s:.0f} |",
            f"| `archc build` replacing its output once that is on disk (`sync` before: a rebuild later on) | "
            f"{synced:.2f} | {written / synced / 1e6:.0f} |",
            f"| `archc build` replacing the output written a moment before (still in memory only) | "
            f"{dirty:.2f} | {written / dirty / 1e6:.0f} |", "",
            f"archc produces the weights at {weights_mb_s / disk_mb_s:.2f}x the disk's own write speed (dd with "
            f"fdatasync) and {weights_mb_s / cache_mb_s:.2f}x dd's into the page cache; whole process, start-up "
            f"included, at {written / wall / 1e6 / disk_mb_s:.2f}x the disk's.", "", _VGG_PAGES, ""]


#: Why the VGG-16 section times archc writing a new file, as dd does, and the replacing builds apart.
_VGG_PAGES = (
    "archc and dd both write a new file just after their previous output was removed (dd truncates it as "
    "it starts; archc's is removed before the build). On a virtual machine that hands memory freed by the "
    "guest back to its host (free page reporting, as here), a page cache page taken from memory freed more "
    "than a moment ago costs a host fault on first touch (2-9 ms per MB measured here); a file written just after "
    "another was removed reuses the pages the removal freed. A build replacing its output keeps the old "
    "file whole until the new one is complete (an atomic rename); where the old file is on disk already, "
    "archc drops its cached pages first (`archc/replaced.py`) and reuses them. Where it is not (the last "
    "row: written a moment before), its pages stay, and the new file's come from long-free memory: on such "
    "a machine that time varies with the host, not with archc.")


def _exponent(points: list[tuple[int, float]]) -> float:
    (n0, t0), (n1, t1) = points[1], points[-1]
    return math.log(t1 / t0) / math.log(n1 / n0)


def section_resnet_scale(workdir: str) -> list[str]:
    """ResNets of 10 ... 10,000 basic blocks: `archc build --target onnx` and `archc lint`, whole process."""
    spec = os.path.join(BENCH_SPECS, "resnet_chain.yaml")
    out = os.path.join(workdir, "chain.onnx")
    lines = ["## resnet-scale: ResNets of 10 to 10,000 basic blocks (tools/specs/resnet_chain.yaml, width 16)", "",
             "| blocks | build s | build peak RSS | lint s | lint peak RSS |", "|---:|---:|---:|---:|---:|"]
    build_points, lint_points, rss_points = [], [], []
    for blocks in (10, 100, 1000, 10000):
        where = ["--set", f"blocks={blocks}", "--max-nodes", "200000"]
        b_wall, b_rss = run_child([*ARCHC, "build", spec, *where, "--target", "onnx", "-o", out])
        l_wall, l_rss = run_child([*ARCHC, "lint", spec, *where, "--format", "json"])
        os.unlink(out)
        build_points.append((blocks, b_wall))
        lint_points.append((blocks, l_wall))
        rss_points.append((blocks, b_rss))
        lines.append(f"| {blocks:,} | {b_wall:.2f} | {b_rss / 2**20:,.0f} MiB | {l_wall:.2f} | "
                     f"{l_rss / 2**20:,.0f} MiB |")
    return lines + ["", f"Growth exponents (100 -> 10,000 blocks; 1.0 is linear, start-up included): build time "
                        f"{_exponent(build_points):.2f}, lint time {_exponent(lint_points):.2f}, build peak RSS "
                        f"{_exponent(rss_points):.2f}.", ""]
