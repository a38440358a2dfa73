"""The classification rules one by one, the vocabularies as types, and ``archc lint --explain`` / ``--kinds``."""
from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest

import archc.cli.lint as lint_cli
from archc.analysis import rules
from archc.analysis.rules import PairFacts, decide
from archc.frontends.yaml import schema
from archc.ir.vocab import JOIN_KINDS, SKIP_KINDS, Carries, Kind, Role, kinds_table
from archc.ops.base import ROLES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESNET18 = os.path.join(ROOT, "specs", "resnet18.yaml")


def facts(**changes) -> PairFacts:
    """An identity shortcut around two layers of an add: a plain residual block."""
    base = PairFacts(merge_op="add", merge_role=Role.MERGE_ADD, fork="x", carries=Carries.IDENTITY, changed=False,
                     depth=2, shortcut_layers=0, nested=False, resampled=False)
    return dataclasses.replace(base, **changes)


# (rule, facts it applies to, the kind it gives, facts it does not apply to)
CASES = [
    (rules.no_common_fork, facts(fork=None, carries=None, via="a, b"), Kind.BRANCH, facts()),
    (rules.index_arithmetic, facts(carries=Carries.INDICES, merge_role=Role.MERGE_SUB, depth=0), Kind.SEQUENTIAL,
     facts(carries=Carries.INDICES, merge_role=Role.UNPOOL)),
    (rules.pooling_indices, facts(carries=Carries.INDICES, merge_role=Role.UNPOOL), Kind.LONG_SKIP, facts()),
    # (theta(x) + phi(g) before a sigmoid: both sides compute; an identity shortcut into a gate does not)
    (rules.gate_computation, facts(carries=Carries.PROJECTION, shortcut_layers=1, feeds_gate=lambda: True),
     Kind.BRANCH, facts(feeds_gate=lambda: True)),
    (rules.learned_merge, facts(merge_role=Role.LAYER, merge_op="multi_head_attention", depth=0), Kind.BRANCH,
     facts(merge_role=Role.MERGE_MUL, depth=0)),
    (rules.arithmetic_without_layers, facts(merge_role=Role.MERGE_MUL, depth=0), Kind.SEQUENTIAL,
     facts(merge_role=Role.MERGE_MUL, depth=1)),
    (rules.arithmetic_without_layers, facts(merge_role=Role.MATMUL, depth=0, elementwise=lambda: False),
     Kind.BRANCH, facts(depth=0)),
    (rules.multiplicative_gate, facts(merge_role=Role.MERGE_MUL, depth=3), Kind.SEQUENTIAL,
     facts(merge_role=Role.MERGE_MUL, carries=Carries.COMPUTED, shortcut_layers=1)),
    (rules.other_merge, facts(merge_role=Role.MATMUL, carries=Carries.COMPUTED, shortcut_layers=1), Kind.BRANCH,
     facts()),
    (rules.token_mixer, facts(depth=0, mixing=lambda: True), Kind.RESIDUAL, facts(depth=0)),
    (rules.no_layer_between, facts(depth=0), Kind.SEQUENTIAL, facts()),
    (rules.highway_gate, facts(gated=lambda: True), Kind.GATED, facts()),
    (rules.broadcast_injection, facts(carries=Carries.PROJECTION, changed=True, shortcut_layers=1, broadcast=True),
     Kind.BRANCH, facts(carries=Carries.PROJECTION, changed=True, shortcut_layers=1)),
    # (Glow's x_b * exp(log_s) + t: t a part of the split the main input never reads, x_b from elsewhere)
    (rules.shift_injection, facts(depth=0, dominated=False, split_part=lambda: True), Kind.BRANCH,
     facts(depth=0, dominated=False)),
    # (an unrolled LSTM's W_ih x_t + W_hh h_(t-1): x_t a step of the sequence the earlier steps read the others of)
    (rules.projected_part, facts(carries=Carries.PROJECTION, shortcut_layers=1, depth=4, split_part=lambda: True),
     Kind.BRANCH, facts(carries=Carries.PROJECTION, shortcut_layers=1, depth=4)),
    (rules.computed_levels, facts(merge_role=Role.MERGE_CONCAT, carries=Carries.PROJECTION, shortcut_layers=1,
                                  depth=9, nested=True, resampled=True, levels=4), Kind.BRANCH,
     facts(merge_role=Role.MERGE_CONCAT, carries=Carries.PROJECTION, shortcut_layers=1, depth=9, nested=True,
           resampled=True)),
    (rules.concat_of_positions, facts(merge_role=Role.MERGE_CONCAT, family=2, positions=True), Kind.BRANCH,
     facts(merge_role=Role.MERGE_CONCAT, family=2)),
    (rules.both_compute, facts(carries=Carries.COMPUTED, shortcut_layers=2), Kind.BRANCH, facts()),
    # (HRNet's fusion at one block a branch: both resolutions go on past the sum; an hourglass level's do not)
    (rules.parallel_streams, facts(carries=Carries.COMPUTED, shortcut_layers=2, depth=4, nested=True, resampled=True,
                                   streams=lambda: True), Kind.BRANCH,
     facts(carries=Carries.COMPUTED, shortcut_layers=2, depth=4, nested=True, resampled=True)),
    (rules.dense_reuse, facts(merge_role=Role.MERGE_CONCAT, family=3), Kind.DENSE,
     facts(merge_role=Role.MERGE_CONCAT, family=3, resampled=True)),
    # (PSPNet: the feature beside four pool -> conv -> upsample branches; a U-Net level has one such input)
    (rules.pyramid_pooling, facts(merge_role=Role.MERGE_CONCAT, resampled=True, depth=1, members=4), Kind.BRANCH,
     facts(merge_role=Role.MERGE_CONCAT, resampled=True, depth=1, members=1)),
    (rules.concat_long_skip, facts(merge_role=Role.MERGE_CONCAT, resampled=True), Kind.LONG_SKIP,
     facts(merge_role=Role.MERGE_CONCAT)),
    (rules.concat_computed_long_skip, facts(merge_role=Role.MERGE_CONCAT, carries=Carries.COMPUTED, resampled=True,
                                            nested=True, depth=9, shortcut_layers=3),
     Kind.LONG_SKIP, facts(merge_role=Role.MERGE_CONCAT, carries=Carries.COMPUTED, resampled=True, nested=True,
                           depth=3, shortcut_layers=2)),
    (rules.concat_feature_reuse, facts(merge_role=Role.MERGE_CONCAT), Kind.DENSE,
     facts(merge_role=Role.MERGE_CONCAT, carries=Carries.COMPUTED)),
    (rules.concat_branch, facts(merge_role=Role.MERGE_CONCAT, carries=Carries.COMPUTED), Kind.BRANCH, facts()),
    (rules.add_long_skip, facts(nested=True), Kind.LONG_SKIP, facts()),
    (rules.add_long_skip, facts(carries=Carries.PROJECTION, shortcut_layers=1, depth=3, resampled=True),
     Kind.LONG_SKIP, facts(carries=Carries.PROJECTION, shortcut_layers=1, depth=3, nested=True)),
    (rules.residual, facts(carries=Carries.PROJECTION, changed=True, via="down"), Kind.RESIDUAL,
     facts(carries=Carries.PROJECTION, changed=False)),
    (rules.add_computed_long_skip, facts(carries=Carries.COMPUTED, shortcut_layers=3, depth=9, resampled=True,
                                         nested=True),
     Kind.LONG_SKIP, facts(carries=Carries.COMPUTED, shortcut_layers=2, depth=3, resampled=True)),  # a pyramid sum
    (rules.add_branch, facts(carries=Carries.COMPUTED, shortcut_layers=1), Kind.BRANCH, None),
]


@pytest.mark.parametrize("rule, applies, kind, other", CASES, ids=[c[0].__name__ for c in CASES])
def test_each_rule_alone(rule, applies, kind, other):
    got = rule(applies)
    assert got is not None and got[0] == kind and got[1]
    if other is not None:
        assert rule(other) is None


@pytest.mark.parametrize("rule, applies, kind, other", CASES, ids=[c[0].__name__ for c in CASES])
def test_decide_names_the_first_rule_that_applies(rule, applies, kind, other):
    decision = decide(applies)
    first = next(r for r in rules.RULES if r(applies) is not None)
    assert decision.rule == first.__name__ and decision.kind == first(applies)[0]


def test_half_of_a_split_times_a_function_of_the_other_half_is_no_gate():
    glu = facts(merge_role=Role.MERGE_MUL, depth=1, split_part=lambda: True)
    assert rules.multiplicative_gate(glu) is None and decide(glu).kind == Kind.BRANCH


def test_a_difference_around_layers_is_decided_as_a_sum():
    # DnCNN's x - F(x): a residual, as x + F(x) is; the long skip's reason names the subtraction
    sub = facts(merge_op="sub", merge_role=Role.MERGE_SUB)
    assert rules.other_merge(sub) is None
    assert decide(sub) == (Kind.RESIDUAL, "identity shortcut from x around 2 layers", "residual")
    assert decide(dataclasses.replace(sub, nested=True)).reason.startswith("sub carries x (identity) across")
    # scaled by a gate it is a term of Highway's x + T·(H − x), a branch as before
    assert decide(dataclasses.replace(sub, scaled_by_gate=lambda: True)).rule == "other_merge"
    # with no layer between it stays arithmetic (a decomposed norm's x - mean(x))
    assert decide(dataclasses.replace(sub, depth=0)).kind == Kind.SEQUENTIAL


def test_every_rule_is_tested_and_documented():
    assert {c[0] for c in CASES} == set(rules.RULES)
    names = [name for name, _ in rules.rule_docs()]
    assert len(names) == len(set(names)) and all(doc for _, doc in rules.rule_docs())


def test_facts_of_a_plain_residual_block():
    decision = decide(facts())
    assert decision == (Kind.RESIDUAL, "identity shortcut from x around 2 layers", "residual")


# -- vocabularies ---------------------------------------------------------------------------------

def test_words_behave_as_their_text():
    assert Kind.RESIDUAL == "residual" and str(Kind.DENSE) == "dense" and f"{Carries.INDICES}" == "indices"
    assert json.dumps({"kind": Kind.GATED}) == '{"kind": "gated"}'
    assert "layer" in {Role.LAYER} and Role.LAYER in {"layer"}
    assert Kind("long_skip") is Kind.LONG_SKIP
    assert set(SKIP_KINDS) | set(JOIN_KINDS) == set(Kind) and not set(SKIP_KINDS) & set(JOIN_KINDS)


def test_spec_schema_and_op_roles_come_from_the_types():
    assert schema.EXPECT_KINDS == (*Kind.words(), "none")
    assert list(ROLES) == list(Role.words()) and all(ROLES.values())


def test_readme_label_table_is_generated_from_the_kinds(run_archc):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    assert kinds_table() in readme
    printed = run_archc("lint", "--kinds", check=True).stdout
    assert printed.strip() == kinds_table()


def test_lint_docstring_lists_the_vocabularies():
    doc = lint_cli.__doc__
    kinds = re.search(r'"kind": (.*),', doc).group(1)
    assert kinds == " | ".join(f'"{k}"' for k in Kind)
    carries = re.search(r'"carries": (.*) \| null,', doc).group(1)
    assert carries == " | ".join(f'"{c}"' for c in Carries)
    for k in Kind:
        assert f'"{k}": int' in doc


# -- --explain ------------------------------------------------------------------------------------

def test_explain_names_the_rule_in_the_table_and_json(run_archc):
    table = run_archc("lint", RESNET18, "--explain", "--all", check=True).stdout
    header = next(line for line in table.splitlines() if line.startswith("merge"))
    assert header.split()[:8] == ["merge", "op", "kind", "fork", "carries", "layers", "stage", "rule"]
    row = next(line for line in table.splitlines() if line.startswith("layer2.0.add"))
    assert row.split()[7] == "residual"
    data = json.loads(run_archc("lint", RESNET18, "--explain", "--format", "json", check=True).stdout)
    assert {c["rule"] for c in data["skips"]} == {"residual"}
    plain = json.loads(run_archc("lint", RESNET18, "--format", "json", check=True).stdout)
    assert "rule" not in plain["skips"][0]


def test_lint_help_says_what_the_layers_column_counts(run_archc):
    out = run_archc("lint", "--help", check=True).stdout
    assert "side paths" in out and "longest bypassed path" in out
    assert out.rstrip().splitlines()[-1].strip().startswith("archc lint specs/")


@pytest.mark.parametrize("depth, words", [
    (1, "across 1 layer that encloses other skips and down- and upsamples"),
    (4, "across 4 layers that enclose other skips and down- and upsample")])
def test_a_long_skips_reason_agrees_in_number_with_its_layers(depth, words):
    # round 12: "across 4 layers that encloses other skips"
    kind, reason, rule = decide(facts(depth=depth, nested=True, resampled=True))
    assert (kind, rule) == (Kind.LONG_SKIP, "add_long_skip") and reason.endswith(words), reason


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_parallel_streams_are_a_branch_join_at_any_depth(blocks):
    # round 18, HRNet's fusion: the high resolution's blocks (2 layers each) beside the low one's between a
    # strided conv and a 1x1 conv; the depth ratio alone made one block a long skip and two a branch
    fusion = facts(carries=Carries.COMPUTED, shortcut_layers=2 * blocks, depth=2 * blocks + 2, nested=True,
                   resampled=True, streams=lambda: True)
    assert decide(fusion)[::2] == (Kind.BRANCH, "parallel_streams")
    assert decide(fusion).reason == (f"add joins parallel streams from x that both go on past it ({2 * blocks} "
                                     f"layers and {2 * blocks + 2} layers that down- and upsample): an exchange, "
                                     "not a carry across a detour")
    concat = dataclasses.replace(fusion, merge_op="concat", merge_role=Role.MERGE_CONCAT)
    assert decide(concat)[::2] == (Kind.BRANCH, "parallel_streams") and decide(concat).reason.startswith("concat ")
    # an hourglass level's sides feed nothing else: the depths decide, as before
    level = dataclasses.replace(fusion, streams=rules.never)
    assert decide(level).kind == (Kind.LONG_SKIP if blocks == 1 else Kind.BRANCH)


def test_a_decision_that_asked_whether_the_streams_go_on_is_not_remembered():
    # the probe varies between pairs of equal other facts (HRNet's fusion, an hourglass level): the decider
    # may not hand the first one's rule to the second
    decider = rules.RememberingDecider()
    fusion = facts(carries=Carries.COMPUTED, shortcut_layers=2, depth=4, nested=True, resampled=True,
                   streams=lambda: True)
    assert decider(fusion).rule == "parallel_streams"
    assert decider(dataclasses.replace(fusion, streams=lambda: False)).rule == "add_computed_long_skip"


def test_a_broadcast_shift_onto_a_path_from_elsewhere_is_an_injection_with_no_layer_between():
    # FiLM's beta from Linear(c).chunk(2): its fork, the split, has no layer to the add, but gamma * h
    # computes from x too (the fork does not dominate it): conditioning injected, not arithmetic on one value
    film = facts(depth=0, carries=Carries.COMPUTED, broadcast=True, dominated=False)
    assert rules.no_layer_between(film) is None
    assert decide(film)[:1] + decide(film)[2:] == (Kind.BRANCH, "broadcast_injection")
    # a decomposed norm's x - mean(x): broadcast too, but from the one value the fork dominates
    norm = facts(depth=0, broadcast=True)
    assert decide(norm).rule == "no_layer_between" and decide(norm).kind == Kind.SEQUENTIAL


def test_a_same_shape_shift_from_a_split_onto_a_path_from_elsewhere_is_an_injection():
    # round 15: FiLM's beta per position (as wide as h) and Glow's coupling t were no_layer_between (sequential,
    # their path dropped); the broadcast case already was broadcast_injection
    shift = facts(depth=0, carries=Carries.IDENTITY, dominated=False, split_part=lambda: True)
    assert rules.no_layer_between(shift) is None
    assert (decide(shift).kind, decide(shift).rule) == (Kind.BRANCH, "shift_injection")
    assert decide(shift).reason.startswith("add injects a value from x into a main path computed from other values")
    # the same add of a value the main input reads whole (a + (a + b), every term from one input): arithmetic
    partial_sum = facts(depth=0, dominated=False)
    assert (decide(partial_sum).kind, decide(partial_sum).rule) == (Kind.SEQUENTIAL, "no_layer_between")
    # the parts of one split added back (a + b): the split dominates the main input, no value from elsewhere
    parts = facts(depth=0, split_part=lambda: True)
    assert (decide(parts).kind, decide(parts).rule) == (Kind.SEQUENTIAL, "no_layer_between")


def test_a_padded_identity_says_so_in_its_reason():
    # round 16: PyramidNet's cat(x, zeros), ResNet's option A ("identity shortcuts ... zero-padding"); padded
    # changes no rule's choice, only the words (RememberingDecider keys on the choice's facts)
    padded = facts(changed=True, padded=True)
    assert decide(padded)[::2] == (Kind.RESIDUAL, "residual")
    assert decide(padded).reason == "identity shortcut (padded) from x around 2 layers"
    assert decide(facts(changed=True)).reason == "identity shortcut from x around 2 layers"
    long = decide(facts(changed=True, padded=True, nested=True))
    assert long.kind == Kind.LONG_SKIP
    assert long.reason == "add carries x (identity, padded) across 2 layers that enclose other skips"
    decider = rules.RememberingDecider()
    assert decider(facts(changed=True)).reason == "identity shortcut from x around 2 layers"
    assert decider.recall(padded).reason == "identity shortcut (padded) from x around 2 layers"


@pytest.mark.parametrize("depth, words", [(1, "(1 layer and 1 layer that down- and upsamples)"),
                                          (3, "(3 layers and 3 layers that down- and upsample)")])
def test_both_paths_compute_beside_a_round_trip_and_the_reason_says_it_saw_it(depth, words):
    # round 16: a one-layer lateral beside a round trip of one layer was "both paths compute (1 layer and 1
    # layer)", which read as if lint had missed the round trip the README makes a long skip's mark; the
    # lateral beside two layers is the long skip
    lateral = facts(carries=Carries.PROJECTION, shortcut_layers=depth, depth=depth, resampled=True)
    assert decide(lateral)[::2] == (Kind.BRANCH, "both_compute")
    assert decide(lateral).reason == f"both paths from x compute {words}"
    assert decide(dataclasses.replace(lateral, resampled=False)).reason.endswith(f"and {rules.layers(depth)})")
    deeper = dataclasses.replace(lateral, shortcut_layers=1, depth=2)
    assert decide(deeper)[::2] == (Kind.LONG_SKIP, "add_long_skip")
