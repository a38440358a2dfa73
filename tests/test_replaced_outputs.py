"""Outputs replaced by a write are held open for a moment (:mod:`archc.replaced`) and let go by the
next large write, by the background closer, or by the process's exit; the replace stays atomic
and nothing the old file's readers see changes."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from archc import fileio, replaced
from archc.errors import UsageError
from archc.fileio import Streamed, write_atomic, write_atomic_files
from archc.lowering import onnx_draw
from archc.replaced import ReplacedFiles

MIB = 1 << 20
linux_only = pytest.mark.skipif(not hasattr(os, "O_PATH"), reason="holding a replaced file needs O_PATH (Linux)")


@pytest.fixture
def held(monkeypatch) -> ReplacedFiles:
    """A private set of held files (long hold) in place of the process's own."""
    files = ReplacedFiles(hold_seconds=60.0)
    monkeypatch.setattr(fileio, "REPLACED", files)
    monkeypatch.setattr(replaced, "REPLACED", files)
    from archc.lowering import onnx_writer
    monkeypatch.setattr(onnx_writer, "REPLACED", files)
    yield files
    files.release()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@linux_only
def test_the_replaced_file_is_held_and_its_readers_keep_the_old_content(tmp_path, held):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old" * 1000)
    old_inode = path.stat().st_ino
    with open(path, "rb") as reader:
        write_atomic(str(path), b"new")
        assert path.read_bytes() == b"new"
        assert held.held() == 1
        (fd,) = held._fds
        assert os.fstat(fd).st_ino == old_inode and os.fstat(fd).st_nlink == 0
        held.release()
        assert held.held() == 0 and not _is_open(fd)
        assert reader.read() == b"old" * 1000  # closing our hold neither truncates nor changes it
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_a_new_output_holds_nothing(tmp_path, held):
    write_atomic(str(tmp_path / "new.bin"), b"x")
    assert held.held() == 0


@linux_only
def test_a_link_is_held_itself_and_its_target_is_left_alone(tmp_path, held):
    target = tmp_path / "target.bin"
    target.write_bytes(b"target")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    write_atomic(str(link), b"new")
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert target.read_bytes() == b"target"
    assert held.held() == 1
    held.release()
    assert target.read_bytes() == b"target"


@linux_only
def test_the_next_large_write_releases_before_it_writes(tmp_path, held):
    (tmp_path / "a.bin").write_bytes(b"old a")
    write_atomic(str(tmp_path / "a.bin"), b"new a")
    assert held.held() == 1
    seen = []
    data = b"d" * (2 * MIB)
    write_atomic(str(tmp_path / "b.bin"), Streamed(lambda fh: (seen.append(held.held()), fh.write(data)), len(data)))
    assert seen == [0]
    # a writer that releases by itself finds them still held, and small outputs leave them alone
    write_atomic(str(tmp_path / "a.bin"), b"newer a")
    write_atomic(str(tmp_path / "c.bin"), Streamed(lambda fh: (seen.append(held.held()), fh.write(data)), len(data),
                                                   releases_replaced=False))
    write_atomic(str(tmp_path / "d.bin"), b"small")
    assert seen == [0, 1] and held.held() == 1
    assert (tmp_path / "a.bin").read_bytes() == b"newer a"


@linux_only
def test_a_failed_write_leaves_the_old_file_and_holds_nothing(tmp_path, held):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old model")

    def failing(fh):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(UsageError, match="no space left on device"):
        write_atomic(str(path), Streamed(failing, 4 * MIB))
    assert path.read_bytes() == b"old model" and held.held() == 0
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


@linux_only
def test_a_failed_rename_closes_the_hold_and_keeps_the_old_file(tmp_path, held, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old model")
    opened = []
    real_open = ReplacedFiles.open
    monkeypatch.setattr(ReplacedFiles, "open", staticmethod(lambda p: opened.append(real_open(p)) or opened[-1]))

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(UsageError, match="permission denied"):
        write_atomic(str(path), b"new model")
    assert path.read_bytes() == b"old model" and held.held() == 0
    assert len(opened) == 1 and not _is_open(opened[0])
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


@linux_only
def test_the_closer_releases_after_the_hold_time_and_restarts_its_clock(tmp_path):
    files = ReplacedFiles(hold_seconds=0.2)
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"x")
    files.keep(files.open(str(tmp_path / "a")))
    deadline = time.monotonic() + 5
    while files.held() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert files.held() == 0
    # a file kept after a release waits its own full hold time
    files.keep(files.open(str(tmp_path / "a")))
    files.release()
    start = time.monotonic()
    files.keep(files.open(str(tmp_path / "b")))
    time.sleep(0.1)
    assert files.held() == 1
    while files.held() and time.monotonic() < start + 5:
        time.sleep(0.01)
    assert files.held() == 0 and time.monotonic() - start >= 0.2


@linux_only
def test_keeping_and_releasing_from_many_threads_closes_each_descriptor_once(tmp_path, monkeypatch):
    files = ReplacedFiles(hold_seconds=0.01)
    closed = []
    real_close = os.close
    lock = threading.Lock()

    def recording_close(fd):
        with lock:
            closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(replaced.os, "close", recording_close)
    (tmp_path / "f").write_bytes(b"x")
    kept = []

    def work():
        for i in range(200):
            fd = files.open(str(tmp_path / "f"))
            with lock:
                kept.append(fd)
            files.keep(fd)
            if i % 7 == 0:
                files.release()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files.release()
    # descriptor numbers are reused once closed, so compare counts: every keep closed exactly once
    assert len(closed) == len(kept) == 800 and files.held() == 0


def test_without_o_path_nothing_is_held(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "O_PATH", raising=False)
    (tmp_path / "f").write_bytes(b"x")
    assert ReplacedFiles.open(str(tmp_path / "f")) is None
    assert ReplacedFiles.open(str(tmp_path / "missing")) is None


def test_draw_and_write_runs_its_first_task_before_any_write_and_once():
    events = []
    sources = [np.arange(n, dtype=np.float32) for n in (3000, 5, 70000)]
    regions, offset = [], 0
    for source in sources:
        regions.append(onnx_draw.Region(offset, b"hdr", source))
        offset += 3 + source.nbytes
    out = bytearray(offset)

    def write_at(buffers, at):
        events.append("write")
        for b in buffers:
            b = memoryview(b).cast("B")
            out[at:at + len(b)] = b
            at += len(b)

    list(onnx_draw.draw_and_write(regions, write_at, onnx_draw.BufferPool(0),
                                  before_writing=lambda: events.append("first")))
    assert events[0] == "first" and events.count("first") == 1 and "write" in events
    assert bytes(out) == b"".join(b"hdr" + s.tobytes() for s in sources)


@linux_only
def test_rebuilding_an_onnx_file_in_process_releases_the_one_before(tmp_path, held):
    from archc import loads_spec
    from archc.lowering.onnx import build_onnx_parts
    from archc.lowering.onnx_writer import write_onnx

    spec = """archc: 1
name: tiny
inputs: {x: [N, 3, 8, 8]}
nodes:
  - {name: conv, op: conv, out_channels: 512, kernel_size: 3, padding: 1}
outputs: {y: conv}
"""
    path = str(tmp_path / "m.onnx")
    first = build_onnx_parts(loads_spec(spec), seed=0)
    write_onnx(first, path)
    assert held.held() == 0
    write_onnx(build_onnx_parts(loads_spec(spec), seed=0), path)
    assert held.held() == 1
    inode = os.fstat(held._fds[0]).st_ino
    write_onnx(build_onnx_parts(loads_spec(spec), seed=1), path)
    assert held.held() == 1 and os.fstat(held._fds[0]).st_ino != inode  # the first replaced one was let go
    import onnx
    onnx.checker.check_model(path)


def _regions(count: int, values: int) -> tuple[list, int]:
    regions, offset = [], 0
    for i in range(count):
        source = np.full(values, i, dtype=np.float32)
        regions.append(onnx_draw.Region(offset, b"h", source))
        offset += 1 + source.nbytes
    return regions, offset


def _draw_into(regions, size: int) -> bytes:
    out = bytearray(size)

    def write_at(buffers, at):
        for b in buffers:
            b = memoryview(b).cast("B")
            out[at:at + len(b)] = b
            at += len(b)

    list(onnx_draw.draw_and_write(regions, write_at, onnx_draw.BufferPool(0)))
    return bytes(out)


def test_the_drawing_threads_are_kept_for_the_next_file_and_survive_a_failure(monkeypatch):
    monkeypatch.setattr(onnx_draw, "JOB_BYTES", 4096)
    regions, size = _regions(12, 1024)
    expected = b"".join(b"h" + r.source.tobytes() for r in regions)
    threads_seen = {}  # id -> the thread object (an ident may be reused by a later thread; an object is not)
    real_draw = onnx_draw._draw_job

    def recording_draw(*args):
        thread = threading.current_thread()
        threads_seen[id(thread)] = thread
        return real_draw(*args)

    monkeypatch.setattr(onnx_draw, "_draw_job", recording_draw)
    assert _draw_into(regions, size) == expected
    failing = [*regions[:3], onnx_draw.Region(0, b"", FailingArray()), *regions[3:]]
    with pytest.raises(OSError, match="no space"):
        _draw_into(failing, size)
    assert _draw_into(regions, size) == expected
    n = onnx_draw.drawing_threads()
    assert onnx_draw.drawing_executor(n) is onnx_draw.drawing_executor(n)
    kept = set(onnx_draw.drawing_executor(n)._threads)  # three files drawn by the one pool's threads
    assert set(threads_seen.values()) <= kept and len(kept) <= n
    assert threading.current_thread() not in kept


class FailingArray:
    """A source whose drawing fails (a full disk while it is made, say)."""

    dtype = np.dtype(np.float32)
    shape = (1024,)

    def draw(self, start, stop, allocate):
        raise OSError(28, "no space left on device")


def test_a_pool_of_another_size_replaces_the_kept_one(monkeypatch):
    monkeypatch.setattr(onnx_draw, "JOB_BYTES", 4096)
    regions, size = _regions(6, 1024)
    expected = b"".join(b"h" + r.source.tobytes() for r in regions)
    for threads in (1, 3, onnx_draw.drawing_threads()):
        monkeypatch.setattr(onnx_draw, "drawing_threads", lambda threads=threads: threads)
        assert _draw_into(regions, size) == expected
        assert onnx_draw.drawing_executor(threads)._max_workers == threads


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_draws_with_threads_of_its_own():
    regions, size = _regions(8, 300000)  # several jobs of the usual size
    expected = b"".join(b"h" + r.source.tobytes() for r in regions)
    assert _draw_into(regions, size) == expected  # the parent's pool exists before the fork
    threads = onnx_draw.drawing_threads()
    everyone = threading.Barrier(threads)
    for future in [onnx_draw.drawing_executor(threads).submit(everyone.wait, 10) for _ in range(threads)]:
        future.result()  # every thread of the parent's pool has started (and is idle again)
    pid = os.fork()
    if pid == 0:  # the child: its copy of the pool has no threads
        code = 1
        signal.alarm(60)  # a child waiting on threads it does not have dies instead of hanging
        try:
            code = 0 if _draw_into(regions, size) == expected else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# --- the cached pages of a large output about to be replaced (drop_written_back) ---------------

def _cached_pages(path) -> int | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        counts = replaced._cachestat(fd)
    finally:
        os.close(fd)
    return None if counts is None else counts.cache


def _written_back(path, size: int = 4 * MIB) -> None:
    with open(path, "wb") as fh:
        fh.write(os.urandom(size))
        fh.flush()
        os.fsync(fh.fileno())


def _has_cachestat() -> bool:
    with open(__file__, "rb") as fh:  # (None off Linux, without posix_fadvise, or on kernels before 6.5)
        return replaced._cachestat(fh.fileno()) is not None


needs_cachestat = pytest.mark.skipif(not _has_cachestat(), reason="needs Linux's cachestat (6.5 and later)")


@needs_cachestat
def test_a_written_back_file_loses_its_cached_pages_and_keeps_its_content(tmp_path):
    path = tmp_path / "old.onnx"
    _written_back(path)
    content = path.read_bytes()
    assert _cached_pages(path) >= replaced.DROP_MIN_PAGES
    assert replaced.drop_written_back(str(path))
    assert _cached_pages(path) == 0
    assert path.read_bytes() == content


class _Counts:
    def __init__(self, cache: int, dirty: int = 0, writeback: int = 0) -> None:
        self.cache, self.dirty, self.writeback = cache, dirty, writeback


@pytest.mark.parametrize("counts, dropped", [
    (_Counts(1024), True),
    (_Counts(1024, dirty=1), False),       # would write back data about to be replaced
    (_Counts(1024, writeback=3), False),   # being written: its pages cannot be dropped yet
    (_Counts(replaced.DROP_MIN_PAGES - 1), False),  # not worth the calls
    (None, False),                         # a kernel without cachestat: nothing is known
])
def test_only_a_file_whose_pages_are_all_on_disk_is_dropped(tmp_path, monkeypatch, counts, dropped):
    path = tmp_path / "old.onnx"
    path.write_bytes(b"x" * MIB)
    advised = []
    monkeypatch.setattr(replaced, "_cachestat", lambda fd: counts)
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: advised.append(advice))
    assert replaced.drop_written_back(str(path)) is dropped
    assert advised == ([os.POSIX_FADV_DONTNEED] if dropped else [])


@linux_only
def test_links_other_names_and_missing_files_are_left_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(replaced, "_cachestat", lambda fd: _Counts(1024))
    monkeypatch.setattr(os, "posix_fadvise", lambda *args: pytest.fail("advised"))
    target = tmp_path / "target.onnx"
    target.write_bytes(b"x" * MIB)
    (tmp_path / "link.onnx").symlink_to(target)      # the output replaces the link, not its target
    os.link(target, tmp_path / "second-name.onnx")   # the file outlives the rename under its other name
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in ("link.onnx", "target.onnx", "missing.onnx", "fifo"):
        assert not replaced.drop_written_back(str(tmp_path / path))


@linux_only
def test_a_large_write_drops_the_pages_of_the_file_it_replaces_before_writing(tmp_path, held, monkeypatch):
    dropped = []
    monkeypatch.setattr(replaced, "drop_written_back", lambda path: dropped.append(path))
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    data = b"d" * (2 * MIB)
    seen = []
    write_atomic(str(path), Streamed(lambda fh: (seen.append(list(dropped)), fh.write(data)), len(data)))
    assert seen == [[str(path)]] and path.read_bytes() == data
    # a writer that releases by itself drops them when it releases; small outputs drop nothing
    write_atomic(str(path), Streamed(lambda fh: (seen.append(list(dropped)), held.release(), fh.write(data)),
                                     len(data), releases_replaced=False))
    write_atomic(str(path), b"small")
    assert seen == [[str(path)], [str(path)]] and dropped == [str(path), str(path)]
    assert path.read_bytes() == b"small"
    # a large output given as bytes (a state dict) drops them too, text or bytes alike
    write_atomic(str(path), data)
    write_atomic(str(tmp_path / "page.html"), "x" * (2 * MIB))
    assert dropped == [str(path)] * 3 + [str(tmp_path / "page.html")] and path.read_bytes() == data
