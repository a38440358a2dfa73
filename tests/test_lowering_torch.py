"""The PyTorch backend: generated source, module building, weights in and out, compile and DDP."""
from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from archc import SpecError, load_spec, loads_spec
from archc.lowering.optimize import optimize_for_inference
from archc.ops.weights import initialize
from weights_helpers import randomize_statistics, state_dict_specs
from archc.lowering.torch import build_module, class_name_for, generate_source, load_weights, state_dict_from_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = """
name: tiny-res_net
inputs: {x: [N, 3, 9, 9]}
blocks:
  res:
    params: {planes: null, stride: 1}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 3, stride: stride, padding: 1, bias: false}
      - {name: bn1, op: batchnorm}
      - {name: relu, op: relu}
      - {name: conv2, op: conv, out_channels: planes, kernel_size: 3, padding: 1, bias: false}
      - {name: bn2, op: batchnorm}
      - {name: downsample, op: conv, in: x, out_channels: planes, kernel_size: 1, stride: stride,
         if: "stride != 1 or channels(x) != planes", else: x}
      - {name: add, op: add, in: [bn2, downsample]}
      - {name: relu2, op: relu}
nodes:
  - {name: stem, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: layer1, block: res, repeat: 2, planes: 6, overrides: {0: {stride: 2}}}
  - {name: pool, op: global_avgpool}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out_features: 3}
"""

# No batchnorm: DDP's per-rank batch statistics would differ from a full-batch step.
PLAIN = """
name: plain
inputs: {x: [N, 2, 6, 6]}
nodes:
  - {name: conv, op: conv, out_channels: 3, kernel_size: 3, padding: 1}
  - {name: relu, op: relu}
  - {name: pool, op: global_avgpool}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out_features: 2}
"""


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# -- the generated source -----------------------------------------------------------------

def test_generated_source_imports_only_torch_and_names_the_class():
    src = generate_source(loads_spec(TINY))
    tree = ast.parse(src)
    imported = [alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert imported and all(m == "torch" or m.startswith("torch.") for m in imported), imported
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes == ["Res", "ResDownsample", "TinyResNet"]  # one class per block variant, the model last
    assert class_name_for("resnet18") == "Resnet18"
    assert class_name_for("3d-unet") == "Model3dUnet"
    assert "class Custom(nn.Module):" in generate_source(loads_spec(TINY), class_name="Custom")


def test_forward_is_straight_line_one_statement_per_node():
    graph = loads_spec(TINY)
    src = generate_source(graph)
    tree = ast.parse(src)
    forwards = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "forward"]
    control = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef, ast.Lambda)
    for forward in forwards:
        assert not [n for n in ast.walk(forward) if isinstance(n, control) and n is not forward]
    # one statement per node: the model's own nodes, and each block class's nodes once per class
    assigns = {f: [s for s in f.body if isinstance(s, ast.Assign)] for f in forwards}
    block_nodes = {"Res": 7, "ResDownsample": 8}  # conv1 bn1 relu conv2 bn2 (downsample) add relu2
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for name, count in block_nodes.items():
        forward = next(f for f in forwards if f in ast.walk(classes[name]))
        assert len(assigns[forward]) == count
    root = next(f for f in forwards if f in ast.walk(classes["TinyResNet"]))
    assert len(assigns[root]) == 5  # stem, layer1 (two blocks in series), pool, flatten, fc
    # relu/add/pool are functional: only conv, batchnorm and linear nodes are modules
    assert "self.layer1 = nn.Sequential(" in src and "nn.ModuleDict" not in src
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Delete)]  # no `del` noise
    assert "self.conv1 = nn.Conv2d(" in src
    assert all("relu" not in part.split("def forward")[0] for part in src.split("class ")[1:])


def test_generated_file_runs_standalone(tmp_path):
    """Written to disk, the file is imported in a fresh interpreter that never imports archc."""
    graph = loads_spec(TINY)
    module = build_module(graph).eval()
    x = _x(2, 3, 9, 9)
    with torch.no_grad():
        expected = module(x)
    (tmp_path / "tiny_model.py").write_text(generate_source(graph))
    torch.save(module.state_dict(), tmp_path / "weights.pt")
    torch.save(x, tmp_path / "x.pt")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import torch
        import tiny_model
        m = tiny_model.TinyResNet()
        m.load_state_dict(torch.load({str(tmp_path / 'weights.pt')!r}, weights_only=True), strict=True)
        m.eval()
        with torch.no_grad():
            y = m(torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True))
        torch.save(y, {str(tmp_path / 'y.pt')!r})
        assert not [k for k in sys.modules if k == 'archc' or k.startswith('archc.')], 'archc was imported'
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    torch.testing.assert_close(torch.load(tmp_path / "y.pt", weights_only=True), expected, rtol=0, atol=0)


def test_several_inputs_and_outputs_keep_graph_order():
    graph = loads_spec("""
name: two
inputs: {b: [N, 3], a: [N, 3]}
nodes:
  - {name: diff, op: add, in: [b, a, a]}
  - {name: act, op: relu}
outputs: {second: act, first: diff}
""")
    src = generate_source(graph)
    forward = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == "forward")
    assert [a.arg for a in forward.args.args] == ["self", "b", "a"]
    assert ast.unparse(forward.returns) == "tuple[torch.Tensor, torch.Tensor]"
    b, a = _x(2, 3, seed=1), _x(2, 3, seed=2)
    second, first = build_module(graph)(b, a)
    torch.testing.assert_close(first, b + 2 * a)
    torch.testing.assert_close(second, torch.relu(b + 2 * a))


_SWAPPED_OUTPUTS = """
name: out_order
inputs: {x: [N, 4]}
blocks:
  two:
    nodes:
      - {name: a, op: linear, out_features: 3}
      - {name: b, op: linear, in: x, out_features: 5}
      - {name: b_out, op: dropout, p: 0.5}
    outputs: [b_out, a]
nodes:
  - {name: t, block: two}
  - {name: first, op: relu, in: "t:0"}
  - {name: second, op: relu, in: "t:1"}
outputs: [first, second]
"""


@pytest.mark.parametrize("optimized", [False, True])
def test_a_block_class_returns_its_outputs_in_the_order_the_spec_names_them(optimized):
    """`outputs: [b_out, a]` with `a` made first: the class alone returns (b_out, a), and the caller's
    `t_0`, `t_1` are the spec's `t:0`, `t:1`; so too where --eval bypasses b_out (the instance's
    output rebound to b, not forgotten)."""
    graph = loads_spec(_SWAPPED_OUTPUTS)
    if optimized:
        graph = optimize_for_inference(graph)
    src = generate_source(graph)
    assert ("return b, a" if optimized else "return b_out, a") in src
    assert "t_0, t_1 = self.t(x)" in src and "first = torch.relu(t_0)" in src
    model = build_module(graph).eval()
    x = _x(2, 4)
    made_first, made_second = model.t(x)
    assert made_first.shape == (2, 5) and made_second.shape == (2, 3)
    first, second = model(x)
    torch.testing.assert_close(first, torch.relu(model.t.b(x)))
    torch.testing.assert_close(second, torch.relu(model.t.a(x)))


def test_variables_never_shadow_what_expressions_use():
    graph = loads_spec("""
name: shadow
inputs: {x: [N, 4], self: [N, 4]}
nodes:
  - {name: tuple, op: relu, in: x}
  - {name: F, op: relu}
  - {name: torch, op: add, in: [F, self]}
  - {name: torch_, op: relu}
""")
    src = generate_source(graph)
    assert "def forward(self, x: torch.Tensor, self_: torch.Tensor)" in src
    assert "tuple_ = torch.relu(x)" in src and "F_ = torch.relu(tuple_)" in src
    assert "torch_ = F_ + self_" in src and "torch__1 = torch.relu(torch_)" in src
    x, y = _x(2, 4, seed=1), _x(2, 4, seed=2)
    torch.testing.assert_close(build_module(graph)(x, y), torch.relu(torch.relu(x) + y))


def test_locals_never_hide_a_python_builtin_and_attributes_keep_their_names():
    """A node named `pow`, `sum`, `abs`, `max`, `id`, `len`, `type` or `input` is a local with `_`
    after it (as a keyword gets), so `max(...)` after it would still be the builtin; a module
    named `min` stays `self.min` (its state_dict keys are the spec's)."""
    graph = loads_spec("""
name: builtin_names
inputs: {input: [N, 4]}
nodes:
  - {name: pow, op: pow, exponent: 2.0}
  - {name: sum, op: sum, dims: [1], keepdim: true}
  - {name: abs, op: abs}
  - {name: max, op: add, in: [abs, input]}
  - {name: id, op: relu}
  - {name: len, op: relu}
  - {name: type, op: relu}
  - {name: min, op: linear, out_features: 3}
""")
    src = generate_source(graph)
    forward = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == "forward")
    stored = [n.id for n in ast.walk(forward) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    assert stored == ["pow_", "sum_", "abs_", "max_", "id_", "len_", "type_", "min_"]
    assert [a.arg for a in forward.args.args] == ["self", "input_"]
    assert "pow_ = torch.pow(input_, 2.0)" in src and "min_ = self.min(type_)" in src
    model = build_module(graph)
    assert list(model.state_dict()) == ["min.weight", "min.bias"]
    x = _x(2, 4)
    expected = torch.relu(torch.abs((x ** 2).sum(1, keepdim=True)) + x)
    torch.testing.assert_close(model(x), model.min(expected))


def test_a_parameter_read_once_is_read_as_its_attribute_without_an_alias_line():
    """`weight = self.weight` then `normed * weight` is one line, `normed * self.weight`; a parameter
    read twice keeps its local (`gain * gain`, not the attribute twice); the state_dict is unchanged."""
    graph = loads_spec("""
name: scaled
inputs: {x: [N, 4]}
blocks:
  rms_scale:
    nodes:
      - {name: weight, op: parameter, shape: [4], init: ones}
      - {name: scaled, op: mul, in: [x, weight]}
nodes:
  - {name: norm, block: rms_scale}
  - {name: gain, op: parameter, shape: [4], init: ones}
  - {name: squared, op: mul, in: [gain, gain]}
  - {name: out, op: mul, in: [norm, squared]}
""")
    src = generate_source(graph)
    assert "weight = self.weight" not in src and "scaled = x * self.weight" in src
    assert "gain = self.gain" in src and "squared = gain * gain" in src
    model = build_module(graph)
    assert sorted(model.state_dict()) == ["gain", "norm.weight"]
    with torch.no_grad():
        model.norm.weight.copy_(torch.arange(4.0))
        model.gain.fill_(3.0)
    x = _x(2, 4)
    torch.testing.assert_close(model(x), x * torch.arange(4.0) * 9.0)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_module_names_that_are_not_identifiers_or_clash():
    graph = loads_spec("""
name: odd
inputs: {x: [N, 2, 5, 5]}
blocks:
  seq:
    nodes:
      - {name: "0", op: conv, out_channels: 2, kernel_size: 1}
      - {name: "1", op: batchnorm}
nodes:
  - {name: "0", op: conv, out_channels: 2, kernel_size: 1}
  - {name: class, op: conv, out_channels: 2, kernel_size: 1}
  - {name: items, block: seq}
""")
    module = build_module(graph)
    keys = list(module.state_dict())
    assert keys[:4] == ["0.weight", "0.bias", "class.weight", "class.bias"]
    assert "items.0.weight" in keys and "items.1.running_mean" in keys
    assert module(_x(1, 2, 5, 5)).shape == (1, 2, 5, 5)

    clash = loads_spec("name: c\ninputs: {x: [N, 2]}\nnodes: [{name: eval, op: linear, out_features: 2}]")
    with pytest.raises(SpecError, match="'eval' clashes"):
        generate_source(clash)


def test_skip_role_comment():
    graph = loads_spec(TINY)
    lines = generate_source(graph, labels={"layer1.1.add": "residual"}).splitlines()
    marked = [i for i, line in enumerate(lines) if "# skip:" in line]
    assert len(marked) == 1  # in the class of layer1.1's block, above its merge line
    assert lines[marked[0]].strip() == "# skip: residual" and lines[marked[0] + 1].strip() == "add = bn2 + x"


# -- weights ------------------------------------------------------------------------------

def test_build_module_loads_graph_weights_or_seeded_init_without_changing_the_graph():
    graph = loads_spec(TINY)
    a, b, c = build_module(graph, seed=0), build_module(graph, seed=0), build_module(graph, seed=1)
    assert graph.weights == {}
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key])
    assert not torch.equal(a.state_dict()["stem.weight"], c.state_dict()["stem.weight"])

    initialize(graph, 5)
    randomize_statistics(graph, 5)
    state = build_module(graph, seed=0).state_dict()  # graph.weights win over the seed
    np.testing.assert_array_equal(state["layer1.0.bn1.running_mean"].numpy(),
                                  graph.weights["layer1.0.bn1"]["running_mean"])
    assert list(state) == [k for k, _ in state_dict_specs(graph)]
    assert list(state_dict_from_graph(graph)) == list(state)


def test_train_mode_updates_batchnorm_statistics_and_eval_does_not():
    module = build_module(loads_spec(TINY))
    bn = module.get_submodule("layer1.0.bn1")
    before = bn.running_mean.clone()
    module.train()
    y = module(_x(4, 3, 9, 9))
    y.sum().backward()
    assert not torch.equal(bn.running_mean, before)
    assert int(bn.num_batches_tracked) == 1
    assert module.stem.weight.grad is not None and module.stem.weight.grad.abs().sum() > 0

    module.eval()
    stats = bn.running_mean.clone()
    with torch.no_grad():
        y1, y2 = module(_x(2, 3, 9, 9)), module(_x(2, 3, 9, 9))
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    assert torch.equal(bn.running_mean, stats) and int(bn.num_batches_tracked) == 1


def test_state_dict_round_trip(tmp_path):
    graph = loads_spec(TINY)
    module = build_module(graph, seed=3)
    module.train()
    module(_x(4, 3, 9, 9))  # change the batchnorm statistics away from their init
    path = str(tmp_path / "trained.pt")
    torch.save(module.state_dict(), path)

    fresh = loads_spec(TINY)
    load_weights(fresh, path)
    assert list(fresh.weights) == [n.name for n in fresh.nodes() if n.name in fresh.weights]
    np.testing.assert_array_equal(fresh.weights["layer1.0.bn1"]["running_var"],
                                  module.get_submodule("layer1.0.bn1").running_var.numpy())
    assert fresh.weights["layer1.0.bn1"]["num_batches_tracked"] == 1
    module.eval()
    x = _x(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(build_module(fresh).eval()(x), module(x), rtol=0, atol=0)


def test_load_weights_accepts_ddp_prefix_and_old_checkpoints_without_num_batches_tracked(tmp_path):
    graph = loads_spec(TINY)
    state = {f"module.{k}": v for k, v in build_module(graph, seed=2).state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "ddp.pt")
    load_weights(graph, str(tmp_path / "ddp.pt"))
    np.testing.assert_array_equal(graph.weights["fc"]["weight"], state["module.fc.weight"].numpy())
    assert graph.weights["stem"]["weight"].dtype == np.float32
    assert graph.weights["layer1.0.bn1"]["num_batches_tracked"] == 0


def test_load_weights_reports_every_mismatch(tmp_path):
    graph = loads_spec(TINY)
    state = build_module(graph).state_dict()
    state["fc.weight"] = torch.zeros(3, 7)                          # wrong shape
    state["layer1.0.conv3.weight"] = state.pop("layer1.0.conv2.weight")  # misspelled key
    del state["stem.bias"]                                           # missing
    path = str(tmp_path / "bad.pt")
    torch.save(state, path)
    with pytest.raises(SpecError) as info:
        load_weights(graph, path)
    text = str(info.value)
    assert "'fc.weight': expected shape (3, 6), found (3, 7)" in text
    assert "unexpected key 'layer1.0.conv3.weight'" in text and "did you mean 'layer1.0.conv2.weight'" in text
    assert "missing 2 keys: 'stem.bias' (4,), 'layer1.0.conv2.weight' (6, 6, 3, 3)" in text
    assert all(d.location is not None and d.location.file == path for d in info.value.diagnostics)
    assert graph.weights == {}  # nothing half-loaded


def test_load_weights_of_another_layout_lists_a_few_keys_and_names_the_pattern(tmp_path):
    """A checkpoint of a wrapper (every key under 'model.') differs in every key: a few are listed, the
    others counted, and the shared leading segment is named, instead of a line per key."""
    graph = load_spec("specs/resnet18.yaml")
    state = {f"model.{k}": v for k, v in build_module(graph).state_dict().items()}
    path = str(tmp_path / "wrapped.pt")
    torch.save(state, path)
    with pytest.raises(SpecError) as info:
        load_weights(graph, path)
    messages = [d.message for d in info.value.diagnostics]
    assert len(messages) == 8 + 3
    assert sum(m.startswith("unexpected key 'model.") for m in messages) == 8
    assert f"{len(state) - 8} more unexpected keys (the last: 'model.fc.bias')" in messages
    assert "the file's keys start with 'model.' where the model's do not" in messages
    (missing,) = [m for m in messages if m.startswith("missing")]
    required = [k for k in state if not k.endswith("num_batches_tracked")]  # (optional: an old checkpoint's)
    assert missing.startswith(f"missing {len(required)} keys: 'conv1.weight' (64, 3, 7, 7)")
    assert missing.endswith(f" and {len(required) - 8} more")
    assert "strip 'model.' from the keys" in str(info.value)


def test_load_weights_rejects_missing_and_unreadable_files(tmp_path):
    graph = loads_spec(TINY)
    with pytest.raises(SpecError, match="no such weights file"):
        load_weights(graph, str(tmp_path / "absent.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpecError, match="cannot read a PyTorch state_dict"):
        load_weights(graph, str(tmp_path / "junk.pt"))
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(SpecError, match="expected a state_dict"):
        load_weights(graph, str(tmp_path / "list.pt"))


# -- ResNet-18 has torchvision's parameter names and shapes --------------------------------

class _BasicBlock(nn.Module):
    """torchvision's BasicBlock, written out by hand (torchvision is not a dependency)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class _ResNet18(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes, layers = 64, []
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(_BasicBlock(inplanes, planes, stride), _BasicBlock(planes, planes)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_resnet18_matches_torchvision_structure_and_loads_its_checkpoints(tmp_path):
    graph = load_spec(os.path.join(ROOT, "specs", "resnet18.yaml"), {"image_size": 32})
    ours = build_module(graph).state_dict()
    torch.manual_seed(0)
    reference = _ResNet18()
    theirs = reference.state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == [(k, tuple(v.shape)) for k, v in theirs.items()]

    with torch.no_grad():  # non-trivial statistics, so that loading them matters
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pt")
    load_weights(graph, str(tmp_path / "resnet18.pt"))
    x = _x(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(build_module(graph).eval()(x), reference.eval()(x), rtol=1e-5, atol=1e-5)


# -- torch.compile and DDP ------------------------------------------------------------------

def _dynamo_supported() -> bool:
    try:
        import torch._dynamo

        return hasattr(torch, "compile") and torch._dynamo.is_dynamo_supported()
    except Exception:  # pragma: no cover - depends on the platform
        return False


@pytest.mark.skipif(not _dynamo_supported(), reason="torch.compile is not available here")
def test_torch_compile_captures_the_whole_forward_and_matches_eager():
    """fullgraph=True fails on any graph break; aot_eager keeps it fast (no C++ compile)."""
    torch._dynamo.reset()
    graph = loads_spec(TINY)
    module = build_module(graph).eval()
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
    x = _x(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x), rtol=1e-6, atol=1e-6)

    module.train()
    compiled(x).sum().backward()
    grad = module.stem.weight.grad.clone()
    module.zero_grad()
    module(x).sum().backward()
    torch.testing.assert_close(grad, module.stem.weight.grad, rtol=1e-5, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import datetime

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    model = DistributedDataParallel(build_module(loads_spec(PLAIN), seed=0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, target = _x(4, 2, 6, 6, seed=7), _x(4, 2, seed=8)
    part = slice(rank * 2, rank * 2 + 2)
    loss = nn.functional.mse_loss(model(x[part]), target[part])
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.module.named_parameters()}
    opt.step()
    torch.save({"grads": grads, "state": model.module.state_dict()}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    # Exit without running destructors: tearing down DDP's reducer and the gloo process group
    # can deadlock (the main thread joins gloo's thread while holding the GIL that thread needs).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def test_ddp_step_on_two_processes_equals_full_batch_step(tmp_path):
    import time

    import torch.multiprocessing as mp

    context = mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + 180
    while not context.join(timeout=1):  # raises if a worker fails
        if time.monotonic() > deadline:
            for proc in context.processes:
                proc.kill()
            pytest.fail("the DDP workers did not finish within 180 s")

    model = build_module(loads_spec(PLAIN), seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, target = _x(4, 2, 6, 6, seed=7), _x(4, 2, seed=8)
    nn.functional.mse_loss(model(x), target).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    opt.step()
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert set(result["grads"]) == set(grads)
        for key, grad in grads.items():
            torch.testing.assert_close(result["grads"][key], grad, rtol=1e-5, atol=1e-6)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(result["state"][key], value, rtol=1e-5, atol=1e-6)
