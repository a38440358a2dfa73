"""Every command over ONNX files archc never saw: the models onnx ships as its backend test data.

``pytorch-converted`` and ``pytorch-operator`` (early torch.onnx exports, opset 6, IR version 3) and
``simple`` come with inputs and the outputs their authors computed; ``light`` holds Caffe2-era
architectures (AlexNet, DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19,
ZFNet-512) with constant weights and one output. Each model either works through every command, or
gets a clean error naming the node and the op, as listed in :data:`UNSUPPORTED`:

* ``build --target torch`` with ``--state-dict``: the generated file, loaded with its weights,
  reproduces the reference outputs on the reference inputs;
* ``lint``, ``summary``, ``graph -o x.dot`` succeed;
* (slow) ``spec`` and ``build SPEC --target onnx --weights``: the rebuilt model reproduces them too;
  ``verify`` passes or says why; ``run`` and ``report`` succeed; the ``light`` models go through all of it
  (``verify --random-weights`` passing where their constant weights make the output constant).

The commands run in-process through :func:`archc.cli.main` (the entry point's own argument parsing
and error printing), skipped where the onnx package has no backend data.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

torch = pytest.importorskip("torch")

from archc.cli import main  # noqa: E402

DATA = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data"
FOLDERS = ("pytorch-converted", "pytorch-operator", "simple")


def _cases(folders) -> list[tuple[str, Path]]:
    """(id, model path) of each model with reference data in these folders."""
    return [(f"{folder}/{d.name}", d / "model.onnx") for folder in folders
            for d in sorted((DATA / folder).glob("*")) if (d / "model.onnx").exists()]


CASES = _cases(FOLDERS)
LIGHT = sorted((DATA / "light").glob("*.onnx"))

#: models archc cannot build to PyTorch, by id pattern -> (the commands that fail, the message they give)
UNSUPPORTED: dict[str, tuple[frozenset[str], str]] = {
    r"simple/test_sequence_model\d": (
        frozenset({"build", "lint", "summary", "graph", "spec"}),
        r"error: node '\w+ -> \w+': output 0 \('\w+'\) of ONNX (SequenceEmpty|SequenceConstruct|SplitToSequence) "
        r"is a sequence: archc imports models of tensors only"),
    r"simple/test_strnorm_\w+": (
        frozenset({"build", "spec"}),
        r"error: (node 'StringNormalizer': imported ONNX op 'StringNormalizer' cannot be written as PyTorch: "
        r"archc has no PyTorch lowering for this ONNX op|input 'x' has element type string; a spec's inputs are)"),
    r"simple/test_gradient_of_\w+": (
        frozenset({"build"}),
        r"error: node 'my_gradient': imported ONNX 'ai.onnx.preview.training' op 'Gradient' cannot be written as "
        r"PyTorch: custom domain"),
}


#: models whose output barely depends on random N(0, 1) inputs: verify says so and fails, rightly
#: (Shrink with lambd 1.5 maps nearly all of them to 0)
INSENSITIVE = {"simple/test_shrink"}


def _unsupported(case: str, command: str) -> str | None:
    """The message a command must give on this model, or None where it must work."""
    for pattern, (commands, message) in UNSUPPORTED.items():
        if re.fullmatch(pattern, case) and command in commands:
            return message
    return None


def archc(*argv: str) -> tuple[int, str]:
    """Run one command in-process; its exit code and what it printed (stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue() + err.getvalue()


def _tensor(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def reference(model: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first test data set's inputs and outputs."""
    folder = model.parent / "test_data_set_0"
    return ([_tensor(p) for p in sorted(folder.glob("input_*.pb"))],
            [_tensor(p) for p in sorted(folder.glob("output_*.pb"))])


def load_generated(py: Path, pt: Path) -> torch.nn.Module:
    """The model class of a generated PyTorch file (the last module class it defines), with its weights."""
    spec = importlib.util.spec_from_file_location(f"generated_{py.stem}", py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__]
    model = classes[-1]().eval()
    model.load_state_dict(torch.load(pt, weights_only=True))
    return model


def assert_outputs(got, expected: list[np.ndarray]) -> None:
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        g = g.detach().numpy() if hasattr(g, "detach") else np.asarray(g)
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5, equal_nan=True)


def check_unsupported(case: str, command: str, argv: list, outputs: list[Path]) -> bool:
    """Where the command must fail on this model: it does, with the message, no traceback, no file."""
    message = _unsupported(case, command)
    if message is None:
        return False
    code, text = archc(*argv)
    assert code == 2 and re.search(message, text), text
    assert not any(p.exists() for p in outputs)
    return True


needs_data = pytest.mark.skipif(not CASES, reason="the onnx package here has no backend test data")


@needs_data
@pytest.mark.parametrize("case,model", CASES, ids=[c for c, _ in CASES])
def test_build_torch_reproduces_the_reference_outputs(case, model, tmp_path):
    py, pt = tmp_path / "m.py", tmp_path / "m.pt"
    argv = ["build", model, "--target", "torch", "-o", py, "--state-dict", pt]
    if check_unsupported(case, "build", argv, [py, pt]):
        return
    code, text = archc(*argv)
    assert code == 0, text
    inputs, outputs = reference(model)
    with torch.no_grad():
        got = load_generated(py, pt)(*[torch.from_numpy(np.array(x)) for x in inputs])
    assert_outputs(got, outputs)


@needs_data
@pytest.mark.parametrize("case,model", CASES, ids=[c for c, _ in CASES])
def test_lint_summary_graph(case, model, tmp_path):
    dot = tmp_path / "m.dot"
    for command, argv, outputs in (("lint", ["lint", model], []), ("summary", ["summary", model], []),
                                   ("graph", ["graph", model, "-o", dot], [dot])):
        if check_unsupported(case, command, argv, outputs):
            continue
        code, text = archc(*argv)
        assert code == 0, f"{command}: {text}"
    if not _unsupported(case, "graph"):
        assert dot.read_text().startswith("digraph")


def spec_and_rebuild(case: str, model: Path, tmp_path: Path) -> Path | None:
    """``archc spec`` and ``archc build SPEC --target onnx --weights``: the rebuilt model's path."""
    import onnxruntime as ort  # noqa: F401 - the caller runs it

    yaml, weights, again = tmp_path / "m.yaml", tmp_path / "w.pt", tmp_path / "again.onnx"
    argv = ["spec", model, "-o", yaml, "--weights-out", weights]
    if check_unsupported(case, "spec", argv, [yaml, weights]):
        return None
    code, text = archc(*argv)
    assert code == 0, text
    code, text = archc("build", yaml, "--target", "onnx", "--weights", weights, "-o", again)
    assert code == 0, text
    return again


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("case,model", CASES, ids=[c for c, _ in CASES])
def test_spec_rebuilds_the_model_and_verify_run_report_work(case, model, tmp_path):
    import onnxruntime as ort

    again = spec_and_rebuild(case, model, tmp_path)
    if again is not None and not _unsupported(case, "build"):  # (onnxruntime lacks those ops too)
        inputs, outputs = reference(model)
        session = ort.InferenceSession(str(again), providers=["CPUExecutionProvider"])
        assert_outputs(session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs)}), outputs)
    if _unsupported(case, "build"):
        return
    code, text = archc("verify", model)
    if case in INSENSITIVE:
        assert code == 1 and "barely depends on the input" in text and "MISMATCH" not in text, text
    else:  # integer inputs drawn at random may not index the model's table or give a shape it accepts
        assert code == 0 or "fails on these inputs" in text or "onnxruntime cannot run the model" in text, text
    assert "Traceback" not in text
    code, text = archc("run", model, "--runtime", "torch")
    assert code == 0 or "fails on these inputs" in text, text
    code, text = archc("report", model, "-o", tmp_path / "r.html")
    assert code == 0, text


@pytest.mark.slow
@pytest.mark.skipif(not LIGHT, reason="the onnx package here has no backend test data")
@pytest.mark.parametrize("model", LIGHT, ids=[p.stem for p in LIGHT])
def test_light_architectures_through_every_command(model, tmp_path):
    """Real architectures with constant weights: the PyTorch build and the rebuilt spec give the
    stored output; lint, summary, graph, report work; verify says the output does not depend on the
    input (the weights make it constant), and that both runtimes agree on it; with --random-weights
    it passes."""
    import onnxruntime as ort

    expected = [_tensor(model.with_name(model.stem + "_output_0.pb"))]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(session.get_inputs()[0].shape).astype(np.float32)
    py, pt = tmp_path / "m.py", tmp_path / "m.pt"
    code, text = archc("build", model, "--target", "torch", "-o", py, "--state-dict", pt)
    assert code == 0, text
    with torch.no_grad():
        assert_outputs(load_generated(py, pt)(torch.from_numpy(x)), expected)
    for argv in (["lint", model], ["summary", model], ["graph", model, "-o", tmp_path / "m.dot"],
                 ["report", model, "-o", tmp_path / "m.html"], ["run", model, "--runtime", "torch"]):
        code, text = archc(*argv)
        assert code == 0, f"{argv[0]}: {text}"
    code, text = archc("verify", model)
    assert code == 1 and "ok (" in text and "barely depends on the input" in text, text
    code, text = archc("verify", model, "--random-weights")
    assert code == 0 and "PASSED" in text, text
    again = spec_and_rebuild("light/" + model.stem, model, tmp_path)
    rebuilt = ort.InferenceSession(str(again), providers=["CPUExecutionProvider"])
    assert_outputs(rebuilt.run(None, {rebuilt.get_inputs()[0].name: x}), expected)


def test_the_unsupported_table_names_models_that_exist():
    """Each pattern of UNSUPPORTED matches a model (the table stays true as onnx's data changes)."""
    if not CASES:
        pytest.skip("the onnx package here has no backend test data")
    for pattern in UNSUPPORTED:
        assert any(re.fullmatch(pattern, case) for case, _ in CASES), pattern


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
