"""IR node names from ONNX node names.

A node is named after its ONNX node while it is imported: a PyTorch-style name
``/layer1/layer1.0/conv1/Conv`` becomes ``layer1.0.conv1.Conv`` (:func:`split_name` reads the
module scope and the leaf), made unique. At the end (:meth:`NodeNames.final`), a node that is
the only one left from its module takes the module's name (``layer1.0.conv1``), when its own
leaf is just its op type as PyTorch writes it. What a node remembers of its ONNX node (the
name, the modules it ran in) is :func:`node_meta`.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import onnx

from archc.ir.graph import MODULES_META, Node
from archc.ir.names import Namespace

__all__ = ["NodeNames", "clean", "module_scopes", "node_meta", "path_name", "split_name"]

_NAME_SCOPES = "pkg.torch.onnx.name_scopes"
#: an entry of a list the default exporter writes into metadata as Python text (``['', 'layer1', 'conv2d']``)
_ENTRY = re.compile(r"'([^']*)'")
_SEGMENT = re.compile(r"[^A-Za-z0-9_.]+")
_DOTS = re.compile(r"\.{2,}")
#: a name clean leaves as it is: alphanumeric runs joined by single dots or underscores
_CLEAN = re.compile(r"[A-Za-z0-9]+(?:[._][A-Za-z0-9]+)*")


def clean(text: str) -> str:
    """``text`` as a name: runs of other characters become ``_``, no doubled or edge dots."""
    if _CLEAN.fullmatch(text):
        return text
    return _DOTS.sub(".", _SEGMENT.sub("_", text)).strip("._")


def split_name(onnx_name: str) -> tuple[str | None, str]:
    """(module scope, leaf) of an ONNX node name, e.g. ``/layer1/layer1.0/conv1/Conv`` ->
    (``layer1.0.conv1``, ``Conv``); scope None for a name without ``/``."""
    if "/" not in onnx_name:
        return None, clean(onnx_name)
    segments = [s for s in (clean(p) for p in onnx_name.split("/")) if s]
    if not segments:
        return None, ""
    parts: list[str] = []
    for seg in segments[:-1]:
        joined = ".".join(parts)
        if parts and seg.startswith(joined + "."):
            parts = [seg]            # PyTorch repeats the parent's path: layer1/layer1.0
        elif parts and seg.startswith(parts[-1] + "."):
            parts[-1] = seg
        else:
            parts.append(seg)
    scope = ".".join(parts) if parts else None
    return scope, segments[-1]


def path_name(node: onnx.NodeProto) -> str:
    """The name ``node`` is named by: its own, or, where the default exporter named it after its FX
    node (``node_conv2d``: no module in it), the path its ``name_scopes`` metadata records, written as
    the TorchScript exporter writes names (``/layer1/layer1.0/conv1/conv2d``; an op of the root
    module: its FX name, ``add_1``). Either way the leaf is the exporter's, never the user's."""
    name = node.name
    if "/" in name or not len(node.metadata_props):
        return name
    props = {prop.key: prop.value for prop in node.metadata_props}
    module = _parameters_module(node, props)
    if module is not None:  # (written as the TorchScript exporter writes a module's node: /body/body.0/Conv)
        parts = module.split(".")
        return "/" + "/".join([".".join(parts[:i + 1]) for i in range(len(parts))] + [node.op_type])
    if _NAME_SCOPES in props:
        scopes = [s for s in _ENTRY.findall(props[_NAME_SCOPES]) if s]
        if len(scopes) >= 2:
            return "/" + "/".join(scopes)
        return clean(scopes[0]) or name if scopes else name
    return name


#: metadata the default exporter's optimizer (onnxscript's rewriter) gives a node it rewrote
_REWRITTEN = "pkg.onnxscript.rewriter.rule_name"


def _parameters_module(node: onnx.NodeProto, props: dict[str, str]) -> str | None:
    """For a node the default exporter's optimizer rewrote, the module its parameters belong to, read from
    their names (``body.0.weight`` -> ``body.0``) where they all name one outside the module its metadata
    records; else None. A batch norm folded into the conv before it leaves one Conv that keeps the batch
    norm's metadata (``body.1``) and reads the conv's parameters: named after the metadata, it took the
    batch norm's state_dict keys, of other shapes."""
    if _REWRITTEN not in props:
        return None
    modules = {name.rpartition(".")[0] for name in node.input[1:] if "." in name}
    if len(modules) != 1 or "" in modules:
        return None
    module = modules.pop()
    # (a module may read its own children's parameters, as nn.MultiheadAttention reads out_proj's: the
    # metadata's module is right where the parameters' lies inside it)
    scopes = [s for s in _ENTRY.findall(props.get(_NAME_SCOPES, "")) if s]
    recorded = scopes[-2] if len(scopes) >= 2 else ""
    return None if module == recorded or module.startswith(recorded + ".") else module


def from_scopes(node: onnx.NodeProto, name: str) -> bool:
    """Whether ``name`` (:func:`path_name` of ``node``) was made from the exporter's metadata."""
    return name != node.name


def node_meta(node: onnx.NodeProto) -> dict[str, Any]:
    """What an IR node remembers of its ONNX node: the name, and the PyTorch module path the
    exporter recorded (``module_path``, from the default exporter's ``name_scopes`` metadata),
    a hint for naming (:mod:`archc.lowering.spec_yaml`), never needed."""
    meta: dict[str, Any] = {"onnx_name": node.name}
    if not len(node.metadata_props) and "/" not in node.name:
        return meta  # no exporter metadata, no module path in the name: nothing more to read
    props = {prop.key: prop.value for prop in node.metadata_props}
    if _NAME_SCOPES in props:
        scopes = [s for s in _ENTRY.findall(props[_NAME_SCOPES]) if s]
        if len(scopes) >= 2:  # the last entry names the op, the one before its module
            meta["module_path"] = scopes[-2]
    modules = module_scopes(node.name, props)
    rewritten = _parameters_module(node, props)
    if rewritten is not None:  # (the modules around the parameters' own, not the rewritten node's)
        meta["module_path"] = rewritten
        modules = tuple(m for m in modules if rewritten.startswith(m[0] + ".")) + ((rewritten, None),)
    if modules:
        meta[MODULES_META] = modules
    return meta


def module_scopes(name: str, props: dict[str, str]) -> tuple[tuple[str, str | None], ...]:
    """The modules a node ran in, from the default exporter's ``name_scopes`` and ``class_hierarchy``
    metadata (paths and classes), else from a TorchScript-exporter name such as
    ``/layer1/layer1.0/conv1/Conv`` (paths only). The root module and the op itself are left out."""
    scopes = _ENTRY.findall(props.get(_NAME_SCOPES, ""))
    classes = _ENTRY.findall(props.get("pkg.torch.onnx.class_hierarchy", ""))
    if len(scopes) >= 3:
        named = classes if len(classes) == len(scopes) else [None] * len(scopes)
        return tuple((path, cls.rpartition(".")[2] if cls else None)
                     for path, cls in zip(scopes[1:-1], named[1:-1]) if path)
    segments = [s for s in (clean(p) for p in name.split("/")) if s][:-1]
    paths: list[str] = []
    for i, seg in enumerate(segments):
        # A container's children are named from the container's parent: /layer1/layer1.0/downsample/downsample.0
        # is layer1 > layer1.0 > layer1.0.downsample > layer1.0.downsample.0.
        if i and seg.startswith(segments[i - 1] + "."):
            base = paths[-2] if len(paths) >= 2 else ""
        else:
            base = paths[-1] if paths else ""
        paths.append(f"{base}.{seg}" if base else seg)
    return tuple((path, None) for path in paths)


class NodeNames:
    """The IR names of one import: unique provisional names while nodes are added, final ones
    at the end. :func:`split_name` runs once per ONNX name that has a scope (such a name is split
    again at the end)."""

    def __init__(self) -> None:
        self._taken = Namespace()
        self._splits: dict[str, tuple[str | None, str]] = {}

    def take(self, base: str) -> str:
        """A unique name from ``base``, reserved."""
        return self._taken.take(base)

    def take_for(self, onnx_name: str, op_type: str, suffix: str = "") -> str:
        """``take(base(onnx_name, op_type) + suffix)`` in one call (once per replayed node)."""
        if onnx_name.isascii() and onnx_name.isalnum() or "/" not in onnx_name and _CLEAN.fullmatch(onnx_name):
            return self._taken.take(onnx_name + suffix if suffix else onnx_name)
        return self._taken.take(self.base(onnx_name, op_type) + suffix)

    def split(self, onnx_name: str) -> tuple[str | None, str]:
        """:func:`split_name`, once per name."""
        found = self._splits.get(onnx_name)
        if found is None:
            found = self._splits[onnx_name] = split_name(onnx_name)
        return found

    def default(self, node: onnx.NodeProto) -> str:
        """The provisional name's base for ONNX ``node``: its scope and leaf, else its op type."""
        return self.base(path_name(node), node.op_type)

    def base(self, onnx_name: str, op_type: str) -> str:
        """The provisional name's base for an ONNX node of this name and op type."""
        if "/" not in onnx_name:  # no scope: split_name's leaf, unsplit
            return onnx_name if _CLEAN.fullmatch(onnx_name) else clean(onnx_name) or op_type
        scope, leaf = self.split(onnx_name)
        leaf = leaf or op_type
        return f"{scope}.{leaf}" if scope else leaf

    def final(self, nodes: list[Node], origin: Mapping[str, onnx.NodeProto], inputs: Iterable[str]) -> dict[str, str]:
        """Final node names (of ``nodes``, the live ones but the graph ``inputs``; a node left out keeps
        its name): a node that is the
        only one left from a module scope takes the scope's name, when its own name is just its op
        type as PyTorch writes them (``/layer1/conv1/Conv`` -> ``layer1.conv1``). ``origin``: the
        ONNX node each IR node came from, each named by :meth:`base` (or :meth:`default`) while imported
        (a node whose ONNX name has no scope may be missing: it keeps its name)."""
        if not self._splits:
            return {}  # base split no ONNX name with a scope: no node can take a scope's name
        return self._apart(self._scoped(nodes, origin, inputs), nodes, inputs)

    def _scoped(self, nodes: list[Node], origin: Mapping[str, onnx.NodeProto], inputs: Iterable[str]) -> dict[str, str]:
        """:meth:`final`'s names but for :meth:`_apart`: nodes taking their scope's name."""
        parsed: dict[str, str] = {}  # IR node -> the scope whose name it may take
        scopes: dict[str, int] = {}
        for node in nodes:
            src = origin.get(node.name)
            path = path_name(src) if src is not None else ""
            scope, leaf = self.split(path) if "/" in path else (None, "")
            # Only exporter-made leaves (PyTorch's "Conv", "Conv_1"; every FX name) give way to the scope.
            if scope and (from_scopes(src, path) or re.fullmatch(re.escape(src.op_type) + r"(_\d+)?", leaf)):
                parsed[node.name] = scope
                scopes[scope] = scopes.get(scope, 0) + 1
        if not parsed:
            return {}  # no candidate: every name stays (they are unique)
        prefixes: dict[str, int] = {}  # a candidate scope -> how many names lie under it
        for node in nodes:
            parts = node.name.split(".")
            for i in range(1, len(parts)):
                p = ".".join(parts[:i])
                if p in scopes:
                    prefixes[p] = prefixes.get(p, 0) + 1
        taken = Namespace(inputs)
        result: dict[str, str] = {}
        for node in nodes:
            scope = parsed.get(node.name)
            base = node.name
            if scope and scopes[scope] == 1 and prefixes.get(scope, 0) == 1 and scope not in taken:
                base = scope
            result[node.name] = taken.take(base)
        return result

    def _apart(self, renamed: dict[str, str], nodes: list[Node], inputs: Iterable[str]) -> dict[str, str]:
        """``renamed`` (IR name -> final name; a node missing keeps its name), with a node whose
        final name other final names lie under renamed again (``masked`` beside
        ``masked.ConstantOfShape``, from ONNX names ``masked`` and ``masked/ConstantOfShape``): one
        name cannot be both a node and the container of others (a PyTorch module path)."""
        final = [renamed.get(node.name, node.name) for node in nodes]
        containers: set[str] = set()
        for name in final:
            container = name.rpartition(".")[0]
            while container and container not in containers:
                containers.add(container)
                container = container.rpartition(".")[0]
        clash = [node.name for node, name in zip(nodes, final) if name in containers]
        if not clash:
            return renamed
        taken = Namespace([*inputs, *containers, *final])
        return {**renamed, **{name: taken.take(renamed.get(name, name)) for name in clash}}
