"""tools/bench.py's inference section: onnxruntime on archc's ONNX against onnxruntime on
torch.onnx.export's ONNX of the same weights, and archc's `--eval` PyTorch module (batchnorm folded)
against a hand-written torchvision-style ResNet-50 in eager mode, all ResNet-50 at batch 1, 224x224."""
from __future__ import annotations

import io
import os
import warnings

from bench_common import interleaved

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ort_session(data: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def section_inference(repeat: int) -> list[str]:
    import numpy as np
    import torch
    from reference_resnet import ResNet50

    from archc import load_spec
    from archc.lowering.onnx import build_onnx
    from archc.lowering.optimize import optimize_for_inference
    from archc.lowering.torch import build_module

    graph = load_spec(os.path.join(ROOT, "specs", "resnet50.yaml"))
    module = build_module(graph, seed=0).eval()          # the training graph, archc's weights
    reference = ResNet50().eval()
    reference.load_state_dict(module.state_dict(), strict=True)  # same weights, hand-written code
    folded = build_module(optimize_for_inference(graph), seed=0).eval()  # what `build --eval` writes
    x = torch.randn(1, 3, 224, 224)

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(reference, (x,), buf, dynamo=False, opset_version=17)
    archc_ort = _ort_session(build_onnx(graph, seed=0).SerializeToString())
    torch_ort = _ort_session(buf.getvalue())
    feed = x.numpy()
    a = archc_ort.run(None, {archc_ort.get_inputs()[0].name: feed})[0]
    b = torch_ort.run(None, {torch_ort.get_inputs()[0].name: feed})[0]
    assert np.allclose(a, b, rtol=1e-3, atol=1e-4), "the two ONNX models disagree: not the same weights"

    ort_t = interleaved({
        "archc": lambda: archc_ort.run(None, {archc_ort.get_inputs()[0].name: feed}),
        "torch": lambda: torch_ort.run(None, {torch_ort.get_inputs()[0].name: feed})}, max(repeat, 10))
    with torch.inference_mode():
        eager_t = interleaved({"folded": lambda: folded(x), "archc": lambda: module(x),
                               "reference": lambda: reference(x)}, max(repeat, 10))
    return ["## inference: ResNet-50, batch 1, 224x224, same weights", "",
            "| what | median ms | ratio |", "|---|---:|---:|",
            f"| onnxruntime on archc's ONNX | {ort_t['archc'] * 1e3:.1f} | 1.00x |",
            f"| onnxruntime on torch.onnx.export(dynamo=False)'s ONNX | {ort_t['torch'] * 1e3:.1f} | "
            f"{ort_t['torch'] / ort_t['archc']:.2f}x |",
            f"| eager: archc's `--eval` module (batchnorm folded) | {eager_t['folded'] * 1e3:.1f} | 1.00x |",
            f"| eager: archc's training-graph module in eval mode | {eager_t['archc'] * 1e3:.1f} | "
            f"{eager_t['archc'] / eager_t['folded']:.2f}x |",
            f"| eager: hand-written torchvision-style ResNet-50 | {eager_t['reference'] * 1e3:.1f} | "
            f"{eager_t['reference'] / eager_t['folded']:.2f}x |", "",
            "Ratios above 1 mean slower than the first row of the pair.", ""]
