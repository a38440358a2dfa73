"""``archc schema``: print the JSON Schema of the spec format (for editors and CI checks)."""
from __future__ import annotations

import argparse
import sys

EXAMPLE = """example:
  archc schema > spec.schema.json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLE
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    from archc.frontends.yaml.jsonschema import schema_text

    sys.stdout.write(schema_text())
    return 0
