"""Structure-only PyTorch: generated models built on the meta device and materialised per block.

``with torch.device("meta"): model = Model()`` gives every parameter and buffer a shape and no
storage, at any size; ``model.to_empty(device="cpu")`` then allocates them uninitialised, and
``reset_parameters()`` on each of ``model.block_instances()`` draws every one afresh. These tests
fill the uninitialised tensors with NaN first, so a tensor that no reset_parameters reaches is
seen, not hidden by memory that happened to hold zeros.
"""
from __future__ import annotations

import importlib.util
import math

import pytest

torch = pytest.importorskip("torch")

from archc import load_spec, loads_spec  # noqa: E402
from archc.errors import SpecError  # noqa: E402
from archc.lowering.torch import module_class  # noqa: E402

from conftest import SPECS  # noqa: E402
from test_lint_lowerings import QUICK, SMALL  # noqa: E402

ALL = sorted(p.stem for p in SPECS.glob("*.yaml"))
_INT_FILL = -7  # what an integer buffer holds before its reset (none is ever initialised to it)


def _on_meta(cls: type, *args) -> "torch.nn.Module":
    with torch.device("meta"):
        return cls(*args)


def _materialise(model: "torch.nn.Module") -> "torch.nn.Module":
    """to_empty, every tensor filled with garbage that cannot pass for an initial value, then
    reset_parameters() on each block instance and the model."""
    model.to_empty(device="cpu")
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            t.fill_(math.nan if t.is_floating_point() else _INT_FILL)
    for block in model.block_instances():
        block.reset_parameters()
    return model


def _tensors(model):
    return list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))


def _inputs(graph) -> list:
    out = []
    for name in graph.inputs:
        t = graph.node(name).type
        shape = [2 if isinstance(d, str) else d for d in t.shape]
        out.append(torch.randn(*shape) if t.dtype.startswith("float") else torch.randint(0, 10, shape))
    return out


@pytest.mark.parametrize("name", ALL)
def test_every_shipped_spec_builds_on_meta_with_no_storage(name):
    graph = load_spec(str(SPECS / f"{name}.yaml"))
    model = _on_meta(module_class(graph))
    tensors = _tensors(model)
    assert tensors
    assert {t.device.type for _, t in tensors} == {"meta"}
    # the parameters are the spec's: same names, shapes and count as summary's
    from archc.ops.weights import param_entries, total_params

    assert {k: tuple(t.shape) for k, t in model.state_dict().items()} == \
        {e.key: tuple(e.spec.shape) for e in param_entries(graph)}
    assert sum(p.numel() for p in model.parameters()) == total_params(graph)


@pytest.mark.parametrize("name", [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in ALL])
def test_to_empty_and_reset_parameters_give_finite_weights_and_a_working_forward(name):
    graph = load_spec(str(SPECS / f"{name}.yaml"), overrides=SMALL[name])
    cls = module_class(graph)
    model = _materialise(_on_meta(cls))
    reference = cls()  # built the ordinary way: the shapes and dtypes to expect
    expected = {k: (tuple(t.shape), t.dtype) for k, t in reference.state_dict().items()}
    assert {k: (tuple(t.shape), t.dtype) for k, t in model.state_dict().items()} == expected
    for key, t in _tensors(model):
        assert t.device.type == "cpu", key
        assert torch.isfinite(t).all() if t.is_floating_point() else (t != _INT_FILL).all(), key
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.eval()(*_inputs(graph))
    for o in out if isinstance(out, tuple) else (out,):
        assert torch.isfinite(o).all()


def test_reset_parameters_draws_what_construction_draws():
    """Per layer, reset_parameters() gives construction's distribution: equal values where the init
    is a constant, and the same bounds and spread where it is random."""
    graph = load_spec(str(SPECS / "transformer.yaml"), overrides=SMALL["transformer"])
    cls = module_class(graph)
    built, reset = cls(), _materialise(_on_meta(cls))
    for (key, a), (_, b) in zip(built.state_dict().items(), reset.state_dict().items()):
        if a.is_floating_point() and a.numel() > 1 and a.std() > 0:
            assert b.abs().max() <= a.abs().max() * 1.3 and 0.7 < b.std() / a.std() < 1.4, key
        else:
            assert torch.equal(a, b), key  # zeros, ones: layer norm, attention and linear biases


DECLARED = """
params: {dim: 64}
inputs: {x: [N, 16, dim]}
blocks:
  scaled:
    nodes:
      - {name: gamma, op: parameter, shape: [dim], init: constant, value: 0.125}
      - {name: shift, op: parameter, shape: [dim], init: normal, std: 0.5}
      - {name: table, op: parameter, shape: [16, dim], init: trunc_normal, std: 1.0, a: -0.5, b: 0.25}
      - {name: ones, op: parameter, shape: [dim], init: ones}
      - {name: scaled, op: mul, in: [x, gamma]}
      - {name: shifted, op: add, in: [scaled, shift]}
      - {name: placed, op: add, in: [shifted, table]}
      - {name: out, op: mul, in: [placed, ones]}
nodes:
  - {name: token, op: prepend_token, init_std: 0.25}
  - {name: body, block: scaled, in: x}
"""


def test_declared_parameters_are_drawn_from_their_spec_init():
    model = _materialise(_on_meta(module_class(loads_spec(DECLARED))))
    body = model.body
    assert torch.equal(body.gamma, torch.full((64,), 0.125))
    assert torch.equal(body.ones, torch.ones(64))
    assert 0.4 < body.shift.std() < 0.6
    assert body.table.min() >= -0.5 and body.table.max() <= 0.25 and body.table.std() > 0.1
    assert 0.15 < model.token.std() < 0.35 and model.token.shape == (1, 1, 64)


TIED = """
params: {vocab: 50, dim: 8}
inputs: {tokens: {shape: [N, S], dtype: int64}}
nodes:
  - {name: wte, op: embedding, num_embeddings: vocab, embedding_dim: dim}
  - {name: ln, op: layernorm}
  - {name: lm_head, op: linear, out_features: vocab, bias: false, tie: {weight: wte.weight}}
"""


def test_tied_weights_are_one_tensor_again_after_to_empty():
    model = _on_meta(module_class(loads_spec(TIED)))
    model.to_empty(device="cpu")
    assert model.lm_head.weight is not model.wte.weight  # what to_empty does to a tie
    for block in model.block_instances():
        block.reset_parameters()
    assert model.lm_head.weight is model.wte.weight
    assert torch.isfinite(model.wte.weight).all()


def test_block_instances_are_innermost_first_then_the_model():
    graph = load_spec(str(SPECS / "llama.yaml"), profile="small")
    model = module_class(graph)()
    names = {id(m): n for n, m in model.named_modules()}
    order = [names[id(m)] for m in model.block_instances()]
    assert order[-1] == "" and len(order) == len(set(order))
    for i, name in enumerate(order[:-1]):  # no module comes after one it contains
        assert not any(name.startswith(later + ".") for later in order[:i] if later)
    assert order[:3] == ["layers.0.attention_norm", "layers.0.attention", "layers.0.ffn_norm"]
    layers = model.block_instances("layer")
    assert [names[id(m)] for m in layers] == ["layers.0", "layers.1", ""]
    with pytest.raises(ValueError, match=r"no block 'layr'; the blocks are \['feed_forward', 'layer'"):
        model.block_instances("layr")


def test_a_graph_without_blocks_is_its_own_only_block_instance():
    model = module_class(loads_spec("inputs: {x: [N, 4]}\nnodes: [{op: linear, out_features: 3}]"))()
    assert model.block_instances() == [model]


def test_a_node_named_like_a_generated_method_is_an_error():
    graph = loads_spec("inputs: {x: [N, 4]}\nnodes: [{name: reset_parameters, op: linear, out_features: 3}]")
    with pytest.raises(SpecError, match="'reset_parameters' clashes with the generated method"):
        module_class(graph)


def test_instances_whose_resets_write_other_sizes_get_a_class_each(run_archc, spec_file, tmp_path):
    """The index buffer's reset writes its window's numbers: one class cannot reset both windows, so
    each window gets its class (instances of one window share theirs), and every reset draws what
    construction drew."""
    path = spec_file("""name: windows
inputs: {x: [N, 8]}
blocks:
  unit:
    params: {w: 2}
    nodes:
      - {name: idx, op: relative_position_index, window_size: w}
      - {name: y, op: identity, in: x}
nodes:
  - {name: a, block: unit, w: 2}
  - {name: b, block: unit, w: 3}
  - {name: c, block: unit, w: 2}
""")
    out = tmp_path / "windows.py"
    run_archc("build", path, "--target", "torch", "-o", str(out), check=True)
    source = out.read_text()
    assert "self.a = Unit()" in source and "self.b = Unit2()" in source and "self.c = Unit()" in source
    namespace: dict = {}
    exec(compile(source, str(out), "exec"), namespace)
    built = namespace["Windows"]()
    with torch.device("meta"):
        empty = namespace["Windows"]()
    empty.to_empty(device="cpu")
    for block in empty.block_instances():
        block.reset_parameters()
    for name in "abc":
        assert torch.equal(getattr(empty, name).idx, getattr(built, name).idx)
    assert built.a.idx.shape == (16,) and built.b.idx.shape == (81,)  # (a window of 2 and one of 3, flattened)


def test_build_no_weights_writes_a_7b_module_that_builds_on_meta(run_archc, tmp_path):
    """The llama spec's 7B profile: no weights drawn, the file imports and builds on meta."""
    out = tmp_path / "llama7b.py"
    proc = run_archc("build", "specs/llama.yaml", "--profile", "llama2_7b", "--no-weights", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "seed:" not in text  # no weights: no seed named
    spec = importlib.util.spec_from_file_location("llama7b", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = _on_meta(module.Llama)
    assert sum(p.numel() for p in model.parameters()) == 6_738_415_616
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_an_imported_models_constants_reset_to_their_construction_values(tmp_path):
    """An ONNX op without a native archc op keeps its constants in an OnnxConstants module, which has no
    reset_parameters of its own: a small constant (here PRelu's 4 slopes) is written into the module
    with its values and reset to them; a large one to zeros (its real values come from the state_dict)."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from archc.frontends.onnx import load_onnx

    slope = numpy_helper.from_array(np.full((1, 4, 1, 1), 0.25, np.float32), "slope")
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "slope"], ["y"])], "prelu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 3, 3])], [slope])
    path = tmp_path / "prelu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    imported = load_onnx(str(path))
    model = _materialise(_on_meta(module_class(imported)))
    assert torch.equal(model.PRelu.slope, torch.full((1, 4, 1, 1), 0.25))
    from archc.lowering.torch import state_dict_from_graph

    model.load_state_dict(state_dict_from_graph(imported))
    assert torch.equal(model.PRelu.slope, torch.full((1, 4, 1, 1), 0.25))
    wide = numpy_helper.from_array(np.full((1, 96, 1, 1), 0.25, np.float32), "slope")
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "slope"], ["y"])], "prelu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 96, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 96, 3, 3])], [wide])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    imported = load_onnx(str(path))
    model = _materialise(_on_meta(module_class(imported)))
    assert torch.equal(model.PRelu.slope, torch.zeros(1, 96, 1, 1))
    model.load_state_dict(state_dict_from_graph(imported))
    assert torch.equal(model.PRelu.slope, torch.full((1, 96, 1, 1), 0.25))


def test_ops_declared_always_learned_have_parameters_on_every_shipped_node():
    """``OpDef.always_learned`` lets the generator write ``reset_parameters()`` without asking
    the op for its sizes: on every node of every shipped spec, the op's own answer agrees."""
    from archc.ops import registry

    seen = set()
    for name in ALL:
        graph = load_spec(SPECS / f"{name}.yaml")
        types = {n.name: n.outputs for n in graph.nodes()}
        for node in graph.nodes():
            op = registry.lookup(node.op)
            if op.always_learned:
                ins = [types[v.node][v.out] for v in node.inputs]
                assert op.params(node, ins), node.name
                assert op.torch_reset(node, ins, "m") == ["m.reset_parameters()"], node.name
                seen.add(node.op)
    assert {"conv", "batchnorm", "linear"} <= seen
