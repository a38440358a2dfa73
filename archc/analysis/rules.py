"""The classification rules: what kind a (fork, merge) pair is, decided from a record of its facts.

:mod:`archc.analysis.skips` measures each pair — what the shortcut carries, how many layers lie
on each path, whether the span nests other skips or changes resolution — into a
:class:`PairFacts`. :func:`decide` then tries :data:`RULES` in order; the first rule that
applies gives the label, a reason a person can check, and its own name (``archc lint
--explain`` shows it). Each rule is a short function of the facts only, so it can be tested
alone, and adding a kind means adding a rule here (and a member to
:class:`archc.ir.vocab.Kind`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

from archc.ir.vocab import Carries, Kind, Role


def always() -> bool:
    """A probe whose answer is yes for every pair (a :class:`PairFacts` default)."""
    return True


def never() -> bool:
    """A probe whose answer is no for every pair (a :class:`PairFacts` default; the skip analysis
    passes it where a graph cannot say yes, e.g. ``gated`` in a graph without gates)."""
    return False


@dataclass(slots=True)
class PairFacts:
    """What the skip analysis measured about one (fork, merge) pair."""

    merge_op: str             # the merge node's op, for reasons
    merge_role: str           # its role (a :class:`Role`)
    fork: str | None          # the fork's name; None when the inputs share no fork
    carries: Carries | None   # what the lightest input from the fork carries
    changed: bool             # whether that shortcut changes the shape from fork to merge
    depth: int                # parametric layers on the main path's longest path from the fork
    shortcut_layers: int      # parametric layers on the shortcut
    nested: bool              # the main path's span encloses another skip
    resampled: bool           # the main path's span upsamples (an encoder -> decoder round trip)
    family: int = 0           # concats reading the fork directly (DenseNet reuse); 0 when not asked
    members: int = 1          # inputs of the merge sharing this fork
    via: str = ""             # the shortcut's nodes, for a projection's reason
    broadcast: bool = False   # the shortcut's value is broadcast to the merge's shape (an add of a bias)
    levels: int = 0           # inputs of a sum or concat of levels that each went through a learned layer of
    #                           their own, read from several forks (a head's final merge); 0 otherwise
    positions: bool = False   # a concat along an axis other than its inputs' features' (tokens, not channels)
    dominated: bool = True    # the fork dominates the main input (every path to it passes the fork); False
    #                           where the main input also computes from values that never pass the fork
    #                           (FiLM's gamma * h: h comes from x, gamma from the conditioning)
    padded: bool = False      # an identity shortcut that sets fixed elements beside the fork's value (cat(x,
    #                           zeros), a pad: ResNet's option A); for reasons only
    elementwise: Callable[[], bool] = always     # the merge's output has its inputs' broadcast shape
    gated: Callable[[], bool] = never            # the carry is scaled by a sigmoid-derived gate
    feeds_gate: Callable[[], bool] = never       # the merge's output only computes a gate (a sigmoid)
    mixing: Callable[[], bool] = never           # the main path mixes spatially (a window pooling)
    split_part: Callable[[], bool] = never       # the shortcut is a part of the fork (one output of a
    #                                              split) that the main path does not read
    scaled_by_gate: Callable[[], bool] = never   # the merge's output is only scaled by gates (a difference
    #                                              H - x inside Highway's x + T·(H - x))
    streams: Callable[[], bool] = never          # both sides go on past the merge: each computes a value
    #                                              read outside the span from the fork (HRNet's resolutions)


class Decision(NamedTuple):
    kind: Kind
    reason: str
    rule: str


def layers(n: int) -> str:
    """``"1 layer"``, ``"3 layers"`` (cached: every dense pair's reason holds one)."""
    words = _LAYER_WORDS.get(n)
    if words is None:
        words = _LAYER_WORDS[n] = f"{n} layer{'' if n == 1 else 's'}"
    return words


_LAYER_WORDS: dict[int, str] = {}

#: a rule's answer: (kind, reason), or None when the rule does not apply
Verdict = Optional[tuple[Kind, str]]
_ADD_OR_CONCAT = (Role.MERGE_ADD, Role.MERGE_CONCAT)
#: the merges that sum their inputs: a difference is a sum with one term negated (DnCNN's residual learning,
#: ``x - F(x)``, is ``x + (-F)(x)``), so the rules after :func:`other_merge` decide it as they decide an add
SUMS = frozenset({Role.MERGE_ADD, Role.MERGE_SUB})
# (words the rules most pairs reach compare with, bound once: an Enum member's attribute access is a
# Python-level lookup in Python 3.11)
_IDENTITY, _PROJECTION, _COMPUTED, _RESIDUAL = Carries.IDENTITY, Carries.PROJECTION, Carries.COMPUTED, Kind.RESIDUAL
#: the merges that sum or concatenate their inputs
_SUMS_OR_CONCAT = SUMS | {Role.MERGE_CONCAT}


def _why_long(f: PairFacts) -> str:
    one = f.depth == 1  # (the verbs agree with "layer(s)": "1 layer that encloses", "4 layers that enclose")
    why = " and ".join(w for w, on in (("encloses other skips" if one else "enclose other skips", f.nested),
                                       ("down- and upsamples" if one else "down- and upsample", f.resampled))
                       if on)
    return f"across {layers(f.depth)} that {why}"


def _extra(f: PairFacts) -> str:
    if f.members <= 1:
        return ""
    return f", {f.members - 1} more branch{'es' if f.members > 2 else ''}"


def _identity_or_reshaping(f: PairFacts) -> bool:
    """An identity shortcut, or a light projection that exists to change the shape."""
    return f.carries == _IDENTITY or (f.carries == _PROJECTION and f.changed)


def _sum_word(f: PairFacts) -> str:
    """What a sum's reason calls its merge: "add" (an Add, a Sum, an n-ary add), or the difference's op."""
    return f.merge_op if f.merge_role == Role.MERGE_SUB else "add"


def _light(f: PairFacts) -> bool:
    """A computed shortcut at most half as deep as the main path it bypasses."""
    return 2 * f.shortcut_layers <= f.depth


def _carried(f: PairFacts) -> str:
    """What the shortcut carries, for a reason: ``identity``, ``identity, padded``, ``projection``."""
    return f"{f.carries}, padded" if f.padded else f"{f.carries}"


# -- the rules, in the order they are tried ------------------------------------------------------
def no_common_fork(f: PairFacts) -> Verdict:
    """Inputs that meet only at the graph's source: a join of independent paths."""
    if f.fork is None:
        return Kind.BRANCH, f"joins inputs with no common fork ({f.via})"
    return None


def index_arithmetic(f: PairFacts) -> Verdict:
    """Arithmetic on max-pool indices with no layer between (an exporter turning flat indices into
    per-plane ones): data rearrangement on the indices path, never a long skip of no layers."""
    if f.carries == Carries.INDICES and f.depth == 0:
        return Kind.SEQUENTIAL, f"{f.merge_op} rearranges max-pool indices of {f.fork} with no layer between"
    return None


def pooling_indices(f: PairFacts) -> Verdict:
    """A shortcut carrying max-pool indices across layers feeds a decoder's unpooling: a long skip."""
    if f.carries == Carries.INDICES:
        return Kind.LONG_SKIP, (f"{f.merge_op} reads max-pool indices from {f.fork} across {layers(f.depth)} "
                                "(decoder unpooling)")
    return None


def gate_computation(f: PairFacts) -> Verdict:
    """A join whose output only computes a gate (additive attention: ``psi(relu(theta(x) + phi(g)))``
    before a sigmoid): both sides compute the gate; the skip it scales is counted where it lands. Where
    the shortcut computes nothing (a residual block whose output a mask is computed from, Conv-TasNet's
    last block), the join is what it is without the gate."""
    if f.shortcut_layers > 0 and f.feeds_gate():
        return Kind.BRANCH, f"{f.merge_op} of paths from {f.fork} computes a gate (both sides compute)"
    return None


def learned_merge(f: PairFacts) -> Verdict:
    """A learned layer reading the fork by several paths (attention's queries and keys from ``x + pos``,
    its values from ``x``, as DETR's): it computes from each through its own weights, a branch join,
    whatever lies on the paths."""
    if f.merge_role == Role.LAYER:
        return Kind.BRANCH, (f"{f.merge_op} reads {f.fork} by several paths and computes from each with its own "
                             "weights (e.g. attention's queries, keys and values)")
    return None


def arithmetic_without_layers(f: PairFacts) -> Verdict:
    """A product, difference or matmul with no layer on either path: decomposed arithmetic
    (element-wise) or two views of one value combined (a contraction)."""
    if f.merge_role in _ADD_OR_CONCAT or f.depth or f.shortcut_layers:
        return None
    if f.elementwise():
        return Kind.SEQUENTIAL, f"{f.merge_op} of {f.fork} with no layer on either path (element-wise arithmetic)"
    return Kind.BRANCH, (f"{f.merge_op} combines two views of {f.fork} with no layer between "
                         "(e.g. attention scores from a fused projection)")


def multiplicative_gate(f: PairFacts) -> Verdict:
    """The fork's value times a function of it (squeeze-and-excitation): a step of the main path. One half
    of a split times a function of the other half (a GLU) is no such gate: both halves are computed."""
    if f.merge_role == Role.MERGE_MUL and f.carries == Carries.IDENTITY and f.depth > f.shortcut_layers \
            and not f.split_part():
        return Kind.SEQUENTIAL, (f"multiplicative gate on the main path: {f.fork} times a function of it "
                                 f"({layers(f.depth)}), not a skip")
    return None


def other_merge(f: PairFacts) -> Verdict:
    """Any other product or matmul of computed paths: a branch join. A difference with a layer on a path
    is a sum (``x - F(x)``: a residual learned by subtraction), decided by the add rules that follow, unless
    a gate scales it: then it is a term of the gating (Highway's ``x + T·(H − x)``), a branch as a product is."""
    if f.merge_role in _ADD_OR_CONCAT or f.merge_role == Role.MERGE_SUB and not f.scaled_by_gate():
        return None
    if f.shortcut_layers == 0:
        return Kind.BRANCH, f"{f.merge_op} of {f.fork} and a path computing from it ({layers(f.depth)})"
    return Kind.BRANCH, (f"{f.merge_op} joins paths from {f.fork} that compute "
                         f"({layers(f.shortcut_layers)} and {layers(f.depth)})")


def token_mixer(f: PairFacts) -> Verdict:
    """``x + F(x)`` where F holds no learned layer but mixes spatially (PoolFormer's
    ``pool(norm(x)) - norm(x)``): a residual by design. Decomposed activations and norms do not mix."""
    if f.merge_role == Role.MERGE_ADD and f.depth == 0 and _identity_or_reshaping(f) and f.mixing():
        return Kind.RESIDUAL, f"{f.carries} shortcut from {f.fork} around a token mixer (spatial pooling, no layer)"
    return None


def no_layer_between(f: PairFacts) -> Verdict:
    """An add or concat with no layer on the main path: rearrangement or arithmetic, no skip. An add onto a
    main input that also computes from values never passing the fork (FiLM's or adaLN's shift, ``gamma * h +
    beta`` with gamma and beta one split's parts; Glow's coupling ``x_b * exp(log_s) + t``) is no arithmetic
    on one value where the shift is broadcast (:func:`broadcast_injection`) or a part of the fork the main
    path never reads (:func:`shift_injection`). Sums of one value's partial sums (``a + (a + b)``) stay here."""
    if f.depth == 0 and not (not f.dominated and f.merge_role in SUMS and (f.broadcast or f.split_part())):
        return Kind.SEQUENTIAL, f"no layer between {f.fork} and the {f.merge_op} (rearrangement or arithmetic)"
    return None


def highway_gate(f: PairFacts) -> Verdict:
    """An add of a gate-scaled carry and a gated transform: Highway's H·T + x·(1 − T)."""
    if f.merge_role in SUMS and f.gated():
        return Kind.GATED, (f"add of a gate-scaled carry of {f.fork} and a gated transform "
                            f"({layers(f.depth)}): Highway")
    return None


def broadcast_injection(f: PairFacts) -> Verdict:
    """An add whose shortcut is broadcast to the main path's shape (a per-channel or per-token value: a
    diffusion U-Net's timestep embedding, FiLM's or adaLN's shift) injects a value into the main path;
    it does not carry the fork's value around it (a residual's ``x`` has the shape of ``F(x)``)."""
    if f.broadcast and f.merge_role in SUMS:
        if f.depth == 0:  # (no layer from the fork: the main path computes from values that never pass it)
            return Kind.BRANCH, (f"add injects a value from {f.fork} broadcast to the shape of a main path "
                                 "computed from other values (conditioning, not a shortcut)")
        return Kind.BRANCH, (f"add injects a value from {f.fork} broadcast to the shape of a path of "
                             f"{layers(f.depth)} (conditioning, not a shortcut)")
    return None


def shift_injection(f: PairFacts) -> Verdict:
    """An add of one part of the fork (a split's output, a slice) that the main input never reads, with no
    layer from the fork to the main input, onto a main input that computes from values never passing the
    fork (FiLM's shift per position, Glow's affine coupling ``x_b * exp(log_s) + t`` with ``log_s, t`` one
    split's parts): the shift is a path of its own into the main path, as a broadcast one is
    (:func:`broadcast_injection`), not arithmetic on one value."""
    if f.depth == 0 and not f.dominated and f.merge_role in SUMS and f.split_part():
        return Kind.BRANCH, (f"{_sum_word(f)} injects a value from {f.fork} into a main path computed from other "
                             "values (a shift: conditioning or a coupling, not a shortcut)")
    return None


def projected_part(f: PairFacts) -> Verdict:
    """A sum whose shortcut puts a learned layer on a part of the fork (a slice, a split's output) that the
    main path never reads (an unrolled LSTM's gates ``W_ih x_t + W_hh h_{t-1}``, ``x_t`` one step of the
    sequence the earlier steps' cells read the other steps of): a projection shortcut matches the shape
    of the very ``x`` that ``F`` computes from; this layer computes features of its own, so both inputs
    compute: a branch join. An identity part (Res2Net's ``sp + spx[i]``) stays a residual-like connection."""
    if f.merge_role in SUMS and f.carries == Carries.PROJECTION and f.split_part():
        return Kind.BRANCH, (f"{_sum_word(f)} of a learned layer ({layers(f.shortcut_layers)}) on a part of "
                             f"{f.fork} the main path never reads and a path computing from its other parts "
                             f"({layers(f.depth)}): both compute")
    return None


def computed_levels(f: PairFacts) -> Verdict:
    """A sum or concat of three or more inputs from several forks, each through a learned layer of its
    own (a segmentation head merging every pyramid level after its own projection): every input
    computes, so it is a branch join, not a skip per level."""
    if f.levels and f.merge_role in _ADD_OR_CONCAT:
        return Kind.BRANCH, (f"{f.merge_op} of {f.levels} inputs from several forks, each through a layer of "
                             "its own (a merge of computed levels: every input computes)")
    return None


def concat_of_positions(f: PairFacts) -> Verdict:
    """A concat along an axis other than its inputs' features (CaiT's class token prepended to the patch
    tokens that class attention reads): it appends positions for a layer to read, it reuses no
    features and carries nothing around a block: a branch join."""
    if f.positions and f.merge_role == Role.MERGE_CONCAT:
        return Kind.BRANCH, (f"concat of positions: {f.fork}'s appended along an axis other than the features', "
                             f"beside a path of {layers(f.depth)} (no feature reuse)")
    return None


def _resample_verb(f: PairFacts) -> str:
    """"down- and upsamples" after "1 layer that", "down- and upsample" after "3 layers that"."""
    return "down- and upsamples" if f.depth == 1 else "down- and upsample"


def both_compute(f: PairFacts) -> Verdict:
    """A shortcut with at least as many layers as the main path is a branch of its own, also where the main
    path down- and upsamples and the shortcut keeps the fork's resolution (an octave convolution's two
    frequencies, ``conv(x) + up(conv(pool(x)))``): which resolution a path keeps makes it no shortcut."""
    if f.depth <= f.shortcut_layers:
        trip = f" that {_resample_verb(f)}" if f.resampled else ""
        return Kind.BRANCH, (f"both paths from {f.fork} compute ({layers(f.shortcut_layers)} and "
                             f"{layers(f.depth)}{trip})")
    return None


def parallel_streams(f: PairFacts) -> Verdict:
    """Parallel streams exchanging (HRNet's fusion): a computed shortcut beside a round trip, both going on.

    A sum or concat of a computed shortcut and a main path that down- and upsamples, where both sides go on
    past the join (each resolution's branch also feeds the other resolutions' sums): two streams that run
    side by side from the fork and exchange here, not a value carried across a decoder's detour, however
    few layers either side holds (the depths alone made one block per branch a long skip, two a branch)."""
    if f.carries == _COMPUTED and f.resampled and f.merge_role in _SUMS_OR_CONCAT and f.streams():
        word = _sum_word(f) if f.merge_role in SUMS else f.merge_op
        return Kind.BRANCH, (f"{word} joins parallel streams from {f.fork} that both go on past it "
                             f"({layers(f.shortcut_layers)} and {layers(f.depth)} that {_resample_verb(f)}): "
                             "an exchange, not a carry across a detour")
    return None


def dense_reuse(f: PairFacts) -> Verdict:
    """A feature read unchanged by several concats, at one resolution: DenseNet's reuse."""
    if f.merge_role == Role.MERGE_CONCAT and f.carries == Carries.IDENTITY and f.family >= 2 and not f.resampled:
        return Kind.DENSE, (f"concat reuses {f.fork}, which {f.family} concats read (DenseNet-style), "
                            f"across {layers(f.depth)}")
    return None


def pyramid_pooling(f: PairFacts) -> Verdict:
    """A concat of a feature with two or more branches from it that each pool it and upsample it back,
    none of them holding a skip (PSPNet's pyramid pooling module): a multi-branch block whose branches
    all read the feature, the feature itself one of them; no encoder -> decoder link."""
    # (members: the fork's inputs but the main one, the identity among them; the main one is a branch)
    if f.merge_role == Role.MERGE_CONCAT and f.carries == _IDENTITY and f.members >= 2 and f.resampled \
            and not f.nested:
        return Kind.BRANCH, (f"concat of {f.fork} and {f.members} branches from it that down- and "
                             f"upsample it ({layers(f.depth)} on the longest; pyramid pooling)")
    return None


def concat_long_skip(f: PairFacts) -> Verdict:
    """A concat carrying a light shortcut across nested skips or a resolution round trip (U-Net)."""
    if f.merge_role == Role.MERGE_CONCAT and f.carries in (Carries.IDENTITY, Carries.PROJECTION) \
            and (f.nested or f.resampled):
        return Kind.LONG_SKIP, f"concat carries {f.fork} ({_carried(f)}) {_why_long(f)}"
    return None


def concat_computed_long_skip(f: PairFacts) -> Verdict:
    """A concat carrying a computed shortcut, light beside the main path, to the decoder side of a
    resolution round trip that encloses other skips."""
    if f.merge_role == Role.MERGE_CONCAT and f.carries == Carries.COMPUTED and f.resampled and f.nested \
            and _light(f):
        return Kind.LONG_SKIP, (f"concat carries {f.fork} (computed, {layers(f.shortcut_layers)}) "
                                f"{_why_long(f)}")
    return None


def concat_feature_reuse(f: PairFacts) -> Verdict:
    """A concat reading an earlier feature unchanged beside layers computed from it."""
    if f.merge_role == Role.MERGE_CONCAT and f.carries == Carries.IDENTITY:
        return Kind.DENSE, f"concat reuses {f.fork} across {layers(f.depth)} (feature reuse)"
    return None


def concat_branch(f: PairFacts) -> Verdict:
    """Any other concat: its inputs compute (Inception)."""
    if f.merge_role == Role.MERGE_CONCAT:
        return Kind.BRANCH, (f"concat of a {f.carries} path ({layers(f.shortcut_layers)}) and "
                             f"{layers(f.depth)} from {f.fork}{_extra(f)}")
    return None


def add_long_skip(f: PairFacts) -> Verdict:
    """An add carrying a light shortcut across nested skips or a resolution round trip. Across a round
    trip a projection that keeps the shape is light too (an FPN lateral on a pyramid of one width)."""
    if (_identity_or_reshaping(f) or f.carries == _PROJECTION and f.resampled and _light(f)) \
            and (f.nested or f.resampled):
        return Kind.LONG_SKIP, f"{_sum_word(f)} carries {f.fork} ({_carried(f)}) {_why_long(f)}"
    return None


def residual(f: PairFacts) -> Verdict:
    """``F(x) + x``: an identity, or a light projection that matches the shape, around layers."""
    if _identity_or_reshaping(f):
        via = "" if f.carries == _IDENTITY else f" via {f.via}"
        padded = " (padded)" if f.padded else ""  # (ResNet's option A: "identity shortcuts ... zero-padding")
        return _RESIDUAL, (f"{f.carries} shortcut{padded} from {f.fork}{via} around {layers(f.depth)}"
                           f"{_extra(f)}")
    return None


def add_computed_long_skip(f: PairFacts) -> Verdict:
    """An add bringing a computed shortcut, light beside the main path, to the decoder side of a
    resolution round trip that encloses other skips (hourglass levels, FPN's top level). Sums of
    levels that each went through comparable layers of their own are branch joins."""
    if f.resampled and f.nested and _light(f):
        return Kind.LONG_SKIP, (f"{_sum_word(f)} carries {f.fork} ({f.carries}, {layers(f.shortcut_layers)}) "
                                f"{_why_long(f)}")
    return None


def add_branch(f: PairFacts) -> Verdict:
    """Any other add: both paths compute."""
    same_shape = "" if f.changed or f.carries != Carries.PROJECTION else "; a same-shape projection"
    return Kind.BRANCH, (f"both paths from {f.fork} compute ({layers(f.shortcut_layers)} and "
                         f"{layers(f.depth)}{same_shape})")


#: the rules in the order :func:`decide` tries them (the last always applies)
RULES: tuple[Callable[[PairFacts], Verdict], ...] = (
    no_common_fork, index_arithmetic, pooling_indices, gate_computation, learned_merge, arithmetic_without_layers,
    multiplicative_gate, other_merge, token_mixer, no_layer_between, highway_gate, broadcast_injection,
    shift_injection, projected_part, computed_levels, both_compute, concat_of_positions, parallel_streams, dense_reuse,
    pyramid_pooling, concat_long_skip, concat_computed_long_skip, concat_feature_reuse, concat_branch, add_long_skip,
    residual, add_computed_long_skip, add_branch,
)


def decide(facts: PairFacts) -> Decision:
    """The first rule of :data:`RULES` that applies to ``facts``."""
    for rule in RULES:
        verdict = rule(facts)
        if verdict is not None:
            return Decision(verdict[0], verdict[1], rule.__name__)
    raise AssertionError("add_branch applies to every pair")  # unreachable: the last rule always applies


#: the probes of :class:`PairFacts`: facts about the graph around a pair, asked only by the rules that need them
_PROBES = ("elementwise", "gated", "feeds_gate", "mixing", "split_part", "scaled_by_gate", "streams")
_CONSTANT_PROBES = (always, never)


class RememberingDecider:
    """:func:`decide` for the many pairs of one analysis, remembering which rule decided.

    Which rule applies depends only on the facts a rule's conditions read: every field but the
    fork's name and ``via`` (those appear in reasons only), and the probes. When deciding asked
    no probe that varies between pairs, pairs with equal other facts are decided by the same
    rule, so the next such pair calls that rule alone (a residual chain of 14k blocks holds a
    handful of distinct facts). The result is what :func:`decide` gives, reason included."""

    def __init__(self) -> None:
        self._rule_of: dict[tuple, Callable[[PairFacts], Verdict]] = {}

    def recall(self, facts: PairFacts) -> Decision | None:
        """The decision for ``facts`` when a pair of equal facts was decided without asking a probe,
        else None. Such a decision never asks a probe: a caller may leave them unset until then."""
        rule = self._rule_of.get(_key(facts))
        if rule is None:
            return None
        kind, reason = rule(facts)  # (applies: it did to equal facts)
        return Decision(kind, reason, rule.__name__)

    def __call__(self, facts: PairFacts) -> Decision:
        remembered = self.recall(facts)
        if remembered is not None:
            return remembered
        asked = []
        for name in _PROBES:
            probe = getattr(facts, name)
            if probe not in _CONSTANT_PROBES:
                setattr(facts, name, lambda probe=probe: asked.append(probe) or probe())
        decision = decide(facts)
        if not asked:
            self._rule_of[_key(facts)] = _RULES_BY_NAME[decision.rule]
        return decision


def _key(facts: PairFacts) -> tuple:
    """The facts a rule's conditions read, but the probes (see :class:`RememberingDecider`)."""
    return (facts.merge_op, facts.merge_role, facts.fork is None, facts.carries, facts.changed, facts.depth,
            facts.shortcut_layers, facts.nested, facts.resampled, facts.family, facts.members, facts.broadcast,
            facts.levels, facts.positions, facts.dominated)


_RULES_BY_NAME = {rule.__name__: rule for rule in RULES}


def reworded(decision: Decision, facts: PairFacts) -> Decision:
    """``decision``, its reason worded by the rule that made it from ``facts``: the same pair's facts with
    another figure for a reason (a dense pair, decided by where its concat's main input lies, reports the
    layers on its own path into the concat). ``decision`` unchanged where that rule does not give its kind."""
    verdict = _RULES_BY_NAME[decision.rule](facts)
    if verdict is None or verdict[0] != decision.kind:
        return decision
    return Decision(decision.kind, verdict[1], decision.rule)


def rule_docs() -> list[tuple[str, str]]:
    """(name, first docstring line) of each rule, in order: what ``archc lint --explain`` documents."""
    return [(r.__name__, (r.__doc__ or "").strip().splitlines()[0]) for r in RULES]
