"""Shared fixtures: paths to shipped specs, a runner for the real `archc` entry point, and test doubles."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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


def archc_command() -> list[str]:
    exe = Path(sys.executable).with_name("archc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "archc"]


def fake_program_env(directory: Path, name: str, script: str) -> dict[str, str]:
    """The environment with a shell script ``name`` (body ``script``) first on PATH: a stand-in
    for an outside program (Graphviz's ``dot``) that fails in a chosen way."""
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / name
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    return {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"}


def terminal_env(**extra: str) -> dict[str, str]:
    """The environment of a terminal session: a colour TERM, none of the colour/progress switches
    unless ``extra`` sets them."""
    switches = ("NO_COLOR", "FORCE_COLOR", "TERM", "ARCHC_PROGRESS", "ARCHC_PROGRESS_DELAY")
    env = {k: v for k, v in os.environ.items() if k not in switches}
    return {**env, "TERM": "xterm-256color", **extra}


def run_on_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run archc with stderr on a pseudo-terminal; its exit code and what it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(archc_command() + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def check_against_onnxruntime(path: str):
    """archc's PyTorch build of the ONNX file at ``path`` computes what onnxruntime does on it
    (rtol 1e-4, atol 1e-5; symbolic dims fed as 3, 4, ...); returns the module."""
    import numpy as np
    import onnxruntime as ort
    import torch

    import archc

    rng = np.random.default_rng(1)
    session = ort.InferenceSession(path)
    feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 3 + k for k, d in enumerate(i.shape)])
             .astype(np.float32) for i in session.get_inputs()}
    expected = session.run(None, feeds)
    module = archc.from_onnx(path)
    with torch.no_grad():
        got = module(*[torch.from_numpy(v) for v in feeds.values()])
    for e, g in zip(expected, got if isinstance(got, (tuple, list)) else [got]):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=1e-5)
    return module


class FailingSource:
    """A weight source of 5,000 float32 values in two pieces whose second piece raises ``error``
    (a drawing or writing failure mid-stream)."""

    shape, dtype = (5000,), np.dtype("float32")

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def pieces(self) -> list[tuple[int, int]]:
        return [(0, 2500), (2500, 5000)]

    def draw(self, start: int, stop: int, allocate=np.empty) -> np.ndarray:
        if start:
            raise self.error
        return np.zeros(stop - start, np.float32)
