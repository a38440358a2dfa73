"""The ONNX importer on hostile models: folding bombs, shape arithmetic without an answer,
broken structure, external data outside the model's folder, corrupt files.

Each ends in a graph (the bomb left symbolic) or a SpecError naming the file and, where
one node is at fault, that node and its index; never a traceback, a hang or a blow-up.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from archc.errors import SpecError
from archc.frontends.onnx import from_onnx, limits, load_onnx
from archc.limits import Limits

F = TensorProto.FLOAT


@pytest.fixture(autouse=True, params=["checker here", "checker forked"])
def checker_way(request, monkeypatch):
    """Every test twice: onnx.checker run before the import, and run in a forked child beside it
    (what a model of checking.FORK_NODES nodes or more gets): the same messages both ways."""
    from archc.frontends.onnx import checking

    monkeypatch.setattr(checking, "FORK_NODES", 0 if request.param == "checker forked" else 1 << 62)
    monkeypatch.setattr(checking, "_single_threaded", lambda: True)  # pytest's process may run torch's threads
    return request.param


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(v), n) for n, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _x(shape=("N", 4)):
    return helper.make_tensor_value_info("x", F, list(shape))


def _y(rank=2):
    return helper.make_tensor_value_info("y", F, [None] * rank)


def _weights(graph) -> int:
    return sum(np.size(a) for params in graph.weights.values() for a in params.values())


@pytest.mark.parametrize("op", ["Tile", "Expand"])
def test_a_constant_tiled_or_expanded_to_1e9_squared_is_not_folded(op):
    model = _model([helper.make_node(op, ["c", "s"], ["big"], name="bomb"),
                    helper.make_node("Add", ["x", "big"], ["y"], name="use")],
                   [_x()], [_y()],
                   [("c", np.ones((1, 1), np.float32)), ("s", np.array([10 ** 9, 10 ** 9], np.int64))])
    with pytest.raises(SpecError) as info:  # a value of 10^18 elements is over the per-tensor limit
        from_onnx(model, "bomb.onnx")
    assert str(info.value) == (
        "bomb.onnx: error: node 'bomb': value 'big' of shape [1000000000, 1000000000] has "
        "1,000,000,000,000,000,000 elements: over the limit of 4,294,967,296 elements per tensor (raise it with "
        f"--max-tensor-elements N or ARCHC_MAX_TENSOR_ELEMENTS=N) (ONNX node #0, {op})")
    graph = from_onnx(model, "bomb.onnx", limits=Limits(max_tensor_elements=10 ** 18))  # raised: kept, unfolded
    kept = [n for n in graph.nodes() if n.op == "onnx_node" and n.attrs["op_type"] == op]
    assert len(kept) == 1 and kept[0].outputs[0].shape == (10 ** 9, 10 ** 9)
    assert _weights(graph) < 100  # only the small inputs are kept, nothing of the 10^18 elements


def test_a_constant_multiplied_by_itself_to_30000_squared_is_not_folded():
    model = _model([helper.make_node("Expand", ["c", "s"], ["e"], name="expand"),
                    helper.make_node("MatMul", ["e", "e"], ["m"], name="square"),
                    helper.make_node("Add", ["x", "m"], ["y"], name="use")],
                   [_x(("N", 30000))], [_y()],
                   [("c", np.ones((1, 1), np.float32)), ("s", np.array([30000, 30000], np.int64))])
    graph = from_onnx(model, "square.onnx")
    assert {n.attrs["op_type"] for n in graph.nodes() if n.op == "onnx_node"} >= {"Expand", "MatMul"}
    assert _weights(graph) < 100


def test_fold_refusal_computes_the_size_before_evaluating():
    node = helper.make_node("ConstantOfShape", ["s"], ["z"])
    why = limits.fold_refusal(node, [np.array([2 ** 31, 2 ** 31], np.int64)], {"": 17})
    assert why is not None and "ARCHC_MAX_FOLD_ELEMENTS" in why and "2147483648x2147483648" in why
    assert limits.fold_refusal(node, [np.array([4, 4], np.int64)], {"": 17}) is None


def test_a_range_of_1e18_elements_does_not_hang_the_import():
    model = _model([helper.make_node("Range", ["a", "b", "c"], ["r"], name="range"),
                    helper.make_node("Cast", ["r"], ["rf"], name="cast", to=F),
                    helper.make_node("Add", ["x", "rf"], ["y"], name="use")],
                   [_x()], [_y()],
                   [("a", np.array(0, np.int64)), ("b", np.array(10 ** 18, np.int64)), ("c", np.array(1, np.int64))])
    with pytest.raises(SpecError, match=r"node 'range': value 'r' of shape \[1000000000000000000\] has "
                                        r"1,000,000,000,000,000,000 elements: over the limit"):
        from_onnx(model, "range.onnx")
    graph = from_onnx(model, "range.onnx", limits=Limits(max_tensor_elements=10 ** 18))
    assert "range" in graph


@pytest.mark.parametrize("shape, shown, elements", [
    ([2 ** 31, 2 ** 31], "[2147483648, 2147483648]", "4,611,686,018,427,387,904"),
    (["N", 2 ** 20, 2 ** 20], "[N, 1048576, 1048576]", "1,099,511,627,776"),  # a symbolic dim counts as 1
])
def test_a_graph_input_over_the_element_limit_is_refused_naming_it(tmp_path, run_archc, shape, shown, elements):
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_x(shape)],
                   [helper.make_tensor_value_info("y", F, shape)])
    onnx.save(model, tmp_path / "big.onnx")
    message = (f"big.onnx: error: graph input 'x' of shape {shown} has {elements} elements: over the limit of "
               "4,294,967,296 elements per tensor (raise it with --max-tensor-elements N or "
               "ARCHC_MAX_TENSOR_ELEMENTS=N)")
    with pytest.raises(SpecError) as info:
        load_onnx(str(tmp_path / "big.onnx"))
    assert str(info.value) == f"{tmp_path}/{message}"
    for command in ("summary", "check", "lint"):
        proc = run_archc(command, "big.onnx", cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr == message + "\n", proc.stderr
    proc = run_archc("summary", "big.onnx", "--max-tensor-elements", str(2 ** 62 + 1), cwd=tmp_path)
    assert proc.returncode == 0 and shown.replace("[", "(").replace("]", ")") in proc.stdout, proc.stderr


def test_an_input_at_the_element_limit_is_accepted():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_x(["N", 2 ** 16, 2 ** 16])], [_y(3)])
    assert from_onnx(model, "edge.onnx").node("x").outputs[0].shape[1:] == (2 ** 16, 2 ** 16)
    with pytest.raises(SpecError, match="graph input 'x' of shape \\[N, 65536, 65536\\] has 4,294,967,296 elements"):
        from_onnx(model, "edge.onnx", limits=Limits(max_tensor_elements=2 ** 32 - 1))


def _shape_arith(op: str, operand: int):
    return _model([helper.make_node("Shape", ["x"], ["s"], name="shape"),
                   helper.make_node(op, ["s", "d"], ["q"], name="arith"),
                   helper.make_node("Reshape", ["x", "q"], ["y"], name="reshape")],
                  [_x((4, 8))], [_y()], [("d", np.array([operand], np.int64))])


def test_shape_arithmetic_dividing_by_zero_names_the_node_and_its_index():
    with pytest.raises(SpecError) as info:
        from_onnx(_shape_arith("Div", 0), "div.onnx")
    assert str(info.value) == ("div.onnx: error: node 'arith': shape arithmetic divides 4 by zero "
                               "(ONNX node #1, Div)")


@pytest.mark.parametrize("tensor_input", [False, True])
def test_an_empty_name_in_place_of_a_required_input_names_the_node(tensor_input):
    # found by the fuzzer: a Concat of shape values with an input '' (the checker lets it pass) was a
    # traceback; an empty name stands only for an absent optional input
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Concat", ["x" if tensor_input else "s", ""], ["c"], axis=0, name="cat"),
             helper.make_node("Identity", ["c"], ["y"])]
    with pytest.raises(SpecError) as info:
        from_onnx(_model(nodes, [_x()], [_y(2 if tensor_input else 1)]), "m.onnx")
    assert str(info.value) == ("m.onnx: error: node 'cat': input 1 ('inputs') is empty (''), but Concat requires "
                               "it: only an optional input may be left out (ONNX node #1, Concat)")


def test_an_absent_optional_input_is_no_error():
    nodes = [helper.make_node("Clip", ["x", "", "hi"], ["y"])]
    graph = from_onnx(_model(nodes, [_x()], [_y()], inits=[("hi", np.float32(1.0))]), "m.onnx")
    assert len(graph.outputs) == 1


def test_shape_arithmetic_beyond_int64_names_the_node():
    with pytest.raises(SpecError) as info:
        from_onnx(_shape_arith("Mul", 2 ** 62), "mul.onnx")
    assert str(info.value).startswith("mul.onnx: error: node 'arith': shape arithmetic gives 4 * "
                                      "4611686018427387904 = 18446744073709551616, beyond int64")
    assert str(info.value).endswith("(ONNX node #1, Mul)")


def test_a_gather_in_a_foreign_domain_is_kept_or_refused_with_its_name():
    model = _model([helper.make_node("Gather", ["x", "i"], ["y"], name="g", domain="com.example")],
                   [_x((4, 8))], [_y()], [("i", np.array([0, 1], np.int64))])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    try:
        graph = from_onnx(model, "foreign.onnx")
    except SpecError as exc:
        assert "node 'g'" in str(exc)
    else:
        assert [n.attrs["domain"] for n in graph.nodes() if n.op == "onnx_node"] == ["com.example"]


def test_a_cycle_is_refused_naming_the_nodes_on_it():
    model = _model([helper.make_node("Relu", ["b"], ["a"], name="first"),
                    helper.make_node("Relu", ["a"], ["b"], name="second"),
                    helper.make_node("Add", ["x", "b"], ["y"], name="use")],
                   [_x()], [_y()])
    with pytest.raises(SpecError) as info:
        from_onnx(model, "cycle.onnx")
    assert str(info.value) == ("cycle.onnx: error: node 'first': input 'b' closes a cycle (first (#0) -> second (#1) "
                               "-> first (#0)); ONNX graphs are acyclic (ONNX node #0, Relu)")


def test_out_of_order_nodes_and_twice_produced_values_name_the_node():
    model = _model([helper.make_node("Relu", ["a"], ["y"], name="late"),
                    helper.make_node("Relu", ["x"], ["a"], name="early")], [_x()], [_y()])
    with pytest.raises(SpecError, match=r"node 'late': input 'a' is produced later, by early \(#1\); ONNX nodes "
                                        r"must be in topological order \(ONNX node #0, Relu\)"):
        from_onnx(model, "order.onnx")
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="one"),
                    helper.make_node("Sigmoid", ["x"], ["y"], name="two")], [_x()], [_y()])
    with pytest.raises(SpecError, match=r"node 'two': output 'y' is already produced by one \(#0\)"):
        from_onnx(model, "twice.onnx")


def test_a_model_without_outputs_is_refused():
    model = _model([helper.make_node("Relu", ["x"], ["r"], name="r")], [_x()], [])
    with pytest.raises(SpecError, match="^none.onnx: error: the model has no graph outputs$"):
        from_onnx(model, "none.onnx")


def test_checker_errors_name_the_node_the_checker_rejects():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="act", alpha=2.0)], [_x()], [_y()])
    with pytest.raises(SpecError) as info:
        from_onnx(model, "attr.onnx")
    assert str(info.value).startswith("attr.onnx: error: node 'act': invalid ONNX model: Unrecognized attribute: alpha")
    assert str(info.value).endswith("(ONNX node #0, Relu)")


def test_an_unknown_element_type_is_a_clean_error():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_x()], [_y()])
    model.graph.input[0].type.tensor_type.elem_type = 99
    with pytest.raises(SpecError) as info:
        from_onnx(model, "dtype.onnx")
    assert str(info.value).startswith("dtype.onnx: error: ")


def _external_model(tmp_path, location: str):
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [_x()], [_y()],
                   [("w", np.ones((4, 3), np.float32))])
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "48")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = tmp_path / "models" / "ext.onnx"
    path.parent.mkdir(exist_ok=True)
    onnx.save_model(model, str(path))
    return str(path)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname", "sub/../../secret.bin"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(np.ones(12, np.float32).tobytes())
    path = _external_model(tmp_path, location)
    with pytest.raises(SpecError) as info:
        load_onnx(path)
    assert str(info.value).startswith(f"{path}: error: tensor 'w': external data '{location}' ")
    assert "outside the model's directory" in str(info.value)


def test_external_data_through_a_link_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(np.ones(12, np.float32).tobytes())
    path = _external_model(tmp_path, "link.bin")
    (tmp_path / "models" / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(SpecError, match="external data 'link.bin' leads outside the model's directory"):
        load_onnx(path)


def test_external_data_whose_location_holds_a_nul_is_refused_naming_it(tmp_path):
    # os.path raised "embedded null byte": a traceback from build, spec and verify (lint reads no weights)
    path = _external_model(tmp_path, "small\0.bin")
    with pytest.raises(SpecError) as info:
        load_onnx(path)
    assert str(info.value) == f"{path}: error: tensor 'w': external data 'small\\0.bin' holds a NUL character"


def test_external_data_inside_the_folder_loads_and_bounds_are_checked(tmp_path):
    path = _external_model(tmp_path, "w.bin")
    (tmp_path / "models" / "w.bin").write_bytes(np.full(12, 2.0, np.float32).tobytes())
    graph = load_onnx(path)
    (weights,) = graph.weights.values()
    assert np.all(weights["weight"] == 2.0)
    (tmp_path / "models" / "w.bin").write_bytes(b"\0" * 8)
    with pytest.raises(SpecError, match=r"external data 'w.bin' asks for bytes 0..48 of a 8-byte file"):
        load_onnx(path)


def test_truncated_and_bit_flipped_files_are_errors_naming_the_file(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_x()], [_y()])
    data = model.SerializeToString()
    for i, broken in enumerate([data[: len(data) // 2], bytes(b ^ 0xFF for b in data[:40]) + data[40:]]):
        path = tmp_path / f"broken{i}.onnx"
        path.write_bytes(broken)
        with pytest.raises(SpecError) as info:
            load_onnx(str(path))
        assert str(info.value).startswith(f"{path}: error: ")
    with pytest.raises(SpecError, match="not a regular file"):
        load_onnx(str(tmp_path))


def test_a_negative_input_dim_is_refused_naming_the_input():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_x(("N", -1))], [_y()])
    with pytest.raises(SpecError, match=r"^neg.onnx: error: graph input 'x' has a negative dim: \['N', -1\]$"):
        from_onnx(model, "neg.onnx")


def test_zero_dims_and_non_positive_groups_stay_onnx_nodes_or_are_located_errors():
    """A layer over an empty input, or a conv with group -3, is no native layer (no init bound)."""
    matmul = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [_x(("N", 0))], [_y()],
                    [("w", np.ones((0, 3), np.float32))])
    conv = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=-3)],
                  [_x(("N", 4, 8, 8))], [_y(4)], [("w", np.ones((4, 4, 3, 3), np.float32))])
    for model in (matmul, conv):
        try:
            graph = from_onnx(model, "odd.onnx")
        except SpecError as exc:
            assert str(exc).startswith("odd.onnx: error: node '")
        else:
            assert [n.op for n in graph.nodes() if n.op != "input"] == ["onnx_node"]


def test_a_node_name_that_is_not_utf8_is_refused_with_its_index(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="ab")], [_x()], [_y()])
    data = model.SerializeToString()
    path = tmp_path / "bytes.onnx"
    path.write_bytes(data.replace(b"\x1a\x02ab", b"\x1a\x02\xecb"))  # field 3 of the node: its name
    with pytest.raises(SpecError, match=r"the name of ONNX node #0 is not valid UTF-8: b'\\xecb'"):
        load_onnx(str(path))


def _relu(inputs, outputs, name):
    return helper.make_node("Relu", inputs, outputs, name=name)


#: models with each structural defect check_structure names (a large initializer becomes a graph
#: input of the checked skeleton, so it is one of the cases)
_STRUCTURAL_DEFECTS = {
    "output is a graph input": ([_relu(["x"], ["x"], "r")], [_x()], [_x()], ()),
    "output is a small initializer": ([_relu(["x"], ["w"], "r")], [_x()], [_y()], [("w", np.ones(4, np.float32))]),
    "output is a large initializer": ([_relu(["x"], ["w"], "r")], [_x()], [_y()],
                                      [("w", np.ones((4, 300), np.float32))]),
    "output produced twice": ([_relu(["x"], ["y"], "a"), _relu(["x"], ["y"], "b")], [_x()], [_y()], ()),
    "input never produced": ([_relu(["nowhere"], ["y"], "r")], [_x()], [_y()], ()),
    "input produced later": ([_relu(["a"], ["y"], "late"), _relu(["x"], ["a"], "early")], [_x()], [_y()], ()),
    "node reading its own output": ([_relu(["y"], ["y"], "r")], [_x()], [_y()], ()),
    "cycle": ([_relu(["b"], ["a"], "first"), _relu(["a"], ["b"], "second"),
               helper.make_node("Add", ["x", "b"], ["y"], name="use")], [_x()], [_y()], ()),
}


@pytest.mark.parametrize("opset", [17, 11])  # 11: check_structure runs before the version converter
@pytest.mark.parametrize("defect", sorted(_STRUCTURAL_DEFECTS))
def test_every_structural_defect_is_refused_by_the_checker_and_named_by_check_structure(defect, opset):
    """limits.check_model reads the names only when something is wrong, relying on the ONNX checker
    to refuse every defect check_structure names: this holds onnx to that, and the message is
    still check_structure's (node, index, why)."""
    from archc.errors import Location
    from archc.frontends.onnx.importer import _skeleton

    model = _model(*_STRUCTURAL_DEFECTS[defect], opset=opset)
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(_skeleton(model))
    with pytest.raises(SpecError) as expected:
        limits.check_structure(model.graph, Location("bad.onnx"))
    with pytest.raises(SpecError) as info:
        from_onnx(model, "bad.onnx")
    assert str(info.value) == str(expected.value)
    assert "(ONNX node #" in str(info.value)


def test_a_structural_defect_is_named_before_a_checker_error_or_missing_outputs():
    late_and_bad = [helper.make_node("Relu", ["a"], ["y"], name="late", alpha=2.0), _relu(["x"], ["a"], "early")]
    with pytest.raises(SpecError, match="node 'late': input 'a' is produced later, by early"):
        from_onnx(_model(late_and_bad, [_x()], [_y()]), "bad.onnx")
    cycle = [_relu(["b"], ["a"], "first"), _relu(["a"], ["b"], "second")]
    with pytest.raises(SpecError, match="node 'first': input 'b' closes a cycle"):
        from_onnx(_model(cycle, [_x()], []), "bad.onnx")


def _with_bytes(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """``model`` with every occurrence of the text ``name`` made invalid UTF-8 in its bytes (its last
    character replaced by a byte that starts no UTF-8 sequence here, so the lengths stay)."""
    data = model.SerializeToString()
    assert name.encode() in data
    return onnx.ModelProto.FromString(data.replace(name.encode(), name.encode()[:-1] + b"\xec"))


_NAMED = _model([helper.make_node("MatMul", ["xq", "wq"], ["hq"], name="nq"),
                 helper.make_node("LeakyRelu", ["hq"], ["yq"], name="rq", domain="dq", alphq=0.1)],
                [helper.make_tensor_value_info("xq", F, ["N", 4]), helper.make_tensor_value_info("iq", F, [1])],
                [helper.make_tensor_value_info("yq", F, ["N", 300])],
                [("wq", np.ones((4, 300), np.float32)), ("sq", np.ones(4, np.float32)),
                 ("bq", np.ones((4, 300), np.float32))])
_NAMED.graph.value_info.extend([helper.make_tensor_value_info("hq", F, ["N", 300]),
                                helper.make_tensor_value_info("vq", F, [1])])


@pytest.mark.parametrize("name, message", [
    ("nq", "the name of ONNX node #0 is not valid UTF-8: b'n\\xec'"),
    ("xq", "the input of ONNX node #0 is not valid UTF-8: b'x\\xec'"),
    ("wq", "the input of ONNX node #0 is not valid UTF-8: b'w\\xec'"),
    ("hq", "the output of ONNX node #0 is not valid UTF-8: b'h\\xec'"),
    ("yq", "the output of ONNX node #1 is not valid UTF-8: b'y\\xec'"),
    ("dq", "the domain of ONNX node #1 is not valid UTF-8: b'd\\xec'"),
    ("alphq", "the attribute name of ONNX node #1 is not valid UTF-8: b'alph\\xec'"),
    ("LeakyRelu", "the op_type of ONNX node #1 is not valid UTF-8: b'LeakyRel\\xec'"),
    ("iq", "the name of a graph input is not valid UTF-8: b'i\\xec'"),
    ("sq", "the name of a initializer is not valid UTF-8: b's\\xec'"),
    ("bq", "the name of a initializer is not valid UTF-8: b'b\\xec'"),  # large: not in the checked skeleton's initializers
    ("vq", "the name of a value_info is not valid UTF-8: b'v\\xec'"),
])
def test_a_name_that_is_not_utf8_is_refused_in_every_field(name, message):
    model = _with_bytes(_NAMED, name)
    assert not limits._names_are_text(model.SerializeToString())
    with pytest.raises(SpecError) as info:
        from_onnx(model, "bytes.onnx")
    assert str(info.value) == f"bytes.onnx: error: {message}"
    # the file's bytes at hand (as lint reads a file): the rows' mirror proves the nodes' strings, the rest is read
    with pytest.raises(SpecError) as info:
        from_onnx(model, "bytes.onnx", data=model.SerializeToString())
    assert str(info.value) == f"bytes.onnx: error: {message}"


def test_initializer_names_the_columns_decoded_are_not_read_again():
    small = _model([helper.make_node("Add", ["xq", "sq"], ["yq"], name="aq")],
                   [helper.make_tensor_value_info("xq", F, ["N", 4])], [helper.make_tensor_value_info("yq", F, ["N", 4])],
                   [("sq", np.ones(4, np.float32)), ("uq", np.ones(4, np.float32))])
    data = _with_bytes(small, "uq").SerializeToString()
    assert not limits._names_are_text(data) and not limits._names_are_text(data, nodes_text=True)
    assert limits._names_are_text(data, nodes_text=True, initializers_text=True)  # (proved by whoever decoded them)
    assert not limits._names_are_text(_with_bytes(small, "xq").SerializeToString(), initializers_text=True)
    # the columns cannot decode the name, so they prove nothing: the file is refused as before
    with pytest.raises(SpecError, match="the name of a initializer is not valid UTF-8"):
        from_onnx(onnx.ModelProto.FromString(data), "bytes.onnx", data=data)
    assert from_onnx(small, "ok.onnx", data=small.SerializeToString()).outputs


def test_text_outside_the_names_is_not_read():
    model = _model([_relu(["x"], ["y"], "r")], [_x()], [_y()])
    model.doc_string = "docq"
    assert limits._names_are_text(model.SerializeToString())
    assert limits._names_are_text(_with_bytes(model, "docq").SerializeToString())  # a doc string: not a name
