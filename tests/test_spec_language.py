"""The spec language: chaining, blocks, repeat, overrides, conditions, params, expressions, shapes."""
from __future__ import annotations

import re

import pytest

from archc import SpecError, loads_spec
from archc.ir import Value
from archc.ops.weights import total_params

BASIC = """
name: tiny
params: {width: 8, depth: 2, classes: 5}
inputs:
  x: [N, 3, 16, 16]
blocks:
  res:
    params: {planes: null, stride: 1}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 3, stride: stride, padding: 1, bias: false}
      - {name: bn1, op: batchnorm}
      - {name: relu, op: relu}
      - {name: conv2, op: conv, out_channels: planes, kernel_size: 3, padding: 1, bias: false}
      - {name: proj, op: conv, in: x, out_channels: planes, kernel_size: 1, stride: stride,
         if: "stride != 1 or channels(x) != planes", else: x}
      - {name: add, op: add, in: [conv2, proj]}
nodes:
  - {name: stem, op: conv, out_channels: width, kernel_size: 3, padding: 1}
  - {name: stage, block: res, repeat: depth, planes: width * 2, overrides: {0: {stride: 2}}}
  - {op: global_avgpool}
  - {op: flatten}
  - {name: fc, op: linear, out_features: classes}
"""


def test_sequential_chaining_and_hierarchical_names():
    g = loads_spec(BASIC)
    names = [n.name for n in g.nodes()]
    assert names[:3] == ["x", "stem", "stage.0.conv1"]
    assert g.node("stage.0.conv1").inputs == [Value("stem")]
    assert g.node("stage.0.bn1").inputs == [Value("stage.0.conv1")]
    # the second repetition takes the first one's output
    assert g.node("stage.1.conv1").inputs == [Value("stage.0.add")]
    assert g.outputs == {"output": Value("fc")}


def test_repeat_overrides_and_conditional_projection():
    g = loads_spec(BASIC)
    assert g.node("stage.0.conv1").attrs["stride"] == 2
    assert g.node("stage.1.conv1").attrs["stride"] == 1
    # channels change and stride 2 in repetition 0: projection present
    assert "stage.0.proj" in g
    assert g.node("stage.0.add").inputs == [Value("stage.0.conv2"), Value("stage.0.proj")]
    # repetition 1 keeps the shape: no projection; 'proj' stands for x (the block input)
    assert "stage.1.proj" not in g
    assert g.node("stage.1.add").inputs == [Value("stage.1.conv2"), Value("stage.0.add")]


def test_shape_inference_with_symbolic_batch():
    g = loads_spec(BASIC)
    assert g.node("stem").type.shape == ("N", 8, 16, 16)
    assert g.node("stage.0.add").type.shape == ("N", 16, 8, 8)
    assert g.node("fc").type.shape == ("N", 5)


def test_overrides_change_parameters_and_counts():
    small = loads_spec(BASIC)
    wide = loads_spec(BASIC, overrides={"width": 16, "depth": 3})
    assert wide.node("stem").type.shape[1] == 16
    assert "stage.2.add" in wide and "stage.2.add" not in small
    assert total_params(wide) > total_params(small)


def test_unnamed_nodes_get_op_names():
    g = loads_spec(BASIC)
    assert "global_avgpool" in g and "flatten" in g


def test_made_up_names_avoid_every_name_of_the_scope_and_each_other():
    spec = """
inputs: {x: [N, 4]}
nodes:
  - {op: relu}
  - {op: relu}
  - {name: relu_1, op: relu}
  - {op: relu}
"""
    assert [n.name for n in loads_spec(spec).nodes()] == ["x", "relu", "relu_2", "relu_1", "relu_3"]
    failing = "inputs: {x: [N, 4]}\nnodes:\n  - {op: linear}\n  - {op: linear}\n"
    with pytest.raises(SpecError) as exc:  # a failed node keeps its name: the next one is linear_1
        loads_spec(failing)
    assert [d.node for d in exc.value.diagnostics] == ["linear", "linear_1"]


def test_index_and_let_in_expressions():
    g = loads_spec("""
params: {width: 4}
let: {double: width * 2}
inputs: {x: [N, 3, 9, 9]}
nodes:
  - {name: c, op: conv, repeat: 3, out_channels: "double + index", kernel_size: 3, padding: 1,
     stride: "2 if index == 0 else 1"}
""")
    assert [g.node(f"c.{i}").attrs["out_channels"] for i in range(3)] == [8, 9, 10]
    assert g.node("c.0").type.shape == ("N", 8, 5, 5)


def test_blocks_using_blocks_and_multiple_inputs_outputs():
    g = loads_spec("""
inputs:
  a: [N, 4, 8, 8]
  b: {shape: [N, 4, 8, 8], dtype: float32}
blocks:
  unit:
    params: {c: null}
    nodes:
      - {name: conv, op: conv, out_channels: c, kernel_size: 1}
      - {name: act, op: relu}
  pair:
    params: {c: 4}
    inputs: [p, q]
    outputs: [left, right]
    nodes:
      - {name: left, block: unit, in: p, c: c}
      - {name: right, block: unit, in: q, c: c * 2}
nodes:
  - {name: both, block: pair, in: [a, b]}
  - {name: cat, op: concat, in: ["both:0", "both:right"]}
outputs: {merged: cat, first: "both:left"}
""")
    assert g.node("both.left.conv").inputs == [Value("a")]
    assert g.node("both.right.conv").inputs == [Value("b")]
    assert g.node("cat").type.shape == ("N", 12, 8, 8)
    assert set(g.outputs) == {"merged", "first"}
    assert g.inputs == ["a", "b"]
    assert [s.block for s in g.node("both.left.conv").scope] == ["pair", "unit"]


def test_recursive_block_with_condition_terminates():
    g = loads_spec("""
inputs: {x: [N, 2, 16, 16]}
blocks:
  level:
    params: {depth: 1}
    nodes:
      - {name: down, op: maxpool, kernel_size: 2}
      - {name: inner, block: level, depth: depth - 1, if: depth > 1}
      - {name: conv, op: conv, out_channels: 2, kernel_size: 1}
nodes:
  - {name: hg, block: level, depth: 3}
""")
    assert "hg.inner.inner.down" in g and "hg.inner.inner.inner.down" not in g
    assert g.node("hg.conv").type.shape == ("N", 2, 2, 2)


def test_include_blocks_from_another_file(tmp_path):
    (tmp_path / "lib.yaml").write_text("""
blocks:
  unit:
    params: {c: 4}
    nodes: [{name: conv, op: conv, out_channels: c, kernel_size: 1}]
""")
    spec = tmp_path / "m.yaml"
    spec.write_text("include: lib.yaml\ninputs: {x: [N, 2, 4, 4]}\nnodes: [{name: u, block: unit, c: 3}]\n")
    from archc import load_spec

    g = load_spec(str(spec))
    assert g.node("u.conv").type.shape == ("N", 3, 4, 4)


def test_string_interpolation_and_aliases():
    g = loads_spec("""
params: {pad: same}
inputs: {x: [N, 2, 5, 5]}
nodes:
  - {name: c, op: conv2d, out_channels: 2, kernel_size: 3, padding: "${pad}"}
""")
    assert g.node("c").op == "conv" and g.node("c").type.shape == ("N", 2, 5, 5)


def test_ir_printer_one_line_per_node():
    g = loads_spec(BASIC)
    text = g.format()
    lines = text.splitlines()
    assert lines[0] == "graph tiny(%x: (N, 3, 16, 16)):"
    assert "  %stage.0.add : (N, 16, 8, 8) = add(%stage.0.conv2, %stage.0.proj)" in lines
    assert lines[-1] == "  return output=%fc"
    assert len(lines) == len(g) + 1  # header + every non-input node + return


def test_x_plus_x_is_a_multigraph_edge():
    g = loads_spec("inputs: {x: [N, 4]}\nnodes: [{name: twice, op: add, in: [x, x]}]\n")
    assert g.nx.number_of_edges("x", "twice") == 2


def test_spec_is_data_no_python_objects():
    with pytest.raises(SpecError, match="not allowed|unsupported YAML value"):
        loads_spec("inputs: !!python/object/apply:os.system ['echo hi']\nnodes: []\n")


DENSE = """
inputs: {x: [N, 4, 8, 8]}
blocks:
  dense_layer:
    params: {growth: 2}
    inputs: [features...]
    nodes:
      - {name: cat, op: concat, in: features}
      - {name: norm1, op: batchnorm}
      - {name: conv1, op: conv, out_channels: growth, kernel_size: 3, padding: 1}
  dense_block:
    params: {layers: 3, growth: 2}
    nodes:
      - {name: layer, block: dense_layer, repeat: layers, instance_name: "denselayer${index + 1}",
         in: [x, "layer[*]"], growth: growth}
      - {name: out, op: concat, in: [x, "layer[*]"]}
nodes:
  - {name: block, block: dense_block, layers: 3}
"""


def test_dense_repetition_sees_every_earlier_output():
    g = loads_spec(DENSE)
    assert [v.node for v in g.node("block.denselayer1.cat").inputs] == ["x"]
    assert [v.node for v in g.node("block.denselayer3.cat").inputs] == [
        "x", "block.denselayer1.conv1", "block.denselayer2.conv1"]
    assert [v.node for v in g.node("block.out").inputs] == [
        "x", "block.denselayer1.conv1", "block.denselayer2.conv1", "block.denselayer3.conv1"]
    assert g.node("block.out").type.shape == ("N", 10, 8, 8)


def test_variadic_block_input_needs_in_position():
    with pytest.raises(SpecError, match="'features' is a variadic input: use it in 'in'"):
        loads_spec(DENSE.replace("in: features}", "in: features}\n      - {name: z, op: relu, in: features:0}"))


def test_star_reference_to_unrepeated_node():
    with pytest.raises(SpecError, match=r"'stem\[\*\]': 'stem' is not a repeated node"):
        loads_spec("inputs: {x: [N, 2]}\nnodes:\n  - {name: stem, op: relu}\n"
                   "  - {name: c, op: concat, in: ['stem[*]']}\n")


PROFILED = """
params: {width: 8, depth: 1}
profiles:
  small: {width: 4}
  large: {width: 32, depth: 3}
inputs: {x: [N, 3, 8, 8]}
nodes:
  - {name: c, op: conv, repeat: depth, out_channels: width, kernel_size: 1}
"""


def test_profiles_select_parameter_sets_and_set_overrides_win():
    assert loads_spec(PROFILED).node("c.0").type.shape[1] == 8
    large = loads_spec(PROFILED, profile="large")
    assert large.node("c.2").type.shape[1] == 32
    assert loads_spec(PROFILED, profile="large", overrides={"width": 16}).node("c.0").type.shape[1] == 16


def test_unknown_profile_is_reported_with_choices():
    with pytest.raises(SpecError) as info:
        loads_spec(PROFILED, "m.yaml", profile="smal")
    assert str(info.value) == ("m.yaml:4:3: error: unknown profile 'smal'; the spec defines: small, large "
                               "(did you mean 'small'?)")


def test_profile_setting_unknown_parameter():
    with pytest.raises(SpecError, match="profile 'small' sets unknown parameter 'widht'"):
        loads_spec(PROFILED.replace("small: {width: 4}", "small: {widht: 4}"), profile="small")


@pytest.mark.parametrize("profile", [None, "large"])
def test_a_profile_not_chosen_is_checked_too(profile):
    # a misspelt parameter in a profile nobody ran passed check and build
    with pytest.raises(SpecError) as info:
        loads_spec(PROFILED.replace("small: {width: 4}", "small: {widht: 4}"), "m.yaml", profile=profile)
    assert "error: profile 'small' sets unknown parameter 'widht' (did you mean 'width'?)" in str(info.value)


ALTERNATIVES = """
params: {norm_first: false, act: relu}
inputs: {x: [N, 4]}
nodes:
  - {name: norm, op: layernorm, if: norm_first}
  - {name: fc, op: linear, out_features: 4}
  - {name: act, op: "${act}"}
  - {name: norm, op: layernorm, if: not norm_first}
  - {name: out, op: add, in: [x, norm]}
"""


def test_alternatives_switched_by_if_may_share_a_name():
    post = loads_spec(ALTERNATIVES)
    assert [n.name for n in post.nodes()] == ["x", "fc", "act", "norm", "out"]
    assert post.node("out").inputs == [Value("x"), Value("norm")]
    pre = loads_spec(ALTERNATIVES, overrides={"norm_first": True})
    assert [n.name for n in pre.nodes()] == ["x", "norm", "fc", "act", "out"]
    assert pre.node("fc").inputs == [Value("norm")]
    # the kept alternative keeps the name: the left-out one does not rebind it
    assert pre.node("out").inputs == [Value("x"), Value("norm")]


ADJACENT_ALTERNATIVES = """
params: {three: true}
inputs: {x: [N, 4]}
nodes:
  - {name: a, op: linear, in: x, out_features: 4}
  - {name: b, op: linear, in: x, out_features: 4}
  - {name: c, op: linear, in: x, out_features: 4}
  - {name: sum, op: add, in: [a, b, c], if: three}
  - {name: sum, op: add, in: [a, b], if: "not three"}
  - {name: out, op: relu}
"""


@pytest.mark.parametrize("three, terms", [(True, ["a", "b", "c"]), (False, ["a", "b"])])
def test_a_left_out_alternative_leaves_the_chain_to_the_kept_one(three, terms):
    # the next node chains from the kept sum, never from the left-out alternative's first input: HRNet's
    # fusion of two or three branches read relu(y0) instead of relu(y0 + up(y1) + up(y2)), silently
    g = loads_spec(ADJACENT_ALTERNATIVES, overrides={"three": three})
    assert g.node("sum").inputs == [Value(t) for t in terms]
    assert g.node("out").inputs == [Value("sum")]


def test_two_kept_nodes_of_one_name_clash():
    with pytest.raises(SpecError, match="duplicate node name 'norm' \\(two nodes of this name are both kept\\)"):
        loads_spec(ALTERNATIVES.replace("if: not norm_first", "if: true").replace(
            "{norm_first: false", "{norm_first: true"))


def test_op_chosen_by_a_parameter():
    g = loads_spec(ALTERNATIVES, overrides={"act": "gelu"})
    assert g.node("act").op == "gelu"
    with pytest.raises(SpecError, match="unknown op 'os.system'"):
        loads_spec(ALTERNATIVES, overrides={"act": "os.system"})


def test_one_graph_output_per_repetition():
    text = """
params: {stacks: 2}
inputs: {x: [N, 4]}
blocks:
  stage:
    outputs: [feat, head]
    nodes:
      - {name: feat, op: linear, out_features: 4}
      - {name: head, op: linear, out_features: 2}
nodes:
  - {name: stack, block: stage, repeat: stacks}
outputs:
  heads: "stack[*]:head"
"""
    assert list(loads_spec(text).outputs) == ["heads0", "heads1"]
    g = loads_spec(text, overrides={"stacks": 3})
    assert g.outputs == {f"heads{i}": Value(f"stack.{i}.head") for i in range(3)}
    listed = loads_spec(text.replace('heads: "stack[*]:head"', '["stack[*]:head"]'))
    assert list(listed.outputs) == ["stack_0_head", "stack_1_head"]
    with pytest.raises(SpecError, match="'fc\\[\\*\\]:head': 'fc' is not a repeated node"):
        loads_spec(text.replace("stack[*]:head", "fc[*]:head"))


def test_names_may_hold_a_hyphen_like_pytorch_module_names():
    """torchvision's RegNet names its blocks 'block1-0': a node or instance name may hold '-'."""
    from archc.lowering.torch import build_module

    g = loads_spec("""
inputs: {x: [N, 4]}
blocks:
  unit: {nodes: [{name: fc-a, op: linear, out_features: 4}]}
nodes:
  - {name: u, block: unit, repeat: 2, instance_name: "block1-${index}"}
  - {name: out-1, op: relu, in: block1-0}
""")
    assert [n.name for n in g.nodes()] == ["x", "block1-0.fc-a", "block1-1.fc-a", "out-1"]
    assert g.node("out-1").inputs == [Value("block1-0.fc-a")]
    assert list(build_module(g).state_dict()) == ["block1-0.fc-a.weight", "block1-0.fc-a.bias",
                                                  "block1-1.fc-a.weight", "block1-1.fc-a.bias"]


def test_a_parameter_holding_a_mapping_is_refused_where_it_is_written(tmp_path, run_archc):
    # (a deleted 'profiles:' line turns the profiles into parameters; the generated module's constructor
    # takes each parameter as a Python literal, which a mapping is not)
    text = "params:\n  width: 8\n  small: {width: 4}\ninputs: {x: [N, 3, 8, 8]}\n" \
           "nodes:\n  - {name: c, op: conv, out_channels: width, kernel_size: 1}\n"
    with pytest.raises(SpecError) as info:
        loads_spec(text, "m.yaml")
    assert "m.yaml:3:10: error: parameter 'small' must default to a number, a string, true/false, null or a " \
           "list of those, not a mapping" in str(info.value)
    with pytest.raises(SpecError, match="profile 'large' sets 'width' to a list holding a mapping"):
        loads_spec(PROFILED.replace("large: {width: 32, depth: 3}", "large: {width: [{a: 1}]}"), profile="large")
    spec = tmp_path / "m.yaml"
    spec.write_text("archc: 1\nname: m\n" + text)
    proc = run_archc("build", str(spec), "-o", str(tmp_path / "m.py"))
    assert proc.returncode == 2 and "parameter 'small' must default to" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.py").exists()


PARALLEL = """
params: {rates: [1, 2, 3]}
inputs: {x: [N, 4, 8, 8]}
blocks:
  atrous:
    params: {rate: 1}
    nodes:
      - {name: conv, op: conv, out_channels: 2, kernel_size: 3, padding: rate, dilation: rate, bias: false}
      - {name: bn, op: batchnorm}
nodes:
  - {name: stem, op: conv, out_channels: 6, kernel_size: 1}
  - {name: aspp, block: atrous, in: stem, repeat: "len(rates)", parallel: true, rate: "rates[index]"}
  - {name: cat, op: concat, in: ["aspp[*]"]}
"""


def test_parallel_repetitions_all_read_the_nodes_inputs():
    # ASPP: every branch reads the stem (in series the second would read the first's output,
    # and its conv would take 2 channels, not 6)
    g = loads_spec(PARALLEL)
    for i, rate in enumerate((1, 2, 3)):
        assert g.node(f"aspp.{i}.conv").inputs == [Value("stem")]
        assert g.node(f"aspp.{i}.conv").attrs["dilation"] == rate
    assert [v.node for v in g.node("cat").inputs] == ["aspp.0.bn", "aspp.1.bn", "aspp.2.bn"]
    assert total_params(g) == 6 * 4 + 6 + 3 * (6 * 2 * 9 + 2 * 2)


@pytest.mark.parametrize("change, message", [
    ("parallel: true, rate", "'parallel' must be true or false, got 'yes'"),
    ("repeat: \"len(rates)\", parallel: true,", "'parallel' needs a 'repeat'"),
    ("in: stem,", "'parallel: true' and an 'in' naming the node's own repetitions ([*]) contradict"),
])
def test_parallel_mistakes_are_named_at_their_place(change, message):
    text = {
        "parallel: true, rate": PARALLEL.replace("parallel: true, rate", "parallel: 'yes', rate"),
        "repeat: \"len(rates)\", parallel: true,": PARALLEL.replace("repeat: \"len(rates)\", parallel: true,",
                                                                    "parallel: true,"),
        "in: stem,": PARALLEL.replace("in: stem,", "in: [stem, 'aspp[*]'],"),
    }[change]
    with pytest.raises(SpecError, match=re.escape(message)) as err:
        loads_spec(text)
    assert err.value.diagnostics[0].location.line == 12  # the 'aspp' node's line


LEFT_OUT = """
params: {split: false}
inputs: {x: [N, 4, 8, 8]}
nodes:
  - {name: halves, op: split, dim: 1, sizes: 2, if: split}
  - {name: second, op: relu, in: "halves:1", if: split}
  - {name: out, op: relu, in: x}
"""


def test_a_left_out_node_whose_input_exists_only_when_kept_is_no_error():
    # ShuffleNet's unit: the split and what reads its second half exist only at stride 1
    assert [n.name for n in loads_spec(LEFT_OUT).nodes()] == ["x", "out"]
    assert [n.name for n in loads_spec(LEFT_OUT, overrides={"split": True}).nodes()] == ["x", "halves", "second", "out"]


@pytest.mark.parametrize("use", ["in: second", "in: prev", ""])
def test_a_left_out_nodes_missing_input_is_reported_where_it_is_written_once_read(use):
    text = LEFT_OUT.replace("in: x}", use + "}" if use else "}").replace(", }", "}")
    with pytest.raises(SpecError) as err:
        loads_spec(text)
    (diagnostic,) = err.value.diagnostics
    assert diagnostic.format().startswith(
        "<spec>:6:34: error: node 'second': 'halves' has no output '1'; it has 1 output")
    assert diagnostic.hint == ("this node is left out by its 'if', so its name stands for this input, "
                               "and a later node reads it")


def test_a_misspelt_input_of_a_left_out_node_is_reported_at_once():
    with pytest.raises(SpecError, match=r"<spec>:6:34: error: node 'second': unknown node or input 'halfs'"):
        loads_spec(LEFT_OUT.replace('"halves:1"', '"halfs:1"'))


SHARED_NAME = """
params: {mode: plain}
inputs: {x: [N, 8]}
blocks:
  unit:
    params: {mode: plain}
    nodes:
      - {name: parts, op: split, dim: 1, sizes: [4, 4], if: "mode == 'split'"}
      - {name: second, op: relu, in: "parts:1", if: "mode == 'split'"}
      - {name: second, op: sigmoid, in: x, if: "mode == 'plain'"}
    outputs: [second]
nodes:
  - {name: u, block: unit, mode: mode}
  - {name: out, op: relu}
"""


@pytest.mark.parametrize("mode, ops", [("split", ["split", "relu", "relu"]), ("plain", ["sigmoid", "relu"])])
def test_a_left_out_alternative_before_the_kept_one_is_as_if_not_written(mode, ops):
    # DPN's dual-path block: `dense` reads "x_s:1" only in the projecting blocks; in the others the
    # kept alternative later owns the name, and nothing reads what the left-out one's input would be
    g = loads_spec(SHARED_NAME, overrides={"mode": mode})
    assert [n.op for n in g.nodes()][1:] == ops
    assert g.node("out").inputs == [Value("u.second")]


def test_a_left_out_alternative_read_before_the_kept_one_is_an_error_at_its_input():
    # a node between the two alternatives reads the left-out one's stand-in, which has no output 1
    text = SHARED_NAME.replace("      - {name: second, op: sigmoid", "      - {name: early, op: relu, in: second}\n"
                               "      - {name: second, op: sigmoid")
    with pytest.raises(SpecError) as err:
        loads_spec(text)
    (diagnostic,) = err.value.diagnostics
    assert diagnostic.format().startswith(
        "<spec>:9:38: error: node 'u.second': 'parts' has no output '1'; it has 1 output")
    assert diagnostic.hint == ("this node is left out by its 'if', so its name stands for this input, "
                               "and a later node reads it")


def test_the_last_of_alternatives_all_left_out_is_what_their_name_stands_for():
    # mode 'none' leaves out both: `second` stands for the sigmoid's input x, not the relu's missing
    # "parts:1" (whose error belonged to the alternative written over)
    g = loads_spec(SHARED_NAME, overrides={"mode": "none"})
    assert [n.name for n in g.nodes()] == ["x", "out"]
    assert g.node("out").inputs == [Value("x")]
    flipped = SHARED_NAME.replace('in: "parts:1", if: "mode == \'split\'"', "in: x, if: \"mode == 'split'\"")
    flipped = flipped.replace("in: x, if: \"mode == 'plain'\"", 'in: "parts:1", if: "mode == \'plain\'"')
    with pytest.raises(SpecError, match=r"<spec>:10:41: error: node 'u.second': 'parts' has no output '1'"):
        loads_spec(flipped, overrides={"mode": "none"})


CHAINED_ALTERNATIVES = """
params: {wide: false}
inputs: {x: [N, 8]}
nodes:
  - {name: a, op: linear, out_features: 6}
  - {name: b, op: linear, out_features: 4}
  - {name: head, op: linear, in: a, out_features: 3, if: wide}
  - {name: head, op: linear, out_features: 2, if: "not wide"}
"""


@pytest.mark.parametrize("wide, reads", [(True, "a"), (False, "b")])
def test_a_kept_alternative_right_after_a_left_out_one_chains_from_the_node_before_both(wide, reads):
    # the left-out head (which reads a) is as if not written: the kept one without 'in' reads b
    g = loads_spec(CHAINED_ALTERNATIVES, overrides={"wide": wide})
    assert g.node("head").inputs == [Value(reads)]
    tripled = CHAINED_ALTERNATIVES.replace("  - {name: head, op: linear, out_features: 2",
                                           "  - {name: head, op: relu, in: a, if: false}\n"
                                           "  - {name: head, op: linear, out_features: 2")
    assert loads_spec(tripled, overrides={"wide": wide}).node("head").inputs == [Value(reads)]


def test_a_node_between_alternatives_still_chains_from_the_left_out_ones_stand_in():
    # only a kept alternative right after it writes the left-out one over; a node between reads it
    text = CHAINED_ALTERNATIVES.replace("  - {name: head, op: linear, out_features: 2",
                                        "  - {name: mid, op: relu}\n  - {name: head, op: linear, out_features: 2")
    g = loads_spec(text)
    assert g.node("mid").inputs == [Value("a")] and g.node("head").inputs == [Value("mid")]


CHOSEN_INPUT = """
params: {stride: 1}
inputs: {x: [N, 4, 8, 8]}
nodes:
  - {name: branch2, op: relu}
  - {name: branch2_s2, op: sigmoid, in: x}
  - {name: out, op: add, in: ["${'branch2' if stride == 1 else 'branch2_s2'}", x]}
"""


def test_in_takes_a_name_chosen_by_an_expression_as_every_string_field_does():
    # found transcribing ShuffleNetV2: `${...}` in `in:` was taken as a node name
    assert loads_spec(CHOSEN_INPUT).node("out").inputs[0] == Value("branch2")
    assert loads_spec(CHOSEN_INPUT, overrides={"stride": 2}).node("out").inputs[0] == Value("branch2_s2")
    with pytest.raises(SpecError, match=r"<spec>:7:47: error: node 'out': unknown name 'strid'"):
        loads_spec(CHOSEN_INPUT.replace("if stride", "if strid"))


# -- found by the fuzzer (tools/fuzz.py, cases 70000-108000): each was a traceback --------------------

@pytest.mark.parametrize("text, message", [
    # a parameter named as a Python keyword: the generated constructor would not compile
    ("params: {else: 1}\ninputs: {x: [N, 2]}\nnodes: [{op: relu}]\n",
     "<spec>:1:10: error: parameter name 'else' is a Python keyword (or self)"),
    ("inputs: {x: [N, 2]}\nblocks:\n  b: {params: {self: 1}, nodes: [{op: relu}]}\nnodes: [{block: b}]\n",
     "<spec>:3:16: error: parameter name 'self' of block 'b' is a Python keyword (or self)"),
    # a block parameter defaulting to a mapping (as the spec's own were refused in 0143e4d)
    ("inputs: {x: [N, 2]}\nblocks:\n  b: {params: {w: {a: 1}}, nodes: [{op: relu}]}\nnodes: [{block: b}]\n",
     "<spec>:3:19: error: parameter 'w' of block 'b' must default to a number, a string, true/false, null or a "
     "list of those, not a mapping"),
    # no outputs at all: the model's forward would return nothing, a block nothing to read
    ("inputs: {x: [N, 2]}\nnodes: [{op: relu}]\noutputs: []\n", "<spec>:3:10: error: 'outputs' names no output"),
    ("inputs: {x: [N, 2]}\nnodes: [{op: relu}]\noutputs: {}\n", "<spec>:3:10: error: 'outputs' names no output"),
    ("inputs: {x: [N, 2]}\nblocks:\n  b: {outputs: [], nodes: [{op: relu}]}\nnodes: [{block: b}]\n",
     "block 'b': 'outputs' names no output"),
    # every output listed from the repetitions of a node repeated 0 times (a fuzzed `repeat: 0`)
    ("inputs: {x: [N, 2]}\nnodes: [{op: relu}, {name: r, op: relu, repeat: 0}]\noutputs: {heads: \"r[*]\"}\n",
     "<spec>:3:18: error: 'outputs' names no tensor here: 'r[*]' lists the outputs of no repetition (its node is "
     "repeated 0 times); a model computes at least one output"),
    # a node named null or true (YAML's null had named the node 'None', and an output could read it)
    ("inputs: {x: [N, 2]}\nnodes: [{name: null, op: relu}]\noutputs: [None]\n",
     "<spec>:2:16: error: node name must be a name (text, or a number in a sequence), got null; leave 'name' "
     "out for one made from its op or block"),
    ("inputs: {x: [N, 2]}\nblocks:\n  b: {nodes: [{name: true, op: relu}]}\nnodes: [{block: b}]\n",
     "<spec>:3:22: error: node name must be a name (text, or a number in a sequence), got true"),
    ("inputs: {x: [N, 2]}\nnodes: [{name: on, op: relu}]\n",
     "got true; leave 'name' out for one made from its op or block (YAML reads null and ~ as nothing, and yes, "
     "no, on, off as true or false: quote a name written so ('on'))"),
])
def test_specs_the_fuzzer_broke_the_pytorch_target_with_are_refused_where_written(text, message):
    with pytest.raises(SpecError) as info:
        loads_spec(text)
    assert message in str(info.value)


def test_a_model_child_named_none_after_numbered_ones_generates(tmp_path):
    # a fuzzed Swin: the model class adds `features.*` children by number and then one named "None"
    # (no number, a Python keyword): the planner's count of numbered runs read it as numbered (a traceback)
    torch = pytest.importorskip("torch")
    from archc import load_spec
    from archc.lowering.torch import build_module, generate_source

    text = """\
name: mix
params: {depths: [2, 2, 6, 2]}
inputs: {x: [N, 8, 4]}
blocks:
  unit: {nodes: [{name: norm, op: layernorm}]}
  stage:
    params: {i: null}
    nodes: [{name: block, block: unit, repeat: "depths[i]", instance_name: "${index}"}]
  level: {params: {i: null}, nodes: [{block: stage, i: i}]}
  features:
    sequential: true
    nodes: [{block: level, repeat: "len(depths)", inline: true, i: index}]
nodes:
  - {name: features, block: features}
  - {name: "None", op: flatten}
  - {name: head, op: linear, out_features: 3}
outputs: [head]
"""
    path = tmp_path / "mix.yaml"
    path.write_text(text)
    graph = loads_spec(text)
    source = generate_source(graph, elaborate=lambda params: load_spec(str(path), dict(params)))
    assert 'self.add_module("None", nn.Flatten(1, -1))' in source
    namespace: dict = {}
    exec(compile(source, "mix.py", "exec"), namespace)
    model, reference = namespace["Mix"](), build_module(graph)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 8, 4)
    torch.testing.assert_close(model(x), reference(x))


def test_an_override_giving_a_list_where_others_give_an_int_still_generates(tmp_path):
    # `stride: [2]` in one repetition's overrides, `stride: 1` in the others (a traceback in the class planner)
    from archc.lowering.torch import generate_source

    g = loads_spec(BASIC.replace("overrides: {0: {stride: 2}}", "overrides: {0: {stride: [2]}}"))
    compile(generate_source(g), "<generated>", "exec")


def test_made_up_names_avoid_the_nodes_of_an_inline_block():
    # an inline block's nodes share the caller's name level: an unnamed node after it is numbered on
    g = loads_spec("""
inputs: {x: [N, 4, 6]}
blocks:
  inner:
    nodes:
      - {op: permute, perm: [0, 2, 1]}
nodes:
  - {name: t, block: inner, inline: true}
  - {op: permute, perm: [0, 2, 1]}
  - {op: permute, perm: [0, 2, 1]}
""")
    assert [n.name for n in g.nodes()] == ["x", "permute", "permute_1", "permute_2"]


def test_a_block_may_share_an_ops_name():
    """A spec's own block names are its namespace: an op added to archc later (stack, sum, glu) must
    not break a spec that named a block so. `block:` names the block, `op:` the op."""
    graph = loads_spec("""
name: shadow
inputs: {x: [N, 4]}
blocks:
  stack:
    nodes:
      - {name: fc, op: linear, out_features: 4}
      - {name: act, op: relu}
nodes:
  - {name: blocks, block: stack, repeat: 2}
  - {name: together, op: stack, in: [x, blocks], dim: 1}
""")
    assert [n.op for n in graph.nodes() if n.name.startswith("blocks.")] == ["linear", "relu"] * 2
    assert graph.node("together").op == "stack"
    assert graph.type_of(Value("together")).shape == ("N", 2, 4)


def test_an_attribute_of_an_op_that_takes_none_says_so():
    # "it has: none" read as if the op had an attribute called none
    with pytest.raises(SpecError) as err:
        loads_spec("inputs: {x: [N, 4]}\nnodes:\n  - {op: relu, inplace: true}\n", "m.yaml")
    assert "op 'relu' has no attribute 'inplace'; it takes no attributes" in str(err.value)
    with pytest.raises(SpecError) as err:
        loads_spec("inputs: {x: [N, 4]}\nblocks:\n  b: {nodes: [{op: relu}]}\nnodes:\n  - {block: b, width: 2}\n",
                   "m.yaml")
    assert "block 'b' has no parameter 'width'; it takes no parameters" in str(err.value)


def test_an_expression_passed_for_a_text_parameter_is_text_and_the_message_says_how_to_compute_it():
    spec = """params: {kind: HS}
inputs: {x: [N, 4]}
blocks:
  act_block:
    params: {act: relu}
    nodes:
      - {op: act}
nodes:
  - {block: act_block, act: "'hardswish' if kind == 'HS' else 'relu'"}
"""
    with pytest.raises(SpecError) as err:
        loads_spec(spec, "m.yaml")
    assert "an argument for a parameter whose default is text is taken as written; to compute it, write it " \
           "inside ${...}: act: \"${'hardswish' if kind == 'HS' else 'relu'}\"" in str(err.value)
    fixed = spec.replace("act: \"'hardswish' if kind == 'HS' else 'relu'\"", "act: \"${'hardswish' if kind == 'HS' else 'relu'}\"")
    assert [n.op for n in loads_spec(fixed, "m.yaml").nodes()][-1] == "hardswish"
