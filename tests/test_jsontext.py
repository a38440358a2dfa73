"""``archc.cli.jsontext.indented`` writes exactly what ``json.dumps(value, indent=2)`` writes."""
from __future__ import annotations

import enum
import json

from hypothesis import given
from hypothesis import strategies as st

from archc.cli.jsontext import indented

_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text())
_JSONISH = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
                        | st.dictionaries(st.text(), inner, max_size=5), max_leaves=40)


@given(_JSONISH)
def test_same_text_as_json_dumps(value):
    assert indented(value) == json.dumps(value, indent=2)


class _Colour(str, enum.Enum):
    RED = "red"


class _Size(enum.IntEnum):
    BIG = 3


def test_subclasses_and_non_string_keys_are_written_as_json_writes_them():
    value = {"kind": _Colour.RED, "size": _Size.BIG, "ok": True, 1: [1.5, None], None: {}, "empty": []}
    assert indented(value) == json.dumps(value, indent=2)
    assert indented([{"a": "\u00e9\n"}, (), 0.1]) == json.dumps([{"a": "\u00e9\n"}, (), 0.1], indent=2)


def test_a_value_json_cannot_write_raises_as_json_does():
    import pytest

    with pytest.raises(TypeError):
        indented({"x": {1, 2}})


def test_without_operator_call_as_on_python_3_10_the_text_is_the_same(monkeypatch):
    import importlib
    import operator

    from archc.cli import jsontext

    value = {"a": [1, 2.5, {"b": None, "c": True, "d": 'x"y'}], "e": [], "f": {}}
    monkeypatch.delattr(operator, "call", raising=False)
    try:
        fallback = importlib.reload(jsontext)
        assert fallback.call.__module__ == "archc.cli.jsontext"
        assert fallback.indented(value) == json.dumps(value, indent=2)
    finally:
        monkeypatch.undo()
        importlib.reload(jsontext)


def test_rows_are_written_by_their_writer_and_as_plain_values_on_fallback():
    from archc.cli.jsontext import Rows

    records = [(1, "a"), (2, "b\u00e9")]

    def write(record, newline):
        return indented({"n": record[0], "s": record[1]}).replace("\n", newline)

    def plain(record):
        return {"n": record[0], "s": record[1]}

    expected = json.dumps({"rows": [plain(r) for r in records], "none": []}, indent=2)
    assert indented({"rows": Rows(records, write, plain), "none": Rows([], write, plain)}) == expected
    # a key json.dumps must write (not a string): the whole value falls back, the rows as plain values
    value = {1: Rows(records, write, plain)}
    assert indented(value) == json.dumps({1: [plain(r) for r in records]}, indent=2)
