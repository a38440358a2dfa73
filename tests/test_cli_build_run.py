"""`archc build`, `archc run` and `archc verify` through the installed entry point."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import SPECS

SMALL = ["--set", "image_size=32", "--set", "width=8", "--set", "num_classes=10"]
RESNET18 = str(SPECS / "resnet18.yaml")


def test_build_onnx_writes_a_checked_model(run_archc, tmp_path):
    out = tmp_path / "m.onnx"
    proc = run_archc("build", RESNET18, "--target", "onnx", "-o", str(out), *SMALL, check=True)
    assert "ONNX opset 17" in proc.stderr
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    # inference build: batchnorm folded into the convs
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)


def test_build_is_deterministic_and_seeded(run_archc, tmp_path):
    a, b, c = (tmp_path / f"{k}.onnx" for k in "abc")
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(a), *SMALL, check=True)
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(b), *SMALL, check=True)
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(c), "--seed", "1", *SMALL, check=True)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_torch_file_with_state_dict_matches_onnx_build(run_archc, tmp_path):
    py, pt, model = tmp_path / "net.py", tmp_path / "net.pt", tmp_path / "net.onnx"
    run_archc("build", RESNET18, "--target", "torch", "-o", str(py), "--state-dict", str(pt), *SMALL, check=True)
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(model), *SMALL, check=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, torch\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import net\n"
        "m = net.Resnet18().eval()\n"
        f"m.load_state_dict(torch.load({str(pt)!r}, weights_only=True))\n"
        f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, m(x).detach().numpy())\n")
    subprocess.run([sys.executable, "-c", script], check=True)
    expected = np.load(tmp_path / "y.npy")
    actual = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_build_with_weights_file(run_archc, tmp_path):
    pt = tmp_path / "w.pt"
    run_archc("build", RESNET18, "--target", "torch", "-o", str(tmp_path / "n.py"), "--state-dict", str(pt),
              "--seed", "7", *SMALL, check=True)
    from_weights, from_seed = tmp_path / "a.onnx", tmp_path / "b.onnx"
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(from_weights), "--weights", str(pt), *SMALL,
              check=True)
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(from_seed), "--seed", "7", *SMALL, check=True)
    assert from_weights.read_bytes() == from_seed.read_bytes()


def test_weights_that_do_not_fit_are_reported(run_archc, tmp_path):
    pt = tmp_path / "w.pt"
    run_archc("build", RESNET18, "--target", "torch", "-o", str(tmp_path / "n.py"), "--state-dict", str(pt),
              *SMALL, check=True)
    out = tmp_path / "x.onnx"
    proc = run_archc("build", RESNET18, "--target", "onnx", "-o", str(out), "--weights", str(pt),
                     "--set", "image_size=32", "--set", "width=16", "--set", "num_classes=10")
    assert proc.returncode == 2
    assert "conv1.weight" in proc.stderr and "(16, 3, 7, 7)" in proc.stderr and "(8, 3, 7, 7)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_bad_spec_leaves_no_output_file(run_archc, tmp_path, spec_file):
    spec = spec_file("inputs: {x: [N, 3]}\nnodes: [{op: linear}]\n")
    out = tmp_path / "m.onnx"
    proc = run_archc("build", spec, "--target", "onnx", "-o", str(out))
    assert proc.returncode == 2
    assert "op 'linear' needs attribute 'out_features'" in proc.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model.yaml"]  # no temporary leftovers


def test_build_into_missing_directory(run_archc, tmp_path):
    proc = run_archc("build", RESNET18, "--target", "onnx", "-o", str(tmp_path / "no" / "m.onnx"), *SMALL)
    assert proc.returncode == 2
    assert "output directory does not exist" in proc.stderr


def test_run_spec_on_both_runtimes_gives_the_same_numbers(run_archc):
    a = run_archc("run", RESNET18, "--runtime", "ort", "--batch", "2", *SMALL, check=True)
    b = run_archc("run", RESNET18, "--runtime", "torch", "--batch", "2", *SMALL, check=True)
    assert "onnxruntime with CPUExecutionProvider" in a.stdout and "torch on cpu" in b.stdout
    stats = lambda out: [float(v) for v in re.findall(r"(?:mean|std) (-?[\d.e+-]+)", out)]  # noqa: E731
    np.testing.assert_allclose(stats(a.stdout), stats(b.stdout), rtol=1e-3, atol=1e-6)
    assert "fc: shape (2, 10) float32" in a.stdout


def test_run_onnx_file_with_npy_input_and_save(run_archc, tmp_path):
    model = tmp_path / "m.onnx"
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(model), *SMALL, check=True)
    x = np.ones((3, 3, 32, 32), np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = run_archc("run", str(model), "--input", f"x={tmp_path / 'x.npy'}", "--save", str(tmp_path / "out"),
                     check=True)
    assert "fc: shape (3, 10)" in proc.stdout
    saved = np.load(tmp_path / "out" / "fc.npy")
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(saved, expected)


def test_run_rejects_input_of_wrong_shape(run_archc, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 3, 16, 16), np.float32))
    proc = run_archc("run", RESNET18, *SMALL, "--input", str(tmp_path / "x.npy"))
    assert proc.returncode == 2
    assert "input 'x' expects shape (N, 3, 32, 32), the file holds (1, 3, 16, 16)" in proc.stderr


def test_run_names_an_unknown_input(run_archc, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 3, 32, 32), np.float32))
    proc = run_archc("run", RESNET18, *SMALL, "--input", f"y={tmp_path / 'x.npy'}")
    assert proc.returncode == 2
    assert "<command line>: error: the model has no input 'y'; its inputs are x" in proc.stderr


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a GPU is present")
def test_cuda_missing_is_an_error_unless_fallback_is_asked(run_archc):
    proc = run_archc("run", RESNET18, *SMALL, "--device", "cuda")
    assert proc.returncode == 1
    assert "has no CUDAExecutionProvider" in proc.stderr and "--device cpu" in proc.stderr
    proc = run_archc("run", RESNET18, *SMALL, "--device", "cuda", "--allow-cpu-fallback", check=True)
    assert "falling back to the CPU as asked" in proc.stderr
    assert "CPUExecutionProvider" in proc.stdout


def test_torch_cuda_missing_is_an_error(run_archc):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = run_archc("run", RESNET18, *SMALL, "--runtime", "torch", "--device", "cuda")
    assert proc.returncode == 1
    assert "no usable CUDA device" in proc.stderr


def test_verify_passes_and_reports_errors(run_archc):
    proc = run_archc("verify", RESNET18, *SMALL, "--batch", "2", check=True)
    assert "fc: shape (2, 10)" in proc.stdout and proc.stdout.rstrip().endswith("PASSED")
    assert re.search(r"max abs err [\d.e+-]+ +err/size [\d.e+-]+ +sensitivity [\d.e+-]+ +ok", proc.stdout)
    assert "calibrated on random inputs: 21 layers scaled to unit output variance, 20 batchnorm statistics set" \
        in proc.stdout
    assert re.search(r"block outputs: \d+ compared, all agree", proc.stdout)


def test_verify_exit_code_follows_the_tolerance(run_archc):
    proc = run_archc("verify", RESNET18, *SMALL, "--rtol", "0", "--atol", "0")
    max_abs = float(re.search(r"max abs err ([\d.e+-]+)", proc.stdout).group(1))
    if max_abs > 0:
        assert proc.returncode == 1 and "MISMATCH" in proc.stdout and "FAILED: output 'fc' differs" in proc.stdout
        assert "FAILED: the targets first diverge at block '" in proc.stdout
    else:  # bit-identical on this machine: nothing can exceed a zero tolerance
        assert proc.returncode == 0


def test_compare_reports_max_errors():
    from archc.runtime.verify import compare

    r = compare("y", np.array([1.0, 2.0]), np.array([1.0, 2.5]), rtol=1e-3, atol=1e-5)
    assert (r.max_abs, r.max_rel, r.ok) == (0.5, 0.25, False)
    assert compare("y", np.ones(3), np.ones(3) + 1e-7, 1e-3, 1e-5).ok
    assert not compare("y", np.ones(3), np.ones(4), 1e-3, 1e-5).ok


def test_nan_where_the_reference_has_nan_agrees():
    """sqrt of a negative input is NaN in both runtimes: agreement, as for infinities; a NaN on one
    side only, or at another element, is not. The dependence check reads the finite elements."""
    from archc.runtime.verify import compare, sensitivity

    ref = np.array([1.0, np.nan, np.inf, 4.0])
    assert compare("y", ref, ref.copy(), 1e-3, 1e-5).ok
    assert not compare("y", ref, np.array([1.0, 2.0, np.inf, 4.0]), 1e-3, 1e-5).ok
    assert not compare("y", ref, np.array([np.nan, 1.0, np.inf, 4.0]), 1e-3, 1e-5).ok
    assert sensitivity(np.array([2.0, np.nan, 4.0]), np.array([1.0, 3.0, np.nan])) == 0.5
    assert sensitivity(np.array([np.nan]), np.array([np.nan])) is None


def test_verify_of_a_model_computing_nan_on_some_inputs_passes(run_archc, tmp_path):
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Sqrt", ["x"], ["y"])], "sqrt",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "sqrt.onnx")
    proc = run_archc("verify", str(tmp_path / "sqrt.onnx"))
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr


def test_skip_labels_travel_into_both_targets(run_archc, tmp_path):
    model, py = tmp_path / "m.onnx", tmp_path / "m.py"
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(model), *SMALL, check=True)
    run_archc("build", RESNET18, "--target", "torch", "-o", str(py), *SMALL, check=True)
    docs = {n.name: n.doc_string for n in onnx.load(str(model)).graph.node}
    assert docs["layer1.0.add"].startswith("skip: residual merge")
    assert docs["layer2.0.add"].startswith("skip: residual merge")
    assert sum(1 for d in docs.values() if d.startswith("skip:")) == 8
    lines = py.read_text().splitlines()
    # one comment per merge line of each block class (two classes: with and without a projection)
    marked = [i for i, line in enumerate(lines) if line.strip().startswith("# skip: residual merge")]
    assert len(marked) == 2 and all(lines[i + 1].strip().startswith("add = bn2 + ") for i in marked)
    assert "# skips: residual 8, long_skip 0, dense 0, gated 0" in lines


def test_output_that_is_a_directory(run_archc, tmp_path):
    proc = run_archc("build", RESNET18, "--target", "onnx", "-o", str(tmp_path), *SMALL)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"<command line>: error: -o {tmp_path}: the output is a directory; give a file name"
    assert list(tmp_path.iterdir()) == []


def test_weights_file_that_is_not_a_state_dict(run_archc, tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_text("not a checkpoint")
    proc = run_archc("build", RESNET18, "--target", "onnx", "-o", str(tmp_path / "m.onnx"), "--weights", str(bad),
                     *SMALL)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"{bad}: error: cannot read a PyTorch state_dict: not a torch.save file "
                                   "holding only tensors")
    assert not (tmp_path / "m.onnx").exists()


def test_run_onnx_file_reports_a_missing_input_file(run_archc, tmp_path):
    model = tmp_path / "m.onnx"
    run_archc("build", RESNET18, "--target", "onnx", "-o", str(model), *SMALL, check=True)
    proc = run_archc("run", str(model), "--input", f"x={tmp_path / 'nope.npy'}")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{tmp_path / 'nope.npy'}: error: no such file"


def _gather_model(tmp_path, axis: int) -> str:
    """A constant table of 4 rows and 4 columns gathered by integer ids along ``axis``: an embedding
    (axis 0), or an ONNX Gather archc keeps as it is (axis 1)."""
    from onnx import helper, numpy_helper

    table = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "table")
    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"], name="embed", axis=axis)], "emb",
                              [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [2, 5])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT,
                                                             [2, 5, 4] if axis == 0 else [4, 2, 5])], [table])
    path = tmp_path / f"emb{axis}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_random_ids_an_embedding_reads_stay_below_its_rows(run_archc, tmp_path):
    # found transcribing BERT: token types index a table of 2 rows, and verify drew ids in [0, 10)
    path = _gather_model(tmp_path, 0)
    for command in (["run", path, "--runtime", "torch"], ["verify", path]):
        proc = run_archc(*command)
        assert proc.returncode == 0, proc.stderr


def test_a_model_that_fails_on_its_random_inputs_says_so_without_a_traceback(run_archc, tmp_path):
    """A table of 4 columns gathered by random integer indices in [0, 10): run and verify say the
    PyTorch module fails on the inputs and how to give others; with valid indices both work."""
    path = _gather_model(tmp_path, 1)
    for command in (["run", str(path), "--runtime", "torch"], ["verify", str(path)]):
        proc = run_archc(*command)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "the PyTorch module of 'emb1' fails on these inputs: " in proc.stderr
        assert "integer input 'ids' may index a table or give a shape" in proc.stderr
    ids = tmp_path / "ids.npy"
    np.save(ids, np.random.default_rng(0).integers(0, 4, (2, 5)))
    proc = run_archc("verify", str(path), "--input", f"ids={ids}")
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr  # (the second input
    # for the dependence check shuffles the given indices: still valid ones)



def test_an_onnx_build_says_how_many_parameters_folding_took(run_archc, tmp_path):
    """The ONNX target folds batchnorm into the convs before it (eval mode); the message says how many
    parameters that took, so a round trip's smaller count is no surprise."""
    out = str(tmp_path / "r18.onnx")
    proc = run_archc("build", "specs/resnet18.yaml", "--target", "onnx", "-o", out, check=True)
    assert "optimised for inference: 4,800 parameters folded into the layers before them" in proc.stderr
    proc = run_archc("build", "specs/resnet18.yaml", "--target", "onnx", "-o", out, "--no-optimize", check=True)
    assert "folded" not in proc.stderr


def test_onnxruntime_refusing_random_integer_inputs_asks_for_input_files(run_archc, tmp_path):
    # an index input drawn at random goes out of range: onnxruntime's refusal says how to give real values
    from onnx import helper

    vi = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("ScatterElements", ["x", "idx", "x"], ["y"], "scatter", axis=1)], "m",
                              [vi("x", onnx.TensorProto.FLOAT, [2, 6]), vi("idx", onnx.TensorProto.INT64, [2, 6])],
                              [vi("y", onnx.TensorProto.FLOAT, [2, 6])])
    path = tmp_path / "scatter.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    proc = run_archc("run", str(path), "--runtime", "ort", "--seed", "3")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "onnxruntime cannot run the model" in proc.stderr
    assert "integer input 'idx' may index a table or give a shape: give values the model accepts with " \
           "--input NAME=FILE.npy" in proc.stderr


@pytest.mark.parametrize("kind, expected", [
    ("text", "not a .npy array"),
    ("objects", "an array of Python objects (dtype object), not of numbers"),
    ("npz", "a .npz archive, not a .npy array"),
    ("truncated", "a damaged or truncated .npy file"),
])
def test_run_input_that_is_not_a_npy_array_names_the_option_and_never_pickles(run_archc, tmp_path, kind, expected):
    path = tmp_path / "x.npy"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "objects":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "npz":
        np.savez(tmp_path / "x.npz", x=np.ones(3))
        (tmp_path / "x.npz").rename(path)
    else:
        np.save(path, np.ones((1, 3, 32, 32), np.float32))
        path.write_bytes(path.read_bytes()[:200])
    proc = run_archc("run", RESNET18, *SMALL, "--input", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{path}: error: --input x: {expected} (expected an array written by numpy.save)"
    assert "pickle" not in proc.stderr


@pytest.mark.parametrize("command", ["run", "verify", "summary"])
def test_dim_naming_no_symbolic_dim_of_the_model_is_an_error(run_archc, command):
    proc = run_archc(command, RESNET18, *SMALL, "--dim", "Q=3")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("<command line>: error: --dim Q: the model has no symbolic dim 'Q'; "
                                   "its symbolic dims are N")
    proc = run_archc(command, str(SPECS / "transformer.yaml"), "--dim", "s=3")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("<command line>: error: --dim s: the model has no symbolic dim 's'; "
                                   "its symbolic dims are N, S, T (did you mean 'S'?)")


POSITIONS = """\
params: {vocab: 50, dim: 16}
inputs: {tokens: {shape: [N, S], dtype: int64}}
example_dims: {S: 12}
nodes:
  - {name: wte, op: embedding, num_embeddings: vocab, embedding_dim: dim}
  - {name: wpe, op: position_embedding, max_len: 64}
"""


def test_a_sequence_longer_than_a_position_table_is_refused_before_the_run(run_archc, tmp_path):
    # found walking through the README: --dim S=2000 on a table of 1024 positions failed inside onnxruntime
    # with a broadcast error and a hint about integer inputs, naming no node
    import numpy as np

    spec = tmp_path / "positions.yaml"
    spec.write_text(POSITIONS)
    message = ("<command line>: error: S=65 is more than node 'wpe' (position_embedding) takes along dim 1 of its "
               "input: at most 64 (its table holds max_len=64 positions)")
    for command in ("run", "verify"):
        proc = run_archc(command, str(spec), "--dim", "S=65")
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    np.save(tmp_path / "tokens.npy", np.zeros((1, 65), np.int64))
    proc = run_archc("run", str(spec), "--input", f"tokens={tmp_path / 'tokens.npy'}")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "shape (1, 64, 16)" in run_archc("run", str(spec), "--dim", "S=64", check=True).stdout


def test_scores_of_a_batch_that_is_no_multiple_of_the_windows_are_refused_before_the_run(run_archc, tmp_path):
    # found walking through the spec reference: the shifted-window mask at --batch 1 failed in torch's reshape
    spec = tmp_path / "windows.yaml"
    spec.write_text("inputs: {scores: [N, 3, 49, 49]}\nnodes:\n"
                    "  - {op: shifted_window_mask, feature_size: [14, 14], window_size: 7, shift_size: 3}\n")
    proc = run_archc("verify", str(spec), "--batch", "3")
    assert proc.returncode == 2 and ("<command line>: error: N=3 is not what node 'shifted_window_mask' "
                                     "(shifted_window_mask) takes along dim 0 of its input: a multiple of 4 (the "
                                     "scores of each sample's 4 windows of a 14x14 map)") in proc.stderr, proc.stderr
    assert "PASSED" in run_archc("verify", str(spec), "--batch", "8", check=True).stdout


def test_a_dim_given_beside_input_arrays_must_agree_with_them(run_archc, tmp_path):
    # --dim sizes drawn inputs; beside --input it was ignored, whatever it said
    import numpy as np

    spec = tmp_path / "positions.yaml"
    spec.write_text(POSITIONS)
    np.save(tmp_path / "tokens.npy", np.zeros((1, 7), np.int64))
    given = f"tokens={tmp_path / 'tokens.npy'}"
    proc = run_archc("run", str(spec), "--input", given, "--dim", "S=5")
    assert proc.returncode == 2 and ("<command line>: error: --dim S=5: the --input arrays have S=7 (their sizes "
                                     "are the model's; --dim sizes drawn inputs)") in proc.stderr, proc.stderr
    assert "shape (1, 7, 16)" in run_archc("run", str(spec), "--input", given, "--dim", "S=7", check=True).stdout
