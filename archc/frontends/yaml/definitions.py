"""The blocks and functions a spec may use: its own and those of the files it ``include:``s.

:func:`collect_definitions` reads the included files (through
:func:`archc.frontends.yaml.includes.read_includes`, which owns where a file may come from
and reading it safely), then registers each file's ``blocks`` and ``functions`` in the
elaboration, an included file's before the including spec's. A block may not take an op's
name, and no name may be defined twice.
"""
from __future__ import annotations

from archc.frontends.yaml import schema
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.expr import FUNCTIONS
from archc.frontends.yaml.functions import define_functions
from archc.frontends.yaml.includes import read_includes
from archc.frontends.yaml.params import check_declared
from archc.frontends.yaml.source import SMap


def collect_definitions(ctx: Elaboration, doc: SMap) -> None:
    """Register the blocks and functions of the root spec ``doc`` and of every file it includes."""
    for included in read_includes(doc, ctx.filename, ctx.sink, ctx.allow_include_anywhere, ctx.limits):
        _blocks(ctx, included)
        _functions(ctx, included)
    _blocks(ctx, doc)
    _functions(ctx, doc)


def _functions(ctx: Elaboration, doc: SMap) -> None:
    if "functions" in doc:
        for exc in define_functions(doc["functions"], doc.where("functions"), ctx.functions, set(FUNCTIONS),
                                    ctx.meter):
            ctx.error(str(exc), exc.location)


def _blocks(ctx: Elaboration, doc: SMap) -> None:
    blocks = doc.get("blocks")
    if blocks is None:
        return
    if not isinstance(blocks, SMap):
        ctx.error("'blocks' must be a mapping of block name -> definition", doc.where("blocks"))
        return
    for bname, bdef in blocks.items():
        if not isinstance(bdef, SMap):
            ctx.error(f"block '{bname}' must be a mapping with 'nodes'", blocks.where(bname))
            continue
        ctx.check_keys(bdef, schema.BLOCK_KEYS, f"in block '{bname}'")
        ctx.flag(bdef, "sequential", f" of block '{bname}'")
        if bname in ctx.blocks:
            first = ctx.blocks[bname].location
            ctx.error(f"block '{bname}' is defined twice (first at {first})", blocks.where_key(bname))
        ctx.blocks[bname] = bdef
        if isinstance(bdef.get("params"), SMap):
            check_declared(ctx, bdef["params"], bname)
