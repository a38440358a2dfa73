"""Small pure functions a spec defines once and calls from any expression.

```yaml
functions:
  make_divisible:                     # torchvision's channel rounding rule
    args: [v, divisor]
    let: {new_v: "max(divisor, int(v + divisor / 2) // divisor * divisor)"}
    return: "new_v + divisor if new_v < 0.9 * v else new_v"
```

A body is evaluated by the same safe evaluator as every expression (never Python's
``eval``). It sees only its arguments, its ``let`` values and the functions defined
*before* it, so there is no recursion; a budget of calls per spec stops a chain of
functions that call each other many times (``f1(x) = f0(x) + f0(x)``, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from archc.errors import Location, did_you_mean
from archc.limits import DEFAULT_LIMITS
from archc.frontends.yaml.expr import CONSTANTS, FUNCTIONS, Evaluator, ExprError, UnknownValue, WorkMeter, names_in, parse
from archc.frontends.yaml.source import SList, SMap

#: user-function calls one spec may make in all, a bound on work however functions nest
MAX_CALLS = 100_000
FUNCTION_KEYS = {"doc": "free text", "args": "argument names, in order",
                 "defaults": "default values of trailing arguments: name -> value",
                 "let": "local values: name -> expression over the arguments, in order",
                 "return": "the result: an expression over the arguments and let values"}


class FunctionError(Exception):
    """A function definition is invalid (reported at ``location``)."""

    def __init__(self, message: str, location: Location) -> None:
        super().__init__(message)
        self.location = location


@dataclass
class _Budget:
    calls: int = 0


@dataclass
class SpecFunction:
    """One function: called with evaluated arguments, it evaluates its body."""

    name: str
    args: list[str]
    defaults: dict[str, Any]
    lets: list[tuple[str, str]]
    body: str
    visible: dict[str, Callable[..., Any]]   # the functions defined before this one
    budget: _Budget = field(default_factory=_Budget)
    #: the spec's evaluation steps in all (its callers' evaluators share it)
    meter: WorkMeter | None = None

    def __call__(self, *values: Any) -> Any:
        required = len(self.args) - len(self.defaults)
        if not required <= len(values) <= len(self.args):
            want = str(len(self.args)) if not self.defaults else f"{required} to {len(self.args)}"
            raise ExprError(f"{self.name}() takes {want} argument(s) ({', '.join(self.args)}), got {len(values)}")
        self.budget.calls += 1
        if self.budget.calls > MAX_CALLS:
            raise ExprError(f"spec functions were called more than {MAX_CALLS} times (calls nest too deeply)")
        env = {**self.defaults, **dict(zip(self.args, values))}
        evaluator = Evaluator(env, limits=self.meter.limits if self.meter is not None else DEFAULT_LIMITS,
                              spec_functions=self.visible, meter=self.meter)
        try:
            for name, text in self.lets:
                env[name] = evaluator.evaluate(text)
            return evaluator.evaluate(self.body)
        except ExprError as exc:
            raise type(exc)(f"in function '{self.name}': {exc}", hint=exc.hint) from None


def define_functions(decls: Any, where: Location, known: dict[str, Callable[..., Any]],
                     reserved: set[str], meter: WorkMeter | None = None) -> list[FunctionError]:
    """Add the functions of a ``functions:`` mapping to ``known`` (in order); the errors of the bad ones,
    each of which is known as a function whose calls fail quietly (its error is reported once, here).
    ``meter``: the spec's evaluation steps in all, which the functions' bodies spend too."""
    if not isinstance(decls, SMap):
        return [FunctionError("'functions' must be a mapping of name -> {args, let, return}", where)]
    budget = next((f.budget for f in known.values() if isinstance(f, SpecFunction)), _Budget())
    errors = []
    for name, decl in decls.items():
        try:
            if not name.isidentifier() or name in reserved:
                raise FunctionError(f"function name '{name}' must be an identifier that is not a built-in "
                                    "function", decls.where_key(name))
            if name in known:
                raise FunctionError(f"function '{name}' is defined twice", decls.where_key(name))
            known[name] = _function(name, decl, decls.where(name), dict(known), budget, meter)
        except FunctionError as exc:
            errors.append(exc)
            known.setdefault(name, _failed)
    return errors


def _failed(*_: Any) -> Any:
    """A function whose definition failed: a call says nothing more (see UnknownValue)."""
    raise UnknownValue()


def _check_names(function: str, key: str, text: str, seen: set[str], where: Location) -> None:
    """Refuse a name a function's body cannot see, whether or not the branch reading it ever runs
    (a function sees only its arguments, its earlier ``let`` values and the functions defined before it:
    a misspelling is an error in every call)."""
    for unknown in sorted(names_in(text) - seen):
        part = "its result" if key == "return" else f"its let '{key}'"
        hint = did_you_mean(unknown, seen - set(CONSTANTS))
        raise FunctionError(f"function '{function}': unknown name '{unknown}' in {part} (a function sees its "
                            f"arguments, its earlier let values and the functions defined before it)"
                            + (f"; {hint}" if hint else ""), where)


def _function(name: str, decl: Any, where: Location, visible: dict[str, Callable[..., Any]],
              budget: _Budget, meter: WorkMeter | None = None) -> SpecFunction:
    if not isinstance(decl, SMap) or "return" not in decl:
        raise FunctionError(f"function '{name}' must be a mapping with 'args' and 'return'", where)
    for key in decl:
        if key not in FUNCTION_KEYS:
            raise FunctionError(f"unknown key '{key}' in function '{name}'; expected one of: "
                                f"{', '.join(FUNCTION_KEYS)}", decl.where_key(key))
    args = decl.get("args", [])
    if not isinstance(args, SList) or not all(isinstance(a, str) and a.isidentifier() for a in args):
        raise FunctionError(f"'args' of function '{name}' must be a list of names", decl.where("args"))
    defaults = decl.get("defaults", {})
    if not isinstance(defaults, dict) or list(defaults) != [a for a in args if a in defaults] or \
            list(defaults) != args[len(args) - len(defaults):]:
        raise FunctionError(f"'defaults' of function '{name}' must give values for its last arguments",
                            decl.where("defaults") if "defaults" in decl else where)
    lets = decl.get("let", {})
    if not isinstance(lets, dict):
        raise FunctionError(f"'let' of function '{name}' must be a mapping of name -> expression", decl.where("let"))
    texts = [(k, str(v)) for k, v in lets.items()] + [("return", str(decl["return"]))]
    seen = {*args, *visible, *FUNCTIONS, *CONSTANTS}
    for key, text in texts:
        holder = decl if key == "return" else lets
        try:
            parse(text)
        except ExprError as exc:
            raise FunctionError(f"function '{name}': {exc}", holder.where(key)) from None
        _check_names(name, key, text, seen, holder.where(key))
        seen.add(key)
    return SpecFunction(name, list(args), dict(defaults), texts[:-1], texts[-1][1], visible, budget, meter)
