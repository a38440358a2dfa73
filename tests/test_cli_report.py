"""`archc report`: one offline page with the picture, the summary, the connections and the path charts."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

SPECS = Path(__file__).resolve().parent.parent / "specs"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_report_page(run_archc, tmp_path):
    out = tmp_path / "r.html"
    proc = run_archc("report", str(SPECS / "resnet18.yaml"), "--set", "image_size=64", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    parser = _Tags()
    parser.feed(page)
    assert parser.tags.count("script") == 2 and parser.tags.count("table") == 2
    for heading in ("Summary", "Connections", "Paths"):
        assert f"<h2>{heading}</h2>" in page
    assert "Binomial(8, 1/2)" in page and "256 input-&gt;output paths" in page
    assert len(re.findall(r'<polyline points="[^"]*" fill="none" stroke="#d62728" stroke-width="2"/>', page)) == 1  # one chain
    assert "<td>identity shortcut from maxpool around 2 layers</td>" in page
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", page)


def test_report_needs_an_html_name(run_archc, tmp_path):
    proc = run_archc("report", str(SPECS / "resnet18.yaml"), "-o", str(tmp_path / "r.pdf"))
    assert proc.returncode == 2 and "a report is an HTML page; give a name ending in .html" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failing_dot_is_an_error_and_writes_no_page(tmp_path):
    """dot printing an error and drawing nothing (exit 0): exit 1, a located message, no page."""
    import subprocess

    from conftest import archc_command, fake_program_env

    env = fake_program_env(tmp_path / "bin", "dot", "cat >/dev/null\necho 'Error: syntax error' >&2\n")
    out = tmp_path / "r.html"
    proc = subprocess.run([*archc_command(), "report", str(SPECS / "highway.yaml"), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 1 and proc.stderr == (
        f"<command line>: error: -o {out}: Graphviz's dot ({tmp_path}/bin/dot) failed to draw the .svg "
        "picture: it reported an error (Error: syntax error)\n")
    assert not out.exists()


def _totals_line(page: str) -> str:
    return re.search(r"<p>([^<]*GMACs[^<]*)</p>", page).group(1)


def test_report_counts_at_the_sizes_dim_gives(run_archc, tmp_path):
    """--dim sizes a symbolic dim for the page's MACs and memory, as for `archc summary`; the totals
    line names the sizes it counted at (the spec's example_dims where --dim is silent)."""
    spec = str(SPECS / "gnmt_encoder.yaml")
    default, longer = tmp_path / "d.html", tmp_path / "l.html"
    run_archc("report", spec, "-o", str(default), check=True)
    run_archc("report", spec, "--dim", "S=24", "-o", str(longer), check=True)
    at_12, at_24 = _totals_line(default.read_text()), _totals_line(longer.read_text())
    assert at_12.endswith("bytes at batch 1, S=12") and at_24.endswith("bytes at batch 1, S=24")
    activations = [int(re.search(r"activations ([\d,]+) bytes", line).group(1).replace(",", ""))
                   for line in (at_12, at_24)]
    assert activations[1] == 2 * activations[0] > 0


def test_report_refuses_a_dim_the_model_lacks(run_archc, tmp_path):
    out = tmp_path / "r.html"
    proc = run_archc("report", str(SPECS / "gnmt_encoder.yaml"), "--dim", "Q=3", "-o", str(out))
    assert proc.returncode == 2 and proc.stderr == (
        "<command line>: error: --dim Q: the model has no symbolic dim 'Q'; its symbolic dims are N, S\n")
    assert not out.exists()
