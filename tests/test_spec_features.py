"""Spec language features for transcribing real architectures: parameters of any type through
nested blocks, sequential numbering with inline blocks and flat repetition, scientific notation."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from archc import SpecError, load_spec, loads_spec
from archc.ir import Value
from archc.ops.weights import total_params
from archc.lowering.torch import build_module

ROOT = Path(__file__).resolve().parents[1]


def load(text: str, **overrides):
    return loads_spec(text, overrides=overrides or None)


def errors(text: str) -> str:
    with pytest.raises(SpecError) as info:
        loads_spec(text)
    return str(info.value)


def diagnostics(text: str) -> list[str]:
    """Each error the spec ``text`` (read as ``m.yaml``) is refused with, as the CLI prints it."""
    with pytest.raises(SpecError) as info:
        loads_spec(text, "m.yaml")
    return [d.format() for d in info.value.diagnostics]


# -- parameters of any type flow through nested blocks ------------------------------------------

NESTED = """
params: {act: gelu, unit: conv_act}
inputs: {x: [N, 3, 8, 8]}
blocks:
  conv_act:
    params: {width: null, act: relu}
    nodes:
      - {name: conv, op: conv, out_channels: width, kernel_size: 3, padding: 1}
      - {name: act, op: act}
  stage:
    params: {width: null, act: null, unit: null}
    nodes:
      - {name: a, op: unit, width: width, act: act}
      - {name: b, block: conv_act, width: width * 2, act: act}
nodes:
  - {name: s, block: stage, width: 4, act: act, unit: unit}
  - {name: t, block: stage, width: 4, act: silu, unit: conv_act}
"""


def test_string_parameters_arrive_two_levels_down_as_values():
    g = load(NESTED)
    ops = {n.name: n.op for n in g.nodes()}
    assert ops["s.a.act"] == ops["s.b.act"] == "gelu"          # passed as a parameter, two levels down
    assert ops["t.a.act"] == ops["t.b.act"] == "silu"          # a literal word for a required parameter
    assert ops["s.a.conv"] == "conv"                           # `op: unit` named a block through a parameter
    assert load(NESTED, act="hardswish").node("s.b.act").op == "hardswish"


def test_a_string_attribute_may_name_a_parameter():
    g = load("params: {approx: tanh}\ninputs: {x: [N, 4]}\nnodes: [{name: g, op: gelu, approximate: approx}]")
    assert g.node("g").attrs["approximate"] == "tanh"


def test_a_parameter_naming_an_unknown_op_is_reported_with_its_value():
    msg = errors(NESTED.replace("act: gelu, unit", "act: gelux, unit"))
    assert "unknown op 'gelux'" in msg and "did you mean 'gelu'" in msg


# -- sequential numbering, inline blocks, flat repetition ----------------------------------------

VGG = """
params: {cfg: [8, 8, M, 16, M]}
inputs: {x: [N, 3, 16, 16]}
blocks:
  conv_relu:
    params: {width: null}
    nodes:
      - {op: conv, out_channels: width, kernel_size: 3, padding: 1}
      - {op: relu}
  stage:
    params: {v: null}
    nodes:
      - {block: conv_relu, inline: true, width: v, if: "v != 'M'"}
      - {op: maxpool, kernel_size: 2, stride: 2, if: "v == 'M'"}
  features:
    sequential: true
    nodes:
      - {block: stage, repeat: "len(cfg)", inline: true, v: "cfg[index]"}
  head:
    sequential: true
    nodes:
      - {name: fc1, op: linear, out_features: 10}
      - {op: relu, repeat: 2, inline: true}
      - {op: linear, out_features: 5, in: fc1}
nodes:
  - {name: features, block: features}
  - {op: flatten}
  - {name: classifier, block: head}
"""


class VggReference(nn.Module):
    """The same network written as PyTorch's VGG is: flat nn.Sequential numbering."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                                      nn.MaxPool2d(2, 2))
        self.classifier = nn.Sequential(nn.Linear(256, 10), nn.ReLU(), nn.ReLU(), nn.Linear(10, 5))

    def forward(self, x):
        f = self.features(x).flatten(1)
        return self.classifier[3](self.classifier[0](f))


def test_flat_numbering_like_nn_sequential():
    g = load(VGG)
    names = [n.name for n in g.nodes() if n.op != "input"]
    assert names == [f"features.{i}" for i in range(8)] + ["flatten"] + [f"classifier.{i}" for i in range(4)]
    assert [g.node(f"features.{i}").op for i in range(8)] == ["conv", "relu", "conv", "relu", "maxpool", "conv",
                                                             "relu", "maxpool"]
    assert g.node("classifier.3").inputs[0].node == "classifier.0"  # local names stay handles
    ours, ref = build_module(g).eval(), VggReference().eval()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in ref.state_dict().items()]
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(ours(x), ref(x))


def test_inline_block_without_numbering_keeps_its_node_names():
    g = load("""
inputs: {x: [N, 4]}
blocks:
  mlp: {nodes: [{name: fc1, op: linear, out_features: 8}, {name: fc2, op: linear, out_features: 4}]}
nodes:
  - {block: mlp, inline: true}
""")
    assert [n.name for n in g.nodes()] == ["x", "fc1", "fc2"]
    assert total_params(g) == 4 * 8 + 8 + 8 * 4 + 4


def test_inline_repetition_outside_a_sequential_block_is_a_name_clash():
    msg = errors("""
inputs: {x: [N, 4]}
blocks:
  mlp: {nodes: [{name: fc, op: linear, out_features: 4}]}
nodes:
  - {block: mlp, inline: true, repeat: 2}
""")
    assert "two nodes are named 'fc'" in msg and "sequential block" in msg


def test_inline_on_a_plain_op_is_refused():
    msg = errors("inputs: {x: [N, 4]}\nnodes: [{op: relu, inline: true}]")
    assert "'inline' applies to block instances" in msg and ":2:" in msg


# -- numbers as people write them -------------------------------------------------------------------

def test_scientific_notation_is_a_number_everywhere():
    g = load("params: {eps: 1e-3, scale: 5E-1}\ninputs: {x: [N, 4, 6]}\n"
             "nodes: [{name: ln, op: layernorm, eps: eps}, {name: m, op: mul, value: scale}]")
    assert g.params["eps"] == 0.001 and g.node("ln").attrs["eps"] == 0.001 and g.node("m").attrs["value"] == 0.5
    assert load("params: {eps: 1e-3}\ninputs: {x: [N, 4]}\nnodes: [{op: layernorm, eps: eps}]",
                eps=1e-6).params["eps"] == 1e-6


def test_set_takes_scientific_notation(run_archc, spec_file):
    path = spec_file("params: {eps: 1.0e-5}\ninputs: {x: [N, 4]}\nnodes: [{name: ln, op: layernorm, eps: eps}]\n")
    proc = run_archc("summary", path, "--set", "eps=1e-3", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    proc = run_archc("check", path, "--set", "eps=abc")
    assert proc.returncode == 2 and "--set eps='abc': expected a number, as the default 1e-05 is" in proc.stderr


# -- includes that scale ----------------------------------------------------------------------------

def test_include_the_shipped_library_by_name(tmp_path):
    from archc import load_spec

    spec = tmp_path / "m.yaml"
    spec.write_text("include: archc/resnet_blocks\ninputs: {x: [N, 8, 8, 8]}\n"
                    "nodes: [{name: layer, block: basic, planes: 8}]\n")
    g = load_spec(str(spec))
    assert g.node("layer.add").op == "add"


def test_includes_inside_included_files_and_diamonds(tmp_path):
    from archc import load_spec

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "base.yaml").write_text(
        "blocks:\n  unit:\n    params: {c: 4}\n    nodes: [{name: conv, op: conv, out_channels: c, kernel_size: 1}]\n")
    (tmp_path / "lib" / "mid.yaml").write_text(
        "include: base\nblocks:\n  pair:\n    nodes: [{name: a, block: unit}, {name: b, block: unit}]\n")
    spec = tmp_path / "m.yaml"
    spec.write_text("include: [lib/mid.yaml, lib/base.yaml]\ninputs: {x: [N, 2, 4, 4]}\n"
                    "nodes: [{name: p, block: pair}, {name: u, block: unit, c: 3}]\n")
    g = load_spec(str(spec))
    assert g.node("p.b.conv").type.shape == ("N", 4, 4, 4) and g.node("u.conv").type.shape == ("N", 3, 4, 4)


def test_include_cycle_names_the_chain(tmp_path, run_archc):
    (tmp_path / "a.yaml").write_text("include: b.yaml\nblocks: {}\n")
    (tmp_path / "b.yaml").write_text("blocks: {}\ninclude: a\n")
    (tmp_path / "m.yaml").write_text("include: a.yaml\ninputs: {x: [N, 2]}\nnodes: [{op: relu}]\n")
    proc = run_archc("check", str(tmp_path / "m.yaml"))
    assert proc.returncode == 2
    a, b, m = (str(tmp_path / f) for f in ("a.yaml", "b.yaml", "m.yaml"))
    assert f"{b}:2:10: error: include cycle: {a} -> {b} -> {a}" in proc.stderr, proc.stderr


def test_missing_include_says_where_it_looked(tmp_path, run_archc):
    (tmp_path / "m.yaml").write_text("include: nolib\ninputs: {x: [N, 2]}\nnodes: [{op: relu}]\n")
    proc = run_archc("check", str(tmp_path / "m.yaml"))
    assert proc.returncode == 2
    assert "m.yaml:1:10: error: cannot include 'nolib': no such file (looked in " in proc.stderr
    assert "archc/library" in proc.stderr


# -- small pure functions ------------------------------------------------------------------------

FUNCTIONS = """
params: {width_mult: 0.75}
functions:
  make_divisible:
    args: [v, divisor]
    defaults: {divisor: 8}
    let: {new_v: "max(divisor, int(v + divisor / 2) // divisor * divisor)"}
    return: "new_v + divisor if new_v < 0.9 * v else new_v"
  scaled:
    args: [c, mult]
    return: "make_divisible(c * mult)"
inputs: {x: [N, 3, 8, 8]}
nodes:
  - {name: a, op: conv, out_channels: "make_divisible(32 * width_mult)", kernel_size: 1}
  - {name: b, op: conv, out_channels: "make_divisible(10, 4)", kernel_size: 1}
  - {name: c, op: conv, out_channels: "scaled(96, width_mult)", kernel_size: 1}
"""


def _make_divisible(v, divisor=8):  # torchvision's rule, for comparison
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def test_functions_compute_like_their_python_original():
    g = load(FUNCTIONS)
    assert g.node("a").attrs["out_channels"] == _make_divisible(32 * 0.75) == 24
    assert g.node("b").attrs["out_channels"] == _make_divisible(10, 4) == 12
    assert g.node("c").attrs["out_channels"] == _make_divisible(96 * 0.75) == 72
    for mult in (0.35, 0.5, 1.3, 1.4):
        g = load(FUNCTIONS, width_mult=mult)
        assert g.node("a").attrs["out_channels"] == _make_divisible(32 * mult)


@pytest.mark.parametrize("decl,call,message", [
    ("f: {args: [x], return: 'x'}", "f(1, 2)", "f() takes 1 argument(s) (x), got 2"),
    ("f0: {args: [x], return: 'x'}\n  f1: {args: [x], return: 'f0(x) + f0(x)'}\n  f2: {args: [x], return: 'f1(x) + f1(x)'}"
     + "".join(f"\n  f{i}: {{args: [x], return: 'f{i - 1}(x) + f{i - 1}(x)'}}" for i in range(3, 30)),
     "f29(1)", "spec functions were called more than 100000 times"),
])
def test_function_errors_at_the_call(decl, call, message):
    msg = errors(f"functions:\n  {decl}\ninputs: {{x: [N, 2]}}\nnodes: [{{op: linear, out_features: '{call}'}}]")
    assert message in msg, msg


@pytest.mark.parametrize("decl,message", [
    ("f: {args: [x]}", "function 'f' must be a mapping with 'args' and 'return'"),
    ("f: {args: [x], return: 'x +'}", "function 'f': invalid expression 'x +'"),
    ("max: {args: [x], return: x}", "function name 'max' must be an identifier that is not a built-in function"),
    ("f: {args: [x, y], defaults: {x: 1}, return: x}", "'defaults' of function 'f' must give values for its last"),
    ("f: {arg: [x], return: x}", "unknown key 'arg' in function 'f'"),
    # names are checked where the function is written, whether or not a call reaches them
    ("f: {args: [x], return: 'f(x - 1) if x > 0 else 0'}", "function 'f': unknown name 'f' in its result"),
    ("f: {args: [x], return: 'x + y'}", "function 'f': unknown name 'y' in its result (a function sees its "
     "arguments, its earlier let values and the functions defined before it)"),
    ("f: {args: [v, divisor], let: {n: 'v // divisor'}, return: 'n + divisr if n < 0 else n'}",
     "function 'f': unknown name 'divisr' in its result (a function sees its arguments, its earlier let values "
     "and the functions defined before it); did you mean 'divisor'?"),
    ("f: {args: [v], let: {a: 'b + v', b: 'v'}, return: a}", "function 'f': unknown name 'b' in its let 'a'"),
])
def test_bad_function_definitions(decl, message):
    msg = errors(f"functions:\n  {decl}\ninputs: {{x: [N, 2]}}\nnodes: [{{op: relu}}]")
    assert message in msg and "<spec>:2:" in msg, msg


def test_a_broken_function_is_reported_once_and_the_others_still_work():
    # found transcribing MobileNetV3: a typo in make_divisible's untaken branch passed check and build
    msg = errors("functions:\n  bad: {args: [x], return: 'x + y'}\n  good: {args: [x], return: 'x * 2'}\n"
                 "inputs: {x: [N, 2]}\n"
                 "nodes: [{op: linear, out_features: 'bad(1)'}, {op: linear, out_features: 'good(2)'}]")
    assert msg.count("error:") == 1 and "function 'bad': unknown name 'y'" in msg, msg


# -- the previous node in expressions, and the width warning -------------------------------------

HEAD = """name: head
inputs: {x: [N, 32, 4, 4]}
blocks:
  head:
    params: {classes: 10}
    nodes:
      - {name: conv, op: conv, out_channels: 128, kernel_size: 1}
      - {op: global_avgpool}
      - {op: flatten}
      - {name: fc1, op: linear, out_features: "channels(x)"}
      - {name: fc2, op: linear, out_features: "channels(prev) // 2"}
      - {name: fc3, op: linear, out_features: classes, in: prev}
  res:
    nodes:
      - {name: conv1, op: conv, out_channels: 8, kernel_size: 1}
      - {name: conv2, op: conv, out_channels: "channels(x)", kernel_size: 1}
      - {name: add, op: add, in: [x, conv2]}
nodes:
  - {name: r, block: res}
  - {name: h, block: head}
"""


def test_prev_names_the_node_before_this_one():
    g = load(HEAD)
    assert g.node("h.fc2").attrs["out_features"] == 16          # channels(prev): fc1's 32 features / 2
    assert g.node("h.fc3").inputs[0].node == "h.fc2"            # in: prev
    assert g.node("r.conv2").attrs["out_channels"] == 32


def test_check_warns_when_a_width_comes_from_an_input_the_block_reads_only_once(run_archc, spec_file):
    proc = run_archc("check", spec_file(HEAD))
    assert proc.returncode == 0
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, proc.stderr  # the residual block's channels(x) is read by its add: no warning
    assert warnings[0].endswith(":10:9: warning: node 'h.fc1': its width is computed from x, the block's input, "
                                "which it does not read (the block reads 'x' only in its first node); for the node "
                                "before this one write 'prev', e.g. channels(prev)")


MLP_BACK_TO_INPUT_WIDTH = """
inputs: {x: [N, 12]}
blocks:
  mlp:                                   # timm's Mlp: out_features = out_features or in_features
    params: {hidden: null}
    nodes:
      - {name: fc1, op: linear, out_features: hidden}
      - {name: act, op: gelu}
      - {name: fc2, op: linear, out_features: "shape(x)[-1]"}
  head:
    nodes:
      - {name: fc0, op: linear, out_features: 5}
      - {name: fc1, op: linear, out_features: "channels(x)"}
      - {name: fc2, op: linear, out_features: 3}
nodes:
  - {name: a, block: mlp, hidden: 24}
  - {name: b, block: mlp, hidden: 48}
  - {name: h1, block: head}
  - {name: h2, block: head}
"""


def test_no_width_warning_where_a_block_gives_its_output_the_input_width_and_one_per_place(run_archc, spec_file):
    # found transcribing MLP-Mixer: 4 warnings for an MLP's fc2 back to the input width (its output)
    proc = run_archc("check", spec_file(MLP_BACK_TO_INPUT_WIDTH))
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert proc.returncode == 0 and len(warnings) == 1, proc.stderr  # h1.fc1's, not h2.fc1's again
    assert warnings[0].endswith(":13:9: warning: node 'h1.fc1': its width is computed from x, the block's input, "
                                "which it does not read (the block reads 'x' only in its first node); for the node "
                                "before this one write 'prev', e.g. channels(prev)")


def test_no_width_warning_for_a_scale_computed_from_the_input_channels(run_archc, spec_file):
    # found transcribing StyleGAN2: EqualConv2d's 1 / sqrt(fan_in) after the conv reads channels(x) on purpose,
    # and sizes nothing
    text = ("inputs: {x: [N, 3, 8, 8]}\nblocks:\n  eq_conv:\n    nodes:\n"
            "      - {name: conv, op: conv, out_channels: 16, kernel_size: 1, bias: false}\n"
            "      - {name: scale, op: mul, value: \"1 / sqrt(channels(x))\"}\n"
            "nodes:\n  - {name: a, block: eq_conv}\n")
    proc = run_archc("check", spec_file(text))
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_no_width_warning_for_a_block_input_read_beside_another_tensor(run_archc, spec_file):
    # found transcribing a decoder: `ref` is upsampled to (its size) and its channels are meant
    text = ("inputs: {x: [N, 8, 4, 4], skip: [N, 6, 8, 8]}\nblocks:\n  up:\n    inputs: [x, ref]\n    nodes:\n"
            "      - {name: up, op: resize, in: [x, ref], mode: nearest}\n"
            "      - {name: conv, op: conv, out_channels: channels(ref), kernel_size: 3, padding: 1}\n"
            "      - {name: relu, op: relu}\n"
            "nodes:\n  - {name: a, block: up, in: [x, skip]}\n")
    proc = run_archc("check", spec_file(text))
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_a_node_named_prev_keeps_its_name():
    g = load("inputs: {x: [N, 4]}\nnodes: [{name: prev, op: linear, out_features: 3}, {op: relu},"
             " {name: o, op: linear, out_features: 2, in: prev}]")
    assert g.node("o").inputs[0].node == "prev"


# -- sequence models that run bare ---------------------------------------------------------------

GPT_POSITIONS = """
params: {vocab: 50, dim: 8, max_len: 16}
inputs: {tokens: {shape: [N, S], dtype: int64}}
example_dims: {S: 11}
nodes:
  - {name: wte, op: embedding, num_embeddings: vocab, embedding_dim: dim}
  - {name: wpe, op: position_embedding, max_len: max_len}
"""


class GptPositions(nn.Module):
    def __init__(self, vocab=50, dim=8, max_len=16):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Parameter(torch.zeros(1, max_len, dim))

    def forward(self, tokens):
        return self.wte(tokens) + self.wpe[:, :tokens.shape[1]]


def test_position_table_longer_than_the_input_is_sliced():
    import numpy as np

    from ops_harness import run_onnx, run_torch

    g = load(GPT_POSITIONS)
    assert g.node("wpe").outputs[0].shape == ("N", "S", 8)
    ours, ref = build_module(g).eval(), GptPositions().eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    for length in (1, 7, 16):
        tokens = np.random.default_rng(length).integers(0, 50, (2, length))
        want = ref(torch.from_numpy(tokens)).detach().numpy()
        np.testing.assert_allclose(run_torch(g, {"tokens": tokens})[0], want, rtol=1e-6)
        np.testing.assert_allclose(run_onnx(g, {"tokens": tokens})[0], want, rtol=1e-6)
    msg = errors(GPT_POSITIONS.replace("[N, S]", "[N, 17]").replace("example_dims: {S: 11}\n", ""))
    assert "the input has 17 positions along dim 1, more than max_len=16" in msg


def test_example_dims_let_run_and_verify_go_without_dim(run_archc, spec_file):
    path = spec_file(GPT_POSITIONS)
    proc = run_archc("run", path)
    assert proc.returncode == 0, proc.stderr
    assert "(1, 11, 8)" in proc.stdout
    proc = run_archc("run", path, "--dim", "S=5", "--batch", "3")
    assert proc.returncode == 0 and "(3, 5, 8)" in proc.stdout, proc.stdout + proc.stderr
    proc = run_archc("check", spec_file(GPT_POSITIONS.replace("{S: 11}", "{L: 11}"), "bad.yaml"))
    assert proc.returncode == 2
    assert "bad.yaml:4:16: error: example_dims names 'L', which is no symbolic dim of the inputs (they have: N, S)" \
        in proc.stderr


def test_shipped_sequence_specs_verify_without_dim(run_archc):
    proc = run_archc("verify", "specs/transformer.yaml", "--profile", "small")
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr


# -- weight tying ------------------------------------------------------------------------------

TIED = """
params: {vocab: 50, dim: 8}
inputs: {tokens: {shape: [N, S], dtype: int64}}
example_dims: {S: 6}
nodes:
  - {name: wte, op: embedding, num_embeddings: vocab, embedding_dim: dim}
  - {name: ln, op: layernorm}
  - {name: lm_head, op: linear, out_features: vocab, bias: false, tie: {weight: wte.weight}}
"""


class TiedLM(nn.Module):
    """GPT-2's output projection shares the token embedding."""

    def __init__(self, vocab=50, dim=8):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.ln = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, tokens):
        return self.lm_head(self.ln(self.wte(tokens)))


def test_tied_weights_are_one_tensor_with_two_keys_counted_once(tmp_path):
    import numpy as np

    from archc.lowering.onnx import to_onnx
    from archc.lowering.torch import load_weights
    from ops_harness import run_onnx

    g = load(TIED)
    ref = TiedLM()
    assert total_params(g) == sum(p.numel() for p in ref.parameters()) == 50 * 8 + 16
    ours = build_module(g).eval()
    assert ours.lm_head.weight is ours.wte.weight
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["wte.weight", "ln.weight", "ln.bias", "lm_head.weight"]
    torch.save(ref.state_dict(), tmp_path / "ref.pt")
    load_weights(g, str(tmp_path / "ref.pt"))
    tokens = np.random.default_rng(0).integers(0, 50, (2, 6))
    want = ref.eval()(torch.from_numpy(tokens)).detach().numpy()
    np.testing.assert_allclose(build_module(g).eval()(torch.from_numpy(tokens)).detach().numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(run_onnx(g, {"tokens": tokens})[0], want, rtol=1e-5, atol=1e-6)
    assert [i.name for i in to_onnx(g).graph.initializer] == ["wte.weight", "ln.weight", "ln.bias"]
    # checkpoints that leave the tied copy out (as many do) load too
    sd = ref.state_dict()
    del sd["lm_head.weight"]
    torch.save(sd, tmp_path / "short.pt")
    load_weights(g, str(tmp_path / "short.pt"))
    assert g.weights["lm_head"]["weight"] is g.weights["wte"]["weight"]


def test_the_state_dict_file_of_a_tied_spec_holds_one_tensor_under_both_keys(run_archc, tmp_path):
    # `archc build --state-dict` draws the weights it writes one by one (deferred): a tied key drew
    # its own values, so the module loaded from the file disagreed with the ONNX build of the spec
    import importlib.util

    import numpy as np
    import onnxruntime as ort

    spec = tmp_path / "tied.yaml"
    spec.write_text(TIED)
    run_archc("build", str(spec), "--target", "torch", "-o", str(tmp_path / "tied.py"),
              "--state-dict", str(tmp_path / "tied.pt"), check=True)
    run_archc("build", str(spec), "-o", str(tmp_path / "tied.onnx"), check=True)
    sd = torch.load(tmp_path / "tied.pt")
    assert torch.equal(sd["wte.weight"], sd["lm_head.weight"])
    loader = importlib.util.spec_from_file_location("tied_model", tmp_path / "tied.py")
    generated = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(generated)
    model = next(cls for cls in vars(generated).values() if isinstance(cls, type) and issubclass(cls, nn.Module)
                 and cls.__module__ == "tied_model" and "lm_head" in cls.__init__.__code__.co_names)()
    model.load_state_dict(sd)
    tokens = np.random.default_rng(0).integers(0, 50, (2, 6))
    want = ort.InferenceSession(str(tmp_path / "tied.onnx")).run(None, {"tokens": tokens})[0]
    np.testing.assert_allclose(model.eval()(torch.from_numpy(tokens)).detach().numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tie,message", [
    ("{weight: ln.weight}", "cannot tie 'weight' (50, 8) to 'ln.weight' (8,): tied parameters need one shape"),
    ("{bias: wte.weight}", "op 'linear' has no parameter 'bias' to tie; it has: weight"),
    ("{weight: wte.wieght}", "'wte.wieght' is no parameter of another node ('wte' has: weight)"),
    ("{weight: wtf.weight}", "unknown node or input 'wtf'"),
])
def test_tie_errors(tie, message):
    msg = errors(TIED.replace("{weight: wte.weight}", tie))
    assert message in msg and "node 'lm_head'" in msg, msg


@pytest.mark.parametrize("text,message", [
    # (nanoGPT ties the embedding to the head written after it: `self.transformer.wte.weight = self.lm_head.weight`)
    (TIED.replace(", tie: {weight: wte.weight}", "").replace("embedding_dim: dim}",
                                                              "embedding_dim: dim, tie: {weight: lm_head.weight}}"),
     "node 'wte': 'lm_head' comes after this node: a tie names a tensor made earlier; to share this one (wte.weight) "
     "with a later node or one outside this block, put the tie on that node: tie: {PARAM: wte.weight}"),
    ("params: {vocab: 50, dim: 8}\ninputs: {tokens: {shape: [N, S], dtype: int64}}\nblocks:\n  emb:\n    nodes:\n"
     "      - {name: wte, op: embedding, num_embeddings: vocab, embedding_dim: dim, tie: {weight: lm_head.weight}}\n"
     "nodes:\n  - {name: transformer, block: emb}\n  - {name: lm_head, op: linear, out_features: vocab, bias: false}\n",
     "node 'transformer.wte': unknown node or input 'lm_head' (a tie names a tensor made earlier; to share this one "
     "(transformer.wte.weight) with a later node or one outside this block, put the tie on that node: "
     "tie: {PARAM: transformer.wte.weight})"),
])
def test_a_tie_to_a_later_node_says_where_the_tie_goes(text, message):
    # found transcribing nanoGPT (round 17): only "unknown node or input 'lm_head'"
    assert message in errors(text)


NESTED_TIE = """
params: {vocab: 40, dim: 8}
inputs: {idx: {shape: [N, T], dtype: int64}}
example_dims: {T: 5}
blocks:
  transformer:
    nodes:
      - {name: wte, op: embedding, num_embeddings: vocab, embedding_dim: dim}
      - {name: gamma, op: parameter, shape: [dim]}
      - {name: scaled, op: mul, in: [wte, gamma]}
      - {name: ln_f, op: layernorm}
nodes:
  - {name: transformer, block: transformer}
  - {name: lm_head, op: linear, out_features: vocab, bias: false, tie: {weight: transformer.wte.weight}}
  - {name: gain, op: parameter, shape: [vocab], tie: {gain: transformer.gamma}}
"""


def test_tie_reaches_into_a_block_instance_by_its_state_dict_path():
    # nanoGPT: self.lm_head.weight = self.transformer.wte.weight (found transcribing GPT-2)
    module = build_module(load(NESTED_TIE.replace("shape: [vocab], tie: {gain: transformer.gamma}", "shape: [dim], tie: {gain: transformer.gamma}")))
    assert module.lm_head.weight is module.transformer.wte.weight
    assert module.gain is module.transformer.gamma
    assert sum(p.numel() for p in module.parameters()) == 40 * 8 + 8 + 16


@pytest.mark.parametrize("tie,message", [
    ("{weight: transformer.wte.wieght}", "'transformer.wte.wieght' names no parameter inside block instance "
     "'transformer'; expected a path as its state_dict key reads, e.g. transformer.wte.weight, transformer.gamma, "
     "transformer.ln_f.weight (did you mean 'transformer.wte.weight'?)"),
    ("{weight: transformer.wtf.weight}", "'transformer.wtf.weight' names no parameter inside block instance "
     "'transformer'; expected a path as its state_dict key reads, e.g. transformer.wte.weight, transformer.gamma, "
     "transformer.ln_f.weight (did you mean 'transformer.wte.weight'?)"),
    ("{weight: transformr.wte.weight}", "unknown node or input 'transformr'"),
])
def test_tie_path_errors(tie, message):
    msg = errors(NESTED_TIE.replace("{weight: transformer.wte.weight}", tie).replace(
        "shape: [vocab], tie: {gain: transformer.gamma}", "shape: [dim], tie: {gain: transformer.gamma}"))
    assert message in msg and "node 'lm_head'" in msg and msg.startswith("<spec>:14:"), msg


SIAMESE = """
inputs: {x1: [N, 1, 16, 16], x2: [N, 1, 16, 16]}
blocks:
  encoder:
    params: {w: 8}
    nodes:
      - {name: conv1, op: conv, out_channels: w, kernel_size: 3, stride: 2, padding: 1}
      - {op: relu}
      - {op: mean, dims: [2, 3]}
      - {name: fc, op: linear, out_features: 16}
nodes:
  - {name: enc_a, block: encoder, in: x1}
  - {name: enc_b, block: encoder, in: x2, tie: enc_a}
  - {name: diff, op: sub, in: [enc_a, enc_b]}
  - {name: head, op: linear, out_features: 1}
"""


@pytest.mark.parametrize("tie", ["enc_a", "{conv1.weight: enc_a.conv1.weight, conv1.bias: enc_a.conv1.bias, "
                                           "fc.weight: enc_a.fc.weight, fc.bias: enc_a.fc.bias}"])
def test_a_block_instance_tied_to_another_shares_every_parameter(tie, run_archc, tmp_path):
    # found transcribing a siamese network: tie: on a block instance was accepted and ignored (two encoders'
    # parameters counted), a made-up entry too
    import numpy as np
    import onnxruntime as ort

    g = load(SIAMESE.replace("tie: enc_a", f"tie: {tie}"))
    assert total_params(g) == (8 * 9 + 8) + (8 * 16 + 16) + 17
    module = build_module(g).eval()
    assert module.enc_b.conv1.weight is module.enc_a.conv1.weight and module.enc_b.fc.bias is module.enc_a.fc.bias
    spec = tmp_path / "siamese.yaml"
    spec.write_text(SIAMESE.replace("tie: enc_a", f"tie: {tie}"))
    run_archc("build", str(spec), "-o", str(tmp_path / "s.onnx"), check=True)
    session = ort.InferenceSession(str(tmp_path / "s.onnx"))
    assert len(session.get_inputs()) == 2
    x = np.random.default_rng(0).standard_normal((2, 1, 16, 16)).astype(np.float32)
    # one encoder: the same image on both sides gives a zero difference, whatever the head's bias adds
    same = session.run(None, {"x1": x, "x2": x})[0]
    np.testing.assert_allclose(same, module.head(torch.zeros(2, 16)).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert "PASSED" in run_archc("verify", str(spec), check=True).stdout


@pytest.mark.parametrize("tie,message", [
    ("{bogus: nowhere.at_all}", "13:49: error: node 'enc_b': 'bogus' names no parameter inside block instance "
     "'enc_b'; expected a path as its state_dict key reads, e.g. conv1.weight, conv1.bias, fc.weight"),
    ("enc_c", "13:48: error: node 'enc_b': unknown node or input 'enc_c' (did you mean 'enc_a'?)"),
    ("enc_a, w: 4", "13:48: error: node 'enc_b': cannot tie 'conv1.weight' (4, 1, 3, 3) to 'enc_a.conv1.weight' "
     "(8, 1, 3, 3): tied parameters need one shape and dtype"),
    ("3", "13:48: error: node 'enc_b': 'tie' on a block instance names another instance (tie: enc_a) or maps "
     "paths inside this one to other parameters"),
    ("enc_a, inline: true", "13:48: error: node 'enc_b': 'tie' on an inline block instance: its nodes join the "
     "caller's, so tie them one by one"),
])
def test_block_instance_tie_errors(tie, message):
    msg = errors(SIAMESE.replace("tie: enc_a", f"tie: {tie}"))
    assert message in msg, msg


ALBERT_LIKE = """
params: {layers: 4}
inputs: {x: [N, 6, 16]}
blocks:
  layer:
    nodes:
      - {name: attention, op: multi_head_attention, num_heads: 2, in: [x, x, x]}
      - {name: add1, op: add, in: [x, attention]}
      - {name: ffn, op: linear, out_features: 16}
      - {name: add2, op: add, in: [add1, ffn]}
nodes:
  - {name: layer, block: layer, repeat: layers, tie: layer.0}
"""
ALBERT_PARAMS = (3 * 16 * 16 + 3 * 16) + (16 * 16 + 16) + (16 * 16 + 16)


@pytest.mark.parametrize("layers", [1, 4, 12])
def test_a_repeated_instance_tied_to_its_first_repetition_applies_one_layer_n_times(layers, run_archc, tmp_path):
    # ALBERT (found transcribing it): one layer's weights shared by every layer, the count a parameter.
    # The attention's parameters hold dots of their own (out_proj.weight): tied through nn.MultiheadAttention
    g = load(ALBERT_LIKE, layers=layers)
    assert total_params(g) == ALBERT_PARAMS
    module = build_module(g).eval()
    assert all(module.layer[k].attention.out_proj.weight is module.layer[0].attention.out_proj.weight
               for k in range(layers))
    spec = tmp_path / "albert.yaml"
    spec.write_text(ALBERT_LIKE)
    assert "PASSED" in run_archc("verify", str(spec), "--set", f"layers={layers}", check=True).stdout


@pytest.mark.parametrize("overrides", ["{1: {tie: layer.0}, 2: {tie: layer.0}, 3: {tie: layer.1}}",
                                       "{-1: {tie: layer.0}, 1: {tie: layer.0}, 2: {tie: layer.0}}"])
def test_a_tie_in_a_repetitions_overrides_ties_that_repetition(overrides):
    # was accepted and ignored: the overrides' tie (and expect) were read from the node as written
    g = load(ALBERT_LIKE.replace("tie: layer.0", f"overrides: {overrides}"))
    assert total_params(g) == ALBERT_PARAMS


def test_an_expect_in_a_repetitions_overrides_is_checked_there(run_archc, tmp_path):
    spec = tmp_path / "expect.yaml"
    spec.write_text("inputs: {x: [N, 16]}\nnodes:\n"
                    "  - {name: fc, op: linear, out_features: 16, repeat: 2, overrides: {1: {expect: residual}}}\n")
    result = run_archc("lint", str(spec), "--strict")
    assert result.returncode == 1
    assert "expect.yaml:3:5: node 'fc.1': expected residual, found none" in result.stdout, result.stdout


@pytest.mark.parametrize("replacement,message", [
    ("tie: layer.0}", None),
    ("overrides: {1: {if: false}}}", "12:65: error: node 'layer': 'if' cannot be overridden per repetition"),
    ("overrides: {1: {expect: residul}}}", "12:73: error: node 'layer': unknown connection kind 'residul'; "
     "expected one of residual"),
    ("overrides: {2: {tie: bogus.0}}}", "12:70: error: node 'layer.2': unknown node or input 'bogus'"),
    ("overrides: {2: {tie: layer.3}}}", "12:70: error: node 'layer.2': 'tie: layer.3' names no repetition made "
     "before 'layer.2': a repeated instance ties to an earlier repetition, e.g. tie: layer.0"),
    # found transcribing a Universal Transformer: a missing or later repetition read as a name used too early
    ("tie: layer.7}", "12:54: error: node 'layer.0': 'tie: layer.7' names no repetition made before 'layer.0'"),
])
def test_repetition_override_errors(replacement, message):
    text = ALBERT_LIKE.replace("tie: layer.0}", replacement)
    if message is None:
        load(text)
        return
    msg = errors(text)
    assert message in msg, msg


@pytest.mark.parametrize("tie", ["layer.0", "{weight: layer.0.weight, bias: layer.0.bias}"])
def test_a_repeated_op_tied_to_its_first_repetition_applies_one_layer_n_times(tie):
    # found transcribing a Universal Transformer: on a repeated op, repetition 0 was refused as tied to itself
    # ("'layer.0.weight' is no parameter of another node ('layer.0' has: weight, bias)"), the whole-node form too
    g = load(f"inputs: {{x: [N, 8]}}\nnodes:\n  - {{name: layer, op: linear, out_features: 8, repeat: 3, tie: {tie}}}\n")
    assert total_params(g) == 8 * 8 + 8
    module = build_module(g)
    assert module.layer[2].weight is module.layer[0].weight and module.layer[1].bias is module.layer[0].bias


@pytest.mark.parametrize("tie,message", [
    ("{weight: fc.weight}", "3:59: error: node 'fc': 'fc.weight' is this node's own parameter: a tie names another "
     "node's"),
    ("3", "3:50: error: node 'fc': 'tie' names another node, all of whose parameters this node shares (tie: fc), "
     "or maps this node's parameters to other nodes', e.g. {weight: wte.weight}"),
])
def test_op_tie_errors_say_what_a_tie_names(tie, message):
    msg = errors(f"inputs: {{x: [N, 8]}}\nnodes:\n  - {{name: fc, op: linear, out_features: 8, tie: {tie}}}\n")
    assert message in msg, msg


def test_an_op_tied_to_another_by_name_shares_every_parameter():
    g = load("inputs: {x: [N, 8]}\nnodes:\n  - {name: a, op: linear, out_features: 8}\n"
             "  - {name: b, op: linear, out_features: 8, tie: a}\n")
    module = build_module(g)
    assert total_params(g) == 72 and module.b.weight is module.a.weight and module.b.bias is module.a.bias


def test_a_block_instance_tied_to_itself_is_an_error():
    msg = errors(SIAMESE.replace("tie: enc_a", "tie: enc_b"))
    assert "13:48: error: node 'enc_b': 'tie: enc_b' ties block instance 'enc_b' to itself; name another instance" \
        in msg, msg


def test_an_attention_parameter_ties_by_its_dotted_name(run_archc, tmp_path):
    # 'attention.out_proj.weight' was refused ("names no parameter ... did you mean 'attention.out_proj.weight'"),
    # and on an op node the module wrote setattr(self.b, "out_proj.weight", ...), an AttributeError
    text = """
inputs: {x: [N, 5, 16]}
nodes:
  - {name: a, op: multi_head_attention, num_heads: 2, in: [x, x, x]}
  - {name: b, op: multi_head_attention, num_heads: 2, in: [a, a, a], tie: {out_proj.weight: a.out_proj.weight}}
"""
    g = load(text)
    assert total_params(g) == 2 * (3 * 16 * 16 + 3 * 16 + 16 * 16 + 16) - 16 * 16
    module = build_module(g)
    assert module.b.out_proj.weight is module.a.out_proj.weight
    spec = tmp_path / "tied_attention.yaml"
    spec.write_text(text)
    assert "PASSED" in run_archc("verify", str(spec), check=True).stdout


# -- repetitions named into a sequential block's numbering (torchvision's MobileNet features) --------

FLAT_REPEAT = """
inputs: {x: [N, 3, 8, 8]}
blocks:
  unit:
    nodes:
      - {name: conv, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
      - {name: add, op: add, in: [conv, x]}
  features:
    sequential: true
    nodes:
      - {op: conv, out_channels: 4, kernel_size: 1}
      - {name: units, block: unit, repeat: 3, instance_name: "${index + 1}"}
      - {op: conv, out_channels: 8, kernel_size: 1}
nodes:
  - {name: features, block: features}
"""


def test_numbered_instance_names_take_their_places_in_a_sequential_block():
    # nn.Sequential(stem, *[InvertedResidual(...) ...], last): features.1 .. features.3, then 4
    keys = list(build_module(load(FLAT_REPEAT)).state_dict())
    assert keys == ["features.0.weight", "features.0.bias"] + [
        f"features.{i}.conv.{p}" for i in (1, 2, 3) for p in ("weight", "bias")] + [
        "features.4.weight", "features.4.bias"]


def test_a_numbered_instance_name_already_taken_in_a_sequential_block_is_an_error():
    message = errors(FLAT_REPEAT.replace('"${index + 1}"', '"${index}"'))
    assert ("instance_name gives '0' for repetition 0, but this sequential block has already numbered its "
            "children up to 0; expected 1 or more (e.g. \"${index + 1}\" for the first repetition)") in message
    assert message.startswith("<spec>:12:62: error: node 'features.units': ")


TRANSITION = """
inputs: {x: [N, 8, 8, 8]}
blocks:
  transition:                            # DenseNet's: BN, ReLU, then a conv halving the input's width
    nodes:
      - {name: norm, op: batchnorm}
      - {name: relu, op: relu}
      - {name: conv, op: conv, out_channels: "channels(x) // 2", kernel_size: 1}
      - {name: pool, op: avgpool, kernel_size: 2, stride: 2}
nodes:
  - {name: t, block: transition}
"""


@pytest.mark.parametrize("spec", sorted((ROOT / "specs").glob("*.yaml")), ids=lambda p: p.stem)
def test_no_shipped_spec_draws_a_warning(spec):
    assert load_spec(spec).warnings == []


def test_no_width_warning_where_the_nodes_own_input_has_the_block_inputs_width(run_archc, spec_file):
    # found transcribing DenseNet-BC: channels(x) and channels(prev) are the same number after BN and ReLU
    proc = run_archc("check", spec_file(TRANSITION))
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("dim, width", [("half", 4), ("2 * half", 8), ("half + 1", 5)])
def test_an_onnx_node_s_declared_types_read_parameters(dim, width):
    # found transcribing NeRF: 'half' in output_types became a new symbolic dim, not the parameter (4), and
    # the error came later, at a linear layer reading the input's width
    g = load(f"params: {{half: 4}}\ninputs: {{x: [N, {width}]}}\nnodes:\n"
             f"  - {{name: s, op: onnx_node, op_type: Sin, operands: [0], output_types: [[[N, \"{dim}\"], float32]]}}\n"
             "  - {name: fc, op: linear, out_features: 2}\n")
    assert g.type_of(Value("s")).shape == ("N", width) and g.type_of(Value("fc")).shape == ("N", 2)


def test_a_checkpoint_may_leave_out_an_onnx_nodes_constants_that_the_spec_writes(run_archc, tmp_path):
    # a T5 transcription: --weights from the reference module demanded the onnx_node's fixed constants
    # (learned: false, values given), which no PyTorch checkpoint of the reference holds
    spec = tmp_path / "clip.yaml"
    spec.write_text("""
inputs: {x: [N, 4]}
nodes:
  - {name: fc, op: linear, out_features: 4}
  - {name: clip, op: onnx_node, op_type: Min, operands: [0, top], output_types: [[[N, 4], float32]],
     params: {top: {shape: [], dtype: float32, learned: false, values: [0.5]}}}
""")
    torch.manual_seed(0)
    reference = nn.Linear(4, 4)
    torch.save({f"fc.{k}": v for k, v in reference.state_dict().items()}, tmp_path / "ref.pt")
    run_archc("build", str(spec), "-o", str(tmp_path / "clip.onnx"), "--weights", str(tmp_path / "ref.pt"),
              check=True)
    import onnxruntime as ort

    x = torch.randn(3, 4)
    got = ort.InferenceSession(str(tmp_path / "clip.onnx")).run(None, {"x": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), torch.clamp(reference(x), max=0.5).detach())


def test_an_onnx_nodes_fixed_constants_are_buffers_counted_as_summary_counts():
    # parameters() counted them (nn.Parameter(requires_grad=False) in an nn.ParameterDict) where summary did not
    g = load("""
inputs: {x: [N, 4]}
nodes:
  - {name: fc, op: linear, out_features: 4}
  - {name: scaled, op: onnx_node, op_type: Mul, operands: [0, gain], output_types: [[[N, 4], float32]],
     params: {gain: {shape: [4], dtype: float32, learned: true}}}
  - {name: clip, op: onnx_node, op_type: Min, operands: [0, top], output_types: [[[N, 4], float32]],
     params: {top: {shape: [], dtype: float32, learned: false, values: [0.5]}}}
""")
    module = build_module(g)
    assert sum(p.numel() for p in module.parameters()) == total_params(g) == 4 * 4 + 4 + 4
    assert [name for name, _ in module.named_buffers()] == ["clip.top"]
    assert module.scaled.gain.requires_grad and list(module.state_dict())[-2:] == ["scaled.gain", "clip.top"]
    torch.jit.script(module)


UNREAD_INPUT = """
inputs: {x: [N, 8, 4, 4], y: [N, 8, 4, 4]}
blocks:
  fuse:
    inputs: [x, skip]
    params: {use_skip: false}
    nodes:
      - {name: c, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
      - {name: s, op: add, in: [c, x]}
  gated:                                 # reads skip in one instance only: no warning
    inputs: [x, skip]
    params: {use_skip: false}
    nodes:
      - {name: c, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
      - {name: s, op: add, in: [c, skip], if: use_skip}
  sized:                                 # reads skip for its shape only: no warning
    inputs: [x, skip]
    nodes:
      - {name: c, op: conv, out_channels: "channels(skip)", kernel_size: 1}
  through:                               # passes skip on as an output: no warning
    inputs: [x, skip]
    outputs: [c, skip]
    nodes:
      - {name: c, op: relu}
  gather:
    inputs: [x, rest...]
    nodes:
      - {name: c, op: relu}
nodes:
  - {name: f1, block: fuse, in: [x, y]}
  - {name: f2, block: fuse, in: [f1, y]}
  - {name: g1, block: gated, in: [f2, y]}
  - {name: g2, block: gated, in: [g1, y], use_skip: true}
  - {name: z, block: sized, in: [g2, y]}
  - {name: t, block: through, in: [z, y]}
  - {name: r, block: gather, in: ["t:0", "t:1"]}
"""


def test_check_warns_once_per_block_about_an_input_no_instance_reads(run_archc, spec_file):
    # seen transcribing HiFi-GAN: a block's second input, never named in its nodes, gave no word at all
    proc = run_archc("check", spec_file(UNREAD_INPUT))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert [w.split("model.yaml:", 1)[1] for w in warnings] == [
        "5:17: warning: block 'fuse': its input 'skip' is never read (no node's 'in:' names it, nor its "
        "'outputs'); read it, or leave it out of the block's inputs",
        "26:17: warning: block 'gather': its input 'rest' is never read (no node's 'in:' names it, nor its "
        "'outputs'); read it, or leave it out of the block's inputs"], proc.stderr


# -- module lists used interleaved (Res2Net's convs[i] and bns[i]) -------------------------------

class Res2NetSplits(nn.Module):
    """The hierarchical 3x3 convs of Res2Net's Bottle2neck (Gao et al. 2019) as its official code
    keeps them: two ModuleLists, used interleaved in one loop."""

    def __init__(self, width: int, scale: int) -> None:
        super().__init__()
        self.width, self.nums = width, scale - 1
        self.convs = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(self.nums)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(width) for _ in range(self.nums)])

    def forward(self, x):
        spx = torch.split(x, self.width, 1)
        for i in range(self.nums):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = torch.relu(self.bns[i](self.convs[i](sp)))
            out = sp if i == 0 else torch.cat((out, sp), 1)
        return torch.cat((out, spx[self.nums]), 1)


RES2NET_SPLITS = """
inputs: {x: [N, 12, 6, 6]}
blocks:
  splits:
    nodes:
      - {name: spx, op: split, sizes: 3}
      - {name: convs.0, op: conv, in: "spx:0", out_channels: 3, kernel_size: 3, padding: 1, bias: false}
      - {name: bns.0, op: batchnorm}
      - {name: sp0, op: relu}
      - {name: in1, op: add, in: [sp0, "spx:1"]}
      - {name: convs.1, op: conv, out_channels: 3, kernel_size: 3, padding: 1, bias: false}
      - {name: bns.1, op: batchnorm}
      - {name: sp1, op: relu}
      - {name: in2, op: add, in: [sp1, "spx:2"]}
      - {name: convs.2, op: conv, out_channels: 3, kernel_size: 3, padding: 1, bias: false}
      - {name: bns.2, op: batchnorm}
      - {name: sp2, op: relu}
      - {name: cat, op: concat, in: [sp0, sp1, sp2, "spx:3"]}
nodes:
  - {name: body, block: splits}
"""


def test_list_item_names_make_module_lists_used_interleaved(tmp_path, run_archc):
    # Res2Net (and HiFi-GAN's convs1[j]/convs2[j]) could not be transcribed: a name had no '.'
    module = build_module(load(RES2NET_SPLITS))
    reference = Res2NetSplits(3, 4)
    with torch.no_grad():
        for bn in reference.bns:
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    module.body.load_state_dict(reference.state_dict(), strict=True)
    module.eval(), reference.eval()
    x = torch.randn(2, 12, 6, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(module(x), reference(x))
    (tmp_path / "m.yaml").write_text(RES2NET_SPLITS)
    run_archc("build", "m.yaml", "--target", "torch", "-o", "m.py", cwd=tmp_path, check=True)
    source = (tmp_path / "m.py").read_text()
    assert "self.convs = nn.ModuleList(" in source and "convs_1 = self.convs[1](in1)" in source
    proc = run_archc("verify", "m.yaml", cwd=tmp_path, check=True)
    assert "PASSED" in proc.stdout


def test_a_default_may_be_another_parameter_as_an_optional_argument_of_none_is():
    # (found transcribing milesial's U-Net, round 17: DoubleConv(in, out, mid_channels=None) took a let and a
    # default of 0, as the docs did not say a default may name another parameter)
    graph = load("inputs: {x: [N, 3, 8, 8]}\nblocks:\n  double:\n    params: {out: null, mid: out}\n"
                     "    nodes:\n      - {name: c1, op: conv, out_channels: mid, kernel_size: 3, padding: 1}\n"
                     "      - {name: c2, op: conv, out_channels: out, kernel_size: 3, padding: 1}\n"
                     "nodes:\n  - {name: a, block: double, out: 4}\n  - {name: b, block: double, out: 8, mid: 6}\n")
    widths = {n.name: n.outputs[0].shape[1] for n in graph.nodes() if n.op == "conv"}
    assert widths == {"a.c1": 4, "a.c2": 4, "b.c1": 6, "b.c2": 8}


def test_names_a_failed_repeated_node_would_have_made_are_no_second_error():
    # found transcribing a U-Net (round 17): after an error in the stem, the encoder (repeated, its repetitions
    # named down1..down3) could not be made, and the decoder's read of down2 was a second error, "unknown node
    # or input 'down2' (did you mean 'down'?)", which fixing the first made go away
    text = ("inputs: {x: [N, 4, 32, 32]}\nblocks:\n  stem:\n    params: {out: null, mid: null}\n    nodes:\n"
            "      - {op: conv, out_channels: out, kernel_size: 3, padding: 1}\n"
            "nodes:\n  - {name: inc, block: stem, out: 4}\n"
            "  - {name: down, op: maxpool, kernel_size: 2, repeat: 3, instance_name: 'down${index + 1}'}\n"
            "  - {name: up, op: add, in: [down, down2]}\n")
    assert diagnostics(text) == ["m.yaml:8:5: error: node 'inc': block 'stem' needs parameter 'mid'"]


def test_a_repeated_module_list_item_is_a_sequential_in_the_list(tmp_path, run_archc):
    # found transcribing ConvNeXt (round 17): `self.stages = nn.ModuleList([nn.Sequential(*blocks), ...])` was
    # refused ("its repetitions would be a list in the list"); a wrapper block built the very same modules
    (tmp_path / "m.yaml").write_text(
        "archc: 1\nname: m\ninputs: {x: [N, 4, 6, 6]}\nblocks:\n  blk:\n    params: {dim: null}\n    nodes:\n"
        "      - {name: dwconv, op: conv, out_channels: dim, kernel_size: 3, padding: 1, groups: dim}\n"
        "      - {name: add, op: add, in: [x, dwconv]}\n"
        "nodes:\n  - {name: stages.0, block: blk, repeat: 2, dim: 4}\n  - {name: down, op: conv, out_channels: 8, "
        "kernel_size: 2, stride: 2}\n  - {name: stages.1, block: blk, dim: 8}\n")
    run_archc("build", "m.yaml", "-o", "m.py", cwd=tmp_path, check=True)
    source = (tmp_path / "m.py").read_text()
    assert "self.stages = nn.ModuleList(" in source and "self.stages[0](x)" in source
    keys = run_archc("summary", "m.yaml", "--format", "json", cwd=tmp_path, check=True).stdout
    assert all(f'"stages.0.{k}.dwconv"' in keys for k in (0, 1)) and '"stages.1.dwconv"' in keys
    assert "PASSED" in run_archc("verify", "m.yaml", cwd=tmp_path, check=True).stdout


@pytest.mark.parametrize("nodes, message", [
    ("  - {name: convs.0, op: relu}\n  - {name: convs.2, op: relu}\n",
     "m.yaml:4:12: error: node 'convs.2': module list 'convs' has items 0, 2: a module list's items are numbered "
     "0, 1, 2, ... without a gap (convs.1 is missing)"),
    ("  - {name: convs.1, op: relu}\n",
     "m.yaml:3:12: error: node 'convs.1': module list 'convs' has items 1: a module list's items are numbered "
     "0, 1, 2, ... without a gap (convs.0 is missing)"),
    ("  - {name: convs, op: relu}\n  - {name: convs.0, op: relu}\n",
     "m.yaml:4:12: error: node 'convs.0': 'convs' is also a node's name here: a module list and a node cannot "
     "share it"),
    ("  - {name: convs.01, op: relu}\n",
     "m.yaml:3:12: error: node name 'convs.01' must use only letters, digits, '_' and '-' (hierarchy comes from "
     "blocks; LIST.N, e.g. convs.0, names an item of a module list), at most 128 characters"),
])
def test_bad_module_list_items_are_located_errors(nodes, message):
    assert diagnostics("inputs: {x: [N, 4]}\nnodes:\n" + nodes) == [message]


def test_list_errors_say_once_what_clashes_and_what_an_if_left_out():
    assert diagnostics("inputs: {x: [N, 4]}\nnodes:\n  - {name: convs, op: relu}\n  - {name: convs.0, op: relu}\n"
                       "  - {name: convs.1, op: relu}\n") == [
        "m.yaml:4:12: error: node 'convs.0': 'convs' is also a node's name here: a module list and a node cannot "
        "share it"]
    assert diagnostics("params: {deep: false}\ninputs: {x: [N, 4]}\nnodes:\n  - {name: fcs.0, op: relu}\n"
                       "  - {name: fcs.1, op: relu, if: deep}\n  - {name: fcs.2, op: relu}\n") == [
        "m.yaml:6:12: error: node 'fcs.2': module list 'fcs' has items 0, 2: a module list's items are numbered "
        "0, 1, 2, ... without a gap (fcs.1 is left out by its 'if:'; number the kept items 0, 1, 2, ... in each "
        "case)"]


def test_a_left_out_list_item_leaves_no_gap_when_it_is_the_last():
    text = ("params: {deep: false}\ninputs: {x: [N, 4]}\nnodes:\n  - {name: fcs.0, op: linear, out_features: 4}\n"
            "  - {name: fcs.1, op: linear, out_features: 4, if: deep}\n")
    assert "fcs.1" not in [n.name for n in load(text).nodes()]
    assert "fcs.1" in [n.name for n in load(text, deep=True).nodes()]


def test_a_list_item_is_queried_in_an_expression_as_pytorch_indexes_it():
    # found transcribing PANet: `shape(lateral_convs.1)` was a syntax error with no word of what to write
    head = "inputs: {x: [N, 4, 8, 8]}\nnodes:\n  - {name: convs.0, op: conv, out_channels: 6, kernel_size: 1}\n"
    graph = load(head + "  - {name: convs.1, op: conv, out_channels: \"channels(convs[0]) * 2\", kernel_size: 1}\n"
                        "  - {name: up, op: resize, size: \"shape(convs[1])[2:]\"}\n")
    assert graph.type_of(Value("convs.1")).shape[1] == 12
    convs_1 = "  - {name: convs.1, op: conv, out_channels: \"channels(convs.0)\", kernel_size: 1}\n"
    assert diagnostics(head + convs_1) == [
        "m.yaml:4:55: error: node 'convs.1': invalid expression 'channels(convs.0)': invalid syntax. Perhaps you "
        "forgot a comma? (a module list's item is convs[0] in an expression)"]


def test_a_list_item_in_a_sequential_block_is_refused():
    assert diagnostics("inputs: {x: [N, 4]}\nblocks:\n  b:\n    sequential: true\n"
                       "    nodes: [{name: fcs.0, op: relu}]\nnodes:\n  - {name: s, block: b}\n") == [
        "m.yaml:5:20: error: node 's.fcs.0': a sequential block numbers its nodes (their names are handles, not "
        "module names): name the node without a '.'"]


# -- a block that reads no tensor (found transcribing T5: its relative position bias table) ----------------
_TABLE = ("inputs: {x: [N, 4]}\nblocks:\n  table:\n    inputs: []\n    outputs: w\n"
          "    nodes: [{name: w, op: parameter, shape: [4], init: ones}]\nnodes:\n")


def test_a_block_of_no_inputs_is_instantiated_with_an_empty_in(tmp_path, run_archc):
    text = _TABLE + ("  - {name: t, block: table, in: []}\n  - {name: u, block: table, in: [], repeat: 2}\n"
                     "  - {name: y, op: add, in: [x, t, \"u[*]\"]}\n")
    graph = load(text)
    assert total_params(graph) == 12
    module = build_module(graph)
    assert sorted(module.state_dict()) == ["t.w", "u.0.w", "u.1.w"]
    assert torch.equal(module(torch.zeros(2, 4)), torch.full((2, 4), 3.0))
    (tmp_path / "m.yaml").write_text(text)
    run_archc("build", "m.yaml", "--target", "torch", "-o", "m.py", cwd=tmp_path, check=True)
    assert "    def forward(self) -> torch.Tensor:\n" in (tmp_path / "m.py").read_text()
    assert "PASSED" in run_archc("verify", "m.yaml", cwd=tmp_path, check=True).stdout


@pytest.mark.parametrize("text, message", [
    (_TABLE + "  - {name: t, block: table}\n",
     "m.yaml:8:5: error: node 't': block 'table' takes no input, got 1 (the block declares no inputs: "
     "write in: [] to instantiate it)"),
    (_TABLE.replace("    outputs: w\n", "") + "  - {name: t, block: table, in: []}\n",
     "m.yaml:4:5: error: node 't': block 'table' reads no input and has no node after its declared tensors: "
     "name its output with 'outputs:'"),
])
def test_a_block_of_no_inputs_says_how_to_use_it(text, message):
    assert diagnostics(text) == [message]


def test_repeat_zero_leaves_the_node_out_and_its_name_stands_for_its_input():
    g = load("params: {depth: 0}\ninputs: {x: [N, 4]}\nnodes:\n"
             "  - {name: fc, op: linear, out_features: 4, repeat: depth}\n  - {name: o, op: relu, in: fc}\n")
    assert [n.name for n in g.nodes()] == ["x", "o"] and g.node("o").inputs[0].node == "x"
