"""Max pooling with indices and max unpooling come back as archc's native maxpool (return_indices) and
max_unpool: SegNet-style modules written here exported with both torch.onnx exporters (the TorchScript
one cannot export max_unpool2d: those cases skip with its own message), and ONNX's own MaxUnpool op as
other tools write it; the torch build computes what onnxruntime computes on the file."""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
from torch import nn  # noqa: E402

from archc.frontends.onnx import load_onnx  # noqa: E402
from archc.ir.graph import Value  # noqa: E402
from archc.lowering.spec_yaml import dump_spec, to_spec  # noqa: E402
from conftest import check_against_onnxruntime  # noqa: E402


class OddSegNet(nn.Module):
    """Badrinarayanan et al. 2017's index transfer on an odd-sized input: each unpooling is told the size
    of the encoder feature map it mirrors (output_size), the decoder reuses the encoder's indices."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.dec2 = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU())
        self.dec1 = nn.Conv2d(width, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)

    def forward(self, x):
        e1 = self.enc1(x)
        p1, i1 = self.pool(e1)
        e2 = self.enc2(p1)
        p2, i2 = self.pool(e2)
        d2 = self.dec2(self.unpool(p2, i2, output_size=e2.shape[-2:]))
        return self.dec1(self.unpool(d2, i1, output_size=e1.shape[-2:]))


def _export(module: nn.Module, shape, path: str, dynamo: bool) -> str:
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), (torch.randn(*shape),), path, dynamo=dynamo)
    except Exception as exc:  # noqa: BLE001 - the exporter's own failure is the reason to skip
        if dynamo:
            raise
        pytest.skip(f"torch.onnx's TorchScript exporter cannot export this module: {str(exc).splitlines()[0]}")
    return path


def _native_pair(graph):
    pools = [n for n in graph.nodes() if n.op == "maxpool"]
    unpools = [n for n in graph.nodes() if n.op == "max_unpool"]
    assert not [n for n in graph.nodes() if n.op == "onnx_node"]
    assert all(p.attrs["return_indices"] for p in pools)
    return pools, unpools


@pytest.mark.parametrize("dynamo", [False, True])
def test_odd_sized_segnet_unpools_with_the_encoders_indices(tmp_path, dynamo):
    torch.manual_seed(0)
    path = _export(OddSegNet(), (2, 3, 11, 9), str(tmp_path / "segnet.onnx"), dynamo)
    graph = load_onnx(path)
    pools, unpools = _native_pair(graph)
    assert [u.inputs[1] for u in unpools] == [Value(pools[1].name, 1), Value(pools[0].name, 1)]
    assert [u.outputs[0].shape[2:] for u in unpools] == [(5, 4), (11, 9)]
    check_against_onnxruntime(path)
    assert "op: max_unpool" in dump_spec(to_spec(graph)[0], path)


def _onnx_unpool_model(path: str, unpool_attrs: dict, output_shape: list[int] | None, size=(7, 9)) -> str:
    """conv -> MaxPool (values, whole-tensor indices) -> relu -> MaxUnpool, as tools other than torch write it."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")]
    unpool_inputs = ["r", "i"]
    if output_shape is not None:
        inits.append(numpy_helper.from_array(np.array(output_shape, np.int64), "shape"))
        unpool_inputs.append("shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["p"], ["r"]),
             helper.make_node("MaxUnpool", unpool_inputs, ["y"], **unpool_attrs)]
    graph = helper.make_graph(nodes, "unpool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, *size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, None, None])], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("output_shape,size", [([2, 4, 7, 9], (7, 9)), (None, (6, 8))])
def test_onnx_maxunpool_of_a_maxpool_becomes_the_native_pair(tmp_path, output_shape, size):
    path = _onnx_unpool_model(str(tmp_path / "m.onnx"), {"kernel_shape": [2, 2], "strides": [2, 2]}, output_shape,
                              size)
    graph = load_onnx(path)
    (pool,), (unpool,) = _native_pair(graph)
    assert unpool.inputs[1] == Value(pool.name, 1) and unpool.outputs[0].shape == (2, 4, *size)
    check_against_onnxruntime(path)


def test_an_unpooling_that_does_not_mirror_the_pooling_stays_onnx(tmp_path):
    """MaxUnpool with another stride than its MaxPool is no native pair: both ONNX ops stay, and build."""
    path = _onnx_unpool_model(str(tmp_path / "m.onnx"), {"kernel_shape": [2, 2], "strides": [3, 3]}, None)
    graph = load_onnx(path)
    assert sorted(n.attrs["op_type"] for n in graph.nodes() if n.op == "onnx_node") == ["MaxPool", "MaxUnpool"]
    check_against_onnxruntime(path)


def test_an_unpooling_to_another_size_stays_onnx(tmp_path):
    """Unpooled planes smaller than the pooled input's (7x9 pooled, 6x8 unpooled by default): ONNX's
    whole-tensor indices are then no per-plane indices (onnxruntime itself fails on them), so the pair
    stays ONNX."""
    path = _onnx_unpool_model(str(tmp_path / "m.onnx"), {"kernel_shape": [2, 2], "strides": [2, 2]}, None)
    graph = load_onnx(path)
    assert sorted(n.attrs["op_type"] for n in graph.nodes() if n.op == "onnx_node") == ["MaxPool", "MaxUnpool"]
