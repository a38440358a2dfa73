"""``archc lint`` and the summary's skip column, through the real command line."""
from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archc.analysis.counts import decimal_string
from archc.cli import main
import archc.cli.lint as lint_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESNET18 = os.path.join(ROOT, "specs", "resnet18.yaml")

MISLABELLED = """\
archc: 1
name: mislabelled
inputs: {x: [N, 4, 8, 8]}
nodes:
  - {name: conv1, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: relu, op: relu}
  - {name: conv2, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
  - {name: add, op: add, in: [x, conv2], expect: long_skip}
"""


def lint(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["lint", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_for_resnet18(capsys):
    code, out, _ = lint(capsys, RESNET18)
    assert code == 0
    assert "skips: residual 8, long_skip 0, dense 0, gated 0" in out
    assert "layer2.0.add  add  residual  layer1.1.relu2  projection" in out
    assert "paths: 256 input->output paths; length in layers 5..18" in out
    assert "stage 0: 8 residual blocks in series -> 2^8 = 256 paths" in out
    assert out.rstrip().endswith("expectations: 8 declared, all hold")


def test_json_schema(capsys):
    code, out, _ = lint(capsys, RESNET18, "--format", "json", "--band", "5:11")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"schema", "model", "summary", "joins_summary", "skips", "joins", "paths",
                         "expectations", "ok"}
    assert data["schema"] == "archc.lint/2" and data["ok"] is True and data["expectations"] == []
    assert data["summary"] == {"residual": 8, "long_skip": 0, "dense": 0, "gated": 0}
    assert len(data["skips"]) == 8 and data["joins"] == []
    skip = data["skips"][2]
    assert set(skip) == {"fork", "fork_output", "merge", "merge_op", "kind", "carries", "shortcut", "span",
                         "stage", "position", "reason"}
    assert set(skip["span"]) == {"layers", "ops", "depth", "depth_ops", "nodes"}
    assert (skip["merge"], skip["carries"], skip["shortcut"]) == (
        "layer2.0.add", "projection", ["layer2.0.downsample.0", "layer2.0.downsample.1"])
    paths = data["paths"]
    assert set(paths) == {"total", "total_log2", "shortest", "longest", "mean", "std", "band", "histogram",
                          "chains"}
    assert paths["total"] == 256 and paths["total_log2"] == 8.0
    # stem and fc, then per block 0 or 2 layers (identity shortcut) or 1 or 2 (3 projection shortcuts)
    lengths = [2 + sum(c) for c in itertools.product(*([(0, 2)] * 5 + [(1, 2)] * 3))]
    assert (paths["shortest"], paths["longest"]) == (min(lengths), max(lengths))
    assert paths["band"] == {"lo": 5, "hi": 11, "source": "given",
                             "share": pytest.approx(sum(5 <= n <= 11 for n in lengths) / 256)}
    assert paths["chains"][0]["distribution"] == [1, 8, 28, 56, 70, 56, 28, 8, 1]


def test_strict_fails_on_expectation_mismatch(tmp_path, capsys):
    spec = tmp_path / "mislabelled.yaml"
    spec.write_text(MISLABELLED)
    code, out, _ = lint(capsys, str(spec))
    assert code == 0
    assert f"{spec}:8:" in out and "node 'add': expected long_skip, found residual" in out
    code, out, _ = lint(capsys, str(spec), "--strict", "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert [(m["node"], m["expected"], m["found"]) for m in data["expectations"]] == [
        ("add", "long_skip", "residual")]


def test_strict_through_the_installed_entry_point(tmp_path):
    spec = tmp_path / "mislabelled.yaml"
    spec.write_text(MISLABELLED)
    archc = [sys.executable, "-m", "archc"]
    bad = subprocess.run([*archc, "lint", "--strict", str(spec)], capture_output=True, text=True)
    assert bad.returncode == 1, bad.stderr
    good = subprocess.run([*archc, "lint", "--strict", RESNET18], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr


def test_no_paths(capsys):
    code, out, _ = lint(capsys, RESNET18, "--no-paths", "--format", "json")
    assert code == 0 and json.loads(out)["paths"] is None
    code, out, _ = lint(capsys, RESNET18, "--no-paths")
    assert "paths:" not in out and "skips: residual 8" in out


def test_bad_band_and_missing_file_are_usage_errors(capsys, tmp_path):
    code, _, err = lint(capsys, RESNET18, "--band", "9:3")
    assert code == 2 and "--band expects LO:HI" in err and "Traceback" not in err
    code, _, err = lint(capsys, str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in err


def test_all_lists_joins_that_are_not_skips(capsys):
    code, out, _ = lint(capsys, os.path.join(ROOT, "specs", "googlenet.yaml"), "--all")
    assert code == 0
    assert "skips: residual 0, long_skip 0, dense 0, gated 0   (joins that are not skips: branch 9" in out
    assert "inception3a.cat" in out
    code, out, _ = lint(capsys, os.path.join(ROOT, "specs", "googlenet.yaml"))
    assert "no skip connections" in out and "inception3a.cat" not in out


def test_a_join_that_is_no_skip_carries_nothing_in_the_table(capsys):
    # round 12: branch joins (Inception's concats, RepVGG's and FractalNet's sums) printed "projection" in the
    # carries column, though nothing is carried around a join of computing branches; their layers are the
    # longest path's (~N: lint walks no region for them), which the --help text now says
    code, out, _ = lint(capsys, os.path.join(ROOT, "specs", "googlenet.yaml"), "--all", "--format", "table")
    assert code == 0
    (row,) = [line.split() for line in out.splitlines() if line.startswith("inception3a.cat ")]
    assert row[:3] == ["inception3a.cat", "concat", "branch"] and row[4] == "-" and row[5].startswith("~")
    code, data, _ = lint(capsys, os.path.join(ROOT, "specs", "googlenet.yaml"), "--all", "--format", "json")
    (join,) = [j for j in json.loads(data)["joins"] if j["merge"] == "inception3a.cat"]
    assert join["carries"] is not None and join["span"]["layers"] is None  # (JSON unchanged: the facts)
    assert "~N where no region was walked" in " ".join(lint_cli.TABLE_COLUMNS.split())


def test_summary_has_a_skip_column(capsys):
    assert main(["summary", RESNET18]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[1]
    assert header.split()[-1] == "skip"
    add_row = next(line for line in out.splitlines() if line.startswith("layer1.0.add "))
    assert add_row.split()[-1] == "residual"
    assert main(["summary", RESNET18, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["nodes"]
    assert {r["name"]: r["skip"] for r in rows if "skip" in r} == {
        f"layer{i}.{j}.add": "residual" for i in range(1, 5) for j in range(2)}


def test_lint_reads_onnx_models(tmp_path, capsys):
    onnx_path = tmp_path / "resnet18.onnx"
    assert main(["build", RESNET18, "--target", "onnx", "-o", str(onnx_path)]) == 0
    capsys.readouterr()
    code, out, _ = lint(capsys, str(onnx_path), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["summary"] == {"residual": 8, "long_skip": 0, "dense": 0, "gated": 0}
    assert data["paths"]["total"] == 256


def test_highway_from_an_onnx_model(tmp_path, capsys):
    """y = relu(x W1) * T + x * (1 - T), T = sigmoid(x W2): exporters write 1 - T as Sub(1, T)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "W1"),
             numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "W2"),
             numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")]
    nodes = [helper.make_node("Gemm", ["x", "W1"], ["h0"]), helper.make_node("Relu", ["h0"], ["h"]),
             helper.make_node("Gemm", ["x", "W2"], ["t0"]), helper.make_node("Sigmoid", ["t0"], ["t"]),
             helper.make_node("Mul", ["h", "t"], ["ht"]), helper.make_node("Sub", ["one", "t"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["xc"]), helper.make_node("Add", ["ht", "xc"], ["y"])]
    graph = helper.make_graph(nodes, "highway", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits)
    path = tmp_path / "highway.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    code, out, _ = lint(capsys, str(path), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["summary"] == {"residual": 0, "long_skip": 0, "dense": 0, "gated": 1}
    assert data["skips"][0]["fork"] == "x"


# -- JSON any reader takes ------------------------------------------------------------------------

def _long_residual_chain(blocks: int) -> str:
    """An ONNX file would be slow to write here: the chain as a spec, a block of conv + add."""
    return f"""\
archc: 1
name: chain
params: {{blocks: {blocks}}}
inputs: {{x: [N, 2]}}
blocks:
  unit:
    nodes:
      - {{name: fc, op: linear, out_features: 2}}
      - {{name: add, op: add, in: [x, fc]}}
nodes:
  - {{name: layer, block: unit, repeat: blocks}}
"""


def _integers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _integers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _integers(v)


def test_json_of_a_25000_block_chain_parses_with_defaults_and_holds_no_unsafe_integer(capsys, tmp_path):
    spec = tmp_path / "chain.yaml"
    spec.write_text(_long_residual_chain(25000))
    # (50,001 nodes and 25,000 block instances: above the default spec limits, raised as a user would)
    code, out, err = lint(capsys, str(spec), "--format", "json", "--max-nodes", "80000", "--max-repeat", "30000")
    assert code == 0, err
    data = json.loads(out)  # Python's defaults: at most 4,300 digits per integer
    assert data["schema"] == "archc.lint/2" and data["summary"]["residual"] == 25000
    paths = data["paths"]
    assert paths["total"] == decimal_string(2 ** 25000) and len(paths["total"]) == 7526
    assert paths["total_log2"] == 25000.0
    assert paths["chains"][0]["paths"] == paths["total"] and paths["chains"][0]["paths_log2"] == 25000.0
    assert all(abs(n) <= 2 ** 53 for n in _integers(data))


def test_decimal_strings_of_any_length_match_str():
    old = sys.get_int_max_str_digits()
    numbers = [0, 7, 2 ** 53 + 1, 10 ** 4000 - 1, 10 ** 4000, 2 ** 25000, -(3 ** 20000) - 1]
    try:
        sys.set_int_max_str_digits(0)
        expected = [str(n) for n in numbers]
    finally:
        sys.set_int_max_str_digits(old)
    assert [decimal_string(n) for n in numbers] == expected
    assert sys.get_int_max_str_digits() == old


def test_json_counts_switch_to_strings_just_beyond_two_to_the_53(capsys, tmp_path):
    spec = tmp_path / "chain.yaml"
    for blocks, kind in ((53, int), (54, str)):
        spec.write_text(_long_residual_chain(blocks))
        data = json.loads(lint(capsys, str(spec), "--format", "json")[1])
        assert type(data["paths"]["total"]) is kind and int(data["paths"]["total"]) == 2 ** blocks
        assert data["paths"]["total_log2"] == blocks
        dist = data["paths"]["chains"][0]["distribution"]
        assert [int(n) for n in dist] == [math.comb(blocks, k) for k in range(blocks + 1)]


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_COUNT = st.integers(min_value=0, max_value=2**40)


@st.composite
def _connections(draw):
    from archc.analysis.report import Skip, Span
    from archc.ir.vocab import Carries, Kind

    span = Span(draw(st.none() | _COUNT), draw(st.none() | _COUNT), draw(_COUNT), draw(_COUNT),
                draw(st.lists(_TEXT, max_size=3)))
    return Skip(draw(st.none() | _TEXT), draw(_TEXT), draw(_TEXT), "merge_add", draw(st.sampled_from(list(Kind))),
                draw(st.none() | st.sampled_from(list(Carries))), draw(st.lists(_TEXT, max_size=3)), span,
                draw(_TEXT), draw(_COUNT), draw(st.none() | _COUNT), draw(st.none() | _COUNT), draw(_TEXT))


@settings(deadline=None)  # (the first example imports the lint module)
@given(st.lists(_connections(), max_size=4), st.booleans())
def test_json_text_is_json_dumps_of_to_dict(connections, explain):
    """The JSON writer fills each connection's template from its record: the same characters as
    ``json.dumps(to_dict(), indent=2)``, whatever the fields hold (None, non-ASCII, quotes, ``%``)."""
    from archc.analysis.report import Analysis
    from archc.cli.lint import json_text

    analysis = Analysis(model="m%s\u00e9", connections=connections, chains=[], expectations=[])
    data = analysis.to_dict(explain=explain)
    data["ok"] = True
    assert json_text(analysis, explain=explain) == json.dumps(data, indent=2)


MASKED_STAGE = """\
inputs: {x: [N, 1, 64]}
blocks:
  res:
    nodes:
      - {name: c1, op: conv, out_channels: 8, kernel_size: 3, padding: 1}
      - {op: relu}
      - {name: c2, op: conv, out_channels: 8, kernel_size: 1}
      - {name: add, op: add, in: [c2, x], expect: residual}
nodes:
  - {name: enc, op: conv, in: x, out_channels: 8, kernel_size: 4, stride: 2}
  - {name: w, op: relu}
  - {name: sep, block: res, repeat: 3}
  - {name: m, op: conv, out_channels: 8, kernel_size: 1}
  - {name: gate, op: sigmoid}
  - {name: out, op: mul, in: [gate, w]}
"""


def test_a_stage_that_computes_a_mask_says_its_paths_do_not_reach_the_output(run_archc, tmp_path):
    # found on Conv-TasNet: "1 input->output path" printed above "2^3 = 8 paths" with no word of why
    spec = tmp_path / "masked.yaml"
    spec.write_text(MASKED_STAGE)
    lines = run_archc("lint", str(spec), check=True).stdout.splitlines()
    assert "paths: 1 input->output path of 1 layer" in lines
    assert ("  stage 0: 3 residual blocks in series -> 2^3 = 8 paths, residual branches taken ~ Binomial(3, 1/2); "
            "none of them reaches the output (the stage computes a value such as a gate's scale)") in lines
    resnet = run_archc("lint", "specs/resnet18.yaml", check=True).stdout
    assert "none of them reaches the output" not in resnet


def test_a_dense_join_of_every_earlier_node_finishes(tmp_path):
    """Node i adds x to every node before it: 300 nodes, 45,000 connections and as many (fork, join)
    pairs. Each pair's region holds O(n^2) edges; walked for every pair that took minutes (200 nodes:
    38 s). The walks now share one budget, past which spans keep depths only, so the labels stay."""
    spec = tmp_path / "dense.yaml"
    spec.write_text('archc: 1\nname: t\ninputs: {x: [N, 4]}\nnodes:\n'
                    '  - {name: l, op: add, repeat: 300, in: [x, x, "l[*]"]}\n')
    # (the timeout stops a hang; the assertions are about the labels)
    done = subprocess.run([sys.executable, "-m", "archc", "lint", "--format", "json", str(spec)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["summary"] == {"residual": 0, "long_skip": 0, "dense": 0, "gated": 0}
    assert data["joins_summary"] == {"branch": 0, "sequential": 299 * 298 // 2}


def test_a_table_of_no_rows_is_its_headers_and_dashes():
    from archc.cli.common import table_lines

    assert table_lines(["merge", "kind"], []) == ["merge  kind", "-----  ----"]
    assert table_lines(["a", "n"], [["x", "12"]], right={1}) == ["a   n", "-  --", "x  12"]
