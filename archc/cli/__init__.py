"""The ``archc`` command line: one module per command, registered in :data:`COMMANDS`.

Each command module has ``add_arguments(parser)`` and ``run(args) -> int``.
Errors a user can cause (:class:`~archc.errors.ArchcError`) are printed as
``file:line:col: error: ...`` lines, followed by the spec line with a caret under the column
(:mod:`archc.cli.display`), never as tracebacks; exit code 2 for invalid
input, 1 for failed checks or missing runtime support.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import signal
import sys
import warnings
from typing import Iterator, NoReturn, Sequence

from archc.cli.display import DiagnosticPrinter
from archc.errors import ArchcError, ArchcWarning
from archc.fileio import guarding_inputs
from archc.progress import clear_line, drawing_to
from archc.terminal import EscapingStream

#: command name -> (module, one-line help). Order is the order of ``archc --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("archc.cli.check", "validate a spec and report every error found"),
    "summary": ("archc.cli.summary", "per-node table: name, op, output shape, parameter count"),
    "lint": ("archc.cli.lint", "find and label skip connections (residual, long, dense, gated); count paths"),
    "graph": ("archc.cli.graph", "draw the model (.dot, .svg, .png, .mmd, .html), edges styled by connection kind"),
    "report": ("archc.cli.report", "one offline HTML page: picture, summary, connections, path-length charts"),
    "schema": ("archc.cli.schema", "print the JSON Schema of the spec format (editors: yaml-language-server)"),
    "ops": ("archc.cli.ops", "list the registered ops, or show one op's attributes"),
    "build": ("archc.cli.build", "lower a spec to a PyTorch module file or an ONNX model"),
    "run": ("archc.cli.run", "run one input through PyTorch or onnxruntime and summarise the outputs"),
    "verify": ("archc.cli.verify", "check that the PyTorch and ONNX builds compute the same function"),
    "spec": ("archc.cli.spec", "write an ONNX model back as a readable spec (blocks, repeats), optionally its weights"),
}


#: a runnable example ending each command's --help (from the repository's root), unless the
#: command's module sets its own epilog
EXAMPLES: dict[str, str] = {
    "check": "archc check specs/resnet18.yaml",
    "summary": "archc summary specs/resnet50.yaml --depth 1 --batch 8",
    "graph": "archc graph specs/resnet18.yaml --collapse -o resnet18.svg",
    "schema": "archc schema > spec.schema.json",
    "ops": "archc ops conv",
    "build": "archc build specs/resnet18.yaml -o resnet18.onnx",
    "run": "archc run specs/resnet18.yaml --set image_size=64 --runtime ort",
    "verify": "archc verify specs/resnet18.yaml --set image_size=64",
    "spec": "archc build specs/resnet18.yaml -o r18.onnx && archc spec r18.onnx -o r18.yaml",
}


class _Parser(argparse.ArgumentParser):
    """argparse with archc's error format: one ``<command line>: error: ...`` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"<command line>: error: {message} (see '{self.prog} --help')\n")

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        """As argparse's, but arguments no parser took are reported by the command's parser, whose
        help lists the command's options (argparse reports them at the top level)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._command_parser(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _command_parser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The subcommand's parser that ``parsed`` went through, or this one."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices.get(getattr(parsed, action.dest, None), self)
        return self


def build_parser(only: str | None = "*") -> argparse.ArgumentParser:
    """The parser of every command (``only="*"``), or one whose only complete subcommand is
    ``only`` (None: none): the others keep their name and help but their modules are not
    imported, so a run pays for importing the command it runs and nothing else."""
    from archc import __version__

    parser = _Parser(prog="archc", description="Neural-architecture graph compiler.")
    parser.add_argument("--version", action="version", version=f"archc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only not in ("*", name):
            continue
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        if p.epilog is None and name in EXAMPLES:
            p.epilog = f"example:\n  {EXAMPLES[name]}"
            p.formatter_class = argparse.RawDescriptionHelpFormatter
        p.set_defaults(_run=mod.run)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command argparse will pick from ``argv``: its first argument that is not an option
    (the top-level parser has only flag options), None when that is not a command."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


#: commands that only read and analyse a model: numpy's few BLAS calls there (the path statistics'
#: dot products) are tiny, so its BLAS thread pool is not started (see :func:`_one_blas_thread`)
ANALYSIS_COMMANDS = frozenset({"check", "summary", "lint", "graph", "report", "schema", "ops"})


#: commands whose only output is what they print: a process running one ends without tearing down
#: the interpreter (see :func:`_end_process`)
PRINTING_COMMANDS = frozenset({"check", "summary", "lint"})


def main(argv: Sequence[str] | None = None) -> int:
    # (the progress bar draws on stderr itself, escaping its label; everything else printed goes
    # through the escaping streams)
    with _terminate_as_exit(), drawing_to(sys.stderr), _escaping_output(), _warnings_as_messages():
        exits_after = argv is None  # the console script and `python -m archc`: the process ends with the command
        argv = sys.argv[1:] if argv is None else list(argv)
        command = _command_in(argv)
        if exits_after and command in ANALYSIS_COMMANDS:
            _one_blas_thread()
        with _collector_paused(exits_after):  # (from the command's imports on: numpy's and onnx's make cycles)
            args = build_parser(command).parse_args(argv)
            code = _run(args)
    if exits_after and command in PRINTING_COMMANDS:
        _end_process(code)
    return code


def _end_process(code: int) -> None:
    """End the process with ``code`` once its output is flushed, skipping the interpreter's teardown:
    freeing every object of a 100k-node model one by one costs 0.08 s of CPU and gives nothing to a
    process that ends. Only commands that write nothing but standard output and error do this (no
    file, thread or exit handler waits on the teardown). Should flushing fail (a closed pipe), the
    ordinary exit runs instead, as before."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def _one_blas_thread() -> None:
    """Ask numpy's OpenBLAS for one thread, unless the user chose a number, before numpy is imported.

    At import OpenBLAS starts a thread per core, which then spin waiting for work: on a small
    machine a fifth of a short ``archc lint``'s CPU time (0.05 s of 0.23 s on a 1k-node ONNX model).
    Only a process that ends with the command sets it (its environment is its own)."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@contextlib.contextmanager
def _collector_paused(exits_after: bool = False) -> Iterator[None]:
    """Python's cyclic garbage collector held off while a command is set up (its modules imported:
    each import's allocations would trigger collections walking every module loaded so far) and
    runs, then restored.

    A command allocates up to millions of small records (graph nodes, analysis records, planned
    source lines) that form no cycles to free early; each allocation burst would trigger a
    collection that walks every live object, torch's heap included (half of a DenseNet-121 source
    generation, double the analysis time of a 100k-node graph). The CLI owns its process, so the
    policy lives here; library calls never touch the collector.

    ``exits_after``: the process ends with the command, so what the command left in reference
    cycles (a spec's elaboration scopes, which hold its graph: 2 M objects for a ResNet of 10k
    blocks) is frozen, not collected: the first collection after ``gc.enable`` would walk it all,
    1.5 s, to free memory the exiting process returns anyway."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if exits_after:
            gc.freeze()
        if was_enabled:
            gc.enable()


def _run(args: argparse.Namespace) -> int:
    try:
        with guarding_inputs():  # no output of the command may replace a file it reads
            return int(args._run(args) or 0)
    except ArchcError as exc:
        DiagnosticPrinter.to(sys.stderr).print_all(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("archc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


@contextlib.contextmanager
def _escaping_output() -> Iterator[None]:
    """Standard output and error through :class:`~archc.terminal.EscapingStream` within the
    block: no text from a spec, a model or the command line drives the terminal, whichever
    message or table it is printed in."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (stream if stream is None else EscapingStream(stream) for stream in saved)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143), so cleanup code (a temporary output file) runs before exit."""
    def terminate(signum, frame):  # noqa: ARG001 - the signal handler signature
        raise SystemExit(128 + signal.SIGTERM)

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (main() called from a thread): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _warnings_as_messages() -> Iterator[None]:
    """Warnings from archc's library code (a broken plug-in) shown as ``archc: warning: ...`` lines."""
    with warnings.catch_warnings():
        others = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, ArchcWarning):
                clear_line()  # a progress bar on the terminal must not run into the warning
                print(f"archc: warning: {message}", file=sys.stderr)
            else:  # another library's warning keeps its usual form
                others(message, category, filename, lineno, file, line)

        warnings.simplefilter("always", ArchcWarning)
        warnings.showwarning = show
        yield


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
