"""``archc lint`` on a BERT encoder written from the paper (tools/bench_lint.py's ``bert_encoder``, the
model the lint benchmark times at BERT-base size), small here: 2 post-LN layers of width 64. Each
layer has two residual connections (around the attention and around the FFN), and nothing else
skips: 4 residuals, no long skip, no dense or gated connection, for both torch exporters."""
from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT

torch = pytest.importorskip("torch")
sys.path.insert(0, str(ROOT / "tools"))

from bench_lint import bert_onnx  # noqa: E402

SMALL = {"layers": 2, "dim": 64, "heads": 4, "ffn": 256, "vocab": 100, "positions": 64}


@pytest.mark.parametrize("dynamo", [pytest.param(False, id="torchscript"),
                                    pytest.param(True, id="dynamo", marks=pytest.mark.slow)])
def test_a_post_ln_bert_has_two_residuals_a_layer_and_no_long_skip(dynamo, tmp_path, run_archc):
    if dynamo:
        pytest.importorskip("onnxscript")
    path = tmp_path / "bert.onnx"
    bert_onnx(str(path), dynamo=dynamo, sequence=16, **SMALL)
    proc = run_archc("lint", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"] == {"residual": 4, "long_skip": 0, "dense": 0, "gated": 0}
    assert report["joins_summary"] == {"branch": 0, "sequential": 0}
    residuals = [s for s in report["skips"] if s["kind"] == "residual"]
    assert len(residuals) == 4 and all(s["carries"] == "identity" for s in residuals)
    # one chain of 4 residual blocks: 2^4 ways through them
    (chain,) = report["paths"]["chains"]
    assert chain["blocks"] == 4 and chain["paths"] == 16
