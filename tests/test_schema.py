"""The spec format's JSON Schema: generated from the loader's tables and the op registry, shipped
up to date, named by every shipped spec's first line; every shipped spec validates and typical
mistakes do not."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

from archc.frontends.yaml.jsonschema import SHIPPED, schema_text, spec_schema

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted([*(ROOT / "specs").rglob("*.yaml"), *(ROOT / "archc" / "library").glob("*.yaml")])
VALIDATOR = jsonschema.Draft202012Validator(spec_schema())


def test_shipped_schema_is_up_to_date(run_archc):
    assert SHIPPED.read_text(encoding="utf-8") == schema_text(), \
        "regenerate: archc schema > archc/frontends/yaml/spec.schema.json"
    assert json.loads(run_archc("schema", check=True).stdout) == spec_schema()
    jsonschema.Draft202012Validator.check_schema(spec_schema())


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_spec_names_the_schema_and_validates(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    assert (path.parent / first[len(prefix):]).resolve() == SHIPPED.resolve()
    errors = [e.message for e in VALIDATOR.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))]
    assert errors == []


GOOD = {"name": "m", "inputs": {"x": ["N", 3, 8, 8]},
        "nodes": [{"name": "c", "op": "conv", "out_channels": "width * 2", "kernel_size": 3, "padding": "same"}]}


def _with_node(**fields):
    return {**GOOD, "nodes": [{"name": "c", **fields}]}


@pytest.mark.parametrize("doc, what", [
    (_with_node(op="conv", out_channels=8, kernel_size=3, strde=2), "strde"),              # misspelled attribute
    (_with_node(op="lineer", out_features=3), "lineer"),                                  # unknown op
    (_with_node(op="conv", out_channels=8, kernel_size={"h": 3}), "h"),                   # a mapping for a size
    (_with_node(op="conv", out_channels=8.5, kernel_size=3), "8.5"),                      # not an integer
    (_with_node(op="conv", out_channels=8, kernel_size=3, bias=[True]), "[true]"),        # a list for a flag
    (_with_node(op="flatten", block="b"), "block"),                                       # op and block
    (_with_node(op="relu", expect="residul"), "residul"),                                 # not a kind
    ({**GOOD, "node": GOOD["nodes"]}, "node"),                                            # top-level key
    ({**GOOD, "blocks": {"b": {"nodez": []}}}, "nodez"),                                  # block key
])
def test_typical_mistakes_fail(doc, what):
    assert VALIDATOR.is_valid(GOOD)
    errors = list(VALIDATOR.iter_errors(doc))
    assert errors and any(what in e.message or what in json.dumps(e.instance) for e in errors)
