"""Models written in the tests (tests/onnx_models.py), exported by both torch.onnx exporters
(TorchScript, dynamo=False; and the default dynamo=True), brought back by archc:

* ``build --target torch`` (here ``archc.from_onnx``) reproduces onnxruntime's outputs on the file;
* the generated module's state_dict holds the file's initializers bit for bit;
* ``archc spec`` writes a spec that rebuilds the model, and with ``--weights-out`` the same outputs,
  the weights again bit-identical after the round trip;
* a ResNet-50 comes back as one bottleneck block repeated 3, 4, 6, 3.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

import onnx_models as M  # noqa: E402
from weights_helpers import randomized  # noqa: E402

import archc  # noqa: E402
from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.frontends.yaml import loads_spec  # noqa: E402
from archc.lowering.onnx import to_onnx  # noqa: E402
from archc.lowering.spec_yaml import dump_spec, to_spec  # noqa: E402

#: name -> (module factory, input shape)
MODELS = {
    "resnet": (lambda: M.ResNet((2, 1, 1, 1), width=4, num_classes=5), (2, 3, 32, 32)),
    "unet": (lambda: M.UNet(), (2, 3, 16, 16)),
    "transformer_post_norm": (lambda: M.TransformerEncoder(pre_norm=False), (2, 5, 8)),
    "transformer_pre_norm": (lambda: M.TransformerEncoder(pre_norm=True), (2, 5, 8)),
    "lstm": (lambda: M.LSTMEncoder(), (2, 7, 6)),
    "segnet": (lambda: M.SegNet(), (2, 3, 16, 16)),
    "mlp_gelu": (lambda: M.MLP(), (2, 10)),
    "mlp_gelu_tanh": (lambda: M.MLP(approximate="tanh"), (2, 10)),
}
CASES = [(name, dynamo) for name in MODELS for dynamo in (False, True)]


def export(module: torch.nn.Module, shape, path: str, dynamo: bool) -> str:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), path, dynamo=dynamo, input_names=["x"])
    return path


class _Exported(dict):
    """(name, dynamo) -> path of the exported model; a model the exporter cannot export (torch 2.13's
    TorchScript exporter and MaxUnpool2d) skips the tests that read it, with the exporter's message."""

    def __missing__(self, key):
        pytest.skip(f"torch.onnx ({'dynamo' if key[1] else 'TorchScript'} exporter) cannot export {key[0]}: "
                    f"{self.failures[key]}")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(name, dynamo) -> path of the exported model, made once for the module's tests."""
    root = tmp_path_factory.mktemp("onnx_models")
    torch.manual_seed(0)
    paths = _Exported()
    paths.failures = {}
    for name, dynamo in CASES:
        try:
            paths[(name, dynamo)] = export(randomized(MODELS[name][0]()), MODELS[name][1],
                                           str(root / f"{name}_{'dynamo' if dynamo else 'ts'}.onnx"), dynamo)
        except Exception as exc:  # noqa: BLE001 - the exporter's own failure, reported by the skip
            if dynamo:
                raise
            paths.failures[(name, dynamo)] = str(exc).splitlines()[0]
    return paths


def _feeds(path: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {i.name: rng.standard_normal([d if isinstance(d, int) else 2 for d in i.shape]).astype(np.float32)
            for i in ort.InferenceSession(path).get_inputs()}


def _initializers(path: str) -> list[np.ndarray]:
    return [numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer
            if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) > 1]


def _assert_bit_identical(initializers: list[np.ndarray], state: dict[str, np.ndarray]) -> None:
    """Every float initializer is in the state_dict with the same bytes (a MatMul weight may be
    transposed: the linear layer's layout; an ONNX LSTM/GRU weight is nn.LSTM's/nn.GRU's per
    direction with its gate blocks reordered, its B the input then the hidden bias; their all-zero
    initial states are the native op's implicit ones)."""
    held = {}
    for arr in state.values():
        held.setdefault(arr.tobytes(), arr)
        if arr.ndim == 2:
            held.setdefault(np.ascontiguousarray(arr.T).tobytes(), arr)
        for gates in (3, 4):
            if arr.ndim and arr.shape[0] % gates == 0:
                blocks = np.split(arr, gates)
                for order in itertools.permutations(range(gates)):
                    held.setdefault(np.concatenate([blocks[i] for i in order]).tobytes(), arr)

    def present(arr: np.ndarray) -> bool:
        return np.ascontiguousarray(arr).tobytes() in held

    def per_direction(arr: np.ndarray) -> bool:
        return arr.ndim >= 2 and arr.shape[0] <= 2 and all(
            present(a) or (a.ndim == 1 and all(present(half) for half in np.split(a, 2))) for a in arr)

    for arr in initializers:
        assert present(arr) or per_direction(arr) or not np.any(arr), f"initializer of shape {arr.shape} changed"


@pytest.mark.parametrize("name,dynamo", CASES)
def test_torch_build_reproduces_onnxruntime_with_the_files_weights(exported, name, dynamo):
    path = exported[(name, dynamo)]
    feeds = _feeds(path)
    expected = ort.InferenceSession(path).run(None, feeds)
    module = archc.from_onnx(path)
    with torch.no_grad():
        got = module(*[torch.from_numpy(v) for v in feeds.values()])
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=1e-5)
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    _assert_bit_identical(_initializers(path), state)


@pytest.mark.parametrize("name,dynamo", CASES)
def test_spec_round_trip_rebuilds_the_model_with_its_weights(exported, name, dynamo):
    path = exported[(name, dynamo)]
    graph = load_onnx(path)
    spec, rename = to_spec(graph)
    rebuilt = loads_spec(dump_spec(spec, path), "model.yaml")
    assert len(rebuilt) == len(graph)
    assert sorted(n.op for n in rebuilt.nodes()) == sorted(n.op for n in graph.nodes())
    rebuilt.weights = {rename[node]: params for node, params in graph.weights.items()}
    model = to_onnx(rebuilt)
    feeds = _feeds(path)
    expected = ort.InferenceSession(path).run(None, feeds)
    session = ort.InferenceSession(model.SerializeToString())
    got = session.run(None, dict(zip([i.name for i in session.get_inputs()], feeds.values())))
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    _assert_bit_identical(_initializers(path), {f"{n}.{p}": a for n, ps in rebuilt.weights.items()
                                                for p, a in ps.items()})


def test_cli_spec_then_build_reproduces_the_original(exported, run_archc, tmp_path):
    path = exported[("resnet", True)]
    spec, weights, out = tmp_path / "model.yaml", tmp_path / "model.pt", tmp_path / "again.onnx"
    result = run_archc("spec", path, "-o", str(spec), "--weights-out", str(weights), check=True)
    assert "block" in result.stderr
    run_archc("build", str(spec), "--target", "onnx", "--weights", str(weights), "-o", str(out), check=True)
    feeds = _feeds(path)
    expected = ort.InferenceSession(path).run(None, feeds)
    got = ort.InferenceSession(str(out)).run(None, dict(zip(["x"], feeds.values())))
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-5)
    state = {k: v.numpy() for k, v in torch.load(weights).items()}
    _assert_bit_identical(_initializers(path), state)


def test_cli_build_and_verify_keep_the_models_weights(exported, run_archc, tmp_path):
    path = exported[("transformer_pre_norm", True)]
    result = run_archc("verify", path, "--rtol", "1e-4", check=True)
    assert "onnxruntime on" in result.stdout and "PASSED" in result.stdout
    py, pt, again = tmp_path / "m.py", tmp_path / "m.pt", tmp_path / "m.onnx"
    run_archc("build", path, "--target", "torch", "-o", str(py), "--state-dict", str(pt), check=True)
    _assert_bit_identical(_initializers(path), {k: v.numpy() for k, v in torch.load(pt).items()})
    run_archc("build", path, "--target", "onnx", "-o", str(again), check=True)
    rebuilt = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(again)).graph.initializer}
    _assert_bit_identical(_initializers(path), rebuilt)


@pytest.mark.parametrize("option", [["--seed", "3"], ["--set", "width=3"], ["--profile", "small"]])
def test_spec_only_options_on_an_onnx_model_say_why(exported, run_archc, tmp_path, option):
    out = tmp_path / "m.onnx"
    result = run_archc("build", exported[("mlp_gelu", False)], "--target", "onnx", "-o", str(out), *option)
    assert result.returncode == 2 and not out.exists()
    assert f"<command line>: error: {option[0]} applies to YAML specs only" in result.stderr


@pytest.mark.parametrize("option", [["--set", "width=3"], ["--profile", "small"]])
def test_run_on_an_onnx_model_refuses_spec_options_as_every_command_does(exported, run_archc, option):
    # run's onnxruntime path read the file itself, and took --profile without a word
    result = run_archc("run", exported[("mlp_gelu", False)], *option)
    assert result.returncode == 2 and f"<command line>: error: {option[0]} applies to YAML specs only" in result.stderr
    missing = run_archc("run", "missing.onnx")
    assert missing.returncode == 2 and "<command line>: error: no such file: 'missing.onnx'" in missing.stderr


def test_spec_command_wants_an_onnx_model(run_archc, tmp_path, spec_file):
    result = run_archc("spec", spec_file("name: m\ninputs: {x: [1, 2]}\nnodes: [{op: relu}]\n"),
                       "-o", str(tmp_path / "out.yaml"))
    assert result.returncode == 2 and "archc spec reads an ONNX model" in result.stderr
    assert not (tmp_path / "out.yaml").exists()


def _resnet50_spec(tmp_path, width: int) -> dict:
    path = export(M.ResNet(width=width, num_classes=10).eval(), (1, 3, 32, 32), str(tmp_path / "r50.onnx"),
                  dynamo=False)
    spec, _ = to_spec(load_onnx(path))
    text = dump_spec(spec, path)
    assert len(text.splitlines()) < 60
    loads_spec(text)  # it builds
    return spec


def _assert_bottleneck_stages(spec: dict) -> None:
    assert len(spec["blocks"]) == 1
    (block,) = spec["blocks"]
    stages = [n for n in spec["nodes"] if n.get("block") == block]
    assert [(n["name"], n["repeat"]) for n in stages] == [("layer1", 3), ("layer2", 4), ("layer3", 6),
                                                            ("layer4", 3)]
    flag = next(k for k, v in spec["blocks"][block]["params"].items() if v is False)
    for stage in stages:  # the first of each stage has its projection shortcut, the others not
        assert stage[flag] is False and stage["overrides"][0][flag] is True
    assert [n for n in spec["blocks"][block]["nodes"] if n.get("if") == flag][0]["in"] == "x"


def test_resnet50_comes_back_as_bottlenecks_repeated_3_4_6_3(tmp_path):
    _assert_bottleneck_stages(_resnet50_spec(tmp_path, width=8))


@pytest.mark.slow
def test_full_width_resnet50_comes_back_as_bottlenecks_repeated_3_4_6_3(tmp_path):
    _assert_bottleneck_stages(_resnet50_spec(tmp_path, width=64))


def test_cli_run_a_model_on_torch_matches_onnxruntime(exported, run_archc, tmp_path):
    path = exported[("lstm", True)]
    for runtime in ("torch", "ort"):
        run_archc("run", path, "--runtime", runtime, "--save", str(tmp_path / runtime), check=True)
    (name,) = [p.name for p in (tmp_path / "ort").iterdir()]
    np.testing.assert_allclose(np.load(tmp_path / "torch" / name), np.load(tmp_path / "ort" / name),
                               rtol=1e-4, atol=1e-6)


class _TwoInputs(torch.nn.Module):
    """fc(tanh(b)) + a: the first node reads the second input."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, a, b):
        return self.fc(torch.tanh(b)) + a


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_spec_round_trip_keeps_which_input_the_first_node_reads(tmp_path, dynamo):
    # found by a user: the spec left out `in: b` on the first node, which then read `a` (a silent
    # wrong result: a spec's first node reads its first input by default)
    path = str(tmp_path / "two.onnx")
    torch.manual_seed(0)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(_TwoInputs().eval(), (torch.randn(2, 8), torch.randn(2, 8)), path, dynamo=dynamo,
                          input_names=["a", "b"])
    graph = load_onnx(path)
    spec, rename = to_spec(graph)
    rebuilt = loads_spec(dump_spec(spec, path), "model.yaml")
    (tanh,) = [n for n in rebuilt.nodes() if n.op == "tanh"]
    assert tanh.inputs[0].node == "b"
    rebuilt.weights = {rename[node]: params for node, params in graph.weights.items()}
    session = ort.InferenceSession(to_onnx(rebuilt).SerializeToString())
    feeds = {"a": np.random.default_rng(0).standard_normal((2, 8), dtype=np.float32),
             "b": np.random.default_rng(1).standard_normal((2, 8), dtype=np.float32)}
    np.testing.assert_allclose(session.run(None, feeds)[0], ort.InferenceSession(path).run(None, feeds)[0],
                               rtol=1e-5, atol=1e-6)
