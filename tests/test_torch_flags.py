"""A flag that differs between a block's instances (``bidirectional: "index == 0"``) is a constructor
argument of one class, as a number is, not a class per value; a flag that only equals an integer
parameter (True and 1) is never written as that parameter."""
from __future__ import annotations

import pytest
import torch
from generated_modules import assert_as_rebuilt, build_generated, class_names, class_text
from torch import nn


class _Layer(nn.Module):
    def __init__(self, in_features: int, hidden: int, bidirectional: bool, residual: bool) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.2)
        self.lstm = nn.LSTM(in_features, hidden, batch_first=True, bidirectional=bidirectional)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lstm(self.dropout(x))[0]
        return out + x if self.residual else out


class _GnmtEncoder(nn.Module):
    """GNMT's encoder as Wu et al. (2016) draw it: a bidirectional first layer, then unidirectional
    layers, residual from the third on."""

    def __init__(self, vocab_size: int = 50, hidden: int = 16, num_layers: int = 4) -> None:
        super().__init__()
        self.embedder = nn.Embedding(vocab_size, hidden)
        widths = [hidden, 2 * hidden] + [hidden] * (num_layers - 2)
        self.layers = nn.Sequential(*[_Layer(widths[i], hidden, i == 0, i >= 2) for i in range(num_layers)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers(self.embedder(tokens))


def test_gnmt_s_first_two_layers_are_one_class_taking_the_flag(run_archc, tmp_path):
    module, source = build_generated(run_archc, tmp_path, "specs/gnmt_encoder.yaml", "vocab_size=50", "hidden=16",
                                     "num_layers=4")
    assert class_names(source) == ["LstmLayer", "LstmLayerAdd", "GnmtEncoder"], source
    assert "in_features: int, dropout: float = 0.2, bidirectional: bool = False" in class_text(source, "LstmLayer")
    assert "bidirectional=bidirectional," in class_text(source, "LstmLayer")
    assert "LstmLayer(in_features=16, dropout=dropout, bidirectional=True)," in source
    assert "LstmLayer(in_features=32, dropout=dropout)," in source
    model, reference = module.GnmtEncoder().eval(), _GnmtEncoder().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    tokens = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens))
        torch.testing.assert_close(torch.jit.script(model)(tokens), reference(tokens))


def _assert_as_built(model: nn.Module, spec, x: torch.Tensor) -> None:
    """``model`` (the generated file's) has the in-memory module's names and shapes (its weights load
    strictly) and computes its output, eagerly and through torch.jit.script."""
    from archc.frontends.yaml import load_spec
    from archc.lowering.torch import build_module

    reference = build_module(load_spec(str(spec))).eval()
    model = model.eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))
        torch.testing.assert_close(torch.jit.script(model)(x), reference(x))


_FLAGS = """\
archc: 1
name: flags
params: {hidden: 8}
inputs:
  x: [N, 5, 8]
blocks:
  layer:
    params: {flag: 0, k: 1}
    nodes:
      - {name: lstm, op: lstm, hidden_size: hidden, bidirectional: "flag > 0"}
      - {name: proj, op: linear, out_features: hidden * k}
  pooled:
    params: {ceil: false}
    nodes:
      - {name: pool, op: maxpool1d, kernel_size: 2, stride: 2, ceil_mode: ceil}
nodes:
  - {name: l0, block: layer, flag: 1, k: 1}
  - {name: l1, block: layer, flag: 0, k: 3}
  - {name: l2, block: layer, flag: 1, k: 2}
  - {name: p0, block: pooled, ceil: true}
  - {name: p1, block: pooled}
outputs: [p1]
"""


def test_a_flag_is_its_spec_expression_never_an_integer_it_equals(run_archc, tmp_path):
    # `flag` is 1, 0, 1 where the LSTM's bidirectional is True, False, True: equal values, not its source
    spec = tmp_path / "flags.yaml"
    spec.write_text(_FLAGS)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    layer, pooled = class_text(source, "Layer"), class_text(source, "Pooled")
    assert "bidirectional=flag > 0," in layer and "bidirectional=flag," not in layer
    assert "ceil: bool = False" in pooled and "ceil_mode=" in pooled
    assert "self.p0 = Pooled(ceil=True)" in source and "self.p1 = Pooled()" in source
    _assert_as_built(module.Flags(), spec, torch.randn(2, 5, 8))


@pytest.mark.parametrize("given", [{}, {"flag": 2}])
def test_a_flag_the_class_computes_follows_its_argument(run_archc, tmp_path, given):
    spec = tmp_path / "flags.yaml"
    spec.write_text(_FLAGS)
    module, _ = build_generated(run_archc, tmp_path, str(spec))
    layer = module.Layer(in_features=8, lstm_features=16, **given)
    assert layer.lstm.bidirectional is True if given else layer.lstm.bidirectional is False


_MODEL_FLAGS = """\
archc: 1
name: model_flags
params: {use_bias: true, ceil: false}
inputs:
  x: [N, 4, 15, 15]
blocks:
  cb:
    nodes:
      - {name: conv, op: conv, out_channels: 8, kernel_size: 3, padding: 1, bias: use_bias}
      - {name: pool, op: maxpool, kernel_size: 2, stride: 2, ceil_mode: ceil}
nodes:
  - {name: c0, block: cb}
  - {name: c1, block: cb}
  - {name: head, op: conv, out_channels: 3, kernel_size: 1, bias: use_bias}
  HEAD
outputs: [OUT]
"""


@pytest.mark.parametrize("given", [{"use_bias": False}, {"ceil": True}, {"use_bias": False, "ceil": True}])
def test_a_model_flag_that_reaches_only_attributes_is_a_run_time_argument(run_archc, tmp_path, given):
    spec = tmp_path / "model_flags.yaml"
    spec.write_text(_MODEL_FLAGS.replace("  HEAD\n", "").replace("OUT", "head"))
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert "use_bias: bool = True, ceil: bool = False" in class_text(source, "Cb")
    assert "self.c0 = Cb(in_channels=4, use_bias=use_bias, ceil=ceil)" in source
    assert_as_rebuilt(run_archc, tmp_path, str(spec), (), module, "ModelFlags", given, torch.randn(2, 4, 15, 15))


def test_a_model_flag_that_moves_a_width_stays_fixed(run_archc, tmp_path):
    # ceil_mode changes the pooled size, so the flattened width the linear layer takes: another file
    spec = tmp_path / "model_flags.yaml"
    spec.write_text(_MODEL_FLAGS.replace("HEAD", "- {name: flat, op: flatten}\n  - {name: fc, op: linear, out_features: 3}")
                    .replace("OUT", "fc"))
    module, source = build_generated(run_archc, tmp_path, str(spec))
    assert '"ceil": (ceil, False)' in source
    with pytest.raises(ValueError, match=r"ceil=True: this file was generated for ceil=False"):
        module.ModelFlags(ceil=True)
    assert module.ModelFlags(use_bias=False).head.bias is None  # (the other flag stays a run-time argument)


_LAYER_FLAGS = """\
archc: 1
name: layer_flags
params: {w: 4}
inputs:
  x: [N, 4, 8, 8]
blocks:
  up:
    params: {corners: false, keep: true}
    nodes:
      - {name: conv, op: conv, out_channels: w, kernel_size: 3, padding: 1, bias: keep}
      - {name: norm, op: layernorm, dims: 3, elementwise_affine: keep}
      - {name: up, op: upsample, scale_factor: 2, mode: bilinear, align_corners: corners}
      - {name: down, op: avgpool, kernel_size: 2, stride: 2, count_include_pad: "not corners"}
nodes:
  - {name: u0, block: up, corners: true}
  - {name: u1, block: up, keep: false}
  - {name: u2, block: up, corners: true, keep: false}
outputs: [u2]
"""


def test_flags_that_leave_a_layer_s_parameters_out_share_its_class(run_archc, tmp_path):
    # `keep: false` leaves the conv's bias and the norm's affine parameters out: the class's reset calls
    # each layer's own reset_parameters, which serves both kinds; the other flags reach forward
    spec = tmp_path / "layer_flags.yaml"
    spec.write_text(_LAYER_FLAGS)
    module, source = build_generated(run_archc, tmp_path, str(spec))
    up = class_text(source, "Up")
    assert class_names(source) == ["Up", "LayerFlags"]
    assert "elementwise_affine=keep" in up and "align_corners=self.corners" in up
    assert "count_include_pad=not self.corners" in up and "self.norm.reset_parameters()" in up
    assert "self.u1 = Up(keep=False)" in source
    x = torch.randn(2, 4, 8, 8)
    _assert_as_built(module.LayerFlags(), spec, x)
    with torch.device("meta"):
        empty = module.LayerFlags()
    empty.to_empty(device="cpu")
    for block in empty.block_instances():
        block.reset_parameters()
    assert empty.u0.norm.weight is not None and empty.u1.norm.weight is None
    assert torch.equal(empty.u0.norm.weight, torch.ones(4, 8, 8)) and torch.isfinite(empty(x)).all()
