"""Every error archc prints names its place: ``path:line:col:`` for a spec, ``<command line>:`` for flags.

Bad specs come from two sources: the hostile inputs of issue 8, and seeded text mutations of
every shipped spec (lines deleted, duplicated, cut, or spliced with hostile YAML and values).
Each goes through ``archc check`` (the CLI's ``main``, in process for speed; a few through the
installed entry point), and every ``error:`` line must start with a location.
"""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from archc.cli import main

ROOT = Path(__file__).resolve().parent.parent
LOCATED = re.compile(r"^(\S[^\n]*?:\d+:\d+|<command line>): error: ")

HOSTILE = [
    "inputs: {x: [N, 4]}\nlet: {a: \"((9**64)**64)**64\"}\nnodes: [{op: linear, out_features: a}]\n",
    "inputs: {x: [N, 4]}\nlet: {a: \"'%9999999999d' % 1\"}\nnodes: [{op: relu}]\n",
    "inputs: {x: [N, 4]}\nlet: {a: \"sum([[0]*100000]*100000, [])\"}\nnodes: [{op: relu}]\n",
    "inputs: {x: [N, 4]}\nnodes: [{op: onnx_node, op_type: Relu, operands: [0], attributes: "
    "{a: \"[[0]*100000]*100000\"}, output_types: 1}]\n",
    "inputs: {x: [N, 4]}\nlet: {a: \"(-1) ** 0.5\"}\nnodes: [{op: linear, out_features: a}]\n",
    "inputs: {x: [N, 4]}\nlet: {a: \"" + "not " * 400 + "1\"}\nnodes: [{op: relu}]\n",
    "inputs: {x: [N, 3, 8, 8]}\nnodes: [{op: conv, out_channels: 4, kernel_size: 3, stride: 0}]\n",
    "inputs: {x: [N, 3, 8, 8]}\nnodes: [{op: conv_transpose, out_channels: 4, kernel_size: 3, stride: 0}]\n",
    "inputs: {x: [N, 3, 8, 8]}\nnodes: [{op: upsample, scale_factor: 1e308}]\n",
    "inputs: {x: [N, 4]}\nnodes: [{op: relu, repeat: 1000000000}]\n",
    "inputs: {x: [N, 4]}\nblocks:\n  b:\n    params: {d: null}\n    nodes:\n      - {op: relu}\n"
    "      - {block: b, d: d - 1, repeat: 2, if: \"d > 0\"}\nnodes: [{block: b, d: 40}]\n",
    "inputs: {x: &a [*a]}\nnodes: [{op: relu}]\n",
    "inputs: {x: [N, 4]}\nnodes: [{op: linear, out_features: !!int abc}]\n",
    "inputs: {x: [N, 4]}\nnodes: [{op: linear, out_features: 2, bias: !!bool maybe}]\n",
    "inputs: {x: [N, 4]}\nnodes: [{op: relu}]\0\n",
    "inputs: {x: [N, 4]}\nnodes: [{op: linear, out_features: " + "9" * 300 + "}]\n",
    "inputs: {x: [N, 4]}\nnodes: [{op: linear, out_features: 2}]\n\xff",
    "inputs: {x: [N, 4]}\ninclude: no_such_file.yaml\nnodes: [{op: relu}]\n",
    "[1, 2",
    "",
    "- just a list\n",
]

#: what a mutation splices into a line
SPLICES = ["0", "-1", "2**64", "1e308", ".nan", ".inf", "''", "[]", "{}", "null", "&a [*a]", "!!int abc",
           "!!bool maybe", "'%9d' % 1", "9" * 300, "{", "]", ":", "- ", "*x", "\t", "not not", "(-1) ** 0.5"]


def _mutants(count: int, seed: int = 8) -> list[str]:
    rng = random.Random(seed)
    specs = sorted((ROOT / "specs").glob("*.yaml"))
    result = []
    for _ in range(count):
        lines = rng.choice(specs).read_text().split("\n")
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            r = rng.random()
            if r < 0.2:
                del lines[i]
            elif r < 0.35:
                lines.insert(i, lines[rng.randrange(len(lines))])
            elif lines[i]:
                j = rng.randrange(len(lines[i]))
                lines[i] = lines[i][:j] + rng.choice(SPLICES) + lines[i][j + rng.randint(0, 6):]
        result.append("\n".join(lines))
    return result


#: a note under a diagnostic (the block instance an error inside a block was met in)
NOTE = re.compile(r"^\S[^\n]*?:\d+:\d+: note: in '[^']*', an instance of block '[^']*'$")
#: the two lines of a source excerpt under a diagnostic: the spec's line, then the caret
EXCERPT = (re.compile(r" \d+ \|( .*)?"), re.compile(r" +\| +\^~*"))


def _check(path: Path, capsys) -> tuple[int, list[str]]:
    """The exit code and the diagnostic lines of ``archc check``; each excerpt under a diagnostic
    (spec line, caret line) is checked for its form and left out."""
    code = main(["check", str(path)])
    lines, diagnostics = capsys.readouterr().err.splitlines(), []
    while lines:
        line = lines.pop(0)
        if NOTE.match(line):  # (a block instance an error was met in: located, after its error)
            assert diagnostics, line
        else:
            diagnostics.append(line)
        if lines and EXCERPT[0].fullmatch(lines[0]):
            assert len(lines) > 1 and EXCERPT[1].fullmatch(lines[1]), lines[:2]
            del lines[:2]
    return code, diagnostics


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_specs_give_located_errors(text, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text.encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    code, lines = _check(path, capsys)
    assert code == 2 and lines
    for line in lines:
        assert LOCATED.match(line), line


def test_mutated_specs_give_located_errors(tmp_path, capsys):
    failures, outcomes = [], {"ok": 0, "error": 0}
    for k, text in enumerate(_mutants(150)):
        path = tmp_path / "specs" / f"m{k}.yaml"  # next to nothing: an include of lib/ is then missing, also located
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        code, lines = _check(path, capsys)
        outcomes["ok" if code == 0 else "error"] += 1
        failures += [f"m{k}: {line}" for line in lines if code != 0 and not LOCATED.match(line)]
        assert code in (0, 2), lines
    assert not failures, "\n".join(failures[:20])
    assert outcomes["error"] > 100  # the mutations do break specs


def test_limit_flags_and_environment_through_the_entry_point(tmp_path):
    spec = tmp_path / "r.yaml"
    spec.write_text("inputs: {x: [N, 4]}\nnodes: [{op: relu, repeat: 50}]\n")
    exe = Path(sys.executable).with_name("archc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "archc"]

    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd + ["check", str(spec), *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})

    proc = run(ARCHC_MAX_REPEAT="10")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"{spec}:2:28: error: node 'relu': repeat 50: over the limit of 10 repetitions "
                                   "(raise it with --max-repeat N or ARCHC_MAX_REPEAT=N)\n"
                                   " 2 | nodes: [{op: relu, repeat: 50}]\n"
                                   "   |                            ^~")
    assert run("--max-repeat", "100", ARCHC_MAX_REPEAT="10").returncode == 0  # the flag wins
    proc = run("--max-nodes", "-3")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "<command line>: error: --max-nodes expects a positive integer, got '-3'"
