"""Helpers shared by tools/bench.py's sections: interleaved medians, child processes with their
peak RSS, and the disk's own write speed."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time


def interleaved(fns: dict, repeat: int) -> dict[str, float]:
    """Median seconds of each function, the runs interleaved (A B A B ...)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def interleaved_samples(fns: dict, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Wall and CPU seconds (this process's, all threads) of every run of each function, the runs
    interleaved (A B A B ...)."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def interleaved_cpu(fns: dict, repeat: int) -> dict[str, tuple[float, float]]:
    """Median wall and median CPU seconds (this process's, all threads) of each function, the
    runs interleaved (A B A B ...). On a shared machine CPU time says more than wall time
    (though a library's busy-waiting worker threads count in it too)."""
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in interleaved_samples(fns, repeat).items()}


def run_child(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    wall, rss, _ = run_child_output(args)
    return wall, rss


#: a small intermediary that starts the measured command and reports its peak RSS. Linux carries a
#: process's peak RSS across fork and exec, so a child forked straight from this (large) benchmark
#: process would report at least the benchmark's own size; a grandchild forked from a fresh, small
#: interpreter starts from that interpreter's few MiB instead.
_MEASURE = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=sys.stdout, stderr=sys.stderr)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as fh:
    fh.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss * 1024} {wall}")
"""


def run_child_output(args: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and standard output of one child process (both measured by
    the intermediary, around the command alone)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as report:
        subprocess.run([sys.executable, "-c", _MEASURE, report.name, *args], stdout=out, stderr=err, check=True)
        code, rss, wall = report.read().split()
        code, rss, wall = int(code), int(rss), float(wall)
        if code:
            err.seek(0)
            raise RuntimeError(f"{' '.join(args)} failed: {err.read().decode()}")
        out.seek(0)
        return wall, rss, out.read().decode()


def dd_speed(workdir: str, nbytes: int, sync: bool = True, name: str = "dd.bin", keep: bool = False) -> float:
    """MB/s of dd writing ``nbytes`` (1 MiB blocks) to ``name`` in ``workdir``: to disk with fdatasync,
    or (``sync=False``) into the page cache only, as archc's own writes (which do not fdatasync) go.
    ``keep``: the file stays, and the next call with its name truncates it as it starts (freeing its pages
    just before writing, as a writer that removed its old output first)."""
    path = os.path.join(workdir, name)
    count = max(1, nbytes // 2 ** 20)
    start = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={count}", *(["conv=fdatasync"] if sync else [])],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - start
    if not keep:
        os.unlink(path)
    return count * 2 ** 20 / seconds / 1e6
