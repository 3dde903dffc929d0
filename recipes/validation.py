"""Checking input against a recipe's declared parameters: kinds, bounds, choices, then its guard.

Plain Python, so a script, a test or the web layer asks the same question: `recipe.validate(data)`
returns the variant and every parameter converted to its kind, or raises `InvalidParams` with every
problem found, per field. Two sources are told apart by `form`:

- JSON (`form=False`): values keep their JSON types, and a type that only looks right is refused
  (`true` is not a number, `1` is not a boolean, `[...]` is not text). Numbers written as strings
  are accepted, as scripts have always sent them. Names the recipe does not declare are refused.
- an HTML form or a query string (`form=True`): every value is a string, the last one wins when a
  name repeats, an unticked checkbox is simply absent (so False), and names of other fields on the
  page are ignored.

Either way an absent key takes the parameter's default, while an explicit `null` or an emptied
field is refused: taking the default there would run something the person did not ask for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recipes.base import Param, Params

if TYPE_CHECKING:
    from recipes.base import Recipe

Errors = dict[str, list[str]]
"""Field name → messages; `params` holds the names a recipe does not declare."""

WHOLE = "Enter a whole number."
NUMBER = "Enter a number."
BOOLEAN = "Enter true or false."
TEXT = "Enter text (a string)."
FORM_TRUE = frozenset({"on", "true", "1"})
FORM_FALSE = frozenset({"off", "false", "0", ""})
"""How checkboxes and shared links spell booleans (links write Python's `True`/`False`)."""

_INT = re.compile(r"\s*([+-]?[0-9]+)(?:\.0*)?\s*")
_FLOAT = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
_ABSENT = object()


@dataclass(frozen=True)
class Validated:
    """Input that passed every check: what the runner may run."""

    variant: str
    """Slug of the variant to run."""
    params: Params
    """Every declared parameter, converted to its kind; absent ones hold their defaults."""


class InvalidParams(ValueError):
    """The input was refused; nothing may run."""

    def __init__(self, errors: Errors, values: Mapping[str, Any] | None = None):
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))
        self.errors = errors
        """Field name → messages, every problem found at once."""
        self.values = dict(values or {})
        """The input as read: converted where valid, as sent where not; a form shows it again."""


class _Refused(Exception):
    """One value's problem, in the words shown to the person."""


def validate(recipe: Recipe, data: Mapping[str, Any], *, form: bool = False) -> Validated:
    """The variant and parameters `data` asks of `recipe`, or `InvalidParams` saying what is wrong."""
    variant, variant_errors = _variant(recipe, data, form=form)
    values, errors = read_params(recipe.params, data, form=form)
    errors = {**variant_errors, **errors}
    if not form:
        declared = {p.name for p in recipe.params} | {"variant", recipe.variant_alias}
        unknown = sorted(str(name) for name in data if name not in declared)
        if unknown:
            errors["params"] = [f"unknown parameter '{name}'" for name in unknown]
    shown = {"variant": variant, **values}
    if errors:
        raise InvalidParams(errors, shown)
    params = Params(values)
    errors = guard_errors(recipe, variant, params)
    if errors:
        raise InvalidParams(errors, shown)
    return Validated(variant=variant, params=params)


def from_link(recipe: Recipe, data: Mapping[str, Any]) -> dict[str, Any]:
    """Form data read from a link's query string or a command line, to validate with `form=True`.

    Unlike a submitted form, which leaves out an unticked checkbox, a link that leaves out a
    boolean means its default.
    """
    kept = {p.name: str(p.default) for p in recipe.params if p.kind == "bool" and p.name not in data}
    return {**kept, **{name: pick(data, name, form=True) for name in data}}


def guard_errors(recipe: Recipe, variant: str, params: Params) -> Errors:
    """The recipe's own refusal of a costly combination; only ever asked about valid values."""
    guard = recipe.guard_hook
    refused = guard(variant, params) if guard is not None else {}
    return {field: [message] for field, message in refused.items()}


def read_params(
    params: Iterable[Param], data: Mapping[str, Any], *, form: bool = False
) -> tuple[dict[str, Any], Errors]:
    """Each of `params` read from `data`: (values, errors), values as sent where refused.

    Shared with other inputs declared as `Param`s (a sweep's settings) so they read alike.
    """
    values: dict[str, Any] = {}
    errors: Errors = {}
    for param in params:
        raw = pick(data, param.name, form=form)
        if raw is _ABSENT:
            values[param.name] = False if form and param.kind == "bool" else param.default
            continue
        try:
            values[param.name] = convert(param, raw, form=form)
        except _Refused as refused:
            values[param.name] = raw
            errors[param.name] = [str(refused)]
    return values, errors


def pick(data: Mapping[str, Any], name: str, *, form: bool) -> Any:
    """The value sent under `name` (the last one of a form's repeated names), or `_ABSENT`."""
    if name not in data:
        return _ABSENT
    getlist = getattr(data, "getlist", None)  # a query dict: every value sent under the name
    if form and getlist is not None:
        sent = getlist(name)
        return sent[-1] if sent else _ABSENT
    return data[name]


def convert(param: Param, raw: Any, *, form: bool = False) -> Any:
    """`raw` as a value of `param`'s kind within its bounds; `_Refused` with the message if not."""
    if raw is None:
        raise _Refused(f"null is not a value: leave the key out for the default ({param.default}).")
    if raw == "" and param.kind != "bool":
        if form:
            raise _Refused(f"This field is empty: enter a value (the default is {param.default}).")
        raise _Refused(f"Empty: send a value, or leave the key out for the default ({param.default}).")
    match param.kind:
        case "int":
            return _bounded(param, _whole(raw))
        case "float":
            return _bounded(param, _number(raw))
        case "bool":
            return _boolean(raw, form=form)
        case "choice":
            if isinstance(raw, str) and raw in param.choices:
                return raw
            raise _Refused(f"Select a valid choice. {_shown(raw)} is not one of the available choices.")
        case "str":
            return _text(param, raw)
    raise ValueError(f"unknown parameter kind {param.kind!r}")


def _whole(raw: Any) -> int:
    if isinstance(raw, bool):  # True is an int to Python, not to a person
        raise _Refused(WHOLE)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    match = _INT.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise _Refused(WHOLE)
    try:
        return int(match.group(1))
    except ValueError:  # more digits than Python converts
        raise _Refused(WHOLE) from None


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _Refused(NUMBER)
    if isinstance(raw, str) and not _FLOAT.fullmatch(raw):
        raise _Refused(NUMBER)  # float() would also take "nan", "inf" and "1_0"
    try:
        value = float(raw)
    except (ValueError, OverflowError):
        raise _Refused(NUMBER) from None
    if not math.isfinite(value):
        raise _Refused(NUMBER)
    return value


def _boolean(raw: Any, *, form: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if form and isinstance(raw, str):
        word = raw.strip().lower()
        if word in FORM_TRUE or word in FORM_FALSE:
            return word in FORM_TRUE
    raise _Refused(BOOLEAN)


def _text(param: Param, raw: Any) -> str:
    if not isinstance(raw, str):
        raise _Refused(TEXT)
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # JSON's "\ud800": no database driver can send it
        raise _Refused("Contains a character that is not valid Unicode (a lone surrogate).") from None
    if "\x00" in raw:
        raise _Refused("Contains a NUL character, which Postgres text cannot hold.")
    if len(raw) > param.max_length:
        raise _Refused(f"Ensure this value has at most {param.max_length} characters (it has {len(raw)}).")
    return raw


def _bounded(param: Param, value: float) -> Any:
    if param.min is not None and value < param.min:
        raise _Refused(f"Ensure this value is greater than or equal to {number(param.min)}.")
    if param.max is not None and value > param.max:
        raise _Refused(f"Ensure this value is less than or equal to {number(param.max)}.")
    return value


def _variant(recipe: Recipe, data: Mapping[str, Any], *, form: bool) -> tuple[str, Errors]:
    """The variant asked for by `variant` or by the recipe's alias (which must then agree)."""
    choice = Param(
        "variant", "choice", recipe.default_variant, label="Variant", choices=tuple(recipe.variants)
    )
    values, errors = read_params([choice], data, form=form)
    alias = recipe.variant_alias
    if not alias or pick(data, alias, form=form) is _ABSENT:
        return values["variant"], errors
    by_alias, alias_errors = read_params(
        [Param(alias, "choice", None, label=alias, choices=choice.choices)], data, form=form
    )
    if alias_errors:
        return values["variant"], {**errors, **alias_errors}
    if (
        not errors
        and pick(data, "variant", form=form) is not _ABSENT
        and values["variant"] != by_alias[alias]
    ):
        message = (
            f"{alias} {by_alias[alias]} and variant {values['variant']} name different variants: send one."
        )
        return values["variant"], {alias: [message]}
    return by_alias[alias], errors


def number(value: float) -> int | float:
    """A bound as people write it: 1000, not 1000.0."""
    return int(value) if float(value).is_integer() else value


def _shown(raw: Any) -> str:
    """A refused value for a message: short, and never the repr of a deep structure."""
    if isinstance(raw, str):
        return raw if len(raw) <= 40 else raw[:40] + "…"
    if isinstance(raw, bool | int | float):
        return str(raw)
    return "a list" if isinstance(raw, list | tuple) else f"a {type(raw).__name__}"
