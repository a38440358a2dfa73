"""The ``--max-*`` flags: one per resource limit, read once into a :class:`~archc.limits.Limits`."""
from __future__ import annotations

import argparse
import os
from dataclasses import fields

from archc.limits import DEFAULT_LIMITS, LIMIT_INFO, Limits


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--max-...`` flag per limit, grouped under 'resource limits' in ``--help``."""
    group = parser.add_argument_group(
        "resource limits", "bounds on what a spec may expand to; each also read from its ARCHC_MAX_* "
        "environment variable (a flag wins)")
    for f in fields(Limits):
        info = LIMIT_INFO[f.name]
        group.add_argument(info.flag, dest=f"limit_{f.name}", metavar="N", default=None,
                           help=f"{info.what} (default {getattr(DEFAULT_LIMITS, f.name):,}; {info.env})")


def limits_from(args: argparse.Namespace) -> Limits:
    """The limits this command runs under: defaults, then the environment, then the flags."""
    flags = {f.name: getattr(args, f"limit_{f.name}", None) for f in fields(Limits)}
    return Limits.from_sources(flags, os.environ)
