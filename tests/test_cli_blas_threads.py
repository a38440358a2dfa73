"""An analysis command run as a process asks numpy's OpenBLAS for one thread (its pool would only
spin beside lint's few dot products), unless the user chose a number; other commands are left alone."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT

#: runs archc's console entry point in a child process, then reports what it saw
_CHILD = """
import contextlib, io, os, sys
sys.argv = ["archc"] + sys.argv[1:]
from archc.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main()
    except SystemExit as exc:  # --help, --version
        code = exc.code
tasks = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1
print(code, os.environ.get("OPENBLAS_NUM_THREADS"), "numpy" in sys.modules, tasks)
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
