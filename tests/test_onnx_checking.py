"""onnx.checker in a forked child beside the import (:mod:`archc.frontends.onnx.checking`): the
verdict is the checker's, awaited before the import returns or fails; a child that gives no
verdict means the checker runs here; an interrupted import leaves no child behind."""
from __future__ import annotations

import os
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from archc.errors import SpecError
from archc.frontends.onnx import checking, from_onnx

F = TensorProto.FLOAT


def _chain(n: int, ir_version: int = 8, alpha_at: int | None = None) -> onnx.ModelProto:
    """A chain of ``n`` Relus and an Add of an initializer (a Relu with a bad attribute at ``alpha_at``)."""
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"], name=f"r{i}",
                              **({"alpha": 2.0} if i == alpha_at else {})) for i in range(n)]
    nodes.append(helper.make_node("Add", [f"v{n}", "w"], ["y"], name="add"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("v0", F, ["N", 4])],
                              [helper.make_tensor_value_info("y", F, ["N", 4])],
                              initializer=[numpy_helper.from_array(np.ones(4, np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=ir_version)


_FORKED: list[int] = []  # the children the checker forked in the running test


@pytest.fixture
def forked(monkeypatch):
    """The checker forked whatever the model's size; each child's pid noted."""
    monkeypatch.setattr(checking, "FORK_NODES", 0)
    monkeypatch.setattr(checking, "_single_threaded", lambda: True)  # pytest's process may run torch's threads
    fork = os.fork

    def noting() -> int:
        pid = fork()
        if pid:
            _FORKED.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", noting)
    _FORKED.clear()
    yield
    _FORKED.clear()


def _no_children() -> bool:
    """Whether every child the checker forked has been reaped (none left running or a zombie)."""
    assert _FORKED
    for pid in _FORKED:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        return False
    return True


def test_the_forked_verdict_is_the_checkers(forked):
    good = _chain(3).SerializeToString()
    verdict = checking.Verdict(good, 3)
    assert verdict.pending
    assert verdict.message() is None and not verdict.pending
    bad = checking.Verdict(_chain(3, ir_version=3).SerializeToString(), 3)
    assert bad.message() == "w in initializer but not in graph input"
    assert _no_children()


def test_a_model_only_the_whole_checker_refuses_is_refused_after_the_import(forked):
    """The import itself would accept it (an initializer an IR-3 model does not list as an input)."""
    with pytest.raises(SpecError) as info:
        from_onnx(_chain(50, ir_version=3), "ir3.onnx")
    assert str(info.value) == "ir3.onnx: error: invalid ONNX model: w in initializer but not in graph input"
    assert _no_children()


def test_a_node_the_checker_rejects_is_named_before_the_import_reads_it(forked):
    with pytest.raises(SpecError) as info:
        from_onnx(_chain(50, alpha_at=30), "attr.onnx")
    assert str(info.value).startswith("attr.onnx: error: node 'r30': invalid ONNX model: Unrecognized attribute")
    assert str(info.value).endswith("(ONNX node #30, Relu)")


def test_a_child_without_a_verdict_means_the_checker_runs_here(forked, monkeypatch):
    parent, check = os.getpid(), checking._check
    monkeypatch.setattr(checking, "_check", lambda model: os._exit(9) if os.getpid() != parent else check(model))
    verdict = checking.Verdict(_chain(3, ir_version=3).SerializeToString(), 3)
    assert verdict.pending
    assert verdict.message() == "w in initializer but not in graph input"
    assert checking.Verdict(_chain(3).SerializeToString(), 3).message() is None


def test_an_interrupted_import_leaves_no_child(forked, monkeypatch):
    from archc.frontends.onnx.importer import Importer

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Importer, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        from_onnx(_chain(50), "stop.onnx")
    assert _no_children()


def test_small_models_are_checked_here():
    verdict = checking.Verdict(_chain(3).SerializeToString(), 3)
    assert not verdict.pending and verdict.message() is None


def test_lint_of_a_large_model_the_checker_refuses(tmp_path, run_archc):
    path = tmp_path / "big.onnx"
    onnx.save(_chain(checking.FORK_NODES + 10, ir_version=3), str(path))
    proc = run_archc("lint", str(path), "--format", "json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"{path}: error: invalid ONNX model: w in initializer but not in graph input\n"
    onnx.save(_chain(checking.FORK_NODES + 10), str(path))
    assert run_archc("lint", str(path), "--format", "json").returncode == 0


@pytest.mark.parametrize("value, expected", [("0", 0), ("5", 5), ("-1", 2000), ("many", 2000)])
def test_the_fork_threshold_is_read_from_the_environment(value, expected, monkeypatch):
    monkeypatch.setenv("ARCHC_CHECKER_FORK_NODES", value)
    assert checking._fork_nodes() == expected


def test_an_import_error_on_a_model_the_checker_accepts_is_the_imports_own(forked):
    model = _chain(50)
    model.graph.output.append(helper.make_tensor_value_info("w", F, [4]))
    onnx.checker.check_model(model)  # (the checker lets it pass)
    with pytest.raises(SpecError) as info:
        from_onnx(model, "const.onnx")
    assert str(info.value) == ("const.onnx: error: graph output 'w' is a constant; archc graphs compute their "
                               "outputs")
    assert _no_children()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_a_process_running_other_threads_checks_here_without_forking(monkeypatch):
    monkeypatch.setattr(checking, "FORK_NODES", 0)
    forks = []
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or -1)  # must not be called
    release = threading.Event()
    waiting = threading.Thread(target=release.wait)
    waiting.start()
    try:
        assert not checking._single_threaded()
        verdict = checking.Verdict(_chain(12).SerializeToString(), 12)
    finally:
        release.set()
        waiting.join()
    assert not verdict.pending and verdict.message() is None and not forks


def test_a_graph_output_listed_twice_is_refused_not_collapsed_into_one():
    # the checker accepts it and onnxruntime returns two outputs; the rebuilt model had one, silently
    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "dup",
                              [helper.make_tensor_value_info("x", F, [2, 4])],
                              [helper.make_tensor_value_info("y", F, [2, 4]), helper.make_tensor_value_info("y", F, [2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    with pytest.raises(SpecError) as info:
        from_onnx(model, "dup.onnx")
    assert str(info.value) == ("dup.onnx: error: graph output 'y' is listed twice; archc names each output once: give "
                               "the second its own name (an Identity node)")
