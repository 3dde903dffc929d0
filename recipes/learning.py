"""Questions and challenges: a prediction or a goal, checked against the figures of a real run.

A recipe declares them at the end of its module (`recipe.learn(Question(...), Challenge(...))`).
Nothing here stores an expected answer: a question's truth is read from the run that follows the
guess, and a challenge's checks compare the run's own figures (query count, plan nodes, rows read,
errors, a time ratio against another variant run in the same request) with the goal.

Figures are named (`recipes.measures`), so a track file can state a question or a challenge
without Python; a recipe module may also pass a function of the `RunResult` where a name is too
little.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recipes.measures import Figure, Value, figure, fill, shown
from recipes.results import RunResult

if TYPE_CHECKING:
    from recipes.base import Recipe


# --- challenges -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    """One condition of a challenge, in one run."""

    check: str
    """The condition, e.g. "queries ≤ 2"."""
    passed: bool
    actual: Value
    """The figure's value in the run (JSON-ready)."""
    detail: str
    """What the run did and by how much it met or missed the condition."""


Bound = float | str | None
"""A number, or the name of a parameter whose value is the bound ("rows": every row)."""


@dataclass(frozen=True)
class Check:
    """A condition on one figure of the run. Set exactly one of the conditions."""

    figure: str
    at_most: Bound = None
    at_least: Bound = None
    equals: Value = None
    includes: str | None = None
    """For `nodes`: a plan node type that must appear ("Index Scan")."""
    excludes: str | None = None
    """For `nodes`: a plan node type that must not appear ("Seq Scan")."""
    faster_than: str | None = None
    """A variant run in the same request with the same parameters: its figure over this run's must
    reach `times` (a time, so smaller is faster)."""
    times: float = 1.0

    def problems(self, params: Iterable[str] = ()) -> list[str]:
        """What is wrong with the declaration (an unknown figure, no condition or two, a bound naming
        none of `params`)."""
        try:
            figure(self.figure)
        except ValueError as exc:
            return [str(exc)]
        if isinstance(self.times, bool) or not isinstance(self.times, int | float) or self.times <= 0:
            return [f"check on {self.figure}: times must be a positive number"]
        for name in ("includes", "excludes", "faster_than"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                return [f"check on {self.figure}: {name} must be text"]
        for bound in (self.at_most, self.at_least):
            if isinstance(bound, bool) or not isinstance(bound, int | float | str | None):
                return [f"check on {self.figure}: a bound is a number or a parameter's name"]
            if isinstance(bound, str) and bound not in params:
                return [f"check on {self.figure}: the bound {bound!r} is neither a number nor a parameter"]
        conditions = [
            self.at_most,
            self.at_least,
            self.equals,
            self.includes,
            self.excludes,
            self.faster_than,
        ]
        set_ = sum(c is not None for c in conditions)
        if set_ != 1:
            return [
                f"check on {self.figure}: set exactly one of at_most, at_least, equals, includes, "
                f"excludes, faster_than ({set_} set)"
            ]
        return []

    def bound(self, value: Bound, params: Mapping[str, Any]) -> Any:
        return params.get(value, value) if isinstance(value, str) else value

    def describe(self, params: Mapping[str, Any]) -> str:
        name = figure(self.figure).label
        if self.at_most is not None:
            return f"{name} ≤ {shown(self.bound(self.at_most, params))}"
        if self.at_least is not None:
            return f"{name} ≥ {shown(self.bound(self.at_least, params))}"
        if self.includes is not None:
            return f"the plan has a {self.includes} node"
        if self.excludes is not None:
            return f"the plan has no {self.excludes} node"
        if self.faster_than is not None:
            return f"{self.times:g}× faster than {self.faster_than} ({name})"
        return f"{name}: {shown(self.equals)}"

    def evaluate(self, result: RunResult, baselines: Mapping[str, RunResult]) -> CheckResult:
        """Whether `result` meets the condition, and by how much it met or missed it."""
        params = result.params
        fig = figure(self.figure)
        actual = fig.read(result)
        said = self.describe(params)
        if actual is None:
            return CheckResult(said, False, None, f"the run has no {fig.label} to check")
        if self.faster_than is not None:
            return self._ratio(said, fig, actual, baselines.get(self.faster_than))
        if self.includes is not None or self.excludes is not None:
            node = self.includes or self.excludes
            present = node in actual
            passed = present if self.includes is not None else not present
            return CheckResult(said, passed, sorted(actual), f"plan nodes: {shown(actual)}")
        if self.equals is not None:
            passed = shown(actual) == shown(self.equals)
            return CheckResult(said, passed, actual, f"the run: {shown(actual)}")
        limit = self.bound(self.at_most if self.at_most is not None else self.at_least, params)
        gap = actual - limit if self.at_most is not None else limit - actual
        passed = gap <= 0
        how = (
            f"{shown(abs(gap))} {'over' if self.at_most is not None else 'short'}"
            if gap > 0
            else ("exactly at the limit" if gap == 0 else f"{shown(-gap)} to spare")
        )
        return CheckResult(said, passed, actual, f"the run: {shown(actual)}, {how}")

    def _ratio(self, said: str, fig: Figure, actual: float, base: RunResult | None) -> CheckResult:
        theirs = fig.read(base) if base is not None else None
        if theirs is None:
            return CheckResult(said, False, actual, f"{self.faster_than} has no {fig.label} to compare with")
        ratio = theirs / actual if actual else math.inf
        passed = ratio >= self.times
        detail = f"{shown(actual)} against {self.faster_than}'s {shown(theirs)}: ×{ratio:,.1f}, " + (
            f"×{ratio / self.times:,.1f} beyond the goal" if passed else f"the goal is ×{self.times:g}"
        )
        return CheckResult(said, passed, round(ratio, 2), detail)


@dataclass(frozen=True)
class Verdict:
    """A challenge met or missed, check by check."""

    challenge: str
    goal: str
    passed: bool
    checks: list[CheckResult]


@dataclass(frozen=True)
class Challenge:
    """A goal checked against a run's figures: "Load 50 authors with their books in ≤ 2 queries"."""

    slug: str
    goal: str
    """What to achieve; `{name}` shows a parameter's value."""
    checks: tuple[Check, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    """Parameters the challenge is about, set whatever the form says (authors = 50)."""
    sql: str | None = None
    """For a challenge answered with SQL in the scratchpad: the text its editor starts with."""
    reference: str | None = None
    """A SELECT (of a SQL challenge) giving the rows the answer's last SELECT must return: run on
    the same data just before the answer, its rows are the figure `same_rows` reads."""

    @property
    def asks_for_sql(self) -> bool:
        return self.sql is not None

    def baselines(self) -> list[str]:
        """Variants to run beside the attempt, with its parameters, for a time ratio."""
        return list(dict.fromkeys(c.faster_than for c in self.checks if c.faster_than))

    def evaluate(self, result: RunResult, baselines: Mapping[str, RunResult] | None = None) -> Verdict:
        results = [c.evaluate(result, baselines or {}) for c in self.checks]
        goal = fill(self.goal, {**result.params, "variant": result.variant})
        return Verdict(self.slug, goal, all(r.passed for r in results), results)

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "goal": self.goal,
            "params": dict(self.params),
            "checks": [check.describe(self.params) for check in self.checks],
            "baselines": self.baselines(),
            **({"sql": self.sql, "compares_rows": self.reference is not None} if self.asks_for_sql else {}),
        }


# --- questions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """A guess beside the truth the run gave, and why."""

    question: str
    asked: str
    """The question as asked, with the run's parameters."""
    guess: Value
    truth: Value
    right: bool
    off_by: str
    """"exactly", "within 10%", "off by 30 (37%)", or "" for a choice."""
    why: list[str]


@dataclass(frozen=True)
class Question:
    """A prediction to make before a run: a number, or one of `choices`."""

    slug: str
    text: str
    """The question; `{name}` shows a parameter's value."""
    answer: str | Callable[[RunResult], Value]
    """A figure name (see `figure`) or a function of the run: the truth is always read from it."""
    choices: tuple[str, ...] = ()
    """The answers offered; empty for a number."""
    variant: str | None = None
    """The variant the question is about; None asks about whichever variant is chosen."""
    close: float = 0.0
    """A number guess within this fraction of the truth counts as right (0: exactly)."""
    why: Callable[[RunResult], str] | None = None
    """A sentence from the run's figures saying why the truth is what it is (else the run's notes)."""

    @property
    def kind(self) -> str:
        return "choice" if self.choices else "number"

    def ask(self, params: Mapping[str, Any]) -> str:
        """The question with the values of `params` (and `variant`, when it holds one) filled in."""
        return fill(self.text, {**params, **({"variant": self.variant} if self.variant else {})})

    def truth(self, result: RunResult) -> Value:
        return figure(self.answer).read(result) if isinstance(self.answer, str) else self.answer(result)

    def read_guess(self, raw: Any) -> Value:
        """The guess as a number or one of the choices; ValueError with the words to show."""
        if self.choices:
            if str(raw) not in self.choices:
                raise ValueError(f"Pick one of: {', '.join(self.choices)}.")
            return str(raw)
        try:
            number = float(str(raw).replace(",", "").strip()) if not isinstance(raw, bool) else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError("Enter a number.")
        return int(number) if number.is_integer() else number

    def check(self, result: RunResult, guess: Value) -> Answer:
        truth = self.truth(result)
        if self.choices or not isinstance(truth, int | float) or isinstance(truth, bool):
            right, off_by = shown(guess).lower() == shown(truth).lower(), ""
        else:
            gap = abs(guess - truth)
            right = gap <= self.close * abs(truth)
            off_by = (
                "exactly"
                if gap == 0
                else (
                    f"within {self.close:.0%}"
                    if right
                    else f"off by {shown(gap)}" + (f" ({gap / abs(truth):.0%})" if truth else "")
                )
            )
        asked = self.ask({**result.params, "variant": result.variant})
        return Answer(self.slug, asked, guess, truth, right, off_by, self._why(result))

    def _why(self, result: RunResult) -> list[str]:
        """The question's own sentence when the run has the figures it reads, else the run's notes."""
        if self.why is not None:
            try:
                return [self.why(result)]
            except KeyError:  # a run that failed before recording the metric the sentence reads
                pass
        return list(result.notes[:3])

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "text": self.text,
            "kind": self.kind,
            "choices": list(self.choices) or None,
            "variant": self.variant,
            "answer": self.answer if isinstance(self.answer, str) else "computed from the run",
            "close": self.close,
        }


Teaching = Question | Challenge


def problems(recipe: Recipe) -> list[str]:
    """What is wrong with a recipe's questions and challenges, one sentence each (empty: nothing)."""
    found = []
    defaults = {**recipe.defaults(), "variant": recipe.default_variant}
    for q in recipe.questions.values():
        where = f"question {q.slug!r}"
        if q.variant is not None and q.variant not in recipe.variants:
            found.append(f"{where}: unknown variant {q.variant!r}")
        if isinstance(q.answer, str):
            found += [f"{where}: {p}" for p in _figure_problems(q.answer)]
        if "{" in q.ask(defaults):
            found.append(f"{where}: the text names something that is not a parameter: {q.text!r}")
    for c in recipe.challenges.values():
        where = f"challenge {c.slug!r}"
        try:
            recipe.validate({**c.params})
        except ValueError as exc:  # InvalidParams: a pinned parameter the recipe refuses
            found.append(f"{where}: parameters refused: {exc}")
        for check in c.checks:
            found += [f"{where}: {p}" for p in check.problems(recipe.defaults())]
            if check.faster_than is not None and check.faster_than not in recipe.variants:
                found.append(f"{where}: unknown variant {check.faster_than!r} to compare with")
        if not c.checks:
            found.append(f"{where}: no checks")
    return found


def _figure_problems(name: str) -> list[str]:
    try:
        figure(name)
    except ValueError as exc:
        return [str(exc)]
    return []
