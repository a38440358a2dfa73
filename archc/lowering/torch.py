"""The PyTorch backend: the graph IR as a standalone, readable ``nn.Module`` source file.

:func:`generate_source` writes one Python file that imports only torch. Its module tree
follows the graph's hierarchical node names (``layer1.0.conv1`` is reached as
``self.layer1['0'].conv1``, containers being ``nn.ModuleDict``), so the state_dict
keys are the IR's ``node.param`` names and torchvision's checkpoints load into the
ResNet specs unchanged; a parameter-only node (:meth:`OpDef.torch_parameter`) is a bare
``nn.Parameter`` attribute of its parent, keyed by its own name (ViT's ``class_token``).
``forward`` is straight-line code, one statement per node, which is what
``torch.compile`` and DDP handle best. Each op writes its own piece
(:meth:`OpDef.torch_module` and :meth:`OpDef.torch_forward`); nothing here branches on op names.

:func:`build_module` executes that same text (there is one lowering, not two) and loads
the graph's weights; :func:`load_weights` reads a ``.pt`` state_dict into the graph.
"""
from __future__ import annotations

import builtins
import itertools
import linecache
import os
import pickle
import re
import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from archc._version import __version__
from archc.errors import Diagnostic, Location, SpecError, did_you_mean
from archc.ir.graph import Graph, Node, Value
from archc.ir.names import Namespace
from archc.ops.weights import init_array
from archc.ops.weights import param_entries
from archc.lowering import graph_weights
from archc.ops import registry
from archc.pysource import comment, identifier, is_identifier, literal, one_line

__all__ = ["generate_source", "build_module", "state_dict_from_graph", "load_weights", "class_name_for"]

# Names a child module cannot take because the container already has such an attribute
# (torch's add_module refuses them): the root is our nn.Module subclass, containers are ModuleDicts.
_ROOT_TAKEN = frozenset(dir(nn.Module()))
_DICT_TAKEN = frozenset(dir(nn.ModuleDict()))
# Names the generated forward uses itself, and builtins an op's expression may call (tuple).
_RESERVED_VARS = frozenset({"self", "torch", "nn", "F", *dir(builtins)})
_INDENT = "    "


def class_name_for(graph_name: str) -> str:
    """``resnet18`` -> ``Resnet18``, ``my-net_v2`` -> ``MyNetV2`` (a valid class name)."""
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", graph_name) if p]
    name = "".join(p[0].upper() + p[1:] for p in parts) or "Model"
    if name[0].isdigit():
        name = "Model" + name
    return name


class _VarNames:
    """Python identifiers for the IR's values: the node name with '.' -> '_', made unique."""

    def __init__(self) -> None:
        self.taken = Namespace(_RESERVED_VARS)
        self.names: dict[Value, str] = {}

    def add(self, value: Value, node: Node) -> str:
        base = identifier(node.name if value.out == 0 else f"{node.name}_{value.out}")
        if base in _RESERVED_VARS:
            base += "_"
        name = self.taken.take(base)
        self.names[value] = name
        return name


class _Param(NamedTuple):
    """A leaf of the module tree that is a bare ``nn.Parameter`` (a parameter-only node)."""

    source: str     # the initial tensor's source (OpDef.torch_parameter)


def _module_tree(graph: Graph) -> tuple[dict[str, Any], dict[str, str], list[tuple[str, str, str]]]:
    """Nested dict of module constructors keyed by name segments, node -> access expression, and
    the parameter-only nodes as (parent module expression, attribute name, initial tensor source)."""
    tree: dict[str, Any] = {}
    access: dict[str, str] = {}
    params: list[tuple[str, str, str]] = []
    for node in graph.nodes():
        op, ins = registry.lookup(node.op), graph.input_types(node)
        tensor = op.torch_parameter(node, ins)
        ctor = op.torch_module(node, ins) if tensor is None else _Param(tensor)
        if ctor is None:
            continue
        segments = node.name.split(".")
        level, expr = tree, "self"
        for depth, seg in enumerate(segments):
            taken = _ROOT_TAKEN if depth == 0 else _DICT_TAKEN
            if seg in taken or seg.startswith("__"):
                raise SpecError(f"name segment '{seg}' clashes with an attribute of torch.nn."
                                f"{'Module' if depth == 0 else 'ModuleDict'}; rename the node or block",
                                node=node.name, location=node.location)
            last = depth == len(segments) - 1
            parent = expr
            if is_identifier(seg):
                expr += f".{seg}"
            elif depth == 0 or (last and isinstance(ctor, _Param)):
                # a parameter is an attribute of a ModuleDict, not one of its items
                expr = f"getattr({parent}, {literal(seg)})"
            else:
                expr += f"[{literal(seg)}]"
            existing = level.get(seg)
            if last:
                if existing is not None:
                    what = "parameter" if isinstance(ctor, _Param) else "module"
                    raise SpecError(f"'{node.name}' is both a {what} and a container of modules",
                                    node=node.name, location=node.location)
                level[seg] = ctor
                if isinstance(ctor, _Param):
                    params.append((parent, seg, ctor.source))
            else:
                if existing is not None and not isinstance(existing, dict):
                    raise SpecError(f"'{'.'.join(segments[:depth + 1])}' is both a "
                                    f"{'parameter' if isinstance(existing, _Param) else 'module'} and a "
                                    "container of modules", node=node.name, location=node.location)
                level = level.setdefault(seg, {})
        access[node.name] = expr
    return tree, access, params


def _dict_literal(tree: dict[str, Any], indent: str) -> list[str]:
    """``nn.ModuleDict({...})`` spread over lines, one child per line."""
    lines = ["nn.ModuleDict({"]
    for key, sub in tree.items():
        if isinstance(sub, _Param):
            continue  # registered after the containers exist
        if isinstance(sub, str):
            lines.append(f"{indent}{_INDENT}{literal(key)}: {sub},")
        else:
            inner = _dict_literal(sub, indent + _INDENT)
            lines.append(f"{indent}{_INDENT}{literal(key)}: {inner[0]}")
            lines.extend(inner[1:-1])
            lines.append(inner[-1] + ",")
    lines.append(f"{indent}}})")
    return lines


def generate_source(graph: Graph, class_name: str | None = None, *,
                    labels: Mapping[str, str] | None = None) -> str:
    """A standalone Python file (imports only torch) defining the graph as an ``nn.Module``.

    ``labels`` (node name -> skip label, from :func:`archc.analysis.skips.merge_labels`) become
    ``# skip:`` comments on the merge nodes' lines."""
    labels = labels or {}
    cls = class_name or class_name_for(graph.name)
    if not is_identifier(cls):
        raise SpecError(f"class name '{cls}' is not a Python identifier", location=Location("<class name>"))
    tree, access, params = _module_tree(graph)

    out = comment(f"{cls}: the '{graph.name}' model, generated by archc {__version__} from its graph IR.")
    out += ["# Regenerate it from the spec rather than editing it; it needs only PyTorch."]
    if graph.doc.strip():
        out += ["#"] + comment(graph.doc.strip())
    out += ["import torch", "from torch import nn", "import torch.nn.functional as F", "", "",
            f"class {cls}(nn.Module):",
            f"{_INDENT}def __init__(self) -> None:",
            f"{_INDENT * 2}super().__init__()"]
    for key, sub in tree.items():
        if isinstance(sub, _Param):
            continue
        rhs = [sub] if isinstance(sub, str) else _dict_literal(sub, _INDENT * 2)
        if is_identifier(key):
            out.append(f"{_INDENT * 2}self.{key} = {rhs[0]}")
        else:
            out.append(f"{_INDENT * 2}self.add_module({literal(key)}, {rhs[0]}" + ("" if len(rhs) > 1 else ")"))
            if len(rhs) > 1:
                rhs[-1] += ")"
        out.extend(rhs[1:])
    for parent, attr, tensor in params:
        if is_identifier(attr):
            out.append(f"{_INDENT * 2}{parent}.{attr} = nn.Parameter({tensor})")
        else:
            out.append(f"{_INDENT * 2}{parent}.register_parameter({literal(attr)}, nn.Parameter({tensor}))")

    names = _VarNames()
    for name in graph.inputs:
        names.add(Value(name), graph.node(name))
    args = ", ".join(f"{names.names[Value(n)]}: torch.Tensor" for n in graph.inputs)
    returns = "torch.Tensor" if len(graph.outputs) == 1 else \
        "tuple[" + ", ".join(["torch.Tensor"] * len(graph.outputs)) + "]"
    out += ["", f"{_INDENT}def forward(self, {args}) -> {returns}:"]

    body = [n for n in graph.nodes() if n.op != "input"]
    # The statement after which a value is no longer needed, so it can be freed early
    # (eager inference would otherwise hold every activation until forward returns).
    last_use: dict[Value, int] = {}
    for i, node in enumerate(body):
        for v in node.inputs:
            last_use[v] = i
    kept = set(graph.outputs.values())
    for i, node in enumerate(body):
        op = registry.lookup(node.op)
        ins = graph.input_types(node)
        args_src = [names.names[v] for v in node.inputs]
        expr = op.torch_forward(node, ins, args_src, access.get(node.name))
        targets = [names.add(Value(node.name, k), node) for k in range(len(node.outputs))]
        line = f"{_INDENT * 2}{', '.join(targets)} = {expr}"
        dead = list(dict.fromkeys(names.names[v] for v in node.inputs if last_use[v] == i and v not in kept))
        if dead:
            line += f"; del {', '.join(dead)}"
        notes = []
        if targets[0] != node.name.replace(".", "_"):  # only where the variable hides the name
            notes.append(f"# {one_line(node.name)}")
        if labels.get(node.name):
            notes.append(f"# skip: {one_line(labels[node.name])}")
        if notes:
            line += "  " + "  ".join(notes)
        out.append(line)
    results = [names.names[v] for v in graph.outputs.values()]
    out.append(f"{_INDENT * 2}return " + (results[0] if len(results) == 1 else f"({', '.join(results)})"))
    return "\n".join(out) + "\n"


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


def state_dict_from_graph(graph: Graph, seed: int = 0) -> dict[str, torch.Tensor]:
    """The graph's weights (archc's seeded init if it has none) as a torch state_dict."""
    weights = graph_weights(graph, seed)
    result: dict[str, torch.Tensor] = {}
    for key, node, pname, spec in param_entries(graph):
        result[key] = torch.tensor(np.asarray(weights[node][pname], dtype=spec.dtype))
    return result


def build_module(graph: Graph, seed: int | None = 0, *, labels: Mapping[str, str] | None = None) -> nn.Module:
    """The graph as a ready ``nn.Module``: generated source, executed, weights loaded strictly.

    Weights are ``graph.weights`` when present, else archc's init for ``seed`` (the graph
    is not modified). ``seed=None`` keeps PyTorch's own random initialisation instead.
    """
    cls_name = class_name_for(graph.name)
    module = _module_class(graph, generate_source(graph, cls_name, labels=labels), cls_name)()
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
        raise SpecError(f"cannot read a PyTorch state_dict: {str(exc).splitlines()[0]}", location=where) from None
    state = _unwrap(obj)
    if not isinstance(state, Mapping):
        raise SpecError(f"expected a state_dict (a mapping of names to tensors), found {type(state).__name__}",
                        location=where)
    entries = {e.key: e for e in param_entries(graph)}
    specs = {k: e.spec for k, e in entries.items()}
    problems: list[Diagnostic] = []
    weights: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        spec = specs.get(key)
        if spec is None:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            problems.append(Diagnostic(f"unexpected key '{key}' {shape} is not a parameter of '{graph.name}'",
                                       where, hint=did_you_mean(key, specs)))
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
    missing = [k for k, s in specs.items() if k not in state and not s.optional]
    if missing:
        problems.append(Diagnostic(f"missing {len(missing)} key{'s' if len(missing) > 1 else ''}: "
                                   + ", ".join(f"'{k}' {tuple(specs[k].shape)}" for k in missing), where))
    if problems:
        raise SpecError(problems)
    result: dict[str, dict[str, Any]] = {}
    for key, node, pname, spec in entries.values():  # state_dict order, whatever the file's
        value = weights.get(node, {}).get(pname)
        result.setdefault(node, {})[pname] = init_array(key, spec, 0) if value is None else value
    graph.weights = result
