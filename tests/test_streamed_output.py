"""Outputs of a size known up front (:class:`archc.fileio.Streamed`): their space is reserved
before writing, a full disk is reported before anything is written, and a writer that writes
less than it announced leaves no reserved tail."""
from __future__ import annotations

import ctypes
import errno
import os

import pytest

from archc import fileio
from archc.errors import UsageError
from archc.fileio import Streamed, write_atomic, write_atomic_files

MIB = 1 << 20


def test_a_streamed_output_holds_what_was_written(tmp_path):
    data = bytes(range(256)) * (3 * MIB // 256)
    write_atomic(str(tmp_path / "out.bin"), Streamed(lambda fh: fh.write(data), len(data)))
    assert (tmp_path / "out.bin").read_bytes() == data


def test_writing_less_than_announced_leaves_the_file_at_its_written_length(tmp_path):
    path = tmp_path / "short.bin"
    write_atomic(str(path), Streamed(lambda fh: fh.write(b"abc" * 1000), 8 * MIB))
    assert path.read_bytes() == b"abc" * 1000
    if fileio._fallocate() is not None:
        assert path.stat().st_blocks * 512 < MIB  # the reserved tail was given back


def _full_disk(fd, mode, offset, length):
    ctypes.set_errno(errno.ENOSPC)
    return -1


def _refused(fd, mode, offset, length):
    ctypes.set_errno(errno.EOPNOTSUPP)
    return -1


def test_a_full_disk_is_reported_before_writing_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_FALLOCATE", [_full_disk])
    (tmp_path / "m.onnx").write_bytes(b"old model")
    written = []
    outputs = [(str(tmp_path / "m.onnx.data"), Streamed(lambda fh: written.append(fh.write(b"w" * 10)), 30 * MIB)),
               (str(tmp_path / "m.onnx"), b"model")]
    with pytest.raises(UsageError, match=r"m\.onnx\.data: error: cannot write the output: no space left on device"):
        write_atomic_files(outputs)
    assert written == []  # the weights were never drawn or written
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]
    assert (tmp_path / "m.onnx").read_bytes() == b"old model"


def test_a_file_system_that_cannot_reserve_is_written_all_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_FALLOCATE", [_refused])
    data = b"z" * (2 * MIB)
    write_atomic(str(tmp_path / "out.bin"), Streamed(lambda fh: fh.write(data), len(data)))
    assert (tmp_path / "out.bin").read_bytes() == data
