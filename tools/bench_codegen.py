"""Measure the PyTorch target's generated source: time, lines, longest line, classes.

    python tools/bench_codegen.py [SPEC ...] [--repeat N]

Defaults to every shipped spec. Time is ``generate_source`` alone (the spec loaded and
analysed once, outside the timing), best of ``--repeat`` runs.
"""
from __future__ import annotations

import argparse
import glob
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import archc
    from archc.analysis.skips import analyze, merge_labels
    from archc.lowering.torch import generate_source

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    specs = args.specs or sorted(glob.glob(os.path.join(root, "specs", "*.yaml")))
    print(f"{'spec':22s} {'ms':>8s} {'lines':>6s} {'longest':>8s} {'classes':>8s}")
    for spec in specs:
        graph = archc.load_spec(spec)
        labels = merge_labels(analyze(graph, paths=False))
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            source = generate_source(graph, labels=labels)
            best = min(best, time.perf_counter() - start)
        lines = source.splitlines()
        classes = sum(1 for line in lines if line.startswith("class "))
        name = os.path.splitext(os.path.basename(spec))[0]
        print(f"{name:22s} {best * 1000:8.1f} {len(lines):6d} {max(map(len, lines)):8d} {classes:8d}")


if __name__ == "__main__":
    main()
