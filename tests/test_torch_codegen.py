"""Generated PyTorch a person would keep (issue 13): classes per block, constructor arguments,
a header, formatted lines, and the PyTorch tools it must work with (fx, export, compile,
TorchScript, the ONNX exporter's per-module scopes)."""
from __future__ import annotations

import ast
import builtins
import importlib.util
import itertools
import keyword
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from archc import load_spec, loads_spec
from archc.analysis.skips import analyze
from archc.frontends.yaml.params import MAX_NAME_LENGTH
from archc.lowering.pyformat import MAX_LINE
from archc.lowering.torch import build_module, class_name_for, generate_source, module_class, state_dict_from_graph

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "resnet18_model.py"
    graph = load_spec(ROOT / "specs/resnet18.yaml")
    analyze(graph, paths=False)
    path.write_text(generate_source(graph, spec="specs/resnet18.yaml", seed=0))
    return path


@pytest.fixture(scope="module")
def resnet18(resnet18_file):
    return _import(resnet18_file, "resnet18_model").Resnet18().eval()


# -- shape of the file -------------------------------------------------------------------------

def _assert_ruff_formatted(path: Path) -> None:
    """``ruff format --check`` passes on the file at ``path``."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    check = subprocess.run([ruff, "format", "--check", "--diff", "--no-cache", "--isolated", str(path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def _classes(source: str) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}


def test_one_class_per_block_variant_never_one_per_instance():
    source = generate_source(load_spec(ROOT / "specs/resnet152.yaml"))
    # a bottleneck with a projection shortcut, one without, and the model
    assert list(_classes(source)) == ["Bottleneck", "BottleneckDownsample", "Resnet152"]
    # 46 bottlenecks in four runs, each written once in a loop (as torchvision's _make_layer appends them)
    runs = re.findall(r"\*\[Bottleneck\(in_channels=[^\]]* for _ in range\((\d+)\)\]", source)
    assert len(runs) == 4 and sum(map(int, runs)) == 46 and source.count(" BottleneckDownsample(in_") == 4
    assert "self.layer3 = nn.Sequential(" in source and "layer3 = self.layer3(layer2)" in source
    assert len(source.splitlines()) < 300  # was 955 lines as one flat forward


def test_block_classes_take_the_parameters_they_use(tmp_path):
    source = generate_source(load_spec(ROOT / "specs/resnet50.yaml"))
    init = next(n for n in ast.walk(_classes(source)["BottleneckDownsample"]) if isinstance(n, ast.FunctionDef))
    assert [a.arg for a in init.args.args] == ["self", "in_channels", "planes", "stride", "expansion", "groups",
                                              "base_width"]
    assert "width = planes * base_width // 64 * groups" in source  # the block's let, in __init__
    path = tmp_path / "r50.py"
    path.write_text(source)
    module = _import(path, "r50_blocks")
    block = module.BottleneckDownsample(in_channels=32, planes=16, stride=2)  # a size no instance has
    assert block(torch.randn(1, 32, 8, 8)).shape == (1, 64, 4, 4)
    # no ResNet-50 block is grouped, yet the class takes groups as the spec writes it: ResNeXt's
    # 32x4d bottleneck (torchvision's resnext50_32x4d layer1.1) from the same class
    resnext = module.Bottleneck(in_channels=256, planes=64, groups=32, base_width=4)
    assert resnext.conv2.groups == 32 and tuple(resnext.conv2.weight.shape) == (128, 4, 3, 3)
    assert resnext(torch.randn(1, 256, 8, 8)).shape == (1, 256, 8, 8)


@pytest.mark.parametrize("spec, cls, kwargs, inputs, out_shape", [
    # DenseNet-121's layer widens to bn_size * growth: norm2 and conv2 read that width, not a literal 128
    ("densenet121", "DenseLayer", {"cat_channels": 24, "growth": 32}, [[(1, 24, 8, 8)]], (1, 32, 8, 8)),
    # the hourglass's conv-bn-relu: its batchnorm is as wide as its conv's `out`, not a literal 256
    ("hourglass", "ConvBnRelu", {"out": 64}, [(1, 256, 8, 8)], (1, 64, 8, 8)),
])
def test_a_block_class_computes_every_width_from_the_arguments_it_takes(tmp_path, spec, cls, kwargs, inputs,
                                                                         out_shape):
    # found transcribing DenseNet-BC and DeepLabV3: widths every instance shares were literals even
    # where the layer making them writes an expression of the class's arguments
    path = tmp_path / f"{spec}.py"
    path.write_text(generate_source(load_spec(ROOT / f"specs/{spec}.yaml")))
    block = getattr(_import(path, f"{spec}_widths"), cls)(**kwargs)
    args = [[torch.randn(*s) for s in a] if isinstance(a, list) else torch.randn(*a) for a in inputs]
    assert block(*args).shape == out_shape


def test_a_literal_equal_to_an_input_width_in_one_instance_only_stays_a_literal(tmp_path):
    # found transcribing PSPNet: the first instance's pooled width (b=1) equals the 1x1 conv's kernel, the
    # second's (b=2) does not; the class wrote kernel_size=b and the second instance was a 2x2 conv
    graph = loads_spec("inputs: {x: [N, 4, 8, 8]}\nblocks:\n  branch:\n    params: {b: null}\n    nodes:\n"
                       "      - {name: pool, op: adaptive_avgpool, output_size: b}\n"
                       "      - {name: conv, op: conv, out_channels: 4, kernel_size: 1}\n"
                       "nodes:\n  - {name: a, block: branch, b: 1}\n  - {name: c, block: branch, b: 2}\n")
    source = generate_source(graph)
    assert "nn.Conv2d(4, 4, kernel_size=1, stride=1" in source
    module = build_module(graph, seed=0)
    assert tuple(module.c.conv.weight.shape) == (4, 4, 1, 1)
    assert module(torch.randn(1, 4, 8, 8)).shape == (1, 4, 2, 2)


def test_model_takes_the_spec_parameters(resnet18_file):
    module = _import(resnet18_file, "resnet18_params")
    model = module.Resnet18(num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    # a parameter that shapes the whole network is fixed in the file, and says so
    with pytest.raises(ValueError, match="width=32: this file was generated for width=64; "
                                         "regenerate it with archc build --set width=32"):
        module.Resnet18(width=32)


def _run_time_module(source: str, name: str) -> dict:
    scope: dict = {}
    exec(compile(source, f"{name}.py", "exec"), scope)
    return scope


@pytest.mark.parametrize("spec,profile,cls,given,inputs", [
    # a dropout rate, an epsilon and a head count change no shape: the file takes them
    ("transformer", "small", "Transformer", {"dropout": 0.3, "layer_norm_eps": 1e-6, "nhead": 4},
     lambda: (torch.randn(2, 5, 32), torch.randn(2, 4, 32))),
    ("vit_b16", "small", "VitB16", {"num_heads": 4}, lambda: (torch.randn(1, 3, 32, 32),)),
    # an image size that only the input declares: a pooled CNN takes any
    ("resnet18", None, "Resnet18", {"image_size": 64}, lambda: (torch.randn(1, 3, 64, 64),)),
    ("googlenet", None, "Googlenet", {"dropout": 0.5, "image_size": 96}, lambda: (torch.randn(1, 3, 96, 96),)),
    ("llama", "small", "Llama", {"vocab_size": 50}, lambda: (torch.randint(0, 50, (1, 6)),)),
])
def test_a_parameter_no_later_code_depends_on_is_a_run_time_argument(spec, profile, cls, given, inputs):
    # found by a user trying every argument of the shipped specs' files: only num_classes worked. A
    # parameter was fixed whenever a later layer's code changed with all its input dims doubled,
    # whether or not the parameter changed any dim; now the parameter's own other value is carried
    # through the graph, and floats (dropout, eps) are class arguments as integers are
    from archc.frontends.yaml import load_spec
    from archc.lowering.torch import generate_source

    source = generate_source(load_spec(f"specs/{spec}.yaml", profile=profile))
    header = next(line for line in source.splitlines() if line.startswith("# run-time arguments:"))
    assert all(name in header for name in given), header
    built = _run_time_module(source, spec)[cls](**given).eval()
    reference = _run_time_module(generate_source(load_spec(f"specs/{spec}.yaml", given, profile=profile)),
                                 spec + "_set")[cls]().eval()
    built.load_state_dict(reference.state_dict(), strict=True)
    for (name, mine), (_, theirs) in zip(built.named_modules(), reference.named_modules()):
        assert repr(mine) == repr(theirs), name  # rates, epsilons and head counts as --set builds them
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(built(*x), reference(*x))


def test_header_names_spec_parameters_overrides_seed_and_skips(run_archc, tmp_path):
    out = tmp_path / "m.py"
    run_archc("build", "specs/resnet18.yaml", "--target", "torch", "-o", str(out), "--set", "num_classes=7",
              "--seed", "3", check=True)
    header = out.read_text().split("import torch")[0]
    assert "# spec: specs/resnet18.yaml" in header
    assert "num_classes=7, width=64, image_size=224" in header and "# --set num_classes=7" in header
    assert "# seed: 3" in header and "generated by archc" in header
    assert "# skips: residual 8, long_skip 0, dense 0, gated 0" in header


def test_skip_labels_from_the_labels_argument_are_comments_on_merge_lines():
    graph = load_spec(ROOT / "specs/resnet18.yaml")
    # every instance of the plain basic block: one class, one comment where they agree
    plain = ["layer1.0", "layer1.1", "layer2.1", "layer3.1", "layer4.1"]
    labels = {f"{b}.add": "residual merge (identity)" for b in plain}
    lines = generate_source(graph, labels=labels).splitlines()
    i = lines.index("        # skip: residual merge (identity)")
    assert lines[i + 1].strip() == "add = bn2 + x"
    assert "# skips: residual 5, long_skip 0, dense 0, gated 0" in lines
    # where the instances' labels differ (each names its own fork), the class shows their kind
    labels = {"layer1.0.add": "residual merge (fork maxpool)", "layer1.1.add": "residual merge (fork layer1.0)"}
    lines = generate_source(graph, labels=labels).splitlines()
    assert lines[lines.index("        # skip: residual merge") + 1].strip() == "add = bn2 + x"


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_every_shipped_spec_is_formatted_with_short_lines(spec, tmp_path):
    source = generate_source(load_spec(spec))
    assert max(len(line) for line in source.splitlines()) <= 100
    assert not [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Delete)]
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    path = tmp_path / f"{spec.stem}.py"
    path.write_text(source)
    check = subprocess.run([ruff, "format", "--check", "--diff", "--no-cache", "--isolated", str(path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # ruff's classic default rules (pyflakes: an unused import) and mutable default arguments, named
    # here so that another ruff version's defaults do not change the test
    check = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--select", "E4,E7,E9,F,B006", str(path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


HALVES = """
archc: 1
name: halves
inputs:
  x: [N, 8, 4, 4]
blocks:
  half:
    nodes:
      - {name: x1, op: slice, dim: 1, end: "channels(x) // 2"}
      - {name: x2, op: slice, in: x, dim: 1, start: "channels(x) // 2"}
      - {name: cat, op: concat, in: [x2, x1, x]}
nodes:
  - {name: a, block: half}
  - {name: b, block: half}
"""


def test_a_slice_bound_taken_as_a_class_argument_is_formatted_as_ruff_formats_it(tmp_path):
    # the two instances slice at 4 and at 8: one class, its bound computed in __init__ (self.x1_1)
    source = generate_source(loads_spec(HALVES, "halves.yaml"))
    assert "x[:, : self." in source and " :]" in source  # (start 0 and step 1 left out)
    path = tmp_path / "halves.py"
    path.write_text(source)
    _assert_ruff_formatted(path)
    module = _import(path, "halves")
    model = next(c for c in vars(module).values() if isinstance(c, type) and c.__module__ == "halves"
                 and issubclass(c, torch.nn.Module) and c.__name__ != "Half")()
    x = torch.randn(2, 8, 4, 4)
    a = torch.cat([x[:, 4:], x[:, :4], x], 1)
    torch.testing.assert_close(model(x), torch.cat([a[:, 8:], a[:, :8], a], 1))


FCN_HEADS = """
archc: 1
name: fcn_heads
inputs: {x: [N, 3, 20, 20], ref: [N, 3, 8, 8]}
blocks:
  head:
    inputs: [x, ref]
    params: {offset: null}
    nodes:
      - {name: conv, op: conv, in: x, out_channels: 3, kernel_size: 1}
      - {name: c, op: crop, in: [conv, ref], offset: offset}
nodes:
  - {name: a, block: head, in: [x, ref], offset: 0}
  - {name: b, block: head, in: [x, ref], offset: 5}
  - {op: add, in: [a, b]}
"""


def test_a_crop_offset_taken_as_a_class_argument_splits_its_long_subscript_as_ruff_does(tmp_path):
    # FCN's crop in a block of an offset parameter: one class (offset 0 written too, as the argument),
    # whose subscript of four elements is too long for one line: one element a line, as ruff writes it
    source = generate_source(loads_spec(FCN_HEADS, "fcn_heads.yaml"))
    assert "            self.offset : self.offset + ref.shape[2],\n" in source
    assert "self.a = Head(offset=0)" in source and "self.b = Head(offset=5)" in source
    path = tmp_path / "fcn_heads.py"
    path.write_text(source)
    _assert_ruff_formatted(path)
    module = _import(path, "fcn_heads")
    model = module.FcnHeads()
    x, ref = torch.randn(2, 3, 20, 20), torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model(x, ref), model.a.conv(x)[:, :, :8, :8] + model.b.conv(x)[:, :, 5:13, 5:13])


def test_every_op_parity_case_generates_a_ruff_formatted_file(tmp_path):
    # seen transcribing a position embedding of max_len on a symbolic length: `self.pos[:, :x.shape[1]]`,
    # which ruff formats `self.pos[:, : x.shape[1]]`; every op's cases, checked by one ruff run
    from test_op_parity import CASES

    for op, cases in CASES.items():
        for number, (_, text) in enumerate(cases):
            (tmp_path / f"{op}_{number}.py").write_text(generate_source(loads_spec("name: case\n" + text)))
    assert "self.position_embedding[:, : x.shape[1]]" in (tmp_path / "position_embedding_2.py").read_text()
    _assert_ruff_formatted(tmp_path)


@pytest.mark.parametrize("text, formatted", [
    ("y = x[:, 0:4:1]", "y = x[:, 0:4:1]"),             # names and numbers: no spaces
    ("y = x[:, 0:self.h:1]", "y = x[:, 0 : self.h : 1]"),
    ("y = x[:, self.h::1]", "y = x[:, self.h :: 1]"),
    ("y = x[:, :self.h]", "y = x[:, : self.h]"),
    ("y = x[n + 1:]", "y = x[n + 1 :]"),
    ("y = f(x)[0] + z[self.a:-1]", "y = f(x)[0] + z[self.a : -1]"),
    ('y = d["a:b"]', 'y = d["a:b"]'),                      # a string is no slice
])
def test_spaced_slices_writes_colons_as_ruff_format_does(text, formatted):
    from archc.lowering.pyformat import spaced_slices

    assert spaced_slices(text) == formatted


def test_a_list_parameter_defaults_to_a_tuple_and_takes_a_list_or_a_tuple(tmp_path, run_archc):
    out = tmp_path / "densenet_args.py"
    run_archc("build", "specs/densenet121.yaml", "--target", "torch", "-o", str(out), check=True)
    module = _import(out, "densenet_args")
    import inspect

    assert inspect.signature(module.Densenet121).parameters["block_config"].default == (6, 12, 24, 16)
    for given in ([6, 12, 24, 16], (6, 12, 24, 16)):
        assert isinstance(module.Densenet121(block_config=given, num_classes=3), torch.nn.Module)
    with pytest.raises(ValueError, match=r"block_config=\[6, 12, 24, 8\]: this file was generated for "
                                         r"block_config=\(6, 12, 24, 16\)"):
        module.Densenet121(block_config=[6, 12, 24, 8])


def test_long_lowerings_call_a_function_defined_once_whose_name_no_variable_takes():
    # rotary_embedding would be one ~250-character expression: it calls apply_rotary_embedding,
    # defined once above the classes; nodes named like it get other variable names
    spec = ("inputs: {x: [N, 5, 2, 8]}\nnodes:\n"
            "  - {name: apply_rotary_embedding, op: rotary_embedding}\n"
            "  - {name: apply_rotary_embedding_1, op: rotary_embedding, interleaved: false}\n")
    graph = loads_spec(spec)
    source = generate_source(graph)
    assert source.count("def apply_rotary_embedding(") == 1
    assert max(len(line) for line in source.splitlines()) <= 88
    assert "apply_rotary_embedding = " not in source
    module = build_module(graph)
    x = torch.randn(2, 5, 2, 8)
    assert module(x).shape == (2, 5, 2, 8)
    assert "apply_rotary_embedding" not in generate_source(loads_spec("inputs: {x: [N, 4]}\nnodes: [{op: relu}]"))


TIED_IN_NUMBERED_CONTAINER = """
inputs: {x: [N, 3, 4]}
blocks:
  shared:
    sequential: true
    nodes:
      - {name: a, op: parameter, shape: [4], init: ones}
      - {name: b, op: parameter, shape: [4], init: ones, tie: {"1": a}}
      - {name: fc1, op: linear, out_features: 4, bias: false, in: x}
      - {name: fc2, op: linear, out_features: 4, bias: false, tie: {weight: fc1.weight}}
      - {op: mul, in: [prev, a]}
      - {op: mul, in: [prev, b]}
nodes: [{name: stack, block: shared, repeat: 2}]
"""


def test_weight_tying_inside_a_numbered_container_is_assigned_by_the_block_class(tmp_path):
    # parameter-only nodes named 0, 1 (a sequential block) and modules named 2, 3: each block
    # class ties its own, with setattr where the name is a number
    graph = loads_spec(TIED_IN_NUMBERED_CONTAINER)
    source = generate_source(graph)
    shared = ast.get_source_segment(source, _classes(source)["Shared"])
    assert 'setattr(self, "1", getattr(self, "0"))' in shared
    assert 'getattr(self, "3").weight = getattr(self, "2").weight' in shared
    module = build_module(graph)
    for block in module.stack:
        assert block.get_parameter("1") is block.get_parameter("0")
        assert block.get_submodule("3").weight is block.get_submodule("2").weight
    assert list(module.state_dict()) == [f"stack.{i}.{k}" for i in (0, 1) for k in ("0", "1", "2.weight", "3.weight")]
    assert sum(p.numel() for p in module.parameters()) == 2 * (4 + 16)
    # built on the meta device, to_empty() unties them; each block class re-ties its own
    with torch.device("meta"):
        empty = module_class(graph)()
    empty.to_empty(device="cpu")
    for instance in empty.block_instances():
        instance.reset_parameters()
    for block in empty.stack:
        assert block.get_parameter("1") is block.get_parameter("0")
        assert block.get_submodule("3").weight is block.get_submodule("2").weight
    path = tmp_path / "tied.py"
    path.write_text(source)
    _assert_ruff_formatted(path)


def test_a_block_of_numbered_block_instances_in_series_is_an_nn_sequential():
    # GoogLeNet's reduce_conv (instances named 0 and 1, in series) is written as torchvision
    # writes branch2: nn.Sequential(BasicConv2d(...), BasicConv2d(...)), with no class of its own
    graph = load_spec(ROOT / "specs/googlenet.yaml")
    source = generate_source(graph)
    assert "ReduceConv" not in source and 'getattr(self, "0")' not in source
    inception = ast.get_source_segment(source, _classes(source)["Inception"])
    assert "self.branch2 = nn.Sequential(\n" in inception
    module = build_module(graph)
    assert type(module.inception3a.branch2).__name__ == "Sequential"
    assert type(module.inception3a.branch2[1]).__name__ == "BasicConv"


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_no_shipped_spec_reaches_a_module_through_getattr(spec):
    # numbered modules are children of an nn.Sequential (self[0], self.conv[2]), never
    # getattr(self, "0"); add_module stays only where torchvision writes it too: an
    # nn.Sequential class whose children's names are no identifiers (RegNet's "block1-0")
    source = generate_source(load_spec(spec))
    assert "getattr(self" not in source
    for line in source.splitlines():
        if "self.add_module(" in line:
            assert not line.strip().startswith('self.add_module("') or not line.split('"')[1].isdigit()


def test_a_numbered_chain_with_functional_ops_is_an_nn_sequential_class():
    # MobileNetV2's conv_bn_relu6 (conv 0, bn 1, functional relu6 2) is torchvision's
    # Conv2dNormActivation: an nn.Sequential subclass holding nn.ReLU6(), with no forward
    graph = load_spec(ROOT / "specs/mobilenet_v2.yaml", overrides={"image_size": 32})
    source = generate_source(graph)
    cls = _classes(source)["ConvBnRelu6"]
    assert ast.unparse(cls.bases[0]) == "nn.Sequential"
    assert [f.name for f in cls.body if isinstance(f, ast.FunctionDef)] == ["__init__", "reset_parameters"]
    text = ast.get_source_segment(source, cls)
    assert "nn.ReLU6()" in text and "self[0].reset_parameters()" in text
    module = build_module(graph)
    block = module.features[1].conv[0]
    assert isinstance(block, torch.nn.Sequential) and isinstance(block[2], torch.nn.ReLU6)
    assert [k for k in module.state_dict() if k.startswith("features.1.conv.0.")] == [
        "features.1.conv.0.0.weight", "features.1.conv.0.1.weight", "features.1.conv.0.1.bias",
        "features.1.conv.0.1.running_mean", "features.1.conv.0.1.running_var",
        "features.1.conv.0.1.num_batches_tracked"]
    # GoogLeNet's pool_proj holds its max-pool as nn.MaxPool2d, as torchvision's branch4 does
    googlenet = generate_source(load_spec(ROOT / "specs/googlenet.yaml"))
    pool_proj = ast.get_source_segment(googlenet, _classes(googlenet)["PoolProj"])
    calls = [ast.unparse(n) for n in ast.walk(ast.parse(pool_proj)) if isinstance(n, ast.Call)]
    assert "nn.MaxPool2d(kernel_size=3, stride=1, padding=1, dilation=1, ceil_mode=True)" in calls


def test_a_chain_named_by_identifiers_stays_a_class_with_attributes():
    # a chain whose names are identifiers keeps self.conv1 and its forward (torchvision's BasicConv2d)
    source = generate_source(load_spec(ROOT / "specs/googlenet.yaml"))
    basic = _classes(source)["BasicConv"]
    assert ast.unparse(basic.bases[0]) == "nn.Module" and "self.conv = nn.Conv2d(" in ast.get_source_segment(source, basic)


_MODULE_FORMS = [
    ("relu", "", [2, 3, 5, 5], "ReLU"), ("relu6", "", [2, 3, 5, 5], "ReLU6"),
    ("gelu", "", [2, 7], "GELU"), ("gelu", ", approximate: tanh", [2, 7], "GELU"),
    ("silu", "", [2, 7], "SiLU"), ("sigmoid", "", [2, 7], "Sigmoid"), ("tanh", "", [2, 7], "Tanh"),
    ("hardswish", "", [2, 7], "Hardswish"), ("leaky_relu", ", negative_slope: 0.2", [2, 7], "LeakyReLU"),
    ("softmax", ", axis: 1", [2, 7, 3], "Softmax"), ("log_softmax", ", axis: 1", [2, 7, 3], "LogSoftmax"),
    ("maxpool", ", kernel_size: 3, stride: 2, padding: 1, ceil_mode: true", [2, 3, 9, 9], "MaxPool2d"),
    ("maxpool", ", kernel_size: 2", [2, 3, 8], "MaxPool1d"),
    ("avgpool", ", kernel_size: 3, stride: 2, count_include_pad: false", [2, 3, 9, 9], "AvgPool2d"),
    ("adaptive_avgpool", ", output_size: [2, 3]", [2, 3, 9, 9], "AdaptiveAvgPool2d"),
    ("adaptive_maxpool", ", output_size: 2", [2, 3, 9, 9], "AdaptiveMaxPool2d"),
    ("flatten", ", start_dim: 1, end_dim: 2", [2, 3, 4, 5], "Flatten"),
    ("permute", ", perm: [0, 2, 3, 1]", [2, 3, 4, 5], "Permute"),
    ("pixel_shuffle", ", upscale_factor: 2", [2, 8, 3, 5], "PixelShuffle"),
    ("pixel_unshuffle", ", downscale_factor: 2", [2, 3, 4, 6], "PixelUnshuffle"),
    ("glu", ", dim: 1", [2, 6, 5], "GLU"),
    ("pad", ", pads: [1, 2, 0, 1]", [2, 3, 4, 5], "ZeroPad2d"),
    ("pad", ", pads: [1, 2], value: 0.5", [2, 3, 5], "ConstantPad1d"),
    ("pad", ", pads: [1, 1, 2, 0], mode: reflect", [2, 3, 4, 5], "ReflectionPad2d"),
    ("pad", ", pads: [1, 1, 1, 1, 1, 1], mode: replicate", [2, 3, 4, 4, 4], "ReplicationPad3d"),
    ("pad", ", pads: [1, 2], mode: circular", [2, 3, 5], "CircularPad1d"),
]


@pytest.mark.parametrize(("op", "attrs", "shape", "cls"), _MODULE_FORMS, ids=[f"{c[0]}-{c[3]}" for c in _MODULE_FORMS])
def test_an_op_module_form_computes_its_forward_and_holds_no_state(op, attrs, shape, cls):
    # the op in a chain named 0, 1 takes its module form; at top level, its functional forward
    dims = ", ".join(map(str, shape))
    chain = (f"inputs: {{x: [{dims}]}}\nblocks:\n  chain:\n    nodes:\n      - {{name: '0', op: {op}{attrs}}}\n"
             "nodes:\n  - {name: c, block: chain}\n")
    plain = f"inputs: {{x: [{dims}]}}\nnodes:\n  - {{name: c, op: {op}{attrs}}}\n"
    as_module, functional = build_module(loads_spec(chain)), build_module(loads_spec(plain))
    assert isinstance(as_module.c, torch.nn.Sequential) and type(as_module.c[0]).__name__ == cls
    assert not list(as_module.state_dict()) and not list(as_module.c[0].buffers())
    x = torch.randn(*shape)
    torch.testing.assert_close(as_module(x), functional(x))
    torch.testing.assert_close(torch.jit.script(as_module)(x), functional(x))


def test_every_op_with_a_module_form_is_checked_against_its_forward():
    from archc.ops import registry
    from archc.ops.base import OpDef

    with_form = {op.name for op in registry.all_ops()
                 if type(op).torch_module_form is not OpDef.torch_module_form
                 and (not hasattr(op, "torch_module_class") or op.torch_module_class)}
    assert with_form == {case[0] for case in _MODULE_FORMS}


def test_block_classes_take_the_parameters_the_spec_writes_and_serve_every_depth(tmp_path):
    # basic_conv is used at three depths (stem, inception branch, inside branch2's Sequential)
    # and no GoogLeNet instance of it in a branch is strided: still one class, taking every
    # parameter its attributes are written with (kernel_size: k, stride: stride, padding: pad)
    source = generate_source(load_spec(ROOT / "specs/googlenet.yaml"))
    assert list(_classes(source)) == ["BasicConv", "PoolProj", "Inception", "Googlenet"]
    path = tmp_path / "googlenet_model.py"
    path.write_text(source)
    basic = _import(path, "googlenet_model").BasicConv(in_channels=3, out=8, k=5, stride=2, pad=2)
    assert (basic.conv.kernel_size, basic.conv.stride, basic.conv.padding) == ((5, 5), (2, 2), (2, 2))
    assert basic(torch.randn(1, 3, 16, 16)).shape == (1, 8, 8, 8)


def test_a_block_at_several_depths_is_one_class_over_all_its_instances():
    # U-Net's double_conv sits at five depths (encoder and decoder of each level); each depth
    # alone would give it other arguments, all of them together give one class
    graph = load_spec(ROOT / "specs/unet.yaml")
    source = generate_source(graph)
    assert [c for c in _classes(source) if c.startswith("DoubleConv")] == ["DoubleConv"]
    module = build_module(graph)
    assert sum(type(m).__name__ == "DoubleConv" for m in module.modules()) == 9


_NESTED_AT_TWO_DEPTHS = """
archc: 1
name: nested
inputs: {x: [N, 4, 16, 16]}
blocks:
  unit:
    params: {out: null}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, padding: 1}
      - {name: act, op: relu}
  pair:
    params: {out: null}
    nodes:
      - {name: a, block: unit, out: out}
      - {name: b, block: unit, out: out}
  wrap:
    params: {out: null}
    nodes:
      - {name: inner, block: pair, out: out}
      - {name: pool, op: maxpool, kernel_size: 2, stride: 2}
nodes:
  - {name: p1, block: pair, out: 8}
  - {name: w1, block: wrap, out: 16}
  - {name: w2, block: wrap, out: 32}
"""


def test_a_block_with_nested_blocks_at_several_depths_is_one_class(monkeypatch):
    # pair (holding two units) is used at depth 1 (p1: every value a literal) and depth 2 (inside
    # the wraps: out and the input channels differ): depth by depth it would be two classes; the
    # plan is made again with one class for it, over all its instances
    from archc.lowering import torch_source

    plans = []
    plan = torch_source._Planner.plan
    monkeypatch.setattr(torch_source._Planner, "plan", lambda self, root: plans.append(self) or plan(self, root))
    graph = loads_spec(_NESTED_AT_TWO_DEPTHS)
    source = generate_source(graph)
    assert list(_classes(source)) == ["Unit", "Pair", "Wrap", "Nested"]
    assert len(plans) == 2 and plans[1].premerged_held()
    pair = _classes(source)["Pair"]
    init = next(f for f in pair.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    assert [a.arg for a in init.args.args][1:] == ["in_channels", "out"]
    module = build_module(graph)
    assert module(torch.randn(2, 4, 16, 16)).shape == (2, 32, 4, 4)


@pytest.mark.parametrize("name", ["googlenet", "densenet121", "mobilenet_v2", "unet", "regnet_y_400mf",
                                  "resnet50"])
def test_lowering_shortcuts_write_what_lowering_every_instance_writes(name, monkeypatch):
    """Instances lowered once for several (equal signatures, equal shapes with other numbers, the
    second plan's bodies taken from the first) and op texts asked once for all nodes with equal
    text keys give the file that lowering each instance in full, asking each node's op, gives:
    these specs cover variadic blocks, nn.Sequential children, blocks at several depths, skip
    labels and an op whose text changes with its numbers."""
    from archc.analysis.skips import merge_labels
    from archc.lowering import torch_body, torch_plan, torch_source

    graph = load_spec(ROOT / f"specs/{name}.yaml")
    labels = merge_labels(analyze(graph, paths=False))
    fast = generate_source(graph, labels=labels)
    counts = {"full": 0}
    lower = torch_source.BodyWriter.lower

    def full(writer, body, inst, *rest):
        counts["full"] += 1
        body = lower(writer, inst)
        body.skeleton = torch_source._skeleton(body)
        return body

    monkeypatch.setattr(torch_source, "reuse", full)
    monkeypatch.setattr(torch_source, "relower", lambda writer, template, inst, texts: full(writer, template, inst))
    monkeypatch.setattr(torch_source._Planner, "_as_earlier", lambda self, inst: None)
    # every node its own text key: its op asked for its own texts
    monkeypatch.setattr(torch_plan.Lowered, "text_key", lambda self, node: (node.name, node.name in self.as_module))
    # every instance checked for a chain of modules, not decided as an earlier one of its signature
    as_sequential = torch_body.BodyWriter.as_sequential
    monkeypatch.setattr(torch_body.BodyWriter, "as_sequential", lambda self, inst, signature=None: as_sequential(self, inst))
    assert generate_source(graph, labels=labels) == fast
    assert counts["full"] > 0


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_generation_leaves_no_reference_cycles(spec):
    """What one call makes is freed as it returns (``archc build`` runs with the collector paused:
    objects in reference cycles would stay until a later collection)."""
    import gc

    from archc.analysis.skips import merge_labels

    graph = load_spec(spec)
    labels = merge_labels(analyze(graph, paths=False))
    generate_source(graph, labels=labels)  # imports and first-use caches outside the count
    gc.collect()
    gc.disable()
    try:
        generate_source(graph, labels=labels)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_graphs_without_blocks_are_one_class():
    graph = loads_spec("inputs: {x: [N, 4]}\nnodes: [{op: linear, out_features: 3}, {op: relu}]")
    assert list(_classes(generate_source(graph))) == ["Model"]


# -- the PyTorch ecosystem --------------------------------------------------------------------------

def test_fx_symbolic_trace(resnet18):
    traced = torch.fx.symbolic_trace(resnet18)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(traced(x), resnet18(x))


def test_export_with_a_dynamic_batch(resnet18):
    batch = torch.export.Dim("batch", min=2, max=64)
    exported = torch.export.export(resnet18, (torch.randn(2, 3, 32, 32),), dynamic_shapes={"x": {0: batch}})
    x = torch.randn(5, 3, 32, 32)
    torch.testing.assert_close(exported.module()(x), resnet18(x))


def test_compile_fullgraph(resnet18):
    compiled = torch.compile(resnet18, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), resnet18(x))


def test_torchscript(resnet18):
    scripted = torch.jit.script(resnet18)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), resnet18(x))


def test_the_sub_pixel_glu_stack_and_sum_ops_script_trace_and_export():
    # issue 13's ops in one chain: F.pixel_shuffle / F.pixel_unshuffle, F.glu, torch.stack, Tensor.sum
    graph = loads_spec("name: chain\ninputs: {x: [N, 8, 4, 6]}\nnodes:\n"
                       "  - {op: pixel_shuffle, upscale_factor: 2}\n  - {op: pixel_unshuffle, downscale_factor: 2}\n"
                       "  - {name: gated, op: glu, dim: 1}\n  - {op: stack, in: [gated, gated], dim: -1}\n"
                       "  - {op: sum, dims: [1, -1], keepdim: true}")
    module = build_module(graph).eval()
    x = torch.randn(3, 8, 4, 6)
    with torch.no_grad():
        want = module(x)
        torch.testing.assert_close(torch.jit.script(module)(x), want)
        torch.testing.assert_close(torch.fx.symbolic_trace(module)(x), want)
        batch = torch.export.Dim("batch", min=2, max=64)
        exported = torch.export.export(module, (torch.randn(2, 8, 4, 6),), dynamic_shapes={"x": {0: batch}})
        torch.testing.assert_close(exported.module()(x), want)


def test_torchscript_variadic_blocks():
    # DenseNet's layers take their inputs as one list, passed whole (torch.cat(features, dim=1))
    graph = load_spec(ROOT / "specs/densenet121.yaml", overrides={"image_size": 32})
    module = build_module(graph).eval()
    source = generate_source(graph)
    assert "torch.cat(features, dim=1)" in source and "[*" not in source
    scripted = torch.jit.script(module)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), module(x))


def test_onnx_export_keeps_per_block_scopes(resnet18, tmp_path):
    import onnx

    path = tmp_path / "r18.onnx"
    torch.onnx.export(resnet18, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False)
    names = [n.name for n in onnx.load(str(path)).graph.node]
    assert "/layer1/layer1.0/conv1/Conv" in names and "/layer2/layer2.0/downsample/downsample.0/Conv" in names


def test_nn_sequential_classes_work_with_the_pytorch_tools(tmp_path):
    # MobileNetV2's ConvBnRelu6 and Swin's patch embedding (with the Permute module) are
    # nn.Sequential classes: fx, export with a dynamic batch, compile, TorchScript, ONNX scopes
    import onnx

    mobilenet = build_module(load_spec(ROOT / "specs/mobilenet_v2.yaml", overrides={"image_size": 32})).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = mobilenet(x)
        torch.testing.assert_close(torch.fx.symbolic_trace(mobilenet)(x), want)
        torch.testing.assert_close(torch.jit.script(mobilenet)(x), want)
        torch.testing.assert_close(torch.compile(mobilenet, fullgraph=True, backend="aot_eager")(x), want)
    batch = torch.export.Dim("batch", min=2, max=64)
    exported = torch.export.export(mobilenet, (x,), dynamic_shapes={"x": {0: batch}})
    torch.testing.assert_close(exported.module()(torch.randn(5, 3, 32, 32)).shape, torch.Size([5, 1000]))
    path = tmp_path / "mobilenet.onnx"
    torch.onnx.export(mobilenet, (x[:1],), str(path), dynamo=False)
    names = [n.name for n in onnx.load(str(path)).graph.node]
    assert "/features/features.1/conv/conv.0/conv.0.2/Clip" in names
    swin = _classes(generate_source(load_spec(ROOT / "specs/swin_t.yaml")))
    assert ast.unparse(swin["PatchEmbed"].bases[0]) == "nn.Sequential" and "Permute" in swin


def test_build_module_is_the_generated_source_executed():
    graph = load_spec(ROOT / "specs/resnet18.yaml")
    module = build_module(graph)
    assert type(module).__name__ == "Resnet18"
    assert type(module.layer2[0]).__name__ == "BasicDownsample"
    assert [n for n, _ in module.named_modules()][:6] == ["", "conv1", "bn1", "layer1", "layer1.0", "layer1.0.conv1"]


def test_long_parenthesised_expression_stays_an_expression_when_split():
    from archc.lowering.pyformat import split_statement

    long_name = "a_rather_long_variable_name_for_the_line_splitter"
    text = f"y = 1.0 / ({long_name} ** ({long_name} / 64 + {long_name} * 3 - {long_name}))"
    lines = split_statement(text, "")
    assert len(lines) > 1  # split (operators are not split points, so lines may stay long)
    scope = {long_name: 2.0}
    exec(text, {}, want := dict(scope))
    exec("\n".join(lines), {}, got := dict(scope))
    assert got["y"] == want["y"] and isinstance(got["y"], float)


def test_block_whose_result_is_its_input_still_generates_valid_code():
    # found by tools/fuzz.py: 'else: x' on the block's last node leaves its other nodes dead
    graph = loads_spec("""
inputs: {x: [N, 8, 8, 8]}
blocks:
  basic:
    params: {planes: null}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 3, padding: 1}
      - {name: proj, op: conv, in: x, out_channels: planes, kernel_size: 1, if: "channels(x) != planes", else: x}
nodes:
  - {name: layer1, block: basic, planes: 8}
  - {name: layer2, block: basic, planes: 16}
""")
    module = build_module(graph, seed=0)
    assert module(torch.randn(2, 8, 8, 8)).shape == (2, 16, 8, 8)


def test_long_parenthesised_lambda_stays_a_lambda_when_split():
    from archc.lowering.pyformat import split_statement

    text = ("y = (lambda t, s: t.reshape(tuple(s)) + t.reshape(tuple(s)) * 2 + t.reshape(tuple(s)) * 3)"
            "(x_input_tensor_with_a_long_name, shape_with_a_long_name)")
    lines = split_statement(text, "")
    scope = {"x_input_tensor_with_a_long_name": torch.arange(4.0), "shape_with_a_long_name": [2, 2]}
    exec("\n".join(lines), {}, got := dict(scope))
    assert torch.equal(got["y"], torch.arange(4.0).reshape(2, 2) * 6)


def test_magic_comma_inside_a_short_argument_list_explodes_it_as_ruff_does():
    # found transcribing ConvNeXt: a Sequential of two blocks (written with a magic comma) as the
    # second argument of add_module fitted on one line inside the split call, which ruff rewrites
    import subprocess
    import sys

    from archc.lowering.pyformat import split_statement

    text = 'self.add_module("5", nn.Sequential(Cnblock(dim=32), Cnblock(dim=32),))'
    lines = split_statement(text, "        ")
    source = "class A:\n    def f(self):\n" + "\n".join(lines) + "\n"
    formatted = subprocess.run([sys.executable, "-m", "ruff", "format", "-"], input=source, capture_output=True,
                               text=True, check=True).stdout
    assert source == formatted
    assert "            nn.Sequential(" in lines


def test_split_and_causal_mask_trace_with_torch_fx():
    # found transcribing nanoGPT's attention: tuple(torch.split(...)) and torch.ones(S, T) stopped
    # torch.fx.symbolic_trace (it traces an unpacking and a tensor's methods, not an iteration or
    # a factory given traced sizes)
    graph = loads_spec("""
inputs: {x: [N, S, 12]}
example_dims: {S: 5}
nodes:
  - {name: qkv, op: split, sizes: 4, dim: 2}
  - {name: kt, op: permute, in: "qkv:1", perm: [0, 2, 1]}
  - {name: scores, op: matmul, in: ["qkv:0", kt]}
  - {name: masked, op: causal_mask}
  - {name: att, op: softmax}
  - {name: y, op: matmul, in: [att, "qkv:2"]}
""")
    module = build_module(graph, seed=0).eval()
    x = torch.randn(2, 5, 12)
    traced = torch.fx.symbolic_trace(module)
    torch.testing.assert_close(traced(x), module(x))
    q, k, v = x.split(4, dim=2)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
    torch.testing.assert_close(module(x), want)
    torch.testing.assert_close(torch.jit.script(module)(x), want)


def test_sequential_block_holding_a_repeat_group_is_an_nn_sequential():
    # found transcribing ConvNeXt: features = nn.Sequential(stem, nn.Sequential(*blocks), downsample)
    # was a plain class reaching its children by getattr(self, "0")
    from archc.lowering.torch import generate_source

    graph = loads_spec("""
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
      - {block: unit, repeat: 2}
      - {op: relu}
nodes:
  - {name: features, block: features}
""")
    source = generate_source(graph)
    assert "class Features(nn.Sequential):" in source and "getattr(" not in source
    module = build_module(graph, seed=0)
    assert list(module.state_dict()) == ["features.0.weight", "features.0.bias", "features.1.0.conv.weight",
                                         "features.1.0.conv.bias", "features.1.1.conv.weight",
                                         "features.1.1.conv.bias"]
    assert isinstance(module.features[1], torch.nn.Sequential) and len(module.features) == 3
    x = torch.randn(2, 3, 8, 8)
    f = module.features
    want = torch.relu(f[1][1](f[1][0](f[0](x))))
    torch.testing.assert_close(module(x), want)
    with torch.device("meta"):
        empty = type(module)()
    empty.to_empty(device="cpu")
    for block in empty.block_instances():
        block.reset_parameters()
    assert torch.isfinite(empty(x)).all()


LIVE_IN_BLOCKS = """
params: {num_classes: 10, width: 8}
inputs: {x: [N, 3, 8, 8]}
blocks:
  head:
    sequential: true
    nodes:
      - {op: flatten}
      - {op: dropout, p: 0.1}
      - {op: linear, out_features: num_classes}
  outer:                           # the parameter is handed down through a class that does not read it
    nodes:
      - {name: pool, op: global_avgpool}
      - {name: classifier, block: head}
  shadow:                          # its own num_classes: the model's does not reach it
    params: {num_classes: 3}
    nodes:
      - {name: pool, op: global_avgpool}
      - {name: flat, op: flatten}
      - {name: fc, op: linear, out_features: num_classes}
nodes:
  - {name: conv, op: conv, out_channels: width, kernel_size: 3, padding: 1}
  - {name: top, block: outer}
  - {name: side, block: shadow, in: conv}
outputs: [top, side]
"""


def test_a_model_parameter_read_inside_block_classes_is_a_run_time_argument():
    # found transcribing ConvNeXt and MobileNetV3: torchvision's classifier is an nn.Sequential
    # block, and num_classes was fixed in the file (Convnext(num_classes=5) raised)
    from archc.lowering.torch import generate_source

    source = generate_source(loads_spec(LIVE_IN_BLOCKS))
    assert "# run-time arguments: num_classes; the others are fixed in this file" in source
    assert "self.classifier = Head(num_classes=num_classes)" in source
    assert "self.top = Outer(num_classes=num_classes)" in source
    assert "nn.Linear(8, num_classes, bias=True)" in source and "nn.Linear(8, num_classes" in source
    assert "class Shadow(nn.Module):" in source and "Shadow()" in source  # its own default: 3
    scope: dict = {}
    exec(compile(source, "generated.py", "exec"), scope)
    with torch.device("meta"):
        model = scope["Model"](num_classes=5)
        out, side = model(torch.empty(2, 3, 8, 8))
    assert out.shape == (2, 5) and side.shape == (2, 3)
    with pytest.raises(ValueError, match="width=16: this file was generated for width=8"):
        scope["Model"](width=16)


def test_a_model_parameter_that_shapes_later_layers_stays_fixed():
    text = LIVE_IN_BLOCKS.replace("      - {op: linear, out_features: num_classes}",
                                  "      - {op: linear, out_features: num_classes}\n"
                                  "      - {op: linear, out_features: 4}")
    from archc.lowering.torch import generate_source

    source = generate_source(loads_spec(text))
    assert "run-time arguments" not in source and '"num_classes": (num_classes, 10)' in source


def test_an_argument_the_class_cannot_compute_is_named_after_the_spec_s_let():
    # found transcribing LinkNet: a decoder's `let: {mid: "channels(x) // 4"}` became `conv1_1=16`
    from archc.lowering.torch import generate_source

    source = generate_source(loads_spec("""
inputs: {x: [N, 16, 8, 8]}
blocks:
  decoder:
    params: {out: null}
    let: {mid: "channels(x) // 4"}
    nodes:
      - {name: conv1, op: conv, out_channels: mid, kernel_size: 1}
      - {name: conv2, op: conv, out_channels: out, kernel_size: 1}
nodes:
  - {name: d1, block: decoder, out: 8}
  - {name: d2, block: decoder, out: 8}
"""))
    assert "def __init__(self, in_channels: int, mid: int, out: int) -> None:" in source
    assert "self.d1 = Decoder(in_channels=16, mid=4, out=8)" in source
    assert "self.d2 = Decoder(in_channels=8, mid=2, out=8)" in source


def test_parallel_repetitions_are_an_nn_module_list_each_reading_the_same_input(run_archc, tmp_path):
    from test_spec_language import PARALLEL

    spec = tmp_path / "aspp.yaml"
    spec.write_text(PARALLEL)
    run_archc("build", str(spec), "--target", "torch", "-o", str(tmp_path / "aspp.py"), check=True)
    source = (tmp_path / "aspp.py").read_text()
    assert "self.aspp = nn.ModuleList(" in source
    assert all(f"aspp_{i} = self.aspp[{i}](stem)" in source for i in range(3))
    verified = run_archc("verify", str(spec), check=True)
    assert "PASSED" in verified.stdout


ALIASED = """
archc: 1
name: aliased
inputs:
  x: [N, 4]
blocks:
  wrap:
    inputs: [y]
    nodes:
      - {name: l, op: linear, out_features: 4}
  pair:
    inputs: [a, b, c]
    nodes:
      - {name: fa, op: linear, in: a, out_features: 4}
      - {name: fc, op: linear, in: c, out_features: 4}
      - {name: t, block: wrap, in: c}
      - {name: s, op: add, in: [fa, fc, t, b]}
nodes:
  - {name: h, op: linear, out_features: 4}
  - {name: g, op: tanh, in: h}
  - {name: p, block: pair, in: [x, h, h]}
  - {name: q, block: pair, in: [p, h, g]}
"""


def test_a_block_input_given_a_tensor_another_one_holds_is_read_by_its_own_name(tmp_path):
    # p passes h as both b and c: the class must read c where the spec says c (q passes them apart)
    from ops_harness import run_onnx

    graph = loads_spec(ALIASED, "aliased.yaml")
    source = generate_source(graph)
    assert "fc = self.fc(c)" in source and "t = self.t(c)" in source and "(b)" not in source
    assert source.count("class Pair") == 1
    import numpy as np

    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = build_module(graph).eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, run_onnx(graph, {"x": x})[0], rtol=1e-5, atol=1e-6)


DEEP_TIES = """
params: {layers: 3}
inputs: {x: [N, 6, 16]}
blocks:
  encoder_layer:
    nodes:
      - {name: self_attention_module, op: multi_head_attention, num_heads: 2, in: [x, x, x]}
      - {name: add, op: add, in: [x, self_attention_module]}
  stack:
    params: {tied: 16}
    nodes:
      - {name: transformer_layers, block: encoder_layer, repeat: layers, tie: transformer_layers.0}
      - {name: head, op: linear, out_features: tied}
nodes:
  - {name: encoder, block: stack, tied: 12}
  - {name: second, block: stack, tied: 10}
"""


def test_a_tie_too_long_for_a_line_reads_its_tensor_into_a_local_first(tmp_path):
    # ALBERT transcribed: `self.transformer_layers[1].self_attention_module.out_proj.weight = self...` is over
    # 88 characters, which ruff splits inside a subscript; the local is named apart from the argument `tied`
    graph = loads_spec(DEEP_TIES)
    source = generate_source(graph)
    stack = ast.get_source_segment(source, _classes(source)["Stack"])
    assert "        tied_1 = self.transformer_layers[0].self_attention_module.out_proj.weight\n" \
           "        self.transformer_layers[1].self_attention_module.out_proj.weight = tied_1\n" in stack, stack
    path = tmp_path / "deep_ties.py"
    path.write_text(source)
    _assert_ruff_formatted(path)
    model = _import(path, "deep_ties").Model()
    assert model(torch.randn(2, 6, 16)).shape == (2, 6, 10)
    layers = model.encoder.transformer_layers
    assert all(layers[k].self_attention_module.out_proj.weight is layers[0].self_attention_module.out_proj.weight
               for k in (1, 2))
    with torch.device("meta"):
        empty = module_class(graph)()
    empty.to_empty(device="cpu")
    for instance in empty.block_instances():
        instance.reset_parameters()
    layers = empty.encoder.transformer_layers
    assert layers[2].self_attention_module.in_proj_weight is layers[0].self_attention_module.in_proj_weight


VARIADIC_READ_ONE_BY_ONE = """
inputs: {x: [N, 8], y: [N, 8], z: [N, 8]}
blocks:
  sum_rest:
    inputs: [x, rest...]
    nodes:
      - {name: fc, op: linear, out_features: 8, in: x}
      - {name: first, op: identity, in: rest}
      - {name: add, op: add, in: [fc, first]}
  cat_rest:
    inputs: [x, rest...]
    nodes:
      - {name: cat, op: concat, axis: 1, in: [x, rest]}
nodes:
  - {name: a, block: sum_rest, in: [x, y]}
  - {name: b, block: cat_rest, in: [a, y, z]}
"""


def test_a_variadic_input_read_by_an_op_of_fixed_inputs_is_read_by_index(tmp_path, run_archc):
    # a T5 transcription: `position_bias = *pb` (a SyntaxError) and `add = fc + *rest`; a concat still reads
    # the list whole
    source = generate_source(loads_spec(VARIADIC_READ_ONE_BY_ONE))
    assert "first = rest[0]" in source and "add = fc + first" in source, source
    # (as a sum of lists: TorchScript cannot size [x, *rest])
    assert "torch.cat([x] + rest, 1)" in source or "torch.cat([x] + rest, dim=1)" in source, source
    spec = tmp_path / "variadic.yaml"
    spec.write_text(VARIADIC_READ_ONE_BY_ONE)
    assert "PASSED" in run_archc("verify", str(spec), check=True).stdout


# -- a user's WaveNet and DPN specs (long sums, an unread block output, a variadic block input) ----

_WAVENET = """
archc: 1
name: small_wavenet
inputs: {x: [N, 8, 16]}
blocks:
  residual_glu_layer_with_a_long_name:
    params: {dilation: 1}
    nodes:
      - {name: conv, op: conv, out_channels: 16, kernel_size: 3, padding: dilation, dilation: dilation}
      - {name: halves, op: split, sizes: 8, dim: 1}
      - {name: gated, op: mul, in: ["halves:0", "halves:1"]}
      - {name: skip_conv, op: conv, in: gated, out_channels: 8, kernel_size: 1}
      - {name: out_conv, op: conv, in: gated, out_channels: 8, kernel_size: 1}
      - {name: add, op: add, in: [out_conv, x]}
      - {name: out, op: mul, value: 0.5}
    outputs: [out, skip_conv]
nodes:
  - {name: residual_glu_layers, block: residual_glu_layer_with_a_long_name, repeat: 6,
     dilation: "2 ** (index % 3)"}
  - {name: skips, op: add, in: ["residual_glu_layers[*]:skip_conv"]}
"""


def _ruff(*args: str, source: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "generated.py"
    path.write_text(source)
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    return subprocess.run([ruff, *args, "--no-cache", "--isolated", str(path)], capture_output=True, text=True)


def test_a_long_sum_of_block_outputs_is_wrapped_one_operand_a_line_as_ruff_formats_it(tmp_path):
    source = generate_source(loads_spec(_WAVENET))
    lines = source.splitlines()
    start = lines.index("        skips = (")
    assert lines[start + 1:start + 8] == [
        "            residual_glu_layers_0_1", "            + residual_glu_layers_1_1",
        "            + residual_glu_layers_2_1", "            + residual_glu_layers_3_1",
        "            + residual_glu_layers_4_1", "            + residual_glu_layers_5", "        )"]
    check = _ruff("format", "--check", "--diff", source=source, tmp_path=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert max(map(len, lines)) <= 100


_CHAINS = [  # (statement, its indent): each split as ruff format splits it
    ("skips = conv_layers_0_0 + conv_layers_1_0 + conv_layers_2_0 + conv_layers_3_0 + conv_layers_4_0", " " * 8),
    ("y = conv_layers_0_0 + conv_layers_1_0 + conv_layers_2_0 + conv_layers_3_0 + conv_layers_4_0_x", " " * 4),
    ("y = (aaaaaaaaaaaaaaaaaaaaaaaaaa + bbbbbbbbbbbbbbbbbbbbbbbbbbbbb) - cccccccccccccccccccccccccccc"
     " * dddddddddddddddddddddd + eeeeeeeeeeeeeeeeeeeee", " " * 8),
    ("product = first_factor_name * second_factor_name * third_factor_name * fourth_factor * scale",
     " " * 8),
    ("return aaaaaaaaaaaaaaaaaaaaaaaaaa * bbbbbbbbbbbbbbbbbbbbbbbbbbbbb + cccccccccccccccccccccccccccc"
     " * dddddddddddddddddddddd * e", " " * 8),
    ("x_in = torch.cat([xxxxxxxxxxxxxxxxxxxxxxx] + rest_of_the_features + [yyyyyyyyyyyyyyyyyyyyyy, zz],"
     " dim=1)", " " * 8),
    ("x_in = [xxxxxxxxxxxxxxxxxxxxxxx] + rest_of_the_features + [yyyyyyyyyyyyyyyyyyyyyy, zzzzzz, www]",
     " " * 8),
    ("y = scale_with_a_long_name * torch.some_function(aaaaaaaaaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbb, c)",
     " " * 8),
    ("y = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", " " * 8),
    ("y = -aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa * -bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb + x.y(1) * -ccccccccccc",
     " " * 8),
    # a weight-normed conv's reset: split at ** (its last operand no bracket, its first ending in empty
    # brackets), or inside the subscript where the first operand is too long (never its empty brackets)
    ('bound = getattr(self, "0").parametrizations.weight.original1.shape[1:].numel() ** -0.5', " " * 8),
    ("bound = self.dilated_causal_convo.parametrizations.weight.original1.shape[1:].numel() ** -0.5", " " * 8),
    ("y = scale_with_a_long_name * torch.some_function_of_a_long_name_too(aaaaaaaaaaaaaaaaaaaaa, b) ** 2",
     " " * 8),
]


@pytest.mark.parametrize("text,indent", _CHAINS)
def test_long_binary_operator_chains_split_as_ruff_format_splits_them(text, indent):
    from archc.lowering.pyformat import split_statement

    frame = "".join(" " * depth + "if True:\n" for depth in range(0, len(indent), 4))
    mine = frame + "\n".join(split_statement(text, indent)) + "\n"
    formatted = subprocess.run([sys.executable, "-m", "ruff", "format", "--isolated", "-"],
                               input=frame + indent + text + "\n", capture_output=True, text=True, check=True).stdout
    assert mine == formatted
    assert len(mine.splitlines()) > len(indent) // 4 + 1  # (each case is too long for one line)


def test_an_unread_block_output_is_not_computed_and_the_module_tree_stays(tmp_path):
    graph = loads_spec(_WAVENET)
    source = generate_source(graph)
    check = _ruff("check", "--select", "F841", source=source, tmp_path=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    module = build_module(graph, seed=0).eval()
    # the first five layers share the class; the last one's forward returns its skip alone
    assert [type(m).__name__ for m in module.residual_glu_layers] == ["ResidualGluLayerWithALongName"] * 5 + [
        "ResidualGluLayerWithALongName2"]
    last = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)
                and n.name == "ResidualGluLayerWithALongName2")
    forward = next(f for f in last.body if isinstance(f, ast.FunctionDef) and f.name == "forward")
    computed = [t.id for s in forward.body if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name)]
    assert "out_conv" not in computed and "add" not in computed and "out" not in computed
    assert ast.unparse(forward.body[-1]) == "return skip_conv"
    keys = [k for k in module.state_dict() if k.startswith("residual_glu_layers.5.")]
    assert keys == [f"residual_glu_layers.5.{m}.{p}" for m in ("conv", "skip_conv", "out_conv")
                    for p in ("weight", "bias")]
    from ops_harness import feeds_for, randomize, run_onnx
    graph = randomize(graph, 0)
    feeds = feeds_for(graph, {"N": 2})
    module = build_module(graph).eval()
    with torch.no_grad():
        got = module(torch.from_numpy(feeds["x"]))
    torch.testing.assert_close(got.numpy(), run_onnx(graph, feeds)[0], rtol=1e-4, atol=1e-5)


_DUAL_PATH = """
archc: 1
name: small_dual_path
inputs: {x: [N, 8, 4, 4]}
blocks:
  dual_path:
    params: {block_type: normal}
    inputs: [x, rest...]
    nodes:
      - {name: x_in, op: concat, in: [x, rest], if: "block_type == 'normal'", else: x}
      - {name: c1x1, op: conv, in: x_in, out_channels: 12, kernel_size: 1}
      - {name: out, op: split, sizes: [8, 4]}
      - {name: resid, op: add, in: [x, "out:0"]}
      - {name: dense, op: concat, in: [rest, "out:1"], if: "block_type == 'normal'", else: "out:1"}
    outputs: [resid, dense]
nodes:
  - {name: proj, block: dual_path, block_type: proj}
  - {name: normal, block: dual_path, in: ["proj:0", "proj:1"]}
  - {name: cat, op: concat, in: ["normal:0", "normal:1"]}
"""


def test_a_variadic_block_input_concatenated_with_others_is_a_sum_of_lists_that_scripts():
    # torch.cat([x, *rest]) cannot be scripted ("cannot statically infer the expected size of a list")
    from ops_harness import feeds_for, randomize, run_onnx

    graph = randomize(loads_spec(_DUAL_PATH), 0)
    source = generate_source(graph)
    assert "torch.cat([x] + rest, dim=1)" in source and "torch.cat(rest + [out_1], dim=1)" in source
    assert "*rest" not in source
    module = build_module(graph).eval()
    feeds = feeds_for(graph, {"N": 2})
    x = torch.from_numpy(feeds["x"])
    want = run_onnx(graph, feeds)[0]
    with torch.no_grad():
        torch.testing.assert_close(module(x).numpy(), want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.jit.script(module)(x).numpy(), want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.fx.symbolic_trace(module)(x).numpy(), want, rtol=1e-4, atol=1e-5)
        exported = torch.export.export(module, (x,))
        torch.testing.assert_close(exported.module()(x).numpy(), want, rtol=1e-4, atol=1e-5)


_CAUSAL_CROP = """
archc: 1
name: causal
inputs: {x: [N, 4, 16]}
blocks:
  layer:
    params: {dilation: 1}
    nodes:
      - {name: conv, op: conv, out_channels: 4, kernel_size: 2, padding: dilation, dilation: dilation}
      - {name: causal, op: slice, dim: 2, start: 0, end: "-dilation"}
nodes:
  - {name: a, block: layer, dilation: 1}
  - {name: b, block: layer, dilation: 2}
"""


def test_a_negative_attribute_written_from_a_parameter_keeps_its_sign():
    """A causal conv's crop `end: "-dilation"`: its text shows `-` before the hole's digits, so the
    hole may not take the expression `-dilation` (the class wrote `-self.causal_1` with
    `self.causal_1 = -dilation`: a crop of +1, a build exiting 0 with a module of the wrong size)."""
    from ops_harness import feeds_for, randomize, run_onnx

    graph = randomize(loads_spec(_CAUSAL_CROP), 0)
    source = generate_source(graph)
    assert "-(-" not in source and "= -dilation" not in source, source
    feeds = feeds_for(graph, {"N": 2})
    with torch.no_grad():
        got = build_module(graph).eval()(torch.from_numpy(feeds["x"]))
    assert tuple(got.shape) == (2, 4, 16)
    torch.testing.assert_close(got.numpy(), run_onnx(graph, feeds)[0], rtol=1e-4, atol=1e-5)


# -- a width a block class writes as a parameter's expression: only where it follows it ----------

def _block_spec(x: str, param: str, default: int, nodes: str) -> str:
    """A model of one block ``blk`` taking ``param`` (default ``default``), given the model's ``v``."""
    return f"""archc: 1
name: coincidence
params: {{v: 8}}
inputs: {{x: {x}}}
blocks:
  blk:
    params: {{{param}: {default}}}
    nodes:
{nodes}
nodes:
  - {{name: a, block: blk, {param}: v}}
"""


_COINCIDENCES = {  # (input, block parameter, its default, nodes, other values, written width)
    # the BatchNorm after a conv of 8 channels whose groups happen to be 8 (bn_groups.yaml)
    "batchnorm_groups": ("[N, 8, 4, 4]", "groups", 1, """\
      - {name: conv, op: conv, out_channels: 8, kernel_size: 3, padding: 1, groups: groups}
      - {name: bn, op: batchnorm}""", (1, 2, 4), "nn.BatchNorm2d(8)"),
    "groupnorm_groups": ("[N, 8, 4, 4]", "groups", 1, """\
      - {name: conv, op: conv, out_channels: 8, kernel_size: 3, padding: 1, groups: groups}
      - {name: gn, op: groupnorm, num_groups: 2}""", (1, 2, 4), "nn.GroupNorm(2, 8)"),
    # a length of 8 after a 1-wide conv whose dilation happens to be 8: read by a linear, a layernorm
    "linear_dilation": ("[N, 4, 8]", "dil", 2, """\
      - {name: conv, op: conv, out_channels: 4, kernel_size: 1, dilation: dil}
      - {name: fc, op: linear, out_features: 3}""", (1, 2, 3), "nn.Linear(8, 3,"),
    "layernorm_dilation": ("[N, 4, 8]", "dil", 2, """\
      - {name: conv, op: conv, out_channels: 4, kernel_size: 1, dilation: dil}
      - {name: ln, op: layernorm}""", (1, 2, 3), "nn.LayerNorm((8,))"),
    # ...and the width that does follow the parameter: written as it
    "batchnorm_width": ("[N, 8, 4, 4]", "width", 4, """\
      - {name: conv, op: conv, out_channels: width, kernel_size: 3, padding: 1}
      - {name: bn, op: batchnorm}""", (2, 4, 16), "nn.BatchNorm2d(width)"),
    "layernorm_width": ("[N, 4, 8]", "width", 4, """\
      - {name: fc, op: linear, out_features: width}
      - {name: ln, op: layernorm}
      - {name: fc2, op: linear, out_features: 3}""", (2, 4, 16), "nn.Linear(width, 3,"),
}


@pytest.mark.parametrize("case", sorted(_COINCIDENCES))
def test_a_block_class_writes_a_width_from_a_parameter_only_where_the_width_follows_it(case, tmp_path):
    x_shape, param, default, nodes, others, written = _COINCIDENCES[case]
    text = _block_spec(x_shape, param, default, nodes)
    source = generate_source(loads_spec(text))
    assert written in source, source
    path = tmp_path / f"{case}.py"
    path.write_text(source)
    blk = _import(path, case).Blk
    x = torch.randn(2, *[4 if d == "N" else int(d) for d in x_shape.strip("[]").split(", ")[1:]])
    for value in (default, *others):  # the class at its default and at other values: the spec built so
        ours = blk() if value == default else blk(**{param: value})
        reference = build_module(loads_spec(text, overrides={"v": value}), seed=0).a
        assert {k: t.shape for k, t in ours.state_dict().items()} == {
            k: t.shape for k, t in reference.state_dict().items()}, value
        ours.load_state_dict(reference.state_dict())
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x))


def test_hourglass_residual_class_takes_its_input_width_not_half_its_output(tmp_path):
    # res1 (64 -> 128) and res3 (128 -> 256) have in_channels == out // 2, a coincidence: conv1 reads
    # the block's input, and the class must serve ResidualSkip(in_channels=128, out=512)
    source = generate_source(load_spec(ROOT / "specs/hourglass.yaml"))
    cls = _classes(source)["ResidualSkip"]
    conv1 = next(ast.unparse(n.value) for n in ast.walk(cls) if isinstance(n, ast.Assign)
                 and ast.unparse(n.targets[0]) == "self.conv1")
    assert conv1.startswith("nn.Conv2d(in_channels, out // 2,"), conv1
    path = tmp_path / "hourglass_default.py"
    path.write_text(source)
    block = _import(path, "hourglass_default").ResidualSkip(in_channels=128, out=512)
    assert block(torch.randn(1, 128, 8, 8)).shape == (1, 512, 8, 8)


# -- a weight-normed conv's reset, as ruff formats it ------------------------------------------------

_WEIGHT_NORMED = {
    # (the transcription of a TCN: the reset's bound = getattr(self, "0")....numel() ** -0.5 is 94 columns)
    "sequential": """archc: 1
name: wn_seq
inputs: {x: [N, 4, 16]}
blocks:
  net:
    sequential: true
    params: {pad: 2}
    nodes:
      - {op: conv, out_channels: 8, kernel_size: 3, padding: pad, weight_norm: true}
      - {op: slice, dim: 2, end: -pad}
nodes:
  - {name: net, block: net}
""",
    # nested sequential blocks of long names, and a named conv whose access fills the line
    "nested": """archc: 1
name: wn_nested_temporal_network
inputs: {x: [N, 4, 64]}
blocks:
  temporal_convolution_unit:
    sequential: true
    params: {padding_amount: 2, dilation_rate: 1}
    nodes:
      - {op: conv, out_channels: 8, kernel_size: 3, padding: padding_amount, dilation: dilation_rate,
         weight_norm: true}
      - {op: slice, dim: 2, end: -padding_amount}
      - {op: relu}
  residual_temporal_stage:
    sequential: true
    params: {dilation_rate: 1}
    nodes:
      - {name: first_convolution_unit, block: temporal_convolution_unit, padding_amount: 2 * dilation_rate,
         dilation_rate: dilation_rate}
      - {name: second_convolution_unit, block: temporal_convolution_unit, padding_amount: 2 * dilation_rate,
         dilation_rate: dilation_rate}
  temporal_block_with_named_layers:
    params: {pad: 2}
    nodes:
      - {name: dilated_causal_convo, op: conv, out_channels: 8, kernel_size: 3, padding: pad,
         weight_norm: true}
      - {name: chomp, op: slice, dim: 2, end: -pad}
      - {name: dilated_causal_convolution_lay, op: conv, out_channels: 8, kernel_size: 3, padding: pad,
         weight_norm: true}
      - {op: slice, dim: 2, end: -pad}
  temporal_network_encoder:
    sequential: true
    nodes:
      - {name: stage_with_dilation_one, block: residual_temporal_stage, dilation_rate: 1}
      - {name: stage_with_dilation_two, block: residual_temporal_stage, dilation_rate: 2}
      - {name: named_layers, block: temporal_block_with_named_layers}
nodes:
  - {name: temporal_network_encoder_module, block: temporal_network_encoder}
""",
}


@pytest.mark.parametrize("case", sorted(_WEIGHT_NORMED))
def test_a_weight_normed_conv_reset_is_formatted_as_ruff_formats_it(case, tmp_path):
    source = generate_source(loads_spec(_WEIGHT_NORMED[case]))
    assert ".numel()\n" in source and "** -0.5\n" in source  # (a bound split at its operator)
    path = tmp_path / f"wn_{case}.py"
    path.write_text(source)
    _assert_ruff_formatted(path)
    module = _import(path, f"wn_{case}")
    model = next(c for c in vars(module).values() if isinstance(c, type) and c.__module__ == f"wn_{case}"
                 and hasattr(c, "block_instances"))()
    for block in model.block_instances():  # the split statements run
        block.reset_parameters()


# -- long names: assignments and returns as ruff formats them ------------------------------------------

_ASSIGNMENTS = [  # (statement at 8 columns, what it checks); each split as ruff format splits it
    ("self." + "s" * 44 + " = nn.BatchNorm1d(16, eps=1e-05, momentum=0.1)", "own split: `= nn.BatchNorm1d(` fits"),
    ("self." + "s" * 50 + " = nn.BatchNorm1d(16, eps=1e-05, momentum=0.1)", "parenthesized: it does not"),
    ("self." + "s" * 40 + " = nn.utils.parametrizations.weight_norm(nn.Conv1d(16, hidden_channels_of_the_block"
     " * expansion_factor, kernel_size=3, stride=1, padding=1, bias=True))", "parenthesized, split inside"),
    ("a" * 60 + " = " + "b" * 20 + "(x, " + "y" * 72 + ")", "own split: in parentheses a line is too long"),
    ("self." + "s" * 72 + " = nn.utils.parametrizations.weight_norm(nn.Conv1d(16, 16, kernel_size=3))",
     "own split: `= (` is too long"),
    ("c" * 42 + " = " + "d" * 36 + "[:, :, 0:-2:1]", "a subscript"),
    ("c" * 42 + " = self." + "d" * 25 + "(x)[0]", "a subscript of a call"),
    ("c" * 49 + ' = getattr(self, "0").' + "d" * 30 + ".xx", "an attribute: split at getattr("),
    ("c" * 49 + " = self." + "d" * 30, "a name without brackets that fits in parentheses"),
    ("c" * 49 + " = self." + "d" * 80, "... and one that does not"),
    ("c" * 40 + ", " + "c" * 20 + " = self." + "d" * 20 + "(x)", "two targets, the value parenthesized"),
    ("c" * 40 + ", " + "c" * 40 + " = self." + "d" * 20 + "(x)", "two targets split"),
    ("return " + "c" * 40 + ", " + "c" * 40, "a returned tuple, one name a line"),
    ("return " + "c" * 74, "a returned name"),
    ("return self." + "c" * 74 + "(x)", "a returned call: never parenthesized"),
    ("x = self." + "c" * 69 + "(y)", "`x = self.c(` exactly 88 columns"),
    ("x = self." + "c" * 70 + "(y)", "... and 89"),
    ("c" * 48 + " = " + "d" * 40 + ' * getattr(self, "' + "e" * 60 + '")',
     "an operator before a call whose head does not fit: split at the operator"),
    ('c = getattr(self, "' + "name_" * 20 + '")(x)', "a string too long for its line: its parts, one a line"),
    ('self.add_module("' + "unit_" * 20 + '", nn.Linear(10, 10, bias=True))', "... an argument of a call"),
    ('c = self.heads["' + "head_" * 20 + '"](x)', "... a subscript"),
    ('classes["' + "block_" * 16 + '"] = [Block]', "... a key, split first"),
    ("classes['" + 'a "quoted" block ' * 6 + "'] = [Block]", "... in single quotes, its parts in ruff's"),
    ('self.d = nn.ModuleDict({"' + "key_" * 22 + '": nn.ReLU(), "b": nn.ReLU()})', "... a dict's key"),
]


@pytest.mark.parametrize("text,what", _ASSIGNMENTS, ids=[what for _, what in _ASSIGNMENTS])
def test_long_assignments_and_returns_split_as_ruff_format_splits_them(text, what):
    from archc.lowering.pyformat import split_statement

    indent, frame = " " * 8, "if True:\n    if True:\n"
    mine = frame + "\n".join(split_statement(text, indent)) + "\n"
    # ruff leaves it as it stands (a lone argument split over lines keeps the comma archc writes after
    # it: ruff writes none from one line, and keeps one that is there)
    formatted = subprocess.run([sys.executable, "-m", "ruff", "format", "--isolated", "-"],
                               input=mine, capture_output=True, text=True, check=True).stdout
    assert mine == formatted
    assert len(indent + text) > 88  # (each case is too long for one line)


# names a generated spec never takes: nn.Module's attributes, Python's words, YAML's booleans and nulls,
# and what the spec itself reads (the input's symbolic dim, the input, `prev`, `index`)
_TAKEN_NAMES = frozenset(dir(torch.nn.Module())) | frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "N", "x", "prev", "index"}


def _long_named_spec(lengths: tuple[int, ...], depth: int, weight_norm: bool = True) -> str:
    """A spec of nested blocks (``depth`` levels) whose nodes, block instances, blocks and parameters
    have names of the given lengths (cycled; each unique, so a very short one may take a letter more):
    weight-normed convs, a batchnorm, a let, a parameter read in forward, a sum, a concat, a roll by a
    model parameter the file fixes (checked at construction), learned tokens and positions (bare
    parameters of the model), a sequential block (reached as getattr(self, "0")) repeated in series, a
    block of two outputs, a module list, a block repeated with its weights tied to the first
    repetition's, a linear, a tied one and a head block whose width is the model's argument, handed
    down to it."""
    counter = itertools.count()
    words = ["dilated", "causal", "convolution", "layer", "temporal", "residual", "branch"]

    def named(prefix: str) -> str:
        while True:
            k = next(counter)
            length, tag = lengths[k % len(lengths)], ""
            while not tag or k:  # k in letters: a, b, ..., z, ba, ... (unique, never a digit first)
                tag, k = chr(ord("a") + k % 26) + tag, k // 26
            text = prefix
            for word in itertools.cycle(words):
                if len(text) >= length:
                    break
                text += "_" + word
            name = text[:max(length - len(tag), 0)].rstrip("_") + tag
            if name not in _TAKEN_NAMES:
                return name

    hidden, expansion, pad, width = named("hidden_channels"), named("expansion_factor"), named("padding"), named("width")
    unit, inner, shift = named("causal_unit"), named("temporal_block"), named("shift")
    conv, conv2, norm, total, joined, units, scale, scaled, rolled = (named(p) for p in (
        "conv", "conv_two", "norm", "sum", "cat", "unit", "scale", "scaled", "rolled"))
    normed = str(weight_norm).lower()
    blocks = f"""  {unit}:
    sequential: true
    params: {{{pad}: 2, {hidden}: 8}}
    nodes:
      - {{op: conv, out_channels: "{hidden} * 2", kernel_size: 1, padding: {pad}, weight_norm: {normed}}}
      - {{op: slice, dim: 2, end: "-2 * {pad}"}}
      - {{op: relu}}
  {inner}:
    params: {{{hidden}: 8, {expansion}: 2, {pad}: 1}}
    let: {{{width}: "{hidden} * {expansion}"}}
    nodes:
      - {{name: {conv}, op: conv, out_channels: {width}, kernel_size: 3, padding: {pad}, weight_norm: {normed}}}
      - {{name: {norm}, op: batchnorm}}
      - {{name: {conv2}, op: conv, out_channels: {width}, kernel_size: 3, padding: 1}}
      - {{name: {units}, block: {unit}, in: {conv2}, {hidden}: {hidden}, {pad}: 1}}
      - {{name: {total}, op: add, in: [{norm}, {conv2}]}}
      - {{name: {scale}, op: parameter, shape: [1, {width}, 1], init: ones}}
      - {{name: {scaled}, op: mul, in: [{total}, {scale}]}}
      - {{name: {rolled}, op: roll, in: {scaled}, shifts: [{shift}], dims: [2]}}
      - {{name: {joined}, op: concat, axis: 1, in: [{rolled}, {units}, {conv}]}}
    outputs: [{joined}, {conv2}]
"""
    block, output, second = inner, joined, conv2
    for _ in range(depth - 1):
        outer, first, then, both = named("outer_block"), named("first"), named("then"), named("both")
        blocks += f"""  {outer}:
    params: {{{hidden}: 8}}
    nodes:
      - {{name: {first}, block: {block}, {hidden}: {hidden}}}
      - {{name: {then}, block: {block}, in: "{first}:{output}", {hidden}: {hidden}}}
      - {{name: {both}, op: concat, axis: 1, in: ["{first}:{second}", "{then}:{second}", "{then}:{output}"]}}
    outputs: [{both}, "{then}:{second}"]
"""
        block, output, second = outer, both, both
    top, stack, listed, back, tied, classes, token, place, head, shared, ffn, layers = (named(p) for p in (
        "top", "stack", "listed", "back", "tied", "classes", "token", "position", "classifier", "shared",
        "feedforward", "layers"))
    blocks += f"""  {head}:
    nodes:
      - {{op: linear, out_features: {classes}}}
  {shared}:
    nodes:
      - {{name: {ffn}, op: linear, out_features: 10}}
      - {{op: relu}}
"""
    return f"""archc: 1
name: {named("long_named_network")}
params: {{{shift}: 1, {classes}: 10}}
inputs: {{x: [N, 4, 32]}}
blocks:
{blocks}nodes:
  - {{name: {token}, op: prepend_token, num_tokens: 2}}
  - {{name: {place}, op: position_embedding, max_len: 8}}
  - {{name: {stack}, block: {unit}, repeat: 2, {hidden}: 3}}
  - {{name: {top}, block: {block}}}
  - {{name: {named("pool")}, op: mean, in: "{top}:{output}", dims: [2]}}
  - {{name: {listed}.0, op: linear, out_features: 10}}
  - {{name: {listed}.1, op: linear, out_features: 10, in: {listed}.0}}
  - {{name: {layers}, block: {shared}, repeat: 3, tie: {layers}.0}}
  - {{name: {back}, op: linear, out_features: 10}}
  - {{name: {tied}, op: linear, out_features: 10, tie: {{weight: {back}.weight}}}}
  - {{name: {named("head")}, block: {head}}}
"""


def _name_lengths(depth: int) -> list[tuple[int, ...]]:
    """Name lengths to build at a nesting depth: every length a node or parameter name may have (1 to
    128) at depth 1, the limits' both sides and a sample deeper; then mixes of short and long."""
    every = range(1, MAX_NAME_LENGTH + 1) if depth == 1 else \
        sorted({*range(1, MAX_NAME_LENGTH + 1, 9), 32, 33, 48, 49, 64, 65, 85, 86, MAX_NAME_LENGTH})
    return [(n,) for n in every] + [(n, 129 - n, 33, 65, 7) for n in range(1, MAX_NAME_LENGTH + 1, 16)]


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_names_of_every_length_give_lines_of_at_most_100_columns_as_ruff_formats_them(depth, tmp_path):
    """Issue 13's limit holds whatever the spec's names: a name archc chooses (a local, a class, an
    argument) is shortened, a module's name (a state_dict key) is written as a string where it is too
    long for an attribute; every file as ruff formats it, and clean of ruff's classic rules."""
    for k, lengths in enumerate(_name_lengths(depth)):
        source = generate_source(loads_spec(_long_named_spec(lengths, depth)))
        long = [line for line in source.splitlines() if len(line) > MAX_LINE]
        assert not long, (lengths, long)
        (tmp_path / f"names_{k}.py").write_text(source)
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    check = subprocess.run([ruff, "format", "--check", "--diff", "--no-cache", "--isolated", str(tmp_path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-8000:] + check.stderr[-2000:]
    check = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--select", "E4,E7,E9,F,B006", str(tmp_path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-8000:] + check.stderr[-2000:]


_LONG_NAMES = {  # name lengths (cycled over the spec's names), depth of block nesting
    "1": ((1,), 1),
    "32": ((32,), 2),
    "33": ((33,), 2),
    "48-49": ((48, 49), 3),
    "64-65": ((64, 65), 2),
    "85": ((85,), 1),
    "128": ((MAX_NAME_LENGTH,), 3),
    "mixed-4": ((5, MAX_NAME_LENGTH, 33, 64, 49), 4),
}


@pytest.mark.parametrize("case", sorted(_LONG_NAMES))
def test_long_names_keep_every_state_dict_key_and_compute_what_onnxruntime_computes(case, tmp_path):
    from ops_harness import randomize, run_onnx

    lengths, depth = _LONG_NAMES[case]
    graph = randomize(loads_spec(_long_named_spec(lengths, depth)))
    path = tmp_path / f"long_{case.replace('-', '_')}.py"
    path.write_text(generate_source(graph))
    model = getattr(_import(path, path.stem), class_name_for(graph.name))().eval()
    # every module under the spec's name, however long: the graph's state_dict loads strictly
    model.load_state_dict(state_dict_from_graph(graph), strict=True)
    x = torch.randn(2, 4, 32)
    expected = run_onnx(graph, {"x": x.numpy()})[0]
    assert torch.allclose(model(x), torch.from_numpy(expected), rtol=1e-4, atol=1e-5)
    with torch.device("meta"):
        empty = type(model)()
    empty.to_empty(device="cpu")
    for block in empty.block_instances():  # every reset runs, the aliased ones too
        block.reset_parameters()
    assert torch.isfinite(empty.eval()(x)).all()


def test_a_model_of_the_longest_names_works_with_the_pytorch_tools():
    """``getattr(self, "...")`` with its name over lines is one string to fx, export and TorchScript."""
    graph = loads_spec(_long_named_spec((MAX_NAME_LENGTH, 40), 2, weight_norm=False))
    model = build_module(graph).eval()
    x = torch.randn(2, 4, 32)
    y = model(x)
    assert "getattr(\n" in generate_source(graph)
    assert torch.allclose(torch.fx.symbolic_trace(model)(x), y)
    assert torch.allclose(torch.export.export(model, (x,)).module()(x), y)
    assert torch.allclose(torch.jit.script(model)(x), y)


def test_long_names_read_as_a_person_would_shorten_them():
    source = generate_source(loads_spec(_long_named_spec((70,), 2)))
    # a local keeps its name's first and last words, the node's whole name in a comment above it
    assert "        # scaled_dilated_causal_convolution_layer_temporal_residual_branch_dilao\n" \
           "        scaled_dilated_causal_convolution_layer_dilao = (\n" in source
    # a module too long for an attribute is registered and read by its name, never renamed
    assert 'self.add_module(\n            "conv_dilated_causal_convolution_layer_temporal_residual_branch_' \
           'dilateh",\n' in source
    # a class's arguments (standing twice in a call) in 32 characters, its name in 48
    assert "hidden_channels_dilated_bra=hidden_channels_dilated_bra" in source
    assert "class TemporalBlockDilatedCausalConvolutionLayerBraf(nn.Module):" in source
    # a reset reads a long-named module through a local named after it
    assert '        conv = getattr(\n' in source and "        conv.parametrizations.weight.original0" in source


def test_names_that_would_hide_what_the_code_reads_are_written_with_an_underscore():
    """A block parameter named ``nn`` or ``int`` would hide torch.nn and the builtin in ``__init__``, a
    model parameter named ``value`` the check of the fixed parameters' loop variable, a node ``l`` is
    ambiguous (pycodestyle's E741): each is written with ``_`` after it, its module keeps its name."""
    text = """archc: 1
params: {value: 5, fixed_width: 4}
inputs: {x: [N, 4]}
blocks:
  b:
    params: {nn: 4, int: 2}
    nodes:
      - {name: l, op: linear, out_features: "nn * int"}
      - {op: relu}
nodes:
  - {name: a, block: b, nn: 3}
  - {name: c, block: b, nn: 5}
  - {name: wide, op: linear, out_features: fixed_width}
  - {name: head, op: linear, out_features: value}
"""
    graph = loads_spec(text)
    source = generate_source(graph)
    assert "def __init__(self, in_channels: int, nn_: int = 4, int_: int = 2) -> None:" in source
    assert "nn.Linear(in_channels, nn_ * int_, bias=True)" in source and "l_ = self.l(x)" in source
    assert "def __init__(self, value_: int = 5, fixed_width: int = 4) -> None:" in source
    model = build_module(graph)
    assert list(model.state_dict())[:2] == ["a.l.weight", "a.l.bias"]
    assert model(torch.randn(2, 4)).shape == (2, 5)
    namespace: dict = {}
    exec(compile(source, "hidden.py", "exec"), namespace)
    assert namespace["Model"](value_=3)(torch.randn(2, 4)).shape == (2, 3)


def test_shortened_keeps_a_names_first_and_last_words():
    from archc.pysource import shortened

    assert shortened("pool_dilated_causal_convolution_layer_temporal_residual_branch", 32) == \
        "pool_dilated_causal_branch"
    assert shortened("encoder_layer_0_attention_self_query", 32) == "encoder_layer_0_attention_query"
    assert shortened("first_dilated_causal_convolution_layer_1", 32) == "first_dilated_causal_1"
    assert shortened("TemporalBlockDilatedCausalConvolutionLayer", 32) == "TemporalBlockDilatedCausalLayer"
    assert shortened("x_" + "y" * 60, 32) == "x_" + "y" * 30  # (a last word too long: cut)
    assert shortened("a" * 40 + "_1", 32) == "a" * 30 + "_1"  # (a number kept whole)
    assert shortened("hidden", 32) == "hidden"


def test_a_sequential_spec_is_an_nn_sequential_class():
    """A spec with ``sequential: true`` whose nodes run in series is written as the model people
    write (ConvMixer's listing): an nn.Sequential subclass, its modules handed to super().__init__,
    no getattr(self, "0"); the keyword arguments still checked first."""
    text = ("name: mlp\nparams: {hidden: 16, classes: 3}\nsequential: true\ninputs: {x: [N, 8]}\nnodes:\n"
            "  - {op: linear, out_features: hidden}\n  - {op: relu}\n  - {op: dropout, p: 0.1}\n"
            "  - {op: linear, out_features: classes}\n")
    source = generate_source(loads_spec(text, "mlp.yaml"))
    assert "class Mlp(nn.Sequential):" in source and "getattr(self" not in source
    assert "nn.Linear(16, classes, bias=True)" in source and "nn.ReLU()" in source
    namespace: dict = {}
    exec(compile(source, "mlp.py", "exec"), namespace)
    model = namespace["Mlp"](classes=5)
    assert isinstance(model, torch.nn.Sequential) and list(model.state_dict()) == [
        "0.weight", "0.bias", "3.weight", "3.bias"]
    assert model.eval()(torch.randn(2, 8)).shape == (2, 5)
    with pytest.raises(ValueError, match="hidden=4: this file was generated for hidden=16"):
        namespace["Mlp"](hidden=4)


def test_numbered_nodes_that_do_not_run_in_series_read_without_comments_over_each_line():
    # a `# 0` comment over `_0 = getattr(self, "0")(x)` said nothing its variable does not
    text = ("sequential: true\ninputs: {x: [N, 8]}\nnodes:\n  - {name: a, op: linear, out_features: 8}\n"
            "  - {op: relu}\n  - {op: add, in: [x, prev]}\n")
    source = generate_source(loads_spec(text, "m.yaml"))
    assert 'self.add_module("0", nn.Linear(8, 8, bias=True))' in source
    forward = source.split("def forward", 1)[1].split("def reset_parameters", 1)[0]
    assert '_0 = getattr(self, "0")(x)' in forward
    assert [line.strip() for line in forward.splitlines() if line.strip().startswith("#")] == []


# -- a child block's arguments: the spec's expressions, never a parameter of equal values ---------

_CLASS_PER_INSTANCE = """archc: 1
name: class_per_instance
inputs: {x: [N, 8, 16, 16]}
blocks:
  cba:
    params: {out: null, pad: 0, dil: 1}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, padding: pad, dilation: dil}
      - {name: bn, op: batchnorm}
  unit:
    params: {pad: 1, dil: 1}
    nodes:
      - {name: inner, block: cba, out: 8, pad: pad, dil: dil}
      - {name: add, op: add, in: [x, inner]}
nodes:
  - {name: u1, block: unit}
  - {name: u2, block: unit, pad: 2, dil: 2}
  - {name: u3, block: unit, pad: 3, dil: 3}
"""


def test_a_child_block_s_arguments_are_the_expressions_the_spec_passes(tmp_path):
    # found transcribing ENet: `dil: dil` was written `dil=pad` (equal in the instances u2 and u3), so
    # Unit(pad=4) built a dilation-4 conv; and u1, passing the defaults, was a class of its own
    graph = loads_spec(_CLASS_PER_INSTANCE, "class_per_instance.yaml")
    source = generate_source(graph)
    assert list(_classes(source)) == ["Cba", "Unit", "ClassPerInstance"]
    assert "def __init__(self, pad: int = 1, dil: int = 1) -> None:" in source
    assert "self.inner = Cba(out=8, pad=pad, dil=dil)" in source
    # the defaults left out of the call, as a hand-written one does
    assert "self.u1 = Unit()\n" in source and "self.u3 = Unit(pad=3, dil=3)\n" in source
    path = tmp_path / "class_per_instance.py"
    path.write_text(source)
    _assert_ruff_formatted(path)
    module = _import(path, "class_per_instance_model")
    conv = module.Unit(pad=4, dil=1).inner.conv
    assert (conv.padding, conv.dilation) == ((4, 4), (1, 1))
    model, reference = module.ClassPerInstance().eval(), build_module(graph).eval()
    assert [m.conv.dilation for m in (model.u1.inner, model.u2.inner, model.u3.inner)] == [(1, 1), (2, 2), (3, 3)]
    model.load_state_dict(reference.state_dict())
    x = torch.randn(2, 8, 16, 16)
    torch.testing.assert_close(model(x), reference(x))


def test_a_layer_of_a_child_written_inline_follows_the_argument_it_was_passed(tmp_path):
    # ResNet-18's downsample shortcut (an nn.Sequential of conv and bn, `stride: stride`) had a literal
    # stride 2 in a class taking `stride`: BasicDownsample(stride=1) failed on its own add
    path = tmp_path / "resnet18_stride.py"
    path.write_text(generate_source(load_spec(ROOT / "specs/resnet18.yaml")))
    block = _import(path, "resnet18_stride").BasicDownsample(in_channels=64, planes=128, stride=1)
    assert block.downsample[0].stride == (1, 1)
    assert block(torch.randn(1, 64, 8, 8)).shape == (1, 128, 8, 8)


def test_a_child_argument_the_class_cannot_compute_is_not_taken_for_a_parameter_of_equal_values():
    # `out: w` (a let of the input width) equals the parameter `a` in both instances: a coincidence,
    # so the class takes its own argument named after the let, not `a`
    text = """archc: 1
name: halves
inputs: {x: [N, 8, 4, 4]}
blocks:
  cba:
    params: {out: null}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 1}
  half:
    params: {a: 1}
    let: {w: "channels(x) // 2"}
    nodes:
      - {name: inner, block: cba, out: w}
nodes:
  - {name: h1, block: half, a: 4}
  - {name: h2, block: half, a: 2}
"""
    source = generate_source(loads_spec(text, "halves.yaml"))
    assert "self.inner = Cba(in_channels=in_channels, out=w)" in source
    assert "self.h1 = Half(in_channels=8, w=4)" in source and "self.h2 = Half(in_channels=4, w=2)" in source


def test_a_model_parameter_handed_to_a_block_by_name_is_fixed_in_the_file(tmp_path):
    # `{block: head, out: n}` sets the instance's width when the graph is built: the file took `n` at run
    # time yet built Head(out=10) whatever n was (only fc2, which reads n itself, followed it)
    text = """archc: 1
name: handed
params: {n: 10}
inputs: {x: [N, 8]}
blocks:
  head:
    params: {out: null}
    nodes:
      - {name: fc, op: linear, out_features: out}
nodes:
  - {name: h, block: head, out: n}
  - {name: fc2, op: linear, out_features: n}
"""
    path = tmp_path / "handed.py"
    path.write_text(generate_source(loads_spec(text, "handed.yaml")))
    module = _import(path, "handed_model")
    assert module.Handed().h.fc.out_features == 10
    with pytest.raises(ValueError, match="n=5: this file was generated for n=10"):
        module.Handed(n=5)


CARRIED = """archc: 1
name: carried
params: {rate: 0.1, eps: 1.0e-5, width: 8}
inputs: {x: [N, 4, 6, 6]}
blocks:
  layer:
    params: {p: null, e: 1.0e-5}
    nodes:
      - {name: conv, op: conv, out_channels: width, kernel_size: 3, padding: 1}
      - {name: norm, op: batchnorm, eps: e}
      - {name: drop, op: dropout, p: p}
  stage:
    params: {p: null, e: null}
    nodes:
      - {name: first, block: layer, p: p, e: e}
      - {name: second, block: layer, p: p / 2, e: e}
nodes:
  - {name: body, block: stage, p: rate, e: eps}
  - {name: pool, op: global_avgpool}
"""


def test_a_model_parameter_carried_by_block_arguments_is_a_run_time_argument():
    # a dropout rate or an epsilon handed down through block parameters was fixed in the file
    # (ViT's dropout, EfficientNet's bn_eps): every class on the way now passes the caller's value
    from archc.lowering.torch import generate_source

    source = generate_source(loads_spec(CARRIED, "carried.yaml"))
    assert "# run-time arguments: rate, eps; the others are fixed in this file" in source
    assert "self.body = Stage(in_channels=4, p=rate, e=eps)" in source
    assert "p=p / 2, e=e)" in source and "nn.Dropout(p=p)" in source
    assert "def __init__(self, in_channels: int, p: float, e: float) -> None:" in source  # (required: its type)
    model = _run_time_module(source, "carried")["Carried"](rate=0.4, eps=1e-3).eval()
    reference = _run_time_module(generate_source(loads_spec(CARRIED, "carried.yaml", {"rate": 0.4, "eps": 1e-3})),
                                 "carried_set")["Carried"]().eval()
    assert [repr(m) for m in model.modules()] == [repr(m) for m in reference.modules()]
    assert model.body.second.drop.p == 0.2 and model.body.first.norm.eps == 1e-3
    with pytest.raises(ValueError, match="width=4: this file was generated for width=8"):
        _run_time_module(source, "carried_width")["Carried"](width=4)


@pytest.mark.parametrize("use", ["- {op: linear, out_features: 4, repeat: n}",
                                 "- {op: linear, out_features: 4, if: n > 1}",
                                 "- {op: linear, out_features: half}"])
def test_a_model_parameter_a_block_argument_carries_into_the_structure_stays_fixed(use):
    # a repeat count, a condition or a let computed from a block parameter fixes the model parameter the
    # caller passed for it, however many blocks it went through
    from archc.lowering.torch import generate_source

    text = f"""archc: 1
name: carried
params: {{depth: 2}}
inputs: {{x: [N, 4]}}
blocks:
  inner:
    params: {{n: null}}
    let: {{half: n * 2}}
    nodes:
      {use}
  outer:
    params: {{m: null}}
    nodes:
      - {{block: inner, n: m}}
nodes:
  - {{block: outer, m: depth}}
"""
    graph = loads_spec(text, "carried.yaml")
    assert graph.structural_params == {"depth"}
    source = generate_source(graph)
    assert "run-time arguments" not in source and '"depth": (depth, 2)' in source


def test_a_block_with_nothing_of_its_own_to_draw_says_so_in_one_line():
    # two rounds of users found every parameter-free block class carrying the three-line docstring
    source = generate_source(loads_spec("inputs: {x: [N, 4]}\nblocks:\n  act:\n    nodes: [{op: relu}, {op: tanh}]\n"
                                        "nodes:\n  - {name: a, block: act}\n  - {name: fc, op: linear, out_features: 4}\n"))
    act = ast.get_source_segment(source, _classes(source)["Act"])
    assert act.rstrip().endswith('def reset_parameters(self) -> None:\n'
                                 '        """Nothing to draw: this block holds no parameters or buffers of its own."""')
    root = ast.get_source_segment(source, _classes(source)["Model"])
    assert "Draw this block's own parameters and buffers afresh" in root  # (the model holds fc's)
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    for instance in namespace["Model"]().block_instances():
        instance.reset_parameters()


def test_a_layer_applied_n_times_is_tied_by_one_loop(tmp_path):
    # found transcribing a Universal Transformer: one encoder layer applied 4 times wrote 48 tie lines
    spec = ("inputs: {x: [N, 6, 16]}\nblocks:\n  layer:\n    nodes:\n"
            "      - {name: ffn, op: linear, out_features: 16}\n      - {name: out, op: linear, out_features: 16}\n"
            "nodes:\n  - {name: layer, block: layer, repeat: 4, tie: layer.0}\n")
    graph = loads_spec(spec)
    source = generate_source(graph)
    loop = ("        for layer in self.layer[1:]:\n"
            "            layer.ffn.weight = self.layer[0].ffn.weight\n"
            "            layer.ffn.bias = self.layer[0].ffn.bias\n"
            "            layer.out.weight = self.layer[0].out.weight\n"
            "            layer.out.bias = self.layer[0].out.bias\n")
    assert source.count(loop) == 2 and "self.layer[3]" not in source  # constructor and reset_parameters
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    model = namespace["Model"]()
    assert all(model.layer[k].out.bias is model.layer[0].out.bias for k in range(4))
    assert sum(p.numel() for p in model.parameters()) == 2 * (16 * 16 + 16)
    path = tmp_path / "ut.py"
    path.write_text(source)
    _assert_ruff_formatted(path)


def _class_alone_computes_the_spec_s_block(tmp_path: Path, text: str, changed: str, cls: str, kwargs: dict,
                                           shape: tuple[int, ...]) -> type:
    """Build class ``cls`` of ``text``'s file alone with ``kwargs``; check it computes what the spec's
    block computes with those arguments: ``changed``, the spec with its one instance ``a`` given them,
    built as its own file (same state_dict keys and shapes, equal outputs). The class, for more checks."""
    path = tmp_path / "alone.py"
    path.write_text(generate_source(loads_spec(text, "alone.yaml")))
    _assert_ruff_formatted(path)
    block_class = getattr(_import(path, f"alone_{cls.lower()}"), cls)
    block = block_class(**kwargs).eval()
    reference = build_module(loads_spec(changed, "changed.yaml")).eval().a
    block.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(*shape)
    torch.testing.assert_close(block(x), reference(x))
    return block_class


def _argument_names(cls: type) -> list[str]:
    import inspect
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


_CONTEXT = """archc: 1
name: ctx_model
inputs: {x: [N, C, 8, 8]}
blocks:
  ctx:
    params: {inplanes: null, ratio: 0.0625}
    nodes:
      - {name: flat, op: reshape, shape: [0, inplanes, -1]}
      - {name: back, op: reshape, shape: [0, inplanes, 8, 8]}
      - {name: fc, op: conv, out_channels: "int(inplanes * ratio)", kernel_size: 1}
nodes:
"""


def test_list_items_and_float_expressions_written_with_a_parameter_follow_it(tmp_path):
    # found transcribing GCNet: Ctx took `inplanes` but wrote the reshape's `[0, inplanes, -1]` as 64 and
    # `int(inplanes * ratio)` as an argument `fc_1` (ratio no argument): Ctx(inplanes=32) was another block
    text = _CONTEXT.replace("C", "64") + ("  - {name: a, block: ctx, inplanes: 64, ratio: 0.25}\n"
                                          "  - {name: b, block: ctx, inplanes: 16, ratio: 0.25}\n")
    changed = _CONTEXT.replace("C", "32") + "  - {name: a, block: ctx, inplanes: 32, ratio: 0.5}\n"
    cls = _class_alone_computes_the_spec_s_block(tmp_path, text, changed, "Ctx", {"inplanes": 32, "ratio": 0.5},
                                                 (2, 32, 8, 8))
    assert _argument_names(cls) == ["inplanes", "ratio"]


_ECA = """archc: 1
name: eca_model
params: {b: 1, gamma: 2}
inputs: {x: [N, C, 4, 4]}
blocks:
  eca:
    params: {channel: null}
    let:
      t: "int(abs((log2(channel) + b) / gamma))"
      k_size: "t if t % 2 else t + 1"
    nodes:
      - {op: global_avgpool}
      - {op: reshape, shape: [0, 1, -1]}
      - {name: conv, op: conv, out_channels: 1, kernel_size: k_size, padding: "(k_size - 1) // 2", bias: false}
      - {op: reshape, shape: [0, -1, 1, 1]}
      - {name: gate, op: mul, in: [x, reshape_1]}
nodes:
"""


def test_lets_over_fixed_model_parameters_are_computed_by_the_class_not_taken_as_made_up_arguments(tmp_path):
    # found transcribing ECA-Net: the kernel size, a let over the block's `channel` and the model's b and
    # gamma, and its padding `(k_size - 1) // 2` became arguments `k_size` and `conv_4`: Eca(channel=256)
    # alone was impossible, its caller had to know ECA's kernel rule
    text = _ECA.replace("C", "16") + "  - {name: a, block: eca, channel: 16}\n  - {name: e, block: eca, channel: 16}\n"
    changed = _ECA.replace("C", "256") + "  - {name: a, block: eca, channel: 256}\n"
    cls = _class_alone_computes_the_spec_s_block(tmp_path, text, changed, "Eca", {"channel": 256}, (2, 256, 4, 4))
    assert _argument_names(cls) == ["channel"]
    assert cls(channel=256).conv.kernel_size == (5,)  # (log2(256) + 1) / 2 = 4.5 -> 4 -> 5


_STRIDED = """archc: 1
name: strided
inputs: {x: [N, C, 8, 8]}
blocks:
  conv_layer:
    params: {out: null, downsample: false}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, padding: 1, bias: false,
         stride: "2 if downsample else 1"}
nodes:
"""


def test_a_conditional_expression_is_written_out_over_the_parameters_it_reads(tmp_path):
    # found transcribing StyleGAN2's discriminator: `stride: "2 if downsample else 1"` became an argument
    # `_0_3`, with `downsample` no argument
    text = _STRIDED.replace("C", "8") + ("  - {name: a, block: conv_layer, out: 16}\n"
                                         "  - {name: b, block: conv_layer, out: 32, downsample: true}\n"
                                         "  - {name: c, block: conv_layer, out: 32}\n")
    assert list(_classes(generate_source(loads_spec(text, "strided.yaml")))) == ["ConvLayer", "Strided"]
    changed = _STRIDED.replace("C", "4") + "  - {name: a, block: conv_layer, out: 8, downsample: true}\n"
    cls = _class_alone_computes_the_spec_s_block(tmp_path, text, changed, "ConvLayer",
                                                 {"in_channels": 4, "out": 8, "downsample": True}, (2, 4, 8, 8))
    assert _argument_names(cls) == ["in_channels", "out", "downsample"]


def test_a_fixed_multiplier_of_one_leaves_no_identity_in_the_class():
    # Inception-ResNet-v2's int(out * width_mult), the file's width_mult 1.0: `out`, not int(out * 1.0)
    spec = ("params: {width_mult: 1.0}\ninputs: {x: [N, 3, 8, 8]}\nblocks:\n  unit:\n    params: {out: 8}\n"
            "    nodes:\n      - {name: conv, op: conv, out_channels: \"int(out * width_mult)\", kernel_size: 1}\n"
            "      - {name: bn, op: batchnorm}\n"
            "nodes:\n  - {name: a, block: unit, out: 8}\n  - {name: b, block: unit, out: 16}\n")
    unit = ast.get_source_segment(source := generate_source(loads_spec(spec)), _classes(source)["Unit"])
    assert "nn.BatchNorm2d(out)" in unit and "1.0" not in unit, unit


def test_an_argument_no_spec_name_gives_is_named_after_the_attribute_it_fills():
    """A width that differs between instances and that no parameter or let names (the output width of
    a conv written in a child of fixed widths) is named after its attribute, as people name it
    (`Transition(in_channels=256, out_channels=128)`), after the node where another layer of the class
    has that attribute too (`fc1_out_features`), never after its place in the source (`conv_1`)."""
    from archc.lowering.torch import build_module, generate_source

    spec = loads_spec("""
inputs: {x: [N, 16, 8, 8]}
blocks:
  transition:
    sequential: true
    nodes:
      - {op: batchnorm}
      - {op: relu}
      - {op: conv, out_channels: "channels(x) // 2", kernel_size: 1}
  mlp:
    params: {hidden: 4}
    nodes:
      - {name: fc1, op: linear, out_features: "hidden * channels(x)"}
      - {name: fc2, op: linear, out_features: 8}
nodes:
  - {name: t1, block: transition}
  - {name: t2, block: transition}
  - {name: m, block: mlp, hidden: 2}
  - {name: m2, block: mlp, hidden: 3}
""")
    source = generate_source(spec)
    assert "self.t1 = Transition(in_channels=16, out_channels=8)" in source
    assert "self.t2 = Transition(in_channels=8, out_channels=4)" in source
    assert "fc1_out_features" in source and "conv_1" not in source and "fc1_1" not in source
    model = build_module(spec)
    assert model(torch.randn(2, 16, 8, 8)).shape == (2, 4, 8, 8)


def test_two_numbers_of_one_node_equal_in_every_instance_stay_two_sizes():
    """An upsample to the size of another input (FPN's top-down path), square in every instance: its
    H and W are read off that input in forward, each its own dim (not one number written twice),
    so the class also serves non-square inputs (found on FCN's crop offsets and FPN's upsample)."""
    from archc.lowering.torch import generate_source

    source = generate_source(loads_spec("""
inputs: {a: [N, 4, 8, 8], b: [N, 4, 4, 4], c: [N, 4, 2, 2]}
blocks:
  level:
    inputs: [fine, coarse]
    nodes:
      - {name: up, op: upsample, in: coarse, size: ["shape(fine)[2]", "shape(fine)[3]"], mode: nearest}
      - {name: merged, op: add, in: [fine, up]}
nodes:
  - {name: l1, block: level, in: [b, c]}
  - {name: l2, block: level, in: [a, l1]}
"""))
    assert "size=(fine.shape[2], fine.shape[3])" in source and "self.l1 = Level()" in source, source


SHARED_WIDTHS = """archc: 1
name: shared
inputs: {x: [N, 8, 8, 8]}
blocks:
  gate:
    nodes:
      - {op: global_avgpool, in: x}
      - {op: conv, out_channels: "channels(x)", kernel_size: 1}
      - {name: g, op: sigmoid}
      - {op: mul, in: [g, x]}
  basic:
    params: {planes: null, stride: 1}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 3, stride: stride, padding: 1}
      - {name: se, block: gate}
      - {name: proj, op: conv, in: x, out_channels: planes, kernel_size: 1, stride: stride,
         if: "stride != 1 or channels(x) != planes", else: x}
      - {name: add, op: add, in: [se, proj]}
nodes:
  - {name: a, block: basic, planes: 8}
  - {name: b, block: basic, planes: 16, stride: 2}
"""


def test_a_child_s_input_width_every_instance_shares_is_computed_not_a_literal():
    # found transcribing CBAM (round 16's bug A): each class had one instance, so the gate's width was
    # the literal its one instance had, Gate(global_avgpool_channels=16), and BasicProj(planes=32) built
    # a gate of 16 channels that failed at its first forward
    from archc.lowering.torch import generate_source

    source = generate_source(loads_spec(SHARED_WIDTHS, "shared.yaml"))
    assert "class Gate(nn.Module):" in source and "def __init__(self, in_channels: int) -> None:" in source
    assert source.count("self.se = Gate(in_channels=planes)") == 2
    scope = _run_time_module(source, "shared")
    block = scope["BasicProj"](planes=32, stride=2).eval()
    assert block(torch.randn(1, 8, 8, 8)).shape == (1, 32, 4, 4)
    # a U-Net level hands its encoder's width to the level inside it
    unet = generate_source(load_spec("specs/unet.yaml"))
    assert "self.inner = LevelInnermost(in_channels=ch, ch=ch * 2)" in unet


def test_a_block_parameter_whose_default_is_text_no_expression_reads_builds(run_archc, tmp_path):
    # found by tools/fuzz.py: `out: n(ll` is text (every caller passes `out`); finding the model
    # parameters a block reads parsed it as an expression and raised SyntaxError
    text = (ROOT / "specs" / "mobilenet_v2.yaml").read_text()
    spec = tmp_path / "mobilenet.yaml"
    spec.write_text(text.replace("params: {out: null, k: 1,", "params: {out: n(ll, k: 1,", 1))
    out = tmp_path / "mobilenet.py"
    run_archc("build", str(spec), "--target", "torch", "-o", str(out), "--set", "image_size=32", check=True)
    assert "class MobilenetV2(nn.Module):" in out.read_text()


@pytest.mark.parametrize("text", [
    # the children of a Sequential written in a loop: the element split, then its clause, as ruff writes it
    "self.layers = nn.Sequential(*[EncoderLayer(in_features=in_features, dim_feedforward=dim_feedforward,"
    " nhead=nhead, dropout=dropout, layer_norm_eps=layer_norm_eps) for _ in range(6)],)",
    "x = [a_rather_long_function_name(first_argument, second_argument) for index in range(10) if index > 3"
    " if index < 9999999]",
    # a call's one argument that is a list comprehension (its parentheses hold no generator)
    "self.layers = nn.ModuleList([DecoderLayer(in_features=in_features, dim_feedforward=dim_feedforward,"
    " nhead=nhead, dropout=dropout, layer_norm_eps=layer_norm_eps) for _ in range(6)])",
    "x = {a_rather_long_key_name_here: a_rather_long_value_name_here_too_and_longer for a_rather_long_key_name_here"
    " in range(10)}",
])
def test_a_long_comprehension_splits_as_ruff_splits_it(text):
    import subprocess
    import sys

    from archc.lowering.pyformat import split_statement

    lines = split_statement(text, "        ")
    source = "class A:\n    def f(self):\n" + "\n".join(lines) + "\n"
    formatted = subprocess.run([sys.executable, "-m", "ruff", "format", "-"], input=source, capture_output=True,
                               text=True, check=True).stdout
    assert source == formatted
    assert any(line.strip().startswith("for ") for line in lines)


def test_equal_children_in_a_row_are_written_in_a_loop_at_the_same_indices(run_archc, tmp_path):
    # ResNet-152's layer3: a projection block, then 35 equal bottlenecks, as torchvision's _make_layer
    # appends them (before: 35 equal lines); the state_dict keys are the same (layer3.0 ... layer3.35)
    out = tmp_path / "resnet152.py"
    run_archc("build", str(ROOT / "specs" / "resnet152.yaml"), "--target", "torch", "-o", str(out),
              "--set", "image_size=32", check=True)
    source = out.read_text()
    assert "*[Bottleneck(in_channels=width * 16, planes=width * 4) for _ in range(35)]," in source
    assert len(source.splitlines()) < 220
    loader = importlib.util.spec_from_file_location("resnet152_generated", out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    keys = module.Resnet152().state_dict().keys()
    assert "layer3.35.conv3.weight" in keys and "layer3.36.conv3.weight" not in keys


SHAPE_ONLY_INPUT = """
params: {}
inputs: {x: [N, 3, 16, 24]}
blocks:
  encoder:
    params: {out: null}
    nodes:
      - {name: conv, op: conv, out_channels: out, kernel_size: 3, padding: 1}
      - {name: pool, op: maxpool, kernel_size: 2, stride: 2, return_indices: true}
    outputs: [pool, "pool:indices", conv]
  decoder:
    inputs: [x, indices, size]
    nodes:
      # `size` is read by shape() alone: no node of the block reads it, the call still passes it
      - {name: unpool, op: max_unpool, in: [x, indices], kernel_size: 2, stride: 2,
         output_size: ["shape(size)[2]", "shape(size)[3]"]}
      - {name: conv, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
nodes:
  - {name: enc, block: encoder, out: 8}
  - {name: dec, block: decoder, in: ["enc:0", "enc:1", "enc:2"]}
"""


def test_a_block_input_only_shape_reads_is_passed_by_the_caller():
    from ops_harness import run_onnx

    graph = loads_spec(SHAPE_ONLY_INPUT, "shape_only.yaml")
    source = generate_source(graph)
    assert "enc_0, enc_1, enc_2 = self.enc(x)" in source and "dec = self.dec(enc_0, enc_1, enc_2)" in source
    import numpy as np

    x = np.random.default_rng(0).standard_normal((2, 3, 16, 24)).astype(np.float32)
    model = build_module(graph).eval()
    got = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, run_onnx(graph, {"x": x})[0], rtol=1e-5, atol=1e-5)
    # the unpool's size is read off `size` in forward, as the spec reads it: any input size, odd too
    assert "output_size=(size.shape[2], size.shape[3])" in source, source
    assert model(torch.randn(1, 3, 9, 13)).shape == (1, 4, 9, 13)


INLINE_OVERRIDES = """
inputs: {x: [N, 8, 16, 16]}
blocks:
  basic:
    params: {planes: null, stride: 1}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 3, stride: stride, padding: 1, bias: false}
      - {name: relu1, op: relu}
      - {name: conv2, op: conv, out_channels: planes, kernel_size: 3, padding: 1, bias: false}
      - {name: down, op: conv, in: x, out_channels: planes, kernel_size: 1, stride: stride, bias: false,
         if: "stride != 1 or channels(x) != planes", else: x}
      - {name: add, op: add, in: [conv2, down]}
  make_layer:
    params: {planes: null, blocks: null, stride: 1}
    sequential: true
    nodes:
      - {name: blk, block: basic, repeat: blocks, inline: true, planes: planes, overrides: {0: {stride: stride}}}
nodes:
  - {name: layer1, block: make_layer, planes: 16, blocks: 2, stride: 2}
"""


def test_an_inline_block_s_expressions_are_written_in_its_caller_s_terms():
    # the second repetition leaves basic's stride at its default (1): its conv is no `stride=stride`,
    # which in make_layer's class would read make_layer's stride (2)
    from ops_harness import run_onnx

    graph = loads_spec(INLINE_OVERRIDES, "inline.yaml")
    assert graph.node("layer1.0").attr_exprs["stride"] == "stride" and "stride" not in graph.node("layer1.5").attr_exprs
    source = generate_source(graph)
    assert source.count("stride=stride") == 2, source  # (the first repetition's conv1 and down)
    import numpy as np

    x = np.random.default_rng(0).standard_normal((2, 8, 16, 16)).astype(np.float32)
    got = build_module(graph).eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, run_onnx(graph, {"x": x})[0], rtol=1e-4, atol=1e-5)


RELU_SEQ = """archc: 1
name: relu_seq
params: {num_classes: 5, width: 8}
inputs: {x: [N, 3, 8, 8]}
blocks:
  conv_relu:
    sequential: true
    params: {out: null}
    nodes:
      - {op: conv, out_channels: out, kernel_size: 3, padding: 1}
      - {op: relu}
  head:
    sequential: true
    params: {classes: null}
    nodes:
      - {op: conv, out_channels: 16, kernel_size: 1}
      - {op: relu}
      - {op: conv, out_channels: classes, kernel_size: 1}
nodes:
  - {name: stem, block: conv_relu, out: width}
  - {name: classifier, block: head, classes: num_classes}
"""


def test_a_run_time_argument_reaching_a_block_written_inline_is_read_there(run_archc, tmp_path):
    # with width live, both blocks are written inline (nn.Sequential(...) in the model class): the
    # head's conv wrote 5, not num_classes, so ReluSeq(num_classes=10) still made 5 classes
    from generated_modules import assert_as_rebuilt, build_generated

    spec = tmp_path / "relu_seq.yaml"
    spec.write_text(RELU_SEQ)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert "# run-time arguments: num_classes, width (every parameter)" in source
    assert "nn.Conv2d(16, num_classes, kernel_size=1," in source, source
    x = torch.randn(2, 3, 8, 8)
    for given in ({"num_classes": 10}, {"width": 4}, {"num_classes": 3, "width": 6}):
        assert_as_rebuilt(run_archc, tmp_path, str(spec), (), module, "ReluSeq", given, x)


DEFAULT_FROM_ANOTHER = """
inputs: {x: [N, 8, 8, 8]}
blocks:
  bott:
    params: {out: 8, mid: "out // 2"}
    nodes:
      - {op: conv, out_channels: mid, kernel_size: 1}
      - {op: conv, out_channels: out, kernel_size: 1}
nodes:
  - {name: a, block: bott}
  - {name: b, block: bott, mid: 6}
  - {name: c, block: bott, out: 16}
"""


def test_an_expression_instances_write_otherwise_is_not_the_class_s():
    # a and c leave mid at its default (the attribute reads `out // 2`), b passes 6 (it reads `mid`):
    # the class wrote `out // 2` for all three, and b's conv had 4 channels, not 6
    from ops_harness import run_onnx

    graph = loads_spec(DEFAULT_FROM_ANOTHER, "default.yaml")
    source = generate_source(graph)
    assert "out // 2" not in source, source
    import numpy as np

    x = np.random.default_rng(0).standard_normal((2, 8, 8, 8)).astype(np.float32)
    model = build_module(graph).eval()  # (the graph's weights load strictly)
    assert model.b.conv.out_channels == 6 and model.c.conv.out_channels == 8
    np.testing.assert_allclose(model(torch.from_numpy(x)).detach().numpy(), run_onnx(graph, {"x": x})[0],
                               rtol=1e-4, atol=1e-5)
