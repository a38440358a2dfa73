"""The spec expression evaluator: what it computes and what it refuses."""
from __future__ import annotations

import pytest

from archc.frontends.yaml.expr import Evaluator, ExprError

EV = Evaluator({"width": 64, "depth": 5, "wide": True, "mode": "nearest"},
               {"channels": lambda name: {"x": 3}[name]})


@pytest.mark.parametrize("text, value", [
    ("width * 2", 128), ("depth // 2", 2), ("width / 4", 16.0), ("2 ** 3", 8), ("-depth", -5),
    ("width > 3 and depth", 5), ("not wide", False), ("4 if wide else 2", 4), ("1 < depth <= 5", True),
    ("[1, width]", [1, 64]), ("max(1, width, depth)", 64), ("[3, 4][1]", 4), ("channels(x) * 2", 6),
    ("mode == 'nearest'", True), ("range(3)", [0, 1, 2]), ("true", True), ("null", None),
    # slices (found transcribing DeepLabV3: F.interpolate(size=x.shape[2:])); never longer than what they cut
    ("[1, 2, 3, 4][2:]", [3, 4]), ("[1, 2, 3, 4][::-1]", [4, 3, 2, 1]), ("[1, 2, 3, 4][1:3:depth]", [2]),
    ("mode[:4]", "near"),
    # logarithms and exp: a depth from an image size, a base-b log, a learning-rate-style exp
    ("int(log2(width / 4))", 4), ("log(1)", 0.0), ("log(8, 2)", 3.0), ("exp(0)", 1.0), ("log2(2 ** 100)", 100.0),
])
def test_evaluates(text, value):
    assert EV.evaluate(text) == value


@pytest.mark.parametrize("text, message, offset", [
    ("widht + 1", "unknown name 'widht'", 0),
    ("width + nope", "unknown name 'nope'", 8),
    ("__import__('os')", "unknown function '__import__'", 0),
    ("width.bit_length()", "is not allowed in a spec expression", 0),
    ("(lambda: 1)()", "is not allowed in a spec expression", 0),
    ("open('/etc/passwd')", "unknown function 'open'", 0),
    ("2 ** 100000", "over the limit of 128 bits per integer", 0),
    ("[0] * 10 ** 9", "over the limit of 100,000 characters or list items", 0),
    ("range(10 ** 9)", "range of 1,000,000,000 items: over the limit", 0),
    ("width +", "invalid expression", 0),
    ("1 / 0", "cannot evaluate '1 / 0': division by zero", 4),
    # at the divisor, naming it where it is no number written there
    ("2 + width // (depth - 5)", "cannot evaluate 'width // (depth - 5)': division by zero ('depth - 5' is 0)", 14),
    ("width % 0.0", "cannot evaluate 'width % 0.0': division by zero", 8),
    ("channels(y)", "unknown", 9),
    ("[1, 2][::0]", "a slice's step must not be 0, got '::0'", 7),
    # indexing: what was indexed and what it is, at the subscript
    ("width[0]", "cannot index 'width': it is the integer 64, not a list or a string", 6),
    ("[1, 2][2]", "index 2 is out of range for '[1, 2]', a list of 2 items", 7),
    ("'ab'[-3]", "index -3 is out of range for ''ab'', a string of 2 characters", 5),
    ("[1, 2]['a']", "an index of '[1, 2]' must be an integer, got 'a'", 7),
    ("[1, 2][0.5:]", "slice bounds must be integers, got '0.5:'", 7),
    ("width.bit_length()", "(numbers, strings, lists, indexing and slices, arithmetic", 0),
    ("width.bit_length()", "the tensor queries channels and the spec's own functions are)", 0),
    # math outside a function's domain: the call, its arguments and what it takes, at the call
    ("sqrt(-4)", "sqrt(-4) is undefined: sqrt takes a number >= 0", 0),
    ("1 + log(0)", "log(0) is undefined: log takes a number > 0 and, as log(x, base), a base > 0 other "
                   "than 1", 4),
    ("log(-depth)", "log(-5) is undefined", 0),
    ("log(8, 1)", "log(8, 1) is undefined", 0),
    ("log(8, -2)", "log(8, -2) is undefined", 0),
    ("width * log2(0.0)", "log2(0.0) is undefined: log2 takes a number > 0", 8),
    ("exp(width * 20)", "exp(1280) is too large for a float: exp takes a number up to about 709.78", 0),
    ("log('a')", "cannot evaluate 'log('a')': must be real number, not str", 0),
])
def test_refuses(text, message, offset):
    with pytest.raises(ExprError) as info:
        EV.evaluate(text)
    assert message in str(info.value)
    assert info.value.offset == offset


def test_suggests_close_names():
    with pytest.raises(ExprError) as info:
        EV.evaluate("widht")
    assert info.value.hint == "did you mean 'width'?"
