"""The spec's parameters: declared, chosen by a profile or ``--set``, derived by ``let``; and how
a string written in a spec becomes a value.

:func:`spec_params` gives the top-level parameters after the chosen profile and the
command line's ``--set`` overrides; :func:`define_lets` evaluates a ``let:`` mapping into a
scope, in order. A field that names a parameter in scope stands for that parameter's value,
whatever its type, so a string parameter (an activation, an op or block name) passed two
levels down arrives as its value and not as the parameter's name. Everything else keeps
its meaning: ``${expr}`` is replaced inside text (:func:`interpolate`), other strings of
text fields are literal, and strings of numeric fields are expressions.
"""
from __future__ import annotations

import keyword
import re
from typing import Any, Mapping

from archc.errors import Location, did_you_mean
from archc.frontends.yaml.context import Elaboration
from archc.frontends.yaml.expr import UNKNOWN, first_read
from archc.frontends.yaml.scope import Abort, Scope
from archc.frontends.yaml.site import Site
from archc.frontends.yaml.source import SMap
from archc.frontends.yaml.spelling import spelled

#: Marks "this text names no parameter in scope".
NOT_A_PARAMETER = object()

#: most characters a parameter, input, node or instance name has (a name is part of every path, key and
#: line of generated code that reaches it)
MAX_NAME_LENGTH = 128
#: what parameter, input and node names may use
NAME_RE = re.compile(rf"^[A-Za-z0-9_]{{1,{MAX_NAME_LENGTH}}}$")
#: node and instance names are PyTorch module names: '-' too (torchvision's RegNet has 'block1-0');
#: never '.', which separates the levels of the hierarchy
MODULE_NAME_RE = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_NAME_LENGTH}}}$")
#: ... except in a numbered item of a module list, ``LIST.N`` (``convs.0``): PyTorch's ModuleLists
#: used interleaved (Res2Net's ``convs[i]`` then ``bns[i]``), which no repetition can name
LIST_ITEM_RE = re.compile(rf"^([A-Za-z0-9_-]{{1,{MAX_NAME_LENGTH}}})\.(0|[1-9][0-9]{{0,5}})$")


def shown_name(name: str) -> str:
    """``name`` as an error message quotes it: its start where it is too long to quote whole."""
    return name if len(name) <= 60 else f"{name[:60]}... ({len(name):,} characters)"

_INTERP = re.compile(r"\$\{([^}]*)\}")

#: where ``--set`` overrides are reported
_COMMAND_LINE = Location("<command line>")


def spec_params(ctx: Elaboration, doc: SMap, overrides: Mapping[str, Any], profile: str | None) -> dict[str, Any]:
    """The top-level parameters: declared defaults, then the profile's values, then ``--set``."""
    declared = doc.get("params")
    if declared is None:
        declared = {}
    elif not isinstance(declared, SMap):
        ctx.error("'params' must be a mapping of name -> default value", doc.where("params"))
        declared = {}
    params = dict(declared)
    for name in check_declared(ctx, declared) if isinstance(declared, SMap) else ():
        params[name] = None
    _check_profiles(ctx, doc, profile, params)
    if profile is not None:
        _apply_profile(ctx, doc, profile, params)
    _apply_overrides(ctx, overrides, params)
    return params


def _check_profiles(ctx: Elaboration, doc: SMap, chosen: str | None, params: Mapping[str, Any]) -> None:
    """The profiles not chosen set only declared parameters too: a misspelt one is an error of the spec
    whichever profile is run (the chosen one is checked as it is applied)."""
    profiles = doc.get("profiles")
    if not isinstance(profiles, SMap):
        return
    for name, values in profiles.items():
        if name == chosen:
            continue
        if not isinstance(values, SMap):
            ctx.error(f"profile '{name}' must be a mapping of parameter -> value", profiles.where(name))
            continue
        for key in values:
            if key not in params:
                ctx.error(f"profile '{name}' sets unknown parameter '{key}'", values.where_key(key),
                          hint=did_you_mean(key, params))


def _apply_profile(ctx: Elaboration, doc: SMap, profile: str, params: dict[str, Any]) -> None:
    profiles = doc.get("profiles")
    if "profiles" not in doc:  # nothing in the spec to point at: the option is what is wrong
        ctx.error(f"--profile {profile}: the spec defines no profiles (a 'profiles:' mapping of name -> "
                  "parameter values)", _COMMAND_LINE)
        return
    if not isinstance(profiles, SMap) or profile not in profiles:
        names = list(profiles) if isinstance(profiles, dict) else []
        ctx.error(f"unknown profile '{profile}'; the spec defines: {', '.join(names) or 'none'}",
                  doc.where("profiles"),
                  hint=did_you_mean(profile, names))
        return
    chosen = profiles[profile]
    if not isinstance(chosen, SMap):
        ctx.error(f"profile '{profile}' must be a mapping of parameter -> value", profiles.where(profile))
        return
    for key, value in chosen.items():
        if key not in params:
            ctx.error(f"profile '{profile}' sets unknown parameter '{key}'", chosen.where_key(key),
                      hint=did_you_mean(key, params))
        elif not plain_value(value):
            ctx.error(f"profile '{profile}' sets '{key}' to a {_kind(value)}; a parameter is {PLAIN_VALUE}",
                      chosen.where(key))
            continue
        params[key] = value


def param_origins(doc: SMap, overrides: Mapping[str, Any], profile: str | None) -> dict[str, tuple[Location, ...]]:
    """Where each top-level parameter's value was written: ``--set``, the profile, or its default."""
    declared = doc.get("params")
    origins = {name: (declared.where(name),) for name in declared} if isinstance(declared, SMap) else {}
    profiles = doc.get("profiles")
    chosen = profiles.get(profile) if isinstance(profiles, SMap) and profile is not None else None
    if isinstance(chosen, SMap):
        origins.update((name, (chosen.where(name),)) for name in chosen)
    origins.update((name, (Location(f"--set {name}={spelled(value)}"),)) for name, value in overrides.items())
    return origins


#: what a parameter's value may be, in messages
PLAIN_VALUE = "a number, a string, true/false, null or a list of those"


def check_declared(ctx: Elaboration, declared: SMap, block: str | None = None) -> list[str]:
    """Report each parameter of ``declared`` (the spec's, or ``block``'s) whose name is no identifier a
    generated constructor can take (a Python keyword such as ``else``, or ``self``) or whose default is
    no plain value; the names of those with a bad default."""
    whose = f" of block '{block}'" if block else ""
    bad_defaults = []
    for name, default in declared.items():
        if not NAME_RE.match(name) or name[0].isdigit():
            ctx.error(f"parameter name '{shown_name(name)}'{whose} must be an identifier of at most "
                      f"{MAX_NAME_LENGTH} characters", declared.where_key(name))
        elif keyword.iskeyword(name) or name == "self":
            ctx.error(f"parameter name '{name}'{whose} is a Python keyword (or self): the generated PyTorch "
                      "module takes parameters as constructor arguments; choose another name",
                      declared.where_key(name))
        if not plain_value(default):
            ctx.error(f"parameter '{name}'{whose} must default to {PLAIN_VALUE}, not a {_kind(default)}",
                      declared.where(name))
            bad_defaults.append(name)
    return bad_defaults


def plain_value(value: Any) -> bool:
    """Whether ``value`` can be a parameter's (see :data:`PLAIN_VALUE`): generated code takes it as a
    constructor argument, so it must be a plain Python literal."""
    if isinstance(value, list):
        return all(map(plain_value, value))
    return value is None or isinstance(value, (bool, int, float, str))


def _kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "list holding a mapping" if isinstance(value, list) \
        else type(value).__name__


def _apply_overrides(ctx: Elaboration, overrides: Mapping[str, Any], params: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if key not in params:
            ctx.error(f"--set names unknown parameter '{key}'; the spec's parameters are: "
                      f"{', '.join(params) or 'none'}", _COMMAND_LINE, hint=did_you_mean(key, params))
            continue
        default = params[key]
        if default is not None and isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(value, (int, float))):
            ctx.error(f"--set {key}={spelled(value)}: expected {_value_kind(default)}, as the default "
                      f"{spelled(default)} is", _COMMAND_LINE)
            continue
        params[key] = value


def _value_kind(default: Any) -> str:
    """What a --set value must be for a parameter whose default is ``default`` (which it was refused for)."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a number"
    return "a list" if isinstance(default, list) else "a string"


def define_lets(ctx: Elaboration, m: SMap, scope: Scope) -> None:
    """Evaluate ``m``'s ``let:`` into ``scope``, in order; a failed one stands for an unknown value."""
    lets = m.get("let")
    if lets is None:
        return
    if not isinstance(lets, SMap):
        ctx.error("'let' must be a mapping of name -> expression", m.where("let"))
        return
    items = list(lets.items())
    for i, (name, expr) in enumerate(items):
        try:
            _refuse_reading_ahead(ctx, lets, name, expr, {n for n, _ in items[i + 1:]} - scope.env.keys())
            scope.env[name] = ctx.evaluate(expr, scope, Site(lets, name)) if isinstance(expr, str) else expr
        except Abort:
            scope.env[name] = UNKNOWN
        scope.sources[name] = scope.sources_of(expr)  # (fixed already: a let is no node attribute)
        # (an error about a value computed from it says where it was given: here, from the places of
        # the parameters it reads)
        scope.origins[name] = (lets.where(name), *scope.places_of(expr))


def _refuse_reading_ahead(ctx: Elaboration, lets: SMap, name: str, expr: Any, later: set[str]) -> None:
    """Report a let that reads a let written below it (lets are evaluated in order: it is no misspelled
    name) and Abort."""
    read = first_read(expr, later) if isinstance(expr, str) and later else None
    if read is not None:
        ctx.error(f"let '{name}' reads '{read[0]}', which is defined below it; a let reads only the parameters "
                  "and the lets above it", Site(lets, name).expr_location(read[1]),
                  hint=f"move '{read[0]}' above '{name}'")
        raise Abort()


def interpolate(text: str, ctx: Elaboration, scope: Scope, site: Site) -> str:
    """Replace each ``${expr}`` inside the string field written at ``site`` with the expression's value
    (an error names the place inside the expression); Abort after reporting one."""
    return _INTERP.sub(lambda m: str(ctx.evaluate(m.group(1), scope, site, shift=m.start(1))), text)


def parameter_value(raw: Any, env: Mapping[str, Any]) -> Any:
    """The value of the parameter that ``raw`` names, or :data:`NOT_A_PARAMETER`."""
    if isinstance(raw, str) and raw.isidentifier() and raw in env:
        return env[raw]
    return NOT_A_PARAMETER


def takes_literal_text(raw: str, default: Any) -> bool:
    """Whether a block argument ``raw`` (naming no parameter) is literal text, not an expression.

    Text is literal where the parameter's default is text, and for a required parameter
    (default null) when it is a bare word (``act: relu``): such a word names no value in
    scope, so as an expression it could only fail.
    """
    return isinstance(default, str) or (default is None and raw.isidentifier())


def chosen_kind(kind: str, env: Mapping[str, Any], known: Any) -> str:
    """The op or block a node's ``op:``/``block:`` names: itself if ``known(kind)``, else the
    value of a string parameter of that name (``op: act`` with ``act: gelu``)."""
    if known(kind):
        return kind
    value = env.get(kind) if kind.isidentifier() else None
    return value if isinstance(value, str) else kind
