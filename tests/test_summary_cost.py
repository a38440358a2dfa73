"""`archc summary` cost columns: MACs per op (checked against torch's FlopCounterMode on modules
archc builds), torchvision's published figures, memory, --depth aggregation, ONNX input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from archc.analysis.cost import by_depth, costs, totals
from archc.frontends.yaml import load_spec, loads_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.parametrize("spec, gmacs, params", [("resnet50", "4.09", 25_557_032), ("resnet18", "1.81", 11_689_512)])
def test_torchvision_figures(run_archc, spec, gmacs, params):
    """torchvision's model table: ResNet-50 "4.09 GFLOPS", ResNet-18 "1.81" (they count multiply-adds)."""
    proc = run_archc("summary", str(SPECS / f"{spec}.yaml"), "--format", "json", check=True)
    data = json.loads(proc.stdout)
    assert f"{data['totals']['macs'] / 1e9:.2f}" == gmacs
    assert data["totals"]["params"] == params
    table = run_archc("summary", str(SPECS / f"{spec}.yaml"), check=True).stdout
    assert f"{gmacs} GMACs" in table and "MACs" in table.splitlines()[1]


def test_batch_scales_macs_and_activations_not_parameters(run_archc):
    one = json.loads(run_archc("summary", str(SPECS / "resnet18.yaml"), "--format", "json", check=True).stdout)
    four = json.loads(run_archc("summary", str(SPECS / "resnet18.yaml"), "--format", "json", "--batch", "4",
                                check=True).stdout)
    assert four["totals"]["macs"] == 4 * one["totals"]["macs"]
    assert four["totals"]["activation_bytes"] == 4 * one["totals"]["activation_bytes"]
    assert four["totals"]["param_bytes"] == one["totals"]["param_bytes"] == 4 * 11_689_512 + 4 * (2 * 4800) + 8 * 20


def test_depth_one_rows_are_the_stages(run_archc):
    data = json.loads(run_archc("summary", str(SPECS / "resnet50.yaml"), "--depth", "1", "--format", "json",
                                check=True).stdout)
    names = [r["name"] for r in data["rows"]]
    assert names == ["x", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                     "avgpool", "flatten", "fc"]
    assert sum(r["macs"] for r in data["rows"]) == data["totals"]["macs"]
    assert sum(r["params"] for r in data["rows"]) == 25_557_032
    layer3 = data["rows"][names.index("layer3")]
    assert layer3["nodes"] == 62 and layer3["shapes"] == [[1, 1024, 14, 14]]
    deeper = json.loads(run_archc("summary", str(SPECS / "resnet50.yaml"), "--depth", "2", "--format", "json",
                                  check=True).stdout)
    assert "layer3.5" in [r["name"] for r in deeper["rows"]]


COST_SPEC = """
name: costs
inputs: {x: [N, 3, 16, 16], s: [N, 7, 32]}
nodes:
  - {name: c1, op: conv, in: x, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: c2, op: conv, out_channels: 8, kernel_size: 3, stride: 2, groups: 4, bias: false}
  - {name: up, op: conv_transpose, out_channels: 4, kernel_size: 2, stride: 2}
  - {name: fc, op: linear, in: s, out_features: 32}
  - {name: att, op: multi_head_attention, in: [fc, fc, fc], num_heads: 4}
  - {name: mm, op: matmul, in: [att, s]}
outputs: [up, mm]
"""


def test_macs_equal_torch_flop_counter():
    """Half of torch.utils.flop_counter's FLOPs (it counts a multiply-add as two), module by module,
    on the module archc builds. The counter sees attention's projections but not the fused
    scaled-dot-product kernel, so for attention its count is ours less the scores and weighted sum."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from archc.lowering.torch import build_module

    graph = loads_spec(COST_SPEC.replace("[att, s]", "[att, t]").replace("s: [N, 7, 32]}", "s: [N, 7, 32], t: [N, 32, 5]}"))
    module = build_module(graph).train()  # the unfused attention path, which the counter sees
    with FlopCounterMode(display=False) as counter:
        module(torch.randn(2, 3, 16, 16), torch.randn(2, 7, 32), torch.randn(2, 32, 5))
    counts = counter.get_flop_counts()
    ours = {c.name: c.macs for c in costs(graph, batch=2)}
    for name in ("c1", "c2", "up", "fc", "att"):
        theirs = sum(counts[f"Costs.{name}"].values())
        expected = ours[name] - (2 * 2 * 7 * 7 * 32 if name == "att" else 0)
        assert 2 * expected == theirs, name
    assert 2 * sum(ours.values()) - 2 * 2 * 2 * 7 * 7 * 32 == counter.get_total_flops()


def test_macs_by_hand():
    graph = loads_spec(COST_SPEC.replace("[att, s]", "[att, t]").replace("s: [N, 7, 32]}", "s: [N, 7, 32], t: [N, 32, 5]}"))
    per = {c.name: c for c in costs(graph, batch=1)}
    assert per["c1"].macs == 8 * 16 * 16 * 3 * 9
    assert per["c2"].macs == 8 * 7 * 7 * 2 * 9            # groups: 8 / 4 = 2 input channels per output
    assert per["up"].macs == 8 * 7 * 7 * 4 * 4           # every input element times 4 outputs x 2x2 taps
    assert per["fc"].macs == 7 * 32 * 32
    assert per["att"].macs == 7 * 32 * 32 * 4 + 2 * 7 * 7 * 32
    assert per["mm"].macs == 7 * 5 * 32
    assert per["c1"].activation_bytes == 8 * 16 * 16 * 4 and per["x"].activation_bytes == 0


def test_lstm_and_layernorm_macs():
    graph = loads_spec("""
name: seq
inputs: {x: [N, T, 10]}
nodes:
  - {name: rnn, op: lstm, hidden_size: 6, num_layers: 2, bidirectional: true}
  - {name: ln, op: layernorm}
""")
    per = {c.name: c for c in costs(graph, batch=3, sizes={"T": 5})}
    assert per["rnn"].macs == 3 * 5 * 2 * (4 * 6 * (10 + 6) + 4 * 6 * (12 + 6))
    assert per["ln"].macs == 3 * 5 * 12


def test_by_depth_keeps_every_node_once():
    graph = load_spec(str(SPECS / "densenet121.yaml"), {"image_size": 64})
    per_node = costs(graph)
    for depth in (1, 2, 3):
        rows = by_depth(graph, per_node, depth)
        assert sum(r.nodes for r in rows) == len(per_node)
        assert sum(r.macs for r in rows) == totals(per_node)["macs"]


def test_onnx_input(run_archc, tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 5))
    path = tmp_path / "m.onnx"
    torch.onnx.export(model.eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"])
    data = json.loads(run_archc("summary", str(path), "--format", "json", check=True).stdout)
    assert data["totals"]["macs"] == 8 * 6 * 6 * 27 + 5 * 288
    assert data["totals"]["params"] == 8 * 27 + 8 + 5 * 288 + 5


@pytest.mark.parametrize("args, message", [
    (("--depth", "0"), "--depth: expected a whole number from 1"),
    (("--batch", "x"), "--batch: expected a whole number from 1"),
    (("--dim", "T"), "--dim expects NAME=SIZE"),
])
def test_bad_options(run_archc, args, message):
    proc = run_archc("summary", str(SPECS / "resnet18.yaml"), *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_a_compound_batch_dim_counts_every_factor():
    """Windows folded into the batch (N*4 after a reshape) cost 4 times per sample, at any batch."""
    graph = loads_spec("inputs: {x: [N, 4, 3, 8]}\nnodes:\n  - {op: reshape, shape: [-1, 3, 8]}\n"
                       "  - {name: fc, op: linear, out_features: 5}")
    assert graph.node("fc").outputs[0].shape == ("N*4", 3, 5)
    for batch in (1, 3):
        (fc,) = [c for c in costs(graph, batch) if c.name == "fc"]
        assert fc.shapes == [(4 * batch, 3, 5)]
        assert fc.macs == 4 * batch * 3 * 8 * 5


def test_a_tied_parameter_is_counted_and_stored_once(run_archc, spec_file):
    # found transcribing nanoGPT: lm_head tied to wte was counted twice in the totals (163 M for GPT-2
    # small, which has 124 M), while its row said 0
    text = """
params: {vocab: 40, dim: 8}
inputs: {idx: {shape: [N, T], dtype: int64}}
example_dims: {T: 5}
nodes:
  - {name: wte, op: embedding, num_embeddings: vocab, embedding_dim: dim}
  - {name: lm_head, op: linear, out_features: vocab, bias: false, tie: {weight: wte.weight}}
"""
    data = json.loads(run_archc("summary", spec_file(text), "--format", "json", check=True).stdout)
    assert data["totals"]["params"] == data["totals"]["trainable"] == 40 * 8
    assert data["totals"]["param_bytes"] == 4 * 40 * 8
    assert (data["nodes"][-1]["name"], data["nodes"][-1]["params"], data["nodes"][-1]["trainable"]) == ("lm_head", 0, 0)
