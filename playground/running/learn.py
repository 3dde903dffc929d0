"""A prediction or a challenge attempt: runs through the one runner, judged on the run's figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playground.running import limits, service
from recipes.base import Recipe
from recipes.learning import Answer, Challenge, Question, Verdict
from recipes.results import RunResult
from recipes.validation import Validated


@dataclass(frozen=True)
class Prediction:
    """A guess, the run that followed it, and the two side by side."""

    result: RunResult
    answer: Answer


@dataclass(frozen=True)
class Attempt:
    """A challenge tried once: the run, the variants run beside it, and the verdict."""

    result: RunResult
    baselines: dict[str, RunResult]
    """Variant → its run with the same parameters, for a time ratio."""
    verdict: Verdict


def predict(
    session, recipe: Recipe, question: Question, guess: Any, chosen: Validated, *, version: int | None = None
) -> Prediction:
    """Run what the question is about (paid from the run allowance) on the sandbox of `version`
    (default: `main`'s) and check the guess against it."""
    limits.spend_runs(session)
    result = service.run_recipe(session, recipe, chosen.variant, dict(chosen.params), version=version)
    return Prediction(result, question.check(result, guess))


def attempt(
    session, recipe: Recipe, challenge: Challenge, chosen: Validated, *, version: int | None = None
) -> Attempt:
    """Run the variants a time ratio needs, then the attempt itself, with the same parameters, all
    on the sandbox of `version` (default: `main`'s), so that the ratio compares like with like.

    The attempt runs last, so whatever is cold (the seed, the pool's first connections) is paid
    by the variant it is compared with rather than by the attempt.
    """
    wanted = [v for v in challenge.baselines() if v != chosen.variant]
    limits.spend_runs(session, 1 + len(wanted))
    params = dict(chosen.params)
    baselines = {v: service.run_recipe(session, recipe, v, dict(params), version=version) for v in wanted}
    result = service.run_recipe(session, recipe, chosen.variant, params, version=version)
    baselines.setdefault(chosen.variant, result)
    return Attempt(result, baselines, challenge.evaluate(result, baselines))
