"""``archc graph SPEC|MODEL.onnx -o OUT``: draw the model, edges styled by connection kind.

The format follows OUT's extension: ``.dot`` (Graphviz source), ``.svg`` and ``.png`` (drawn
by Graphviz's ``dot`` program), ``.mmd`` (a Mermaid flowchart for Markdown) and ``.html`` (one
self-contained page that works offline: click to open and close blocks, hover for details).
Block instances are frames; ``--depth N`` draws levels deeper than N as single boxes and
``--collapse`` every block instance as one box (ResNet-50 fits one screen).
"""
from __future__ import annotations

import argparse
import os

from archc.analysis.skips import analyze
from archc.cli.common import add_spec_arguments, load_graph
from archc.errors import Location, UsageError
from archc.fileio import check_output_path, write_atomic
from archc.progress import activity
from archc.render import FORMATS, draw

EXAMPLE = """example:
  archc graph specs/resnet18.yaml --collapse -o resnet18.svg
  archc graph specs/unet.yaml -o unet.html && xdg-open unet.html"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_spec_arguments(parser, models=True)
    parser.add_argument("-o", "--output", required=True,
                        help="output file; its extension picks the format: " + ", ".join(f".{f}" for f in FORMATS))
    parser.add_argument("--depth", type=_depth, metavar="N",
                        help="open N levels of blocks; deeper ones are drawn as single boxes (html: the depth shown first)")
    parser.add_argument("--collapse", action="store_true", help="draw every block instance as a single box")


def _depth(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 1000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 1,000, got '{text}'")
    return int(text)


def output_format(path: str) -> str:
    """The picture format named by the output file's extension; UsageError for another one."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise UsageError(f"-o {path}: cannot tell the format from the extension "
                         f"'{'.' + ext if ext else '(none)'}'; use one of " + ", ".join(f".{f}" for f in FORMATS),
                         location=Location("<command line>"))
    return ext


def run(args: argparse.Namespace) -> int:
    fmt = output_format(args.output)
    check_output_path(args.output, "-o")
    graph = load_graph(args, weights=False)  # a picture needs shapes, never weight values
    with activity(f"drawing {os.path.basename(args.output)}"):
        picture = draw(graph, analyze(graph, paths=False), fmt, depth=args.depth, collapse=args.collapse,
                       output=f"-o {args.output}")
    write_atomic(args.output, picture, "-o")
    return 0
