"""Reading and writing files safely: what archc opens, and how it writes its outputs.

Reading: a spec and the files it includes are read through :func:`read_text`, which
looks at a path with ``os.stat`` before opening it (a device, a directory or, for
included files, a FIFO is never opened), opens without blocking, checks again on the
open descriptor, and reads at most a bounded number of bytes.

Writing: every output goes through :func:`write_atomic`. On Linux the data is written
to an anonymous ``O_TMPFILE`` file that gets a name only once it is complete, so a
process killed mid-write (even by SIGKILL) leaves neither a partial output nor a
temporary file; elsewhere a named temporary in the same directory is removed on any
exception (the CLI turns SIGTERM into one). Files are created with mode 0666 minus
the user's umask, like any other tool's output. A file an output replaces is held open for
a moment (:mod:`archc.replaced`), so that its pages are freed by the next large write, which
reuses them, rather than inside the rename.

Inputs are never outputs: within :func:`guarding_inputs` (the CLI runs each command in it) every
file read here (the spec, each file it includes, an ONNX model, weights, input arrays) is noted,
and an output path that names one of them (the same file, through any link) is refused before
anything is written.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator, Sequence, Union

from archc.errors import Location, SpecError, UsageError
from archc.libc import last_errno, libc
from archc.replaced import REPLACED

#: Largest spec or included file read, in bytes (and the most all of one spec's files may add up to).
MAX_SPEC_BYTES = 16 * 1024 * 1024
#: Environment variable that raises :data:`MAX_SPEC_BYTES`.
MAX_SPEC_BYTES_ENV = "ARCHC_MAX_SPEC_BYTES"
#: Environment variable that, set to anything but 0, allows spec includes from anywhere
#: (here, not in the YAML frontend, so the command line reads it without loading that frontend).
ALLOW_INCLUDE_ENV = "ARCHC_ALLOW_INCLUDE_ANYWHERE"

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a ``st_mode`` describes, in words ("a regular file", "a directory", ...)."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def max_spec_bytes() -> int:
    """The size bound on spec files: :data:`MAX_SPEC_BYTES`, or the environment's override."""
    text = os.environ.get(MAX_SPEC_BYTES_ENV, "").strip()
    if not text:
        return MAX_SPEC_BYTES
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{MAX_SPEC_BYTES_ENV} must be a positive number of bytes, got '{text}'",
                         location=Location("<environment>"))
    return int(text)


class UnreadableFile(Exception):
    """A file archc will not or cannot read; the message says why (never quoting the file).
    ``line`` and ``column`` (1-based, 0 when unknown) point at the offending place, if any."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.line, self.column = line, column


#: per :func:`guarding_inputs` block (innermost last): (device, inode) -> (path, what) of each
#: file read there
_INPUTS: list[dict[tuple[int, int], tuple[str, str]]] = []


@contextlib.contextmanager
def guarding_inputs() -> Iterator[None]:
    """Within the block, the files read through this module are inputs that no output written
    through :func:`check_output_path` / :func:`write_atomic` may replace (``archc build m.yaml -o
    m.yaml``, or an output over a file the spec includes)."""
    _INPUTS.append({})
    try:
        yield
    finally:
        _INPUTS.pop()


def note_input(info: os.stat_result, path: str, what: str) -> None:
    """Note the regular file ``info`` (at ``path``, a ``what``) as read by the command running now
    (for a file read elsewhere than here, such as an ONNX model's external data)."""
    if _INPUTS and stat.S_ISREG(info.st_mode):
        _INPUTS[-1].setdefault((info.st_dev, info.st_ino), (path, what))


def _input_at(info: os.stat_result) -> tuple[str, str] | None:
    """(path, what) of the input that the file ``info`` describes is, or None."""
    return _INPUTS[-1].get((info.st_dev, info.st_ino)) if _INPUTS else None


def read_text(path: str, *, what: str = "spec", allow_pipe: bool = False) -> str:
    """The UTF-8 text of the file at ``path``, read only if it is a regular file of bounded size.

    ``allow_pipe`` also accepts a FIFO (a spec given on the command line as ``/dev/stdin`` or
    ``<(...)``); it is still read no further than the limit. Errors are :class:`SpecError`
    located at ``path`` that name what was found and what was expected, never the file's content.
    """
    try:
        return read_bounded_text(path, max_spec_bytes(), allow_pipe=allow_pipe, what=what)
    except UnreadableFile as exc:
        raise SpecError(f"cannot read the {what}: {exc}", location=Location(path, exc.line, exc.column)) from None


def require_regular_file(path: str, what: str) -> None:
    """Raise :class:`SpecError` at ``path`` unless it is an existing regular file (checked before
    a library opens it, so a FIFO cannot block and a device cannot be read without end)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read the {what}: {_reason(exc)}", location=Location(path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(f"cannot read the {what}: it is {file_kind(info.st_mode)}, expected a regular file",
                        location=Location(path))
    note_input(info, path, what)


def read_bounded_text(path: str, limit: int, allow_pipe: bool = False, what: str = "file") -> str:
    """Like :func:`read_text` with an explicit byte limit; raises :class:`UnreadableFile`.
    ``what`` names the file (``included file``) where an output would replace it."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise UnreadableFile(_reason(exc)) from None
    if not (stat.S_ISREG(info.st_mode) or (allow_pipe and stat.S_ISFIFO(info.st_mode))):
        expected = "a regular file" + (" or a pipe" if allow_pipe else "")
        raise UnreadableFile(f"it is {file_kind(info.st_mode)}, expected {expected}")
    if stat.S_ISREG(info.st_mode) and info.st_size > limit:
        raise UnreadableFile(_too_big(info.st_size, limit))
    data = _read_bounded(path, info, limit)
    note_input(info, path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:  # located at the first byte that is not UTF-8
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UnreadableFile(f"it is not UTF-8 text (byte 0x{data[exc.start]:02x})", line, column) from None


def _read_bounded(path: str, info: os.stat_result, limit: int) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if stat.S_ISREG(info.st_mode):
        flags |= getattr(os, "O_NONBLOCK", 0)  # if the path was swapped for a FIFO, opening must not wait
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnreadableFile(_reason(exc)) from None
    with open(fd, "rb") as fh:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise UnreadableFile("the file was replaced while it was being opened")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise UnreadableFile(_reason(exc)) from None
    if len(data) > limit:
        raise UnreadableFile(_too_big(None, limit))
    return data


def _too_big(size: int | None, limit: int) -> str:
    found = f"{size:,} bytes" if size is not None else f"over {limit:,} bytes"
    return (f"it is too large ({found}; the limit is {limit:,} bytes, "
            f"raised by the environment variable {MAX_SPEC_BYTES_ENV})")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValueError):
        return "the path contains a NUL byte"
    return (exc.strerror or str(exc)).lower() if isinstance(exc, OSError) else str(exc)


# -- outputs ------------------------------------------------------------------------------

def _output_error(message: str, path: str, option: str | None) -> UsageError:
    """An output problem: at ``<command line>`` naming the option when a flag gave the path."""
    if option:
        return UsageError(f"{option} {path}: {message}", location=Location("<command line>"))
    return UsageError(message, location=Location(path))


def check_output_path(path: str, option: str | None = None) -> None:
    """Refuse an output path archc must not write: a directory, a device, a FIFO, a missing folder,
    a file this command reads (:func:`guarding_inputs`).

    ``option`` names the flag that gave the path (``-o``); errors are then located at
    ``<command line>``. An existing regular file (or a link to one) is fine: it is replaced.
    """
    if not path or "\0" in path:
        raise _output_error("not a valid file name", path.replace("\0", "\\0"), option)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise _output_error(f"the output directory does not exist: {directory}", path, option) from None
        return
    except OSError as exc:
        raise _output_error(f"cannot write the output: {_reason(exc)}", path, option) from None
    if stat.S_ISDIR(info.st_mode):
        raise _output_error("the output is a directory; give a file name", path, option)
    if not stat.S_ISREG(info.st_mode):
        raise _output_error(f"the output is {file_kind(info.st_mode)}; archc writes only regular files "
                            "(it never replaces a device or a pipe)", path, option)
    read = _input_at(info)
    if read is not None:
        raise _output_error(overwrites_input_message(*read), path, option)


def overwrites_input_message(source: str, what: str) -> str:
    """The words refusing an output that is the input ``source`` (``what``: spec, included file...)."""
    return f"the output would overwrite the {what} {source}, which this command reads; give another output name"


def check_output_directory(path: str, option: str | None = None) -> None:
    """Refuse a directory archc is to write files into (creating it and its parents) when it cannot
    be one: an existing file that is no directory, or beneath such a file. Checked before any work,
    as :func:`check_output_path` is for files."""
    if not path or "\0" in path:
        raise _output_error("not a valid directory name", path.replace("\0", "\\0"), option)
    existing = os.path.abspath(path)
    while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    try:
        info = os.stat(existing)
    except OSError as exc:
        raise _output_error(f"cannot write the output: {_reason(exc)}", path, option) from None
    if not stat.S_ISDIR(info.st_mode):
        what = "it" if existing == os.path.abspath(path) else existing
        raise _output_error(f"not a directory: {what} is {file_kind(info.st_mode)}; give a directory "
                            "to write the files into", path, option)


@dataclass(frozen=True)
class Streamed:
    """An output written by ``write`` whose ``size`` in bytes is known before it is written. Its
    disk space is reserved first (Linux ``fallocate``), so a full disk is reported before
    anything is written, and ext4 neither reserves blocks page by page as they are written nor
    flushes the whole file when it is renamed over an existing one (its safeguard for
    replace-by-rename of delayed-allocation files): about a third less time for a large file."""

    write: Callable[[BinaryIO], None]
    size: int
    #: whether :func:`write_atomic_files` frees the outputs replaced before (:mod:`archc.replaced`)
    #: before calling ``write``; False when ``write`` calls ``REPLACED.release()`` itself, before
    #: its first write but once it has other work running beside it
    releases_replaced: bool = True


#: What an output is made of: its bytes or text, or a function that writes them to a binary file
#: (called again from the start if the first way of writing fails before anything was named),
#: or such a function with the size it will write.
Content = Union[bytes, str, Callable[[BinaryIO], None], Streamed]


def write_atomic(path: str, data: Content, option: str | None = None) -> None:
    """Write ``data`` to ``path`` completely or not at all, leaving no temporary file behind.

    A new file gets mode 0666 minus the umask. ``option`` names the command-line flag that
    gave ``path``, for the error location. Raises :class:`UsageError` on any failure.
    """
    write_atomic_files([(path, data)], option)


def write_atomic_files(outputs: Sequence[tuple[str, Content]], option: str | None = None) -> None:
    """Write several files that belong together (an ONNX model and its external data): all of
    them or none.

    Each is written completely to a temporary first (an unnamed ``O_TMPFILE`` file on Linux,
    else a named temporary in its directory); only when every one is complete are they given
    their names, in the order given (the data before the model that points into it, so a
    reader never sees a model without its data). On any failure every temporary is removed
    and the files named so far by this call are removed again.
    """
    for path, _ in outputs:
        check_output_path(path, option)
    contents = [(path, data, _writer(data)) for path, data in outputs]
    large = [(path, data) for path, data, (_, size) in contents if (size or 0) >= _RESERVE_MIN_BYTES]
    REPLACED.replacing(path for path, _ in large)
    if any(not isinstance(data, Streamed) or data.releases_replaced for _, data in large):
        REPLACED.release()  # the outputs replaced before free their pages now (and the files these
        # replace drop theirs where written back), for these to reuse
    staged: list[_Staged] = []
    named: list[str] = []
    path = outputs[0][0] if outputs else ""
    try:
        for path, _, content in contents:
            staged.append(_Staged.write(path, content))
        for stage in staged:
            path = stage.path
            stage.commit()
            named.append(stage.path)
    except OSError as exc:  # permissions, a full disk: say so; nothing is left behind
        for done in named:
            _unlink_quietly(done)
        raise _output_error(f"cannot write the output: {_reason(exc)}", path, option) from None
    except BaseException:  # KeyboardInterrupt and the CLI's SIGTERM exit included
        for done in named:
            _unlink_quietly(done)
        raise
    finally:
        for stage in staged:
            stage.discard()


def _writer(data: Content) -> tuple[Callable[[BinaryIO], None], int | None]:
    """The function writing ``data`` and the size it writes, if known."""
    if isinstance(data, Streamed):
        return data.write, data.size
    if callable(data):
        return data, None
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return (lambda fh: fh.write(payload)), len(payload)


#: Outputs smaller than this are not reserved ahead (a system call for nothing measurable).
_RESERVE_MIN_BYTES = 1 << 20
_FALLOC_FL_KEEP_SIZE = 1


def _reserve(fd: int, size: int) -> None:
    """Allocate ``size`` bytes of disk to the file ``fd`` without changing its length (Linux
    ``fallocate(FALLOC_FL_KEEP_SIZE)``); a full disk or quota raises OSError, anything else
    (another system, a file system that cannot) leaves the file as it is."""
    fallocate = _fallocate()
    if fallocate is None or size < _RESERVE_MIN_BYTES:
        return
    if fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, size) != 0:
        code = last_errno()
        if code in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(code, os.strerror(code))


_FALLOCATE: list = []


def _fallocate():
    """libc's 64-bit ``fallocate`` on Linux, else None (looked up once)."""
    if not _FALLOCATE:
        function = None
        if sys.platform.startswith("linux"):
            import ctypes

            lib = libc()
            function = getattr(lib, "fallocate64", None) or getattr(lib, "fallocate", None)
            if function is not None:
                function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
                function.restype = ctypes.c_int
        _FALLOCATE.append(function)
    return _FALLOCATE[0]


class _Staged:
    """One output written in full under no name (or a temporary one), waiting to be named."""

    def __init__(self, path: str, fd: int, temp: str | None, writer: Callable[[BinaryIO], None],
                 size: int | None = None) -> None:
        self.path, self.fd, self.temp, self.writer, self.size = path, fd, temp, writer, size
        self.directory = os.path.dirname(os.path.abspath(path))

    @classmethod
    def write(cls, path: str, content: tuple[Callable[[BinaryIO], None], int | None]) -> "_Staged":
        directory = os.path.dirname(os.path.abspath(path))
        fd = _open_anonymous(directory)
        temp = None
        if fd is None:
            temp = _temp_name(directory, path)
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        stage = cls(path, fd, temp, *content)
        try:
            stage._fill(fd)
        except BaseException:
            stage.discard()
            raise
        return stage

    def _fill(self, fd: int) -> None:
        if self.size:
            _reserve(fd, self.size)
        with open(os.dup(fd), "wb") as fh:
            _write_payload(fh, self.writer)
            written = fh.tell()
        if self.size and written < self.size:  # release space reserved beyond what was written
            os.ftruncate(fd, written)

    def commit(self) -> None:
        """Give the complete file its name (replacing an existing file in one rename)."""
        if self.temp is None:
            temp = _link_into_place(self.fd, self.directory, self.path)
            if temp is None:  # /proc links refused (a sandbox): write it again under a temporary name
                self.temp = _temp_name(self.directory, self.path)
                fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
                try:
                    self._fill(fd)
                finally:
                    os.close(fd)
                temp = self.temp
            if temp == self.path:
                return
            self.temp = temp  # the temporary name exists only for the calls between link and rename
        old = REPLACED.open(self.path)  # freeing the old file's pages waits for a better moment
        try:
            os.replace(self.temp, self.path)
        except BaseException:
            if old is not None:
                os.close(old)
            raise
        if old is not None:
            REPLACED.keep(old)
        self.temp = None

    def discard(self) -> None:
        """Close the file; remove a temporary name that was not renamed into place."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.temp is not None:
            _unlink_quietly(self.temp)
            self.temp = None


def _open_anonymous(directory: str) -> int | None:
    """Linux: an unnamed O_TMPFILE file in ``directory``; None where unsupported, or where it
    could not be given a name afterwards (checked once per directory before writing anything,
    so a large output is never written twice)."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if not tmpfile or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        fd = os.open(directory, tmpfile | os.O_RDWR | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return None
        raise
    if not _can_link(directory):
        os.close(fd)
        return None
    return fd


_LINKABLE: dict[str, bool] = {}


def _can_link(directory: str) -> bool:
    """Whether an anonymous file in ``directory`` can be linked into it (a sandbox's /proc may
    refuse); tried once per directory on a throw-away anonymous file and name. Never on the
    output's own file: Linux lets an O_TMPFILE file be linked once it has had no name, but not
    again after that name is removed, so a probe on it would force a second write."""
    if directory not in _LINKABLE:
        probe = _temp_name(directory, "probe")
        fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            _link_fd(fd, probe)
        except OSError:
            _LINKABLE[directory] = False
        else:
            _unlink_quietly(probe)
            _LINKABLE[directory] = True
        finally:
            os.close(fd)
    return _LINKABLE[directory]


def _link_fd(fd: int, path: str) -> None:
    """Give the anonymous file ``fd`` the name ``path``: through /proc, or, where a sandbox's /proc
    refuses that, by ``linkat(fd, "", ..., AT_EMPTY_PATH)`` (needs CAP_DAC_READ_SEARCH, as root has)."""
    try:
        os.link(f"/proc/self/fd/{fd}", path)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        refused = exc
    at_empty_path, at_fdcwd = 0x1000, -100
    if libc().linkat(fd, b"", at_fdcwd, os.fsencode(path), at_empty_path) != 0:
        code = last_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), path)
        raise refused


def _link_into_place(fd: int, directory: str, path: str) -> str | None:
    """Name the anonymous file: ``path`` itself when new, else a temporary name; None if linking fails."""
    try:
        _link_fd(fd, path)  # a new output gets its final name directly: no temporary name at all
        return path
    except FileExistsError:
        pass
    except OSError:  # links refused (a sandbox): fall back to a named temporary
        return None
    temp = _temp_name(directory, path)
    try:
        _link_fd(fd, temp)
    except OSError:
        return None
    return temp


_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def _write_payload(fh: BinaryIO, writer: Callable[[BinaryIO], None]) -> None:
    writer(fh)


def _temp_name(directory: str, path: str) -> str:
    import secrets  # (here: its import loads hashlib and hmac, which commands reading files never use)

    return os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.archc-tmp")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")
_MAX_STEM = 120


def safe_file_stems(names: Iterable[str]) -> list[str]:
    """A distinct, plain file name stem for each name (output names may hold any text).

    Separators, NUL and other unusual characters become ``_``; leading dots are dropped (no
    ``..``, no hidden files); empty names become ``output``; stems are cut to 120 characters
    and made distinct (ignoring case, for case-insensitive file systems) with ``_2``, ``_3``...
    """
    stems: list[str] = []
    taken: set[str] = set()
    for name in names:
        stem = _UNSAFE_CHARS.sub("_", name).lstrip(".")[:_MAX_STEM] or "output"
        candidate, n = stem, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem}_{n}"
        taken.add(candidate.lower())
        stems.append(candidate)
    return stems
