"""What an ``archc`` process does around its command: an analysis command asks numpy's OpenBLAS for
one thread (its pool would only spin beside lint's few dot products), unless the user chose a number;
a printing command (lint, summary, check) ends once its output is flushed, without the interpreter's
teardown. Other commands are left alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

#: runs archc's console entry point in a child process, then reports what it saw (from the hook that
#: ends the process after a printing command, or after main returns or exits)
_CHILD = """
import os, sys
sys.argv = ["archc"] + sys.argv[1:]
import archc.cli as cli

def report(code):
    tasks = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1
    sys.__stdout__.write(f"{code} {os.environ.get('OPENBLAS_NUM_THREADS')} {'numpy' in sys.modules} {tasks}\\n")
    sys.__stdout__.flush()
    os._exit(0)

cli._end_process = report
sys.stdout = open(os.devnull, "w")
try:
    code = cli.main()
except SystemExit as exc:  # --help, --version
    code = exc.code
report(code)
"""


def _child(*args: str, env_value: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_lint_process_runs_numpy_with_one_blas_thread():
    code, threads, numpy_loaded, tasks = _child("lint", "specs/resnet18.yaml", "--format", "json")
    assert (code, threads, numpy_loaded) == ("0", "1", "True")
    if tasks != "-1":
        assert tasks == "1"  # no OpenBLAS worker threads beside the main one


def test_a_users_choice_of_blas_threads_is_kept():
    code, threads, _, _ = _child("lint", "specs/resnet18.yaml", env_value="2")
    assert (code, threads) == ("0", "2")


@pytest.mark.parametrize("args", [("build", "--help"), ("verify", "--help"), ("--version",)])
def test_other_commands_leave_the_blas_threads_alone(args):
    code, threads, _, _ = _child(*args)
    assert (code, threads) == ("0", "None")


_EXIT_HANDLER = """
import atexit, sys
sys.argv = ["archc"] + sys.argv[1:]
atexit.register(lambda: print("teardown ran", file=sys.stderr))
from archc.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("args,teardown", [
    (("lint", "specs/resnet18.yaml", "--format", "json"), False),
    (("summary", "specs/resnet18.yaml"), False),
    (("schema",), True),
])
def test_printing_commands_end_without_the_interpreters_teardown(args, teardown):
    proc = subprocess.run([sys.executable, "-c", _EXIT_HANDLER, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ("teardown ran" in proc.stderr) == teardown
    assert proc.stdout.endswith("}\n") or args[0] == "summary"  # the output whole


def test_a_fast_ending_lint_keeps_its_exit_code_and_whole_output(run_archc, tmp_path):
    from test_cli_lint import MISLABELLED

    spec = tmp_path / "mislabelled.yaml"
    spec.write_text(MISLABELLED)
    proc = run_archc("lint", "--strict", "--format", "json", str(spec))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False
    missing = run_archc("lint", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
