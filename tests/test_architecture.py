"""The package's layers depend one way: no import cycles between archc's modules (type-only
imports included), the IR imports no op, frontend or backend, only the CLI imports the CLI,
and importing the IR or the package loads no frontend, ONNX or op registry."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "archc"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> nx.DiGraph:
    """archc module -> archc modules it imports anywhere in its text (top level, in functions,
    under TYPE_CHECKING); ``from P import name`` counts as importing P.name when that is a
    module, else P."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = [f"{node.module}.{a.name}" for a in node.names]
                targets = [m for m in submodules if m in modules] or [node.module]
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


IMPORTS = _imports()


def test_no_import_cycles_between_modules():
    cycles = sorted(" -> ".join(c + c[:1]) for c in nx.simple_cycles(IMPORTS))
    assert cycles == []


def _importers_of(prefix: str) -> set[str]:
    return {u for u, v in IMPORTS.edges if v == prefix or v.startswith(prefix + ".")}


@pytest.mark.parametrize("layer", ["archc.ops", "archc.frontends", "archc.analysis", "archc.lowering",
                                   "archc.runtime", "archc.cli"])
def test_the_ir_imports_no_higher_layer(layer):
    assert {m for m in _importers_of(layer) if m.startswith("archc.ir")} == set()


def test_only_the_cli_imports_the_cli():
    assert {m for m in _importers_of("archc.cli") if not m.startswith("archc.cli")} == {"archc.__main__"}


def test_analyses_and_frontends_import_no_backend_or_runtime():
    lower = {m for m in IMPORTS if m.startswith(("archc.analysis", "archc.frontends", "archc.ops"))}
    higher = ("archc.lowering", "archc.runtime", "archc.cli")
    assert {(u, v) for u, v in IMPORTS.edges if u in lower and v.startswith(higher)} == set()


#: the YAML frontend's size rules (issue 9): small modules, each saying what it owns
YAML_FRONTEND = PACKAGE / "frontends" / "yaml"
MAX_FUNCTION_LINES, MAX_CLASS_LINES, MAX_PARAMETERS = 60, 300, 6


def _definitions(path: Path) -> list[ast.AST]:
    return [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _parameter_count(f: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = f.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
    return len([n for n in names if n.arg not in ("self", "cls")])


@pytest.mark.parametrize("path", sorted(YAML_FRONTEND.glob("*.py")), ids=lambda p: p.name)
def test_the_yaml_frontend_is_small_modules_of_short_functions(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{path.name} has no docstring saying what it owns"
    too_big = []
    for d in _definitions(path):
        lines = d.end_lineno - d.lineno + 1
        if isinstance(d, ast.ClassDef) and lines > MAX_CLASS_LINES:
            too_big.append(f"class {d.name}: {lines} lines")
        elif not isinstance(d, ast.ClassDef) and lines > MAX_FUNCTION_LINES:
            too_big.append(f"{d.name}: {lines} lines")
        elif not isinstance(d, ast.ClassDef) and _parameter_count(d) > MAX_PARAMETERS:
            too_big.append(f"{d.name}: {_parameter_count(d)} parameters")
    assert too_big == []


def test_the_size_rules_see_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def f(a, b, c, d, e, f, g):\n{body}\n")
    (f,) = _definitions(tmp_path / "m.py")
    assert f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES and _parameter_count(f) > MAX_PARAMETERS


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", ["import archc.ir", "import archc", "from archc import Graph, SpecError"])
def test_importing_the_ir_loads_no_frontend_onnx_or_ops(statement):
    loaded = _loaded_after(statement)
    assert "archc.ir.graph" in loaded
    unwanted = {m for m in loaded if m.split(".")[0] in ("yaml", "onnx", "onnxruntime", "torch")
                or m.startswith(("archc.frontends", "archc.ops", "archc.lowering", "archc.analysis"))}
    assert unwanted == set()


def test_the_package_still_offers_load_spec_lazily():
    loaded = _loaded_after("import archc\nassert callable(archc.load_spec) and callable(archc.loads_spec)")
    assert "archc.frontends.yaml" in loaded
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import archc

        archc.nothing  # noqa: B018


def test_the_runtime_reads_arrays_by_input_name(tmp_path):
    import numpy as np

    from archc.errors import UsageError
    from archc.ir import TensorType
    from archc.runtime.inputs import read_arrays

    types = {"x": TensorType(("N", 3)), "ids": TensorType((2,), "int64")}
    np.save(tmp_path / "x.npy", np.ones((4, 3), dtype=np.float64))
    np.save(tmp_path / "ids.npy", np.array([1, 2]))
    arrays = read_arrays(types, {"x": str(tmp_path / "x.npy"), "ids": str(tmp_path / "ids.npy")})
    assert arrays["x"].dtype == np.float32 and arrays["x"].shape == (4, 3) and arrays["ids"].tolist() == [1, 2]
    with pytest.raises(UsageError, match="input 'ids' expects shape \\(2\\) int64, the file holds \\(4, 3\\)"):
        read_arrays(types, {"ids": str(tmp_path / "x.npy")})


#: the analyses (issue 10): the same size rules for classes and functions
ANALYSIS = PACKAGE / "analysis"


@pytest.mark.parametrize("path", sorted(ANALYSIS.glob("*.py")), ids=lambda p: p.name)
def test_the_analyses_are_short_classes_and_functions(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert path.name == "__init__.py" or ast.get_docstring(tree), f"{path.name} has no docstring saying what it owns"
    too_big = []
    for d in _definitions(path):
        lines = d.end_lineno - d.lineno + 1
        limit = MAX_CLASS_LINES if isinstance(d, ast.ClassDef) else MAX_FUNCTION_LINES
        if lines > limit:
            too_big.append(f"{d.name}: {lines} lines")
    assert too_big == []
