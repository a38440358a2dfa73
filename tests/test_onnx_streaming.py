"""Streamed ONNX writing: inline byte-identical to onnx's serialisation, external data, atomic
pairs, deferred weights, --dtype, --no-weights, and models free of unused initializers."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from archc.errors import UsageError
from archc.frontends.yaml import load_spec
from archc.lowering import onnx_writer
from archc.lowering.onnx import build_onnx, build_onnx_parts
from archc.lowering.onnx_dtype import WeightDtype, store_weights_as
from archc.lowering.onnx_writer import ALIGNMENT, assemble, write_onnx
from archc.ops.weights import DeferredArray, deferred_weights, initial_weights

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SMALL_RESNET = ("resnet18.yaml", {"image_size": 32, "num_classes": 10})
SMALL_TRANSFORMER = ("transformer.yaml", {"d_model": 32, "nhead": 2, "num_encoder_layers": 2,
                                          "num_decoder_layers": 2, "dim_feedforward": 64})


def _graph(spec: tuple[str, dict]):
    return load_spec(str(SPECS / spec[0]), dict(spec[1]), None)


def _run(path: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)


def _feeds(graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    dims = {"N": 2, "batch": 2, "S": 5, "T": 4}
    feeds = {}
    for name in graph.inputs:
        t = graph.node(name).type
        shape = [d if isinstance(d, int) else dims.get(str(d), 3) for d in t.shape]
        feeds[name] = rng.standard_normal(shape).astype(t.dtype)
    return feeds


@pytest.mark.parametrize("spec", [SMALL_RESNET, SMALL_TRANSFORMER], ids=["resnet18", "transformer"])
def test_streamed_model_is_byte_identical_to_onnx_serialisation(spec, tmp_path):
    parts = build_onnx_parts(_graph(spec), seed=3)
    written = write_onnx(parts, str(tmp_path / "m.onnx"), external_data=False)
    assert written.data_path is None
    assert (tmp_path / "m.onnx").read_bytes() == assemble(parts).SerializeToString()
    assert (tmp_path / "m.onnx").read_bytes() == build_onnx(_graph(spec), seed=3).SerializeToString()


def test_deferred_weights_draw_the_seeded_values():
    graph = _graph(SMALL_TRANSFORMER)
    eager, lazy = initial_weights(graph, 5), deferred_weights(graph, 5)
    assert eager.keys() == lazy.keys()
    for node, params in eager.items():
        for name, array in params.items():
            deferred = lazy[node][name]
            assert isinstance(deferred, DeferredArray)
            assert deferred.shape == array.shape and deferred.dtype == array.dtype
            np.testing.assert_array_equal(np.asarray(deferred), array)


def test_external_data_runs_like_the_single_file(tmp_path):
    graph = _graph(SMALL_RESNET)
    parts = build_onnx_parts(graph, seed=1)
    single, split = str(tmp_path / "single.onnx"), str(tmp_path / "split.onnx")
    write_onnx(parts, single, external_data=False)
    written = write_onnx(parts, split, external_data=True)
    assert written.data_path == str(tmp_path / "split.onnx.data")
    onnx.checker.check_model(split)  # by path: the checker follows the external data
    model = onnx.load(split, load_external_data=False)
    external = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external, "large tensors go to the data file"
    for tensor in external:
        info = {e.key: e.value for e in tensor.external_data}
        assert info["location"] == "split.onnx.data"  # relative: the pair can be moved together
        assert int(info["offset"]) % ALIGNMENT == 0
    assert os.path.getsize(split) < 100_000
    feeds = _feeds(graph)
    for a, b in zip(_run(single, feeds), _run(split, feeds)):
        np.testing.assert_array_equal(a, b)


def test_models_over_the_protobuf_limit_get_external_data(tmp_path, monkeypatch):
    parts = build_onnx_parts(_graph(SMALL_RESNET))
    monkeypatch.setattr(onnx_writer, "INLINE_LIMIT", onnx_writer.serialized_size(parts) - 1)
    written = write_onnx(parts, str(tmp_path / "big.onnx"))
    assert written.data_path and os.path.exists(written.data_path)
    onnx.checker.check_model(str(tmp_path / "big.onnx"))


class _Failing:
    """A source that fails when drawn, as a full disk or an interrupt would mid-write."""

    shape, dtype = (4096,), np.dtype("float32")

    def __array__(self, dtype=None, copy=None):
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("external", [False, True])
def test_a_failed_write_leaves_neither_file_and_keeps_old_ones(tmp_path, external):
    parts = build_onnx_parts(_graph(SMALL_RESNET))
    parts.initializers.append(("failing", _Failing()))
    (tmp_path / "m.onnx").write_bytes(b"old model")
    with pytest.raises(UsageError, match=r"m\.onnx(\.data)?: error: cannot write the output: no space left on device"):
        write_onnx(parts, str(tmp_path / "m.onnx"), external_data=external)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]
    assert (tmp_path / "m.onnx").read_bytes() == b"old model"


def test_build_external_data_through_the_cli(run_archc, tmp_path):
    out = tmp_path / "r.onnx"
    proc = run_archc("build", str(SPECS / "resnet18.yaml"), "--set", "image_size=32", "--target", "onnx",
                     "-o", str(out), "--external-data", check=True)
    assert "weights in" in proc.stderr and "r.onnx.data" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["r.onnx", "r.onnx.data"]
    onnx.checker.check_model(str(out))
    run = run_archc("run", str(out), "--runtime", "ort", check=True)
    assert "fc: shape (1, 1000)" in run.stdout
    # lint and summary read the structure only: they work without the data file
    os.rename(tmp_path / "r.onnx.data", tmp_path / "moved")
    assert "residual" in run_archc("lint", str(out), check=True).stdout
    assert "11,684,712" in run_archc("summary", str(out), check=True).stdout


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_stores_narrow_weights_and_stays_close(dtype, tmp_path):
    graph = _graph(SMALL_TRANSFORMER)
    parts = build_onnx_parts(graph, seed=2)
    narrow = store_weights_as(parts, WeightDtype(dtype))
    wide_path, narrow_path = str(tmp_path / "f32.onnx"), str(tmp_path / f"{dtype}.onnx")
    wide_written = write_onnx(parts, wide_path)
    narrow_written = write_onnx(narrow, narrow_path)
    onnx.checker.check_model(narrow_path, full_check=True)
    stored = {t.name: t.data_type for t in onnx.load(narrow_path).graph.initializer}
    expected = onnx.helper.np_dtype_to_tensor_dtype(WeightDtype(dtype).numpy)
    assert all(stored[name] == expected for name in parts.parameters if name in stored)
    assert narrow_written.weight_bytes < 0.55 * wide_written.weight_bytes
    feeds = _feeds(graph)
    rtol, atol = WeightDtype(dtype).tolerances(1e-3, 1e-5)
    for a, b in zip(_run(wide_path, feeds), _run(narrow_path, feeds)):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
        assert not np.array_equal(a, b)  # the weights really were rounded


def test_dtype_tolerances_scale_with_the_epsilon():
    assert WeightDtype.float32.tolerances(1e-3, 1e-5) == (1e-3, 1e-5)
    assert WeightDtype.float16.tolerances(1e-3, 1e-5) == (8 * 2 ** -10, 2 ** -10)
    assert WeightDtype.bfloat16.tolerances(1e-3, 1e-5) == (8 * 2 ** -7, 2 ** -7)
    assert WeightDtype.bfloat16.tolerances(0.5, 0.5) == (0.5, 0.5)  # never tighter than asked


def test_state_dict_dtype(run_archc, tmp_path):
    torch = pytest.importorskip("torch")
    proc = run_archc("build", str(SPECS / "resnet18.yaml"), "--set", "image_size=32", "--target", "torch",
                     "-o", str(tmp_path / "m.py"), "--state-dict", str(tmp_path / "m.pt"), "--dtype", "bfloat16",
                     check=True)
    assert "as bfloat16 (the module computes in float32 unless converted)" in proc.stderr
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["conv1.weight"].dtype == torch.bfloat16
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    # the README's recipe for computing in the stored type: built on meta, loaded with assign=True
    import importlib.util

    spec = importlib.util.spec_from_file_location("m", tmp_path / "m.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    with torch.device("meta"):
        model = generated.Resnet18()
    model.load_state_dict(state, assign=True)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.eval()(torch.randn(1, 3, 32, 32, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_onnx_dtype_build_says_it_computes_in_float32(run_archc, tmp_path):
    proc = run_archc("build", str(SPECS / "resnet18.yaml"), "--set", "image_size=32", "-o", str(tmp_path / "m.onnx"),
                     "--dtype", "float16", check=True)
    assert "stored as float16 (Cast to float32 in the graph: computed in float32)" in proc.stderr


def test_no_weights_makes_parameters_inputs(run_archc, tmp_path):
    out = tmp_path / "s.onnx"
    run_archc("build", str(SPECS / "vit_b16.yaml"), "--target", "onnx", "-o", str(out), "--no-weights", check=True)
    assert os.path.getsize(out) < 1_000_000  # ViT-B/16 has 346 MB of weights
    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out))
    inputs = {i.name for i in model.graph.input}
    assert "heads.head.weight" in inputs
    assert not any(t.name in inputs for t in model.graph.initializer)


@pytest.mark.parametrize("args, message", [
    (["--target", "torch", "--external-data"], "--external-data applies to --target onnx"),
    (["--target", "torch", "--no-weights", "--state-dict", "x.pt"], "--no-weights writes no weights"),
    (["--target", "onnx", "--no-weights", "--dtype", "float16"], "--dtype applies to weights"),
    (["--target", "torch", "--dtype", "float16"], "applies to the --state-dict file"),
    (["--target", "onnx", "--dtype", "float64"], "invalid choice: 'float64'"),
])
def test_bad_scale_options_are_refused(run_archc, tmp_path, args, message):
    proc = run_archc("build", str(SPECS / "resnet18.yaml"), "-o", str(tmp_path / "out"), *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert os.listdir(tmp_path) == []


SHIPPED = sorted(p.name for p in SPECS.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_initializer_is_read(name):
    """No dead constants or unused initializers in any shipped spec's ONNX (weights deferred,
    so nothing is drawn)."""
    parts = build_onnx_parts(load_spec(str(SPECS / name), {}, None))
    read = {i for n in parts.model.graph.node for i in n.input} | {o.name for o in parts.model.graph.output}
    unused = [name for name, _ in parts.initializers if name not in read]
    assert unused == []


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_onnxruntime_loads_every_shipped_spec_without_warnings(name, tmp_path, capfd):
    path = str(tmp_path / "m.onnx")
    write_onnx(build_onnx_parts(load_spec(str(SPECS / name), {}, None)), path)
    options = ort.SessionOptions()
    options.log_severity_level = 2  # warnings and above (level 1 adds the optimiser's own notes)
    capfd.readouterr()
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    logged = capfd.readouterr().err
    assert "[W:" not in logged and "[E:" not in logged, logged


def test_verify_with_a_narrow_dtype_scales_its_tolerances(run_archc):
    proc = run_archc("verify", str(SPECS / "resnet18.yaml"), "--set", "image_size=32", "--dtype", "bfloat16",
                     check=True)
    assert "rtol 0.0625, atol 0.0078125, ONNX weights stored in bfloat16 (computed in float32)" in proc.stdout
    assert "PASSED" in proc.stdout


def test_the_warning_check_sees_an_unused_initializer(capfd):
    """The check above is real: onnxruntime warns at level 2 about a model that has one."""
    from onnx import helper, numpy_helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(np.zeros(2, np.float32), "unused")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.log_severity_level = 2
    capfd.readouterr()
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    assert "[W:" in capfd.readouterr().err


def test_bench_tool_writes_its_report(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "B.md"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "--sections", "lint", "--repeat", "1",
                           "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "onnxruntime" in text and "## lint" in text and "Growth exponent" in text
