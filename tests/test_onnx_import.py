"""ONNX import: small PyTorch models exported by torch.onnx, and hand-written ONNX graphs,
imported into the IR and checked for shapes, parameter counts, absence of export noise,
merge structure, and equality of the re-lowered model's outputs on onnxruntime."""
from __future__ import annotations

import json
import math
import warnings

import networkx as nx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from archc.analysis.skips import analyze  # noqa: E402
from archc.errors import SpecError  # noqa: E402
from archc.frontends.onnx import from_onnx, load_onnx  # noqa: E402
from archc.ops.weights import total_params  # noqa: E402
from archc.ops import registry  # noqa: E402
from archc.frontends.yaml import loads_spec  # noqa: E402

SPECS_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "specs"

#: ONNX ops that only an exporter's shape bookkeeping or graph plumbing produces
NOISE = {"Shape", "Size", "Gather", "Constant", "ConstantOfShape", "Identity", "Cast", "Unsqueeze", "Squeeze",
         "Dropout", "Concat", "Range", "Expand"}


# -- models --------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNetTiny(nn.Module):
    """A stem, an identity-shortcut block, a projection-shortcut block and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())


class UNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc1 = _conv_relu(3, 4)
        self.enc2 = _conv_relu(4, 8)
        self.bottom = _conv_relu(8, 8)
        self.up2 = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.dec2 = _conv_relu(16, 4)
        self.dec1 = _conv_relu(8, 4)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), e1], dim=1))
        return self.head(d1)


class FPNTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c2 = nn.Conv2d(3, 4, 3, 2, 1)
        self.c3 = nn.Conv2d(4, 8, 3, 2, 1)
        self.c4 = nn.Conv2d(8, 16, 3, 2, 1)
        self.lat2 = nn.Conv2d(4, 4, 1)
        self.lat3 = nn.Conv2d(8, 4, 1)
        self.lat4 = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        c2 = self.c2(x)
        c3 = self.c3(c2)
        c4 = self.c4(c3)
        p4 = self.lat4(c4)
        p3 = self.lat3(c3) + F.interpolate(p4, scale_factor=2, mode="nearest")
        p2 = self.lat2(c2) + F.interpolate(p3, scale_factor=2, mode="nearest")
        return p2, p3, p4


class DenseBlockTiny(nn.Module):
    def __init__(self, cin: int = 4, growth: int = 3, layers: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(cin + i * growth), nn.ReLU(), nn.Conv2d(cin + i * growth, growth, 3, padding=1,
                                                                              bias=False))
            for i in range(layers))

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class InceptionTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(4, 2, 1)
        self.b2 = nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(4, 2, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class SqueezeExcite(nn.Module):
    def __init__(self, c: int = 8, r: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(c, c // r)
        self.fc2 = nn.Linear(c // r, c)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        b, c = x.shape[:2]
        w = self.pool(x).view(b, c)
        w = torch.sigmoid(self.fc2(torch.relu(self.fc1(w)))).view(b, c, 1, 1)
        return x * w


class EncoderLayer(nn.Module):
    """nn.TransformerEncoderLayer; calling it with is_causal given works around a tracer issue."""

    def __init__(self, norm_first: bool) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True, norm_first=norm_first)

    def forward(self, x):
        return self.layer(x, is_causal=False)


class GeluTanhWritten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.fc(x)
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class TanhExpWritten(nn.Module):
    """TanhExp (Liu & Di 2020), x * tanh(exp(x)), spelled out: no native op for it, so it keeps its
    structure (Mish, x * tanh(softplus(x)), is fused into the native mish: tests/test_onnx_patterns.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.fc(x)
        return x * torch.tanh(torch.exp(x))


class RMSNormWritten(nn.Module):
    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.weight = nn.Parameter(torch.rand(d) + 0.5)

    def forward(self, x):
        x = self.fc(x)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


#: name -> (model factory, input shape at export (batch 2), merges: op -> computed-input counts)
MODELS = {
    "resnet": (ResNetTiny, (2, 3, 8, 8), {"add": [2, 2]}),
    "unet": (UNetTiny, (2, 3, 8, 8), {"concat": [2, 2]}),
    "fpn": (FPNTiny, (2, 3, 16, 16), {"add": [2, 2]}),
    "dense": (DenseBlockTiny, (2, 4, 6, 6), {"concat": [2, 3, 4]}),
    "transformer_post": (lambda: EncoderLayer(False), (2, 5, 16), {"add": [2, 2]}),
    "transformer_pre": (lambda: EncoderLayer(True), (2, 5, 16), {"add": [2, 2]}),
    "inception": (InceptionTiny, (2, 4, 6, 6), {"concat": [4]}),
    "se": (SqueezeExcite, (2, 3, 6, 6), {"mul": [2]}),
}


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that a wrong mapping shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


def export(model: nn.Module, shape, path, keep_batchnorm: bool = True) -> str:
    """torch.onnx.export with a symbolic batch; TrainingMode.PRESERVE keeps BatchNorm as its own node
    (the default eval export folds it into the conv, which changes the parameter count)."""
    kwargs = {"training": torch.onnx.TrainingMode.PRESERVE} if keep_batchnorm else {}
    out = model(torch.zeros(*shape))
    n_out = len(out) if isinstance(out, tuple) else 1
    names = ["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(*shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=names, dynamic_axes={"x": {0: "N"}}, **kwargs)
    return str(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (torch model, input shape, ONNX path), exported once per test module."""
    root = tmp_path_factory.mktemp("onnx_models")
    result = {}
    for i, (name, (factory, shape, _)) in enumerate(MODELS.items()):
        torch.manual_seed(i)
        model = _randomize(factory(), i)
        result[name] = (model, shape, export(model, shape, root / f"{name}.onnx"))
    return result


def run_ort(model: onnx.ModelProto | str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    data = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def relowered_outputs(graph, x: np.ndarray) -> dict[str, np.ndarray]:
    from archc.lowering.onnx import to_onnx

    model = to_onnx(graph)
    onnx.checker.check_model(model)
    names = [o.name for o in model.graph.output]
    return dict(zip(names, run_ort(model, {graph.inputs[0]: x})))


def onnx_nodes(graph, op_types=None):
    return [n for n in graph.nodes() if n.op == "onnx_node" and (op_types is None or n.attrs["op_type"] in op_types)]


def merges(graph) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for node in graph.nodes():
        if registry.lookup(node.op).role_of(node).startswith("merge_"):
            out.setdefault(node.op, []).append(len(node.inputs))
    return {k: sorted(v) for k, v in out.items()}


# -- exported PyTorch models -----------------------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_exported_model_imports_cleanly(exported, name):
    model, shape, path = exported[name]
    graph = load_onnx(path)
    # shapes: the batch stays symbolic, everything else as PyTorch computes it
    with torch.no_grad():
        ref = model(torch.zeros(3, *shape[1:]))
    ref = ref if isinstance(ref, tuple) else (ref,)
    assert len(graph.outputs) == len(ref)
    for value, r in zip(graph.outputs.values(), ref):
        assert graph.type_of(value).shape == ("N", *r.shape[1:])
    # parameters: exactly the torch module's
    assert total_params(graph) == sum(p.numel() for p in model.parameters())
    # no shape arithmetic or plumbing left: no such onnx_node, and no integer tensors at all
    assert onnx_nodes(graph, NOISE) == []
    assert all(t.dtype == "float32" for n in graph.nodes() for t in n.outputs)
    # merges: the right ops with the right number of computed inputs
    assert merges(graph) == MODELS[name][2]


@pytest.mark.parametrize("name", list(MODELS))
def test_relowered_model_computes_the_same(exported, name):
    model, shape, path = exported[name]
    graph = load_onnx(path)
    x = np.random.default_rng(7).standard_normal((3, *shape[1:])).astype(np.float32)
    want = run_ort(path, {"x": x})
    got = relowered_outputs(graph, x)
    assert list(got) == list(graph.outputs)
    for w, g in zip(want, got.values()):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    ref = ref if isinstance(ref, tuple) else (ref,)
    for r, g in zip(ref, got.values()):
        np.testing.assert_allclose(g, r.numpy(), rtol=1e-4, atol=1e-4)


def test_resnet_maps_to_native_ops_with_module_names(exported):
    graph = load_onnx(exported["resnet"][2])
    ops = {n.name: n.op for n in graph.nodes()}
    assert ops["conv1"] == "conv" and ops["bn1"] == "batchnorm" and ops["fc"] == "linear"
    assert ops["layer1.1.downsample.0"] == "conv" and ops["layer1.1.downsample.1"] == "batchnorm"
    assert "onnx_node" not in ops.values()
    block = graph.node("layer1.0.bn1")
    assert block.attrs["eps"] == pytest.approx(1e-5) and block.attrs["momentum"] == pytest.approx(0.1)
    model = exported["resnet"][0]
    np.testing.assert_array_equal(graph.weights["layer1.0.bn1"]["running_var"],
                                  model.layer1[0].bn1.running_var.numpy())
    # flatten after the global pool stays one flatten
    assert [n.op for n in graph.nodes()][-3:] == ["global_avgpool", "flatten", "linear"]


def test_transformer_linear_layers_absorb_their_bias(exported):
    graph = load_onnx(exported["transformer_post"][2])
    linears = {n.name: n for n in graph.nodes() if n.op == "linear"}
    assert {"layer.linear1", "layer.linear2"} <= set(linears)
    assert all(n.attrs["bias"] for n in linears.values())
    assert len(linears) == 2  # the feed-forward layers; the attention's projections are in its native op
    model = exported["transformer_post"][0]
    np.testing.assert_array_equal(graph.weights["layer.linear1"]["weight"], model.layer.linear1.weight.detach().numpy())
    ops = [n.op for n in graph.nodes()]
    assert ops.count("layernorm") == 2 and ops.count("multi_head_attention") == 1
    assert "softmax" not in ops and "matmul" not in ops and "scale" not in ops
    (attention,) = [n for n in graph.nodes() if n.op == "multi_head_attention"]
    np.testing.assert_array_equal(graph.weights[attention.name]["in_proj_weight"],
                                  model.layer.self_attn.in_proj_weight.detach().numpy())


def test_squeeze_excite_view_chain_disappears(exported):
    graph = load_onnx(exported["se"][2])
    ops = [n.op for n in graph.nodes() if n.op != "input"]
    assert ops == ["conv", "relu", "global_avgpool", "flatten", "linear", "relu", "linear", "sigmoid", "reshape", "mul"]
    gate = [n for n in graph.nodes() if n.op == "reshape"][0]
    assert gate.attrs["shape"] == (0, 8, 1, 1)


def test_default_export_with_folded_batchnorm(tmp_path):
    torch.manual_seed(0)
    model = _randomize(ResNetTiny(), 0)
    path = export(model, (2, 3, 8, 8), tmp_path / "folded.onnx", keep_batchnorm=False)
    graph = load_onnx(path)
    assert "batchnorm" not in {n.op for n in graph.nodes()}
    assert all(n.attrs["bias"] for n in graph.nodes() if n.op == "conv")
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(list(relowered_outputs(graph, x).values())[0], run_ort(path, {"x": x})[0],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factory", [TanhExpWritten, RMSNormWritten])
def test_decomposed_functions_keep_their_structure(tmp_path, factory):
    # (GELU, SiLU and layer norm written out are fused into native ops: tests/test_onnx_patterns.py)
    torch.manual_seed(3)
    model = factory().eval()
    path = export(model, (2, 4, 8), tmp_path / "f.onnx")
    graph = load_onnx(path)
    assert total_params(graph) == sum(p.numel() for p in model.parameters())
    x = np.random.default_rng(2).standard_normal((3, 4, 8)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(list(relowered_outputs(graph, x).values())[0], model(torch.from_numpy(x)).numpy(),
                                   rtol=1e-5, atol=1e-5)
    # Every merge combines functions of one value with no learned layer between: the
    # branches of a merge meet again before any 'layer' node, so no merge is a skip.
    roles = {n.name: registry.lookup(n.op).role_of(n) for n in graph.nodes()}
    fc = next(n.name for n in graph.nodes() if n.op == "linear")
    merge_nodes = [n for n in graph.nodes() if roles[n.name].startswith("merge_")]
    assert merge_nodes
    for node in merge_nodes:
        between = nx.ancestors(graph.nx, node.name) - nx.ancestors(graph.nx, fc) - {fc}
        assert all(roles[b] != "layer" for b in between), node.name
    # arithmetic with a constant is a one-input node: x * c a scale, x + c an offset, c / x a function
    for n in onnx_nodes(graph, {"Add", "Sub", "Mul", "Div"}):
        assert len(n.inputs) == 1
        op, const_first = n.attrs["op_type"], isinstance(n.attrs["operands"][0], str)
        want = "activation" if op == "Div" and const_first else ("scale" if op in ("Mul", "Div") else "affine")
        assert roles[n.name] == want


@pytest.mark.parametrize("factory", [TanhExpWritten, RMSNormWritten])
def test_decomposed_functions_have_no_skips(tmp_path, factory):
    torch.manual_seed(3)
    path = export(factory().eval(), (2, 4, 8), tmp_path / "f.onnx")
    analysis = analyze(load_onnx(path))
    assert analysis.connections and analysis.skips == []
    assert {c.kind for c in analysis.connections} == {"sequential"}


# -- lint labels equal those of the same architecture written as a spec ------------------------

_CONV = "op: conv, kernel_size: 3, padding: 1"
SPECS = {
    "resnet": f"""
inputs: {{x: [N, 3, 8, 8]}}
blocks:
  basic:
    params: {{planes: null, stride: 1}}
    nodes:
      - {{name: conv1, {_CONV}, out_channels: planes, stride: stride, bias: false}}
      - {{name: bn1, op: batchnorm}}
      - {{name: relu, op: relu}}
      - {{name: conv2, {_CONV}, out_channels: planes, bias: false}}
      - {{name: bn2, op: batchnorm}}
      - {{name: down, block: proj, in: x, out: planes, stride: stride,
         if: "stride != 1 or channels(x) != planes", else: x}}
      - {{name: add, op: add, in: [bn2, down]}}
      - {{name: relu2, op: relu}}
  proj:
    params: {{out: null, stride: 1}}
    nodes:
      - {{name: conv, op: conv, out_channels: out, kernel_size: 1, stride: stride, bias: false}}
      - {{name: bn, op: batchnorm}}
nodes:
  - {{name: conv1, {_CONV}, out_channels: 8, bias: false}}
  - {{name: bn1, op: batchnorm}}
  - {{name: relu, op: relu}}
  - {{name: b1, block: basic, planes: 8}}
  - {{name: b2, block: basic, planes: 16, stride: 2}}
  - {{name: pool, op: global_avgpool}}
  - {{name: flat, op: flatten}}
  - {{name: fc, op: linear, out_features: 5}}
""",
    "unet": f"""
inputs: {{x: [N, 3, 8, 8]}}
nodes:
  - {{name: e1, {_CONV}, out_channels: 4}}
  - {{name: e1r, op: relu}}
  - {{name: p1, op: maxpool, kernel_size: 2}}
  - {{name: e2, {_CONV}, out_channels: 8}}
  - {{name: e2r, op: relu}}
  - {{name: p2, op: maxpool, kernel_size: 2}}
  - {{name: b, {_CONV}, out_channels: 8}}
  - {{name: br, op: relu}}
  - {{name: up2, op: conv_transpose, out_channels: 8, kernel_size: 2, stride: 2}}
  - {{name: cat2, op: concat, in: [up2, e2r]}}
  - {{name: d2, {_CONV}, out_channels: 4}}
  - {{name: d2r, op: relu}}
  - {{name: up1, op: upsample, scale_factor: 2}}
  - {{name: cat1, op: concat, in: [up1, e1r]}}
  - {{name: d1, {_CONV}, out_channels: 4}}
  - {{name: d1r, op: relu}}
  - {{name: head, op: conv, out_channels: 2, kernel_size: 1}}
""",
    "fpn": f"""
inputs: {{x: [N, 3, 16, 16]}}
nodes:
  - {{name: c2, {_CONV}, out_channels: 4, stride: 2}}
  - {{name: c3, {_CONV}, out_channels: 8, stride: 2}}
  - {{name: c4, {_CONV}, out_channels: 16, stride: 2}}
  - {{name: p4, op: conv, out_channels: 4, kernel_size: 1}}
  - {{name: lat3, op: conv, out_channels: 4, kernel_size: 1, in: c3}}
  - {{name: up4, op: upsample, scale_factor: 2, in: p4}}
  - {{name: p3, op: add, in: [lat3, up4]}}
  - {{name: lat2, op: conv, out_channels: 4, kernel_size: 1, in: c2}}
  - {{name: up3, op: upsample, scale_factor: 2, in: p3}}
  - {{name: p2, op: add, in: [lat2, up3]}}
outputs: [p2, p3, p4]
""",
    "dense": f"""
inputs: {{x: [N, 4, 6, 6]}}
nodes:
  - {{name: bn0, op: batchnorm, in: x}}
  - {{name: r0, op: relu}}
  - {{name: f1, {_CONV}, out_channels: 3, bias: false}}
  - {{name: c1, op: concat, in: [x, f1]}}
  - {{name: bn1, op: batchnorm}}
  - {{name: r1, op: relu}}
  - {{name: f2, {_CONV}, out_channels: 3, bias: false}}
  - {{name: c2, op: concat, in: [x, f1, f2]}}
  - {{name: bn2, op: batchnorm}}
  - {{name: r2, op: relu}}
  - {{name: f3, {_CONV}, out_channels: 3, bias: false}}
  - {{name: c3, op: concat, in: [x, f1, f2, f3]}}
""",
    "inception": """
inputs: {x: [N, 4, 6, 6]}
nodes:
  - {name: b1, op: conv, out_channels: 2, kernel_size: 1, in: x}
  - {name: b2a, op: conv, out_channels: 2, kernel_size: 1, in: x}
  - {name: b2r, op: relu}
  - {name: b2, op: conv, out_channels: 3, kernel_size: 3, padding: 1}
  - {name: b3a, op: conv, out_channels: 2, kernel_size: 1, in: x}
  - {name: b3r, op: relu}
  - {name: b3, op: conv, out_channels: 3, kernel_size: 5, padding: 2}
  - {name: b4a, op: maxpool, kernel_size: 3, stride: 1, padding: 1, in: x}
  - {name: b4, op: conv, out_channels: 2, kernel_size: 1}
  - {name: cat, op: concat, in: [b1, b2, b3, b4]}
""",
    "se": f"""
inputs: {{x: [N, 3, 6, 6]}}
nodes:
  - {{name: conv, {_CONV}, out_channels: 8}}
  - {{name: act, op: relu}}
  - {{name: pool, op: global_avgpool}}
  - {{name: flat, op: flatten}}
  - {{name: fc1, op: linear, out_features: 4}}
  - {{name: r, op: relu}}
  - {{name: fc2, op: linear, out_features: 8}}
  - {{name: gate, op: sigmoid}}
  - {{name: g4, op: reshape, shape: [0, 8, 1, 1]}}
  - {{name: scaled, op: mul, in: [act, g4]}}
""",
}
for _norm_first in (False, True):
    _attn = "{name: attn, op: multi_head_attention, num_heads: 2, in: [%s, %s, %s]}"
    _ff = ("  - {name: ff1, op: linear, out_features: 32, in: %s}\n  - {name: ffr, op: relu}\n"
           "  - {name: ff2, op: linear, out_features: 16}\n")
    if _norm_first:
        _body = (f"  - {{name: n1, op: layernorm, in: x}}\n  - {_attn % ('n1', 'n1', 'n1')}\n"
                 "  - {name: a1, op: add, in: [x, attn]}\n  - {name: n2, op: layernorm}\n"
                 + _ff % "n2" + "  - {name: a2, op: add, in: [a1, ff2]}\n")
    else:
        _body = (f"  - {_attn % ('x', 'x', 'x')}\n  - {{name: a1, op: add, in: [x, attn]}}\n"
                 "  - {name: n1, op: layernorm}\n" + _ff % "n1" + "  - {name: a2, op: add, in: [n1, ff2]}\n"
                 "  - {name: n2, op: layernorm}\n")
    SPECS["transformer_pre" if _norm_first else "transformer_post"] = \
        "inputs: {x: [N, 5, 16]}\nnodes:\n" + _body


@pytest.mark.parametrize("name", list(MODELS))
def test_lint_labels_match_the_equivalent_spec(exported, name):
    spec = loads_spec("archc: 1\nname: " + name + "\n" + SPECS[name])
    assert total_params(spec) == total_params(load_onnx(exported[name][2]))
    want = analyze(spec)
    got = analyze(load_onnx(exported[name][2]))
    # (the export spells attention out; it is fused back into one node, as in the spec)
    got_labels = [(c.kind, c.carries) for c in got.connections]
    want_labels = [(c.kind, c.carries) for c in want.connections]
    assert got_labels == want_labels
    expected = {"resnet": {"residual"}, "unet": {"long_skip"}, "fpn": {"long_skip"}, "dense": {"dense"},
                "transformer_post": {"residual"}, "transformer_pre": {"residual"}, "inception": {"branch"},
                "se": {"sequential"}}[name]
    assert {kind for kind, _ in got_labels} == expected


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("name", ["se", "rmsnorm"])
def test_older_opsets_import_and_relower_at_17(tmp_path, name, opset):
    """Squeeze/Unsqueeze/Split axes as attributes (opset 11), Pow and Add from older versions
    re-emitted at archc's opset where only their accepted types changed."""
    torch.manual_seed(4)
    model = (SqueezeExcite() if name == "se" else RMSNormWritten()).eval()
    shape = (2, 3, 6, 6) if name == "se" else (2, 4, 8)
    path = str(tmp_path / f"{name}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(*shape),), path, dynamo=False, opset_version=opset, input_names=["x"],
                          dynamic_axes={"x": {0: "N"}})
    graph = load_onnx(path)
    assert onnx_nodes(graph, NOISE) == []
    assert total_params(graph) == sum(p.numel() for p in model.parameters())
    x = np.random.default_rng(5).standard_normal((3, *shape[1:])).astype(np.float32)
    np.testing.assert_allclose(list(relowered_outputs(graph, x).values())[0], run_ort(path, {"x": x})[0],
                               rtol=1e-5, atol=1e-5)


# -- archc's own ONNX lowering read back ----------------------------------------------------------

@pytest.mark.parametrize("spec,overrides", [
    ("resnet18.yaml", {"width": 8, "image_size": 32, "num_classes": 10}),
    ("densenet121.yaml", {"growth_rate": 4, "init_features": 8, "block_config": [2, 1, 1, 2], "image_size": 32}),
    ("googlenet.yaml", {"image_size": 64, "num_classes": 10}),
])
def test_specs_round_trip_through_onnx(spec, overrides):
    from archc.lowering.onnx import to_onnx
    from archc.frontends.yaml import load_spec

    original = load_spec(str(SPECS_DIR / spec), overrides)
    model = to_onnx(original, seed=0)
    graph = from_onnx(model, spec.replace(".yaml", ".onnx"))
    # what only training or the spec's bookkeeping needs disappears: dropout, one-input concats
    kept = [n for n in original.nodes() if n.op != "dropout" and not (n.op == "concat" and len(n.inputs) == 1)]
    assert [(n.name, n.op, n.outputs) for n in graph.nodes()] == [(n.name, n.op, n.outputs) for n in kept]
    assert total_params(graph) == total_params(original)
    assert [(c.merge, c.kind) for c in analyze(graph).connections] == \
        [(c.merge, c.kind) for c in analyze(original).connections]
    for node in kept:
        if node.op in ("conv", "linear", "batchnorm"):
            assert node.attrs == graph.node(node.name).attrs
    x = np.random.default_rng(0).standard_normal((2, 3, overrides["image_size"], overrides["image_size"]))
    x = x.astype(np.float32)
    np.testing.assert_allclose(relowered_outputs(graph, x)["fc"] if "fc" in graph.outputs else
                               list(relowered_outputs(graph, x).values())[0],
                               run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-5)


# -- hand-written ONNX graphs (other exporters) ------------------------------------------------

def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_segnet_maxpool_indices_are_kept_as_ports():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv.weight")
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="enc/conv", pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["p", "idx"], name="enc/pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["p"], ["r"], name="mid/relu"),
        helper.make_node("MaxUnpool", ["r", "idx"], ["y"], name="dec/unpool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3, 8, 8])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4, 8, 8])], [w])
    graph = from_onnx(model, "segnet.onnx")
    pool = graph.node("enc.pool")  # ONNX's pair becomes the native pair (per-plane indices between them)
    assert pool.op == "maxpool" and pool.attrs["return_indices"]
    assert [str(t) for t in pool.outputs] == ["(B, 4, 4, 4)", "(B, 4, 4, 4) int64"]
    unpool = graph.node("dec.unpool")
    assert unpool.op == "max_unpool" and [str(v) for v in unpool.inputs] == ["mid.relu", "enc.pool:1"]
    assert registry.lookup(unpool.op).role_of(unpool) == "unpool"
    assert registry.lookup(pool.op).role_of(pool) == "pool"
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(relowered_outputs(graph, x)["y"], run_ort(model, {"x": x})[0], rtol=1e-6)


def test_shape_chains_identity_and_constant_operands():
    """x.view(x.size(0), -1) spelled with Shape/Gather/Unsqueeze/Concat, an Identity, a
    same-type Cast, MatMul + Add of constants, a learned per-feature Mul and a bias Add."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"),
        numpy_helper.from_array(rng.standard_normal((48, 6)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "pos"),
    ]
    nodes = [
        helper.make_node("Identity", ["x"], ["x1"]),
        helper.make_node("Cast", ["x1"], ["x2"], to=TensorProto.FLOAT),
        helper.make_node("Shape", ["x2"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x2", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["b", "mm"], ["fc"]),
        helper.make_node("Mul", ["fc", "gamma"], ["scaled"]),
        helper.make_node("Add", ["scaled", "pos"], ["y"]),
    ]
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"))
    # W is also listed as a graph input (as older exporters list every initializer): not an input
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4, 4]),
                           helper.make_tensor_value_info("W", TensorProto.FLOAT, [48, 6])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6])], inits)
    graph = from_onnx(model)
    assert graph.inputs == ["x"]
    ops = [(n.op, len(n.inputs)) for n in graph.nodes() if n.op != "input"]
    # (the learned scale and shift: each a parameter, read by the native op)
    assert ops == [("flatten", 1), ("linear", 1), ("parameter", 0), ("mul", 2), ("parameter", 0), ("add", 2)]
    fc = [n for n in graph.nodes() if n.op == "linear"][0]
    np.testing.assert_array_equal(graph.weights[fc.name]["weight"], numpy_helper.to_array(inits[2]).T)
    held = [graph.weights[n.name][""] for n in graph.nodes() if n.op == "parameter"]
    for array, init in zip(held, inits[4:]):
        np.testing.assert_array_equal(array, numpy_helper.to_array(init))
    assert analyze(graph).connections == []  # (a parameter is no data path: no join)
    assert total_params(graph) == 48 * 6 + 6 + 6 + 6
    x = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(relowered_outputs(graph, x)["y"], run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_old_opset_attributes_and_reshape_chains():
    """Opset 11: Squeeze/Unsqueeze axes as attributes; Reshape(Reshape(x)) becomes one node or none."""
    inits = [numpy_helper.from_array(np.array([0, 2, 8], dtype=np.int64), "s1"),
             numpy_helper.from_array(np.array([0, 16], dtype=np.int64), "s2")]
    nodes = [
        helper.make_node("Unsqueeze", ["x"], ["u"], axes=[1]),
        helper.make_node("Squeeze", ["u"], ["q"], axes=[1]),
        helper.make_node("Reshape", ["q", "s1"], ["r1"]),
        helper.make_node("Relu", ["r1"], ["a"]),
        helper.make_node("Reshape", ["a", "s1"], ["r2"]),
        helper.make_node("Reshape", ["r2", "s2"], ["y"]),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])], inits, opset=11)
    graph = from_onnx(model)
    assert [n.op for n in graph.nodes() if n.op != "input"] == ["reshape", "relu", "flatten"]
    x = np.arange(32, dtype=np.float32).reshape(2, 16) - 10
    np.testing.assert_allclose(relowered_outputs(graph, x)["y"], np.maximum(x, 0))


def test_shape_values_used_as_data_are_computed_once():
    """x / batch_size: the symbolic batch becomes data, so Shape -> Gather -> Cast stay, once each,
    even when the value is reached through an Identity and used twice; their roles are meta."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
        helper.make_node("Identity", ["n"], ["n2"], name="alias"),
        helper.make_node("Cast", ["n2"], ["nf"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["n"], ["nf2"], name="to_float_again", to=TensorProto.FLOAT),
        helper.make_node("Div", ["x", "nf"], ["d"], name="div"),
        helper.make_node("Mul", ["d", "nf2"], ["y"], name="mul"),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                   [numpy_helper.from_array(np.array(0, dtype=np.int64), "zero")])
    graph = from_onnx(model)
    kept = [(n.name, n.attrs.get("op_type", n.op)) for n in graph.nodes() if n.op != "input"]
    assert kept == [("shape", "Shape"), ("batch", "Gather"), ("to_float", "Cast"), ("div", "div"),
                    ("to_float_again", "Cast"), ("mul", "mul")]
    assert registry.lookup("onnx_node").role_of(graph.node("shape")) == "shape"
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(relowered_outputs(graph, x)["y"], x)


def test_unknown_op_is_kept_with_its_weights_and_role():
    rng = np.random.default_rng(2)
    slope = numpy_helper.from_array(rng.random((1, 3, 1, 1)).astype(np.float32), "slope")
    nodes = [helper.make_node("PRelu", ["x", "slope"], ["p"], name="act"),
             helper.make_node("Erf", ["p"], ["y"], name="erf")]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 2, 2])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3, 2, 2])], [slope])
    graph = from_onnx(model)
    x_shape = graph.node(graph.inputs[0]).type.shape
    assert isinstance(x_shape[0], str)  # an unknown dim gets a fresh symbol
    act = graph.node("act")
    assert act.attrs["op_type"] == "PRelu" and act.attrs["operands"] == [0, "slope"]
    assert graph.weights["act"]["slope"].shape == (1, 3, 1, 1)
    assert total_params(graph) == 3
    assert registry.lookup("onnx_node").role_of(act) == "activation"
    assert act.outputs[0].shape == x_shape
    # and it builds to PyTorch, as the ONNX op (archc.ops.onnx_torch), with its slope as a parameter
    from archc.lowering.torch import build_module

    module = build_module(graph, seed=None)
    assert dict(module.named_parameters())["act.slope"].shape == (1, 3, 1, 1)
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), run_ort(model, {"x": x})[0],
                               rtol=1e-5, atol=1e-6)


# -- the command line and errors ------------------------------------------------------------------

def test_summary_counts_parameters_like_torch(exported, run_archc):
    model, _, path = exported["resnet"]
    proc = run_archc("summary", path, "--format", "json", check=True)
    data = json.loads(proc.stdout)
    assert data["total_params"] == sum(p.numel() for p in model.parameters())
    assert data["inputs"] == {"x": {"shape": ["N", 3, 8, 8], "dtype": "float32"}}
    table = run_archc("summary", exported["se"][2], check=True).stdout
    assert "fc1" in table and "onnx_node" not in table and "total:" in table


def test_lint_reads_onnx_models(exported, run_archc):
    proc = run_archc("lint", exported["resnet"][2], "--format", "json", check=True)
    data = json.loads(proc.stdout)
    assert data["summary"]["residual"] == 2
    assert [s["merge"] for s in data["skips"]] == ["layer1.0.Add", "layer1.1.Add"]
    assert [s["carries"] for s in data["skips"]] == ["identity", "projection"]


def test_summary_reports_unreadable_models(tmp_path, run_archc):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf \xff\xff")
    proc = run_archc("summary", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{bad}: error: ") and "Traceback" not in proc.stderr
    missing = run_archc("summary", str(tmp_path / "missing.onnx"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_invalid_models_raise_spec_errors(tmp_path):
    # a node reading a value nothing defines
    model = _model([helper.make_node("Relu", ["nowhere"], ["y"], name="r")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(SpecError) as info:
        from_onnx(model, "dangling.onnx")
    assert str(info.value) == ("dangling.onnx: error: node 'r': input 'nowhere' is not produced by "
                               "any node, initializer or graph input (ONNX node #0, Relu)")
    # control flow is refused with the node named
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "body", [],
                             [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])])
    # (an If on a constant condition becomes its branch: tests/test_onnx_torch_ops.py)
    model = _model([helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=body, else_branch=body)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
                    helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(SpecError, match="node 'branch': ONNX If has a subgraph"):
        from_onnx(model, "if.onnx")


# -- converter failures ------------------------------------------------------------------------

def _conv_model():
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), dtype=np.float32), "conv.weight")
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["y"], name="enc/conv", pads=[1, 1, 1, 1])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])


def test_a_bug_in_a_converter_surfaces_instead_of_keeping_an_onnx_node(monkeypatch):
    from archc.frontends.onnx.convert import CONVERTERS

    def broken(im, node):
        return {}["kernel"]  # a KeyError, as a typo in a converter would raise

    monkeypatch.setitem(CONVERTERS, "Conv", broken)
    with pytest.raises(KeyError, match="kernel"):
        from_onnx(_conv_model(), "conv.onnx")


def test_only_the_fallback_signal_keeps_an_onnx_node(monkeypatch):
    from archc.frontends.onnx.convert import CONVERTERS
    from archc.frontends.onnx.importer import Fallback

    assert from_onnx(_conv_model(), "conv.onnx").node("enc.conv").op == "conv"

    def declines(im, node):
        raise Fallback("no native op for this")

    monkeypatch.setitem(CONVERTERS, "Conv", declines)
    assert from_onnx(_conv_model(), "conv.onnx").node("enc.conv").attrs["op_type"] == "Conv"


def test_archcs_own_max_unpool_reimports_with_its_output_shape(tmp_path):
    """archc lowers max_unpool to MaxUnpool with output_shape = Concat(Shape(x)[:2], size), symbolic
    in the batch: ONNX's inference gives that output no shape; the importer reads it from the value."""
    from archc import loads_spec
    from archc.lowering.onnx import to_onnx

    spec = """\
archc: 1
name: unpool
inputs: {x: [N, 4, 9, 9]}
nodes:
  - {name: pool, op: maxpool, kernel_size: 2, return_indices: true}
  - {name: unpool, op: max_unpool, in: [pool, "pool:indices"], kernel_size: 2, stride: 2, output_size: [9, 9]}
  - {name: conv, op: conv, out_channels: 4, kernel_size: 3, padding: 1}
outputs: {y: conv}
"""
    graph = loads_spec(spec)
    path = tmp_path / "unpool.onnx"
    path.write_bytes(to_onnx(graph, seed=0).SerializeToString())
    imported = load_onnx(str(path))
    unpool = [n for n in imported.nodes() if n.attrs.get("op_type") == "MaxUnpool" or n.op == "max_unpool"]
    assert len(unpool) == 1
    assert unpool[0].outputs[0].shape == ("N", 4, 9, 9)
