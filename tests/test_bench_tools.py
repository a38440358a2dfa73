"""The benchmark tools themselves: child peak-RSS measurement, the benchmark specs, and the
whole-process and inference sections (slow: they build ResNet-50 several times)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from archc import load_spec
from archc.ops.weights import total_params
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

from bench_common import run_child  # noqa: E402


def test_child_peak_rss_is_the_childs_own_not_the_benchmarks():
    ballast = bytearray(400 * 2**20)  # this process is now > 400 MiB; Linux would pass that on
    ballast[::4096] = b"x" * len(ballast[::4096])
    _, small = run_child([sys.executable, "-c", "pass"])
    _, big = run_child([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert small < 100 * 2**20 < 200 * 2**20 < big < 400 * 2**20
    del ballast


def test_a_failing_child_is_reported():
    with pytest.raises(RuntimeError, match="boom"):
        run_child([sys.executable, "-c", "import sys; sys.exit('boom')"])


def test_benchmark_specs_are_what_they_say():
    assert total_params(load_spec(str(ROOT / "tools" / "specs" / "vgg16.yaml"))) == 138_357_544  # torchvision vgg16
    chain = load_spec(str(ROOT / "tools" / "specs" / "resnet_chain.yaml"), overrides={"blocks": 7})
    assert sum(1 for n in chain.nodes() if n.op == "add") == 7


@pytest.mark.slow
def test_whole_process_and_inference_sections_write_their_tables(tmp_path):
    out = tmp_path / "B.md"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "--sections", "process,inference",
                           "--repeat", "1", "-o", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "## process" in text and "## inference" in text and "x slower" in text


def test_codegen_bench_counts_the_bytecode_of_one_call():
    """``--opcodes`` is the noise-free figure: the same count on every run, growing with the model."""
    def counts() -> dict[str, int]:
        proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_codegen.py"), "specs/resnet18.yaml",
                               "specs/resnet50.yaml", "--repeat", "1", "--opcodes"],
                              capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        header, *rows = proc.stdout.splitlines()
        assert header.split()[-1] == "opcodes"
        return {row.split()[0]: int(row.split()[-1]) for row in rows}

    first = counts()
    assert first == counts()
    assert 0 < first["resnet18"] < first["resnet50"]


@pytest.mark.parametrize("kind", ["residual_chain", "unet", "dense", "dense_wide"])
def test_lint_benchmark_graphs_verify_and_lower_to_onnx(kind):
    """bench_lint's graphs, built node by node, are valid IR that the ONNX lowering takes (its
    --onnx section lints their files): a node missing an attribute its op gained later (batchnorm's
    affine) broke that section while the in-memory timings ran on."""
    import bench_lint
    from archc.lowering.onnx import to_onnx

    graph = getattr(bench_lint, kind)(300)
    graph.verify()
    model = to_onnx(graph, seed=0)
    assert len(model.graph.node) >= 100
