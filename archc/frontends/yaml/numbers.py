"""Numbers as people write them: ``1e-3``, ``5E4``, ``.5e2`` are numbers, not text.

PyYAML follows YAML 1.1, whose float pattern needs a dot and a signed exponent, so
``1e-3`` loads as the string ``'1e-3'``. YAML 1.2 (and Python, and every paper) reads
it as a number; the spec loader and ``--set`` add that pattern for plain (unquoted)
scalars only, so a quoted ``"1e-3"`` stays text.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader

#: scientific notation YAML 1.1 misses: mantissa with or without a dot, exponent with or without a sign
SCIENTIFIC = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class SpecLoader(_BaseLoader):
    """PyYAML's safe loader that also reads scientific notation as floats."""


SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", SCIENTIFIC, list("-+0123456789."))


def load_scalar(text: str) -> Any:
    """One YAML scalar or flow value (``--set NAME=VALUE``), read like a spec's values."""
    return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - a safe loader subclass
