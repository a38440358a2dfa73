"""Bad specs: every error names file:line:col (or the command line) and says what was expected."""
from __future__ import annotations

import pytest

from archc import SpecError, loads_spec

HEAD = "inputs: {x: [N, 3, 8, 8]}\nnodes:\n"


def errors(text: str, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads_spec(text, "m.yaml", **kw)
    return [d.format() for d in info.value.diagnostics]


@pytest.mark.parametrize("body, expected", [
    # unknown op, with a suggestion
    ("  - {name: c, op: cnv, out_channels: 4, kernel_size: 3}\n",
     "m.yaml:3:19: error: node 'c': unknown op 'cnv' (did you mean 'conv'?)"),
    # unknown attribute, with a suggestion and the attributes the op has
    ("  - {name: c, op: conv, out_channel: 4, kernel_size: 3}\n",
     "m.yaml:3:25: error: node 'c': op 'conv' has no attribute 'out_channel'; it has: out_channels, kernel_size, "
     "stride, padding, dilation, groups, bias, weight_norm (did you mean 'out_channels'?)"),
    # PyTorch's word for an attribute the op spells otherwise (found transcribing GPT-2's softmax)
    ("  - {name: s, op: softmax, dim: 1}\n",
     "m.yaml:3:28: error: node 's': op 'softmax' has no attribute 'dim'; it has: axis (op 'softmax' calls it "
     "'axis': write axis)"),
    # missing required attribute
    ("  - {name: c, op: conv, out_channels: 4}\n",
     "m.yaml:3:5: error: node 'c': op 'conv' needs attribute 'kernel_size' (kernel size, an int or one per "
     "spatial dim)"),
    # wrong attribute type
    ("  - {name: c, op: conv, out_channels: 4.5, kernel_size: 3}\n",
     "m.yaml:3:39: error: node 'c': attribute 'out_channels' of op 'conv' expects an integer, >= 1, got 4.5"),
    # a width computed with a float factor (DenseNet-BC's compression): the hint says to round it
    ("  - {name: c, op: conv, out_channels: \"channels(x) * 0.5\", kernel_size: 3}\n",
     "m.yaml:3:39: error: node 'c': attribute 'out_channels' of op 'conv' expects an integer, >= 1, got 1.5 "
     "(an expression giving a float: round it, int(channels(x) * 0.5))"),
    # unknown input name, with a suggestion
    ("  - {name: c, op: relu, in: y}\n",
     "m.yaml:3:29: error: node 'c': unknown node or input 'y'"),
    # use before definition
    ("  - {name: a, op: relu, in: b}\n  - {name: b, op: relu, in: x}\n",
     "m.yaml:3:29: error: node 'a': 'b' is used before it is defined (list nodes after their inputs)"),
    # unknown parameter in an expression: column points into the expression
    ("  - {name: c, op: conv, out_channels: \"widht * 2\", kernel_size: 3}\n",
     "m.yaml:3:40: error: node 'c': unknown name 'widht'"),
    # arity
    ("  - {name: c, op: relu, in: [x, x]}\n",
     "m.yaml:3:29: error: node 'c': op 'relu' takes 1 input(s), got 2"),
    # duplicate node names
    ("  - {name: a, op: relu}\n  - {name: a, op: relu}\n",
     "m.yaml:4:12: error: node 'a': duplicate node name 'a'"),
    # both op and block
    ("  - {name: a, op: relu, block: b}\n",
     "m.yaml:3:5: error: node 'a': a node needs exactly one of 'op' or 'block'"),
    # a '.' in a name: the hierarchy comes from blocks
    ("  - {name: a.b, op: relu}\n",
     "m.yaml:3:12: error: node name 'a.b' must use only letters, digits, '_' and '-' (hierarchy comes "
     "from blocks; LIST.N, e.g. convs.0, names an item of a module list), at most 128 characters"),
    ("  - {name: a, op: relu, repeat: 2, instance_name: 'r.${index}'}\n",
     "m.yaml:3:51: error: node 'a': instance_name gives 'r.0' for repetition 0: names must use "
     "letters, digits, '_' and '-', at most 128 characters"),
    # one name for every repetition
    ("  - {name: a, op: relu, repeat: 2, instance_name: blk}\n",
     "m.yaml:3:51: error: node 'a': instance_name gives 'blk' for repetition 1, a name already taken in this scope; "
     "names must be unique (each repetition needs its own name: write ${index} in it, e.g. \"blk${index}\")"),
    ("  - {name: b1, op: relu}\n  - {name: a, op: relu, repeat: 2, instance_name: 'b${index}'}\n",
     "m.yaml:4:51: error: node 'a': instance_name gives 'b1' for repetition 1, a name already taken in this scope; "
     "names must be unique"),
    # unknown connection kind in expect
    ("  - {name: a, op: relu, expect: residul}\n",
     "m.yaml:3:33: error: unknown connection kind 'residul'; expected one of residual, long_skip, dense, gated, "
     "branch, sequential, none (did you mean 'residual'?)"),
])
def test_node_errors(body, expected):
    assert errors(HEAD + body)[0] == expected


@pytest.mark.parametrize("body, expected", [
    # the misspelt key is the required attribute: said once, not a second "needs attribute 'kernel_size'"
    ("  - {name: c, op: conv, out_channels: 4, kernel: 3}\n",
     ["m.yaml:3:42: error: node 'c': op 'conv' has no attribute 'kernel'; it has: out_channels, kernel_size, "
      "stride, padding, dilation, groups, bias, weight_norm (did you mean 'kernel_size'?)"]),
    ("  - {name: s, op: softmax, dim: 1}\n",
     ["m.yaml:3:28: error: node 's': op 'softmax' has no attribute 'dim'; it has: axis (op 'softmax' calls it "
      "'axis': write axis)"]),
    # a key taken for another attribute: what is still missing is still said
    ("  - {name: c, op: conv, out_channel: 4}\n",
     ["m.yaml:3:25: error: node 'c': op 'conv' has no attribute 'out_channel'; it has: out_channels, kernel_size, "
      "stride, padding, dilation, groups, bias, weight_norm (did you mean 'out_channels'?)",
      "m.yaml:3:5: error: node 'c': op 'conv' needs attribute 'kernel_size' (kernel size, an int or one per "
      "spatial dim)"]),
    # a key no attribute resembles: the missing ones are said as well
    ("  - {name: c, op: conv, zzz: 4, kernel_size: 3}\n",
     ["m.yaml:3:25: error: node 'c': op 'conv' has no attribute 'zzz'; it has: out_channels, kernel_size, "
      "stride, padding, dilation, groups, bias, weight_norm",
      "m.yaml:3:5: error: node 'c': op 'conv' needs attribute 'out_channels' (number of output channels)"]),
])
def test_a_misspelt_attribute_is_not_also_reported_missing(body, expected):
    assert errors(HEAD + body) == expected


def test_shape_mismatch_names_node_and_both_shapes():
    text = HEAD + ("  - {name: a, op: conv, out_channels: 4, kernel_size: 3, padding: 1}\n"
                   "  - {name: b, op: conv, in: x, out_channels: 4, kernel_size: 3}\n"
                   "  - {name: s, op: add, in: [a, b]}\n")
    (msg,) = errors(text)
    assert msg.startswith("m.yaml:5:5: error: node 's': add: shapes do not broadcast: (N, 4, 8, 8), (N, 4, 6, 6)")
    assert "differ in dim 2 (8 and 6) [inputs: a (N, 4, 8, 8), b (N, 4, 6, 6)]" in msg


def test_rank_mismatch_says_what_was_expected():
    (msg,) = errors("inputs: {x: [N, 3]}\nnodes:\n  - {name: c, op: conv, out_channels: 4, kernel_size: 3}\n")
    assert "expected a 3-D or 4-D input (N, C, L) or (N, C, H, W), got 2-D (N, 3)" in msg
    assert msg.startswith("m.yaml:3:5: error: node 'c': conv:")


def test_every_error_is_reported_not_only_the_first():
    text = HEAD + ("  - {name: a, op: cnv}\n"
                   "  - {name: b, op: relu, in: a}\n"          # depends on the failed node: stays silent
                   "  - {name: c, op: relu, in: nothere}\n"
                   "  - {name: d, op: linear}\n")
    msgs = errors(text)
    assert len(msgs) == 3
    assert "unknown op 'cnv'" in msgs[0]
    assert "unknown node or input 'nothere'" in msgs[1]
    assert "op 'linear' needs attribute 'out_features'" in msgs[2]


def test_errors_inside_blocks_point_to_the_block_definition():
    text = """inputs: {x: [N, 3, 8, 8]}
blocks:
  unit:
    params: {c: null}
    nodes:
      - {name: conv, op: conv, out_channels: c, kernel_size: 3, strde: 2}
nodes:
  - {name: u, block: unit, c: 4}
  - {name: v, block: unit}
  - {name: w, block: unti, c: 4}
  - {name: z, block: unit, c: 4, k: 1}
"""
    msgs = errors(text)
    assert msgs[0].startswith("m.yaml:6:65: error: node 'u.conv': op 'conv' has no attribute 'strde'")
    assert msgs[0].endswith("(did you mean 'stride'?)")
    assert "m.yaml:9:5: error: node 'v': block 'unit' needs parameter 'c'" in msgs
    assert "m.yaml:10:22: error: node 'w': unknown block 'unti' (did you mean 'unit'?)" in msgs
    assert any(m.startswith("m.yaml:11:34: error: node 'z': block 'unit' has no parameter 'k'") for m in msgs)


def test_unknown_top_level_key_suggests():
    (msg,) = errors("inputs: {x: [N, 2]}\nnode: []\nnodes: [{op: relu}]\n")
    assert msg == ("m.yaml:2:1: error: unknown key 'node' at the top level of a spec; expected one of: archc, "
                   "name, doc, params, profiles, let, include, functions, inputs, example_dims, blocks, nodes, sequential, "
                   "outputs, trust_sizes (did you mean 'nodes'?)")


def test_missing_inputs_and_nodes():
    msgs = errors("name: m\n")
    assert any("a spec needs 'inputs'" in m for m in msgs)
    assert any("a spec needs a non-empty 'nodes' list" in m for m in msgs)


def test_yaml_syntax_error_has_location():
    (msg,) = errors("inputs: {x: [N, 3\nnodes: []\n")
    assert msg.startswith("m.yaml:2:") and "invalid YAML" in msg


@pytest.mark.parametrize("text, message", [
    # YAML notices both mistakes on the line after them (found by a user transcribing specs)
    ("inputs: {x: [N, 4]}\nblocks:\n  b:\n     sequential: true\n    nodes: [{op: relu}]\nnodes: [{block: b}]\n",
     "m.yaml:5:5: error: invalid YAML: did not find expected key (line 4 is indented by 5 spaces and line 5 by 4: "
     "the keys of one mapping line up)"),
    ("inputs: {x: [N, 4]}\nnodes:\n  - {name: a, op: relu\n  - {name: b, op: relu}\n",
     "m.yaml:4:5: error: invalid YAML: did not find expected ',' or '}' (the '{' at line 3, column 5 is not "
     "closed before this line)"),
])
def test_yaml_mistakes_noticed_a_line_late_are_named_where_they_are(text, message):
    (msg,) = errors(text)
    assert msg == message


def test_a_bad_value_says_where_the_parameters_it_reads_were_given():
    # found transcribing MLP-Mixer: `tokens_mlp_dim: 16.5` was reported only inside the MLP block
    text = ("params: {hidden_dim: 16.5}\ninputs: {x: [N, 4]}\nblocks:\n  mlp:\n    params: {hidden: null}\n"
            "    nodes: [{name: fc1, op: linear, out_features: hidden}]\n"
            "nodes:\n  - {name: m, block: mlp, hidden: hidden_dim}\n")
    (msg,) = errors(text)
    assert msg == ("m.yaml:6:51: error: node 'm.fc1': attribute 'out_features' of op 'linear' expects an integer, "
                   ">= 1, got 16.5 (hidden = 16.5: given at m.yaml:8:35, its value from m.yaml:1:22)")


@pytest.mark.parametrize("text, message", [
    # found transcribing VGG-16-BN: a string parameter read as a number
    ("params: {dropout: half}\ninputs: {x: [N, 4]}\nnodes:\n  - {op: dropout, p: dropout}\n",
     "m.yaml:4:22: error: node 'dropout': unknown name 'half' (attribute 'p' of op 'dropout' expects a number, "
     ">= 0 and < 1; dropout = 'half': given at m.yaml:1:19)"),
    # ... a list item reached through an expression argument (`v: "cfg[index]"`): its chain leads to the list
    ("params: {cfg: [8, m]}\ninputs: {x: [N, 4]}\nblocks:\n  one:\n    params: {width: null}\n"
     "    nodes: [{op: linear, out_features: width}]\n"
     "nodes:\n  - {block: one, repeat: 2, width: \"cfg[index]\"}\n",
     "m.yaml:6:40: error: node 'one.1.linear': unknown name 'm' (attribute 'out_features' of op 'linear' expects "
     "an integer, >= 1; width = 'm': given at m.yaml:8:36, its value from m.yaml:1:15)"),
    # found transcribing Xception: a repeat count given as a word two blocks up
    ("inputs: {x: [N, 4]}\nblocks:\n  unit:\n    nodes: [{op: relu}]\n  rep:\n    params: {reps: null}\n"
     "    nodes: [{block: unit, repeat: reps}]\nnodes:\n  - {block: rep, reps: two}\n",
     "m.yaml:7:35: error: node 'rep.unit': 'repeat' must be a non-negative int, got 'two' "
     "(reps = 'two': given at m.yaml:9:24)"),
])
def test_a_bad_parameter_value_is_reported_with_where_it_was_written(text, message):
    (msg,) = errors(text)
    assert msg == message


@pytest.mark.parametrize("text, message", [
    # found transcribing SqueezeNet: `if: 3` put a bypass on a fire of other widths, reported only at the add
    ("inputs: {x: [N, 4]}\nnodes:\n  - {name: fc, op: linear, out_features: 4}\n  - {name: extra, op: relu, if: 3}\n",
     "m.yaml:4:33: error: node 'extra': 'if' must be a condition, true or false, got 3"),
    # an expression whose value is no condition ("[]" would have meant false), with where its parameter was given
    ("params: {flags: []}\ninputs: {x: [N, 4]}\nnodes:\n  - {name: extra, op: relu, if: flags}\n",
     "m.yaml:4:33: error: node 'extra': 'if' must be a condition, true or false, got [] "
     "(flags = []: given at m.yaml:1:17)"),
])
def test_if_takes_a_condition_only(text, message):
    (msg,) = errors(text)
    assert msg == message


def test_a_repeat_count_that_is_no_number_says_what_repeat_expects():
    # found transcribing StyleGAN2: `repeat: two` said only "unknown name 'two'"
    (msg,) = errors("inputs: {x: [N, 4]}\nnodes:\n  - {name: fc, op: linear, out_features: 4, repeat: two}\n")
    assert msg == "m.yaml:3:53: error: node 'fc': unknown name 'two' ('repeat' expects a non-negative int)"


def test_duplicate_yaml_keys_are_errors():
    (msg,) = errors("inputs: {x: [N, 3]}\nnodes: [{op: relu, op: add}]\n")
    assert msg == "m.yaml:2:20: error: duplicate key 'op' (first given at line 2)"


def test_a_let_reading_a_let_below_it_is_named_so():
    spec = ("params: {width: 8}\nlet:\n  a: \"2 * inner\"\n  inner: \"width + 1\"\n" + HEAD
            + "  - {op: linear, out_features: \"${a}\"}\n")
    msgs = errors(spec)
    assert msgs[0] == ("m.yaml:3:11: error: let 'a' reads 'inner', which is defined below it; a let reads only the "
                       "parameters and the lets above it (move 'inner' above 'a')")


@pytest.mark.parametrize("key, meant", [("out", "out_features"), ("b", "bias")])
def test_a_shortened_attribute_name_gets_the_name_it_begins(key, meant):
    (msg,) = errors(HEAD + f"  - {{op: linear, out_features: 4, {key}: 1}}\n")
    assert f"op 'linear' has no attribute '{key}'" in msg and msg.endswith(f"(did you mean '{meant}'?)")


def test_override_of_unknown_parameter():
    (msg,) = errors("params: {width: 8}\n" + HEAD + "  - {op: relu}\n", overrides={"widht": 3})
    assert msg == ("<command line>: error: --set names unknown parameter 'widht'; the spec's parameters are: "
                   "width (did you mean 'width'?)")


def test_override_of_wrong_type():
    (msg,) = errors("params: {width: 8}\n" + HEAD + "  - {op: relu}\n", overrides={"width": "wide"})
    assert "expected a number, as the default 8 is" in msg


@pytest.mark.parametrize("default, value, expected", [
    ("relu", True, "--set p=true: expected a string, as the default 'relu' is"),
    ("[1, 2]", False, "--set p=false: expected a list, as the default [1, 2] is"),
    ("true", "yes", "--set p='yes': expected true or false, as the default true is"),
])
def test_override_names_the_kind_of_value_expected(default, value, expected):
    (msg,) = errors(f"params: {{p: {default}}}\n" + HEAD + "  - {op: relu}\n", overrides={"p": value})
    assert msg == f"<command line>: error: {expected}"


@pytest.mark.parametrize("value", [True, 3, "wide"])
def test_a_parameter_defaulting_to_null_takes_any_value(value):
    loads_spec(f"params: {{p: null}}\n" + HEAD + "  - {op: relu}\n", overrides={"p": value})


def test_runaway_recursion_is_reported():
    text = """inputs: {x: [N, 2]}
blocks:
  loop:
    nodes: [{name: again, block: loop}]
nodes: [{name: l, block: loop}]
"""
    msgs = errors(text)
    assert any("blocks nest too deeply" in m and "over the limit of 64 nested block levels" in m for m in msgs)


def test_unsafe_expressions_are_rejected():
    msgs = errors(HEAD + "  - {name: c, op: conv, out_channels: \"__import__('os').getpid()\", kernel_size: 3}\n")
    assert "is not allowed in a spec expression" in msgs[0] or "unknown function" in msgs[0]


def test_bad_dimension():
    (msg,) = errors("inputs: {x: [N, 0]}\nnodes: [{op: relu}]\n")
    assert msg == "m.yaml:1:17: error: a dimension must be a positive int, got 0"


def test_bad_port():
    msgs = errors(HEAD + "  - {name: a, op: relu}\n  - {name: b, op: relu, in: 'a:indices'}\n")
    assert "'a' has no output 'indices'" in msgs[0]


def test_channels_of_a_vector_is_a_located_error():
    with pytest.raises(SpecError) as exc:
        loads_spec("inputs: {x: [50]}\nnodes:\n  - {op: linear, out_features: 'channels(x)'}", "m.yaml")
    assert "m.yaml:3:" in str(exc.value) and "channels(x) needs a tensor of rank 2 or more" in str(exc.value)


@pytest.mark.parametrize("field,text,message", [
    ("inputs", "inputs: 3.5", "'inputs' must be a name or a list of names"),
    ("outputs", "outputs: 7", "'outputs' must be a node name or a list of them"),
])
def test_block_inputs_and_outputs_of_the_wrong_type_are_located_errors(field, text, message):
    # found by tools/fuzz.py (tracebacks before)
    spec = f"""inputs: {{x: [N, 4]}}
blocks:
  b:
    {text}
    nodes: [{{name: l, op: linear, out_features: 4}}]
nodes:
  - {{name: one, block: b}}
"""
    with pytest.raises(SpecError) as exc:
        loads_spec(spec, "m.yaml")
    assert f"m.yaml:4:" in str(exc.value) and message in str(exc.value)


def test_block_parameter_named_like_a_node_keyword_is_no_traceback():
    spec = """inputs: {x: [N, 4]}
blocks:
  b:
    params: {repeat: 1}
    nodes: [{name: l, op: linear, out_features: 4}]
nodes:
  - {name: one, block: b, repeat: 2}
"""
    graph = loads_spec(spec, "m.yaml")
    assert "one.1.l" in [n.name for n in graph.nodes()]


def test_channels_of_a_sequence_with_a_symbolic_dim_1_says_so():
    # found transcribing transformers: channels(x) of (N, S, D) is S; 'S' * 4 gave "got 'SSSS'"
    text = "inputs: {x: [N, S, 16]}\nnodes:\n  - {name: fc, op: linear, out_features: \"channels(x) * 4\"}\n"
    assert errors(text) == [
        "m.yaml:3:43: error: node 'fc': cannot evaluate 'channels(x) * 4': channels(x) is dim 1 of (N, S, 16), the "
        "symbolic size 'S'; expected a known size (for the last dim of a sequence (N, S, D) write shape(x)[-1])"]


@pytest.mark.parametrize("value, message", [
    # quoted text is evaluated: the user need not know that to read the message
    ('"7x7"', "5:56: error: node 'c': invalid expression '7x7': invalid decimal literal"),
    # found transcribing DenseNet-BC: `kernel_size: three` said only "unknown name 'three'"
    ("three", "5:55: error: node 'c': unknown name 'three'"),
])
def test_a_value_that_is_no_expression_says_what_the_attribute_expects(run_archc, spec_file, value, message):
    path = spec_file("archc: 1\nname: m\ninputs: {x: [N, 3, 16, 16]}\nnodes:\n"
                     f"  - {{name: c, op: conv, out_channels: 8, kernel_size: {value}}}\n")
    proc = run_archc("check", path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (f"{message} (attribute 'kernel_size' of op 'conv' expects an integer or a list of integers, "
            ">= 1)") in proc.stderr


def test_a_misspelt_block_parameter_is_reported_once(run_archc, spec_file):
    """``outt: 8`` for the parameter ``out``: one error with the 'did you mean', not a second one saying
    that ``out`` is missing; a parameter missing without a misspelt one in its place is still reported."""
    head = ("archc: 1\nname: m\ninputs: {x: [N, 3, 8, 8]}\nblocks:\n  cb:\n    params: {out: null, k: null}\n"
            "    nodes:\n      - {name: c, op: conv, out_channels: out, kernel_size: k}\nnodes:\n")
    proc = run_archc("check", spec_file(head + "  - {name: b, block: cb, outt: 8}\n"))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 2, errors
    assert "block 'cb' has no parameter 'outt'; it has: out, k (did you mean 'out'?)" in errors[0]
    assert errors[1].endswith("node 'b': block 'cb' needs parameter 'k'")


@pytest.mark.parametrize("count, named", [
    (2, "node 'unit0.bn' (and 'unit1.bn'): "),
    (4, "node 'unit0.bn' (and 3 more instances, the last 'unit3.bn'): "),
])
def test_a_mistake_in_a_block_is_reported_once_naming_every_instance(count, named):
    # a RepVGG transcription: one misspelled op in a block used twice printed the same error twice
    text = f"""
inputs: {{x: [N, 4]}}
blocks:
  unit:
    nodes:
      - {{name: fc, op: linear, out_features: 4}}
      - {{name: bn, op: batchnrom}}
nodes:
""" + "".join(f"  - {{name: unit{k}, block: unit, in: x}}\n" for k in range(count))
    with pytest.raises(SpecError) as exc:
        loads_spec(text)
    assert len(exc.value.diagnostics) == 1
    assert str(exc.value) == f"<spec>:7:24: error: {named}unknown op 'batchnrom' (did you mean 'batchnorm'?)"


@pytest.mark.parametrize("outputs, message", [
    ("[head, aux, head]", "<spec>:7:22: error: output 'head' is named twice; each output needs its own name"),
    ("{x: head, aux: aux}", "<spec>:7:14: error: output 'x' has the name of a model input; name it otherwise"),
])
def test_outputs_with_clashing_names_are_errors(outputs, message):
    # a transcribed deep-supervision U-Net: a repeated output was silently one, and an output named like
    # an input built an ONNX model onnxruntime cannot load
    text = """
inputs: {x: [N, 4]}
nodes:
  - {name: body, op: linear, out_features: 4}
  - {name: head, op: linear, out_features: 2}
  - {name: aux, op: linear, in: body, out_features: 2}
"""
    with pytest.raises(SpecError) as exc:
        loads_spec(text + f"outputs: {outputs}\n")
    assert str(exc.value).startswith(message), str(exc.value)


@pytest.mark.parametrize("op", ["linear, out_features: 4", "conv, out_channels: 4, kernel_size: 1", "batchnorm"])
def test_a_layer_with_float_weights_refuses_an_integer_input(op):
    # `linear` on int64 token ids passed check, then failed at run time (mat1 and mat2 must have the same dtype)
    with pytest.raises(SpecError) as exc:
        loads_spec(f"inputs: {{ids: {{shape: [N, 8, 6], dtype: int64}}}}\nnodes:\n  - {{name: a, op: {op}}}\n")
    name = op.split(",")[0]
    assert f"node 'a': {name}: {name} expects a floating-point input, got int64 (N, 8, 6) int64" in str(exc.value)


LOG_SPEC = """params: {image_size: 32, base: 4}
inputs: {x: [N, 3, image_size, image_size]}
blocks:
  down: {nodes: [{name: conv, op: conv, out_channels: 3, kernel_size: 3, stride: 2, padding: 1}]}
nodes:
  - {name: stages, block: down, repeat: "int(log2(image_size // base))"}
"""


def test_log2_computes_a_depth_from_a_size():
    graph = loads_spec(LOG_SPEC, "m.yaml")
    assert [n.name for n in graph.nodes() if n.op == "conv"] == [f"stages.{i}.conv" for i in range(3)]
    assert graph.node("stages.2.conv").outputs[0].shape[2:] == (4, 4)  # 32 halved three times


@pytest.mark.parametrize("base, message", [
    (64, "m.yaml:6:46: error: node 'stages': log2(0) is undefined: log2 takes a number > 0"),
    (-8, "m.yaml:6:46: error: node 'stages': log2(-4) is undefined: log2 takes a number > 0"),
])
def test_log_of_a_non_positive_number_is_a_located_error(base, message):
    assert errors(LOG_SPEC.replace("base: 4", f"base: {base}")) == [message]


@pytest.mark.parametrize("text, expected", [
    ("inputs: {x: [N, 4]}\nsequential: yes please\nnodes:\n  - {op: relu}\n",
     "m.yaml:2:13: error: 'sequential' of the spec must be true or false, got 'yes please' (text: write true or "
     "false without quotes)"),
    ("inputs: {x: [N, 4]}\nblocks:\n  b:\n    sequential: 1\n    nodes: [{op: relu}]\nnodes:\n  - {block: b}\n",
     "m.yaml:4:17: error: 'sequential' of block 'b' must be true or false, got 1"),
])
def test_sequential_must_be_a_boolean(text, expected):
    # `sequential: yes please` was silently taken for false
    assert errors(text) == [expected]


def test_a_sequential_spec_numbers_its_top_level_nodes():
    g = loads_spec("inputs: {x: [N, 4]}\nsequential: true\nnodes:\n  - {op: linear, out_features: 8}\n"
                   "  - {name: act, op: relu}\n  - {op: linear, out_features: 2, in: act}\n", "m.yaml")
    assert [n.name for n in g.nodes()] == ["x", "0", "1", "2"] and g.node("2").inputs[0].node == "1"


CONV_SPEC = ("params: {pad: 1}\ninputs: {x: [N, 3, 8, 8]}\nnodes:\n"
             "  - {name: c, op: conv, out_channels: 4, kernel_size: 3, padding: PADDING}\n")


@pytest.mark.parametrize("padding, message", [
    # found transcribing ConvMixer: `padding: sane` said "unknown name 'sane' (did you mean 'shape'?)"
    ("sane", "m.yaml:4:67: error: node 'c': attribute 'padding' of op 'conv' expects an integer or a list "
             "of integers, >= 0, or one of 'same', 'valid', got 'sane' (did you mean 'same'?)"),
    # a bare word closer to a parameter than to a choice is still read as an expression
    ("pads", "m.yaml:4:67: error: node 'c': unknown name 'pads' (did you mean 'pad'?)"),
])
def test_a_misspelt_choice_of_an_int_or_keyword_attribute_suggests_the_choice(padding, message):
    assert errors(CONV_SPEC.replace("PADDING", padding)) == [message]


def test_a_string_parameter_that_is_no_choice_says_the_choices_and_where_it_was_given():
    text = CONV_SPEC.replace("pad: 1", "pad: sane").replace("PADDING", "pad")
    assert errors(text) == [
        "m.yaml:4:67: error: node 'c': attribute 'padding' of op 'conv' expects an integer or a list of integers, "
        ">= 0, or one of 'same', 'valid', got 'sane' (did you mean 'same'?; pad = 'sane': given at m.yaml:1:15)"]


@pytest.mark.parametrize("widths, message", [
    # found transcribing RepVGG: `num_blocks: 2` for a list said "bad index: 'int' object is not subscriptable",
    # pointing at the start of the text and not saying where num_blocks was given
    ("3", "m.yaml:4:47: error: node 'c': cannot index 'widths': it is the integer 3, not a list or a string "
          "(widths = 3: given at m.yaml:1:18)"),
    # found transcribing UNet++: one index past the end said "bad index: list index out of range"
    ("[4, 8, 16]", "m.yaml:4:47: error: node 'c': index 3 is out of range for 'widths', a list of 3 items "
                   "(widths = [4, 8, 16]: given at m.yaml:1:18)"),
])
def test_a_bad_index_says_what_was_indexed_and_where_it_was_given(widths, message):
    text = (f"params: {{widths: {widths}}}\ninputs: {{x: [N, 3, 8, 8]}}\nnodes:\n"
            "  - {name: c, op: conv, out_channels: \"widths[3]\", kernel_size: 1}\n")
    assert errors(text) == [message]


@pytest.mark.parametrize("node, message", [
    # found transcribing UNet++: `mode: bicubic` said "expects a string ('nearest' or ...)" of a string
    ("{name: u, op: upsample, scale_factor: 2, mode: bicubic}",
     "m.yaml:3:52: error: node 'u': attribute 'mode' of op 'upsample' expects one of 'nearest', 'linear', "
     "'bilinear', got 'bicubic'"),
    ("{name: u, op: upsample, scale_factor: 2, mode: 3}",
     "m.yaml:3:52: error: node 'u': attribute 'mode' of op 'upsample' expects one of 'nearest', 'linear', "
     "'bilinear', got 3"),
    ("{name: g, op: gelu, approximate: tanhh}",
     "m.yaml:3:38: error: node 'g': attribute 'approximate' of op 'gelu' expects one of 'none', 'tanh', got "
     "'tanhh' (did you mean 'tanh'?)"),
    ("{name: p, op: parameter, shape: [3], dtype: int8}",
     "m.yaml:3:49: error: node 'p': attribute 'dtype' of op 'parameter' expects one of 'float32', 'float16', "
     "'float64', got 'int8'"),
    ("{name: p, op: parameter, shape: [3], init: uniformm}",
     "m.yaml:3:48: error: node 'p': attribute 'init' of op 'parameter' expects one of 'zeros', 'ones', "
     "'constant', 'normal', 'trunc_normal', got 'uniformm'"),
    ("{name: c, op: conv, out_channels: 4, kernel_size: 3, padding: [same]}",
     "m.yaml:3:67: error: node 'c': attribute 'padding' of op 'conv' expects an integer or a list of integers, "
     ">= 0, or one of 'same', 'valid', got ['same']"),
])
def test_an_attribute_with_choices_names_them_all(node, message):
    assert errors(f"{HEAD}  - {node}\n") == [message]


SE_SPEC = """params: {reduction: 2}
inputs: {x: [N, 8, 4, 4]}
blocks:
  se:
    params: {squeeze: 4}
    let:
      hidden: "channels(x) // squeeze"
    nodes:
      - {op: conv, out_channels: hidden, kernel_size: 1}
      - {op: conv, out_channels: "channels(x) // reduction", kernel_size: 1}
nodes:
  - {name: s, block: se}
"""


@pytest.mark.parametrize("old, new, message", [
    # found transcribing gMLP: `hidden` = 0, computed by a let, was not traced to the let
    ("squeeze: 4}", "squeeze: 16}", "m.yaml:9:34: error: node 's.conv': attribute 'out_channels' of op 'conv' must "
     "be at least 1, got 0 (hidden = 0: given at m.yaml:7:15, its value from m.yaml:5:23)"),
    # found transcribing SE-ResNeXt: a divisor of 0 from params: said only "integer division or modulo by zero"
    ("reduction: 2}", "reduction: 0}", "m.yaml:10:50: error: node 's.conv_1': cannot evaluate "
     "'channels(x) // reduction': division by zero (reduction = 0: given at m.yaml:1:21)"),
    # ... and from a block parameter's default: the default's place in the block's params:
    ("squeeze: 4}", "squeeze: 0}", "m.yaml:7:31: error: cannot evaluate 'channels(x) // squeeze': "
     "division by zero (squeeze = 0: given at m.yaml:5:23)"),
])
def test_a_bad_value_from_a_let_or_a_default_says_where_it_was_given(old, new, message):
    assert errors(SE_SPEC.replace(old, new)) == [message]
