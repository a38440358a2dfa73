"""The PyTorch backend: the graph IR as a standalone ``.py`` file a person would keep.

:func:`generate_source` writes one Python file that imports only torch: one ``nn.Module``
class per block definition and the model class (see :mod:`archc.lowering.torch_source`).
Module paths follow the graph's hierarchical node names (``layer1.0.conv1``), so the
state_dict keys are the IR's ``node.param`` names and torchvision's checkpoints load into
the ResNet specs unchanged; a parameter-only node (:meth:`OpDef.torch_parameter`) is a bare
``nn.Parameter`` attribute of its parent, keyed by its own name (ViT's ``class_token``).
Each op writes its own piece (:meth:`OpDef.torch_module` and :meth:`OpDef.torch_forward`);
nothing here branches on op names.

:func:`build_module` executes that same text (there is one lowering, not two) and loads
the graph's weights; :func:`load_weights` reads a ``.pt`` state_dict into the graph.
"""
from __future__ import annotations

import itertools
import linecache
import os
import pickle
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from archc.errors import Diagnostic, Location, SpecError, did_you_mean, first_line
from archc.ir.graph import Graph
from archc.ops.weights import init_array, tied_params
from archc.ops.weights import drawn_arrays, param_entries
from archc.lowering import check_parameter_dtypes, graph_weights
from archc.lowering.torch_probes import Elaborate
from archc.lowering.torch_source import Provenance, class_name_for, write_source
from archc.ops.base import param_key
from archc.progress import Unit, task
from archc.pysource import is_identifier, one_line

__all__ = ["generate_source", "build_module", "module_class", "state_dict_from_graph", "load_weights", "class_name_for"]


def generate_source(graph: Graph, class_name: str | None = None, *, labels: Mapping[str, str] | None = None,
                    spec: str | None = None, overrides: Mapping[str, Any] | None = None,
                    seed: int | None = None, elaborate: Elaborate | None = None) -> str:
    """A standalone Python file (imports only torch) defining the graph as ``nn.Module`` classes.

    ``labels`` (node name -> skip label, from :func:`archc.analysis.skips.merge_labels`) become
    ``# skip:`` comments on the merge lines and the header's summary. ``spec``, ``overrides``
    and ``seed`` are named in the header. ``elaborate`` (parameter values -> the spec elaborated
    with them, as ``graph`` was but for those): the model class then also takes the parameters
    whose widths it can compute (``Resnet18(width=32)``, :mod:`~archc.lowering.torch_probes`).
    """
    cls = class_name or class_name_for(graph.name)
    if not is_identifier(cls):
        raise SpecError(f"class name '{one_line(cls)}' is not a Python identifier",
                        location=Location("<class name>"))
    check_parameter_dtypes(graph)
    return write_source(graph, cls, labels or {}, Provenance(spec, overrides, seed), elaborate)


_GENERATED = itertools.count(1)


def _module_class(graph: Graph, source: str, class_name: str) -> type[nn.Module]:
    """Execute generated source and return its class.

    The source is in linecache (so tracebacks show it) under a name of its own, for as
    long as the class lives: the entry goes when the class is collected.
    """
    filename = f"<archc-generated {class_name} from {one_line(graph.name)} #{next(_GENERATED)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"archc_generated_{class_name}"}
    try:
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    except BaseException:
        linecache.cache.pop(filename, None)
        raise
    cls = namespace[class_name]
    weakref.finalize(cls, linecache.cache.pop, filename, None)
    return cls


def module_class(graph: Graph, *, labels: Mapping[str, str] | None = None) -> type[nn.Module]:
    """The graph's generated model class, executed but not constructed: construct it on the meta
    device (``with torch.device("meta"): model = cls()``) to hold no weights at any size, then
    ``model.to_empty(device=...)`` and ``reset_parameters()`` on each of ``model.block_instances()``."""
    cls_name = class_name_for(graph.name)
    return _module_class(graph, generate_source(graph, cls_name, labels=labels), cls_name)


def state_dict_from_graph(graph: Graph, seed: int = 0) -> dict[str, torch.Tensor]:
    """The graph's weights (archc's seeded init if it has none) as a torch state_dict."""
    weights = graph_weights(graph, seed)
    result: dict[str, torch.Tensor] = {}
    entries = list(param_entries(graph))
    arrays = drawn_arrays([weights[e.node][e.param] for e in entries])  # in pieces, on threads
    with task("drawing weights", total=len(entries), unit=Unit.ITEMS) as bar:
        for (key, _, _, spec), array in zip(entries, arrays):
            result[key] = torch.tensor(np.asarray(array, dtype=spec.dtype))
            bar.advance()
    return result


def build_module(graph: Graph, seed: int | None = 0, *, labels: Mapping[str, str] | None = None) -> nn.Module:
    """The graph as a ready ``nn.Module``: generated source, executed, weights loaded strictly.

    Weights are ``graph.weights`` when present, else archc's init for ``seed`` (the graph
    is not modified). ``seed=None`` keeps PyTorch's own random initialisation instead.
    """
    module = module_class(graph, labels=labels)()
    if seed is not None or graph.weights:
        module.load_state_dict(state_dict_from_graph(graph, seed or 0), strict=True)
    return module


def _unwrap(obj: Any) -> Any:
    """The state_dict inside common checkpoint layouts ({'state_dict': ...}, DDP's 'module.' prefix)."""
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


#: keys listed one by one in a weights file's problems; the rest are counted (a checkpoint of another
#: layout differs in every key: hundreds of lines would hide the pattern)
_KEYS_SHOWN = 8


def _unexpected_keys(state: Mapping[str, Any], specs: Mapping[str, Any], model: str,
                     where: Location) -> list[Diagnostic]:
    """A problem for each of the first :data:`_KEYS_SHOWN` keys of ``state`` the model has not (with a
    'did you mean'), one counting the others, and one naming a leading segment that all of them share
    where the model's keys hold them without it (a checkpoint of a wrapper: ``model.layer1...``)."""
    unexpected = [k for k in state if k not in specs]
    problems = []
    for key in unexpected[:_KEYS_SHOWN]:
        value = state[key]
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        problems.append(Diagnostic(f"unexpected key '{key}' {shape} is not a parameter of '{model}'",
                                   where, hint=did_you_mean(key, specs)))
    if len(unexpected) > _KEYS_SHOWN:
        problems.append(Diagnostic(f"{len(unexpected) - _KEYS_SHOWN} more unexpected keys (the last: "
                                   f"'{unexpected[-1]}')", where))
    heads = {k.split(".", 1)[0] for k in unexpected}
    if len(heads) == 1 and all("." in k for k in unexpected):
        head = heads.pop()
        if any(k[len(head) + 1:] in specs for k in unexpected):
            problems.append(Diagnostic(f"the file's keys start with '{head}.' where the model's do not", where,
                                       hint=f"save the state_dict of the module inside '{head}', or strip "
                                            f"'{head}.' from the keys"))
    return problems


def load_weights(graph: Graph, path: str) -> None:
    """Fill ``graph.weights`` from a ``.pt`` state_dict, checking every key and shape.

    Every problem is reported at once (unknown keys with a 'did you mean', mis-shaped
    tensors with both shapes, missing keys listed); on error the graph is left unchanged.
    Optional buffers (BatchNorm's ``num_batches_tracked``, absent from old checkpoints)
    that are missing get their initial value.
    """
    where = Location(path)
    if not os.path.isfile(path):
        raise SpecError("no such weights file", location=where)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # what torch.load(weights_only=True) raises for other files
        raise SpecError("cannot read a PyTorch state_dict: not a torch.save file holding only tensors",
                        location=where) from None
    except Exception as exc:  # torch raises many types for bad files; all mean "not a state_dict"
        raise SpecError(f"cannot read a PyTorch state_dict: {first_line(exc)}", location=where) from None
    state = _unwrap(obj)
    if not isinstance(state, Mapping):
        raise SpecError(f"expected a state_dict (a mapping of names to tensors), found {type(state).__name__}",
                        location=where)
    entries = {e.key: e for e in param_entries(graph)}
    specs = {k: e.spec for k, e in entries.items()}
    problems: list[Diagnostic] = []
    weights: dict[str, dict[str, Any]] = {}
    problems += _unexpected_keys(state, specs, graph.name, where)
    for key, value in state.items():
        spec = specs.get(key)
        if spec is None:
            continue
        if not isinstance(value, torch.Tensor):
            problems.append(Diagnostic(f"'{key}' is a {type(value).__name__}, not a tensor", where))
            continue
        if tuple(value.shape) != tuple(spec.shape):
            problems.append(Diagnostic(f"'{key}': expected shape {tuple(spec.shape)}, found {tuple(value.shape)}",
                                       where))
            continue
        array = value.detach().to(getattr(torch, spec.dtype)).contiguous().numpy().copy()
        weights.setdefault(entries[key].node, {})[entries[key].param] = array
    tied = {param_key(e.node, e.param) for e in entries.values() if e.param in tied_params(graph.node(e.node))}
    missing = [k for k, s in specs.items() if k not in state and not s.optional and k not in tied]
    if missing:
        shown = ", ".join(f"'{k}' {tuple(specs[k].shape)}" for k in missing[:_KEYS_SHOWN])
        more = f" and {len(missing) - _KEYS_SHOWN} more" if len(missing) > _KEYS_SHOWN else ""
        problems.append(Diagnostic(f"missing {len(missing)} key{'s' if len(missing) > 1 else ''}: {shown}{more}",
                                   where))
    if problems:
        raise SpecError(problems)
    result: dict[str, dict[str, Any]] = {}
    for entry in entries.values():  # state_dict order, whatever the file's
        value = weights.get(entry.node, {}).get(entry.param)
        result.setdefault(entry.node, {})[entry.param] = \
            init_array(entry.draw_key, entry.spec, 0) if value is None else value
    for key, node, pname, spec in entries.values():  # a tied weight is its owner's tensor
        owner = tied_params(graph.node(node)).get(pname)
        if owner is not None:
            result[node][pname] = result[owner[0]][owner[1]]
    graph.weights = result
