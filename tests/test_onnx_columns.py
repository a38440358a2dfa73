"""Initializers read in columns from the model's bytes (frontends/onnx/columns.py) are the arrays
protobuf reads, and whatever the column reader does not understand is left to protobuf."""
from __future__ import annotations

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from archc.frontends.onnx import from_onnx
from archc.frontends.onnx.columns import initializer_columns
from archc.frontends.onnx.rows import mirror_graph
from archc.frontends.onnx.tensors import read_tensor

DTYPES = [np.float32, np.float16, np.float64, np.int64, np.int32, np.int8, np.uint8, np.bool_]
NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12) \
    | st.text(alphabet="ab\0", min_size=120, max_size=140)  # (a length of two varint bytes; NULs)


@st.composite
def tensors(draw) -> TensorProto:
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    values = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) % 7
    tensor = numpy_helper.from_array(values.astype(dtype), draw(NAMES))
    how = draw(st.sampled_from(["raw", "raw", "raw", "doc", "float_data", "external", "big", "unnamed"]))
    if how == "unnamed":
        tensor.ClearField("name")  # (no name field at all: the empty name)
    elif how == "doc":
        tensor.doc_string = "a field the column reader leaves to protobuf"
    elif how == "float_data" and dtype == np.float32:
        tensor.ClearField("raw_data")
        tensor.float_data.extend(values.ravel().astype(np.float32).tolist())
    elif how == "external":
        tensor.data_location = TensorProto.EXTERNAL
    elif how == "big":
        tensor.CopyFrom(numpy_helper.from_array(np.zeros((40, 40), dtype), tensor.name))
    return tensor


def _model(inits: list[TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph([], "g", [], [], initializer=inits)
    return helper.make_model(graph)


def _columns(inits: list[TensorProto]):
    data = _model(inits).SerializeToString()
    return initializer_columns(mirror_graph(data).initializer[:])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tensors(), min_size=1, max_size=12))
def test_columns_are_protobufs_arrays(inits):
    columns = _columns(inits)
    assert columns is not None
    for tensor, name, arr in zip(inits, columns.names, columns.arrays):
        plain = tensor.HasField("raw_data") and not tensor.doc_string and tensor.data_location != TensorProto.EXTERNAL \
            and 0 < len(tensor.raw_data) <= 4096 and len(tensor.dims) > 0
        if arr is None:
            assert not plain  # every plain small tensor is read in columns
            continue
        assert plain
        alone = read_tensor(tensor)
        assert name == tensor.name
        assert (arr.dtype, arr.shape, arr.strides, arr.flags.writeable, arr.flags.c_contiguous) == \
            (alone.dtype, alone.shape, alone.strides, False, True)
        assert arr.tobytes() == alone.tobytes()
    groups = {}
    for arr, group in zip(columns.arrays, columns.groups):
        if arr is not None:
            assert groups.setdefault(group, (arr.dtype, arr.shape)) == (arr.dtype, arr.shape)


def test_tensors_the_reader_does_not_understand_are_left_to_protobuf():
    plain = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    packed = onnx.TensorProto()
    # dims packed (one length-delimited field, as a proto3 writer would write them): not a plain initializer
    blob = b"\x0a\x02\x02\x03" + b"\x10\x01" + b"\x42\x01p" + b"\x4a\x18" + np.ones(6, np.float32).tobytes()
    packed.ParseFromString(blob)
    assert list(packed.dims) == [2, 3]  # (protobuf reads it)
    truncated = plain.SerializeToString()[:-3]  # a length past the tensor's end
    columns = initializer_columns([plain.SerializeToString(), blob, truncated])
    assert columns.names[0] == "w" and columns.arrays[1] is None and columns.arrays[2] is None


def test_a_name_that_is_not_utf8_leaves_every_tensor_to_protobuf():
    blob = b"\x08\x02\x10\x01\x42\x02\xff\xfe\x4a\x08" + np.ones(2, np.float32).tobytes()
    assert initializer_columns([blob]) is None


def test_an_import_from_the_files_bytes_is_the_import_of_the_model():
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((2, 2, 3, 3)).astype(np.float32), f"w{i}") for i in range(3)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 8, 8])
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1], name="c0"),
             helper.make_node("Conv", ["a", "w1"], ["b"], pads=[1, 1, 1, 1], name="c1"),
             helper.make_node("Conv", ["b", "w2"], ["y"], pads=[1, 1, 1, 1], name="c2")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    plain = from_onnx(model, "m.onnx", weights=False)
    read = from_onnx(model, "m.onnx", weights=False, data=model.SerializeToString())
    assert [(n.name, n.op, n.inputs, n.outputs) for n in read.nodes()] == \
        [(n.name, n.op, n.inputs, n.outputs) for n in plain.nodes()]
    for node, weights in plain.weights.items():
        for key, w in weights.items():
            assert read.weights[node][key].tobytes() == w.tobytes()
            assert read.weights[node][key].dtype == w.dtype and read.weights[node][key].shape == w.shape
