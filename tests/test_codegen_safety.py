"""No string from a spec or an ONNX file becomes code (issue 8): hostile names, docs, labels
and attribute values go through archc.pysource into every generated output, which must parse,
run where it is run, and never execute what the string carried."""
from __future__ import annotations

import ast
import math
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from archc import loads_spec
from archc.ir import Graph, Node, TensorType, Value
from archc.lowering.onnx import to_onnx
from archc.lowering.torch import build_module, generate_source
from archc.pysource import comment, identifier, is_identifier, literal, one_line, plain_text


def _payload(marker: Path) -> str:
    """Python that, if it ever ran, would create ``marker``."""
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def _hostile(marker: Path) -> list[str]:
    code = _payload(marker)
    return [
        f"m\n{code}\n#",
        f"m\r{code}\r#",
        f"m\r\n{code}\r\n#",
        f"m\x0b{code}", f"m\x0c{code}", f"m\x85{code}", f"m\u2028{code}", f"m\u2029{code}",
        f"m\x00{code}",
        f"'''\n{code}\n'''", f'"""\n{code}\n"""', f"\\\n{code}",
        f"x'); {code}; ('", f'x"); {code}; ("',
        "\u202e" + code,              # a bidi override
        "ﬁ", "class", "self", "torch", "__init__", "1abc", "", "a b", "é",
    ]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "INJECTED-CODE-RAN"
    yield path
    assert not path.exists(), "a hostile string was executed as code"


# -- the escaping functions -------------------------------------------------------------------------

def test_literals_evaluate_to_their_value_including_non_finite_floats():
    for value in [0, -3, 2 ** 70, True, None, 1e-5, -0.0, "a'b\"c\n\x00\u2028", (1,), [1.5, -2], ((1, 2), "x")]:
        assert eval(literal(value)) == value  # noqa: S307 - the test checks what the source means
    assert literal(math.inf) == 'float("inf")' and eval(literal(-math.inf)) == -math.inf  # noqa: S307
    assert math.isnan(eval(literal(math.nan)))  # noqa: S307
    with pytest.raises(TypeError):
        literal({"a": 1})
    with pytest.raises(TypeError):
        literal(object())


def test_identifiers_are_ascii_non_keywords():
    assert is_identifier("conv1") and not is_identifier("class") and not is_identifier("ﬁ")
    assert not is_identifier("1a") and not is_identifier("a\nb") and not is_identifier("")
    for name in ["a\nb", "class", "1abc", "", "ﬁ", "a.b", "x'); import os; ('"]:
        assert is_identifier(identifier(name)), name


def test_one_line_text_has_no_line_break_or_invisible_character(marker):
    for text in _hostile(marker):
        line = one_line(text)
        assert len(line.splitlines()) <= 1 and "\x00" not in line and "\u202e" not in line
        for lines in (comment(text), plain_text(text).split("\n")):
            for piece in lines:
                assert len(piece.splitlines()) <= 1
        assert all(ast.parse(c).body == [] for c in comment(text))  # a comment and nothing else


# -- every generator, fed hostile strings -----------------------------------------------------------

def _hostile_graph(name: str, doc: str, node_name: str) -> Graph:
    """input -> linear -> layernorm(eps=nan) -> scale(inf) -> add, with hostile strings everywhere."""
    graph = Graph(name)
    graph.doc = doc
    t = TensorType(("N", 4), "float32")
    graph.add(Node(name="x", op="input", attrs={"shape": ("N", 4), "dtype": "float32"}, outputs=[t]))
    graph.add(Node(name=node_name, op="linear", attrs={"out_features": 4, "bias": True},
                   inputs=[Value("x")], outputs=[t]))
    graph.add(Node(name=node_name + "_n", op="layernorm",
                   attrs={"dims": 1, "eps": math.nan, "elementwise_affine": True, "bias": True},
                   inputs=[Value(node_name)], outputs=[t]))
    graph.add(Node(name=node_name + "\n_2", op="scale", attrs={"factor": math.inf},
                   inputs=[Value(node_name + "_n")], outputs=[t]))
    graph.add(Node(name="add", op="add", inputs=[Value(node_name + "\n_2"), Value("x")], outputs=[t]))
    graph.outputs[node_name] = Value("add")
    return graph


def test_hostile_names_docs_and_labels_through_the_pytorch_and_onnx_generators(marker):
    import torch

    for text in _hostile(marker):
        graph = _hostile_graph(text, text, "n" + text)
        labels = {"add": text}  # a skip label, as analysis.skips.merge_labels gives them
        source = generate_source(graph, labels=labels, spec=text, overrides={text: text})
        ast.parse(source)
        module = build_module(graph, labels=labels)  # executes the generated source
        out = module(torch.ones(2, 4))
        assert out.shape == (2, 4)
        model = to_onnx(graph, labels=labels)
        onnx.checker.check_model(model, full_check=True)
        for node in model.graph.node:
            assert len(node.doc_string.splitlines()) <= 1


def test_non_finite_attribute_values_are_written_as_floats():
    # A spec cannot give these (check refuses non-finite attributes); a graph built in code can.
    graph = loads_spec("""
inputs: {x: [N, 4]}
nodes:
  - {op: layernorm}
  - {op: scale, factor: 2}
  - {op: scale, factor: 3}
  - {op: dropout, p: 0.5}
""")
    graph.node("layernorm").attrs["eps"] = math.nan
    graph.node("scale").attrs["factor"] = math.inf
    graph.node("scale_1").attrs["factor"] = -math.inf
    source = generate_source(graph)
    assert 'eps=float("nan")' in source and '* float("inf")' in source and '* -float("inf")' in source
    ast.parse(source)
    build_module(graph)  # the file runs: no bare 'nan' or 'inf' names


# -- the onnx frontend: a model's names and doc strings never become code ---------------------------------

def _hostile_onnx(path: Path, marker: Path) -> None:
    code = _payload(marker)
    w = numpy_helper.from_array(np.ones((2, 3), dtype=np.float32), name=f"w\n{code}")
    nodes = [
        helper.make_node("MatMul", ["x", w.name], [f"y\n{code}"], name=f"/mm\n{code}\n#/MatMul",
                         doc_string=f"doc\n{code}"),
        helper.make_node("Relu", [f"y\n{code}"], ["out"], name=f"relu'); {code}; ('"),
    ]
    graph = helper.make_graph(nodes, f"g\n{code}\n#", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])], [w],
                              doc_string=f"graph doc\n{code}\n#")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], doc_string=f"\n{code}\n#")
    onnx.checker.check_model(model)
    onnx.save(model, path)


def test_onnx_model_names_and_doc_strings_never_become_code(tmp_path, marker):
    from archc.frontends.onnx import load_onnx

    path = tmp_path / "model.onnx"
    _hostile_onnx(path, marker)
    graph = load_onnx(str(path))
    source = generate_source(graph)
    ast.parse(source)
    build_module(graph)
    onnx.checker.check_model(to_onnx(graph), full_check=True)


# -- end to end, through the real entry point ----------------------------------------------------------

def test_hostile_spec_name_through_verify_run_and_build(run_archc, tmp_path, marker):
    spec = tmp_path / "inj.yaml"
    name, doc = _quoted("m\n" + _payload(marker) + "\n#"), _quoted("doc\n" + _payload(marker))
    spec.write_text(f"name: {name}\ndoc: {doc}\n"
                    "inputs: {x: [N, 4]}\nnodes:\n  - {name: l, op: linear, out_features: 2}\n")
    verify = run_archc("verify", str(spec))
    assert verify.returncode == 0, verify.stderr
    run = run_archc("run", str(spec), "--runtime", "torch")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "inj.py"
    build = run_archc("build", str(spec), "--target", "torch", "-o", str(out))
    assert build.returncode == 0, build.stderr
    ast.parse(out.read_text())


def test_onnx_file_named_with_a_newline_through_verify_and_build(run_archc, tmp_path, marker):
    # A file name cannot hold '/': the payload names the marker relative to the working directory.
    relative = f"__import__('pathlib').Path({marker.name!r}).touch()"
    path = tmp_path / ("m\n" + relative + "\n#.onnx")
    _hostile_onnx(path, marker)
    out = tmp_path / "from_onnx.py"
    build = run_archc("build", path.name, "--target", "torch", "-o", str(out), cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    ast.parse(out.read_text())
    verify = run_archc("verify", path.name, cwd=tmp_path)
    assert verify.returncode == 0, verify.stderr


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar for ``text`` (JSON strings are YAML)."""
    import json

    return json.dumps(text)


def test_hostile_strings_fixture_is_not_vacuous(tmp_path):
    """The payload does run when it is executed, so the marker checks above can fail."""
    target = tmp_path / "INJECTED-CODE-RAN"
    exec(_payload(target))  # noqa: S102 - proves the payload works
    assert target.exists()
    os.remove(target)
