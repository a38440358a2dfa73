"""Small frozen value objects the elaborator passes around instead of loose argument lists.

A :class:`Site` is where one spec value sits: its container (a located :class:`SMap` or
:class:`SList`), its key there, and the node the value belongs to (reported as
``node 'NAME':``). Every error about a value is reported at its site. An
:class:`Instantiation` is one op application or block instance about to be made: the node
as written, its fields for this instance, its kind, its full name and what it reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archc.errors import Location
from archc.frontends.yaml.source import SList, SMap

if TYPE_CHECKING:
    from archc.frontends.yaml.scope import Poison
    from archc.ir import Value


@dataclass(frozen=True, eq=False)
class Site:
    """One value's place in a spec: ``holder[key]``, belonging to node ``node`` (None: to no node)."""

    holder: SMap | SList
    key: Any
    node: str | None = None

    @property
    def location(self) -> Location:
        """Where the value is written."""
        return self.holder.where(self.key)

    @property
    def key_location(self) -> Location:
        """Where the key is written (a list item has no key: its value's place)."""
        return self.holder.where_key(self.key) if isinstance(self.holder, SMap) else self.holder.where(self.key)

    @property
    def value(self) -> Any:
        return self.holder[self.key]

    def at(self, holder: SMap | SList, key: Any) -> Site:
        """Another value of the same node."""
        return Site(holder, key, self.node)

    def expr_location(self, offset: int) -> Location:
        """The place of character ``offset`` of the expression written here (after an opening quote)."""
        loc = self.location
        holder, key = self.holder, self.key
        if isinstance(holder, SMap):
            quoted = holder.quoted.get(key, False)
        else:
            quoted = holder.quoted[key] if 0 <= key < len(holder.quoted) else False
        return Location(loc.file, loc.line, loc.column + offset + (1 if quoted else 0))


@dataclass(frozen=True, eq=False)
class Instantiation:
    """One op application or block instance: what the elaborator is about to make."""

    #: the node as written (the places of its ``op``/``block``, ``in``, ``tie``, ``expect``)
    item: SMap
    #: its fields for this instance: ``item`` with one repetition's overrides applied
    fields: SMap
    #: the op or block it applies
    kind: str
    #: its full name: the node's name, or the block instance's prefix
    path: str
    #: the values it reads
    inputs: list[Value | Poison]
    #: a block instance that adds no name level (``inline: true``)
    inline: bool = False

    def site(self, key: str) -> Site:
        """The place of one of the node's fields, as written (``item``)."""
        return Site(self.item, key, self.path)

    def field_site(self, key: str) -> Site:
        """The place of one of this instance's fields (``fields``)."""
        return Site(self.fields, key, self.path)
