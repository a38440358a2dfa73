"""Benchmark of the skip analysis (``archc.analysis.skips.analyze``) on large synthetic graphs.

Builds IR graphs directly with Graph/Node (shapes filled in, no shape inference, so
building stays cheap) at about 1k, 10k and 100k nodes:

* ``residual``: a very long chain of basic residual blocks (conv-bn-relu-conv-bn, identity add, relu);
* ``unet``: a U-Net with one level per 7 nodes (thousands of nested long skips): each level
  pools the width by one (kernel 2, stride 1) so shapes stay consistent however deep it goes;
* ``dense``: DenseNet-BC blocks of 24 layers (7 nodes a layer; each layer reads the concat of
  all earlier features: 300 dense pairs per block, as DenseNet-121's third block) with
  transitions between blocks;
* ``dense-wide``: one dense block as wide as the node budget allows (L(L+1)/2 pairs).

Usage: ``python tools/bench_lint.py [--sizes 1000,10000,100000] [--kinds residual,unet,dense]``.
Prints, per graph: nodes, edges, joins, skips found, and CPU seconds for ``analyze`` without
and with path analysis (least of ``--repeat`` runs, two at 100k nodes). The goal is under 2 s
at 100k nodes.

``--onnx`` times what a user pays instead: a residual chain of each size (2 channels, so the
files stay small) is written as an ONNX file by archc, and a ViT-B/16 (86.6 M parameters, 346 MB)
is exported by ``torch.onnx.export`` (``--no-vit`` skips it), and a BERT-base (:func:`bert_encoder`, 110 M
parameters, sequence 128) by both torch exporters (``--no-bert`` skips them); then ``archc lint FILE --format
json`` runs on each as a whole process (Python start, imports, ONNX load and import, analysis,
JSON; archc's modules compiled first, as an installed package's are): least wall-clock and least CPU
seconds of ``--repeat`` runs, and the exponent of growth
``log(t2 / t1) / log(n2 / n1)`` between sizes (1.0 is linear), as a markdown table. The goals are
under 2 s at 100k nodes and under 1 s for the ViT-B/16 and BERT-base. ``--files A.onnx,B.onnx`` times given
ONNX files the same way.
"""
from __future__ import annotations

import argparse
import compileall
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

from archc.analysis.skips import analyze
from archc.ir import Graph, Node, TensorType, Value
from archc.ops import registry
from archc.ops.nodes import complete_attrs

CONV = {"stride": 1, "padding": 1, "dilation": 1, "groups": 1, "bias": False}


class _Builder:
    def __init__(self, name: str) -> None:
        self.g = Graph(name)
        self.k = 0

    def add(self, op: str, inputs: list[str], out: tuple, **attrs) -> str:
        self.k += 1
        name = f"{op}{self.k}"
        # (with the op's defaults, as the frontends build nodes: an attribute an op gains later is set)
        full = complete_attrs(registry.lookup(op), attrs)
        self.g.add(Node(name, op, full, [Value(i) for i in inputs], [TensorType(tuple(out))]))
        return name

    def done(self, last: str) -> Graph:
        self.g.outputs = {"y": Value(last)}
        return self.g


def residual_chain(n: int, c: int = 16) -> Graph:
    b = _Builder("residual_chain")
    s = ("N", c, 8, 8)
    x = b.add("input", [], s, shape=list(s))
    x = b.add("conv", [x], s, out_channels=c, kernel_size=3, **CONV)
    while len(b.g) + 7 <= n:
        h = b.add("conv", [x], s, out_channels=c, kernel_size=3, **CONV)
        h = b.add("batchnorm", [h], s, eps=1e-5, momentum=0.1)
        h = b.add("relu", [h], s)
        h = b.add("conv", [h], s, out_channels=c, kernel_size=3, **CONV)
        h = b.add("batchnorm", [h], s, eps=1e-5, momentum=0.1)
        h = b.add("add", [h, x], s)
        x = b.add("relu", [h], s)
    return b.done(x)


def unet(n: int) -> Graph:
    levels = max(1, (n - 3) // 7)
    width = levels + 2
    b = _Builder("deep_unet")
    c = 8
    x = b.add("input", [], ("N", c, 1, width), shape=["N", c, 1, width])
    skips = []
    w = width
    for _ in range(levels):
        x = b.add("conv", [x], ("N", c, 1, w), out_channels=c, kernel_size=3, **CONV)
        x = b.add("relu", [x], ("N", c, 1, w))
        skips.append((x, w))
        w -= 1
        x = b.add("maxpool", [x], ("N", c, 1, w), kernel_size=[1, 2], stride=[1, 1], padding=0,
                  ceil_mode=False, dilation=1, return_indices=False)
    x = b.add("conv", [x], ("N", c, 1, w), out_channels=c, kernel_size=3, **CONV)
    for e, w in reversed(skips):
        u = b.add("upsample", [x], ("N", c, 1, w), size=[1, w], scale_factor=None, mode="nearest",
                  align_corners=False)
        x = b.add("concat", [e, u], ("N", 2 * c, 1, w), axis=1)
        x = b.add("conv", [x], ("N", c, 1, w), out_channels=c, kernel_size=3, **CONV)
        x = b.add("relu", [x], ("N", c, 1, w))
    return b.done(x)


def _dense_block(b: _Builder, x0: str, c0: int, layers: int, growth: int = 4) -> tuple[str, int]:
    """DenseNet-BC layers: concat of all earlier features, BN-ReLU-Conv1x1-BN-ReLU-Conv3x3."""
    feats, channels = [x0], c0
    for _ in range(layers):
        h = b.add("concat", list(feats), ("N", channels, 4, 4), axis=1) if len(feats) > 1 else feats[0]
        h = b.add("batchnorm", [h], ("N", channels, 4, 4), eps=1e-5, momentum=0.1)
        h = b.add("relu", [h], ("N", channels, 4, 4))
        h = b.add("conv", [h], ("N", 4 * growth, 4, 4), out_channels=4 * growth, kernel_size=1,
                  **{**CONV, "padding": 0})
        h = b.add("batchnorm", [h], ("N", 4 * growth, 4, 4), eps=1e-5, momentum=0.1)
        h = b.add("relu", [h], ("N", 4 * growth, 4, 4))
        h = b.add("conv", [h], ("N", growth, 4, 4), out_channels=growth, kernel_size=3, **CONV)
        feats.append(h)
        channels += growth
    out = b.add("concat", list(feats), ("N", channels, 4, 4), axis=1)
    return out, channels


def dense(n: int, layers: int = 24) -> Graph:
    b = _Builder(f"dense_blocks_{layers}")
    c = 16
    x = b.add("input", [], ("N", c, 4, 4), shape=["N", c, 4, 4])
    while len(b.g) + 7 * layers + 2 <= n or len(b.g) == 1:
        out, channels = _dense_block(b, x, c, layers)
        x = b.add("conv", [out], ("N", c, 4, 4), out_channels=c, kernel_size=1, **{**CONV, "padding": 0})
    return b.done(x)


def dense_wide(n: int) -> Graph:
    layers = max(1, (n - 2) // 7)
    b = _Builder(f"dense_wide_{layers}")
    x = b.add("input", [], ("N", 16, 4, 4), shape=["N", 16, 4, 4])
    out, _ = _dense_block(b, x, 16, layers)
    return b.done(out)


def vit_b16_onnx(path: str) -> None:
    """Write a ViT-B/16 (Dosovitskiy et al.: 224x224 images, 16x16 patches, 12 pre-norm blocks of
    width 768, 12 heads, MLP 3072; 86.6 M parameters) exported by ``torch.onnx.export``
    (TorchScript exporter, opset 17) to ``path``: a model archc did not write."""
    import warnings

    import torch
    from torch import nn

    class Attention(nn.Module):  # timm's: one qkv projection, heads split by reshape
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, t, c = x.shape
            q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            a = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(dim=-1)
            return self.proj((a @ v).transpose(1, 2).reshape(n, t, c))

    class Block(nn.Module):
        def __init__(self, dim: int = 768, heads: int = 12, mlp: int = 3072) -> None:
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
            self.attn = Attention(dim, heads)
            self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class ViT(nn.Module):
        def __init__(self, dim: int = 768, layers: int = 12, classes: int = 1000) -> None:
            super().__init__()
            self.conv_proj = nn.Conv2d(3, dim, 16, stride=16)
            self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos_embedding = nn.Parameter(torch.zeros(1, 197, dim))
            self.blocks = nn.Sequential(*(Block(dim) for _ in range(layers)))
            self.ln, self.head = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv_proj(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
            return self.head(self.ln(self.blocks(x))[:, 0])

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(ViT().eval(), (torch.randn(1, 3, 224, 224),), path, dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "N"}})


def bert_encoder(layers: int = 12, dim: int = 768, heads: int = 12, ffn: int = 3072, vocab: int = 30522,
                 positions: int = 512):
    """A BERT encoder as Devlin et al. describe it (BERT-base: 12 layers, width 768, 12 heads, FFN
    3072, 110 M parameters with the embeddings): token + position + segment embeddings and a layer
    norm, then post-LN layers ``x = LN(x + attn(x)); x = LN(x + FFN(x))``, FFN = Linear-GELU-Linear;
    attention with separate Q, K, V projections. Input: token ids (batch, sequence)."""
    import torch
    from torch import nn

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
            self.out = nn.Linear(dim, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, t, _ = x.shape
            q, k, v = (p(x).view(n, t, heads, dim // heads).transpose(1, 2) for p in (self.query, self.key, self.value))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim // heads), dim=-1)
            return self.out((a @ v).transpose(1, 2).reshape(n, t, dim))

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention, self.attention_norm = SelfAttention(), nn.LayerNorm(dim, eps=1e-12)
            self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))
            self.ffn_norm = nn.LayerNorm(dim, eps=1e-12)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.attention_norm(x + self.attention(x))
            return self.ffn_norm(x + self.ffn(x))

    class Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens, self.positions = nn.Embedding(vocab, dim), nn.Embedding(positions, dim)
            self.segments = nn.Embedding(2, dim)
            self.norm = nn.LayerNorm(dim, eps=1e-12)
            self.layers = nn.Sequential(*(Layer() for _ in range(layers)))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            where = torch.arange(ids.shape[1], device=ids.device)
            x = self.tokens(ids) + self.positions(where) + self.segments(torch.zeros_like(ids))
            return self.layers(self.norm(x))

    return Bert()


def bert_onnx(path: str, dynamo: bool = False, sequence: int = 128, **config) -> None:
    """Write :func:`bert_encoder` (``config``: its sizes) exported by ``torch.onnx.export`` with the
    TorchScript exporter (``dynamo=False``, opset 17, dynamic batch) or the default one, for one
    batch of ``sequence`` token ids, to ``path``."""
    import contextlib
    import io
    import warnings

    import torch

    torch.manual_seed(0)
    model = bert_encoder(**config).eval()
    ids = torch.randint(0, config.get("vocab", 30522), (1, sequence))
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (ids,), path, dynamo=True, input_names=["ids"])
        else:
            torch.onnx.export(model, (ids,), path, dynamo=False, opset_version=17, input_names=["ids"],
                              dynamic_axes={"ids": {0: "N"}})


KINDS = {"residual": residual_chain, "unet": unet, "dense": dense, "dense-wide": dense_wide}


def _best(fn, repeat: int) -> tuple[float, object]:
    """Least CPU time over ``repeat`` runs (CPU time: the figure stays meaningful on a busy machine)."""
    best, result = math.inf, None
    for _ in range(repeat):
        result = None  # free the previous run's result before timing: dropping it is not the next run's work
        t = time.process_time()
        result = fn()
        best = min(best, time.process_time() - t)
    return best, result


def _lint_process(path: str, repeat: int) -> tuple[float, float]:
    """Least wall-clock and least CPU (user + system) seconds of ``archc lint PATH --format json`` as a
    separate process. On a shared machine the CPU figure is the one that stays meaningful."""
    best_wall = best_cpu = math.inf
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archc", "lint", path, "--format", "json"], check=True,
                       stdout=subprocess.DEVNULL)
        best_wall = min(best_wall, time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best_cpu = min(best_cpu, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return best_wall, best_cpu


def bench_onnx_files(sizes: list[int], repeat: int, files: list[str], vit: bool = True,
                     bert: bool = True) -> list[str]:
    """Whole-process ``archc lint`` on ONNX files: archc-written residual chains of ``sizes`` nodes,
    a ViT-B/16 exported by torch (``vit``), a BERT-base exported by both torch exporters (``bert``;
    the default exporter's where it runs), then ``files``. Prints and returns markdown table rows:
    file, nodes, MB, wall s, CPU s, growth exponents of wall and CPU time against nodes."""
    from archc.lowering.onnx import to_onnx

    # An installed package has its modules compiled; with PYTHONDONTWRITEBYTECODE set (as in some
    # sandboxes) an editable checkout would compile archc's modules at every start (0.1-0.2 s).
    compileall.compile_dir(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "archc"),
                           quiet=1)
    rows = []

    def row(label: str, nodes: str, path: str, wall: float, cpu: float, growth: str = "") -> None:
        rows.append(f"| {label} | {nodes} | {os.path.getsize(path) / 1e6:.1f} | {wall:.2f} | {cpu:.2f} | {growth} |")
        print(rows[-1], flush=True)

    print("| ONNX file | nodes | MB | wall s | CPU s | growth exponent (wall / CPU) |\n|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        previous = None
        for size in sizes:
            graph = residual_chain(size, c=2)
            path = os.path.join(tmp, f"residual_{size}.onnx")
            with open(path, "wb") as fh:
                fh.write(to_onnx(graph, seed=0).SerializeToString())
            wall, cpu = _lint_process(path, repeat)
            growth = "" if previous is None else " / ".join(
                f"{math.log(now / before) / math.log(len(graph) / previous[0]):.2f}"
                for now, before in ((wall, previous[1]), (cpu, previous[2])))
            row("residual chain (archc)", f"{len(graph):,}", path, wall, cpu, growth)
            previous = (len(graph), wall, cpu)
            os.unlink(path)
        if vit:
            path = os.path.join(tmp, "vit_b16.onnx")
            vit_b16_onnx(path)
            wall, cpu = _lint_process(path, repeat)
            import onnx

            nodes = len(onnx.load(path, load_external_data=False).graph.node)
            row("ViT-B/16 (torch.onnx.export)", f"{nodes:,}", path, wall, cpu)
            os.unlink(path)
        for dynamo in (False, True) if bert else ():
            path = os.path.join(tmp, f"bert_base_{'dynamo' if dynamo else 'torchscript'}.onnx")
            try:
                bert_onnx(path, dynamo=dynamo)
            except Exception as exc:  # noqa: BLE001 - the default exporter does not run everywhere
                print(f"(BERT-base, {'dynamo' if dynamo else 'TorchScript'} exporter: no export: {exc})")
                continue
            wall, cpu = _lint_process(path, repeat)
            import onnx

            nodes = len(onnx.load(path, load_external_data=False).graph.node)
            exporter = "torch.onnx.export, dynamo" if dynamo else "torch.onnx.export, TorchScript"
            row(f"BERT-base ({exporter})", f"{nodes:,}", path, wall, cpu)
            os.unlink(path)
    for path in files:
        wall, cpu = _lint_process(path, repeat)
        row(os.path.basename(path), "", path, wall, cpu)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--kinds", default="residual,unet,dense,dense-wide")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--onnx", action="store_true", help="time whole-process archc lint on ONNX files")
    parser.add_argument("--files", default="", help="with --onnx: also time these ONNX files (comma-separated)")
    parser.add_argument("--no-vit", dest="vit", action="store_false",
                        help="with --onnx: skip the ViT-B/16 export (it takes a while and 350 MB of disk)")
    parser.add_argument("--no-bert", dest="bert", action="store_false",
                        help="with --onnx: skip the BERT-base exports (a while, and 440 MB of disk each)")
    args = parser.parse_args()
    if args.onnx:
        bench_onnx_files([int(s) for s in args.sizes.split(",")], args.repeat,
                         [f for f in args.files.split(",") if f], args.vit, args.bert)
        return
    registry.names()  # load op plugins once, outside the timings
    print(f"{'graph':<18} {'nodes':>7} {'edges':>8} {'joins':>7} {'skips':>7}  {'skips s':>8} {'+paths s':>8}")
    for kind in args.kinds.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            if kind == "dense-wide" and size > 2000:
                continue  # L(L+1)/2 pairs: ~10k at 1k nodes, 1M at 10k
            graph = KINDS[kind](size)
            repeat = args.repeat if size <= 20000 else 2
            t_skips, a = _best(lambda: analyze(graph, paths=False), repeat)
            t_all, full = _best(lambda: analyze(graph), repeat)
            edges = graph.nx.number_of_edges()
            print(f"{graph.name[:18]:<18} {len(graph):>7} {edges:>8} {len(a.connections):>7} "
                  f"{len(a.skips):>7}  {t_skips:>8.3f} {t_all:>8.3f}   "
                  + ", ".join(f"{k} {v}" for k, v in a.summary().items() if v)
                  + f"; paths ~2^{math.log2(full.paths.total):.0f}" if full.paths.total else "")


if __name__ == "__main__":
    main()
