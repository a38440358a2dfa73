"""`archc check` and `archc summary` through the installed entry point."""
from __future__ import annotations

import json

from conftest import SPECS


def test_check_ok(run_archc):
    proc = run_archc("check", str(SPECS / "resnet18.yaml"), check=True)
    assert "ok: resnet18, 70 nodes" in proc.stdout
    assert "outputs fc (N, 1000)" in proc.stdout


def test_check_print_ir(run_archc):
    proc = run_archc("check", str(SPECS / "resnet18.yaml"), "--print-ir", "--set", "image_size=64", check=True)
    assert "graph resnet18(%x: (N, 3, 64, 64)):" in proc.stdout
    assert "%layer2.0.downsample.0 : (N, 128, 8, 8) = conv(%layer1.1.relu2" in proc.stdout


def test_check_reports_all_errors_with_locations_and_exit_2(run_archc, spec_file):
    path = spec_file("inputs: {x: [N, 3, 8, 8]}\nnodes:\n  - {name: a, op: cnv}\n  - {name: b, op: linear}\n")
    proc = run_archc("check", path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines == [
        f"{path}:3:19: error: node 'a': unknown op 'cnv' (did you mean 'conv'?)",
        " 3 |   - {name: a, op: cnv}",
        "   |                   ^~~",
        f"{path}:4:5: error: node 'b': op 'linear' needs attribute 'out_features'",
        " 4 |   - {name: b, op: linear}",
        "   |     ^",
    ]
    assert "Traceback" not in proc.stderr


def test_missing_file_is_a_clean_error(run_archc, tmp_path):
    proc = run_archc("check", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"<command line>: error: no such file: '{tmp_path / 'nope.yaml'}'"


def test_bad_set_syntax(run_archc):
    proc = run_archc("check", str(SPECS / "resnet18.yaml"), "--set", "width")
    assert proc.returncode == 2
    assert "--set expects NAME=VALUE, got 'width'" in proc.stderr


def test_summary_table(run_archc):
    proc = run_archc("summary", str(SPECS / "resnet50.yaml"), check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == "model resnet50   (batch 1)"
    assert lines[1].split()[:4] == ["name", "op", "output", "shape"]
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    assert conv1.split()[1] == "conv" and conv1.split()[6:9] == ["9,408", "9,408", "118.01"]
    assert lines[-2] == "total: 176 nodes, 25,557,032 parameters (25,557,032 trainable), 4.09 GMACs (4,089,184,256)"


def test_summary_json(run_archc):
    proc = run_archc("summary", str(SPECS / "resnet34.yaml"), "--format", "json", "--set", "num_classes=10",
                     check=True)
    data = json.loads(proc.stdout)
    assert data["model"] == "resnet34"
    assert data["inputs"] == {"x": {"shape": ["N", 3, 224, 224], "dtype": "float32"}}
    fc = next(r for r in data["nodes"] if r["name"] == "fc")
    assert fc == {"name": "fc", "op": "linear", "shapes": [["N", 10]], "dtypes": ["float32"], "params": 5130,
                  "trainable": 5130, "macs": 5120, "activation_bytes": 40}
    assert data["total_params"] == sum(r["params"] for r in data["nodes"])


def test_summary_counts_a_sequence_at_the_specs_example_size_and_says_so(run_archc):
    """gnmt_encoder declares example_dims {S: 12}, as run and verify use it: summary counts at S=12
    unless --dim says otherwise, and names the size it used."""
    proc = run_archc("summary", str(SPECS / "gnmt_encoder.yaml"), check=True)
    assert proc.stdout.splitlines()[-1].endswith("(one forward pass at batch 1, S=12)")
    macs = json.loads(run_archc("summary", str(SPECS / "gnmt_encoder.yaml"), "--format", "json",
                                check=True).stdout)["totals"]["macs"]
    data = json.loads(run_archc("summary", str(SPECS / "gnmt_encoder.yaml"), "--format", "json", "--dim", "S=24",
                                check=True).stdout)
    assert data["dims"] == {"S": 24} and data["totals"]["macs"] == 2 * macs
    one = run_archc("summary", str(SPECS / "gnmt_encoder.yaml"), "--dim", "S=1", check=True).stdout
    assert one.splitlines()[-1].endswith("(one forward pass at batch 1, S=1)")
    assert run_archc("summary", str(SPECS / "resnet18.yaml"), check=True).stdout.splitlines()[-1].endswith(
        "(one forward pass at batch 1)")


def test_summary_names_the_batch_it_counted_at(run_archc, tmp_path):
    """The header and the memory line say the batch the figures are for: --dim on the batch symbol as well
    as --batch; a model that fixes its batch is counted at its own, and --batch says it has no effect
    (found on an exported CNN of batch 2: 'batch 4' in the footer, figures of batch 2)."""
    five = run_archc("summary", str(SPECS / "resnet18.yaml"), "--dim", "N=5", check=True).stdout.splitlines()
    assert five[0] == "model resnet18   (batch 5)" and five[-1].endswith("(one forward pass at batch 5)")
    spec = tmp_path / "fixed.yaml"
    spec.write_text("inputs: {x: [2, 4]}\nnodes:\n  - {op: linear, out_features: 3}\n")
    proc = run_archc("summary", str(spec), "--batch", "4", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == "model model   (batch 2)" and lines[-1].endswith("(one forward pass at batch 2)")
    assert "--batch 4 has no effect: every input of the model fixes its first dim (x (2, 4))" in proc.stderr


def test_python_dash_m_works(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "archc", "check", str(SPECS / "resnet18.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "ok: resnet18" in proc.stdout


def test_ops_lists_and_describes(run_archc):
    proc = run_archc("ops", check=True)
    assert any(line.startswith("conv ") and "also conv1d, conv2d" in line for line in proc.stdout.splitlines())
    proc = run_archc("ops", "conv", check=True)
    assert "    out_channels: int, >= 1, required — number of output channels" in proc.stdout
    assert "    stride: ints, >= 1, default 1" in proc.stdout
    proc = run_archc("ops", "cnv")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "<command line>: error: unknown op 'cnv' (did you mean 'conv'?)"


def test_profile_on_a_spec_without_profiles_is_an_error_at_the_command_line(run_archc):
    proc = run_archc("check", str(SPECS / "resnet18.yaml"), "--profile", "nope")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("<command line>: error: --profile nope: the spec defines no profiles (a 'profiles:' "
                           "mapping of name -> parameter values)\n")


def test_a_bad_dimension_from_set_says_it_was_given_at_set(run_archc, spec_file):
    proc = run_archc("check", str(SPECS / "resnet18.yaml"), "--set", "image_size=-5")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (f"{SPECS / 'resnet18.yaml'}:13:13: error: a dimension must be a positive "
                                           "int, got -5 (image_size = -5: given at --set image_size=-5)")
    path = spec_file("params: {s: 4}\ninputs: {x: [N, S]}\nexample_dims: {S: s}\nnodes:\n  - {op: relu}\n")
    proc = run_archc("check", path, "--set", "s=0")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (f"{path}:3:19: error: example size of 'S' must be a positive int, got 0 "
                                           "(s = 0: given at --set s=0)")


def test_set_values_are_echoed_as_yaml_spells_them(run_archc, spec_file):
    proc = run_archc("check", str(SPECS / "resnet18.yaml"), "--set", "width=true")
    assert proc.returncode == 2
    assert proc.stderr == "<command line>: error: --set width=true: expected a number, as the default 64 is\n"
    path = spec_file("params: {flag: false}\ninputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: flag}\n")
    proc = run_archc("check", path, "--set", "flag=3")
    assert proc.stderr == "<command line>: error: --set flag=3: expected true or false, as the default false is\n"
    proc = run_archc("check", path, "--set", "flag=true")
    assert proc.stderr.splitlines()[0] == (f"{path}:4:32: error: node 'linear': attribute 'out_features' of op "
                                           "'linear' expects an integer, >= 1, got true (flag = true: given at "
                                           "--set flag=true)")
    proc = run_archc("check", str(SPECS / "resnet18.yaml"), "--set", "num_classes=null")
    assert "--set num_classes=null: expected a number, as the default 1000 is" in proc.stderr
    assert not any(word in proc.stderr for word in ("True", "False", "None"))


def test_check_reports_a_math_domain_error_at_the_call(run_archc, spec_file):
    spec = ("params: {image_size: 32}\ninputs: {x: [N, 3, image_size, image_size]}\nnodes:\n"
            "  - {name: c, op: conv, out_channels: 'int(log(image_size - 32))', kernel_size: 3}\n")
    path = spec_file(spec)
    proc = run_archc("check", path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{path}:4:44: error: node 'c': log(0) is undefined: log takes a number > 0 and, as log(x, base), "
        "a base > 0 other than 1",
        " 4 |   - {name: c, op: conv, out_channels: 'int(log(image_size - 32))', kernel_size: 3}",
        "   |                                            ^~~",
    ]
    ok = run_archc("check", spec_file(spec.replace("image_size - 32", "image_size"), "ok.yaml"), check=True)
    assert "ok: model, 2 nodes" in ok.stdout and "(N, 3, 30, 30)" in ok.stdout  # int(log(32)) = 3 channels
