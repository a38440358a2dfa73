"""The op registry: name -> op definition.

Built-in ops register themselves when :mod:`archc.ops` is imported; third-party
packages add ops through the ``archc.ops`` entry-point group (each entry point
names an :class:`~archc.ops.base.OpDef` subclass). A spec can reach only
registered ops: nothing named in a spec is ever imported.

Plug-ins are looked for when a name is not a built-in op (or every op is listed), not at import:
searching the installed distributions' entry points (:mod:`importlib.metadata`) costs a short command
such as ``archc lint`` on a model of built-in ops about 30 ms, and a plug-in may not reuse a built-in
name, so a built-in op's lookup gives the same answer either way.
"""
from __future__ import annotations

import warnings
from typing import Iterator, TypeVar

from archc.errors import PluginWarning
from archc.ops.base import ATTR_KINDS, ROLES, OpDef

_OPS: dict[str, OpDef] = {}
_ALIASES: dict[str, str] = {}
_plugins_loaded = False
#: ops registered by plugins: name -> entry point value (for listings)
PLUGIN_OPS: dict[str, str] = {}

T = TypeVar("T", bound=type)


def register(cls: T) -> T:
    """Class decorator: add an OpDef subclass to the registry (once per name)."""
    op = cls()
    if not op.name:
        raise ValueError(f"{cls.__name__} has no op name")
    for key in (op.name, *op.aliases):
        if key in _OPS or key in _ALIASES:
            raise ValueError(f"op '{key}' is already registered")
    if op.role not in ROLES:
        raise ValueError(f"op '{op.name}': unknown role '{op.role}'; roles are: {', '.join(ROLES)}")
    for attr_name, attr in op.attrs.items():
        if attr.kind not in ATTR_KINDS:
            raise ValueError(f"op '{op.name}': attribute '{attr_name}' has unknown kind '{attr.kind}'")
    _OPS[op.name] = op
    for alias in op.aliases:
        _ALIASES[alias] = op.name
    return cls


def load_plugins() -> None:
    """Import ops from installed packages' ``archc.ops`` entry points (once).

    A plugin that fails to import, is not an OpDef subclass, or reuses a registered
    name is skipped with a :class:`~archc.errors.PluginWarning` naming the entry point
    (issued through :mod:`warnings`; the CLI shows it), so one broken package does not
    take the tool down. Only distributions on ``sys.path`` are searched: ``python -m archc``
    removes the working directory from it first (see :mod:`archc.__main__`).
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    # (imported here, not at the top: most commands never need it)
    from importlib import metadata

    for ep in metadata.entry_points(group="archc.ops"):
        where = f"plugin entry point '{ep.name} = {ep.value}'"
        try:
            cls = ep.load()
        except Exception as exc:  # a third-party import can fail in any way
            _warn(f"{where} failed to import ({type(exc).__name__}: {exc}); its op is unavailable")
            continue
        if not (isinstance(cls, type) and issubclass(cls, OpDef)):
            _warn(f"{where} is not an archc OpDef subclass; skipped")
            continue
        try:
            register(cls)
        except ValueError as exc:
            _warn(f"{where}: {exc}; skipped")
        else:
            PLUGIN_OPS[cls.name] = ep.value


def _warn(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)


def get(name: str) -> OpDef | None:
    """The definition of op ``name`` (or an alias), or None. Plug-ins are loaded on the first name
    that is not a built-in op (see the module docstring)."""
    op = _OPS.get(_ALIASES.get(name, name))
    if op is None and not _plugins_loaded:
        load_plugins()
        op = _OPS.get(_ALIASES.get(name, name))
    return op


def lookup(name: str) -> OpDef:
    """Like :func:`get` but raises KeyError for an unknown op."""
    op = get(name)
    if op is None:
        raise KeyError(name)
    return op


def written_as(name: str) -> str | None:
    """How a spec writes what another library calls ``name`` with an op's attributes (PyTorch's
    ``Dropout2d``: ``{op: dropout, channelwise: true}``), or None (see :attr:`OpDef.spelled_with`)."""
    key = name.lower().replace("_", "")
    for op in all_ops():
        if key in op.spelled_with:
            return f"{{op: {op.name}, {op.spelled_with[key]}}}"
    return None


def names() -> list[str]:
    """Every name a spec may use as ``op:``, aliases included."""
    load_plugins()
    return sorted([*_OPS, *_ALIASES])


def all_ops() -> Iterator[OpDef]:
    load_plugins()
    return iter(sorted(_OPS.values(), key=lambda o: o.name))
