"""Reading a parsed track file into a Track, noting every problem with the line it is on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import recipes
from recipes.base import Recipe
from recipes.learning import Challenge, Check, Question
from recipes.measures import figure
from recipes.scratchpad import MAX_LENGTH
from recipes.sql import Limits, SqlRefused, check
from recipes.tracks.locate import line_of
from recipes.tracks.model import Problem, Step, Track
from recipes.validation import InvalidParams

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
TRACK_KEYS = {"title", "summary", "minutes", "steps"}
STEP_KEYS = {"title", "recipe", "variant", "params", "guidance", "question", "challenge"}
QUESTION_KEYS = {"text", "answer", "choices", "variant", "close"}
CHALLENGE_KEYS = {"goal", "checks", "params", "sql", "reference"}
CHECK_KEYS = {"figure", "at_most", "at_least", "equals", "includes", "excludes", "faster_than", "times"}


class Reader:
    """Builds a Track from parsed TOML, noting each problem with the line of the key it is about."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text
        self.problems: list[Problem] = []

    def refuse(self, message: str, *where: str | int) -> None:
        self.problems.append(Problem(self.path, line_of(self.text, where), message))

    def track(self, data: Mapping[str, Any]) -> Track | None:
        slug = self.path.stem
        if not SLUG.match(slug):
            self.refuse(f"the file name {self.path.name!r} must be a slug: lowercase letters, digits, dashes")
        for key in sorted(set(data) - TRACK_KEYS):
            self.refuse(f"unknown key {key!r}: a track has {', '.join(sorted(TRACK_KEYS))}", key)
        title = self.text_field(data, "title", required=True)
        summary = self.text_field(data, "summary", required=True)
        minutes = data.get("minutes")
        if minutes is not None and (not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1):
            self.refuse("minutes must be a whole number of minutes", "minutes")
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            self.refuse("a track needs at least one [[steps]] table", "steps")
            return None
        steps = [self.step(i, raw) for i, raw in enumerate(raw_steps)]
        if self.problems or not all(steps):
            return None
        return Track(slug, title, summary, minutes if isinstance(minutes, int) else None, tuple(steps))

    def text_field(self, data: Mapping[str, Any], key: str, *where: str | int, required: bool) -> str:
        value = data.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.refuse(f"{key} must be non-empty text", *where, key)
            return ""
        return value.strip()

    def step(self, index: int, raw: Any) -> Step | None:
        at = ("steps", index)
        if not isinstance(raw, dict):
            self.refuse("a step must be a table", *at)
            return None
        for key in sorted(set(raw) - STEP_KEYS):
            self.refuse(f"unknown key {key!r}: a step has {', '.join(sorted(STEP_KEYS))}", *at, key)
        recipe = recipes.get(raw.get("recipe")) if isinstance(raw.get("recipe"), str) else None
        if recipe is None:
            known = ", ".join(recipes.REGISTRY)
            self.refuse(f"unknown recipe {raw.get('recipe')!r}: one of {known}", *at, "recipe")
            return None
        guidance = self.text_field(raw, "guidance", *at, required=True)
        teaching = self.teaching(recipe, raw, at)
        variant = self.variant(recipe, raw, teaching, at)
        params = self.params(recipe, raw, variant, teaching, at)
        if teaching is None or variant is None or params is None:
            return None
        title = self.text_field(raw, "title", *at, required=False) or recipe.title
        return Step(index + 1, title, recipe, variant, params, guidance, teaching)

    def teaching(self, recipe: Recipe, raw: Mapping[str, Any], at: tuple) -> Question | Challenge | None:
        """The step's question or challenge: a slug declared by the recipe, or a table written here."""
        given = [k for k in ("question", "challenge") if k in raw]
        if len(given) != 1:
            self.refuse("a step has exactly one of question or challenge", *at)
            return None
        kind = given[0]
        value = raw[kind]
        if isinstance(value, str):
            declared = recipe.questions if kind == "question" else recipe.challenges
            if value not in declared:
                names = ", ".join(declared) or "none"
                self.refuse(f"{recipe.slug} has no {kind} {value!r}: it has {names}", *at, kind)
                return None
            return declared[value]
        if not isinstance(value, dict):
            self.refuse(f"{kind} must be the slug of one of the recipe's, or a table", *at, kind)
            return None
        build = self.inline_question if kind == "question" else self.inline_challenge
        return build(recipe, value, (*at, kind))

    def inline_question(self, recipe: Recipe, raw: Mapping[str, Any], at: tuple) -> Question | None:
        """A question written in the track file: its answer names a figure (recipes.measures)."""
        problems = self.unknown_keys(raw, QUESTION_KEYS, "a question")
        text, answer, choices, variant = (raw.get(k) for k in ("text", "answer", "choices", "variant"))
        close = raw.get("close", 0)
        if not isinstance(text, str) or not text.strip():
            problems.append(("text must be non-empty text", "text"))
        if choices is not None and (
            not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)
        ):
            problems.append(("choices must be a list of text", "choices"))
        if variant is not None and variant not in recipe.variants:
            problems.append((f"unknown variant {variant!r}", "variant"))
        if isinstance(close, bool) or not isinstance(close, int | float) or close < 0:
            problems.append(("close must be a fraction, e.g. 0.1 for within 10%", "close"))
        problems += [(p, "answer") for p in _answer_problems(answer)]
        for message, key in problems:
            self.refuse(message, *at, key)
        if problems:
            return None
        return Question("step", text, answer, tuple(choices or ()), variant=variant, close=float(close))

    def inline_challenge(self, recipe: Recipe, raw: Mapping[str, Any], at: tuple) -> Challenge | None:
        """A challenge written in the track file: checks on named figures."""
        problems = self.unknown_keys(raw, CHALLENGE_KEYS, "a challenge")
        goal, raw_checks, params = raw.get("goal"), raw.get("checks"), raw.get("params", {})
        if not isinstance(goal, str) or not goal.strip():
            problems.append(("goal must be non-empty text", "goal"))
        if not isinstance(params, dict):
            problems.append(("params must be a table", "params"))
        if not isinstance(raw_checks, list) or not raw_checks:
            problems.append(("checks must be a list of at least one {figure = ..., at_most = ...}", "checks"))
            raw_checks = []
        checks = []
        for raw_check in raw_checks:
            if not isinstance(raw_check, dict) or set(raw_check) - CHECK_KEYS or "figure" not in raw_check:
                conditions = ", ".join(sorted(CHECK_KEYS - {"figure", "times"}))
                problems.append((f"a check has a figure and one of {conditions}", "checks"))
                continue
            check = Check(**raw_check)
            problems += [(p, "checks") for p in check.problems(recipe.defaults())]
            if check.faster_than is not None and check.faster_than not in recipe.variants:
                problems.append((f"unknown variant {check.faster_than!r} to compare with", "checks"))
            checks.append(check)
        sql, reference = raw.get("sql"), raw.get("reference")
        problems += _sql_problems(sql, reference, checks)
        for message, key in problems:
            self.refuse(message, *at, key)
        if problems:
            return None
        sql = sql.strip() if sql is not None else None
        return Challenge("step", goal, tuple(checks), dict(params), sql=sql, reference=reference)

    def unknown_keys(self, raw: Mapping[str, Any], known: set[str], what: str) -> list[tuple[str, str]]:
        return [
            (f"unknown key {k!r}: {what} has {', '.join(sorted(known))}", k) for k in raw if k not in known
        ]

    def variant(self, recipe: Recipe, raw: Mapping[str, Any], teaching: Any, at: tuple) -> str | None:
        variant = raw.get("variant")
        pinned = teaching.variant if isinstance(teaching, Question) else None
        if variant is not None and variant not in recipe.variants:
            self.refuse(
                f"unknown variant {variant!r}: {recipe.slug} has {', '.join(recipe.variants)}", *at, "variant"
            )
            return None
        if variant is not None and pinned is not None and variant != pinned:
            self.refuse(f"the question is about {pinned}, not {variant}", *at, "variant")
            return None
        return pinned or variant or recipe.default_variant

    def params(
        self, recipe: Recipe, raw: Mapping[str, Any], variant: str | None, teaching: Any, at: tuple
    ) -> dict[str, Any] | None:
        params = raw.get("params", {})
        if not isinstance(params, dict):
            self.refuse("params must be a table of parameter = value", *at, "params")
            return None
        if variant is None:
            return None
        fixed = teaching.params if isinstance(teaching, Challenge) else {}
        try:
            recipe.validate({**params, **fixed, "variant": variant})
        except InvalidParams as exc:
            for name, messages in exc.errors.items():
                said = "params" if name == "params" else f"params.{name}"  # "params": unknown names
                where = (*at, "params", name) if name in params else (*at, "params")
                self.refuse(f"{said}: {' '.join(messages)}", *where)
            return None
        clash = sorted(set(params) & set(fixed))
        for name in clash:
            self.refuse(f"params.{name} is set by the challenge itself", *at, "params", name)
        return None if clash else dict(params)


def _sql_problems(sql: Any, reference: Any, checks: list[Check]) -> list[tuple[str, str]]:
    """What is wrong with a challenge answered with SQL: its starting text, its reference (one
    SELECT that the scratchpad's gate lets through), and checks that need a variant or a reference."""
    found = []
    if reference is None and any(c.figure == "same_rows" for c in checks):
        found.append(("same_rows needs a reference query", "checks"))
    if sql is None:
        if reference is not None:
            found.append(("a reference needs sql, the text the editor starts with", "reference"))
        return found
    if not isinstance(sql, str) or not sql.strip() or len(sql) > MAX_LENGTH:
        found.append((f"sql must be non-empty text of at most {MAX_LENGTH:,} characters", "sql"))
    if any(c.faster_than for c in checks):
        found.append(("faster_than compares variants; a SQL challenge has none", "checks"))
    if reference is not None:
        found += [(f"reference: {p}", "reference") for p in _reference_problems(reference)]
    return found


def _reference_problems(reference: Any) -> list[str]:
    try:
        statements = check(reference, Limits(schema="sandbox")) if isinstance(reference, str) else []
    except SqlRefused as exc:
        return [str(exc)]
    if len(statements) != 1 or statements[0].kind != "SELECT" or not statements[0].reads_only:
        return ["must be one SELECT that only reads"]
    return []


def _answer_problems(answer: Any) -> list[str]:
    if not isinstance(answer, str):
        return ['answer must name a figure, e.g. answer = "queries"']
    try:
        figure(answer)
    except ValueError as exc:
        return [str(exc)]
    return []
