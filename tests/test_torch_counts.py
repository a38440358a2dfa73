"""The generated model class takes the parameters its model-level repeat counts follow
(``Highway(depth=5)``, ``range(num_layers - 2)``), found by elaborating the spec again at other
values (archc/lowering/torch_counts.py), and refuses a count below what it was checked at."""
from __future__ import annotations

import pytest
import torch
from generated_modules import assert_as_rebuilt, build_generated, run_time_arguments

from archc.frontends.yaml import loads_spec
from archc.lowering.torch_counts import count_changes


def _model_init(source: str, cls: str) -> str:
    return source.split(f"class {cls}(nn.Module):")[1].split("def forward")[0]


def test_count_parameters_are_tried_together_each_item_by_its_own_step():
    assert count_changes({"depth": 10}, ["depth"]) == [{"depth": 11}, {"depth": 9}]
    assert count_changes({"depth": 1}, ["depth"]) == [{"depth": 2}]  # (never below 1)
    # (layers[0] and layers[3] are both 3 here, as are a and c: their steps tell them apart)
    assert count_changes({"layers": [3, 4, 6, 3]}, ["layers"]) == [{"layers": [4, 6, 9, 7]},
                                                                   {"layers": [2, 3, 5, 2]}]
    assert count_changes({"a": 5, "b": 10, "c": 5}, ["a", "b", "c"]) == [{"a": 6, "b": 12, "c": 8},
                                                                          {"a": 4, "b": 9, "c": 4}]


def test_the_frontend_records_each_numbered_repeat_and_the_parameters_its_count_reads():
    graph = loads_spec(STAGES.replace('repeat: "layers[1]"', "repeat: len(layers) + 1"), "stages.yaml")
    assert graph.repeat_counts == {"stage1": {"layers"}, "stage2": {"layers"}}
    assert graph.copy().repeat_counts == graph.repeat_counts
    # inside a block: the instance's container, its count read through the block argument
    inner = STAGES.replace("    params: {out: 4, stride: 1}\n", "    params: {out: 4, stride: 1, n: 1}\n") \
        .replace("      - {name: relu, op: relu}", "      - {name: relu, op: relu, repeat: n}") \
        .replace('repeat: "layers[0]", out: width}', 'n: "layers[0]", out: width}') \
        .replace('repeat: "layers[1]", out: width * 2, overrides: {0: {stride: 2}}}', "out: width * 2, stride: 2}")
    assert loads_spec(inner, "inner.yaml").repeat_counts == {"stage1.relu": {"layers"}}
    # repetitions named by instance_name too (the owner's children: u0, u1, ...); literal counts not
    named = STAGES.replace('repeat: "layers[0]", out: width}', 'repeat: "layers[0]", out: width, '
                                                                'instance_name: "u${index}"}')
    assert loads_spec(named, "named.yaml").repeat_counts == {"stage1": {"layers"}, "stage2": {"layers"}}
    assert loads_spec(STAGES.replace('"layers[0]"', "2"), "literal.yaml").repeat_counts == {"stage2": {"layers"}}


def test_a_model_level_repeat_count_is_a_constructor_argument(run_archc, tmp_path):
    # before: "depth=5: this file was generated for depth=3"; a highway net's depth is its point
    sets = ("width=8", "depth=3", "in_features=16")
    module, source = build_generated(run_archc, tmp_path, "specs/highway.yaml", *sets)
    assert "depth" in run_time_arguments(source)
    assert "*[HighwayLayer(in_channels=width) for _ in range(depth)]" in _model_init(source, "Highway")
    for depth in (1, 5):
        assert_as_rebuilt(run_archc, tmp_path, "specs/highway.yaml", sets, module, "Highway", {"depth": depth},
                          torch.randn(2, 16))


def test_a_count_after_differing_first_repetitions_is_the_parameter_less_those(run_archc, tmp_path):
    # GNMT: layer 0 bidirectional, layer 1 plain, the rest residual: two runs that stay, one that follows
    sets = ("vocab_size=50", "hidden=16", "num_layers=4")
    module, source = build_generated(run_archc, tmp_path, "specs/gnmt_encoder.yaml", *sets)
    assert "for _ in range(num_layers - 2)]" in _model_init(source, "GnmtEncoder")
    tokens = torch.randint(0, 50, (2, 7))
    assert_as_rebuilt(run_archc, tmp_path, "specs/gnmt_encoder.yaml", sets, module, "GnmtEncoder",
                      {"num_layers": 6}, tokens)
    # two layers: no residual layer left, a structure the file was not checked at: it says how to rebuild
    assert '"num_layers": (num_layers, num_layers >= 3)' in source
    with pytest.raises(ValueError, match=r"num_layers=2: a loop or a recursion of this file would be shorter than "
                                         r"built; regenerate it with archc build --set num_layers=2"):
        module.GnmtEncoder(num_layers=2)


STAGES = """
archc: 1
name: stages
params: {width: 4, layers: [2, 3]}
inputs:
  x: [N, 3, 16, 16]
blocks:
  unit:
    params: {out: 4, stride: 1}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, stride: stride, padding: 1}
      - {name: relu, op: relu}
nodes:
  - {name: stage1, block: unit, repeat: "layers[0]", out: width}
  - {name: stage2, block: unit, repeat: "layers[1]", out: width * 2, overrides: {0: {stride: 2}}}
  - {name: pool, op: global_avgpool}
  - {name: flat, op: flatten}
  - {name: head, op: linear, out_features: 10}
outputs: [head]
"""


def test_each_item_of_a_list_of_counts_counts_its_own_stage(run_archc, tmp_path, spec_file):
    path = spec_file(STAGES)
    module, source = build_generated(run_archc, tmp_path, path)
    init = _model_init(source, "Stages")
    # (each stage's first unit differs: stage 1's reads the image, stage 2's strides)
    assert "for _ in range(layers[0] - 1)]" in init and "for _ in range(layers[1] - 1)]" in init, init
    assert "layers" in run_time_arguments(source) and "width" in run_time_arguments(source)
    # (the check of the counts: tried one less together, stage 1 lost its run, so each keeps the
    # shortest run seen)
    assert '"layers": (layers, all([layers[0] >= 2, layers[1] >= 3]))' in init
    x = torch.randn(2, 3, 16, 16)
    assert_as_rebuilt(run_archc, tmp_path, path, (), module, "Stages", {"layers": [4, 3]}, x)
    # both at once: the counts and the widths the class computes
    assert_as_rebuilt(run_archc, tmp_path, path, (), module, "Stages", {"layers": [3, 5], "width": 6}, x)
    with pytest.raises(ValueError,
                       match=r"layers=\[1, 3\]: a loop or a recursion of this file would be shorter than built"):
        module.Stages(layers=[1, 3])


@pytest.mark.parametrize("change", [
    # the count sets a width too: more than the number of repeats moves
    "  - {name: head, op: linear, out_features: 'layers[0] * 10'}",
    # a node reads every repetition: the forward changes with the count
    "  - {name: cat, op: concat, in: ['stage1[*]'], axis: 1}\n  - {name: head, op: linear, out_features: 10}",
])
def test_a_count_that_changes_more_than_the_repeats_stays_fixed(run_archc, tmp_path, spec_file, change):
    text = STAGES.replace("  - {name: head, op: linear, out_features: 10}", change)
    module, source = build_generated(run_archc, tmp_path, spec_file(text))
    assert "layers" not in run_time_arguments(source)
    with pytest.raises(ValueError, match=r"layers=\[3, 3\]: this file was generated for layers=\(2, 3\)"):
        module.Stages(layers=[3, 3])


def test_a_count_taken_beside_one_that_stays_fixed(run_archc, tmp_path, spec_file):
    # tried together first, the two change more than repeats (b sets the head's width too); one at a
    # time, `a` is taken and `b` stays fixed
    text = STAGES.replace("params: {width: 4, layers: [2, 3]}", "params: {width: 4, a: 2, b: 3}") \
        .replace('repeat: "layers[0]"', "repeat: a").replace('repeat: "layers[1]"', "repeat: b") \
        .replace("  - {name: head, op: linear, out_features: 10}", "  - {name: head, op: linear, out_features: b * 10}")
    path = spec_file(text)
    module, source = build_generated(run_archc, tmp_path, path)
    assert "for _ in range(a - 1)]" in _model_init(source, "Stages")
    assert run_time_arguments(source) == "# run-time arguments: width, a; the others are fixed in this file"
    assert_as_rebuilt(run_archc, tmp_path, path, (), module, "Stages", {"a": 4}, torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match="b=4: this file was generated for b=3"):
        module.Stages(b=4)


THREADED = """
archc: 1
name: threaded
params: {width: 8, depth: 3}
inputs:
  x: [N, 5, width]
  memory: [N, 7, width]
blocks:
  cross_layer:
    inputs: [x, memory]
    nodes:
      - {name: attn, op: multi_head_attention, num_heads: 2, in: [x, memory, memory]}
      - {name: add, op: add, in: [x, attn], expect: residual}
      - {name: norm, op: layernorm}
nodes:
  - {name: layers, block: cross_layer, repeat: depth, in: [x, memory]}
  - {name: head, op: linear, out_features: 4}
outputs: [head]
"""


def test_layers_threaded_with_other_inputs_are_a_loop_and_their_count_an_argument(run_archc, tmp_path, spec_file):
    # as PyTorch's TransformerDecoder runs its layers; before, one line per layer, indexing the ModuleList
    path = spec_file(THREADED)
    module, source = build_generated(run_archc, tmp_path, path)
    forward = source.split("class Threaded(nn.Module):")[1].split("def forward")[1]
    assert "layers = x\n        for layer in self.layers:\n            layers = layer(layers, memory)\n" in forward
    assert "self.layers[" not in forward
    assert "nn.ModuleList(\n            [CrossLayer(in_features=width) for _ in range(depth)]\n" in source
    x, memory = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    for depth in (1, 4):
        reference, _ = build_generated(run_archc, tmp_path, path, f"depth={depth}")
        mine, theirs = module.Threaded(depth=depth), reference.Threaded()
        assert mine.state_dict().keys() == theirs.state_dict().keys()
        mine.load_state_dict(theirs.state_dict(), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(mine.eval()(x, memory), theirs.eval()(x, memory))
    eager = module.Threaded(depth=2).eval()
    scripted = torch.jit.script(eager)  # (TorchScript iterates a ModuleList)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, memory), eager(x, memory))


@pytest.mark.parametrize("spec,cls,sets,given,inputs", [
    # a block of one instance holds the runs: the class takes the count from the model, passed down
    ("specs/transformer.yaml", "Transformer", ("d_model=16", "nhead=2", "dim_feedforward=32"),
     {"num_encoder_layers": 3, "num_decoder_layers": 1}, ((2, 5, 16), (2, 4, 16))),
    # a list of counts read inside the body block: each stage's loop reads its item
    ("specs/fpn_resnet50.yaml", "FpnResnet50", ("width=8", "channels=16", "image_size=64"),
     {"layers": [2, 1 + 1, 3, 2]}, ((1, 3, 64, 64),)),
    # a recursive block: each level's class counts its own stage's convs
    ("specs/segnet.yaml", "Segnet", ("width=4", "height=32", "image_width=32"),
     {"convs": [2, 3, 2, 2, 3]}, ((1, 3, 32, 32),)),
])
def test_a_count_read_inside_a_block_of_one_instance_is_an_argument(run_archc, tmp_path, spec, cls, sets, given,
                                                                     inputs):
    module, source = build_generated(run_archc, tmp_path, spec, *sets)
    for name in given:
        assert name in run_time_arguments(source), run_time_arguments(source)
    reference, _ = build_generated(run_archc, tmp_path, spec, *sets, *(f"{k}={v}" for k, v in given.items()))
    mine, theirs = getattr(module, cls)(**given), getattr(reference, cls)()
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    mine.load_state_dict(theirs.state_dict(), strict=True)
    torch.manual_seed(0)
    xs = [torch.randn(*shape) for shape in inputs]
    with torch.no_grad():
        torch.testing.assert_close(mine.eval()(*xs), theirs.eval()(*xs))


SHADOWED = """
archc: 1
name: shadowed
params: {width: 4, depth: 3}
inputs:
  x: [N, 8]
blocks:
  unit:
    nodes:
      - {name: fc, op: linear, out_features: 4}
      - {name: relu, op: relu}
  stack:
    params: {depth: 2}
    nodes:
      - {name: units, block: unit, repeat: depth}
nodes:
  - {name: body, block: stack, depth: depth}
  - {name: head, op: linear, out_features: 2}
outputs: [head]
"""


def test_a_count_a_block_parameter_of_the_same_name_hides_stays_fixed(run_archc, tmp_path, spec_file):
    # the stack's class would read its own `depth`, not the model's: the count is not taken
    module, source = build_generated(run_archc, tmp_path, spec_file(SHADOWED))
    assert "for _ in range(2)]" in source and "depth" not in run_time_arguments(source)
    with pytest.raises(ValueError, match="depth=4: this file was generated for depth=3"):
        module.Shadowed(depth=4)
