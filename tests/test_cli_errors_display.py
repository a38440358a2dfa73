"""Errors read at a glance: the diagnostic line (unchanged), the spec line, a caret under the column;
colour only on a terminal; and the messages that confused new users, each through the real CLI."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from archc.cli import main
from archc.cli.display import EXCERPT_WIDTH, DiagnosticPrinter, excerpt_window, wants_colour
from archc.errors import Diagnostic, Location

from conftest import archc_command, run_on_terminal, terminal_env

ESC = "\033["
CONV_WITH_IN_CHANNELS = """\
inputs:
  x: [1, 3, 8, 8]
nodes:
  - {name: c, op: conv, in_channels: 3, out_channels: 4, kernel_size: 3}
"""


# -- the excerpt ---------------------------------------------------------------------------

def test_error_line_then_spec_line_then_caret_under_the_column(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text(CONV_WITH_IN_CHANNELS)
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    first, source, caret = proc.stderr.splitlines()
    assert first.startswith("m.yaml:4:25: error: node 'c': op 'conv' has no attribute 'in_channels'")
    assert source == " 4 |   - {name: c, op: conv, in_channels: 3, out_channels: 4, kernel_size: 3}"
    assert caret == "   |                         ^~~~~~~~~~~"
    # the caret sits under column 25 of the spec line, the ~ under the rest of the name
    assert caret.index("^") - len("   | ") == 25 - 1
    assert source[caret.index("^"):].startswith("in_channels")
    assert ESC not in proc.stderr  # piped: no colour


def test_every_error_of_a_check_gets_its_excerpt_and_errors_off_a_file_none(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text("inputs: {x: [N, 4]}\nnodes:\n  - {op: linearr}\n  - {op: relu, foo: 1}\n")
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    lines = proc.stderr.splitlines()
    assert [line[:9] for line in lines[::3]] == ["m.yaml:3:", "m.yaml:4:"]
    assert lines[1] == " 3 |   - {op: linearr}" and lines[2] == "   |          ^~~~~~~"
    assert lines[4] == " 4 |   - {op: relu, foo: 1}" and lines[5] == "   |                ^~~"
    proc = run_archc("check", "m.yaml", "--set", "x", cwd=tmp_path)  # <command line>: nothing to quote
    assert proc.stderr == "<command line>: error: --set expects NAME=VALUE, got 'x'\n"


def test_the_excerpt_of_a_multi_digit_line_aligns_the_gutter(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text("# c\n" * 9 + "inputs: {x: [N, 4]}\nnodes:\n  - {op: relu, foo: 1}\n")
    lines = run_archc("check", "m.yaml", cwd=tmp_path).stderr.splitlines()
    assert lines[1:] == [" 12 |   - {op: relu, foo: 1}", "    |                ^~~"]


def test_no_excerpt_where_the_file_cannot_be_read_again(tmp_path):
    printer = DiagnosticPrinter(stream=sys.stderr)
    for where in (Location(str(tmp_path / "gone.yaml"), 3, 1), Location("<command line>", 1, 1),
                  Location(str(tmp_path), 1, 1)):
        assert printer.render(Diagnostic("bad", where)) == f"{where}: error: bad"
    spec = tmp_path / "short.yaml"
    spec.write_text("a: 1\n")
    assert printer.render(Diagnostic("bad", Location(str(spec), 9, 1))) == f"{spec}:9:1: error: bad"


@pytest.mark.parametrize("line, column, shown, caret", [
    ("\tkey: value", 2, "    key: value", 4),                       # a tab shows as 4 spaces, under it too
    ("名前: conv", 5, "名前: conv", 6),                               # wide characters take 2 columns
    ("x: \x1b[31mred", 4, "x: \ufffd[31mred", 3),                   # no escape sequence reaches the terminal
    ("a: b\u202ec", 6, "a: b\ufffdc", 5),                            # nor a bidi override
])
def test_excerpt_window_widths_and_unsafe_characters(line, column, shown, caret):
    text, at, _ = excerpt_window(line, column)
    assert (text, at) == (shown, caret)


def test_a_long_line_shows_a_window_around_the_column():
    line = "nodes: [" + ", ".join(f"{{op: relu, name: r{i}}}" for i in range(200)) + "]"
    column = line.index("r150") + 1
    text, at, token = excerpt_window(line, column)
    assert text.startswith("…") and text.endswith("…") and len(text) == EXCERPT_WIDTH + 2
    assert text[at:at + token] == "r150"


# -- colour ----------------------------------------------------------------------------------

def test_colour_on_a_terminal_and_never_with_no_color(tmp_path):
    (tmp_path / "m.yaml").write_text(CONV_WITH_IN_CHANNELS)
    code, text = run_on_terminal(["check", "m.yaml"], tmp_path, terminal_env())
    assert code == 2
    assert f"{ESC}1;31merror:{ESC}0m" in text and f"{ESC}1;32m^~~~~~~~~~~{ESC}0m" in text
    plain = re.sub(r"\033\[[0-9;]*m", "", text)
    assert plain.splitlines()[0].startswith("m.yaml:4:25: error: node 'c'")
    code, text = run_on_terminal(["check", "m.yaml"], tmp_path, terminal_env(NO_COLOR="1"))
    assert code == 2 and ESC not in text and "   |                         ^~~~~~~~~~~" in text
    code, text = run_on_terminal(["check", "m.yaml"], tmp_path, terminal_env(TERM="dumb"))
    assert code == 2 and ESC not in text


def test_force_color_colours_a_pipe_and_no_color_wins(tmp_path):
    (tmp_path / "m.yaml").write_text(CONV_WITH_IN_CHANNELS)
    def run(env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(archc_command() + ["check", "m.yaml"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    assert f"{ESC}1;31merror:" in run(terminal_env(FORCE_COLOR="1")).stderr
    assert ESC not in run(terminal_env(FORCE_COLOR="0")).stderr
    assert ESC not in run(terminal_env(FORCE_COLOR="1", NO_COLOR="1")).stderr


def test_wants_colour_reads_the_stream_and_the_environment(monkeypatch):
    class Terminal:
        def isatty(self) -> bool:
            return True

    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    assert wants_colour(Terminal()) and not wants_colour(object())
    monkeypatch.setenv("NO_COLOR", "")  # an empty NO_COLOR does not count (no-color.org)
    assert wants_colour(Terminal())
    monkeypatch.setenv("NO_COLOR", "yes")
    assert not wants_colour(Terminal())


# -- messages that confused a new user ---------------------------------------------------------

def check_error(run_archc, tmp_path, text: str) -> str:
    (tmp_path / "m.yaml").write_text(text)
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout
    return proc.stderr.splitlines()[0]


@pytest.mark.parametrize("node, attr, source", [
    ("{op: conv, in_channels: 3, out_channels: 4, kernel_size: 3}", "in_channels", "the input's channels (dim 1)"),
    ("{op: linear, in_features: 8, out_features: 4}", "in_features", "the input's last dim"),
    ("{op: batchnorm, num_features: 3}", "num_features", "the input's channels (dim 1)"),
])
def test_an_inferred_pytorch_argument_is_named_as_inferred(run_archc, tmp_path, node, attr, source):
    line = check_error(run_archc, tmp_path, f"inputs: {{x: [N, 3, 8, 8]}}\nnodes:\n  - {node}\n")
    assert line.endswith(f"(archc infers '{attr}' from {source}: leave it out)"), line


@pytest.mark.parametrize("refs, quoted", [("[layer[*]]", "layer[*]"), ("[x, layer[*], x]", "layer[*]")])
def test_an_unquoted_bracket_reference_in_flow_yaml_says_to_quote_it(run_archc, tmp_path, refs, quoted):
    line = check_error(run_archc, tmp_path, "inputs: {x: [N, 4]}\nnodes:\n"
                       "  - {name: layer, op: linear, out_features: 4, repeat: 2}\n"
                       f"  - {{name: cat, op: concat, in: {refs}}}\n")
    assert line.startswith("m.yaml:4:") and "invalid YAML" in line
    assert f"(write '{quoted}' in quotes: inside [ ] or {{ }}, YAML reads an unquoted '[' as a list" in line
    proc_ok = "inputs: {x: [N, 4]}\nnodes:\n  - {name: layer, op: linear, out_features: 4, repeat: 2}\n" \
              f"  - {{name: cat, op: concat, in: {refs.replace(quoted, repr(quoted))}}}\n"
    (tmp_path / "ok.yaml").write_text(proc_ok)
    assert run_archc("check", "ok.yaml", cwd=tmp_path).returncode == 0  # the hint's advice works


def test_attention_given_one_input_hints_self_attention(run_archc, tmp_path):
    line = check_error(run_archc, tmp_path, "inputs: {x: [N, 5, 16]}\nnodes:\n"
                       "  - {name: ln, op: layernorm}\n  - {name: att, op: multi_head_attention, num_heads: 2}\n")
    assert line == ("m.yaml:4:5: error: node 'att': op 'multi_head_attention' takes 3 to 4 input(s), got 1 "
                    "(for self-attention give the one input as query, key and value: in: [ln, ln, ln])")
    (tmp_path / "ok.yaml").write_text("inputs: {x: [N, 5, 16]}\nnodes:\n  - {name: ln, op: layernorm}\n"
                                      "  - {name: att, op: multi_head_attention, num_heads: 2, in: [ln, ln, ln]}\n")
    assert run_archc("check", "ok.yaml", cwd=tmp_path).returncode == 0


def test_a_block_given_too_many_inputs_points_at_variadic_inputs(run_archc, tmp_path):
    spec = "blocks:\n  pair:\n    inputs: [x]\n    nodes: [{op: relu}]\n" \
           "inputs: {a: [N, 4], b: [N, 4]}\nnodes:\n  - {name: p, block: pair, in: [a, b]}\n"
    line = check_error(run_archc, tmp_path, spec)
    assert line == ("m.yaml:7:32: error: node 'p': block 'pair' takes 1 input(s) (x), got 2 (for any number of "
                    "inputs, end the block's inputs with a variadic one, inputs: [x, rest...], and pass them on "
                    "with in: rest)")
    fixed = spec.replace("inputs: [x]\n    nodes: [{op: relu}]", "inputs: [x, rest...]\n    nodes: [{op: add, in: [x, rest]}]")
    (tmp_path / "ok.yaml").write_text(fixed)
    assert run_archc("check", "ok.yaml", cwd=tmp_path).returncode == 0, run_archc("check", "ok.yaml", cwd=tmp_path).stderr


def test_lint_says_when_no_expectation_was_declared_and_agrees_in_number(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: 4}\n")
    out = run_archc("lint", "m.yaml", cwd=tmp_path, check=True).stdout
    assert "paths: 1 input->output path of 1 layer\n" in out
    assert out.endswith("expectations: none declared (an 'expect: residual' on a merge node asks lint to "
                        "check it)\n")
    assert "expectations: ok" not in out


def test_verify_says_which_tolerance_decided(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text("inputs: {x: [N, 3, 8, 8]}\nnodes:\n"
                                     "  - {op: conv, out_channels: 4, kernel_size: 3}\n")
    out = run_archc("verify", "m.yaml", "--rtol", "0", "--atol", "1", cwd=tmp_path, check=True).stdout
    assert re.search(r"err/size [\d.e+-]+ +sensitivity [\d.e+-]+ +ok \(err/size is above rtol 0, but max abs err "
                     r"<= atol 1 decides\)", out) or re.search(r"err/size 0 .*ok \(err/size <= rtol 0\)", out), out
    out = run_archc("verify", "m.yaml", cwd=tmp_path, check=True).stdout
    assert re.search(r"ok \(err/size <= rtol 0.001\)", out), out


def test_verify_verdict_texts():
    from archc.cli.verify import verdict
    from archc.runtime.verify import compare
    import numpy as np

    ref = np.array([1e-3, -2e-3])
    assert verdict(compare("y", ref, ref + 5e-6, 1e-3, 1e-5), 1e-3, 1e-5) == \
        "ok (err/size is above rtol 0.001, but max abs err <= atol 1e-05 decides)"
    assert verdict(compare("y", ref, ref, 1e-3, 1e-5), 1e-3, 1e-5) == "ok (err/size <= rtol 0.001)"
    big = np.array([10.0, 1.0])
    assert verdict(compare("y", big, big + [0.0, 0.0105], 1e-3, 1e-3), 1e-3, 1e-3) == \
        "ok (max abs err <= atol + rtol x size = 0.011)"
    assert verdict(compare("y", big, big + 1, 1e-3, 1e-5), 1e-3, 1e-5) == \
        "MISMATCH (max abs err 1 > atol + rtol x size = 0.01)"
    assert verdict(compare("y", big, np.ones(3), 1e-3, 1e-5), 1e-3, 1e-5) == \
        "MISMATCH (shapes or non-finite values differ)"


def test_run_times_the_run_alone_and_the_build_apart(tmp_path, capsys, monkeypatch):
    import archc.runtime.ort as ort_runner

    load = ort_runner.load_session

    def slow_load(*args, **kwargs):
        time.sleep(1.5)  # a build that takes long must not show in the run's time
        return load(*args, **kwargs)

    monkeypatch.setattr(ort_runner, "load_session", slow_load)
    spec = tmp_path / "m.yaml"
    spec.write_text("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: 4}\n")
    assert main(["run", str(spec)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    found = re.fullmatch(r"ran on onnxruntime with CPUExecutionProvider: one run ([\d.]+) ms \(building the ONNX "
                         r"model and loading the session took ([\d.]+) ms before it\); inputs: x \(1, 4\)", first)
    assert found, first
    run_ms, build_ms = map(float, found.groups())
    assert build_ms >= 1500 and run_ms < 1500


def test_run_torch_reports_the_module_build_apart(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: 4}\n")
    first = run_archc("run", "m.yaml", "--runtime", "torch", cwd=tmp_path, check=True).stdout.splitlines()[0]
    assert re.fullmatch(r"ran on torch on cpu: one run [\d.]+ ms \(building the module took [\d.]+ ms before it\); "
                        r"inputs: x \(1, 4\)", first), first


@pytest.mark.parametrize("args, command", [
    (["lint", "specs/resnet18.yaml", "--seed", "1"], "archc lint"),
    (["check", "specs/resnet18.yaml", "extra"], "archc check"),
    (["ops", "conv", "--bogus"], "archc ops"),
])
def test_an_unknown_argument_of_a_command_points_at_that_commands_help(run_archc, args, command):
    proc = run_archc(*args)
    assert proc.returncode == 2
    unknown = " ".join(args[2:]) if args[0] != "ops" else "--bogus"
    assert proc.stderr == f"<command line>: error: unrecognized arguments: {unknown} (see '{command} --help')\n"


# -- control characters from specs, models and the command line -------------------------------

#: a string that would erase the line, return to its start and reverse what follows, then a C1 CSI
HOSTILE = "\x1b[2K\r\u202eok\x9b"
#: how it is shown
HOSTILE_SHOWN = "\\x1b[2K\\r\\u202eok\\x9b"
#: what no line printed to a terminal may hold (but the colours the printer adds itself)
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def _no_control_characters(text: str) -> None:
    assert _UNSAFE.search(text) is None, repr(text)


@pytest.mark.parametrize("text, shown", [
    ("plain text, 'quoted' [1, 2]\nnext line", "plain text, 'quoted' [1, 2]\nnext line"),
    ("größe 畳み込み", "größe 畳み込み"),  # letters of any script stay
    (HOSTILE, HOSTILE_SHOWN),
    ("\x1b[31mFAKE OK\x1b[0m\r\x07", "\\x1b[31mFAKE OK\\x1b[0m\\r\\x07"),  # ASCII only: the fast path
    ("a\tb\x00c\x7fd\x85e", "a\\tb\\x00c\\x7fd\\x85e"),
    ("zero\u200bwidth\u2028line\u2066isolate\ufeff", "zero\\u200bwidth\\u2028line\\u2066isolate\\ufeff"),
    ("tag\U000e0041", "tag\\U000e0041"),
    ("undecodable \udcff byte", "undecodable \\udcff byte"),
])
def test_terminal_text_escapes_what_drives_a_terminal(text, shown):
    from archc.terminal import terminal_text

    assert terminal_text(text) == shown


def test_a_model_name_in_the_ok_line_is_escaped(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text('name: "m\\e[2K\\r\\u202eok\\x9b"\ninputs:\n  x: [1, 4]\n'
                                     "nodes:\n  - {name: r, op: relu, in: x}\n")
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith(f"m.yaml: ok: m{HOSTILE_SHOWN}, 2 nodes")
    _no_control_characters(proc.stdout + proc.stderr)


def test_a_yaml_string_in_an_error_message_is_escaped(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text('inputs:\n  x: [1, 4]\nnodes:\n  - {name: r, op: "relu\\e[2K\\r\\u202eok\\x9b", in: x}\n')
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"m.yaml:4:19: error: node 'r': unknown op 'relu{HOSTILE_SHOWN}'")
    _no_control_characters(proc.stdout + proc.stderr)


def test_names_from_a_foreign_onnx_model_in_messages_are_escaped(run_archc, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Frobnicate" + HOSTILE, ["x"], ["y"], name="n" + HOSTILE)
    graph = helper.make_graph([node], "g" + HOSTILE, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    for command in ("check", "summary", "lint"):
        proc = run_archc(command, "m.onnx", cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.startswith(f"m.onnx: error: node 'n{HOSTILE_SHOWN}': "), proc.stderr
        assert f"Frobnicate{HOSTILE_SHOWN}" in proc.stderr
        _no_control_characters(proc.stdout + proc.stderr)


@pytest.mark.parametrize("args, said", [
    (("check", "gone\x1b[2K\r\u202e\udcff.yaml"), "gone\\x1b[2K\\r\\u202e\\udcff.yaml"),  # \udcff: the byte 0xff
    (("check", "m.yaml", "--x\x1b[2J"), "unrecognized arguments: --x\\x1b[2J"),
    (("graph", "m.yaml", "-o", "m\x1b[2J.txt"), "-o m\\x1b[2J.txt: cannot tell the format"),
])
def test_command_line_text_in_messages_is_escaped(run_archc, tmp_path, args, said):
    (tmp_path / "m.yaml").write_text("inputs:\n  x: [1, 4]\nnodes:\n  - {name: r, op: relu, in: x}\n")
    proc = run_archc(*args, cwd=tmp_path)
    assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    _no_control_characters(proc.stdout + proc.stderr)


def test_colours_stay_and_the_message_is_escaped_on_a_terminal(tmp_path):
    (tmp_path / "m.yaml").write_text('inputs:\n  x: [1, 4]\nnodes:\n  - {name: r, op: "relu\\e[2K\\r\\u202eok", in: x}\n')
    code, text = run_on_terminal(["check", "m.yaml"], tmp_path, terminal_env())
    assert code == 2 and f"{ESC}1;31merror:{ESC}0m" in text
    assert "unknown op 'relu\\x1b[2K\\r\\u202eok'" in text
    _no_control_characters(re.sub(r"\033\[[0-9;]*m", "", text))


# -- notes: the block instance an error inside a block was met in ----------------------------

NESTED_INSTANCES = """\
inputs: {x: [N, 8, 16, 16]}
blocks:
  unit:
    params: {ch: null}
    nodes:
      - {name: conv, op: conv, out_channels: ch, kernel_size: 3, padding: 1}
      - {name: add, op: add, in: [x, conv]}
  stage:
    params: {ch: 8}
    nodes:
      - {name: u, block: unit, ch: ch}
nodes:
  - {name: s, block: stage, repeat: 3, overrides: {2: {ch: 4}}}
"""


def test_an_error_inside_a_block_names_each_instance_it_was_met_in_innermost_first(run_archc, tmp_path):
    # (the add is right for ch 8 and wrong for the third stage's 4: the block's line alone does not
    # say which arguments it failed on)
    (tmp_path / "m.yaml").write_text(NESTED_INSTANCES)
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("m.yaml:7:9: error: node 's.2.u.add': add: shapes do not broadcast")
    assert lines[3:] == [
        "m.yaml:11:26: note: in 's.2.u', an instance of block 'unit'",
        " 11 |       - {name: u, block: unit, ch: ch}",
        "    |                          ^~~~",
        "m.yaml:13:22: note: in 's.2', an instance of block 'stage'",
        " 13 |   - {name: s, block: stage, repeat: 3, overrides: {2: {ch: 4}}}",
        "    |                      ^~~~~",
    ]


def test_an_error_at_the_instance_itself_has_no_note(run_archc, tmp_path):
    instance = "{name: s, block: stage, repeat: 3, overrides: {2: {ch: 4}}}"
    (tmp_path / "m.yaml").write_text(NESTED_INSTANCES.replace(instance, "{name: s, block: stage, chh: 4}"))
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("m.yaml:13:29: error: node 's': block 'stage' has no parameter 'chh'")
    assert "note:" not in proc.stderr
