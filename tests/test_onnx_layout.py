"""The layout module's memory of decisions (:func:`archc.frontends.onnx.layout.remembered`): a decision
is taken once per key and sizes, and a remembered one leaves the sizes as running it would have."""
from __future__ import annotations

from archc.frontends.onnx.layout import Sizes, remembered


def _decider(calls: list[str], sizes: Sizes):
    def decide() -> tuple[int, str]:
        calls.append("ran")
        return sizes.dim("T") or 0, "NL"  # sizes a new symbol, as reading a chain's shapes does
    return decide


def test_a_remembered_decision_sizes_the_symbols_it_sized():
    key, calls = ("test", object()), []
    first = Sizes(0)
    first.dim("N")
    assert remembered(key, first, _decider(calls, first)) == (17, "NL")
    again = Sizes(0)
    again.dim("N")
    assert remembered(key, again, _decider(calls, again)) == (17, "NL")
    assert calls == ["ran"] and again.symbols == first.symbols == {"N": 11, "T": 17}


def test_other_sizes_or_another_key_decide_again():
    key, calls = ("test", object()), []
    for sizes in (Sizes(0), Sizes(1)):
        remembered(key, sizes, _decider(calls, sizes))
    other = Sizes(0)
    remembered(("test", object()), other, _decider(calls, other))
    shifted = Sizes(0)
    shifted.dim("N")  # a symbol sized before: T gets another prime, so the decision is another
    assert remembered(key, shifted, _decider(calls, shifted)) == (17, "NL")
    assert calls == ["ran"] * 4
