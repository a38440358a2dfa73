"""The closed vocabularies every layer shares: connection kinds, what a shortcut carries, op roles.

They live in :mod:`archc.ir` (the lowest layer: frontends, ops, analyses, backends and the CLI
all import it) and are defined here once. Each member is also its own string (``Kind.RESIDUAL ==
"residual"``, ``str(Kind.RESIDUAL) == "residual"``, JSON writes ``"residual"``), so the spec
schema, the JSON output and the docs read their words from these types instead of keeping lists.

Adding a connection kind: a member of :class:`Kind` (with its description and examples), one
classification rule in :mod:`archc.analysis.rules`, and that rule's test.
"""
from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    """A vocabulary word: compares, hashes, prints and serialises as its text."""

    def __new__(cls, value: str, doc: str = "", examples: str = "") -> "_Word":
        member = str.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        member.examples = examples
        return member

    __str__ = str.__str__
    __format__ = str.__format__
    # The same bucket as the plain string, so sets and dicts mix them. (str's own slot, not a
    # function calling it: Enum's Python-level __hash__ made every lookup of a member a call.)
    __hash__ = str.__hash__

    @classmethod
    def words(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Kind(_Word):
    """What a (fork, merge) pair is. The first four are skip connections; the last two are joins
    that are not skips."""

    RESIDUAL = ("residual",
                "`H(x) = F(x) + x`: a short identity or light-projection shortcut around a few layers, "
                "merged by addition, nothing nested",
                "ResNet, MobileNetV2, Transformer sublayers, GNMT from layer 3")
    LONG_SKIP = ("long_skip",
                 "spans other skips or an encoder→decoder resolution change, or carries pooling indices",
                 "U-Net, FPN, hourglass levels, SegNet")
    DENSE = ("dense",
             "a concat reading every earlier layer's output (one per producer/concat pair)",
             "DenseNet")
    GATED = ("gated", "`H(x)·T(x) + x·(1 − T(x))`", "Highway networks")
    BRANCH = ("branch", "fork-join where every branch computes (not a skip)", "Inception, ASPP, Q/K/V")
    SEQUENTIAL = ("sequential",
                  "a join on the main path that is no skip: gates, data rearrangement, decomposed activations",
                  "squeeze-and-excitation, tanh-GELU")

    @property
    def is_skip(self) -> bool:
        return self in SKIP_KIND_SET


#: labels of joins that are not skips
JOIN_KINDS: tuple[Kind, ...] = (Kind.BRANCH, Kind.SEQUENTIAL)
#: the kinds that are skip connections (counted in a lint summary), in table order: every other kind
SKIP_KINDS: tuple[Kind, ...] = tuple(k for k in Kind if k not in JOIN_KINDS)
#: the same kinds as a set, for membership tests (per join in the analysis)
SKIP_KIND_SET: frozenset[Kind] = frozenset(SKIP_KINDS)
#: what a spec's ``expect:`` may say besides a kind: that the node holds no skip
EXPECT_NONE = "none"


class Carries(_Word):
    """What the shortcut of a (fork, merge) pair carries to the merge."""

    IDENTITY = ("identity", "the fork's value, unchanged or only rearranged element-wise")
    PROJECTION = ("projection", "the fork's value through a light layer (or resampling) that matches the "
                                "main path's shape")
    INDICES = ("indices", "an integer tensor: max-pool indices for unpooling")
    COMPUTED = ("computed", "a value computed by layers of its own")


class Role(_Word):
    """How analyses see an op (``OpDef.role_of``): what it does to the data flow.
    Analyses decide from these, never from op names."""

    INPUT = ("input", "a graph input")
    LAYER = ("layer", "a learned transform (conv, linear, attention, LSTM, embedding, learned tokens)")
    NORM = ("norm", "a normalisation (batch, layer, group norm)")
    ACTIVATION = ("activation", "an element-wise function of one tensor")
    GATE = ("gate", "an activation into (0, 1), e.g. sigmoid or softmax: what gates multiply by")
    POOL = ("pool", "window or global pooling, a mean over dims")
    REDUCE = ("reduce", "other reductions (sum, max, ...)")
    MERGE_ADD = ("merge_add", "element-wise sum of two or more computed tensors")
    MERGE_SUB = ("merge_sub", "element-wise difference of two computed tensors")
    MERGE_MUL = ("merge_mul", "element-wise product of two computed tensors")
    MERGE_CONCAT = ("merge_concat", "concatenation of computed tensors")
    MATMUL = ("matmul", "matrix product of two computed tensors (attention scores)")
    SCALE = ("scale", "times a constant (layer scale, residual scaling): not a merge")
    AFFINE = ("affine", "plus a constant (a bias, an epsilon): not a merge")
    RESHAPE = ("reshape", "rearranges data without computing (reshape, permute, slice, split, pad)")
    UPSAMPLE = ("upsample", "spatial resize")
    UNPOOL = ("unpool", "max unpooling with indices")
    IDENTITY = ("identity", "passes its input through (identity, dropout at inference)")
    SHAPE = ("shape", "computes a shape, not features (dropped from the data flow)")
    CONST = ("const", "not computed from the inputs' contents (dropped from the data flow)")
    OTHER = ("other", "anything else")


#: the role of a merge op whose operands are one computed value and constants: a bias (``affine``), a
#: fixed factor (``scale``), fixed elements set beside the data (``reshape``: ``cat(x, zeros)``), no join of
#: two values. The ONNX importer gives it to a node with a constant input; the analyses to a merge whose
#: other operands hold no data, only a shape read at run time (zeros the size of ``x``: see
#: :mod:`archc.analysis.structure`), so a module reads alike from a static and a dynamic-shape export.
WITH_CONSTANT: dict[Role, Role] = {Role.MERGE_ADD: Role.AFFINE, Role.MERGE_SUB: Role.AFFINE,
                                   Role.MERGE_MUL: Role.SCALE, Role.MERGE_CONCAT: Role.RESHAPE}

#: roles whose output keeps every dim of its first input (its shape and where its features are)
SHAPE_KEEPING: frozenset[Role] = frozenset({Role.ACTIVATION, Role.GATE, Role.IDENTITY, Role.SCALE, Role.AFFINE,
                                            Role.NORM})


def kinds_table() -> str:
    """The README's label table (Markdown), generated from :class:`Kind`."""
    rows = ["| label | meaning | examples |", "|---|---|---|"]
    rows += [f"| `{k.value}` | {k.doc} | {k.examples} |" for k in Kind]
    return "\n".join(rows)
