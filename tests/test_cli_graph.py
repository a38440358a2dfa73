"""`archc graph`: every format through the real entry point, edges by kind, collapsing, ONNX input,
hostile names through every format, a real headless browser on the HTML page."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import warnings
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import graphviz
import pytest

from archc.analysis.skips import analyze
from archc.ir import Graph, TensorType
from archc.ir.graph import BlockInstance, Node, Value
from archc.ir.vocab import Kind
from archc.render import draw
from archc.render.view import EDGE_STYLES

SPECS = Path(__file__).resolve().parent.parent / "specs"
SMALL = ("--set", "image_size=64")


def _svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize("fmt", ["dot", "svg", "png", "mmd", "html"])
def test_every_format_is_written(run_archc, tmp_path, fmt):
    out = tmp_path / f"r18.{fmt}"
    proc = run_archc("graph", str(SPECS / "resnet18.yaml"), *SMALL, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    if fmt == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif fmt == "svg":
        texts = _svg_texts(data)
        assert "layer4.1.add" in texts and "residual" in texts  # a merge node and the legend
    elif fmt == "dot":
        graphviz.Source(data.decode()).pipe(format="svg")  # dot accepts it
        assert data.count(b"->") > 60
    elif fmt == "mmd":
        text = data.decode()
        assert text.startswith("flowchart TB") and "linkStyle" in text and "layer1.0.add" in text
    else:
        text = data.decode()
        assert text.startswith("<!DOCTYPE html>")
        # one file, nothing fetched: no external scripts, styles, images or frames
        assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", text)
        assert "url(" not in text and "@import" not in text


def _edge_colors(dot_source: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for color in re.findall(r'-> \S+ \[.*?color="(#[0-9a-f]{6})"', dot_source):
        counts[color] = counts.get(color, 0) + 1
    return counts


@pytest.mark.parametrize("spec, kind, at_least", [
    ("resnet18.yaml", Kind.RESIDUAL, 8), ("unet.yaml", Kind.LONG_SKIP, 4), ("segnet.yaml", "indices", 4),
    ("densenet121.yaml", Kind.DENSE, 100), ("highway.yaml", Kind.GATED, 1)])
def test_edges_are_styled_by_connection_kind(run_archc, tmp_path, spec, kind, at_least):
    out = tmp_path / "g.dot"
    run_archc("graph", str(SPECS / spec), "-o", str(out), check=True)
    source = out.read_text()
    colors = _edge_colors(source)
    assert colors.get(EDGE_STYLES[kind].color, 0) >= at_least, colors
    assert re.search(f'label="?{EDGE_STYLES[kind].legend}"? ', source)  # the legend names it


def test_collapse_draws_block_instances_as_boxes(run_archc, tmp_path):
    full, collapsed, shallow = tmp_path / "full.dot", tmp_path / "collapsed.dot", tmp_path / "d0.dot"
    spec = str(SPECS / "resnet50.yaml")
    run_archc("graph", spec, "-o", str(full), check=True)
    run_archc("graph", spec, "--collapse", "-o", str(collapsed), check=True)
    run_archc("graph", spec, "--depth", "0", "-o", str(shallow), check=True)
    assert full.read_text().count("shape=box3d") == 0
    assert collapsed.read_text().count("shape=box3d") == 16          # one box per bottleneck
    assert "layer3 (repeat)" in collapsed.read_text()                # repeat groups stay as frames
    assert shallow.read_text().count("shape=box3d") == 4             # layer1..layer4
    # the residual connections between collapsed blocks are still drawn as residual edges
    assert _edge_colors(collapsed.read_text()).get(EDGE_STYLES[Kind.RESIDUAL].color, 0) >= 15


def test_collapse_boxes_innermost_blocks_and_keeps_recursive_levels_open(run_archc, tmp_path):
    """U-Net: each double conv one box, the recursive levels stay frames, the long skips stay drawn."""
    out = tmp_path / "unet.dot"
    run_archc("graph", str(SPECS / "unet.yaml"), "--collapse", "-o", str(out), check=True)
    source = out.read_text()
    assert source.count("shape=box3d") == 9                       # 4 encoders, the bottom, 4 decoders
    assert len(re.findall(r'label="[^"]*\(level\)"', source)) == 5   # net, net.inner, ... frames
    assert _edge_colors(source).get(EDGE_STYLES[Kind.LONG_SKIP].color, 0) == 4 + 1  # and the legend


def test_onnx_input(run_archc, tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))

    path = tmp_path / "m.onnx"
    torch.onnx.export(Block().eval(), (torch.randn(1, 4, 8, 8),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"])
    out = tmp_path / "m.svg"
    proc = run_archc("graph", str(path), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert any("residual" in t for t in _svg_texts(out.read_bytes()))


@pytest.mark.parametrize("dynamo, block", [(False, "layer1[*]"), (True, "Bottleneck")])
def test_onnx_import_draws_block_frames_from_module_names(run_archc, tmp_path, dynamo, block):
    """A ResNet written in PyTorch (tests/onnx_models.py) and exported by either exporter draws
    and collapses like its spec: the stages are repeat groups, each bottleneck a block instance
    (named by its class where the exporter recorded it, else by the container it is numbered in)."""
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    from onnx_models import ResNet

    path = tmp_path / "r.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ResNet(layers=(2, 2, 1, 1), width=8, num_classes=10).eval(),
                          (torch.randn(1, 3, 32, 32),), str(path), dynamo=dynamo,
                          **({} if dynamo else {"opset_version": 17}))
    full, collapsed, stages = (tmp_path / f"{n}.dot" for n in ("full", "collapsed", "stages"))
    for out, extra in ((full, ()), (collapsed, ("--collapse",)), (stages, ("--depth", "0"))):
        proc = run_archc("graph", str(path), "-o", str(out), *extra)
        assert proc.returncode == 0, proc.stderr
    source = full.read_text()
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        assert f'label="{stage} (repeat)"' in source
    blocks = re.findall(r'label="(layer\d\.\d) \(([^)]*)\)"', source)
    assert [name for name, _ in blocks] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer4.0"]
    assert blocks[0][1] == block
    assert "layer1.0.conv1 (" not in source  # a leaf module (one op) is no frame
    boxes = re.findall(r'label="(layer\d(?:\.\d)?)\\n', collapsed.read_text())
    assert sorted(boxes) == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer4.0"]
    assert collapsed.read_text().count("shape=box3d") == 6          # one box per bottleneck, as the spec's
    assert stages.read_text().count("shape=box3d") == 4             # layer1..layer4
    assert "residual" in collapsed.read_text()                      # the skips between boxes stay drawn
    rows = run_archc("summary", str(path), "--depth", "1", check=True).stdout
    assert [line.split()[0] for line in rows.splitlines() if re.match(r"layer\d ", line)] == \
        ["layer1", "layer2", "layer3", "layer4"]


def test_module_scopes_from_torchscript_names():
    from archc.frontends.onnx.importer import module_scopes

    assert module_scopes("/layer1/layer1.0/downsample/downsample.0/Conv", {}) == (
        ("layer1", None), ("layer1.0", None), ("layer1.0.downsample", None), ("layer1.0.downsample.0", None))
    assert module_scopes("/encoder/layers.1/self_attn/MatMul", {}) == (
        ("encoder", None), ("encoder.layers.1", None), ("encoder.layers.1.self_attn", None))
    assert module_scopes("Conv_12", {}) == ()
    props = {"pkg.torch.onnx.name_scopes": "['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_1']",
             "pkg.torch.onnx.class_hierarchy": "['m.ResNet', 'torch.nn.Sequential', 'm.Bottleneck', "
                                               "'torch.nn.ReLU', 'aten.relu.default']"}
    assert module_scopes("node_relu_1", props) == (("layer1", "Sequential"), ("layer1.0", "Bottleneck"),
                                                   ("layer1.0.relu", "ReLU"))


@pytest.mark.parametrize("args, message", [
    (("-o", "{tmp}/x.txt"), "cannot tell the format from the extension '.txt'; use one of .dot, .svg"),
    (("-o", "{tmp}/missing/x.svg"), "the output directory does not exist"),
    (("-o", "{tmp}/x.svg", "--depth", "-1"), "expected a whole number from 0"),
])
def test_bad_command_lines(run_archc, tmp_path, args, message):
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    proc = run_archc("graph", str(SPECS / "resnet18.yaml"), *args)
    assert proc.returncode == 2 and "<command line>" in proc.stderr and message in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []  # no partial output


def test_help_ends_with_a_runnable_example(run_archc):
    out = run_archc("graph", "--help", check=True).stdout
    assert out.rstrip().splitlines()[-1].strip().startswith("archc graph specs/")


# -- hostile names ---------------------------------------------------------------------------

HOSTILE = ['a"b', 'x"]; evil -> pwn [label="', "line\nbreak", "</script><script>alert(1)</script>", "<b>bold</b>",
           "{braces}", "back\\slash\\", "tab\there", "--> n0", "#quot;", "<!--"]


def _hostile_graph() -> Graph:
    g = Graph('model "</script>')
    t = TensorType(("N", 4))
    g.add(Node(HOSTILE[0], "input", outputs=[t]))
    prev = HOSTILE[0]
    for k, name in enumerate(HOSTILE[1:]):
        scope = (BlockInstance(f'blk"{k // 3}</script>', '<blk"]'),)
        g.add(Node(name, "relu", inputs=[Value(prev)], outputs=[t], scope=scope))
        prev = name
    g.add(Node("merge</script>", "add", inputs=[Value(HOSTILE[2]), Value(prev)], outputs=[t]))
    g.outputs = {'out"]<x>': Value("merge</script>")}
    return g


def test_hostile_names_in_dot_reach_graphviz_as_text():
    g = _hostile_graph()
    for depth in (None, 0):
        source = draw(g, analyze(g, paths=False), "dot", depth=depth)
        assert "pwn" not in re.sub(r'label="(\\.|[^"\\])*"|tooltip="(\\.|[^"\\])*"', "", source)
        svg = graphviz.Source(source).pipe(format="svg")
        texts = _svg_texts(svg)
    full = _svg_texts(graphviz.Source(draw(g, analyze(g, paths=False), "dot")).pipe(format="svg"))
    for name in HOSTILE:
        if "\n" not in name and "\t" not in name:
            assert name in full, name  # shown literally
    assert "line\\x0abreak" in full and "tab\\x09here" in full  # control characters made visible
    assert texts  # the collapsed picture rendered too


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.starts: list[str] = []
        self.data: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.starts.append(tag)
        self._in = dict(attrs).get("id") if tag == "script" else None

    def handle_data(self, data):
        if self._in:
            self.data[self._in] = self.data.get(self._in, "") + data


def test_hostile_names_in_html_stay_text():
    g = _hostile_graph()
    page = draw(g, analyze(g, paths=False), "html")
    parser = _Elements()
    parser.feed(page)
    assert parser.starts.count("script") == 2 and "b" not in parser.starts  # no injected element
    data = json.loads(parser.data["archc-data"])
    titles = {m["title"] for v in data["views"] for m in v["items"].values()}
    assert set(HOSTILE) <= titles  # the names travel to the script as data


def test_hostile_names_in_mermaid_are_entity_coded():
    g = _hostile_graph()
    text = draw(g, analyze(g, paths=False), "mmd")
    label = re.compile(r'^\s*\w+(\["|\[\["|\(\[")([A-Za-z0-9 _.,:()+=*/#;-]|<br/>)*("\]|"\]\]|"\]\))$')
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(("flowchart", "linkStyle", "end")) or "-->" in s or "-.->" in s and '"' not in s:
            continue
        if s.startswith("subgraph"):
            assert re.fullmatch(r'subgraph \w+\["[A-Za-z0-9 _.,:()+=*/#;-]*"\]', s), s
        elif "legend_" in s:
            continue
        else:
            assert label.match(s), s


# -- a real browser ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_html_page_in_a_headless_browser(run_archc, tmp_path):
    out = tmp_path / "r18.html"
    run_archc("graph", str(SPECS / "resnet18.yaml"), *SMALL, "-o", str(out), check=True)
    dom = _dump_dom(out)
    # the script ran: it marked the start view (all levels, the last one) and the depth label
    views = re.findall(r'<div class="(view[^"]*)" id="view(\d+)"', dom)
    assert len(views) >= 3 and [cls for cls, _ in views] == ["view"] * (len(views) - 1) + ["view shown"], views
    assert '<span id="depth">all levels</span>' in dom
    page = out.read_text()
    for name in ("conv1", "layer1.0.conv1", "layer4.1.add", "fc"):
        assert f">{name}</text>" in page
    # '#depth=0' opens the collapsed view (the same function the buttons and clicks call)
    dom0 = _dump_dom(out, "#depth=0")
    assert re.search(r'class="view shown" id="view0"', dom0) and '<span id="depth">depth 0</span>' in dom0


CLICKS = """<script>
(function(){
 const shown=()=>document.querySelector('.view.shown').id;
 const log=[];
 document.getElementById('collapse').click(); log.push(shown());
 document.querySelector('#view0 g.node.box').dispatchEvent(new MouseEvent('click',{bubbles:true})); log.push(shown());
 document.querySelector('#view1 g.cluster').dispatchEvent(new MouseEvent('click',{bubbles:true})); log.push(shown());
 document.getElementById('expand').click(); log.push(shown());
 const box=document.querySelector('#view0 g.node.box');
 box.dispatchEvent(new MouseEvent('mouseenter')); log.push(document.getElementById('info').textContent.split('\\n')[0]);
 document.body.setAttribute('data-clicks', log.join(' '));
})();
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_html_clicks_open_and_close_blocks_in_a_headless_browser(run_archc, tmp_path):
    """Clicks dispatched in the page (a test script appended to a copy): collapse all, open a box,
    close its frame, expand all, hover; no console message at all."""
    out = tmp_path / "r18.html"
    run_archc("graph", str(SPECS / "resnet18.yaml"), *SMALL, "-o", str(out), check=True)
    page = tmp_path / "clicks.html"
    page.write_text(out.read_text().replace("</body>", CLICKS + "</body>"))
    dom = _dump_dom(page)
    clicks = re.search(r'data-clicks="([^"]*)"', dom).group(1).split(" ")
    last = len(re.findall(r'<div class="view[^"]*" id="view', dom)) - 1
    assert clicks[:4] == ["view0", "view1", "view0", f"view{last}"], clicks
    assert clicks[4].startswith("layer1")  # the hover panel names the box


def _dump_dom(path: Path, fragment: str = "") -> str:
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--user-data-dir=" + str(path.parent / "profile"), "--virtual-time-budget=3000",
         "--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri() + fragment],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # the page logs nothing: no errors, no warnings
    return proc.stdout


# -- archc build: the target from the output's extension -----------------------------------------

def test_build_infers_the_target_from_the_extension(run_archc, tmp_path):
    import onnx

    out = tmp_path / "m.onnx"
    proc = run_archc("build", str(SPECS / "resnet18.yaml"), *SMALL, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert onnx.load(str(out)).graph.node[0].op_type == "Conv"  # an ONNX model (BN folded: inference build)


@pytest.mark.parametrize("args, message", [
    (("--target", "torch", "-o", "{tmp}/x.onnx"), "--target torch writes a .py file, but -o {tmp}/x.onnx ends in .onnx"),
    (("-o", "{tmp}/x.txt"), "cannot tell the target from the extension '.txt'; give --target torch|onnx"),
])
def test_build_target_mismatch_is_an_error(run_archc, tmp_path, args, message):
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    proc = run_archc("build", str(SPECS / "resnet18.yaml"), *args)
    assert proc.returncode == 2 and "<command line>" in proc.stderr
    assert message.replace("{tmp}", str(tmp_path)) in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_help_ends_with_a_runnable_example(run_archc):
    """The example's commands parse with the real parser and read files that exist or that an
    earlier command of the example writes."""
    import shlex

    from archc.cli import COMMANDS, build_parser

    parser = build_parser()
    root = Path(__file__).resolve().parent.parent
    for name in COMMANDS:
        last = run_archc(name, "--help", check=True).stdout.rstrip().splitlines()[-1].strip()
        steps = [shlex.split(step.split(" > ")[0]) for step in last.split(" && ")]
        assert any(step[:2] == ["archc", name] for step in steps), (name, last)
        written: set[str] = set()
        for step in (s for s in steps if s[0] == "archc"):  # (not xdg-open)
            args = parser.parse_args(step[1:])
            spec = getattr(args, "spec", None)
            assert spec is None or spec in written or (root / spec).exists(), last
            written.add(getattr(args, "output", None) or "")


#: stand-ins for Graphviz's dot that fail in each way it can: (script, what the message says)
FAILING_DOTS = [
    ("cat >/dev/null\necho 'Error: <stdin>: label longer than 16384' >&2\nexit 1\n",
     "exit status 1 (Error: <stdin>: label longer than 16384)"),
    ("cat >/dev/null\nexit 0\n", "it wrote no picture"),
    ("cat >/dev/null\necho 'Error: trouble in init_rank' >&2\necho '<svg>'\nexit 0\n",
     "it reported an error (Error: trouble in init_rank)"),
    ("cat >/dev/null\nprintf '<?xml version=\"1.0\"?>\\n<svg width=\"8pt\"><g>'\nexit 0\n",
     "its output is not a complete .{fmt} picture"),
    ("cat >/dev/null\nkill -9 $$\n", "killed by signal 9"),
]


@pytest.mark.parametrize("fmt", ["svg", "png", "html"])
@pytest.mark.parametrize("script, said", FAILING_DOTS)
def test_a_failing_dot_is_an_error_and_writes_nothing(tmp_path, fmt, script, said):
    """dot's exit status, its stderr and its picture are all checked: a failure is a located error
    naming -o's file, exit 1, and neither a new file nor a changed old one."""
    from conftest import archc_command, fake_program_env

    env = fake_program_env(tmp_path / "bin", "dot", script)
    new, old = tmp_path / f"new.{fmt}", tmp_path / f"old.{fmt}"
    old.write_text("the previous picture")
    for out in (new, old):
        proc = subprocess.run([*archc_command(), "graph", str(SPECS / "highway.yaml"), "-o", str(out)],
                              capture_output=True, text=True, env=env, timeout=300, check=False)
        assert proc.returncode == 1, proc.stderr
        first = proc.stderr.splitlines()[0]
        assert first.startswith(f"<command line>: error: -o {out}: Graphviz's dot ({tmp_path}/bin/dot) failed "
                                f"to draw the .svg picture: ".replace(".svg", ".png" if fmt == "png" else ".svg"))
        assert said.format(fmt="png" if fmt == "png" else "svg") in first and "Traceback" not in proc.stderr
    assert not new.exists() and old.read_text() == "the previous picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", old.name]  # no temporary left either


@pytest.mark.parametrize("fmt", ["svg", "html"])
def test_a_dot_that_runs_too_long_is_stopped(tmp_path, fmt):
    """dot runs at most ARCHC_DOT_SECONDS: past it dot is killed and the command fails, located,
    naming the bound and how to raise it, writing nothing (before, a dot that never ended hung archc)."""
    from conftest import archc_command, fake_program_env

    env = {**fake_program_env(tmp_path / "bin", "dot", "exec sleep 60\n"), "ARCHC_DOT_SECONDS": "0.5"}
    out = tmp_path / f"out.{fmt}"
    start = time.monotonic()
    proc = subprocess.run([*archc_command(), "graph", str(SPECS / "highway.yaml"), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert time.monotonic() - start < 50  # not the fake dot's 60 s
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"<command line>: error: -o {out}: Graphviz's dot ({tmp_path}/bin/dot) did not finish drawing the "
        ".svg picture in 0.5 s; allow it longer (ARCHC_DOT_SECONDS=SECONDS), or draw fewer boxes with "
        "archc graph's --depth N or --collapse, or write .dot or .mmd, which need no dot")
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-3", "soon", "inf", "nan"])
def test_a_bad_dot_time_bound_is_a_usage_error(tmp_path, value):
    from conftest import archc_command

    out = tmp_path / "out.svg"
    proc = subprocess.run([*archc_command(), "graph", str(SPECS / "highway.yaml"), "-o", str(out)],
                          capture_output=True, text=True, env={**os.environ, "ARCHC_DOT_SECONDS": value},
                          timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"<environment>: error: ARCHC_DOT_SECONDS must be a positive number of seconds, got '{value}'")
    assert not out.exists()
