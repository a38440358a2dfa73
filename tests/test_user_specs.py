"""Specs written by people who had never seen archc's own (tests/data/specs_user/: a U-Net++, an
Attention U-Net, a WaveNet, DeepLab's ASPP, MobileNetV3, ConvNeXt, PSPNet, ...), through the real
entry point: the generated PyTorch file builds and runs, and each run-time argument its header
names gives the network `archc build --set` writes for that value (a run-time argument that is
silently ignored is the worst kind of wrong). `archc verify` and `archc lint` pass on each.

Three specs run by default; all of them, and verify, in the slow tests.
"""
from __future__ import annotations

import inspect
import re

import pytest
import torch
from generated_modules import build_generated

from conftest import ROOT

USER_SPECS = sorted((ROOT / "tests" / "data" / "specs_user").glob("*.yaml"))
QUICK = {"segnet_flat", "deeplab_aspp", "wavenet"}


def _cases() -> list:
    return [pytest.param(p, id=p.stem, marks=() if p.stem in QUICK else pytest.mark.slow) for p in USER_SPECS]


def _model_class(module: object, source: str) -> type:
    return getattr(module, re.findall(r"^class (\w+)\(", source, re.M)[-1])


def _run_time_arguments(source: str) -> list[str]:
    header = " ".join(line[2:] for line in source.split("\nimport ")[0].splitlines() if line.startswith("# "))
    found = re.search(r"run-time arguments: ([^;(]*)", header)
    return [name.strip() for name in found.group(1).split(",") if name.strip()] if found else []


def _other_values(default: int | float) -> list[int | float]:
    if isinstance(default, float):
        return [round(default / 2, 6), default * 2 + 0.01]
    return [default * 2, default + 2, default * 3] if default else [1, 2]


def _leaves(model: torch.nn.Module) -> tuple[dict, list[str]]:
    return ({k: tuple(v.shape) for k, v in model.state_dict().items()},
            [repr(m) for m in model.modules() if not list(m.children())])


@pytest.mark.parametrize("spec", _cases())
def test_every_run_time_argument_builds_what_the_set_option_builds(spec, run_archc, tmp_path):
    module, source = build_generated(run_archc, tmp_path, str(spec))
    cls = _model_class(module, source)
    names = _run_time_arguments(source)
    assert names, source[:600]
    signature = inspect.signature(cls.__init__)
    checked = 0
    for name in names:
        default = signature.parameters[name].default
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            continue
        for value in _other_values(default):  # (the first the spec accepts: an even kernel may not be)
            try:
                rebuilt_module, rebuilt_source = build_generated(run_archc, tmp_path, str(spec), f"{name}={value}")
            except AssertionError:  # (archc refused the value, with its message)
                continue
            rebuilt = _model_class(rebuilt_module, rebuilt_source)
            assert _leaves(cls(**{name: value})) == _leaves(rebuilt()), f"{spec.stem}: {name}={value}"
            checked += 1
            break
    assert checked


@pytest.mark.slow
@pytest.mark.parametrize("spec", _cases())
def test_the_builds_verify_and_lint(spec, run_archc):
    run_archc("verify", str(spec), check=True)
    lint = run_archc("lint", str(spec), check=True)  # (the expect: labels written in the specs hold)
    assert "\nskips: " in lint.stdout and "mismatch" not in lint.stdout, lint.stdout
