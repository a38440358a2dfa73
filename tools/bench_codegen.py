"""Measure the PyTorch target's generated source: time, lines, longest line, classes.

    python tools/bench_codegen.py [SPEC ...] [--repeat N] [--rounds R] [--baseline REV]

Defaults to every shipped spec. Time is ``generate_source`` alone (the spec loaded once,
outside the timing): the least CPU time (``time.process_time``, less disturbed than wall
time on a shared machine) of ``--repeat`` runs in each of ``--rounds`` rounds. The cyclic
garbage collector is off while timing, on both sides, as ``archc build`` runs with it off
(``archc.cli._collector_paused``): with torch imported, a collection walks torch's whole heap.

``--baseline REV`` also times the generator of another git revision (default ``c73f2c1^``,
the flat generator before the class-per-block rewrite) on that revision's spec of the same
name, in a separate process on a ``git archive`` copy of it; the rounds alternate between
the two so that a busy machine slows both alike. The ``ratio`` column is this tree's time
over the baseline's (below 1: faster). On a busy machine the ratio against the flat generator
moves with the load (it is two different programs, slowed unalike); ``--baseline REV`` with a
recent revision of this generator is the steadier measure of one change.

``--cold N`` also times what one ``archc build`` does: the first ``generate_source`` call in a
fresh process (every cache cold), the least of N processes per spec and side (slow: a process
each, torch imported in each).

``--opcodes`` also counts the Python bytecode instructions one warm ``generate_source`` call
executes (``sys.settrace`` with opcode events, in a process per side): a figure no load on the
machine moves, to compare two versions of the Python code where times are too noisy to (it
does not see time spent inside C functions, such as hashing, regular expressions or ``join``).

``--module`` also times what ``build_module`` and ``module_class`` pay for the source: generating it,
compiling it and executing it into the model class (``archc.lowering.torch.module_class``; the
baseline's ``_module_class`` of its ``generate_source``), least CPU time of ``--repeat`` warm calls
per round, in a process per side. A class-per-block file is shorter than the flat one for deep
nets, so it compiles faster: this is the figure the in-memory module's user waits for.

``--process N`` also times ``archc build SPEC --target torch -o FILE`` as a user runs it (whole
process: start-up, spec, analysis for the skip labels, generation, the module built to check the
file), the two trees alternating, least wall time of N runs per side.
"""
from __future__ import annotations

import argparse
import gc
import glob
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD_FLAT_GENERATOR = "c73f2c1^"

# Run in either tree: least CPU time of ``generate_source`` ("source") or of source -> executed model
# class ("module": what build_module pays before the weights), per spec of the given names.
_TIMER = """
import gc, json, sys, time
import archc
from archc.lowering import torch as lowering
what, repeat, names, result = sys.argv[1], int(sys.argv[2]), sys.argv[3:], {}
def module(graph):
    if hasattr(lowering, "module_class"):
        return lowering.module_class(graph)
    name = lowering.class_name_for(graph.name)
    return lowering._module_class(graph, lowering.generate_source(graph, name), name)
make = module if what == "module" else lowering.generate_source
for name in names:
    try:
        graph = archc.load_spec(f"specs/{name}.yaml")
        make(graph)
    except Exception:
        continue
    best = float("inf")
    gc.disable()
    for _ in range(repeat):
        start = time.process_time()
        make(graph)
        best = min(best, time.process_time() - start)
    gc.enable()
    result[name] = best
print(json.dumps(result))
"""

# Run in either tree, in a fresh process: the first generate_source call on one spec, as
# `archc build` makes it (the collector off, every cache cold), with skip labels where the
# tree's generate_source takes them.
_COLD_TIMER = """
import gc, inspect, json, sys, time
import archc
from archc.lowering.torch import generate_source
graph = archc.load_spec(f"specs/{sys.argv[1]}.yaml")
kwargs = {}
if "labels" in inspect.signature(generate_source).parameters:
    from archc.analysis.skips import analyze, merge_labels
    kwargs["labels"] = merge_labels(analyze(graph, paths=False))
gc.disable()
start = time.process_time()
generate_source(graph, **kwargs)
print(json.dumps(time.process_time() - start))
"""

# Run in either tree: the bytecode instructions of the second generate_source call per spec.
_OPCODE_COUNTER = """
import inspect, json, sys
import archc
from archc.lowering.torch import generate_source
def count(call):
    executed = [0]
    def trace(frame, event, arg):
        if event == "call":
            frame.f_trace_opcodes, frame.f_trace_lines = True, False
        elif event == "opcode":
            executed[0] += 1
        return trace
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
    return executed[0]
result = {}
for name in sys.argv[1:]:
    kwargs = {}
    try:
        graph = archc.load_spec(f"specs/{name}.yaml")
        if "labels" in inspect.signature(generate_source).parameters:
            from archc.analysis.skips import analyze, merge_labels
            kwargs["labels"] = merge_labels(analyze(graph, paths=False))
        generate_source(graph, **kwargs)
    except Exception:
        continue
    result[name] = count(lambda: generate_source(graph, **kwargs))
print(json.dumps(result))
"""


def _time_process(tree: str, name: str, out: str) -> float | None:
    """Wall seconds of one ``archc build specs/NAME.yaml --target torch`` in ``tree`` (None: it failed)."""
    env = {**os.environ, "PYTHONPATH": tree}
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "archc", "build", f"specs/{name}.yaml", "--target", "torch",
                          "-o", out], check=False, cwd=tree, env=env, capture_output=True)
    return time.perf_counter() - start if run.returncode == 0 else None


def _count_opcodes(tree: str, names: list[str]) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"}  # the same set orders every run
    out = subprocess.run([sys.executable, "-c", _OPCODE_COUNTER, *names], cwd=tree, env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _time_cold(tree: str, name: str) -> float | None:
    env = {**os.environ, "PYTHONPATH": tree}
    run = subprocess.run([sys.executable, "-c", _COLD_TIMER, name], cwd=tree, env=env, capture_output=True, text=True)
    return json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 and run.stdout.strip() else None


def _baseline_tree(rev: str, into: str) -> None:
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def _time_in(tree: str, what: str, names: list[str], repeat: int) -> dict[str, float]:
    """Least CPU seconds per spec of ``what`` ("source" or "module", see :data:`_TIMER`) in ``tree``."""
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run([sys.executable, "-c", _TIMER, what, str(repeat), *names], cwd=tree, env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", nargs="?", const=OLD_FLAT_GENERATOR, default=None, metavar="REV")
    parser.add_argument("--cold", type=int, default=0, metavar="N",
                        help="also time the first call in N fresh processes per spec (and side), least of N")
    parser.add_argument("--opcodes", action="store_true",
                        help="also count the bytecode instructions of one warm call (per side)")
    parser.add_argument("--module", action="store_true",
                        help="also time source -> executed model class (what build_module pays), per side")
    parser.add_argument("--process", type=int, default=0, metavar="N",
                        help="also time `archc build --target torch` as a whole process, least of N per side")
    args = parser.parse_args()

    import archc
    from archc.analysis.skips import analyze, merge_labels
    from archc.lowering.torch import generate_source

    specs = args.specs or sorted(glob.glob(os.path.join(ROOT, "specs", "*.yaml")))
    names = [os.path.splitext(os.path.basename(s))[0] for s in specs]
    graphs = {}
    for name, spec in zip(names, specs):
        graph = archc.load_spec(spec)
        graphs[name] = (graph, merge_labels(analyze(graph, paths=False)))
    best = {name: float("inf") for name in names}
    old = {name: float("inf") for name in names}
    module: dict[str, float] = {}
    module_old: dict[str, float] = {}
    process: dict[str, float] = {}
    process_old: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tree:
        if args.baseline:
            _baseline_tree(args.baseline, tree)
        for _ in range(args.rounds):
            for name, (graph, labels) in graphs.items():
                gc.disable()  # as the CLI runs it (and the baseline below)
                for _ in range(args.repeat):
                    start = time.process_time()
                    generate_source(graph, labels=labels)
                    best[name] = min(best[name], time.process_time() - start)
                gc.enable()
            if args.baseline:
                for name, seconds in _time_in(tree, "source", names, args.repeat).items():
                    old[name] = min(old[name], seconds)
            if args.module:
                for side, timed in ((module, ROOT), (module_old, tree if args.baseline else None)):
                    for name, seconds in (_time_in(timed, "module", names, args.repeat) if timed else {}).items():
                        side[name] = min(side.get(name, float("inf")), seconds)
        for _ in range(args.process):  # (the two trees alternating, spec by spec)
            for name in names:
                for side, timed in ((process, ROOT), (process_old, tree if args.baseline else None)):
                    seconds = _time_process(timed, name, os.path.join(tree, "model_out.py")) if timed else None
                    if seconds is not None:
                        side[name] = min(side.get(name, float("inf")), seconds)
        cold = {name: _least_cold(ROOT, name, args.cold) for name in names} if args.cold else {}
        cold_old = {name: _least_cold(tree, name, args.cold) for name in names} if args.cold and args.baseline else {}
        ops = _count_opcodes(ROOT, names) if args.opcodes else {}
        ops_old = _count_opcodes(tree, names) if args.opcodes and args.baseline else {}
    header = f"{'spec':22s} {'ms':>8s} {'lines':>6s} {'longest':>8s} {'classes':>8s}"
    header += f" {'base ms':>8s} {'ratio':>6s}" if args.baseline else ""
    header += f" {'cold ms':>8s}" + (f" {'base':>8s} {'ratio':>6s}" if args.baseline else "") if args.cold else ""
    header += f" {'opcodes':>9s}" + (f" {'base':>9s} {'ratio':>6s}" if args.baseline else "") if args.opcodes else ""
    header += f" {'module ms':>9s}" + (f" {'base':>8s} {'ratio':>6s}" if args.baseline else "") if args.module else ""
    header += f" {'build s':>8s}" + (f" {'base':>8s} {'ratio':>6s}" if args.baseline else "") if args.process else ""
    print(header)
    for name, (graph, labels) in graphs.items():
        lines = generate_source(graph, labels=labels).splitlines()
        classes = sum(1 for line in lines if line.startswith("class "))
        row = f"{name:22s} {best[name] * 1000:8.1f} {len(lines):6d} {max(map(len, lines)):8d} {classes:8d}"
        if args.baseline:
            row += _versus(best[name], old[name])
        if args.cold:
            row += f" {cold[name] * 1000:8.1f}" + (_versus(cold[name], cold_old[name]) if args.baseline else "")
        if args.opcodes:
            row += f" {ops.get(name, 0):9d}" + (_ops_versus(ops.get(name), ops_old.get(name)) if args.baseline else "")
        if args.module:
            mine = module.get(name, float("inf"))
            row += f" {mine * 1000:9.1f}" + (_versus(mine, module_old.get(name, float("inf"))) if args.baseline else "")
        if args.process:
            mine = process.get(name, float("inf"))
            row += f" {mine:8.2f}" + (_seconds_versus(mine, process_old.get(name, float("inf")))
                                      if args.baseline else "")
        print(row)


def _least_cold(tree: str, name: str, n: int) -> float:
    times = [t for t in (_time_cold(tree, name) for _ in range(n)) if t is not None]
    return min(times, default=float("inf"))


def _ops_versus(mine: int | None, base: int | None) -> str:
    return f" {base:9d} {mine / base:6.2f}" if mine and base else f" {'-':>9s} {'-':>6s}"


def _seconds_versus(mine: float, base: float) -> str:
    return f" {base:8.2f} {mine / base:6.2f}" if base < float("inf") else f" {'-':>8s} {'-':>6s}"


def _versus(mine: float, base: float) -> str:
    return f" {base * 1000:8.1f} {mine / base:6.2f}" if base < float("inf") else f" {'-':>8s} {'-':>6s}"


if __name__ == "__main__":
    main()
