"""``archc ops [NAME]``: list the registered ops, or one op's attributes, inputs and outputs."""
from __future__ import annotations

import argparse

from archc.errors import Location, UsageError, did_you_mean
from archc.ops import registry
from archc.ops.base import OpDef


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show one op in detail")


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        ops = list(registry.all_ops())
        width = max(len(o.name) for o in ops)
        for op in ops:
            alias = f" (also {', '.join(op.aliases)})" if op.aliases else ""
            print(f"{op.name.ljust(width)}  {op.doc}{alias}")
        return 0
    op = registry.get(args.name)
    if op is None:
        raise UsageError(f"unknown op '{args.name}'", location=Location("<command line>"),
                         hint=did_you_mean(args.name, registry.names()))
    print(describe(op))
    return 0


def describe(op: OpDef) -> str:
    lines = [f"{op.name}: {op.doc}"]
    if op.aliases:
        lines.append(f"  aliases: {', '.join(op.aliases)}")
    lowest, _ = op.arity()
    # (inputs past the fewest an op takes may be left out: upsample's ref, attention's mask)
    names = [n if i < lowest or op.variadic else f"{n} (optional)" for i, n in enumerate(op.inputs)]
    inputs = ", ".join(names) + (", ..." if op.variadic else "")
    lines.append(f"  inputs: {inputs or 'none'}")
    lines.append(f"  outputs: {', '.join(op.outputs)}")
    lines.append(f"  role: {op.role}")
    if op.attrs:
        lines.append("  attributes:")
        for name, attr in op.attrs.items():
            default = "required" if attr.required else f"default {attr.default!r}"
            choices = f", one of {', '.join(map(repr, attr.choices))}" if attr.choices else ""
            doc = f" — {attr.doc}" if attr.doc else ""
            lines.append(f"    {name}: {attr.kind}{attr.bounds()}, {default}{choices}{doc}")
    return "\n".join(lines)
