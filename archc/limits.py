"""Resource limits for reading untrusted specs: named, cheap, and checked before allocating.

A spec is data from anywhere; a few lines of it can ask for a 10^12-node alias expansion,
a power tower with a billion digits or a block that instantiates itself exponentially.
:class:`Limits` names every bound archc applies, with defaults generous enough for every
shipped spec and for a Llama-2-7B-sized model (6.7 B parameters, a 32000 x 4096 embedding).
A value is built once, by the CLI from its flags and the environment
(:meth:`Limits.from_sources`), and passed down explicitly; library code never reads the
environment and there is no global to mutate.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Sequence

from archc.errors import Location, UsageError


@dataclass(frozen=True)
class LimitInfo:
    """How one limit is named for users: what it bounds, its flag and environment variable."""

    what: str
    flag: str
    env: str


@dataclass(frozen=True)
class Limits:
    """Every resource bound; each field's :data:`LIMIT_INFO` entry says how to raise it."""

    #: nodes and block instances a spec may expand to (after blocks, ``repeat`` and recursion)
    max_nodes: int = 10_000
    #: connections: every node's inputs, summed (a join reading all earlier nodes makes O(n^2))
    max_edges: int = 250_000
    #: one node's ``repeat`` count
    max_repeat: int = 10_000
    #: block instances nested inside each other
    max_block_depth: int = 64
    #: elements of one tensor (the concrete dims' product; symbolic dims count as 1)
    max_tensor_elements: int = 2**32
    #: learned parameters of the whole model
    max_params: int = 20_000_000_000
    #: YAML nodes after alias expansion
    max_yaml_nodes: int = 1_000_000
    #: bits of an integer in a spec or computed by an expression
    max_int_bits: int = 128
    #: characters of a string, or items of a list (nested lists counted in full), in an expression
    max_value_size: int = 100_000
    #: evaluation steps of one expression (nodes visited plus items produced)
    max_expr_work: int = 1_000_000
    #: nesting depth of one expression (``not not ... x``, ``-(-(...))``)
    max_expr_depth: int = 100

    def tensor_problem(self, shape: Sequence[Any], what: str) -> str | None:
        """The message for a tensor of ``shape`` (``what`` names it) with more elements than
        ``max_tensor_elements``, or None; symbolic dims count as 1 (see :func:`known_elements`)."""
        n = known_elements(shape)
        if n <= self.max_tensor_elements:
            return None
        return self.exceeded("max_tensor_elements", f"{what} has {n:,} elements")

    def exceeded(self, field: str, what: str) -> str:
        """The message for a limit that was hit: what happened, the limit, and how to raise it."""
        info = LIMIT_INFO[field]
        return (f"{what}: over the limit of {getattr(self, field):,} {info.what} "
                f"(raise it with {info.flag} N or {info.env}=N)")

    @classmethod
    def from_sources(cls, flags: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> "Limits":
        """Defaults, overridden by the environment (``ARCHC_MAX_*``), overridden by flags.

        ``flags`` maps field names to values given on the command line (None: not given).
        A value that is not a positive integer is a :class:`UsageError` at ``<command line>``
        (a flag) or ``<environment>`` (a variable).
        """
        values: dict[str, int] = {}
        for f in fields(cls):
            info = LIMIT_INFO[f.name]
            text = (environ or {}).get(info.env)
            if text is not None:
                values[f.name] = _positive(text, f"environment variable {info.env}", "<environment>")
            given = (flags or {}).get(f.name)
            if given is not None:
                values[f.name] = _positive(given, info.flag, "<command line>")
        return replace(cls(), **values)


def known_elements(shape: Sequence[Any]) -> int:
    """Elements of a tensor of ``shape``, counting symbolic (non-integer) dims as 1: what is known
    before run time."""
    n = 1
    for d in shape:
        if isinstance(d, int):
            n *= max(d, 0)
    return n


LIMIT_INFO: dict[str, LimitInfo] = {
    "max_nodes": LimitInfo("nodes and block instances", "--max-nodes", "ARCHC_MAX_NODES"),
    "max_edges": LimitInfo("connections (node inputs in all)", "--max-edges", "ARCHC_MAX_EDGES"),
    "max_repeat": LimitInfo("repetitions", "--max-repeat", "ARCHC_MAX_REPEAT"),
    "max_block_depth": LimitInfo("nested block levels", "--max-block-depth", "ARCHC_MAX_BLOCK_DEPTH"),
    "max_tensor_elements": LimitInfo("elements per tensor", "--max-tensor-elements",
                                     "ARCHC_MAX_TENSOR_ELEMENTS"),
    "max_params": LimitInfo("parameters", "--max-params", "ARCHC_MAX_PARAMS"),
    "max_yaml_nodes": LimitInfo("YAML nodes after alias expansion", "--max-yaml-nodes", "ARCHC_MAX_YAML_NODES"),
    "max_int_bits": LimitInfo("bits per integer", "--max-int-bits", "ARCHC_MAX_INT_BITS"),
    "max_value_size": LimitInfo("characters or list items per value", "--max-value-size",
                                "ARCHC_MAX_VALUE_SIZE"),
    "max_expr_work": LimitInfo("evaluation steps per expression", "--max-expr-work", "ARCHC_MAX_EXPR_WORK"),
    "max_expr_depth": LimitInfo("nesting levels per expression", "--max-expr-depth", "ARCHC_MAX_EXPR_DEPTH"),
}

DEFAULT_LIMITS = Limits()


def _positive(value: Any, source: str, where: str) -> int:
    text = str(value).strip().replace("_", "")
    if not text.isdigit() or int(text) < 1 or len(text) > 30:
        raise UsageError(f"{source} expects a positive integer, got '{value}'", location=Location(where))
    return int(text)
