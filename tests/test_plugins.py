"""Plug-in ops: an installed package's `archc.ops` entry point adds an op without editing archc."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent / "plugin_example"

SPEC = """
inputs: {x: [N, 4, 6, 6]}
nodes:
  - {name: conv, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: act, op: squareplus}
"""


def install_without_pip(site: Path, entry: str = "squareplus = archc_squareplus:Squareplus") -> None:
    """Lay the example package out as an installed distribution (what pip would write)."""
    shutil.copytree(EXAMPLE / "archc_squareplus", site / "archc_squareplus")
    info = site / "archc_squareplus-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: archc-squareplus\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[archc.ops]\n{entry}\n")


@pytest.fixture
def plugin_env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_without_pip(site)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return tmp_path, env


def archc(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archc", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_plugin_op_is_listed_and_usable_in_a_spec(plugin_env):
    tmp, env = plugin_env
    proc = archc("ops", "squareplus", env=env, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("squareplus: (x + sqrt(x^2 + b)) / 2")
    (tmp / "m.yaml").write_text(SPEC)
    proc = archc("verify", "m.yaml", "--batch", "2", env=env, cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout


def test_without_the_plugin_the_op_is_unknown(tmp_path):
    (tmp_path / "m.yaml").write_text(SPEC)
    proc = subprocess.run([sys.executable, "-m", "archc", "check", "m.yaml"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert "m.yaml:5:21: error: node 'act': unknown op 'squareplus'" in proc.stderr


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_without_pip(site, entry="squareplus = archc_squareplus:NoSuchClass")
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = archc("ops", env=env, cwd=tmp_path)
    assert proc.returncode == 0
    assert "archc: warning: plugin entry point 'squareplus = archc_squareplus:NoSuchClass' failed to import" in proc.stderr
    assert "\nconv " in "\n" + proc.stdout


def _plant_plugin(folder: Path, marker: Path) -> None:
    """A folder holding a plug-in distribution whose module records that it was imported."""
    (folder / "planted_op.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "from archc.ops.base import OpDef\n"
        "class Planted(OpDef):\n    name = 'planted'\n    doc = 'planted op'\n    role = 'activation'\n")
    info = folder / "planted_op-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: planted-op\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[archc.ops]\nplanted = planted_op:Planted\n")


def test_python_m_archc_never_loads_a_plugin_from_the_working_directory(tmp_path):
    folder = tmp_path / "downloaded_model"
    folder.mkdir()
    marker = tmp_path / "imported"
    _plant_plugin(folder, marker)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    proc = archc("ops", env=env, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert "planted" not in proc.stdout and proc.stderr == ""
    # the same folder, installed on purpose (on the path), does load: the planted package is a working plug-in
    proc = archc("ops", "planted", env=dict(env, PYTHONPATH=str(folder)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists() and proc.stdout.startswith("planted")


def test_plugin_problems_are_warnings_not_prints(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_without_pip(site, entry="squareplus = archc_squareplus:NoSuchClass")
    code = ("import warnings\n"
            "from archc.errors import PluginWarning\n"
            "from archc.ops import registry\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    registry.load_plugins()\n"
            "print([(w.category.__name__, str(w.message)) for w in caught])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(site)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("[('PluginWarning', \"plugin entry point "
                                  "'squareplus = archc_squareplus:NoSuchClass' failed to import (AttributeError: ")


def test_plugins_are_searched_only_for_a_name_that_is_not_a_builtin_op(tmp_path):
    """Built-in ops never wait on the entry-point search; the first other name loads the plug-ins."""
    folder = tmp_path / "site"
    folder.mkdir()
    marker = tmp_path / "imported"
    _plant_plugin(folder, marker)
    env = dict(os.environ, PYTHONPATH=str(folder))
    (tmp_path / "builtin.yaml").write_text("inputs: {x: [N, 4]}\nnodes:\n  - {name: act, op: relu}\n")
    proc = archc("lint", "builtin.yaml", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    (tmp_path / "planted.yaml").write_text("inputs: {x: [N, 4]}\nnodes:\n  - {name: act, op: planted}\n")
    proc = archc("check", "planted.yaml", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_a_broken_plugin_warns_when_a_spec_names_an_unknown_op(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_without_pip(site, entry="squareplus = archc_squareplus:NoSuchClass")
    (tmp_path / "m.yaml").write_text(SPEC)
    proc = archc("check", "m.yaml", env=dict(os.environ, PYTHONPATH=str(site)), cwd=tmp_path)
    assert proc.returncode == 2
    assert "archc: warning: plugin entry point 'squareplus = archc_squareplus:NoSuchClass' failed to import" in proc.stderr
    assert "m.yaml:5:21: error: node 'act': unknown op 'squareplus'" in proc.stderr
