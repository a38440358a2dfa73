"""tools/check_torchvision.py: skips cleanly without torchvision, and its check is real."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "check_torchvision.py"


def _torchvision_importable() -> bool:
    try:
        import torchvision  # noqa: F401 - only whether it imports matters
    except Exception:
        return False
    return True


@pytest.mark.skipif(_torchvision_importable(), reason="torchvision is installed: the full check is slow")
def test_without_torchvision_the_tool_says_so_and_exits_0():
    proc = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.startswith("torchvision is not available")


def test_unknown_model_is_a_usage_error():
    proc = subprocess.run([sys.executable, str(TOOL), "resnet19"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown model(s) resnet19" in proc.stderr


@pytest.fixture
def tool(monkeypatch):
    """The tool's module, with a stand-in torchvision whose resnet18 is written by hand."""
    from test_lowering_torch import _ResNet18

    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(resnet18=lambda weights=None: _ResNet18())
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.syspath_prepend(str(TOOL.parent))
    import check_torchvision

    return check_torchvision, fake


def test_check_passes_for_a_torchvision_structured_model(tool):
    module, _ = tool
    assert module.check("resnet18", 32) == []


def test_check_reports_shape_and_key_differences(tool):
    module, fake = tool
    from test_lowering_torch import _ResNet18

    def wrong():
        m = _ResNet18()
        m.fc = nn.Linear(512, 10)
        m.extra = nn.Linear(2, 2)
        return m

    fake.models.resnet18 = lambda weights=None: wrong()
    problems = module.check("resnet18", 32)
    assert "fc.weight: archc (1000, 512) vs torchvision (10, 512)" in problems
    assert "only in torchvision: extra.weight (2, 2)" in problems


def test_check_reports_different_outputs(tool):
    module, fake = tool
    from test_lowering_torch import _ResNet18

    class Shifted(_ResNet18):
        def forward(self, x):
            return super().forward(x) + 1.0

    fake.models.resnet18 = lambda weights=None: Shifted()
    (problem,) = module.check("resnet18", 32)
    assert problem.startswith("outputs differ: max abs error")


@pytest.mark.parametrize("name, factory", [("regnet_y_400mf", "regnet"), ("efficientnet_v2_s", "efficientnet_v2"),
                                           ("swin_t", "swin_t")])
def test_check_covers_the_newer_torchvision_specs(tool, name, factory):
    """The references transcribed from torchvision's source stand in for torchvision's models."""
    import torchvision_models

    module, fake = tool
    build = getattr(torchvision_models, factory)
    setattr(fake.models, name, lambda weights=None: build() if name == "swin_t" else build(name))
    assert name in module.MODELS
    assert module.check(name, 64) == []
