"""prepend_token and position_embedding: parity, values, parameter-only nodes in both backends
(state_dict key = node name, nested in ModuleDicts, non-identifier names, ONNX initializer
names), init, role, errors."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from archc import SpecError
from archc.analysis.skips import analyze
from archc.ir import Node, Value
from archc.ops.weights import initialize
from weights_helpers import state_dict_specs
from archc.lowering.onnx import to_onnx
from archc.lowering.torch import build_module, generate_source, load_weights
from archc.ops import registry
from ops_harness import parity_suite
from ops_harness import check_parity, feeds_for, graph_of, randomize, run_onnx, run_torch, spec_error

PARITY_OPS = {"prepend_token", "position_embedding"}

CASES = [
    ("class_token_symbolic_length", "inputs: {x: [N, L, 4]}\nnodes: [{name: class_token, op: prepend_token}]"),
    ("three_tokens_then_layer", "inputs: {x: [N, 5, 6]}\n"
     "nodes: [{op: prepend_token, num_tokens: 3, init_std: 1.0}, {op: linear, out_features: 2}]"),
    ("vit_stem", "inputs: {x: [N, 5, 8]}\nnodes:\n"
     "  - {name: class_token, op: class_token}\n"
     "  - {name: pos_embedding, op: pos_embedding}\n"
     "  - {op: layernorm}"),
    ("feature_map", "inputs: {x: [N, 3, 4, 5]}\nnodes: [{op: learned_position, init_std: 0.5}]"),
]

# A block puts the position embedding inside a container next to modules (torchvision's encoder).
NESTED = """inputs: {x: [N, 4, 6]}
blocks:
  encoder:
    nodes:
      - {name: pos_embedding, op: position_embedding}
      - {name: ln, op: layernorm}
nodes:
  - {name: class_token, op: prepend_token}
  - {name: encoder, block: encoder}
"""


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("sizes", [{"N": 1, "L": 1}, {"N": 3, "L": 9}])
def test_symbolic_batch_and_length(sizes):
    graph, _ = check_parity(CASES[0][1], sizes=sizes)
    assert graph.type_of(graph.outputs["output"]).shape == ("N", "L + 1", 4)



def test_values_are_cat_of_token_and_sum_with_embedding():
    graph = randomize(graph_of(CASES[2][1]))
    x = feeds_for(graph)["x"]
    token, pos = graph.weights["class_token"][""], graph.weights["pos_embedding"][""]
    assert token.shape == (1, 1, 8) and pos.shape == (1, 6, 8)
    want_tokens = np.concatenate([np.broadcast_to(token, (x.shape[0], 1, 8)), x], axis=1) + pos
    mean = want_tokens.mean(-1, keepdims=True)
    var = want_tokens.var(-1, keepdims=True)
    w, b = graph.weights["layernorm"]["weight"], graph.weights["layernorm"]["bias"]
    want = (want_tokens - mean) / np.sqrt(var + 1e-5) * w + b
    for got in (run_torch(graph, {"x": x})[0], run_onnx(graph, {"x": x})[0]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_state_dict_keys_are_node_names_also_inside_containers(tmp_path):
    graph = randomize(graph_of(NESTED))
    keys = [k for k, _ in state_dict_specs(graph)]
    assert keys == ["class_token", "encoder.pos_embedding", "encoder.ln.weight", "encoder.ln.bias"]
    module = build_module(graph)
    state = module.state_dict()
    # torch lists a module's own parameters before its children's
    assert sorted(state) == sorted(keys)
    assert isinstance(module.class_token, torch.nn.Parameter)
    assert isinstance(module.encoder.pos_embedding, torch.nn.Parameter)
    assert [n for n, _ in module.named_parameters()][:2] == ["class_token", "encoder.pos_embedding"]
    src = generate_source(graph)
    assert "self.class_token = nn.Parameter(torch.zeros((1, 1, 6)))" in src
    # inside the encoder block's own class
    assert "self.pos_embedding = nn.Parameter(torch.empty((1, 5, 6)).normal_(std=0.02))" in src
    # a checkpoint with these keys loads back into the graph
    path = tmp_path / "w.pt"
    torch.save({k: v * 2 for k, v in state.items()}, path)
    load_weights(graph, str(path))
    np.testing.assert_array_equal(graph.weights["encoder.pos_embedding"][""],
                                  state["encoder.pos_embedding"].numpy() * 2)


def test_parameter_names_that_are_not_identifiers():
    text = """inputs: {x: [N, 3, 4]}
blocks:
  b:
    nodes: [{name: "1", op: position_embedding}, {name: "2", op: linear, out_features: 4}]
nodes:
  - {name: "0", op: prepend_token}
  - {name: blk, block: b}
"""
    graph = randomize(graph_of(text))
    src = generate_source(graph)
    # the model's own parameter, and the block class's (registered on itself)
    flat = "".join(src.split())  # as written, whatever the line breaks
    assert flat.count('self.register_parameter("0",nn.Parameter(') == 1
    assert flat.count('self.register_parameter("1",nn.Parameter(') == 1
    assert 'getattr(self, "0")' in src and 'getattr(self, "1")' in src
    assert sorted(build_module(graph).state_dict()) == ["0", "blk.1", "blk.2.bias", "blk.2.weight"]
    check_parity(text)


def test_onnx_initializers_are_the_keys_and_values_do_not_collide():
    graph = randomize(graph_of(NESTED))
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    inits = {i.name for i in model.graph.initializer}
    assert {"class_token", "encoder.pos_embedding"} <= inits
    values = {o for n in model.graph.node for o in n.output}
    assert not values & inits
    # a graph output named like the parameter keeps its name; the initializer gets a derived one
    graph = randomize(graph_of("inputs: {x: [N, 4, 6]}\nnodes: [{name: tok, op: prepend_token}]\noutputs: [tok]"))
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["tok"]
    inits = {i.name for i in model.graph.initializer}
    assert "tok/param" in inits and "tok" not in inits
    x = feeds_for(graph)["x"]
    np.testing.assert_allclose(run_onnx(graph, {"x": x})[0], run_torch(graph, {"x": x})[0])


def test_a_parameter_cannot_also_be_a_container():
    # Specs cannot write this (a block instance and a node cannot share a name); other frontends could.
    graph = graph_of("inputs: {x: [N, 3, 4]}\nnodes: [{name: p, op: position_embedding}]")
    graph.add(Node(name="p.ln", op="layernorm", attrs={"dims": 1, "eps": 1e-5, "elementwise_affine": True,
                                                       "bias": True},
                   inputs=[Value("p")], outputs=[graph.node("p").type]))
    graph.outputs = {"output": Value("p.ln")}
    with pytest.raises(SpecError, match="'p' is both a parameter and a container of modules"):
        generate_source(graph)


def test_init_zeros_token_and_normal_position():
    graph = initialize(graph_of("inputs: {x: [N, 100, 64]}\nnodes: [{name: t, op: prepend_token}, "
                                "{name: p, op: position_embedding}]"), 0)
    assert not graph.weights["t"][""].any()
    pos = graph.weights["p"][""]
    assert pos.dtype == np.float32 and pos.shape == (1, 101, 64)
    assert abs(pos.std() - 0.02) < 0.002 and abs(pos.mean()) < 0.002


def test_roles_are_unary_layers_not_joins():
    graph = graph_of(CASES[2][1])
    for node in graph.nodes():
        if node.op in PARITY_OPS:
            assert registry.lookup(node.op).role_of(node) == "layer"
    assert analyze(graph, paths=False).connections == []


@pytest.mark.parametrize("text,message", [
    ("inputs: {x: [N, 4]}\nnodes: [{op: prepend_token}]", "expected a 3-D input (N, S, D), got 2-D (N, 4)"),
    ("inputs: {x: [N, 4, D]}\nnodes: [{op: prepend_token}]", "the embedding dim (last dim) must be a known size"),
    ("inputs: {x: [N, 4, 3]}\nnodes: [{op: prepend_token, num_tokens: 0}]", "attribute 'num_tokens' of op 'prepend_token' must be at least 1, got 0"),
    ("inputs: {x: [N, 4, 3]}\nnodes: [{op: prepend_token, init_std: -1}]", "attribute 'init_std' of op 'prepend_token' must be at least 0, got -1"),
    ("inputs: {x: [N, L, 3]}\nnodes: [{op: position_embedding}]",
     "dim 1 (a learned embedding has a fixed size) must be a known size, got symbolic 'L'"),
    ("inputs: {x: [N]}\nnodes: [{op: position_embedding}]", "expected an input (N, ...) of at least 2 dims"),
    ("inputs: {x: {shape: [N, 4, 3], dtype: int64}}\nnodes: [{op: position_embedding}]",
     "position_embedding expects a floating-point input, got int64"),
])
def test_errors_name_what_was_expected(text, message):
    assert message in spec_error(text)


# -- from ONNX files written by torch ------------------------------------------------------------

class _ClassTokenAndPositions(torch.nn.Module):
    """ViT's input stem, as timm and torchvision write it: a class token expanded to the batch and put
    first, then a learned position table added."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = torch.nn.Parameter(torch.randn(1, 1, 8))
        self.pos_embed = torch.nn.Parameter(torch.randn(1, 11, 8))
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.head(tokens + self.pos_embed)


@pytest.mark.parametrize("dynamo", [pytest.param(False, id="torchscript"),
                                    pytest.param(True, id="dynamo", marks=pytest.mark.slow)])
def test_a_class_token_and_a_position_table_import_as_the_native_ops(dynamo):
    """Found importing ViT exports: the Expand of the token to the batch and the Add of the table stayed
    onnx_nodes (of unknown shape from the TorchScript exporter, whose `expand(N, -1, -1)` tests
    `== -1` on the batch size)."""
    import onnxruntime as ort

    from archc.frontends.onnx import from_onnx
    from ops_harness import export_onnx

    torch.manual_seed(0)
    x = torch.randn(2, 10, 8)
    if dynamo:
        model = export_onnx(_ClassTokenAndPositions(), x, True, input_names=["x"],
                            dynamic_shapes={"x": {0: torch.export.Dim("N")}})
    else:
        model = export_onnx(_ClassTokenAndPositions(), x, False, input_names=["x"], dynamic_axes={"x": {0: "N"}})
    graph = from_onnx(model)
    assert [n.op for n in graph.nodes()] == ["input", "prepend_token", "position_embedding", "linear"]
    assert [n.outputs[0].shape for n in graph.nodes()][1:3] == [("N", 11, 8), ("N", 11, 8)]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    module = build_module(graph).eval()
    for batch in (2, 5):
        feeds = {"x": np.random.default_rng(batch).standard_normal((batch, 10, 8)).astype(np.float32)}
        with torch.no_grad():
            np.testing.assert_allclose(module(torch.from_numpy(feeds["x"])).numpy(), session.run(None, feeds)[0],
                                       rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(run_onnx(graph, feeds)[0], session.run(None, feeds)[0],
                                   rtol=1e-5, atol=1e-6)


class _ClassAndDistillationTokens(torch.nn.Module):
    """DeiT's input stem (Touvron et al. 2021): a class token and a distillation token, each expanded
    to the batch, put before the patches."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = torch.nn.Parameter(torch.randn(1, 1, 8))
        self.dist_token = torch.nn.Parameter(torch.randn(1, 1, 8))
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return self.head(torch.cat([self.cls_token.expand(n, -1, -1), self.dist_token.expand(n, -1, -1), x], 1))


@pytest.mark.parametrize("module", [_ClassTokenAndPositions, _ClassAndDistillationTokens])
@pytest.mark.parametrize("dynamo", [pytest.param(False, id="torchscript"),
                                    pytest.param(True, id="dynamo", marks=pytest.mark.slow)])
def test_tokens_of_an_export_at_a_fixed_batch_are_the_native_op(dynamo, module):
    """Found importing DeiT exported at batch 2: the exporters fold each token's expand into a
    constant of two equal rows, which stayed an onnx_node Concat holding twice the token's
    parameters (128 for two tokens of 32)."""
    import onnxruntime as ort

    from archc.frontends.onnx import from_onnx
    from ops_harness import export_onnx

    torch.manual_seed(0)
    original = module().eval()
    x = torch.randn(2, 10, 8)
    model = export_onnx(original, x, dynamo, input_names=["x"])
    graph = from_onnx(model)
    tokens = [n for n in graph.nodes() if n.op == "prepend_token"]
    assert len(tokens) == sum(p.shape[:2] == (1, 1) for p in original.parameters())
    assert "onnx_node" not in {n.op for n in graph.nodes()}
    params = sum(int(np.prod(w.shape)) for held in graph.weights.values() for w in held.values())
    assert params == sum(p.numel() for p in original.parameters())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(build_module(graph).eval()(x).numpy(), session.run(None, {"x": x.numpy()})[0],
                                   rtol=1e-5, atol=1e-6)
