"""What a track file becomes: a Track of Steps, or the Problems that refused it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes.base import Recipe
from recipes.learning import Challenge, Question


@dataclass(frozen=True)
class Step:
    """One step of a track: what to run, what to read first, and what to answer or achieve."""

    number: int
    """1 for the first step."""
    title: str
    recipe: Recipe
    variant: str
    """The variant the form starts on (the question's own, when it is about one)."""
    params: dict[str, Any]
    """Parameters the step presets, validated; the others keep their defaults."""
    guidance: str
    """Two to four lines to read before running."""
    teaching: Question | Challenge

    @property
    def is_question(self) -> bool:
        return isinstance(self.teaching, Question)

    def to_json(self) -> dict[str, Any]:
        kind = "question" if self.is_question else "challenge"
        return {
            "number": self.number,
            "title": self.title,
            "recipe": self.recipe.slug,
            "variant": self.variant,
            "params": self.params,
            "guidance": self.guidance,
            kind: self.teaching.to_json(),
        }


@dataclass(frozen=True)
class Track:
    """An ordered path through recipes."""

    slug: str
    """The file's name without .toml."""
    title: str
    summary: str
    minutes: int | None
    steps: tuple[Step, ...]

    def step(self, number: int) -> Step | None:
        return self.steps[number - 1] if 1 <= number <= len(self.steps) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "title": self.title,
            "summary": self.summary,
            "minutes": self.minutes,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass(frozen=True)
class Problem:
    """Why a track file was refused, and where."""

    file: Path
    line: int | None
    message: str

    @property
    def located(self) -> str:
        """The message with its line: "line 7: unknown recipe 'eager'"."""
        return f"line {self.line}: {self.message}" if self.line else self.message

    def __str__(self) -> str:
        return f"{self.file.name}, {self.located}"
