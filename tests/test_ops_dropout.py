"""dropout with ``channelwise: true``: whole channels zeroed in training as nn.Dropout1d/2d/3d (FCN's
nn.Dropout2d), by the input's rank; the identity in eval mode and in ONNX, with no state."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from archc.lowering.torch import build_module, generate_source
from ops_harness import check_parity, graph_of, onnx_model, spec_error

#: (input shape, PyTorch's module of channel-wise dropout for that rank)
RANKS = [([4, 6, 9], nn.Dropout1d), ([4, 6, 5, 7], nn.Dropout2d), ([4, 6, 3, 4, 5], nn.Dropout3d)]


def _spec(shape: list[int], extra: str = ", channelwise: true") -> str:
    return f"inputs: {{x: [N, {', '.join(map(str, shape[1:]))}]}}\nnodes: [{{name: drop, op: dropout, p: 0.4{extra}}}]"


@pytest.mark.parametrize("shape, reference", RANKS, ids=["1d", "2d", "3d"])
def test_it_is_pytorchs_channel_dropout_of_the_inputs_rank(shape, reference):
    graph = graph_of(_spec(shape))
    module = build_module(graph)
    assert f"self.drop = nn.{reference.__name__}(p=0.4)" in generate_source(graph)
    assert type(module.drop) is reference and module.state_dict() == {} == reference(0.4).state_dict()
    x = torch.randn(*shape) + 3  # (no element zero before the dropout)
    torch.manual_seed(1)
    ours = module.train()(x)
    torch.manual_seed(1)
    torch.testing.assert_close(ours, reference(0.4).train()(x))  # the same channels, the same scaling
    kept = ours.flatten(2).ne(0)
    assert (kept.all(-1) | ~kept.any(-1)).all()  # each channel of each sample whole or zeroed
    assert 0 < (~kept.any(-1)).sum() < kept.shape[0] * kept.shape[1]
    torch.testing.assert_close(module.eval()(x), x)
    check_parity(_spec(shape))  # eval mode against onnxruntime


def test_elementwise_dropout_is_unchanged():
    graph = graph_of(_spec([4, 6, 5, 7], extra=""))
    assert "self.drop = nn.Dropout(p=0.4)" in generate_source(graph)


def test_onnx_is_the_identity_and_holds_nothing():
    model = onnx_model(graph_of(_spec([2, 6, 5, 7])))
    assert [n.op_type for n in model.graph.node] == ["Identity"] and not model.graph.initializer


def test_fcns_classifier_traces_exports_and_scripts():
    # fc6, relu6, drop6 of FCN-8s (wkentaro/pytorch-fcn): nn.Dropout2d between the convs
    graph = graph_of("inputs: {x: [N, 8, 9, 9]}\nnodes:\n"
                     "  - {name: fc6, op: conv, out_channels: 16, kernel_size: 7}\n"
                     "  - {name: relu6, op: relu}\n"
                     "  - {name: drop6, op: dropout, channelwise: true}")
    module = build_module(graph).eval()
    reference = nn.Sequential(nn.Conv2d(8, 16, 7), nn.ReLU(), nn.Dropout2d()).eval()
    reference.load_state_dict({k.replace("fc6", "0"): v for k, v in module.state_dict().items()}, strict=True)
    x = torch.randn(2, 8, 9, 9)
    batch = torch.export.Dim("N", min=1, max=64)
    with torch.no_grad():
        want = reference(x)
        torch.testing.assert_close(module(x), want)
        torch.testing.assert_close(torch.fx.symbolic_trace(module)(x), want)
        torch.testing.assert_close(torch.jit.script(module)(x), want)
        exported = torch.export.export(module, (x,), dynamic_shapes={"x": {0: batch}})
        torch.testing.assert_close(exported.module()(x[:1]), want[:1])


@pytest.mark.parametrize("text, message", [
    ("inputs: {x: [N, 8]}\nnodes: [{op: dropout, channelwise: true}]",
     "channel-wise dropout zeroes whole channels of (N, C, L), (N, C, H, W) or (N, C, D, H, W) (nn.Dropout1d, 2d, "
     "3d), got 2-D (N, 8); leave channelwise out to drop elements"),
    ("inputs: {x: [N, 8, 4]}\nnodes: [{op: dropout, channelwise: 'yes'}]",
     "attribute 'channelwise' of op 'dropout' expects"),
    ("inputs: {x: [N, 8, 4, 4]}\nnodes: [{name: drop6, op: dropout2d, p: 0.5}]",
     "unknown op 'dropout2d' (write {op: dropout, channelwise: true})"),
    ("inputs: {x: [N, 8, 4, 4]}\nnodes: [{name: drop6, op: Dropout3d}]",
     "unknown op 'Dropout3d' (write {op: dropout, channelwise: true})"),
])
def test_mistakes_are_located_and_say_what_to_write(text, message):
    msg = spec_error(text)
    assert message in msg and msg.startswith("<spec>:3:"), msg
