"""A fuzzing campaign over archc's two frontends: mutated specs and mutated ONNX models.

    python tools/fuzz.py                          # 10,000 specs and 2,000 ONNX files
    python tools/fuzz.py --specs 500 --onnx 100 --jobs 2 --save findings/

Each case (made by :mod:`fuzzcases` from its kind and number, so ``--start`` and a
case number reproduce it) runs through the frontend and the lint/build pipeline in a
worker process under a memory limit (RLIMIT_AS, ``--memory-mb``) and a per-case time
bound (``--timeout``): the worker's own alarm, and the parent killing a worker that
stops answering (a hang in C code). A worker that dies is restarted. The outcome table
is printed at the end; the exit status is 1 when any case ended in a traceback, a hang,
a memory blow-up, a crash or an error without a location.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzzcases  # noqa: E402 - the tools folder is put on the path just above

#: outcomes, in table order (a worker that dies unexplained is a "crash")
COLUMNS = (*fuzzcases.OUTCOMES, "crash")
BAD = (*fuzzcases.BAD, "crash")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=10_000, help="number of mutated specs (default 10000)")
    parser.add_argument("--onnx", type=int, default=2_000, help="number of mutated ONNX models (default 2000)")
    parser.add_argument("--start", type=int, default=0, help="number of the first case of each kind")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case (default 20)")
    parser.add_argument("--memory-mb", type=int, default=6144, help="address-space limit of a worker (default 6144)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--quick", action="store_true", help="mutate only the small and quick shipped specs")
    parser.add_argument("--save", metavar="DIR", help="write every bad case and its detail into DIR")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # run the cleanup: workers die too
    cases = [("spec", n) for n in range(args.start, args.start + args.specs)] + \
            [("onnx", n) for n in range(args.start, args.start + args.onnx)]
    started = time.monotonic()
    counts = _campaign(cases, args)
    print(format_table(counts, time.monotonic() - started))
    return 1 if any(counts[kind][o] for kind in counts for o in BAD) else 0


def format_table(counts: dict[str, Counter], seconds: float) -> str:
    """The outcome table: one row per kind, a count and a share per outcome."""
    header = ["kind", "cases", *COLUMNS]
    rows = []
    for kind in ("spec", "onnx"):
        if kind not in counts:
            continue
        total = sum(counts[kind].values())
        rows.append([kind, str(total), *(_cell(counts[kind][o], total) for o in COLUMNS)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in
             [header, *rows]]
    return "\n".join(lines) + f"\n{sum(sum(c.values()) for c in counts.values())} cases in {seconds:.0f} s"


def _cell(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.1f}%)" if n and total else "0"


# -- the parent: workers, time bounds, outcomes ----------------------------------------------

class Worker:
    """One worker process: cases in on stdin, one JSON line out per case."""

    def __init__(self, args: argparse.Namespace) -> None:
        limit = args.memory_mb * 1024 * 1024

        def limit_memory() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        # The parent owns the worker's scratch folder: a worker killed for a hang cannot clean up.
        self.workdir = tempfile.mkdtemp(prefix="archc-fuzz-")
        cmd = [sys.executable, __file__, "--worker", "--timeout", str(args.timeout), "--workdir", self.workdir]
        if args.quick:
            cmd.append("--quick")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     preexec_fn=limit_memory, text=True, bufsize=1)
        self.case: tuple[str, int] | None = None
        self.deadline = 0.0

    def send(self, case: tuple[str, int], seconds: float) -> None:
        self.case = case
        self.deadline = time.monotonic() + seconds
        self.proc.stdin.write(f"{case[0]} {case[1]}\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _campaign(cases: list[tuple[str, int]], args: argparse.Namespace) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    pending = list(reversed(cases))
    # The worker's own alarm comes first; the parent's bound covers start-up and C-level hangs.
    grace = args.timeout + 60.0
    workers = [Worker(args) for _ in range(max(1, args.jobs))]
    try:
        _run(pending, workers, counts, grace, args)
    finally:  # interrupted or done: no worker outlives the campaign
        for w in workers:
            w.kill()
    return counts


def _run(pending: list[tuple[str, int]], workers: list[Worker], counts: dict[str, Counter], grace: float,
         args: argparse.Namespace) -> None:
    busy: list[Worker] = []
    while pending or busy:
        for w in list(workers):
            if w not in busy and pending:
                w.send(pending.pop(), grace)
                busy.append(w)
        ready, _, _ = select.select([w.proc.stdout for w in busy], [], [], 1.0)
        for w in list(busy):
            outcome, detail = None, ""
            if w.proc.stdout in ready:
                line = w.proc.stdout.readline()
                if line:
                    data = json.loads(line)
                    outcome, detail = data["outcome"], data["detail"]
                else:
                    w.proc.wait()
                    outcome = _death(w.proc.returncode)
                    detail = f"worker exited with status {w.proc.returncode}"
            elif time.monotonic() > w.deadline:
                outcome, detail = "hang", f"no answer in {grace:g} s"
            if outcome is None:
                continue
            busy.remove(w)
            kind, number = w.case
            counts.setdefault(kind, Counter())[outcome] += 1
            if outcome in BAD:
                _report(kind, number, outcome, detail, args)
            if outcome in ("hang", "memory", "crash") or w.proc.poll() is not None:
                w.kill()
                workers[workers.index(w)] = Worker(args)


def _death(returncode: int) -> str:
    """A worker that died without answering: killed for memory, or crashed."""
    return "memory" if returncode in (-signal.SIGKILL, -signal.SIGABRT, 137) else "crash"


def _report(kind: str, number: int, outcome: str, detail: str, args: argparse.Namespace) -> None:
    print(f"{kind} #{number}: {outcome}: {detail.strip().splitlines()[-1] if detail.strip() else ''}",
          file=sys.stderr)
    if not args.save:
        return
    os.makedirs(args.save, exist_ok=True)
    name, data = fuzzcases.make_case(kind, number, args.quick)
    stem = os.path.join(args.save, f"{kind}-{number}-{outcome}")
    Path(stem + os.path.splitext(name)[1]).write_bytes(data)
    Path(stem + ".txt").write_text(f"seed input: {name}\n{detail}\n")


# -- the worker ----------------------------------------------------------------------------

def _worker(args: argparse.Namespace) -> int:
    fuzzcases.preload()
    workdir = args.workdir
    fuzzcases.prepare_workdir(workdir)
    for line in sys.stdin:
        kind, number = line.split()
        try:
            name, data = fuzzcases.make_case(kind, int(number), args.quick)
            result = fuzzcases.run_case(kind, data, name, workdir, args.timeout)
        except MemoryError:
            result = fuzzcases.Result("memory", "MemoryError")
        sys.stdout.write(json.dumps({"outcome": result.outcome, "detail": result.detail[-4000:]}) + "\n")
        sys.stdout.flush()
        if result.outcome in ("hang", "memory"):
            return 0  # the parent starts a fresh worker: no state left over from a half-run case
    return 0


if __name__ == "__main__":
    sys.exit(main())
