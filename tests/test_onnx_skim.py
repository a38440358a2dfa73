"""Reading an ONNX file without its weights' bytes (archc.frontends.onnx.skim): lint, summary and
graph see the same model as a full read, large initializers are never read, and a file the
walker cannot follow (or that is not worth walking) is read the ordinary way."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from archc.errors import SpecError
from archc.frontends.onnx import load_onnx
from archc.frontends.onnx.skim import SKIM_BYTES, read_structure
from archc.ops.weights import total_params


def _mlp(path, hidden: int = 64, layers: int = 3) -> None:
    """x -> (MatMul by a (hidden, hidden) weight + bias, Relu) x layers: large and small initializers."""
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        inits += [numpy_helper.from_array(rng.standard_normal((hidden, hidden)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name=f"/layers.{i}/MatMul"),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"/layers.{i}/Add"),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"], name=f"/act{i}/Relu")]
        x = f"r{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", hidden])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", hidden])], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_large_initializers_are_left_in_the_file_where_they_are(tmp_path):
    path = tmp_path / "mlp.onnx"
    _mlp(path)
    skimmed, full = read_structure(str(path)), onnx.load(str(path))
    data = path.read_bytes()
    assert list(skimmed.graph.node) == list(full.graph.node)
    left = 0
    for mine, theirs in zip(skimmed.graph.initializer, full.graph.initializer):
        assert (mine.name, list(mine.dims), mine.data_type) == (theirs.name, list(theirs.dims), theirs.data_type)
        if len(theirs.raw_data) <= SKIM_BYTES:  # the biases: read
            assert mine == theirs
            continue
        left += 1
        assert mine.data_location == TensorProto.EXTERNAL and not mine.HasField("raw_data")
        entries = {e.key: e.value for e in mine.external_data}
        offset, length = int(entries["offset"]), int(entries["length"])
        assert entries["location"] == "mlp.onnx" and data[offset:offset + length] == theirs.raw_data
    assert left == 3


def test_lint_sees_the_same_model_without_reading_the_weights(tmp_path):
    path = tmp_path / "mlp.onnx"
    _mlp(path)
    structure, full = load_onnx(str(path), weights=False), load_onnx(str(path))
    assert structure.format() == full.format()
    assert total_params(structure) == total_params(full) == 3 * (64 * 64 + 64)
    weight = structure.weights[next(n.name for n in structure.nodes() if n.op == "linear")]["weight"]
    assert weight.shape == (64, 64) and not any(weight.strides)  # a placeholder, no memory behind it


def test_bytes_that_disagree_with_the_dims_are_read_and_refused_as_before(tmp_path):
    path = tmp_path / "mlp.onnx"
    _mlp(path)
    model = onnx.load(str(path))
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]  # one float short
    onnx.save(model, str(path))
    assert read_structure(str(path)) is not None  # the other weights are still left out
    with pytest.raises(SpecError, match="initializer 'w0' cannot be read"):
        load_onnx(str(path), weights=False)


def test_a_file_the_walker_cannot_follow_is_read_the_ordinary_way(tmp_path):
    path = tmp_path / "mlp.onnx"
    _mlp(path)
    data = path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    assert read_structure(str(tmp_path / "cut.onnx")) is None
    with pytest.raises(SpecError, match="cannot read an ONNX model"):
        load_onnx(str(tmp_path / "cut.onnx"), weights=False)
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert read_structure(str(tmp_path / "empty.onnx")) is None


def test_many_small_fields_are_not_worth_walking(tmp_path):
    """A graph of many nodes and small weights: walking would cost more than parsing; it gives up."""
    path = tmp_path / "chain.onnx"
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"], name=f"relu{i}") for i in range(3000)]
    big = numpy_helper.from_array(np.zeros((64, 64), np.float32), "big")
    nodes.append(helper.make_node("Add", ["v3000", "big"], ["y"]))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("v0", TensorProto.FLOAT, [64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])], initializer=[big])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert read_structure(str(path)) is None
    assert len(load_onnx(str(path), weights=False)) == 3003  # (the input, 3000 relus, the add and its parameter)


def test_lint_of_an_onnx_file_imports_only_what_it_uses(tmp_path):
    """A run imports its own command's module only: lint of an ONNX file loads neither torch nor
    the YAML frontend nor the other commands."""
    import subprocess
    import sys

    path = tmp_path / "mlp.onnx"
    _mlp(path)
    code = ("import sys; from archc.cli import main; rc = main(['lint', sys.argv[1], '--format', 'json']); "
            "print([m for m in ('torch', 'archc.frontends.yaml', 'archc.cli.build', 'archc.lowering.torch') "
            "if m in sys.modules], rc, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.stderr.strip().splitlines()[-1] == "[] 0", done.stderr
