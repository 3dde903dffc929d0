"""What the "Predict, then run" and challenge parts of a page show, filled with the form's values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django import template

from recipes.base import Recipe
from recipes.learning import Challenge, Question
from recipes.measures import fill, shown

register = template.Library()


def question_card(question: Question, values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "slug": question.slug,
        "asked": question.ask(values),
        "choices": question.choices,
        "variant": question.variant,
        "close": question.close,
    }


def challenge_card(challenge: Challenge, values: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**values, **challenge.params}
    return {
        "slug": challenge.slug,
        "goal": fill(challenge.goal, merged),
        "checks": [c.describe(merged) for c in challenge.checks],
        "pinned": ", ".join(f"{k} = {v}" for k, v in challenge.params.items()),
        "baselines": challenge.baselines(),
        "sql": challenge.asks_for_sql,
    }


def cards(
    recipe: Recipe,
    values: Mapping[str, Any],
    questions: Iterable[str] | None = None,
    challenges: Iterable[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Questions and challenges of `recipe` (all, or the slugs named) as the templates show them."""
    qs = recipe.questions if questions is None else {s: recipe.questions[s] for s in questions}
    cs = recipe.challenges if challenges is None else {s: recipe.challenges[s] for s in challenges}
    return {
        "questions": [question_card(q, values) for q in qs.values()],
        "challenges": [challenge_card(c, values) for c in cs.values()],
    }


@register.simple_tag
def learning(recipe: Recipe, form: Any) -> dict[str, list[dict[str, Any]]]:
    """`{% learning recipe form as learn %}`: every question and challenge, with the form's values."""
    return cards(recipe, form.initial)


@register.filter(name="shown")
def shown_filter(value: Any) -> str:
    """A figure as a sentence shows it: 1,234, 0.25, yes/no, node types joined."""
    return shown(value)


@register.filter
def percent(fraction: float) -> str:
    return f"{fraction:.0%}"


@register.filter
def passed_count(checks: Iterable[Any]) -> int:
    return sum(1 for c in checks if c.passed)
