"""Shared fixtures: paths to shipped specs and a runner for the real `archc` entry point."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Frontends and passes verify every graph they return (the CLI subprocesses inherit it).
os.environ.setdefault("ARCHC_VERIFY_GRAPHS", "1")

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def run_archc():
    """Run the installed `archc` console script (falls back to `python -m archc`)."""

    def run(*args: str, cwd: str | os.PathLike | None = None, check: bool = False) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).with_name("archc")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "archc"]
        proc = subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd or ROOT, timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"archc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def spec_file(tmp_path):
    """Write spec text to a file and return its path."""

    def write(text: str, name: str = "model.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write
