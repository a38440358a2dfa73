"""ONNX models with local functions (``torch.onnx.export(..., export_modules_as_functions=True)``,
or written by hand with ``onnx.helper.make_function``): every command sees the functions' nodes,
inlined at each call, as in the same model exported without them. Found on a user's export: lint
saw one opaque node ("residual 0") and ``build -o .onnx`` wrote a file without the function
bodies that onnxruntime refused."""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
nn = torch.nn

import archc  # noqa: E402


class ResCat(nn.Module):
    """A residual beside a 1x1 branch, concatenated: one residual, one branch join."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1), nn.Conv2d(8, 6, 1)

    def forward(self, x):
        return self.c(torch.cat([x + torch.relu(self.a(x)), self.b(x)], 1))


def _export(path, functions: bool) -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ResCat().eval(), (torch.randn(2, 4, 8, 8),), str(path), dynamo=False, opset_version=17,
                          export_modules_as_functions=functions)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("functions")
    _export(tmp / "functions.onnx", True)
    _export(tmp / "plain.onnx", False)
    assert len(onnx.load(str(tmp / "functions.onnx")).functions) > 0
    return tmp


def _lint(run_archc, path) -> dict:
    return json.loads(run_archc("lint", str(path), "--format", "json", check=True).stdout)


def test_lint_and_summary_see_the_functions_nodes(run_archc, exports):
    with_functions, plain = _lint(run_archc, exports / "functions.onnx"), _lint(run_archc, exports / "plain.onnx")
    assert with_functions["summary"] == plain["summary"] and with_functions["summary"]["residual"] == 1
    assert with_functions["paths"]["total"] == plain["paths"]["total"] == 3
    summary = run_archc("summary", str(exports / "functions.onnx"), check=True).stdout
    assert "onnx_node" not in summary and summary.count(" conv ") == 3


def test_builds_of_a_model_with_functions_compute_what_it_computes(run_archc, exports, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32)
    source = str(exports / "functions.onnx")
    (expected,) = ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, {"input.1": x})
    run_archc("build", source, "-o", str(tmp_path / "out.onnx"), check=True)
    session = ort.InferenceSession(str(tmp_path / "out.onnx"), providers=["CPUExecutionProvider"])
    (rebuilt,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        module = archc.from_onnx(source)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(module, expected, rtol=1e-5, atol=1e-6)
    assert "PASSED" in run_archc("verify", source, check=True).stdout


def test_a_hand_written_function_called_twice_is_inlined_at_each_call(tmp_path):
    scale = helper.make_function(
        "local", "ScaledTanh", ["x", "s"], ["y"],
        [helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Mul", ["t", "s"], ["y"])],
        [helper.make_opsetid("", 17)])
    w = numpy_helper.from_array(np.full((1, 3), 0.5, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ScaledTanh", ["x", "w"], ["h"], domain="local"),
         helper.make_node("ScaledTanh", ["h", "w"], ["y"], domain="local")],
        "twice", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])], initializer=[w])
    model = helper.make_model(graph, functions=[scale], opset_imports=[helper.make_opsetid("", 17),
                                                                       helper.make_opsetid("local", 1)])
    path = tmp_path / "twice.onnx"
    onnx.save(model, str(path))
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    with torch.no_grad():
        got = archc.from_onnx(str(path))(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.tanh(np.tanh(x) * 0.5) * 0.5, rtol=1e-6)


def test_local_functions_that_expand_beyond_bounds_are_refused_before_inlining(tmp_path, run_archc):
    # an adversarial review: 30 functions each calling the one before twice (1.5 KB) made lint inline 2^30
    # nodes (110 s, 7.8 GB); the expansion is counted first, without inlining
    floats = onnx.TensorProto.FLOAT
    functions = [helper.make_function("local", "f0", ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"])],
                                      [helper.make_opsetid("", 17)])]
    for k in range(1, 30):
        functions.append(helper.make_function(
            "local", f"f{k}", ["x"], ["y"],
            [helper.make_node(f"f{k - 1}", ["x"], ["h"], domain="local"),
             helper.make_node(f"f{k - 1}", ["h"], ["y"], domain="local")],
            [helper.make_opsetid("", 17), helper.make_opsetid("local", 1)]))
    graph = helper.make_graph([helper.make_node("f29", ["x"], ["y"], domain="local")], "bomb",
                              [helper.make_tensor_value_info("x", floats, [2])],
                              [helper.make_tensor_value_info("y", floats, [2])])
    model = helper.make_model(graph, functions=functions,
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    path = tmp_path / "bomb.onnx"
    onnx.save(model, str(path))
    result = run_archc("lint", str(path))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"{path}: error: the model's local functions expand to 536,870,912 nodes once inlined, over the limit "
        "of 1,048,576 (raise it with ARCHC_MAX_INLINED_NODES=N)"), result.stderr
