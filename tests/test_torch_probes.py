"""The generated model class takes parameters its widths follow (``Resnet50(width=32)``), found by
elaborating the spec again at other values (archc/lowering/torch_probes.py), and refuses those it
cannot compute rather than building another network."""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest
import torch

from archc.lowering.torch_probes import _tidy

ROOT = Path(__file__).resolve().parents[1]
_NAMES = itertools.count()


def _build(run_archc, tmp_path: Path, spec: str, *sets: str) -> tuple[object, str]:
    """``archc build SPEC --target torch`` with ``--set`` items: the generated module and its text."""
    out = tmp_path / f"generated_{next(_NAMES)}.py"
    args = [item for s in sets for item in ("--set", s)]
    run_archc("build", spec, "--target", "torch", "-o", str(out), *args, check=True)
    loader = importlib.util.spec_from_file_location(out.stem, out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module, out.read_text()


def _run_time_arguments(source: str) -> str:
    return next((line for line in source.splitlines() if line.startswith("# run-time arguments:")), "")


def _assert_same_network(mine: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> None:
    """Same keys and shapes, and (reference's weights loaded strictly) the same output."""
    shapes = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    mine.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(mine.eval()(x), reference.eval()(x))


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
    reference, _ = _build(run_archc, tmp_path, spec, "image_size=32", *(f"{k}={v}" for k, v in given.items()))
    _assert_same_network(getattr(module, cls)(**given), getattr(reference, cls)(), torch.randn(2, 3, 32, 32))


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
    (name, value), = given.items()
    assert name in _run_time_arguments(source)
    reference, _ = _build(run_archc, tmp_path, spec, *sets, f"{name}={value}")
    _assert_same_network(getattr(module, cls)(**given), getattr(reference, cls)(), torch.randn(*shape))


def test_a_file_built_with_set_takes_the_width_from_its_own_default(run_archc, tmp_path):
    module, source = _build(run_archc, tmp_path, "specs/resnet18.yaml", "width=16", "image_size=32")
    assert "width: int = 16" in source
    reference, _ = _build(run_archc, tmp_path, "specs/resnet18.yaml", "width=8", "image_size=32")
    _assert_same_network(module.Resnet18(width=8), reference.Resnet18(), torch.randn(1, 3, 32, 32))


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
    reference, _ = _build(run_archc, tmp_path, spec_file(_CLAMPED), "width=8")
    _assert_same_network(module.Clamped(width=8), reference.Clamped(), torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("text,cls,given", [
    # found by a user (Wide-ResNet): a block's shortcut exists where its input's 16 channels differ from
    # 16 * k, so at k = 1 it goes: tried only above the default, the file took k and built a shortcut
    (_WIDENED, "Widened", {"k": 1}),
    # an `if:` turning at the file's own value: below it the pooling goes, and nothing else changes
    (_SMALL_STEM, "Smallstem", {"image_size": 32}),
    # an `if:` reads the width: at width 16 block `a` gains its relu (the same calls, another class body)
    (_FLIP, "Flip", {"width": 16}),
    # a width only a concat computes (left + right): no expression of the spec gives it
    (_TWO_PATHS, "Twopaths", {"width": 4}),
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
    reference, _ = _build(run_archc, tmp_path, spec_file(_TWO_PATHS), "groups=2")
    _assert_same_network(module.Twopaths(groups=2), reference.Twopaths(), torch.randn(1, 3, 16, 16))


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
