"""Resource limits and value bounds: every hostile input from issue 8 is a quick, located error.

Speed is by construction (each bound is checked before the work it guards), so these tests
assert messages, not times; a regression that hangs is stopped by the subprocess timeouts
of the CLI tests and shows as a failure.
"""
from __future__ import annotations

import math
import re

import pytest

from archc.errors import SpecError, UsageError
from archc.frontends.yaml import load_yaml, loads_spec
from archc.frontends.yaml.expr import Evaluator, ExprError
from archc.limits import DEFAULT_LIMITS, LIMIT_INFO, Limits
from archc.ops import registry

HEAD = "inputs: {x: [N, 3, 8, 8]}\nnodes:\n"


def errors(text: str, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads_spec(text, "m.yaml", limits=limits)
    return [d.format() for d in info.value.diagnostics]


# -- expressions ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("((9**64)**64)**64", "over the limit of 128 bits per integer (raise it with --max-int-bits N or "
                          "ARCHC_MAX_INT_BITS=N)"),
    ("9**9**9**9", "over the limit of 128 bits per integer"),
    ("2**2**2**2**2**2", "over the limit of 128 bits per integer"),
    ("'%9999999999d' % 1", "'%' formatting of strings is not supported"),
    ("sum([[0]*100000]*100000, [])", "over the limit of 100,000 characters or list items per value"),
    ("[[0]*100000]*100000", "over the limit of 100,000 characters or list items per value"),
    ("'ab' * 10**9", "a value of 2,000,000,000 characters or items"),
    ("(-1) ** 0.5", "'(-1) ** 0.5' gives a complex number"),
    ("1e308 * 10", "gives inf (not a finite number)"),
    ("float('nan')", "gives nan (not a finite number)"),
    ("not " * 300 + "1", "the expression nests too deeply: over the limit of 100 nesting levels"),
    ("-" * 300 + "1", "over the limit of 100 nesting levels per expression (raise it with --max-expr-depth"),
    ("+" * 300 + "1", "over the limit of 100 nesting levels"),
    ("-" * 100_000 + "1", "over the limit of 100,000 characters"),
    ("not " * 50_000 + "1", "over the limit of 100,000 characters"),
    ("round(5, -10**9)", "round() takes at most 400 digits"),
    ("ceil(1e300)", "an integer of 997 bits"),
    ("range(10**9)", "range of 1,000,000,000 items: over the limit"),
])
def test_expression_bounds(text, message):
    with pytest.raises(ExprError) as info:
        Evaluator({}).evaluate(text)
    assert message in str(info.value)


def test_expression_work_is_bounded():
    # every value is small, but the expression walks a big list many times
    limits = Limits(max_expr_work=50_000)
    with pytest.raises(ExprError, match="over the limit of 50,000 evaluation steps per expression"):
        Evaluator({"xs": list(range(30_000))}, limits=limits).evaluate("[xs, xs, xs]")


def test_values_within_limits_still_evaluate():
    ev = Evaluator({"w": 64})
    assert ev.evaluate("2 ** 127") == 2**127
    assert ev.evaluate("len([0] * 100000)") == 100_000
    assert ev.evaluate("w * 2 if w > 3 else 1") == 128


@pytest.mark.parametrize("step, first_error", [
    ("s{p} * s{p}", "an integer of 129 bits: over the limit of 128 bits per integer"),       # repeated squaring
    ("s{p} + s{p}", "a value of 200,000 characters or items: over the limit"),               # doubling a string
])
def test_let_chains_cannot_build_huge_values(step, first_error):
    start = "2 ** 64" if "*" in step else "'x' * 100000"
    lets = [f"  s0: \"{start}\""] + [f"  s{i}: \"{step.format(p=i - 1)}\"" for i in range(1, 40)]
    text = "inputs: {x: [N, 4]}\nlet:\n" + "\n".join(lets) + "\nnodes:\n  - {op: linear, out_features: s39}\n"
    msgs = errors(text)
    assert msgs == [f"m.yaml:4:8: error: {msgs[0].split('error: ')[1]}"]  # one error, at s1; users stay quiet
    assert first_error in msgs[0]


# -- YAML --------------------------------------------------------------------------------------

def _alias_bomb(levels: int = 12) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\ninputs: {x: [N, 4]}\nnodes:\n  - {op: relu}\n"


@pytest.mark.parametrize("text, expected", [
    (_alias_bomb(), "m.yaml:6:5: error: this YAML value expands to 1,111,111 nodes: over the limit of 1,000,000 "
                    "YAML nodes after alias expansion (raise it with --max-yaml-nodes N or ARCHC_MAX_YAML_NODES=N)"),
    ("inputs: {x: &a [*a]}\nnodes: [{op: relu}]\n", "m.yaml:1:13: error: recursive YAML alias: this value contains itself"),
    ("a: &a {b: *a}\ninputs: {x: [N, 4]}\nnodes: [{op: relu}]\n",
     "m.yaml:1:4: error: recursive YAML alias: this value contains itself"),
    ("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: !!int abc}\n",
     "m.yaml:3:32: error: 'abc' is not a valid int (tag !!int)"),
    ("inputs: {x: [N, 4]}\nnodes:\n  - {op: leaky_relu, negative_slope: !!float abc}\n",
     "m.yaml:3:38: error: 'abc' is not a valid float (tag !!float)"),
    ("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: 2, bias: !!bool maybe}\n",
     "m.yaml:3:41: error: 'maybe' is not a valid bool (tag !!bool)"),
    ("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: !!python/object:os.system ls}\n",
     "m.yaml:3:32: error: YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed in a spec "
     "(specs are plain data)"),
    ("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: 2\0}\n",
     "m.yaml:3:33: error: invalid YAML: control characters are not allowed (character U+0000)"),
    ("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: " + "9" * 300 + "}\n",
     "m.yaml:3:32: error: an integer of 997 bits: over the limit of 128 bits per integer (raise it with "
     "--max-int-bits N or ARCHC_MAX_INT_BITS=N)"),
    ("deep: " + "[" * 300 + "]" * 300 + "\ninputs: {x: [N, 4]}\nnodes: [{op: relu}]\n",
     "m.yaml:1:"),  # the column is wherever the 201st level starts
])
def test_yaml_bounds(text, expected):
    msgs = errors(text)
    assert msgs[0].startswith(expected) if expected.endswith(":") else msgs == [expected]


def test_alias_bomb_limit_is_the_limit_object():
    assert errors(_alias_bomb(4), Limits(max_yaml_nodes=1000))[0] == "m.yaml:3:5: error: " + (
        "this YAML value expands to 1,111 nodes: over the limit of 1,000 YAML nodes after alias expansion "
        "(raise it with --max-yaml-nodes N or ARCHC_MAX_YAML_NODES=N)")
    assert len(load_yaml(_alias_bomb(3), "m.yaml")["a2"]) == 10  # a few aliases are fine


# -- expansion ---------------------------------------------------------------------------------

RECURSIVE = """inputs: {x: [N, 4]}
blocks:
  b:
    params: {d: null}
    nodes:
      - {name: r, op: relu}
      - {name: inner, block: b, d: d - 1, repeat: 2, if: "d > 0"}
nodes:
  - {name: top, block: b, d: 40}
"""


def test_exponential_block_recursion_stops_at_the_node_limit():
    assert errors(RECURSIVE, Limits(max_nodes=500)) == [
        "m.yaml:7:9: error: the spec expands to too many nodes (a large 'repeat' or a block that instantiates "
        "itself?): over the limit of 500 nodes and block instances (raise it with --max-nodes N or "
        "ARCHC_MAX_NODES=N)"]


def test_huge_repeat_is_refused_before_expanding():
    assert errors("inputs: {x: [N, 4]}\nnodes:\n  - {op: relu, repeat: 1000000000}\n") == [
        "m.yaml:3:24: error: node 'relu': repeat 1,000,000,000: over the limit of 10,000 repetitions "
        "(raise it with --max-repeat N or ARCHC_MAX_REPEAT=N)"]


def test_a_node_reading_every_earlier_repetition_stops_at_the_connection_limit():
    # 60 bytes, n^2 / 2 connections: 2,000 repetitions would be 2 million
    text = 'inputs: {x: [N, 4]}\nnodes:\n  - {name: l, op: add, repeat: 2000, in: [x, x, "l[*]"]}\n'
    assert errors(text, Limits(max_edges=5_000)) == [
        "m.yaml:3:42: error: node 'l.98': the spec's nodes read too many inputs in all (a node reading every "
        "earlier repetition, 'NAME[*]'?): over the limit of 5,000 connections (node inputs in all) (raise it "
        "with --max-edges N or ARCHC_MAX_EDGES=N)"]
    assert len(loads_spec(text.replace("2000", "90"), "m.yaml", limits=Limits(max_edges=5_000))) == 91


def test_block_depth_limit():
    text = RECURSIVE.replace("repeat: 2, ", "")
    assert "over the limit of 8 nested block levels (raise it with --max-block-depth N" in \
        errors(text, Limits(max_block_depth=8))[0]


@pytest.mark.parametrize("body, message", [
    ("  - {op: linear, out_features: 100000000000}\n",
     "node 'linear': output (N, 100000000000) has 100,000,000,000 elements: over the limit of 4,294,967,296 "
     "elements per tensor (raise it with --max-tensor-elements N or ARCHC_MAX_TENSOR_ELEMENTS=N)"),
    ("  - {op: embedding, num_embeddings: 3000000000, embedding_dim: 2}\n",
     "parameter 'weight' (3000000000x2) has 6,000,000,000 elements: over the limit"),
])
def test_tensor_size_limit(body, message):
    text = ("inputs: {x: {shape: [N, 4], dtype: int64}}\nnodes:\n" if "embedding" in body
            else "inputs: {x: [N, 4]}\nnodes:\n") + body
    assert message in errors(text)[0]


def test_input_tensor_size_limit():
    assert errors("inputs: {x: [N, 100000, 100000, 100000]}\nnodes: [{op: relu}]\n") == [
        "m.yaml:1:13: error: input 'x': shape (N, 100000, 100000, 100000) has 1,000,000,000,000,000 elements: "
        "over the limit of 4,294,967,296 elements per tensor (raise it with --max-tensor-elements N or "
        "ARCHC_MAX_TENSOR_ELEMENTS=N)"]


def test_parameter_limit():
    text = "inputs: {x: [N, 1000]}\nnodes:\n  - {op: linear, out_features: 1000, repeat: 5}\n"
    assert errors(text, Limits(max_params=3_000_000))[0].endswith(
        "the model has over 3,003,000 parameters: over the limit of 3,000,000 parameters "
        "(raise it with --max-params N or ARCHC_MAX_PARAMS=N)")


LLAMA_7B = """# Llama-2-7B's sizes (Touvron et al. 2023): 32 layers, d 4096, 32 heads, SwiGLU 11008, vocab 32000
inputs: {tokens: {shape: [N, S], dtype: int64}}
params: {d: 4096, heads: 32, ffn: 11008, vocab: 32000, layers: 32}
blocks:
  layer:
    nodes:
      - {name: input_layernorm, op: layernorm, bias: false}
      - {name: self_attn, op: multi_head_attention, num_heads: heads, bias: false, causal: true,
         in: [input_layernorm, input_layernorm, input_layernorm]}
      - {name: add1, op: add, in: [x, self_attn]}
      - {name: post_attention_layernorm, op: layernorm, bias: false}
      - {name: gate_proj, op: linear, out_features: ffn, bias: false}
      - {name: act, op: silu}
      - {name: up_proj, op: linear, out_features: ffn, bias: false, in: post_attention_layernorm}
      - {name: mul, op: mul, in: [act, up_proj]}
      - {name: down_proj, op: linear, out_features: d, bias: false}
      - {name: add2, op: add, in: [add1, down_proj]}
nodes:
  - {name: embed_tokens, op: embedding, num_embeddings: vocab, embedding_dim: d}
  - {name: layers, block: layer, repeat: layers}
  - {name: norm, op: layernorm, bias: false}
  - {name: lm_head, op: linear, out_features: vocab, bias: false}
"""


def test_defaults_admit_a_llama_2_7b_sized_spec():
    graph = loads_spec(LLAMA_7B, "llama.yaml")
    total = sum(spec.numel for node in graph.nodes() for spec in
                registry.lookup(node.op).params(node, graph.input_types(node)).values() if not spec.buffer)
    assert 6.7e9 < total < 6.8e9
    assert graph.type_of(graph.outputs["output"]).shape == ("N", "S", 32000)


# -- attribute bounds --------------------------------------------------------------------------

CONV_IN = "inputs: {x: [N, 3, 8, 8]}\nnodes:\n"


@pytest.mark.parametrize("node, message", [
    ("{op: conv, out_channels: 4, kernel_size: 3, stride: 0}", "attribute 'stride' of op 'conv' must be at least 1, got 0"),
    ("{op: conv, out_channels: 4, kernel_size: 3, dilation: 0}", "attribute 'dilation' of op 'conv' must be at least 1"),
    ("{op: conv, out_channels: 4, kernel_size: [3, 0]}", "attribute 'kernel_size' of op 'conv' must be at least 1, got 0"),
    ("{op: conv, out_channels: -4, kernel_size: 3}", "attribute 'out_channels' of op 'conv' must be at least 1, got -4"),
    ("{op: conv, out_channels: 4, kernel_size: 3, padding: -1}", "attribute 'padding' of op 'conv' must be at least 0"),
    ("{op: conv, out_channels: 4, kernel_size: 3, groups: 0}", "attribute 'groups' of op 'conv' must be at least 1"),
    ("{op: conv, out_channels: 4, kernel_size: 3, stride: \"2**64\"}",
     "attribute 'stride' of op 'conv' must fit in a 64-bit integer, got 18446744073709551616"),
    ("{op: conv_transpose, out_channels: 4, kernel_size: 3, stride: 0}",
     "attribute 'stride' of op 'conv_transpose' must be at least 1, got 0"),
    ("{op: conv_transpose, out_channels: 4, kernel_size: 3, output_padding: -1}", "must be at least 0"),
    ("{op: maxpool, kernel_size: 0}", "attribute 'kernel_size' of op 'maxpool' must be at least 1"),
    ("{op: avgpool, kernel_size: 2, stride: 0}", "attribute 'stride' of op 'avgpool' must be at least 1"),
    ("{op: upsample, scale_factor: 1e308}", "attribute 'scale_factor' of op 'upsample' must be at most 1048576"),
    ("{op: upsample, scale_factor: 0}", "attribute 'scale_factor' of op 'upsample' must be greater than 0"),
    ("{op: upsample, scale_factor: .nan}", "attribute 'scale_factor' of op 'upsample' must be a finite number, got nan"),
    ("{op: upsample, size: 0}", "attribute 'size' of op 'upsample' must be at least 1"),
    ("{op: batchnorm, eps: .nan}", "attribute 'eps' of op 'batchnorm' must be a finite number, got nan"),
    ("{op: batchnorm, eps: .inf}", "attribute 'eps' of op 'batchnorm' must be a finite number, got inf"),
    ("{op: batchnorm, eps: -1.0}", "attribute 'eps' of op 'batchnorm' must be at least 0"),
    ("{op: batchnorm, momentum: 2}", "attribute 'momentum' of op 'batchnorm' must be at most 1"),
    ("{op: dropout, p: 1.0}", "attribute 'p' of op 'dropout' must be less than 1, got 1.0"),
    ("{op: scale, factor: -.inf}", "attribute 'factor' of op 'scale' must be a finite number, got -inf"),
    ("{op: leaky_relu, negative_slope: .nan}", "must be a finite number, got nan"),
    ("{op: groupnorm, num_groups: 0}", "attribute 'num_groups' of op 'groupnorm' must be at least 1"),
    ("{op: flatten}\n  - {op: linear, out_features: 0}", "attribute 'out_features' of op 'linear' must be at least 1, got 0"),
    ("{op: reshape, shape: [-2, 3]}", "attribute 'shape' of op 'reshape' must be at least -1, got -2"),
    ("{op: slice, dim: 2, step: 0}", "attribute 'step' of op 'slice' must be at least 1"),
    # finite numbers past float32's range would become infinity in the tensor or ONNX attribute
    ("{op: add, value: 1e39}", "attribute 'value' of op 'add' must fit in float32 (magnitude at most "
     "3.4028235e+38), got 1e+39"),
    ("{op: clamp, max: 1e39}", "attribute 'max' of op 'clamp' must fit in float32"),
    ("{op: scale, factor: -1e39}", "attribute 'factor' of op 'scale' must fit in float32 (magnitude at most "
     "3.4028235e+38), got -1e+39"),
    ("{op: batchnorm, eps: 1e39}", "attribute 'eps' of op 'batchnorm' must fit in float32"),
    ("{op: leaky_relu, negative_slope: \"1e38 * 10\"}", "attribute 'negative_slope' of op 'leaky_relu' must fit "
     "in float32 (magnitude at most 3.4028235e+38), got 1e+39"),
    ("{op: parameter, shape: [1], init: constant, value: 1e39}",
     "attribute 'value' of op 'parameter' must fit in float32"),
    ("{op: parameter, shape: [1], init: constant, value: 1e5, dtype: float16}",
     "parameter: value 100000 does not fit the parameter's dtype float16 (magnitude at most 65504)"),
    ("{op: parameter, shape: [1], init: normal, std: 7e4, dtype: float16}",
     "parameter: std 70000 does not fit the parameter's dtype float16"),
])
def test_attribute_bounds(node, message):
    msgs = errors(CONV_IN + f"  - {node}\n")
    assert len(msgs) == 1 and re.match(r"m\.yaml:\d+:\d+: error: node '\w+': ", msgs[0]), msgs
    assert message in msgs[0]


#: integer attributes where a negative value means something (counting from the end, -1 inferred, a pad that crops)
SIGNED = {"axis", "dim", "dims", "start", "end", "start_dim", "end_dim", "shape", "perm", "shifts", "pads", "dim0",
          "dim1"}


@pytest.mark.parametrize("op", registry.names())
def test_every_op_bounds_its_numeric_attributes(op):
    """Each op declares its numbers' bounds: ints within int64, floats finite, sizes and counts positive."""
    for name, attr in registry.get(op).attrs.items():
        if attr.kind in ("int", "ints", "int_or_str"):
            assert attr.violation(2**64) is not None, f"{op}.{name} accepts 2**64"
            if name not in SIGNED and attr.kind != "int_or_str" or name == "padding":
                assert attr.violation(-1) is not None, f"{op}.{name} accepts -1: declare min="
        if attr.kind in ("float", "floats"):
            assert attr.violation(math.nan) is not None and attr.violation(math.inf) is not None, \
                f"{op}.{name} accepts non-finite numbers"
            assert attr.violation(1e39) is not None and attr.violation(-3.5e38) is not None, \
                f"{op}.{name} accepts numbers that overflow float32"
            assert attr.violation(3.4e38) is None or attr.max is not None or attr.below is not None


# -- onnx_node written in a spec ---------------------------------------------------------------

ONNX_IN = "inputs: {x: [N, 4]}\nnodes:\n"
OK_TYPES = "output_types: [[[N, 4], float32]]"


@pytest.mark.parametrize("fields, message", [
    ("op_type: Relu, operands: [0], output_types: 3", "attribute 'output_types' of op 'onnx_node' expects a list of "
     "[shape, dtype] pairs, got 3"),
    ("op_type: Relu, operands: [0], output_types: [[[N, 4], complex]]", "output_types must be a non-empty list"),
    ("op_type: Relu, operands: [0], output_types: [[[N, -4], float32]]", "output_types must be a non-empty list"),
    (f"op_type: Nope, operands: [0], {OK_TYPES}", "'Nope' is not an operator of the default ONNX domain"),
    (f"op_type: 'a b', operands: [0], {OK_TYPES}", "op_type 'a b' must be an ONNX operator name like 'Pow'"),
    (f"op_type: Relu, operands: 5, {OK_TYPES}", "operands must list, per ONNX input, an input index"),
    (f"op_type: Relu, operands: [3], {OK_TYPES}", "operands [3] must name each of the node's 1 input(s) once"),
    (f"op_type: Relu, operands: [0], attributes: [1, 2], {OK_TYPES}", "attributes must be a mapping"),
    (f"op_type: Relu, operands: [0], attributes: {{a: {{b: 1}}}}, {OK_TYPES}",
     "attribute 'a' as a tensor must be {tensor: one of float32"),
    (f"op_type: Relu, operands: [0], attributes: {{a: [[1]]}}, {OK_TYPES}",
     "attribute 'a' must be a number, a string, a list of them or a tensor {tensor: DTYPE"),
    (f"op_type: Relu, operands: [0], attributes: {{alpha: 1.0}}, {OK_TYPES}",
     "not a valid ONNX Relu node: Unrecognized attribute: alpha for operator Relu"),
    (f"op_type: Relu, operands: [0], params: {{w: {{shape: [-1], dtype: float32}}}}, {OK_TYPES}",
     "params 'w' must be {shape: [ints >= 0], dtype: one of"),
    (f"op_type: Relu, operands: [0], opset: -3, {OK_TYPES}", "attribute 'opset' of op 'onnx_node' must be at least 0"),
    (f"op_type: LeakyRelu, operands: [0], attributes: {{alpha: 1e39}}, {OK_TYPES}",
     "attribute 'alpha' must fit in float32 (magnitude at most 3.4028235e+38), got 1e+39"),
    (f"op_type: Relu, operands: [0], attributes: {{x: [1.0, -1e39]}}, {OK_TYPES}",
     "attribute 'x' must fit in float32 (magnitude at most 3.4028235e+38), got -1e+39"),
    (f"op_type: ConstantOfShape, operands: [0], attributes: {{value: {{tensor: float16, shape: [1], values: [1e5]}}}}, "
     f"{OK_TYPES}", "attribute 'value' must fit in float16 (magnitude at most 65504), got 100000"),
    (f"op_type: ConstantOfShape, operands: [0], attributes: {{value: {{tensor: uint8, shape: [1], values: [300]}}}}, "
     f"{OK_TYPES}", "attribute 'value' must fit in uint8 (0 to 255), got 300"),
    (f"op_type: Add, operands: [0, w], params: {{w: {{shape: [1], dtype: float32, values: [1e39]}}}}, {OK_TYPES}",
     "params 'w' must fit in float32 (magnitude at most 3.4028235e+38), got 1e+39"),
    (f"op_type: Add, operands: [0, w], params: {{w: {{shape: [1], dtype: int32, values: [3e9]}}}}, {OK_TYPES}",
     "params 'w' must fit in int32 (-2147483648 to 2147483647), got 3e+09"),
])
def test_malformed_onnx_node_in_a_spec(fields, message):
    msgs = errors(ONNX_IN + f"  - {{name: n, op: onnx_node, {fields}}}\n")
    assert len(msgs) == 1 and msgs[0].startswith("m.yaml:3:"), msgs
    assert message in msgs[0]


D2S_IN = "inputs: {x: [N, 4, 2, 2]}\nnodes:\n"
D2S_TYPES = "output_types: [[[N, 1, 4, 4], float32]]"


@pytest.mark.parametrize("fields, message", [
    # attribute values ONNX's schema leaves open (its checker and shape inference pass them)
    (f"op_type: DepthToSpace, operands: [0], attributes: {{blocksize: 2, mode: XYZ}}, {D2S_TYPES}",
     "onnxruntime cannot run this DepthToSpace node: SpaceDepth op: only 'DCR' and 'CRD' modes are supported"),
    # an op of a domain onnxruntime does not have
    ("op_type: Gather, domain: com.example, opset: 1, operands: [0, i], params: {i: {shape: [2], dtype: int64, "
     "values: [0, 1]}}, output_types: [[[2, 4, 2, 2], float32]]",
     "op 'Gather' of domain 'com.example' is not one onnxruntime has (Fatal error: com.example:Gather(-1) is not "
     "a registered function/op); only standard ONNX ops and onnxruntime's own (com.microsoft, ai.onnx.ml) can run"),
])
def test_an_onnx_node_onnxruntime_cannot_run_is_refused(run_archc, tmp_path, fields, message):
    msgs = errors(D2S_IN + f"  - {{name: n, op: onnx_node, {fields}}}\n")
    assert len(msgs) == 1 and msgs[0].startswith(f"m.yaml:3:5: error: node 'n': onnx_node: {message}"), msgs
    (tmp_path / "m.yaml").write_text(D2S_IN + f"  - {{name: n, op: onnx_node, {fields}}}\n")
    proc = run_archc("check", "m.yaml", cwd=tmp_path)  # nothing of onnxruntime's own logging on stderr
    assert proc.returncode == 2 and proc.stderr.splitlines()[0].startswith(f"m.yaml:3:5: error: node 'n': onnx_node: "
                                                                          f"{message}"), proc.stderr
    assert len(proc.stderr.splitlines()) == 3  # the line, the spec line, the caret


@pytest.mark.parametrize("fields, output", [
    (f"op_type: DepthToSpace, operands: [0], attributes: {{blocksize: 2, mode: CRD}}, {D2S_TYPES}", (1, 4, 4)),
    ("op_type: FastGelu, domain: com.microsoft, opset: 1, operands: [0], output_types: [[[N, 4, 2, 2], float32]]",
     (4, 2, 2)),
])
def test_an_onnx_node_onnxruntime_runs_is_accepted(fields, output):
    graph = loads_spec(D2S_IN + f"  - {{name: n, op: onnx_node, {fields}}}\n", "m.yaml")
    assert graph.node("n").outputs[0].shape[1:] == output


def test_an_onnx_node_onnxruntime_warns_about_is_accepted_without_its_log(run_archc, tmp_path):
    # onnxruntime's Resize kernel warns through its default logger about a deprecated mode, in its
    # own colours, on archc's stderr: seen checking a spec `archc spec` wrote from the ONNX suite
    (tmp_path / "m.yaml").write_text(
        "inputs: {x: [1, 2, 5, 6]}\nnodes:\n  - {name: n, op: onnx_node, op_type: Resize, opset: 17, operands: "
        "[0, null, s], attributes: {coordinate_transformation_mode: tf_half_pixel_for_nn, mode: nearest}, "
        "params: {s: {shape: [4], dtype: float32, values: [1.0, 1.0, 2.0, 2.0]}}, "
        "output_types: [[[1, 2, 10, 12], float32]]}\n")
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_well_formed_onnx_node_in_a_spec_builds():
    graph = loads_spec(ONNX_IN + f"  - {{name: n, op: onnx_node, op_type: Relu, operands: [0], {OK_TYPES}}}\n", "m.yaml")
    assert graph.node("n").op == "onnx_node"


# -- the Limits value --------------------------------------------------------------------------

def test_limits_from_flags_and_environment():
    env = {"ARCHC_MAX_NODES": "50", "ARCHC_MAX_REPEAT": "7"}
    limits = Limits.from_sources({"max_nodes": "60", "max_params": None}, env)
    assert (limits.max_nodes, limits.max_repeat, limits.max_params) == (60, 7, DEFAULT_LIMITS.max_params)
    with pytest.raises(UsageError) as info:
        Limits.from_sources({"max_nodes": "-3"}, {})
    assert info.value.diagnostics[0].format() == "<command line>: error: --max-nodes expects a positive integer, got '-3'"
    with pytest.raises(UsageError) as info:
        Limits.from_sources({}, {"ARCHC_MAX_REPEAT": "lots"})
    assert info.value.diagnostics[0].format() == ("<environment>: error: environment variable ARCHC_MAX_REPEAT "
                                                  "expects a positive integer, got 'lots'")
    assert set(LIMIT_INFO) == {f for f in Limits.__dataclass_fields__}


@pytest.mark.parametrize("item, message", [
    ("w=&a [*a]", "<command line>: error: --set w: recursive YAML alias: this value contains itself"),
    ("w=" + "9" * 300, "<command line>: error: --set w: an integer of 997 bits: over the limit of 128 bits per integer"),
    ("w={a: 1}", "<command line>: error: --set w: value must be a number, a string, true/false, null or a list of "
     "those"),
    ("w=[1, {a: 1}]", "<command line>: error: --set w: value must be a number, a string, true/false, null or a list"),
])
def test_set_values_are_read_like_spec_values(item, message):
    from archc.cli.common import parse_overrides

    with pytest.raises(UsageError) as info:
        parse_overrides([item])
    assert info.value.diagnostics[0].format().startswith(message)
    assert parse_overrides(["w=[1, 2]", "m=a:b", "n=3"]) == {"w": [1, 2], "m": "a:b", "n": 3}


@pytest.mark.parametrize("fields, message", [
    ("op_type: Relu, operands: [0], output_types: [[[N, 4, 1], float32]]",
     "output 0 is declared (N, 4, 1), ONNX infers (?, 4)"),
    ("op_type: Relu, operands: [0], output_types: [[[N, 5], float32]]", "output 0 is declared (N, 5), ONNX infers (?, 4)"),
    ("op_type: Cast, operands: [0], attributes: {to: 7}, output_types: [[[N, 4], float32]]",
     "output 0 is declared float32, ONNX infers int64"),
])
def test_onnx_node_output_types_must_agree_with_onnx(fields, message):
    msgs = errors(ONNX_IN + f"  - {{name: n, op: onnx_node, {fields}}}\n")
    assert len(msgs) == 1 and msgs[0].startswith("m.yaml:3:5: error: node 'n': onnx_node: " + message), msgs


@pytest.mark.parametrize("text", [
    # an op repeated 9,000 times in a block repeated 9,000 times: the repetitions of an op counted as one node
    "blocks:\n  a: {nodes: [{op: relu, repeat: 90}]}\ninputs: {x: [N, 3]}\nnodes:\n  - {name: r, block: a, repeat: 90}\n",
    "inputs: {x: [N, 3]}\nnodes:\n  - {op: relu, repeat: 600}\n",
])
def test_every_repetition_counts_against_the_node_limit(text):
    # an adversarial review: `--max-nodes 100` let 12,001 relus through; three nested repeats reached 5.8 GB
    (message,) = errors(text, Limits(max_nodes=500))
    assert "the spec expands to too many nodes" in message and "over the limit of 500 nodes" in message


WORK_BOMB = """inputs: {x: [N, 3]}
functions:
  f0: {args: [a], return: 'sum(range(99999)) + a'}
  f1: {args: [a], return: 'f0(a) + f0(a) + f0(a) + f0(a) + f0(a) + f0(a) + f0(a) + f0(a) + f0(a) + f0(a)'}
  f2: {args: [a], return: 'f1(a) + f1(a) + f1(a) + f1(a) + f1(a) + f1(a) + f1(a) + f1(a) + f1(a) + f1(a)'}
blocks:
  b:
    let: {v: "sum(range(99999)) + sum(range(99999)) + sum(range(99999))"}
    nodes: [{op: relu}]
nodes:
  - {name: FIRST, op: relu, repeat: "f2(1) % 2 + 1"}
  - {name: r, block: b, repeat: 5000}
"""


@pytest.mark.parametrize("first", ["f2(1) % 2 + 1", "1"])
def test_the_spec_s_expressions_together_are_bounded(first):
    # each expression kept within its own bound, but a spec function's calls were each given a fresh one (a
    # function calling functions: hours) and a block's `let` repeated 5,000 times took half an hour
    (message,) = errors(WORK_BOMB.replace('"f2(1) % 2 + 1"', first), Limits(max_expr_work=1_000_000))
    assert "the spec's expressions together take over 20,000,000 steps, 20 times what one may take" in message


@pytest.mark.parametrize("text, message", [
    ("inputs: {x: [N, 3]}\nnodes:\n  - {name: r, op: relu, repeat: 3, instance_name: \"n${index}${s}\"}\n"
     "let: {s: \"'a' * 99999\"}\n",
     "instance_name gives 'n0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... (100,001 characters)' for "
     "repetition 0: names must use letters, digits, '_' and '-', at most 128 characters"),
    ("inputs: {x: [N, 3]}\nnodes:\n  - {name: " + "a" * 129 + ", op: relu}\n",
     f"node name '{'a' * 60}... (129 characters)' must use only letters, digits, '_' and '-' (hierarchy comes "
     "from blocks; LIST.N, e.g. convs.0, names an item of a module list), at most 128 characters"),
])
def test_names_are_at_most_128_characters(text, message):
    # an adversarial review: instance names of a million characters made by ${...} reached 7.9 GB, and ten
    # node names of 30,000 characters took the PyTorch target 44 s
    (found,) = errors(text)
    assert message in found, found


def test_a_model_name_is_at_most_128_characters():
    # an adversarial review: a model name of 100,000 characters made `graph` and `report` exit 0 with no file
    (found,) = errors("name: " + "m" * 129 + "\ninputs: {x: [N, 3]}\nnodes:\n  - {op: relu}\n")
    assert found == "m.yaml:1:7: error: 'name' must be a non-empty string of at most 128 characters", found
