"""The rules a recipe module keeps, checked by reading it (nothing is run, no database is needed).

`problems()` walks every registered recipe and the section folders; the Django system checks in
`playground/checks.py` turn each `Problem` into a `checks.Error` with the id `playground.<code>`,
so `manage.py check` (and `runserver`) refuse a recipe that breaks one. docs/adding-a-recipe.md
explains each rule.

Some rules read a variant's code: which functions it reaches (its own body, then, transitively,
the recipe-module functions it calls or passes on), whether one of them marks a statement with
`run.main`, and whether the variant's own body calls SQLAlchemy.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any

from recipes.base import SECTIONS, Param, Recipe, Variant
from recipes.context import MAIN_OPTION

RECIPES_ROOT = Path(__file__).parent
SQLALCHEMY_METHODS = frozenset(
    {
        # Session, Connection and Engine methods, called on a local (`session.execute(...)`).
        "execute",
        "scalars",
        "scalar",
        "add",
        "add_all",
        "flush",
        "commit",
        "rollback",
        "begin",
        "begin_nested",
        "exec_driver_sql",
        "connect",
        # Run's doors to SQLAlchemy: Session(engine), and create_engine() with its options.
        "session",
        "engine_with",
    }
)
"""Calls on an object the code cannot name ahead of time that still count as SQLAlchemy."""
_MISSING = object()


RULES: dict[str, tuple[str, str]] = {
    "E001": (
        "{file} is not registered: no page and no test see it.",
        "Add {name!r} to recipes.MODULES, in the cookbook's order.",
    ),
    "E002": (
        "Recipe section {section!r} does not match its module {module!r}.",
        "Keep the module in recipes/{folder}/ or change the section.",
    ),
    "E003": (
        "The variant has no docstring: its first line is the label people choose it by.",
        'Start the function with a one-line docstring, e.g. """count(*): one integer comes back""".',
    ),
    "E004": ("Default {default!r} {reason}.", "Fix the default, the bounds or the choices."),
    "E005": (
        "A sweepable parameter must be a number with min and max; this one is {kind!r} "
        "(min={min}, max={max}).",
        "Drop sweepable=True, or give the parameter a numeric kind and both bounds.",
    ),
    "E006": (
        "The variant marks no main statement: nothing it sends gets EXPLAINed.",
        "Wrap the statement it is about in run.main(...), here or in a helper it calls, "
        "or declare @recipe.variant(main=False).",
    ),
    "E007": (
        "The variant's own body calls no SQLAlchemy: the code shown as what ran would show none.",
        "Build the statement or option the variant is about in its body (select(...), "
        ".options(orm.selectinload(...)), session.execute(...)) and hand it to a shared helper.",
    ),
    "E008": (
        "The variant reaches {function}() whose code the page does not show.",
        "Register it with @recipe.helper.",
    ),
    "E009": ("The recipe has no summary.", "Write the module docstring and pass summary=__doc__."),
    "E010": (
        "The recipe links to no documentation.",
        "Add (label, url) pairs for the PostgreSQL and SQLAlchemy pages to docs=.",
    ),
    "E011": ("Companion {companion!r} is not a registered recipe.", "Use the slug of a registered recipe."),
    "E012": ("fails_with= is set without fails=.", "Say in one line why the variant fails: fails=..."),
    "E013": (
        "The notes function never reads the run's result: its lines cannot come from the figures.",
        "Write each line from result.metrics, result.statements, result.plan or result.rows.",
    ),
    "E014": (
        "needs_version={version!r} is not a PostgreSQL major version.",
        "Give the oldest major version the variant runs on, an int such as 18.",
    ),
}
"""Every rule: code → (message, hint), formatted with what the check found."""


@dataclass(frozen=True)
class Problem:
    """One broken rule, reported as the system check `playground.<code>`."""

    code: str
    """A key of `RULES`; stable, so a silenced check stays silenced."""
    obj: str
    """What is wrong: a module, a recipe slug, `slug:variant` or `slug.param`."""
    message: str
    hint: str = ""
    """How to fix it."""

    @classmethod
    def of(cls, code: str, obj: str, **found: Any) -> Problem:
        message, hint = RULES[code]
        return cls(code, obj, message.format(**found), hint.format(**found))


def problems(modules: Iterable[str] | None = None, root: Path = RECIPES_ROOT) -> list[Problem]:
    """Every broken rule among the registered recipe modules and the files of the section folders."""
    import recipes

    names = tuple(recipes.MODULES if modules is None else modules)
    found = unregistered_modules(names, root)
    slugs = {import_module(name).recipe.slug for name in names}
    for name in names:
        found += recipe_problems(import_module(name).recipe, name, known_slugs=slugs)
    return found


def unregistered_modules(modules: Iterable[str], root: Path = RECIPES_ROOT) -> list[Problem]:
    """E001: a module file in a section folder that `recipes.MODULES` does not list."""
    listed = set(modules)
    found = []
    for section in SECTIONS:
        for path in sorted((root / section.lower()).glob("*.py")):
            name = f"recipes.{section.lower()}.{path.stem}"
            if path.stem != "__init__" and name not in listed:
                found.append(Problem.of("E001", name, file=path.relative_to(root.parent), name=name))
    return found


def recipe_problems(recipe: Recipe, module: str, known_slugs: Iterable[str] = ()) -> list[Problem]:
    """Every rule `recipe`, defined in the module named `module`, breaks (E011 only given `known_slugs`)."""
    found = _recipe_level(recipe, module, set(known_slugs))
    for param in recipe.params:
        found += param_problems(recipe.slug, param)
    for variant in recipe.variants.values():
        found += variant_problems(recipe, variant)
    return found


def _recipe_level(recipe: Recipe, module: str, known_slugs: set[str]) -> list[Problem]:
    slug, found = recipe.slug, []
    parts = module.split(".")
    folder = recipe.section.lower()
    if len(parts) != 3 or parts[0] != "recipes" or parts[1] != folder:
        found.append(Problem.of("E002", slug, section=recipe.section, module=module, folder=folder))
    if not (recipe.summary or "").strip():
        found.append(Problem.of("E009", slug))
    if not recipe.docs:
        found.append(Problem.of("E010", slug))
    if known_slugs:
        found += [Problem.of("E011", slug, companion=c) for c in recipe.companions if c not in known_slugs]
    if recipe.notes_hook is not None and not _reads_its_argument(recipe.notes_hook):
        found.append(Problem.of("E013", slug))
    return found


def param_problems(slug: str, param: Param) -> list[Problem]:
    """E004 (a default the form would refuse) and E005 (sweeping what is not a bounded number)."""
    obj, found = f"{slug}.{param.name}", []
    if (reason := _bad_default(param)) is not None:
        found.append(Problem.of("E004", obj, default=param.default, reason=reason))
    if param.sweepable and (param.kind not in ("int", "float") or param.min is None or param.max is None):
        found.append(Problem.of("E005", obj, kind=param.kind, min=param.min, max=param.max))
    return found


def _bad_default(param: Param) -> str | None:
    value = param.default
    if param.kind in ("int", "float"):
        wanted = int if param.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            return f"is not of kind {param.kind!r}"
        if param.min is not None and param.max is not None and param.min > param.max:
            return f"cannot be checked: min {param.min} is above max {param.max}"
        if (param.min is not None and value < param.min) or (param.max is not None and value > param.max):
            return f"is outside [{param.min}, {param.max}]"
    elif param.kind == "bool" and not isinstance(value, bool):
        return "is not a bool"
    elif param.kind == "choice" and value not in param.choices:
        return f"is not among the choices {param.choices!r}"
    elif param.kind == "str" and (not isinstance(value, str) or len(value) > param.max_length):
        return f"is not a str of at most {param.max_length} characters"
    return None


def variant_problems(recipe: Recipe, variant: Variant) -> list[Problem]:
    """E003 label, E006 main statement, E007 SQLAlchemy in its own body, E008 code not shown, E012,
    E014 needs_version."""
    obj, found = f"{recipe.slug}:{variant.slug}", []
    if not (variant.func.__doc__ or "").strip():
        found.append(Problem.of("E003", obj))
    reached = reachable(variant.func)
    if variant.main and not any(_marks_main(f) for f in reached):
        found.append(Problem.of("E006", obj))
    if not sqlalchemy_calls(variant.func):
        found.append(Problem.of("E007", obj))
    shown = {inspect.unwrap(h) for h in recipe.helpers}
    found += [
        Problem.of("E008", obj, function=f.__name__) for f in reached[1:] if inspect.unwrap(f) not in shown
    ]
    if variant.fails_with and not variant.fails_on_purpose:
        found.append(Problem.of("E012", obj))
    needs = variant.needs_version
    if needs is not None and (not isinstance(needs, int) or isinstance(needs, bool) or not 10 <= needs <= 99):
        found.append(Problem.of("E014", obj, version=needs))
    return found


# --- reading code -----------------------------------------------------------------------------
@functools.cache  # a helper is read once for every variant that reaches it
def _tree(func: Callable[..., Any]) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(func))))


def _scope(func: Callable[..., Any]) -> dict[str, Any]:
    func = inspect.unwrap(func)
    closure = inspect.getclosurevars(func).nonlocals if isinstance(func, FunctionType) else {}
    return {**vars(builtins), **getattr(func, "__globals__", {}), **closure}


def _resolve(node: ast.AST, scope: dict[str, Any]) -> Any:
    """The object a name or a dotted name refers to, when it can be known without running anything."""
    if isinstance(node, ast.Name):
        return scope.get(node.id, _MISSING)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if base is _MISSING or not isinstance(base, (ModuleType, type)) and not _is_sqlalchemy(base):
            return _MISSING  # only modules, classes and SQLAlchemy objects are safe to look into
        try:
            return getattr(base, node.attr, _MISSING)
        except Exception:
            return _MISSING
    return _MISSING


def _home(obj: Any) -> str:
    if isinstance(obj, ModuleType):
        return obj.__name__
    if isinstance(obj, MethodType):
        return _home(obj.__func__)
    if isinstance(obj, (type, FunctionType, BuiltinFunctionType)):
        return getattr(obj, "__module__", None) or ""
    return type(obj).__module__


def _is_sqlalchemy(obj: Any) -> bool:
    return _home(obj).split(".")[0] == "sqlalchemy"


def sqlalchemy_calls(func: Callable[..., Any]) -> list[str]:
    """The SQLAlchemy calls written in `func`'s own source (nested functions included), as text.

    A call counts when what it calls is SQLAlchemy's (select, insert, orm.selectinload,
    Document.id.in_, func.count…) or is a Session/Connection/Engine method on a local
    (`session.execute`, `conn.commit`, `run.session`…). A pure delegation such as
    `return load(run, p, orm.lazyload)` has none: passing an option is not using it.
    """
    scope = _scope(func)
    found = []
    for node in ast.walk(_tree(func)):
        if not isinstance(node, ast.Call):
            continue
        target = _resolve(node.func, scope)
        local_method = (
            target is _MISSING
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQLALCHEMY_METHODS
        )
        if local_method or (target is not _MISSING and _is_sqlalchemy(target)):
            found.append(ast.unparse(node.func))
    return found


def reachable(func: Callable[..., Any]) -> list[Callable[..., Any]]:
    """`func`, then every recipe-module function it calls or passes on, transitively, in order met.

    Recipe-module functions are those of `func`'s own module and of the modules in
    `recipes.MODULES`; the framework (recipes.base, context, workers…) is not followed.
    """
    import recipes

    homes = frozenset({func.__module__, *recipes.MODULES})
    order: list[Callable[..., Any]] = [func]
    seen = {inspect.unwrap(func)}
    for current in order:
        for target in _functions_named(current, homes):
            if inspect.unwrap(target) not in seen:
                seen.add(inspect.unwrap(target))
                order.append(target)
    return order


@functools.cache
def _functions_named(func: Callable[..., Any], homes: frozenset[str]) -> tuple[FunctionType, ...]:
    """The functions of the `homes` modules that `func`'s source names, in order."""
    scope = _scope(func)
    found = []
    for node in ast.walk(_tree(func)):
        target = _resolve(node, scope) if isinstance(node, (ast.Name, ast.Attribute)) else _MISSING
        if isinstance(target, FunctionType) and target.__module__ in homes:
            found.append(target)
    return tuple(found)


@functools.cache
def _marks_main(func: Callable[..., Any]) -> bool:
    """Whether `func` uses run.main (called or handed on) or sets the main execution option itself."""
    for node in ast.walk(_tree(func)):
        if isinstance(node, ast.Attribute) and node.attr == "main":
            return True
        if isinstance(node, ast.keyword) and node.arg == MAIN_OPTION:
            return True
    return False


def _reads_its_argument(func: Callable[..., Any]) -> bool:
    try:
        tree = _tree(func)
    except (OSError, SyntaxError):  # a lambda in the middle of a line: give it the benefit of the doubt
        return True
    definition = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda)))
    if not definition.args.args:
        return False
    name = definition.args.args[0].arg
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(definition))
