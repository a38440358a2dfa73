"""Cases found by running every command over ONNX files archc did not write (onnx's backend test
data, see test_onnx_backend_data.py), each reduced to a hand-built model: old opsets (IR version 3,
opset 6: Caffe2 and early torch.onnx exports) upgraded by onnx's version converter and computing what
the old operator definitions say; weights made by ConstantOfShape written back as a spec; inputs a
spec cannot have; and archc's own ONNX of shipped transformers brought back as a module and a spec."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

torch = pytest.importorskip("torch")

import archc  # noqa: E402
from archc.errors import SpecError  # noqa: E402
from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.frontends.yaml import loads_spec  # noqa: E402
from archc.ir import Value  # noqa: E402
from conftest import SPECS  # noqa: E402
from small_specs import set_args  # noqa: E402


def _old_model(nodes, inputs, outputs, inits=(), opset=6, ir_version=3):
    graph = helper.make_graph(nodes, "old", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)


def _run(model: onnx.ModelProto, tmp_path, *inputs: np.ndarray) -> list[np.ndarray]:
    path = str(tmp_path / "old.onnx")
    onnx.save(model, path)
    module = archc.from_onnx(path)
    with torch.no_grad():
        got = module(*[torch.from_numpy(x) for x in inputs])
    return [g.numpy() for g in (got if isinstance(got, (tuple, list)) else [got])]


def _vi(name, shape, dtype=onnx.TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_opset6_pad_attributes_become_inputs_of_a_valid_model(tmp_path):
    """The converter turns Pad's ``pads`` attribute into an initializer that IR 3 would require
    to be a graph input; the converted model is given the IR version its opset needs."""
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    pads = [0, 0, 1, 2, 0, 0, 2, 1]
    model = _old_model([helper.make_node("Pad", ["x"], ["y"], mode="reflect", pads=pads)],
                       [_vi("x", [1, 2, 3, 4])], [_vi("y", [1, 2, 6, 7])])
    (got,) = _run(model, tmp_path, x)
    np.testing.assert_array_equal(got, np.pad(x, [(0, 0), (0, 0), (1, 2), (2, 1)], mode="reflect"))


def test_opset6_uneven_split_and_squeeze_of_a_slice(tmp_path):
    """Split's sizes and Slice/Squeeze's axes become Constant inputs, read as values (not refused as
    'not evenly splittable', nor the squeeze computed as dropping every unit dim)."""
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    nodes = [helper.make_node("Split", ["x"], ["a", "b"], axis=1, split=[2, 1]),
             helper.make_node("Slice", ["a"], ["s"], axes=[0], starts=[0], ends=[1]),
             helper.make_node("Squeeze", ["s"], ["q"], axes=[0])]
    model = _old_model(nodes, [_vi("x", [1, 3])], [_vi("q", [2]), _vi("b", [1, 1])])
    q, b = _run(model, tmp_path, x)
    np.testing.assert_array_equal(q, [1.0, 2.0])
    np.testing.assert_array_equal(b, [[3.0]])


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 4, 5)])
def test_opset6_prelu_slope_is_per_channel(tmp_path, shape):
    """Before opset 7 PRelu's slope of C values applies along dim 1 (nn.PReLU(C)), at any rank."""
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model = _old_model([helper.make_node("PRelu", ["x", "slope"], ["y"])],
                       [_vi("x", list(shape)), _vi("slope", [3])], [_vi("y", list(shape))],
                       [numpy_helper.from_array(slope, "slope")])
    (got,) = _run(model, tmp_path, x)
    per_channel = slope.reshape((3,) + (1,) * (len(shape) - 2))
    np.testing.assert_allclose(got, np.where(x >= 0, x, x * per_channel), rtol=1e-6)


def test_prelu_slope_that_does_not_broadcast_is_refused(tmp_path):
    """From opset 7 on the slope broadcasts from the right: one that cannot is an error at the node,
    not a failure when the model runs."""
    slope = numpy_helper.from_array(np.ones(3, np.float32), "slope")
    model = _old_model([helper.make_node("PRelu", ["x", "slope"], ["y"], name="act")],
                       [_vi("x", [2, 3, 4])], [_vi("y", [2, 3, 4])], [slope], opset=13, ir_version=8)
    path = str(tmp_path / "bad.onnx")
    onnx.save(model, path)
    with pytest.raises(SpecError, match=r"node 'act': slope \[3\] must broadcast to the input \[2, 3, 4\]"):
        load_onnx(path)


def test_spec_of_a_weight_made_by_constant_of_shape_rebuilds_it(tmp_path, run_archc, monkeypatch):
    """Caffe2-era 'light' models make large weights with ConstantOfShape, kept as an onnx_node of no
    input (too large to fold; here the limit is lowered): its spec says ``in: []`` and its tensor
    attribute with dtype and shape, and rebuilds."""
    import onnxruntime as ort

    monkeypatch.setenv("ARCHC_MAX_FOLD_ELEMENTS", "4")

    shape = numpy_helper.from_array(np.array([3, 4], np.int64), "w_shape")
    nodes = [helper.make_node("ConstantOfShape", ["w_shape"], ["w"], name="fill",
                              value=numpy_helper.from_array(np.array([0.25], np.float32))),
             helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)]
    model = _old_model(nodes, [_vi("x", [2, 4])], [_vi("y", [2, 3])], [shape], opset=13, ir_version=8)
    path, spec, weights, again = (str(tmp_path / f) for f in ("m.onnx", "m.yaml", "w.pt", "again.onnx"))
    onnx.save(model, path)
    run_archc("spec", path, "-o", spec, "--weights-out", weights, check=True)
    assert "in: []" in open(spec).read() and "tensor: float32" in open(spec).read()
    run_archc("build", spec, "--target", "onnx", "--weights", weights, "-o", again, check=True)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    want = ort.InferenceSession(path).run(None, {"x": x})[0]
    got = ort.InferenceSession(again).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got, x @ np.full((4, 3), 0.25, np.float32), rtol=1e-6)


def test_spec_tensor_attribute_that_is_malformed_is_an_error(spec_file, run_archc):
    spec = spec_file("archc: 1\nname: m\ninputs: {x: [2, 4]}\nnodes:\n"
                     "- {name: fill, op: onnx_node, in: [], op_type: ConstantOfShape, opset: 13,\n"
                     "   attributes: {value: {tensor: float32, shape: [2], values: [1.0]}}, operands: [s],\n"
                     "   params: {s: {shape: [2], dtype: int64, learned: false}}, output_types: [[[3, 4], float32]]}\n")
    proc = run_archc("check", spec)
    assert proc.returncode == 2
    assert "node 'fill'" in proc.stderr and "attribute 'value' as a tensor must be" in proc.stderr


def test_spec_of_a_model_with_a_string_input_is_an_error_at_the_model(tmp_path, run_archc):
    node = helper.make_node("StringNormalizer", ["x"], ["y"], name="norm", case_change_action="LOWER")
    model = _old_model([node], [_vi("x", [3], onnx.TensorProto.STRING)], [_vi("y", [3], onnx.TensorProto.STRING)],
                       opset=13, ir_version=8)
    path = tmp_path / "strings.onnx"
    onnx.save(model, path)
    proc = run_archc("spec", str(path), "-o", str(tmp_path / "s.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}: error: input 'x' has element type string; a spec's inputs are one of" in proc.stderr
    assert not (tmp_path / "s.yaml").exists()


def test_verify_of_an_opset_onnxruntime_lacks_compares_with_the_upgraded_file(tmp_path, run_archc):
    """onnxruntime has no opset-6 AveragePool kernel: verify runs it on the file as upgraded, and says so."""
    model = _old_model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                       [_vi("x", [1, 2, 4, 4])], [_vi("y", [1, 2, 2, 2])])
    onnx.save(model, tmp_path / "pool6.onnx")
    proc = run_archc("verify", str(tmp_path / "pool6.onnx"))
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr
    assert ("reference: onnxruntime has no kernels for the file's opset 6: the reference is onnxruntime on the "
            "file converted to opset 13 by onnx.version_converter") in proc.stdout


def test_verify_of_a_model_with_a_weights_file_is_an_error(tmp_path, run_archc):
    """The reference runs the file with its own weights: other weights for the PyTorch side only would
    make a mismatch that says nothing."""
    model = _old_model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [2, 3])], [_vi("y", [2, 3])],
                       opset=17, ir_version=8)
    onnx.save(model, tmp_path / "relu.onnx")
    torch.save({}, tmp_path / "w.pt")
    proc = run_archc("verify", str(tmp_path / "relu.onnx"), "--weights", str(tmp_path / "w.pt"))
    assert proc.returncode == 2
    assert "<command line>: error: --weights applies to YAML specs: an ONNX model is compared with onnxruntime " \
           "running the file, with the file's own weights" in proc.stderr


def test_a_sequence_value_is_an_error_naming_the_node_and_what_it_is(tmp_path):
    nodes = [helper.make_node("SplitToSequence", ["x"], ["seq"], name="split", axis=0),
             helper.make_node("SequenceAt", ["seq", "i"], ["y"], name="at")]
    model = _old_model(nodes, [_vi("x", [4, 3]), _vi("i", [], onnx.TensorProto.INT64)], [_vi("y", [1, 3])],
                       opset=13, ir_version=8)
    onnx.save(model, tmp_path / "seq.onnx")
    with pytest.raises(SpecError, match=r"node 'split': output 0 \('seq'\) of ONNX SplitToSequence is a sequence: "
                                        "archc imports models of tensors only"):
        load_onnx(str(tmp_path / "seq.onnx"))


@pytest.mark.parametrize("op_type,old,new,attributes,inputs,outputs,expected", [
    ("GRU", 13, 17, {"hidden_size", "direction"}, 3, 2, True),       # GRU-14 adds `layout`, default the old way
    ("GRU", 17, 13, {"hidden_size", "layout"}, 3, 2, False),         # ... which GRU-7 does not have
    ("Pad", 20, 17, {"mode"}, 3, 1, True),                           # Pad-18 adds the optional `axes` input
    ("Pad", 20, 17, {"mode"}, 4, 1, False),                          # ... which Pad-13 lacks
    ("ReduceMean", 13, 18, set(), 1, 1, True),                       # all axes either way
    ("ReduceMean", 13, 18, {"axes"}, 1, 1, False),                   # axes moved to an input
    ("Softmax", 11, 17, set(), 1, 1, False),                         # same signature, another meaning
    ("Relu", 13, 17, set(), 1, 1, True),
    ("Constant", 11, 13, {"value"}, 0, 1, True),                     # no inputs: its outputs still checked
])
def test_a_node_is_re_emitted_at_another_opset_where_what_it_uses_means_the_same(
        op_type, old, new, attributes, inputs, outputs, expected):
    from archc.ops.onnx_node import UsedSignature, compatible_versions

    assert compatible_versions(op_type, old, new, UsedSignature(frozenset(attributes), inputs, outputs)) is expected


def _constant_weight_net(tmp_path) -> str:
    """A Caffe2-'light'-style net: conv, batchnorm, relu, global pool, softmax, every weight one value
    (conv weight and bias as ConstantOfShape fills, batchnorm's as constant initializers)."""
    fill = numpy_helper.from_array(np.array([0.02], np.float32))
    inits = [numpy_helper.from_array(np.array([4, 3, 3, 3], np.int64), "w_shape"),
             numpy_helper.from_array(np.array([4], np.int64), "b_shape")] + \
        [numpy_helper.from_array(np.full(4, v, np.float32), n) for n, v in
         (("bn_scale", 1.0), ("bn_bias", 0.0), ("bn_mean", 0.0), ("bn_var", 1.0))]
    nodes = [helper.make_node("ConstantOfShape", ["w_shape"], ["w"], name="fill_w", value=fill),
             helper.make_node("ConstantOfShape", ["b_shape"], ["b"], name="fill_b", value=fill),
             helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["n"],
                              name="bn"),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Softmax", ["f"], ["y"], name="prob")]
    model = _old_model(nodes, [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 4])], inits, opset=13, ir_version=8)
    path = str(tmp_path / "light.onnx")
    onnx.save(model, path)
    return path


def test_verify_with_random_weights_makes_a_constant_output_model_checkable(tmp_path, run_archc):
    """The file's own weights make the output constant: verify says agreement proves nothing; with
    --random-weights the weights (the ConstantOfShape fills too) are redrawn and calibrated in the
    import and in the model onnxruntime runs, and the comparison means something."""
    path = _constant_weight_net(tmp_path)
    proc = run_archc("verify", path)
    assert proc.returncode == 1 and "ok (" in proc.stdout and "barely depends on the input" in proc.stdout
    proc = run_archc("verify", path, "--random-weights", "--seed", "3")
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr
    assert "weights: those of" in proc.stdout and "with 6 tensors redrawn at random, seed 3 (--random-weights)" \
        in proc.stdout


def test_random_weights_where_one_initializer_holds_two_weights(tmp_path, run_archc):
    """The TorchScript exporter without constant folding keeps one tensor for a batchnorm's weight and
    running variance (both ones) and one for its bias and running mean, read through Identity nodes.
    Calibrating the running statistics must not write them into the weight's initializer: the
    comparison found a false mismatch of 1.64."""
    import warnings

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    path = str(tmp_path / "bn_nofold.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(2, 3, 16, 16),), path, dynamo=False, opset_version=17,
                          do_constant_folding=False)
    assert "Identity" in [n.op_type for n in onnx.load(path).graph.node]
    proc = run_archc("verify", path, "--random-weights")
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr


def test_random_weights_where_a_batchnorm_sees_one_value_per_channel(tmp_path, run_archc):
    """LeViT's head (Graham et al. 2021): a BatchNorm1d over pooled (N, C) features, exported at batch 1.
    The calibration cannot grow a fixed batch, and PyTorch refuses statistics of one value per channel:
    verify failed ("Expected more than 1 value per channel when training"); that norm now keeps its own."""
    import warnings

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 8),
                                torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    path = str(tmp_path / "pooled_bn.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(1, 3, 8, 8),), path, dynamo=False, opset_version=17)
    proc = run_archc("verify", path, "--random-weights")
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr


def test_redrawing_keeps_what_is_not_a_weight(tmp_path):
    """Resize's scales are read as a size, not a weight: kept; a conv kernel is redrawn, a variance stays positive."""
    from archc.runtime.redraw import redrawn

    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    kernel = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "k")
    var = numpy_helper.from_array(np.ones(2, np.float32), "var")
    others = [numpy_helper.from_array(np.ones(2, np.float32), n) for n in ("s", "b", "m")]
    nodes = [helper.make_node("Conv", ["x", "k"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "var"], ["n"]),
             helper.make_node("Resize", ["n", "", "scales"], ["y"])]
    model = _old_model(nodes, [_vi("x", [1, 2, 3, 3])], [_vi("y", [1, 2, 6, 6])], [scales, kernel, var, *others],
                       opset=13, ir_version=8)
    out, count = redrawn(model, 0)
    arrays = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    assert count == 5 and np.array_equal(arrays["scales"], [1, 1, 2, 2])
    assert not np.array_equal(arrays["k"], np.ones((2, 2, 1, 1))) and (arrays["var"] > 0).all()


def test_random_weights_on_a_spec_is_an_error(run_archc):
    proc = run_archc("verify", "specs/resnet18.yaml", "--random-weights")
    assert proc.returncode == 2
    assert "<command line>: error: --random-weights applies to ONNX models" in proc.stderr


def test_onnxruntime_failing_at_run_time_is_reported_once_in_archcs_format(tmp_path, run_archc):
    """An Expand to a shape given as an input: random values onnxruntime refuses. The error is archc's
    line, without onnxruntime's own log line before it."""
    model = _old_model([helper.make_node("Expand", ["x", "shape"], ["y"], name="grow")],
                       [_vi("x", [1, 3, 1]), _vi("shape", [2], onnx.TensorProto.INT64)], [_vi("y", ["a", "b"])],
                       opset=13, ir_version=8)
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    onnx.save(model, tmp_path / "expand.onnx")
    proc = run_archc("run", str(tmp_path / "expand.onnx"), "--runtime", "ort")
    assert proc.returncode == 2 and "onnxruntime cannot run the model" in proc.stderr, proc.stderr
    assert "[E:onnxruntime" not in proc.stderr and "Traceback" not in proc.stderr


def test_onnxruntime_kernel_warnings_stay_off_archcs_stderr(tmp_path, run_archc):
    """A Resize in a deprecated mode: onnxruntime's kernel warns through its default logger, which
    printed its own coloured line before archc's output (seen running the ONNX suite's resize model)."""
    scales = helper.make_tensor("scales", onnx.TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    model = _old_model([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="nearest",
                                         coordinate_transformation_mode="tf_half_pixel_for_nn")],
                       [_vi("x", [1, 2, 5, 6])], [_vi("y", [1, 2, 10, 12])], opset=17, ir_version=8)
    model.graph.initializer.append(scales)
    onnx.save(model, tmp_path / "resize.onnx")
    proc = run_archc("run", str(tmp_path / "resize.onnx"), "--runtime", "ort", check=True)
    assert proc.stderr == "" and "y: shape (1, 2, 10, 12)" in proc.stdout, proc.stderr


@pytest.mark.parametrize("name", ["llama", pytest.param("swin_t", marks=pytest.mark.slow)])
def test_archc_onnx_of_a_transformer_comes_back_as_a_spec_and_a_module(name, tmp_path, run_archc):
    """archc's own ONNX of a shipped transformer, brought back: as PyTorch (its masked attention's
    nodes named apart from the node they lie under), and as a spec that loads (ConstantOfShape's
    int64 fill value kept; symbolic dims such as ``N*64`` in declared output types) and verifies with
    the weights written beside it. Without them its integer constants are drawn at random, and
    verify says so instead of a traceback."""
    model, py, spec, weights = (str(tmp_path / f) for f in ("m.onnx", "m.py", "m.yaml", "m.pt"))
    run_archc("build", str(SPECS / f"{name}.yaml"), *set_args(name), "-o", model, check=True)
    run_archc("build", model, "-o", py, check=True)
    run_archc("spec", model, "-o", spec, "--weights-out", weights, check=True)
    dims = ["--dim", "S=5"] if name == "llama" else []
    proc = run_archc("verify", spec, "--weights", weights, *dims, check=True)
    assert "PASSED" in proc.stdout + proc.stderr
    if name == "llama":  # (its small constants, axes and shapes among them, travel in the spec as values)
        proc = run_archc("verify", spec, *dims, check=True)
        assert "PASSED" in proc.stdout and "integer constants (" not in proc.stderr


class _RMSCumSum(torch.nn.Module):
    """No learned weight: RMS normalisation, then a cumulative sum along the tokens (an SSM's scan)."""

    def forward(self, x):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return torch.cumsum(x, dim=1).sum(dim=2)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_fresh_module_from_an_onnx_model_keeps_its_constants(tmp_path, run_archc, dynamo):
    """The exponent, epsilon, axes of ops kept as ONNX nodes are the model's meaning, not weights to load:
    the generated module built afresh (no --state-dict) computes what onnxruntime does on the file."""
    import contextlib
    import importlib.util
    import io
    import warnings

    import onnxruntime as ort

    path, py = str(tmp_path / "rms.onnx"), tmp_path / "rms.py"
    x = torch.randn(2, 5, 8)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(_RMSCumSum().eval(), (x,), path, dynamo=dynamo)
    run_archc("build", path, "-o", str(py), check=True)
    spec = importlib.util.spec_from_file_location("rms_fresh", py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (cls,) = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == "rms_fresh"
              and issubclass(v, torch.nn.Module) and hasattr(v, "block_instances")]
    model = cls().eval()
    session = ort.InferenceSession(path)
    want = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), want, rtol=1e-5, atol=1e-5)
        for block in model.block_instances():  # reset_parameters() writes them again, as construction does
            block.reset_parameters()
        np.testing.assert_allclose(model(x).numpy(), want, rtol=1e-5, atol=1e-5)


class _HalfNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = torch.nn.Sequential(*[torch.nn.Conv2d(4 if i else 3, 4, 3, padding=1) for i in range(5)])

    def forward(self, x):
        return self.convs(x).mean(dim=(2, 3))


def test_a_model_exported_in_float16_is_refused_by_the_builds_naming_its_nodes(tmp_path, run_archc):
    """archc's native ops hold float32 parameters: a model exported after .half() would be rebuilt as an
    ONNX file onnxruntime refuses and a module that fails on float16 inputs. The builds say so, naming the
    first nodes and counting the others, and write nothing; lint and summary read the model as it is."""
    import contextlib
    import io
    import warnings

    path, out = str(tmp_path / "half.onnx"), tmp_path / "again.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(_HalfNet().half().eval(), (torch.randn(1, 3, 8, 8).half(),), path, dynamo=False)
    for target in (str(out), str(tmp_path / "again.py")):
        proc = run_archc("build", path, "-o", target)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 4 and "node 'convs.0': its input is float16, but archc's 'conv' holds float32" in lines[0]
        assert lines[-1].endswith("2 more nodes hold float32 parameters beside inputs of another float dtype "
                                  "(convs.3, convs.4)")
    assert not out.exists()
    proc = run_archc("verify", path)
    assert proc.returncode == 2 and "its input is float16" in proc.stderr
    run_archc("lint", path, check=True)
    assert "float16" not in run_archc("summary", path, check=True).stderr


def test_a_custom_domain_op_without_a_declared_type_is_refused_saying_how_to_declare_it(tmp_path, run_archc):
    """com.microsoft's Gelu (onnxruntime's fusions) has no ONNX schema: its output type can come only from
    the file. Undeclared, lint says so, naming the domain; declared, lint reads the model."""
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("Gelu", ["a"], ["b"], name="gelu_ms", domain="com.microsoft"),
             helper.make_node("Add", ["b", "x"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "ms", [_vi("x", [2, 4])], [_vi("y", [2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    path = tmp_path / "ms.onnx"
    onnx.save(model, path)
    proc = run_archc("lint", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "node 'gelu_ms': cannot infer the type of output 0 ('b') of 'com.microsoft' op Gelu" in proc.stderr
    assert "declare the output's type in the file's value_info" in proc.stderr
    model.graph.value_info.append(_vi("b", [2, 4]))
    onnx.save(model, path)
    run_archc("lint", str(path), check=True)
    assert "gelu_ms" in run_archc("summary", str(path), check=True).stdout


def test_a_rebuilt_model_keeps_its_own_metadata(tmp_path, run_archc):
    """An ONNX model's metadata_props (its author, its license) survive `archc build`, beside archc's keys."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [_vi("x", [1, 4])],
                              [_vi("y", [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"author": "Ada", "license": "MIT"})
    path, out = tmp_path / "meta.onnx", tmp_path / "again.onnx"
    onnx.save(model, path)
    run_archc("build", str(path), "-o", str(out), check=True)
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert props["author"] == "Ada" and props["license"] == "MIT" and "archc_version" in props


def test_a_constant_param_of_an_onnx_node_holds_one_value_per_element(spec_file, run_archc):
    head = ("archc: 1\nname: r\ninputs: {x: [2, 4]}\nnodes:\n"
            "  - {name: r, op: onnx_node, in: x, op_type: Reshape, opset: 17, operands: [0, shape],\n"
            "     params: {shape: {shape: [2], dtype: int64, learned: false, values: %s}}, "
            "output_types: [[[4, 2], float32]]}\n")
    proc = run_archc("verify", spec_file(head % "[4, 2]"), check=True)
    assert "PASSED" in proc.stdout
    proc = run_archc("check", spec_file(head % "[4, 2, 1]", "bad.yaml"))
    assert proc.returncode == 2 and "node 'r'" in proc.stderr
    assert "optionally values: [one number per element]" in proc.stderr


def test_spec_declared_output_types_take_symbolic_products_and_refuse_other_text(spec_file, run_archc):
    node = ("- {{name: q, op: onnx_node, op_type: Mul, opset: 17, operands: [0, b],\n"
            "   params: {{b: {{shape: [], dtype: float32, learned: true}}}}, output_types: [[[{dim}, 4], float32]]}}\n")
    head = "archc: 1\nname: m\ninputs: {x: [N, 4]}\nnodes:\n"
    assert run_archc("check", spec_file(head + node.format(dim="N"))).returncode == 0
    assert run_archc("check", spec_file(head + node.format(dim="'N*1'"), "product.yaml")).returncode == 0
    proc = run_archc("check", spec_file(head + node.format(dim="'N;1'"), "bad.yaml"))
    assert proc.returncode == 2 and "node 'q'" in proc.stderr and "output_types must be" in proc.stderr


def test_a_declared_output_dim_may_query_a_tensor():
    # found transcribing Glow: "channels(x)" was taken for a symbol of that name and written into the ONNX file
    text = ("inputs: {x: [N, 4, 8, 8]}\nnodes:\n  - {name: y, op: onnx_node, op_type: Relu, operands: [0], "
            "output_types: [[[N, \"%s\", 8, 8], float32]]}\n")
    assert loads_spec(text % "channels(x)").type_of(Value("y")).shape == ("N", 4, 8, 8)
    with pytest.raises(SpecError) as info:
        loads_spec(text % "channels(z)", "m.yaml")
    assert [d.format() for d in info.value.diagnostics] == ["m.yaml:3:90: error: node 'y': channels(): unknown tensor 'z'"]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_node_from_a_newer_opset_is_rewritten_by_the_version_converter(tmp_path, run_archc, dynamo):
    """CBAM (Woo et al. 2018) takes a channel-wise max, which both exporters write as ReduceMax at opset
    20 (axes an input since opset 18); archc emits opset 17, where axes is an attribute: onnx's version
    converter rewrites the node, and the rebuilt model computes what the original does, with no unused
    initializer left behind (the axes constant is folded into the attribute)."""
    import contextlib
    import io
    import warnings

    import onnxruntime as ort
    import paper_models as P

    factory, inputs = P.MODELS["cbam"]
    torch.manual_seed(0)
    original, rebuilt = str(tmp_path / "cbam.onnx"), str(tmp_path / "again.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(factory().eval(), inputs(), original, dynamo=dynamo)
    assert any(n.op_type == "ReduceMax" and len(n.input) == 2 for n in onnx.load(original).graph.node)
    run_archc("build", original, "-o", rebuilt, check=True)
    model = onnx.load(rebuilt)
    onnx.checker.check_model(model, full_check=True)
    reduce_max = [n for n in model.graph.node if n.op_type == "ReduceMax"]
    assert reduce_max and all(len(n.input) == 1 and any(a.name == "axes" for a in n.attribute) for n in reduce_max)
    read = {i for n in model.graph.node for i in n.input}
    assert [t.name for t in model.graph.initializer if t.name not in read] == []
    x = inputs()[0].numpy()
    want = ort.InferenceSession(original).run(None, {ort.InferenceSession(original).get_inputs()[0].name: x})[0]
    session = ort.InferenceSession(rebuilt)
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], want, rtol=1e-5, atol=1e-6)


class _Reduce(torch.nn.Module):
    def __init__(self, reduce) -> None:
        super().__init__()
        self.conv, self.reduce = torch.nn.Conv1d(3, 4, 1), reduce

    def forward(self, x):
        return self.reduce(self.conv(x))


_REDUCTIONS = {"max_dim": lambda x: torch.max(x, 2)[0], "prod": lambda x: x.prod(2),
               "logsumexp": lambda x: x.logsumexp(2), "norm": lambda x: x.norm(dim=2), "amin": lambda x: x.amin(2)}


@pytest.mark.parametrize("reduction", sorted(_REDUCTIONS))
def test_reductions_from_opset_18_are_rebuilt_as_valid_opset_17_nodes(tmp_path, run_archc, reduction):
    """The default exporter writes torch.max(x, dim), prod, logsumexp and norm as Reduce* nodes at opset 18+
    with ``noop_with_empty_axes=0``; onnx's version converter moves the axes back to an attribute but keeps
    that attribute, which opset 17 does not have. The rebuilt file passes the checker and computes what the
    original does."""
    import contextlib
    import io
    import warnings

    import onnxruntime as ort

    torch.manual_seed(0)
    original, rebuilt = str(tmp_path / "reduce.onnx"), str(tmp_path / "again.onnx")
    x = torch.randn(2, 3, 8)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(_Reduce(_REDUCTIONS[reduction]).eval(), (x,), original, dynamo=True)
    run_archc("build", original, "-o", rebuilt, check=True)
    onnx.checker.check_model(onnx.load(rebuilt), full_check=True)
    want = ort.InferenceSession(original).run(None, {ort.InferenceSession(original).get_inputs()[0].name: x.numpy()})
    session = ort.InferenceSession(rebuilt)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)


def test_a_newer_attribute_off_its_default_is_refused_not_dropped(tmp_path, run_archc):
    """ReduceMin at opset 20 with ``noop_with_empty_axes=1``: opset 17 has no such attribute, and dropping
    one that is not at its default could change the node, so the ONNX rebuild is refused naming the node.
    (ReduceMax, this test's node before, is archc's ``amax`` now, rebuilt at any opset.)"""
    nodes = [helper.make_node("ReduceMin", ["x", "axes"], ["y"], name="max", keepdims=1, noop_with_empty_axes=1)]
    model = _old_model(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 1])], opset=20, ir_version=10)
    model.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
    path = tmp_path / "noop.onnx"
    onnx.save(model, path)
    proc = run_archc("build", str(path), "-o", str(tmp_path / "again.onnx"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "node 'max'" in proc.stderr
    assert "ReduceMin was imported from opset 20 and its definition changed after opset 17" in proc.stderr
    assert not (tmp_path / "again.onnx").exists()


def test_a_newer_node_the_converter_cannot_rewrite_is_still_refused_cleanly(tmp_path, run_archc):
    """ReduceMax at opset 20 whose axes are a model input: no attribute can hold them at opset 17, so
    the ONNX rebuild is refused naming the node (the PyTorch build, which reads them at run time, works)."""
    nodes = [helper.make_node("ReduceMax", ["x", "axes"], ["y"], name="max", keepdims=1)]
    model = _old_model(nodes, [_vi("x", [2, 3]), _vi("axes", [1], onnx.TensorProto.INT64)], [_vi("y", ["a", "b"])],
                       opset=20, ir_version=10)
    path = tmp_path / "input_axes.onnx"
    onnx.save(model, path)
    proc = run_archc("build", str(path), "-o", str(tmp_path / "again.onnx"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "node 'max'" in proc.stderr
    assert "ReduceMax was imported from opset 20 and its definition changed after opset 17" in proc.stderr
    assert not (tmp_path / "again.onnx").exists()
    run_archc("build", str(path), "-o", str(tmp_path / "again.py"), check=True)


def test_opset21_group_normalization_becomes_groupnorm_and_is_re_emitted(tmp_path):
    # found by a user: GroupNormalization-21 stayed a generic node that archc's opset-17 ONNX cannot hold
    import onnxruntime as ort

    from archc.lowering.onnx import to_onnx

    rng = np.random.default_rng(0)
    scale, bias = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2, epsilon=1e-3)
    model = _old_model([node], [_vi("x", [2, 4, 6, 6])], [_vi("y", [2, 4, 6, 6])],
                       [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(bias, "b")],
                       opset=21, ir_version=10)
    path = str(tmp_path / "gn.onnx")
    onnx.save(model, path)
    graph = load_onnx(path)
    (norm,) = [n for n in graph.nodes() if n.op != "input"]
    assert (norm.op, norm.attrs["num_groups"], norm.attrs["eps"]) == ("groupnorm", 2, pytest.approx(1e-3))
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    want = ort.InferenceSession(path).run(None, {"x": x})[0]
    got = ort.InferenceSession(to_onnx(graph).SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_run(model, tmp_path, x)[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "cubic", "nearest", None])
def test_grid_sample_20_is_re_emitted_with_opset_16s_mode_names(tmp_path, mode):
    # found by a user: the default exporter writes GridSample-20, whose modes are linear and cubic; archc's
    # opset-17 ONNX kept mode="linear", which GridSample-16 does not have (onnxruntime refused the file)
    import onnxruntime as ort

    from archc.lowering.onnx import to_onnx

    node = helper.make_node("GridSample", ["x", "g"], ["y"], name="gs", **({"mode": mode} if mode else {}))
    model = _old_model([node], [_vi("x", [1, 2, 5, 5]), _vi("g", [1, 3, 4, 2])], [_vi("y", [1, 2, 3, 4])],
                       opset=20, ir_version=10)
    path = str(tmp_path / "gs.onnx")
    onnx.save(model, path)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((1, 2, 5, 5)).astype(np.float32),
             "g": rng.uniform(-1, 1, (1, 3, 4, 2)).astype(np.float32)}
    rebuilt = to_onnx(load_onnx(path))
    (written,) = [n for n in rebuilt.graph.node if n.op_type == "GridSample"]
    assert helper.get_attribute_value(next(a for a in written.attribute if a.name == "mode")).decode() \
        == {"linear": "bilinear", "cubic": "bicubic", "nearest": "nearest", None: "bilinear"}[mode]
    want = ort.InferenceSession(path).run(None, feeds)[0]
    got = ort.InferenceSession(rebuilt.SerializeToString()).run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_dim_that_is_a_function_of_a_symbol_is_written_into_the_spec(tmp_path, run_archc):
    # found by a user: the default exporter declares a slice of a rotary table by a dynamic length as
    # dim 'Min(16, seq)'; archc's spec held it in output_types but refused to read it back (a comma)
    import onnxruntime as ort

    nodes = [helper.make_node("Shape", ["x"], ["T"], name="shape", start=1, end=2),
             helper.make_node("Slice", ["cos", "zero", "T", "zero", "one"], ["c"], name="slice"),
             helper.make_node("Mul", ["x", "c"], ["y"], name="mul")]
    inits = [numpy_helper.from_array(np.random.default_rng(0).random((16, 8), np.float32), "cos"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one")]
    model = _old_model(nodes, [_vi("x", ["batch", "seq", 8])], [_vi("y", ["batch", "seq", 8])], inits,
                       opset=20, ir_version=10)
    model.graph.value_info.append(_vi("c", ["Min(16, seq)", 8]))
    path = tmp_path / "rotary.onnx"
    onnx.save(model, path)
    spec, weights = tmp_path / "rotary.yaml", tmp_path / "rotary.pt"
    run_archc("spec", str(path), "-o", str(spec), "--weights-out", str(weights), check=True)
    assert "Min(16, seq)" in spec.read_text()
    run_archc("build", str(spec), "--weights", str(weights), "-o", str(tmp_path / "again.onnx"), check=True)
    x = np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(tmp_path / "again.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_spec_archc_cannot_read_back_is_reported_at_the_model(tmp_path, monkeypatch, capsys):
    # archc's own failure: the message names the model and the node, not lines of a file never written
    from archc.cli import main
    from archc.lowering import spec_yaml

    path = tmp_path / "relu.onnx"
    onnx.save(_old_model([helper.make_node("Relu", ["x"], ["y"], name="act")], [_vi("x", [2, 3])],
                         [_vi("y", [2, 3])], opset=17, ir_version=8), path)
    real = spec_yaml.dump_spec
    monkeypatch.setattr(spec_yaml, "dump_spec", lambda spec, source="": real(spec, source).replace("op: relu", "op: rleu"))
    out = tmp_path / "relu.yaml"
    assert main(["spec", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: error: node 'act': archc cannot write a spec of this model that reads back, so it wrote none" \
        in err and "unknown op 'rleu'" in err
    assert not out.exists()


def test_a_training_mode_batchnorm_says_to_export_in_eval_mode(tmp_path, run_archc):
    """TrainingMode.TRAINING exports keep BatchNormalization's training_mode=1: no PyTorch lowering,
    and the message says what to do (found exporting a CNN with training=TRAINING)."""
    inits = [numpy_helper.from_array(np.ones(2, np.float32), n) for n in ("s", "b", "m", "v")]
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], name="bn1",
                              training_mode=1)]
    model = _old_model(nodes, [_vi("x", [2, 2, 3, 3])], [_vi("y", [2, 2, 3, 3]), _vi("rm", [2]), _vi("rv", [2])],
                       inits, opset=15, ir_version=8)
    path = str(tmp_path / "train.onnx")
    onnx.save(model, path)
    proc = run_archc("build", path, "-o", str(tmp_path / "train.py"))
    assert proc.returncode == 2 and not (tmp_path / "train.py").exists()
    assert ("node 'bn1': imported ONNX op 'BatchNormalization' cannot be written as PyTorch: training_mode=1"
            in proc.stderr and "export the model in eval mode" in proc.stderr), proc.stderr


@pytest.mark.parametrize("side", ["input", "output"])
def test_a_graph_value_without_a_shape_field_is_named(tmp_path, run_archc, side):
    """onnx.checker refuses a graph input or output whose tensor type has no 'shape' field without saying
    which (onnxruntime runs such a file): archc names it and says what to write."""
    model = _old_model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [1, 3])], [_vi("y", [1, 3])],
                       opset=17, ir_version=8)
    getattr(model.graph, side)[0].type.tensor_type.ClearField("shape")
    path = str(tmp_path / "noshape.onnx")
    onnx.save(model, path)
    proc = run_archc("lint", path)
    name = "x" if side == "input" else "y"
    assert proc.returncode == 2 and (f"error: invalid ONNX model: graph {side} '{name}' declares no shape "
                                     "(onnx.checker requires a 'shape' field") in proc.stderr, proc.stderr


def test_constants_stored_as_external_data_are_read_by_every_command(tmp_path, run_archc):
    """onnx.save(..., convert_attribute=True) moves a Constant's tensor (here a Reshape's shape) into the
    external data file too. lint and summary, which never read the weights' external data, refused the
    model with onnx.checker's 'should be stored in w.bin, but it is not regular file'; the import
    computes with such constants, so every command reads them (the weights stay unread)."""
    import onnxruntime as ort

    shape = helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, 12], np.int64)))
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((12, 4)).astype(np.float32), "w")
    nodes = [shape, helper.make_node("Reshape", ["x", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["y"])]
    model = _old_model(nodes, [_vi("x", [1, 3, 4])], [_vi("y", [1, 4])], [w], opset=17, ir_version=8)
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(model, str(folder / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="w.bin", size_threshold=0, convert_attribute=True)
    assert onnx.load(str(folder / "m.onnx"), load_external_data=False).graph.node[0].attribute[0].t.external_data
    for command in ("lint", "summary", "graph"):
        extra = ("-o", str(tmp_path / "m.svg")) if command == "graph" else ()
        proc = run_archc(command, str(folder / "m.onnx"), *extra)
        assert proc.returncode == 0, proc.stderr
    assert "48 parameters" in run_archc("summary", str(folder / "m.onnx")).stdout
    # (onnxruntime itself cannot load such a file; archc's rebuild holds the constant in place)
    run_archc("build", str(folder / "m.onnx"), "-o", str(tmp_path / "re.onnx"), check=True)
    x = np.random.default_rng(1).standard_normal((1, 3, 4)).astype(np.float32)
    (y,) = ort.InferenceSession(str(tmp_path / "re.onnx")).run(None, {"x": x})
    np.testing.assert_allclose(y, x.reshape(1, 12) @ numpy_helper.to_array(w), rtol=1e-5, atol=1e-6)


def test_a_constant_of_an_unknown_data_type_is_refused_at_its_node(tmp_path, run_archc):
    """Found by the fuzzer: a Constant's tensor of data type 65 (no ONNX version defines it) passed the
    checker and ended in a KeyError inside onnx's numpy_helper."""
    value = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "v")  # (raw data: the checker passes it)
    value.data_type = 65
    nodes = [helper.make_node("Constant", [], ["c"], name="const", value=value),
             helper.make_node("Add", ["x", "c"], ["y"])]
    model = _old_model(nodes, [_vi("x", [2])], [_vi("y", [2])], opset=17, ir_version=8)
    path = str(tmp_path / "dtype65.onnx")
    onnx.save(model, path)
    proc = run_archc("lint", path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert ("error: node 'const': attribute 'value' holds a tensor that cannot be read (data type 65, which no "
            "ONNX version defines)") in proc.stderr, proc.stderr


def _token_type_model(path) -> None:
    """A 2-row token-type table read by 6 integer ids, then a projection (BERT's token types)."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["e"]), helper.make_node("MatMul", ["e", "w"], ["y"])], "tt",
        [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [1, 6])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 6, 4])],
        initializer=[numpy_helper.from_array(rng.random((2, 8), dtype=np.float32), "table"),
                     numpy_helper.from_array(rng.random((8, 4), dtype=np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_random_weights_calibrate_on_the_integer_values_given(run_archc, tmp_path):
    # calibration drew its own token ids in [0, 10) and failed on a 2-row table, --input given or not
    _token_type_model(tmp_path / "tt.onnx")
    np.save(tmp_path / "ids.npy", np.array([[0, 0, 0, 1, 1, 1]], np.int64))
    proc = run_archc("verify", str(tmp_path / "tt.onnx"), "--input", f"ids={tmp_path / 'ids.npy'}", "--random-weights")
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", [[0, 1], [0, 1, 2], [3, 1, 2, 0], [1, 1, 0], [[0, 1], [1, 0]]])
def test_the_second_input_of_the_dependence_check_differs_from_the_first(values):
    # a fixed shuffle left 2-4 tokens in place: verify said the output barely depends on its input
    from archc.runtime.inputs import other_inputs

    feeds = {"ids": np.array(values, np.int64)}
    for seed in range(20):
        other = other_inputs(feeds, {}, seed=seed)["ids"]
        # (its values drawn from the first's: ones the model accepts; not a reordering only, which a
        # model pooling its tokens would not see)
        assert set(other.ravel()) <= set(feeds["ids"].ravel()) and not np.array_equal(other, feeds["ids"])
        assert sorted(other.ravel()) != sorted(feeds["ids"].ravel())


def test_a_reshape_copying_a_dim_its_input_lacks_is_refused_naming_the_node(tmp_path):
    # fuzz case 561343: a 0 in Reshape's target past the input's rank ended in an IndexError
    shape = numpy_helper.from_array(np.array([0, 0, 0], np.int64), "shape")
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="bad_reshape")
    graph = helper.make_graph([node], "g", [_vi("x", ["N", 4])], [_vi("y", ["a", "b", "c"])],
                              initializer=[shape])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(SpecError) as err:
        load_onnx(str(path))
    assert "error: node 'bad_reshape': " in str(err.value)  # (a constant target: ONNX's type rules say it first;
    # a computed one, archc's own message: tests/test_fuzz.py's campaign case 561343)
