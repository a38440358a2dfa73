"""Same spec, parameters and seed: byte-identical ONNX and Python in every process.

Python randomises str hashes per process (PYTHONHASHSEED), so any output that depends on
set or hash order differs between runs. Each build below runs in two processes with
different hash seeds, through archc's command line, and the bytes are compared.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from conftest import SPECS

BUILDS = {
    "googlenet": ["--set", "image_size=64", "--set", "num_classes=10"],
    "densenet121": ["--set", "growth_rate=8", "--set", "init_features=16", "--set", "block_config=[2,3,2,2]",
                    "--set", "image_size=32", "--set", "num_classes=10"],
    "transformer": ["--set", "d_model=32", "--set", "nhead=4", "--set", "num_encoder_layers=2",
                    "--set", "num_decoder_layers=2", "--set", "dim_feedforward=64"],
    "hourglass": [],
}

# Builds every target in one process (archc's own command line, called once per output).
DRIVER = """
import sys
from archc.cli import main
out, models = sys.argv[1], sys.argv[2:]
for model in models:
    spec, _, extra = model.partition("|")
    name = spec.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for target, ext in (("onnx", ".onnx"), ("torch", ".py")):
        args = ["build", spec, "--target", target, "-o", f"{out}/{name}{ext}"] + extra.split()
        if main(args) != 0:
            sys.exit(f"archc {' '.join(args)} failed")
"""


class _Block(nn.Module):
    """A pre-activation residual block (He et al. 2016, 'Identity Mappings in Deep Residual Networks')."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        y = self.conv1(torch.relu(self.bn1(x)))
        return x + self.conv2(torch.relu(self.bn2(y)))


def _exported_model(path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _Block(8), _Block(8), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 5)).eval()
    torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "N"}})


def _build_all(out: Path, hash_seed: str, models: list[str]) -> dict[str, bytes]:
    out.mkdir()
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(out), *models], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_builds_are_byte_identical_across_hash_seeds(tmp_path):
    _exported_model(tmp_path / "preact.onnx")
    models = [f"{SPECS / name}.yaml|{' '.join(extra)} --seed 3" for name, extra in BUILDS.items()]
    models.append(f"{tmp_path / 'preact.onnx'}|")  # an ONNX model brings its own weights: no --seed
    first = _build_all(tmp_path / "a", "0", models)
    second = _build_all(tmp_path / "b", "4242", models)
    assert len(first) == 2 * len(models)
    assert first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []
