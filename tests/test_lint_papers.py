"""``archc lint`` on architectures nobody here wrote (issue 10): modules written from their papers and
reference code (tests/paper_models.py), exported by both ``torch.onnx.export`` exporters (TorchScript,
``dynamo=False``; and the default, ``dynamo=True``), labelled as their authors designed them and the README
defines the labels; each exporter gives the same labels and path figures for one module.

The TorchScript exports take a fraction of a second and run by default; the default exporter's take one
to four seconds each, so those are marked slow except for the models whose exporters once disagreed.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings

import pytest

torch = pytest.importorskip("torch")

import paper_models as P

from archc.analysis.skips import analyze
from archc.frontends.onnx import load_onnx

#: model -> (skip counts by kind, input -> output paths), what the paper's design makes them
EXPECTED = {
    # each block inp + drop_path(gamma * MLP(LN(dwconv(x)))): a residual; LayerNorm2d's arithmetic no skip
    "convnext": ({"residual": 4}, 16),
    "resnext": ({"residual": 4}, 16),
    # the SE product scales the residual branch: a gate on F's path (sequential), the add a residual
    "se_resnet": ({"residual": 3}, 8),
    "preact_resnet": ({"residual": 4}, 16),
    # zero-padded (and average-pooled) shortcuts: parameter-free residuals
    "pyramidnet": ({"residual": 4}, 16),
    # a stride-1 unit concatenates its untouched half (feature reuse, as the paper says); stride-2 units
    # concatenate two computing branches
    "shufflenet_v2": ({"dense": 3}, 32),
    # encoder -> decoder links merged by addition across a resolution round trip: long skips
    "linknet": ({"residual": 3, "long_skip": 2}, 14),
    # ASPP's parallel convolutions: one branch join; the low-level features into the decoder: a long skip
    "deeplabv3plus": ({"residual": 3, "long_skip": 1}, 34),
    # fusion sums of parallel resolutions: branch joins, each branch's blocks residuals
    "hrnet": ({"residual": 8}, 128),
    # the bottleneck's identity shortcut is a residual; inside, the hierarchical connections between the
    # split's groups are residual (adds) and feature reuse (the concat), and they do not make it long
    "res2net": ({"residual": 6, "dense": 6}, 64),
    "res2net_sliced": ({"residual": 6, "dense": 6}, 64),
    # residual dense blocks: dense concats inside, the local residual around each block a residual (not made
    # long by the feature reuse it encloses); global feature fusion reuses the blocks' outputs; the global
    # residual spans the residual blocks: a long skip
    "rdn": ({"residual": 2, "dense": 7, "long_skip": 1}, 91),
    # the residual path's adds (the first block's shortcut a 1x1 projection split into both paths) and the
    # densely connected path's concats
    "dpn": ({"residual": 3, "dense": 2}, 36),
    # CSP's partial concat carries part of the stage around its residual blocks: a long skip
    "cspnet": ({"residual": 4, "long_skip": 2}, 25),
    # the attention left unfused (its causal mask): q @ k^T and the weights @ v each a branch join of two
    # views of c_attn's split (16 paths counted when 8 tokens of 8-channel heads made q @ k^T's shapes those
    # of an element-wise product: a length of 9 gave 64)
    "gpt2": ({"residual": 4}, 64),
    # 2 per encoder layer, 3 per decoder layer; the memory into each cross-attention is a branch join
    "encoder_decoder": ({"residual": 10}, 4608),
    "mlp_mixer": ({"residual": 4}, 16),
    "highway": ({"gated": 3}, 27),
    # pre-norm blocks; the class token is a parameter, no join: per block 4 paths through attention (query, key,
    # value, shortcut) times 2 through the MLP
    "vit": ({"residual": 4}, 64),
    # torchvision's layout: each layer concatenates every earlier feature of its block, L(L+1)/2 pairs
    "densenet": ({"dense": 3 + 6}, 32),
    # the inverted residuals where stride 1 and widths match; the hard-sigmoid SE a gate inside them
    "mobilenet_v3": ({"residual": 2}, 4),
    # the residual around each gated activation (the last layer's is dead code, not exported); the paper's
    # "skip connections" are a sum of every layer's computed 1x1 outputs: a branch join
    "wavenet": ({"residual": 5}, 728),
    # the backbone's residuals; each top-down merge adds a lateral feature to the upsampled coarser level
    "fpn": ({"residual": 3, "long_skip": 2}, 34),
    # CBAM's channel and spatial attention gate the residual branch; the channel gate's sum of two MLP paths is a
    # branch, the spatial gate's concat of a mean and a max (no layer) arithmetic
    "cbam": ({"residual": 2}, 4),
    # each Ghost module concatenates its intrinsic features with their cheap depthwise "ghosts"
    "ghostnet": ({"residual": 2, "dense": 4}, 25),
    # the non-local block is a residual (W·y + x) between two basic blocks
    "nonlocal": ({"residual": 3}, 16),
    # BiFPN: every fusion node's same-level input across a resolution round trip, as FPN's merges; P4_out's
    # three-term sum is one merge with two: from P4_in and from P4_td, around the trip through P3_out
    "bifpn": ({"long_skip": 5}, 16),
    # residuals from the third layer of the stack on
    "gnmt": ({"residual": 3}, 8),
    # the two branches' average is a branch join; the downsampling shortcut (two strided 1x1 convs side by
    # side, concatenated) is the block's projection: a residual, like a single 1x1 conv's
    "shake_shake": ({"residual": 3}, 36),
    # split attention sums its radix parts (a join of one split's outputs: sequential, no path of its own)
    # the radix-2 softmax over the split's parts gates them as a sigmoid would: a path passes the parts it
    # scales (one grouped conv), not the attention's fcs (was 9: 3 a block, the gate side counted as a path)
    "resnest": ({"residual": 2}, 4),
    "resnest_sliced": ({"residual": 2}, 4),
    # UNet 3+'s skip passes a conv before the decoder's concat: a long skip whatever the conv's kernel
    "unet_link3": ({"long_skip": 1}, 2),
    "unet_link1": ({"long_skip": 1}, 2),
    # residual learning by subtraction, x - F(x) (or F(x) - x): a residual with an identity shortcut
    "dncnn": ({"residual": 1}, 2),
    "dncnn_negated": ({"residual": 1}, 2),
    # the initial block's concat of a conv and a pool is a branch join; the three bottlenecks residuals (the
    # upsampling one's shortcut a 1x1 conv unpooled with the pooling's indices), the indices a long skip
    "enet": ({"residual": 3, "long_skip": 1}, 18),
    # each generator block upsamples both paths, its shortcut by a 1x1 conv: a residual, no round trip
    "biggan": ({"residual": 2}, 4),
    # each coupling's concat reuses x_a; y_b = x_b * exp(log_s) + t joins x_b's path, log_s's and t's: 4 paths a
    # coupling (round 15: the add of t was sequential, t's path dropped: 9 in all)
    "glow": ({"dense": 2}, 16),
    # the context and the previous word's embedding, each read by the state's input and the deep output's
    "bahdanau": ({"dense": 2}, 9),
    # the pyramid pooling module's concat of the feature and its four pooled branches: one branch join,
    # no long skip across one layer (it was labelled one, a pooled branch taken for a U-Net's decoder)
    "pspnet": ({}, 5),
}
#: models whose two exports gave different labels before a fix: both exporters run by default
BOTH_BY_DEFAULT = {"res2net", "dpn", "pspnet"}
#: models only the default exporter exports (torch 2.13's TorchScript exporter fails on max_unpool2d), by
#: default: it is their one export
DYNAMO_ONLY = {"enet"}


def _exporters(name: str) -> list:
    slow = () if name in BOTH_BY_DEFAULT | DYNAMO_ONLY else (pytest.mark.slow,)
    dynamo = pytest.param(name, True, id=f"{name}-dynamo", marks=slow)
    return [dynamo] if name in DYNAMO_ONLY else [pytest.param(name, False, id=f"{name}-torchscript"), dynamo]


CASES = [case for name in EXPECTED for case in _exporters(name)]


class _Exports(dict):
    """(name, dynamo) -> the exported file, made on first use and kept for the session."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, key):
        name, dynamo = key
        if dynamo:
            pytest.importorskip("onnxscript")
        factory, inputs = P.MODELS[name]
        torch.manual_seed(0)
        model = factory().eval()
        path = self.root / f"{name}_{'dynamo' if dynamo else 'torchscript'}.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, inputs(), str(path), dynamo=dynamo)
        self[key] = path
        return path


@pytest.fixture(scope="session")
def paper_exports(tmp_path_factory):
    return _Exports(tmp_path_factory.mktemp("paper_exports"))


_ANALYSES: dict = {}


def lint(paper_exports, name: str, dynamo: bool):
    key = (name, dynamo)
    if key not in _ANALYSES:
        _ANALYSES[key] = analyze(load_onnx(str(paper_exports[key])))
    return _ANALYSES[key]


def skip_counts(analysis) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in analysis.skips:
        counts[str(s.kind)] = counts.get(str(s.kind), 0) + 1
    return counts


@pytest.mark.parametrize("name, dynamo", CASES)
def test_each_connection_is_labelled_as_its_paper_designs_it(paper_exports, name, dynamo):
    a = lint(paper_exports, name, dynamo)
    counts, paths = EXPECTED[name]
    assert (skip_counts(a), a.paths.total) == (counts, paths)
    assert all(s.span.depth > 0 for s in a.skips if s.kind == "long_skip")  # never a long skip of 0 layers


@pytest.mark.parametrize("name", sorted(BOTH_BY_DEFAULT))
def test_both_exporters_give_one_module_the_same_labels(paper_exports, name):
    ts, dy = lint(paper_exports, name, False), lint(paper_exports, name, True)
    joins = [sorted((c.kind, c.merge_op, c.carries) for c in a.connections) for a in (ts, dy)]
    assert joins[0] == joins[1]
    assert (ts.paths.total, ts.paths.shortest, ts.paths.longest) == (dy.paths.total, dy.paths.shortest,
                                                                     dy.paths.longest)


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_a_pooling_pyramid_with_no_layer_is_no_skip(paper_exports, dynamo):
    # YOLOv5's SPPF: cat(x, m(x), m(m(x)), m(m(m(x)))) of one max-pool, no learned layer between
    a = lint(paper_exports, "sppf", dynamo)
    assert a.skips == [] and len(a.joins) == 3


def _joins(a, **match):
    return [c for c in a.connections if all(getattr(c, k) == v for k, v in match.items())]


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_what_each_join_is_inside_the_blocks(paper_exports, dynamo):
    # SE: the gate's product is a step of the residual branch; the block's add the residual
    se = lint(paper_exports, "se_resnet", dynamo)
    assert [c.kind for c in _joins(se, merge_op="mul")] == ["sequential"] * 3
    # PyramidNet: zero-padded channels (and an average pool at the stride) carry no layer
    pyramid = lint(paper_exports, "pyramidnet", dynamo)
    assert all(s.carries in ("identity", "projection") and s.span.depth == 2 for s in pyramid.skips)
    # ShuffleNet V2: the untouched half is reused; the stride-2 units' two branches both compute
    shuffle = lint(paper_exports, "shufflenet_v2", dynamo)
    assert all(s.merge_op == "concat" and s.carries == "identity" for s in shuffle.skips)
    assert [c.kind for c in _joins(shuffle, merge_op="concat") if c.kind != "dense"] == ["branch"] * 2
    # LinkNet: encoder features added to the decoder across a resolution round trip
    link = lint(paper_exports, "linknet", dynamo)
    assert sorted((s.merge_op, s.carries) for s in link.skips if s.kind == "long_skip") == [("add", "identity")] * 2
    # DeepLabV3+: ASPP's concat is a branch join; the long skip lands on the decoder's concat
    deeplab = lint(paper_exports, "deeplabv3plus", dynamo)
    (long_skip,) = [s for s in deeplab.skips if s.kind == "long_skip"]
    assert long_skip.merge_op == "concat" and long_skip.span.depth > 1
    assert [c.kind for c in _joins(deeplab, merge_op="concat") if c is not long_skip] == ["branch"]
    # HRNet: every fusion sum and the head's concat join parallel resolutions that compute
    hrnet = lint(paper_exports, "hrnet", dynamo)
    assert {c.kind for c in hrnet.connections if c.kind != "residual"} == {"branch"}
    # the encoder's memory into each decoder layer's cross-attention: a branch join, no skip
    encdec = lint(paper_exports, "encoder_decoder", dynamo)
    assert {s.merge_op for s in encdec.skips} == {"add"}
    assert len([c for c in encdec.joins if c.merge_op != "add" and c.kind == "branch"]) == 2
    # Highway: T·H + (1 − T)·x, each layer one gated connection carrying x
    highway = lint(paper_exports, "highway", dynamo)
    assert [(s.merge_op, s.carries) for s in highway.skips] == [("add", "identity")] * 3
    # GNMT: the residuals around the third to fifth LSTM layers, in one chain
    gnmt = lint(paper_exports, "gnmt", dynamo)
    assert [(s.stage, s.position, s.span.depth) for s in gnmt.skips] == [(0, 0, 1), (0, 1, 1), (0, 2, 1)]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_residual_around_a_block_of_split_groups_stays_a_residual(paper_exports, dynamo):
    # Res2Net: each bottleneck's own shortcut, around 1x1, three 3x3 (hierarchically connected), 1x1
    a = lint(paper_exports, "res2net", dynamo)
    outer = [s for s in a.skips if s.span.depth == 5]
    assert [(s.kind, s.carries, s.rule) for s in outer] == [("residual", "identity", "residual")] * 2
    assert not [s for s in a.skips if s.kind == "long_skip"]
    # the hierarchical adds (README: "residual-like connections"): a slice of the split, untouched, added
    # to the previous group's output
    hierarchical = [s for s in a.skips if s.merge_op == "add" and s.span.depth < 5]
    assert [(s.kind, s.carries, s.span.depth) for s in hierarchical] == [("residual", "identity", 1),
                                                                         ("residual", "identity", 2)] * 2


def test_a_residual_around_a_dense_block_stays_a_residual(paper_exports):
    # RDN: a residual dense block's local residual around its densely connected convs and fusion
    rdn = lint(paper_exports, "rdn", False)
    local = [s for s in rdn.skips if s.merge_op == "add" and s.span.depth == 4]
    assert [s.kind for s in local] == ["residual", "residual"]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_projection_shared_by_two_paths_is_still_a_projection_shortcut(paper_exports, dynamo):
    # DPN's first block projects x once by a 1x1 conv and splits it into the residual and the dense path
    a = lint(paper_exports, "dpn", dynamo)
    adds = [s for s in a.skips if s.merge_op == "add"]
    assert sorted((s.kind, s.carries) for s in adds) == [("residual", "identity")] * 2 + [("residual", "projection")]
    (projection,) = [s for s in adds if s.carries == "projection"]
    assert projection.shortcut and projection.span.depth == 3


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_a_projection_of_parallel_convs_is_a_projection_shortcut(paper_exports, dynamo):
    # Shake-Shake's downsampling shortcut: two 1x1 convs side by side, concatenated, then a norm
    a = lint(paper_exports, "shake_shake", dynamo)
    (down,) = [s for s in a.skips if s.carries == "projection"]
    assert (down.kind, down.rule, down.span.depth) == ("residual", "residual", 2)
    assert "via " in down.reason and "via  " not in down.reason
    # its own concat is a branch join (both convs compute), reported under its own name
    (inner,) = [c for c in a.connections if c.merge_op == "concat"]
    assert inner.kind == "branch" and inner.merge != down.merge


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_a_sum_of_one_splits_parts_is_the_same_join_as_a_sum_of_slices(paper_exports, dynamo):
    # torch.split gives one node of several outputs, slicing one node per part: one join either way
    split, sliced = lint(paper_exports, "resnest", dynamo), lint(paper_exports, "resnest_sliced", dynamo)
    joins = [sorted((str(c.kind), c.merge_op, str(c.carries), c.rule) for c in a.connections) for a in (split, sliced)]
    assert joins[0] == joins[1]
    assert ("sequential", "add", "identity", "no_layer_between") in joins[0]
    assert (split.paths.total, split.paths.longest) == (sliced.paths.total, sliced.paths.longest)


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_a_conv_on_a_unet_link_is_a_projection_whatever_its_kernel(paper_exports, dynamo):
    k3, k1 = lint(paper_exports, "unet_link3", dynamo), lint(paper_exports, "unet_link1", dynamo)
    assert [(str(c.kind), str(c.carries), c.rule) for c in k3.connections] \
        == [(str(c.kind), str(c.carries), c.rule) for c in k1.connections] \
        == [("long_skip", "projection", "concat_long_skip")]


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_a_couplings_shift_from_one_split_is_a_branch_join(paper_exports, dynamo):
    # Glow's x_b * exp(log_s) + t, as wide as x_b: t is the part of NN(x_a)'s split the product never reads, and
    # x_b never passes that split: t's own path into y_b, as a broadcast FiLM shift's is (round 15: sequential)
    a = lint(paper_exports, "glow", dynamo)
    shifts = _joins(a, merge_op="add")
    assert [(c.kind, c.rule) for c in shifts] == [("branch", "shift_injection")] * 2
    assert (a.paths.shortest, a.paths.longest) == (0, 6)  # x_a past both NNs; through both


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_a_dense_pairs_layers_follow_its_own_paths_into_the_concat(paper_exports, dynamo):
    # the deep output cat(s', c, y): y's only path into it passes one layer (W, the state's), though s' lies
    # 3 layers deep from the inputs through the attention (round 15: ~2, the difference of those depths)
    a = lint(paper_exports, "bahdanau", dynamo)
    assert [(s.kind, s.span.depth) for s in a.skips] == [("dense", 1)] * 2
    assert all(s.reason.endswith("across 1 layer") for s in a.skips)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_residual_learned_by_subtraction_is_a_residual(paper_exports, dynamo):
    # DnCNN: x - F(x), and F(x) - x, as an add is: an identity shortcut around the noise estimate's 5 layers
    for name in ("dncnn", "dncnn_negated"):
        a = lint(paper_exports, name, dynamo)
        assert [(s.kind, s.merge_op, s.carries, s.rule, s.span.depth) for s in a.connections] \
            == [("residual", "sub", "identity", "residual", 5)]
    # a subtraction with no layer between stays arithmetic: ConvNeXt's LayerNorm2d, x - mean(x)
    convnext = lint(paper_exports, "convnext", dynamo)
    assert {(c.kind, c.rule) for c in _joins(convnext, merge_op="sub")} == {("sequential", "arithmetic_without_layers")}


def test_an_unpooled_projection_is_the_upsampling_bottlenecks_shortcut(paper_exports):
    # ENet's upsampling bottleneck, unpool(conv1x1(y), indices) + ext(y) (the default exporter's; TorchScript's
    # fails on max_unpool2d): the add's fork is y, as the regular bottleneck's output, not the pooling the
    # indices come from; the indices themselves a long skip of their own
    a = lint(paper_exports, "enet", True)
    (indices,) = [s for s in a.skips if s.kind == "long_skip"]
    assert (indices.merge_op, indices.carries) == ("max_unpool", "indices")
    regular, up = [s for s in a.skips if s.merge_op == "add"][1:]
    assert (up.kind, up.carries, up.rule, up.span.depth) == ("residual", "projection", "residual", 3)
    assert up.shortcut[-1] == indices.merge  # (via the 1x1 conv and the unpooling)
    # y is the regular bottleneck's output (its add, then an activation): the three blocks one chain
    assert [(s.stage, s.position) for s in (regular, up)] == [(0, 1), (0, 2)]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_block_that_only_upsamples_is_a_residual_a_round_trip_a_long_skip(paper_exports, dynamo):
    # BigGAN's generator block upsamples both paths: its 1x1 projection shortcut is a residual's, as ResNet's
    # stride-2 block's is; nothing goes down before it comes up
    a = lint(paper_exports, "biggan", dynamo)
    assert [(s.kind, s.carries, s.rule, s.span.depth) for s in a.skips] == [("residual", "projection", "residual", 2)] * 2
    assert not any("down- and upsample" in s.reason for s in a.skips)
    # a U-Net's encoder -> decoder link, down then up, stays a long skip
    unet = lint(paper_exports, "unet_link1", dynamo)
    assert [(s.kind, s.reason.endswith("that down- and upsample")) for s in unet.skips] == [("long_skip", True)]


@pytest.mark.parametrize("name", ["convnext", "deeplabv3plus", "encoder_decoder", "gpt2"])
def test_cli_reads_the_exports_without_a_traceback(paper_exports, run_archc, tmp_path, name):
    path = str(paper_exports[(name, False)])
    table = run_archc("lint", path, "--explain", check=True).stdout
    assert "rule" in table and "Traceback" not in table
    doc = json.loads(run_archc("lint", path, "--format", "json", check=True).stdout)
    assert doc["schema"] == "archc.lint/2" and doc["summary"] == EXPECTED[name][0] | {
        k: 0 for k in ("residual", "long_skip", "dense", "gated") if k not in EXPECTED[name][0]}
    assert doc["paths"]["total"] == EXPECTED[name][1]
    assert run_archc("summary", path, check=True).stdout
    run_archc("graph", path, "-o", str(tmp_path / "g.svg"), check=True)
    assert (tmp_path / "g.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


#: the ONNX backend test models that ship with the onnx package (old Caffe2 exports, weights included):
#: file -> (skips by kind, branch joins, paths, shortest, longest)
ONNX_BACKEND_MODELS = {
    "light_bvlc_alexnet.onnx": ({}, 0, 1, 8, 8),
    "light_zfnet512.onnx": ({}, 0, 1, 8, 8),
    "light_vgg19.onnx": ({}, 0, 1, 19, 19),
    # each dense layer's concat reads the block's running concatenation: 6 + 12 + 24 + 16 = 58
    "light_densenet121.onnx": ({"dense": 58}, 0, 2 ** 58, 5, 121),
    # nine inception modules of four branches each
    "light_inception_v1.onnx": ({}, 9, 4 ** 9, 13, 22),
    # eight modules of four branches, two grid reductions of three
    "light_inception_v2.onnx": ({}, 10, 4 ** 8 * 3 ** 2, 12, 34),
    "light_resnet50.onnx": ({"residual": 16}, 0, 2 ** 16, 6, 50),
    # ShuffleNet v1: the 13 stride-1 units add an identity shortcut (residual); the 3 stride-2 units
    # concatenate an average-pooled input with the unit's convs, as an Inception grid reduction does: branch
    "light_shufflenet.onnx": ({"residual": 13}, 3, 2 ** 16, 2, 50),
    # eight fire modules: expand 1x1 and 3x3 concatenated
    "light_squeezenet.onnx": ({}, 8, 2 ** 8, 18, 18),
}


def _onnx_backend_models():
    try:
        import onnx
    except ImportError:
        return None
    from pathlib import Path
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@pytest.mark.parametrize("name", sorted(ONNX_BACKEND_MODELS))
def test_onnx_backend_test_models_lint_as_their_architectures(name):
    folder = _onnx_backend_models()
    if folder is None or not (folder / name).is_file():
        pytest.skip(f"the onnx package ships no {name} here")
    a = analyze(load_onnx(str(folder / name)))
    counts, branches, total, shortest, longest = ONNX_BACKEND_MODELS[name]
    assert skip_counts(a) == counts
    assert sum(1 for c in a.joins if c.kind == "branch") == branches
    assert (a.paths.total, a.paths.shortest, a.paths.longest) == (total, shortest, longest)


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_paths_through_a_gate_follow_the_value_it_scales(paper_exports, dynamo):
    # Highway: each layer's carry x·(1 − T) passes x, so a path can skip every transform (input and output
    # layers only), the transform H·T is a choice between H and T: 3 paths a layer, 1 or 0 layers each
    highway = lint(paper_exports, "highway", dynamo)
    assert (highway.paths.total, highway.paths.shortest, highway.paths.longest) == (27, 2, 5)
    # SE-ResNet: the SE scaling passes its block's features, not the SE's own two linear layers
    se = lint(paper_exports, "se_resnet", dynamo)
    assert (se.paths.total, se.paths.shortest, se.paths.longest) == (8, 3, 8)


def test_highway_spec_paths_can_carry_past_every_layer():
    from conftest import SPECS

    from archc import load_spec

    a = analyze(load_spec(str(SPECS / "highway.yaml")))
    assert (a.paths.total, a.paths.shortest, a.paths.longest) == (3 ** 10, 2, 12)


def _ints(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _ints(v)
    elif isinstance(value, list):
        for v in value:
            yield from _ints(v)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield value


def test_json_of_densenet121_keeps_its_2_to_the_58_paths_exact(run_archc):
    folder = _onnx_backend_models()
    if folder is None or not (folder / "light_densenet121.onnx").is_file():
        pytest.skip("the onnx package ships no DenseNet-121 here")
    doc = json.loads(run_archc("lint", str(folder / "light_densenet121.onnx"), "--format", "json", check=True).stdout)
    assert doc["schema"] == "archc.lint/2" and doc["summary"]["dense"] == 58
    assert (doc["paths"]["total"], doc["paths"]["total_log2"]) == (str(2 ** 58), 58.0)
    assert max(map(abs, _ints(doc))) <= 2 ** 53  # what JavaScript's JSON.parse reads without loss
