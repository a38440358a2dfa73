"""Upsampling: parity of ONNX Resize's coordinate modes with F.interpolate, shapes, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from archc.ops import registry
from ops_harness import check_parity, feeds_for, graph_of, spec_error
from ops_harness import parity_suite

PARITY_OPS = {"upsample"}

CASES = [
    ("nearest_x2", "inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, scale_factor: 2}]"),
    ("nearest_per_dim", "inputs: {x: [N, 2, 3, 5]}\nnodes: [{op: upsample, scale_factor: [3, 2]}]"),
    ("nearest_fractional", "inputs: {x: [N, 2, 4, 6]}\nnodes: [{op: upsample, scale_factor: 1.5}]"),
    ("nearest_size_odd", "inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, size: [7, 5]}]"),
    ("nearest_size_down", "inputs: {x: [N, 2, 9, 7]}\nnodes: [{op: interpolate, size: [4, 3]}]"),
    ("bilinear_x2", "inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, scale_factor: 2, mode: bilinear}]"),
    ("bilinear_size_odd", "inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, size: [5, 9], mode: bilinear}]"),
    ("bilinear_corners_scale", "inputs: {x: [N, 2, 3, 4]}\n"
     "nodes: [{op: upsample, scale_factor: 2, mode: bilinear, align_corners: true}]"),
    ("bilinear_corners_size", "inputs: {x: [N, 2, 3, 4]}\n"
     "nodes: [{op: upsample, size: [5, 9], mode: bilinear, align_corners: true}]"),
    ("linear1d", "inputs: {x: [N, 2, 5]}\nnodes: [{op: upsample, scale_factor: 3, mode: linear}]"),
    ("linear1d_corners_size", "inputs: {x: [N, 2, 5]}\n"
     "nodes: [{op: upsample, size: 8, mode: linear, align_corners: true}]"),
    ("nearest1d_size", "inputs: {x: [N, 3, 4]}\nnodes: [{op: upsample, size: 11}]"),
]


test_parity, test_cases_cover_parity_ops = parity_suite(CASES, PARITY_OPS)


@pytest.mark.parametrize("text,shape", [
    ("inputs: {x: [N, 2, 4, 6]}\nnodes: [{op: upsample, scale_factor: 1.5}]", ("N", 2, 6, 9)),
    ("inputs: {x: [N, 2, 3, 5]}\nnodes: [{op: upsample, scale_factor: [3, 2]}]", ("N", 2, 9, 10)),
    ("inputs: {x: [N, 2, 5]}\nnodes: [{op: upsample, scale_factor: 0.5}]", ("N", 2, 2)),
    ("inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, size: 6}]", ("N", 2, 6, 6)),
])
def test_inferred_shapes(text, shape):
    graph = graph_of(text)
    assert graph.type_of(graph.outputs["output"]).shape == shape


def test_nearest_repeats_pixels():
    graph, (out,) = check_parity(CASES[0][1])
    x = feeds_for(graph)["x"]
    np.testing.assert_array_equal(out, x.repeat(2, axis=2).repeat(2, axis=3))


def test_modes_agree_with_interpolate_reference():
    # The coordinate modes matter: half_pixel and align_corners differ, and each matches torch.
    x = feeds_for(graph_of(CASES[0][1]))["x"]
    for corners in (False, True):
        graph, (out,) = check_parity("inputs: {x: [N, 2, 3, 4]}\nnodes: [{op: upsample, size: [5, 9], "
                                     f"mode: bilinear, align_corners: {str(corners).lower()}}}]")
        ref = F.interpolate(torch.from_numpy(x), size=(5, 9), mode="bilinear", align_corners=corners)
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-6)
        other = F.interpolate(torch.from_numpy(x), size=(5, 9), mode="bilinear", align_corners=not corners)
        assert np.abs(out - other.numpy()).max() > 1e-2


def test_role():
    graph = graph_of(CASES[0][1])
    node = list(graph.nodes())[-1]
    assert registry.lookup(node.op).role_of(node) == "upsample"


@pytest.mark.parametrize("text,message", [
    ("{op: upsample}", "give exactly one of scale_factor and size"),
    ("{op: upsample, scale_factor: 2, size: 6}", "give exactly one of scale_factor and size"),
    ("{op: upsample, scale_factor: 2, align_corners: true}",
     "align_corners applies only to the linear modes, not to 'nearest'"),
    ("{op: upsample, scale_factor: [2, 2, 2]}", "scale_factor needs 1 or 2 values, got 3"),
    ("{op: upsample, scale_factor: -1}", "attribute 'scale_factor' of op 'upsample' must be greater than 0, got -1"),
    ("{op: upsample, scale_factor: two}", "unknown name 'two'"),
    ("{op: upsample, scale_factor: 0.1}", "output size [0, 0] must be positive"),
    ("{op: upsample, size: 4, mode: bicubic}", "attribute 'mode' of op 'upsample' expects one of 'nearest', "
                                               "'linear', 'bilinear', got 'bicubic'"),
])
def test_errors(text, message):
    msg = spec_error(f"inputs: {{x: [N, 2, 3, 4]}}\nnodes: [{text}]")
    assert message in msg


def test_needs_known_spatial_size_for_a_scale():
    msg = spec_error("inputs: {x: [N, 2, H, 4]}\nnodes: [{op: upsample, scale_factor: 2}]")
    assert "spatial size must be a known size, got symbolic 'H'" in msg
