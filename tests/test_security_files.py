"""Files a hostile spec or command line could abuse: includes, outputs, --save names, weights, CLI numbers.

Every case goes through the real ``archc`` entry point and asserts the whole error line.
"""
from __future__ import annotations

import os
import pickle
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archc import fileio
from archc.frontends.yaml.includes import LIBRARY_DIR

from conftest import SPECS

TINY = "inputs: {x: [N, 4]}\nnodes:\n  - {name: l, op: linear, out_features: 2}\n"
LIB = "blocks:\n  unit:\n    nodes: [{name: fc, op: linear, out_features: 3}]\n"
USES_UNIT = "inputs: {x: [N, 4]}\nnodes:\n  - {name: u, block: unit}\n"


def archc_command() -> list[str]:
    exe = Path(sys.executable).with_name("archc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "archc"]


def spec_with_include(ref: str, body: str = TINY) -> str:
    return f"include: {ref}\n{body}"


# -- include ------------------------------------------------------------------------------

def test_include_outside_the_spec_folder_is_refused_without_reading_it(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text(spec_with_include("/etc/passwd"))
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (f"m.yaml:1:10: error: cannot include '/etc/passwd': /etc/passwd is outside the spec's "
                           f"folder ({os.path.realpath(tmp_path)}) and archc's library; includes may read only "
                           "there (--allow-include-anywhere lifts this)\n"
                           " 1 | include: /etc/passwd\n"
                           "   |          ^\n")


def test_an_allowed_include_of_a_system_like_file_never_echoes_it(run_archc, tmp_path):
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nadmin: secret-value\n")
    (tmp_path / "m.yaml").write_text(spec_with_include(str(tmp_path / "passwd")))
    proc = run_archc("check", "m.yaml", "--allow-include-anywhere", cwd=tmp_path)
    assert proc.returncode == 2
    real = os.path.realpath(tmp_path / "passwd")
    assert proc.stderr == (f"m.yaml:1:10: error: cannot include '{tmp_path}/passwd': {real} is not valid YAML "
                           "(at line 2, column 6); expected an include file: a mapping with 'blocks'\n"
                           f" 1 | include: {tmp_path}/passwd\n"
                           "   |          ^\n")
    assert "secret-value" not in proc.stderr and "root:" not in proc.stderr  # the excerpt is the spec's line


def test_include_escaping_with_dot_dot_or_a_link_is_refused(run_archc, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "lib.yaml").write_text(LIB)
    project = tmp_path / "project"
    project.mkdir()
    (project / "link.yaml").symlink_to(outside / "lib.yaml")
    (project / "m.yaml").write_text("include: [../outside/lib.yaml, link.yaml]\n" + USES_UNIT)
    proc = run_archc("check", "m.yaml", cwd=project)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()[::3]  # each error line is followed by its spec line and caret
    real = os.path.realpath(outside / "lib.yaml")
    assert lines[0].startswith(f"m.yaml:1:11: error: cannot include '../outside/lib.yaml': {real} is outside "
                               "the spec's folder")
    assert lines[1].startswith(f"m.yaml:1:32: error: cannot include 'link.yaml': {real} is outside the spec's")


def test_allow_include_anywhere_flag_and_environment_variable(run_archc, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "lib.yaml").write_text(LIB)
    project = tmp_path / "project"
    project.mkdir()
    (project / "m.yaml").write_text(spec_with_include("../outside/lib.yaml", USES_UNIT))
    assert run_archc("check", "m.yaml", cwd=project).returncode == 2
    proc = run_archc("check", "m.yaml", "--allow-include-anywhere", cwd=project)
    assert proc.returncode == 0, proc.stderr
    env = dict(os.environ, ARCHC_ALLOW_INCLUDE_ANYWHERE="1")
    proc = subprocess.run([*archc_command(), "check", "m.yaml"], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("target, kind", [("/dev/zero", "a character device"),
                                          ("/dev/urandom", "a character device")])
def test_include_of_a_device_is_refused_even_when_allowed_anywhere(run_archc, tmp_path, target, kind):
    (tmp_path / "m.yaml").write_text(spec_with_include(target))
    proc = run_archc("check", "m.yaml", "--allow-include-anywhere", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"m.yaml:1:10: error: cannot include '{target}': {target}: it is {kind}, " \
                          f"expected a regular file\n 1 | include: {target}\n   |          ^\n"


def test_include_of_a_fifo_or_a_directory_is_refused_without_blocking(run_archc, tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "folder").mkdir()
    (tmp_path / "m.yaml").write_text("include: [pipe.yaml, folder]\n" + TINY)
    proc = run_archc("check", "m.yaml", cwd=tmp_path)  # conftest's 600 s timeout would catch a hang
    assert proc.returncode == 2
    real = os.path.realpath(tmp_path)
    assert proc.stderr.splitlines() == [
        f"m.yaml:1:11: error: cannot include 'pipe.yaml': {real}/pipe.yaml: it is a FIFO (named pipe), "
        "expected a regular file",
        " 1 | include: [pipe.yaml, folder]",
        "   |           ^~~~~~~~~",
        f"m.yaml:1:22: error: cannot include 'folder': {real}/folder: it is a directory, expected a regular file",
        " 1 | include: [pipe.yaml, folder]",
        "   |                      ^~~~~~",
    ]


def test_a_file_that_is_not_an_include_file_is_named_never_quoted(run_archc, tmp_path):
    (tmp_path / "secrets.yaml").write_text("password: hunter2\ntoken: abc123\n")
    (tmp_path / "notes.txt").write_text("hunter2 is: [the password\n")
    (tmp_path / "m.yaml").write_text("include: [secrets.yaml, notes.txt]\n" + TINY)
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    real = os.path.realpath(tmp_path)
    assert proc.stderr.splitlines() == [
        f"m.yaml:1:11: error: cannot include 'secrets.yaml': {real}/secrets.yaml is not an include file; "
        "expected a YAML mapping with 'blocks' or 'functions' (and optionally doc, include)",
        " 1 | include: [secrets.yaml, notes.txt]",
        "   |           ^~~~~~~~~~~~",
        f"m.yaml:1:25: error: cannot include 'notes.txt': {real}/notes.txt is not valid YAML (at line 2, column 1); "
        "expected an include file: a mapping with 'blocks'",
        " 1 | include: [secrets.yaml, notes.txt]",
        "   |                         ^~~~~~~~~",
    ]
    assert "hunter2" not in proc.stderr and "password" not in proc.stderr and "token" not in proc.stderr


def test_include_of_a_missing_file_and_of_a_bad_entry(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text("include: [nope.yaml, 3]\n" + TINY)
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "m.yaml:1:22: error: an 'include' entry must be a file name",
        " 1 | include: [nope.yaml, 3]",
        "   |                      ^",
        f"m.yaml:1:11: error: cannot include 'nope.yaml': no such file (looked in {tmp_path} and "
        f"{LIBRARY_DIR})",
        " 1 | include: [nope.yaml, 3]",
        "   |           ^~~~~~~~~",
    ]


def test_nested_includes_resolve_from_the_included_file_and_stay_in_the_tree(run_archc, tmp_path):
    (tmp_path / "libs").mkdir()
    (tmp_path / "libs" / "base.yaml").write_text(LIB)
    (tmp_path / "libs" / "more.yaml").write_text(
        "include: base.yaml\nblocks:\n  pair:\n    nodes: [{name: a, block: unit}, {name: b, block: unit}]\n")
    (tmp_path / "m.yaml").write_text("include: [libs/more.yaml, libs/base.yaml]\n"
                                     "inputs: {x: [N, 4]}\nnodes:\n  - {name: p, block: pair}\n")
    proc = run_archc("summary", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "p.b.fc" in proc.stdout  # base.yaml is included once though two references reach it
    (tmp_path / "libs" / "more.yaml").write_text("include: ../../elsewhere.yaml\nblocks: {}\n")
    (tmp_path.parent / "elsewhere.yaml").write_text(LIB)
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{tmp_path}/libs/more.yaml:1:10: error: cannot include '../../elsewhere.yaml': "
                                  f"{os.path.realpath(tmp_path.parent / 'elsewhere.yaml')} is outside the spec's "
                                  f"folder ({os.path.realpath(tmp_path)})")


def test_an_include_cycle_is_an_error_naming_the_chain(run_archc, tmp_path):
    # issue 12: a cycle is reported (once per closing reference), never followed
    (tmp_path / "a.yaml").write_text("include: b.yaml\n" + LIB)
    (tmp_path / "b.yaml").write_text("include: a.yaml\nblocks: {}\n")
    (tmp_path / "m.yaml").write_text("include: [a.yaml, m.yaml]\n" + USES_UNIT)
    proc = run_archc("check", "m.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    root = os.path.realpath(tmp_path)
    assert f"b.yaml:1:10: error: include cycle: {root}/a.yaml -> {root}/b.yaml -> {root}/a.yaml" in proc.stderr
    assert f"error: include cycle: {root}/m.yaml -> {root}/m.yaml" in proc.stderr


def test_the_shipped_library_is_on_the_search_path(run_archc, tmp_path):
    spec = (SPECS / "resnet18.yaml").read_text()
    assert "include: archc/resnet_blocks" in spec
    (tmp_path / "mine.yaml").write_text(spec)  # a copy far from specs/ still finds the shipped library
    proc = run_archc("check", "mine.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_spec_and_include_sizes_are_bounded(tmp_path):
    (tmp_path / "lib.yaml").write_text(LIB + "doc: '" + "x" * 2000 + "'\n")
    (tmp_path / "m.yaml").write_text(spec_with_include("lib.yaml"))
    sizes = {name: (tmp_path / name).stat().st_size for name in ("lib.yaml", "m.yaml")}
    env = dict(os.environ, ARCHC_MAX_SPEC_BYTES="1000")
    proc = subprocess.run([*archc_command(), "check", "m.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr == (f"m.yaml:1:10: error: cannot include 'lib.yaml': {os.path.realpath(tmp_path)}/lib.yaml: "
                           f"it is too large ({sizes['lib.yaml']:,} bytes; the limit is 1,000 bytes, raised by the "
                           "environment variable ARCHC_MAX_SPEC_BYTES)\n"
                           " 1 | include: lib.yaml\n"
                           "   |          ^~~~~~~~\n")
    env["ARCHC_MAX_SPEC_BYTES"] = "50"
    proc = subprocess.run([*archc_command(), "check", "m.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.stderr == (f"m.yaml: error: cannot read the spec: it is too large ({sizes['m.yaml']} bytes; the "
                           "limit is 50 bytes, raised by the environment variable ARCHC_MAX_SPEC_BYTES)\n")
    env["ARCHC_MAX_SPEC_BYTES"] = "lots"
    proc = subprocess.run([*archc_command(), "check", "m.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.stderr == "<environment>: error: ARCHC_MAX_SPEC_BYTES must be a positive number of bytes, got 'lots'\n"


def test_a_spec_that_is_a_device_or_directory_is_refused(run_archc, tmp_path):
    proc = run_archc("check", "/dev/zero")
    assert proc.returncode == 2
    assert proc.stderr == "/dev/zero: error: cannot read the spec: it is a character device, expected a regular " \
                          "file or a pipe\n"
    proc = run_archc("check", str(tmp_path))
    assert proc.stderr == f"{tmp_path}: error: cannot read the spec: it is a directory, expected a regular file " \
                          "or a pipe\n"


def test_a_spec_read_from_a_pipe(tmp_path):
    proc = subprocess.run([*archc_command(), "check", "/dev/stdin"], input=TINY, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


# -- outputs ------------------------------------------------------------------------------

def test_output_onto_a_device_or_fifo_is_refused_and_the_node_kept(run_archc, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "m.yaml").write_text(TINY)
    for target, kind in [("/dev/null", "a character device"), ("pipe", "a FIFO (named pipe)")]:
        proc = run_archc("build", "m.yaml", "--target", "onnx", "-o", target, cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr == (f"<command line>: error: -o {target}: the output is {kind}; archc writes only "
                               "regular files (it never replaces a device or a pipe)\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)
    os.mkfifo(tmp_path / "pipe.pt")
    proc = run_archc("build", "m.yaml", "--target", "torch", "-o", "m.py", "--state-dict", "pipe.pt", cwd=tmp_path)
    assert proc.stderr.startswith("<command line>: error: --state-dict pipe.pt: the output is a FIFO")
    assert not (tmp_path / "m.py").exists()


def test_output_in_a_missing_folder_or_over_the_spec(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text(TINY)
    proc = run_archc("build", "m.yaml", "--target", "onnx", "-o", "no/m.onnx", cwd=tmp_path)
    assert proc.stderr == (f"<command line>: error: -o no/m.onnx: the output directory does not exist: "
                           f"{tmp_path}/no\n")
    proc = run_archc("build", "m.yaml", "--target", "torch", "-o", "m.yaml", cwd=tmp_path)
    assert proc.stderr == ("<command line>: error: -o m.yaml: the output would overwrite the spec m.yaml, which "
                           "this command reads; give another output name\n")
    assert (tmp_path / "m.yaml").read_text() == TINY
    proc = run_archc("build", "m.yaml", "--target", "torch", "-o", "m.pt", "--state-dict", "./m.pt", cwd=tmp_path)
    assert proc.stderr == "<command line>: error: -o and --state-dict name the same file (m.pt)\n"


@pytest.mark.parametrize("args, output", [
    (("build", "m.yaml", "--target", "torch", "-o", "lib.yaml"), "-o lib.yaml"),
    (("build", "m.yaml", "--target", "torch", "-o", "m.py", "--state-dict", "sub/../lib.pt"),
     "--state-dict sub/../lib.pt"),
    (("build", "m.yaml", "--target", "onnx", "-o", "lib.yaml.onnx", "--external-data"), "-o lib.yaml.onnx.data"),
    (("graph", "m.yaml", "-o", "lib.yaml.dot"), "-o lib.yaml.dot"),
    (("report", "m.yaml", "-o", "lib.html"), "-o lib.html"),
])
def test_no_output_replaces_a_file_the_spec_includes(run_archc, tmp_path, args, output):
    """Whatever the command and whichever output, a file the spec includes (by its own name or through
    a link or a hard link) is refused by name, before anything is written."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "lib.yaml").write_text(LIB)
    (tmp_path / "m.yaml").write_text(spec_with_include("lib.yaml", USES_UNIT))
    os.symlink("lib.yaml", tmp_path / "lib.yaml.dot")  # the outputs that are other names of the include
    os.symlink("lib.yaml", tmp_path / "lib.yaml.onnx.data")
    os.link(tmp_path / "lib.yaml", tmp_path / "lib.html")
    os.link(tmp_path / "lib.yaml", tmp_path / "lib.pt")
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_archc(*args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        f"<command line>: error: {output}: the output would overwrite the included file {tmp_path}/lib.yaml, "
        "which this command reads; give another output name\n")
    assert (tmp_path / "lib.yaml").read_text() == LIB and sorted(p.name for p in tmp_path.iterdir()) == before
    assert os.path.islink(tmp_path / "lib.yaml.dot") and os.path.islink(tmp_path / "lib.yaml.onnx.data")


def test_no_output_replaces_the_onnx_model_read(run_archc, tmp_path):
    run_archc("build", str(SPECS / "highway.yaml"), "--profile", "small", "-o", str(tmp_path / "h.onnx"), check=True)
    data = (tmp_path / "h.onnx").read_bytes()
    proc = run_archc("build", "h.onnx", "-o", "./h.onnx", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        "<command line>: error: -o ./h.onnx: the output would overwrite the spec h.onnx, which this command reads; "
        "give another output name\n")
    os.link(tmp_path / "h.onnx", tmp_path / "h.html")
    proc = run_archc("report", "h.onnx", "-o", "h.html", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        "<command line>: error: -o h.html: the output would overwrite the ONNX model h.onnx, which this command "
        "reads; give another output name\n")
    assert (tmp_path / "h.onnx").read_bytes() == data


def test_no_output_replaces_the_external_data_of_the_model_read(run_archc, tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    # a.onnx keeps its weights in the file b.onnx's own external data would be written to
    onnx.save_model(model, tmp_path / "a.onnx", save_as_external_data=True, location="b.onnx.data", size_threshold=0)
    data = (tmp_path / "b.onnx.data").read_bytes()
    proc = run_archc("build", "a.onnx", "-o", "b.onnx", "--external-data", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        f"<command line>: error: -o b.onnx.data: the output would overwrite the external data file "
        f"{tmp_path}/b.onnx.data, which this command reads; give another output name\n")
    assert (tmp_path / "b.onnx.data").read_bytes() == data and not (tmp_path / "b.onnx").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_are_created_with_the_umask(tmp_path, umask):
    (tmp_path / "m.yaml").write_text(TINY)
    (tmp_path / "old.onnx").write_bytes(b"old")
    for out in ("new.py", "old.onnx"):
        target = "torch" if out.endswith(".py") else "onnx"
        args = ["build", "m.yaml", "--target", target, "-o", out]
        if target == "torch":
            args += ["--state-dict", "new.pt"]
        proc = subprocess.run([*archc_command(), *args], cwd=tmp_path, capture_output=True, text=True,
                              preexec_fn=lambda: os.umask(umask))
        assert proc.returncode == 0, proc.stderr
    for name in ("new.py", "new.pt", "old.onnx"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml", "new.pt", "new.py", "old.onnx"]


@pytest.mark.parametrize("exists", [False, True])
def test_each_output_is_written_once(tmp_path, exists):
    # A big model must not be written twice: probing whether an anonymous file can be named must
    # not use up the output's own one chance to be linked.
    fileio._LINKABLE.clear()
    out = tmp_path / "out.bin"
    if exists:
        out.write_bytes(b"old")
    calls = []

    def writer(fh):
        calls.append(1)
        fh.write(b"new")

    fileio.write_atomic_files([(str(out), writer)])
    assert calls == [1] and out.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


# A real `archc build` whose output writing stops halfway (as a slow disk or a big model would),
# so the test can kill it at that moment. FALLBACK=1 takes the named-temporary path.
PAUSING_BUILD = """
import io, os, sys, time
import archc.fileio as fileio

def halfway(fh, writer):
    buffer = io.BytesIO()
    writer(buffer)
    payload = buffer.getvalue()
    fh.write(payload[: len(payload) // 2])
    fh.flush()
    print("PAUSED", flush=True)
    time.sleep(120)
    fh.write(payload[len(payload) // 2:])

fileio._write_payload = halfway
if os.environ.get("FALLBACK") == "1":
    fileio._open_anonymous = lambda *args: None
from archc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _start_paused_build(tmp_path: Path, fallback: bool) -> subprocess.Popen:
    env = dict(os.environ, FALLBACK="1" if fallback else "0")
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_BUILD, "build", str(SPECS / "resnet18.yaml"),
                             "--target", "onnx", "-o", "model.onnx", "--set", "image_size=32"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "PAUSED\n", proc.stderr.read()
    return proc


def _skip_without_anonymous_files(directory) -> None:
    """Unnamed temporaries are used only where they can be named afterwards (a sandbox's /proc
    may refuse the link; archc then writes a named temporary, removed on any exception)."""
    fd = fileio._open_anonymous(str(directory))
    if fd is None:
        pytest.skip("O_TMPFILE files cannot be linked into place here (neither a /proc link nor linkat(AT_EMPTY_PATH))")
    os.close(fd)


def test_a_build_killed_mid_write_leaves_the_old_file_and_no_temporary(tmp_path):
    _skip_without_anonymous_files(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"previous model")
    proc = _start_paused_build(tmp_path, fallback=False)
    try:
        assert sorted(os.listdir(tmp_path)) == ["model.onnx"]  # the half-written data has no name
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]
    assert (tmp_path / "model.onnx").read_bytes() == b"previous model"


def test_a_new_output_killed_mid_write_leaves_nothing(tmp_path):
    _skip_without_anonymous_files(tmp_path)
    proc = _start_paused_build(tmp_path, fallback=False)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert os.listdir(tmp_path) == []


def test_named_temporary_fallback_is_removed_on_sigterm(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"previous model")
    proc = _start_paused_build(tmp_path, fallback=True)
    try:
        names = sorted(os.listdir(tmp_path))
        assert len(names) == 2 and names[0].startswith(".model.onnx.") and names[0].endswith(".archc-tmp")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]
    assert (tmp_path / "model.onnx").read_bytes() == b"previous model"


# -- run --save ------------------------------------------------------------------------------

def _model_with_output_names(path: Path, names: list[str]) -> None:
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity", ["x"], [name]) for name in names]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in names])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_run_save_keeps_hostile_output_names_inside_the_folder(run_archc, tmp_path):
    names = ["../escape", "/tmp/absolute", "a/b", "..", "ok", "OK", "nul\0byte", "dots..", "new\nline", "x" * 300]
    _model_with_output_names(tmp_path / "m.onnx", names)
    proc = run_archc("run", "m.onnx", "--save", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    saved = sorted(os.listdir(tmp_path / "out"))
    assert saved == sorted(["_escape.npy", "_tmp_absolute.npy", "a_b.npy", "output.npy", "ok.npy", "OK_2.npy",
                            "nul_byte.npy", "dots...npy", "new_line.npy", "x" * 120 + ".npy"])
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "out"]
    assert "saved '../escape' to out/_escape.npy" in proc.stdout
    assert "saved 'new\\nline' to out/new_line.npy" in proc.stdout
    assert "\n  'new\\nline': shape (1, 2) float32" in proc.stdout
    assert np.load(tmp_path / "out" / "_escape.npy").shape == (1, 2)


def test_run_reports_a_model_onnxruntime_refuses(run_archc, tmp_path):
    _model_with_output_names(tmp_path / "m.onnx", [""])
    proc = run_archc("run", "m.onnx", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("m.onnx: error: onnxruntime cannot load the model: ")
    assert "Traceback" not in proc.stderr


def test_run_save_onto_a_file_is_an_error(run_archc, tmp_path):
    (tmp_path / "m.yaml").write_text(TINY)
    (tmp_path / "taken").write_text("x")
    proc = run_archc("run", "m.yaml", "--save", "taken", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""  # refused before the model ran
    assert proc.stderr == ("<command line>: error: --save taken: not a directory: it is a regular file; "
                           "give a directory to write the files into\n")
    proc = run_archc("run", "m.yaml", "--save", "taken/out", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"<command line>: error: --save taken/out: not a directory: {tmp_path / 'taken'} is a "
                           "regular file; give a directory to write the files into\n")


# -- other inputs ----------------------------------------------------------------------------

class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_weights_holding_code_are_refused_and_never_run(run_archc, tmp_path, writer):
    marker = tmp_path / "code-ran"
    weights = tmp_path / "w.pt"
    payload = {"fc.weight": _RunsCode(str(marker))}
    if writer == "torch":
        import torch

        torch.save(payload, weights)
    else:
        weights.write_bytes(pickle.dumps(payload, protocol=2))  # torch warns about other protocols
    (tmp_path / "m.yaml").write_text(TINY)
    proc = run_archc("build", "m.yaml", "--target", "onnx", "-o", "m.onnx", "--weights", "w.pt", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("w.pt: error: cannot read a PyTorch state_dict: not a torch.save file holding only "
                           "tensors\n")
    assert not marker.exists() and not (tmp_path / "m.onnx").exists()


def test_inputs_weights_and_models_must_be_regular_files(run_archc, tmp_path):
    os.mkfifo(tmp_path / "x.npy")
    os.mkfifo(tmp_path / "m.onnx")
    (tmp_path / "m.yaml").write_text(TINY)
    proc = run_archc("run", "m.yaml", "--input", "x.npy", cwd=tmp_path)
    assert proc.stderr == "x.npy: error: cannot read the input array: it is a FIFO (named pipe), expected a " \
                          "regular file\n"
    proc = run_archc("build", "m.yaml", "--target", "onnx", "-o", "o.onnx", "--weights", "/dev/zero", cwd=tmp_path)
    assert proc.stderr == "/dev/zero: error: cannot read the weights file: it is a character device, expected a " \
                          "regular file\n"
    for command in ("run", "lint"):
        proc = run_archc(command, "m.onnx", cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr == "m.onnx: error: cannot read the ONNX model: it is a FIFO (named pipe), expected a " \
                              "regular file\n"


# -- command-line numbers ----------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["run", "--batch", "-1"], "argument --batch: expected a whole number from 1 to 2,147,483,647, got -1 "
                               "(see 'archc run --help')"),
    (["run", "--batch", "0"], "argument --batch: expected a whole number from 1 to 2,147,483,647, got 0 "
                              "(see 'archc run --help')"),
    (["verify", "--batch", "1e3"], "argument --batch: expected a whole number from 1 to 2,147,483,647, got '1e3' "
                                   "(see 'archc verify --help')"),
    (["run", "--seed", "-1"], "argument --seed: expected a whole number from 0 to 18,446,744,073,709,551,615, "
                              "got -1 (see 'archc run --help')"),
    (["build", "--target", "onnx", "-o", "m.onnx", "--seed", "99999999999999999999999"],
     "argument --seed: expected a whole number from 0 to 18,446,744,073,709,551,615, got 99999999999999999999999 "
     "(see 'archc build --help')"),
    (["verify", "--rtol", "nan"], "argument --rtol: expected a finite number >= 0, got 'nan' "
                                  "(see 'archc verify --help')"),
    (["verify", "--atol", "-1"], "argument --atol: expected a finite number >= 0, got '-1' "
                                 "(see 'archc verify --help')"),
    (["run", "--dim", "x=²"], "--dim expects NAME=SIZE with a size from 1 to 2,147,483,647, got 'x=²'"),
    (["run", "--batch", "2000000000"], "the random inputs would take 32,000,000,000 bytes, over the limit of "
                                       "4,294,967,296 (check --batch and --dim, or raise ARCHC_MAX_INPUT_BYTES)"),
])
def test_bad_numbers_on_the_command_line(run_archc, tmp_path, args, message):
    (tmp_path / "m.yaml").write_text(TINY)
    proc = run_archc(args[0], "m.yaml", *args[1:], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"<command line>: error: {message}\n"


def test_unknown_command_and_missing_argument(run_archc):
    proc = run_archc("bogus")
    assert proc.returncode == 2
    assert proc.stderr.startswith("<command line>: error: argument COMMAND: invalid choice: 'bogus'")
    proc = run_archc("run")
    assert proc.stderr == "<command line>: error: the following arguments are required: SPEC|MODEL.onnx " \
                          "(see 'archc run --help')\n"

