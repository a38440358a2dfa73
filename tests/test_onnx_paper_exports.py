"""Blocks written from papers (paper_blocks.py), exported by both torch.onnx exporters (TorchScript,
dynamo=False, at opsets 13 and 17; the default dynamo=True at its opset 18), read back by every command:

* ``build --target torch --state-dict``: the generated file with its weights computes what
  onnxruntime computes on the exported file (at another batch size where the batch axis is dynamic);
* ``lint``, ``summary``, ``graph`` succeed; ``verify`` passes;
* ``spec`` + ``build SPEC --target onnx --weights``: the rebuilt model computes the same.

TorchScript at opset 17 runs in the default suite; opset 13 and the dynamo exporter are slow.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import paper_blocks as P  # noqa: E402
from weights_helpers import randomized  # noqa: E402
from test_onnx_backend_data import archc, load_generated  # noqa: E402


def _floats(*shape):
    return lambda rng, batch: rng.standard_normal((batch, *shape)).astype(np.float32)


def _tokens(vocab, length):
    return lambda rng, batch: rng.integers(0, vocab, (batch, length)).astype(np.int64)


#: name -> (module factory, {input name: draw(rng, batch)}, whether the batch axis is dynamic)
MODELS = {
    "mobilenetv3": (P.MobileNetV3Tiny, {"x": _floats(3, 16, 16)}, True),
    "convnext": (P.ConvNeXtTiny, {"x": _floats(3, 16, 16)}, False),
    "gpt2": (P.GPT2Tiny, {"idx": _tokens(20, 8)}, True),
    "decoder_cross_attention": (P.DecoderLayer, {"tgt": _floats(5, 16), "memory": _floats(7, 16)}, False),
    "gru_encoder": (P.GRUEncoder, {"tokens": _tokens(20, 6)}, False),
    "dcgan_generator": (P.DCGANGenerator, {"z": _floats(8, 1, 1)}, True),
    "stylenet_instancenorm": (P.StyleNet, {"x": _floats(3, 12, 12)}, False),
}
#: (exporter, opset): None is the dynamo exporter's own opset
EXPORTS = [("torchscript", 17), pytest.param("torchscript", 13, marks=pytest.mark.slow),
           pytest.param("dynamo", None, marks=pytest.mark.slow)]


def export(name: str, exporter: str, opset: int | None, path) -> dict[str, np.ndarray]:
    """Export the model; returns the example inputs (batch 2)."""
    factory, draws, dynamic = MODELS[name]
    torch.manual_seed(0)
    module = randomized(factory(), scale=0.1, around_init=True)
    rng = np.random.default_rng(0)
    feeds = {k: draw(rng, 2) for k, draw in draws.items()}
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    options: dict = {"input_names": list(feeds)}
    if exporter == "torchscript":
        options.update(dynamo=False, opset_version=opset)
        if dynamic:
            options["dynamic_axes"] = {k: {0: "N"} for k in feeds}
    elif dynamic:
        batch = torch.export.Dim("N", min=1, max=64)
        options["dynamic_shapes"] = {k: {0: batch} for k in feeds}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, str(path), **options)
        except torch.onnx.errors.UnsupportedOperatorError as exc:  # (MultiheadAttention's SDPA before opset 14)
            pytest.skip(f"torch.onnx ({exporter}) cannot export {name} at opset {opset}: {str(exc).splitlines()[0]}")
    return feeds


@pytest.mark.parametrize("exporter,opset", EXPORTS)
@pytest.mark.parametrize("name", list(MODELS))
def test_paper_model_through_every_command(name, exporter, opset, tmp_path):
    path = tmp_path / f"{name}.onnx"
    feeds = export(name, exporter, opset, path)
    if MODELS[name][2]:  # a dynamic batch axis: checked at another batch size
        rng = np.random.default_rng(1)
        feeds = {k: draw(rng, 3) for k, draw in MODELS[name][1].items()}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})

    py, pt = tmp_path / "m.py", tmp_path / "m.pt"
    code, text = archc("build", path, "--target", "torch", "-o", py, "--state-dict", pt)
    assert code == 0, text
    with torch.no_grad():
        got = load_generated(py, pt)(*[torch.from_numpy(v) for v in feeds.values()])
    assert_close(got, expected)

    for argv in (["lint", path], ["summary", path], ["graph", path, "-o", tmp_path / "m.dot"], ["verify", path]):
        code, text = archc(*argv)
        assert code == 0, f"{argv[0]}: {text}"

    yaml, weights, again = tmp_path / "m.yaml", tmp_path / "w.pt", tmp_path / "again.onnx"
    code, text = archc("spec", path, "-o", yaml, "--weights-out", weights)
    assert code == 0, text
    code, text = archc("build", yaml, "--target", "onnx", "--weights", weights, "-o", again)
    assert code == 0, text
    rebuilt = ort.InferenceSession(str(again), providers=["CPUExecutionProvider"])
    assert_close(rebuilt.run(None, {i.name: v for i, v in zip(rebuilt.get_inputs(), feeds.values())}), expected)


def assert_close(got, expected) -> None:
    """The outputs agree at float32 reordering's tolerance."""
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        g = g.detach().numpy() if hasattr(g, "detach") else np.asarray(g)
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
