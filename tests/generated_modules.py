"""Building a spec's generated PyTorch file through the real entry point, and comparing what its
model class builds with given constructor arguments to what ``archc build --set`` writes."""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import torch

_NAMES = itertools.count()


def build_generated(run_archc, tmp_path: Path, spec: str, *sets: str) -> tuple[object, str]:
    """``archc build SPEC --target torch`` with ``--set`` items: the generated module and its text."""
    out = tmp_path / f"generated_{next(_NAMES)}.py"
    args = [item for s in sets for item in ("--set", s)]
    run_archc("build", spec, "--target", "torch", "-o", str(out), *args, check=True)
    loader = importlib.util.spec_from_file_location(out.stem, out)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module, out.read_text()


def class_text(source: str, name: str) -> str:
    """The text of class ``name`` of a generated file, from its base classes to the next class."""
    return source.split(f"class {name}(")[1].split("\nclass ")[0]


def class_names(source: str) -> list[str]:
    """The classes of a generated file, in its order."""
    return [line.split("(")[0][len("class "):] for line in source.splitlines() if line.startswith("class ")]


def run_time_arguments(source: str) -> str:
    return next((line for line in source.splitlines() if line.startswith("# run-time arguments:")), "")


def assert_as_rebuilt(run_archc, tmp_path: Path, spec: str, sets: tuple[str, ...], module: object, cls: str,
                       given: dict, x: torch.Tensor) -> None:
    """``cls(**given)`` of the generated ``module`` is the network ``archc build SPEC --set SETS
    --set GIVEN`` writes (see :func:`assert_same_network`)."""
    reference, _ = build_generated(run_archc, tmp_path, spec, *sets, *(f"{k}={v}" for k, v in given.items()))
    assert_same_network(getattr(module, cls)(**given), getattr(reference, cls)(), x)


def assert_same_network(mine: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> None:
    """Same keys and shapes, and (reference's weights loaded strictly) the same output."""
    shapes = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    mine.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(mine.eval()(x), reference.eval()(x))


def assert_runs_as(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> None:
    """``model`` (a generated module, weights loaded) computes ``reference``'s output eagerly and
    through the ecosystem: torch.jit.script, torch.fx.symbolic_trace, torch.compile(fullgraph=True)
    and torch.export with a dynamic batch dimension."""
    with torch.no_grad():
        want = reference.eval()(x)
        model = model.eval()
        torch.testing.assert_close(model(x), want)
        torch.testing.assert_close(torch.jit.script(model)(x), want)
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), want)
        torch.testing.assert_close(torch.compile(model, fullgraph=True, backend="aot_eager")(x), want)
    exported = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch", min=2)}})
    more = torch.cat([x, x[:1]])
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(more), reference(more))
