"""The vocabulary every recipe module speaks: parameters, variants, recipes and their results.

Nothing here knows about Django. A recipe module declares a `Recipe`, registers variants on it
with `@recipe.variant`, and the runner (`playground.running.runner.run`) does the rest.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from recipes.learning import Challenge, Question

if TYPE_CHECKING:
    from recipes.context import Run, Setup
    from recipes.validation import Validated

SECTIONS = ("Modelling", "Reading", "Writing", "Performance")
SWEEP_FIGURES = ("db_ms", "elapsed_ms", "rows_read", "query_count")
"""Figures of a run a sweep can plot (each is a column of the stored run)."""

ParamKind = Literal["int", "float", "bool", "choice", "str"]


@dataclass(frozen=True)
class Param:
    """One input a person can change before running a recipe."""

    name: str
    """Stable key used in forms, query strings and the JSON API."""
    kind: ParamKind
    default: Any
    label: str = ""
    """Short human label; the name is used when empty."""
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    """Allowed values of a `choice` parameter, in display order."""
    max_length: int = 200
    """Longest accepted value of a `str` parameter."""
    sweepable: bool = False
    """Numeric parameters that make sense on the x axis of a sweep."""

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "type": self.kind,
            "default": self.default,
            "label": self.label or self.name,
            "help": self.help,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) or None,
        }
        if self.kind == "str":
            data["max_length"] = self.max_length
        return data


class Params(Mapping[str, Any]):
    """Validated parameter values; read them as attributes (`p.page`) or as a mapping."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"


@dataclass(frozen=True)
class Rows:
    """What a variant hands back to be shown as a table."""

    columns: tuple[str, ...]
    data: list[tuple[Any, ...]]

    @classmethod
    def of(cls, objects: Iterable[Any], *columns: str) -> Rows:
        """Rows from ORM objects, reading the named attributes."""
        return cls(columns, [tuple(getattr(o, c) for c in columns) for o in objects])


@dataclass(frozen=True)
class Cost:
    """What one run will ask of a shared instance, estimated from its parameters before it runs.

    A recipe declares it with `@recipe.cost`; the web layer gives a run above its thresholds a
    place among the few heavy ones, so that everyone else's runs stay quick.
    """

    statements: int = 1
    """Statements the variant sends, about (round trips, each with its Python around it)."""
    rows: int = 0
    """Rows the variant holds in Python at once: ORM objects, parameter lists, fetched rows."""


VariantFunc = Callable[["Run", Params], "Rows | None"]
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Variant:
    """One way of doing the recipe's job; the naive one comes first."""

    slug: str
    func: VariantFunc
    fails: str | None = None
    """Why this variant ends in an error with its default parameters, on purpose (one line); None
    for a variant expected to succeed. The error is its lesson (raiseload, a unique violation…)."""
    fails_with: str = ""
    """A phrase of the error message a variant that fails on purpose ends with ("" = any error)."""
    main: bool = True
    """Whether the variant marks a main statement with `run.main(...)`, whose plan is EXPLAINed.
    False declares that it has nothing single to explain; the system checks hold it to either."""
    needs_version: int | None = None
    """The oldest PostgreSQL major version it runs on (a function 18 added, say); None: any. An
    older server refuses it before anything runs, saying why (`refusal_on`)."""

    @property
    def fails_on_purpose(self) -> bool:
        return self.fails is not None

    @property
    def label(self) -> str:
        """The first line of the function's docstring."""
        return (self.func.__doc__ or self.slug).strip().splitlines()[0]

    @property
    def description(self) -> str:
        """The rest of the docstring: what this variant shows."""
        lines = (self.func.__doc__ or "").strip().splitlines()[1:]
        return textwrap.dedent("\n".join(lines)).strip()

    @property
    def source(self) -> str:
        """The code that runs, exactly as written in the recipe module."""
        return textwrap.dedent(inspect.getsource(self.func))

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "label": self.label,
            "description": self.description,
            "fails_on_purpose": self.fails_on_purpose,
            "fails_because": self.fails,
            "needs_version": self.needs_version,
        }

    def refusal_on(self, version: int) -> str | None:
        """Why it cannot run on a server of major `version`, or None when it can."""
        if self.needs_version is None or version >= self.needs_version:
            return None
        return (
            f"The {self.slug} variant needs PostgreSQL {self.needs_version} or later; this run "
            f"asked for PostgreSQL {version}. Nothing ran: pick PostgreSQL {self.needs_version}, "
            "or another variant."
        )


@dataclass(frozen=True)
class SweepDefaults:
    """How a sweep of a recipe starts, where the parameters' own bounds do not show the lesson."""

    y: str = "db_ms"
    """The figure plotted unless the person picks another (one of `SWEEP_FIGURES`). A count such as
    `rows_read` draws the same line on every run; a time is noisier."""
    ends: Mapping[str, Callable[[Params], int]] = field(default_factory=dict)
    """Parameter name → the top of its range for the other parameters chosen, e.g. the table's last
    page for `page`, so that a sweep does not run past the data. Without one, the range ends at the
    parameter's maximum."""
    lines: tuple[str, ...] = ()
    """Variants a sweep draws, when not all of them tell the swept parameter's story (a variant
    about tied timestamps says nothing about page depth); empty means every variant."""


@dataclass
class Recipe:
    """A recipe of the cookbook: its parameters, its variants and how to prepare its data."""

    slug: str
    title: str
    section: str
    summary: str
    """When to reach for it: the recipe module's docstring."""
    params: tuple[Param, ...]
    docs: tuple[tuple[str, str], ...] = ()
    """(label, url) of the PostgreSQL and SQLAlchemy pages worth reading."""
    variants: dict[str, Variant] = field(default_factory=dict)
    setup_hook: Callable[[Setup, Params], None] | None = None
    """Set by `@recipe.setup`: brings the sandbox's tables to the state the variants expect (not
    captured)."""
    notes_hook: Callable[[Any], list[str]] | None = None
    """Set by `@recipe.notes`: writes the "what to notice" lines from a finished RunResult's figures."""
    helpers: list[Callable[..., Any]] = field(default_factory=list)
    """Filled by `@recipe.helper`: functions the variants call; their source is shown beside the
    variant's."""
    variant_alias: str | None = None
    """A parameter name that also selects the variant (e.g. `strategy`), for scripts."""
    measure_memory: bool = False
    """Run the variant a second time with Python's allocation tracing on and report that pass's peak
    (`python_peak_kb`) and wall time (`traced_ms`); the run shown stays untraced. It must only read."""
    companions: tuple[str, ...] = ()
    """Slugs of recipes whose variants a sweep of this one draws alongside (offset beside keyset)."""
    guard_hook: Callable[[str, Params], dict[str, str]] | None = None
    """Set by `@recipe.guard`: refuses combinations of parameters too costly for a shared instance,
    as field → message."""
    cost_hook: Callable[[str, Params], Cost] | None = None
    """Set by `@recipe.cost`: what a run of (variant, params) will cost; `Cost()` when unset."""
    sweep_defaults: SweepDefaults = field(default_factory=SweepDefaults)
    """What a sweep of this recipe plots and where its range ends, unless the person changes them."""
    questions: dict[str, Question] = field(default_factory=dict)
    """Filled by `recipe.learn(...)`: predictions a person makes before a run (recipes.learning)."""
    challenges: dict[str, Challenge] = field(default_factory=dict)
    """Filled by `recipe.learn(...)`: goals checked against a run's figures (recipes.learning)."""

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"{self.slug}: unknown section {self.section!r}")
        names = [p.name for p in self.params]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.slug}: duplicate parameter name")
        if self.sweep_defaults.y not in SWEEP_FIGURES:
            raise ValueError(f"{self.slug}: a sweep cannot plot {self.sweep_defaults.y!r}")
        sweepable = {p.name for p in self.params if p.sweepable}
        if unknown := set(self.sweep_defaults.ends) - sweepable:
            raise ValueError(f"{self.slug}: sweep ends for parameters that are not sweepable: {unknown}")

    def variant(
        self,
        func: VariantFunc | None = None,
        *,
        slug: str | None = None,
        fails: str | None = None,
        fails_with: str = "",
        main: bool = True,
        needs_version: int | None = None,
    ) -> Any:
        """Register `func` as a variant; the slug defaults to its name with dashes.

        `@recipe.variant`, or with arguments: `slug="exists"` when the name is a Python keyword or
        a builtin worth not shadowing; `fails="why, in one line"` (and `fails_with=` a phrase of
        the error) for a variant whose lesson is the error it ends with; `main=False` for one
        that marks no statement with `run.main`; `needs_version=18` for one that uses what only
        PostgreSQL 18 has (older servers refuse it with a message).
        """

        def register(f: VariantFunc) -> VariantFunc:
            name = slug or f.__name__.replace("_", "-")
            if name in self.variants:
                raise ValueError(f"{self.slug}: duplicate variant {name!r}")
            self.variants[name] = Variant(
                slug=name, func=f, fails=fails, fails_with=fails_with, main=main, needs_version=needs_version
            )
            return f

        return register(func) if func is not None else register

    def helper(self, func: H) -> H:
        """Register a function the variants share, so the page shows its code too."""
        self.helpers.append(func)
        return func

    @property
    def helper_sources(self) -> list[str]:
        return [textwrap.dedent(inspect.getsource(f)) for f in self.helpers]

    def setup(self, func: Callable[[Setup, Params], None]) -> Callable[[Setup, Params], None]:
        """Register the function that prepares the sandbox before each run (sets `setup_hook`)."""
        self.setup_hook = func
        return func

    def guard(self, func: Callable[[str, Params], dict[str, str]]) -> Callable[[str, Params], dict[str, str]]:
        """Register the check run on (variant, params) before anything runs (sets `guard_hook`)."""
        self.guard_hook = func
        return func

    def cost(self, func: Callable[[str, Params], Cost]) -> Callable[[str, Params], Cost]:
        """Register the estimate of what a run costs, `(variant, p)` → `Cost` (sets `cost_hook`)."""
        self.cost_hook = func
        return func

    def cost_of(self, variant: str, params: Mapping[str, Any]) -> Cost:
        """What a run of `variant` with `params` (defaults filled in) will cost, as declared."""
        if self.cost_hook is None:
            return Cost()
        return self.cost_hook(variant, Params({**self.defaults(), **params}))

    def validate(self, data: Mapping[str, Any], *, form: bool = False) -> Validated:
        """The variant and parameters `data` asks for, checked; raises `InvalidParams` (recipes.validation).

        `form`: the values come from an HTML form or a query string (all strings).
        """
        from recipes.validation import validate  # it reads Param and Params from this module

        return validate(self, data, form=form)

    def learn(self, *items: Question | Challenge) -> None:
        """Register questions and challenges about this recipe, by their slugs."""
        for item in items:
            found = self.questions if isinstance(item, Question) else self.challenges
            if item.slug in self.questions or item.slug in self.challenges:
                raise ValueError(f"{self.slug}: duplicate question or challenge {item.slug!r}")
            found[item.slug] = item

    def notes(self, func: Callable[[Any], list[str]]) -> Callable[[Any], list[str]]:
        """Register the function that writes the "what to notice" lines (sets `notes_hook`)."""
        self.notes_hook = func
        return func

    @property
    def intro(self) -> str:
        """The summary, less a first line that only restates the title."""
        first, _, rest = self.summary.strip().partition("\n")
        if rest.strip() and first.strip().rstrip(".").lower() == self.title.lower():
            return rest.strip()
        return self.summary.strip()

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    @property
    def variant_list(self) -> list[Variant]:
        """The variants in order. Templates use it: `variants.values` would find a variant named "values"."""
        return list(self.variants.values())

    @property
    def default_variant(self) -> str:
        return next(iter(self.variants))

    def _alias_json(self) -> list[dict[str, Any]]:
        if not self.variant_alias:
            return []
        return [
            {
                "name": self.variant_alias,
                "type": "choice",
                "default": self.default_variant,
                "label": self.variant_alias,
                "help": "Same as choosing the variant.",
                "min": None,
                "max": None,
                "choices": list(self.variants),
                "alias_of": "variant",
            }
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "section": self.section,
            "summary": self.summary,
            "variants": [v.to_json() for v in self.variants.values()],
            "parameters": [p.to_json() for p in self.params] + self._alias_json(),
            "docs": [{"label": label, "url": url} for label, url in self.docs],
            "questions": [q.to_json() for q in self.questions.values()],
            "challenges": [c.to_json() for c in self.challenges.values()],
        }
