"""The generated model class takes parameters its widths follow (``Resnet50(width=32)``), found by
elaborating the spec again at other values (archc/lowering/torch_probes.py), and refuses those it
cannot compute rather than building another network."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from generated_modules import assert_as_rebuilt as _assert_as_rebuilt
from generated_modules import build_generated as _build
from generated_modules import run_time_arguments as _run_time_arguments

from archc.lowering.torch_probes import _tidy

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("spec,cls,given", [
    ("specs/resnet18.yaml", "Resnet18", {"width": 16}),   # basic blocks: channels and the head follow width
    ("specs/resnet50.yaml", "Resnet50", {"width": 8}),    # bottlenecks: width * expansion, a let inside the block
])
def test_a_width_the_model_class_computes_is_a_constructor_argument(run_archc, tmp_path, spec, cls, given):
    # before: "width=16: this file was generated for width=64"; torchvision's ResNet takes its width too
    module, source = _build(run_archc, tmp_path, spec, "image_size=32")
    assert "width" in _run_time_arguments(source)
    init = source.split(f"class {cls}(nn.Module):")[1].split("def forward")[0]
    assert "nn.Conv2d(3, width," in init and "nn.Linear(width * " in init  # written as torchvision writes them
    _assert_as_rebuilt(run_archc, tmp_path, spec, ("image_size=32",), module, cls, given, torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("spec,cls,given,sets,shape", [
    # the encoder block's LayerNorm, attention and MLP widths: every instance had 32, a literal of the class
    ("specs/vit_b16.yaml", "VitB16", {"hidden_dim": 48},
     ("image_size=32", "patch_size=8", "num_layers=2", "num_heads=2", "hidden_dim=32", "mlp_dim=48"), (1, 3, 32, 32)),
    ("specs/highway.yaml", "Highway", {"width": 12}, ("width=8", "depth=3", "in_features=16"), (2, 16)),
])
def test_a_width_a_block_class_builds_is_taken_by_the_class_and_passed_down(run_archc, tmp_path, spec, cls,
                                                                             given, sets, shape):
    # before: a width every instance of a block shares was a literal of its class (nn.LayerNorm((768,)));
    # the class now takes it (in_features) and each caller passes what it computes it from
    module, source = _build(run_archc, tmp_path, spec, *sets)
    (name,) = given
    assert name in _run_time_arguments(source)
    _assert_as_rebuilt(run_archc, tmp_path, spec, sets, module, cls, given, torch.randn(*shape))


def test_a_file_built_with_set_takes_the_width_from_its_own_default(run_archc, tmp_path):
    module, source = _build(run_archc, tmp_path, "specs/resnet18.yaml", "width=16", "image_size=32")
    assert "width: int = 16" in source
    _assert_as_rebuilt(run_archc, tmp_path, "specs/resnet18.yaml", ("image_size=32",), module, "Resnet18",
                       {"width": 8}, torch.randn(1, 3, 32, 32))


_FLIP = """\
archc: 1
name: flip
params: {width: 8, num_classes: 3}
inputs:
  x: [N, 3, 16, 16]
blocks:
  unit:
    params: {c: null}
    nodes:
      - {name: conv, op: conv, out_channels: c, kernel_size: 3, padding: 1}
      - {name: act, op: relu, if: "c > 12", else: conv}
nodes:
  - {name: a, block: unit, c: width}
  - {name: pool, op: global_avgpool}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out_features: num_classes}
outputs: [fc]
"""

_TWO_PATHS = """\
archc: 1
name: twopaths
params: {width: 8, groups: 4}
inputs:
  x: [N, 3, 16, 16]
nodes:
  - {name: left, op: conv, in: x, out_channels: width, kernel_size: 3, padding: 1}
  - {name: right, op: conv, in: x, out_channels: width, kernel_size: 1}
  - {name: both, op: concat, in: [left, right]}
  - {name: mix, op: conv, out_channels: 4, kernel_size: 1}
  - {name: grouped, op: conv, out_channels: 4, kernel_size: 3, padding: 1, groups: groups}
  - {name: pool, op: global_avgpool}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out_features: 2}
outputs: [fc]
"""


_WIDENED = """\
archc: 1
name: widened
params: {k: 2, num_classes: 3}
inputs:
  x: [N, 3, 16, 16]
blocks:
  unit:
    params: {planes: null}
    nodes:
      - {name: conv, op: conv, out_channels: planes, kernel_size: 3, padding: 1}
      - {name: shortcut, op: conv, in: x, out_channels: planes, kernel_size: 1, if: "channels(x) != planes", else: x}
      - {name: add, op: add, in: [conv, shortcut]}
nodes:
  - {name: stem, op: conv, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: a, block: unit, planes: 16 * k}
  - {name: pool, op: global_avgpool}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out_features: num_classes}
outputs: [fc]
"""

_SMALL_STEM = """\
archc: 1
name: smallstem
params: {width: 8, image_size: 64}
inputs:
  x: [N, 3, image_size, image_size]
nodes:
  - {name: conv, op: conv, out_channels: width, kernel_size: 3, padding: 1}
  - {name: pool, op: maxpool, kernel_size: 2, stride: 2, if: "image_size >= 64"}
  - {name: gap, op: global_avgpool}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out_features: 2}
outputs: [fc]
"""

_CLAMPED = """\
archc: 1
name: clamped
params: {width: 16}
inputs:
  x: [N, 3, 8, 8]
nodes:
  - {name: conv1, op: conv, out_channels: width, kernel_size: 3, padding: 1}
  - {name: conv2, op: conv, out_channels: "max(width, 16)", kernel_size: 3, padding: 1}
  - {name: gap, op: global_avgpool}
  - {name: flat, op: flatten}
  - {name: fc, op: linear, out_features: 2}
outputs: [fc]
"""


def test_a_clamped_width_is_written_as_its_own_expression(run_archc, tmp_path, spec_file):
    # found by a user: max(width, 16) was written `width` (another layer's expression, equal at 16, 32
    # and 17, the values tried above the default): Clamped(width=8) built an 8-channel conv2
    module, source = _build(run_archc, tmp_path, spec_file(_CLAMPED))
    assert "nn.Linear(max(width, 16), 2" in source and "width, max(width, 16), kernel_size=3" in source
    _assert_as_rebuilt(run_archc, tmp_path, spec_file(_CLAMPED), (), module, "Clamped", {"width": 8},
                       torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("text,cls,given", [
    # found by a user (Wide-ResNet): a block's shortcut exists where its input's 16 channels differ from
    # 16 * k, so at k = 1 it goes: tried only above the default, the file took k and built a shortcut
    (_WIDENED, "Widened", {"k": 1}),
    # an `if:` turning at the file's own value: below it the pooling goes, and nothing else changes
    (_SMALL_STEM, "Smallstem", {"image_size": 32}),
    # an `if:` reads the width: at width 16 block `a` gains its relu (the same calls, another class body)
    (_FLIP, "Flip", {"width": 16}),
])
def test_a_parameter_the_model_class_cannot_compute_stays_fixed_and_says_how_to_rebuild(
        run_archc, tmp_path, spec_file, text, cls, given):
    module, source = _build(run_archc, tmp_path, spec_file(text))
    (name, value), = given.items()
    assert name not in _run_time_arguments(source)
    with pytest.raises(ValueError, match=f"regenerate it with archc build --set {name}={value}"):
        getattr(module, cls)(**given)


def test_a_group_count_the_spec_accepts_below_the_default_is_an_argument(run_archc, tmp_path, spec_file):
    # 4 channels: 8 and 5 groups are refused, 2 (tried below) is not
    module, source = _build(run_archc, tmp_path, spec_file(_TWO_PATHS))
    assert "groups" in _run_time_arguments(source) and "groups=groups" in source
    _assert_as_rebuilt(run_archc, tmp_path, spec_file(_TWO_PATHS), (), module, "Twopaths", {"groups": 2},
                       torch.randn(1, 3, 16, 16))


def test_the_library_without_the_spec_at_hand_keeps_widths_fixed():
    # generate_source(graph) alone cannot elaborate the spec again: the file is as it was
    from archc import load_spec
    from archc.lowering.torch import generate_source

    source = generate_source(load_spec(ROOT / "specs/resnet18.yaml"))
    assert "width" not in _run_time_arguments(source) and "nn.Conv2d(3, 64," in source


@pytest.mark.parametrize("text,ints,tidy", [
    ("width * 4 * 4", {"width"}, "width * 16"),
    ("(width * 2 + 3) // 2", {"width"}, "width + 1"),
    ("width * 4 * 4", set(), "width * 4 * 4"),            # a float parameter: floor arithmetic differs
    ("int(width * 0.5)", {"width"}, "int(width * 0.5)"),  # not integer arithmetic: as written
    ("base * 8 // (2 if False else 1)", {"base"}, "base * 8"),  # a fixed flag's branch taken
])
def test_expressions_are_written_in_their_simplest_integer_form(text, ints, tidy):
    assert _tidy(text, ints) == tidy


_VIT_SMALL = ("image_size=32", "patch_size=8", "num_layers=2", "num_heads=2", "hidden_dim=32", "mlp_dim=48")


def test_a_width_read_five_blocks_deep_reaches_the_model_class(run_archc, tmp_path):
    # ViT's mlp_dim is read in the MLP, inside the encoder block, inside the layer stack, inside the
    # encoder: each level's class takes it in turn (four levels were once the most tried)
    module, source = _build(run_archc, tmp_path, "specs/vit_b16.yaml", *_VIT_SMALL)
    assert "mlp_dim" in _run_time_arguments(source)
    block = source.split("class EncoderBlock(nn.Module):")[1].split("def forward")[0]
    # the second linear reads what the first made: the same argument, not a second one of equal value
    assert "nn.Linear(in_features, mlp_dim," in block and "nn.Linear(mlp_dim, in_features," in block
    assert "mlp_features" not in source and "in_features_1" not in source
    _assert_as_rebuilt(run_archc, tmp_path, "specs/vit_b16.yaml", _VIT_SMALL, module, "VitB16", {"mlp_dim": 80},
                       torch.randn(1, 3, 32, 32))


def test_a_concat_width_is_written_as_the_sum_a_person_would_write(run_archc, tmp_path):
    # U-Net's decoder reads the upsampled level and the skip: `ch * 2` in the level's class, computed
    # from the class's own width (before: a literal per level, and the model's width fixed); the levels
    # above the bottom are one recursive class
    module, source = _build(run_archc, tmp_path, "specs/unet.yaml", "width=8", "depth=3", "image_size=32")
    assert "width" in _run_time_arguments(source)
    assert source.count("DoubleConv(in_channels=ch * 2, out=ch)") == 1
    _assert_as_rebuilt(run_archc, tmp_path, "specs/unet.yaml", ("width=8", "depth=3", "image_size=32"), module,
                       "Unet", {"width": 12}, torch.randn(1, 1, 32, 32))


def test_a_probe_value_another_parameter_has_is_not_tried():
    from archc.lowering.torch_probes import probe_values

    # half the feed-forward width is the model's width: 33 instead of 32 (and 3x where 2x is taken)
    assert probe_values(64, False, {32}) == [128, 65, 33]
    assert probe_values(64, False, {128, 32}) == [192, 65, 33]
    assert probe_values(64, False) == [128, 65, 32]
    assert probe_values(8, True, {7}) == [16, 9, 4, 7]  # (one less is where a condition turns: kept)


def test_a_feed_forward_width_half_of_which_is_the_model_width_is_an_argument(run_archc, tmp_path):
    sets = ("d_model=32", "nhead=2", "num_encoder_layers=1", "num_decoder_layers=1", "dim_feedforward=64")
    module, source = _build(run_archc, tmp_path, "specs/transformer.yaml", *sets)
    assert "dim_feedforward" in _run_time_arguments(source)
    assert "nn.Linear(dim_feedforward, " in source
    reference, _ = _build(run_archc, tmp_path, "specs/transformer.yaml", *sets, "dim_feedforward=40")
    src, tgt = torch.randn(2, 5, 32), torch.randn(2, 4, 32)
    mine, ref = module.Transformer(dim_feedforward=40), reference.Transformer()
    mine.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(mine.eval()(src, tgt), ref.eval()(src, tgt))


_STAGE = """\
archc: 1
name: net
inputs:
  x: [N, 3, 8, 8]
blocks:
  cbr:
    params: {out: 4}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, padding: 1}
      - {name: relu, op: relu}
  stage:
    nodes:
      - {name: a, block: cbr, out: 8}
      - {name: b, block: cbr, out: 8}
      - {name: pool, op: maxpool, kernel_size: 2}
      - {name: c, block: cbr, out: 8}
nodes:
  - {name: stem, block: cbr, out: 8}
  - {name: s, block: stage}
"""


def test_a_conv_of_as_many_channels_as_it_reads_does_not_pass_the_class_input_width_on(run_archc, tmp_path,
                                                                                      spec_file):
    # the stage's convs make 8 channels of 8: the second and third read 8, whatever the stage reads
    # (before: `Cbr(in_channels=in_channels, out=8)`, equal values read as one width)
    module, source = _build(run_archc, tmp_path, spec_file(_STAGE))
    assert source.count("Cbr(in_channels=in_channels, out=8)") == 1
    stage = module.Stage(in_channels=4)
    with torch.no_grad():
        assert stage(torch.randn(1, 4, 8, 8)).shape == (1, 8, 4, 4)


_PLAIN_CNN = """\
archc: 1
name: plain_cnn
params: {in_channels: 1, c1: 8, c2: 16, hidden: 32, num_classes: 10, image_size: 28}
inputs:
  x: [N, in_channels, image_size, image_size]
nodes:
  - {name: conv1, op: conv, out_channels: c1, kernel_size: 5, padding: 2}
  - {name: relu1, op: relu}
  - {name: pool1, op: maxpool, kernel_size: 2}
  - {name: conv2, op: conv, out_channels: c2, kernel_size: 5, padding: 2}
  - {name: relu2, op: relu}
  - {name: pool2, op: maxpool, kernel_size: 2}
  - {name: flatten, op: flatten}
  - {name: fc1, op: linear, out_features: hidden}
  - {name: fc2, op: linear, out_features: num_classes}
"""


@pytest.mark.parametrize("text,cls,given,shape,written", [
    # PyTorch's MNIST example: fc1 reads c2 * 7 * 7 features, the flatten's product of its input's sizes
    (_PLAIN_CNN, "PlainCnn", {"c2": 12, "image_size": 32}, (2, 1, 32, 32),
     "nn.Linear(\n            c2 * (image_size // 4) * (image_size // 4), hidden"),
    # a concat of two widths at the top level: the sum (before: fixed, no expression of the spec gave it)
    (_TWO_PATHS, "Twopaths", {"width": 4}, (1, 3, 16, 16), "nn.Conv2d(\n            width * 2, 4,"),
])
def test_a_size_the_model_class_s_own_layers_make_is_computed_as_their_op_computes_it(
        run_archc, tmp_path, spec_file, text, cls, given, shape, written):
    module, source = _build(run_archc, tmp_path, spec_file(text))
    header = source.split("import torch")[0]
    assert "fixed" not in header and "(every" in header  # (every parameter is an argument)
    assert written in source
    _assert_as_rebuilt(run_archc, tmp_path, spec_file(text, "other.yaml"), (), module, cls, given, torch.randn(*shape))


_HALVES = """\
archc: 1
name: halves
params: {width: 8}
inputs:
  x: [N, 3, 8, 8]
nodes:
  - {name: conv, op: conv, out_channels: "width * 2", kernel_size: 1}
  - {name: halves, op: split, sizes: width, dim: 1}
  - {name: mix, op: add, in: ["halves:0", "halves:1"]}
  - {name: head, op: conv, out_channels: 4, kernel_size: 1}
"""


def test_a_split_whose_size_is_a_parameter_is_sized_over_it(run_archc, tmp_path, spec_file):
    # a split's sizes set how many outputs it has: trying another size must not read an output it
    # no longer has (GPT-2's qkv split once raised IndexError here)
    module, source = _build(run_archc, tmp_path, spec_file(_HALVES))
    assert "width" in _run_time_arguments(source) and "nn.Conv2d(width, 4," in source
    _assert_as_rebuilt(run_archc, tmp_path, spec_file(_HALVES, "other.yaml"), (), module, "Halves", {"width": 5},
                       torch.randn(1, 3, 8, 8))


_FOUR_BRANCHES = """\
archc: 1
name: four
params: {a: 8, b: 4, c: 3, d: 2}
inputs: {x: [N, 3, 16, 16]}
blocks:
  mixed:
    params: {m: null, n: null, o: null, p: null}
    nodes:
      - {name: p1, op: conv, in: x, out_channels: m, kernel_size: 1}
      - {name: p2, op: conv, in: x, out_channels: n, kernel_size: 1}
      - {name: p3, op: conv, in: x, out_channels: o, kernel_size: 1}
      - {name: p4, op: conv, in: x, out_channels: p, kernel_size: 1}
      - {name: bn, op: batchnorm, in: p4}
      - {name: cat, op: concat, in: [p1, p2, p3, bn]}
nodes:
  - {name: t, block: mixed, m: a, n: b, o: c, p: d}
  - {name: r, op: conv, out_channels: 5, kernel_size: 1}
"""

_DENSE = """\
archc: 1
name: dense
params: {g: 8, init: 16}
inputs: {x: [N, 3, 16, 16]}
blocks:
  layer:
    inputs: [feats...]
    nodes:
      - {name: cat, op: concat, in: feats}
      - {name: conv, op: conv, out_channels: g, kernel_size: 3, padding: 1}
nodes:
  - {name: conv0, op: conv, out_channels: init, kernel_size: 3, padding: 1}
  - {name: layers, block: layer, repeat: 2, in: [conv0, "layers[*]"]}
  - {name: out, op: concat, in: [conv0, "layers[*]"]}
  - {name: r, op: conv, out_channels: 5, kernel_size: 1}
"""


@pytest.mark.parametrize("text,cls,given,written", [
    # an Inception-style block of four branches (one through a norm, which keeps its width): the layer
    # after it reads their sum (before: `a + 9`, the other three fixed: a branch of 1 channel read as
    # the concat's axis at one of the values tried)
    (_FOUR_BRANCHES, "Four", {"b": 6, "d": 5}, "nn.Conv2d(\n            a + b + c + d, 5,"),
    # DenseNet's wiring: each layer concatenates what it is given (before: every width fixed)
    (_DENSE, "Dense", {"g": 4, "init": 6}, "Layer(cat_channels=g + init, g=g)"),
])
def test_a_concat_of_many_widths_inside_a_block_is_their_sum_at_the_model(run_archc, tmp_path, spec_file,
                                                                         text, cls, given, written):
    module, source = _build(run_archc, tmp_path, spec_file(text))
    assert "(every" in source.split("import torch")[0]
    assert written in source
    _assert_as_rebuilt(run_archc, tmp_path, spec_file(text, "other.yaml"), (), module, cls, given,
                       torch.randn(1, 3, 16, 16))


_CONV1D = """\
archc: 1
name: seq
inputs: {x: [N, 6, 10]}
blocks:
  branch:
    nodes:
      - {name: conv, op: conv, out_channels: 4, kernel_size: 1}
nodes:
  - {name: a, block: branch}
  - {name: b, block: branch}
"""


def test_a_sequence_s_sizes_are_named_by_the_layer_that_reads_them(run_archc, tmp_path, spec_file):
    # a Conv1d reads (N, C, L): its input's dim 1 is channels (TextCNN's embed_dim once read `in_tokens`);
    # a position embedding reads (N, T, C): ViT's encoder takes its token count as `in_tokens`
    _, source = _build(run_archc, tmp_path, spec_file(_CONV1D))
    assert "Branch(in_channels=6)" in source and "tokens" not in source
    _, source = _build(run_archc, tmp_path, "specs/vit_b16.yaml", *_VIT_SMALL)
    assert "in_tokens=image_size // 8 * (image_size // 8) + 1," in source
