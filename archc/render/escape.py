"""The one escaping path for every string archc writes into a picture: DOT, HTML, Mermaid.

Names, labels and shapes come from spec files and ONNX models archc does not trust (a node
may be called ``"]; a -> b; x [label="``, ``</script>`` or have a line break). Each output
format gets its strings from exactly one function here, so a test of these functions covers
every place a name can land:

- **DOT** (:func:`dot_text`, :func:`dot_lines`): control characters made visible with
  :func:`archc.pysource.one_line`, then the Graphviz package's :func:`graphviz.escape`
  (backslashes doubled, so ``\\N``/``\\l`` keep no meaning, and never read as an HTML-like
  ``<...>`` label); the package's quoting escapes double quotes. Node and cluster
  *identifiers* are archc's own (``n12``, ``cluster_3``), never a name.
- **HTML** (:func:`html_text`, :func:`script_json`): :func:`html.escape` for text and
  attribute values; JSON inside a ``<script>`` element with ``<``, ``>``, ``&`` and the
  JavaScript line separators written as ``\\uXXXX``, so no ``</script>`` can end it early.
- **Mermaid** (:func:`mermaid_text`): every character outside a small safe set written as a
  Mermaid entity code (``#35;``), inside a quoted label.
"""
from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import Any

import graphviz

from archc.pysource import one_line

__all__ = ["dot_lines", "dot_text", "html_text", "mermaid_lines", "mermaid_text", "script_json"]

_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 _.,:()+=*/-]")
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def dot_text(text: Any) -> str:
    """One line of DOT label text that Graphviz shows literally."""
    return graphviz.escape(one_line(str(text)))


def dot_lines(lines: Sequence[Any]) -> str:
    """Several lines of DOT label text, each shown literally, separated by centred line breaks."""
    return graphviz.nohtml("\\n".join(dot_text(line) for line in lines))


def html_text(text: Any) -> str:
    """Text for an HTML element's content or a quoted attribute value."""
    return html.escape(one_line(str(text)), quote=True)


def script_json(value: Any) -> str:
    """JSON that may stand inside ``<script type="application/json">`` (no ``</script>``, no ``<!--``)."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "".join(_SCRIPT_UNSAFE.get(c, c) for c in text)


def mermaid_text(text: Any) -> str:
    """Mermaid label text: safe characters kept, every other one as an entity code ``#NNN;``."""
    return "".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in one_line(str(text)))


def mermaid_lines(lines: Sequence[Any]) -> str:
    """Several lines of Mermaid label text separated by line breaks (inside a quoted label)."""
    return "<br/>".join(mermaid_text(line) for line in lines)
