"""The ``archc`` command line: one module per command, registered in :data:`COMMANDS`.

Each command module has ``add_arguments(parser)`` and ``run(args) -> int``.
Errors a user can cause (:class:`~archc.errors.ArchcError`) are printed as
``file:line:col: error: ...`` lines, never as tracebacks; exit code 2 for invalid
input, 1 for failed checks or missing runtime support.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from archc.errors import ArchcError

#: command name -> (module, one-line help). Order is the order of ``archc --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("archc.cli.check", "validate a spec and report every error found"),
    "summary": ("archc.cli.summary", "per-node table: name, op, output shape, parameter count"),
    "lint": ("archc.cli.lint", "find and label skip connections (residual, long, dense, gated); count paths"),
    "ops": ("archc.cli.ops", "list the registered ops, or show one op's attributes"),
    "build": ("archc.cli.build", "lower a spec to a PyTorch module file or an ONNX model"),
    "run": ("archc.cli.run", "run one input through PyTorch or onnxruntime and summarise the outputs"),
    "verify": ("archc.cli.verify", "check that the PyTorch and ONNX builds compute the same function"),
    "spec": ("archc.cli.spec", "write an ONNX model back as a readable spec (blocks, repeats), optionally its weights"),
}


def build_parser() -> argparse.ArgumentParser:
    from archc import __version__

    parser = argparse.ArgumentParser(prog="archc", description="Neural-architecture graph compiler.")
    parser.add_argument("--version", action="version", version=f"archc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ArchcError as exc:
        for diag in exc.diagnostics:
            print(diag.format(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("archc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
