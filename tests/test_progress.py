"""Progress bars: drawn on a terminal (a pseudo-terminal here), never into a pipe or a file."""
from __future__ import annotations

import io
import re
import subprocess
import time

import pytest

from archc import progress
from archc.progress import Bar, Unit, activity, drawing_to, task

from conftest import ROOT, archc_command, run_on_terminal, terminal_env

RESNET18 = str(ROOT / "specs" / "resnet18.yaml")
ERASE = "\r\033[K"


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_build_draws_a_weights_bar_on_a_terminal_and_erases_it(tmp_path):
    code, text = run_on_terminal(["build", RESNET18, "-o", "r18.onnx"], tmp_path,
                                 terminal_env(ARCHC_PROGRESS_DELAY="0"))
    assert code == 0, text
    frames = re.findall(r"writing weights \[([#.]+)\] +(\d+)%  ([\d.]+) MiB / 44\.6 MiB  [\d.]+ s", text)
    assert frames, text
    shares = [int(share) for _, share, _ in frames]
    assert shares == sorted(shares) and all(0 <= s <= 100 for s in shares)  # the bar only moves forward
    for filled, share, _ in frames:
        assert filled.count("#") == int(int(share) / 100 * len(filled))
    assert re.search(r"lowering to ONNX \[[#.]+\] +\d+%  \d+ / \d+  ", text), text  # nodes, before the weights
    # the bar's line is erased before the next output, which starts on a clean line
    assert re.search(re.escape(ERASE) + r"wrote r18\.onnx: ONNX opset \d+, \d+ nodes, \d+ initializers, 44\.6 MiB "
                     r"of weights[^\n]*\n$", text), text[-300:]


def test_piped_output_holds_no_progress(run_archc, tmp_path):
    env = terminal_env(ARCHC_PROGRESS_DELAY="0")
    proc = subprocess.run(archc_command() + ["build", RESNET18, "-o", "r18.onnx"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0
    assert re.fullmatch(r"wrote r18\.onnx: ONNX opset \d+, \d+ nodes, \d+ initializers, 44\.6 MiB of weights"
                        r"; optimised for inference: [\d,]+ parameters folded[^\n]*\n", proc.stderr), proc.stderr
    assert "\r" not in proc.stderr + proc.stdout and "\033" not in proc.stderr + proc.stdout


def test_archc_progress_0_turns_the_bar_off_on_a_terminal(tmp_path):
    code, text = run_on_terminal(["build", RESNET18, "-o", "r18.onnx"], tmp_path,
                                 terminal_env(ARCHC_PROGRESS_DELAY="0", ARCHC_PROGRESS="0"))
    assert code == 0 and "writing weights" not in text and "\033" not in text, text


def test_an_error_after_progress_starts_on_a_clean_line(tmp_path):
    (tmp_path / "m.yaml").write_text("inputs: {x: [N, 4]}\nnodes:\n  - {op: linear, out_features: 4, bogus: 1}\n")
    code, text = run_on_terminal(["check", "m.yaml"], tmp_path, terminal_env(ARCHC_PROGRESS_DELAY="0", NO_COLOR="1"))
    assert code == 2
    error = text.index("m.yaml:3:")
    assert error == 0 or text[:error].endswith(ERASE), repr(text[:error + 10])


def test_a_task_draws_only_where_drawing_is_on_and_after_the_delay(monkeypatch):
    terminal = Terminal()
    monkeypatch.setenv(progress.DELAY_ENV, "0")
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    with task("nothing set up", total=3) as bar:  # no front end turned drawing on
        bar.advance(3)
    with drawing_to(io.StringIO()):  # not a terminal
        with task("into a file", total=3) as bar:
            bar.advance(3)
    with drawing_to(terminal):
        with task("counting", total=4, unit=Unit.ITEMS) as bar:
            bar.advance(4)
    assert terminal.getvalue().startswith(ERASE + "counting [") and " 100%  4 / 4  " in terminal.getvalue()
    assert terminal.getvalue().endswith(ERASE)
    quiet = Terminal()
    monkeypatch.setenv(progress.DELAY_ENV, "60")  # a quick operation never shows a bar
    with drawing_to(quiet):
        with task("quick", total=2) as bar:
            bar.advance(2)
    assert quiet.getvalue() == ""


def test_an_activity_spins_while_its_block_runs(monkeypatch):
    monkeypatch.setenv(progress.DELAY_ENV, "0")
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal = Terminal()
    with drawing_to(terminal):
        with activity("thinking"):
            time.sleep(0.5)
    frames = re.findall(r"thinking ([|/\-\\]) ([\d.]+) s", terminal.getvalue())
    assert len(frames) >= 2 and len({f for f, _ in frames}) >= 2, terminal.getvalue()
    assert terminal.getvalue().endswith(ERASE)


@pytest.mark.parametrize("done, total, unit, expected", [
    (0, 10, Unit.ITEMS, r"nodes \[\.+\]   0%  0 / 10  0\.0 s"),
    (5 * 2 ** 20, 10 * 2 ** 20, Unit.BYTES, r"weights \[#+\.+\]  50%  5\.0 MiB / 10\.0 MiB  0\.0 s"),
])
def test_bar_line(done, total, unit, expected):
    bar = Bar("nodes" if unit is Unit.ITEMS else "weights", total, unit, None, done)
    assert re.fullmatch(expected, bar.line(bar.started)), bar.line(bar.started)


def test_a_failing_operation_erases_its_bar_before_the_error_is_printed(monkeypatch):
    monkeypatch.setenv(progress.DELAY_ENV, "0")
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal = Terminal()
    with drawing_to(terminal), pytest.raises(ValueError):
        with activity("reading"):
            time.sleep(0.3)
            raise ValueError("bad spec")
    assert "reading " in terminal.getvalue() and terminal.getvalue().endswith(ERASE)


def test_a_label_cannot_drive_the_terminal():
    bar = Bar("reading evil\033[2J\r.yaml", None)
    assert "\033" not in bar.line(bar.started) and "\r" not in bar.line(bar.started)


def test_a_warning_during_progress_erases_the_bar_first(monkeypatch):
    monkeypatch.setenv(progress.DELAY_ENV, "0")
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal = Terminal()
    with drawing_to(terminal), task("writing", total=2) as bar:
        bar.advance()
        assert terminal.getvalue().startswith(ERASE + "writing [")
        progress.clear_line()
        assert terminal.getvalue().endswith(ERASE)
        terminal.write("archc: warning: something\n")
    assert terminal.getvalue().endswith("archc: warning: something\n")  # nothing left to erase at the end
