"""`archc spec` through the installed entry point: what it reads and what it writes, checked
before any work."""
from __future__ import annotations

import pytest

from conftest import SPECS

TINY = "inputs: {x: [N, 4]}\nnodes:\n  - {name: fc, op: linear, out_features: 3}\n"


@pytest.fixture
def model(run_archc, tmp_path):
    """A small ONNX model built by archc."""
    (tmp_path / "m.yaml").write_text(TINY)
    run_archc("build", str(tmp_path / "m.yaml"), "-o", str(tmp_path / "m.onnx"), check=True)
    return str(tmp_path / "m.onnx")


@pytest.mark.parametrize("command", ["spec", "check", "build", "run"])
def test_a_directory_given_as_the_model_is_named_as_a_directory(run_archc, tmp_path, command):
    (tmp_path / "models.onnx").mkdir()
    out = ["-o", str(tmp_path / "x.yaml" if command == "spec" else tmp_path / "x.onnx")] \
        if command in ("spec", "build") else []
    for path in (str(SPECS), str(tmp_path / "models.onnx")):
        proc = run_archc(command, path, *out)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith(f"{path}: error: cannot read the "), proc.stderr
        assert proc.stderr.rstrip().endswith(": it is a directory, expected a regular file" +
                                             (" or a pipe" if command != "spec" and path == str(SPECS) else ""))
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "x.onnx").exists()


def test_spec_of_a_yaml_spec_or_a_missing_file(run_archc, tmp_path):
    proc = run_archc("spec", str(SPECS / "resnet18.yaml"), "-o", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"{SPECS / 'resnet18.yaml'}: error: archc spec reads an ONNX model (a file ending "
                                   "in .onnx); a YAML spec is a spec already")
    proc = run_archc("spec", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"<command line>: error: no such file: '{tmp_path / 'nope.onnx'}'"


@pytest.mark.parametrize("outputs, message", [
    (["-o", "x.txt"], "-o x.txt: a spec is a YAML file; give a name ending in .yaml or .yml"),
    (["-o", "x.yaml", "--weights-out", "w.onnx"], "--weights-out w.onnx: the weights are saved as a PyTorch "
                                                  "state_dict (torch.save); give a name ending in .pt, .pth, .bin or .ckpt"),
])
def test_spec_checks_its_output_extensions_before_any_work(run_archc, tmp_path, model, outputs, message):
    proc = run_archc("spec", model, *outputs, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"<command line>: error: {message}\n"
    assert not any((tmp_path / name).exists() for name in ("x.txt", "x.yaml", "w.onnx"))


def test_spec_writes_yml_and_pth(run_archc, tmp_path, model):
    run_archc("spec", model, "-o", str(tmp_path / "x.yml"), "--weights-out", str(tmp_path / "w.pth"), check=True)
    assert (tmp_path / "x.yml").exists() and (tmp_path / "w.pth").exists()


def test_build_state_dict_must_be_a_pt_file(run_archc, tmp_path):
    proc = run_archc("build", str(SPECS / "resnet18.yaml"), "-o", "m.py", "--state-dict", "w.onnx", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("<command line>: error: --state-dict w.onnx: the weights are saved as a PyTorch "
                           "state_dict (torch.save); give a name ending in .pt, .pth, .bin or .ckpt\n")
    assert not (tmp_path / "m.py").exists()
